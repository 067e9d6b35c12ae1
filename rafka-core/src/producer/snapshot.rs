//! Producer state snapshots: `<offset, 20 digits>.snapshot` files in the
//! partition directory, in Kafka's own format (version 1), so a Kafka data
//! dir's snapshots load here and ours load in Kafka:
//!
//! ```text
//! version i16 = 1 | crc u32 (CRC32C of everything after it) | count i32
//! count x { producer_id i64, epoch i16, last_sequence i32, last_offset i64,
//!           offset_delta i32, timestamp i64, coordinator_epoch i32,
//!           current_txn_first_offset i64 }           (big-endian, 46 bytes)
//! ```
//!
//! Kafka writes one entry per producer: its last batch. We write one entry
//! per retained batch, oldest first, so that after a restart all five
//! retained batches still answer retries as duplicates. Kafka reading such a
//! file keeps the last entry of each producer, which is its newest batch —
//! what Kafka itself would have written. A producer with no batch (only
//! markers) is one entry with last_offset -1. As in Kafka, the timestamp of
//! a producer's last entry is its last timestamp (the same as its newest
//! batch's unless a transaction marker came after it).
//!
//! A snapshot named N holds the state of every batch below offset N;
//! recovery loads the newest snapshot not above the log end and replays the
//! log from N with [`ProducerStateTable::rebuild_from`].

use std::path::{Path, PathBuf};

use crate::io::Storage;

use super::file::{read_all, write_atomic, TMP_SUFFIX};
use super::state::{first_sequence, BatchMetadata, ProducerEntry, ProducerStateTable};
use super::{FormatError, ProducerError};

pub const SNAPSHOT_SUFFIX: &str = ".snapshot";
const SNAPSHOT_VERSION: i16 = 1;
const OFFSET_DIGITS: usize = 20;

const CRC_AT: usize = 2;
const CRC_COVERS_FROM: usize = CRC_AT + 4;
const HEADER_BYTES: usize = CRC_COVERS_FROM + 4;
const ENTRY_BYTES: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
const _: () = assert!(ENTRY_BYTES == 46);

/// `00000000000000001234.snapshot` for offset 1234.
pub fn snapshot_file_name(offset: i64) -> String {
    assert!(offset >= 0, "snapshot offset {offset} is negative");
    format!("{offset:0width$}{SNAPSHOT_SUFFIX}", width = OFFSET_DIGITS)
}

/// The offset in a snapshot file name, None for any other file.
pub fn parse_snapshot_file_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    if digits.len() != OFFSET_DIGITS || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One entry of the file: one retained batch of one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SnapshotEntry {
    producer_id: i64,
    epoch: i16,
    last_seq: i32,
    last_offset: i64,
    offset_delta: i32,
    timestamp: i64,
    coordinator_epoch: i32,
    current_txn_first_offset: i64,
}

impl SnapshotEntry {
    fn new(producer_id: i64, entry: &ProducerEntry, batch: Option<&BatchMetadata>) -> Self {
        SnapshotEntry {
            producer_id,
            epoch: entry.epoch,
            last_seq: batch.map_or(super::NO_SEQUENCE, |batch| batch.last_seq),
            last_offset: batch.map_or(-1, BatchMetadata::last_offset),
            offset_delta: batch.map_or(0, |batch| batch.last_offset_delta),
            timestamp: batch.map_or(entry.last_timestamp, |batch| batch.timestamp),
            coordinator_epoch: entry.coordinator_epoch,
            current_txn_first_offset: entry.current_txn_first_offset.unwrap_or(-1),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.last_seq.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.offset_delta.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&self.current_txn_first_offset.to_be_bytes());
    }

    /// `bytes` is exactly [`ENTRY_BYTES`] long.
    fn decode(bytes: &[u8]) -> Self {
        let mut reader = Reader { bytes, at: 0 };
        SnapshotEntry {
            producer_id: i64::from_be_bytes(reader.take()),
            epoch: i16::from_be_bytes(reader.take()),
            last_seq: i32::from_be_bytes(reader.take()),
            last_offset: i64::from_be_bytes(reader.take()),
            offset_delta: i32::from_be_bytes(reader.take()),
            timestamp: i64::from_be_bytes(reader.take()),
            coordinator_epoch: i32::from_be_bytes(reader.take()),
            current_txn_first_offset: i64::from_be_bytes(reader.take()),
        }
    }

