//! Scrubbing closed segments after a clean shutdown: a damaged batch that
//! recovery never looked at is found, taken out of service, and reads step
//! over it to the next good batch, so a consumer is no longer stuck at it.

mod log_support;

use std::path::Path;

use bytes::Bytes;
use futures_lite::future::block_on;
use log_support::*;
use rafka_core::log::{CorruptKind, DamagedRange, Log, LogConfig, RecoveryHints, ScrubCursor};
use rafka_core::sim::SimStorage;
use rafka_proto::record::BatchError;

/// Records per batch: batch i holds offsets 10i..10i+9.
const RECORDS: usize = 10;

fn one_batch(i: usize) -> Bytes {
    // Timestamps rise, so a segment's time index ends at its last batch
    // and recovery's index check reads only the last batches' headers.
    batch(RECORDS, START_MS + i as i64, 20)
}

fn batch_bytes() -> u64 {
    one_batch(0).len() as u64
}

fn config(batches_per_segment: u32, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes: batches_per_segment * batch_bytes() as u32,
        index_interval_bytes,
        ..LogConfig::default()
    }
}

/// Three batches per segment, 12 batches: closed segments 0, 30, 60 and
/// the active one at 90.
fn three_per_segment() -> LogConfig {
    config(3, 4096)
}

/// Writes `batches` batches, closes the log cleanly and returns what it
/// holds and the segments' base offsets.
fn closed_log(fx: &Fixture, config: &LogConfig, batches: usize) -> (Vec<(i64, Bytes)>, Vec<i64>) {
    block_on(async {
        let mut log = fx
            .try_open(config.clone(), RecoveryHints::default())
            .await
            .unwrap();
        for i in 0..batches {
            log.append(&one_batch(i), 0).await.unwrap();
        }
        let bases = log.segments().iter().map(|s| s.base_offset).collect();
        let all = read_all(&log, u32::MAX).await;
        log.close().await.unwrap();
        (all, bases)
    })
}

fn closed_log_of_12(fx: &Fixture, config: &LogConfig) -> Vec<(i64, Bytes)> {
    let (all, bases) = closed_log(fx, config, 12);
    assert_eq!(bases, vec![0, 30, 60, 90]);
    all
}

fn clean_hints(batches: usize) -> RecoveryHints {
    RecoveryHints {
        recovery_point: Some((batches * RECORDS) as i64),
        log_start_offset: Some(0),
        clean_shutdown: true,
    }
}

fn edit(storage: &SimStorage, path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut contents = storage.file_contents(path).unwrap();
    edit(&mut contents);
    storage.set_file_contents(path, &contents);
}

/// One whole pass in steps of `step_bytes`: bytes read and the ranges it
/// found.
async fn scrub_pass(log: &mut Log<SimStorage>, step_bytes: u64) -> (u64, Vec<DamagedRange>) {
    let mut cursor = ScrubCursor::default();
    let mut bytes = 0;
    let mut found = Vec::new();
    while let Some(chunk) = log.scrub_plan(&mut cursor, step_bytes) {
        let verdict = chunk.verify().await.unwrap();
        let applied = log.scrub_apply(&mut cursor, &chunk, verdict);
        bytes += applied.bytes_scrubbed;
        found.extend(applied.damaged);
    }
    assert!(cursor.is_done());
    (bytes, found)
}

/// Base offsets of what `read_all` serves.
async fn bases_of(log: &Log<SimStorage>) -> Vec<i64> {
    let all = read_all(log, u32::MAX).await;
    all.iter().map(|(base, _)| *base).collect()
}

fn without(all: &[(i64, Bytes)], gone: &[i64]) -> Vec<i64> {
    all.iter()
        .map(|(base, _)| *base)
        .filter(|base| !gone.contains(base))
        .collect()
}

