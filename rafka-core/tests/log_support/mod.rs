//! Shared fixtures for the log tests: a simulated data dir, batch builders
//! and helpers that read a whole log back and check every batch.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::future::block_on;
use rafka_core::log::{Log, LogConfig, RecoveryHints};
use rafka_core::sim::{ManualClock, SimStorage};
use rafka_proto::record::{
    set_base_offset, set_partition_leader_epoch, validate, BatchBuilder, Batches, Compression,
};

pub const DIR: &str = "/data/orders-0";
/// Far from 0 so that retention arithmetic never goes negative.
pub const START_MS: i64 = 1_700_000_000_000;

pub fn dir() -> PathBuf {
    PathBuf::from(DIR)
}

pub fn segment_path(base_offset: i64, extension: &str) -> PathBuf {
    dir().join(format!("{base_offset:020}.{extension}"))
}

pub struct Fixture {
    pub storage: SimStorage,
    pub clock: ManualClock,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture::with_storage(SimStorage::new())
    }

    pub fn with_storage(storage: SimStorage) -> Self {
        Fixture {
            storage,
            clock: ManualClock::new(START_MS),
        }
    }

    pub fn open(&self, config: LogConfig, hints: RecoveryHints) -> Log<SimStorage> {
        block_on(self.try_open(config, hints)).expect("open the log")
    }

    pub async fn try_open(
        &self,
        config: LogConfig,
        hints: RecoveryHints,
    ) -> Result<Log<SimStorage>, rafka_core::log::LogError> {
        Log::open(
            self.storage.clone(),
            dir(),
            config,
            Rc::new(self.clock.clone()),
            hints,
        )
        .await
    }
}

/// One uncompressed batch of `record_count` records, all at `timestamp_ms`,
/// each with a `value_bytes` value.
pub fn batch(record_count: usize, timestamp_ms: i64, value_bytes: usize) -> Bytes {
    let timestamps = vec![timestamp_ms; record_count];
    batch_with_timestamps(&timestamps, value_bytes)
}

/// One uncompressed batch with a record per timestamp.
pub fn batch_with_timestamps(timestamps_ms: &[i64], value_bytes: usize) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for (index, &timestamp_ms) in timestamps_ms.iter().enumerate() {
        let value = vec![b'a' + (index % 26) as u8; value_bytes];
        builder.push_record(timestamp_ms, Some(b"key"), Some(&value), &[]);
    }
    builder.build().expect("build a test batch")
}

/// Several batches in one buffer, as one produce request carries them.
pub fn concat(batches: &[Bytes]) -> Bytes {
    let mut all = BytesMut::new();
    for batch in batches {
        all.extend_from_slice(batch);
    }
    all.freeze()
}

/// `batch` as the log stores it: base offset and leader epoch rewritten.
pub fn stored(batch: &Bytes, base_offset: i64, leader_epoch: i32) -> Bytes {
    let mut copy = batch.to_vec();
    set_base_offset(&mut copy, base_offset);
    set_partition_leader_epoch(&mut copy, leader_epoch);
    Bytes::from(copy)
}

/// Reads the whole log with reads of `max_bytes`, checking every batch
/// (CRC, offsets contiguous from the log start's batch); returns them as
/// (base offset, bytes).
pub async fn read_all(log: &Log<SimStorage>, max_bytes: u32) -> Vec<(i64, Bytes)> {
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let result = log.read(offset, max_bytes).await.expect("read");
        assert!(
            !result.is_empty(),
            "read at {offset} below the end returned nothing"
        );
        let bytes = result.read_bytes().await.expect("read regions");
        assert_eq!(bytes.len() as u64, result.size_bytes);
        for batch in Batches::new(bytes) {
            let batch = batch.expect("every stored batch is valid");
            let header = *batch.header();
            validate(batch.as_bytes()).expect("CRC holds");
            if let Some(&(previous, _)) = batches.last() {
                assert!(header.base_offset > previous, "batches in offset order");
            }
            batches.push((header.base_offset, batch.into_bytes()));
            offset = header.next_offset();
        }
        assert_eq!(offset, result.next_offset);
    }
    assert_eq!(offset, log.log_end_offset());
    batches
}

pub fn small_segments(segment_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

pub fn exists(storage: &SimStorage, path: &Path) -> bool {
    use rafka_core::io::Storage;
    block_on(storage.exists(path)).expect("exists")
}
