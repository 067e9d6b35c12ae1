//! The quota storm, small enough for CI (the figures come from `rafka-bench
//! storm`): on a 2-shard in-process broker with a real clock and a quota on
//! the `<default>` client id (each client id its own sensor), well-behaved
//! producers keep producing while floods ignore every throttle, and then
//! while one consumer re-reads the topic as fast as it can.
//!
//! What must hold, by the broker alone: every good request is answered,
//! without error and without throttle; each flood and the reader are
//! throttled (`throttle_time_ms` > 0) and held to what their quota allows
//! over the run: the quota times the run, plus the burst a young sensor
//! lets through (`quota.window.num` 3 here, so it settles within the
//! phase) and the one request or capped fetch that takes it over. Without
//! the quota a flood moves hundreds of MB in the same time.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_testkit::broker::blocking;
use rafka_testkit::proto::{long_poll_fetch, produce_answers, produce_request};
use rafka_testkit::wire::{request_frame, request_header};
use rafka_testkit::{TestBroker, WireClient};

const TOPIC: &str = "storm";
const PARTITIONS: i32 = 4;
/// Bytes/s for each client id, produce and fetch.
const QUOTA: f64 = 256.0 * 1024.0;
/// `quota.window.num`: 3 samples of 1 s (Kafka's default is 11), so the
/// sensors settle within the phase.
const QUOTA_WINDOW_NUM: i32 = 3;
/// What a young sensor lets through before it throttles, in seconds of
/// quota: its (`quota.window.num` - 1) windows plus the one in progress.
const BURST_S: f64 = 3.0;
const GOOD_PRODUCERS: usize = 10;
/// Each good producer: one 200 B record per interval, ~4 kB/s.
const GOOD_INTERVAL: Duration = Duration::from_millis(50);
const GOOD_RECORD_BYTES: usize = 200;
const FLOODS: usize = 2;
/// Each flood request: 32 records of 1000 B.
const FLOOD_RECORDS: usize = 32;
const PHASE: Duration = Duration::from_secs(4);
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

/// A flood request's size as its quota counts it: header and body.
fn flood_request_bytes() -> u64 {
    let request = produce_request(
        -1,
        vec![(TOPIC, vec![(0, Some(batch_of(FLOOD_RECORDS, 1000)))])],
    );
    let header = request_header(
        ApiKey::Produce,
        PRODUCE_VERSION,
        1,
        Some(b"flood-0".as_slice()),
    )
    .expect("header");
    let frame = request_frame(&header, &request, PRODUCE_VERSION).expect("frame");
    frame.len() as u64 - 4
}

fn batch_of(records: usize, value_bytes: usize) -> bytes::Bytes {
    let value = vec![b'x'; value_bytes];
    let mut builder = BatchBuilder::new(Compression::None);
    for _ in 0..records {
        builder.push_record(0, None, Some(value.as_slice()), &[]);
    }
    builder.build().expect("batch")
}

/// What the good producers saw in a phase.
#[derive(Debug, Default)]
struct Good {
    answered: u64,
    errors: u64,
    throttled: u64,
    latency_us: Vec<u64>,
}

/// One good producer: a record every `GOOD_INTERVAL` until `until`, each
/// awaited (acks=all).
fn good(addr: SocketAddr, index: usize, until: Instant) -> Good {
    let mut client = WireClient::connect(addr, &format!("good-{index}")).expect("connect");
    let batch = batch_of(1, GOOD_RECORD_BYTES);
    let partition = index as i32 % PARTITIONS;
    let mut seen = Good::default();
    let mut due = Instant::now() + GOOD_INTERVAL.mul_f64(index as f64 / GOOD_PRODUCERS as f64);
    while due < until {
        // Open loop: pace to the record's due time.
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let request = produce_request(-1, vec![(TOPIC, vec![(partition, Some(batch.clone()))])]);
        let response = client
            .call(PRODUCE_VERSION, &request)
            .expect("good produce");
        seen.latency_us.push(due.elapsed().as_micros() as u64);
        seen.answered += 1;
        if response.throttle_time_ms > 0 {
            seen.throttled += 1;
        }
        if produce_answers(&response)
            .iter()
            .any(|(_, p)| p.error_code != 0)
        {
            seen.errors += 1;
        }
        due += GOOD_INTERVAL;
    }
    seen
}

/// What one flood or the reader saw.
#[derive(Debug, Default)]
struct Flood {
    answers: u64,
    throttled: u64,
    errors: u64,
    /// Request bytes acknowledged (produce) or record bytes read (fetch).
    bytes: u64,
    seconds: f64,
}

impl Flood {
    /// What Kafka's sensor lets through over the run, plus `over` (the one
    /// request or fetch that takes it over).
    fn allowed(&self, over: u64) -> f64 {
        QUOTA * (self.seconds + BURST_S) + over as f64
    }
}

/// One flood: produce requests back to back until `until`, every throttle
/// ignored: only the broker's mute holds it.
fn flood(addr: SocketAddr, index: usize, until: Instant, request_bytes: u64) -> Flood {
    let mut client = WireClient::connect(addr, &format!("flood-{index}")).expect("connect");
    let batch = batch_of(FLOOD_RECORDS, 1000);
    let start = Instant::now();
    let mut seen = Flood::default();
    let mut partition = index as i32;
    while Instant::now() < until {
        let request = produce_request(
            -1,
            vec![(TOPIC, vec![(partition % PARTITIONS, Some(batch.clone()))])],
        );
        partition += 1;
        let response = client
            .call(PRODUCE_VERSION, &request)
            .expect("flood produce");
        seen.answers += 1;
        if response.throttle_time_ms > 0 {
            seen.throttled += 1;
        }
        if produce_answers(&response)
            .iter()
            .all(|(_, p)| p.error_code == 0)
        {
            seen.bytes += request_bytes;
        } else {
            seen.errors += 1;
        }
    }
    seen.seconds = start.elapsed().as_secs_f64();
    seen
}

