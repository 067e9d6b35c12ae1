//! The open-file budget (`io::cache`): files beyond it are closed while
//! idle and reopen on use, by their current name, never recreated; a log
//! of many segments over a budget of a few files reads, appends, crashes
//! and recovers exactly as over plain storage.

mod log_support;

use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures_lite::future::block_on;
use log_support::*;
use rafka_core::io::cache::{CachedStorage, FileBudget, FILE_BUDGET_MIN};
use rafka_core::io::{Storage, StorageFile};
use rafka_core::log::{Log, LogConfig, RecoveryHints};
use rafka_core::sim::SimStorage;

fn cached(budget: usize) -> (SimStorage, CachedStorage<SimStorage>) {
    let sim = SimStorage::new();
    let storage = CachedStorage::new(sim.clone(), FileBudget::new(budget));
    (sim, storage)
}

fn file(index: usize) -> PathBuf {
    PathBuf::from(format!("/d/file-{index:03}"))
}

#[test]
fn files_beyond_the_budget_are_closed_and_reopen_with_their_bytes() {
    let (_sim, storage) = cached(FILE_BUDGET_MIN);
    block_on(async {
        storage.create_dir_all(Path::new("/d")).await.unwrap();
        let mut files = Vec::new();
        for index in 0..40 {
            let f = storage.open(&file(index)).await.unwrap();
            f.write_at(0, format!("contents of {index}").as_bytes())
                .await
                .unwrap();
            files.push(f);
            assert!(storage.budget().stats().open <= FILE_BUDGET_MIN);
        }
        let stats = storage.budget().stats();
        assert_eq!((stats.open, stats.capacity), (8, 8));
        assert_eq!(stats.evictions, 32);
        assert_eq!(stats.overflows, 0);
        assert_eq!(files.iter().filter(|f| f.is_open()).count(), 8);

        for (index, f) in files.iter().enumerate() {
            let want = format!("contents of {index}");
            let got = f.read_at(0, 64).await.unwrap();
            assert_eq!(got, want.as_bytes());
            f.sync_data().await.unwrap();
        }
        let stats = storage.budget().stats();
        assert_eq!(stats.open, 8);
        // The first 32 were closed; reading all 40 in order reopens every
        // one of them, and each reopen closes one of the 8 then open.
        assert_eq!(stats.reopens, 40);

        drop(files);
        assert_eq!(storage.budget().stats().open, 0);
    });
}

#[test]
fn a_file_in_use_is_never_closed_under_it() {
    let (_sim, storage) = cached(FILE_BUDGET_MIN);
    block_on(async {
        storage.create_dir_all(Path::new("/d")).await.unwrap();
        let pinned = storage.open(&file(999)).await.unwrap();
        pinned.write_at(0, b"pinned").await.unwrap();
        // An operation in progress holds the inner handle.
        let busy = pinned.inner().await.unwrap();
        let mut others = Vec::new();
        for index in 0..20 {
            others.push(storage.open(&file(index)).await.unwrap());
        }
        assert!(pinned.is_open(), "a busy file stays open");
        assert_eq!(busy.read_at(0, 6).await.unwrap(), &b"pinned"[..]);
        drop(busy);
        for index in 20..40 {
            others.push(storage.open(&file(index)).await.unwrap());
        }
        assert!(!pinned.is_open(), "idle again, it can be closed");
        assert_eq!(pinned.read_at(0, 6).await.unwrap(), &b"pinned"[..]);
    });
}

#[test]
fn every_file_busy_goes_over_the_budget_instead_of_failing() {
    let (_sim, storage) = cached(FILE_BUDGET_MIN);
    block_on(async {
        storage.create_dir_all(Path::new("/d")).await.unwrap();
        let mut held = Vec::new();
        for index in 0..10 {
            let f = storage.open(&file(index)).await.unwrap();
            let busy = f.inner().await.unwrap();
            held.push((f, busy));
        }
        let stats = storage.budget().stats();
        assert_eq!(stats.open, 10);
        assert_eq!(stats.overflows, 2);
        drop(held);
    });
}

