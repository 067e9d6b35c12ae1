//! librdkafka (rdkafka crate) helpers for the end-to-end tests: admin
//! calls, a batch producer, an assign-based consumer (no groups yet) and the
//! deterministic records every test produces and checks byte for byte.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rafka_testkit::Rng;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// Bound on any single client round trip (metadata, admin, watermarks).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on reading back everything a test produced.
pub const CONSUME_DEADLINE: Duration = Duration::from_secs(120);
/// Messages handed to librdkafka before the producer waits for their acks;
/// below librdkafka's default queue bound (100k messages).
const PRODUCE_WINDOW: usize = 20_000;

/// Runs a future to completion on a fresh single-threaded runtime; the
/// rdkafka futures complete from librdkafka's own threads.
pub fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
}

/// One record as produced: key, value (None is a null value, a tombstone),
/// headers (a None value is a null header value) and CreateTime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp_ms: i64,
}

/// One record as consumed back, with its offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumed {
    pub offset: i64,
    pub record: Record,
}

/// Milliseconds since the epoch now; record timestamps are near it so that
/// time-based retention never deletes test data.
pub fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("ms fit i64")
}

/// The deterministic record number `index` of `partition`: a key naming
/// both, a value of 1..=300 bytes drawn from a small alphabet (so codecs
/// compress it) plus raw 0x00/0xff bytes, every 13th value null, two or three
/// headers (one with a null value every 7th record), none every 11th.
pub fn record(partition: i32, index: u32, base_ms: i64) -> Record {
    let mut rng = Rng::new((u64::from(partition.unsigned_abs()) << 32) | u64::from(index));
    let value = if index % 13 == 12 {
        None
    } else {
        let len = 1 + rng.index(300);
        let mut bytes: Vec<u8> = (0..len).map(|_| *rng.choose(b"abcd")).collect();
        bytes[0] = 0x00;
        bytes[len - 1] = 0xff;
        Some(bytes)
    };
    let mut headers = Vec::new();
    if !index.is_multiple_of(11) {
        headers.push(("idx".to_owned(), Some(index.to_string().into_bytes())));
        headers.push(("part".to_owned(), Some(partition.to_be_bytes().to_vec())));
        if index.is_multiple_of(7) {
            headers.push(("nil".to_owned(), None));
        }
    }
    Record {
        key: format!("key-{partition}-{index}").into_bytes(),
        value,
        headers,
        timestamp_ms: base_ms + i64::from(index),
    }
}

/// The records `0..count` of each partition `0..partitions`, per partition.
pub fn records(partitions: i32, count: u32, base_ms: i64) -> Vec<Vec<Record>> {
    (0..partitions)
        .map(|partition| {
            (0..count)
                .map(|index| record(partition, index, base_ms))
                .collect()
        })
        .collect()
}

/// A client config with the bootstrap address and short reconnect backoff.
pub fn config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "rafka-e2e")
        .set("broker.address.family", "v4")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "200");
    config
}

/// An acks=all producer; `extra` overrides or adds settings.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = config(bootstrap);
    config
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    config.create().expect("create producer")
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    config(bootstrap).create().expect("create admin client")
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// CreateTopics for one topic; panics with the broker's error code if it fails.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_topic_with(bootstrap, topic, partitions, &[]);
}

/// [`create_topic`] with topic configs (`compression.type`, ...).
pub fn create_topic_with(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let new_topic = configs.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        |new_topic, (key, value)| new_topic.set(key, value),
    );
    let results = block_on(admin(bootstrap).create_topics([&new_topic], &admin_options()))
        .expect("CreateTopics request");
    assert_eq!(results, vec![Ok(topic.to_owned())], "CreateTopics {topic}");
}

/// CreatePartitions growing `topic` to `total`; returns the per-topic
/// result.
pub fn create_partitions(
    bootstrap: &str,
    topic: &str,
    total: usize,
) -> Result<String, (String, RDKafkaErrorCode)> {
    let grow = NewPartitions::new(topic, total);
    let mut results = block_on(admin(bootstrap).create_partitions([&grow], &admin_options()))
        .expect("CreatePartitions request");
    assert_eq!(results.len(), 1, "one result per topic");
    results.remove(0)
}

/// DeleteRecords below `offset` in each `(partition, offset)` of
/// `topic`; returns each partition's new low watermark or error.
pub fn delete_records(
    bootstrap: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Vec<(i32, Result<i64, RDKafkaErrorCode>)> {
    let mut list = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("offset");
    }
    let done = block_on(admin(bootstrap).delete_records(&list, &admin_options()))
        .expect("DeleteRecords request");
    done.elements()
        .iter()
        .map(|element| {
            let outcome = match element.error() {
                Ok(()) => match element.offset() {
                    Offset::Offset(offset) => Ok(offset),
                    other => panic!("low watermark {other:?}"),
                },
                Err(KafkaError::OffsetFetch(code)) => Err(code),
                Err(error) => Err(error
                    .rdkafka_error_code()
                    .unwrap_or(RDKafkaErrorCode::Unknown)),
            };
            (element.partition(), outcome)
        })
        .collect()
}

