//! The partition side of transactions over the simulated disk: the last
//! stable offset through transactional batches, markers and flushes; the
//! aborted-transaction index (`.txnindex`) on disk, across truncation,
//! retention, a torn append and a restart; producer state replayed from a
//! snapshot or the log start restoring open transactions.

mod log_support;

use bytes::Bytes;
use futures_lite::future::block_on;
use log_support::*;
use rafka_core::io::Storage;
use rafka_core::log::{decode_txn_index, AbortedTxn, Log, LogConfig, RecoveryHints};
use rafka_core::producer::ProducerStateTable;
use rafka_core::sim::SimStorage;
use rafka_proto::record::{
    encode_end_txn_batch, BatchBuilder, BatchHeader, Compression, ControlType, EndTxnMarker,
};

/// The log plus producer state, driven the way the shard's partition
/// drives them: append, record, index an abort, publish on flush.
struct TxnLog {
    log: Log<SimStorage>,
    producers: ProducerStateTable,
    high_watermark: i64,
}

impl TxnLog {
    fn open(fixture: &Fixture, config: LogConfig, hints: RecoveryHints) -> TxnLog {
        let mut log = fixture.open(config, hints);
        let mut producers = ProducerStateTable::default();
        let from = block_on(producers.load_latest(&fixture.storage, &dir(), log.log_end_offset()))
            .expect("load snapshot")
            .snapshot_offset
            .unwrap_or(log.log_start_offset());
        block_on(log.recover_producer_state(&mut producers, from)).expect("replay");
        let high_watermark = log.flushed_offset();
        producers.on_high_watermark(high_watermark);
        TxnLog {
            log,
            producers,
            high_watermark,
        }
    }

    fn lso(&self) -> i64 {
        self.producers
            .last_stable_offset(self.high_watermark, self.log.log_start_offset())
    }

    /// A batch of `records` records from `producer_id` (none: -1), at
    /// sequence `sequence`; returns its base offset.
    fn data(&mut self, producer_id: i64, sequence: i32, records: usize, txn: bool) -> i64 {
        let mut builder = BatchBuilder::new(Compression::None);
        if producer_id >= 0 {
            builder = builder
                .producer(producer_id, 0, sequence)
                .transactional(txn);
        }
        for i in 0..records {
            builder.push_record(START_MS, Some(format!("k{i}").as_bytes()), Some(b"v"), &[]);
        }
        self.append(builder.build().expect("batch"))
    }

    fn append(&mut self, records: Bytes) -> i64 {
        let header = BatchHeader::decode(&records).expect("header");
        let info = block_on(self.log.append(&records, 0)).expect("append");
        self.producers
            .record(&header, info.first_offset, header.max_timestamp);
        info.first_offset
    }

    /// A COMMIT or ABORT marker; returns its offset.
    fn marker(&mut self, producer_id: i64, commit: bool) -> i64 {
        let marker = EndTxnMarker {
            control_type: if commit {
                ControlType::Commit
            } else {
                ControlType::Abort
            },
            coordinator_epoch: 3,
        };
        let records = encode_end_txn_batch(marker, producer_id, 0, START_MS).expect("marker");
        let header = BatchHeader::decode(&records).expect("header");
        let offset = block_on(self.log.append(&records, 0))
            .expect("append marker")
            .first_offset;
        let completed = self
            .producers
            .record_marker(&header, Some(marker), offset, START_MS);
        if let Some(completed) = completed.filter(|c| c.aborted) {
            let entry = AbortedTxn {
                producer_id,
                first_offset: completed.first_offset,
                last_offset: offset,
                last_stable_offset: self.producers.stable_offset_after(&completed),
            };
            block_on(self.log.append_aborted_txn(entry)).expect("index the abort");
        }
        offset
    }

    fn flush(&mut self) {
        self.high_watermark = block_on(self.log.flush()).expect("flush");
        self.producers.on_high_watermark(self.high_watermark);
    }
}

