//! One partition's producer state table: the checks a batch passes before it
//! is appended ([`ProducerStateTable::check`]) and the update after it was
//! ([`ProducerStateTable::record`]). See the module `producer` for the rules.
//!
//! The caller (the partition's owning shard) runs check, append and record
//! for one batch before checking the next batch of the same partition:
//! checking two batches of one producer before recording the first would
//! judge the second against stale state.

use std::collections::{BTreeMap, VecDeque};

use rafka_proto::record::{BatchHeader, ControlType, EndTxnMarker};

use super::stable::{CompletedTxn, Transactions};
use super::ProducerError;

/// Batches remembered per producer for duplicate detection: the Java
/// producer allows at most 5 in-flight requests per connection with
/// idempotence, so a retry is always of one of the last 5.
pub const BATCHES_RETAINED_MAX: usize = 5;
/// Epoch of a producer that has not appended anything yet.
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_SEQUENCE: i32 = -1;
/// Kafka's `producer.id.expiration.ms` default: one day.
pub const PRODUCER_ID_EXPIRATION_MS_DEFAULT: i64 = 86_400_000;

/// The last sequence of a batch: sequences wrap from `i32::MAX` to 0.
pub fn last_sequence(base_sequence: i32, last_offset_delta: i32) -> i32 {
    if base_sequence == NO_SEQUENCE {
        return NO_SEQUENCE;
    }
    let end = i64::from(base_sequence) + i64::from(last_offset_delta);
    let wrapped = if end > i64::from(i32::MAX) {
        end - i64::from(i32::MAX) - 1
    } else {
        end
    };
    // In range for every base_sequence >= 0 and delta >= 0; malformed input
    // only yields a sequence that never matches.
    wrapped as i32
}

/// The first sequence of a batch from its last one, undoing the wraparound.
pub fn first_sequence(last_seq: i32, last_offset_delta: i32) -> i32 {
    let start = i64::from(last_seq) - i64::from(last_offset_delta);
    let unwrapped = if start < 0 {
        start + i64::from(i32::MAX) + 1
    } else {
        start
    };
    unwrapped as i32
}

/// Whether `next_seq` directly follows `last_seq`.
pub fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// Where one appended batch of a producer landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset_delta: i32,
    /// The batch's max timestamp as written to the log.
    pub timestamp: i64,
}

impl BatchMetadata {
    pub fn last_offset(&self) -> i64 {
        self.first_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
}

/// The state of one producer id on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub(super) epoch: i16,
    /// Oldest first, at most [`BATCHES_RETAINED_MAX`], all of `epoch`.
    pub(super) batches: VecDeque<BatchMetadata>,
    pub(super) last_timestamp: i64,
    /// Epoch of the transaction coordinator that wrote the last marker,
    /// -1 until one did: a marker from an older coordinator is fenced.
    pub(super) coordinator_epoch: i32,
    pub(super) current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    pub(super) fn empty() -> Self {
        ProducerEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::with_capacity(BATCHES_RETAINED_MAX),
            last_timestamp: -1,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
        }
    }

    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// The retained batches, oldest first.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    pub fn last_sequence(&self) -> i32 {
        self.batches
            .back()
            .map_or(NO_SEQUENCE, |batch| batch.last_seq)
    }

    pub fn last_timestamp(&self) -> i64 {
        self.last_timestamp
    }

    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    pub fn current_txn_first_offset(&self) -> Option<i64> {
        self.current_txn_first_offset
    }

    fn find_duplicate(&self, first_seq: i32, last_seq: i32) -> Option<&BatchMetadata> {
        self.batches
            .iter()
            .find(|batch| batch.first_seq == first_seq && batch.last_seq == last_seq)
    }

    /// Switches to `epoch`, forgetting the batches of the previous one:
    /// sequences restart with every epoch.
    fn set_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    pub(super) fn push_batch(&mut self, batch: BatchMetadata) {
        if self.batches.len() == BATCHES_RETAINED_MAX {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }

    fn check_epoch(&self, producer_id: i64, epoch: i16) -> Result<(), ProducerError> {
        if epoch < self.epoch {
            return Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current_epoch: self.epoch,
            });
        }
        Ok(())
    }

    fn check_sequence(&self, header: &BatchHeader) -> Result<(), ProducerError> {
        let accepted = if header.producer_epoch != self.epoch {
            header.base_sequence == 0 || self.epoch == NO_PRODUCER_EPOCH
        } else {
            self.epoch == NO_PRODUCER_EPOCH
                || in_sequence(self.last_sequence(), header.base_sequence)
        };
        if accepted {
            return Ok(());
        }
        let last_sequence = if header.producer_epoch == self.epoch {
            self.last_sequence()
        } else {
            NO_SEQUENCE
        };
        Err(ProducerError::OutOfOrderSequence {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            base_sequence: header.base_sequence,
            last_sequence,
        })
    }
}

