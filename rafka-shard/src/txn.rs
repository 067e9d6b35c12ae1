//! [`TransactionCoordinator`]: the transaction coordinator of one shard,
//! for the transactional ids of the `__transaction_state` partitions the
//! shard owns and its broker leads.
//!
//! Lives on: every shard, one each. A handler on any shard finds the owner
//! of a transactional id with [`crate::shard::Shard::coordinator_shard`]
//! and runs the call there through the router, as for groups.
//!
//! The state is rafka-core's sans-IO [`TxnCoordinator`] in a `RefCell`;
//! ownership, replay, persistence and timers are the [`CoordinatorHost`]'s.
//! Every transition is persisted (appended to `__transaction_state` and
//! fsynced) before anything is answered ([`TransactionCoordinator::transition`]).
//!
//! Ending a transaction (EndTxn, a timeout, a fencing InitProducerId) is
//! two transitions with the markers between them: PrepareCommit /
//! PrepareAbort is made durable and answered, then a task of this shard
//! writes the marker to every partition of the transaction, each on its
//! owning shard, retrying until each is durable, and only then writes
//! CompleteCommit / CompleteAbort. A crash between the two leaves the
//! Prepare record as the id's last: the replay at startup finds it and the
//! marker task runs again (markers are idempotent for the reader: a second
//! COMMIT marker of an ended transaction changes nothing).
//!
//! A marker that reaches a `__consumer_offsets` partition also completes
//! the pending TxnOffsetCommit offsets of that producer in the group
//! coordinator on the same shard.
//!
//! Leadership (see [`crate::coordinator`]): markers carry the leader epoch
//! the id's partition was loaded in as their coordinator epoch, go only
//! to partitions this broker leads, and the marker task of a partition
//! that moves away stops; its new leader's load finds the Prepare* record
//! and finishes the transaction.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use futures_util::future::join_all;
use rafka_core::config::BrokerConfig;
use rafka_core::txn::schema::decode_key;
use rafka_core::txn::{
    AddStep, EndStep, InitStep, ListFilter, TopicPartition, TxnConfig, TxnCoordinator,
    TxnDescription, TxnListing, TxnSnapshot, TxnState, TRANSACTION_STATE_TOPIC,
};
use rafka_proto::error::ErrorCode;

use crate::controller_handle::ControllerHandle;
use crate::coordinator::{Claim, CoordinatorHost, Hosted, InternalTopic, LoadError};
use crate::group::{log_load, GROUP_METADATA_TOPIC};
pub use crate::partition::TxnMarker;
use crate::runtime::within;
use crate::shard::Shard;
use crate::storage::{BrokerStorage, ShardStorage};

/// How long one marker write may wait for its flush before it is retried.
const MARKER_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The wait for another broker's transaction coordinator to verify a
/// partition.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(10);
/// Backoff between attempts at a marker (or a Complete record) that failed.
const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The internal topic of transactions, as `config` sizes it.
pub fn transaction_topic(config: &BrokerConfig) -> InternalTopic {
    InternalTopic {
        name: TRANSACTION_STATE_TOPIC,
        partitions: config.transaction_state_log_num_partitions.max(1),
        replication_factor: config.transaction_state_log_replication_factor,
        min_insync_replicas: Some(config.transaction_state_log_min_isr),
    }
}

/// What a shard's transaction coordinator did since start, for /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxnStats {
    /// Transactions that reached CompleteCommit.
    pub committed: u64,
    /// Transactions that reached CompleteAbort (by the client, a timeout
    /// or a fence).
    pub aborted: u64,
    /// Open transactions aborted by their timeout.
    pub timed_out: u64,
    /// Producers fenced by a new incarnation's InitProducerId.
    pub fenced: u64,
    /// Markers written (each durable on its partition).
    pub markers_written: u64,
    /// Transactions open on this shard's ids now (a gauge).
    pub open: u64,
}

