//! Batch validation against plain CRC32C over the same bytes (the goal is
//! validation at CRC speed), produce-path validation, record iteration.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rafka_proto::record::{
    validate, validate_for_append, AppendOrigin, BatchBuilder, Batches, Compression, RecordBatch,
    RecordLimits,
};

const BUFFER_BYTES: usize = 1 << 20;
const BATCH_BYTES: usize = 16 * 1024;
const VALUE_BYTES: usize = 1000;

/// One batch of about 16 KiB: 1 KB values with short keys.
fn batch(codec: Compression, seed: usize) -> Bytes {
    let mut builder = BatchBuilder::with_capacity(codec, BATCH_BYTES).producer(1, 0, 0);
    let mut value = vec![0u8; VALUE_BYTES];
    let mut index = 0;
    while builder.records_bytes() + VALUE_BYTES + 32 < BATCH_BYTES - 61 {
        for (at, byte) in value.iter_mut().enumerate() {
            *byte = b'a' + ((at * 7 + index * 13 + seed) % 26) as u8;
        }
        let key = format!("key-{seed}-{index}");
        let ts = 1_700_000_000_000 + index as i64;
        builder.push_record(ts, Some(key.as_bytes()), Some(&value), &[]);
        index += 1;
    }
    builder.build().expect("bench batch")
}

/// About 1 MiB of back-to-back 16 KiB batches, as a produce request or a
/// segment read would hold them.
fn buffer() -> Bytes {
    let mut out = BytesMut::with_capacity(BUFFER_BYTES + BATCH_BYTES);
    let mut seed = 0;
    while out.len() < BUFFER_BYTES {
        out.extend_from_slice(&batch(Compression::None, seed));
        seed += 1;
    }
    out.freeze()
}

fn bench_validate(c: &mut Criterion) {
    let buffer = buffer();
    let mut group = c.benchmark_group("validate_1mib");
    group.throughput(Throughput::Bytes(buffer.len() as u64));
    group.bench_function("crc32c_only", |b| {
        b.iter(|| crc32c::crc32c(black_box(&buffer)))
    });
    group.bench_function("batches_iterator", |b| {
        b.iter(|| {
            Batches::new(black_box(buffer.clone()))
                .map(|batch| batch.map(|batch| batch.header().record_count))
                .sum::<Result<i32, _>>()
        })
    });
    let bounds: Vec<(usize, usize)> = Batches::new(buffer.clone())
        .scan(0, |at, batch| {
            let size = batch.expect("valid").size_bytes();
            *at += size;
            Some((*at - size, *at))
        })
        .collect();
    // The same CRC work validation does: one call per batch over bytes
    // 21.. (a 16 KiB call costs more per byte than one 1 MiB call).
    group.bench_function("crc32c_per_batch", |b| {
        b.iter(|| {
            let buffer = black_box(&buffer[..]);
            bounds
                .iter()
                .map(|&(start, end)| crc32c::crc32c(&buffer[start + 21..end]))
                .fold(0u32, |acc, crc| acc ^ crc)
        })
    });
    group.bench_function("validate_slices", |b| {
        b.iter(|| {
            let buffer = black_box(&buffer[..]);
            bounds
                .iter()
                .map(|&(start, end)| validate(&buffer[start..end]).map(|h| h.record_count))
                .sum::<Result<i32, _>>()
        })
    });
    group.finish();
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_for_append_16kib");
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let bytes = batch(codec, 1);
        let (parsed, _) = RecordBatch::parse(&bytes).expect("valid");
        let plain_bytes = parsed
            .decompressed_records(RecordLimits::default())
            .expect("decodes")
            .len();
        group.throughput(Throughput::Bytes(plain_bytes as u64));
        group.bench_function(format!("{codec:?}"), |b| {
            b.iter(|| {
                validate_for_append(
                    black_box(&parsed),
                    AppendOrigin::Client,
                    RecordLimits::default(),
                )
            })
        });
    }
    group.finish();
}

fn bench_records(c: &mut Criterion) {
    let bytes = batch(Compression::None, 2);
    let (parsed, _) = RecordBatch::parse(&bytes).expect("valid");
    let mut group = c.benchmark_group("records_16kib");
    group.throughput(Throughput::Elements(parsed.header().record_count as u64));
    group.bench_function("iterate_none", |b| {
        b.iter(|| {
            let records = black_box(&parsed).records(RecordLimits::default());
            records
                .expect("records")
                .map(|r| r.is_ok() as u32)
                .sum::<u32>()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_validate, bench_append, bench_records);
criterion_main!(benches);