fn txn_index_file(storage: &SimStorage, base_offset: i64) -> Option<Vec<AbortedTxn>> {
    let bytes = storage.file_contents(&segment_path(base_offset, "txnindex"))?;
    let (entries, torn) = decode_txn_index(&bytes);
    assert!(!torn, "a whole index file");
    Some(entries)
}

/// Offsets 0-1 plain, 2-4 txn of 10, 5-6 txn of 11, 7 ABORT of 10,
/// 8 COMMIT of 11; flushed after each step that the test looks at.
fn two_transactions(txn: &mut TxnLog) -> AbortedTxn {
    assert_eq!(txn.data(-1, 0, 2, false), 0);
    txn.flush();
    assert_eq!((txn.high_watermark, txn.lso()), (2, 2));

    assert_eq!(txn.data(10, 0, 3, true), 2);
    assert_eq!(
        txn.lso(),
        2,
        "not durable yet: the high watermark bounds it"
    );
    txn.flush();
    assert_eq!((txn.high_watermark, txn.lso()), (5, 2), "open from 2");

    assert_eq!(txn.data(11, 0, 2, true), 5);
    txn.flush();
    assert_eq!((txn.high_watermark, txn.lso()), (7, 2));

    assert_eq!(txn.marker(10, false), 7);
    assert_eq!(
        txn.lso(),
        2,
        "the abort is not durable: 10's transaction holds"
    );
    txn.flush();
    assert_eq!((txn.high_watermark, txn.lso()), (8, 5), "now 11's holds");

    assert_eq!(txn.marker(11, true), 8);
    assert_eq!(txn.lso(), 5);
    txn.flush();
    assert_eq!((txn.high_watermark, txn.lso()), (9, 9));
    AbortedTxn {
        producer_id: 10,
        first_offset: 2,
        last_offset: 7,
        // 11's transaction was still open when 10's was aborted.
        last_stable_offset: 5,
    }
}

#[test]
fn the_last_stable_offset_follows_transactions_markers_and_flushes() {
    let fixture = Fixture::new();
    let mut txn = TxnLog::open(&fixture, LogConfig::default(), RecoveryHints::default());
    let aborted = two_transactions(&mut txn);

    assert_eq!(txn.log.all_aborted_txns(), vec![aborted]);
    assert_eq!(txn.log.aborted_txns(0, 9), vec![aborted]);
    assert_eq!(
        txn.log.aborted_txns(7, 8),
        vec![aborted],
        "the marker alone"
    );
    assert_eq!(txn.log.aborted_txns(0, 2), vec![], "ends before it starts");
    assert_eq!(
        txn.log.aborted_txns(8, 9),
        vec![],
        "starts after its marker"
    );
    assert_eq!(txn_index_file(&fixture.storage, 0), Some(vec![aborted]));
    assert!(
        fixture.storage.unsynced_bytes(&segment_path(0, "txnindex")) == 0,
        "the flush that made the marker durable synced its entry"
    );

    // A marker for a producer without a transaction here ends nothing.
    let before = txn.log.log_end_offset();
    assert_eq!(txn.marker(12, false), before);
    txn.flush();
    assert_eq!(txn.lso(), before + 1);
    assert_eq!(txn.log.all_aborted_txns(), vec![aborted]);
}

#[test]
fn producer_expiry_leaves_open_transactions_and_the_lso_alone() {
    let fixture = Fixture::new();
    let mut txn = TxnLog::open(&fixture, LogConfig::default(), RecoveryHints::default());
    txn.data(1, 0, 1, false);
    txn.data(2, 0, 1, true);
    txn.flush();
    assert_eq!(txn.lso(), 1);
    assert_eq!(txn.producers.expire(i64::MAX), 1, "only the idle plain one");
    assert_eq!(txn.lso(), 1);
    assert_eq!(
        txn.producers.ongoing_transactions().collect::<Vec<_>>(),
        [(1, 2)]
    );
}

