//! The partition log on the simulated storage: offsets, reads, rolls,
//! retention, timestamps, truncation, group commit.

mod log_support;

use bytes::Bytes;
use futures_lite::future::block_on;
use log_support::*;
use rafka_core::log::{LogConfig, LogError, RecoveryHints, RetentionOutcome, TimestampOffset};
use rafka_proto::record::{write_crc, BatchError, BatchHeader, TimestampType};

#[test]
fn append_assigns_offsets_and_stores_batches_byte_exact() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
        let a = batch(3, START_MS, 10);
        let b = batch(1, START_MS + 5, 10);
        let c = batch(2, START_MS + 1, 10);
        let info = log.append(&a, 7).await.unwrap();
        assert_eq!((info.first_offset, info.last_offset), (0, 2));
        assert_eq!((info.batch_count, info.size_bytes), (1, a.len() as u64));
        assert_eq!(info.log_append_time_ms, None);
        let info = log
            .append(&concat(&[b.clone(), c.clone()]), 8)
            .await
            .unwrap();
        assert_eq!(
            (info.first_offset, info.last_offset, info.batch_count),
            (3, 5, 2)
        );
        assert_eq!(
            (info.max_timestamp, info.offset_of_max_timestamp),
            (START_MS + 5, 3)
        );
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(log.size_bytes(), (a.len() + b.len() + c.len()) as u64);

        let expected = vec![
            (0, stored(&a, 0, 7)),
            (3, stored(&b, 3, 8)),
            (4, stored(&c, 4, 8)),
        ];
        assert_eq!(read_all(&log, u32::MAX).await, expected);
        let on_disk = fx.storage.file_contents(&segment_path(0, "log")).unwrap();
        let expected_bytes: Vec<u8> = expected
            .iter()
            .flat_map(|(_, bytes)| bytes.to_vec())
            .collect();
        assert_eq!(on_disk, expected_bytes);
    });
}

#[test]
fn invalid_appends_are_refused_with_typed_errors_and_change_nothing() {
    let fx = Fixture::new();
    block_on(async {
        let config = LogConfig {
            max_message_bytes: 100,
            ..LogConfig::default()
        };
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        let good = batch(1, START_MS, 10);
        assert!(matches!(
            log.append(&Bytes::new(), 0).await,
            Err(LogError::EmptyAppend)
        ));
        let truncated = good.slice(..good.len() - 1);
        match log.append(&truncated, 0).await {
            Err(LogError::InvalidBatch {
                position: 0,
                source,
            }) => assert_eq!(
                source,
                BatchError::Truncated {
                    needed_bytes: good.len(),
                    available_bytes: good.len() - 1
                }
            ),
            other => panic!("unexpected {other:?}"),
        }
        let mut bad_magic = good.to_vec();
        bad_magic[16] = 1;
        match log
            .append(&concat(&[good.clone(), Bytes::from(bad_magic)]), 0)
            .await
        {
            Err(LogError::InvalidBatch { position, source }) => {
                assert_eq!((position, source), (good.len(), BatchError::BadMagic(1)));
            }
            other => panic!("unexpected {other:?}"),
        }
        let big = batch(1, START_MS, 200);
        match log.append(&big, 0).await {
            Err(LogError::BatchTooLarge {
                size_bytes,
                limit_bytes,
            }) => {
                assert_eq!((size_bytes, limit_bytes), (big.len(), 100));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            log.append(&Bytes::from_static(b"garbage"), 0).await,
            Err(LogError::InvalidBatch { position: 0, .. })
        ));
        assert_eq!((log.log_end_offset(), log.size_bytes()), (0, 0));
        assert_eq!(log.append(&good, 0).await.unwrap().first_offset, 0);
    });
}

