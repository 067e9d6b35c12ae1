// A client that must not get through a TLS listener, with kafkajs.
// wrong-ca: TLS trusting CA_FILE, a CA that did not sign the server's
// certificate: kafkajs must fail with Node's certificate verification error.
// plaintext: no TLS against the TLS port: kafkajs must fail to connect
// (the broker closes the connection), never get an answer.
//
// usage: NODE_PATH=.cache/node/node_modules node tls_refusal.js BOOTSTRAP wrong-ca|plaintext CA_FILE
const fs = require('fs')
const { Kafka, logLevel } = require('kafkajs')

// Node's codes for a chain that does not lead to a trusted CA.
const VERIFY_CODES = ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN']

function causes(error) {
  const chain = []
  for (let e = error; e; e = e.originalError || e.cause) chain.push(e)
  return chain
}

async function main() {
  const [bootstrap, mode, ca] = process.argv.slice(2)
  const kafka = new Kafka({
    clientId: 'tls-refusal',
    brokers: [bootstrap],
    ssl: mode === 'wrong-ca' ? { ca: [fs.readFileSync(ca, 'utf8')] } : undefined,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 5000,
    retry: { retries: 0 },
  })
  const admin = kafka.admin()
  try {
    await admin.connect()
    await admin.describeCluster()
    return [null, 'metadata answered']
  } catch (error) {
    const chain = causes(error)
    const text = chain.map((e) => `${e.name}${e.code ? ` ${e.code}` : ''}: ${e.message}`).join(' <- ')
    const ok =
      mode === 'wrong-ca'
        ? chain.some((e) => VERIFY_CODES.includes(e.code))
        : chain.some((e) => e.name === 'KafkaJSConnectionError' || e.name === 'KafkaJSConnectionClosedError')
    return ok ? [text, null] : [null, `not the expected error: ${text}`]
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

main().then(
  ([seen, problem]) => {
    const mode = process.argv[3]
    if (problem) {
      console.log(`kafkajs ${mode}: FAIL: ${problem}`)
      process.exit(1)
    }
    console.log(`kafkajs ${mode}: OK: ${seen}`)
    process.exit(0)
  },
  (error) => {
    console.log(`kafkajs ${process.argv[3]}: FAIL: ${error.stack}`)
    process.exit(1)
  },
)
