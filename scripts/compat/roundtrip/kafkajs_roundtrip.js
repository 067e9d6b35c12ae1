// Roundtrip with kafkajs: creates the topic with the admin API, produces the
// shared records (see roundtrip_records.py) with acks=-1 and CODEC, consumes
// them back from offset 0, checks them. kafkajs's consumer API always joins a
// group (a later issue), so reading back uses kafkajs's own Fetch requests
// through its cluster object: no group, like assign + seek elsewhere.
//
// usage: NODE_PATH=.cache/node/node_modules node kafkajs_roundtrip.js BOOTSTRAP TOPIC CODEC COUNT

// The partitioner notice is irrelevant: every message names its partition.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')

const CLIENT = 'kafkajs'
const PARTITIONS = 3
const DEADLINE_MS = 60000

function codecType(codec) {
  switch (codec) {
    case 'none':
      return CompressionTypes.None
    case 'gzip':
      return CompressionTypes.GZIP
    case 'snappy':
      CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')
      return CompressionTypes.Snappy
    case 'lz4': {
      const LZ4Codec = require('kafkajs-lz4')
      CompressionCodecs[CompressionTypes.LZ4] = new LZ4Codec().codec
      return CompressionTypes.LZ4
    }
    default:
      throw new Error(`kafkajs: unsupported codec ${codec}`)
  }
}

function expectedRecords(count) {
  const records = []
  for (let i = 0; i < count; i++) {
    records.push({
      partition: i % PARTITIONS,
      key: `key-${i}`,
      value: `value-${i}-${'abcdefghij'.repeat(i % 20)}`,
      headers: [['idx', String(i)], ['client', CLIENT]],
    })
  }
  return records
}

async function produce(kafka, topic, codec, records) {
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  try {
    const messages = records.map((record) => ({
      partition: record.partition,
      key: Buffer.from(record.key),
      value: Buffer.from(record.value),
      headers: Object.fromEntries(record.headers.map(([k, v]) => [k, Buffer.from(v)])),
    }))
    // Several sends so that there is more than one request per partition.
    for (let start = 0; start < messages.length; start += 100) {
      await producer.send({
        topic,
        acks: -1,
        compression: codecType(codec),
        messages: messages.slice(start, start + 100),
      })
    }
  } finally {
    await producer.disconnect()
  }
}

// The kafkajs client's own cluster object (metadata, connections, Fetch
// encode/decode); kafkajs keeps it behind a private symbol.
function createCluster(kafka) {
  const symbol = Object.getOwnPropertySymbols(kafka).find((s) => s.description === 'private:Kafka:createCluster')
  if (!symbol) throw new Error('kafkajs: no cluster factory (kafkajs version changed?)')
  return kafka[symbol]({ allowAutoTopicCreation: false })
}

// Reads every partition from offset 0 with plain Fetch requests to its
// leader, as a consumer would after assign + seek(0); a batch can start
// before the requested offset, so earlier records are skipped.
async function consume(kafka, topic, count) {
  const consumed = Array.from({ length: PARTITIONS }, () => [])
  const cluster = createCluster(kafka)
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    const deadline = Date.now() + DEADLINE_MS
    const wanted = (partition) => Math.floor(count / PARTITIONS) + (partition < count % PARTITIONS ? 1 : 0)
    for (let partition = 0; partition < PARTITIONS; partition++) {
      const leaders = cluster.findLeaderForPartitions(topic, [partition])
      const broker = await cluster.findBroker({ nodeId: Object.keys(leaders)[0] })
      const got = consumed[partition]
      let fetchOffset = 0
      while (got.length < wanted(partition) && Date.now() < deadline) {
        const response = await broker.fetch({
          replicaId: -1,
          maxWaitTime: 500,
          topics: [{ topic, partitions: [{ partition, fetchOffset: String(fetchOffset), maxBytes: 1048576 }] }],
        })
        const answer = response.responses[0].partitions[0]
        if (answer.errorCode !== 0) throw new Error(`fetch ${topic}/${partition}@${fetchOffset}: error code ${answer.errorCode}`)
        const from = fetchOffset
        for (const message of answer.messages) {
          if (Number(message.offset) < from || got.length >= wanted(partition)) continue
          fetchOffset = Number(message.offset) + 1
          const headers = Object.entries(message.headers || {}).map(([k, v]) => [k, v.toString()])
          got.push({
            offset: Number(message.offset),
            key: message.key === null ? null : message.key.toString(),
            value: message.value === null ? null : message.value.toString(),
            headers,
          })
        }
      }
    }
  } finally {
    await cluster.disconnect()
  }
  return consumed
}

function check(records, consumed, offsets) {
  const problems = []
  for (let partition = 0; partition < PARTITIONS; partition++) {
    const want = records.filter((record) => record.partition === partition)
    const got = consumed[partition]
    if (got.length !== want.length) {
      problems.push(`partition ${partition}: ${got.length} records, expected ${want.length}`)
    }
    for (let i = 0; i < Math.min(got.length, want.length) && problems.length < 10; i++) {
      const g = got[i]
      const w = want[i]
      if (g.offset !== i) problems.push(`partition ${partition}: record ${i} at offset ${g.offset}`)
      const same = g.key === w.key && g.value === w.value && JSON.stringify(g.headers) === JSON.stringify(w.headers)
      if (!same) problems.push(`partition ${partition} offset ${g.offset}: got ${JSON.stringify(g)}, expected ${JSON.stringify(w)}`)
    }
    const end = offsets.find((entry) => entry.partition === partition)
    if (!end || Number(end.low) !== 0 || Number(end.high) !== want.length) {
      problems.push(`partition ${partition}: offsets ${JSON.stringify(end)}`)
    }
  }
  return problems
}

// TLS from TLS_CA (and TLS_CERT + TLS_KEY for a client certificate);
// plaintext when TLS_CA is unset.
function tlsOptions() {
  const fs = require('fs')
  if (!process.env.TLS_CA) return undefined
  const ssl = { ca: [fs.readFileSync(process.env.TLS_CA, 'utf8')] }
  if (process.env.TLS_CERT) {
    ssl.cert = fs.readFileSync(process.env.TLS_CERT, 'utf8')
    ssl.key = fs.readFileSync(process.env.TLS_KEY, 'utf8')
  }
  return ssl
}

async function main() {
  const [bootstrap, topic, codec, countText] = process.argv.slice(2)
  const count = Number(countText)
  const kafka = new Kafka({ clientId: 'rafka-roundtrip-kafkajs', brokers: [bootstrap], logLevel: logLevel.WARN, ssl: tlsOptions() })
  const admin = kafka.admin()
  await admin.connect()
  try {
    const created = await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true })
    if (!created) throw new Error(`createTopics(${topic}) reported an existing topic`)
    const records = expectedRecords(count)
    await produce(kafka, topic, codec, records)
    const offsets = await admin.fetchTopicOffsets(topic)
    const consumed = await consume(kafka, topic, count)
    const problems = check(records, consumed, offsets)
    if (problems.length > 0) {
      console.log(`${CLIENT} ${codec}: FAIL`)
      for (const problem of problems) console.log(`  ${problem}`)
      process.exitCode = 1
    } else {
      console.log(`${CLIENT} ${codec}: ${count} records consumed back exactly`)
    }
  } finally {
    await admin.disconnect()
  }
}

main().catch((error) => {
  console.error(`${CLIENT}: ${error.stack || error}`)
  process.exit(1)
})
