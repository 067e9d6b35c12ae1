// SASL_PLAINTEXT + PLAIN with kafkajs against a running broker.
// good: produces COUNT records to partition 0 of TOPIC (created with the
// admin API), reads them back from offset 0 and compares them.
// bad: connects with the given (wrong) password and expects kafkajs's
// KafkaJSSASLAuthenticationError.
//
// usage: NODE_PATH=.cache/node/node_modules node sasl_kafkajs.js BOOTSTRAP TOPIC USER PASSWORD good|bad
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel } = require('kafkajs')

const COUNT = 20
const DEADLINE_MS = 60000

async function main() {
  const [bootstrap, topic, username, password, mode] = process.argv.slice(2)
  const kafka = new Kafka({
    clientId: 'sasl-compat',
    brokers: [bootstrap],
    sasl: { mechanism: 'plain', username, password },
    logLevel: logLevel.NOTHING,
    // A wrong password is not retried; the round trip rides out the
    // brief unavailability of a topic or group coordinator just created.
    retry: mode === 'bad' ? { retries: 0 } : { retries: 8 },
  })
  const admin = kafka.admin()
  if (mode === 'bad') {
    try {
      await admin.connect()
      await admin.listTopics()
    } catch (error) {
      if (error.name === 'KafkaJSSASLAuthenticationError') {
        console.log(`authentication error: ${error.message}`)
        return null
      }
      return `not an authentication error: ${error.name}: ${error.message}`
    } finally {
      await admin.disconnect()
    }
    return 'metadata answered without authentication'
  }
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  const messages = Array.from({ length: COUNT }, (_, i) => ({ partition: 0, value: `value-${i}` }))
  await producer.send({ topic, acks: -1, messages })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: `sasl-compat-${Date.now()}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const values = []
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`consumed ${values.length} of ${COUNT}`)), DEADLINE_MS)
    consumer.run({
      eachMessage: async ({ message }) => {
        values.push(message.value.toString())
        if (values.length >= COUNT) {
          clearTimeout(timer)
          resolve()
        }
      },
    })
  })
  await consumer.disconnect()
  const expected = messages.map((m) => m.value)
  if (JSON.stringify(values) !== JSON.stringify(expected)) {
    return `read back ${JSON.stringify(values)}, expected ${JSON.stringify(expected)}`
  }
  console.log(`${COUNT} records produced and consumed back`)
  return null
}

main().then(
  (problem) => {
    const mode = process.argv[6]
    if (problem) {
      console.log(`kafkajs ${mode}: FAIL: ${problem}`)
      process.exit(1)
    }
    console.log(`kafkajs ${mode}: OK`)
    process.exit(0)
  },
  (error) => {
    console.log(`kafkajs ${process.argv[6]}: FAIL: ${error.stack}`)
    process.exit(1)
  },
)