#[test]
fn a_restart_mid_transaction_keeps_the_lso_and_rebuilds_the_index() {
    let fixture = Fixture::new();
    let mut txn = TxnLog::open(&fixture, LogConfig::default(), RecoveryHints::default());
    let aborted = two_transactions(&mut txn);
    // 20 opens a transaction at 9 (durable), 21 one at 11 (not flushed).
    assert_eq!(txn.data(20, 0, 2, true), 9);
    txn.flush();
    assert_eq!(txn.data(21, 0, 1, true), 11);
    assert_eq!(txn.lso(), 9);
    drop(txn);
    fixture.storage.crash();
    fixture
        .storage
        .remove_file_durably(&segment_path(0, "txnindex"));

    // No snapshot: everything is replayed from the log start.
    let restarted = TxnLog::open(&fixture, LogConfig::default(), RecoveryHints::default());
    assert_eq!(restarted.log.log_end_offset(), 11, "21's batch was lost");
    assert_eq!(restarted.lso(), 9);
    assert_eq!(
        restarted
            .producers
            .ongoing_transactions()
            .collect::<Vec<_>>(),
        [(9, 20)]
    );
    assert_eq!(restarted.log.all_aborted_txns(), vec![aborted]);
    assert_eq!(txn_index_file(&fixture.storage, 0), Some(vec![aborted]));
    assert_eq!(
        restarted.producers.get(11).map(|p| p.coordinator_epoch()),
        Some(3),
        "the coordinator epoch is read back from the marker"
    );
}

#[test]
fn a_snapshot_carries_open_transactions_and_the_replay_goes_on_from_it() {
    let fixture = Fixture::new();
    let mut txn = TxnLog::open(&fixture, LogConfig::default(), RecoveryHints::default());
    txn.data(30, 0, 2, true); // 0-1, open
    txn.data(31, 0, 1, true); // 2
    txn.flush();
    block_on(txn.producers.snapshot(&fixture.storage, &dir(), 3)).expect("snapshot");
    assert_eq!(txn.marker(31, false), 3);
    txn.data(32, 0, 1, true); // 4
    txn.flush();
    let aborted = AbortedTxn {
        producer_id: 31,
        first_offset: 2,
        last_offset: 3,
        last_stable_offset: 0,
    };
    assert_eq!(txn.log.all_aborted_txns(), vec![aborted]);
    assert_eq!(txn.lso(), 0);
    drop(txn);
    fixture.storage.crash();

    let restarted = TxnLog::open(&fixture, LogConfig::default(), RecoveryHints::default());
    assert_eq!(restarted.lso(), 0, "30's transaction from the snapshot");
    assert_eq!(
        restarted
            .producers
            .ongoing_transactions()
            .collect::<Vec<_>>(),
        [(0, 30), (4, 32)]
    );
    assert_eq!(restarted.log.all_aborted_txns(), vec![aborted]);
}

#[test]
fn a_clean_reopen_reads_the_index_file_back() {
    let fixture = Fixture::new();
    let mut txn = TxnLog::open(&fixture, LogConfig::default(), RecoveryHints::default());
    let aborted = two_transactions(&mut txn);
    let end = txn.log.log_end_offset();
    block_on(txn.producers.snapshot(&fixture.storage, &dir(), end)).expect("snapshot");
    let closed = block_on(txn.log.close()).expect("close");
    let hints = RecoveryHints {
        recovery_point: Some(closed.recovery_point),
        log_start_offset: Some(closed.log_start_offset),
        clean_shutdown: true,
    };
    let reopened = TxnLog::open(&fixture, LogConfig::default(), hints);
    assert_eq!(reopened.log.all_aborted_txns(), vec![aborted]);
    assert_eq!(reopened.lso(), end);
}