/// DescribeConfigs of one resource: name -> (value, source).
pub fn describe_configs(
    bootstrap: &str,
    resource: ResourceSpecifier<'_>,
) -> Result<BTreeMap<String, (Option<String>, ConfigSource)>, RDKafkaErrorCode> {
    let mut results = block_on(admin(bootstrap).describe_configs([&resource], &admin_options()))
        .expect("DescribeConfigs request");
    assert_eq!(results.len(), 1, "one result per resource");
    let described = results.remove(0)?;
    Ok(described
        .entries
        .into_iter()
        .map(|entry| (entry.name, (entry.value, entry.source)))
        .collect())
}

/// Legacy AlterConfigs of one resource (replaces its every override).
pub fn alter_configs(
    bootstrap: &str,
    resource: ResourceSpecifier<'_>,
    entries: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut alter = AlterConfig::new(resource);
    for (key, value) in entries {
        alter = alter.set(key, value);
    }
    let mut results = block_on(admin(bootstrap).alter_configs([&alter], &admin_options()))
        .expect("AlterConfigs request");
    assert_eq!(results.len(), 1, "one result per resource");
    results.remove(0).map(|_| ()).map_err(|(_, code)| code)
}

/// DeleteTopics for one topic; returns the per-topic result.
pub fn delete_topic(bootstrap: &str, topic: &str) -> Result<String, (String, RDKafkaErrorCode)> {
    let mut results = block_on(admin(bootstrap).delete_topics(&[topic], &admin_options()))
        .expect("DeleteTopics request");
    assert_eq!(results.len(), 1, "one result per deleted topic");
    results.remove(0)
}

/// The partition count of every topic the broker lists (all-topics Metadata,
/// which never auto-creates).
pub fn list_topics(bootstrap: &str) -> BTreeMap<String, usize> {
    let consumer = consumer(bootstrap);
    let metadata = consumer
        .fetch_metadata(None, REQUEST_TIMEOUT)
        .expect("Metadata request");
    metadata
        .topics()
        .iter()
        .map(|topic| (topic.name().to_owned(), topic.partitions().len()))
        .collect()
}

/// A consumer for assign + explicit offsets: no group membership, no commits.
pub fn consumer(bootstrap: &str) -> BaseConsumer {
    let mut config = config(bootstrap);
    config
        .set("group.id", "rafka-e2e-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "error")
        .set("allow.auto.create.topics", "false")
        .set("enable.partition.eof", "false");
    config.create().expect("create consumer")
}

/// (low, high) watermarks of one partition, from ListOffsets earliest/latest.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    consumer(bootstrap)
        .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
        .expect("ListOffsets earliest/latest")
}

/// Hands every record to the producer (explicit partition, in order) and
/// waits for all acks; returns each record's delivered offset, per partition.
pub fn produce(producer: &FutureProducer, topic: &str, records: &[Vec<Record>]) -> Vec<Vec<i64>> {
    let mut sends: Vec<(i32, &Record)> = Vec::new();
    // Interleave partitions so that one request carries several of them.
    let longest = records.iter().map(Vec::len).max().unwrap_or(0);
    for index in 0..longest {
        for (partition, list) in records.iter().enumerate() {
            if let Some(record) = list.get(index) {
                sends.push((
                    i32::try_from(partition).expect("partition fits i32"),
                    record,
                ));
            }
        }
    }
    let mut offsets: Vec<Vec<i64>> = records.iter().map(|_| Vec::new()).collect();
    for window in sends.chunks(PRODUCE_WINDOW) {
        let futures: Vec<(i32, DeliveryFuture)> = window
            .iter()
            .map(|(partition, record)| (*partition, send(producer, topic, *partition, record)))
            .collect();
        block_on(async {
            for (partition, future) in futures {
                let offset = await_delivery(future).await;
                offsets[partition as usize].push(offset.1);
            }
        });
    }
    offsets
}

/// Enqueues one record; panics if librdkafka refuses it (queue full, ...).
pub fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    record: &Record,
) -> DeliveryFuture {
    let mut future_record = FutureRecord::to(topic)
        .partition(partition)
        .key(&record.key)
        .timestamp(record.timestamp_ms);
    if let Some(value) = &record.value {
        future_record = future_record.payload(value);
    }
    if !record.headers.is_empty() {
        future_record = future_record.headers(owned_headers(&record.headers));
    }
    match producer.send_result(future_record) {
        Ok(future) => future,
        Err((error, _)) => panic!("enqueue to {topic}/{partition} failed: {error}"),
    }
}

