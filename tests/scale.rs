//! 100,000 partitions on one broker (10,000 topics x 10 by default): the
//! release or debug binary, 2 shards, driven over the raw wire. It creates
//! every topic, produces one record to every partition, measures the
//! broker's resident memory and descriptors, times a Metadata request for
//! all topics, restarts the broker on the same data dir and reads a sample
//! of partitions back.
//!
//! Ignored: it takes minutes and a few GB of disk. Run it with
//! `RAFKA_SCALE_TOPICS=10000 cargo test --release --test scale -- --ignored --nocapture`
//! (`RAFKA_SCALE_PARTITIONS` sets partitions per topic, default 10). Each
//! figure is one `scale: ...` line on stdout, next to its ceiling where the
//! run has one; only counts, error codes, offsets and values are asserted,
//! never a time.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, MetadataRequest, MetadataResponse,
};
use rafka_testkit::process::open_files_limit;
use rafka_testkit::proto::{creatable, produce_answers, produce_request, topic_name};
use rafka_testkit::records::{stored, value_batch};
use rafka_testkit::wire::decode_response;
use rafka_testkit::{BrokerProcess, WireClient};
use support::rafka;

const TOPICS_DEFAULT: usize = 10_000;
const PARTITIONS_DEFAULT: i32 = 10;
/// Topics per CreateTopics request.
const TOPICS_PER_CREATE: usize = 100;
/// Topics per Produce request (all their partitions, one batch each).
const TOPICS_PER_PRODUCE: usize = 100;
/// Every this many partitions (in topic, partition order) one is fetched
/// after the restart.
const SAMPLE_EVERY: usize = 97;
/// Partitions per Fetch request of the sample.
const PARTITIONS_PER_FETCH: usize = 200;
/// Metadata requests for all topics; the figure is their median.
const METADATA_ROUNDS: usize = 5;
/// Generous waits: a broker of 100,000 partitions on a busy 2-core machine.
const STARTUP_DEADLINE: Duration = Duration::from_secs(600);
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(600);
const READY_DEADLINE: Duration = Duration::from_secs(600);
const CREATE_TIMEOUT_MS: i32 = 600_000;

const CREATE_TOPICS_VERSION: i16 = 7;
const PRODUCE_VERSION: i16 = 9;
const METADATA_VERSION: i16 = 12;
const FETCH_VERSION: i16 = 12;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

fn topic(index: usize) -> String {
    format!("scale-{index:05}")
}

/// The one record partition `partition` of `topic` gets.
fn value(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

/// (VmRSS, VmHWM) of process `pid` in KiB.
fn resident_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn memory_total_kib() -> u64 {
    let meminfo = fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .expect("MemTotal in /proc/meminfo")
}

fn open_descriptors(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list the broker's descriptors")
        .count()
}

/// The sum over shards of the `/metrics` series `name{shard=...}`.
fn metric_sum(addr: SocketAddr, name: &str) -> f64 {
    let mut stream = TcpStream::connect(addr).expect("connect to /metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: scale\r\n\r\n")
        .expect("send request");
    let mut response = String::new();
    // The server closes after one answer.
    stream.read_to_string(&mut response).expect("read /metrics");
    let prefix = format!("{name}{{");
    response
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .map(|line| {
            let (_, value) = line.rsplit_once(' ').expect("sample line");
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("value in {line}"))
        })
        .sum()
}

/// A snapshot of the broker process: memory and descriptors, with the
/// open-file budget's own view.
fn report_process(broker: &BrokerProcess, when: &str, partitions: usize, idle_kib: u64) {
    let pid = broker.pid().expect("running");
    let (rss_kib, hwm_kib) = resident_kib(pid);
    let per_partition = (rss_kib.saturating_sub(idle_kib) * 1024) as f64 / partitions as f64;
    println!(
        "scale: rss {when}: {:.1} MiB (peak {:.1} MiB), {per_partition:.0} B per partition over \
         the idle broker's {:.1} MiB; ceiling: MemTotal {:.1} MiB",
        rss_kib as f64 / 1024.0,
        hwm_kib as f64 / 1024.0,
        idle_kib as f64 / 1024.0,
        memory_total_kib() as f64 / 1024.0,
    );
    let (soft, _) = open_files_limit(&pid.to_string());
    println!(
        "scale: fds {when}: {} open for {partitions} partitions (log files {} open, budget {}); \
         ceiling: RLIMIT_NOFILE {soft}",
        open_descriptors(pid),
        metric_sum(broker.metrics_addr, "rafka_log_open_files"),
        metric_sum(broker.metrics_addr, "rafka_log_open_files_budget"),
    );
}

