//! Crash consistency and injected faults: whatever the simulated disk keeps
//! after a crash, reopening serves every flushed batch byte-exact, never a
//! corrupt one, and appends continue at the right offset.

mod log_support;

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_lite::future::block_on;
use log_support::*;
use rafka_core::log::{
    CorruptKind, IndexRebuild, LogConfig, LogError, LogHealth, RecoveryHints, Truncation,
};
use rafka_core::sim::SimStorage;
use rafka_proto::record::{BatchError, BatchHeader};
use rafka_testkit::rng::{seeds, Rng};

fn record_count(batch: &Bytes) -> i64 {
    i64::from(BatchHeader::decode(batch).unwrap().record_count)
}

fn hints_at(recovery_point: i64) -> RecoveryHints {
    RecoveryHints {
        recovery_point: Some(recovery_point),
        ..RecoveryHints::default()
    }
}

#[test]
fn crash_at_every_byte_of_the_last_unsynced_write() {
    let fx = Fixture::new();
    let tail = vec![
        batch(2, START_MS + 9, 15),
        batch(1, START_MS + 3, 40),
        batch(3, START_MS + 8, 5),
    ];
    let (flushed, flushed_offset) = block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        let mut flushed = Vec::new();
        for i in 0..5 {
            let b = batch(i + 1, START_MS + i as i64, 20 + 7 * i);
            let info = log.append(&b, 2).await.unwrap();
            flushed.push((info.first_offset, stored(&b, info.first_offset, 2)));
            log.flush().await.unwrap();
        }
        log.append(&concat(&tail), 3).await.unwrap();
        (flushed, log.flushed_offset())
    });
    assert_eq!(flushed_offset, 15);
    let log_path = segment_path(0, "log");
    let unsynced = fx.storage.unsynced_bytes(&log_path);
    assert_eq!(unsynced, tail.iter().map(Bytes::len).sum::<usize>());
    for kept in 0..=unsynced {
        let storage = fx.storage.fork();
        storage.crash_keeping(&log_path, kept);
        let fork = Fixture::with_storage(storage);
        // Alternate between trusting the checkpoint and rescanning all.
        let hints = match kept % 2 {
            0 => hints_at(flushed_offset),
            _ => RecoveryHints::default(),
        };
        let mut expected = flushed.clone();
        let mut offset = flushed_offset;
        let mut whole_bytes = 0;
        for b in &tail {
            if whole_bytes + b.len() > kept {
                break;
            }
            expected.push((offset, stored(b, offset, 3)));
            offset += record_count(b);
            whole_bytes += b.len();
        }
        block_on(async {
            let mut log = fork.try_open(LogConfig::default(), hints).await.unwrap();
            assert_eq!(read_all(&log, 100).await, expected, "kept {kept}");
            assert_eq!(log.log_end_offset(), offset, "kept {kept}");
            assert_eq!(log.flushed_offset(), offset, "kept {kept}");
            let report = log.recovery_report();
            assert_eq!(
                report.truncated_bytes,
                (kept - whole_bytes) as u64,
                "kept {kept}"
            );
            assert_eq!(
                report.corruption.is_some(),
                kept > whole_bytes,
                "kept {kept}"
            );
            let info = log.append(&batch(1, START_MS, 10), 4).await.unwrap();
            assert_eq!(info.first_offset, offset, "kept {kept}");
        });
    }
}

#[test]
fn unsynced_rolls_vanish_whole() {
    let fx = Fixture::new();
    let size = batch(1, START_MS, 10).len() as u32;
    let config = small_segments(3 * size);
    let expected = block_on(async {
        let mut log = fx
            .try_open(config.clone(), RecoveryHints::default())
            .await
            .unwrap();
        for _ in 0..4 {
            log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        }
        assert_eq!(log.flush().await.unwrap(), 4);
        let expected = read_all(&log, u32::MAX).await;
        for _ in 0..5 {
            log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        }
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 3, 6]);
        expected
    });
    fx.storage.crash();
    assert!(!exists(&fx.storage, &segment_path(6, "log")));
    assert!(!exists(&fx.storage, &segment_path(3, "index")));
    block_on(async {
        let mut log = fx.try_open(config, hints_at(4)).await.unwrap();
        assert_eq!(read_all(&log, u32::MAX).await, expected);
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 3]);
        assert_eq!(log.recovery_report().truncated_bytes, 0);
        assert_eq!(
            log.append(&batch(1, START_MS, 10), 0)
                .await
                .unwrap()
                .first_offset,
            4
        );
    });
}

