//! Log append of 16 KiB batches (offset assignment, header rewrite, index
//! upkeep, segment write) over the in-memory sim storage, so the figure is
//! the log's own CPU cost, without a disk. `log_append` in rafka-bench
//! measures the same path against a real disk.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_lite::future::block_on;
use rafka_core::log::{Log, LogConfig, RecoveryHints};
use rafka_core::sim::{ManualClock, SimStorage};
use rafka_proto::record::{BatchBuilder, Compression};

const RECORDS_PER_BATCH: usize = 16;
/// A fresh log every this many appends keeps the sim's memory bounded
/// (64 MiB); opening it is not timed.
const APPENDS_PER_LOG: u64 = 4096;

fn batch() -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None).base_timestamp_ms(1_700_000_000_000);
    let value: Vec<u8> = (0..1000).map(|i| b'a' + (i % 26) as u8).collect();
    for _ in 0..RECORDS_PER_BATCH {
        builder.push(None, Some(&value));
    }
    builder.build().expect("bench batch")
}

async fn fresh_log() -> Log<SimStorage> {
    Log::open(
        SimStorage::new(),
        "/bench/t-0",
        LogConfig::default(),
        Rc::new(ManualClock::new(1_700_000_000_000)),
        RecoveryHints::default(),
    )
    .await
    .expect("open")
}

/// Times `iters` appends, reopening a fresh log between chunks.
fn append_iters(batch: &Bytes, iters: u64) -> Duration {
    block_on(async {
        let mut elapsed = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let chunk = left.min(APPENDS_PER_LOG);
            let mut log = fresh_log().await;
            let start = Instant::now();
            for _ in 0..chunk {
                log.append(batch, 0).await.expect("append");
            }
            elapsed += start.elapsed();
            left -= chunk;
        }
        elapsed
    })
}

fn bench_append(c: &mut Criterion) {
    let batch = batch();
    let mut group = c.benchmark_group("segment_append");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("16kib_batch_sim", |b| {
        b.iter_custom(|iters| append_iters(&batch, iters))
    });
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