/// Threads of the filesystem ceilings: one per shard.
const CEILING_THREADS: usize = 2;

/// What the filesystem alone allows, on the broker's filesystem: for each
/// of `partitions` a directory and an empty segment file made durable
/// (mkdir, create, fsync the file and the directory), split over one
/// thread per shard; then one listing of every partition directory with
/// a read of its file (a start's least work). Returns both times.
fn filesystem_ceilings(partitions: usize) -> (Duration, Duration) {
    let root = tempfile::Builder::new()
        .prefix("rafka-scale-ceiling-")
        .tempdir()
        .expect("temp dir");
    let dir_of = |i: usize| root.path().join(format!("p-{i}"));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..CEILING_THREADS {
            let dir_of = &dir_of;
            scope.spawn(move || {
                for i in (thread..partitions).step_by(CEILING_THREADS) {
                    let dir = dir_of(i);
                    fs::create_dir(&dir).expect("mkdir");
                    let file = fs::File::create(dir.join("00000000000000000000.log"))
                        .expect("create segment");
                    file.sync_all().expect("fsync segment");
                    fs::File::open(&dir)
                        .and_then(|d| d.sync_all())
                        .expect("fsync dir");
                }
            });
        }
    });
    let create = started.elapsed();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..CEILING_THREADS {
            let dir_of = &dir_of;
            scope.spawn(move || {
                for i in (thread..partitions).step_by(CEILING_THREADS) {
                    for entry in fs::read_dir(dir_of(i)).expect("list") {
                        fs::read(entry.expect("entry").path()).expect("read segment");
                    }
                }
            });
        }
    });
    (create, started.elapsed())
}

fn create_all(client: &mut WireClient, topics: &[String], partitions: i32) {
    for chunk in topics.chunks(TOPICS_PER_CREATE) {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(CREATE_TIMEOUT_MS)
            .with_topics(
                chunk
                    .iter()
                    .map(|t| creatable(t, partitions, &[]))
                    .collect(),
            );
        let response = client
            .call(CREATE_TOPICS_VERSION, &request)
            .expect("CreateTopics");
        assert_eq!(response.topics.len(), chunk.len(), "one result per topic");
        for (result, name) in response.topics.iter().zip(chunk) {
            assert_eq!(result.name.as_str(), name.as_str());
            assert_eq!(
                result.error_code, 0,
                "create {name}: {:?}",
                result.error_message
            );
            assert_eq!(result.num_partitions, partitions, "{name}");
        }
    }
}

fn produce_all(client: &mut WireClient, topics: &[String], partitions: i32) {
    for chunk in topics.chunks(TOPICS_PER_PRODUCE) {
        let data = chunk
            .iter()
            .map(|t| {
                let records = (0..partitions)
                    .map(|p| (p, Some(value_batch(&value(t, p)))))
                    .collect();
                (t.as_str(), records)
            })
            .collect();
        let response = client
            .call(PRODUCE_VERSION, &produce_request(-1, data))
            .expect("Produce");
        let answers = produce_answers(&response);
        assert_eq!(
            answers.len(),
            chunk.len() * partitions as usize,
            "one answer per partition"
        );
        let mut seen: BTreeMap<(String, i32), ()> = BTreeMap::new();
        for (name, answer) in answers {
            assert_eq!(answer.error_code, 0, "{name}/{}", answer.index);
            assert_eq!(answer.base_offset, 0, "{name}/{}", answer.index);
            assert!(chunk.contains(&name), "answer for {name}, not asked");
            assert!((0..partitions).contains(&answer.index));
            seen.insert((name, answer.index), ());
        }
        assert_eq!(seen.len(), chunk.len() * partitions as usize, "distinct");
    }
}

