//! [`QuorumLog`]: the writer of the quorum's files (see the module doc of
//! `quorum` for the format and the crash rules).

use std::path::{Path, PathBuf};

use raft::prelude::{ConfState, Entry, HardState, Snapshot};

use super::files::{
    encode_group, encode_snapshot, list, log_name, read_snapshot, snapshot_name, write_atomically,
};
use super::replay::{check_commit, replay_log};
use super::storage::{Mirror, QuorumStorage};
use super::{Damage, Invalid, QuorumLogError};
use crate::io::{Storage, StorageFile};
use crate::metadata::log::read_all;

/// What recovery found.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// Entries after the snapshot, in the log.
    pub entries: u64,
    /// Bytes of torn tail (an append that never returned) cut off the log.
    pub truncated_bytes: u64,
    /// Index of the snapshot the log restarts after, if any.
    pub snapshot_index: Option<u64>,
    /// The conf state a restart begins from: the snapshot's, or the voters
    /// given at the very first open. The caller compares it with its own.
    pub conf_state: ConfState,
}

/// The durable side of the quorum's raft storage, on the controller's shard.
pub struct QuorumLog<S: Storage> {
    storage: S,
    dir: PathBuf,
    /// `<base>.log`, appended to by `persist`.
    active: S::File,
    active_bytes: u64,
    mirror: QuorumStorage,
    /// The latest snapshot, as the mirror holds it (data is shared Bytes).
    snapshot: Option<Snapshot>,
    /// The conf state after the entries the caller applied: what `compact`
    /// records in its snapshot.
    applied_conf_state: ConfState,
    poisoned: bool,
}

impl<S: Storage> QuorumLog<S> {
    /// Opens (or creates) the quorum's files in `dir` (created if missing).
    /// On first start the conf state is `voters`; afterwards the stored one
    /// wins (in [`Recovered::conf_state`] and `initial_state`).
    pub async fn open(
        storage: S,
        dir: PathBuf,
        voters: &[u64],
    ) -> Result<(QuorumLog<S>, QuorumStorage, Recovered), QuorumLogError> {
        storage.create_dir_all(&dir).await?;
        let listing = list(&storage, &dir).await?;
        for temp in &listing.temps {
            storage.remove_file(&dir.join(temp)).await?;
        }
        let Some(&base) = listing.logs.last() else {
            if !listing.snapshots.is_empty() {
                let damage = Damage::MissingLog;
                let (path, position) = (dir.clone(), 0);
                return Err(QuorumLogError::Damaged {
                    path,
                    position,
                    damage,
                });
            }
            return QuorumLog::create(storage, dir, voters).await;
        };
        let (mirror, active, valid_bytes, truncated_bytes) = recover(&storage, &dir, base).await?;
        let snapshot = mirror.snapshot.clone();
        let recovered = Recovered {
            entries: mirror.entries.len() as u64,
            truncated_bytes,
            snapshot_index: snapshot.as_ref().map(|s| s.get_metadata().index),
            conf_state: mirror.conf_state.clone(),
        };
        let log = QuorumLog {
            applied_conf_state: mirror.conf_state.clone(),
            mirror: QuorumStorage::new(mirror),
            storage,
            dir,
            active,
            active_bytes: valid_bytes,
            snapshot,
            poisoned: false,
        };
        log.remove_stale(base).await?;
        let mirror = log.clone_mirror();
        Ok((log, mirror, recovered))
    }

    /// First start: `0.log` holding the initial voters and an empty hard
    /// state, whole before its name exists.
    async fn create(
        storage: S,
        dir: PathBuf,
        voters: &[u64],
    ) -> Result<(QuorumLog<S>, QuorumStorage, Recovered), QuorumLogError> {
        let conf_state = ConfState {
            voters: voters.to_vec(),
            ..ConfState::default()
        };
        let mut bytes = Vec::new();
        encode_group(
            Some(&conf_state),
            &[],
            Some(&HardState::default()),
            &mut bytes,
        )?;
        write_atomically(&storage, &dir, &log_name(0), &bytes).await?;
        let active = storage.open(&dir.join(log_name(0))).await?;
        let mirror = Mirror {
            conf_state: conf_state.clone(),
            ..Mirror::default()
        };
        let log = QuorumLog {
            storage,
            dir,
            active,
            active_bytes: bytes.len() as u64,
            mirror: QuorumStorage::new(mirror),
            snapshot: None,
            applied_conf_state: conf_state.clone(),
            poisoned: false,
        };
        let recovered = Recovered {
            entries: 0,
            truncated_bytes: 0,
            snapshot_index: None,
            conf_state,
        };
        let mirror = log.clone_mirror();
        Ok((log, mirror, recovered))
    }