/// The transaction coordinator of one shard.
pub struct TransactionCoordinator<S: ShardStorage = BrokerStorage> {
    host: CoordinatorHost<S>,
    machine: RefCell<TxnCoordinator>,
    /// The shard it lives in (set once the shard exists): the router for
    /// markers, the controller for producer ids.
    shard: OnceCell<Weak<Shard<S>>>,
    /// Ids whose marker task runs, with the leadership it runs for, so
    /// that one runs per id and leadership (a task of a leadership that
    /// ended is on its way out).
    writing_markers: RefCell<BTreeMap<String, Claim>>,
    remove_expired_interval_ms: i64,
    /// After a timeout abort could not be written, the timer waits until
    /// then before trying again (a failing disk must not spin the shard).
    retry_timeouts_at_ms: Cell<i64>,
    stats: Cell<TxnStats>,
}

impl<S: ShardStorage> TransactionCoordinator<S> {
    pub fn new(host: CoordinatorHost<S>, config: &BrokerConfig) -> Self {
        TransactionCoordinator {
            host,
            machine: RefCell::new(TxnCoordinator::new(TxnConfig::from_broker(config))),
            shard: OnceCell::new(),
            writing_markers: RefCell::new(BTreeMap::new()),
            remove_expired_interval_ms: config.transaction_remove_expired_interval_ms.max(1),
            retry_timeouts_at_ms: Cell::new(i64::MIN),
            stats: Cell::new(TxnStats::default()),
        }
    }

    /// Ties the coordinator to its shard (startup, once).
    pub fn attach(&self, shard: &Rc<Shard<S>>) {
        let _ = self.shard.set(Rc::downgrade(shard));
    }

    fn shard(&self) -> Option<Rc<Shard<S>>> {
        self.shard.get().and_then(Weak::upgrade)
    }

    pub fn host(&self) -> &CoordinatorHost<S> {
        &self.host
    }

    /// The coordinator's state, for inspection (tests, describe tools).
    pub fn with_machine<T>(&self, f: impl FnOnce(&TxnCoordinator) -> T) -> T {
        f(&self.machine.borrow())
    }

    fn now_ms(&self) -> i64 {
        self.host.now_ms()
    }

    fn count(&self, bump: impl FnOnce(&mut TxnStats)) {
        let mut stats = self.stats.get();
        bump(&mut stats);
        self.stats.set(stats);
    }

    /// What this shard's coordinator did since start, and its open
    /// transactions now.
    pub fn stats(&self) -> TxnStats {
        let open = self.machine.borrow().open_count();
        TxnStats {
            open: u64::try_from(open).unwrap_or(u64::MAX),
            ..self.stats.get()
        }
    }

    /// Transactions whose marker task runs now.
    pub fn marker_tasks(&self) -> usize {
        self.writing_markers.borrow().len()
    }

    /// Persists `next` for `id`, then makes it the id's state; a failed
    /// write leaves the state as it was and answers
    /// COORDINATOR_NOT_AVAILABLE (retriable: the client asks again).
    async fn transition(&self, id: &str, next: TxnSnapshot) -> Result<(), ErrorCode> {
        self.transition_with(id, next, true).await
    }

