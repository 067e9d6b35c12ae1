//! [`QuorumStorage`]: the in-memory mirror of the durable quorum log that
//! raft-rs reads through [`raft::Storage`].
//!
//! Only [`super::QuorumLog`] changes it, and only after the change is
//! durable, so raft-rs never sees (and never tells a peer about) an entry or
//! a vote a crash could take back. Lives on the controller's shard, as does
//! its `QuorumLog`: `Rc`, no locks.

use std::cell::RefCell;
use std::rc::Rc;

use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

/// What raft-rs reads. Cheap to clone: clones share one mirror.
#[derive(Clone, Default)]
pub struct QuorumStorage {
    core: Rc<RefCell<Mirror>>,
}

/// The durable state, in memory. `entries[i].index == snapshot index + 1 + i`.
#[derive(Debug, Clone, Default)]
pub(super) struct Mirror {
    pub(super) hard_state: HardState,
    /// The snapshot's conf state, or the initial voters before any.
    pub(super) conf_state: ConfState,
    /// The latest snapshot (data included: a leader sends it to followers
    /// whose entries were compacted away). None before the first.
    pub(super) snapshot: Option<Snapshot>,
    pub(super) entries: Vec<Entry>,
}

impl Mirror {
    pub(super) fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.get_metadata().index)
    }

    fn snapshot_term(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.get_metadata().term)
    }

    pub(super) fn first_index(&self) -> u64 {
        self.snapshot_index() + 1
    }

    pub(super) fn last_index(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// The term of entry `index`, answering for the snapshot's index too.
    pub(super) fn term(&self, index: u64) -> Result<u64, StorageError> {
        let snapshot_index = self.snapshot_index();
        if index == snapshot_index {
            return Ok(self.snapshot_term());
        }
        if index < snapshot_index {
            return Err(StorageError::Compacted);
        }
        let offset = (index - snapshot_index - 1) as usize;
        self.entries
            .get(offset)
            .map(|e| e.term)
            .ok_or(StorageError::Unavailable)
    }

    /// Replaces entries from `entries[0].index` on (raft-rs's conflicting
    /// suffix rule). The caller checked they are contiguous and start in
    /// `first_index ..= last_index + 1`.
    pub(super) fn append(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        let keep = (first.index - self.first_index()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
    }

    /// Restarts after `snapshot`, keeping `entries` (those after it).
    pub(super) fn restart(&mut self, snapshot: Snapshot, entries: Vec<Entry>, hs: HardState) {
        self.conf_state = snapshot.get_metadata().get_conf_state().clone();
        self.snapshot = Some(snapshot);
        self.entries = entries;
        self.hard_state = hs;
    }
}

impl QuorumStorage {
    pub(super) fn new(mirror: Mirror) -> QuorumStorage {
        QuorumStorage {
            core: Rc::new(RefCell::new(mirror)),
        }
    }

    pub(super) fn update<T>(&self, change: impl FnOnce(&mut Mirror) -> T) -> T {
        change(&mut self.core.borrow_mut())
    }

    pub(super) fn read<T>(&self, look: impl FnOnce(&Mirror) -> T) -> T {
        look(&self.core.borrow())
    }

    /// The durable hard state (what a restart would begin from).
    pub fn hard_state(&self) -> HardState {
        self.read(|m| m.hard_state.clone())
    }

    /// The metadata of the latest snapshot (index 0, term 0 before any).
    pub fn snapshot_metadata(&self) -> SnapshotMetadata {
        self.read(|m| {
            m.snapshot
                .as_ref()
                .map(|s| s.get_metadata().clone())
                .unwrap_or_default()
        })
    }
}

fn store_error(err: StorageError) -> raft::Error {
    raft::Error::Store(err)
}

/// Same answers as `raft::storage::MemStorage`, except that `snapshot`
/// returns the stored snapshot (with its data) instead of making an empty
/// one at the commit index, and a range past the last index is an error
/// rather than a panic.
impl raft::Storage for QuorumStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(self.read(|m| RaftState::new(m.hard_state.clone(), m.conf_state.clone())))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        let max_size = max_size.into();
        self.read(|m| {
            if low < m.first_index() {
                return Err(store_error(StorageError::Compacted));
            }
            if high > m.last_index() + 1 || low > high {
                return Err(store_error(StorageError::Unavailable));
            }
            let lo = (low - m.first_index()) as usize;
            let hi = (high - m.first_index()) as usize;
            let mut entries = m.entries[lo..hi].to_vec();
            raft::util::limit_size(&mut entries, max_size);
            Ok(entries)
        })
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.read(|m| m.term(idx)).map_err(store_error)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.read(Mirror::first_index))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.read(Mirror::last_index))
    }

    /// The latest snapshot if it covers `request_index`. Otherwise (none
    /// yet, or an older one) "temporarily unavailable": raft-rs retries
    /// later, after the caller compacted.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        self.read(|m| match &m.snapshot {
            Some(s) if s.get_metadata().index >= request_index => Ok(s.clone()),
            _ => Err(store_error(StorageError::SnapshotTemporarilyUnavailable)),
        })
    }
}

