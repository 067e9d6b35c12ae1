//! The partition side of transactions: markers, a coordinator's
//! transactional batches, the KIP-890 verification guard and the last
//! stable offset (see `rafka_core::producer` for the state behind them).
//!
//! Lives on: the partition's owning shard, like the rest of `Partition`.

use bytes::Bytes;
use rafka_core::log::AbortedTxn;
use rafka_proto::record::{encode_end_txn_batch, BatchHeader, ControlType, EndTxnMarker};

use super::{headers_of, stored_records, Appended, Partition, PartitionError, State};
use crate::storage::ShardStorage;

/// Kafka's fetch and ListOffsets isolation levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Everything below the high watermark.
    ReadUncommitted,
    /// Only below the last stable offset.
    ReadCommitted,
    /// Everything up to the log end: a follower replicating the log
    /// (Kafka's `FetchIsolation.LOG_END`).
    LogEnd,
    /// A consumer reading from this broker as a follower (KIP-392): below
    /// the high watermark (`committed`: the last stable offset, which a
    /// follower keeps as its leader does), and below the leader's high
    /// watermark as this process last heard it, so a follower whose own
    /// high watermark is ahead of what it can vouch for (restarted on its
    /// old log) never serves a record the leader has not committed.
    FollowerRead { committed: bool },
}

impl IsolationLevel {
    /// The wire value (0 or 1); anything but 1 reads uncommitted, as
    /// Kafka's brokers do.
    pub fn from_i8(value: i8) -> IsolationLevel {
        match value {
            1 => IsolationLevel::ReadCommitted,
            _ => IsolationLevel::ReadUncommitted,
        }
    }
}

/// A transaction marker to write into a partition (WriteTxnMarkers).
/// Plain data: crosses shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    /// COMMIT, else ABORT.
    pub commit: bool,
}

const _: () = {
    const fn send_copy<T: Send + Copy>() {}
    send_copy::<TxnMarker>();
};

impl<S: ShardStorage> State<S> {
    /// KIP-890: every transactional batch of a producer without an open
    /// transaction here must come with the guard handed out for that
    /// producer. Returns the producers whose guard `verified` matched
    /// (their guard is spent once the append succeeds); refuses with the
    /// producer's guard (a new one if it had none) otherwise.
    pub(super) fn check_guards(
        &mut self,
        headers: &[BatchHeader],
        verified: Option<u64>,
    ) -> Result<Vec<i64>, PartitionError> {
        let mut verified_producers = Vec::new();
        for header in headers {
            if !header.is_transactional() || header.is_control() || !header.has_producer_id() {
                continue;
            }
            let producer_id = header.producer_id;
            let open = self
                .producers
                .get(producer_id)
                .is_some_and(|entry| entry.current_txn_first_offset().is_some());
            if open || verified_producers.contains(&producer_id) {
                continue;
            }
            let current = self.guards.get(&producer_id).copied();
            if current.is_some() && verified == current {
                verified_producers.push(producer_id);
                continue;
            }
            let guard = match current {
                Some(guard) => guard,
                None => {
                    let guard = self.next_guard;
                    self.next_guard = self.next_guard.wrapping_add(1);
                    self.guards.insert(producer_id, guard);
                    guard
                }
            };
            return Err(PartitionError::TxnVerificationNeeded {
                producer_id,
                producer_epoch: header.producer_epoch,
                guard,
            });
        }
        Ok(verified_producers)
    }
}

impl<S: ShardStorage> Partition<S> {
    /// The last stable offset: read_committed consumers read below it.
    pub fn last_stable_offset(&self) -> i64 {
        self.last_stable_offset.get()
    }

    /// Appends a transaction marker (Kafka's `appendEndTxnMarker` rules):
    /// an epoch older than the producer's is INVALID_PRODUCER_EPOCH, a
    /// coordinator epoch older than the producer's last marker's is
    /// TRANSACTION_COORDINATOR_FENCED. The marker ends the producer's
    /// transaction here (an ABORT adds its aborted-transaction entry),
    /// moves the producer to its epoch, and spends the producer's guard,
    /// so a batch verified before the marker is verified again. A marker
    /// for a producer without a transaction here is written all the same.
    /// Returns its offset once appended; durability is
    /// [`Partition::wait_durable`].
    pub async fn write_txn_marker(&self, marker: TxnMarker) -> Result<i64, PartitionError> {
        let ticket = self.appends.ticket();
        self.check_writable()?;
        ticket.turn().await;
        let mut state = self.write_state().await?;
        self.check_leading()?;
        let TxnMarker {
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit,
        } = marker;
        state
            .producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let end = EndTxnMarker {
            control_type: match commit {
                true => ControlType::Commit,
                false => ControlType::Abort,
            },
            coordinator_epoch,
        };
        let now_ms = self.clock.now_ms();
        let records = encode_end_txn_batch(end, producer_id, producer_epoch, now_ms)?;
        let header = BatchHeader::decode(&records)?;
        let info = state.log.append(&records, self.leader_epoch()).await?;
        let timestamp = info.log_append_time_ms.unwrap_or(header.max_timestamp);
        let completed =
            state
                .producers
                .record_marker(&header, Some(end), info.first_offset, timestamp);
        state.guards.remove(&producer_id);
        let entry = completed.and_then(|c| AbortedTxn::of_completed(&c, &state.producers));
        if let Some(entry) = entry {
            if let Err(error) = state.log.append_aborted_txn(entry).await {
                // Without its entry the abort must never become stable:
                // no more writes, and the high watermark stays below the
                // marker until a restart replays it (see `publish`).
                self.fail();
                self.after_append(&mut state);
                return Err(error.into());
            }
        }
        self.after_append(&mut state);
        Ok(info.first_offset)
    }

    /// Appends transactional batches a coordinator writes for a producer
    /// (TxnOffsetCommit's offsets: the producer's id and epoch, sequence
    /// -1), with Kafka's `AppendOrigin.COORDINATOR` rules: the epoch is
    /// checked, the sequence is not, no guard is needed. The batches start
    /// or extend the producer's transaction here like a client's.
    pub async fn append_as_coordinator(&self, records: &Bytes) -> Result<Appended, PartitionError> {
        let ticket = self.appends.ticket();
        self.check_writable()?;
        ticket.turn().await;
        let mut state = self.write_state().await?;
        self.check_leading()?;
        let headers = headers_of(records)?;
        for header in &headers {
            state.producers.check_coordinator(header)?;
        }
        let records = stored_records(records, &state.log)?;
        self.append_recorded(&mut state, &records, &headers).await
    }

    /// The aborted transactions overlapping `[fetch_offset, upper_offset)`
    /// (what a read_committed fetch of that range lists).
    pub async fn aborted_transactions(
        &self,
        fetch_offset: i64,
        upper_offset: i64,
    ) -> Result<Vec<AbortedTxn>, PartitionError> {
        self.check_readable()?;
        let state = self.read_state().await?;
        Ok(state.log.aborted_txns(fetch_offset, upper_offset))
    }

    /// The open transactions as (first offset, producer id), earliest
    /// first.
    pub async fn ongoing_transactions(&self) -> Result<Vec<(i64, i64)>, PartitionError> {
        self.check_readable()?;
        let state = self.read_state().await?;
        Ok(state.producers.ongoing_transactions().collect())
    }
}