/// 10 batches of 2 records, 4 batches per segment: segments at 0, 8, 16.
async fn ten_batches(
    fx: &Fixture,
) -> (
    rafka_core::log::Log<rafka_core::sim::SimStorage>,
    Vec<Bytes>,
    u64,
) {
    let size = batch(2, START_MS, 100).len() as u64;
    let mut log = fx
        .try_open(small_segments(4 * size as u32), RecoveryHints::default())
        .await
        .unwrap();
    let mut stored_batches = Vec::new();
    for i in 0..10 {
        let b = batch(2, START_MS + i, 100);
        let info = log.append(&b, 1).await.unwrap();
        assert_eq!(info.first_offset, 2 * i);
        stored_batches.push(stored(&b, 2 * i, 1));
    }
    (log, stored_batches, size)
}

#[test]
fn reads_return_whole_batches_within_max_bytes_but_at_least_one() {
    let fx = Fixture::new();
    block_on(async {
        let (log, batches, size) = ten_batches(&fx).await;
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 8, 16]);

        // max_bytes below the first batch: exactly that batch (KIP-74).
        let result = log.read(0, 10).await.unwrap();
        assert_eq!(
            (result.first_offset, result.next_offset, result.size_bytes),
            (0, 2, size)
        );
        assert_eq!(result.read_bytes().await.unwrap(), batches[0]);
        // An offset inside a batch returns that whole batch.
        let result = log.read(5, 0).await.unwrap();
        assert_eq!((result.first_offset, result.next_offset), (4, 6));
        assert_eq!(result.read_bytes().await.unwrap(), batches[2]);
        // Two and a half batches of budget: two batches.
        let result = log.read(0, (size * 5 / 2) as u32).await.unwrap();
        assert_eq!((result.size_bytes, result.next_offset), (2 * size, 4));
        // Spanning a segment boundary: two regions, four batches.
        let result = log.read(4, (4 * size) as u32).await.unwrap();
        assert_eq!(result.regions.len(), 2);
        assert_eq!((result.first_offset, result.next_offset), (4, 12));
        assert_eq!(result.read_bytes().await.unwrap(), concat(&batches[2..6]));
        // Everything, across three segments.
        let result = log.read(0, u32::MAX).await.unwrap();
        assert_eq!(result.regions.len(), 3);
        assert_eq!(result.read_bytes().await.unwrap(), concat(&batches));
        // At the log end: nothing.
        let result = log.read(20, 1000).await.unwrap();
        assert!(result.is_empty());
        assert_eq!((result.first_offset, result.next_offset), (20, 20));
        // Bounded by a high watermark inside segment 8.
        let result = log.read_bounded(6, u32::MAX, 11).await.unwrap();
        assert_eq!((result.first_offset, result.next_offset), (6, 10));
        assert_eq!(result.read_bytes().await.unwrap(), concat(&batches[3..5]));
        match log.read(21, 1000).await {
            Err(LogError::OffsetOutOfRange {
                offset: 21,
                log_start_offset: 0,
                log_end_offset: 20,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
    });
}

#[test]
fn raising_the_log_start_offset_deletes_whole_segments_below_it() {
    let fx = Fixture::new();
    block_on(async {
        let (mut log, batches, size) = ten_batches(&fx).await;
        let outcome = log.raise_log_start_offset(9).await.unwrap();
        assert_eq!(
            outcome,
            RetentionOutcome {
                segments_deleted: 1,
                bytes_deleted: 4 * size,
                log_start_offset: 9
            }
        );
        assert!(!exists(&fx.storage, &segment_path(0, "log")));
        assert!(!exists(&fx.storage, &segment_path(0, "index")));
        match log.read(8, 1000).await {
            Err(LogError::OffsetOutOfRange {
                offset: 8,
                log_start_offset: 9,
                log_end_offset: 20,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        let result = log.read(9, 0).await.unwrap();
        assert_eq!(result.read_bytes().await.unwrap(), batches[4]);
        assert!(matches!(
            log.raise_log_start_offset(21).await,
            Err(LogError::OffsetOutOfRange { offset: 21, .. })
        ));
        // Up to the log end: the active segment stays, empty of readable data.
        let outcome = log.raise_log_start_offset(20).await.unwrap();
        assert_eq!(
            (outcome.segments_deleted, outcome.log_start_offset),
            (1, 20)
        );
        assert_eq!(log.segment_count(), 1);
        assert!(log.read(20, 100).await.unwrap().is_empty());
    });
}

#[test]
fn a_raised_log_start_offset_survives_a_crash() {
    let fx = Fixture::new();
    block_on(async {
        let (mut log, batches, size) = ten_batches(&fx).await;
        log.flush().await.unwrap();
        // Inside the second segment (8..16): no segment boundary keeps it.
        let outcome = log.raise_log_start_offset(11).await.unwrap();
        assert_eq!(outcome.log_start_offset, 11);
        drop(log);
        fx.storage.crash();
        // No dir-wide checkpoint hint: the partition's own file carries it.
        let log = fx
            .try_open(small_segments(4 * size as u32), RecoveryHints::default())
            .await
            .unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (11, 20));
        assert!(matches!(
            log.read(9, 1000).await,
            Err(LogError::OffsetOutOfRange {
                offset: 9,
                log_start_offset: 11,
                ..
            })
        ));
        // The batch holding 10..=11 is still the first one served.
        let first = log.read(11, 0).await.unwrap();
        assert_eq!(first.read_bytes().await.unwrap(), batches[5]);
        // An older, lower hint does not lower it.
        drop(log);
        let hints = RecoveryHints {
            log_start_offset: Some(8),
            ..RecoveryHints::default()
        };
        let log = fx
            .try_open(small_segments(4 * size as u32), hints)
            .await
            .unwrap();
        assert_eq!(log.log_start_offset(), 11);
    });
}

#[test]
fn rolls_by_segment_ms_on_the_clock() {
    let fx = Fixture::new();
    block_on(async {
        let config = LogConfig {
            segment_ms: 1000,
            ..LogConfig::default()
        };
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        fx.clock.advance_ms(1000);
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        assert_eq!(log.segment_count(), 1);
        fx.clock.advance_ms(1);
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        fx.clock.advance_ms(999);
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 2]);
        // A closed segment gets its index files at roll.
        assert!(exists(&fx.storage, &segment_path(0, "index")));
        assert!(exists(&fx.storage, &segment_path(0, "timeindex")));
    });
}

#[test]
fn rolls_when_the_index_is_full() {
    let fx = Fixture::new();
    block_on(async {
        // Room for 3 offset entries and 2 time entries; an entry per batch
        // after the first.
        let config = LogConfig {
            segment_index_bytes: 24,
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        let size = batch(1, START_MS, 10).len() as u32;
        for i in 0..7 {
            log.append(&batch(1, START_MS + i, 10), 0).await.unwrap();
        }
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 3, 6]);
        let index = fx.storage.file_contents(&segment_path(0, "index")).unwrap();
        let mut expected = Vec::new();
        for (relative_offset, position) in [(1u32, size), (2, 2 * size)] {
            expected.extend_from_slice(&relative_offset.to_be_bytes());
            expected.extend_from_slice(&position.to_be_bytes());
        }
        assert_eq!(index, expected);
        let time_index = fx
            .storage
            .file_contents(&segment_path(0, "timeindex"))
            .unwrap();
        let mut expected = Vec::new();
        for (timestamp, relative_offset) in [(START_MS + 1, 1u32), (START_MS + 2, 2)] {
            expected.extend_from_slice(&timestamp.to_be_bytes());
            expected.extend_from_slice(&relative_offset.to_be_bytes());
        }
        assert_eq!(time_index, expected);
    });
}

