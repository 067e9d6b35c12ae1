//! Fetch response encode, 6 partitions x 64 KiB of records: kafka-protocol's
//! encoder copying the records into one buffer (how a TLS reply is built)
//! against rafka's chunked encoder, whose records stay file regions that go
//! out with sendfile, or shared `Bytes` (no copy either way).

use std::fs::File;
use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_net::fetch_encode::{encode_fetch_response, PartitionRecords};
use rafka_net::zero_copy::Chunk;
use rafka_proto::api::encode_response;
use rafka_proto::header::ResponseHeaderVersion;
use rafka_shard::storage::FileRegion;

const PARTITIONS: i32 = 6;
const RECORDS_BYTES: usize = 64 * 1024;
/// Topic names, flexible layout: the version librdkafka and rafka-bench use.
const VERSION: i16 = 12;

fn response(records: Option<&Bytes>) -> FetchResponse {
    let partitions = (0..PARTITIONS)
        .map(|p| {
            PartitionData::default()
                .with_partition_index(p)
                .with_high_watermark(1_000_000)
                .with_last_stable_offset(1_000_000)
                .with_records(records.cloned())
        })
        .collect();
    FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
        .with_topic(TopicName(StrBytes::from_static_str("bench-topic")))
        .with_partitions(partitions)])
}

fn bench_encode(c: &mut Criterion) {
    let records = Bytes::from((0..RECORDS_BYTES).map(|i| i as u8).collect::<Vec<u8>>());
    let mut file = tempfile::tempfile().expect("temp file");
    file.write_all(&records.repeat(PARTITIONS as usize))
        .expect("fill");
    let file: Arc<File> = Arc::new(file);
    let regions = |p: i32| {
        let at = p as u64 * RECORDS_BYTES as u64;
        FileRegion::new(Arc::clone(&file), at, RECORDS_BYTES as u64)
    };
    let mut group = c.benchmark_group("fetch_encode_6x64kib");
    group.throughput(Throughput::Bytes(PARTITIONS as u64 * RECORDS_BYTES as u64));
    let full = response(Some(&records));
    group.bench_function("kafka_protocol_copy", |b| {
        b.iter(|| encode_response(7, ResponseHeaderVersion::V1, black_box(&full), VERSION))
    });
    let bare = response(None);
    group.bench_function("chunked_file_regions", |b| {
        b.iter(|| {
            let records: Vec<PartitionRecords> = (0..PARTITIONS)
                .map(|p| Some(vec![Chunk::File(regions(p))]))
                .collect();
            encode_fetch_response(
                7,
                ResponseHeaderVersion::V1,
                black_box(&bare),
                records,
                VERSION,
            )
        })
    });
    group.bench_function("chunked_bytes", |b| {
        b.iter(|| {
            let records: Vec<PartitionRecords> = (0..PARTITIONS)
                .map(|_| Some(vec![Chunk::Bytes(records.clone())]))
                .collect();
            encode_fetch_response(
                7,
                ResponseHeaderVersion::V1,
                black_box(&bare),
                records,
                VERSION,
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_encode);
criterion_main!(benches);