#[cfg(test)]
mod tests {
    use raft::Storage;

    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 10].into(),
            ..Default::default()
        }
    }

    fn with_snapshot(index: u64, term: u64, entries: Vec<Entry>) -> QuorumStorage {
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = term;
        snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        let mut mirror = Mirror::default();
        mirror.restart(snapshot, entries, HardState::default());
        QuorumStorage::new(mirror)
    }

    fn ctx() -> GetEntriesContext {
        GetEntriesContext::empty(false)
    }

    // MemStorage's own tests, answered the same way.
    #[test]
    fn term_first_last_like_mem_storage() {
        let s = with_snapshot(3, 3, vec![entry(4, 4), entry(5, 5)]);
        assert_eq!(s.term(2), Err(store_error(StorageError::Compacted)));
        assert_eq!(s.term(3), Ok(3));
        assert_eq!(s.term(5), Ok(5));
        assert_eq!(s.term(6), Err(store_error(StorageError::Unavailable)));
        assert_eq!(s.first_index(), Ok(4));
        assert_eq!(s.last_index(), Ok(5));
        let state = s.initial_state().map(|st| st.conf_state.voters);
        assert_eq!(state, Ok(vec![1, 2, 3]));
        let empty = QuorumStorage::default();
        assert_eq!((empty.first_index(), empty.last_index()), (Ok(1), Ok(0)));
        assert_eq!(empty.term(0), Ok(0));
    }

    #[test]
    fn entries_honour_bounds_and_max_size() {
        let s = with_snapshot(3, 3, vec![entry(4, 4), entry(5, 5), entry(6, 6)]);
        let size = u64::from(protobuf::Message::compute_size(&entry(4, 4)));
        let indexes = |r: raft::Result<Vec<Entry>>| r.map(|v| v.iter().map(|e| e.index).collect());
        let got: raft::Result<Vec<u64>> = indexes(s.entries(3, 5, None, ctx()));
        assert_eq!(got, Err(store_error(StorageError::Compacted)));
        assert_eq!(indexes(s.entries(4, 7, None, ctx())), Ok(vec![4, 5, 6]));
        assert_eq!(indexes(s.entries(4, 7, 0, ctx())), Ok(vec![4]));
        assert_eq!(indexes(s.entries(4, 7, size * 2, ctx())), Ok(vec![4, 5]));
        assert_eq!(indexes(s.entries(4, 7, size * 2 - 1, ctx())), Ok(vec![4]));
        assert_eq!(indexes(s.entries(5, 5, None, ctx())), Ok(vec![]));
        let past = indexes(s.entries(4, 8, None, ctx()));
        assert_eq!(past, Err(store_error(StorageError::Unavailable)));
    }

    #[test]
    fn snapshot_must_cover_the_request() {
        let s = with_snapshot(3, 2, vec![]);
        let got = s.snapshot(3, 2).map(|snap| snap.get_metadata().term);
        assert_eq!(got, Ok(2));
        let newer = s.snapshot(4, 2).map(|_| ());
        let unavailable = store_error(StorageError::SnapshotTemporarilyUnavailable);
        assert_eq!(newer, Err(unavailable));
        let none = QuorumStorage::default().snapshot(0, 2).map(|_| ());
        let unavailable = store_error(StorageError::SnapshotTemporarilyUnavailable);
        assert_eq!(none, Err(unavailable));
    }

    #[test]
    fn append_replaces_a_conflicting_suffix() {
        let s = with_snapshot(3, 3, vec![entry(4, 4), entry(5, 5), entry(6, 6)]);
        s.update(|m| m.append(&[entry(5, 7)]));
        assert_eq!(s.last_index(), Ok(5));
        assert_eq!(s.term(5), Ok(7));
        s.update(|m| m.append(&[entry(6, 7), entry(7, 7)]));
        assert_eq!((s.term(4), s.term(7)), (Ok(4), Ok(7)));
    }
}
