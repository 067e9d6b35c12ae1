//! The classic group coordinator, sans IO: Kafka's consumer-group state
//! machine, committed offsets, and the `__consumer_offsets` record formats.
//!
//! # Layout
//! - `schema`: the key and value formats of `__consumer_offsets` records.
//! - `types`: requests, replies and [`Effects`] of the machine.
//! - `state`: one group's data ([`Group`], [`Member`], [`GroupState`]).
//! - `coordinator`: [`Coordinator`], the groups of one shard, rebalance
//!   core and timers.
//! - `membership`: JoinGroup / SyncGroup / Heartbeat / LeaveGroup.
//! - `offsets`: OffsetCommit / OffsetFetch / OffsetDelete / DeleteGroups,
//!   describe/list, offset expiry and the rebuild from records.
//! - `txn_offsets`: TxnOffsetCommit's pending offsets, made visible or
//!   dropped by their transaction's marker.
//!
//! # Design
//! Nothing here does IO or reads a clock: every call takes `now_ms`. A
//! request that may have to wait (JoinGroup, SyncGroup) carries a
//! [`ReplyToken`]; the machine answers it now or in a later call's
//! [`Effects`]. Effects list the records to persist and the replies to
//! deliver *after* those records are durable (as Kafka answers a SyncGroup
//! only once the group's assignment is written). Timers are deadlines the
//! machine keeps itself: the caller sleeps until [`Coordinator::next_deadline_ms`]
//! and calls [`Coordinator::tick`], which fires what expired (session
//! timeouts, the end of a join phase, the initial rebalance delay, members
//! that never sent SyncGroup). Offset commits are validated first and
//! applied with [`Coordinator::complete_commit`] once durable, so a fetch
//! never returns an offset a crash could take back.

pub mod coordinator;
mod membership;
mod offsets;
pub mod schema;
pub mod state;
mod txn_offsets;
pub mod types;

pub use coordinator::{Coordinator, GroupConfig};
pub use state::{Group, GroupState, Member};
pub use types::*;

pub use crate::coordinator::partition_for_key as partition_for_group;

/// The internal topic holding offsets and group metadata.
pub const GROUP_METADATA_TOPIC: &str = "__consumer_offsets";
/// Kafka's `offset.metadata.max.bytes` default.
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// The protocol type of Kafka consumers, whose subscriptions rafka reads.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";
