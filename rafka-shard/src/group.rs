//! [`GroupService`]: the group coordinator of one shard, for the groups of
//! the `__consumer_offsets` partitions the shard owns.
//!
//! Lives on: every shard, one each, inside [`Shard`]. A handler on any
//! shard finds the owner with [`Shard::group_coordinator_shard`] and runs
//! the call there through the router.
//!
//! The state is rafka-core's sans-IO [`Coordinator`] in a `RefCell` (one
//! thread, no locks). A call feeds the machine and carries out its
//! [`Effects`]: records are appended to the group's `__consumer_offsets`
//! partition and awaited durable (as an acks=all produce) before the
//! replies go out. A JoinGroup or SyncGroup that has to wait parks on a
//! oneshot channel keyed by its reply token. One timer task per shard
//! sleeps until the machine's next deadline (re-armed whenever a call may
//! have moved it) and calls `tick`; another expires offsets every
//! `offsets.retention.check.interval.ms`.
//!
//! `__consumer_offsets` is created by the controller on the first
//! FindCoordinator for a group (as Kafka does); shards mark its new, empty
//! partitions loaded when they open them. At startup every shard replays
//! its partitions of it ([`GroupService::load_partitions`]) before the
//! broker is ready. Until a partition is loaded its groups answer
//! COORDINATOR_LOAD_IN_PROGRESS.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::{Rc, Weak};
use std::time::Duration;

use event_listener::Event;
use futures_channel::oneshot;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use rafka_core::config::BrokerConfig;
use rafka_core::group::{Coordinator, Effects, GroupConfig, OffsetsRecord, Reply, ReplyToken};
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{BatchBuilder, Batches, Compression, RecordLimits};

use crate::group_convert as convert;
use crate::partition::Partition;
use crate::shard::Shard;

pub use rafka_core::group::{partition_for_group, GROUP_METADATA_TOPIC};

/// How long a group write may wait for its flush.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads while replaying `__consumer_offsets` are this large.
const LOAD_READ_BYTES: u32 = 1 << 20;
/// The timer task re-checks at least this often.
const TIMER_IDLE_MS: i64 = 60_000;

/// Who is asking: the API version decides version-specific rules
/// (e.g. JoinGroup v4+ gets MEMBER_ID_REQUIRED on an empty member id).
#[derive(Debug, Clone)]
pub struct GroupCaller {
    pub api_version: i16,
    pub client_id: String,
    pub client_host: String,
}

/// Why replaying a `__consumer_offsets` partition failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupLoadError {
    #[error("reading __consumer_offsets-{partition}: {source}")]
    Read {
        partition: i32,
        #[source]
        source: crate::partition::PartitionError,
    },
    #[error("__consumer_offsets-{partition} holds an invalid batch: {source}")]
    Batch {
        partition: i32,
        #[source]
        source: rafka_proto::record::BatchError,
    },
    #[error("__consumer_offsets-{partition} holds invalid records: {source}")]
    Records {
        partition: i32,
        #[source]
        source: rafka_proto::record::RecordError,
    },
}

/// The group coordinator of one shard.
pub struct GroupService {
    shard: Weak<Shard>,
    machine: RefCell<Coordinator>,
    waiting: RefCell<HashMap<ReplyToken, oneshot::Sender<Reply>>>,
    next_token: Cell<ReplyToken>,
    loaded: RefCell<BTreeSet<i32>>,
    timers_changed: Event,
    retention_check_interval_ms: i64,
}

impl GroupService {
    pub fn new(shard: Weak<Shard>, config: &BrokerConfig) -> GroupService {
        GroupService {
            shard,
            machine: RefCell::new(Coordinator::new(GroupConfig::from_broker(config))),
            waiting: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            loaded: RefCell::new(BTreeSet::new()),
            timers_changed: Event::new(),
            retention_check_interval_ms: config.offsets_retention_check_interval_ms.max(1),
        }
    }

    fn shard(&self) -> Option<Rc<Shard>> {
        self.shard.upgrade()
    }

    fn now_ms(&self) -> i64 {
        self.shard().map_or(0, |s| s.clock().now_ms())
    }

    /// The coordinator's state, for inspection (tests, describe tools).
    pub fn with_machine<T>(&self, f: impl FnOnce(&Coordinator) -> T) -> T {
        f(&self.machine.borrow())
    }

