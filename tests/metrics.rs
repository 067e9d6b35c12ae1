//! `/metrics` of the real broker: scraped before and after librdkafka
//! traffic, the counters move by exactly what the traffic was; bad HTTP
//! gets its status and the endpoint and the broker keep serving.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, ApiKey, ApiVersionsRequest, CreateTopicsRequest,
};
use kafka_protocol::protocol::StrBytes;
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_testkit::proto::{creatable, produce_answers, produce_request};
use rafka_testkit::wire::{request_frame, request_header};
use rafka_testkit::{BrokerProcess, WireClient};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use support::client;
use support::rafka;

const TOPIC: &str = "metered";
const RECORDS: u32 = 300;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `request` as is and returns (status code, body).
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to /metrics");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream.write_all(request).expect("send request");
    let mut response = Vec::new();
    // The server closes after one answer.
    stream.read_to_end(&mut response).expect("read response");
    let response = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("status line in {head:?}"));
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .and_then(|n| n.parse().ok())
        .expect("Content-Length");
    assert_eq!(length, body.len(), "Content-Length matches the body");
    (status, body.to_owned())
}

/// Every sample of a scrape: `name{labels}` -> value.
fn scrape(broker: &BrokerProcess) -> BTreeMap<String, f64> {
    let (status, body) = http(
        broker.metrics_addr,
        b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "complete exposition");
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            (series.to_owned(), value)
        })
        .collect()
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Total size of the partition's segment files: the batches as appended.
fn log_bytes(broker: &BrokerProcess, topic: &str, partition: i32) -> u64 {
    std::fs::read_dir(broker.partition_dir(topic, partition))
        .expect("partition dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .map(|path| std::fs::metadata(path).expect("segment metadata").len())
        .sum()
}

#[test]
fn counters_move_by_exactly_the_traffic() {
    let broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    let before = scrape(&broker);
    client::create_topic(&bootstrap, TOPIC, 1);
    let records = client::records(1, RECORDS, client::now_ms());
    let producer = client::producer(&bootstrap, &[("enable.idempotence", "false")]);
    client::produce(&producer, TOPIC, &records);
    assert_eq!(
        client::watermarks(&bootstrap, TOPIC, 0),
        (0, i64::from(RECORDS))
    );
    let consumed = client::consume(&bootstrap, TOPIC, &[RECORDS as usize]);
    assert_eq!(consumed[0].len(), RECORDS as usize);
    let after = scrape(&broker);
    let delta = |series: &str| sample(&after, series) - sample(&before, series);

    let topic = format!("{{topic=\"{TOPIC}\"}}");
    let stored_bytes = log_bytes(&broker, TOPIC, 0) as f64;
    assert!(stored_bytes > 0.0);
    assert_eq!(
        delta(&format!("rafka_topic_records_in_total{topic}")),
        f64::from(RECORDS)
    );
    // Batches are stored as they were appended: the log is the bytes in.
    assert_eq!(
        delta(&format!("rafka_topic_bytes_in_total{topic}")),
        stored_bytes
    );
    // Every stored batch went out at least once to the consumer.
    assert!(delta(&format!("rafka_topic_bytes_out_total{topic}")) >= stored_bytes);
    // One consumer read the partition once from offset 0.
    assert_eq!(
        delta(&format!("rafka_topic_records_out_total{topic}")),
        f64::from(RECORDS)
    );

    let produce_requests = delta("rafka_requests_total{api=\"Produce\"}");
    assert!(
        (1.0..=f64::from(RECORDS)).contains(&produce_requests),
        "{produce_requests} produce requests for {RECORDS} records"
    );
    assert_eq!(
        delta("rafka_request_duration_seconds_count{api=\"Produce\"}"),
        produce_requests,
        "one latency observation per request"
    );
    assert_eq!(delta("rafka_request_errors_total{api=\"Produce\"}"), 0.0);
    assert!(delta("rafka_requests_total{api=\"Fetch\"}") >= 1.0);

    let partition_labels = |name: &str| {
        let series = after
            .keys()
            .find(|key| key.starts_with(&format!("{name}{{topic=\"{TOPIC}\",partition=\"0\"")))
            .unwrap_or_else(|| panic!("{name} for {TOPIC}/0"));
        after[series]
    };
    assert_eq!(
        partition_labels("rafka_partition_log_end_offset"),
        f64::from(RECORDS)
    );
    assert_eq!(
        partition_labels("rafka_partition_high_watermark"),
        f64::from(RECORDS)
    );
    // A single node leads alone: one replica, in sync.
    assert_eq!(partition_labels("rafka_partition_replicas"), 1.0);
    assert_eq!(partition_labels("rafka_partition_in_sync_replicas"), 1.0);
    assert_eq!(partition_labels("rafka_partition_under_replicated"), 0.0);
    assert_eq!(partition_labels("rafka_partition_under_min_isr"), 0.0);
    // acks=all is answered after fdatasync: at least one timed flush.
    let fsyncs: f64 = (0..2)
        .map(|shard| {
            delta(&format!(
                "rafka_fsync_duration_seconds_count{{shard=\"{shard}\"}}"
            ))
        })
        .sum();
    assert!(fsyncs >= 1.0, "{fsyncs} fsyncs");
    let accepted: f64 = (0..2)
        .map(|shard| {
            delta(&format!(
                "rafka_connections_accepted_total{{shard=\"{shard}\"}}"
            ))
        })
        .sum();
    assert!(accepted >= 3.0, "admin, producer and consumer connected");

    // A group commits offset 120 of the 300 records with librdkafka: it
    // lags by the other 180, whichever shards own the group and the topic.
    let group = "metered-group";
    commit(&bootstrap, group, TOPIC, 0, 120);
    let committed = scrape(&broker);
    let group_labels = format!("{{group=\"{group}\",topic=\"{TOPIC}\",partition=\"0\"}}");
    assert_eq!(
        committed.get(&format!(
            "rafka_consumer_group_committed_offset{group_labels}"
        )),
        Some(&120.0)
    );
    assert_eq!(
        committed.get(&format!("rafka_consumer_group_lag{group_labels}")),
        Some(&f64::from(RECORDS - 120))
    );
}

/// Commits `offset` for one partition as `group` (a simple consumer: no
/// membership, librdkafka's synchronous commit).
fn commit(bootstrap: &str, group: &str, topic: &str, partition: i32, offset: i64) {
    let mut config = client::config(bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    let consumer: rdkafka::consumer::BaseConsumer = config.create().expect("create consumer");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .expect("offset entry");
    consumer
        .commit(&offsets, CommitMode::Sync)
        .expect("OffsetCommit");
}

#[test]
fn bad_http_gets_its_status_and_the_broker_keeps_serving() {
    let broker = BrokerProcess::start(rafka(1));
    let addr = broker.metrics_addr;
    assert_eq!(http(addr, b"HELLO\r\n\r\n").0, 400);
    assert_eq!(http(addr, b"GET /metrics HTTP/9.9\r\n\r\n").0, 400);
    assert_eq!(http(addr, b"GET /other HTTP/1.1\r\n\r\n").0, 404);
    assert_eq!(http(addr, b"DELETE /metrics HTTP/1.1\r\n\r\n").0, 405);
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    huge.resize(16 << 10, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(http(addr, &huge).0, 431);
    // A client that connects, sends half a line and goes away.
    let mut quitter = TcpStream::connect(addr).expect("connect");
    quitter.write_all(b"GET /met").expect("half a request");
    drop(quitter);

    let samples = scrape(&broker);
    assert_eq!(sample(&samples, "rafka_connections_open{shard=\"0\"}"), 0.0);
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, 1);
    assert_eq!(client::watermarks(&bootstrap, TOPIC, 0), (0, 0));
    let samples = scrape(&broker);
    assert_eq!(
        sample(&samples, "rafka_requests_total{api=\"CreateTopics\"}"),
        1.0
    );
}

/// The series of `name` whose labels contain `label`, e.g. a client id.
fn series_with<'a>(
    samples: &'a BTreeMap<String, f64>,
    name: &str,
    label: &str,
) -> Vec<(&'a str, f64)> {
    samples
        .iter()
        .filter(|(series, _)| series.starts_with(&format!("{name}{{")) && series.contains(label))
        .map(|(series, value)| (series.as_str(), *value))
        .collect()
}

#[test]
fn a_throttled_client_and_a_refused_connection_show_in_the_metrics() {
    // 2 connections per IP: the client below and one more.
    let broker = BrokerProcess::start(rafka(2).property("max.connections.per.ip", "2"));
    let addr: SocketAddr = broker.bootstrap().parse().expect("address");
    let client_id = "metered-quota";
    let mut client = WireClient::connect(addr, client_id).expect("connect");
    // 1000 B/s for the client id, through AlterClientQuotas.
    let alter = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(StrBytes::from_static_str("client-id"))
            .with_entity_name(Some(StrBytes::from_static_str(client_id)))])
        .with_ops(vec![OpData::default()
            .with_key(StrBytes::from_static_str("producer_byte_rate"))
            .with_value(1000.0)])]);
    let altered = client.call(1, &alter).expect("AlterClientQuotas");
    assert_eq!(altered.entries[0].error_code, 0, "{altered:?}");
    let create = CreateTopicsRequest::default()
        .with_topics(vec![creatable(TOPIC, 1, &[])])
        .with_timeout_ms(30_000);
    let created = client.call(7, &create).expect("CreateTopics");
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    // 12 kB against 1000 B/s over a young sensor's 10 s: throttled.
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push_record(0, None, Some(vec![b'x'; 12_000].as_slice()), &[]);
    let produce = produce_request(
        -1,
        vec![(TOPIC, vec![(0, Some(builder.build().expect("batch")))])],
    );
    let produced = client.call(9, &produce).expect("Produce");
    assert_eq!(produce_answers(&produced)[0].1.error_code, 0);
    let throttle_ms = produced.throttle_time_ms;
    assert!(throttle_ms > 1000, "{throttle_ms}");

    // The second connection is taken, a third from the same IP refused.
    let mut second = WireClient::connect(addr, "second").expect("connect");
    let versions = second
        .call(2, &ApiVersionsRequest::default())
        .expect("ApiVersions");
    assert_eq!(versions.error_code, 0);
    let mut third = WireClient::connect(addr, "third").expect("connect");
    assert_eq!(third.read_until_closed().expect("closed at accept"), b"");

    let samples = scrape(&broker);
    let quota_label = format!("client_id=\"{client_id}\"");
    let produce_label = "quota=\"producer_byte_rate\"";
    let throttled: Vec<_> = series_with(
        &samples,
        "rafka_client_quota_throttled_requests_total",
        &quota_label,
    );
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert!(throttled[0].0.contains(produce_label), "{throttled:?}");
    assert_eq!(throttled[0].1, 1.0);
    let throttle_time = series_with(
        &samples,
        "rafka_client_quota_throttle_time_ms_total",
        &quota_label,
    );
    assert_eq!(
        throttle_time.iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![f64::from(throttle_ms)]
    );
    // The produce frame's header and body, as the quota counts them.
    let header = request_header(ApiKey::Produce, 9, 1, Some(client_id.as_bytes())).expect("header");
    let frame = request_frame(&header, &produce, 9).expect("frame");
    let recorded = series_with(&samples, "rafka_client_quota_value_total", &quota_label);
    assert_eq!(
        recorded.iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![(frame.len() - 4) as f64]
    );
    let refused: f64 = series_with(
        &samples,
        "rafka_connections_limited_total",
        "reason=\"per_ip\"",
    )
    .iter()
    .map(|s| s.1)
    .sum();
    assert_eq!(refused, 1.0);
}