    /// [`TransactionCoordinator::transition`], waiting for the flush only
    /// if `durable`.
    async fn transition_with(
        &self,
        id: &str,
        next: TxnSnapshot,
        durable: bool,
    ) -> Result<(), ErrorCode> {
        let record = self.machine.borrow().record_for(id, &next);
        let records = std::slice::from_ref(&record);
        let written = match durable {
            true => self.host.persist(records).await,
            false => self.host.append_unflushed(records).await,
        };
        let mut machine = self.machine.borrow_mut();
        if written {
            machine.complete(id, next);
        } else {
            machine.fail(id);
        }
        drop(machine);
        self.host.timers_changed();
        match written {
            true => Ok(()),
            false => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }

    /// InitProducerId with a transactional id: the producer id and epoch,
    /// once durable.
    pub async fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ErrorCode> {
        self.host.check_owner(id)?;
        let mut fresh = None;
        loop {
            let step = self.machine.borrow_mut().init_producer_id(
                id,
                timeout_ms,
                expected,
                fresh,
                self.now_ms(),
            )?;
            match step {
                InitStep::NeedProducerId if fresh.is_none() => {
                    fresh = Some(self.allocate_producer_id().await?);
                }
                InitStep::NeedProducerId => return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
                InitStep::Persist(next) => {
                    let answer = (next.producer_id, next.producer_epoch);
                    self.transition(id, next).await?;
                    return Ok(answer);
                }
                InitStep::FenceAndAbort(next) => {
                    tracing::info!(
                        transactional_id = id,
                        producer_id = next.producer_id,
                        epoch = next.producer_epoch,
                        "fencing the previous producer and aborting its open transaction"
                    );
                    self.transition(id, next).await?;
                    self.count(|s| s.fenced += 1);
                    self.spawn_markers(id);
                    return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
                }
            }
        }
    }

    async fn allocate_producer_id(&self) -> Result<i64, ErrorCode> {
        let shard = self.shard().ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
        match ControllerHandle::new(shard).allocate_producer_id().await {
            Ok(outcome) => outcome,
            Err(_) => Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: one answer for all the
    /// partitions (Kafka's coordinator answers them together).
    pub async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: Vec<TopicPartition>,
    ) -> Result<(), ErrorCode> {
        self.host.check_owner(id)?;
        let step = self.machine.borrow_mut().add_partitions(
            id,
            producer_id,
            epoch,
            &partitions,
            self.now_ms(),
        )?;
        match step {
            AddStep::AlreadyIn => Ok(()),
            AddStep::Persist(next) => self.transition(id, next).await,
        }
    }

    /// AddPartitionsToTxn `verify_only` (KIP-890 part 1): a code per
    /// partition, NONE for those in the open transaction.
    pub fn verify_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
    ) -> Vec<ErrorCode> {
        if let Err(code) = self.host.check_owner(id) {
            return vec![code; partitions.len()];
        }
        self.machine
            .borrow()
            .verify_partitions(id, producer_id, epoch, partitions)
    }

    /// EndTxn: answered once PrepareCommit/PrepareAbort is durable; the
    /// markers follow.
    pub async fn end_txn(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), ErrorCode> {
        self.host.check_owner(id)?;
        let step =
            self.machine
                .borrow_mut()
                .end_txn(id, producer_id, epoch, commit, self.now_ms())?;
        match step {
            EndStep::AlreadyDone => Ok(()),
            EndStep::Persist(next) => {
                self.transition(id, next).await?;
                self.spawn_markers(id);
                Ok(())
            }
        }
    }

    /// DescribeTransactions of one id.
    pub fn describe(&self, id: &str) -> Result<TxnDescription, ErrorCode> {
        self.host.check_owner(id)?;
        self.machine
            .borrow()
            .describe(id)
            .ok_or(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND)
    }

    /// ListTransactions over this shard's ids.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<TxnListing>, ErrorCode> {
        self.machine.borrow().list(filter, self.now_ms())
    }

    /// Starts the marker task of `id` unless one runs for the current
    /// leadership of its partition (none while it is not loaded).
    fn spawn_markers(&self, id: &str) {
        let Some(shard) = self.shard() else {
            return;
        };
        let Some(claim) = self.host.claim(self.host.topic().partition_for(id)) else {
            return;
        };
        let previous = self
            .writing_markers
            .borrow_mut()
            .insert(id.to_string(), claim);
        if previous == Some(claim) {
            return;
        }
        let id = id.to_string();
        glommio::spawn_local(async move {
            let txns = Rc::clone(shard.txns());
            txns.complete_transaction(&shard, &id, claim).await;
            let mut writing = txns.writing_markers.borrow_mut();
            if writing.get(&id) == Some(&claim) {
                writing.remove(&id);
            }
        })
        .detach();
    }

