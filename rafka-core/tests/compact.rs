//! Log compaction over the simulated disk: one record per key survives
//! with its offset, batches stay valid (CRC, codecs), tombstones live for
//! delete.retention.ms, the dirty ratio and compaction lag gate a pass, and
//! a crash at any step of a pass loses no key's latest value.

mod log_support;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use futures_lite::future::block_on;
use log_support::*;
use rafka_core::io::{IoError, Storage, StorageFile};
use rafka_core::log::{Log, LogConfig, RecoveryHints};
use rafka_core::sim::SimStorage;
use rafka_proto::record::{BatchBuilder, Batches, Compression, RecordBatch, RecordLimits};

const KEYS: usize = 20;
const RECORDS: usize = 1000;
const RECORDS_PER_BATCH: usize = 10;

/// One surviving record: (offset, key, value).
type Seen = (i64, Vec<u8>, Option<Vec<u8>>);
/// A key's surviving records: (offset, value).
type Versions = Vec<(i64, Option<Vec<u8>>)>;

fn compacted(segment_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        cleanup_compact: true,
        cleanup_delete: false,
        ..LogConfig::default()
    }
}

/// Any new dirt triggers a pass.
fn eager(segment_bytes: u32) -> LogConfig {
    LogConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..compacted(segment_bytes)
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("key-{:02}", i % KEYS).into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("value-{i:04}-padding-padding").into_bytes()
}

/// A batch of records `first..first + count` (key `i % KEYS`, value `i`).
fn keyed_batch(codec: Compression, first: usize, count: usize, timestamp_ms: i64) -> Bytes {
    let mut builder = BatchBuilder::new(codec);
    for i in first..first + count {
        builder.push_record(timestamp_ms, Some(&key(i)), Some(&value(i)), &[]);
    }
    builder.build().expect("build")
}

/// A batch of records with the given keys and values (None: tombstone).
fn batch_of(records: &[(&[u8], Option<&[u8]>)], timestamp_ms: i64) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for (key, value) in records {
        builder.push_record(timestamp_ms, Some(key), *value, &[]);
    }
    builder.build().expect("build")
}

/// Appends records with unique keys until the active segment starts at or
/// past `offset`, so everything below it is closed (and cleanable).
async fn close_below<S: Storage + Clone>(log: &mut Log<S>, offset: i64, timestamp_ms: i64) {
    let mut n = 0;
    while log.segments().last().map(|s| s.base_offset) < Some(offset) {
        let filler = format!("filler-{offset}-{n}").into_bytes();
        log.append(&batch_of(&[(&filler, Some(b"f"))], timestamp_ms), 0)
            .await
            .expect("append filler");
        n += 1;
    }
    log.flush().await.expect("flush");
}

/// Every stored batch through the read path, each CRC checked; offsets
/// increase but may leave gaps (removed records), so every read resumes
/// where the previous one said.
async fn batches_of(log: &Log<SimStorage>) -> Vec<Bytes> {
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    let mut last_offset = -1;
    while offset < log.log_end_offset() {
        let result = log.read(offset, 64 * 1024).await.expect("read");
        assert!(!result.is_empty(), "read at {offset} returned nothing");
        let bytes = result.read_bytes().await.expect("read regions");
        for batch in Batches::new(bytes) {
            let batch = batch.expect("every stored batch is valid (CRC)");
            let header = *batch.header();
            assert!(header.base_offset > last_offset, "offsets increase");
            assert!(header.next_offset() <= result.next_offset);
            last_offset = header.last_offset();
            batches.push(batch.into_bytes());
        }
        assert!(result.next_offset > offset, "reads make progress");
        offset = result.next_offset;
    }
    batches
}

/// Every record the read path returns.
async fn records_of(log: &Log<SimStorage>) -> Vec<Seen> {
    let mut seen = Vec::new();
    for bytes in batches_of(log).await {
        let (batch, _) = RecordBatch::parse(&bytes).expect("valid batch");
        let base = batch.header().base_offset;
        for record in batch.records(RecordLimits::default()).expect("records") {
            let record = record.expect("record");
            seen.push((
                record.offset(base),
                record.key.map(|k| k.to_vec()).unwrap_or_default(),
                record.value.map(|v| v.to_vec()),
            ));
        }
    }
    seen
}