/// A copy of `batch` claiming `last_offset_delta` (the log trusts the
/// header's span; the CRC is refreshed since it covers the field).
fn with_last_offset_delta(batch: &Bytes, last_offset_delta: i32) -> Bytes {
    let mut copy = batch.to_vec();
    copy[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
    write_crc(&mut copy);
    Bytes::from(copy)
}

#[test]
fn rolls_before_relative_offsets_overflow() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        let max = i64::from(i32::MAX);
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        let wide = with_last_offset_delta(&batch(1, START_MS, 10), i32::MAX - 1);
        let info = log.append(&wide, 0).await.unwrap();
        assert_eq!((info.first_offset, info.last_offset), (1, max));
        assert_eq!(log.segment_count(), 1);
        let info = log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        assert_eq!(info.first_offset, max + 1);
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, max + 1]);
        let result = log.read(max / 2, 0).await.unwrap();
        assert_eq!(result.first_offset, 1);
        log.close().await.unwrap();
        let log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        assert_eq!(log.recovery_report().truncated_bytes, 0);
        assert_eq!(log.log_end_offset(), max + 2);
    });
}

#[test]
fn retention_by_time_deletes_expired_closed_segments_only() {
    let fx = Fixture::new();
    block_on(async {
        let size = batch(1, START_MS, 10).len() as u32;
        let config = LogConfig {
            segment_bytes: 2 * size,
            retention_ms: 10_000,
            ..LogConfig::default()
        };
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        for timestamp in [0, 1000, 5000, 6000, 20_000] {
            log.append(&batch(1, START_MS + timestamp, 10), 0)
                .await
                .unwrap();
        }
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 2, 4]);
        let outcome = log.apply_retention(START_MS + 16_000).await.unwrap();
        assert_eq!(
            outcome,
            RetentionOutcome {
                segments_deleted: 1,
                bytes_deleted: 2 * u64::from(size),
                log_start_offset: 2
            }
        );
        let outcome = log.apply_retention(START_MS + 16_001).await.unwrap();
        assert_eq!((outcome.segments_deleted, outcome.log_start_offset), (1, 4));
        // The active segment survives any age.
        let outcome = log.apply_retention(START_MS + 1_000_000_000).await.unwrap();
        assert_eq!((outcome.segments_deleted, log.segment_count()), (0, 1));
        assert_eq!(log.log_start_offset(), 4);
    });
}

