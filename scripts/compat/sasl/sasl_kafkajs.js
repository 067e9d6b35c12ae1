// The SASL matrix's cells for kafkajs, in one process. Each CELL is
// LISTENER:MECHANISM:KIND and prints one line
// "kafkajs LISTENER MECHANISM KIND: OK|FAIL reason":
// - roundtrip (and roundtrip-after-refusals, the last cell): creates a
//   topic of its own (admin API), produces COUNT records to partition 0,
//   reads them back from the beginning (a group of its own: kafkajs has no
//   assign) and compares them.
// - wrong-password: PLAIN/SCRAM with a wrong password; expects
//   KafkaJSSASLAuthenticationError.
// - expired-token: OAUTHBEARER with an unsecured JWT whose exp is an hour
//   past (from oauthBearerProvider); expects KafkaJSSASLAuthenticationError
//   or, as kafkajs reads no server challenge, KafkaJSConnectionClosedError
//   (see refusal()).
// - wrong-ca: SASL_SSL while trusting OTHER_CA; expects the TLS
//   verification error.
//
// usage: NODE_PATH=.cache/node/node_modules node sasl_kafkajs.js SASL_PLAINTEXT_ADDR SASL_SSL_ADDR
//        CA OTHER_CA USER PASSWORD RUN_ID CELL...
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

const COUNT = 20
const DEADLINE_MS = 30000

// An unsecured JWS (alg none, empty signature) as Kafka's
// OAuthBearerUnsecuredLoginCallbackHandler makes it.
function unsecuredToken(sub, lifetimeS) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  return `${part({ alg: 'none' })}.${part({ sub, iat: now, exp: now + lifetimeS })}.`
}

function kafkaFor(cell, args) {
  const [listener, mechanism, kind] = cell
  const password = kind === 'wrong-password' ? `wrong-${args.password}` : args.password
  let sasl
  if (mechanism === 'OAUTHBEARER') {
    const token = unsecuredToken(args.user, kind === 'expired-token' ? -3600 : 3600)
    sasl = { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: token }) }
  } else {
    sasl = { mechanism: mechanism.toLowerCase(), username: args.user, password }
  }
  const ssl = listener === 'SASL_SSL'
    ? { ca: [fs.readFileSync(kind === 'wrong-ca' ? args.otherCa : args.ca, 'utf8')] }
    : undefined
  return new Kafka({
    clientId: 'sasl-compat',
    brokers: [listener === 'SASL_SSL' ? args.ssl : args.plaintext],
    sasl,
    ssl,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    // A refusal is not retried; the round trip rides out the brief
    // unavailability of a topic or group coordinator just created.
    retry: kind.startsWith('roundtrip') ? { retries: 8 } : { retries: 0 },
  })
}

// The error chain's messages, outermost first.
function describe(error) {
  const parts = []
  for (let e = error; e; e = e.cause || e.originalError) parts.push(`${e.name}: ${e.message}`)
  return parts.join(' <- ')
}

async function refusal(kafka, kind) {
  const admin = kafka.admin()
  try {
    await admin.connect()
    await admin.listTopics()
    return 'FAIL metadata answered'
  } catch (error) {
    const text = describe(error)
    // kafkajs 2.2.4 reads no OAUTHBEARER server challenge: the error
    // status that answers an expired token (error code 0, as Kafka sends
    // it) passes for success, its next request comes before the client's
    // final \x01, and the broker closes the connection, as Kafka does.
    const expected = {
      'wrong-password': /KafkaJSSASLAuthenticationError/,
      'expired-token': /KafkaJSSASLAuthenticationError|KafkaJSConnectionClosedError/,
      'wrong-ca': /certificate|self.signed|issuer/i,
    }[kind]
    if (expected.test(text)) return `OK (refused: ${text.replace(/\n/g, ' ').slice(0, 300)})`
    return `FAIL not the expected error: ${text}`
  } finally {
    await admin.disconnect()
  }
}

async function roundtrip(kafka, cell, topic) {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
  await admin.disconnect()
  const expected = Array.from({ length: COUNT }, (_, i) => `${cell[1]}@${cell[0]}-${i}`)
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic, acks: -1, messages: expected.map((value) => ({ partition: 0, value })) })
  await producer.disconnect()
  const consumer = kafka.consumer({ groupId: `${topic}-group` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const values = []
  try {
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
      }).catch(reject)
    })
  } finally {
    await consumer.disconnect()
  }
  if (JSON.stringify(values) !== JSON.stringify(expected)) {
    return `FAIL read back ${JSON.stringify(values)}, expected ${JSON.stringify(expected)}`
  }
  return `OK (${COUNT} records back)`
}

async function main() {
  const [plaintext, ssl, ca, otherCa, user, password, runId, ...cells] = process.argv.slice(2)
  const args = { plaintext, ssl, ca, otherCa, user, password }
  let failed = false
  for (const spec of cells) {
    const cell = spec.split(':')
    const kind = cell[2]
    const topic = ['sasl', 'kafkajs', ...cell, runId].join('-').toLowerCase()
    let verdict
    try {
      const kafka = kafkaFor(cell, args)
      verdict = kind.startsWith('roundtrip') ? await roundtrip(kafka, cell, topic) : await refusal(kafka, kind)
    } catch (error) {
      verdict = `FAIL ${describe(error)}`
    }
    failed = failed || verdict.startsWith('FAIL')
    console.log(`kafkajs ${cell.join(' ')}: ${verdict}`)
  }
  return failed
}

main().then(
  (failed) => process.exit(failed ? 1 : 0),
  (error) => {
    console.log(`kafkajs: FAIL ${error.stack}`)
    process.exit(1)
  },
)