    /// Writes the markers of `id`'s PrepareCommit/PrepareAbort to every
    /// partition of the transaction, then its CompleteCommit/CompleteAbort.
    /// Retries until done, the shard stops or the leadership of the id's
    /// partition (`claim`) ends: a coordinator that lost it writes no
    /// more markers; the new one's replay finds the transaction and
    /// finishes it with its own, newer coordinator epoch.
    async fn complete_transaction(&self, shard: &Rc<Shard<S>>, id: &str, claim: Claim) {
        // The startup replay runs while other shards may still be opening
        // their partitions: markers wait until every shard has loaded.
        shard.lifecycle().wait_ready().await;
        if !self.host.holds(&claim) {
            return;
        }
        let Some(snapshot) = self.machine.borrow().get(id).map(|m| m.current.clone()) else {
            return;
        };
        if !snapshot.state.is_preparing() {
            return;
        }
        // Kafka's coordinator epoch: the leader epoch of the id's
        // `__transaction_state` partition (0 on a single node), so a
        // partition refuses the markers of a coordinator that lost it.
        let marker = TxnMarker {
            producer_id: snapshot.producer_id,
            producer_epoch: snapshot.producer_epoch,
            coordinator_epoch: claim.leader_epoch,
            commit: snapshot.state == TxnState::PrepareCommit,
        };
        let writes = snapshot.partitions.iter().map(|(topic, partition)| {
            write_marker(shard, topic.clone(), *partition, marker, claim)
        });
        let written = join_all(writes).await.into_iter().filter(|w| *w).count();
        self.count(|s| s.markers_written += written as u64);
        let mut backoff = RETRY_BACKOFF_MIN;
        while !self.host.is_stopping() && self.host.holds(&claim) {
            let Some(next) = self
                .machine
                .borrow_mut()
                .complete_markers(id, self.now_ms())
            else {
                return;
            };
            let committed = next.state == TxnState::CompleteCommit;
            // CompleteCommit/CompleteAbort is not waited for: the markers
            // it follows are durable, losing it in a crash only has the
            // replay write them again, and the id's next transition is
            // durable only once it is (same partition, later offset). The
            // producer's next transaction starts one fsync sooner.
            if self.transition_with(id, next, false).await.is_ok() {
                self.count(|s| match committed {
                    true => s.committed += 1,
                    false => s.aborted += 1,
                });
                return;
            }
            within(backoff, std::future::pending::<()>()).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }

    /// Replays the `__transaction_state` partitions this shard holds and
    /// this broker leads that are not loaded yet (those whose high
    /// watermark has to catch up first in a task of their own), then
    /// finishes every transaction a crash left between Prepare and
    /// Complete.
    pub async fn load_partitions(self: &Rc<Self>) -> Result<usize, LoadError> {
        for (partition, leader_epoch) in self.host.led_behind() {
            self.follow_leadership(partition, true, leader_epoch);
        }
        let applied = self.host.load_partitions(&**self).await?;
        self.finish_prepared();
        Ok(applied)
    }

    /// Starts the marker task of every loaded transaction left between
    /// Prepare and Complete (by a crash, or by a former coordinator).
    fn finish_prepared(&self) {
        let awaiting = self.machine.borrow().awaiting_markers();
        for id in awaiting {
            tracing::info!(transactional_id = %id, "finishing a prepared transaction");
            self.spawn_markers(&id);
        }
    }

    /// A leadership of `__transaction_state` partition `partition` (see
    /// [`CoordinatorHost::follow_leadership`]): led elsewhere, its ids go
    /// (their timeouts and marker tasks stop); led here in a new epoch,
    /// they are loaded afresh by a task of this shard
    /// (COORDINATOR_LOAD_IN_PROGRESS meanwhile), which then finishes the
    /// prepared transactions it found.
    pub fn follow_leadership(self: &Rc<Self>, partition: i32, leads: bool, leader_epoch: i32) {
        let Some(generation) = self
            .host
            .follow_leadership(partition, leads, leader_epoch, &**self)
        else {
            return;
        };
        let txns = Rc::clone(self);
        glommio::spawn_local(async move {
            let loaded = txns
                .host
                .load_generation(partition, generation, &*txns)
                .await;
            let done = loaded.is_ok();
            log_load(TRANSACTION_STATE_TOPIC, partition, loaded);
            if done {
                txns.finish_prepared();
            }
        })
        .detach();
    }

    /// Forgets the ids of a deleted `__transaction_state` partition.
    pub fn unload_partition(&self, partition: i32) {
        self.host.unload_partition(partition, self);
    }

    /// Ends the timer tasks (shutdown).
    pub fn stop(&self) {
        self.host.stop();
    }

    /// The timer task: transaction timeouts.
    pub async fn run_timers(self: Rc<Self>) {
        self.host.run_timers(&*self).await;
    }

    /// The expiry task: idle transactional ids, every
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub async fn run_expiry(self: Rc<Self>) {
        let interval = Duration::from_millis(self.remove_expired_interval_ms as u64);
        self.host
            .every(interval, async || self.expire_ids().await)
            .await;
    }

    async fn expire_ids(&self) {
        let expired = self.machine.borrow_mut().expire(self.now_ms());
        for (id, dead) in expired {
            tracing::info!(transactional_id = %id, "transactional id expired");
            // A failed tombstone leaves the id as it was; the next pass
            // tries again.
            let _ = self.transition(&id, dead).await;
        }
    }
}

/// Writes `marker` to `topic`-`partition` on its owning shard, once, and
/// waits until it is durable; a marker in `__consumer_offsets` then
/// completes the producer's pending offset commits there. What the
/// coordinator's marker task and WriteTxnMarkers share.
pub async fn write_marker_on_owner<S: ShardStorage>(
    shard: &Rc<Shard<S>>,
    topic: &str,
    partition: i32,
    marker: TxnMarker,
) -> Result<i64, ErrorCode> {
    let owner = shard
        .owner_of(topic, partition)
        .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
    let name = topic.to_string();
    let outcome = shard
        .router
        .invoke_on(owner, move |owner_shard: Rc<Shard<S>>| async move {
            // A follower's log takes only its leader's batches.
            let follower = owner_shard
                .partition(&name, partition)
                .is_some_and(|p| !p.is_leader());
            if follower {
                return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
            }
            let written = owner_shard
                .registry()
                .write_txn_marker(&name, partition, marker, MARKER_WRITE_TIMEOUT)
                .await
                .map_err(|error| error.error_code());
            if written.is_ok() && name == GROUP_METADATA_TOPIC {
                owner_shard
                    .groups()
                    .complete_txn(partition, marker.producer_id, marker.commit);
            }
            written
        })
        .await;
    match outcome {
        Ok(written) => written,
        // The owner is stopping: retriable, as a leader moving away.
        Err(_) => Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
    }
}

/// Writes `marker` where `topic`/`partition` is led: on this node's
/// owning shard, or, in a cluster, with Kafka's WriteTxnMarkers (v1) on
/// the broker that leads it (as Kafka's coordinator does through its
/// `TransactionMarkerChannelManager`). NOT_LEADER_OR_FOLLOWER (retriable)
/// while the partition has no leader or the leader cannot be reached.
async fn write_marker_on_leader<S: ShardStorage>(
    shard: &Rc<Shard<S>>,
    topic: &str,
    partition: i32,
    marker: TxnMarker,
) -> Result<(), ErrorCode> {
    let image = shard.image_view().get();
    let leader = image
        .topic(topic)
        .and_then(|t| t.leadership(partition))
        .map(|l| l.leader);
    match leader {
        Some(leader) if leader != shard.config.node_id => {
            write_marker_remotely(shard, &image, leader, topic, partition, marker).await
        }
        _ => write_marker_on_owner(shard, topic, partition, marker)
            .await
            .map(|_| ()),
    }
}

/// WriteTxnMarkers for one partition to broker `leader`, over its
/// inter-broker listener (a link of the shard's pool).
async fn write_marker_remotely<S: ShardStorage>(
    shard: &Shard<S>,
    image: &rafka_core::metadata::MetadataImage,
    leader: i32,
    topic: &str,
    partition: i32,
    marker: TxnMarker,
) -> Result<(), ErrorCode> {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
    use kafka_protocol::protocol::StrBytes;

    let address =
        crate::replication::address_of(image, leader).ok_or(ErrorCode::NOT_LEADER_OR_FOLLOWER)?;
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_indexes(vec![partition])])]);
    let timeout = MARKER_WRITE_TIMEOUT + Duration::from_secs(5);
    let answer = shard
        .links()
        .call(leader, &address, "rafka-txn-markers", &request, 1, timeout)
        .await
        .map_err(|error| {
            tracing::debug!(leader, topic, partition, %error, "WriteTxnMarkers");
            ErrorCode::NOT_LEADER_OR_FOLLOWER
        })?;
    let code = answer
        .markers
        .first()
        .and_then(|m| m.topics.first())
        .and_then(|t| t.partitions.first())
        .map_or(ErrorCode::UNKNOWN_SERVER_ERROR.code(), |p| p.error_code);
    match ErrorCode::from_code(code) {
        ErrorCode::NONE => Ok(()),
        error => Err(error),
    }
}

