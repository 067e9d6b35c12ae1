//! The aborted-transaction index: Kafka's `<base offset>.txnindex` next to
//! each segment, one entry per ABORT marker that landed in the segment and
//! ended a transaction with data on this partition:
//!
//! ```text
//! version i16 = 0 | producer_id i64 | first_offset i64 | last_offset i64
//! | last_stable_offset i64                         (big-endian, 34 bytes)
//! ```
//!
//! `first_offset` is the transaction's first data offset, `last_offset`
//! the marker's, `last_stable_offset` the LSO right after the abort (see
//! [`crate::producer::ProducerStateTable::stable_offset_after`]). A
//! read_committed fetch gets the entries overlapping the range it reads,
//! and the consumer drops the aborted records itself (the records stay
//! file regions).
//!
//! # Where the entries live
//! Every segment keeps its entries in memory (aborts are rare and an entry
//! is 34 bytes); the file is created at the first entry and appended to,
//! and it is in the log's dirty set like the segment, so the flush that
//! makes a marker durable makes its entry durable too. It goes with its
//! segment (retention, DeleteRecords, compaction, truncation).
//!
//! # Recovery
//! `open` loads every file and drops entries whose marker is no longer in
//! the segment (a torn tail was cut), and a partial last entry (a torn
//! append). Entries for markers at or past the offset producer state is
//! replayed from are rebuilt by that replay
//! ([`Log::recover_producer_state`]), which is the only place that knows
//! each transaction's first offset: markers below it were flushed, and
//! their entries with them.

use std::rc::Rc;

use rafka_proto::record::Batches;

use super::error::{CorruptKind, LogError};
use super::scan::read_full;
use super::segment::SegmentFileKind;
use super::Log;
use crate::io::{Storage, StorageFile};
use crate::producer::{CompletedTxn, ProducerStateTable};

/// Bytes of one entry.
pub const TXN_INDEX_ENTRY_BYTES: usize = 2 + 8 + 8 + 8 + 8;
const _: () = assert!(TXN_INDEX_ENTRY_BYTES == 34);
const TXN_INDEX_VERSION: i16 = 0;
/// Reads while replaying producer state are this large.
const REPLAY_READ_BYTES: u32 = 1 << 20;

