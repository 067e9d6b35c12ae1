//! The log's leader-epoch cache: kept by appends, truncation, retention and
//! DeleteRecords, persisted in `leader-epoch-checkpoint`, loaded or rebuilt
//! by `open`, and answering OffsetForLeaderEpoch.

mod log_support;

use futures_lite::future::block_on;
use log_support::*;
use rafka_core::log::{EpochEntry, EpochRebuild, Log, LogConfig, RecoveryHints};
use rafka_core::sim::SimStorage;

const CHECKPOINT: &str = "leader-epoch-checkpoint";

fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs.iter().map(|&(e, o)| EpochEntry::new(e, o)).collect()
}

fn checkpoint_text(storage: &SimStorage) -> Option<String> {
    let bytes = storage.file_contents(&dir().join(CHECKPOINT))?;
    Some(String::from_utf8(bytes).expect("checkpoint is text"))
}

/// Appends one 2-record batch per epoch in `epochs`; returns the first
/// offset of each append.
async fn append_epochs(log: &mut Log<SimStorage>, epochs: &[i32]) -> Vec<i64> {
    let mut firsts = Vec::new();
    for &epoch in epochs {
        let info = log.append(&batch(2, START_MS, 100), epoch).await.unwrap();
        firsts.push(info.first_offset);
    }
    firsts
}

/// Every requested epoch's answer, -2..=7.
fn answers(log: &Log<SimStorage>) -> Vec<(i32, (i32, i64))> {
    (-2..=7)
        .map(|requested| (requested, log.end_offset_for_epoch(requested)))
        .collect()
}

#[test]
fn appends_assign_new_epochs_and_answer_offset_for_leader_epoch() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx.open(LogConfig::default(), RecoveryHints::default());
        assert_eq!(log.latest_epoch(), None);
        assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
        let firsts = append_epochs(&mut log, &[0, 0, 3, 3, 5]).await;
        assert_eq!(firsts, [0, 2, 4, 6, 8]);
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4), (5, 8)]));
        assert_eq!(log.latest_epoch(), Some(5));
        assert_eq!(
            checkpoint_text(&fx.storage).as_deref(),
            Some("0\n3\n0 0\n3 4\n5 8\n")
        );
        // Kafka's answers: below the first epoch -> its start; between
        // entries -> the floor epoch and the next one's start; the latest
        // -> the log end; above it or undefined -> (-1, -1).
        assert_eq!(
            answers(&log),
            [
                (-2, (-2, 0)),
                (-1, (-1, -1)),
                (0, (0, 4)),
                (1, (0, 4)),
                (2, (0, 4)),
                (3, (3, 8)),
                (4, (3, 8)),
                (5, (5, 10)),
                (6, (-1, -1)),
                (7, (-1, -1)),
            ]
        );
        // A stale epoch below the latest is stamped but changes nothing.
        log.append(&batch(1, START_MS, 10), 4).await.unwrap();
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4), (5, 8)]));
        assert_eq!(log.end_offset_for_epoch(5), (5, 11));
        assert_eq!(log.epoch_for_offset(5), Some(3));
    });
}

#[test]
fn a_new_epoch_costs_one_file_write_and_the_same_epoch_nothing() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx.open(LogConfig::default(), RecoveryHints::default());
        append_epochs(&mut log, &[0]).await;
        let before = fx.storage.stats();
        append_epochs(&mut log, &[0, 0, 0]).await;
        let same = fx.storage.stats();
        assert_eq!(same.sync_data_calls, before.sync_data_calls);
        assert_eq!(same.sync_dir_calls, before.sync_dir_calls);
        assert_eq!(same.writes - before.writes, 3, "one write per batch");
        append_epochs(&mut log, &[1]).await;
        let new = fx.storage.stats();
        // The checkpoint's temp file: one write and one sync; the rename:
        // one directory sync; and the batch's own write.
        assert_eq!(new.sync_data_calls - same.sync_data_calls, 1);
        assert_eq!(new.sync_dir_calls - same.sync_dir_calls, 1);
        assert_eq!(new.writes - same.writes, 2);
    });
}