/// Metadata for all topics: the response, its size in bytes and how long
/// it took from send to decoded.
fn metadata_all(client: &mut WireClient) -> (MetadataResponse, usize, Duration) {
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let started = Instant::now();
    let correlation_id = client
        .send(METADATA_VERSION, &request)
        .expect("send Metadata");
    let body = client.read_frame().expect("Metadata response");
    let bytes = body.len();
    let response = decode_response::<MetadataRequest>(METADATA_VERSION, correlation_id, body)
        .expect("decode Metadata");
    (response, bytes, started.elapsed())
}

/// Every topic listed, error 0, with all its partitions led by this node.
fn assert_lists_all(response: &MetadataResponse, topics: &[String], partitions: i32) {
    let node = response.brokers.first().expect("one broker").node_id;
    let mut listed: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in &response.topics {
        let name = entry.name.as_ref().expect("topic name");
        assert_eq!(entry.error_code, 0, "{}", name.as_str());
        assert_eq!(
            entry.partitions.len(),
            partitions as usize,
            "{}",
            name.as_str()
        );
        for partition in &entry.partitions {
            assert_eq!(partition.error_code, 0, "{}", name.as_str());
            assert_eq!(partition.leader_id, node);
        }
        listed.insert(name.as_str(), entry.partitions.len());
    }
    for name in topics {
        assert!(listed.contains_key(name.as_str()), "{name} not listed");
    }
    assert_eq!(listed.len(), topics.len(), "exactly the created topics");
}

/// Fetches every sampled partition from offset 0: each holds the one
/// batch produced to it, byte for byte, and nothing after it.
fn assert_sample(client: &mut WireClient, sample: &[(String, i32)]) {
    for chunk in sample.chunks(PARTITIONS_PER_FETCH) {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (name, partition) in chunk {
            by_topic.entry(name).or_default().push(*partition);
        }
        let topics = by_topic
            .iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .iter()
                    .map(|&p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(64 << 10)
                    })
                    .collect();
                FetchTopic::default()
                    .with_topic(topic_name(name))
                    .with_partitions(partitions)
            })
            .collect();
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(64 << 20)
            .with_isolation_level(0)
            .with_topics(topics);
        let response = client.call(FETCH_VERSION, &request).expect("Fetch");
        assert_eq!(response.error_code, 0);
        let mut answered = 0;
        for entry in &response.responses {
            let name = entry.topic.as_str();
            for partition in &entry.partitions {
                let index = partition.partition_index;
                assert!(
                    by_topic.get(name).is_some_and(|p| p.contains(&index)),
                    "answer for {name}/{index}, not asked"
                );
                assert_eq!(partition.error_code, 0, "{name}/{index}");
                assert_eq!(partition.high_watermark, 1, "{name}/{index}");
                let want = stored(&value_batch(&value(name, index)), 0);
                assert_eq!(
                    partition.records.as_ref(),
                    Some(&want),
                    "{name}/{index}: the batch produced, at offset 0"
                );
                answered += 1;
            }
        }
        assert_eq!(answered, chunk.len(), "one answer per sampled partition");
    }
}

