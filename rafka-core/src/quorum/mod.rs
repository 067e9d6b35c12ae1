//! The metadata quorum's durable Raft storage: what raft-rs (sans IO) needs
//! the application to keep — entries, the hard state, snapshots — written
//! crash-safely through [`crate::io::Storage`], and mirrored in memory for
//! raft-rs to read ([`QuorumStorage`], a [`raft::Storage`]).
//!
//! Lives on the controller's shard; the driver (RawNode, Ready handling,
//! network) is rafka-shard's. Per Ready: `install_snapshot` if it holds
//! one, then `persist(entries, hard_state)` (one fdatasync), then send the
//! persisted messages; after `advance`, persist the LightReady's commit.
//!
//! # Files, in the quorum's directory
//! - `<base, 20 digits>.log`: frames (see `frame`) in groups, one group
//!   per `persist`: its entries, then its hard state, then a `Commit`
//!   frame. A group without its `Commit` was never acknowledged. The file
//!   starts with a header group (written whole before the name exists:
//!   `.tmp`, sync, rename, directory sync) holding the hard state, the
//!   entries after `base` and, in `0.log` only, the initial conf state.
//! - `<index, 20 digits>.snapshot`: a raft `Snapshot` (metadata: index,
//!   term, conf state; data: the caller's state machine image, opaque
//!   here), as a `Snapshot` frame and `SnapshotData` chunk frames; written
//!   `.tmp`, synced, renamed, directory synced.
//!
//! The live pair is the highest `<base>.log` with `<base>.snapshot` (none
//! for base 0). Installing or taking a snapshot at `i` writes
//! `<i>.snapshot`, then `<i>.log` (the entries after `i`, if any are kept),
//! then deletes the older pair. A crash before `<i>.log` exists reopens to
//! the old pair (the stray snapshot is deleted), after it to the new one;
//! both are states that were durable, so nothing acknowledged is lost.
//!
//! # Recovery
//! Replay the live log group by group. A bad frame with no valid frame
//! anywhere after it, or a last group without its `Commit`, is the torn
//! tail of a `persist` that never returned: cut off (the bytes are
//! reported). A bad frame with a valid one after it, a valid CRC over an
//! undecodable record, an entry out of sequence, a commit index past the
//! last entry or a damaged snapshot means the disk cannot be trusted: open
//! fails rather than drop acknowledged entries or forget a vote.
//!
//! # Conf state
//! Stored only in snapshots (plus the initial voters in `0.log`): a restart
//! begins from the snapshot's conf state and the driver re-applies the
//! committed entries after it, conf changes included, as raft-rs expects.
//! The driver reports each conf state it applies with
//! [`QuorumLog::set_conf_state`] so that `compact` records the right one.

mod files;
pub mod frame;
mod log;
mod replay;
mod storage;

use std::path::PathBuf;

pub use frame::{FrameError, Kind};
pub use log::{QuorumLog, Recovered};
pub use storage::QuorumStorage;

use crate::io::IoError;

/// Directory name of the quorum's files under the first log dir (as
/// `__rafka_metadata`: no `-<digits>` suffix, never taken for a partition).
pub const QUORUM_DIR_NAME: &str = "__rafka_quorum";

#[derive(Debug, thiserror::Error)]
pub enum QuorumLogError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{}: damaged at byte {position}: {damage}", path.display())]
    Damaged {
        path: PathBuf,
        position: u64,
        #[source]
        damage: Damage,
    },
    #[error("invalid call: {0}")]
    Invalid(#[from] Invalid),
    #[error("encoding a raft message: {0}")]
    Encode(#[source] protobuf::ProtobufError),
    #[error("quorum log unusable after an earlier write or sync failure")]
    Poisoned,
}

/// Why the files on disk cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("{kind:?} frame does not decode: {source}")]
    Record {
        kind: Kind,
        #[source]
        source: protobuf::ProtobufError,
    },
    #[error("{0:?} frame where it cannot be")]
    UnexpectedKind(Kind),
    #[error("commit frame closes {found:?} frames, the group has {expected}")]
    GroupCount { expected: u32, found: Option<u32> },
    #[error("entry {index} does not follow the log ({first} ..= {last})")]
    EntryIndex { index: u64, first: u64, last: u64 },
    #[error("the header group (hard state) is missing or incomplete")]
    MissingHeader,
    #[error("no conf state (initial voters) in the first log")]
    MissingConfState,
    #[error("commit index {commit} outside {snapshot_index} ..= {last_index}")]
    CommitOutOfRange {
        commit: u64,
        snapshot_index: u64,
        last_index: u64,
    },
    #[error("snapshot holds index {found}, its name says {named}")]
    SnapshotIndex { named: u64, found: u64 },
    #[error("snapshot file is missing")]
    MissingSnapshot,
    #[error("snapshots but no log")]
    MissingLog,
    #[error("snapshot file holds {found} bytes of data, its header says {expected}")]
    SnapshotSize { expected: u64, found: u64 },
}

/// A call that breaks raft-rs's contract (a driver bug). Nothing was
/// written: the log stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("entry {found} follows entry {previous}")]
    NotContiguous { previous: u64, found: u64 },
    #[error("entries from {first} do not fit the log ({first_index} ..= {last_index} + 1)")]
    AppendOutOfRange {
        first: u64,
        first_index: u64,
        last_index: u64,
    },
    #[error("entries from {first} would replace committed ones (commit {commit})")]
    RewritesCommitted { first: u64, commit: u64 },
    #[error("commit index {commit} outside {snapshot_index} ..= {last_index}")]
    CommitOutOfRange {
        commit: u64,
        snapshot_index: u64,
        last_index: u64,
    },
    #[error("snapshot at {index} is not newer than snapshot {snapshot_index} and commit {commit}")]
    SnapshotOutOfDate {
        index: u64,
        snapshot_index: u64,
        commit: u64,
    },
    #[error("compaction to {index} past commit {commit} or last index {last_index}")]
    CompactOutOfRange {
        index: u64,
        commit: u64,
        last_index: u64,
    },
    #[error("entry {index} of {bytes} bytes exceeds the frame limit")]
    EntryTooLarge { index: u64, bytes: usize },
}
