//! Snapshot files and the producer id block file on fault-injecting
//! storage: durability across crashes, recovery choices, restart
//! equivalence, ids that never repeat.

use std::path::Path;

use futures_lite::future::block_on;
use rafka_core::io::Storage;
use rafka_core::producer::{
    remove_snapshots_below, FormatError, LoadedSnapshot, ProducerError, ProducerIdAllocator,
    ProducerStateTable, PRODUCER_ID_BLOCK_FILE,
};
use rafka_core::sim::SimStorage;
use rafka_proto::record::BatchHeader;
use rafka_testkit::rng::{seeds, Rng};

use super::{answers, busy_log, header, Log};

const PARTITION_DIR: &str = "/data/orders-0";
const DATA_DIR: &str = "/data";

fn storage_with_partition_dir() -> SimStorage {
    let storage = SimStorage::new();
    block_on(storage.create_dir_all(Path::new(PARTITION_DIR))).unwrap();
    storage
}

fn file_names(storage: &SimStorage, dir: &str) -> Vec<String> {
    let mut names = block_on(storage.list_dir(Path::new(dir))).unwrap();
    names.sort();
    names
}

/// The table as of the first `batches` batches of `log`, and the offset a
/// snapshot of it is named after.
fn table_after(log: &Log, batches: usize) -> (ProducerStateTable, i64) {
    let mut table = ProducerStateTable::default();
    table.rebuild_from(log.headers[..batches].iter().copied());
    let end_offset = log.headers[..batches]
        .last()
        .map_or(0, BatchHeader::next_offset);
    (table, end_offset)
}

#[test]
fn a_written_snapshot_survives_a_crash() {
    let log = busy_log();
    let storage = storage_with_partition_dir();
    let dir = Path::new(PARTITION_DIR);
    let path = block_on(log.table.snapshot(&storage, dir, log.next_offset)).unwrap();
    assert_eq!(path, dir.join("00000000000000000034.snapshot"));
    storage.crash();
    assert_eq!(
        storage.file_contents(&path),
        Some(log.table.encode_snapshot())
    );

    let mut table = ProducerStateTable::default();
    let loaded = block_on(table.load_latest(&storage, dir, log.next_offset)).unwrap();
    assert_eq!(loaded.snapshot_offset, Some(34));
    assert!(loaded.removed_newer.is_empty() && loaded.removed_corrupt.is_empty());
    assert_eq!(table, log.table);
}

#[test]
fn an_interrupted_snapshot_write_leaves_the_previous_one() {
    let log = busy_log();
    let storage = storage_with_partition_dir();
    let dir = Path::new(PARTITION_DIR);
    let (older, older_offset) = table_after(&log, 4);
    block_on(older.snapshot(&storage, dir, older_offset)).unwrap();

    storage.fail_next_syncs(1);
    let failed = block_on(log.table.snapshot(&storage, dir, log.next_offset));
    assert_eq!(failed.map_err(|error| error.error_code().code()), Err(56));
    assert_eq!(
        file_names(&storage, PARTITION_DIR),
        vec![
            "00000000000000000008.snapshot",
            "00000000000000000034.snapshot.tmp"
        ]
    );
    let mut table = ProducerStateTable::default();
    let loaded = block_on(table.load_latest(&storage, dir, log.next_offset)).unwrap();
    assert_eq!(loaded.snapshot_offset, Some(older_offset));
    assert_eq!(table, older);
    assert_eq!(
        file_names(&storage, PARTITION_DIR),
        vec!["00000000000000000008.snapshot"],
        "the temp file of the failed write is gone"
    );

    storage.tear_next_write(30);
    assert!(block_on(log.table.snapshot(&storage, dir, log.next_offset)).is_err());
    storage.crash();
    let loaded = block_on(table.load_latest(&storage, dir, log.next_offset)).unwrap();
    assert_eq!(loaded.snapshot_offset, Some(older_offset));
    assert_eq!(table, older);
}

