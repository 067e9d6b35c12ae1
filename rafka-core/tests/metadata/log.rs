//! The metadata log and store on SimStorage: durability before ack, torn
//! tails, snapshots, crash points, replay equivalence.

use std::future::Future;
use std::path::{Path, PathBuf};

use rafka_core::config::BrokerConfig;
use rafka_core::metadata::frame::FrameError;
use rafka_core::metadata::{
    CommitError, Controller, MetadataImage, MetadataLogError, MetadataRecord, MetadataStore,
    NewTopic, Replayed,
};
use rafka_core::sim::SimStorage;
use uuid::Uuid;

fn block_on<F: Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

fn dir() -> PathBuf {
    PathBuf::from("/data/__rafka_metadata")
}

fn log_path(base: i64) -> PathBuf {
    dir().join(format!("{base:020}.log"))
}

fn open(storage: &SimStorage, interval: u64) -> (MetadataStore<SimStorage>, Replayed) {
    match block_on(MetadataStore::open(storage.clone(), dir(), interval)) {
        Ok(opened) => opened,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn open_err(storage: &SimStorage) -> MetadataLogError {
    match block_on(MetadataStore::open(storage.clone(), dir(), 1000)) {
        Ok(_) => panic!("open succeeded"),
        Err(e) => e,
    }
}

fn controller() -> Controller {
    Controller::new(&BrokerConfig::default(), 2)
}

fn create_records(image: &MetadataImage, name: &str, n: u128) -> Vec<MetadataRecord> {
    let topic = NewTopic {
        name: name.to_string(),
        partitions: 2,
        replication_factor: 1,
        configs: Default::default(),
        assignments: Vec::new(),
    };
    match controller().create_topic(image, &topic, Uuid::from_u128(n)) {
        Ok(records) => records,
        Err(e) => panic!("{e}"),
    }
}

fn commit(store: &mut MetadataStore<SimStorage>, records: &[MetadataRecord]) {
    if let Err(e) = block_on(store.commit(records)) {
        panic!("commit failed: {e}");
    }
}

fn create(store: &mut MetadataStore<SimStorage>, name: &str, n: u128) {
    let records = create_records(store.image(), name, n);
    commit(store, &records);
}

fn files(storage: &SimStorage) -> Vec<String> {
    let mut names =
        block_on(rafka_core::io::Storage::list_dir(storage, &dir())).unwrap_or_default();
    names.sort();
    names
}

#[test]
fn committed_records_survive_a_crash() {
    let storage = SimStorage::new();
    let (mut store, replayed) = open(&storage, 1000);
    assert_eq!(replayed.records_replayed, 0);
    create(&mut store, "a", 1);
    create(&mut store, "b", 2);
    assert_eq!(store.next_offset(), 6);
    let image = store.image().as_ref().clone();
    storage.crash();
    let (store, replayed) = open(&storage, 1000);
    assert_eq!(store.image().as_ref(), &image);
    assert_eq!(store.next_offset(), 6);
    assert_eq!(
        replayed,
        Replayed {
            snapshot_offset: None,
            records_replayed: 6,
            truncated_bytes: 0
        }
    );
    assert_eq!(
        files(&storage),
        vec!["00000000000000000000.log".to_string()]
    );
}

#[test]
fn a_crash_at_every_byte_of_the_last_write_loses_only_that_write() {
    let base = SimStorage::new();
    let (mut store, _) = open(&base, 1000);
    create(&mut store, "a", 1);
    let before = store.image().as_ref().clone();
    let last = create_records(&before, "b", 2);
    let mut after = before.clone();
    for r in &last {
        assert!(after.apply(r).is_ok());
    }
    let durable_len = base.file_contents(&log_path(0)).map_or(0, |c| c.len());
    drop(store);
    let mut last_len = 0;
    for kept in 0.. {
        let storage = base.fork();
        let (mut store, _) = open(&storage, 1000);
        storage.fail_next_syncs(1);
        let result = block_on(store.commit(&last));
        assert!(matches!(
            result,
            Err(CommitError::Log(MetadataLogError::Io(_)))
        ));
        // The failed sync leaves the log unusable, never half-trusted.
        let again = block_on(store.commit(&last));
        assert!(matches!(
            again,
            Err(CommitError::Log(MetadataLogError::Poisoned))
        ));
        last_len = storage.unsynced_bytes(&log_path(0));
        storage.crash_keeping(&log_path(0), kept);
        let (mut store, replayed) = open(&storage, 1000);
        let complete = kept == last_len;
        let want = if complete { &after } else { &before };
        assert_eq!(store.image().as_ref(), want, "kept {kept} of {last_len}");
        let torn = if complete { 0 } else { kept as u64 };
        assert_eq!(replayed.truncated_bytes, torn, "kept {kept}");
        // The repaired log takes appends and replays them.
        create(&mut store, "c", 3);
        let expected = store.image().as_ref().clone();
        storage.crash();
        let (store, _) = open(&storage, 1000);
        assert_eq!(store.image().as_ref(), &expected, "kept {kept}");
        if kept == last_len {
            break;
        }
    }
    assert!(last_len > 50, "the last write was {last_len} bytes");
    assert!(durable_len > 0);
}

#[test]
fn snapshot_then_more_records_replays_the_same_image() {
    let storage = SimStorage::new();
    let (mut store, _) = open(&storage, 5);
    create(&mut store, "a", 1);
    assert!(matches!(block_on(store.snapshot_if_due()), Ok(false)));
    create(&mut store, "b", 2);
    assert!(matches!(block_on(store.snapshot_if_due()), Ok(true)));
    assert_eq!(
        files(&storage),
        vec![
            "00000000000000000006.log".to_string(),
            "00000000000000000006.snapshot".to_string()
        ]
    );
    create(&mut store, "c", 3);
    let deleted = controller().delete_topic(store.image(), "a");
    commit(&mut store, &deleted.unwrap_or_default());
    let image = store.image().as_ref().clone();
    assert_eq!(store.next_offset(), 10);
    storage.crash();
    let (store, replayed) = open(&storage, 5);
    assert_eq!(store.image().as_ref(), &image);
    assert_eq!(store.next_offset(), 10);
    assert_eq!(
        replayed,
        Replayed {
            snapshot_offset: Some(6),
            records_replayed: 4,
            truncated_bytes: 0
        }
    );
}

#[test]
fn a_crash_inside_a_snapshot_keeps_the_log() {
    let storage = SimStorage::new();
    let (mut store, _) = open(&storage, 1000);
    create(&mut store, "a", 1);
    create(&mut store, "b", 2);
    let image = store.image().as_ref().clone();
    storage.fail_next_syncs(1);
    assert!(block_on(store.snapshot()).is_err());
    storage.crash();
    let (mut store, replayed) = open(&storage, 1000);
    assert_eq!(store.image().as_ref(), &image);
    assert_eq!(replayed.snapshot_offset, None);
    assert_eq!(
        files(&storage),
        vec!["00000000000000000000.log".to_string()]
    );
    // A snapshot completes this time, even if the crash comes right after.
    assert!(block_on(store.snapshot()).is_ok());
    storage.crash();
    let (store, replayed) = open(&storage, 1000);
    assert_eq!(store.image().as_ref(), &image);
    assert_eq!(replayed.snapshot_offset, Some(6));
}

#[test]
fn a_thousand_topics_created_and_deleted_replay_identically() {
    let storage = SimStorage::new();
    let (mut store, _) = open(&storage, 300);
    let c = controller();
    let mut snapshots = 0;
    for n in 0..1000u128 {
        create(&mut store, &format!("topic-{n}"), n + 1);
        if n % 3 == 0 {
            let records = c.delete_topic(store.image(), &format!("topic-{}", n / 2));
            if let Ok(records) = records {
                commit(&mut store, &records);
            }
        }
        if matches!(block_on(store.snapshot_if_due()), Ok(true)) {
            snapshots += 1;
        }
    }
    let image = store.image().as_ref().clone();
    assert_eq!(image.topic_count(), 1000 - 334);
    assert_eq!(image.partition_count(), 2 * (1000 - 334));
    assert!(snapshots >= 10, "{snapshots} snapshots");
    storage.crash();
    storage.set_short_reads(true);
    let (store, _) = open(&storage, 300);
    assert_eq!(store.image().as_ref(), &image);
    assert_eq!(store.image().shard_loads(2), vec![666, 666]);
}

#[test]
fn rejected_records_write_nothing() {
    let storage = SimStorage::new();
    let (mut store, _) = open(&storage, 1000);
    create(&mut store, "a", 1);
    let again = create_records(&MetadataImage::new(), "a", 9);
    let result = block_on(store.commit(&again));
    assert!(matches!(
        result,
        Err(CommitError::Rejected { index: 0, .. })
    ));
    assert_eq!(result.err().map(|e| e.error_code().code()), Some(36));
    assert_eq!(store.next_offset(), 3);
    assert_eq!(storage.unsynced_bytes(&log_path(0)), 0);
}

fn flip_byte(storage: &SimStorage, path: &Path, at: usize) {
    let mut contents = storage.file_contents(path).unwrap_or_default();
    contents[at] ^= 0x40;
    storage.set_file_contents(path, &contents);
}

#[test]
fn damage_outside_the_tail_stops_the_open() {
    let storage = SimStorage::new();
    let (mut store, _) = open(&storage, 1000);
    create(&mut store, "a", 1);
    assert!(block_on(store.snapshot()).is_ok());
    create(&mut store, "b", 2);
    drop(store);
    let snapshot = dir().join(format!("{:020}.snapshot", 3));
    let damaged = storage.fork();
    flip_byte(&damaged, &snapshot, 40);
    assert!(matches!(
        open_err(&damaged),
        MetadataLogError::Snapshot { .. }
    ));
    // A log that does not start where the snapshot ends is a gap.
    let gap = storage.fork();
    let log = gap.file_contents(&log_path(3)).unwrap_or_default();
    gap.remove_file_durably(&log_path(3));
    gap.set_file_contents(&log_path(4), &log);
    assert!(matches!(
        open_err(&gap),
        MetadataLogError::Gap {
            expected: 3,
            found: 4,
            ..
        }
    ));
}

#[test]
fn a_damaged_acknowledged_frame_is_not_mistaken_for_a_torn_tail() {
    let storage = SimStorage::new();
    let (mut store, _) = open(&storage, 1000);
    create(&mut store, "a", 1);
    let first_len = storage.file_contents(&log_path(0)).map_or(0, |c| c.len());
    create(&mut store, "b", 2);
    drop(store);
    let damaged = storage.fork();
    // Inside the first frame's records: its CRC fails and a frame follows.
    flip_byte(&damaged, &log_path(0), 30);
    match open_err(&damaged) {
        MetadataLogError::Corrupt {
            position, source, ..
        } => {
            assert_eq!(position, 0);
            assert!(matches!(source, FrameError::CrcMismatch { .. }));
        }
        other => panic!("{other}"),
    }
    // The same damage in the last frame reads as a torn append.
    let tail = storage.fork();
    flip_byte(&tail, &log_path(0), first_len + 30);
    let (store, replayed) = open(&tail, 1000);
    let total = storage.file_contents(&log_path(0)).map_or(0, |c| c.len());
    assert_eq!(replayed.truncated_bytes as usize, total - first_len);
    assert_eq!(store.image().topic_count(), 1);
}
