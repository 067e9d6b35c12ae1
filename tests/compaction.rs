//! Log compaction end to end: a `cleanup.policy=compact` topic written in
//! rounds over the same keys is compacted by the broker's cleaner task,
//! until a librdkafka consumer from offset 0 sees each key once with its
//! latest value, and the partition's files shrink; the same after a
//! restart.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rafka_testkit::BrokerProcess;
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use support::client::{self, Record};
use support::rafka;

const TOPIC: &str = "compacted";
const KEYS: usize = 20;
const ROUNDS: usize = 5;
const VALUE_BYTES: usize = 1000;
/// How long the cleaner may take to get the log into its compacted shape.
const COMPACTION_DEADLINE: Duration = Duration::from_secs(60);

fn value(round: usize, key: usize) -> Vec<u8> {
    let mut value = format!("round-{round}-key-{key}-").into_bytes();
    value.resize(VALUE_BYTES, b'.');
    value
}

fn record(key: &str, value: Vec<u8>) -> Record {
    Record {
        key: key.as_bytes().to_vec(),
        value: Some(value),
        headers: Vec::new(),
        timestamp_ms: client::now_ms(),
    }
}

fn create_compacted_topic(bootstrap: &str) {
    // segment.ms=1 rolls a segment at (almost) every produce: many small
    // segments, and every round but the newest closed and cleanable.
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "1")
        .set("min.cleanable.dirty.ratio", "0.01");
    let options = rdkafka::admin::AdminOptions::new()
        .request_timeout(Some(client::REQUEST_TIMEOUT))
        .operation_timeout(Some(client::REQUEST_TIMEOUT));
    let results = client::block_on(client::admin(bootstrap).create_topics([&topic], &options))
        .expect("CreateTopics request");
    assert_eq!(results, vec![Ok(TOPIC.to_owned())]);
}

/// Every record below the high watermark, read from offset 0: key -> the
/// values seen, in offset order.
fn read_all(bootstrap: &str) -> BTreeMap<String, Vec<Vec<u8>>> {
    let (_, high) = client::watermarks(bootstrap, TOPIC, 0);
    let consumer = client::consumer(bootstrap);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let mut seen: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let deadline = Instant::now() + client::CONSUME_DEADLINE;
    let mut next = 0;
    while next < high {
        assert!(Instant::now() < deadline, "read up to {next} of {high}");
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message.expect("consume");
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let value = message.payload().unwrap_or_default().to_vec();
        seen.entry(key).or_default().push(value);
        next = message.offset() + 1;
    }
    seen
}

/// Whether every data key appears once, with its last round's value.
fn compacted_view(seen: &BTreeMap<String, Vec<Vec<u8>>>) -> bool {
    (0..KEYS).all(|key| seen.get(&format!("key-{key}")) == Some(&vec![value(ROUNDS - 1, key)]))
}

fn log_bytes(broker: &BrokerProcess) -> (u64, Vec<String>) {
    let mut total = 0;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(broker.partition_dir(TOPIC, 0)).expect("partition dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            total += entry.metadata().expect("metadata").len();
        }
        names.push(name);
    }
    (total, names)
}

/// Produces a fresh unique key (so time passes, the active segment rolls
/// and the cleaner gets closed segments) until the compacted view shows.
fn wait_for_compaction(broker: &BrokerProcess, producer: &rdkafka::producer::FutureProducer) {
    let bootstrap = broker.bootstrap();
    let deadline = Instant::now() + COMPACTION_DEADLINE;
    for tick in 0.. {
        let seen = read_all(&bootstrap);
        if compacted_view(&seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in time: {:?}\n{}",
            seen.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>(),
            broker.log_tail()
        );
        let tick = record(&format!("tick-{tick}"), b"t".to_vec());
        client::produce(producer, TOPIC, &[vec![tick]]);
    }
}

#[test]
fn a_compacted_topic_keeps_each_keys_latest_value_across_a_restart() {
    let options = rafka(1).property("log.retention.check.interval.ms", "50");
    let mut broker = BrokerProcess::start(options);
    let bootstrap = broker.bootstrap();
    create_compacted_topic(&bootstrap);
    let producer = client::producer(&bootstrap, &[]);
    for round in 0..ROUNDS {
        let records = (0..KEYS)
            .map(|key| record(&format!("key-{key}"), value(round, key)))
            .collect();
        client::produce(&producer, TOPIC, &[records]);
    }
    let produced_bytes = (ROUNDS * KEYS * VALUE_BYTES) as u64;
    wait_for_compaction(&broker, &producer);
    let (bytes, names) = log_bytes(&broker);
    assert!(
        bytes < produced_bytes / 2,
        "{bytes} bytes of segments after compaction: {names:?}"
    );
    drop(producer);
    broker.restart();
    let seen = read_all(&broker.bootstrap());
    assert!(compacted_view(&seen), "after restart: {seen:?}");
    let (_, names) = log_bytes(&broker);
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".swap") && !n.ends_with(".cleaned")),
        "{names:?}"
    );
}
