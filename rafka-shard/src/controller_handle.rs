//! [`ControllerHandle`]: the one way any shard reaches the controller.
//!
//! Today the controller is a state machine on shard 0; later it moves
//! behind a Raft quorum. Callers (CreateTopics, DeleteTopics, Metadata's
//! auto-creation, FindCoordinator's internal topics, InitProducerId) see
//! only this handle, so that move does not touch them.
//!
//! A call runs as a detached task of the calling shard rather than inside
//! the caller's future. On shard 0 the router runs the work in place, so a
//! caller dropped mid-call (its connection closed, its timeout fired) would
//! otherwise cancel a controller operation between its metadata commit and
//! its publish, leaving shards with a stale image. Detached, the operation
//! always finishes; only the answer is dropped.
//!
//! Lives on: every shard (a handle per call); the work runs on shard 0.

use std::rc::Rc;
use std::time::Duration;

use rafka_core::acl::{AclBinding, AclBindingFilter};
use rafka_core::metadata::quota_control::{QuotaAlterationEntry, WireEntity};
use rafka_core::metadata::{ElectionType, Leadership, NewTopic, ScramDeletion, ScramUpsertion};
use rafka_core::quota::MutationQuota;
use rafka_core::sasl::ScramCredential;
use rafka_proto::error::ErrorCode;
use uuid::Uuid;

use crate::controller::{
    Charged, ConfigChange, ConfigTarget, ControllerShard, CreatedTopic, GrowTopic, TopicFailure,
    TopicRef,
};
use crate::coordinator::InternalTopic;
use crate::quorum::partitions::{ElectionAnswer, ElectionOutcome, ReassignmentRequest};
use crate::runtime::{within, Router};
use crate::shard::Shard;
use crate::storage::{BrokerStorage, ShardStorage};

/// The shard that holds the controller.
pub const CONTROLLER_SHARD: usize = 0;

/// Why a controller call gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControllerCallError {
    /// Shard 0 is stopping (or, a bug, has no controller).
    #[error("the controller is not available")]
    Unavailable,
    /// The deadline passed; the operation still runs to its end.
    #[error("the controller did not answer within {timeout_ms} ms")]
    TimedOut { timeout_ms: u64 },
}

impl ControllerCallError {
    /// What a client is told: NOT_CONTROLLER makes admin clients refresh
    /// metadata and retry; a timeout is REQUEST_TIMED_OUT.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ControllerCallError::Unavailable => ErrorCode::NOT_CONTROLLER,
            ControllerCallError::TimedOut { .. } => ErrorCode::REQUEST_TIMED_OUT,
        }
    }

    /// The failure of a topic operation the controller did not answer.
    pub fn topic_failure(&self) -> TopicFailure {
        TopicFailure::new(self.error_code(), self.to_string())
    }
}

