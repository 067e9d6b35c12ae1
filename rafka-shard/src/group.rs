//! [`GroupCoordinator`]: the group coordinator of one shard, for the groups
//! of the `__consumer_offsets` partitions the shard owns and its broker
//! leads.
//!
//! Lives on: every shard, one each. A handler on any shard finds the owner
//! with [`crate::shard::Shard::coordinator_shard`] and runs the call there
//! through the router.
//!
//! It speaks rafka-core's own request and result types (the handlers in
//! rafka-net convert Kafka's message structs and their version rules). The
//! state is rafka-core's sans-IO [`Coordinator`] in a `RefCell` (one
//! thread, no locks); everything an internal-topic coordinator needs
//! besides it (ownership, replay, persist-then-reply, timers) is the
//! [`CoordinatorHost`]. A call feeds the machine and carries out its
//! [`Effects`]: records are persisted before the replies go out. A
//! JoinGroup or SyncGroup that has to wait parks on a oneshot channel
//! keyed by its reply token. Offsets expire every
//! `offsets.retention.check.interval.ms`.
//!
//! Until a partition is loaded its groups answer
//! COORDINATOR_LOAD_IN_PROGRESS; once another broker leads it, they answer
//! NOT_COORDINATOR and are forgotten here (see [`CoordinatorHost`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;
use rafka_core::config::BrokerConfig;
use rafka_core::group::{
    CommitRequest, Coordinator, Effects, FetchedOffset, GroupConfig, GroupDescription,
    GroupListing, JoinRequest, JoinResult, LeaveResult, LeavingMember, Reply, ReplyToken,
    SyncRequest, SyncResult,
};
use rafka_proto::error::ErrorCode;

use crate::coordinator::{CoordinatorHost, Hosted, InternalTopic, LoadError};
use crate::storage::{BrokerStorage, ShardStorage};

pub use rafka_core::group::GROUP_METADATA_TOPIC;

/// Per topic, per partition: an error code (NONE: done).
pub type PartitionCodes = Vec<(String, Vec<(i32, ErrorCode)>)>;

/// The internal topic of groups, as `config` sizes it.
pub fn offsets_topic(config: &BrokerConfig) -> InternalTopic {
    InternalTopic {
        name: GROUP_METADATA_TOPIC,
        partitions: config.offsets_topic_num_partitions.max(1),
        replication_factor: config.offsets_topic_replication_factor,
        min_insync_replicas: None,
    }
}

/// The group coordinator of one shard.
pub struct GroupCoordinator<S: ShardStorage = BrokerStorage> {
    host: CoordinatorHost<S>,
    machine: RefCell<Coordinator>,
    waiting: RefCell<HashMap<ReplyToken, oneshot::Sender<Reply>>>,
    next_token: Cell<ReplyToken>,
    retention_check_interval_ms: i64,
}

impl<S: ShardStorage> GroupCoordinator<S> {
    pub fn new(host: CoordinatorHost<S>, config: &BrokerConfig) -> GroupCoordinator<S> {
        GroupCoordinator {
            host,
            machine: RefCell::new(Coordinator::new(GroupConfig::from_broker(config))),
            waiting: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            retention_check_interval_ms: config.offsets_retention_check_interval_ms.max(1),
        }
    }

    pub fn host(&self) -> &CoordinatorHost<S> {
        &self.host
    }

    /// The coordinator's state, for inspection (tests, describe tools).
    pub fn with_machine<T>(&self, f: impl FnOnce(&Coordinator) -> T) -> T {
        f(&self.machine.borrow())
    }

    fn now_ms(&self) -> i64 {
        self.host.now_ms()
    }