#[test]
fn a_clean_log_scrubs_every_closed_byte_and_finds_nothing() {
    let fx = Fixture::new();
    let config = three_per_segment();
    let all = closed_log_of_12(&fx, &config);
    let mut log = fx.open(config, clean_hints(12));
    // Steps smaller than, equal to and larger than a batch.
    for step_bytes in [1, batch_bytes(), 2 * batch_bytes() + 5, 1 << 20] {
        let (bytes, found) = block_on(scrub_pass(&mut log, step_bytes));
        assert_eq!(bytes, 9 * batch_bytes(), "step {step_bytes}");
        assert_eq!(found, vec![], "step {step_bytes}");
    }
    assert_eq!(block_on(bases_of(&log)), without(&all, &[]));
}

/// The case: after a clean shutdown a flipped byte in a middle
/// batch of a closed segment was served as is (a consumer retries its CRC
/// error forever). The scrubber takes it out of service and a fetch there
/// gets the next good batch.
#[test]
fn a_flipped_byte_in_a_closed_segment_is_stepped_over() {
    let fx = Fixture::new();
    let config = three_per_segment();
    let all = closed_log_of_12(&fx, &config);
    let size = batch_bytes();
    // Segment 30's middle batch (40-49), inside its records.
    edit(&fx.storage, &segment_path(30, "log"), |c| {
        c[size as usize + 70] ^= 0x40
    });
    block_on(async {
        let mut log = fx.try_open(config, clean_hints(12)).await.unwrap();
        assert_eq!(log.recovery_report().truncations, vec![]);
        let before = log.read(40, u32::MAX).await.unwrap();
        assert_eq!(before.first_offset, 40, "served as is until scrubbed");

        let (bytes, found) = scrub_pass(&mut log, 1 << 20).await;
        assert_eq!(bytes, 9 * size);
        assert_eq!(found.len(), 1);
        let range = &found[0];
        assert_eq!(
            (range.path.as_path(), range.segment_base_offset),
            (segment_path(30, "log").as_path(), 30)
        );
        assert_eq!((range.position, range.len_bytes), (size, size));
        assert_eq!((range.first_offset, range.next_offset), (40, 50));
        assert!(matches!(
            range.kind,
            CorruptKind::Batch(BatchError::CrcMismatch { .. })
        ));
        assert_eq!(log.damaged_ranges(), found);

        // At the damaged batch's offsets: the next good batch.
        for offset in [40, 45, 49] {
            let read = log.read(offset, u32::MAX).await.unwrap();
            assert_eq!(
                (read.first_offset, read.size_bytes),
                (50, size * 7),
                "at {offset}"
            );
        }
        // Before it: up to it, and the next read goes on after it.
        let read = log.read(30, u32::MAX).await.unwrap();
        assert_eq!((read.first_offset, read.next_offset), (30, 40));
        assert_eq!(read.size_bytes, size);
        assert_eq!(bases_of(&log).await, without(&all, &[40]));

        // A second pass knows it already.
        let (bytes, found) = scrub_pass(&mut log, 1 << 20).await;
        assert_eq!((bytes, found), (8 * size, vec![]));
    });
}

/// A damaged base offset (outside the CRC) in a closed segment breaks the
/// offset rules: only that batch goes, in steps of any size. (Recovery's
/// index check reads only the headers from the last index entries on, so
/// after a clean shutdown it does not see this one.)
#[test]
fn a_damaged_base_offset_in_a_closed_segment_is_one_damaged_batch() {
    let fx = Fixture::new();
    // Six batches per segment (0, 60, 120), index entries at batches 2, 4.
    let config = config(6, batch_bytes() as u32 + 1);
    let (all, _) = closed_log(&fx, &config, 18);
    let size = batch_bytes() as usize;
    edit(&fx.storage, &segment_path(60, "log"), |c| {
        c[size..size + 8].copy_from_slice(&122_i64.to_be_bytes());
    });
    for step_bytes in [1, 1 << 20] {
        let mut log = fx.open(config.clone(), clean_hints(18));
        assert_eq!(log.recovery_report().truncations, vec![]);
        let (bytes, found) = block_on(scrub_pass(&mut log, step_bytes));
        assert_eq!(bytes, 12 * size as u64, "step {step_bytes}");
        assert_eq!(found.len(), 1, "step {step_bytes}");
        assert_eq!(
            found[0].kind,
            CorruptKind::OffsetGap {
                base_offset: 122,
                expected: 70
            }
        );
        assert_eq!((found[0].first_offset, found[0].next_offset), (70, 80));
        assert_eq!(
            (found[0].position, found[0].len_bytes),
            (size as u64, size as u64)
        );
        assert_eq!(block_on(bases_of(&log)), without(&all, &[70]));
    }
}