#[test]
fn retention_by_bytes_keeps_the_log_just_above_the_limit() {
    let fx = Fixture::new();
    block_on(async {
        let size = batch(1, START_MS, 10).len() as u32;
        let config = LogConfig {
            segment_bytes: 2 * size,
            retention_bytes: 3 * i64::from(size),
            ..LogConfig::default()
        };
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        for _ in 0..7 {
            log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        }
        assert_eq!(log.segment_count(), 4);
        let outcome = log.apply_retention(START_MS).await.unwrap();
        assert_eq!(
            outcome,
            RetentionOutcome {
                segments_deleted: 2,
                bytes_deleted: 4 * u64::from(size),
                log_start_offset: 4
            }
        );
        assert_eq!(log.size_bytes(), 3 * u64::from(size));
        assert!(!exists(&fx.storage, &segment_path(2, "log")));
        assert!(exists(&fx.storage, &segment_path(4, "log")));
        assert_eq!(
            log.apply_retention(START_MS)
                .await
                .unwrap()
                .segments_deleted,
            0
        );
    });
}

#[test]
fn retention_stops_below_the_bound_it_is_given() {
    let fx = Fixture::new();
    block_on(async {
        let size = batch(1, START_MS, 10).len() as u32;
        let config = LogConfig {
            segment_bytes: 2 * size,
            retention_bytes: 0,
            ..LogConfig::default()
        };
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        for _ in 0..7 {
            log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        }
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 2, 4, 6]);
        // Offsets 3 and up are not readable yet (a high watermark of 3):
        // only the segment ending at 2 may go, however small the limit.
        let outcome = log.apply_retention_below(START_MS, 3).await.unwrap();
        assert_eq!((outcome.segments_deleted, outcome.log_start_offset), (1, 2));
        let outcome = log.apply_retention_below(START_MS, 6).await.unwrap();
        assert_eq!((outcome.segments_deleted, outcome.log_start_offset), (2, 6));
        assert_eq!(log.segment_count(), 1);
    });
}

