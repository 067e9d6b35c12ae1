//! The metadata quorum: the controller's records replicated by raft-rs
//! (TiKV's `raft` crate) across the controller nodes.
//!
//! Lives on: the controller's shard (shard 0) of every voter.
//!
//! - `driver`: the `RawNode` loop (ticks, messages, persistence, commits)
//!   and the applier that turns committed entries into the image every
//!   shard serves.
//! - `transport`: raft messages over TCP between voters, and the
//!   controller listener that also takes observers and brokers.
//! - `observer`: broker-only nodes following the committed log and
//!   forwarding their proposals.
//! - `broker_rpc`: BrokerRegistration / BrokerHeartbeat / AlterPartition
//!   in the Kafka protocol, the active controller's side and the broker's.
//! - `partitions`: the active controller's partition changes
//!   (AlterPartition, fencing with its elections, elections still owed).
//! - `payload`: what an entry carries (one commit's records + proposer).
//! - `logging`: raft-rs's slog lines into `tracing`.
//!
//! # How a change commits
//! Any voter's controller validates an operation against its image (the
//! applied state), then proposes the records as one entry. raft-rs forwards
//! a follower's proposal to the leader, which orders it in the log. Every
//! node applies committed entries in log order with the same rule: the
//! records apply to a copy of the image all or none, and an entry that no
//! longer applies (another node's change won a race: the name was taken,
//! the topic deleted) is skipped everywhere alike. The proposer learns the
//! outcome when its entry is applied and published to its shards: applied,
//! or rejected with the error Kafka's controller would have given.

pub(crate) mod broker_rpc;
pub mod driver;
pub mod logging;
mod observer;
pub(crate) mod partitions;
pub mod payload;
mod transport;
mod wire_check;

pub use driver::{
    ProposalCounts, ProposalError, Quorum, QuorumError, QuorumSettings, QuorumStatus, QuorumView,
    VoterView,
};
pub use partitions::{ElectionAnswer, ElectionOutcome, ReassignmentRequest};
