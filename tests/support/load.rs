//! Load for fault tests, noted in a [`Checker`]: [`Load`] produces on its
//! own thread (librdkafka, acks=all, idempotent) until stopped, each
//! acknowledgement noted from its delivery report; [`JavaLoad`] does the
//! same with the Java client in a process of its own; [`read_all`] reads a
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

/// How long a stopped [`JavaLoad`] may take to flush and exit: its
/// delivery timeout, and then some.
const JAVA_STOP_TIMEOUT: Duration = Duration::from_secs(90);

/// The Java client's idempotent acks=all producer (kafka-clients 3.9.1,
/// `scripts/compat/cluster/JavaFaults.java produce`) beside a [`Load`]:
/// its values are the checker's ids of producer `producer`, and each
/// delivery it reports (acknowledged with its offset, or failed) is noted
/// in the checker as it comes. Needs the Java client installed
/// (`scripts/compat/setup-java.sh`, which `scripts/test.sh` runs first).
pub struct JavaLoad {
    child: std::process::Child,
    stop: std::path::PathBuf,
    reader: Option<JoinHandle<(u64, u64)>>,
    _dir: tempfile::TempDir,
}

impl JavaLoad {
    /// Compiles the program and starts it on `topic` (partitions
    /// `0..partitions`).
    pub fn start(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        producer: u32,
        checker: Arc<Checker>,
    ) -> JavaLoad {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};

        let compat = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/compat");
        let classpath = std::fs::read_to_string(compat.join(".cache/java/classpath"))
            .unwrap_or_else(|_| {
                panic!("the Java client is not installed: run scripts/compat/setup-java.sh")
            });
        let classpath = classpath.trim();
        let dir = tempfile::tempdir().expect("tempdir");
        let classes = dir.path().join("classes");
        let compiled = Command::new("javac")
            .args(["--release", "17", "-d"])
            .arg(&classes)
            .args(["-cp", classpath])
            .arg(compat.join("cluster/JavaFaults.java"))
            .status()
            .expect("run javac");
        assert!(compiled.success(), "javac JavaFaults.java: {compiled}");
        let stop = dir.path().join("stop");
        let mut child = Command::new("java")
            .arg("-cp")
            .arg(format!("{}:{classpath}", classes.display()))
            .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
            .args(["JavaFaults", "produce", bootstrap, topic])
            .arg(partitions.to_string())
            .arg("-")
            .arg(&stop)
            .arg(producer.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run java");
        let stdout = child.stdout.take().expect("its stdout");
        let topic = topic.to_string();
        let reader = std::thread::spawn(move || {
            let (mut acked, mut failed) = (0, 0);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let fields: Vec<&str> = line.split(' ').collect();
                match fields.as_slice() {
                    ["ack", partition, offset, id] => {
                        checker.attempted(id);
                        let (Ok(partition), Ok(offset)) = (partition.parse(), offset.parse())
                        else {
                            panic!("a Java note: {line}");
                        };
                        checker.acked(&topic, partition, offset, id);
                        acked += 1;
                    }
                    ["fail", id, error @ ..] => {
                        checker.attempted(id);
                        checker.failed(id, &format!("java: {}", error.join(" ")));
                        failed += 1;
                    }
                    _ => {}
                }
            }
            (acked, failed)
        });
        JavaLoad {
            child,
            stop,
            reader: Some(reader),
            _dir: dir,
        }
    }

    /// Stops sending and waits until every delivery was reported and the
    /// program exited; returns (acknowledged, failed).
    pub fn stop(mut self) -> (u64, u64) {
        std::fs::write(&self.stop, b"").expect("the stop file");
        let deadline = Instant::now() + JAVA_STOP_TIMEOUT;
        loop {
            match self.child.try_wait().expect("the Java producer") {
                Some(status) => {
                    assert!(status.success(), "the Java producer: {status}");
                    break;
                }
                None => {
                    assert!(Instant::now() < deadline, "the Java producer did not stop");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        let reader = self.reader.take().expect("running");
        reader.join().expect("the notes reader")
    }
}

impl Drop for JavaLoad {
    fn drop(&mut self) {
        // Stopped by its pid, whatever happened to the test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