#[test]
fn timestamp_lookups_answer_at_record_level() {
    let fx = Fixture::new();
    block_on(async {
        let t = |delta: i64| START_MS + delta;
        let batches: Vec<Bytes> = [
            [t(100), t(300)],
            [t(200), t(150)],
            [t(400), t(350)],
            [t(500), t(500)],
        ]
        .iter()
        .map(|timestamps| batch_with_timestamps(timestamps, 10))
        .collect();
        // The first two batches fill the first segment exactly.
        let config = LogConfig {
            segment_bytes: (batches[0].len() + batches[1].len()) as u32,
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        for batch in &batches {
            log.append(batch, 0).await.unwrap();
        }
        assert_eq!(log.segment_count(), 2);
        let lookup = |timestamp| {
            let log = &log;
            async move { log.offset_for_timestamp(timestamp).await.unwrap() }
        };
        let at = |timestamp, offset| Some(TimestampOffset { timestamp, offset });
        assert_eq!(lookup(0).await, at(t(100), 0));
        assert_eq!(lookup(t(100)).await, at(t(100), 0));
        assert_eq!(lookup(t(101)).await, at(t(300), 1));
        assert_eq!(lookup(t(301)).await, at(t(400), 4));
        assert_eq!(lookup(t(360)).await, at(t(400), 4));
        assert_eq!(lookup(t(401)).await, at(t(500), 6));
        assert_eq!(lookup(t(501)).await, None);
        assert_eq!(log.max_timestamp().await.unwrap(), at(t(500), 6));
        // Below the log start, answers start at the log start.
        let _ = lookup;
        log.raise_log_start_offset(5).await.unwrap();
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), at(t(350), 5));
    });
}

#[test]
fn log_append_time_stamps_batches_with_the_clock() {
    let fx = Fixture::new();
    block_on(async {
        let config = LogConfig {
            message_timestamp_type: TimestampType::LogAppendTime,
            ..LogConfig::default()
        };
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        fx.clock.set_ms(START_MS + 777);
        let info = log.append(&batch(2, START_MS, 10), 0).await.unwrap();
        assert_eq!(info.log_append_time_ms, Some(START_MS + 777));
        assert_eq!(info.max_timestamp, START_MS + 777);
        let all = read_all(&log, u32::MAX).await;
        let header = BatchHeader::decode(&all[0].1).unwrap();
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(header.max_timestamp, START_MS + 777);
        let found = log.offset_for_timestamp(START_MS + 1).await.unwrap();
        assert_eq!(
            found,
            Some(TimestampOffset {
                timestamp: START_MS + 777,
                offset: 0
            })
        );
    });
}

#[test]
fn truncate_to_removes_batches_at_and_above_and_appends_continue() {
    let fx = Fixture::new();
    block_on(async {
        let (mut log, batches, _) = ten_batches(&fx).await;
        log.truncate_to(11).await.unwrap();
        // The batch holding 10..=11 goes whole.
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(log.flushed_offset(), 10);
        let bases: Vec<i64> = log.segments().iter().map(|s| s.base_offset).collect();
        assert_eq!(bases, vec![0, 8]);
        assert!(!exists(&fx.storage, &segment_path(16, "log")));
        let expected: Vec<(i64, Bytes)> = (0..5)
            .map(|i| (2 * i, batches[i as usize].clone()))
            .collect();
        assert_eq!(read_all(&log, 300).await, expected);
        let b = batch(1, START_MS, 10);
        assert_eq!(log.append(&b, 2).await.unwrap().first_offset, 10);
        log.flush().await.unwrap();
        drop(log);
        fx.storage.crash();
        let log = fx
            .try_open(small_segments(1 << 20), RecoveryHints::default())
            .await
            .unwrap();
        let mut expected = expected;
        expected.push((10, stored(&b, 10, 2)));
        assert_eq!(read_all(&log, u32::MAX).await, expected);
        let mut log = log;
        log.truncate_to(0).await.unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
        assert_eq!(log.segment_count(), 1);
    });
}