#[test]
fn entries_survive_clean_and_crash_reopens() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx.open(small_segments(600), RecoveryHints::default());
        append_epochs(&mut log, &[0, 0, 2, 2, 2, 6, 6, 9]).await;
        log.flush().await.unwrap();
        let expected = entries(&[(0, 0), (2, 4), (6, 10), (9, 14)]);
        assert_eq!(log.epoch_entries(), expected);
        assert!(log.segment_count() > 2, "epochs span segments");
        let closed = log.close().await.unwrap();
        let hints = RecoveryHints {
            recovery_point: Some(closed.recovery_point),
            log_start_offset: Some(closed.log_start_offset),
            clean_shutdown: true,
        };
        let log = fx.open(small_segments(600), hints);
        assert_eq!(log.epoch_entries(), expected);
        assert_eq!(log.recovery_report().leader_epochs_rebuilt, None);
        drop(log);
        fx.storage.crash();
        let log = fx.open(small_segments(600), RecoveryHints::default());
        assert_eq!(log.epoch_entries(), expected);
        assert_eq!(log.recovery_report().leader_epochs_rebuilt, None);
        assert_eq!(log.end_offset_for_epoch(7), (6, 14));
    });
}

#[test]
fn truncation_drops_the_entries_of_the_cut_tail() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx.open(small_segments(600), RecoveryHints::default());
        append_epochs(&mut log, &[0, 0, 3, 3, 5, 5]).await;
        log.flush().await.unwrap();
        // Inside epoch 3's batches: epoch 5 goes, 3 ends at the new end.
        log.truncate_to(6).await.unwrap();
        assert_eq!(log.log_end_offset(), 6);
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (3, 4)]));
        assert_eq!(log.end_offset_for_epoch(3), (3, 6));
        // Above every entry now: unknown, as Kafka answers.
        assert_eq!(log.end_offset_for_epoch(5), (-1, -1));
        assert_eq!(
            checkpoint_text(&fx.storage).as_deref(),
            Some("0\n2\n0 0\n3 4\n")
        );
        // Exactly at epoch 3's start: it goes too.
        log.truncate_to(4).await.unwrap();
        assert_eq!(log.epoch_entries(), entries(&[(0, 0)]));
        // A follower then appends the leader's next epoch.
        append_epochs(&mut log, &[7]).await;
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (7, 4)]));
        // Below the first segment: the log restarts empty, no epochs.
        log.raise_log_start_offset(4).await.unwrap();
        log.truncate_to(2).await.unwrap();
        assert_eq!(log.epoch_entries(), []);
        assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
        assert_eq!(checkpoint_text(&fx.storage).as_deref(), Some("0\n0\n"));
    });
}

#[test]
fn the_first_entry_follows_the_log_start() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx.open(small_segments(600), RecoveryHints::default());
        append_epochs(&mut log, &[0, 0, 3, 3, 3, 5, 5]).await;
        log.flush().await.unwrap();
        // DeleteRecords inside epoch 0: its entry now starts there.
        log.raise_log_start_offset(1).await.unwrap();
        assert_eq!(log.epoch_entries(), entries(&[(0, 1), (3, 4), (5, 10)]));
        // Past epoch 3's start: epoch 0 is gone, 3 starts at the new start.
        log.raise_log_start_offset(7).await.unwrap();
        assert_eq!(log.epoch_entries(), entries(&[(3, 7), (5, 10)]));
        assert_eq!(log.end_offset_for_epoch(0), (0, 7));
        // Retention by size deletes closed segments: the start moves to the
        // first kept segment's base if that is above it.
        let mut config = small_segments(600);
        config.retention_bytes = 1;
        log.set_config(config).unwrap();
        let outcome = log.apply_retention(START_MS).await.unwrap();
        assert!(outcome.segments_deleted > 0);
        let start = log.log_start_offset();
        assert!(start > 7);
        let expected = match start {
            s if s < 10 => entries(&[(3, s), (5, 10)]),
            s => entries(&[(5, s)]),
        };
        assert_eq!(log.epoch_entries(), expected);
        drop(log);
        fx.storage.crash();
        let log = fx.open(small_segments(600), RecoveryHints::default());
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(log.epoch_entries(), expected);
    });
}