    fn batch(&self) -> Option<BatchMetadata> {
        (self.last_offset >= 0).then(|| BatchMetadata {
            first_seq: first_sequence(self.last_seq, self.offset_delta),
            last_seq: self.last_seq,
            first_offset: self.last_offset - i64::from(self.offset_delta),
            last_offset_delta: self.offset_delta,
            timestamp: self.timestamp,
        })
    }
}

/// Reads fixed-size fields from a slice whose length was checked up front.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut field = [0u8; N];
        field.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        field
    }
}

fn decode_entries(bytes: &[u8]) -> Result<Vec<SnapshotEntry>, FormatError> {
    if bytes.len() < HEADER_BYTES {
        return Err(FormatError::Truncated {
            needed_bytes: HEADER_BYTES,
            available_bytes: bytes.len(),
        });
    }
    let mut header = Reader { bytes, at: 0 };
    let version = i16::from_be_bytes(header.take());
    if version != SNAPSHOT_VERSION {
        return Err(FormatError::UnknownVersion(version));
    }
    let stored = u32::from_be_bytes(header.take());
    let computed = crc32c::crc32c(&bytes[CRC_COVERS_FROM..]);
    if stored != computed {
        return Err(FormatError::CrcMismatch { stored, computed });
    }
    let count = i32::from_be_bytes(header.take());
    let count = usize::try_from(count).map_err(|_| FormatError::NegativeCount(count))?;
    let body = &bytes[HEADER_BYTES..];
    let needed_bytes = count.saturating_mul(ENTRY_BYTES);
    if body.len() < needed_bytes {
        return Err(FormatError::Truncated {
            needed_bytes: HEADER_BYTES.saturating_add(needed_bytes),
            available_bytes: bytes.len(),
        });
    }
    if body.len() > needed_bytes {
        return Err(FormatError::TrailingBytes(body.len() - needed_bytes));
    }
    Ok(body
        .chunks_exact(ENTRY_BYTES)
        .map(SnapshotEntry::decode)
        .collect())
}

/// What [`ProducerStateTable::load_latest`] found and cleaned up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadedSnapshot {
    /// Offset of the snapshot loaded: replay the log from here. None: no
    /// usable snapshot, replay from the log start.
    pub snapshot_offset: Option<i64>,
    /// Snapshots above the log end (the log was truncated), deleted.
    pub removed_newer: Vec<i64>,
    /// Snapshots that failed to decode, deleted, with the reason.
    pub removed_corrupt: Vec<(i64, FormatError)>,
}