#[test]
fn group_commit_flushes_cover_everything_before_their_begin() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        assert!(!log.has_unflushed());
        // Epoch 0's leader-epoch-checkpoint write (its own sync) is not
        // part of a flush: it happens once, before the first append.
        assert!(log.assign_epoch_at_end(0).await.unwrap());
        let syncs_before = fx.storage.stats().sync_data_calls;
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        let first = log.flush_begin().unwrap();
        assert_eq!((first.end_offset(), first.file_count()), (1, 1));
        // Appends go on while the first flush is in flight.
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        let second = log.flush_begin().unwrap();
        assert_eq!(second.end_offset(), 2);
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        // Completion order does not matter: the flushed offset only grows.
        let done = second.sync().await.unwrap();
        assert_eq!(log.flush_complete(done).unwrap(), 2);
        let done = first.sync().await.unwrap();
        assert_eq!(log.flush_complete(done).unwrap(), 2);
        assert_eq!(fx.storage.stats().sync_data_calls - syncs_before, 2);
        assert!(log.has_unflushed());
        assert_eq!(log.flush().await.unwrap(), 3);
        assert!(!log.has_unflushed());
        let idle = log.flush_begin().unwrap();
        assert_eq!(idle.file_count(), 0);
        let done = idle.sync().await.unwrap();
        assert_eq!(log.flush_complete(done).unwrap(), 3);
    });
}

#[test]
fn delete_removes_the_partition_directory() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        log.append(&batch(1, START_MS, 10), 0).await.unwrap();
        log.delete().await.unwrap();
        assert!(!exists(&fx.storage, &dir()));
        assert!(exists(&fx.storage, std::path::Path::new("/data")));
    });
}

#[test]
fn appends_larger_than_the_retained_buffer_still_round_trip() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx
            .try_open(LogConfig::default(), RecoveryHints::default())
            .await
            .unwrap();
        let big = batch(1, START_MS, 600_000);
        let small = batch(2, START_MS, 10);
        assert_eq!(log.append(&small, 0).await.unwrap().first_offset, 0);
        assert_eq!(log.append(&big, 0).await.unwrap().first_offset, 2);
        assert_eq!(log.append(&small, 0).await.unwrap().first_offset, 3);
        let expected = vec![
            (0, stored(&small, 0, 0)),
            (2, stored(&big, 2, 0)),
            (3, stored(&small, 3, 0)),
        ];
        assert_eq!(read_all(&log, 1000).await, expected);
    });
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(200))]

    /// No byte sequence handed to append panics; what is accepted is read
    /// back as written.
    #[test]
    fn append_never_panics_on_arbitrary_bytes(
        noise in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        patch_at in 0usize..61,
        use_valid_prefix in proptest::bool::ANY,
    ) {
        let fx = Fixture::new();
        let mut bytes = match use_valid_prefix {
            true => batch(2, START_MS, 20).to_vec(),
            false => Vec::new(),
        };
        // Scribble over the header of the valid batch, or use pure noise.
        for (i, byte) in noise.iter().enumerate() {
            match bytes.get_mut(patch_at + i) {
                Some(slot) if i < 4 => *slot = *byte,
                _ => bytes.push(*byte),
            }
        }
        let bytes = Bytes::from(bytes);
        block_on(async {
            let mut log = fx.try_open(LogConfig::default(), RecoveryHints::default()).await.unwrap();
            if let Ok(info) = log.append(&bytes, 0).await {
                let result = log.read(0, u32::MAX).await.unwrap();
                assert_eq!(result.size_bytes, info.size_bytes);
                assert_eq!(log.log_end_offset(), info.last_offset + 1);
            }
        });
    }
}