/// A damaged length cannot be stepped over by its own value: the damaged
/// range runs to the next offset index entry (a batch start written with
/// the batches), even if good batches lie before it.
#[test]
fn a_damaged_length_runs_to_the_next_index_entry() {
    let fx = Fixture::new();
    // Six batches per segment (0, 60, 120), an index entry at every other
    // batch start (positions 2 and 4 of each segment).
    let config = config(6, batch_bytes() as u32 + 1);
    let (all, bases) = closed_log(&fx, &config, 18);
    assert_eq!(bases, vec![0, 60, 120]);
    let size = batch_bytes() as usize;
    let length_at = 8; // batchLength's high byte, after baseOffset
    edit(&fx.storage, &segment_path(0, "log"), |c| {
        c[length_at] ^= 0x7f
    });
    edit(&fx.storage, &segment_path(60, "log"), |c| {
        c[3 * size + length_at] ^= 0x7f
    });
    let mut log = fx.open(config, clean_hints(18));
    assert_eq!(log.recovery_report().truncations, vec![]);
    let (bytes, found) = block_on(scrub_pass(&mut log, 1 << 20));
    assert_eq!(bytes, 12 * size as u64);
    let summary: Vec<_> = found
        .iter()
        .map(|r| {
            (
                r.segment_base_offset,
                r.position,
                r.len_bytes,
                r.first_offset,
                r.next_offset,
            )
        })
        .collect();
    let size = size as u64;
    assert_eq!(
        summary,
        vec![(0, 0, 2 * size, 0, 20), (60, 3 * size, size, 90, 100)]
    );
    assert!(matches!(found[0].kind, CorruptKind::PastEnd { .. }));
    assert_eq!(block_on(bases_of(&log)), without(&all, &[0, 10, 90]));
}

/// A damaged last batch of a closed segment takes the range to the
/// segment's end; reads go on in the next segment.
#[test]
fn damage_at_a_segment_end_goes_on_in_the_next_segment() {
    let fx = Fixture::new();
    let config = three_per_segment();
    let all = closed_log_of_12(&fx, &config);
    let size = batch_bytes() as usize;
    edit(&fx.storage, &segment_path(60, "log"), |c| {
        c[2 * size + 70] ^= 0x01
    });
    block_on(async {
        let mut log = fx.try_open(config, clean_hints(12)).await.unwrap();
        let (_, found) = scrub_pass(&mut log, 1 << 20).await;
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].first_offset, found[0].next_offset), (80, 90));
        assert_eq!(found[0].position + found[0].len_bytes, 3 * size as u64);
        let read = log.read(60, u32::MAX).await.unwrap();
        assert_eq!((read.first_offset, read.next_offset), (60, 80));
        let read = log.read(80, u32::MAX).await.unwrap();
        assert_eq!(read.first_offset, 90);
        assert_eq!(bases_of(&log).await, without(&all, &[80]));
    });
}

/// A segment compacted or deleted while a pass was between its steps is
/// not reported on with stale facts: the pass moves on.
#[test]
fn a_deleted_segment_drops_the_verdict_about_it() {
    let fx = Fixture::new();
    let config = LogConfig {
        retention_bytes: 3 * batch_bytes() as i64 * 2,
        ..three_per_segment()
    };
    closed_log_of_12(&fx, &config);
    edit(&fx.storage, &segment_path(0, "log"), |c| c[70] ^= 0x40);
    block_on(async {
        let mut log = fx.try_open(config, clean_hints(12)).await.unwrap();
        let mut cursor = ScrubCursor::default();
        let chunk = log.scrub_plan(&mut cursor, 1 << 20).unwrap();
        let verdict = chunk.verify().await.unwrap();
        let removed = log.apply_retention(START_MS).await.unwrap();
        assert_eq!(removed.segments_deleted, 2);
        let applied = log.scrub_apply(&mut cursor, &chunk, verdict);
        assert_eq!(applied.damaged, None);
        assert_eq!(log.damaged_ranges(), vec![]);
        let mut found = Vec::new();
        while let Some(chunk) = log.scrub_plan(&mut cursor, 1 << 20) {
            let verdict = chunk.verify().await.unwrap();
            found.extend(log.scrub_apply(&mut cursor, &chunk, verdict).damaged);
        }
        assert_eq!(found, vec![]);
    });
}

