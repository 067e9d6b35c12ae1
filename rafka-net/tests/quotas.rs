//! Client quotas on the request path, on an in-process broker whose
//! shards share a clock the test moves ([`SharedClock`]), so every
//! throttle time is exact: quotas are set through the controller handle
//! (as AlterClientQuotas does), Produce and Fetch go over a real socket
//! (the kit's raw `WireClient`) or through the broker's dispatch on a
//! chosen shard.
//!
//! - A producer over its `producer_byte_rate` gets Kafka's throttle time
//!   (`(rate - quota) / quota * window`), another client id gets 0, and
//!   removing the quota lifts it without a restart.
//! - KIP-219: the throttled connection takes no further request until
//!   the (test's) clock has passed the throttle; a Produce v5, older than
//!   KIP-219, is appended at once but answered only then.
//! - Connections on different shards of a 2- and 4-shard broker share one
//!   sensor: the throttles are those of a single connection.
//! - A consumer over its `consumer_byte_rate` gets no partitions and the
//!   throttle time, its bytes taken back; a fetch is capped at what one
//!   quota window allows.
//! - `request_percentage` throttles by handling time, at most one window.
//! - The sensor's owner shard alone holds its counters (the metrics).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse,
};
use kafka_protocol::protocol::{Decodable, Request as ProtocolRequest};
use rafka_core::quota::{
    ClientQuotas, EntityName, QuotaEntity, QuotaKey, QuotaTable, QuotaValue, QuotaWindow,
};
use rafka_net::Response;
use rafka_proto::header::ResponseHeaderVersion;
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_shard::quota::QuotaStatsEntry;
use rafka_shard::shard::Shard;
use rafka_testkit::broker::{blocking, request, Broker};
use rafka_testkit::proto::{long_poll_fetch, produce_answers, produce_request};
use rafka_testkit::wire::{request_frame, request_header};
use rafka_testkit::{SharedClock, TestBroker, WireClient};

/// The shared clock's start (any fixed time).
const T0_MS: i64 = 1_700_000_000_000;
/// Bytes per second.
const QUOTA: f64 = 1000.0;
/// Kafka's defaults: 11 samples of 1 s, so a young sensor counts 10 s.
const WINDOW_MS: i64 = 10_000;
const TOPIC: &str = "quota";
/// Polls of a condition the broker reaches on its own end after this.
const POLL_DEADLINE: Duration = Duration::from_secs(30);

fn broker(shards: usize, clock: &SharedClock) -> TestBroker {
    TestBroker::builder()
        .shards(shards)
        .network(true)
        .clock(clock.clone())
        .timeout(Duration::from_secs(120))
}

/// Sets (`Some`) or removes (`None`) `key` on client id `client`, through
/// the controller as AlterClientQuotas does; every shard's image has it
/// on return.
async fn set_quota(broker: &Broker, client: &str, key: &str, value: Option<f64>) {
    broker.set_client_quota(Some(client), key, value).await;
}

/// A produce of one record of `value_bytes` bytes to partition 0.
fn produce_of(value_bytes: usize) -> ProduceRequest {
    let value = vec![b'x'; value_bytes];
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push_record(T0_MS, Some(b"k".as_slice()), Some(value.as_slice()), &[]);
    let batch = builder.build().expect("batch");
    produce_request(1, vec![(TOPIC, vec![(0, Some(batch))])])
}

/// The request's size as the quota counts it: header and body, what
/// `WireClient` sends after the size prefix.
fn frame_bytes<R: ProtocolRequest>(client_id: &str, version: i16, body: &R) -> usize {
    let api = ApiKey::try_from(R::KEY).expect("api key");
    let header = request_header(api, version, 1, Some(client_id.as_bytes())).expect("header");
    request_frame(&header, body, version).expect("frame").len() - 4
}

/// Kafka's `QuotaUtils.throttleTime` for `total` recorded over a window
/// of `window_ms`: `(rate - quota) / quota * window`, rounded half up.
fn kafka_throttle_ms(total: f64, quota: f64, window_ms: i64) -> i32 {
    let rate = total / (window_ms as f64 / 1000.0);
    ((rate - quota) / quota * window_ms as f64 + 0.5).floor() as i32
}