/// After a failed fsync the page cache cannot be trusted: the log takes no
/// more writes, but what earlier flushes made durable stays readable, and
/// the unflushed batch (which the disk may have lost) is not served.
#[test]
fn a_failed_fsync_makes_the_log_read_only_until_reopened() {
    let fx = Fixture::new();
    let a = batch(1, START_MS, 10);
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        log.append(&a, 0).await.unwrap();
        log.flush().await.unwrap();
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        fx.storage.fail_next_syncs(1);
        assert!(matches!(log.flush().await, Err(LogError::Io(_))));
        assert_eq!(log.failed_op(), Some("fdatasync"));
        assert_eq!(log.health(), LogHealth::ReadOnly { op: "fdatasync" });
        assert_eq!((log.flushed_offset(), log.log_end_offset()), (1, 2));
        let refused = |result: Result<_, LogError>| {
            matches!(result, Err(LogError::ReadOnly { op: "fdatasync" }))
        };
        assert!(refused(log.append(&a, 0).await.map(|_| ())));
        assert!(refused(log.flush_begin().map(|_| ())));
        assert!(refused(log.apply_retention(START_MS).await.map(|_| ())));
        assert!(refused(log.truncate_to(0).await));
        // Reads stop at the recovery point, wherever they are bounded.
        let durable = log.read(0, u32::MAX).await.unwrap();
        assert_eq!(durable.read_bytes().await.unwrap(), stored(&a, 0, 0));
        assert_eq!(durable.next_offset, 1);
        let above = log.read(1, u32::MAX).await.unwrap();
        assert!(above.is_empty(), "offset 1 is not durable: {above:?}");
        assert_eq!(above.log_end_offset, 2);
    });
    fx.storage.crash();
    block_on(async {
        let log = fx
            .try_open(LogConfig::default(), hints_at(1))
            .await
            .unwrap();
        assert_eq!(read_all(&log, u32::MAX).await, vec![(0, stored(&a, 0, 0))]);
        assert_eq!(log.failed_op(), None);
        assert_eq!(log.health(), LogHealth::Healthy);
    });
}

#[test]
fn a_flush_that_synced_cannot_complete_once_another_failed() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        let first = log.flush_begin().unwrap();
        let second = log.flush_begin().unwrap();
        fx.storage.fail_next_syncs(1);
        assert!(first.sync().await.is_err());
        let done = second.sync().await.unwrap();
        assert!(matches!(
            log.flush_complete(done),
            Err(LogError::ReadOnly { op: "fdatasync" })
        ));
        assert_eq!(log.flushed_offset(), 0);
    });
}

/// A write that fails part-way (a short write, then ENOSPC) is undone at
/// once: the file is cut back to the last good batch, the log stays
/// readable and writable, and the next append gets the same offset the
/// failed one would have had.
#[test]
fn a_torn_write_is_cut_back_and_the_log_goes_on() {
    let fx = Fixture::new();
    let a = batch(2, START_MS, 10);
    let b = batch(1, START_MS, 30);
    let c = batch(3, START_MS, 5);
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        log.append(&a, 0).await.unwrap();
        log.flush().await.unwrap();
        fx.storage.tear_next_write(20);
        assert!(matches!(log.append(&b, 0).await, Err(LogError::Io(_))));
        assert_eq!(log.health(), LogHealth::Healthy);
        assert_eq!(log.failed_op(), None);
        assert_eq!((log.log_end_offset(), log.flushed_offset()), (2, 2));
        let log_path = segment_path(0, "log");
        assert_eq!(
            fx.storage.file_contents(&log_path).unwrap(),
            stored(&a, 0, 0),
            "the torn 20 bytes are gone"
        );
        assert_eq!(read_all(&log, u32::MAX).await, vec![(0, stored(&a, 0, 0))]);
        assert_eq!(log.append(&c, 0).await.unwrap().first_offset, 2);
        assert_eq!(log.flush().await.unwrap(), 5);
    });
    // A crash keeps exactly the two acknowledged batches.
    fx.storage.crash();
    block_on(async {
        let log = fx
            .try_open(LogConfig::default(), hints_at(5))
            .await
            .unwrap();
        assert_eq!(log.recovery_report().truncated_bytes, 0);
        assert_eq!(
            read_all(&log, u32::MAX).await,
            vec![(0, stored(&a, 0, 0)), (2, stored(&c, 2, 0))]
        );
    });
}