/// The answer of [`ProducerStateTable::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append the batch, then [`ProducerStateTable::record`] it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets and
    /// timestamp, append nothing.
    Duplicate {
        first_offset: i64,
        last_offset: i64,
        timestamp: i64,
    },
}

/// All producers of one partition, keyed by producer id. Ordered so that a
/// snapshot of the same state is always the same bytes.
#[derive(Debug, Clone)]
pub struct ProducerStateTable {
    pub(super) producers: BTreeMap<i64, ProducerEntry>,
    producer_id_expiration_ms: i64,
    /// Open and not yet durable transactions: what holds the last stable
    /// offset back (see `stable`).
    pub(super) transactions: Transactions,
}

/// Two tables are equal when their producers are: the transactions
/// awaiting the high watermark are the partition's moment, not state a
/// snapshot keeps (after a restart everything replayed is durable).
impl PartialEq for ProducerStateTable {
    fn eq(&self, other: &Self) -> bool {
        self.producers == other.producers
            && self.producer_id_expiration_ms == other.producer_id_expiration_ms
    }
}

impl Eq for ProducerStateTable {}

impl Default for ProducerStateTable {
    fn default() -> Self {
        ProducerStateTable::new(PRODUCER_ID_EXPIRATION_MS_DEFAULT)
    }
}

impl ProducerStateTable {
    pub fn new(producer_id_expiration_ms: i64) -> Self {
        ProducerStateTable {
            producers: BTreeMap::new(),
            producer_id_expiration_ms,
            transactions: Transactions::default(),
        }
    }