#[test]
fn truncation_and_a_torn_entry_cut_the_index() {
    let fixture = Fixture::new();
    let mut txn = TxnLog::open(&fixture, LogConfig::default(), RecoveryHints::default());
    let aborted = two_transactions(&mut txn);
    block_on(txn.log.truncate_to(7)).expect("truncate below the abort");
    assert_eq!(txn.log.all_aborted_txns(), vec![]);
    assert_eq!(txn_index_file(&fixture.storage, 0), Some(vec![]));
    drop(txn);

    // A torn append: a whole entry, then part of the next; and an entry
    // whose marker is past the log end (its segment's tail was cut).
    let path = segment_path(0, "txnindex");
    let whole = AbortedTxn {
        last_offset: 6,
        ..aborted
    };
    let mut torn = whole.encode().to_vec();
    torn.extend_from_slice(&aborted.encode());
    torn.extend_from_slice(&aborted.encode()[..20]);
    fixture.storage.set_file_contents(&path, &torn);
    let log = fixture.open(LogConfig::default(), RecoveryHints::default());
    assert_eq!(log.all_aborted_txns(), vec![whole]);
    assert_eq!(txn_index_file(&fixture.storage, 0), Some(vec![whole]));
    drop(log);

    // Replayed from the log start, the index is what the log says: no
    // abort below offset 7.
    let reopened = TxnLog::open(&fixture, LogConfig::default(), RecoveryHints::default());
    assert_eq!(reopened.log.all_aborted_txns(), vec![]);
    assert_eq!(txn_index_file(&fixture.storage, 0), Some(vec![]));
}

#[test]
fn an_index_entry_goes_with_its_segment() {
    let fixture = Fixture::new();
    let config = small_segments(200);
    let mut txn = TxnLog::open(&fixture, config, RecoveryHints::default());
    txn.data(40, 0, 1, true);
    let marker = txn.marker(40, false);
    assert_eq!(marker, 1);
    while txn.log.segment_count() < 3 {
        txn.data(-1, 0, 1, false);
    }
    txn.flush();
    let first = txn.log.segments()[0];
    assert!(
        first.next_offset > marker,
        "the abort is in the first segment"
    );
    assert!(exists(&fixture.storage, &segment_path(0, "txnindex")));
    block_on(txn.log.raise_log_start_offset(first.next_offset)).expect("delete records");
    assert!(!exists(&fixture.storage, &segment_path(0, "txnindex")));
    assert_eq!(txn.log.all_aborted_txns(), vec![]);
    block_on(async {
        let names = fixture.storage.list_dir(&dir()).await.expect("list");
        assert!(!names.iter().any(|n| n.ends_with(".txnindex")), "{names:?}");
    });
}

/// Every batch of the log: (base offset, control, [(key, value)]).
type Stored = (i64, bool, Vec<(String, String)>);

fn stored_batches(log: &Log<SimStorage>) -> Vec<Stored> {
    let read = block_on(log.read(log.log_start_offset(), u32::MAX)).expect("read");
    let bytes = block_on(read.read_bytes()).expect("bytes");
    rafka_proto::record::Batches::new(bytes)
        .map(|batch| {
            let batch = batch.expect("valid batch");
            let header = *batch.header();
            let records = match header.is_control() {
                true => Vec::new(),
                false => batch
                    .records(Default::default())
                    .expect("records")
                    .map(|r| {
                        let r = r.expect("record");
                        let text =
                            |b: Option<Bytes>| String::from_utf8(b.unwrap_or_default().to_vec());
                        (text(r.key).unwrap(), text(r.value).unwrap())
                    })
                    .collect(),
            };
            (header.base_offset, header.is_control(), records)
        })
        .collect()
}

impl TxnLog {
    /// One record `key` = `value` from `producer_id` (-1: plain).
    fn put(&mut self, producer_id: i64, sequence: i32, key: &str, value: &str) -> i64 {
        let mut builder = BatchBuilder::new(Compression::None);
        if producer_id >= 0 {
            builder = builder
                .producer(producer_id, 0, sequence)
                .transactional(true);
        }
        builder.push_record(START_MS, Some(key.as_bytes()), Some(value.as_bytes()), &[]);
        self.append(builder.build().expect("batch"))
    }

