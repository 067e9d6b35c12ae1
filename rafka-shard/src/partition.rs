//! One partition on its owning shard: the log, the producer state, and the
//! high watermark that consumers may read up to.
//!
//! Lives on: exactly one shard (the owner in the metadata image). Other
//! shards reach it only through `Router::invoke_on`.
//!
//! The log and producer state sit behind a shard-local async `RwLock`:
//! producer check -> append -> record must not interleave with another
//! append on the same partition across an await (a roll opens files), and
//! reads must not see a half-updated log. The lock never crosses threads.
//!
//! Durability: the high watermark is the flushed offset (the recovery
//! point), so a consumer never sees a record that a crash could take back
//! and an offset is never handed out twice. With `write.caching` it is the
//! log end offset instead. Waiters (acks=all produces, long-poll fetches)
//! listen on `watermark_moved`, which also fires when the last stable
//! offset moves.
//!
//! Transactions (`stable`): the last stable offset (LSO) is the first
//! offset of the earliest transaction that is open or whose marker is not
//! yet below the high watermark, else the high watermark; read_committed
//! fetches and ListOffsets stop there. Markers are written by
//! [`Partition::write_txn_marker`], a coordinator's transactional batches
//! by [`Partition::append_as_coordinator`]; a client's first
//! transactional batch needs a verification guard (KIP-890).
//!
//! Failures (the log's rules, `rafka_core::log` "Failures"): a failed
//! append is undone by the log and only that produce fails; the partition
//! takes the next one. A failed flush (fsync) makes the partition
//! read-only until the broker restarts: produce and acks=all waits get
//! KAFKA_STORAGE_ERROR, fetches and ListOffsets keep being answered up to
//! the high watermark, which was only ever moved by successful flushes
//! (with `write.caching` the log itself stops reads at its recovery
//! point).

mod replicas;
mod stable;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use event_listener::Event;
use glommio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use rafka_core::io::Clock;
use rafka_core::log::{
    AbortedTxn, DamagedRange, EpochEntry, Log, LogConfig, LogError, RecoveryHints, RecoveryReport,
    ScrubApplied, ScrubChunk, ScrubCursor, ScrubVerdict, TimestampOffset,
};
use rafka_core::producer::{remove_snapshots_below, Check, ProducerError, ProducerStateTable};
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{
    batch_size_bytes, recompress_batches, BatchError, BatchHeader, Batches, ControlError,
    RecompressError, RecordLimits,
};

use crate::runtime::within;
use crate::storage::{BrokerStorage, FileRegion, ShardStorage, ShareRegion};
use crate::turnstile::Turnstile;

pub use replicas::{Assignment, FollowerState, IsrProposal};
pub use stable::{IsolationLevel, TxnMarker};

use replicas::ReplicaState;

/// Why a partition operation failed; `error_code` is what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("records are not a valid v2 batch sequence: {0}")]
    Corrupt(#[from] rafka_proto::record::BatchError),
    /// The records could not be stored with the topic's
    /// `compression.type`.
    #[error("applying compression.type: {0}")]
    Recompress(#[from] RecompressError),
    #[error("timed out waiting for the flush covering offset {offset}")]
    FlushTimeout { offset: i64 },
    /// A leader-only append (a client's records, a marker, a
    /// coordinator's batch) reached its turn after this broker stopped
    /// leading: a follower's log takes only its leader's batches.
    #[error("this broker no longer leads the partition")]
    NotLeader,
    /// An acks=all wait outlived the leadership its append was made in
    /// (this broker follows now, or leads in another epoch): the records
    /// may have been cut and their offsets taken by the new leader's, so
    /// the producer is told to retry, never that they were written.
    #[error("the leadership of epoch {epoch} ended before offset {offset} was replicated")]
    LeadershipLost { epoch: i32, offset: i64 },
    #[error("partition is closed")]
    Closed,
    /// The data dir is below `rafka.log.dir.min.free.bytes` (see
    /// [`crate::disk`]).
    #[error(
        "log dir {} has less than {min_free_bytes} bytes free \
         (rafka.log.dir.min.free.bytes): produce refused until space is freed",
        dir.display()
    )]
    DiskFull { dir: PathBuf, min_free_bytes: u64 },
    /// KIP-890: a transactional batch of a producer with no open
    /// transaction here; the transaction is verified with its
    /// coordinator and the append retried with `Some(guard)` (see
    /// [`Partition::append_verifying`]).
    #[error(
        "producer {producer_id} (epoch {producer_epoch}) has no open transaction on this \
         partition: verify it with the transaction coordinator (guard {guard})"
    )]
    TxnVerificationNeeded {
        producer_id: i64,
        producer_epoch: i16,
        guard: u64,
    },
    /// KIP-890: the verification did not confirm the partition in the
    /// producer's open transaction; `error_code` is what the client gets.
    #[error("the transaction of producer {producer_id} was not verified: {error_code}")]
    TxnNotVerified {
        producer_id: i64,
        error_code: ErrorCode,
    },
    /// A transaction marker could not be built.
    #[error("building a transaction marker: {0}")]
    Marker(#[from] ControlError),
    /// acks=all with fewer in-sync replicas than `min.insync.replicas`:
    /// nothing was appended.
    #[error("{in_sync} in-sync replicas, below min.insync.replicas={min}")]
    NotEnoughReplicas { in_sync: usize, min: i32 },
    /// acks=all: appended and replicated to the ISR, but the ISR shrank
    /// below `min.insync.replicas` meanwhile.
    #[error("appended, but {in_sync} in-sync replicas is below min.insync.replicas={min}")]
    NotEnoughReplicasAfterAppend { in_sync: usize, min: i32 },
    /// A fetch answer for a question that no longer holds: the replica
    /// leads now, follows another epoch, or its log end moved.
    #[error(
        "stale fetch answer (asked at epoch {} offset {}; now epoch {leader_epoch}, \
         leader {leader}, log end {log_end}): dropped",
        asked.leader_epoch,
        asked.fetch_offset
    )]
    StaleFetch {
        asked: FetchedAt,
        leader_epoch: i32,
        leader: bool,
        log_end: i64,
    },
}

/// What a follower's fetch asked: at which leader epoch, from which
/// offset (its log end then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchedAt {
    pub leader_epoch: i32,
    pub fetch_offset: i64,
}