#[test]
#[ignore = "minutes and GBs: RAFKA_SCALE_TOPICS=10000 cargo test --release --test scale -- --ignored --nocapture"]
fn hundred_thousand_partitions() {
    let topic_count: usize = env_or("RAFKA_SCALE_TOPICS", TOPICS_DEFAULT);
    let partitions: i32 = env_or("RAFKA_SCALE_PARTITIONS", PARTITIONS_DEFAULT);
    assert!(topic_count > 0 && partitions > 0);
    let total = topic_count * partitions as usize;
    let topics: Vec<String> = (0..topic_count).map(topic).collect();

    let (create_ceiling, start_ceiling) = filesystem_ceilings(total);
    println!(
        "scale: ceiling (filesystem, {CEILING_THREADS} threads): {total} partition dirs with a \
         durable empty segment {:.1} s ({:.0}/s); listing them and reading each segment {:.1} s",
        create_ceiling.as_secs_f64(),
        total as f64 / create_ceiling.as_secs_f64(),
        start_ceiling.as_secs_f64(),
    );

    let options = rafka(2)
        .log_filter("warn")
        .deadlines(STARTUP_DEADLINE, SHUTDOWN_DEADLINE);
    let mut broker = BrokerProcess::start(options);
    let pid = broker.pid().expect("running");
    let (idle_kib, _) = resident_kib(pid);
    let mut client = WireClient::connect(broker.addr, "scale").expect("connect");

    let started = Instant::now();
    create_all(&mut client, &topics, partitions);
    let create = started.elapsed();
    println!(
        "scale: create {topic_count} topics x {partitions} = {total} partitions \
         ({TOPICS_PER_CREATE} topics per CreateTopics): {:.1} s, {:.0} partitions/s",
        create.as_secs_f64(),
        total as f64 / create.as_secs_f64()
    );

    let started = Instant::now();
    produce_all(&mut client, &topics, partitions);
    let produce = started.elapsed();
    println!(
        "scale: produce 1 record to each of {total} partitions (acks=all, {} partitions per \
         request): {:.1} s, {:.0} partitions/s",
        TOPICS_PER_PRODUCE * partitions as usize,
        produce.as_secs_f64(),
        total as f64 / produce.as_secs_f64()
    );
    report_process(&broker, "after produce", total, idle_kib);

    let mut times = Vec::with_capacity(METADATA_ROUNDS);
    let mut size_bytes = 0;
    for _ in 0..METADATA_ROUNDS {
        let (response, bytes, took) = metadata_all(&mut client);
        assert_lists_all(&response, &topics, partitions);
        size_bytes = bytes;
        times.push(took);
    }
    times.sort();
    println!(
        "scale: metadata all {topic_count} topics (v{METADATA_VERSION}): median {:.1} ms, \
         min {:.1} ms, max {:.1} ms over {METADATA_ROUNDS}; response {size_bytes} bytes \
         ({:.1} MB/s)",
        times[METADATA_ROUNDS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[METADATA_ROUNDS - 1].as_secs_f64() * 1e3,
        size_bytes as f64 / times[METADATA_ROUNDS / 2].as_secs_f64() / 1e6,
    );
    drop(client);

    let started = Instant::now();
    broker.stop();
    println!(
        "scale: clean stop of {total} partitions: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    broker.restart();
    let listening = started.elapsed();
    assert_eq!(
        broker.startup.recovered_partitions, total as u64,
        "every partition reopened"
    );
    let mut client = WireClient::connect(broker.addr, "scale-after").expect("connect");
    let deadline = Instant::now() + READY_DEADLINE;
    loop {
        let (response, _, _) = metadata_all(&mut client);
        if response.topics.len() == topic_count {
            assert_lists_all(&response, &topics, partitions);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {topic_count} topics listed {READY_DEADLINE:?} after the restart",
            response.topics.len()
        );
    }
    let ready = started.elapsed();
    println!(
        "scale: restart (clean) of {total} partitions: listening {:.1} s after spawn, \
         Metadata lists every topic {:.1} s after spawn",
        listening.as_secs_f64(),
        ready.as_secs_f64()
    );

    let sample: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| (0..partitions).map(move |p| (t.clone(), p)))
        .step_by(SAMPLE_EVERY)
        .collect();
    let started = Instant::now();
    assert_sample(&mut client, &sample);
    println!(
        "scale: fetched {} sampled partitions (every {SAMPLE_EVERY}th) after the restart: \
         {:.1} s, all at offset 0 with their value",
        sample.len(),
        started.elapsed().as_secs_f64()
    );
    report_process(&broker, "after restart + sample fetch", total, idle_kib);
    drop(client);
    broker.stop();
}