/// KIP-890 part 1: whether `topic`-`partition` is in the open transaction
/// of `producer_id` at `epoch` for `txn_id`, asked of its transaction
/// coordinator wherever it is: this node's coordinator shard, or, in a
/// cluster, the broker leading the id's `__transaction_state` partition
/// with AddPartitionsToTxn v4 `verify_only`, as Kafka's partition leaders
/// do (`AddPartitionsToTxnManager`), over a link of the shard's pool.
///
/// `Ok` carries the coordinator's answer (NONE, INVALID_TXN_STATE,
/// PRODUCER_FENCED, ...; INVALID_TXN_STATE when no transaction state
/// exists at all, so none can be open); `Err` says it could not answer
/// now (moved, loading, stopping or unreachable): retriable.
pub async fn verify_in_transaction<S: ShardStorage>(
    shard: &Rc<Shard<S>>,
    txn_id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<ErrorCode, ErrorCode> {
    let coordinator = shard.coordinator_leader(shard.transaction_topic(), txn_id);
    if let Some(leader) = coordinator.filter(|l| *l != shard.config.node_id) {
        let code =
            verify_on_broker(shard, leader, txn_id, producer_id, epoch, topic, partition).await;
        return match code {
            ErrorCode::NOT_COORDINATOR
            | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
            | ErrorCode::COORDINATOR_NOT_AVAILABLE
            | ErrorCode::NOT_LEADER_OR_FOLLOWER => Err(code),
            code => Ok(code),
        };
    }
    let Ok(owner) = shard.coordinator_shard(shard.transaction_topic(), txn_id) else {
        // No transaction state at all: no transaction can be open.
        return Ok(ErrorCode::INVALID_TXN_STATE);
    };
    let id = txn_id.to_string();
    let partitions = [(topic.to_string(), partition)];
    let verified = shard
        .router
        .invoke_on(owner, move |s: Rc<Shard<S>>| async move {
            s.txns()
                .verify_partitions(&id, producer_id, epoch, &partitions)
        })
        .await;
    match verified {
        Ok(codes) => Ok(codes
            .first()
            .copied()
            .unwrap_or(ErrorCode::INVALID_TXN_STATE)),
        // The coordinator's shard is stopping.
        Err(_) => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
    }
}

/// AddPartitionsToTxn v4 `verify_only` for one partition to broker
/// `coordinator`: its answer for the partition (or the whole request),
/// NOT_LEADER_OR_FOLLOWER when it cannot be reached.
async fn verify_on_broker<S: ShardStorage>(
    shard: &Shard<S>,
    coordinator: i32,
    txn_id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
) -> ErrorCode {
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;

    let Some(address) = crate::replication::address_of(&shard.image(), coordinator) else {
        return ErrorCode::NOT_LEADER_OR_FOLLOWER;
    };
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(txn_id.to_string())))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![partition])]),
    ]);
    let answer = shard
        .links()
        .call(
            coordinator,
            &address,
            "rafka-txn-verify",
            &request,
            4,
            VERIFY_TIMEOUT,
        )
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => {
            tracing::debug!(coordinator, txn_id, %error, "AddPartitionsToTxn verify_only");
            return ErrorCode::NOT_LEADER_OR_FOLLOWER;
        }
    };
    if answer.error_code != 0 {
        return ErrorCode::from_code(answer.error_code);
    }
    let code = answer
        .results_by_transaction
        .first()
        .and_then(|t| t.topic_results.first())
        .and_then(|t| t.results_by_partition.first())
        .map_or(ErrorCode::INVALID_TXN_STATE.code(), |p| {
            p.partition_error_code
        });
    ErrorCode::from_code(code)
}

