//! Offset lookups: the in-memory sparse index alone (binary search over a
//! full segment's entries), and `Log::read` positioning a fetch in a log
//! over the in-memory sim storage (index lookup + forward batch-header scan).

use std::hint::black_box;
use std::rc::Rc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_lite::future::block_on;
use rafka_core::log::offset_index::{OffsetEntry, OffsetIndex};
use rafka_core::log::{Log, LogConfig, RecoveryHints};
use rafka_core::sim::{ManualClock, SimStorage};
use rafka_proto::record::{BatchBuilder, Compression};

/// A full 1 GiB segment indexed every 4 KiB (Kafka's defaults).
const ENTRIES: u32 = 262_144;
/// 16 records of 1 KB per batch: one index entry per batch.
const RECORDS_PER_BATCH: u32 = 16;
const BATCH_BYTES: u32 = 16 * 1024;
const LOOKUPS: usize = 1024;

fn full_index() -> OffsetIndex {
    let mut index = OffsetIndex::default();
    for i in 0..ENTRIES {
        index.push(OffsetEntry {
            relative_offset: (i + 1) * RECORDS_PER_BATCH - 1,
            position: i * BATCH_BYTES + 1,
        });
    }
    index
}

/// Spread-out offsets, the same every run (a multiplicative hash).
fn targets(range: u32) -> Vec<u32> {
    (0..LOOKUPS as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % range)
        .collect()
}

fn bench_index(c: &mut Criterion) {
    let index = full_index();
    let targets = targets(ENTRIES * RECORDS_PER_BATCH);
    let mut group = c.benchmark_group("offset_index");
    group.throughput(Throughput::Elements(LOOKUPS as u64));
    group.bench_function("lookup_262144_entries", |b| {
        b.iter(|| {
            targets
                .iter()
                .map(|&t| black_box(&index).lookup(t))
                .fold(0u32, u32::wrapping_add)
        })
    });
    group.finish();
}

fn batch() -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None).base_timestamp_ms(1_700_000_000_000);
    let value = vec![b'v'; 1000];
    for _ in 0..RECORDS_PER_BATCH {
        builder.push(None, Some(&value));
    }
    builder.build().expect("bench batch")
}

fn bench_log_read(c: &mut Criterion) {
    const BATCHES: u32 = 4096;
    let log = block_on(async {
        let clock = Rc::new(ManualClock::new(1_700_000_000_000));
        let mut log = Log::open(
            SimStorage::new(),
            "/bench/t-0",
            LogConfig::default(),
            clock,
            RecoveryHints::default(),
        )
        .await
        .expect("open");
        let batch = batch();
        for _ in 0..BATCHES {
            log.append(&batch, 0).await.expect("append");
        }
        log
    });
    let targets = targets(BATCHES * RECORDS_PER_BATCH);
    let mut group = c.benchmark_group("log_read");
    group.throughput(Throughput::Elements(LOOKUPS as u64));
    group.bench_function("position_64mib_sim", |b| {
        b.iter(|| {
            block_on(async {
                let mut found = 0usize;
                for &t in &targets {
                    let read = log.read(i64::from(t), 1).await.expect("read");
                    found += usize::from(!read.is_empty());
                }
                found
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_index, bench_log_read);
criterion_main!(benches);