    fn clone_mirror(&self) -> QuorumStorage {
        self.mirror.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The durable hard state (the driver updates its commit index after a
    /// LightReady and persists it).
    pub fn hard_state(&self) -> HardState {
        self.mirror.hard_state()
    }

    /// The snapshot a restart begins from (data + metadata), if any, so the
    /// caller rebuilds its state machine.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Records the conf state the caller reached by applying a conf change
    /// (`RawNode::apply_conf_change`'s answer). Memory only: `compact` puts
    /// it in the snapshot's metadata; a restart re-applies conf changes
    /// after the snapshot.
    pub fn set_conf_state(&mut self, conf_state: ConfState) {
        self.applied_conf_state = conf_state;
    }

    /// One Ready's worth: `entries` (a first index <= the last index
    /// replaces the conflicting suffix) and/or a new hard state, made durable
    /// with one fdatasync, then mirrored in memory. After a failed write or
    /// sync the log refuses further calls: what reached the disk is
    /// unknown, and retrying a failed fsync can report success for data the
    /// kernel already dropped.
    pub async fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), QuorumLogError> {
        if self.poisoned {
            return Err(QuorumLogError::Poisoned);
        }
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        self.mirror
            .read(|m| check_persist(m, entries, hard_state))?;
        let mut bytes = Vec::new();
        encode_group(None, entries, hard_state, &mut bytes)?;
        // Stays set if either call fails (early return).
        self.poisoned = true;
        self.active.write_at(self.active_bytes, &bytes).await?;
        self.active.sync_data().await?;
        self.poisoned = false;
        self.active_bytes += bytes.len() as u64;
        self.mirror.update(|m| {
            m.append(entries);
            if let Some(hs) = hard_state {
                m.hard_state = hs.clone();
            }
        });
        Ok(())
    }

    /// A snapshot received from the leader (`Ready::snapshot()`): durable,
    /// then the log restarts after it (every entry dropped, as raft-rs
    /// replaces its whole log by a snapshot it restores), the hard state's
    /// commit moves up to it. Returns after it is durable.
    pub async fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), QuorumLogError> {
        if self.poisoned {
            return Err(QuorumLogError::Poisoned);
        }
        let meta = snapshot.get_metadata();
        let (index, term) = (meta.index, meta.term);
        let (snapshot_index, mut hs) = self
            .mirror
            .read(|m| (m.snapshot_index(), m.hard_state.clone()));
        if index <= snapshot_index || index < hs.commit {
            let commit = hs.commit;
            return Err(Invalid::SnapshotOutOfDate {
                index,
                snapshot_index,
                commit,
            }
            .into());
        }
        hs.term = hs.term.max(term);
        hs.commit = index;
        self.restart_after(snapshot.clone(), Vec::new(), hs).await?;
        self.applied_conf_state = meta.get_conf_state().clone();
        Ok(())
    }