    /// NOT_COORDINATOR unless this shard owns the group's partition,
    /// COORDINATOR_LOAD_IN_PROGRESS until that partition is replayed.
    fn check_owner(&self, group_id: &str) -> Result<(), ErrorCode> {
        let shard = self.shard().ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)?;
        let partition = self.machine.borrow().partition_of(group_id);
        match shard.owner_of(GROUP_METADATA_TOPIC, partition) {
            None => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            Some(owner) if owner != shard.id() => Err(ErrorCode::NOT_COORDINATOR),
            Some(_) if !self.loaded.borrow().contains(&partition) => {
                Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)
            }
            Some(_) => Ok(()),
        }
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
        self.timers_changed.notify(usize::MAX);
        let written = self.persist(&fx.records).await;
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

    /// Appends `records` to their partitions, one batch per partition,
    /// durably. Returns whether all of them were written.
    async fn persist(&self, records: &[OffsetsRecord]) -> bool {
        if records.is_empty() {
            return true;
        }
        let Some(shard) = self.shard() else {
            return false;
        };
        let mut by_partition: BTreeMap<i32, Vec<&OffsetsRecord>> = BTreeMap::new();
        for record in records {
            by_partition
                .entry(record.partition)
                .or_default()
                .push(record);
        }
        let now_ms = shard.clock().now_ms();
        let mut ok = true;
        for (partition, records) in by_partition {
            let mut builder = BatchBuilder::new(Compression::None);
            for r in records {
                builder.push_record(now_ms, Some(&r.key), r.value.as_deref(), &[]);
            }
            let written = match builder.build() {
                Ok(batch) => shard
                    .produce(GROUP_METADATA_TOPIC, partition, &batch, -1, WRITE_TIMEOUT)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = written {
                tracing::error!(partition, %error, "writing __consumer_offsets");
                ok = false;
            }
        }
        ok
    }

    async fn wait_reply(rx: oneshot::Receiver<Reply>) -> Option<Reply> {
        rx.await.ok()
    }

    pub async fn join_group(
        &self,
        caller: GroupCaller,
        req: JoinGroupRequest,
    ) -> JoinGroupResponse {
        if let Err(code) = self.check_owner(&req.group_id) {
            return convert::join_error(code, &req.member_id);
        }
        let request = convert::join_request(&caller, req);
        let member_id = request.member_id.clone();
        let (token, rx) = self.park();
        let fx = self
            .machine
            .borrow_mut()
            .join(self.now_ms(), token, request);
        self.apply(fx).await;
        match Self::wait_reply(rx).await {
            Some(Reply::Join(result)) => convert::join_response(result),
            _ => convert::join_error(ErrorCode::COORDINATOR_NOT_AVAILABLE, &member_id),
        }
    }

    pub async fn sync_group(
        &self,
        _caller: GroupCaller,
        req: SyncGroupRequest,
    ) -> SyncGroupResponse {
        if let Err(code) = self.check_owner(&req.group_id) {
            return convert::sync_error(code);
        }
        let (token, rx) = self.park();
        let request = convert::sync_request(req);
        let fx = self
            .machine
            .borrow_mut()
            .sync(self.now_ms(), token, request);
        self.apply(fx).await;
        match Self::wait_reply(rx).await {
            Some(Reply::Sync(result)) => convert::sync_response(result),
            _ => convert::sync_error(ErrorCode::COORDINATOR_NOT_AVAILABLE),
        }
    }

    pub async fn heartbeat(
        &self,
        _caller: GroupCaller,
        req: HeartbeatRequest,
    ) -> HeartbeatResponse {
        let code = match self.check_owner(&req.group_id) {
            Err(code) => code,
            Ok(()) => self.machine.borrow_mut().heartbeat(
                self.now_ms(),
                &req.group_id,
                &req.member_id,
                req.group_instance_id.as_deref(),
                req.generation_id,
            ),
        };
        self.timers_changed.notify(usize::MAX);
        let mut response = HeartbeatResponse::default();
        response.error_code = code.code();
        response
    }

    pub async fn leave_group(
        &self,
        _caller: GroupCaller,
        req: LeaveGroupRequest,
    ) -> LeaveGroupResponse {
        if let Err(code) = self.check_owner(&req.group_id) {
            let mut response = LeaveGroupResponse::default();
            response.error_code = code.code();
            return response;
        }
        let group_id = req.group_id.to_string();
        let leaving = convert::leaving_members(req);
        let (result, fx) = self
            .machine
            .borrow_mut()
            .leave(self.now_ms(), &group_id, leaving);
        self.apply(fx).await;
        convert::leave_response(result)
    }

    /// Durable (appended to __consumer_offsets and fsynced, like acks=all)
    /// before it returns.
    pub async fn offset_commit(
        &self,
        _caller: GroupCaller,
        req: OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        let topic_ids = convert::commit_topic_ids(&req);
        if let Err(code) = self.check_owner(&req.group_id) {
            return convert::commit_error(&req, code);
        }
        let request = convert::commit_request(req);
        let plan = self
            .machine
            .borrow_mut()
            .commit_offsets(self.now_ms(), &request);
        self.timers_changed.notify(usize::MAX);
        let written = self.persist(&plan.records).await;
        let results = plan.results.clone();
        if written {
            self.machine.borrow_mut().complete_commit(plan);
        }
        convert::commit_response(results, &topic_ids, written)
    }

    /// v8+ per-group form; the handler converts v0-7 requests/responses to/from it.
    /// `topics: None` = all committed offsets of the group.
    pub async fn offset_fetch(
        &self,
        _caller: GroupCaller,
        req: OffsetFetchRequestGroup,
        _require_stable: bool,
    ) -> OffsetFetchResponseGroup {
        if let Err(code) = self.check_owner(&req.group_id) {
            return convert::fetch_error(req.group_id, code);
        }
        let (topics, ids) = convert::fetch_topics(&req);
        let fetched = self
            .machine
            .borrow()
            .fetch_offsets(&req.group_id, topics.as_deref());
        convert::fetch_response(req.group_id, fetched, &ids)
    }

    pub async fn describe_group(&self, caller: GroupCaller, group_id: GroupId) -> DescribedGroup {
        if let Err(code) = self.check_owner(&group_id) {
            return convert::describe_error(group_id, code);
        }
        let description = self.machine.borrow().describe(&group_id);
        convert::describe_response(&caller, group_id, description)
    }

    /// The groups of this shard, filtered by states (v4+) and types (v5+); empty filter = all.
    pub async fn list_groups(
        &self,
        _caller: GroupCaller,
        req: ListGroupsRequest,
    ) -> Vec<ListedGroup> {
        let listed = self.machine.borrow().list();
        convert::listed_groups(listed, &req)
    }

    pub async fn delete_group(
        &self,
        _caller: GroupCaller,
        group_id: GroupId,
    ) -> DeletableGroupResult {
        let outcome = match self.check_owner(&group_id) {
            Err(code) => Err(code),
            Ok(()) => self.machine.borrow_mut().delete_group(&group_id),
        };
        let code = match outcome {
            Err(code) => code,
            Ok(records) if self.persist(&records).await => ErrorCode::NONE,
            Ok(_) => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        };
        let mut result = DeletableGroupResult::default();
        result.group_id = group_id;
        result.error_code = code.code();
        result
    }

    pub async fn offset_delete(
        &self,
        _caller: GroupCaller,
        req: OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        if let Err(code) = self.check_owner(&req.group_id) {
            return convert::offset_delete_error(code);
        }
        let topics = convert::offset_delete_topics(&req);
        let outcome = self
            .machine
            .borrow_mut()
            .delete_offsets(&req.group_id, &topics);
        match outcome {
            Err(code) => convert::offset_delete_error(code),
            Ok((results, records)) => {
                let written = self.persist(&records).await;
                convert::offset_delete_response(results, written)
            }
        }
    }

    /// Forgets the groups of `partition` when its `__consumer_offsets`
    /// partition is deleted (DeleteTopics): a re-created topic starts
    /// empty, and so must its groups.
    pub fn unload_partition(&self, partition: i32) {
        self.machine.borrow_mut().unload_partition(partition);
        self.loaded.borrow_mut().remove(&partition);
        self.timers_changed.notify(usize::MAX);
    }

    /// Replays every `__consumer_offsets` partition this shard owns and
    /// has not loaded yet. Returns how many records it applied.
    pub async fn load_partitions(&self) -> Result<usize, GroupLoadError> {
        let Some(shard) = self.shard() else {
            return Ok(0);
        };
        let mut mine: Vec<Rc<Partition>> = shard
            .local_partitions()
            .into_iter()
            .filter(|p| &*p.topic == GROUP_METADATA_TOPIC)
            .filter(|p| !self.loaded.borrow().contains(&p.index))
            .collect();
        mine.sort_by_key(|p| p.index);
        let mut applied = 0;
        for partition in mine {
            applied += self.load_partition(&partition).await?;
            self.loaded.borrow_mut().insert(partition.index);
        }
        self.timers_changed.notify(usize::MAX);
        Ok(applied)
    }

    async fn load_partition(&self, partition: &Partition) -> Result<usize, GroupLoadError> {
        let index = partition.index;
        let mut offset = partition.log_start_offset();
        let mut applied = 0;
        while offset < partition.high_watermark() {
            let fetched = partition
                .fetch(offset, LOAD_READ_BYTES)
                .await
                .map_err(|source| GroupLoadError::Read {
                    partition: index,
                    source,
                })?;
            if fetched.records.is_empty() {
                break;
            }
            for batch in Batches::new(fetched.records) {
                let batch = batch.map_err(|source| GroupLoadError::Batch {
                    partition: index,
                    source,
                })?;
                offset = batch.header().next_offset();
                if batch.header().is_control() {
                    continue;
                }
                applied += self.replay_batch(index, &batch)?;
            }
        }
        Ok(applied)
    }

    fn replay_batch(
        &self,
        index: i32,
        batch: &rafka_proto::record::RecordBatch,
    ) -> Result<usize, GroupLoadError> {
        let records =
            batch
                .records(RecordLimits::default())
                .map_err(|source| GroupLoadError::Records {
                    partition: index,
                    source,
                })?;
        let now_ms = self.now_ms();
        let mut machine = self.machine.borrow_mut();
        let mut applied = 0;
        for record in records {
            let record = record.map_err(|source| GroupLoadError::Records {
                partition: index,
                source,
            })?;
            let Some(key) = record.key else { continue };
            match machine.replay(now_ms, &key, record.value.as_deref()) {
                Ok(()) => applied += 1,
                // Kafka skips what it cannot read too: one bad record must
                // not keep every other group of the partition offline.
                Err(error) => {
                    tracing::warn!(partition = index, %error, "skipping __consumer_offsets record")
                }
            }
        }
        Ok(applied)
    }

    /// Fails every parked request (shutdown): dropping the senders wakes
    /// the waiters with an error answer.
    pub fn stop(&self) {
        self.waiting.borrow_mut().clear();
        self.timers_changed.notify(usize::MAX);
    }

    fn next_deadline_ms(&self) -> Option<i64> {
        self.machine.borrow().next_deadline_ms()
    }

    async fn fire_due(&self) {
        let fx = self.machine.borrow_mut().tick(self.now_ms());
        if !fx.is_empty() {
            self.apply(fx).await;
        }
    }

    async fn expire_offsets(&self) {
        let records = self.machine.borrow_mut().expire_offsets(self.now_ms());
        if !records.is_empty() {
            tracing::info!(records = records.len(), "expiring committed offsets");
            self.persist(&records).await;
        }
    }
}

