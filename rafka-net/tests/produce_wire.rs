//! Produce over a real socket (Kafka frames written and read by the kit's
//! raw `WireClient`) on a broker core of 1, 2 and 4 shards: a topic's
//! `compression.type` decides the codec of what is stored and fetched
//! back, and a request naming one partition twice is answered as Kafka
//! answers it (the last entry wins, one answer per partition).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceRequest, ProduceResponse};
use rafka_proto::record::{
    BatchBuilder, Batches, Compression, HeaderRef, Record, RecordBatch, RecordLimits,
};
use rafka_testkit::broker::blocking;
use rafka_testkit::proto::{long_poll_fetch, produce_request, produce_request_by_id};
use rafka_testkit::records::batch;
use rafka_testkit::{TestBroker, WireClient, SHARD_MATRIX};
use uuid::Uuid;

const NONE: i16 = 0;
const CORRUPT_MESSAGE: i16 = 2;
/// Byte offset of the magic in a v2 batch: what precedes it (baseOffset,
/// batchLength, leader epoch) is rewritten by every log.
const MAGIC_AT: usize = 16;
const TIMESTAMP_MS: i64 = 1_700_000_000_000;
/// Upper bound on a scenario; reached only when the code under test hangs.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A topic to create: name, partition count, configs.
type TopicSpec = (&'static str, i32, &'static [(&'static str, &'static str)]);

/// Creates `topics` (CreateTopics with their configs), then runs the
/// blocking client `scenario` against the broker's listener with the
/// topics' ids.
fn run(topics: &'static [TopicSpec], scenario: fn(SocketAddr, Vec<Uuid>)) {
    TestBroker::builder()
        .network(true)
        .timeout(TEST_TIMEOUT)
        .run_matrix(&SHARD_MATRIX, move |broker| async move {
            let mut ids = Vec::new();
            for &(name, partitions, configs) in topics {
                ids.push(broker.create_topic_id(name, partitions, configs).await);
            }
            let addr = broker.addr();
            blocking(move || scenario(addr, ids)).await;
        });
}

fn connect(addr: SocketAddr) -> WireClient {
    WireClient::connect(addr, "produce-wire-test").expect("connect")
}

fn produce(client: &mut WireClient, version: i16, request: &ProduceRequest) -> ProduceResponse {
    client.call(version, request).expect("produce")
}

/// (partition, error code, base offset).
type PartitionAnswer = (i32, i16, i64);

/// (topic, its partition answers) of every topic answer, in the
/// response's order.
fn shape(response: &ProduceResponse) -> Vec<(String, Vec<PartitionAnswer>)> {
    response
        .responses
        .iter()
        .map(|topic| {
            let partitions = topic
                .partition_responses
                .iter()
                .map(|p| (p.index, p.error_code, p.base_offset))
                .collect();
            (topic.name.to_string(), partitions)
        })
        .collect()
}

/// Every batch of a partition, fetched (v12) from offset 0.
fn fetch_batches(client: &mut WireClient, topic: &str, partition: i32) -> (i64, Vec<RecordBatch>) {
    let request: FetchRequest = long_poll_fetch(topic, &[partition], 0, 0);
    let response: FetchResponse = client.call(12, &request).expect("fetch");
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, NONE, "fetch {topic}-{partition}");
    let records = data.records.clone().unwrap_or_default();
    let batches = Batches::new(records)
        .map(|b| b.expect("fetched batch is valid (CRC included)"))
        .collect();
    (data.high_watermark, batches)
}

fn records_of(batch: &RecordBatch) -> Vec<Record> {
    batch
        .records(RecordLimits::default())
        .expect("records")
        .map(|record| record.expect("record"))
        .collect()
}

fn parsed(bytes: &Bytes) -> RecordBatch {
    RecordBatch::parse(bytes).expect("batch").0
}

/// (base offset, values) of each batch.
fn values(batches: &[RecordBatch]) -> Vec<(i64, Vec<String>)> {
    batches
        .iter()
        .map(|b| {
            let values = records_of(b)
                .iter()
                .map(|r| String::from_utf8(r.value.clone().unwrap_or_default().to_vec()).unwrap())
                .collect();
            (b.header().base_offset, values)
        })
        .collect()
}

