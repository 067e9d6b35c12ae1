// Sends the fixture records with kafkajs, as one send() of ten messages:
// one Produce request carrying one batch.
//
// usage: NODE_PATH=.cache/node/node_modules node kafkajs_produce.js BOOTSTRAP TOPIC CODEC

// The partitioner notice is irrelevant: every message names its partition.
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs')

const RECORD_COUNT = 10

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

function fixtureMessages() {
  const messages = []
  for (let i = 0; i < RECORD_COUNT; i++) {
    messages.push({
      partition: 0,
      key: Buffer.from(`key-${i}`),
      value: Buffer.from(`value-${i}-${'x'.repeat(200)}`),
      headers: { idx: Buffer.from(String(i)) },
    })
  }
  return messages
}

async function main() {
  const [bootstrap, topic, codec] = process.argv.slice(2)
  const compression = codecType(codec)
  const kafka = new Kafka({
    clientId: 'rafka-capture-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
  })
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  try {
    const result = await producer.send({ topic, acks: -1, compression, messages: fixtureMessages() })
    console.log(`kafkajs: delivered ${JSON.stringify(result)}`)
  } finally {
    await producer.disconnect()
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
