//! The leader-epoch cache of one partition log: Kafka's
//! `LeaderEpochFileCache` and its `leader-epoch-checkpoint` file.
//!
//! Each entry says that leader epoch `epoch` wrote its first batch at
//! `start_offset`; entries strictly increase in both. The cache answers
//! OffsetForLeaderEpoch ([`EpochCache::end_offset_for`]): where an epoch
//! ends in this log, which a follower truncates to (KIP-101/KIP-279) and a
//! consumer compares with its position (KIP-320).
//!
//! The file, in the partition's directory, is Kafka's text format:
//!
//! ```text
//! 0          <- version
//! 2          <- entry count
//! 0 0        <- epoch start_offset
//! 3 1200
//! ```
//!
//! It is replaced atomically (the helpers of `checkpoint`) whenever the
//! entries change: an append that starts a new epoch, a truncation, a log
//! start moving past an entry. The log's use of it is in `leader_epochs`.

use std::path::Path;

use super::checkpoint::{
    format_checkpoint, parse_checkpoint, read_checkpoint_bytes, write_checkpoint_text,
    CheckpointError,
};
use crate::io::Storage;

/// The file's name in the partition directory (Kafka's).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
/// Kafka's `UNDEFINED_EPOCH`: no epoch known.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`: no end offset known.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// One epoch and the offset of its first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

impl EpochEntry {
    pub const fn new(epoch: i32, start_offset: i64) -> Self {
        EpochEntry {
            epoch,
            start_offset,
        }
    }
}

/// The entries, ordered, both fields strictly increasing, none negative.
/// Few entries (one per leadership change that wrote data), so a `Vec`
/// with linear scans from the end is the whole data structure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<EpochEntry>,
}

impl EpochCache {
    /// A cache holding `entries`, if they keep the invariant (strictly
    /// increasing epochs and start offsets, none negative).
    pub fn from_entries(entries: Vec<EpochEntry>) -> Option<Self> {
        let valid = entries.iter().all(|e| e.epoch >= 0 && e.start_offset >= 0)
            && entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset);
        valid.then_some(EpochCache { entries })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The epoch of the latest entry: the one being written to.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    pub fn earliest_entry(&self) -> Option<EpochEntry> {
        self.entries.first().copied()
    }

