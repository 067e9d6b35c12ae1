//! The transaction coordinator, sans IO: Kafka's transaction state machine
//! ([`state`]), the `__transaction_state` record formats ([`schema`]) and
//! the per-shard coordinator over them ([`coordinator`]).
//!
//! The shard layer (rafka-shard's `txn.rs`) persists the transitions this
//! module decides, writes the markers to the transaction's partitions and
//! runs the timers; the partitions' own transaction state (last stable
//! offset, aborted transactions) is the producer state's.

pub mod coordinator;
pub mod schema;
pub mod state;

pub use coordinator::{
    AddStep, EndStep, InitStep, ListFilter, TxnConfig, TxnCoordinator, TxnDescription, TxnListing,
};
pub use state::{TopicPartition, TxnMetadata, TxnSnapshot, TxnState};

/// Kafka's internal topic of transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The coordinator epoch written into markers. Kafka uses the leader epoch
/// of the `__transaction_state` partition; a single node's partitions keep
/// one leader for their whole life, so the epoch is constant until
/// partitions move between brokers (the cluster issue).
pub const COORDINATOR_EPOCH: i32 = 0;

#[cfg(test)]
mod tests;