    /// Judges an incoming, already validated batch against the producer's
    /// state. Batches without a producer id always pass.
    pub fn check(&self, header: &BatchHeader) -> Result<Check, ProducerError> {
        if !header.has_producer_id() {
            return Ok(Check::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return Ok(Check::Append);
        };
        // A retry is recognised before the sequence check: it would fail it.
        if header.producer_epoch == entry.epoch {
            let last_seq = last_sequence(header.base_sequence, header.last_offset_delta);
            if let Some(batch) = entry.find_duplicate(header.base_sequence, last_seq) {
                return Ok(Check::Duplicate {
                    first_offset: batch.first_offset,
                    last_offset: batch.last_offset(),
                    timestamp: batch.timestamp,
                });
            }
        }
        entry.check_epoch(header.producer_id, header.producer_epoch)?;
        entry.check_sequence(header)?;
        if entry.current_txn_first_offset.is_some() && !header.is_transactional() {
            return Err(ProducerError::InvalidTxnState {
                producer_id: header.producer_id,
            });
        }
        Ok(Check::Append)
    }

    /// The checks of a batch a coordinator writes for a producer (Kafka's
    /// `AppendOrigin.COORDINATOR`: TxnOffsetCommit's offsets): the epoch is
    /// checked, the sequence is not (it is -1), and there are no retries
    /// to recognise.
    pub fn check_coordinator(&self, header: &BatchHeader) -> Result<(), ProducerError> {
        if !header.has_producer_id() {
            return Ok(());
        }
        match self.producers.get(&header.producer_id) {
            Some(entry) => entry.check_epoch(header.producer_id, header.producer_epoch),
            None => Ok(()),
        }
    }

    /// The checks of a transaction marker before it is appended (Kafka's
    /// `appendEndTxnMarker`): an epoch older than the producer's is
    /// INVALID_PRODUCER_EPOCH, a coordinator epoch older than the one
    /// that wrote the producer's last marker is
    /// TRANSACTION_COORDINATOR_FENCED. A producer the table does not know
    /// passes: a marker for a transaction with nothing here is written.
    pub fn check_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ProducerError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        entry.check_epoch(producer_id, producer_epoch)?;
        if coordinator_epoch < entry.coordinator_epoch {
            return Err(ProducerError::CoordinatorFenced {
                producer_id,
                coordinator_epoch,
                current_coordinator_epoch: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Updates the state after `header`'s batch was appended at
    /// `first_offset`. `timestamp` is the batch's max timestamp as written
    /// to the log (after a LogAppendTime rewrite), which is also what
    /// [`ProducerStateTable::rebuild_from`] sees, so that a rebuilt table
    /// answers duplicates exactly as the live one did. Does not validate:
    /// recovery replays whatever the log holds.
    ///
    /// A control batch ends the producer's transaction as a commit whose
    /// coordinator epoch is unknown; who has the marker itself calls
    /// [`ProducerStateTable::record_marker`] instead.
    pub fn record(
        &mut self,
        header: &BatchHeader,
        first_offset: i64,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        if header.is_control() {
            return self.record_marker(header, None, first_offset, timestamp);
        }
        if !header.has_producer_id() {
            return None;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(ProducerEntry::empty);
        entry.set_epoch(header.producer_epoch);
        entry.last_timestamp = timestamp;
        // A coordinator's batch (sequence -1) takes no part in the
        // producer's sequence, so it is not remembered for retries.
        if header.base_sequence != NO_SEQUENCE {
            entry.push_batch(BatchMetadata {
                first_seq: header.base_sequence,
                last_seq: last_sequence(header.base_sequence, header.last_offset_delta),
                first_offset,
                last_offset_delta: header.last_offset_delta,
                timestamp,
            });
        }
        if header.is_transactional() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(first_offset);
            self.transactions.begin(header.producer_id, first_offset);
        }
        None
    }

    /// Records a transaction marker appended at `offset`: it ends the
    /// producer's transaction, the producer moves to the marker's epoch,
    /// and the marker's coordinator epoch is kept. Returns the transaction
    /// it ended, if the producer had data in one here (a marker without
    /// data changes no offset a consumer sees, as in Kafka). `marker` None
    /// (a control batch whose record is unreadable, or emptied by
    /// compaction) ends it as a commit, keeping the coordinator epoch.
    pub fn record_marker(
        &mut self,
        header: &BatchHeader,
        marker: Option<EndTxnMarker>,
        offset: i64,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        if !header.has_producer_id() {
            return None;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(ProducerEntry::empty);
        entry.set_epoch(header.producer_epoch);
        entry.last_timestamp = timestamp;
        if let Some(marker) = marker {
            entry.coordinator_epoch = marker.coordinator_epoch;
        }
        let first_offset = entry.current_txn_first_offset.take()?;
        let aborted = marker.is_some_and(|m| m.control_type == ControlType::Abort);
        let completed = CompletedTxn {
            producer_id: header.producer_id,
            first_offset,
            last_offset: offset,
            aborted,
        };
        self.transactions.complete(completed);
        Some(completed)
    }

    /// Replays the headers of the batches stored after the loaded snapshot,
    /// in log order, each at its own base offset. Markers end transactions
    /// as commits (see [`ProducerStateTable::record`]); recovery, which
    /// has the records, replays with [`ProducerStateTable::replay`].
    pub fn rebuild_from(&mut self, headers: impl IntoIterator<Item = BatchHeader>) {
        for header in headers {
            self.record(&header, header.base_offset, header.max_timestamp);
        }
    }

    /// Replays one stored batch (its header and, for a control batch, its
    /// marker) at its own base offset.
    pub fn replay(
        &mut self,
        header: &BatchHeader,
        marker: Option<EndTxnMarker>,
    ) -> Option<CompletedTxn> {
        if header.is_control() {
            self.record_marker(header, marker, header.base_offset, header.max_timestamp)
        } else {
            self.record(header, header.base_offset, header.max_timestamp)
        }
    }

    /// Forgets producers without an open transaction whose last batch is at
    /// least `producer.id.expiration.ms` older than `now_ms`. Returns how
    /// many were removed.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let before = self.producers.len();
        let expiration_ms = self.producer_id_expiration_ms;
        self.producers.retain(|_, entry| {
            entry.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(entry.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Producers in ascending id order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, entry)| (*id, entry))
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn clear(&mut self) {
        self.producers.clear();
        self.transactions = Transactions::default();
    }

    pub fn producer_id_expiration_ms(&self) -> i64 {
        self.producer_id_expiration_ms
    }
}