fn owned_headers(headers: &[(String, Option<Vec<u8>>)]) -> OwnedHeaders {
    headers
        .iter()
        .fold(OwnedHeaders::new(), |owned, (key, value)| {
            owned.insert(Header {
                key,
                value: value.as_ref(),
            })
        })
}

/// Awaits one delivery report; returns (partition, offset) or panics with
/// the error librdkafka reported.
pub async fn await_delivery(future: DeliveryFuture) -> (i32, i64) {
    match future.await {
        Ok(Ok(delivery)) => (delivery.partition, delivery.offset),
        Ok(Err((error, message))) => panic!(
            "delivery to {}/{} failed: {error}",
            message.topic(),
            message.partition()
        ),
        Err(_) => panic!("producer dropped a delivery report"),
    }
}

/// Produces one record without a partition (librdkafka's partitioner picks
/// it) and returns the delivery result.
pub fn produce_unassigned(
    producer: &FutureProducer,
    topic: &str,
    record: &Record,
) -> Result<(i32, i64), KafkaError> {
    let future_record = FutureRecord::to(topic)
        .key(&record.key)
        .payload(record.value.as_deref().unwrap_or_default())
        .timestamp(record.timestamp_ms)
        .headers(owned_headers(&record.headers));
    block_on(producer.send(future_record, REQUEST_TIMEOUT))
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(error, _)| error)
}

/// Reads `counts[p]` records from offset 0 of every partition p (assign, no
/// group). Panics on a consumer error or when the deadline passes first.
pub fn consume(bootstrap: &str, topic: &str, counts: &[usize]) -> Vec<Vec<Consumed>> {
    let consumer = consumer(bootstrap);
    let mut assignment = TopicPartitionList::new();
    for partition in 0..counts.len() {
        let partition = i32::try_from(partition).expect("partition fits i32");
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assignment entry");
    }
    consumer.assign(&assignment).expect("assign partitions");
    let mut consumed: Vec<Vec<Consumed>> = counts.iter().map(|_| Vec::new()).collect();
    let total: usize = counts.iter().sum();
    let mut received = 0;
    let deadline = Instant::now() + CONSUME_DEADLINE;
    while received < total {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "consumed {received} of {total} records of {topic} before the deadline: {:?}",
            consumed.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let Some(message) = consumer.poll(left.min(Duration::from_secs(1))) else {
            continue;
        };
        let message = match message {
            // A broker of the bootstrap list down (a cluster test killed
            // it): librdkafka reports it and goes on with the others.
            Err(KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure)) => {
                continue
            }
            other => other.unwrap_or_else(|error| panic!("consume {topic}: {error}")),
        };
        let partition = usize::try_from(message.partition()).expect("partition >= 0");
        if consumed[partition].len() < counts[partition] {
            consumed[partition].push(Consumed {
                offset: message.offset(),
                record: to_record(&message),
            });
            received += 1;
        }
    }
    consumed
}

fn to_record(message: &impl Message) -> Record {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    Record {
        key: message.key().map(<[u8]>::to_vec).unwrap_or_default(),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
        timestamp_ms: message.timestamp().to_millis().unwrap_or(-1),
    }
}

/// Asserts that `consumed` is exactly `expected` at offsets 0, 1, 2, ...
pub fn assert_partition(topic: &str, partition: usize, consumed: &[Consumed], expected: &[Record]) {
    assert_eq!(
        consumed.len(),
        expected.len(),
        "{topic}/{partition}: record count"
    );
    for (index, (got, want)) in consumed.iter().zip(expected).enumerate() {
        let offset = i64::try_from(index).expect("index fits i64");
        assert_eq!(
            got.offset, offset,
            "{topic}/{partition}: offsets contiguous from 0"
        );
        assert_eq!(
            &got.record, want,
            "{topic}/{partition} offset {offset}: record content"
        );
    }
}

/// Consumes everything `expected` holds and checks it byte for byte.
pub fn assert_topic(bootstrap: &str, topic: &str, expected: &[Vec<Record>]) {
    let counts: Vec<usize> = expected.iter().map(Vec::len).collect();
    let consumed = consume(bootstrap, topic, &counts);
    for (partition, (got, want)) in consumed.iter().zip(expected).enumerate() {
        assert_partition(topic, partition, got, want);
    }
}

/// Asserts that every partition's delivered offsets are 0, 1, 2, ... in the
/// order the records were sent.
pub fn assert_offsets_in_send_order(topic: &str, offsets: &[Vec<i64>]) {
    for (partition, list) in offsets.iter().enumerate() {
        let want: Vec<i64> = (0..list.len())
            .map(|index| i64::try_from(index).expect("index fits i64"))
            .collect();
        let first_wrong = list.iter().zip(&want).position(|(got, want)| got != want);
        assert!(
            list == &want,
            "{topic}/{partition}: delivered offsets are not 0..{}; record {first_wrong:?} \
             and on: {:?}",
            list.len(),
            first_wrong.map(|at| &list[at..list.len().min(at + 20)])
        );
    }
}
