//! Interim: raft-rs's MemStorage behind the QuorumLog interface, until the
//! durable log lands. NOT durable.

use std::path::PathBuf;

use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::Storage as _;

pub type QuorumStorage = MemStorage;

pub struct QuorumLog {
    mem: MemStorage,
    snapshot: Option<Snapshot>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct QuorumLogError(String);

impl QuorumLog {
    pub async fn open<S>(
        _storage: S,
        _dir: PathBuf,
        voters: &[u64],
    ) -> Result<(QuorumLog, QuorumStorage), QuorumLogError> {
        let mem = MemStorage::new_with_conf_state(ConfState::from((voters.to_vec(), vec![])));
        Ok((
            QuorumLog {
                mem: mem.clone(),
                snapshot: None,
            },
            mem,
        ))
    }

    pub async fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), QuorumLogError> {
        let mut w = self.mem.wl();
        if !entries.is_empty() {
            w.append(entries)
                .map_err(|e| QuorumLogError(e.to_string()))?;
        }
        if let Some(hs) = hard_state {
            w.set_hardstate(hs.clone());
        }
        Ok(())
    }

    pub async fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), QuorumLogError> {
        self.mem
            .wl()
            .apply_snapshot(snapshot.clone())
            .map_err(|e| QuorumLogError(e.to_string()))?;
        self.snapshot = Some(snapshot.clone());
        Ok(())
    }

    pub async fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), QuorumLogError> {
        let term = self
            .mem
            .term(index)
            .map_err(|e| QuorumLogError(e.to_string()))?;
        let mut snapshot = Snapshot::default();
        snapshot.set_data(data.into());
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = term;
        snapshot.mut_metadata().set_conf_state(
            self.mem
                .initial_state()
                .map_err(|e| QuorumLogError(e.to_string()))?
                .conf_state,
        );
        self.mem
            .wl()
            .compact(index)
            .map_err(|e| QuorumLogError(e.to_string()))?;
        self.snapshot = Some(snapshot);
        Ok(())
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }
}