/// [`write_marker_on_owner`] until it is durable, the partition is gone
/// from the metadata image, or the marker is stale (a newer one is there);
/// backs off between attempts, and gives up only when the shard stops (the
/// replay after the restart writes it then) or the coordinator's
/// leadership (`claim`) ends (the new coordinator writes it). A partition the image still
/// has but its owner has not open (being opened, or closed by a clean
/// stop) is retried: taking it for a deleted one would let the
/// transaction complete without its marker there, and that partition's
/// LSO would stay at the transaction forever. Returns whether a marker
/// was written.
async fn write_marker<S: ShardStorage>(
    shard: &Rc<Shard<S>>,
    topic: String,
    partition: i32,
    marker: TxnMarker,
    claim: Claim,
) -> bool {
    let mut backoff = RETRY_BACKOFF_MIN;
    loop {
        if !shard.txns().host().holds(&claim) {
            return false;
        }
        match write_marker_on_leader(shard, &topic, partition, marker).await {
            Ok(()) => return true,
            // A deleted topic has nothing to mark, as in Kafka.
            Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
                if shard.image_view().get().topic(&topic).is_none() =>
            {
                return false
            }
            Err(
                code @ (ErrorCode::INVALID_PRODUCER_EPOCH
                | ErrorCode::TRANSACTION_COORDINATOR_FENCED),
            ) => {
                tracing::warn!(
                    topic,
                    partition,
                    ?code,
                    "transaction marker refused as stale"
                );
                return false;
            }
            Err(code) => {
                tracing::warn!(
                    topic,
                    partition,
                    ?code,
                    "transaction marker not written; retrying"
                );
            }
        }
        if shard.is_stopping() {
            return false;
        }
        within(backoff, std::future::pending::<()>()).await;
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
    }
}

