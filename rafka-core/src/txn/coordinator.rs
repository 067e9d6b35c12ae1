//! [`TxnCoordinator`]: the transactional ids of the `__transaction_state`
//! partitions one shard owns, sans IO.
//!
//! Every change is a *transition*: a method checks the request against the
//! id's state as Kafka's `TransactionCoordinator` does, and returns the
//! next [`TxnSnapshot`] it wants written, which it also marks as the id's
//! pending transition. The caller persists the record
//! ([`TxnCoordinator::record_for`]) and then calls
//! [`TxnCoordinator::complete`] (durable: the snapshot becomes the state)
//! or [`TxnCoordinator::fail`] (not written: nothing changed). While a
//! transition is pending, every other request for the id answers
//! CONCURRENT_TRANSACTIONS, so no answer ever announces a state that is
//! not durable.
//!
//! Producer ids come from the controller, which is IO: a method that needs
//! a fresh one answers [`InitStep::NeedProducerId`] and is called again
//! with it.
//!
//! Lives on: one shard; the shard layer wraps it in a `RefCell`.

use std::collections::{BTreeSet, HashMap};

use rafka_proto::error::ErrorCode;

use super::schema::{encode_key, TxnLogValue};
use super::state::{epoch_exhausted, TopicPartition, TxnMetadata, TxnSnapshot, TxnState};
use crate::coordinator::{partition_for_key, InternalRecord};

const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;

/// The broker settings the coordinator follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`.
    pub log_partitions: i32,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
}

impl TxnConfig {
    pub fn from_broker(config: &crate::config::BrokerConfig) -> TxnConfig {
        TxnConfig {
            log_partitions: config.transaction_state_log_num_partitions.max(1),
            max_timeout_ms: config.transaction_max_timeout_ms,
            id_expiration_ms: config.transactional_id_expiration_ms,
        }
    }
}

/// What InitProducerId does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitStep {
    /// Call again with a fresh producer id from the controller.
    NeedProducerId,
    /// Persist; answer the snapshot's producer id and epoch.
    Persist(TxnSnapshot),
    /// An open transaction of the previous incarnation: persist this
    /// PrepareAbort (with the fencing epoch), write its markers, and answer
    /// CONCURRENT_TRANSACTIONS so the client retries once it is complete.
    FenceAndAbort(TxnSnapshot),
}

/// What AddPartitionsToTxn / AddOffsetsToTxn does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddStep {
    /// Every partition is already in the open transaction.
    AlreadyIn,
    Persist(TxnSnapshot),
}

/// What EndTxn does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndStep {
    /// A retry of an EndTxn that already completed: answer NONE.
    AlreadyDone,
    /// Persist the PrepareCommit/PrepareAbort, answer, then write markers.
    Persist(TxnSnapshot),
}

/// DescribeTransactions' view of one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: BTreeSet<TopicPartition>,
}

/// ListTransactions' view of one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TxnState,
}

/// ListTransactions' filters; empty sets match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub states: BTreeSet<TxnState>,
    pub producer_ids: BTreeSet<i64>,
    /// Only open transactions running longer than this (-1: any state).
    pub min_duration_ms: i64,
    /// Only ids this regular expression matches in full (ListTransactions
    /// v2, KIP-1152).
    pub id_pattern: Option<String>,
}

/// The transaction coordinator of one shard.
#[derive(Debug, Clone)]
pub struct TxnCoordinator {
    config: TxnConfig,
    ids: HashMap<String, TxnMetadata>,
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            config,
            ids: HashMap::new(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.ids.get(transactional_id)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        partition_for_key(transactional_id, self.config.log_partitions)
    }

    /// The record that makes `next` durable for `transactional_id`.
    pub fn record_for(&self, transactional_id: &str, next: &TxnSnapshot) -> InternalRecord {
        let partition = self.partition_of(transactional_id);
        // Ids and topics are bounded by the request shapes (INT16 strings),
        // so encoding cannot fail for anything a request can carry.
        let key = encode_key(transactional_id).unwrap_or_default();
        let value = (next.state != TxnState::Dead)
            .then(|| next.to_log_value().encode().unwrap_or_default());
        InternalRecord {
            partition,
            key,
            value,
        }
    }

