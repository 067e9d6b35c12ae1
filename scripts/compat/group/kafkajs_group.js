// Consumer group with kafkajs: two members of one group share a 4-partition
// topic, consume COUNT records and commit after every batch; together they
// must see every record exactly once and leave committed offsets equal to
// the end offsets. Then a third member of the group resumes from those
// offsets and, of RESUME_COUNT new records, gets exactly those. Records are
// produced once both members hold their final assignment (two partitions
// each), so no partition changes hands between a fetch and its commit.
//
// usage: NODE_PATH=.cache/node/node_modules node kafkajs_group.js BOOTSTRAP TOPIC GROUP COUNT

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const { EventEmitter } = require('events')
const { Kafka, logLevel } = require('kafkajs')

const CLIENT = 'kafkajs'
const PARTITIONS = 4
const RESUME_COUNT = 8
const DEADLINE_MS = 60000
// Every member emits 'change' after an assignment or a batch, so the main
// flow waits for a state instead of sleeping between looks.
const changes = new EventEmitter()
changes.setMaxListeners(0)

function waitUntil(what, condition, members) {
  return new Promise((resolve, reject) => {
    const look = () => {
      const failed = members.find((member) => member.error)
      if (failed) {
        finish()
        reject(new Error(`${failed.name}: ${failed.error}`))
      } else if (condition()) {
        finish()
        resolve()
      }
    }
    const timer = setTimeout(() => {
      finish()
      reject(new Error(`no ${what} within ${DEADLINE_MS} ms`))
    }, DEADLINE_MS)
    const finish = () => {
      clearTimeout(timer)
      changes.off('change', look)
    }
    changes.on('change', look)
    look()
  })
}

// One consumer: records values and its latest assignment, commits the end of
// every batch it handled.
async function startMember(kafka, topic, group, name) {
  // Short heartbeat and fetch wait: kafkajs learns of a rebalance from a
  // heartbeat between fetches, so these bound how long joining takes.
  const consumer = kafka.consumer({ groupId: group, heartbeatInterval: 500, maxWaitTimeInMs: 200 })
  const member = { name, consumer, values: [], assignment: [], error: null }
  consumer.on(consumer.events.GROUP_JOIN, (event) => {
    member.assignment = event.payload.memberAssignment[topic] || []
    changes.emit('change')
  })
  consumer.on(consumer.events.CRASH, (event) => {
    member.error = event.payload.error
    changes.emit('change')
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return
      const last = batch.messages[batch.messages.length - 1]
      await consumer.commitOffsets([
        { topic, partition: batch.partition, offset: (BigInt(last.offset) + 1n).toString() },
      ])
      member.values.push(...batch.messages.map((message) => message.value.toString()))
      changes.emit('change')
    },
  })
  return member
}

async function produce(kafka, topic, prefix, count) {
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  const values = []
  const messages = []
  for (let i = 0; i < count; i++) {
    values.push(`${prefix}${i}`)
    messages.push({ partition: i % PARTITIONS, value: Buffer.from(`${prefix}${i}`) })
  }
  await producer.send({ topic, acks: -1, messages })
  await producer.disconnect()
  return values
}

const sorted = (values) => [...values].sort()
const same = (a, b) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b))

async function twoMembers(kafka, admin, topic, group, count, problems) {
  const members = await Promise.all([0, 1].map((i) => startMember(kafka, topic, group, `member-${i}`)))
  await waitUntil('2+2 assignment', () => {
    const all = new Set(members.flatMap((member) => member.assignment))
    return members.every((member) => member.assignment.length === 2) && all.size === PARTITIONS
  }, members)
  const sent = await produce(kafka, topic, 'first-', count)
  const total = () => members.reduce((sum, member) => sum + member.values.length, 0)
  await waitUntil(`${count} records`, () => total() >= count, members)
  await Promise.all(members.map((member) => member.consumer.disconnect()))
  const got = members.flatMap((member) => member.values)
  if (!same(got, sent)) {
    problems.push(`two members consumed ${got.length} records (${new Set(got).size} distinct), ` +
      `expected each of ${count} once`)
  }
  const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] })
  const ends = await admin.fetchTopicOffsets(topic)
  for (const end of ends) {
    const entry = committed.partitions.find((p) => p.partition === end.partition)
    if (!entry || entry.offset !== end.high) {
      problems.push(`partition ${end.partition}: committed ${entry && entry.offset}, end offset ${end.high}`)
    }
  }
}

async function resume(kafka, topic, group, problems) {
  const member = await startMember(kafka, topic, group, 'member-resume')
  await waitUntil('4-partition assignment', () => member.assignment.length === PARTITIONS, [member])
  const sent = await produce(kafka, topic, 'resume-', RESUME_COUNT)
  // Old records sit before the new ones in their partition: once every new
  // one arrived, any old one would have arrived too.
  await waitUntil(`${RESUME_COUNT} new records`, () => member.values.length >= RESUME_COUNT, [member])
  await member.consumer.disconnect()
  if (!same(member.values, sent)) {
    problems.push(`resumed member got ${member.values.length} records, expected the ${RESUME_COUNT} ` +
      `new ones: ${member.values.slice(0, 5)}`)
  }
}

async function main() {
  const [bootstrap, topic, group, countArg] = process.argv.slice(2)
  const count = Number(countArg)
  const kafka = new Kafka({ clientId: 'rafka-group-kafkajs', brokers: [bootstrap], logLevel: logLevel.WARN })
  const admin = kafka.admin()
  await admin.connect()
  const problems = []
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true })
    await twoMembers(kafka, admin, topic, group, count, problems)
    if (problems.length === 0) await resume(kafka, topic, group, problems)
  } finally {
    await admin.disconnect()
  }
  if (problems.length > 0) {
    console.log(`group ${CLIENT}: FAIL`)
    problems.forEach((problem) => console.log(`  ${problem}`))
    process.exit(1)
  }
  console.log(`group ${CLIENT}: PASS (${count} records by 2 members exactly once, ` +
    `committed = end offsets, resumed with ${RESUME_COUNT} new only)`)
  process.exit(0)
}

main().catch((error) => {
  console.log(`group ${CLIENT}: FAIL (${error.message})`)
  process.exit(1)
})