#[test]
fn a_data_dir_without_a_checkpoint_comes_up_with_epoch_zero_from_its_start() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx.open(small_segments(600), RecoveryHints::default());
        append_epochs(&mut log, &[0; 12]).await;
        log.raise_log_start_offset(3).await.unwrap();
        log.flush().await.unwrap();
        drop(log);
        // What older rafka left: no leader-epoch-checkpoint.
        fx.storage.remove_file_durably(&dir().join(CHECKPOINT));
        let log = fx.open(small_segments(600), RecoveryHints::default());
        assert_eq!(
            log.recovery_report().leader_epochs_rebuilt,
            Some(EpochRebuild::Missing)
        );
        assert_eq!(log.epoch_entries(), entries(&[(0, 3)]));
        // As OffsetForLeaderEpoch answered before the cache existed.
        assert_eq!(log.end_offset_for_epoch(0), (0, 24));
        assert_eq!(log.end_offset_for_epoch(1), (-1, -1));
        assert_eq!(log.end_offset_for_epoch(-1), (-1, -1));
        assert_eq!(log.end_offset_for_epoch(-2), (-2, 3));
        assert_eq!(checkpoint_text(&fx.storage).as_deref(), Some("0\n1\n0 3\n"));
    });
}

#[test]
fn a_damaged_or_stale_checkpoint_is_rebuilt_from_the_batches() {
    let cases: [(&str, &[u8], Option<EpochRebuild>); 6] = [
        ("garbage", b"\xff\xfe", Some(EpochRebuild::Malformed)),
        ("bad count", b"0\n5\n0 0\n", Some(EpochRebuild::Malformed)),
        (
            "not increasing",
            b"0\n2\n3 0\n2 4\n",
            Some(EpochRebuild::Invalid),
        ),
        // Misses epoch 6: the last batch's epoch is not its entry's.
        ("stale", b"0\n2\n0 0\n2 4\n", Some(EpochRebuild::Stale)),
        // A crash between a truncation and its checkpoint write: entries
        // past the log end are cut, no rebuild needed.
        ("past the end", b"0\n4\n0 0\n2 4\n6 10\n8 40\n", None),
        ("current", b"0\n3\n0 0\n2 4\n6 10\n", None),
    ];
    for (name, text, rebuilt) in cases {
        let fx = Fixture::new();
        block_on(async {
            let mut log = fx.open(small_segments(600), RecoveryHints::default());
            append_epochs(&mut log, &[0, 0, 2, 2, 2, 6, 6]).await;
            log.flush().await.unwrap();
            drop(log);
            fx.storage.set_file_contents(&dir().join(CHECKPOINT), text);
            let log = fx.open(small_segments(600), RecoveryHints::default());
            assert_eq!(
                log.recovery_report().leader_epochs_rebuilt,
                rebuilt,
                "{name}"
            );
            assert_eq!(
                log.epoch_entries(),
                entries(&[(0, 0), (2, 4), (6, 10)]),
                "{name}"
            );
            assert_eq!(
                checkpoint_text(&fx.storage).as_deref(),
                Some("0\n3\n0 0\n2 4\n6 10\n"),
                "{name}: written back"
            );
        });
    }
}

#[test]
fn a_crash_after_a_new_epochs_checkpoint_keeps_it_at_the_log_end() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx.open(LogConfig::default(), RecoveryHints::default());
        append_epochs(&mut log, &[0, 0]).await;
        log.flush().await.unwrap();
        // Epoch 4's checkpoint is synced before its batch, which is not.
        append_epochs(&mut log, &[4, 4]).await;
        drop(log);
        fx.storage.crash();
        let log = fx.open(LogConfig::default(), RecoveryHints::default());
        assert_eq!(log.log_end_offset(), 4);
        // Epoch 4 started at the log end and has no batch yet: kept, as a
        // leader that took over at 4 has it.
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (4, 4)]));
        assert_eq!(log.end_offset_for_epoch(4), (4, 4));
        assert_eq!(log.end_offset_for_epoch(0), (0, 4));
        assert_eq!(log.recovery_report().leader_epochs_rebuilt, None);
    });
}

