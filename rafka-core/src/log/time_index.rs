//! The sparse time index of one segment (`<base offset>.timeindex`): entries
//! of (timestamp i64 BE, relative offset u32 BE), Kafka's format.
//!
//! An entry says "up to the batch whose last offset is `base +
//! relative_offset`, no batch has a max timestamp above `timestamp`, and
//! that batch is the first to reach it". Entries are taken at the offset
//! index's cadence and only when the segment's max timestamp grew, plus a
//! final one when the segment is closed, so the last entry holds the
//! segment's max timestamp. Kept in memory and written whole like the
//! offset index.

use super::offset_index::IndexDefect;

/// Bytes of one entry on disk.
pub const ENTRY_BYTES: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// The in-memory time index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    pub fn entries(&self) -> &[TimeEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Adds the entry if its timestamp is above the last one (Kafka's
    /// `maybeAppend`); a segment that never saw a timestamp >= 0 has none.
    /// An entry whose offset would go backwards can only come from a
    /// damaged index file that passed the checks at open: it is dropped
    /// rather than panicking on disk bytes.
    pub fn maybe_push(&mut self, entry: TimeEntry) {
        let (last_timestamp, last_offset) = self
            .entries
            .last()
            .map_or((-1, 0), |last| (last.timestamp, last.relative_offset));
        if entry.timestamp <= last_timestamp || entry.relative_offset < last_offset {
            return;
        }
        self.entries.push(entry);
    }

    /// The greatest entry whose timestamp is at or below `timestamp`.
    pub fn floor(&self, timestamp: i64) -> Option<TimeEntry> {
        let index = self
            .entries
            .partition_point(|entry| entry.timestamp <= timestamp);
        match index {
            0 => None,
            _ => Some(self.entries[index - 1]),
        }
    }

    /// Drops the entries at or after `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|entry| entry.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for entry in &self.entries {
            bytes.extend_from_slice(&entry.timestamp.to_be_bytes());
            bytes.extend_from_slice(&entry.relative_offset.to_be_bytes());
        }
        bytes
    }

    /// Decodes a time index file: timestamps strictly increasing, offsets
    /// non-decreasing and below `relative_offset_limit`.
    pub fn decode(bytes: &[u8], relative_offset_limit: u64) -> Result<TimeIndex, IndexDefect> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return Err(IndexDefect::PartialEntry {
                file_bytes: bytes.len(),
            });
        }
        let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
        for (index, chunk) in bytes.chunks_exact(ENTRY_BYTES).enumerate() {
            let mut timestamp = [0u8; 8];
            timestamp.copy_from_slice(&chunk[..8]);
            let entry = TimeEntry {
                timestamp: i64::from_be_bytes(timestamp),
                relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
            };
            let (last_timestamp, last_offset) = entries
                .last()
                .map_or((-1, 0), |last| (last.timestamp, last.relative_offset));
            if entry.timestamp <= last_timestamp || entry.relative_offset < last_offset {
                return Err(IndexDefect::NotIncreasing { entry: index });
            }
            if u64::from(entry.relative_offset) >= relative_offset_limit {
                return Err(IndexDefect::OutOfBounds { entry: index });
            }
            entries.push(entry);
        }
        Ok(TimeIndex { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(timestamp: i64, relative_offset: u32) -> TimeEntry {
        TimeEntry {
            timestamp,
            relative_offset,
        }
    }

    #[test]
    fn maybe_push_keeps_only_growing_timestamps() {
        let mut index = TimeIndex::default();
        index.maybe_push(entry(-1, 0));
        index.maybe_push(entry(100, 4));
        index.maybe_push(entry(100, 9));
        index.maybe_push(entry(90, 12));
        index.maybe_push(entry(250, 20));
        index.maybe_push(entry(300, 19));
        assert_eq!(index.entries(), &[entry(100, 4), entry(250, 20)]);
        assert_eq!(index.floor(99), None);
        assert_eq!(index.floor(100), Some(entry(100, 4)));
        assert_eq!(index.floor(249), Some(entry(100, 4)));
        assert_eq!(index.floor(i64::MAX), Some(entry(250, 20)));
    }

    #[test]
    fn encode_decode_round_trip_and_defects() {
        let mut index = TimeIndex::default();
        index.maybe_push(entry(1_700_000_000_000, 3));
        index.maybe_push(entry(1_700_000_000_500, 70));
        let bytes = index.encode();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[8..12], &[0, 0, 0, 3]);
        assert_eq!(TimeIndex::decode(&bytes, 71), Ok(index.clone()));
        assert_eq!(
            TimeIndex::decode(&bytes, 70),
            Err(IndexDefect::OutOfBounds { entry: 1 })
        );
        assert_eq!(
            TimeIndex::decode(&bytes[..23], 71),
            Err(IndexDefect::PartialEntry { file_bytes: 23 })
        );
        let mut swapped = bytes[12..].to_vec();
        swapped.extend_from_slice(&bytes[..12]);
        assert_eq!(
            TimeIndex::decode(&swapped, 71),
            Err(IndexDefect::NotIncreasing { entry: 1 })
        );
        index.truncate_to_offset(70);
        assert_eq!(index.entries(), &[entry(1_700_000_000_000, 3)]);
    }
}
