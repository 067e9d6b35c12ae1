//! Produce request decode as the broker does it: the shape check, then
//! kafka-protocol's decode, on a realistic request (1 topic x 6 partitions
//! x one 16 KiB batch each). The batches themselves are not copied: they
//! stay slices of the request's bytes.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rafka_proto::api::decode_request;
use rafka_proto::record::{BatchBuilder, Compression};

const PARTITIONS: i32 = 6;
const BATCH_BYTES: usize = 16 * 1024;
const VALUE_BYTES: usize = 1000;

fn batch(seed: usize) -> Bytes {
    let mut builder = BatchBuilder::with_capacity(Compression::None, BATCH_BYTES);
    let mut value = vec![0u8; VALUE_BYTES];
    let mut index = 0;
    while builder.records_bytes() + VALUE_BYTES + 32 < BATCH_BYTES - 61 {
        for (at, byte) in value.iter_mut().enumerate() {
            *byte = b'a' + ((at * 7 + index * 13 + seed) % 26) as u8;
        }
        builder.push_record(1_700_000_000_000 + index as i64, None, Some(&value), &[]);
        index += 1;
    }
    builder.build().expect("bench batch")
}

fn request_body(version: i16) -> Bytes {
    let partitions = (0..PARTITIONS)
        .map(|p| {
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(batch(p as usize)))
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench-topic")))
            .with_partition_data(partitions)]);
    let mut body = BytesMut::new();
    request.encode(&mut body, version).expect("encode");
    body.freeze()
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("produce_decode_6x16kib");
    // v3: the oldest served (non-flexible); v9: flexible with topic names.
    for version in [3i16, 9] {
        let body = request_body(version);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("v{version}"), |b| {
            b.iter(|| {
                let mut bytes = black_box(&body).clone();
                let request: ProduceRequest = decode_request(&mut bytes, version).expect("decodes");
                request.topic_data.len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