/// A roll whose index write fails (ENOSPC while closing the segment)
/// leaves the old segment active; the next append rolls and lands at the
/// next offset.
#[test]
fn a_failed_roll_is_retried_by_the_next_append() {
    let fx = Fixture::new();
    let size = batch(1, START_MS, 10).len() as u32;
    let config = LogConfig {
        index_interval_bytes: 1,
        ..small_segments(3 * size)
    };
    block_on(async {
        let mut log = fx
            .try_open(config.clone(), RecoveryHints::default())
            .await
            .unwrap();
        for offset in 0..3 {
            let info = log.append(&batch(1, START_MS, 10), 0).await.unwrap();
            assert_eq!(info.first_offset, offset);
        }
        // The next write is the closing segment's offset index.
        fx.storage.tear_next_write(3);
        assert!(matches!(
            log.append(&batch(1, START_MS, 10), 0).await,
            Err(LogError::Io(_))
        ));
        assert_eq!(log.health(), LogHealth::Healthy);
        assert_eq!((log.segment_count(), log.log_end_offset()), (1, 3));
        let info = log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        assert_eq!(info.first_offset, 3);
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 3]);
        assert_eq!(log.flush().await.unwrap(), 4);
        let offsets: Vec<i64> = read_all(&log, u32::MAX).await.iter().map(|b| b.0).collect();
        assert_eq!(offsets, vec![0, 1, 2, 3]);
    });
}

/// A torn write that a crash catches before it is cut (the process died
/// mid-append) is still truncated by recovery.
#[test]
fn a_torn_write_is_truncated_by_recovery() {
    let fx = Fixture::new();
    let a = batch(2, START_MS, 10);
    let b = batch(1, START_MS, 30);
    let log_path = segment_path(0, "log");
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        log.append(&a, 0).await.unwrap();
        log.flush().await.unwrap();
    });
    // What a torn write leaves before anything could cut it: the first 20
    // bytes of the next batch after the last good one.
    let mut torn = stored(&a, 0, 0).to_vec();
    torn.extend_from_slice(&stored(&b, 2, 0)[..20]);
    fx.storage.set_file_contents(&log_path, &torn);
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), hints_at(2))
            .await
            .unwrap();
        let report = log.recovery_report().clone();
        assert_eq!(report.truncated_bytes, 20);
        let corruption = report.corruption.expect("the torn batch is reported");
        assert_eq!(
            (corruption.path, corruption.position),
            (log_path.clone(), a.len() as u64)
        );
        assert_eq!(
            corruption.kind,
            CorruptKind::PastEnd {
                size_bytes: b.len() as u64,
                segment_bytes: a.len() as u64 + 20
            }
        );
        // What the shard logs at WARN and counts.
        assert_eq!(
            report.truncations,
            vec![Truncation {
                path: segment_path(0, "log"),
                position: a.len() as u64,
                truncated_bytes: 20,
                first_dropped_offset: 2,
                resumes_at: None,
                kind: corruption.kind.clone(),
            }]
        );
        assert!(report.rebuilt_indexes.is_empty());
        assert_eq!((report.segments_deleted, report.deleted_bytes), (0, 0));
        assert_eq!(read_all(&log, u32::MAX).await, vec![(0, stored(&a, 0, 0))]);
        assert_eq!(log.append(&b, 0).await.unwrap().first_offset, 2);
    });
}