/// A request's `timeout_ms` as the deadline of a controller call.
///
/// Zero or negative means "do not wait" in Kafka's old ZooKeeper mode,
/// which answered before the topic existed. Here the controller answers
/// only once every shard serves the change, and timing out at once would
/// tell the client "failed" about an operation that still commits, so such
/// requests wait for the outcome instead.
pub fn request_timeout(timeout_ms: i32) -> Option<Duration> {
    u64::try_from(timeout_ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// One outcome per topic of a CreateTopics, in request order.
pub type CreateOutcomes = Vec<Result<CreatedTopic, TopicFailure>>;
/// One outcome per topic of a DeleteTopics (the name and id deleted).
pub type DeleteOutcomes = Vec<Result<(String, Uuid), TopicFailure>>;

/// A partition leader's AlterPartition: the ISR it wants for `partition`
/// of `topic`, as of the leader and partition epochs it knows. The
/// calling node is the leader; its broker id and epoch go with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

/// How a shard reaches the controller.
pub struct ControllerHandle<S: ShardStorage = BrokerStorage> {
    shard: Rc<Shard<S>>,
}

impl<S: ShardStorage> ControllerHandle<S> {
    /// The handle of the shard `shard` (any shard).
    pub fn new(shard: Rc<Shard<S>>) -> Self {
        ControllerHandle { shard }
    }

    /// CreateTopics (or, with `validate_only`, only its checks).
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
        timeout: Option<Duration>,
    ) -> Result<CreateOutcomes, ControllerCallError> {
        self.call(timeout, async move |controller, publisher| {
            controller
                .create_topics(publisher, topics, validate_only)
                .await
        })
        .await
    }

    /// CreateTopics with the partitions created counted against `quota`
    /// (KIP-599), and the throttle time it asks for.
    pub async fn create_topics_charged(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
        timeout: Option<Duration>,
        quota: MutationQuota,
    ) -> Result<Charged<CreateOutcomes>, ControllerCallError> {
        self.call(timeout, async move |controller, publisher| {
            controller
                .create_topics_charged(publisher, topics, validate_only, Some(quota))
                .await
        })
        .await
    }

    /// CreatePartitions: `(topic, new total)` each (or, with
    /// `validate_only`, only the checks).
    /// The partitions added count against `quota` (KIP-599).
    pub async fn create_partitions(
        &self,
        topics: Vec<GrowTopic>,
        validate_only: bool,
        timeout: Option<Duration>,
        quota: Option<MutationQuota>,
    ) -> Result<Charged<Vec<Result<(), TopicFailure>>>, ControllerCallError> {
        self.call(timeout, async move |controller, publisher| {
            controller
                .create_partitions(publisher, topics, validate_only, quota)
                .await
        })
        .await
    }

    /// AlterConfigs / IncrementalAlterConfigs: one outcome per resource.
    pub async fn alter_configs(
        &self,
        changes: Vec<(ConfigTarget, ConfigChange)>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), TopicFailure>>, ControllerCallError> {
        self.call(None, async move |controller, publisher| {
            controller
                .alter_configs(publisher, changes, validate_only)
                .await
        })
        .await
    }

    /// CreateAcls: the valid ACLs of one request, all or none.
    pub async fn create_acls(
        &self,
        acls: Vec<AclBinding>,
    ) -> Result<Result<(), TopicFailure>, ControllerCallError> {
        self.call(None, async move |controller, publisher| {
            controller.create_acls(publisher, acls).await
        })
        .await
    }

    /// DeleteAcls: per filter, the ACLs it deleted.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclBindingFilter>,
    ) -> Result<Result<Vec<Vec<AclBinding>>, TopicFailure>, ControllerCallError> {
        self.call(None, async move |controller, publisher| {
            controller.delete_acls(publisher, filters).await
        })
        .await
    }

    /// AlterUserScramCredentials: an outcome per user (see
    /// `rafka_core::metadata::scram_control` for the order).
    pub async fn alter_scram_credentials(
        &self,
        deletions: Vec<ScramDeletion>,
        upsertions: Vec<ScramUpsertion>,
    ) -> Result<Vec<(String, Result<(), TopicFailure>)>, ControllerCallError> {
        self.call(None, async move |controller, publisher| {
            controller
                .alter_scram_credentials(publisher, deletions, upsertions)
                .await
        })
        .await
    }

    /// DescribeQuorum's view of the metadata quorum.
    pub async fn quorum_view(&self) -> Result<crate::quorum::QuorumView, ControllerCallError> {
        let node_id = self.shard.config.node_id;
        self.call(None, async move |controller, _publisher| {
            controller.quorum_view(node_id).await
        })
        .await
    }

    /// AlterClientQuotas: an outcome per distinct entity, in first-seen
    /// order (see `rafka_core::metadata::quota_control`).
    pub async fn alter_client_quotas(
        &self,
        entries: Vec<QuotaAlterationEntry>,
        validate_only: bool,
    ) -> Result<Vec<(WireEntity, Result<(), TopicFailure>)>, ControllerCallError> {
        self.call(None, async move |controller, publisher| {
            controller
                .alter_client_quotas(publisher, entries, validate_only)
                .await
        })
        .await
    }

    /// `--add-scram`: seeds the credentials of users that have none for
    /// that mechanism; how many were added.
    pub async fn seed_scram_credentials(
        &self,
        credentials: Vec<(String, ScramCredential)>,
    ) -> Result<Result<usize, TopicFailure>, ControllerCallError> {
        self.call(None, async move |controller, publisher| {
            controller
                .seed_scram_credentials(publisher, credentials)
                .await
        })
        .await
    }

    /// DeleteTopics; answers once every shard removed the data.
    /// The deleted partitions count against `quota` (KIP-599).
    pub async fn delete_topics(
        &self,
        topics: Vec<TopicRef>,
        timeout: Option<Duration>,
        quota: Option<MutationQuota>,
    ) -> Result<Charged<DeleteOutcomes>, ControllerCallError> {
        self.call(timeout, async move |controller, publisher| {
            controller.delete_topics(publisher, topics, quota).await
        })
        .await
    }

    /// Creates `topic` unless it exists (the first FindCoordinator of its
    /// kind); the error says why it could not.
    pub async fn ensure_internal_topic(
        &self,
        topic: InternalTopic,
        timeout: Option<Duration>,
    ) -> Result<Result<(), String>, ControllerCallError> {
        if self.shard.image().topic(topic.name).is_some() {
            return Ok(Ok(()));
        }
        self.call(timeout, async move |controller, publisher| {
            controller
                .ensure_internal_topic(publisher, topic)
                .await
                .map_err(|error| error.to_string())
        })
        .await
    }

    /// A fresh producer id (idempotent producers), from a durable block.
    pub async fn allocate_producer_id(
        &self,
    ) -> Result<Result<i64, ErrorCode>, ControllerCallError> {
        self.call(None, async |controller, _publisher| {
            controller.allocate_producer_id().await.map_err(|error| {
                tracing::error!(%error, "allocating a producer id");
                error.error_code()
            })
        })
        .await
    }

    /// AlterPartition for a partition this node leads: the ISR `request`
    /// asks for, committed by the active controller (this node's, or
    /// another node's over the controller listener). The partition's
    /// leadership after it, `partition_epoch` included; the answering
    /// node's image may apply it a moment later. Errors are Kafka's
    /// AlterPartition answers (see `rafka_core::metadata::IsrError`);
    /// NOT_CONTROLLER and REQUEST_TIMED_OUT are worth a retry.
    pub async fn alter_partition(&self, request: IsrChange) -> Result<Leadership, ErrorCode> {
        let node_id = self.shard.config.node_id;
        self.call(None, async move |controller, _publisher| {
            controller.alter_partition(node_id, request).await
        })
        .await
        .unwrap_or_else(|error| Err(error.error_code()))
    }

    /// ElectLeaders, decided and committed by the active controller:
    /// `Ok(None)` on a node that is no voter (see
    /// [`ControllerShard::elect_leaders`]).
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
        timeout: Option<Duration>,
    ) -> Result<Option<Result<Vec<ElectionAnswer>, ErrorCode>>, ControllerCallError> {
        self.call(timeout, async move |controller, _publisher| {
            controller.elect_leaders(election, partitions).await
        })
        .await
    }

    /// AlterPartitionReassignments, decided and committed by the active
    /// controller: `Ok(None)` on a node that is no voter.
    pub async fn alter_reassignments(
        &self,
        requests: Vec<ReassignmentRequest>,
        allow_replication_factor_change: bool,
        timeout: Option<Duration>,
    ) -> Result<Option<Result<Vec<ElectionOutcome>, ErrorCode>>, ControllerCallError> {
        self.call(timeout, async move |controller, _publisher| {
            controller
                .alter_reassignments(requests, allow_replication_factor_change)
                .await
        })
        .await
    }

    /// Runs `work` against the controller on shard 0 in a detached task
    /// (see the module doc) and waits for its answer, at most `timeout` if
    /// given.
    async fn call<W, R>(&self, timeout: Option<Duration>, work: W) -> Result<R, ControllerCallError>
    where
        W: AsyncFnOnce(&ControllerShard<S>, &Router<Shard<S>>) -> R + Send + 'static,
        R: Send + 'static,
    {
        let caller = Rc::clone(&self.shard);
        let task = glommio::spawn_local(async move {
            caller
                .router
                .invoke_on(CONTROLLER_SHARD, move |shard: Rc<Shard<S>>| {
                    run_on_controller(shard, work)
                })
                .await
        })
        .detach();
        let joined = match timeout {
            None => task.await,
            Some(timeout) => within(timeout, task)
                .await
                .ok_or(ControllerCallError::TimedOut {
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                })?,
        };
        match joined {
            Some(Ok(Some(answer))) => Ok(answer),
            // The task was dropped (executor stopping), the route failed,
            // or shard 0 has no controller.
            Some(Ok(None)) | Some(Err(_)) | None => Err(ControllerCallError::Unavailable),
        }
    }
}

async fn run_on_controller<S, W, R>(shard: Rc<Shard<S>>, work: W) -> Option<R>
where
    S: ShardStorage,
    W: AsyncFnOnce(&ControllerShard<S>, &Router<Shard<S>>) -> R,
{
    let controller = shard.controller()?;
    Some(work(controller, &shard.router).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeouts() {
        assert_eq!(request_timeout(30_000), Some(Duration::from_secs(30)));
        assert_eq!(request_timeout(1), Some(Duration::from_millis(1)));
        assert_eq!(request_timeout(0), None);
        assert_eq!(request_timeout(-1), None);
        assert_eq!(request_timeout(i32::MIN), None);
    }

    #[test]
    fn unanswered_operations_are_retriable() {
        let unavailable = ControllerCallError::Unavailable.topic_failure();
        assert_eq!(unavailable.code.code(), ErrorCode::NOT_CONTROLLER.code());
        let timed_out = ControllerCallError::TimedOut { timeout_ms: 5 }.topic_failure();
        assert_eq!(timed_out.code.code(), ErrorCode::REQUEST_TIMED_OUT.code());
        assert_eq!(
            timed_out.message,
            "the controller did not answer within 5 ms"
        );
    }
}