impl ProducerStateTable {
    /// The table as snapshot file bytes.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut entries = Vec::new();
        for (producer_id, entry) in &self.producers {
            if entry.batches.is_empty() {
                entries.push(SnapshotEntry::new(*producer_id, entry, None));
            }
            for batch in &entry.batches {
                entries.push(SnapshotEntry::new(*producer_id, entry, Some(batch)));
            }
            if let Some(newest) = entries.last_mut() {
                newest.timestamp = entry.last_timestamp;
            }
        }
        // Unreachable in practice: 2^31 entries are 100 GiB of snapshot.
        let count = i32::try_from(entries.len()).expect("snapshot entry count fits in i32");
        let mut out = Vec::with_capacity(HEADER_BYTES + entries.len() * ENTRY_BYTES);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&count.to_be_bytes());
        for entry in &entries {
            entry.encode(&mut out);
        }
        let crc = crc32c::crc32c(&out[CRC_COVERS_FROM..]);
        out[CRC_AT..CRC_COVERS_FROM].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Replaces the table's contents with the snapshot in `bytes`. On error
    /// the table is left as it was.
    pub fn load_snapshot_bytes(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        let entries = decode_entries(bytes)?;
        self.producers.clear();
        for entry in entries {
            self.load_entry(&entry);
        }
        self.reindex_transactions();
        Ok(())
    }

    /// Consecutive entries of one producer and epoch are its retained
    /// batches; anything else replaces what was there, as Kafka does.
    fn load_entry(&mut self, entry: &SnapshotEntry) {
        let batch = entry.batch();
        let producer = self
            .producers
            .entry(entry.producer_id)
            .or_insert_with(ProducerEntry::empty);
        if producer.epoch != entry.epoch || batch.is_none() {
            *producer = ProducerEntry::empty();
            producer.epoch = entry.epoch;
        }
        if let Some(batch) = batch {
            producer.push_batch(batch);
        }
        producer.last_timestamp = entry.timestamp;
        producer.coordinator_epoch = entry.coordinator_epoch;
        producer.current_txn_first_offset =
            (entry.current_txn_first_offset >= 0).then_some(entry.current_txn_first_offset);
    }

    /// Writes the table as the snapshot at `offset` (the log end offset it
    /// covers) in the partition directory `dir`, durably.
    pub async fn snapshot<S: Storage>(
        &self,
        storage: &S,
        dir: &Path,
        offset: i64,
    ) -> Result<PathBuf, ProducerError> {
        let name = snapshot_file_name(offset);
        write_atomic(storage, dir, &name, &self.encode_snapshot()).await
    }

    /// Replaces the table with the newest decodable snapshot in `dir` not
    /// above `log_end_offset`. Deletes snapshots above the log end (they
    /// describe batches the log no longer has), corrupt ones (as Kafka
    /// does, falling back to an older one) and temp files of interrupted
    /// writes. Older snapshots stay for [`remove_snapshots_below`]. On an
    /// IO error the table is left empty and the files as they were found,
    /// minus what was already deleted.
    pub async fn load_latest<S: Storage>(
        &mut self,
        storage: &S,
        dir: &Path,
        log_end_offset: i64,
    ) -> Result<LoadedSnapshot, ProducerError> {
        self.clear();
        let mut loaded = LoadedSnapshot::default();
        let (mut offsets, stray_tmp) = list_snapshots(storage, dir).await?;
        for name in &stray_tmp {
            storage.remove_file(&dir.join(name)).await?;
        }
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        for offset in offsets {
            let path = dir.join(snapshot_file_name(offset));
            if offset > log_end_offset {
                storage.remove_file(&path).await?;
                loaded.removed_newer.push(offset);
                continue;
            }
            let data = read_all(storage, &path).await?;
            match self.load_snapshot_bytes(&data) {
                Ok(()) => {
                    loaded.snapshot_offset = Some(offset);
                    break;
                }
                Err(error) => {
                    storage.remove_file(&path).await?;
                    loaded.removed_corrupt.push((offset, error));
                }
            }
        }
        let removed_any = !stray_tmp.is_empty()
            || !loaded.removed_newer.is_empty()
            || !loaded.removed_corrupt.is_empty();
        if removed_any {
            storage.sync_dir(dir).await?;
        }
        Ok(loaded)
    }
}

/// Snapshot offsets in `dir`, and the names of temp files of interrupted
/// snapshot writes.
async fn list_snapshots<S: Storage>(
    storage: &S,
    dir: &Path,
) -> Result<(Vec<i64>, Vec<String>), ProducerError> {
    let mut offsets = Vec::new();
    let mut stray_tmp = Vec::new();
    for name in storage.list_dir(dir).await? {
        if let Some(offset) = parse_snapshot_file_name(&name) {
            offsets.push(offset);
        } else if name
            .strip_suffix(TMP_SUFFIX)
            .and_then(parse_snapshot_file_name)
            .is_some()
        {
            stray_tmp.push(name);
        }
    }
    Ok((offsets, stray_tmp))
}

/// Deletes the snapshots below `offset` (the log start offset after
/// retention): recovery never needs them again. Returns their offsets.
pub async fn remove_snapshots_below<S: Storage>(
    storage: &S,
    dir: &Path,
    offset: i64,
) -> Result<Vec<i64>, ProducerError> {
    let (mut offsets, _) = list_snapshots(storage, dir).await?;
    offsets.retain(|snapshot_offset| *snapshot_offset < offset);
    offsets.sort_unstable();
    for snapshot_offset in &offsets {
        storage
            .remove_file(&dir.join(snapshot_file_name(*snapshot_offset)))
            .await?;
    }
    if !offsets.is_empty() {
        storage.sync_dir(dir).await?;
    }
    Ok(offsets)
}