#[test]
fn short_reads_are_read_through() {
    let fx = Fixture::with_storage(SimStorage::with_seed(7));
    let size = batch(2, START_MS, 40).len() as u32;
    let config = LogConfig {
        segment_bytes: 5 * size,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let expected = block_on(async {
        let mut log = fx
            .try_open(config.clone(), RecoveryHints::default())
            .await
            .unwrap();
        for i in 0..12 {
            log.append(&batch(2, START_MS + i, 40), 0).await.unwrap();
        }
        let expected = read_all(&log, 3 * size).await;
        log.close().await.unwrap();
        expected
    });
    fx.storage.set_short_reads(true);
    let reads_before = fx.storage.stats().reads;
    block_on(async {
        let log = fx
            .try_open(config.clone(), RecoveryHints::default())
            .await
            .unwrap();
        assert_eq!(log.recovery_report().truncated_bytes, 0);
        assert_eq!(read_all(&log, 3 * size).await, expected);
        let found = log
            .offset_for_timestamp(START_MS + 7)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.offset, 14);
        drop(log);
        let log = fx
            .try_open(
                config,
                RecoveryHints {
                    clean_shutdown: true,
                    ..hints_at(24)
                },
            )
            .await
            .unwrap();
        assert_eq!(log.recovery_report().indexes_rebuilt, 0);
        assert_eq!(read_all(&log, 2 * size).await, expected);
    });
    // Far more read calls than batches read: the reads really were split.
    assert!(fx.storage.stats().reads - reads_before > 100);
}

/// Three segments of two 1-record batches, flushed and closed.
fn six_batches(fx: &Fixture) -> (LogConfig, u64, Vec<(i64, Bytes)>) {
    let size = batch(1, START_MS, 30).len() as u64;
    let config = small_segments(2 * size as u32);
    let expected = block_on(async {
        let mut log = fx
            .try_open(config.clone(), RecoveryHints::default())
            .await
            .unwrap();
        for i in 0..6 {
            log.append(&batch(1, START_MS + i, 30), 0).await.unwrap();
        }
        let expected = read_all(&log, u32::MAX).await;
        log.close().await.unwrap();
        expected
    });
    (config, size, expected)
}

fn flip_byte(storage: &SimStorage, path: &std::path::Path, at: usize) {
    let mut contents = storage.file_contents(path).unwrap();
    contents[at] ^= 0x40;
    storage.set_file_contents(path, &contents);
}

#[test]
fn corruption_past_the_recovery_point_ends_the_log_there() {
    let fx = Fixture::new();
    let (config, size, expected) = six_batches(&fx);
    flip_byte(&fx.storage, &segment_path(2, "log"), size as usize + 70);
    block_on(async {
        let log = fx.try_open(config, hints_at(2)).await.unwrap();
        let report = log.recovery_report().clone();
        assert_eq!((report.segments_rescanned, report.segments_deleted), (1, 1));
        assert_eq!(report.truncated_bytes, size);
        assert_eq!(
            report.deleted_bytes,
            2 * size,
            "segment 4 and its two batches"
        );
        assert_eq!(report.truncations.len(), 1);
        let cut = &report.truncations[0];
        assert_eq!(
            (&cut.path, cut.position, cut.truncated_bytes),
            (&segment_path(2, "log"), size, size)
        );
        assert_eq!((cut.first_dropped_offset, cut.resumes_at), (3, None));
        let corruption = report.corruption.unwrap();
        assert_eq!(
            (corruption.path, corruption.position),
            (segment_path(2, "log"), size)
        );
        assert!(matches!(
            corruption.kind,
            CorruptKind::Batch(BatchError::CrcMismatch { .. })
        ));
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(read_all(&log, u32::MAX).await, expected[..3].to_vec());
        assert!(!exists(&fx.storage, &segment_path(4, "log")));
        assert!(!exists(&fx.storage, &segment_path(4, "index")));
    });
}