/// The data records (fillers left out) by key.
fn by_key(seen: &[Seen]) -> BTreeMap<Vec<u8>, Versions> {
    let mut keys: BTreeMap<Vec<u8>, Versions> = BTreeMap::new();
    for (offset, key, value) in seen {
        if !key.starts_with(b"filler") {
            keys.entry(key.clone())
                .or_default()
                .push((*offset, value.clone()));
        }
    }
    keys
}

/// Key i's latest record among `RECORDS` is at offset RECORDS - KEYS + i.
fn assert_latest_only(seen: &[Seen], context: &str) {
    let keys = by_key(seen);
    assert_eq!(keys.len(), KEYS, "{context}");
    for (i, (k, records)) in keys.iter().enumerate() {
        let last = RECORDS - KEYS + i;
        assert_eq!(k, &key(last), "{context}");
        assert_eq!(
            records,
            &vec![(last as i64, Some(value(last)))],
            "{context}: key {i}"
        );
    }
}

async fn append_rounds<S: Storage + Clone>(log: &mut Log<S>, codec: Compression) {
    for first in (0..RECORDS).step_by(RECORDS_PER_BATCH) {
        let batch = keyed_batch(codec, first, RECORDS_PER_BATCH, START_MS + first as i64);
        log.append(&batch, 0).await.expect("append");
    }
    close_below(log, RECORDS as i64, START_MS + RECORDS as i64).await;
}

#[test]
fn one_record_per_key_survives_with_its_offset() {
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let fx = Fixture::new();
        let context = format!("{codec:?}");
        block_on(async {
            let mut log = fx
                .try_open(eager(2048), RecoveryHints::default())
                .await
                .unwrap();
            append_rounds(&mut log, codec).await;
            let segments_before = log.segment_count();
            let end = log.log_end_offset();
            let outcome = log.compact(START_MS + 2000).await.unwrap().expect("due");
            assert_eq!(log.log_end_offset(), end, "{context}");
            assert_eq!(
                outcome.records_removed,
                (RECORDS - KEYS) as u64,
                "{context}"
            );
            assert!(
                outcome.key_count as usize > KEYS,
                "{context}: keys and fillers"
            );
            assert!(outcome.bytes_after < outcome.bytes_before / 10, "{context}");
            // Groups are sized before cleaning: full segments are each
            // rewritten alone, and merged on the next pass once small.
            let end_before_merge = log.log_end_offset();
            close_below(&mut log, end_before_merge, START_MS).await;
            log.compact(START_MS + 2000)
                .await
                .unwrap()
                .expect("dirty again");
            assert!(segments_before >= 10, "{context}: {segments_before}");
            assert!(
                log.segment_count() <= 4,
                "{context}: {}",
                log.segment_count()
            );
            assert_eq!(log.log_start_offset(), 0, "{context}");
            let seen = records_of(&log).await;
            assert_latest_only(&seen, &context);
            let end = log.log_end_offset();
            // Offsets never move: the next append follows the old end.
            let info = log
                .append(&keyed_batch(codec, 0, 1, START_MS + 3000), 0)
                .await
                .unwrap();
            assert_eq!(info.first_offset, end, "{context}");
            log.close().await.unwrap();
        });
        block_on(async {
            let log = fx
                .try_open(compacted(2048), RecoveryHints::default())
                .await
                .unwrap();
            let seen = records_of(&log).await;
            let keys = by_key(&seen);
            let first_key = &keys[&key(0)];
            assert_eq!(
                first_key.len(),
                2,
                "{context}: the old latest and the new append"
            );
            assert_eq!(first_key[1].0, log.log_end_offset() - 1, "{context}");
        });
    }
}

#[test]
fn compressed_batches_keep_their_codec() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx
            .try_open(compacted(4096), RecoveryHints::default())
            .await
            .unwrap();
        append_rounds(&mut log, Compression::Zstd).await;
        log.compact(START_MS).await.unwrap().expect("due");
        for bytes in batches_of(&log).await {
            let header = rafka_proto::record::validate(&bytes).expect("CRC");
            let codec = header.compression().unwrap();
            let filler = header.record_count == 1 && bytes.len() < 100;
            assert!(codec == Compression::Zstd || filler, "{codec:?}");
        }
    });
}