impl PartitionError {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            PartitionError::Log(LogError::OffsetOutOfRange { .. }) => {
                ErrorCode::OFFSET_OUT_OF_RANGE
            }
            PartitionError::Log(LogError::BatchTooLarge { .. }) => ErrorCode::MESSAGE_TOO_LARGE,
            PartitionError::Log(LogError::InvalidBatch { .. }) => ErrorCode::CORRUPT_MESSAGE,
            PartitionError::Log(_) => ErrorCode::KAFKA_STORAGE_ERROR,
            PartitionError::Producer(error) => error.error_code(),
            PartitionError::Corrupt(_) => ErrorCode::CORRUPT_MESSAGE,
            PartitionError::Recompress(error) => error.error_code(),
            PartitionError::FlushTimeout { .. } => ErrorCode::REQUEST_TIMED_OUT,
            PartitionError::LeadershipLost { .. } | PartitionError::NotLeader => {
                ErrorCode::NOT_LEADER_OR_FOLLOWER
            }
            PartitionError::Closed => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            // Retriable for clients (Kafka's KafkaStorageException is an
            // InvalidMetadataException): producers retry until their
            // delivery timeout, which rides out a short full disk.
            PartitionError::DiskFull { .. } => ErrorCode::KAFKA_STORAGE_ERROR,
            PartitionError::TxnVerificationNeeded { .. } => ErrorCode::INVALID_TXN_STATE,
            PartitionError::TxnNotVerified { error_code, .. } => *error_code,
            PartitionError::Marker(_) => ErrorCode::UNKNOWN_SERVER_ERROR,
            PartitionError::NotEnoughReplicas { .. } => ErrorCode::NOT_ENOUGH_REPLICAS,
            PartitionError::NotEnoughReplicasAfterAppend { .. } => {
                ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            }
            PartitionError::StaleFetch { .. } => ErrorCode::FENCED_LEADER_EPOCH,
        }
    }

    /// An IO error on a write: the disk may be full, worth a free-space
    /// check now rather than at the next tick.
    pub fn is_write_io(&self) -> bool {
        matches!(self, PartitionError::Log(LogError::Io(_)))
    }
}

/// What a produce to this partition returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// A retried idempotent batch: nothing was written.
    pub duplicate: bool,
}

/// What a fetch from this partition returns.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Whole batches from the fetch offset, below the high watermark.
    pub records: Bytes,
}

/// What a zero-copy fetch from this partition returns: the batches as file
/// regions, to be sent from any shard.
#[derive(Debug, Clone)]
pub struct FetchedRegions {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Whole batches from the fetch offset, below the high watermark
    /// (read_uncommitted) or the last stable offset (read_committed), in
    /// log order (one region per segment touched).
    pub regions: Vec<FileRegion>,
    /// The offset after the last batch in `regions` (the fetch offset when
    /// there are none): where the consumer's next fetch starts.
    pub next_offset: i64,
    /// read_committed: the aborted transactions overlapping
    /// `[fetch offset, next_offset)`; empty for read_uncommitted.
    pub aborted: Vec<AbortedTxn>,
}

impl FetchedRegions {
    pub fn size_bytes(&self) -> u64 {
        self.regions.iter().map(|region| region.len).sum()
    }
}

struct State<S: ShardStorage> {
    log: Log<S>,
    producers: ProducerStateTable,
    /// KIP-890 guards handed out, by producer id (`stable`).
    guards: HashMap<i64, u64>,
    next_guard: u64,
}

/// Where a partition lives and how its log behaves.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    pub topic: Rc<str>,
    pub index: i32,
    /// `<log.dirs>/<topic>-<partition>`.
    pub dir: PathBuf,
    pub config: LogConfig,
    pub hints: RecoveryHints,
    /// `write.caching`: the high watermark is the log end, not the flushed
    /// offset, and acks=all does not wait for fsync.
    pub write_caching: bool,
    /// The high watermark to start from (`replication-offset-checkpoint`),
    /// kept between the log start and the log end. None: the log end, for
    /// a log whose data dir never had the checkpoint. Once this broker
    /// knows the partition's ISR, the high watermark rises as usual: at
    /// once when it alone is the ISR, else as the followers fetch.
    pub high_watermark: Option<i64>,
}

/// One producer id's state on a partition, as DescribeProducers reports
/// it. Crosses shards: plain data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The last sequence written (-1 before any batch of this epoch).
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction, if one is open.
    pub current_txn_start_offset: Option<i64>,
}

/// The leader epoch a partition takes over with when it opens: every
/// partition leads epoch 0 while leadership does not come from the
/// cluster metadata. [`Log::assign_epoch_at_end`] only assigns an epoch
/// above the latest, so this only starts the cache of a log that has none.
const OPEN_LEADER_EPOCH: i32 = 0;

/// A partition's replication as Kafka's partition gauges report it: on
/// the leader, its replica count, ISR size, whether replicas are out of
/// the ISR and whether the ISR is below `min.insync.replicas`; all zero on
/// a follower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicationSummary {
    pub replicas: i64,
    pub in_sync_replicas: i64,
    pub under_replicated: bool,
    pub under_min_isr: bool,
}

/// DeleteRecords' offset meaning "up to the high watermark".
pub const DELETE_TO_HIGH_WATERMARK: i64 = -1;

/// One partition on its owning shard, over the storage `S` it was given
/// (glommio in the broker, the simulated storage in tests).
pub struct Partition<S: ShardStorage = BrokerStorage> {
    pub topic: Rc<str>,
    pub index: i32,
    dir: PathBuf,
    storage: S,
    state: RwLock<State<S>>,
    high_watermark: Cell<i64>,
    /// Everything below is fsync'd here (the log end with
    /// `write.caching`): the high watermark of a partition led alone.
    flushed: Cell<i64>,
    /// Leader or follower, the ISR, and as leader what the followers
    /// hold: bounds the high watermark (see `replicas`).
    replicas: RefCell<ReplicaState>,
    log_end_offset: Cell<i64>,
    log_start_offset: Cell<i64>,
    /// Written since the last flush began: queued for a flush, or due for
    /// another one when the running one ends.
    dirty: Cell<bool>,
    /// The flusher runs flushes of this partition now (one after another).
    flushing: Cell<bool>,
    /// A flush (fsync) failed: writes answer KAFKA_STORAGE_ERROR until the
    /// broker restarts; reads go on below the high watermark.
    read_only: Cell<bool>,
    /// Deleted (DeleteTopics): everything answers as if it never existed.
    deleted: Cell<bool>,
    write_caching: bool,
    /// Read without the lock by fetches and their waits; set under it.
    last_stable_offset: Cell<i64>,
    /// The leader epoch this replica knows (the cluster's leadership
    /// record; 0 on a single node): stamped into every batch appended
    /// here as leader.
    leader_epoch: Cell<i32>,
    clock: Rc<dyn Clock>,
    watermark_moved: Event,
    /// Fires on every append (and deletion): followers' fetches wait on
    /// the log end, not the high watermark.
    log_end_moved: Event,
    /// Appends take effect in the order they were called, which the
    /// state lock alone does not keep (see `turnstile`).
    appends: Turnstile,
}