#[test]
fn a_renamed_file_reopens_under_its_new_name() {
    let (sim, storage) = cached(FILE_BUDGET_MIN);
    block_on(async {
        storage.create_dir_all(Path::new("/d")).await.unwrap();
        let cleaned = Path::new("/d/0.cleaned");
        let f = storage.open(cleaned).await.unwrap();
        f.write_at(0, b"compacted").await.unwrap();
        storage
            .rename(cleaned, Path::new("/d/0.swap"))
            .await
            .unwrap();
        storage
            .rename(Path::new("/d/0.swap"), Path::new("/d/0.log"))
            .await
            .unwrap();
        let mut others = Vec::new();
        for index in 0..FILE_BUDGET_MIN * 2 {
            others.push(storage.open(&file(index)).await.unwrap());
        }
        assert!(!f.is_open());
        assert_eq!(f.path(), Path::new("/d/0.log"));
        assert_eq!(f.read_at(0, 9).await.unwrap(), &b"compacted"[..]);
        assert_eq!(sim.file_contents(cleaned), None);
    });
}

#[test]
fn a_deleted_file_is_not_recreated_by_a_late_reader() {
    let (sim, storage) = cached(FILE_BUDGET_MIN);
    block_on(async {
        storage.create_dir_all(Path::new("/d")).await.unwrap();
        let f = storage.open(Path::new("/d/old.log")).await.unwrap();
        f.write_at(0, b"old").await.unwrap();
        let mut others = Vec::new();
        for index in 0..FILE_BUDGET_MIN * 2 {
            others.push(storage.open(&file(index)).await.unwrap());
        }
        storage.remove_file(Path::new("/d/old.log")).await.unwrap();
        let error = f.read_at(0, 3).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(sim.file_contents(Path::new("/d/old.log")), None);
    });
}

/// A log with many segments over the smallest budget: appends, reads,
/// a crash and recovery, byte for byte as over uncached storage.
#[test]
fn a_log_of_many_segments_lives_within_a_budget_of_eight_files() {
    let sim = SimStorage::new();
    let budget = FileBudget::new(FILE_BUDGET_MIN);
    let storage = CachedStorage::new(sim.clone(), Rc::clone(&budget));
    let fx = Fixture::with_storage(sim.clone());
    let config = LogConfig {
        segment_bytes: 1500,
        ..LogConfig::default()
    };
    block_on(async {
        let open = || {
            Log::open(
                storage.clone(),
                dir(),
                config.clone(),
                Rc::new(fx.clock.clone()),
                RecoveryHints::default(),
            )
        };
        let mut log = open().await.unwrap();
        let mut expected = Vec::new();
        for index in 0..60 {
            let b = batch(3, START_MS + index, 200);
            let info = log.append(&b, 0).await.unwrap();
            expected.push((info.first_offset, stored(&b, info.first_offset, 0)));
            if index % 7 == 0 {
                flush(&mut log).await;
            }
        }
        assert!(
            log.segment_count() > 3 * FILE_BUDGET_MIN,
            "{} segments",
            log.segment_count()
        );
        assert!(budget.stats().open <= FILE_BUDGET_MIN);
        assert!(budget.stats().evictions > 0);
        flush(&mut log).await;

        let mut got = Vec::new();
        let mut offset = 0;
        while offset < log.log_end_offset() {
            let result = log.read(offset, u32::MAX).await.unwrap();
            let bytes = result.read_bytes().await.unwrap();
            for batch in rafka_proto::record::Batches::new(bytes) {
                let batch = batch.unwrap();
                got.push((batch.header().base_offset, batch.into_bytes()));
            }
            offset = got.last().map_or(offset, |(base, _)| base + 3);
        }
        assert_eq!(got, expected);
        assert!(budget.stats().open <= FILE_BUDGET_MIN);
        drop(log);

        sim.crash();
        let log = open().await.unwrap();
        assert_eq!(log.log_end_offset(), 180);
        assert_eq!(read_all_cached(&log).await, expected);
        assert!(budget.stats().open <= FILE_BUDGET_MIN);
    });
}

async fn read_all_cached(log: &Log<CachedStorage<SimStorage>>) -> Vec<(i64, bytes::Bytes)> {
    let mut got = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let result = log.read(offset, 1000).await.unwrap();
        let bytes = result.read_bytes().await.unwrap();
        for batch in rafka_proto::record::Batches::new(bytes) {
            let batch = batch.unwrap();
            offset = batch.header().last_offset() + 1;
            got.push((batch.header().base_offset, batch.into_bytes()));
        }
    }
    got
}

async fn flush(log: &mut Log<CachedStorage<SimStorage>>) {
    let ticket = log.flush_begin().unwrap();
    let done = ticket.sync().await.unwrap();
    log.flush_complete(done).unwrap();
}