#[test]
fn corruption_found_by_an_index_rebuild_costs_only_that_segments_tail() {
    let fx = Fixture::new();
    let (config, size, expected) = six_batches(&fx);
    flip_byte(&fx.storage, &segment_path(0, "log"), size as usize + 70);
    fx.storage.remove_file_durably(&segment_path(0, "index"));
    block_on(async {
        let clean = RecoveryHints {
            clean_shutdown: true,
            ..hints_at(6)
        };
        let log = fx.try_open(config, clean).await.unwrap();
        let report = log.recovery_report().clone();
        assert_eq!((report.indexes_rebuilt, report.segments_deleted), (1, 0));
        assert_eq!(report.truncated_bytes, size);
        assert_eq!(
            report.rebuilt_indexes,
            vec![IndexRebuild {
                path: segment_path(0, "log"),
                base_offset: 0
            }]
        );
        // Offset 1 is dropped; the log goes on at the next segment.
        assert_eq!(report.truncations.len(), 1);
        let cut = &report.truncations[0];
        assert_eq!((cut.position, cut.truncated_bytes), (size, size));
        assert_eq!((cut.first_dropped_offset, cut.resumes_at), (1, Some(2)));
        assert_eq!(log.log_end_offset(), 6);
        let mut survivors = expected.clone();
        survivors.remove(1);
        assert_eq!(read_all(&log, u32::MAX).await, survivors);
        // Offset 1 is gone: a read there starts at the next batch.
        assert_eq!(log.read(1, 0).await.unwrap().first_offset, 2);
    });
}

/// Rewrites the 8 base offset bytes of the batch at `position` (outside
/// the CRC, so the batch still validates).
fn set_stored_base_offset(
    storage: &SimStorage,
    path: &std::path::Path,
    position: u64,
    offset: i64,
) {
    let mut contents = storage.file_contents(path).unwrap();
    let at = position as usize;
    contents[at..at + 8].copy_from_slice(&offset.to_be_bytes());
    storage.set_file_contents(path, &contents);
}

/// Five flushed batches of 40 records (0-39 .. 160-199) in one segment,
/// then a crash (no clean shutdown). Returns the batch size and what was
/// stored.
fn five_batches_of_forty(fx: &Fixture) -> (u64, Vec<(i64, Bytes)>) {
    let size = batch(40, START_MS, 8).len() as u64;
    let expected = block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        for i in 0..5 {
            log.append(&batch(40, START_MS + i, 8), 0).await.unwrap();
        }
        log.flush().await.unwrap();
        read_all(&log, u32::MAX).await
    });
    fx.storage.crash();
    (size, expected)
}

/// The case: a batch written at 80-119 whose stored base offset
/// was damaged to 122 (as 7960 -> 8002) passes its CRC, and recovery used
/// to serve it as 122-161, leaving a gap. Offsets must be contiguous in a
/// log that is not compacted: the damaged batch is corrupt, and so the
/// log ends before it.
#[test]
fn a_damaged_base_offset_is_corruption_and_the_log_ends_before_it() {
    for hints in [RecoveryHints::default(), hints_at(40)] {
        let fx = Fixture::new();
        let (size, expected) = five_batches_of_forty(&fx);
        set_stored_base_offset(&fx.storage, &segment_path(0, "log"), 2 * size, 122);
        block_on(async {
            let mut log = fx.try_open(LogConfig::default(), hints).await.unwrap();
            assert_eq!(log.log_end_offset(), 80, "{hints:?}");
            assert_eq!(read_all(&log, u32::MAX).await, expected[..2].to_vec());
            let report = log.recovery_report().clone();
            let kind = CorruptKind::OffsetGap {
                base_offset: 122,
                expected: 80,
            };
            assert_eq!(
                report.truncations,
                vec![Truncation {
                    path: segment_path(0, "log"),
                    position: 2 * size,
                    truncated_bytes: 3 * size,
                    first_dropped_offset: 80,
                    resumes_at: None,
                    kind: kind.clone(),
                }],
                "{hints:?}"
            );
            assert_eq!(report.truncated_bytes, 3 * size);
            assert_eq!(report.corruption.map(|c| c.kind), Some(kind));
            let info = log.append(&batch(1, START_MS, 8), 0).await.unwrap();
            assert_eq!(info.first_offset, 80);
        });
    }
}