#[test]
fn tombstones_live_for_delete_retention_ms() {
    let fx = Fixture::new();
    let config = LogConfig {
        delete_retention_ms: 1000,
        min_cleanable_dirty_ratio: 0.0,
        ..compacted(1024)
    };
    block_on(async {
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        log.append(&batch_of(&[(a, Some(b"1")), (b, Some(b"1"))], START_MS), 0)
            .await
            .unwrap();
        log.append(&batch_of(&[(a, None)], START_MS), 0)
            .await
            .unwrap();
        close_below(&mut log, 3, START_MS).await;
        log.compact(START_MS + 1000).await.unwrap().expect("due");
        let keys = by_key(&records_of(&log).await);
        assert_eq!(keys[a], vec![(2, None)], "tombstone kept");
        assert_eq!(keys[b], vec![(1, Some(b"1".to_vec()))]);
        // Nothing dirty: no pass, whatever the clock says.
        assert_eq!(log.compact(START_MS + 5000).await.unwrap(), None);
        let end = log.log_end_offset();
        close_below(&mut log, end, START_MS).await;
        let outcome = log.compact(START_MS + 1001).await.unwrap().expect("due");
        assert_eq!(outcome.records_removed, 1);
        let keys = by_key(&records_of(&log).await);
        assert!(!keys.contains_key(a), "tombstone gone: {keys:?}");
        assert_eq!(keys[b], vec![(1, Some(b"1".to_vec()))]);
    });
}

#[test]
fn the_dirty_ratio_and_compaction_lag_gate_a_pass() {
    let fx = Fixture::new();
    let config = LogConfig {
        min_compaction_lag_ms: 10_000,
        ..compacted(2048)
    };
    block_on(async {
        let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
        // A large clean part: 400 unique keys, all of which stay.
        for first in (0..400).step_by(RECORDS_PER_BATCH) {
            let records: Vec<(Vec<u8>, Vec<u8>)> = (first..first + RECORDS_PER_BATCH)
                .map(|i| (format!("unique-{i:03}").into_bytes(), value(i)))
                .collect();
            let refs: Vec<(&[u8], Option<&[u8]>)> = records
                .iter()
                .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
                .collect();
            log.append(&batch_of(&refs, START_MS), 0).await.unwrap();
        }
        close_below(&mut log, 400, START_MS).await;
        assert_eq!(log.compact(START_MS + 9_999).await.unwrap(), None, "lag");
        let outcome = log.compact(START_MS + 10_000).await.unwrap().expect("due");
        assert_eq!(outcome.records_removed, 0);
        let clean = log.clean_offset();
        assert_eq!(clean, log.segments().last().unwrap().base_offset);
        // One more closed segment is far below the 0.5 ratio...
        let end = log.log_end_offset();
        close_below(&mut log, end, START_MS).await;
        let info = log.segments();
        let closed = &info[..info.len() - 1];
        let total: u64 = closed.iter().map(|s| s.size_bytes).sum();
        let dirty: u64 = closed
            .iter()
            .filter(|s| s.base_offset >= clean)
            .map(|s| s.size_bytes)
            .sum();
        assert!(dirty > 0 && dirty * 4 < total, "dirty {dirty} of {total}");
        assert_eq!(log.compact(START_MS + 20_000).await.unwrap(), None, "ratio");
        // ...until the dirty part is at least half of the cleanable bytes.
        for first in (0..RECORDS).step_by(RECORDS_PER_BATCH) {
            let batch = keyed_batch(Compression::None, first, RECORDS_PER_BATCH, START_MS);
            log.append(&batch, 0).await.unwrap();
        }
        let end = log.log_end_offset();
        close_below(&mut log, end, START_MS).await;
        let outcome = log
            .compact(START_MS + 20_000)
            .await
            .unwrap()
            .expect("ratio met");
        assert_eq!(outcome.records_removed, (RECORDS - KEYS) as u64);
        assert_eq!(by_key(&records_of(&log).await).len(), KEYS + 400);
    });
}