impl<S: ShardStorage> Partition<S> {
    /// Opens the partition's log and rebuilds its producer state.
    pub async fn open(
        storage: S,
        clock: Rc<dyn Clock>,
        spec: PartitionSpec,
    ) -> Result<Rc<Partition<S>>, PartitionError> {
        let PartitionSpec {
            topic,
            index,
            dir,
            config,
            hints,
            write_caching,
            high_watermark,
        } = spec;
        let mut log = Log::open(
            storage.clone(),
            dir.clone(),
            config,
            Rc::clone(&clock),
            hints,
        )
        .await?;
        // Every partition leads from open (see `OPEN_LEADER_EPOCH`): a log
        // that never had an epoch starts this one at its end, as Kafka's
        // leader does on taking over, so OffsetForLeaderEpoch knows it
        // before the first batch.
        log.assign_epoch_at_end(OPEN_LEADER_EPOCH).await?;
        let mut producers = ProducerStateTable::default();
        let log_end = log.log_end_offset();
        let loaded = producers.load_latest(&storage, &dir, log_end).await?;
        let from = loaded.snapshot_offset.unwrap_or(log.log_start_offset());
        log.recover_producer_state(&mut producers, from).await?;
        // Everything replayed is durable (open flushed it), but what is
        // past the checkpointed high watermark may not be on the other
        // replicas: a restarted replica does not vouch for it (Kafka's
        // `replication-offset-checkpoint`). Open transactions hold the last
        // stable offset further back.
        let high_watermark = high_watermark.map_or(log.flushed_offset(), |checkpointed| {
            checkpointed
                .min(log.flushed_offset())
                .max(log.log_start_offset())
        });
        producers.on_high_watermark(high_watermark);
        let last_stable_offset =
            producers.last_stable_offset(high_watermark, log.log_start_offset());
        let partition = Partition {
            topic,
            index,
            dir,
            storage,
            high_watermark: Cell::new(high_watermark),
            flushed: Cell::new(log.flushed_offset()),
            replicas: RefCell::new(ReplicaState::new(0)),
            log_end_offset: Cell::new(log_end),
            log_start_offset: Cell::new(log.log_start_offset()),
            state: RwLock::new(State {
                log,
                producers,
                guards: HashMap::new(),
                next_guard: first_guard(clock.now_ms()),
            }),
            dirty: Cell::new(false),
            flushing: Cell::new(false),
            read_only: Cell::new(false),
            deleted: Cell::new(false),
            write_caching,
            last_stable_offset: Cell::new(last_stable_offset),
            leader_epoch: Cell::new(0),
            clock,
            watermark_moved: Event::new(),
            log_end_moved: Event::new(),
            appends: Turnstile::new(),
        };
        partition.assert_offsets();
        Ok(Rc::new(partition))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.get()
    }