/// A base offset damaged downwards (into the previous batch) or up by
/// less than a batch is caught the same way, and so is the first batch of
/// a segment that does not start at the segment's base offset.
#[test]
fn offsets_must_follow_each_other_and_start_at_the_segment_base() {
    let cases = [
        (
            1,
            30,
            CorruptKind::OffsetNotIncreasing {
                base_offset: 30,
                expected_min: 40,
            },
        ),
        (
            3,
            121,
            CorruptKind::OffsetGap {
                base_offset: 121,
                expected: 120,
            },
        ),
        (
            0,
            1,
            CorruptKind::OffsetGap {
                base_offset: 1,
                expected: 0,
            },
        ),
    ];
    for (index, damaged, kind) in cases {
        let fx = Fixture::new();
        let (size, expected) = five_batches_of_forty(&fx);
        set_stored_base_offset(&fx.storage, &segment_path(0, "log"), index * size, damaged);
        block_on(async {
            let log = fx
                .try_open(LogConfig::default(), RecoveryHints::default())
                .await
                .unwrap();
            let report = log.recovery_report().clone();
            assert_eq!(
                report.corruption.map(|c| c.kind),
                Some(kind),
                "batch {index}"
            );
            assert_eq!(log.log_end_offset(), index as i64 * 40, "batch {index}");
            assert_eq!(report.truncated_bytes, (5 - index) * size, "batch {index}");
            assert_eq!(
                read_all(&log, u32::MAX).await,
                expected[..index as usize].to_vec()
            );
        });
    }
}

/// A compacted log keeps gaps between batches (and above a segment's
/// base): recovery accepts them there, and still refuses a base offset
/// that goes back.
#[test]
fn a_compacted_log_may_have_gaps() {
    let compacted = LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        ..LogConfig::default()
    };
    let b = batch(2, START_MS, 10);
    let contents = concat(&[stored(&b, 5, 0), stored(&b, 9, 0), stored(&b, 20, 0)]);
    for (config, end) in [(compacted, 22), (LogConfig::default(), 0)] {
        let fx = Fixture::new();
        block_on(async {
            use rafka_core::io::Storage;
            fx.storage.create_dir_all(&dir()).await.unwrap();
        });
        fx.storage
            .set_file_contents(&segment_path(0, "log"), &contents);
        block_on(async {
            let log = fx
                .try_open(config.clone(), RecoveryHints::default())
                .await
                .unwrap();
            assert_eq!(
                log.log_end_offset(),
                end,
                "compact: {}",
                config.cleanup_compact
            );
            let bases: Vec<i64> = read_all(&log, u32::MAX)
                .await
                .iter()
                .map(|(o, _)| *o)
                .collect();
            let expected: &[i64] = if config.cleanup_compact {
                &[5, 9, 20]
            } else {
                &[]
            };
            assert_eq!(bases, expected);
        });
    }
    let fx = Fixture::new();
    block_on(async {
        use rafka_core::io::Storage;
        fx.storage.create_dir_all(&dir()).await.unwrap();
    });
    let backwards = concat(&[stored(&b, 5, 0), stored(&b, 6, 0)]);
    fx.storage
        .set_file_contents(&segment_path(0, "log"), &backwards);
    let log = fx.open(
        LogConfig {
            cleanup_compact: true,
            ..LogConfig::default()
        },
        RecoveryHints::default(),
    );
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(
        log.recovery_report().corruption.clone().map(|c| c.kind),
        Some(CorruptKind::OffsetNotIncreasing {
            base_offset: 6,
            expected_min: 7
        })
    );
}