    /// InitProducerId with a transactional id (Kafka's
    /// `handleInitProducerId`).
    pub fn init_producer_id(
        &mut self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Result<InitStep, ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT);
        }
        if !self.ids.contains_key(transactional_id) {
            let Some(producer_id) = fresh_producer_id else {
                return Ok(InitStep::NeedProducerId);
            };
            let metadata = TxnMetadata {
                transactional_id: transactional_id.to_string(),
                log_partition: self.partition_of(transactional_id),
                current: TxnSnapshot {
                    producer_id,
                    previous_producer_id: NO_PRODUCER_ID,
                    producer_epoch: NO_PRODUCER_EPOCH,
                    last_producer_epoch: NO_PRODUCER_EPOCH,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    last_update_ms: now_ms,
                },
                pending: None,
            };
            self.ids.insert(transactional_id.to_string(), metadata);
        }
        let Some(metadata) = self.ids.get_mut(transactional_id) else {
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        };
        if metadata.pending.is_some() {
            return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
        }
        let current = &metadata.current;
        let expected = expected.filter(|(id, _)| *id != NO_PRODUCER_ID);
        if let Some((expected_id, expected_epoch)) = expected {
            let valid = current.producer_epoch == NO_PRODUCER_EPOCH
                || expected_id == current.producer_id
                || (expected_id == current.previous_producer_id && epoch_exhausted(expected_epoch));
            if !valid {
                return Err(ErrorCode::PRODUCER_FENCED);
            }
        }
        let next = match current.state {
            TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::Dead
            | TxnState::PrepareEpochFence => return Err(ErrorCode::CONCURRENT_TRANSACTIONS),
            TxnState::Ongoing => {
                // Fence the previous incarnation and abort what it left open.
                let next = fencing_abort(current, now_ms);
                metadata.pending = Some(next.clone());
                return Ok(InitStep::FenceAndAbort(next));
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                if epoch_exhausted(current.producer_epoch) {
                    let Some(producer_id) = fresh_producer_id else {
                        return Ok(InitStep::NeedProducerId);
                    };
                    TxnSnapshot {
                        producer_id,
                        previous_producer_id: current.producer_id,
                        producer_epoch: 0,
                        last_producer_epoch: NO_PRODUCER_EPOCH,
                        timeout_ms,
                        state: TxnState::Empty,
                        partitions: BTreeSet::new(),
                        start_ms: -1,
                        last_update_ms: now_ms,
                    }
                } else {
                    let (epoch, last_epoch) = match expected {
                        Some((_, e)) if e == NO_PRODUCER_EPOCH || e == current.producer_epoch => {
                            (current.producer_epoch + 1, current.producer_epoch)
                        }
                        // A retry whose answer was lost: the bump stands.
                        Some((_, e)) if e == current.last_producer_epoch => {
                            (current.producer_epoch, current.last_producer_epoch)
                        }
                        Some(_) => return Err(ErrorCode::PRODUCER_FENCED),
                        None => (current.producer_epoch + 1, current.producer_epoch),
                    };
                    TxnSnapshot {
                        producer_epoch: epoch,
                        last_producer_epoch: last_epoch,
                        timeout_ms,
                        state: TxnState::Empty,
                        partitions: BTreeSet::new(),
                        start_ms: -1,
                        last_update_ms: now_ms,
                        ..current.clone()
                    }
                }
            }
        };
        metadata.pending = Some(next.clone());
        Ok(InitStep::Persist(next))
    }

    /// The id's metadata if `producer_id`/`epoch` are its current ones, and
    /// no transition is in flight; otherwise Kafka's error.
    fn checked(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&mut TxnMetadata, ErrorCode> {
        let metadata = self
            .ids
            .get_mut(transactional_id)
            .ok_or(ErrorCode::INVALID_PRODUCER_ID_MAPPING)?;
        if metadata.current.producer_id != producer_id {
            return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
        }
        if metadata.current.producer_epoch != epoch {
            return Err(ErrorCode::PRODUCER_FENCED);
        }
        if metadata.pending.is_some() {
            return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
        }
        Ok(metadata)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn (Kafka's
    /// `handleAddPartitionsToTransaction`).
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Result<AddStep, ErrorCode> {
        let metadata = self.checked(transactional_id, producer_id, epoch)?;
        let current = &metadata.current;
        match current.state {
            TxnState::PrepareCommit
            | TxnState::PrepareAbort
            | TxnState::Dead
            | TxnState::PrepareEpochFence => Err(ErrorCode::CONCURRENT_TRANSACTIONS),
            TxnState::Ongoing if partitions.iter().all(|p| current.partitions.contains(p)) => {
                Ok(AddStep::AlreadyIn)
            }
            state => {
                let starting = state != TxnState::Ongoing;
                let mut next = TxnSnapshot {
                    state: TxnState::Ongoing,
                    start_ms: if starting { now_ms } else { current.start_ms },
                    last_update_ms: now_ms,
                    ..current.clone()
                };
                if starting {
                    next.partitions.clear();
                }
                next.partitions.extend(partitions.iter().cloned());
                metadata.pending = Some(next.clone());
                Ok(AddStep::Persist(next))
            }
        }
    }

    /// AddPartitionsToTxn v4+ `verify_only` (KIP-890 part 1): whether each
    /// partition is in the open transaction of this producer.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Vec<ErrorCode> {
        let verdict = match self.ids.get(transactional_id) {
            None => Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING),
            Some(m) if m.current.producer_id != producer_id => {
                Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING)
            }
            Some(m) if m.current.producer_epoch != epoch => Err(ErrorCode::PRODUCER_FENCED),
            Some(m) => Ok(m),
        };
        partitions
            .iter()
            .map(|p| match verdict {
                Err(code) => code,
                Ok(m)
                    if m.current.state == TxnState::Ongoing && m.current.partitions.contains(p) =>
                {
                    ErrorCode::NONE
                }
                Ok(_) => ErrorCode::INVALID_TXN_STATE,
            })
            .collect()
    }

    /// EndTxn (Kafka's `handleEndTransaction` from a client).
    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<EndStep, ErrorCode> {
        let metadata = self.checked(transactional_id, producer_id, epoch)?;
        let current = &metadata.current;
        let state = current.state;
        match (state, commit) {
            (TxnState::Ongoing, _) => {
                let next = TxnSnapshot {
                    state: if commit {
                        TxnState::PrepareCommit
                    } else {
                        TxnState::PrepareAbort
                    },
                    last_update_ms: now_ms,
                    ..current.clone()
                };
                metadata.pending = Some(next.clone());
                Ok(EndStep::Persist(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndStep::AlreadyDone)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ErrorCode::CONCURRENT_TRANSACTIONS)
            }
            (TxnState::Dead | TxnState::PrepareEpochFence, _) => {
                Err(ErrorCode::CONCURRENT_TRANSACTIONS)
            }
            _ => Err(ErrorCode::INVALID_TXN_STATE),
        }
    }

    /// After every marker of a PrepareCommit/PrepareAbort is durable: the
    /// CompleteCommit/CompleteAbort to write (None if the id is not
    /// preparing, or busy).
    pub fn complete_markers(&mut self, transactional_id: &str, now_ms: i64) -> Option<TxnSnapshot> {
        let metadata = self.ids.get_mut(transactional_id)?;
        if metadata.pending.is_some() {
            return None;
        }
        let current = &metadata.current;
        let state = match current.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        let next = TxnSnapshot {
            state,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            ..current.clone()
        };
        metadata.pending = Some(next.clone());
        Some(next)
    }

    /// The transition to write for an open transaction past its timeout:
    /// the producer is fenced (epoch bump) and the transaction aborted, as
    /// Kafka's `abortTimedOutTransactions` does.
    pub fn abort_timed_out(&mut self, transactional_id: &str, now_ms: i64) -> Option<TxnSnapshot> {
        let metadata = self.ids.get_mut(transactional_id)?;
        let current = &metadata.current;
        if metadata.pending.is_some()
            || current.state != TxnState::Ongoing
            || current
                .start_ms
                .saturating_add(i64::from(current.timeout_ms))
                > now_ms
        {
            return None;
        }
        let next = fencing_abort(current, now_ms);
        metadata.pending = Some(next.clone());
        Some(next)
    }

    /// Open transactions past their timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ids
            .values()
            .filter(|m| {
                m.pending.is_none()
                    && m.current.state == TxnState::Ongoing
                    && m.current
                        .start_ms
                        .saturating_add(i64::from(m.current.timeout_ms))
                        <= now_ms
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The earliest transaction timeout (an open transaction's start plus
    /// its timeout).
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.ids
            .values()
            .filter(|m| m.pending.is_none() && m.current.state == TxnState::Ongoing)
            .map(|m| {
                m.current
                    .start_ms
                    .saturating_add(i64::from(m.current.timeout_ms))
            })
            .min()
    }

    /// Ids idle for `transactional.id.expiration.ms`, each with its
    /// tombstone transition marked pending (Kafka's
    /// `removeExpiredTransactionalIds`).
    pub fn expire(&mut self, now_ms: i64) -> Vec<(String, TxnSnapshot)> {
        let expiration_ms = self.config.id_expiration_ms;
        let mut expired = Vec::new();
        for metadata in self.ids.values_mut() {
            let current = &metadata.current;
            if metadata.pending.is_none()
                && current.state.is_idle()
                && current.last_update_ms.saturating_add(expiration_ms) <= now_ms
            {
                let next = TxnSnapshot {
                    state: TxnState::Dead,
                    last_update_ms: now_ms,
                    ..current.clone()
                };
                metadata.pending = Some(next.clone());
                expired.push((metadata.transactional_id.clone(), next));
            }
        }
        expired.sort_by(|a, b| a.0.cmp(&b.0));
        expired
    }

    /// `next` is durable: it becomes the id's state (Dead removes the id).
    pub fn complete(&mut self, transactional_id: &str, next: TxnSnapshot) {
        if next.state == TxnState::Dead {
            self.ids.remove(transactional_id);
            return;
        }
        if let Some(metadata) = self.ids.get_mut(transactional_id) {
            metadata.pending = None;
            metadata.current = next;
        }
    }

    /// The pending transition was not written: nothing changed. An id that
    /// was created for it and never written is forgotten.
    pub fn fail(&mut self, transactional_id: &str) {
        let Some(metadata) = self.ids.get_mut(transactional_id) else {
            return;
        };
        metadata.pending = None;
        if metadata.current.producer_epoch == NO_PRODUCER_EPOCH
            && metadata.current.state == TxnState::Empty
        {
            self.ids.remove(transactional_id);
        }
    }

    /// Ids whose markers must be (re)written: PrepareCommit/PrepareAbort
    /// with nothing in flight (after a restart or a failed attempt).
    pub fn awaiting_markers(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .ids
            .values()
            .filter(|m| m.pending.is_none() && m.current.state.is_preparing())
            .map(|m| m.transactional_id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Applies one record of `__transaction_state` partition `partition`
    /// (startup replay): the latest record of an id is its state.
    pub fn replay(
        &mut self,
        partition: i32,
        transactional_id: String,
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        let Some(value) = value else {
            self.ids.remove(&transactional_id);
            return Ok(());
        };
        let value = TxnLogValue::decode(value).map_err(|e| e.to_string())?;
        let metadata = TxnMetadata {
            log_partition: partition,
            current: TxnSnapshot::from_log_value(&value),
            pending: None,
            transactional_id: transactional_id.clone(),
        };
        self.ids.insert(transactional_id, metadata);
        Ok(())
    }

    /// Forgets the ids of `partition` (deleted, or moved away).
    pub fn unload(&mut self, partition: i32) {
        self.ids.retain(|_, m| m.log_partition != partition);
    }

    /// DescribeTransactions: None for an unknown id.
    pub fn describe(&self, transactional_id: &str) -> Option<TxnDescription> {
        let m = self.ids.get(transactional_id)?;
        Some(TxnDescription {
            transactional_id: m.transactional_id.clone(),
            state: m.current.state,
            producer_id: m.current.producer_id,
            producer_epoch: m.current.producer_epoch,
            timeout_ms: m.current.timeout_ms,
            start_ms: m.current.start_ms,
            partitions: m.current.partitions.clone(),
        })
    }

    /// ListTransactions over this shard's ids, by id; an invalid pattern
    /// is INVALID_REGULAR_EXPRESSION.
    pub fn list(&self, filter: &ListFilter, now_ms: i64) -> Result<Vec<TxnListing>, ErrorCode> {
        let pattern = match &filter.id_pattern {
            Some(p) => Some(
                regex::Regex::new(&format!("^(?:{p})$"))
                    .map_err(|_| ErrorCode::INVALID_REGULAR_EXPRESSION)?,
            ),
            None => None,
        };
        let mut listed: Vec<TxnListing> = self
            .ids
            .values()
            .filter(|m| {
                pattern
                    .as_ref()
                    .is_none_or(|p| p.is_match(&m.transactional_id))
            })
            .filter(|m| filter.states.is_empty() || filter.states.contains(&m.current.state))
            .filter(|m| {
                filter.producer_ids.is_empty()
                    || filter.producer_ids.contains(&m.current.producer_id)
            })
            .filter(|m| {
                filter.min_duration_ms < 0
                    || (m.current.state == TxnState::Ongoing
                        && now_ms.saturating_sub(m.current.start_ms) > filter.min_duration_ms)
            })
            .map(|m| TxnListing {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.current.producer_id,
                state: m.current.state,
            })
            .collect();
        listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(listed)
    }
}

/// Kafka's `prepareFenceProducerEpoch` followed by the abort: the open
/// transaction is aborted under the next epoch, so its producer is fenced
/// (kept at the last epoch once there is none left).
fn fencing_abort(current: &TxnSnapshot, now_ms: i64) -> TxnSnapshot {
    let epoch = current.producer_epoch.saturating_add(1);
    TxnSnapshot {
        producer_epoch: epoch,
        last_producer_epoch: current.producer_epoch,
        state: TxnState::PrepareAbort,
        last_update_ms: now_ms,
        ..current.clone()
    }
}
