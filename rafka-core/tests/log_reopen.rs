//! Reopening a log: clean shutdown, recovery point hints, index files that
//! are missing or damaged, and a large partition.

mod log_support;

use std::path::Path;

use bytes::Bytes;
use futures_lite::future::block_on;
use log_support::*;
use rafka_core::log::{Log, LogConfig, RecoveryHints, TimestampOffset};
use rafka_core::sim::SimStorage;

/// Everything observable through reads and timestamp lookups.
#[derive(Debug, PartialEq)]
struct Answers {
    reads: Vec<(i64, i64, Bytes)>,
    timestamps: Vec<Option<TimestampOffset>>,
    max_timestamp: Option<TimestampOffset>,
}

async fn answers(log: &Log<SimStorage>) -> Answers {
    let mut reads = Vec::new();
    for offset in (log.log_start_offset()..log.log_end_offset()).step_by(7) {
        let result = log.read(offset, 400).await.unwrap();
        let bytes = result.read_bytes().await.unwrap();
        reads.push((result.first_offset, result.next_offset, bytes));
    }
    let mut timestamps = Vec::new();
    for delta in (-1..=210).step_by(3) {
        timestamps.push(log.offset_for_timestamp(START_MS + delta).await.unwrap());
    }
    Answers {
        reads,
        timestamps,
        max_timestamp: log.max_timestamp().await.unwrap(),
    }
}

fn indexed_config() -> LogConfig {
    let size = batch(1, START_MS, 50).len() as u32;
    LogConfig {
        segment_bytes: 16 * size,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// 60 one-record batches, timestamps in plateaus of three, four segments
/// (0, 16, 32, 48), closed cleanly. Returns the log end offset.
fn build_closed_log(fx: &Fixture) -> i64 {
    block_on(async {
        let mut log = fx
            .try_open(indexed_config(), RecoveryHints::default())
            .await
            .unwrap();
        for i in 0..60 {
            log.append(&batch(1, START_MS + (i / 3) * 10, 50), 3)
                .await
                .unwrap();
        }
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 16, 32, 48]);
        let closed = log.close().await.unwrap();
        assert_eq!((closed.log_start_offset, closed.recovery_point), (0, 60));
        60
    })
}

fn clean_hints(log_end_offset: i64) -> RecoveryHints {
    RecoveryHints {
        recovery_point: Some(log_end_offset),
        log_start_offset: Some(0),
        clean_shutdown: true,
    }
}

#[test]
fn reopen_after_clean_close_skips_rescans_and_answers_the_same() {
    let fx = Fixture::new();
    let end = build_closed_log(&fx);
    block_on(async {
        let log = fx
            .try_open(indexed_config(), clean_hints(end))
            .await
            .unwrap();
        let report = log.recovery_report().clone();
        assert_eq!((report.segments_loaded, report.segments_rescanned), (4, 0));
        assert_eq!((report.indexes_rebuilt, report.truncated_bytes), (0, 0));
        let expected = answers(&log).await;
        assert_eq!(
            expected.timestamps[0],
            Some(TimestampOffset {
                timestamp: START_MS,
                offset: 0
            })
        );
        assert_eq!(
            expected.max_timestamp,
            Some(TimestampOffset {
                timestamp: START_MS + 190,
                offset: 57
            })
        );
        drop(log);
        // Without the marker, from the segment holding the recovery point.
        let hints = RecoveryHints {
            clean_shutdown: false,
            ..clean_hints(end)
        };
        let log = fx.try_open(indexed_config(), hints).await.unwrap();
        assert_eq!(log.recovery_report().segments_rescanned, 1);
        assert_eq!(answers(&log).await, expected);
        drop(log);
        let hints = RecoveryHints {
            recovery_point: Some(20),
            ..hints
        };
        let log = fx.try_open(indexed_config(), hints).await.unwrap();
        assert_eq!(log.recovery_report().segments_rescanned, 3);
        assert_eq!(answers(&log).await, expected);
        drop(log);
        let log = fx
            .try_open(indexed_config(), RecoveryHints::default())
            .await
            .unwrap();
        assert_eq!(log.recovery_report().segments_rescanned, 4);
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(answers(&log).await, expected);
    });
}

fn tamper(storage: &SimStorage, path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut contents = storage.file_contents(path).expect("file to tamper with");
    edit(&mut contents);
    storage.set_file_contents(path, &contents);
}

type Damage = Box<dyn Fn(&SimStorage)>;