/// The timer task of `shard`'s coordinator: sleeps until the earliest
/// deadline, or until a call may have armed an earlier one, then ticks.
pub async fn run_timers(shard: Rc<Shard>) {
    while !shard.is_stopping() {
        let groups = shard.groups();
        let listener = groups.timers_changed.listen();
        let now_ms = groups.now_ms();
        let wait_ms = groups
            .next_deadline_ms()
            .map_or(TIMER_IDLE_MS, |d| (d - now_ms).clamp(0, TIMER_IDLE_MS));
        if wait_ms > 0 {
            let sleep = glommio::timer::sleep(Duration::from_millis(wait_ms as u64));
            futures_util::pin_mut!(sleep);
            futures_util::future::select(listener, sleep).await;
        }
        if shard.is_stopping() {
            break;
        }
        groups.fire_due().await;
    }
}

/// The offset expiry task: every `offsets.retention.check.interval.ms`.
pub async fn run_expiry(shard: Rc<Shard>) {
    let interval = Duration::from_millis(shard.groups().retention_check_interval_ms as u64);
    while !shard.is_stopping() {
        let stop = shard.wait_stop();
        let sleep = glommio::timer::sleep(interval);
        futures_util::pin_mut!(stop);
        futures_util::pin_mut!(sleep);
        if let futures_util::future::Either::Left(_) =
            futures_util::future::select(stop, sleep).await
        {
            break;
        }
        shard.groups().expire_offsets().await;
    }
}
