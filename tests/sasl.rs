//! librdkafka over SASL_PLAINTEXT + PLAIN against the binary: with the
//! right password it creates a topic, produces and consumes the records
//! back; with a wrong one it reports Kafka's authentication error and gets
//! nothing.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rafka_testkit::BrokerProcess;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use support::client::block_on;
use support::rafka;

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
    user_alice=\"alice-secret\";";
const TOPIC: &str = "secured";
const RECORDS: usize = 20;
const DEADLINE: Duration = Duration::from_secs(60);

/// The binary with its one listener (`--listen`, named PLAINTEXT) made a
/// SASL_PLAINTEXT listener with PLAIN user alice.
fn sasl_broker() -> BrokerProcess {
    BrokerProcess::start(
        rafka(1)
            .property("listener.security.protocol.map", "PLAINTEXT:SASL_PLAINTEXT")
            .property("sasl.enabled.mechanisms", "PLAIN")
            .property("listener.name.plaintext.plain.sasl.jaas.config", JAAS),
    )
}

fn config(bootstrap: &str, password: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "PLAIN")
        .set("sasl.username", "alice")
        .set("sasl.password", password)
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "200");
    config
}

#[test]
fn rdkafka_produces_and_consumes_with_the_right_password() {
    let broker = sasl_broker();
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> =
        config(&bootstrap, "alice-secret").create().expect("admin");
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1));
    let created = block_on(admin.create_topics([&topic], &AdminOptions::new())).expect("create");
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    let producer: FutureProducer = config(&bootstrap, "alice-secret")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    for i in 0..RECORDS {
        let value = format!("value-{i}");
        let record = FutureRecord::to(TOPIC)
            .partition(0)
            .key("k")
            .payload(&value);
        let delivered = block_on(producer.send(record, DEADLINE)).expect("delivered");
        assert_eq!(delivered.offset, i as i64);
    }

    let consumer: BaseConsumer = config(&bootstrap, "alice-secret")
        .set("group.id", "sasl-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while values.len() < RECORDS {
        assert!(Instant::now() < deadline, "consumed {values:?}");
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("consume");
        values.push(String::from_utf8(message.payload().unwrap_or_default().to_vec()).unwrap());
    }
    let expected: Vec<String> = (0..RECORDS).map(|i| format!("value-{i}")).collect();
    assert_eq!(values, expected);
}

/// Records every error librdkafka reports.
#[derive(Default, Clone)]
struct Errors(Arc<Mutex<Vec<String>>>);

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.0
            .lock()
            .expect("lock")
            .push(format!("{error}: {reason}"));
    }
}

impl ConsumerContext for Errors {}

#[test]
fn rdkafka_reports_the_authentication_error_with_a_wrong_password() {
    let broker = sasl_broker();
    let bootstrap = broker.bootstrap();
    let errors = Errors::default();
    let consumer: BaseConsumer<Errors> = config(&bootstrap, "wrong")
        .set("group.id", "sasl-test")
        .create_with_context(errors.clone())
        .expect("consumer");
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(5));
    assert!(metadata.is_err(), "metadata without authentication");
    // The error callback runs from poll: wait for the report.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reported = errors.0.lock().expect("lock").clone();
        let authentication = reported
            .iter()
            .any(|e| e.contains("Authentication failed: Invalid username or password"));
        if authentication {
            break;
        }
        assert!(Instant::now() < deadline, "errors reported: {reported:?}");
        let _ = consumer.poll(Duration::from_millis(200));
    }
}

/// A SASL listener on which nobody could log in does not start, and the
/// log says why.
#[test]
fn a_sasl_listener_without_a_usable_mechanism_stops_the_start() {
    let sasl = |mechanisms: &str| {
        rafka(1)
            .property("listener.security.protocol.map", "PLAINTEXT:SASL_PLAINTEXT")
            .property("sasl.enabled.mechanisms", mechanisms)
    };
    let cases = [
        (
            "GSSAPI",
            "SASL mechanism \"GSSAPI\" is not supported by rafka",
        ),
        (
            "PLAIN",
            "listener PLAINTEXT enables PLAIN but has no PLAIN users",
        ),
    ];
    for (mechanisms, expected) in cases {
        let Err(failure) = BrokerProcess::try_start(sasl(mechanisms)) else {
            panic!("started with sasl.enabled.mechanisms={mechanisms}");
        };
        assert!(failure.status.is_some_and(|s| !s.success()), "{failure:?}");
        assert!(failure.log.contains(expected), "{}", failure.log);
    }
}