/// An idempotent producer's batch (producer 5150, epoch 3, sequence 0)
/// with keys, a null value, headers and spread timestamps.
fn producer_batch(codec: Compression) -> Bytes {
    let mut builder = BatchBuilder::new(codec)
        .producer(5150, 3, 0)
        .base_timestamp_ms(TIMESTAMP_MS);
    let long = "squeeze me ".repeat(300);
    builder.push_record(TIMESTAMP_MS, Some(b"k0"), Some(b"v0"), &[]);
    builder.push_record(
        TIMESTAMP_MS + 40,
        Some(b"k1"),
        Some(long.as_bytes()),
        &[HeaderRef::new("h", Some(b"1"))],
    );
    builder.push_record(TIMESTAMP_MS - 2, None, None, &[HeaderRef::new("n", None)]);
    builder.build().expect("batch")
}

fn codec_of(batch: &RecordBatch) -> Compression {
    batch.header().compression().expect("known codec")
}

/// The stored batch is `sent` in `codec`: same header fields but for the
/// codec bits, length and CRC, same records.
fn assert_recompressed(stored: &RecordBatch, sent: &Bytes, codec: Compression) {
    let sent = parsed(sent);
    let (s, h) = (stored.header(), sent.header());
    assert_eq!(codec_of(stored), codec);
    assert_eq!(
        s.attributes & !0x07,
        h.attributes & !0x07,
        "other attribute bits"
    );
    assert_eq!(s.base_offset, 0);
    assert_eq!(
        (s.producer_id, s.producer_epoch, s.base_sequence),
        (5150, 3, 0)
    );
    assert_eq!((s.record_count, s.last_offset_delta), (3, 2));
    assert_eq!(
        (s.base_timestamp, s.max_timestamp),
        (TIMESTAMP_MS, TIMESTAMP_MS + 40)
    );
    let records = records_of(stored);
    assert_eq!(records, records_of(&sent));
    assert_eq!(records[1].value.as_ref().map(Bytes::len), Some(3_300));
    assert_eq!(records[2].timestamp_delta, -2);
    assert_eq!(
        (records[2].key.clone(), records[2].value.clone()),
        (None, None)
    );
    assert_eq!(records[1].headers[0].value.as_deref(), Some(&b"1"[..]));
}

fn compression_scenario(addr: SocketAddr, _ids: Vec<Uuid>) {
    let mut client = connect(addr);
    let plain = producer_batch(Compression::None);
    let gzip = producer_batch(Compression::Gzip);
    let lz4 = producer_batch(Compression::Lz4);
    let request = produce_request(
        -1,
        vec![
            ("squeeze-zstd", vec![(0, Some(plain.clone()))]),
            ("squeeze-none", vec![(0, Some(gzip.clone()))]),
            ("as-sent", vec![(0, Some(lz4.clone()))]),
        ],
    );
    assert_eq!(
        shape(&produce(&mut client, 9, &request)),
        vec![
            ("squeeze-zstd".to_string(), vec![(0, NONE, 0)]),
            ("squeeze-none".to_string(), vec![(0, NONE, 0)]),
            ("as-sent".to_string(), vec![(0, NONE, 0)]),
        ]
    );
    let (high_watermark, stored) = fetch_batches(&mut client, "squeeze-zstd", 0);
    assert_eq!((high_watermark, stored.len()), (3, 1));
    assert_eq!(stored[0].as_bytes()[22] & 0x07, 4, "attributes say zstd");
    assert_recompressed(&stored[0], &plain, Compression::Zstd);
    assert!(stored[0].size_bytes() < plain.len());

    let (high_watermark, stored) = fetch_batches(&mut client, "squeeze-none", 0);
    assert_eq!((high_watermark, stored.len()), (3, 1));
    assert_recompressed(&stored[0], &gzip, Compression::None);

    // producer: the bytes as sent, from the magic on.
    let (_, stored) = fetch_batches(&mut client, "as-sent", 0);
    assert_eq!(stored[0].as_bytes()[MAGIC_AT..], lz4[MAGIC_AT..]);

    // Already zstd: stored as sent too (next producer, so no duplicate).
    let mut builder = BatchBuilder::new(Compression::Zstd).producer(6160, 0, 0);
    builder.push(Some(b"z"), Some(b"already zstd"));
    let zstd = builder.build().expect("batch");
    let request = produce_request(-1, vec![("squeeze-zstd", vec![(0, Some(zstd.clone()))])]);
    assert_eq!(
        shape(&produce(&mut client, 9, &request)),
        vec![("squeeze-zstd".to_string(), vec![(0, NONE, 3)])]
    );
    let (_, stored) = fetch_batches(&mut client, "squeeze-zstd", 0);
    assert_eq!(stored[1].as_bytes()[MAGIC_AT..], zstd[MAGIC_AT..]);
}