/// The re-reader: fetches every partition from offset 0, again and again.
fn reader(addr: SocketAddr, until: Instant) -> Flood {
    let mut client = WireClient::connect(addr, "reader").expect("connect");
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let fetch: FetchRequest = long_poll_fetch(TOPIC, &partitions, 0, 0);
    let start = Instant::now();
    let mut seen = Flood::default();
    while Instant::now() < until {
        let response: FetchResponse = client.call(FETCH_VERSION, &fetch).expect("fetch");
        seen.answers += 1;
        if response.throttle_time_ms > 0 {
            seen.throttled += 1;
        }
        for partition in response.responses.iter().flat_map(|t| &t.partitions) {
            if partition.error_code != 0 {
                seen.errors += 1;
            }
            seen.bytes += partition.records.as_ref().map_or(0, |r| r.len() as u64);
        }
    }
    seen.seconds = start.elapsed().as_secs_f64();
    seen
}

/// Runs the good producers for one phase next to `storm` (the floods or
/// the reader) and returns both sides.
fn phase<S>(addr: SocketAddr, storm: S) -> (Good, Vec<Flood>)
where
    S: FnOnce(Instant) -> Vec<thread::JoinHandle<Flood>>,
{
    let until = Instant::now() + PHASE;
    let stormers = storm(until);
    let goods: Vec<_> = (0..GOOD_PRODUCERS)
        .map(|index| thread::spawn(move || good(addr, index, until)))
        .collect();
    let mut all = Good::default();
    for handle in goods {
        let seen = handle.join().expect("good producer");
        all.answered += seen.answered;
        all.errors += seen.errors;
        all.throttled += seen.throttled;
        all.latency_us.extend(seen.latency_us);
    }
    let storms = stormers
        .into_iter()
        .map(|h| h.join().expect("storm"))
        .collect();
    all.latency_us.sort_unstable();
    (all, storms)
}

fn p99(latency_us: &[u64]) -> u64 {
    latency_us
        .get(latency_us.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0)
}

fn assert_good(phase: &str, good: &Good) {
    // Each producer sends PHASE / GOOD_INTERVAL records, less the part of
    // one interval its start is spread by.
    let per_producer = (PHASE.as_millis() / GOOD_INTERVAL.as_millis()) as u64;
    assert!(
        good.answered >= GOOD_PRODUCERS as u64 * (per_producer - 1),
        "{phase}: {} good answers, expected ~{}",
        good.answered,
        GOOD_PRODUCERS as u64 * per_producer
    );
    assert_eq!((good.errors, good.throttled), (0, 0), "{phase}: {good:?}");
}

#[test]
fn floods_and_a_rereader_are_held_to_their_quotas_while_others_are_served() {
    TestBroker::builder()
        .shards(2)
        .network(true)
        .config(|c| c.quota_window_num = QUOTA_WINDOW_NUM)
        .timeout(Duration::from_secs(120))
        .run(|broker| async move {
            broker.create_topic(TOPIC, PARTITIONS, &[]).await;
            for key in ["producer_byte_rate", "consumer_byte_rate"] {
                broker.set_client_quota(None, key, Some(QUOTA)).await;
            }
            let addr = broker.addr();
            let request_bytes = flood_request_bytes();
            let (good_produce, floods) = blocking(move || {
                phase(addr, |until| {
                    (0..FLOODS)
                        .map(|index| {
                            thread::spawn(move || flood(addr, index, until, request_bytes))
                        })
                        .collect()
                })
            })
            .await;
            assert_good("produce storm", &good_produce);
            for (index, seen) in floods.iter().enumerate() {
                assert_eq!(seen.errors, 0, "flood {index}: {seen:?}");
                assert!(
                    seen.throttled > 0,
                    "flood {index} never throttled: {seen:?}"
                );
                assert!(
                    (seen.bytes as f64) <= seen.allowed(request_bytes),
                    "flood {index} got {} B through in {:.1} s, over its quota's {:.0}",
                    seen.bytes,
                    seen.seconds,
                    seen.allowed(request_bytes)
                );
            }

            let (good_fetch, readers) = blocking(move || {
                phase(addr, |until| {
                    vec![thread::spawn(move || reader(addr, until))]
                })
            })
            .await;
            assert_good("fetch storm", &good_fetch);
            let read = &readers[0];
            assert_eq!(read.errors, 0, "{read:?}");
            assert!(
                read.throttled > 0,
                "the reader was never throttled: {read:?}"
            );
            // A fetch is capped at one quota window's bytes.
            let fetch_cap = (QUOTA * (BURST_S - 1.0)) as u64;
            assert!(
                (read.bytes as f64) <= read.allowed(fetch_cap),
                "the reader got {} B in {:.1} s, over its quota's {:.0}",
                read.bytes,
                read.seconds,
                read.allowed(fetch_cap)
            );
            eprintln!(
                "good p99: {} us in the produce storm, {} us in the fetch storm; \
                 floods {:?} B, reader {} B",
                p99(&good_produce.latency_us),
                p99(&good_fetch.latency_us),
                floods.iter().map(|f| f.bytes).collect::<Vec<_>>(),
                read.bytes
            );
        });
}