    fn park(&self) -> (ReplyToken, oneshot::Receiver<Reply>) {
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1));
        let (tx, rx) = oneshot::channel();
        self.waiting.borrow_mut().insert(token, tx);
        (token, rx)
    }

    /// Persists the records, then delivers the replies. A failed write
    /// turns every reply of this batch into an error, since what the reply
    /// announces is not durable.
    async fn apply(&self, fx: Effects) {
        self.host.timers_changed();
        let written = self.host.persist(&fx.records).await;
        for (token, mut reply) in fx.replies {
            if !written {
                match &mut reply {
                    Reply::Join(r) => r.error_code = ErrorCode::COORDINATOR_NOT_AVAILABLE,
                    Reply::Sync(r) => r.error_code = ErrorCode::COORDINATOR_NOT_AVAILABLE,
                }
            }
            if let Some(tx) = self.waiting.borrow_mut().remove(&token) {
                // The requester may be gone (connection closed): nothing to do.
                let _ = tx.send(reply);
            }
        }
    }

    /// JoinGroup; answers once the join phase of the rebalance ends.
    pub async fn join(&self, request: JoinRequest) -> JoinResult {
        if let Err(code) = self.host.check_owner(&request.group_id) {
            return JoinResult::error(code, &request.member_id);
        }
        let member_id = request.member_id.clone();
        let (token, rx) = self.park();
        let fx = self
            .machine
            .borrow_mut()
            .join(self.now_ms(), token, request);
        self.apply(fx).await;
        match rx.await {
            Ok(Reply::Join(result)) => result,
            _ => JoinResult::error(ErrorCode::COORDINATOR_NOT_AVAILABLE, &member_id),
        }
    }

    /// SyncGroup; a follower waits for the leader's assignment.
    pub async fn sync(&self, request: SyncRequest) -> SyncResult {
        if let Err(code) = self.host.check_owner(&request.group_id) {
            return SyncResult::error(code);
        }
        let (token, rx) = self.park();
        let fx = self
            .machine
            .borrow_mut()
            .sync(self.now_ms(), token, request);
        self.apply(fx).await;
        match rx.await {
            Ok(Reply::Sync(result)) => result,
            _ => SyncResult::error(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> ErrorCode {
        let code = match self.host.check_owner(group_id) {
            Err(code) => code,
            Ok(_) => self.machine.borrow_mut().heartbeat(
                self.now_ms(),
                group_id,
                member_id,
                group_instance_id,
                generation_id,
            ),
        };
        self.host.timers_changed();
        code
    }

    pub async fn leave(&self, group_id: &str, members: Vec<LeavingMember>) -> LeaveResult {
        if let Err(code) = self.host.check_owner(group_id) {
            return LeaveResult {
                error_code: code,
                members: Vec::new(),
            };
        }
        let (result, fx) = self
            .machine
            .borrow_mut()
            .leave(self.now_ms(), group_id, members);
        self.apply(fx).await;
        result
    }

    /// OffsetCommit: one code per partition of the request, in its order.
    /// Durable (appended to `__consumer_offsets` and fsynced, as acks=all)
    /// before it returns; a failed write fails every partition it accepted.
    pub async fn commit_offsets(&self, request: CommitRequest) -> PartitionCodes {
        if let Err(code) = self.host.check_owner(&request.group_id) {
            return codes_for(&request, code);
        }
        let plan = self
            .machine
            .borrow_mut()
            .commit_offsets(self.now_ms(), &request);
        self.host.timers_changed();
        let written = self.host.persist(&plan.records).await;
        let mut results = plan.results.clone();
        if written {
            self.machine.borrow_mut().complete_commit(plan);
        } else {
            for code in results.iter_mut().flat_map(|(_, parts)| parts.iter_mut()) {
                if code.1.is_none() {
                    code.1 = ErrorCode::COORDINATOR_NOT_AVAILABLE;
                }
            }
        }
        results
    }

    /// TxnOffsetCommit: one code per partition of the request, in its
    /// order. The offsets are written inside the producer's transaction and
    /// stay pending until its marker reaches the group's partition.
    pub async fn commit_txn_offsets(
        &self,
        request: CommitRequest,
        producer_id: i64,
        producer_epoch: i16,
    ) -> PartitionCodes {
        if let Err(code) = self.host.check_owner(&request.group_id) {
            return codes_for(&request, code);
        }
        let plan = self
            .machine
            .borrow_mut()
            .commit_txn_offsets(self.now_ms(), &request);
        let mut results = plan.results.clone();
        if plan.records.is_empty() {
            return results;
        }
        match self
            .host
            .persist_transactional(&plan.records, producer_id, producer_epoch)
            .await
        {
            Ok(()) => self
                .machine
                .borrow_mut()
                .complete_txn_commit(plan, producer_id),
            Err(failed) => {
                for code in results.iter_mut().flat_map(|(_, parts)| parts.iter_mut()) {
                    if code.1.is_none() {
                        code.1 = failed;
                    }
                }
            }
        }
        results
    }

    /// A marker of `producer_id`'s transaction is durable in this shard's
    /// `__consumer_offsets` partition `partition`.
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        self.machine
            .borrow_mut()
            .complete_txn(partition, producer_id, commit);
    }

    /// Whether an open transaction holds an offset of the partition
    /// (OffsetFetch's `require_stable`).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.machine
            .borrow()
            .has_pending_txn_offset(group_id, topic, partition)
    }

    /// OffsetFetch of one group; `topics: None` asks for all its offsets.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, Vec<FetchedOffset>)>, ErrorCode> {
        self.host.check_owner(group_id)?;
        Ok(self.machine.borrow().fetch_offsets(group_id, topics))
    }

    /// [`GroupCoordinator::fetch_offsets`] with `require_stable` (KIP-447):
    /// a partition an open transaction holds an offset for answers
    /// UNSTABLE_OFFSET_COMMIT instead of its last committed offset.
    pub fn fetch_stable_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, Vec<FetchedOffset>)>, ErrorCode> {
        let mut fetched = self.fetch_offsets(group_id, topics)?;
        let machine = self.machine.borrow();
        for (topic, partitions) in &mut fetched {
            for p in partitions.iter_mut() {
                if machine.has_pending_txn_offset(group_id, topic, p.partition) {
                    p.offset = -1;
                    p.leader_epoch = -1;
                    p.metadata = String::new();
                    p.error_code = ErrorCode::UNSTABLE_OFFSET_COMMIT;
                }
            }
        }
        Ok(fetched)
    }

    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, ErrorCode> {
        self.host.check_owner(group_id)?;
        Ok(self.machine.borrow().describe(group_id))
    }

    /// Every group of this shard.
    pub fn list(&self) -> Vec<GroupListing> {
        self.machine.borrow().list()
    }

    /// DeleteGroups of one group (only an empty one) and its offsets.
    pub async fn delete_group(&self, group_id: &str) -> ErrorCode {
        let outcome = match self.host.check_owner(group_id) {
            Err(code) => Err(code),
            Ok(_) => self.machine.borrow_mut().delete_group(group_id),
        };
        match outcome {
            Err(code) => code,
            Ok(records) if self.host.persist(&records).await => ErrorCode::NONE,
            Ok(_) => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        }
    }

    /// OffsetDelete: per partition codes, or the group-level error.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<PartitionCodes, ErrorCode> {
        self.host.check_owner(group_id)?;
        let (results, records) = self.machine.borrow_mut().delete_offsets(group_id, topics)?;
        if !self.host.persist(&records).await {
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        Ok(results)
    }

    /// Replays the `__consumer_offsets` partitions this shard holds and
    /// this broker leads that are not loaded yet; those whose high
    /// watermark has to catch up first load in a task of their own.
    pub async fn load_partitions(self: &Rc<Self>) -> Result<usize, LoadError> {
        for (partition, leader_epoch) in self.host.led_behind() {
            self.follow_leadership(partition, true, leader_epoch);
        }
        self.host.load_partitions(&**self).await
    }

    /// A leadership of `__consumer_offsets` partition `partition` (see
    /// [`CoordinatorHost::follow_leadership`]): led elsewhere, its groups
    /// go (their members, answered NOT_COORDINATOR, find the new
    /// coordinator); led here in a new epoch, they are loaded afresh by a
    /// task of this shard, COORDINATOR_LOAD_IN_PROGRESS meanwhile.
    pub fn follow_leadership(self: &Rc<Self>, partition: i32, leads: bool, leader_epoch: i32) {
        let Some(generation) = self
            .host
            .follow_leadership(partition, leads, leader_epoch, &**self)
        else {
            return;
        };
        let groups = Rc::clone(self);
        glommio::spawn_local(async move {
            let loaded = groups
                .host
                .load_generation(partition, generation, &*groups)
                .await;
            log_load(GROUP_METADATA_TOPIC, partition, loaded);
        })
        .detach();
    }

    /// Forgets the groups of a deleted `__consumer_offsets` partition.
    pub fn unload_partition(&self, partition: i32) {
        self.host.unload_partition(partition, self);
    }

    /// Fails every parked request (shutdown): dropping the senders wakes
    /// the waiters with an error answer. Ends the timer tasks.
    pub fn stop(&self) {
        self.waiting.borrow_mut().clear();
        self.host.stop();
    }

    /// The timer task: rebalance and session deadlines.
    pub async fn run_timers(self: Rc<Self>) {
        self.host.run_timers(&*self).await;
    }

    /// The offset expiry task: every `offsets.retention.check.interval.ms`.
    pub async fn run_expiry(self: Rc<Self>) {
        let interval = Duration::from_millis(self.retention_check_interval_ms as u64);
        self.host
            .every(interval, async || self.expire_offsets().await)
            .await;
    }

    async fn expire_offsets(&self) {
        let records = self.machine.borrow_mut().expire_offsets(self.now_ms());
        if !records.is_empty() {
            tracing::info!(records = records.len(), "expiring committed offsets");
            self.host.persist(&records).await;
        }
    }
}