/// One aborted transaction, as the index and a fetch response carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The ABORT marker's offset.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// The entry of an aborted transaction `completed`, whose marker
    /// `producers` just replayed or recorded; None for a commit.
    pub fn of_completed(completed: &CompletedTxn, producers: &ProducerStateTable) -> Option<Self> {
        completed.aborted.then(|| AbortedTxn {
            producer_id: completed.producer_id,
            first_offset: completed.first_offset,
            last_offset: completed.last_offset,
            last_stable_offset: producers.stable_offset_after(completed),
        })
    }

    pub fn encode(&self) -> [u8; TXN_INDEX_ENTRY_BYTES] {
        let mut out = [0u8; TXN_INDEX_ENTRY_BYTES];
        out[..2].copy_from_slice(&TXN_INDEX_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    /// None for an entry of an unknown version.
    pub fn decode(bytes: &[u8; TXN_INDEX_ENTRY_BYTES]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| {
            let mut field = [0u8; 8];
            field.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(field)
        };
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        (version == TXN_INDEX_VERSION).then(|| AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// The entries of a `.txnindex` file, up to the first that is not whole
/// or not of version 0 (a torn append; Kafka has no other version), and
/// whether the file held anything else.
pub fn decode_txn_index(bytes: &[u8]) -> (Vec<AbortedTxn>, bool) {
    let mut entries = Vec::with_capacity(bytes.len() / TXN_INDEX_ENTRY_BYTES);
    for chunk in bytes.chunks(TXN_INDEX_ENTRY_BYTES) {
        let Some(entry) = chunk.first_chunk().and_then(AbortedTxn::decode) else {
            return (entries, true);
        };
        entries.push(entry);
    }
    (entries, false)
}

/// The whole file for `entries`.
pub fn encode_txn_index(entries: &[AbortedTxn]) -> Vec<u8> {
    entries.iter().flat_map(|entry| entry.encode()).collect()
}

impl<S: Storage + Clone> Log<S> {
    /// Loads every segment's `.txnindex` (see "Recovery" in the module
    /// doc); files that held more than the log vouches for are rewritten.
    pub(super) async fn load_txn_indexes(&mut self) -> Result<(), LogError> {
        for index in 0..self.segments.len() {
            let path = self.segments[index].file_path(SegmentFileKind::TxnIndex);
            if !self.storage.exists(&path).await? {
                continue;
            }
            let file = Rc::new(self.storage.open(&path).await?);
            let size_bytes = file.size().await?;
            let size_bytes = usize::try_from(size_bytes).map_err(|_| txn_index_too_large(&path))?;
            let bytes = read_full(&*file, 0, size_bytes).await?;
            let (mut entries, torn) = decode_txn_index(&bytes);
            let segment = &mut self.segments[index];
            let (base, next) = (segment.base_offset, segment.next_offset);
            let before = entries.len();
            entries.retain(|e| e.last_offset >= base && e.last_offset < next);
            segment.aborted = entries;
            segment.txn_file = Some(file);
            if torn || segment.aborted.len() != before {
                self.rewrite_txn_index(index).await?;
            }
        }
        Ok(())
    }

    /// Adds the entry of an ABORT marker (at `entry.last_offset`, which
    /// must be in the log) to its segment's index. Durable with the next
    /// flush.
    pub async fn append_aborted_txn(&mut self, entry: AbortedTxn) -> Result<(), LogError> {
        self.health.check_write()?;
        assert!(
            entry.last_offset >= self.log_start_offset && entry.last_offset < self.log_end_offset(),
            "abort marker offset {} outside the log [{}, {})",
            entry.last_offset,
            self.log_start_offset,
            self.log_end_offset()
        );
        let index = self.segment_index_for(entry.last_offset);
        let file = self.txn_file(index).await?;
        let segment = &mut self.segments[index];
        let position = (segment.aborted.len() * TXN_INDEX_ENTRY_BYTES) as u64;
        // A torn write is past the last whole entry: the next append
        // overwrites it, and `open` drops it.
        file.write_at(position, &entry.encode()).await?;
        segment.aborted.push(entry);
        self.dirty.mark_file(&file);
        Ok(())
    }

    /// The segment's index file, created at its first entry. A file left
    /// at that name (a segment recreated at the same base offset) is
    /// overwritten with the segment's entries.
    async fn txn_file(&mut self, index: usize) -> Result<Rc<S::File>, LogError> {
        if let Some(file) = &self.segments[index].txn_file {
            return Ok(Rc::clone(file));
        }
        let path = self.segments[index].file_path(SegmentFileKind::TxnIndex);
        let file = Rc::new(self.storage.open(&path).await?);
        write_entries(&*file, &self.segments[index].aborted).await?;
        self.dirty.mark_file(&file);
        self.dirty.mark_dir();
        self.segments[index].txn_file = Some(Rc::clone(&file));
        Ok(file)
    }

    /// Writes segment `index`'s index file whole from its entries.
    pub(super) async fn rewrite_txn_index(&mut self, index: usize) -> Result<(), LogError> {
        if self.segments[index].aborted.is_empty() && self.segments[index].txn_file.is_none() {
            return Ok(());
        }
        let file = self.txn_file(index).await?;
        write_entries(&*file, &self.segments[index].aborted).await?;
        self.dirty.mark_file(&file);
        Ok(())
    }

    /// Drops the entries of segment `index` whose marker is at or past
    /// `offset`, rewriting its file if that changed it.
    pub(super) async fn cut_txn_index(
        &mut self,
        index: usize,
        offset: i64,
    ) -> Result<(), LogError> {
        let aborted = &mut self.segments[index].aborted;
        let before = aborted.len();
        aborted.retain(|entry| entry.last_offset < offset);
        if aborted.len() != before {
            self.rewrite_txn_index(index).await?;
        }
        Ok(())
    }

    /// The aborted transactions overlapping a read of `[fetch_offset,
    /// upper_offset)`: every entry with `last_offset >= fetch_offset` and
    /// `first_offset < upper_offset`, in marker order (Kafka's
    /// `collectAbortedTransactions`). An abort's entry sits in its
    /// marker's segment, at or after the one holding `fetch_offset`; the
    /// walk stops at the first entry whose last stable offset reaches
    /// `upper_offset`: no transaction starting below it ends later.
    pub fn aborted_txns(&self, fetch_offset: i64, upper_offset: i64) -> Vec<AbortedTxn> {
        let mut found = Vec::new();
        if fetch_offset >= upper_offset {
            return found;
        }
        let first = self.segment_index_for(fetch_offset);
        for segment in &self.segments[first..] {
            for entry in &segment.aborted {
                if entry.last_offset >= fetch_offset && entry.first_offset < upper_offset {
                    found.push(*entry);
                }
                if entry.last_stable_offset >= upper_offset {
                    return found;
                }
            }
        }
        found
    }

    /// Every entry of every segment, in log order (tests, tools).
    pub fn all_aborted_txns(&self) -> Vec<AbortedTxn> {
        self.segments
            .iter()
            .flat_map(|segment| segment.aborted.iter().copied())
            .collect()
    }

    /// Brings `producers` (loaded from a snapshot covering the offsets
    /// below `from`, or empty with `from` at the log start) up to the log
    /// end by replaying the batches from `from`, markers with their
    /// records, and rebuilds the aborted-transaction entries of the
    /// markers it replays. Whatever it rewrote is flushed before it
    /// returns.
    pub async fn recover_producer_state(
        &mut self,
        producers: &mut ProducerStateTable,
        from: i64,
    ) -> Result<(), LogError> {
        let from = from.max(self.log_start_offset);
        let first = self.segment_index_for(from);
        for index in first..self.segments.len() {
            self.cut_txn_index(index, from).await?;
        }
        let mut offset = from;
        while offset < self.log_end_offset() {
            let read = self.read(offset, REPLAY_READ_BYTES).await?;
            if read.is_empty() {
                break;
            }
            let bytes = read.read_bytes().await?;
            let mut aborted = Vec::new();
            for batch in Batches::new(bytes) {
                let batch = batch.map_err(|error| self.replay_corrupt(offset, error.into()))?;
                let header = *batch.header();
                let marker = match header.is_control() {
                    true => batch.end_txn_marker().ok().flatten(),
                    false => None,
                };
                let completed = producers.replay(&header, marker);
                if let Some(entry) = completed.and_then(|c| AbortedTxn::of_completed(&c, producers))
                {
                    aborted.push(entry);
                }
            }
            for entry in aborted {
                self.append_aborted_txn(entry).await?;
            }
            offset = read.next_offset;
        }
        if self.has_unflushed() {
            self.flush().await?;
        }
        Ok(())
    }

    fn replay_corrupt(&self, offset: i64, kind: CorruptKind) -> LogError {
        let index = self.segment_index_for(offset);
        LogError::Corrupt {
            path: self.segments[index].log_path.clone(),
            position: 0,
            kind,
        }
    }
}

/// Replaces the contents of `file` by `entries`.
pub(super) async fn write_entries<F: StorageFile>(
    file: &F,
    entries: &[AbortedTxn],
) -> Result<(), LogError> {
    let bytes = encode_txn_index(entries);
    if !bytes.is_empty() {
        file.write_at(0, &bytes).await?;
    }
    file.truncate(bytes.len() as u64).await?;
    Ok(())
}

fn txn_index_too_large(path: &std::path::Path) -> LogError {
    LogError::Corrupt {
        path: path.to_path_buf(),
        position: 0,
        kind: CorruptKind::PastEnd {
            size_bytes: u64::MAX,
            segment_bytes: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_in_kafkas_layout() {
        let entry = AbortedTxn {
            producer_id: 0x0102_0304_0506_0708,
            first_offset: 10,
            last_offset: 20,
            last_stable_offset: 21,
        };
        let bytes = entry.encode();
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[10..18], &10i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &21i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&bytes), Some(entry));

        let second = AbortedTxn {
            producer_id: 9,
            ..entry
        };
        let mut file = encode_txn_index(&[entry, second]);
        assert_eq!(file.len(), 68);
        assert_eq!(decode_txn_index(&file), (vec![entry, second], false));
        file.extend_from_slice(&[0, 0, 1]);
        assert_eq!(decode_txn_index(&file), (vec![entry, second], true));
        file[34] = 0x7f;
        assert_eq!(decode_txn_index(&file), (vec![entry], true));
    }
}
