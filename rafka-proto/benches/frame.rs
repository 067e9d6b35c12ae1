//! The wire layer's per-request cost: splitting frames, parsing headers, and
//! decoding bodies with and without the shape check that guards
//! kafka-protocol against hostile array lengths (its overhead is the ratio
//! of `decode_request` to `kafka_protocol_decode_unguarded`).

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::{Encodable, Request, StrBytes};
use rafka_proto::api::{decode_request, ApiTable};
use rafka_proto::frame::{encode_frame, FrameDecoder};
use rafka_proto::header::{RequestHeader, RequestHeaderVersion};

const FRAMES: usize = 1000;
const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

fn topic_name(index: usize) -> TopicName {
    TopicName(StrBytes::from_string(format!("topic-{index}")))
}

/// 4 topics x 8 partitions, 16 KiB of (opaque) record bytes each.
fn produce_body() -> Bytes {
    let records = Bytes::from(vec![7u8; 16 * 1024]);
    let topics = (0..4)
        .map(|topic| {
            let partitions = (0..8)
                .map(|index| {
                    PartitionProduceData::default()
                        .with_index(index)
                        .with_records(Some(records.clone()))
                })
                .collect();
            TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(partitions)
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(topics);
    encode(&request, PRODUCE_VERSION)
}

/// 100 topics x 10 partitions: a consumer fetching a wide assignment.
fn fetch_body() -> Bytes {
    let topics = (0..100)
        .map(|topic| {
            let partitions = (0..10)
                .map(|index| {
                    FetchPartition::default()
                        .with_partition(index)
                        .with_fetch_offset(1_000_000)
                        .with_partition_max_bytes(1 << 20)
                })
                .collect();
            FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect();
    let request = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_max_bytes(50 << 20)
        .with_topics(topics);
    encode(&request, FETCH_VERSION)
}

fn encode<T: Encodable>(request: &T, version: i16) -> Bytes {
    let mut out = BytesMut::new();
    request
        .encode(&mut out, version)
        .expect("bench request encodes");
    out.freeze()
}

fn frames(c: &mut Criterion) {
    let body = vec![1u8; 100];
    let mut wire = BytesMut::new();
    (0..FRAMES).for_each(|_| encode_frame(&body, &mut wire).expect("frame"));
    let wire = wire.freeze();
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(FRAMES as u64));
    group.bench_function("decode_1000_frames_of_100_bytes", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let mut decoder = FrameDecoder::default();
            while let Ok(Some(frame)) = decoder.decode(&mut buf) {
                black_box(frame);
            }
        })
    });
    group.finish();
}

fn headers(c: &mut Criterion) {
    let table = ApiTable::decodable();
    let header = RequestHeader {
        api_key: kafka_protocol::messages::ApiKey::Produce,
        api_version: PRODUCE_VERSION,
        correlation_id: 42,
        header_version: RequestHeaderVersion::V2,
        client_id: Some(Bytes::from_static(b"rdkafka-producer-1")),
    };
    let mut frame = Vec::new();
    header.encode(&mut frame).expect("header");
    frame.extend_from_slice(&[0u8; 64]);
    let frame = Bytes::from(frame);
    c.bench_function("header/parse_v2", |b| {
        b.iter(|| RequestHeader::parse(black_box(&frame), &table).expect("parses"))
    });
}

fn bodies<R: Request>(c: &mut Criterion, name: &str, body: Bytes, version: i16) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("decode_request", |b| {
        b.iter(|| decode_request::<R>(&mut body.clone(), version).expect("decodes"))
    });
    group.bench_function("kafka_protocol_decode_unguarded", |b| {
        b.iter(|| R::decode(&mut body.clone(), version).expect("decodes"))
    });
    group.finish();
}

fn requests(c: &mut Criterion) {
    bodies::<ProduceRequest>(
        c,
        "produce_v9_32_partitions",
        produce_body(),
        PRODUCE_VERSION,
    );
    bodies::<FetchRequest>(c, "fetch_v12_1000_partitions", fetch_body(), FETCH_VERSION);
}

criterion_group!(benches, frames, headers, requests);
criterion_main!(benches);