/// How a load run by [`GroupCoordinator::follow_leadership`] (or the
/// transaction coordinator's) ended.
pub(crate) fn log_load(topic: &str, partition: i32, loaded: Result<usize, LoadError>) {
    match loaded {
        Ok(records) => tracing::info!(topic, partition, records, "coordinator partition loaded"),
        Err(LoadError::Superseded { .. }) => {
            tracing::info!(topic, partition, "coordinator load superseded")
        }
        Err(error) => tracing::error!(topic, partition, %error, "coordinator load failed"),
    }
}

/// `code` for every partition of `request`.
fn codes_for(request: &CommitRequest, code: ErrorCode) -> PartitionCodes {
    request
        .topics
        .iter()
        .map(|(topic, parts)| {
            (
                topic.clone(),
                parts.iter().map(|p| (p.partition, code)).collect(),
            )
        })
        .collect()
}

impl<S: ShardStorage> Hosted for GroupCoordinator<S> {
    fn replay(
        &self,
        _partition: i32,
        now_ms: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        self.machine
            .borrow_mut()
            .replay(now_ms, key, value)
            .map_err(|error| error.to_string())
    }

    fn replay_transactional(
        &self,
        _partition: i32,
        now_ms: i64,
        producer_id: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), String> {
        self.machine
            .borrow_mut()
            .replay_txn(now_ms, producer_id, key, value)
            .map_err(|error| error.to_string())
    }

    fn replay_marker(&self, partition: i32, producer_id: i64, commit: bool) {
        self.machine
            .borrow_mut()
            .complete_txn(partition, producer_id, commit);
    }

    fn unload(&self, partition: i32) {
        // Members parked in JoinGroup / SyncGroup hear NOT_COORDINATOR now;
        // nothing is written (the partition is not this broker's to write).
        let fx = self.machine.borrow_mut().unload_partition(partition);
        for (token, reply) in fx.replies {
            if let Some(tx) = self.waiting.borrow_mut().remove(&token) {
                let _ = tx.send(reply);
            }
        }
    }

    fn next_deadline_ms(&self) -> Option<i64> {
        self.machine.borrow().next_deadline_ms()
    }

    async fn fire_due(&self, now_ms: i64) {
        let fx = self.machine.borrow_mut().tick(now_ms);
        if !fx.is_empty() {
            self.apply(fx).await;
        }
    }
}