    /// The leader epoch this replica knows for the partition.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.get()
    }

    /// A new leadership of the partition: appends from now on are stamped
    /// with `epoch`. Epochs only grow; an older one is ignored.
    pub fn set_leader_epoch(&self, epoch: i32) {
        if epoch > self.leader_epoch.get() {
            self.leader_epoch.set(epoch);
        }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.get()
    }

    /// Everything below is fsync'd on this broker.
    pub fn flushed_offset(&self) -> i64 {
        self.flushed.get()
    }

    /// Whether this broker leads the partition (always, outside a
    /// cluster).
    pub fn is_leader(&self) -> bool {
        self.replicas.borrow().is_leader()
    }

    /// The partition's leadership as this broker last applied it.
    pub fn assignment(&self) -> Assignment {
        self.replicas.borrow().assignment().clone()
    }

    /// Kafka's partition gauges (see [`ReplicationSummary`]).
    pub fn replication_summary(&self) -> ReplicationSummary {
        let replicas = self.replicas.borrow();
        if !replicas.is_leader() {
            return ReplicationSummary::default();
        }
        let assignment = replicas.assignment();
        ReplicationSummary {
            replicas: assignment.replicas.len() as i64,
            in_sync_replicas: assignment.isr.len() as i64,
            under_replicated: assignment.isr.len() < assignment.replicas.len(),
            under_min_isr: !replicas.enough_in_sync(),
        }
    }

    /// As leader: what `replica` reported with its last fetch.
    pub fn follower_state(&self, replica: i32) -> Option<FollowerState> {
        self.replicas.borrow().follower(replica).copied()
    }

    /// `min.insync.replicas` of the topic (acks=all needs that many in
    /// the ISR).
    pub fn set_min_insync_replicas(&self, min: i32) {
        self.replicas.borrow_mut().set_min_insync_replicas(min);
    }

    /// acks=all: refused before appending while the ISR is smaller than
    /// `min.insync.replicas` (Kafka's NOT_ENOUGH_REPLICAS).
    pub fn check_enough_in_sync(&self) -> Result<(), PartitionError> {
        let replicas = self.replicas.borrow();
        match replicas.enough_in_sync() {
            true => Ok(()),
            false => Err(PartitionError::NotEnoughReplicas {
                in_sync: replicas.isr().len(),
                min: replicas.min_insync_replicas(),
            }),
        }
    }

    /// A new leadership or ISR from the metadata (`me` is this broker):
    /// the high watermark may move at once (a shrunk ISR no longer waits
    /// for the member that left).
    pub async fn assign(&self, me: i32, assignment: Assignment) -> Result<(), PartitionError> {
        self.set_leader_epoch(assignment.leader_epoch);
        let now_ms = self.clock.now_ms();
        self.replicas.borrow_mut().assign(me, assignment, now_ms);
        // acks=all waits check whether their leadership still holds.
        self.watermark_moved.notify(usize::MAX);
        self.republish().await
    }

    /// As leader: follower `replica` fetches from `fetch_offset`, so holds
    /// everything below it on disk. Moves the high watermark when that
    /// was the last ISR member it waited for.
    pub async fn follower_fetched(
        &self,
        replica: i32,
        fetch_offset: i64,
    ) -> Result<(), PartitionError> {
        let now_ms = self.clock.now_ms();
        let end = self.log_end_offset.get();
        let recorded =
            self.replicas
                .borrow_mut()
                .follower_fetched(replica, fetch_offset, end, now_ms);
        if recorded {
            self.republish().await?;
        }
        Ok(())
    }

    /// As leader: the in-sync followers that hold `offset` (their fetch
    /// offset, what they hold on disk, is past it), with that fetch
    /// offset; empty when this broker does not lead.
    pub fn in_sync_followers_holding(&self, offset: i64) -> Vec<(i32, i64)> {
        let replicas = self.replicas.borrow();
        if !replicas.is_leader() {
            return Vec::new();
        }
        replicas
            .isr()
            .iter()
            .filter_map(|&id| replicas.follower(id).map(|f| (id, f.fetch_offset)))
            .filter(|&(_, held)| held >= offset)
            .collect()
    }

    /// As follower: the leader's high watermark from a fetch answer.
    pub async fn leader_high_watermark(&self, high_watermark: i64) -> Result<(), PartitionError> {
        self.replicas
            .borrow_mut()
            .leader_high_watermark(high_watermark);
        self.republish().await
    }

    /// As leader with no ISR change in flight: the change due now, if
    /// any, with `lag_max_ms` as `replica.lag.time.max.ms`. A replica
    /// joins once it reached the high watermark and the start of the
    /// current leader epoch, and only if `may_join` says so (Kafka's
    /// `isReplicaIsrEligible`: not a fenced or unknown broker, which the
    /// controller would refuse with INELIGIBLE_REPLICA, again and again).
    pub async fn isr_change_due(
        &self,
        lag_max_ms: i64,
        may_join: impl Fn(i32) -> bool,
    ) -> Option<IsrProposal> {
        if !self.is_leader() || self.replicas.borrow().change_in_flight() {
            return None;
        }
        let epoch = self.leader_epoch.get();
        let epoch_start = match self.read_state().await {
            Ok(state) => state
                .log
                .epoch_entries()
                .iter()
                .find(|e| e.epoch == epoch)
                .map_or(self.log_end_offset.get(), |e| e.start_offset),
            Err(_) => return None,
        };
        let replicas = self.replicas.borrow();
        let due = replicas.isr_change_due(
            self.clock.now_ms(),
            lag_max_ms,
            self.high_watermark.get(),
            epoch_start,
        )?;
        let isr = &replicas.assignment().isr;
        let new_isr: Vec<i32> = due
            .new_isr
            .iter()
            .copied()
            .filter(|r| isr.contains(r) || may_join(*r))
            .collect();
        let changes = new_isr.len() != isr.len() || new_isr.iter().any(|r| !isr.contains(r));
        changes.then_some(IsrProposal { new_isr, ..due })
    }

    /// `proposal` was sent to the controller: the high watermark counts
    /// the members of both ISRs until it is answered.
    pub fn begin_isr_change(&self, proposal: IsrProposal) {
        self.replicas.borrow_mut().begin_change(proposal);
    }

    /// The ISR change in flight was refused or failed.
    pub fn end_isr_change(&self) {
        self.replicas.borrow_mut().end_change();
    }

    /// Publishes again when the replicas allow a higher high watermark
    /// than the current one (takes the state lock only then).
    async fn republish(&self) -> Result<(), PartitionError> {
        let bound = self
            .replicas
            .borrow()
            .high_watermark_bound(self.flushed.get());
        if bound <= self.high_watermark.get() || self.read_only.get() {
            return Ok(());
        }
        let mut state = self.write_state().await?;
        let flushed = self.flushed.get();
        self.publish(&mut state, flushed);
        Ok(())
    }

    /// log start <= high watermark <= log end, always: a consumer is never
    /// sent below the log or past what is durable. Checked wherever one of
    /// them moves; a violation is a bug, and the broker stops rather than
    /// serve offsets that do not exist.
    fn assert_offsets(&self) {
        let (start, high, end) = (
            self.log_start_offset.get(),
            self.high_watermark.get(),
            self.log_end_offset.get(),
        );
        assert!(
            start <= high && high <= end,
            "{}-{}: log start {start} <= high watermark {high} <= log end {end} broken",
            self.topic,
            self.index
        );
        let stable = self.last_stable_offset.get();
        assert!(
            start <= stable && stable <= high,
            "{}-{}: log start {start} <= last stable offset {stable} <= high watermark {high} broken",
            self.topic,
            self.index
        );
    }

    /// The log and producer state, shared (reads).
    async fn read_state(&self) -> Result<RwLockReadGuard<'_, State<S>>, PartitionError> {
        self.state.read().await.map_err(|_| PartitionError::Closed)
    }

    /// The log and producer state, exclusive (appends, flush, retention).
    async fn write_state(&self) -> Result<RwLockWriteGuard<'_, State<S>>, PartitionError> {
        self.state.write().await.map_err(|_| PartitionError::Closed)
    }

    /// Reads need the partition to exist; the log refuses them itself
    /// only if it went offline.
    fn check_readable(&self) -> Result<(), PartitionError> {
        match self.deleted.get() {
            true => Err(PartitionError::Closed),
            false => Ok(()),
        }
    }

    /// Writes (append, retention, compaction) need a log that never failed
    /// a flush.
    fn check_writable(&self) -> Result<(), PartitionError> {
        self.check_readable()?;
        if self.read_only.get() {
            return Err(LogError::ReadOnly {
                op: "earlier fsync",
            }
            .into());
        }
        Ok(())
    }

    /// Whether a flush failed: writes are refused until restart.
    pub fn is_read_only(&self) -> bool {
        self.read_only.get()
    }

    /// Appends the batches of one produce request (validated by the caller:
    /// CRC, structure, append rules), stored with the topic's current
    /// `compression.type` (see [`stored_records`]). Returns once the data
    /// is in the page cache; durability is [`Partition::wait_durable`].
    /// A transactional batch of a producer with no open transaction here
    /// needs `verified` to be the guard this partition handed out for it
    /// ([`PartitionError::TxnVerificationNeeded`], KIP-890).
    pub async fn append(
        &self,
        records: &Bytes,
        verified: Option<u64>,
    ) -> Result<Appended, PartitionError> {
        // The place in line before anything awaits; held until the records
        // have their offsets.
        let ticket = self.appends.ticket();
        self.check_writable()?;
        ticket.turn().await;
        self.append_in_turn(records, verified).await
    }

    /// [`Partition::append`] of a Produce request: when a transactional
    /// batch needs the KIP-890 verification, `verify(producer id, epoch)`
    /// asks the transaction coordinator while this append keeps its place
    /// in line, and the batch is then appended with its guard.
    ///
    /// Why the place is kept: a producer pipelines its batches to a
    /// partition (up to 5 requests in flight on one connection) and the
    /// broker runs them concurrently. A later batch that overtook the one
    /// being verified would be judged against the sequence before it and
    /// refused with OUT_OF_ORDER_SEQUENCE_NUMBER, which the Java producer
    /// treats as fatal for the batch right after one it saw acknowledged.
    /// Kafka never meets this: it reads a connection's next request only
    /// after answering the previous one. The cost is that other appends
    /// to this partition wait one coordinator round trip (an in-memory
    /// check, no IO), once per producer and transaction.
    pub async fn append_verifying<F, Fut>(
        &self,
        records: &Bytes,
        verify: F,
    ) -> Result<Appended, PartitionError>
    where
        F: FnOnce(i64, i16) -> Fut,
        Fut: std::future::Future<Output = Result<(), PartitionError>>,
    {
        let ticket = self.appends.ticket();
        self.check_writable()?;
        ticket.turn().await;
        let (producer_id, producer_epoch, guard) = match self.append_in_turn(records, None).await {
            Err(PartitionError::TxnVerificationNeeded {
                producer_id,
                producer_epoch,
                guard,
            }) => (producer_id, producer_epoch, guard),
            other => return other,
        };
        verify(producer_id, producer_epoch).await?;
        // Still our turn: no marker or other append got in meanwhile, so
        // the guard holds unless the partition itself changed.
        self.check_writable()?;
        self.append_in_turn(records, Some(guard)).await
    }

    /// A leader-only append goes on only while this broker leads: the
    /// leadership may have moved while it waited for its turn (a leader
    /// paused and resumed serves what queued up in its sockets), and a
    /// client batch in a follower's log would carry the new leader's
    /// epoch without being the new leader's batch, a divergence no epoch
    /// check could see.
    pub(crate) fn check_leading(&self) -> Result<(), PartitionError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(PartitionError::NotLeader)
        }
    }

    /// The part of an append that runs in its turn: producer checks,
    /// guards, the write and the producer state.
    async fn append_in_turn(
        &self,
        records: &Bytes,
        verified: Option<u64>,
    ) -> Result<Appended, PartitionError> {
        let mut state = self.write_state().await?;
        self.check_leading()?;
        let headers = headers_of(records)?;
        if let Some(duplicate) = duplicate_of(&state.producers, &headers)? {
            return Ok(Appended {
                log_start_offset: state.log.log_start_offset(),
                ..duplicate
            });
        }
        let verified_producers = state.check_guards(&headers, verified)?;
        let records = stored_records(records, &state.log)?;
        let appended = self.append_recorded(&mut state, &records, &headers).await?;
        for producer_id in verified_producers {
            state.guards.remove(&producer_id);
        }
        Ok(appended)
    }

    /// A follower's append: the leader's batches as they are, continuing
    /// this log (offsets, epochs and timestamps kept; see
    /// `Log::append_replicated`), replayed into producer state as Kafka's
    /// followers do (no sequence checks: the leader made them): data
    /// batches extend their producers' transactions, markers end them and
    /// an abort adds its aborted-transaction entry, so the follower's last
    /// stable offset and read_committed answers are the leader's, and it
    /// can lead with the transactions as they stand. Returns the new log
    /// end.
    pub async fn append_replicated(&self, records: &Bytes) -> Result<i64, PartitionError> {
        self.append_fetched(records, None).await
    }

    /// [`Partition::append_replicated`] of a fetch answer for `asked`:
    /// appended only if, in its turn, this replica still follows at the
    /// asked leader epoch and its log still ends at the asked offset. An
    /// answer that outlived its question (a leadership changed, a
    /// truncation ran meanwhile) is dropped, never appended: a replica
    /// that became leader must not take its old leader's records.
    pub async fn append_fetched(
        &self,
        records: &Bytes,
        asked: Option<FetchedAt>,
    ) -> Result<i64, PartitionError> {
        let ticket = self.appends.ticket();
        self.check_writable()?;
        ticket.turn().await;
        let mut state = self.write_state().await?;
        if let Some(asked) = asked {
            let log_end = state.log.log_end_offset();
            let epoch = self.leader_epoch();
            if self.is_leader() || epoch != asked.leader_epoch || log_end != asked.fetch_offset {
                return Err(PartitionError::StaleFetch {
                    asked,
                    leader_epoch: epoch,
                    leader: self.is_leader(),
                    log_end,
                });
            }
        }
        let mut batches = Vec::new();
        for batch in Batches::new(records.clone()) {
            let batch = batch?;
            let header = *batch.header();
            let marker = match header.is_control() {
                true => batch.end_txn_marker().ok().flatten(),
                false => None,
            };
            batches.push((header, marker));
        }
        state.log.append_replicated(records).await?;
        let mut aborted = Vec::new();
        for (header, marker) in &batches {
            let completed = state.producers.replay(header, *marker);
            if let Some(entry) =
                completed.and_then(|c| AbortedTxn::of_completed(&c, &state.producers))
            {
                aborted.push(entry);
            }
        }
        for entry in aborted {
            if let Err(error) = state.log.append_aborted_txn(entry).await {
                // As a leader's marker: the abort must never become
                // stable without its entry (see `write_txn_marker`).
                self.fail();
                self.after_append(&mut state);
                return Err(error.into());
            }
        }
        self.after_append(&mut state);
        Ok(state.log.log_end_offset())
    }

    /// A follower's divergent tail (Kafka's `Partition.truncateTo`, after
    /// the leader answered a diverging epoch): removes every batch at or
    /// above `offset` (synced), rebuilds producer state from the newest
    /// snapshot below the new end, and cuts the high watermark and the
    /// last stable offset to it if they were above (they should not be:
    /// what is above the high watermark was never acknowledged). Returns
    /// the new log end.
    pub async fn truncate_to(&self, offset: i64) -> Result<i64, PartitionError> {
        let ticket = self.appends.ticket();
        self.check_writable()?;
        ticket.turn().await;
        let mut state = self.write_state().await?;
        if offset >= state.log.log_end_offset() {
            state.log.truncate_to(offset).await?;
            return Ok(state.log.log_end_offset());
        }
        if offset < self.high_watermark.get() {
            tracing::warn!(
                topic = %self.topic,
                partition = self.index,
                offset,
                high_watermark = self.high_watermark.get(),
                "truncating below the high watermark"
            );
        }
        if let Err(error) = state.log.truncate_to(offset).await {
            self.fail();
            return Err(error.into());
        }
        let end = state.log.log_end_offset();
        let mut producers = ProducerStateTable::default();
        let loaded = producers.load_latest(&self.storage, &self.dir, end).await?;
        let from = loaded
            .snapshot_offset
            .unwrap_or(state.log.log_start_offset());
        state
            .log
            .recover_producer_state(&mut producers, from)
            .await?;
        state.producers = producers;
        self.log_end_offset.set(end);
        self.log_start_offset.set(state.log.log_start_offset());
        self.flushed.set(self.flushed.get().min(end));
        self.high_watermark.set(self.high_watermark.get().min(end));
        self.last_stable_offset
            .set(self.last_stable_offset.get().min(self.high_watermark.get()));
        self.publish(&mut state, end);
        self.log_end_moved.notify(usize::MAX);
        Ok(end)
    }

    /// As follower: the log restarts empty at `offset` (Kafka's
    /// `truncateFullyAndStartAt`), with no producer state and its
    /// snapshots gone: when the leader's log starts past everything this
    /// log holds (a replica a reassignment added to a partition whose
    /// start moved, a follower away longer than retention), or when this
    /// log is empty and the leader's first batch starts below its start
    /// (the leader's start fell inside that batch; the leader's log start
    /// then follows from the fetch answers). Otherwise nothing changes.
    /// Returns the new log end.
    pub async fn restart_at(&self, offset: i64) -> Result<i64, PartitionError> {
        let ticket = self.appends.ticket();
        self.check_writable()?;
        ticket.turn().await;
        let mut state = self.write_state().await?;
        let (start, end) = (state.log.log_start_offset(), state.log.log_end_offset());
        if offset == end || (offset < end && start != end) {
            return Ok(end);
        }
        if let Err(error) = state.log.restart_at(offset).await {
            self.fail();
            return Err(error.into());
        }
        remove_snapshots_below(&self.storage, &self.dir, i64::MAX).await?;
        state.producers = ProducerStateTable::default();
        let end = state.log.log_end_offset();
        self.log_end_offset.set(end);
        self.log_start_offset.set(state.log.log_start_offset());
        // Synced by the restart: an empty log at `end`.
        self.flushed.set(end);
        self.high_watermark.set(end);
        self.last_stable_offset.set(end);
        self.publish(&mut state, end);
        self.log_end_moved.notify(usize::MAX);
        Ok(end)
    }

    /// The newest leader epoch of the log's batches (-1: none): a
    /// follower's last fetched epoch.
    pub async fn latest_epoch(&self) -> Result<i32, PartitionError> {
        self.check_readable()?;
        Ok(self.read_state().await?.log.latest_epoch().unwrap_or(-1))
    }

    /// Appends `records` (whose batches `headers` describe, in order) and
    /// records them in producer state; publishes the new offsets.
    async fn append_recorded(
        &self,
        state: &mut State<S>,
        records: &Bytes,
        headers: &[BatchHeader],
    ) -> Result<Appended, PartitionError> {
        let info = state.log.append(records, self.leader_epoch.get()).await?;
        let mut first_offset = info.first_offset;
        let timestamp = info.log_append_time_ms;
        for header in headers {
            let batch_timestamp = timestamp.unwrap_or(header.max_timestamp);
            state
                .producers
                .record(header, first_offset, batch_timestamp);
            first_offset += i64::from(header.last_offset_delta) + 1;
        }
        self.after_append(state);
        Ok(Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            log_append_time_ms: info.log_append_time_ms.unwrap_or(-1),
            log_start_offset: info.log_start_offset,
            duplicate: false,
        })
    }

    /// Publishes what an append moved: log end and start, and with
    /// `write.caching` the high watermark; the LSO in any case (a new
    /// transaction holds it).
    fn after_append(&self, state: &mut State<S>) {
        self.log_end_offset.set(state.log.log_end_offset());
        self.log_end_moved.notify(usize::MAX);
        self.log_start_offset.set(state.log.log_start_offset());
        let high_watermark = match self.write_caching {
            true => state.log.log_end_offset(),
            false => self.high_watermark.get(),
        };
        self.publish(state, high_watermark);
    }

    /// Waits until the high watermark passes `end_offset`: every offset
    /// below it is fsync'd here and on every ISR member (acks=all), or
    /// `timeout` passes. Called right after this broker appended as
    /// leader: if it stops leading, or leads in another epoch, or its log
    /// no longer reaches `end_offset`, before that, the wait fails with
    /// [`PartitionError::LeadershipLost`] (Kafka's delayed produce
    /// answers NOT_LEADER_OR_FOLLOWER then). A deposed leader follows a
    /// new one whose log may hold other records at those offsets, and its
    /// high watermark, now the new leader's, passes them all the same.
    /// An ISR below `min.insync.replicas` holds the high watermark (see
    /// `replicas::ReplicaState::high_watermark_held`): the wait fails
    /// with [`PartitionError::NotEnoughReplicasAfterAppend`] then.
    pub async fn wait_durable(
        &self,
        end_offset: i64,
        timeout: std::time::Duration,
    ) -> Result<(), PartitionError> {
        self.check_writable()?;
        let epoch = self.leader_epoch();
        let still_led = || {
            if self.is_leader()
                && self.leader_epoch() == epoch
                && self.log_end_offset.get() >= end_offset
            {
                Ok(())
            } else {
                Err(PartitionError::LeadershipLost {
                    epoch,
                    offset: end_offset,
                })
            }
        };
        still_led()?;
        // Already durable (write caching, or a flush that beat the call):
        // no timer to arm.
        if self.high_watermark.get() >= end_offset {
            return Ok(());
        }
        let durable = async {
            loop {
                self.check_writable()?;
                still_led()?;
                if self.high_watermark.get() >= end_offset {
                    return Ok(());
                }
                // The ISR fell below min.insync.replicas: the high
                // watermark is held until it is back, so answer now, as
                // Kafka would once the records replicated.
                let held = {
                    let replicas = self.replicas.borrow();
                    replicas
                        .high_watermark_held()
                        .then(|| (replicas.isr().len(), replicas.min_insync_replicas()))
                };
                if let Some((in_sync, min)) = held {
                    return Err(PartitionError::NotEnoughReplicasAfterAppend { in_sync, min });
                }
                let listener = self.watermark_moved.listen();
                if self.high_watermark.get() >= end_offset
                    || self.read_only.get()
                    || self.deleted.get()
                {
                    continue;
                }
                listener.await;
            }
        };
        within(timeout, durable)
            .await
            .unwrap_or(Err(PartitionError::FlushTimeout { offset: end_offset }))
    }

    /// Waits until every offset below `end_offset` is fsync'd on this
    /// broker (a follower's appends: the leader learns it from the next
    /// fetch), or `timeout` passes.
    pub async fn wait_flushed(
        &self,
        end_offset: i64,
        timeout: std::time::Duration,
    ) -> Result<(), PartitionError> {
        self.check_writable()?;
        let flushed = async {
            loop {
                self.check_writable()?;
                let listener = self.watermark_moved.listen();
                if self.flushed.get() >= end_offset {
                    return Ok(());
                }
                if self.read_only.get() || self.deleted.get() {
                    continue;
                }
                listener.await;
            }
        };
        within(timeout, flushed)
            .await
            .unwrap_or(Err(PartitionError::FlushTimeout { offset: end_offset }))
    }

    /// Waits until the readable end for `isolation` (the high watermark,
    /// or the last stable offset for read_committed) passes `offset` or
    /// `timeout` ends; returns whether it did. Used by long-poll fetches.
    /// A deleted partition answers at once (the next read reports it); a
    /// read-only one waits out the timeout like an idle one, since its
    /// high watermark no longer moves.
    pub async fn wait_for_data(
        &self,
        offset: i64,
        timeout: std::time::Duration,
        isolation: IsolationLevel,
    ) -> bool {
        let ready = || self.readable_end(isolation) > offset || self.deleted.get();
        if ready() {
            return true;
        }
        // A wake that does not reach `offset` (the high watermark moving
        // under an open transaction) waits on rather than answering.
        let reached = async {
            loop {
                let listener = match isolation {
                    IsolationLevel::LogEnd => self.log_end_moved.listen(),
                    _ => self.watermark_moved.listen(),
                };
                if ready() {
                    return;
                }
                listener.await;
                if ready() {
                    return;
                }
            }
        };
        within(timeout, reached).await;
        ready()
    }

    /// Where reads at `isolation` stop.
    pub fn readable_end(&self, isolation: IsolationLevel) -> i64 {
        match isolation {
            IsolationLevel::ReadUncommitted => self.high_watermark.get(),
            IsolationLevel::ReadCommitted => self.last_stable_offset.get(),
            IsolationLevel::LogEnd => self.log_end_offset.get(),
            IsolationLevel::FollowerRead { committed } => {
                let heard = self.replicas.borrow().heard_high_watermark();
                let end = match committed {
                    true => self.last_stable_offset.get(),
                    false => self.high_watermark.get(),
                };
                end.min(heard)
            }
        }
    }

    /// Reads whole batches from `offset`, up to `max_bytes` (at least one
    /// batch), below the high watermark.
    pub async fn fetch(&self, offset: i64, max_bytes: u32) -> Result<Fetched, PartitionError> {
        self.check_readable()?;
        let state = self.read_state().await?;
        let high_watermark = self.high_watermark.get();
        let records = if offset >= high_watermark && offset <= state.log.log_end_offset() {
            Bytes::new()
        } else {
            let read = state
                .log
                .read_bounded(offset, max_bytes, high_watermark)
                .await?;
            read.read_bytes().await?
        };
        Ok(Fetched {
            high_watermark,
            log_start_offset: state.log.log_start_offset(),
            records,
        })
    }

    /// [`Partition::fetch`] without reading: the batches' file regions, for
    /// `sendfile` from the shard that holds the socket, below the readable
    /// end for `isolation`; read_committed also gets the aborted
    /// transactions of the range read.
    pub async fn fetch_regions(
        &self,
        offset: i64,
        max_bytes: u32,
        isolation: IsolationLevel,
    ) -> Result<FetchedRegions, PartitionError> {
        self.check_readable()?;
        let state = self.read_state().await?;
        let bound = self.readable_end(isolation);
        let mut high_watermark = self.high_watermark.get();
        let mut last_stable_offset = self.last_stable_offset.get();
        if let IsolationLevel::FollowerRead { .. } = isolation {
            // What a consumer is told stays within what the leader said.
            let heard = self.replicas.borrow().heard_high_watermark();
            high_watermark = high_watermark.min(heard);
            last_stable_offset = last_stable_offset.min(heard);
        }
        let mut regions = Vec::new();
        let mut next_offset = offset;
        if offset < bound || offset > state.log.log_end_offset() {
            let read = state.log.read_bounded(offset, max_bytes, bound).await?;
            next_offset = read.next_offset;
            for region in &read.regions {
                let shared = region.file.share_region(region.position, region.len);
                regions.push(shared.await.map_err(LogError::Io)?);
            }
        }
        let aborted = match isolation {
            IsolationLevel::ReadCommitted | IsolationLevel::FollowerRead { committed: true } => {
                state.log.aborted_txns(offset, next_offset)
            }
            IsolationLevel::ReadUncommitted
            | IsolationLevel::LogEnd
            | IsolationLevel::FollowerRead { committed: false } => Vec::new(),
        };
        Ok(FetchedRegions {
            high_watermark,
            last_stable_offset,
            log_start_offset: state.log.log_start_offset(),
            regions,
            next_offset,
            aborted,
        })
    }

    /// ListOffsets: the first offset whose record timestamp is at least
    /// `timestamp`, within the readable log for `isolation` (below the
    /// high watermark, or the last stable offset).
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
        isolation: IsolationLevel,
    ) -> Result<Option<TimestampOffset>, PartitionError> {
        self.check_readable()?;
        let state = self.read_state().await?;
        let found = state.log.offset_for_timestamp(timestamp).await?;
        Ok(found.filter(|t| t.offset < self.readable_end(isolation)))
    }

    /// ListOffsets with MAX_TIMESTAMP (-3).
    pub async fn max_timestamp(&self) -> Result<Option<TimestampOffset>, PartitionError> {
        self.check_readable()?;
        let state = self.read_state().await?;
        Ok(state.log.max_timestamp().await?)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `requested` and
    /// where it ends in the log (Kafka's `endOffsetForEpoch`); (-1, -1)
    /// when the log does not know (see `rafka_core::log::EpochCache`).
    pub async fn end_offset_for_epoch(&self, requested: i32) -> Result<(i32, i64), PartitionError> {
        self.check_readable()?;
        Ok(self.read_state().await?.log.end_offset_for_epoch(requested))
    }

    /// The leader epoch entries of the log, oldest first.
    pub async fn epoch_entries(&self) -> Result<Vec<EpochEntry>, PartitionError> {
        self.check_readable()?;
        Ok(self.read_state().await?.log.epoch_entries().to_vec())
    }

    /// This replica takes over as leader with `epoch` (Kafka's
    /// `makeLeader` -> `maybeAssignEpochStartOffset`): the epoch starts at
    /// the log end unless it is not above the latest. Returns whether it
    /// was assigned (one small durable file write).
    pub async fn assign_leader_epoch(&self, epoch: i32) -> Result<bool, PartitionError> {
        self.check_writable()?;
        let mut state = self.write_state().await?;
        Ok(state.log.assign_epoch_at_end(epoch).await?)
    }

    /// Bytes of the log's segments (DescribeLogDirs' partition size).
    pub async fn size_bytes(&self) -> Result<u64, PartitionError> {
        self.check_readable()?;
        Ok(self.read_state().await?.log.size_bytes())
    }

    /// The producers the partition's producer state holds, by ascending
    /// id (DescribeProducers).
    pub async fn active_producers(&self) -> Result<Vec<ActiveProducer>, PartitionError> {
        self.check_readable()?;
        let state = self.read_state().await?;
        let producers = state
            .producers
            .iter()
            .map(|(producer_id, entry)| ActiveProducer {
                producer_id,
                producer_epoch: entry.epoch(),
                last_sequence: entry.last_sequence(),
                last_timestamp: entry.last_timestamp(),
                coordinator_epoch: entry.coordinator_epoch(),
                current_txn_start_offset: entry.current_txn_first_offset(),
            });
        Ok(producers.collect())
    }

    /// What recovery found and did when the log was opened.
    pub async fn recovery_report(&self) -> Result<RecoveryReport, PartitionError> {
        Ok(self.read_state().await?.log.recovery_report().clone())
    }

    /// The next step of a scrub pass (rafka-core's `log::scrub`), planned
    /// under the lock; None once the pass is done. The chunk is read and
    /// checked without the lock (and without the partition: closed
    /// segments do not change), then recorded by [`Partition::scrub_apply`].
    pub async fn scrub_plan(
        &self,
        cursor: &mut ScrubCursor<S::File>,
        max_bytes: u64,
    ) -> Result<Option<ScrubChunk<S::File>>, PartitionError> {
        self.check_readable()?;
        Ok(self.read_state().await?.log.scrub_plan(cursor, max_bytes))
    }

    /// Records what a scrub step found (under the lock).
    pub async fn scrub_apply(
        &self,
        cursor: &mut ScrubCursor<S::File>,
        chunk: &ScrubChunk<S::File>,
        verdict: ScrubVerdict,
    ) -> Result<ScrubApplied, PartitionError> {
        let mut state = self.write_state().await?;
        Ok(state.log.scrub_apply(cursor, chunk, verdict))
    }

    /// The ranges the scrubber took out of service, in log order.
    pub async fn damaged_ranges(&self) -> Result<Vec<DamagedRange>, PartitionError> {
        Ok(self.read_state().await?.log.damaged_ranges())
    }

    /// Marks the partition for the next flush cycle; returns whether it was
    /// clean before (the caller then queues it).
    pub fn mark_dirty(&self) -> bool {
        !self.dirty.replace(true)
    }

    /// Whether an append since the last flush began is waiting for one.
    pub fn is_dirty(&self) -> bool {
        self.dirty.get()
    }

    /// Marks (`true`) or clears the flusher's run of this partition;
    /// returns the previous value.
    pub fn set_flushing(&self, flushing: bool) -> bool {
        self.flushing.replace(flushing)
    }

    /// Whether the flusher is running flushes of this partition.
    pub fn is_flushing(&self) -> bool {
        self.flushing.get()
    }

    /// One group-commit flush of this partition: collect the dirty files
    /// (briefly holding the lock), fdatasync them without the lock so
    /// appends go on, then publish the new high watermark.
    pub async fn flush(&self) -> Result<i64, PartitionError> {
        self.dirty.set(false);
        let ticket = {
            let mut state = self.write_state().await?;
            state.log.flush_begin()
        };
        let outcome = match ticket {
            Ok(ticket) => ticket.sync().await,
            Err(error) => Err(error),
        };
        let flushed = match outcome {
            Ok(done) => {
                let mut state = self.write_state().await?;
                let flushed = state.log.flush_complete(done);
                if let (Ok(offset), false) = (&flushed, self.write_caching) {
                    self.publish(&mut state, *offset);
                }
                flushed
            }
            Err(error) => Err(error),
        };
        match flushed {
            Ok(offset) => Ok(offset),
            Err(error) => {
                self.fail();
                Err(error.into())
            }
        }
    }

    /// Records `flushed` as fsync'd here and moves the high watermark up to
    /// what the replicas allow (never down; see `replicas`), lets
    /// producer state settle the transactions it made durable, recomputes
    /// the last stable offset, and wakes the waiters if either moved.
    /// Under the state lock, so the LSO and the producer state agree.
    ///
    /// A read-only partition's high watermark stays: what it did not make
    /// durable before failing is not vouched for (and an abort whose index
    /// entry could not be written must not become stable).
    fn publish(&self, state: &mut State<S>, flushed: i64) {
        let flushed_moved = flushed > self.flushed.get() && !self.read_only.get();
        if flushed_moved {
            self.flushed.set(flushed);
        }
        let bound = self
            .replicas
            .borrow()
            .high_watermark_bound(self.flushed.get());
        let high_watermark = match self.read_only.get() {
            true => self.high_watermark.get(),
            false => bound.max(self.high_watermark.get()),
        };
        state.producers.on_high_watermark(high_watermark);
        let log_start_offset = self.log_start_offset.get();
        let stable = state
            .producers
            .last_stable_offset(high_watermark, log_start_offset);
        let moved = flushed_moved
            || high_watermark != self.high_watermark.get()
            || stable != self.last_stable_offset.get();
        self.high_watermark.set(high_watermark);
        self.last_stable_offset.set(stable);
        self.assert_offsets();
        if moved {
            self.watermark_moved.notify(usize::MAX);
        }
    }

    /// After a failed fsync the page cache cannot be trusted for what was
    /// not flushed: no more writes; what is below the high watermark was
    /// flushed before and stays readable.
    fn fail(&self) {
        if self.read_only.replace(true) {
            return;
        }
        tracing::error!(
            topic = %self.topic,
            partition = self.index,
            high_watermark = self.high_watermark.get(),
            log_end_offset = self.log_end_offset.get(),
            "log flush failed: partition refuses writes until restart; \
             records below the high watermark are durable and still served"
        );
        self.watermark_moved.notify(usize::MAX);
    }

    /// Applies retention at `now_ms`; returns segments deleted.
    pub async fn apply_retention(&self, now_ms: i64) -> Result<u32, PartitionError> {
        self.check_writable()?;
        let mut state = self.write_state().await?;
        let below = self.high_watermark.get();
        let outcome = state.log.apply_retention_below(now_ms, below).await?;
        self.log_start_offset.set(state.log.log_start_offset());
        self.publish(&mut state, self.high_watermark.get());
        Ok(outcome.segments_deleted)
    }

    /// DeleteRecords: raises the log start offset to `offset` (-1: the high
    /// watermark) and deletes the segments wholly below it; returns the new
    /// low watermark. Durable when it returns. Offsets past the high
    /// watermark are OFFSET_OUT_OF_RANGE, as in Kafka; one at or below the
    /// current start changes nothing.
    pub async fn delete_records(&self, offset: i64) -> Result<i64, PartitionError> {
        self.check_writable()?;
        let mut state = self.write_state().await?;
        let high_watermark = self.high_watermark.get();
        let target = if offset == DELETE_TO_HIGH_WATERMARK {
            high_watermark
        } else {
            offset
        };
        if target < 0 || target > high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: state.log.log_start_offset(),
                log_end_offset: high_watermark,
            }
            .into());
        }
        state.log.raise_log_start_offset(target).await?;
        self.log_start_offset.set(state.log.log_start_offset());
        self.publish(&mut state, high_watermark);
        Ok(state.log.log_start_offset())
    }

    /// One compaction pass at `now_ms` if the topic is compacted and dirty
    /// enough, of the segments below the last stable offset. The cleaned files are built without the lock, so produce and
    /// fetch go on meanwhile; only the swap takes it. Returns the records
    /// removed.
    pub async fn compact(&self, now_ms: i64) -> Result<u64, PartitionError> {
        self.check_writable()?;
        // Only below the LSO: every transaction there is decided, so
        // aborted records can go and markers be judged.
        let plan = {
            let state = self.read_state().await?;
            let below = self.last_stable_offset.get();
            state.log.compaction_plan_below(now_ms, below)
        };
        let Some(plan) = plan else {
            return Ok(0);
        };
        let cleaned = plan.build().await?;
        let mut state = self.write_state().await?;
        let outcome = state.log.install_compacted(cleaned).await?;
        Ok(outcome.records_removed)
    }

    /// Applies changed topic configs (retention, segment size, ...).
    pub async fn set_config(&self, config: LogConfig) -> Result<(), PartitionError> {
        let mut state = self.write_state().await?;
        state.log.set_config(config)?;
        Ok(())
    }

    /// Flushes, snapshots producer state and closes the log; returns the
    /// (recovery point, log start offset) for the checkpoint files.
    pub async fn close(self: Rc<Self>) -> Result<(i64, i64), PartitionError> {
        self.flush().await?;
        let state = self.write_state().await?;
        let end = state.log.log_end_offset();
        state
            .producers
            .snapshot(&self.storage, &self.dir, end)
            .await?;
        let flushed = state.log.flushed_offset();
        let log_start = state.log.log_start_offset();
        drop(state);
        let state = Rc::try_unwrap(self)
            .ok()
            .map(|partition| partition.state.into_inner());
        match state {
            Some(Ok(state)) => {
                let closed = state.log.close().await?;
                Ok((closed.recovery_point, closed.log_start_offset))
            }
            // Someone still holds the partition (a fetch in flight): the
            // flush above made everything durable, which is what the
            // checkpoint records.
            _ => Ok((flushed, log_start)),
        }
    }

    /// Deletes the partition's data (DeleteTopics).
    pub async fn delete(self: Rc<Self>) -> Result<(), PartitionError> {
        self.deleted.set(true);
        self.watermark_moved.notify(usize::MAX);
        self.log_end_moved.notify(usize::MAX);
        let storage = self.storage.clone();
        let dir = self.dir.clone();
        match Rc::try_unwrap(self).ok().map(|p| p.state.into_inner()) {
            Some(Ok(state)) => state.log.delete().await?,
            _ => {
                storage
                    .remove_dir_all(&dir)
                    .await
                    .map_err(|e| PartitionError::Log(LogError::Io(e)))?;
            }
        }
        Ok(())
    }
}