    /// Plain records of fresh keys until everything below `offset` is in
    /// closed segments; flushed.
    fn close_below(&mut self, offset: i64) {
        let mut i = 0;
        while self.log.segments().last().expect("active").base_offset < offset {
            self.put(-1, 0, &format!("filler-{offset}-{i}"), "f");
            i += 1;
        }
        self.flush();
    }

    fn compact(&mut self, now_ms: i64) -> u64 {
        let plan = self.log.compaction_plan_below(now_ms, self.lso());
        let Some(plan) = plan else {
            return 0;
        };
        let cleaned = block_on(plan.build()).expect("build");
        block_on(self.log.install_compacted(cleaned))
            .expect("install")
            .records_removed
    }
}

fn compacted_log() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

#[test]
fn compaction_removes_aborted_records_and_keeps_committed_ones() {
    let fixture = Fixture::new();
    let mut txn = TxnLog::open(&fixture, compacted_log(), RecoveryHints::default());
    assert_eq!(txn.put(-1, 0, "a", "1"), 0);
    assert_eq!(txn.put(50, 0, "a", "aborted"), 1);
    assert_eq!(txn.put(51, 0, "b", "committed"), 2);
    assert_eq!(txn.marker(50, false), 3);
    assert_eq!(txn.marker(51, true), 4);
    txn.close_below(5);
    let open = txn.put(52, 0, "c", "open");
    // A newer c: only the LSO bound keeps the open transaction's c.
    txn.put(-1, 0, "c", "newer");
    txn.close_below(open + 2);
    assert_eq!(txn.lso(), open, "52's transaction is open");

    let removed = txn.compact(START_MS);
    assert_eq!(removed, 1, "the aborted record (fillers are unique)");
    let batches = stored_batches(&txn.log);
    let kept: Vec<&Stored> = batches.iter().filter(|b| b.0 < 5).collect();
    assert!(
        batches.iter().any(|b| b.0 == open),
        "the open transaction's"
    );
    assert_eq!(
        kept,
        [
            &(0, false, vec![("a".into(), "1".into())]),
            &(2, false, vec![("b".into(), "committed".into())]),
            &(3, true, vec![]),
            &(4, true, vec![]),
        ],
        "the aborted write of a neither removed nor shadowing the committed 1; \
         both markers kept while their transactions had batches in the pass"
    );
    let abort = AbortedTxn {
        producer_id: 50,
        first_offset: 1,
        last_offset: 3,
        last_stable_offset: 2,
    };
    assert_eq!(txn.log.all_aborted_txns(), vec![abort]);

    // Past delete.retention.ms: the abort's transaction has nothing left,
    // so its marker goes (emptied: it is 50's last batch); the commit's
    // transaction still has its record, so that marker stays.
    let commit_52 = txn.marker(52, true);
    txn.close_below(commit_52 + 1);
    assert_eq!(txn.lso(), txn.log.log_end_offset());
    assert!(txn.compact(START_MS + 5_000) > 0);
    let batches = stored_batches(&txn.log);
    let markers: Vec<(i64, bool)> = batches
        .iter()
        .filter(|b| b.1)
        .map(|b| (b.0, b.2.is_empty()))
        .collect();
    assert_eq!(markers, [(3, true), (4, true), (commit_52, true)]);
    let abort_marker = block_on(txn.log.read(3, 1)).expect("read");
    let bytes = block_on(abort_marker.read_bytes()).expect("bytes");
    let header = BatchHeader::decode(&bytes).expect("header");
    assert_eq!((header.base_offset, header.record_count), (3, 0));
    assert_eq!(txn.log.all_aborted_txns(), vec![], "its entry went with it");

    // Producer state replayed from the compacted log sees no transaction
    // open: every kept transactional batch kept its marker.
    let mut producers = ProducerStateTable::default();
    block_on(txn.log.recover_producer_state(&mut producers, 0)).expect("replay");
    assert_eq!(producers.ongoing_transactions().count(), 0);
    producers.on_high_watermark(txn.log.log_end_offset());
    assert_eq!(producers.first_unstable_offset(), None);
}