/// Two damaged batches in a row are one range, ending at the first good
/// batch after them.
#[test]
fn adjacent_damaged_batches_are_one_range() {
    let fx = Fixture::new();
    let config = config(6, 4096);
    let (all, _) = closed_log(&fx, &config, 18);
    let size = batch_bytes() as usize;
    edit(&fx.storage, &segment_path(60, "log"), |c| {
        c[size + 70] ^= 0x02;
        c[2 * size + 70] ^= 0x02;
    });
    let mut log = fx.open(config, clean_hints(18));
    let (bytes, found) = block_on(scrub_pass(&mut log, 1 << 20));
    assert_eq!(bytes, 12 * size as u64);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].first_offset, found[0].next_offset), (70, 90));
    assert_eq!(
        (found[0].position, found[0].len_bytes),
        (size as u64, 2 * size as u64)
    );
    assert_eq!(block_on(bases_of(&log)), without(&all, &[70, 80]));
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(64))]

    /// Whatever byte of a closed segment flips, after a clean reopen and a
    /// scrub pass everything served is a valid batch in offset order (read
    /// back whole and CRC-checked by `read_all`), and at most the damaged
    /// segment's batches are lost.
    #[test]
    fn after_a_scrub_every_served_batch_is_valid(
        segment in 0usize..3,
        at in 0usize..1083,
        bit in 0u8..8,
        step_bytes in proptest::sample::select(vec![1_u64, 400, 1 << 20]),
    ) {
        let fx = Fixture::new();
        let config = config(3, 1);
        let all = closed_log_of_12(&fx, &config);
        let base = segment as i64 * 30;
        edit(&fx.storage, &segment_path(base, "log"), |c| {
            let at = at % c.len();
            c[at] ^= 1 << bit;
        });
        let mut log = fx.open(config, clean_hints(12));
        block_on(scrub_pass(&mut log, step_bytes));
        let served = block_on(bases_of(&log));
        let known: Vec<i64> = all.iter().map(|(b, _)| *b).collect();
        proptest::prop_assert!(served.iter().all(|b| known.contains(b)));
        proptest::prop_assert!(served.len() >= 9, "{served:?}");
        let outside: Vec<i64> = served.iter().copied().filter(|b| *b < base || *b >= base + 30).collect();
        proptest::prop_assert_eq!(outside.len(), 9);
    }
}

/// Compaction reads closed segments whole and refuses rot; once the
/// scrubber took a damaged batch out of service, compaction steps over it
/// (the cleaned segment no longer holds it) instead of failing every pass.
#[test]
fn compaction_drops_a_damaged_range_instead_of_failing_on_it() {
    let fx = Fixture::new();
    let config = LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..three_per_segment()
    };
    closed_log_of_12(&fx, &config);
    let size = batch_bytes() as usize;
    edit(&fx.storage, &segment_path(30, "log"), |c| {
        c[size + 70] ^= 0x40
    });
    block_on(async {
        let mut log = fx.try_open(config, clean_hints(12)).await.unwrap();
        let refused = log.compact(START_MS + 1000).await;
        assert!(
            matches!(refused, Err(rafka_core::log::LogError::Corrupt { position, .. }) if position == size as u64),
            "{refused:?}"
        );
        let (_, found) = scrub_pass(&mut log, 1 << 20).await;
        assert_eq!(found.len(), 1);
        let outcome = log.compact(START_MS + 1000).await.unwrap();
        assert!(outcome.is_some());
        assert_eq!(log.damaged_ranges(), vec![]);
        // Every record has the same key: the cleaned part keeps its last
        // batch (80), the active segment stays as it is.
        assert_eq!(bases_of(&log).await, vec![80, 90, 100, 110]);
    });
}