#[test]
fn compact_only_logs_skip_retention() {
    for (delete, expect_deleted) in [(false, false), (true, true)] {
        let fx = Fixture::new();
        let config = LogConfig {
            retention_ms: 1,
            cleanup_delete: delete,
            ..compacted(2048)
        };
        block_on(async {
            let mut log = fx.try_open(config, RecoveryHints::default()).await.unwrap();
            append_rounds(&mut log, Compression::None).await;
            let outcome = log.apply_retention(START_MS + 1_000_000).await.unwrap();
            assert_eq!(
                outcome.segments_deleted > 0,
                expect_deleted,
                "delete={delete}"
            );
        });
    }
}

#[test]
fn readers_of_old_files_keep_reading_them() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx
            .try_open(compacted(2048), RecoveryHints::default())
            .await
            .unwrap();
        append_rounds(&mut log, Compression::Lz4).await;
        let before = log.read(0, u32::MAX).await.unwrap();
        let plan = log.compaction_plan(START_MS).expect("due");
        let cleaned = plan.build().await.unwrap();
        // Appends go on while the pass builds; the install still fits.
        let late: &[u8] = b"filler-late";
        log.append(&batch_of(&[(late, Some(b"f"))], START_MS), 0)
            .await
            .unwrap();
        let outcome = log.install_compacted(cleaned).await.unwrap();
        assert_eq!(outcome.groups_discarded, 0);
        let old_bytes = before.read_bytes().await.unwrap();
        assert_eq!(old_bytes.len() as u64, before.size_bytes);
        let records: usize = Batches::new(old_bytes)
            .map(|b| b.unwrap().header().record_count as usize)
            .sum();
        assert!(records >= RECORDS, "old regions still whole: {records}");
        assert_latest_only(&records_of(&log).await[..], "after install");
    });
}

#[test]
fn a_pass_whose_originals_went_away_is_discarded() {
    let fx = Fixture::new();
    block_on(async {
        let mut log = fx
            .try_open(compacted(2048), RecoveryHints::default())
            .await
            .unwrap();
        append_rounds(&mut log, Compression::None).await;
        let second_base = log.segments()[1].base_offset;
        let cleaned = log
            .compaction_plan(START_MS)
            .expect("due")
            .build()
            .await
            .unwrap();
        log.raise_log_start_offset(second_base).await.unwrap();
        let outcome = log.install_compacted(cleaned).await.unwrap();
        assert_eq!(outcome.groups_discarded, 1);
        let names = fx.storage.list_dir(&dir()).await.unwrap();
        assert!(names.iter().all(|n| !n.ends_with(".swap")), "{names:?}");
        assert_eq!(
            log.clean_offset(),
            0,
            "no clean point past a discarded group"
        );
    });
}

/// A storage that dies after a number of mutating operations: every later
/// one fails, as if the process were gone (the test then crashes the
/// simulated disk underneath).
#[derive(Clone)]
struct Dying {
    sim: SimStorage,
    ops_left: Rc<Cell<u64>>,
}

struct DyingFile {
    file: SimFile,
    ops_left: Rc<Cell<u64>>,
}

use rafka_core::sim::SimFile;

fn step(ops_left: &Cell<u64>, op: &'static str, path: &Path) -> Result<(), IoError> {
    match ops_left.get() {
        0 => Err(IoError::new(
            op,
            path,
            std::io::Error::other("process died"),
        )),
        n => {
            ops_left.set(n - 1);
            Ok(())
        }
    }
}

impl Storage for Dying {
    type File = DyingFile;

    async fn open(&self, path: &Path) -> Result<DyingFile, IoError> {
        step(&self.ops_left, "open", path)?;
        Ok(DyingFile {
            file: self.sim.open(path).await?,
            ops_left: Rc::clone(&self.ops_left),
        })
    }
    async fn create_dir_all(&self, path: &Path) -> Result<(), IoError> {
        self.sim.create_dir_all(path).await
    }
    async fn list_dir(&self, path: &Path) -> Result<Vec<String>, IoError> {
        self.sim.list_dir(path).await
    }
    async fn exists(&self, path: &Path) -> Result<bool, IoError> {
        self.sim.exists(path).await
    }
    async fn remove_file(&self, path: &Path) -> Result<(), IoError> {
        step(&self.ops_left, "unlink", path)?;
        self.sim.remove_file(path).await
    }
    async fn remove_dir_all(&self, path: &Path) -> Result<(), IoError> {
        step(&self.ops_left, "rmdir", path)?;
        self.sim.remove_dir_all(path).await
    }
    async fn rename(&self, from: &Path, to: &Path) -> Result<(), IoError> {
        step(&self.ops_left, "rename", from)?;
        self.sim.rename(from, to).await
    }
    async fn sync_dir(&self, path: &Path) -> Result<(), IoError> {
        step(&self.ops_left, "fsync dir", path)?;
        self.sim.sync_dir(path).await
    }
}