/// After any crash, the entries `open` settles on are the ones the batches
/// give (except an epoch that starts at the log end with no batch yet).
#[test]
fn random_crashes_leave_entries_matching_the_batches() {
    for seed in 1..40u64 {
        let fx = Fixture::with_storage(SimStorage::with_seed(seed));
        block_on(async {
            let mut log = fx.open(small_segments(700), RecoveryHints::default());
            let epochs = [0, 0, 1, 1, 1, 4, 4, 7, 7, 7, 7, 9];
            for (index, &epoch) in epochs.iter().enumerate() {
                append_epochs(&mut log, &[epoch]).await;
                if index as u64 % 4 == seed % 4 {
                    log.flush().await.unwrap();
                }
                if index == 9 && seed % 3 == 0 {
                    log.truncate_to(13).await.unwrap();
                }
            }
            drop(log);
            fx.storage.crash_random();
            let log = fx.open(small_segments(700), RecoveryHints::default());
            let mut kept = log.epoch_entries().to_vec();
            if kept.last().map(|e| e.start_offset) == Some(log.log_end_offset()) {
                kept.pop();
            }
            drop(log);
            let rebuilt_storage = fx.storage.fork();
            rebuilt_storage.remove_file_durably(&dir().join(CHECKPOINT));
            let rebuilt = Fixture::with_storage(rebuilt_storage)
                .open(small_segments(700), RecoveryHints::default());
            assert_eq!(kept, rebuilt.epoch_entries(), "seed {seed}");
        });
    }
}

#[test]
fn a_leader_taking_over_assigns_its_epoch_at_the_log_end() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx.open(LogConfig::default(), RecoveryHints::default());
        assert!(log.assign_epoch_at_end(0).await.unwrap());
        assert_eq!(log.end_offset_for_epoch(0), (0, 0));
        append_epochs(&mut log, &[0, 0]).await;
        assert!(!log.assign_epoch_at_end(0).await.unwrap());
        assert!(log.assign_epoch_at_end(2).await.unwrap());
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (2, 4)]));
        assert_eq!(log.end_offset_for_epoch(1), (0, 4));
        append_epochs(&mut log, &[2]).await;
        assert_eq!(log.epoch_entries(), entries(&[(0, 0), (2, 4)]));
        assert_eq!(log.end_offset_for_epoch(2), (2, 6));
    });
}

/// `batch(2, ..)` as the leader wrote it: at `base_offset`, of `epoch`.
fn leader_batch(base_offset: i64, epoch: i32) -> Vec<u8> {
    let mut bytes = batch(2, START_MS, 100).to_vec();
    rafka_proto::record::batch::set_base_offset(&mut bytes, base_offset);
    rafka_proto::record::batch::set_partition_leader_epoch(&mut bytes, epoch);
    bytes
}

#[test]
fn a_followers_replicated_batches_assign_the_leaders_epochs() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx.open(LogConfig::default(), RecoveryHints::default());
        // One fetch's worth: epochs 1, 1, 4, 6 (a stale 5 never comes from
        // a leader; epochs only grow along its log).
        let fetched: Vec<u8> = [(0, 1), (2, 1), (4, 4), (6, 6)]
            .iter()
            .flat_map(|&(base, epoch)| leader_batch(base, epoch))
            .collect();
        let info = log.append_replicated(&fetched.into()).await.unwrap();
        assert_eq!((info.first_offset, info.last_offset), (0, 7));
        assert_eq!(log.epoch_entries(), entries(&[(1, 0), (4, 4), (6, 6)]));
        assert_eq!(
            checkpoint_text(&fx.storage).as_deref(),
            Some("0\n3\n1 0\n4 4\n6 6\n")
        );
        // The next fetch continues epoch 6, then starts 7.
        let next: Vec<u8> = [(8, 6), (10, 7)]
            .iter()
            .flat_map(|&(base, epoch)| leader_batch(base, epoch))
            .collect();
        log.append_replicated(&next.into()).await.unwrap();
        assert_eq!(
            log.epoch_entries(),
            entries(&[(1, 0), (4, 4), (6, 6), (7, 10)])
        );
        assert_eq!(log.end_offset_for_epoch(6), (6, 10));
        assert_eq!(log.end_offset_for_epoch(7), (7, 12));
        // A gap is refused and assigns nothing.
        let gap: Vec<u8> = leader_batch(20, 9);
        assert!(log.append_replicated(&gap.into()).await.is_err());
        assert_eq!(log.latest_epoch(), Some(7));
    });
}