#[test]
fn load_latest_takes_the_newest_snapshot_within_the_log_and_deletes_newer_ones() {
    let log = busy_log();
    let storage = storage_with_partition_dir();
    let dir = Path::new(PARTITION_DIR);
    let mut tables = Vec::new();
    for batches in [2, 6, 10] {
        let (table, offset) = table_after(&log, batches);
        block_on(table.snapshot(&storage, dir, offset)).unwrap();
        tables.push((table, offset));
    }
    assert_eq!(
        tables.iter().map(|(_, offset)| *offset).collect::<Vec<_>>(),
        vec![4, 12, 20]
    );

    // The log was truncated to offset 15 (say, by recovery of a torn tail).
    let mut table = ProducerStateTable::default();
    let loaded = block_on(table.load_latest(&storage, dir, 15)).unwrap();
    assert_eq!(loaded.snapshot_offset, Some(12));
    assert_eq!(loaded.removed_newer, vec![20]);
    assert_eq!(table, tables[1].0);
    assert_eq!(
        file_names(&storage, PARTITION_DIR),
        vec![
            "00000000000000000004.snapshot",
            "00000000000000000012.snapshot"
        ]
    );
    // A snapshot exactly at the log end is usable.
    let loaded = block_on(table.load_latest(&storage, dir, 12)).unwrap();
    assert_eq!(loaded.snapshot_offset, Some(12));
}

#[test]
fn a_corrupt_snapshot_is_deleted_and_the_next_older_one_used() {
    let log = busy_log();
    let storage = storage_with_partition_dir();
    let dir = Path::new(PARTITION_DIR);
    let (older, older_offset) = table_after(&log, 6);
    block_on(older.snapshot(&storage, dir, older_offset)).unwrap();
    let newest = block_on(log.table.snapshot(&storage, dir, log.next_offset)).unwrap();
    let mut damaged = storage.file_contents(&newest).unwrap();
    damaged[20] ^= 0x04;
    storage.set_file_contents(&newest, &damaged);

    let mut table = log.table.clone();
    let loaded = block_on(table.load_latest(&storage, dir, log.next_offset)).unwrap();
    assert_eq!(loaded.snapshot_offset, Some(older_offset));
    assert!(matches!(
        loaded.removed_corrupt.as_slice(),
        [(34, FormatError::CrcMismatch { .. })]
    ));
    assert_eq!(table, older);
    assert!(!block_on(storage.exists(&newest)).unwrap());

    // Short reads must not make a good snapshot look corrupt.
    storage.set_short_reads(true);
    let loaded = block_on(table.load_latest(&storage, dir, log.next_offset)).unwrap();
    assert_eq!(loaded.snapshot_offset, Some(older_offset));
    assert!(loaded.removed_corrupt.is_empty());
}

#[test]
fn without_a_snapshot_the_table_starts_empty() {
    let log = busy_log();
    let storage = storage_with_partition_dir();
    let mut table = log.table.clone();
    let loaded = block_on(table.load_latest(&storage, Path::new(PARTITION_DIR), 34)).unwrap();
    assert_eq!(loaded, LoadedSnapshot::default());
    assert!(table.is_empty());
}

#[test]
fn a_restart_after_a_crash_answers_retries_as_before() {
    let mut log = busy_log();
    let storage = storage_with_partition_dir();
    let dir = Path::new(PARTITION_DIR);
    block_on(log.table.snapshot(&storage, dir, log.next_offset)).unwrap();
    // More traffic after the snapshot: it only lives in the log.
    for batch in 0..4 {
        log.produce(header(400, 0, batch * 2, 2)).unwrap();
        log.produce(header(100, 0, 21 + batch, 1)).unwrap();
    }
    log.produce(header(200, 4, 0, 1)).unwrap();
    let before = answers(&log.table, &log);
    storage.crash();

    let mut restarted = ProducerStateTable::default();
    let loaded = block_on(restarted.load_latest(&storage, dir, log.next_offset)).unwrap();
    let replay_from = loaded.snapshot_offset.unwrap();
    assert_eq!(replay_from, 34);
    restarted.rebuild_from(
        log.headers
            .iter()
            .filter(|batch| batch.base_offset >= replay_from)
            .copied(),
    );
    assert_eq!(restarted, log.table);
    assert_eq!(answers(&restarted, &log), before);
}

#[test]
fn snapshots_below_the_log_start_are_removed() {
    let log = busy_log();
    let storage = storage_with_partition_dir();
    let dir = Path::new(PARTITION_DIR);
    for batches in [2, 6, 10] {
        let (table, offset) = table_after(&log, batches);
        block_on(table.snapshot(&storage, dir, offset)).unwrap();
    }
    let removed = block_on(remove_snapshots_below(&storage, dir, 13)).unwrap();
    assert_eq!(removed, vec![4, 12]);
    storage.crash();
    assert_eq!(
        file_names(&storage, PARTITION_DIR),
        vec!["00000000000000000020.snapshot"]
    );
}