impl StorageFile for DyingFile {
    async fn write_at(&self, pos: u64, data: &[u8]) -> Result<(), IoError> {
        step(&self.ops_left, "write", Path::new("file"))?;
        self.file.write_at(pos, data).await
    }
    async fn read_at(&self, pos: u64, len: usize) -> Result<Bytes, IoError> {
        self.file.read_at(pos, len).await
    }
    async fn sync_data(&self) -> Result<(), IoError> {
        step(&self.ops_left, "fdatasync", Path::new("file"))?;
        self.file.sync_data().await
    }
    async fn truncate(&self, len: u64) -> Result<(), IoError> {
        step(&self.ops_left, "truncate", Path::new("file"))?;
        self.file.truncate(len).await
    }
    async fn size(&self) -> Result<u64, IoError> {
        self.file.size().await
    }
    async fn close(self) -> Result<(), IoError> {
        self.file.close().await
    }
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

/// Larger segments than the other tests: fewer steps per pass, so that
/// crashing at every one of them stays quick.
const CRASH_SEGMENT_BYTES: u32 = 8192;

#[test]
fn a_crash_at_any_step_of_a_pass_keeps_every_latest_value() {
    let mut finished = false;
    let mut steps = 0u64;
    let mut swaps_completed = 0;
    while !finished {
        let fx = Fixture::new();
        let dying = Dying {
            sim: fx.storage.clone(),
            ops_left: Rc::new(Cell::new(u64::MAX)),
        };
        let segments_before = block_on(async {
            let clock = Rc::new(fx.clock.clone());
            let hints = RecoveryHints::default();
            let mut log = Log::open(
                dying.clone(),
                dir(),
                compacted(CRASH_SEGMENT_BYTES),
                clock,
                hints,
            )
            .await
            .unwrap();
            append_rounds(&mut log, Compression::Lz4).await;
            dying.ops_left.set(steps);
            finished = log.compact(START_MS).await.is_ok();
            log.segment_count()
        });
        fx.storage.crash();
        let left = block_on(fx.storage.list_dir(&dir())).unwrap();
        swaps_completed += left.iter().filter(|n| n.ends_with(".swap")).count();
        let context = format!("crash after {steps} ops");
        let hints = match steps % 2 {
            0 => RecoveryHints::default(),
            _ => RecoveryHints {
                recovery_point: Some(RECORDS as i64),
                ..RecoveryHints::default()
            },
        };
        block_on(async {
            let mut log = fx
                .try_open(compacted(CRASH_SEGMENT_BYTES), hints)
                .await
                .unwrap();
            let names = fx.storage.list_dir(&dir()).await.unwrap();
            assert!(
                names
                    .iter()
                    .all(|n| !n.ends_with(".swap") && !n.ends_with(".cleaned")),
                "{context}: {names:?}"
            );
            let keys = by_key(&records_of(&log).await);
            for i in RECORDS - KEYS..RECORDS {
                let latest = keys[&key(i)].last().cloned();
                assert_eq!(latest, Some((i as i64, Some(value(i)))), "{context}");
            }
            log.compact(START_MS).await.unwrap();
            assert_latest_only(&records_of(&log).await, &context);
            if finished {
                assert!(log.segment_count() <= segments_before, "{context}");
            }
        });
        steps += 1;
    }
    assert!(steps > 10, "a pass takes more than a few steps: {steps}");
    assert!(
        swaps_completed > 0,
        "some crash left durable swap files to complete"
    );
    eprintln!("{steps} crash points, {swaps_completed} swap files completed on open");
}