/// Random appends (1-3 batches of 1-4 records) and flushes; returns what
/// was appended by base offset and the flushed offset at the end.
fn random_workload(fx: &Fixture, config: &LogConfig, rng: &mut Rng) -> (BTreeMap<i64, Bytes>, i64) {
    let mut appended: BTreeMap<i64, Bytes> = BTreeMap::new();
    let flushed_offset = block_on(async {
        let mut log = fx
            .try_open(config.clone(), RecoveryHints::default())
            .await
            .unwrap();
        for step in 0..60 {
            if rng.below(10) < 7 {
                let batches: Vec<Bytes> = (0..1 + rng.below(3))
                    .map(|_| {
                        batch(
                            1 + rng.below(4) as usize,
                            START_MS + step,
                            rng.below(60) as usize,
                        )
                    })
                    .collect();
                let info = log.append(&concat(&batches), 1).await.unwrap();
                let mut offset = info.first_offset;
                for b in &batches {
                    appended.insert(offset, stored(b, offset, 1));
                    offset += record_count(b);
                }
            } else {
                log.flush().await.unwrap();
            }
        }
        log.flushed_offset()
    });
    (appended, flushed_offset)
}

/// Random appends, flushes and rolls, then a crash keeping a random prefix
/// of every file's unsynced bytes. A failing seed replays exactly.
#[test]
fn seeded_random_crashes_keep_every_flushed_batch() {
    for seed in seeds(1..=40) {
        let fx = Fixture::with_storage(SimStorage::with_seed(seed));
        // The workload's own generator, apart from the storage's.
        let mut rng = Rng::new(seed);
        let config = LogConfig {
            segment_bytes: 300 + rng.below(1500) as u32,
            index_interval_bytes: 64,
            ..LogConfig::default()
        };
        let (appended, flushed_offset) = random_workload(&fx, &config, &mut rng);
        fx.storage.crash_random();
        let hints = match seed % 2 {
            0 => hints_at(flushed_offset),
            _ => RecoveryHints::default(),
        };
        block_on(async {
            let mut log = fx.try_open(config, hints).await.unwrap();
            let read_max_bytes = 50 + rng.below(500) as u32;
            let all = read_all(&log, read_max_bytes).await;
            for (base, bytes) in &all {
                assert_eq!(
                    appended.get(base),
                    Some(bytes),
                    "seed {seed}: batch at {base}"
                );
            }
            let must_survive: Vec<(i64, Bytes)> = appended
                .range(..flushed_offset)
                .map(|(base, bytes)| (*base, bytes.clone()))
                .collect();
            assert_eq!(all[..must_survive.len()], must_survive[..], "seed {seed}");
            assert!(log.log_end_offset() >= flushed_offset, "seed {seed}");
            let end = log.log_end_offset();
            assert_eq!(
                log.append(&batch(1, START_MS, 5), 2)
                    .await
                    .unwrap()
                    .first_offset,
                end
            );
        });
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(200))]

    /// Whatever bytes a segment file holds, open neither panics nor fails,
    /// and everything it then serves is valid.
    #[test]
    fn recovery_survives_arbitrary_segment_bytes(
        valid_batches in 0usize..4,
        noise in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        flip_at in proptest::option::of(0usize..600),
    ) {
        let fx = Fixture::new();
        let mut contents = Vec::new();
        let mut offset = 0;
        for i in 0..valid_batches {
            let b = batch(1 + i, START_MS, 10 * i);
            contents.extend_from_slice(&stored(&b, offset, 0));
            offset += record_count(&b);
        }
        contents.extend_from_slice(&noise);
        if let Some(at) = flip_at.filter(|at| *at < contents.len()) {
            contents[at] ^= 0x01;
        }
        block_on(async {
            use rafka_core::io::Storage;
            fx.storage.create_dir_all(&dir()).await.unwrap();
        });
        fx.storage.set_file_contents(&segment_path(0, "log"), &contents);
        block_on(async {
            let mut log = fx.try_open(LogConfig::default(), RecoveryHints::default()).await.unwrap();
            let all = read_all(&log, 64).await;
            assert!(all.len() <= valid_batches + noise.len() / 61);
            let end = log.log_end_offset();
            assert_eq!(log.append(&batch(1, START_MS, 1), 0).await.unwrap().first_offset, end);
        });
    }
}
