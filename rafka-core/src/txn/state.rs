//! One transactional id's state: Kafka's `TransactionState` and the
//! metadata the coordinator keeps, with the durable part ([`TxnSnapshot`])
//! separate from the transition in flight.

use std::collections::BTreeSet;

use super::schema::TxnLogValue;

/// A partition a transaction wrote to.
pub type TopicPartition = (String, i32);

/// Kafka's transaction states and their `__transaction_state` status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    /// No transaction open (after InitProducerId).
    Empty,
    /// Partitions added, not ended yet.
    Ongoing,
    /// EndTxn(commit) durable; markers being written.
    PrepareCommit,
    /// EndTxn(abort), a timeout or a fence durable; markers being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    /// Expired; its tombstone is being written.
    Dead,
    /// In flight only: the epoch bump that fences an older producer before
    /// its open transaction is aborted.
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    pub fn as_i8(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_i8(value: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.as_i8() == value)
    }

    /// The name DescribeTransactions and ListTransactions use (Kafka's
    /// `TransactionState.stateName`).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether markers are being written (EndTxn answered, not complete).
    pub fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// Whether no transaction is open or ending: the id may expire.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// The durable part of a transactional id's metadata: what one
/// `__transaction_state` record holds (plus the last epoch, which Kafka
/// keeps in memory only, for KIP-360 retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnSnapshot {
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump (-1 if none): a retried
    /// InitProducerId that carries it gets the current epoch back.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open transaction started (-1 when none was).
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnSnapshot {
    pub fn to_log_value(&self) -> TxnLogValue {
        let mut partitions: Vec<(String, Vec<i32>)> = Vec::new();
        for (topic, partition) in &self.partitions {
            match partitions.last_mut() {
                Some((last, ids)) if last == topic => ids.push(*partition),
                _ => partitions.push((topic.clone(), vec![*partition])),
            }
        }
        TxnLogValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: -1,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions,
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }

    pub fn from_log_value(value: &TxnLogValue) -> TxnSnapshot {
        let partitions = value
            .partitions
            .iter()
            .flat_map(|(topic, ids)| ids.iter().map(move |id| (topic.clone(), *id)))
            .collect();
        TxnSnapshot {
            producer_id: value.producer_id,
            previous_producer_id: value.previous_producer_id,
            producer_epoch: value.producer_epoch,
            last_producer_epoch: -1,
            timeout_ms: value.timeout_ms,
            state: value.state,
            partitions,
            start_ms: value.start_ms,
            last_update_ms: value.last_update_ms,
        }
    }
}

/// A transactional id as its coordinator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    /// Its `__transaction_state` partition.
    pub log_partition: i32,
    /// As of the last durable transition.
    pub current: TxnSnapshot,
    /// The transition being written, if any: every other request for the
    /// id answers CONCURRENT_TRANSACTIONS until it is durable or failed.
    pub pending: Option<TxnSnapshot>,
}

/// Kafka's `isEpochExhausted`: one epoch is kept in reserve for fencing.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}
