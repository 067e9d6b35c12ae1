//! Transactions in compaction (Kafka's `CleanedTransactionMetadata`):
//! records of aborted transactions go, and transaction markers stay until
//! nothing of their transaction is left.
//!
//! A pass only cleans below the last stable offset, so every transaction
//! with data in the range is decided; the aborted ones are those the
//! aborted-transaction index lists. Walking batches in offset order, an
//! aborted transaction is "current" for its producer from its first
//! offset to its ABORT marker:
//! - a transactional data batch of a current aborted transaction is
//!   removed whole (its keys never enter the key map either, so an
//!   aborted write does not shadow an earlier committed value); any other
//!   transactional batch marks its producer's transaction as committed
//!   and seen;
//! - an ABORT marker whose transaction had batches in this pass is kept
//!   (with its index entry, for the cleaned segment); a COMMIT marker
//!   whose transaction had batches in this pass is kept. Otherwise the
//!   marker may go once its segment is past `delete.retention.ms`, like a
//!   tombstone; a producer's last batch stays as an empty batch, so that
//!   producer state rebuilt from the log keeps its epoch. An empty control
//!   batch was cleaned before and may go.
//!
//! Keeping the marker while any batch of its transaction is left matters
//! beyond consumers: producer state is rebuilt from the log on open, and a
//! transactional batch without its marker would reopen the transaction
//! and hold the last stable offset for good.

use std::collections::{HashMap, HashSet};

use rafka_proto::record::{BatchHeader, ControlType, RecordBatch};

use super::txn_index::AbortedTxn;

/// What the walk decided about a control batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MarkerFate {
    /// Its transaction still has batches: keep it, and the abort's index
    /// entry if it ends an aborted transaction.
    Keep(Option<AbortedTxn>),
    /// Nothing of its transaction is left: it may go once past the
    /// delete horizon.
    Discardable,
}

/// An aborted transaction the walk is inside of.
#[derive(Debug, Clone, Copy)]
struct Current {
    entry: AbortedTxn,
    seen_batch: bool,
}

/// The walk over one pass's batches, in offset order.
#[derive(Debug, Default)]
pub(super) struct TxnWalk {
    /// The aborted transactions overlapping the pass, by first offset.
    aborted: Vec<AbortedTxn>,
    next: usize,
    current_aborted: HashMap<i64, Current>,
    current_committed: HashSet<i64>,
}

impl TxnWalk {
    pub fn new(mut aborted: Vec<AbortedTxn>) -> Self {
        aborted.sort_by_key(|entry| entry.first_offset);
        TxnWalk {
            aborted,
            ..TxnWalk::default()
        }
    }

    fn enter_up_to(&mut self, offset: i64) {
        while let Some(entry) = self.aborted.get(self.next) {
            if entry.first_offset > offset {
                break;
            }
            let current = Current {
                entry: *entry,
                seen_batch: false,
            };
            self.current_aborted.insert(entry.producer_id, current);
            self.next += 1;
        }
    }

    /// A data batch: whether it belongs to an aborted transaction.
    pub fn on_data(&mut self, header: &BatchHeader) -> bool {
        self.enter_up_to(header.last_offset());
        if !header.is_transactional() || !header.has_producer_id() {
            return false;
        }
        match self.current_aborted.get_mut(&header.producer_id) {
            Some(current) => {
                current.seen_batch = true;
                true
            }
            None => {
                self.current_committed.insert(header.producer_id);
                false
            }
        }
    }

    /// A control batch: whether its transaction still has batches.
    pub fn on_control(&mut self, batch: &RecordBatch) -> MarkerFate {
        let header = batch.header();
        self.enter_up_to(header.last_offset());
        let producer_id = header.producer_id;
        match batch.end_txn_marker() {
            Ok(Some(marker)) if marker.control_type == ControlType::Abort => {
                match self.current_aborted.remove(&producer_id) {
                    Some(current) if current.seen_batch => MarkerFate::Keep(Some(current.entry)),
                    _ => MarkerFate::Discardable,
                }
            }
            Ok(Some(marker)) if marker.control_type == ControlType::Commit => {
                match self.current_committed.remove(&producer_id) {
                    true => MarkerFate::Keep(None),
                    false => MarkerFate::Discardable,
                }
            }
            // Other control types are not transaction markers: kept.
            Ok(_) => MarkerFate::Keep(None),
            // An empty control batch was already cleaned.
            Err(_) => MarkerFate::Discardable,
        }
    }
}