fn produce(client: &mut WireClient, version: i16, body: &ProduceRequest) -> ProduceResponse {
    let response = client.call(version, body).expect("produce");
    let answers = produce_answers(&response);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].1.error_code, 0, "{answers:?}");
    response
}

fn connect(addr: SocketAddr, client_id: &str) -> WireClient {
    WireClient::connect(addr, client_id).expect("connect")
}

/// The partition's high watermark, read on its owner.
async fn high_watermark(broker: &Broker) -> i64 {
    broker.fetch_all(TOPIC, 0).await.0
}

/// Polls `high_watermark` until it reaches `at_least`.
async fn wait_for_high_watermark(broker: &Broker, at_least: i64) {
    let deadline = Instant::now() + POLL_DEADLINE;
    while high_watermark(broker).await < at_least {
        assert!(
            Instant::now() < deadline,
            "high watermark stuck below {at_least}"
        );
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

/// The Produce requests the listener's connections have taken, and the
/// bytes they have read.
async fn produce_taken(broker: &Broker) -> (u64, u64) {
    let metrics = broker.listener_state().await.metrics;
    (metrics.requests(ApiKey::Produce as i16), metrics.bytes_in)
}

#[test]
fn a_producer_over_its_quota_gets_kafkas_throttle_and_is_muted() {
    let clock = SharedClock::new(T0_MS);
    let moved = clock.clone();
    broker(1, &clock).run(move |broker| async move {
        broker.create_topic(TOPIC, 1, &[]).await;
        set_quota(&broker, "throttled", "producer_byte_rate", Some(QUOTA)).await;
        let addr = broker.addr();
        // 12 kB at once against 1000 B/s over the young sensor's 10 s.
        let big = produce_of(12_000);
        let big_bytes = frame_bytes("throttled", 9, &big);
        let throttle_ms = kafka_throttle_ms(big_bytes as f64, QUOTA, WINDOW_MS);
        assert!(throttle_ms > 1000, "{throttle_ms}");
        let request = big.clone();
        let (mut throttled, answered) = blocking(move || {
            let mut throttled = connect(addr, "throttled");
            let answered = produce(&mut throttled, 9, &request).throttle_time_ms;
            (throttled, answered)
        })
        .await;
        assert_eq!(answered, throttle_ms);
        // Another client id has no quota: the same request is not throttled.
        let request = big.clone();
        let free = blocking(move || produce(&mut connect(addr, "free"), 9, &request)).await;
        assert_eq!(free.throttle_time_ms, 0);

        // Muted: the next request is read, but not taken until the clock
        // passes the throttle.
        let (taken, read_bytes) = produce_taken(&broker).await;
        let small = produce_of(10);
        let small_bytes = frame_bytes("throttled", 9, &small) as u64;
        let request = small.clone();
        let (mut throttled, correlation_id) = blocking(move || {
            let correlation_id = throttled.send(9, &request).expect("send");
            (throttled, correlation_id)
        })
        .await;
        let deadline = Instant::now() + POLL_DEADLINE;
        while produce_taken(&broker).await.1 < read_bytes + small_bytes + 4 {
            assert!(
                Instant::now() < deadline,
                "the request never reached the broker"
            );
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(produce_taken(&broker).await.0, taken, "taken while muted");
        wait_for_high_watermark(&broker, 2).await;
        assert_eq!(high_watermark(&broker).await, 2, "appended while muted");
        moved.advance_ms(i64::from(throttle_ms));
        let (throttled, second) = blocking(move || {
            let response = throttled.receive::<ProduceRequest>(9, correlation_id);
            (throttled, response.expect("answered after the mute"))
        })
        .await;
        assert_eq!(produce_taken(&broker).await.0, taken + 1);
        wait_for_high_watermark(&broker, 3).await;
        // Exactly what one Kafka sensor answers for this history.
        let mut sensor = ClientQuotas::new(QuotaWindow::default());
        let mut table = QuotaTable::new();
        table.set(
            QuotaEntity::ClientId(EntityName::Named("throttled".into())),
            QuotaKey::ProducerByteRate,
            QuotaValue::new(QUOTA).expect("positive"),
        );
        let p = QuotaKey::ProducerByteRate;
        let first = sensor.record(&table, p, "ANONYMOUS", "throttled", big_bytes as f64, T0_MS);
        assert_eq!(first, throttle_ms);
        let now_ms = T0_MS + i64::from(throttle_ms);
        let expected = sensor.record(
            &table,
            p,
            "ANONYMOUS",
            "throttled",
            small_bytes as f64,
            now_ms,
        );
        assert!(expected > 0);
        assert_eq!(second.throttle_time_ms, expected);

        // Removing the quota lifts it at once, without a restart.
        set_quota(&broker, "throttled", "producer_byte_rate", None).await;
        moved.advance_ms(i64::from(expected));
        let lifted = blocking(move || {
            let mut throttled = throttled;
            produce(&mut throttled, 9, &big).throttle_time_ms
        })
        .await;
        assert_eq!(lifted, 0);
    });
}

#[test]
fn an_old_produce_version_is_answered_after_its_throttle() {
    let clock = SharedClock::new(T0_MS);
    let moved = clock.clone();
    broker(1, &clock).run(move |broker| async move {
        broker.create_topic(TOPIC, 1, &[]).await;
        set_quota(&broker, "old", "producer_byte_rate", Some(QUOTA)).await;
        let addr = broker.addr();
        let big = produce_of(12_000);
        let throttle_ms = kafka_throttle_ms(frame_bytes("old", 5, &big) as f64, QUOTA, WINDOW_MS);
        assert!(throttle_ms > 0);
        let (client, correlation_id) = blocking(move || {
            let mut client = connect(addr, "old");
            let correlation_id = client.send(5, &big).expect("send");
            (client, correlation_id)
        })
        .await;
        // Appended at once...
        wait_for_high_watermark(&broker, 1).await;
        // ...but, before KIP-219, answered only once the throttle is over.
        let (client, unread) = blocking(move || {
            let unread = client.has_unread().expect("peek");
            (client, unread)
        })
        .await;
        assert!(!unread, "answered before the throttle time");
        moved.advance_ms(i64::from(throttle_ms));
        let response = blocking(move || {
            let mut client = client;
            client.receive::<ProduceRequest>(5, correlation_id)
        })
        .await;
        assert_eq!(response.expect("answered").throttle_time_ms, throttle_ms);
    });
}

/// `body` served on shard `on` as a request of `client_id` of
/// `frame_bytes`, decoded.
async fn call_as<R: ProtocolRequest>(
    broker: &Broker,
    on: usize,
    client_id: &str,
    version: i16,
    body: &R,
) -> R::Response {
    let mut request = request(version, body);
    request.header.client_id = Some(Bytes::copy_from_slice(client_id.as_bytes()));
    request.frame_bytes = frame_bytes(client_id, version, body);
    let header_version = request.response_header_version;
    let mut bytes = match broker.serve_on(on, request).await {
        Response::Reply(bytes) => bytes,
        Response::Chunks(chunks) => chunks.materialize().expect("regions readable"),
        other => panic!("expected a reply, got {other:?}"),
    };
    bytes.get_i32();
    if header_version == ResponseHeaderVersion::V1 {
        assert_eq!(bytes.get_u8(), 0, "no tagged fields in the header");
    }
    R::Response::decode(&mut bytes, version).expect("decode")
}

#[test]
fn connections_on_every_shard_share_one_sensor() {
    for shards in [2, 4] {
        let clock = SharedClock::new(T0_MS);
        broker(shards, &clock).run(move |broker| async move {
            broker.create_topic(TOPIC, 1, &[]).await;
            set_quota(&broker, "spread", "producer_byte_rate", Some(QUOTA)).await;
            let body = produce_of(3_500);
            let bytes = frame_bytes("spread", 9, &body) as f64;
            // Each request on the next shard, round and round: one sensor
            // sees them all, as one connection's would be.
            let mut throttles = Vec::new();
            for i in 0..2 * shards {
                let response = call_as(&broker, i % shards, "spread", 9, &body).await;
                throttles.push(response.throttle_time_ms);
            }
            let expected: Vec<i32> = (1..=2 * shards)
                .map(|n| kafka_throttle_ms(n as f64 * bytes, QUOTA, WINDOW_MS).max(0))
                .collect();
            assert_eq!(throttles, expected, "{shards} shards");
            // Sensors per shard would never have throttled two requests.
            assert!(throttles[2] > 0);
            // The owner alone holds the sensor's counters (the metrics).
            let held = broker
                .shard
                .router
                .invoke_on_all(|shard: Rc<Shard>| async move { shard.quotas().snapshot() })
                .await;
            let held: Vec<Vec<QuotaStatsEntry>> =
                held.into_iter().map(|r| r.expect("route")).collect();
            assert_eq!(held.iter().filter(|entries| !entries.is_empty()).count(), 1);
            let entry = held.into_iter().flatten().next().expect("the owner's");
            assert_eq!(
                (entry.key, entry.id.client_id.as_str()),
                (QuotaKey::ProducerByteRate, "spread")
            );
            let throttled: Vec<i32> = throttles.iter().copied().filter(|&t| t > 0).collect();
            assert_eq!(entry.stats.throttled, throttled.len() as u64);
            let total_ms: i32 = throttled.iter().sum();
            assert_eq!(entry.stats.throttle_time_ms, total_ms as u64);
            assert_eq!(entry.stats.value, bytes * (2 * shards) as f64);
        });
    }
}

#[test]
fn a_consumer_over_its_quota_gets_no_partitions_and_its_bytes_back() {
    let clock = SharedClock::new(T0_MS);
    broker(2, &clock).run(move |broker| async move {
        broker.create_topic(TOPIC, 1, &[]).await;
        for _ in 0..2 {
            let response = call_as(&broker, 0, "writer", 9, &produce_of(600)).await;
            assert_eq!(produce_answers(&response)[0].1.error_code, 0);
        }
        wait_for_high_watermark(&broker, 2).await;
        // 100 B/s: one window allows 100 * 10 s = 1000 B, so the fetch
        // stops after the first 600 B batch and stays within the quota.
        set_quota(&broker, "reader", "consumer_byte_rate", Some(100.0)).await;
        let fetch: FetchRequest = long_poll_fetch(TOPIC, &[0], 0, 0);
        let last = broker.shard_count() - 1;
        let bounded: FetchResponse = call_as(&broker, last, "reader", 12, &fetch).await;
        assert_eq!(bounded.throttle_time_ms, 0);
        let partition = &bounded.responses[0].partitions[0];
        let records = partition.records.as_ref().expect("records");
        let batch = rafka_proto::record::Batches::new(records.clone())
            .map(|b| b.expect("batch"))
            .collect::<Vec<_>>();
        assert_eq!(batch.len(), 1, "capped at one quota window");
        // A tighter quota: the same fetch now goes over and is answered
        // empty with Kafka's throttle; the bytes are taken back, so the
        // same fetch again is throttled exactly as much, not more.
        set_quota(&broker, "reader", "consumer_byte_rate", Some(20.0)).await;
        let mut throttles = Vec::new();
        for _ in 0..2 {
            let throttled: FetchResponse = call_as(&broker, last, "reader", 12, &fetch).await;
            assert!(throttled.responses.is_empty(), "{throttled:?}");
            assert_eq!((throttled.error_code, throttled.session_id), (0, 0));
            throttles.push(throttled.throttle_time_ms);
        }
        // (The bound is now 200 B, but a fetch always gets its first
        // batch: the response is the same as before, and with what the
        // sensor already holds it is well over 20 B/s.)
        assert!(throttles[0] > 0);
        assert_eq!(throttles[0], throttles[1]);
    });
}

#[test]
fn request_time_over_its_percentage_is_throttled_up_to_one_window() {
    let clock = SharedClock::new(T0_MS);
    broker(2, &clock).run(move |broker| async move {
        // 0.0001% of a thread: 10 us of handling over the 10 s window.
        set_quota(&broker, "busy", "request_percentage", Some(0.0001)).await;
        let metadata = MetadataRequest::default().with_topics(Some(Vec::new()));
        let mut throttle_ms = 0;
        for _ in 0..100 {
            let response: MetadataResponse = call_as(&broker, 0, "busy", 12, &metadata).await;
            throttle_ms = response.throttle_time_ms;
            if throttle_ms > 0 {
                break;
            }
        }
        // Capped at one quota window (ClientRequestQuotaManager).
        assert!((1..=1000).contains(&throttle_ms), "{throttle_ms}");
        let response: MetadataResponse = call_as(&broker, 1, "other", 12, &metadata).await;
        assert_eq!(response.throttle_time_ms, 0);
    });
}