    /// Our own snapshot of the applied state at `index` (`data`: the
    /// caller's image, opaque here): written durably, then the entries up
    /// to `index` are compacted away, on disk (the log restarts in a new
    /// file holding the entries after `index`) and in memory. `index` must
    /// be committed and in the log; at or below the current snapshot it is
    /// a no-op.
    pub async fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), QuorumLogError> {
        if self.poisoned {
            return Err(QuorumLogError::Poisoned);
        }
        let (snapshot_index, commit, last_index) = self
            .mirror
            .read(|m| (m.snapshot_index(), m.hard_state.commit, m.last_index()));
        if index <= snapshot_index {
            return Ok(());
        }
        if index > commit || index > last_index {
            return Err(Invalid::CompactOutOfRange {
                index,
                commit,
                last_index,
            }
            .into());
        }
        let (term, kept, hs) = self.mirror.read(|m| {
            let kept = m.entries[(index - snapshot_index) as usize..].to_vec();
            (m.term(index), kept, m.hard_state.clone())
        });
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        // In range (checked above), so the mirror knows its term.
        meta.term = term.unwrap_or_default();
        meta.set_conf_state(self.applied_conf_state.clone());
        self.restart_after(snapshot, kept, hs).await
    }

    /// Makes `snapshot` + a fresh log holding `kept` and `hs` the live pair,
    /// then drops the old pair, then mirrors it. A crash before the new
    /// log's name is durable reopens to the old pair.
    async fn restart_after(
        &mut self,
        snapshot: Snapshot,
        kept: Vec<Entry>,
        hs: HardState,
    ) -> Result<(), QuorumLogError> {
        let index = snapshot.get_metadata().index;
        let snapshot_bytes = encode_snapshot(&snapshot)?;
        let mut log_bytes = Vec::new();
        encode_group(None, &kept, Some(&hs), &mut log_bytes)?;
        self.poisoned = true;
        let dir = self.dir.clone();
        write_atomically(&self.storage, &dir, &snapshot_name(index), &snapshot_bytes).await?;
        write_atomically(&self.storage, &dir, &log_name(index), &log_bytes).await?;
        let fresh = self.storage.open(&dir.join(log_name(index))).await?;
        let old = std::mem::replace(&mut self.active, fresh);
        self.active_bytes = log_bytes.len() as u64;
        old.close().await?;
        self.remove_stale(index).await?;
        self.poisoned = false;
        self.mirror
            .update(|m| m.restart(snapshot.clone(), kept, hs));
        self.snapshot = Some(snapshot);
        Ok(())
    }

    /// Deletes every log and snapshot but the live pair at `base`: older
    /// ones, and a newer snapshot whose log never got its name (an install
    /// or compaction cut short). Crash-safe in any order: open ignores both.
    async fn remove_stale(&self, base: u64) -> Result<(), QuorumLogError> {
        let listing = list(&self.storage, &self.dir).await?;
        let logs = listing
            .logs
            .iter()
            .filter(|b| **b != base)
            .map(|b| log_name(*b));
        let snapshots = listing.snapshots.iter().filter(|i| **i != base);
        let stale: Vec<String> = logs.chain(snapshots.map(|i| snapshot_name(*i))).collect();
        for name in &stale {
            self.storage.remove_file(&self.dir.join(name)).await?;
        }
        if !stale.is_empty() {
            self.storage.sync_dir(&self.dir).await?;
        }
        Ok(())
    }
}

/// Loads the live pair at `base`: its snapshot, then its log replayed on
/// top, a torn tail cut off durably. Returns the mirror, the open log, its
/// valid length and the bytes cut.
async fn recover<S: Storage>(
    storage: &S,
    dir: &Path,
    base: u64,
) -> Result<(Mirror, S::File, u64, u64), QuorumLogError> {
    let snapshot = match base {
        0 => None,
        _ => Some(read_snapshot(storage, dir, base).await?),
    };
    let mut mirror = Mirror {
        conf_state: snapshot
            .as_ref()
            .map(|s| s.get_metadata().get_conf_state().clone())
            .unwrap_or_default(),
        snapshot,
        ..Mirror::default()
    };
    let path = dir.join(log_name(base));
    let active = storage.open(&path).await?;
    let bytes = read_all(&active).await?;
    let replayed = replay_log(&path, &bytes, &mut mirror)?;
    if base == 0 && !replayed.conf_state_seen {
        let damage = Damage::MissingConfState;
        let position = 0;
        return Err(QuorumLogError::Damaged {
            path,
            position,
            damage,
        });
    }
    check_commit(&path, &mirror)?;
    let truncated_bytes = bytes.len() as u64 - replayed.valid_bytes;
    if truncated_bytes > 0 {
        active.truncate(replayed.valid_bytes).await?;
        active.sync_data().await?;
    }
    Ok((mirror, active, replayed.valid_bytes, truncated_bytes))
}

/// raft-rs's side of the contract, checked before anything is written.
fn check_persist(
    m: &Mirror,
    entries: &[Entry],
    hard_state: Option<&HardState>,
) -> Result<(), Invalid> {
    let (first_index, last_index) = (m.first_index(), m.last_index());
    if let Some(first) = entries.first() {
        if first.index < first_index || first.index > last_index + 1 {
            return Err(Invalid::AppendOutOfRange {
                first: first.index,
                first_index,
                last_index,
            });
        }
        if first.index <= m.hard_state.commit {
            let commit = m.hard_state.commit;
            return Err(Invalid::RewritesCommitted {
                first: first.index,
                commit,
            });
        }
    }
    for pair in entries.windows(2) {
        if pair[1].index != pair[0].index + 1 {
            let (previous, found) = (pair[0].index, pair[1].index);
            return Err(Invalid::NotContiguous { previous, found });
        }
    }
    let new_last = entries.last().map_or(last_index, |e| e.index);
    if let Some(hs) = hard_state {
        let snapshot_index = m.snapshot_index();
        if hs.commit < snapshot_index || hs.commit > new_last {
            return Err(Invalid::CommitOutOfRange {
                commit: hs.commit,
                snapshot_index,
                last_index: new_last,
            });
        }
    }
    Ok(())
}