/// (what, how, how many segments' indexes must be rebuilt).
fn damage_scenarios() -> Vec<(&'static str, Damage, u32)> {
    vec![
        (
            "offset index deleted",
            Box::new(|s| s.remove_file_durably(&segment_path(0, "index"))),
            1,
        ),
        (
            "time index cut mid-entry",
            Box::new(|s| {
                tamper(s, &segment_path(16, "timeindex"), |c| {
                    c.truncate(c.len() - 5)
                })
            }),
            1,
        ),
        (
            "last offset entry points inside a batch",
            Box::new(|s| {
                tamper(s, &segment_path(32, "index"), |c| {
                    let at = c.len() - 1;
                    c[at] = c[at].wrapping_add(1);
                })
            }),
            1,
        ),
        (
            "last time entry has the wrong timestamp",
            Box::new(|s| {
                tamper(s, &segment_path(0, "timeindex"), |c| {
                    let at = c.len() - 5;
                    c[at] = c[at].wrapping_add(1);
                })
            }),
            1,
        ),
        (
            "entries out of order",
            Box::new(|s| tamper(s, &segment_path(16, "index"), |c| c.rotate_left(8))),
            1,
        ),
        (
            "active segment's index deleted",
            Box::new(|s| s.remove_file_durably(&segment_path(48, "index"))),
            1,
        ),
        (
            "every index deleted",
            Box::new(|s| {
                for base in [0, 16, 32, 48] {
                    s.remove_file_durably(&segment_path(base, "index"));
                    s.remove_file_durably(&segment_path(base, "timeindex"));
                }
            }),
            4,
        ),
    ]
}

#[test]
fn missing_or_damaged_indexes_are_rebuilt_identically() {
    let fx = Fixture::new();
    let end = build_closed_log(&fx);
    let expected = block_on(async {
        answers(
            &fx.try_open(indexed_config(), clean_hints(end))
                .await
                .unwrap(),
        )
        .await
    });
    let index_files: Vec<(std::path::PathBuf, Vec<u8>)> = [0, 16, 32, 48]
        .into_iter()
        .flat_map(|base| [segment_path(base, "index"), segment_path(base, "timeindex")])
        .map(|path| {
            let contents = fx.storage.file_contents(&path).unwrap();
            (path, contents)
        })
        .collect();
    assert!(index_files.iter().all(|(_, contents)| !contents.is_empty()));

    for (name, damage, rebuilt) in damage_scenarios() {
        let storage = fx.storage.fork();
        damage(&storage);
        let fork = Fixture::with_storage(storage.clone());
        block_on(async {
            let log = fork
                .try_open(indexed_config(), clean_hints(end))
                .await
                .unwrap();
            let report = log.recovery_report();
            assert_eq!(report.indexes_rebuilt, rebuilt, "{name}");
            assert_eq!(report.truncated_bytes, 0, "{name}");
            assert_eq!(answers(&log).await, expected, "{name}");
            log.close().await.unwrap();
        });
        for (path, original) in &index_files {
            assert_eq!(
                &storage.file_contents(path).unwrap(),
                original,
                "{name}: {}",
                path.display()
            );
        }
    }
}

#[test]
fn a_hundred_thousand_batches_reopen_with_and_without_checkpoints() {
    const BATCHES: i64 = 100_000;
    const PER_APPEND: i64 = 10;
    let fx = Fixture::new();
    let config = LogConfig {
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    };
    let make = |i: i64| batch(1, START_MS + i / 100, 8);
    let segment_count = block_on(async {
        let mut log = fx
            .try_open(config.clone(), RecoveryHints::default())
            .await
            .unwrap();
        for first in (0..BATCHES).step_by(PER_APPEND as usize) {
            let batches: Vec<Bytes> = (first..first + PER_APPEND).map(make).collect();
            let info = log.append(&concat(&batches), 5).await.unwrap();
            assert_eq!(info.first_offset, first);
            if first % 10_000 == 0 {
                log.flush().await.unwrap();
            }
        }
        let segment_count = log.segment_count();
        let closed = log.close().await.unwrap();
        assert_eq!(closed.recovery_point, BATCHES);
        segment_count
    });
    assert!(segment_count >= 7, "{segment_count} segments");
    let check = |hints: RecoveryHints, rescanned: u32| {
        block_on(async {
            let log = fx.try_open(config.clone(), hints).await.unwrap();
            let report = log.recovery_report();
            assert_eq!(report.segments_loaded as usize, segment_count);
            assert_eq!(report.segments_rescanned, rescanned);
            assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, BATCHES));
            for offset in [0, 1, 9, 10, 12_345, 50_000, 77_777, 99_999] {
                let result = log.read(offset, 1).await.unwrap();
                assert_eq!(
                    (result.first_offset, result.next_offset),
                    (offset, offset + 1)
                );
                let bytes = result.read_bytes().await.unwrap();
                assert_eq!(bytes, stored(&make(offset), offset, 5), "offset {offset}");
            }
            let found = log.offset_for_timestamp(START_MS + 500).await.unwrap();
            assert_eq!(
                found,
                Some(TimestampOffset {
                    timestamp: START_MS + 500,
                    offset: 50_000
                })
            );
            let all = log.read(99_990, u32::MAX).await.unwrap();
            assert_eq!((all.first_offset, all.next_offset), (99_990, BATCHES));
        })
    };
    check(clean_hints(BATCHES), 0);
    check(RecoveryHints::default(), segment_count as u32);
    let hints = RecoveryHints {
        recovery_point: Some(BATCHES),
        ..RecoveryHints::default()
    };
    check(hints, 1);
}