#[test]
fn a_fresh_allocator_reserves_a_block_durably_before_the_first_id() {
    let storage = storage_with_partition_dir();
    let dir = Path::new(DATA_DIR);
    let mut allocator = block_on(ProducerIdAllocator::load(&storage, dir, 1_000)).unwrap();
    assert_eq!(block_on(allocator.allocate(&storage, dir)).unwrap(), 0);
    assert_eq!(block_on(allocator.allocate(&storage, dir)).unwrap(), 1);
    storage.crash();
    let block_file = dir.join(PRODUCER_ID_BLOCK_FILE);
    assert_eq!(
        storage.file_contents(&block_file),
        Some(ProducerIdAllocator::encode_block_file(1_000).to_vec())
    );
    let mut restarted = block_on(ProducerIdAllocator::load(&storage, dir, 1_000)).unwrap();
    assert_eq!(block_on(restarted.allocate(&storage, dir)).unwrap(), 1_000);
}

#[test]
fn producer_ids_skip_but_never_repeat_across_crashes() {
    let storage = storage_with_partition_dir();
    let dir = Path::new(DATA_DIR);
    let mut allocator = block_on(ProducerIdAllocator::load(&storage, dir, 10)).unwrap();
    let ids: Vec<i64> = (0..11)
        .map(|_| block_on(allocator.allocate(&storage, dir)).unwrap())
        .collect();
    assert_eq!(ids, (0..11).collect::<Vec<i64>>());
    // Crash right after reserving [10, 20) and handing out 10.
    storage.crash();
    let mut allocator = block_on(ProducerIdAllocator::load(&storage, dir, 10)).unwrap();
    assert_eq!(block_on(allocator.allocate(&storage, dir)).unwrap(), 20);

    // A reservation that fails to become durable hands nothing out...
    for _ in 21..30 {
        block_on(allocator.allocate(&storage, dir)).unwrap();
    }
    storage.fail_next_syncs(1);
    let failed = block_on(allocator.allocate(&storage, dir));
    assert_eq!(failed.map_err(|error| error.error_code().code()), Err(56));
    assert_eq!((allocator.next_id(), allocator.reserved_end_id()), (30, 30));
    // ...and after the crash the durable end is still above every id given.
    storage.crash();
    let mut allocator = block_on(ProducerIdAllocator::load(&storage, dir, 10)).unwrap();
    assert_eq!(block_on(allocator.allocate(&storage, dir)).unwrap(), 30);
}

#[test]
fn producer_ids_increase_under_random_crashes_and_faults() {
    for seed in seeds(1..=32) {
        let storage = SimStorage::with_seed(seed);
        let dir = Path::new(DATA_DIR);
        block_on(storage.create_dir_all(dir)).unwrap();
        let mut allocator = block_on(ProducerIdAllocator::load(&storage, dir, 7)).unwrap();
        let mut last_id = -1;
        let mut rng = Rng::new(seed);
        for _ in 0..200 {
            match rng.below(10) {
                0 => {
                    storage.crash_random();
                    allocator = block_on(ProducerIdAllocator::load(&storage, dir, 7)).unwrap();
                }
                1 => storage.fail_next_syncs(1),
                2 => storage.tear_next_write(rng.index(14)),
                _ => {}
            }
            if let Ok(id) = block_on(allocator.allocate(&storage, dir)) {
                assert!(id > last_id, "seed {seed}: id {id} after {last_id}");
                last_id = id;
            }
        }
        assert!(last_id > 50, "seed {seed}: only reached id {last_id}");
    }
}

#[test]
fn a_corrupt_block_file_stops_the_allocator() {
    let storage = storage_with_partition_dir();
    let dir = Path::new(DATA_DIR);
    let mut damaged = ProducerIdAllocator::encode_block_file(3_000);
    damaged[9] ^= 0x01;
    storage.set_file_contents(&dir.join(PRODUCER_ID_BLOCK_FILE), &damaged);
    let error = block_on(ProducerIdAllocator::load(&storage, dir, 1_000)).unwrap_err();
    assert!(matches!(
        error,
        ProducerError::Corrupt {
            source: FormatError::CrcMismatch { .. },
            ..
        }
    ));
    assert_eq!(error.error_code().code(), 56);
}
