//! The sparse offset index of one segment (`<base offset>.index`): entries of
//! (relative offset u32 BE, file position u32 BE), Kafka's format.
//!
//! As in Kafka, an entry maps the *last* offset of a batch to the position
//! where that batch *starts*, and is added once more than
//! `index.interval.bytes` of log were written since the previous one. A
//! lookup for offset `o` takes the greatest entry `<= o` and scans batch
//! headers forward from its position.
//!
//! The entries live in memory (a segment's index is at most
//! `segment.index.bytes`, 10 MiB by default). Unlike Kafka, the file is not
//! preallocated and memory-mapped: it is written whole, sized to its
//! entries, when the segment is closed (roll, clean shutdown, recovery).

/// Bytes of one entry on disk.
pub const ENTRY_BYTES: usize = 8;

/// One entry: the batch whose last offset is `base + relative_offset`
/// starts at byte `position` of the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Why the bytes of an index file cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexDefect {
    /// The file length is not a whole number of entries.
    PartialEntry { file_bytes: usize },
    /// Entry `entry` does not grow past the one before it.
    NotIncreasing { entry: usize },
    /// Entry `entry` points outside the segment.
    OutOfBounds { entry: usize },
}

/// The in-memory offset index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Adds an entry; callers add them in log order. The assertion guards
    /// the invariant every lookup's binary search relies on.
    pub fn push(&mut self, entry: OffsetEntry) {
        if let Some(last) = self.entries.last() {
            assert!(
                entry.relative_offset > last.relative_offset && entry.position > last.position,
                "offset index entries must increase: {last:?} then {entry:?}"
            );
        }
        self.entries.push(entry);
    }

    /// The position to start scanning from for `relative_offset`: the
    /// position of the greatest entry at or below it, else the segment start.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let index = self
            .entries
            .partition_point(|entry| entry.relative_offset <= relative_offset);
        match index {
            0 => 0,
            _ => self.entries[index - 1].position,
        }
    }

    /// The greatest indexed batch start at or below `position`, if any.
    pub fn position_at_or_below(&self, position: u64) -> Option<u64> {
        let index = self
            .entries
            .partition_point(|entry| u64::from(entry.position) <= position);
        match index {
            0 => None,
            _ => Some(u64::from(self.entries[index - 1].position)),
        }
    }

    /// Drops the entries for batches starting at or after `position`.
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .entries
            .partition_point(|entry| u64::from(entry.position) < position);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.entries.len() * ENTRY_BYTES);
        for entry in &self.entries {
            bytes.extend_from_slice(&entry.relative_offset.to_be_bytes());
            bytes.extend_from_slice(&entry.position.to_be_bytes());
        }
        bytes
    }

    /// Decodes an index file and checks it against its segment: entries
    /// strictly increasing, positions below `segment_bytes`, relative
    /// offsets below `relative_offset_limit`.
    pub fn decode(
        bytes: &[u8],
        segment_bytes: u64,
        relative_offset_limit: u64,
    ) -> Result<OffsetIndex, IndexDefect> {
        if !bytes.len().is_multiple_of(ENTRY_BYTES) {
            return Err(IndexDefect::PartialEntry {
                file_bytes: bytes.len(),
            });
        }
        let mut entries: Vec<OffsetEntry> = Vec::with_capacity(bytes.len() / ENTRY_BYTES);
        for (index, chunk) in bytes.chunks_exact(ENTRY_BYTES).enumerate() {
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            if let Some(last) = entries.last() {
                if entry.relative_offset <= last.relative_offset || entry.position <= last.position
                {
                    return Err(IndexDefect::NotIncreasing { entry: index });
                }
            }
            if u64::from(entry.position) >= segment_bytes
                || u64::from(entry.relative_offset) >= relative_offset_limit
            {
                return Err(IndexDefect::OutOfBounds { entry: index });
            }
            entries.push(entry);
        }
        Ok(OffsetIndex { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(pairs: &[(u32, u32)]) -> OffsetIndex {
        let mut index = OffsetIndex::default();
        for &(relative_offset, position) in pairs {
            index.push(OffsetEntry {
                relative_offset,
                position,
            });
        }
        index
    }

    #[test]
    fn lookup_takes_the_greatest_entry_at_or_below() {
        let index = index(&[(9, 4200), (19, 8400), (29, 12600)]);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(8), 0);
        assert_eq!(index.lookup(9), 4200);
        assert_eq!(index.lookup(18), 4200);
        assert_eq!(index.lookup(19), 8400);
        assert_eq!(index.lookup(1000), 12600);
        assert_eq!(index.position_at_or_below(4199), None);
        assert_eq!(index.position_at_or_below(8400), Some(8400));
        assert_eq!(index.position_at_or_below(12599), Some(8400));
    }

    #[test]
    fn encode_decode_round_trip() {
        let index = index(&[(1, 5000), (300, 9000)]);
        let bytes = index.encode();
        assert_eq!(
            bytes,
            vec![0, 0, 0, 1, 0, 0, 0x13, 0x88, 0, 0, 1, 0x2c, 0, 0, 0x23, 0x28]
        );
        assert_eq!(OffsetIndex::decode(&bytes, 9001, 301), Ok(index));
    }

    #[test]
    fn decode_rejects_bad_files() {
        let bytes = index(&[(1, 5000), (300, 9000)]).encode();
        assert_eq!(
            OffsetIndex::decode(&bytes[..12], 10_000, 1000),
            Err(IndexDefect::PartialEntry { file_bytes: 12 })
        );
        assert_eq!(
            OffsetIndex::decode(&bytes, 9000, 1000),
            Err(IndexDefect::OutOfBounds { entry: 1 })
        );
        assert_eq!(
            OffsetIndex::decode(&bytes, 10_000, 300),
            Err(IndexDefect::OutOfBounds { entry: 1 })
        );
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert_eq!(
            OffsetIndex::decode(&swapped, 10_000, 1000),
            Err(IndexDefect::NotIncreasing { entry: 1 })
        );
        assert_eq!(OffsetIndex::decode(&[], 0, 0), Ok(OffsetIndex::default()));
    }

    #[test]
    fn truncate_drops_entries_at_or_after_position() {
        let mut index = index(&[(9, 4200), (19, 8400), (29, 12600)]);
        index.truncate_to_position(8400);
        assert_eq!(index.entries().len(), 1);
        assert_eq!(
            index.last(),
            Some(OffsetEntry {
                relative_offset: 9,
                position: 4200
            })
        );
    }
}