impl<S: ShardStorage> Hosted for TransactionCoordinator<S> {
    fn replay(
        &self,
        partition: i32,
        _now_ms: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        let id = decode_key(key).map_err(|error| error.to_string())?;
        self.machine.borrow_mut().replay(partition, id, value)
    }

    fn unload(&self, partition: i32) {
        self.machine.borrow_mut().unload(partition);
    }

    fn next_deadline_ms(&self) -> Option<i64> {
        let deadline = self.machine.borrow().next_deadline_ms()?;
        Some(deadline.max(self.retry_timeouts_at_ms.get()))
    }

    async fn fire_due(&self, now_ms: i64) {
        let due = self.machine.borrow().timed_out(now_ms);
        for id in due {
            let Some(next) = self.machine.borrow_mut().abort_timed_out(&id, now_ms) else {
                continue;
            };
            tracing::info!(
                transactional_id = %id,
                producer_id = next.producer_id,
                "aborting a transaction past its timeout"
            );
            if self.transition(&id, next).await.is_ok() {
                self.count(|s| s.timed_out += 1);
                self.spawn_markers(&id);
            } else {
                let retry_ms = RETRY_BACKOFF_MAX.as_millis() as i64;
                self.retry_timeouts_at_ms
                    .set(now_ms.saturating_add(retry_ms));
            }
        }
    }
}
