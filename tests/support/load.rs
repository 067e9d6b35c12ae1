//! Load for fault tests, noted in a [`Checker`]: [`Load`] produces on its
//! own thread (librdkafka, acks=all, idempotent) until stopped, each
//! acknowledgement noted from its delivery report; [`read_all`] reads a
//! whole topic from the beginning up to its high watermarks with a fresh
//! consumer (assign, no group).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::checker::{make_id, payload_id, Checker};
use super::client::config;

/// librdkafka's bound on one record's delivery, retries included: long
/// enough to outlast any failover a test causes.
const MESSAGE_TIMEOUT_MS: u64 = 60_000;
/// Records handed to librdkafka and not yet acknowledged or failed, at most.
const IN_FLIGHT_MAX: i32 = 2_000;
/// Pause between two records: a steady few hundred records a second.
const SEND_INTERVAL: Duration = Duration::from_millis(2);
/// Bound on one [`read_all`] pass.
const READ_DEADLINE: Duration = Duration::from_secs(120);

/// Notes each delivery report in the checker: an acknowledgement with the
/// offset it reports, or a failure (never counted as acknowledged).
struct Recorder {
    topic: String,
    checker: Arc<Checker>,
}

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = Box<String>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<String>) {
        match result {
            Ok(message) if message.offset() >= 0 => {
                self.checker
                    .acked(&self.topic, message.partition(), message.offset(), &id);
            }
            Ok(message) => self.checker.failed(
                &id,
                &format!("acknowledged without an offset ({})", message.offset()),
            ),
            Err((error, _)) => self.checker.failed(&id, &error.to_string()),
        }
    }
}

/// A producer thread writing `p<N>-s<seq>` records round-robin over the
/// topic's partitions.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Load {
    /// Starts producer `producer` on `topic` (partitions `0..partitions`).
    pub fn start(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        producer: u32,
        checker: Arc<Checker>,
    ) -> Load {
        let mut config = config(bootstrap);
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", MESSAGE_TIMEOUT_MS.to_string())
            .set("topic.metadata.refresh.interval.ms", "500");
        let context = Recorder {
            topic: topic.to_string(),
            checker: Arc::clone(&checker),
        };
        let client: ThreadedProducer<Recorder> =
            config.create_with_context(context).expect("producer");
        let stop = Arc::new(AtomicBool::new(false));
        let topic = topic.to_string();
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            produce_until(&client, &topic, partitions, producer, &checker, &stopping)
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sending, waits for every delivery report (or the message
    /// timeout); returns how many records were sent.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().expect("running");
        thread.join().expect("producer thread")
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn produce_until(
    client: &ThreadedProducer<Recorder>,
    topic: &str,
    partitions: i32,
    producer: u32,
    checker: &Checker,
    stop: &AtomicBool,
) -> u64 {
    let mut sequence = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if client.in_flight_count() >= IN_FLIGHT_MAX {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let id = make_id(producer, sequence);
        let partition =
            i32::try_from(sequence % u64::try_from(partitions).expect("count")).expect("partition");
        let value = format!("{id} {}", "x".repeat(64));
        checker.attempted(&id);
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(id.clone()))
            .partition(partition)
            .key(id.as_bytes())
            .payload(value.as_bytes());
        loop {
            match client.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((error, _)) => {
                    checker.failed(&id, &format!("not enqueued: {error}"));
                    break;
                }
            }
        }
        sequence += 1;
        std::thread::sleep(SEND_INTERVAL);
    }
    // Every report, or each record's timeout: what is left after is purged
    // on drop, reported failed.
    let _ = client.flush(Duration::from_millis(MESSAGE_TIMEOUT_MS + 10_000));
    sequence
}

/// Reads `topic`'s partitions `0..partitions` from the beginning up to
/// their high watermarks (asked once at the start) as one read pass of the
/// checker. Returns each partition's high watermark.
pub fn read_all(bootstrap: &str, topic: &str, partitions: i32, checker: &Checker) -> Vec<i64> {
    let pass = checker.begin_pass();
    let consumer = reader(bootstrap);
    let deadline = Instant::now() + READ_DEADLINE;
    let high: Vec<i64> = (0..partitions)
        .map(|p| high_watermark(&consumer, topic, p, deadline))
        .collect();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let mut next = vec![0i64; high.len()];
    while next.iter().zip(&high).any(|(n, h)| n < h) {
        assert!(
            Instant::now() < deadline,
            "{topic}: read up to {next:?} of high watermarks {high:?} before the deadline"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        // A leader moving or a broker down: librdkafka retries.
        let Ok(message) = message else {
            continue;
        };
        let partition = message.partition();
        let id = payload_id(message.payload().unwrap_or_default());
        checker.read(pass, topic, partition, message.offset(), &id);
        let slot = &mut next[usize::try_from(partition).expect("partition")];
        *slot = (*slot).max(message.offset() + 1);
    }
    high
}

fn reader(bootstrap: &str) -> BaseConsumer {
    let mut config: ClientConfig = config(bootstrap);
    config
        .set("group.id", "rafka-fault-reader-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("enable.partition.eof", "false")
        .set("topic.metadata.refresh.interval.ms", "500");
    config.create().expect("reader")
}

/// ListOffsets latest of one partition, retried (leaders move) until the
/// deadline.
fn high_watermark(consumer: &BaseConsumer, topic: &str, partition: i32, deadline: Instant) -> i64 {
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok((_, high)) => return high,
            Err(error) => assert!(
                Instant::now() < deadline,
                "{topic}-{partition}: no high watermark: {error}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
