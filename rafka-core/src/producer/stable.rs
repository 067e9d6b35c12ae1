//! What holds a partition's last stable offset (LSO) back: the open
//! transactions, and the ended ones whose marker is not durable yet
//! (Kafka's `ongoingTxns` and `unreplicatedTxns` in ProducerStateManager).
//!
//! The LSO is the first offset of the earliest transaction that is not
//! decided and durable, or the high watermark if there is none. A
//! transaction whose marker is in the log but not yet below the high
//! watermark still holds it: a read_committed consumer must not read past
//! the start of a transaction whose outcome a crash could take back.
//!
//! Both maps are keyed by the transaction's first offset (two transactions
//! never start at the same offset), so the earliest is the first key.

use std::collections::BTreeMap;

use super::state::ProducerStateTable;

/// A transaction a marker ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// Its first data offset on this partition.
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// The transactions of one partition that hold its LSO back.
#[derive(Debug, Clone, Default)]
pub(super) struct Transactions {
    /// first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// first offset -> the ended transaction, until its marker is below
    /// the high watermark.
    unreplicated: BTreeMap<i64, CompletedTxn>,
}

impl Transactions {
    pub(super) fn begin(&mut self, producer_id: i64, first_offset: i64) {
        self.ongoing.insert(first_offset, producer_id);
    }

    pub(super) fn complete(&mut self, completed: CompletedTxn) {
        self.ongoing.remove(&completed.first_offset);
        self.unreplicated.insert(completed.first_offset, completed);
    }

    fn first_unstable_offset(&self) -> Option<i64> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

impl ProducerStateTable {
    /// The first offset of the earliest transaction that is open or whose
    /// marker is not yet below the high watermark.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.transactions.first_unstable_offset()
    }

    /// The high watermark moved to `high_watermark`: transactions whose
    /// marker is now below it are decided for good.
    pub fn on_high_watermark(&mut self, high_watermark: i64) {
        self.transactions
            .unreplicated
            .retain(|_, txn| txn.last_offset >= high_watermark);
    }

    /// Kafka's LSO rule: the first unstable offset if it is below the high
    /// watermark, else the high watermark; never below the log start
    /// (retention may delete the start of an open transaction).
    pub fn last_stable_offset(&self, high_watermark: i64, log_start_offset: i64) -> i64 {
        let unstable = self.first_unstable_offset().unwrap_or(high_watermark);
        unstable.min(high_watermark).max(log_start_offset)
    }

    /// The last stable offset an aborted transaction's index entry records
    /// (Kafka's `lastStableOffset(completedTxn)`): the first offset of the
    /// earliest transaction still open, else the offset after the marker.
    /// A fetch that reaches it has seen every abort that could overlap.
    pub fn stable_offset_after(&self, completed: &CompletedTxn) -> i64 {
        self.transactions
            .ongoing
            .iter()
            .find(|(_, producer_id)| **producer_id != completed.producer_id)
            .map_or(completed.last_offset + 1, |(first_offset, _)| *first_offset)
    }

    /// Open transactions as (first offset, producer id), earliest first.
    pub fn ongoing_transactions(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.transactions.ongoing.iter().map(|(f, p)| (*f, *p))
    }

    /// Rebuilds the open transactions from the producers' entries (after
    /// a snapshot load); nothing loaded is awaiting the high watermark.
    pub(super) fn reindex_transactions(&mut self) {
        let mut transactions = Transactions::default();
        for (producer_id, entry) in &self.producers {
            if let Some(first_offset) = entry.current_txn_first_offset {
                transactions.begin(*producer_id, first_offset);
            }
        }
        self.transactions = transactions;
    }
}