    /// Kafka's `assign`: records that `epoch` starts at `start_offset`.
    /// Nothing changes if `epoch` is the latest one and starts at or before
    /// `start_offset` (an epoch, once assigned, keeps its start). Otherwise
    /// the entries from the end whose epoch is at or above `epoch`, or
    /// whose start is at or above `start_offset`, are removed first, so the
    /// entries stay strictly increasing. A negative epoch or offset (Kafka
    /// throws) is ignored. Returns whether the entries changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(latest) = self.latest_entry() {
            if latest.epoch == epoch && latest.start_offset <= start_offset {
                return false;
            }
        }
        while let Some(last) = self.entries.last() {
            if last.epoch >= epoch || last.start_offset >= start_offset {
                self.entries.pop();
            } else {
                break;
            }
        }
        self.entries.push(EpochEntry::new(epoch, start_offset));
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested`
    /// and the offset where it ends (where the next epoch starts, or
    /// `log_end_offset` for the latest epoch). Below the first entry: the
    /// requested epoch itself and the first entry's start (that history
    /// is gone from the log). [`UNDEFINED_EPOCH`] requested, an empty
    /// cache, or an epoch above every entry: ([`UNDEFINED_EPOCH`],
    /// [`UNDEFINED_EPOCH_OFFSET`]).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        // The first entry above the requested epoch, and the one before it.
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1).map(|floor| self.entries[floor]) {
            Some(floor) => (floor.epoch, next.start_offset),
            None => (requested, next.start_offset),
        }
    }

    /// Kafka's `epochForOffset`: the epoch of the entry covering `offset`
    /// (the last one starting at or below it).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let covering = self.entries.partition_point(|e| e.start_offset <= offset);
        covering
            .checked_sub(1)
            .map(|index| self.entries[index].epoch)
    }

    /// Kafka's `truncateFromEnd`: removes the entries starting at or after
    /// `end_offset` (the log was truncated there). A negative offset
    /// ([`UNDEFINED_EPOCH_OFFSET`]) changes nothing. Returns whether the
    /// entries changed.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        if end_offset < 0 {
            return false;
        }
        let kept = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = kept < self.entries.len();
        self.entries.truncate(kept);
        changed
    }

    /// Kafka's `truncateFromStart`: the log now starts at `start_offset`.
    /// Entries starting at or below it go, except the last of them, which
    /// now starts at `start_offset` (its epoch still covers the new
    /// start). Returns whether the entries changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(last_covered) = covered.checked_sub(1) else {
            return false;
        };
        let first = EpochEntry::new(self.entries[last_covered].epoch, start_offset);
        let changed = last_covered > 0 || self.entries[0] != first;
        self.entries.drain(..last_covered);
        self.entries[0] = first;
        changed
    }

    /// Removes every entry (the log was emptied and restarted). Returns
    /// whether there were any.
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }
}

/// Kafka's `leader-epoch-checkpoint` text for `entries`.
pub fn format_epoch_checkpoint(entries: &[EpochEntry]) -> String {
    let lines = entries
        .iter()
        .map(|entry| format!("{} {}", entry.epoch, entry.start_offset));
    format_checkpoint(entries.len(), lines)
}

/// Parses `leader-epoch-checkpoint` text; errors carry the 1-based line
/// number. The entries are not checked against each other here (see
/// [`EpochCache::from_entries`]).
pub fn parse_epoch_checkpoint(
    bytes: &[u8],
) -> Result<Vec<EpochEntry>, (usize, super::checkpoint::MalformedKind)> {
    parse_checkpoint(bytes, |line| {
        let mut fields = line.split_whitespace();
        let epoch = fields.next()?.parse().ok()?;
        let start_offset = fields.next()?.parse().ok()?;
        match fields.next() {
            Some(_) => None,
            None => Some(EpochEntry::new(epoch, start_offset)),
        }
    })
}

/// The entries of `dir`'s [`LEADER_EPOCH_CHECKPOINT_FILE`]; None if it is
/// missing.
pub async fn read_epoch_checkpoint<S: Storage>(
    storage: &S,
    dir: &Path,
) -> Result<Option<Vec<EpochEntry>>, CheckpointError> {
    let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
    let Some(bytes) = read_checkpoint_bytes(storage, &path).await? else {
        return Ok(None);
    };
    let entries =
        parse_epoch_checkpoint(&bytes).map_err(|(line, kind)| CheckpointError::Malformed {
            path: path.clone(),
            line,
            kind,
        })?;
    Ok(Some(entries))
}

/// Replaces `dir`'s [`LEADER_EPOCH_CHECKPOINT_FILE`] atomically and
/// durably.
pub async fn write_epoch_checkpoint<S: Storage>(
    storage: &S,
    dir: &Path,
    entries: &[EpochEntry],
) -> Result<(), CheckpointError> {
    let path = dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
    write_checkpoint_text(storage, &path, &format_epoch_checkpoint(entries)).await
}

#[cfg(test)]
mod tests {
    //! Kafka's `LeaderEpochFileCacheTest`, case by case (names kept).

    use futures_lite::future::block_on;

    use super::*;
    use crate::log::checkpoint::MalformedKind;
    use crate::sim::SimStorage;

    const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);

    fn entry(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry::new(epoch, start_offset)
    }

    fn cache_of(assigned: &[(i32, i64)]) -> EpochCache {
        let mut cache = EpochCache::default();
        for &(epoch, start_offset) in assigned {
            cache.assign(epoch, start_offset);
        }
        cache
    }

    fn three_epochs() -> EpochCache {
        cache_of(&[(2, 6), (3, 8), (4, 11)])
    }

    #[test]
    fn should_add_epoch_and_message_offset_to_cache() {
        let cache = cache_of(&[(2, 10)]);
        assert_eq!(cache.latest_epoch(), Some(2));
        assert_eq!(cache.entries(), [entry(2, 10)]);
        assert_eq!(cache.end_offset_for(2, 11), (2, 11));
    }

    #[test]
    fn should_return_log_end_offset_if_latest_epoch_requested() {
        let cache = cache_of(&[(2, 11), (2, 12)]);
        assert_eq!(cache.end_offset_for(2, 14), (2, 14));
    }

    #[test]
    fn should_return_undefined_offset_if_undefined_epoch_requested() {
        let cache = cache_of(&[(2, 11), (3, 12)]);
        assert_eq!(cache.end_offset_for(UNDEFINED_EPOCH, 0), UNDEFINED);
    }

    #[test]
    fn should_not_overwrite_offset_for_a_leader_epoch_once_assigned() {
        let mut cache = cache_of(&[(2, 9)]);
        assert!(!cache.assign(2, 10));
        assert_eq!(cache.entries(), [entry(2, 9)]);
        let cache = cache_of(&[(2, 6), (2, 10)]);
        assert_eq!(cache.entries(), [entry(2, 6)]);
        let cache = cache_of(&[(2, 6), (2, 7)]);
        assert_eq!(cache.entries(), [entry(2, 6)]);
    }

    #[test]
    fn should_enforce_monotonically_increasing_start_offsets() {
        let cache = cache_of(&[(2, 9), (3, 9)]);
        assert_eq!(cache.entries(), [entry(3, 9)]);
    }

    #[test]
    fn should_return_unsupported_if_no_epoch_recorded() {
        let cache = EpochCache::default();
        assert_eq!(cache.end_offset_for(0, 0), UNDEFINED);
        assert_eq!(cache.end_offset_for(UNDEFINED_EPOCH, 73), UNDEFINED);
        assert_eq!(cache.end_offset_for(7, 0), UNDEFINED);
        assert_eq!(cache.latest_epoch(), None);
    }

    #[test]
    fn should_return_first_epoch_if_requested_epoch_less_than_first_epoch() {
        let cache = cache_of(&[(5, 11), (6, 12), (7, 13)]);
        assert_eq!(cache.end_offset_for(4, 0), (4, 11));
    }

    #[test]
    fn should_truncate_if_matching_epoch_but_earlier_starting_offset() {
        let mut cache = cache_of(&[(5, 11), (6, 12), (7, 13)]);
        assert!(cache.assign(7, 12));
        assert_eq!(cache.entries(), [entry(5, 11), entry(7, 12)]);
        assert_eq!(cache.end_offset_for(5, 0), (5, 12));
        assert_eq!(cache.end_offset_for(6, 0), (5, 12));
    }

    #[test]
    fn should_get_first_offset_of_subsequent_epoch_when_previous_epoch_requested() {
        let cache = cache_of(&[(1, 11), (1, 12), (2, 13), (2, 14), (3, 15), (3, 16)]);
        assert_eq!(cache.end_offset_for(2, 17), (2, 15));
    }

    #[test]
    fn should_return_next_available_epoch_if_no_exact_epoch_for_the_one_requested() {
        let cache = cache_of(&[(0, 10), (2, 13), (4, 17)]);
        assert_eq!(cache.end_offset_for(1, 0), (0, 13));
        assert_eq!(cache.end_offset_for(2, 0), (2, 17));
        assert_eq!(cache.end_offset_for(3, 0), (2, 17));
    }

    #[test]
    fn should_return_invalid_offset_if_epoch_requested_is_not_tracked() {
        let cache = cache_of(&[(2, 100)]);
        assert_eq!(cache.end_offset_for(3, 100), UNDEFINED);
    }

    #[test]
    fn should_support_epochs_that_do_not_start_from_zero() {
        let cache = cache_of(&[(2, 6)]);
        assert_eq!(cache.end_offset_for(2, 7), (2, 7));
        assert_eq!(cache.entries(), [entry(2, 6)]);
    }

    #[test]
    fn should_enforce_monotonically_increasing_epochs() {
        let cache = cache_of(&[(1, 5), (2, 6), (1, 7)]);
        assert_eq!(cache.latest_epoch(), Some(1));
        assert_eq!(cache.end_offset_for(1, 8), (1, 8));
        assert_eq!(cache.end_offset_for(2, 8), UNDEFINED);
        assert_eq!(cache.entries(), [entry(1, 7)]);
    }

    #[test]
    fn should_enforce_offsets_increase_monotonically() {
        let cache = cache_of(&[(2, 6), (3, 5)]);
        assert_eq!(cache.entries(), [entry(3, 5)]);
    }

    #[test]
    fn should_increase_and_track_epochs_as_leaders_change_many_times() {
        let mut cache = cache_of(&[(0, 0), (1, 0)]);
        assert_eq!(cache.latest_epoch(), Some(1));
        assert_eq!(cache.end_offset_for(1, 0), (1, 0));
        assert_eq!(cache.end_offset_for(0, 0), (0, 0));
        assert_eq!(cache.end_offset_for(1, 5), (1, 5));
        assert_eq!(cache.end_offset_for(0, 5), (0, 0));
        cache.assign(2, 5);
        assert_eq!(cache.end_offset_for(2, 10), (2, 10));
        assert_eq!(cache.end_offset_for(1, 10), (1, 5));
        assert_eq!(cache.end_offset_for(0, 10), (0, 0));
    }

    #[test]
    fn should_increase_and_track_epochs_as_follower_receives_many_messages() {
        let mut cache = cache_of(&[(0, 0), (0, 1), (0, 2)]);
        assert_eq!(cache.latest_epoch(), Some(0));
        assert_eq!(cache.end_offset_for(0, 3), (0, 3));
        for offset in 3..6 {
            cache.assign(1, offset);
        }
        assert_eq!(cache.end_offset_for(1, 6), (1, 6));
        for offset in 6..9 {
            cache.assign(2, offset);
        }
        assert_eq!(cache.latest_epoch(), Some(2));
        assert_eq!(cache.end_offset_for(2, 9), (2, 9));
        assert_eq!(cache.end_offset_for(0, 9), (0, 3));
        assert_eq!(cache.end_offset_for(1, 9), (1, 6));
    }

    #[test]
    fn should_drop_entries_on_epoch_boundary_when_removing_latest_entries() {
        let mut cache = three_epochs();
        assert!(cache.truncate_from_end(8));
        assert_eq!(cache.entries(), [entry(2, 6)]);
    }

    #[test]
    fn should_drop_entries_between_epoch_boundary_when_removing_newest() {
        let mut cache = three_epochs();
        assert!(cache.truncate_from_end(9));
        assert_eq!(cache.latest_epoch(), Some(3));
        assert_eq!(cache.entries(), [entry(2, 6), entry(3, 8)]);
    }

    #[test]
    fn should_preserve_reset_offset_on_clear_earliest_if_one_exists() {
        let mut cache = three_epochs();
        assert!(cache.truncate_from_start(8));
        assert_eq!(cache.entries(), [entry(3, 8), entry(4, 11)]);
    }

    #[test]
    fn should_not_clear_anything_if_offset_too_early_or_first_offset() {
        let mut cache = three_epochs();
        assert!(!cache.truncate_from_start(1));
        assert!(!cache.truncate_from_start(6));
        assert_eq!(cache, three_epochs());
    }

    #[test]
    fn should_retain_latest_epoch_on_clear_all_earliest() {
        let mut cache = three_epochs();
        assert!(cache.truncate_from_start(11));
        assert_eq!(cache.entries(), [entry(4, 11)]);
        let mut cache = three_epochs();
        assert!(cache.truncate_from_start(15));
        assert_eq!(cache.entries(), [entry(4, 15)]);
    }

    #[test]
    fn should_update_offset_between_epoch_boundaries_on_clear_earliest() {
        let mut cache = three_epochs();
        assert!(cache.truncate_from_start(9));
        assert_eq!(cache.entries(), [entry(3, 9), entry(4, 11)]);
        let mut cache = cache_of(&[(0, 0), (1, 7), (2, 10)]);
        assert!(cache.truncate_from_start(5));
        assert_eq!(cache.entries(), [entry(0, 5), entry(1, 7), entry(2, 10)]);
    }

    #[test]
    fn should_clear_all_entries() {
        let mut cache = three_epochs();
        assert!(cache.clear());
        assert!(cache.entries().is_empty());
        assert!(!cache.clear());
    }

    #[test]
    fn should_not_reset_epoch_history_if_undefined_passed() {
        let mut cache = three_epochs();
        assert!(!cache.truncate_from_start(UNDEFINED_EPOCH_OFFSET));
        assert!(!cache.truncate_from_end(UNDEFINED_EPOCH_OFFSET));
        assert_eq!(cache.entries().len(), 3);
    }

    #[test]
    fn should_clear_earliest_and_latest_on_empty_cache() {
        let mut cache = EpochCache::default();
        assert!(!cache.truncate_from_start(7));
        assert!(!cache.truncate_from_end(7));
        assert!(cache.is_empty());
    }

    #[test]
    fn epoch_for_offset_finds_the_covering_entry() {
        let cache = cache_of(&[(0, 0), (3, 4), (5, 10)]);
        let found: Vec<_> = [0, 3, 4, 9, 10, 100]
            .into_iter()
            .map(|offset| cache.epoch_for_offset(offset))
            .collect();
        assert_eq!(
            found,
            [Some(0), Some(0), Some(3), Some(3), Some(5), Some(5)]
        );
        assert_eq!(cache_of(&[(2, 5)]).epoch_for_offset(4), None);
    }

    #[test]
    fn negative_epochs_and_offsets_are_ignored() {
        let mut cache = cache_of(&[(1, 5)]);
        assert!(!cache.assign(-1, 7));
        assert!(!cache.assign(2, -1));
        assert_eq!(cache.entries(), [entry(1, 5)]);
    }

    #[test]
    fn from_entries_keeps_only_the_invariant() {
        let good = vec![entry(0, 0), entry(3, 7)];
        assert_eq!(
            EpochCache::from_entries(good.clone()).map(|c| c.entries().to_vec()),
            Some(good)
        );
        for bad in [
            vec![entry(3, 0), entry(3, 7)],
            vec![entry(0, 7), entry(3, 7)],
            vec![entry(4, 0), entry(3, 7)],
            vec![entry(-1, 0)],
            vec![entry(0, -5)],
        ] {
            assert_eq!(EpochCache::from_entries(bad), None);
        }
    }

    #[test]
    fn checkpoint_text_is_kafkas() {
        let entries = [entry(0, 0), entry(3, 1200)];
        let text = format_epoch_checkpoint(&entries);
        assert_eq!(text, "0\n2\n0 0\n3 1200\n");
        assert_eq!(
            parse_epoch_checkpoint(text.as_bytes()),
            Ok(entries.to_vec())
        );
        assert_eq!(parse_epoch_checkpoint(b"0\n0\n"), Ok(Vec::new()));
        assert_eq!(
            parse_epoch_checkpoint(b"1\n0\n"),
            Err((1, MalformedKind::Version))
        );
        assert_eq!(
            parse_epoch_checkpoint(b"0\n1\n3\n"),
            Err((3, MalformedKind::Entry))
        );
        assert_eq!(
            parse_epoch_checkpoint(b"0\n1\n3 4 5\n"),
            Err((3, MalformedKind::Entry))
        );
        assert_eq!(
            parse_epoch_checkpoint(b"0\n1\nx 4\n"),
            Err((3, MalformedKind::Entry))
        );
        assert_eq!(
            parse_epoch_checkpoint(b"0\n2\n3 4\n"),
            Err((
                2,
                MalformedKind::CountMismatch {
                    declared: 2,
                    found: 1
                }
            ))
        );
    }

    #[test]
    fn should_persist_epochs_between_instances() {
        block_on(async {
            let storage = SimStorage::new();
            let dir = Path::new("/data/orders-0");
            storage.create_dir_all(dir).await.unwrap();
            assert_eq!(read_epoch_checkpoint(&storage, dir).await.unwrap(), None);
            write_epoch_checkpoint(&storage, dir, &[entry(2, 6)])
                .await
                .unwrap();
            let later = [entry(2, 6), entry(4, 9)];
            write_epoch_checkpoint(&storage, dir, &later).await.unwrap();
            storage.crash();
            let read = read_epoch_checkpoint(&storage, dir).await.unwrap();
            assert_eq!(read, Some(later.to_vec()));
            let tmp = dir.join("leader-epoch-checkpoint.tmp");
            assert!(!storage.exists(&tmp).await.unwrap());
        });
    }
}