#[test]
fn compression_type_decides_the_stored_codec() {
    run(
        &[
            ("squeeze-zstd", 1, &[("compression.type", "zstd")]),
            ("squeeze-none", 1, &[("compression.type", "uncompressed")]),
            ("as-sent", 1, &[("compression.type", "producer")]),
        ],
        compression_scenario,
    );
}

fn one_record(value: &str) -> Option<Bytes> {
    Some(batch(&[(value, 1_000)]))
}

fn duplicates_scenario(addr: SocketAddr, ids: Vec<Uuid>) {
    let id = ids[0];
    let mut client = connect(addr);
    let twice = |partitions: Vec<PartitionAnswer>| vec![("twice".to_string(), partitions)];
    // One topic entry, partition 0 twice: only the last batch is appended,
    // and answered once.
    let a = batch(&[("a0", 1_000), ("a1", 1_000)]);
    let b = batch(&[("b0", 1_000), ("b1", 1_000), ("b2", 1_000)]);
    let request = produce_request(-1, vec![("twice", vec![(0, Some(a)), (0, Some(b))])]);
    assert_eq!(
        shape(&produce(&mut client, 9, &request)),
        twice(vec![(0, NONE, 0)])
    );
    // The topic twice, overlapping on partition 1: one topic answer.
    let request = produce_request(
        -1,
        vec![
            ("twice", vec![(1, one_record("c0"))]),
            (
                "twice",
                vec![
                    (0, one_record("d0")),
                    (1, Some(batch(&[("e0", 1_000), ("e1", 1_000)]))),
                ],
            ),
        ],
    );
    assert_eq!(
        shape(&produce(&mut client, 9, &request)),
        twice(vec![(0, NONE, 3), (1, NONE, 0)])
    );
    // An earlier entry Kafka would refuse is ignored like any other.
    let junk = Some(Bytes::from_static(b"not a record batch"));
    let request = produce_request(-1, vec![("twice", vec![(0, junk), (0, one_record("f0"))])]);
    assert_eq!(
        shape(&produce(&mut client, 9, &request)),
        twice(vec![(0, NONE, 4)])
    );
    // A damaged last entry is what is answered; the good earlier one is
    // not appended either.
    let mut corrupt = BytesMut::from(&batch(&[("x0", 1_000)])[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let request = produce_request(
        -1,
        vec![(
            "twice",
            vec![(0, one_record("g0")), (0, Some(corrupt.freeze()))],
        )],
    );
    assert_eq!(
        shape(&produce(&mut client, 9, &request)),
        twice(vec![(0, CORRUPT_MESSAGE, -1)])
    );
    // By topic id (v13): the same.
    let request = produce_request_by_id(
        -1,
        vec![
            (id, vec![(1, one_record("h0"))]),
            (id, vec![(1, one_record("i0"))]),
        ],
    );
    let response = produce(&mut client, 13, &request);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].topic_id, id);
    let answers: Vec<PartitionAnswer> = response.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect();
    assert_eq!(answers, vec![(1, NONE, 2)]);
    // acks=0: no answer, the last entry appended once; the next
    // acknowledged batch lands right after it.
    let request = produce_request(
        0,
        vec![("twice", vec![(1, one_record("j0")), (1, one_record("k0"))])],
    );
    client.send(9, &request).expect("acks=0 produce");
    let request = produce_request(-1, vec![("twice", vec![(1, one_record("l0"))])]);
    assert_eq!(
        shape(&produce(&mut client, 9, &request)),
        twice(vec![(1, NONE, 4)])
    );

    let (high_watermark, stored) = fetch_batches(&mut client, "twice", 0);
    assert_eq!(high_watermark, 5);
    let expected = |v: &[(i64, &[&str])]| -> Vec<(i64, Vec<String>)> {
        v.iter()
            .map(|(o, vs)| (*o, vs.iter().map(|s| s.to_string()).collect()))
            .collect()
    };
    assert_eq!(
        values(&stored),
        expected(&[(0, &["b0", "b1", "b2"]), (3, &["d0"]), (4, &["f0"])])
    );
    let (high_watermark, stored) = fetch_batches(&mut client, "twice", 1);
    assert_eq!(high_watermark, 5);
    assert_eq!(
        values(&stored),
        expected(&[(0, &["e0", "e1"]), (2, &["i0"]), (3, &["k0"]), (4, &["l0"])])
    );
}

#[test]
fn a_partition_named_twice_is_appended_once_and_answered_once() {
    run(&[("twice", 2, &[])], duplicates_scenario);
}