/// The headers of the batches in a produce request's records. The produce
/// handler validated every batch (CRC included) on the shard that received
/// the request, so the owner reads the headers only: no second CRC pass on
/// the hot path.
fn headers_of(records: &Bytes) -> Result<Vec<BatchHeader>, PartitionError> {
    let mut headers = Vec::with_capacity(1);
    let mut rest: &[u8] = records;
    while !rest.is_empty() {
        let size_bytes = batch_size_bytes(rest)?;
        if size_bytes > rest.len() {
            return Err(BatchError::Truncated {
                needed_bytes: size_bytes,
                available_bytes: rest.len(),
            }
            .into());
        }
        headers.push(BatchHeader::decode(rest)?);
        rest = &rest[size_bytes..];
    }
    Ok(headers)
}

/// `records` as the log stores them: in the codec of the topic's
/// `compression.type` as the log's config has it now (a config change
/// applies from the next append), or as sent when that is `producer` or
/// already the batches' codec (no copy). Runs on the owning shard, under
/// the partition lock: recompressing is CPU work on the core that owns
/// the data, and the config cannot change under it. A retried duplicate
/// never gets here, so it is not recompressed for nothing.
fn stored_records<S: ShardStorage>(records: &Bytes, log: &Log<S>) -> Result<Bytes, PartitionError> {
    match log.config().compression {
        None => Ok(records.clone()),
        Some(target) => Ok(recompress_batches(
            records,
            target,
            RecordLimits::default(),
        )?),
    }
}

/// Kafka checks producer state batch by batch; a retried request carries
/// the same single batch, so a duplicate first batch answers the request.
fn duplicate_of(
    producers: &ProducerStateTable,
    headers: &[BatchHeader],
) -> Result<Option<Appended>, PartitionError> {
    for header in headers {
        if let Check::Duplicate {
            first_offset,
            last_offset,
            ..
        } = producers.check(header)?
        {
            return Ok(Some(Appended {
                base_offset: first_offset,
                last_offset,
                log_append_time_ms: -1,
                log_start_offset: 0,
                duplicate: true,
            }));
        }
    }
    Ok(None)
}

/// The first guard a partition hands out: its open time in the high
/// bits, so that a guard from before a restart does not match one after.
fn first_guard(now_ms: i64) -> u64 {
    (now_ms.max(0) as u64) << 20
}
