//! The controller on shard 0: the only writer of the metadata log, and the
//! allocator of producer ids.
//!
//! Lives on: shard 0 only. Every shard (shard 0 too) reaches it through a
//! [`crate::controller_handle::ControllerHandle`], so that it can later
//! move behind a Raft quorum without touching its callers.
//!
//! Operations run one at a time (a shard-local async lock): each validates
//! against the current image, commits its records durably, then has the
//! [`Publisher`] broadcast the new image and deltas to every shard and
//! waits until all applied them. So when CreateTopics answers, every shard
//! already serves the topic, and when DeleteTopics answers its data is
//! gone. The controller knows nothing of shards: the publisher is the
//! shard layer's ([`crate::apply`]).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::RwLock;
use rafka_core::acl::{AclBinding, AclBindingFilter};
use rafka_core::config::BrokerConfig;
use rafka_core::metadata::acl_control;
use rafka_core::metadata::log::SNAPSHOT_INTERVAL_RECORDS_DEFAULT;
use rafka_core::metadata::quota_control::{
    self, QuotaAlteration, QuotaAlterationEntry, WireEntity,
};
use rafka_core::metadata::scram_control::{self, ScramAlteration};
use rafka_core::metadata::ElectionType;
use rafka_core::metadata::{
    new_topic_id, AlterPartition, Committed, ConfigOp, Controller, IsrMember, Leadership,
    MetadataImage, MetadataRecord, MetadataStore, NewTopic, ScramAlterError, ScramDeletion,
    ScramUpsertion,
};
use rafka_core::producer::{ProducerIdAllocator, PRODUCER_ID_BLOCK_IDS_DEFAULT};
use rafka_core::quota::{MutationCharge, MutationQuota, QuotaKey, QuotaSensors};
use rafka_core::sasl::ScramCredential;
use rafka_proto::error::ErrorCode;
use uuid::Uuid;

use crate::controller_handle::IsrChange;
use crate::coordinator::InternalTopic;
use crate::quorum::broker_rpc::ControllerLink;
use crate::quorum::partitions;
use crate::quorum::{ProposalError, Quorum, QuorumError, QuorumSettings};
use crate::storage::{BrokerStorage, ShardStorage};

/// What an AlterConfigs entry changes: a topic, or a broker (a node id, or
/// `""` for the cluster-wide default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigTarget {
    Topic(String),
    Broker(String),
}

/// How: IncrementalAlterConfigs' operations, or legacy AlterConfigs'
/// complete replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Incremental(Vec<ConfigOp>),
    Replace(BTreeMap<String, String>),
}

/// Kafka's text for THROTTLING_QUOTA_EXCEEDED (`Errors.message()`), the
/// message of a topic the controller mutation quota refused.
pub const THROTTLING_QUOTA_EXCEEDED_MESSAGE: &str = "The throttling quota has been exceeded.";

/// A topic mutation's outcomes and the throttle time its controller
/// mutation quota asks of the client (0 without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charged<T> {
    pub outcomes: T,
    pub throttle_time_ms: i32,
}

/// `segment.bytes` of an internal topic: Kafka's
/// `offsets.topic.segment.bytes` default.
const INTERNAL_SEGMENT_BYTES: i32 = 104_857_600;

/// An internal topic as it is created: compacted, 100 MiB segments (as
/// Kafka). In a cluster (`cluster`) its configured replication factor,
/// capped at the unfenced brokers of `image` and at least 1 (Kafka refuses
/// instead, leaving coordinators unavailable until enough brokers live),
/// and its `min.insync.replicas` (`__transaction_state`), at most that
/// factor; on a single node one replica and nothing more, as before
/// clusters.
pub fn internal_topic_spec(cluster: bool, image: &MetadataImage, topic: InternalTopic) -> NewTopic {
    let mut configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        (
            "segment.bytes".to_string(),
            INTERNAL_SEGMENT_BYTES.to_string(),
        ),
    ]);
    let replication_factor = match cluster {
        true => {
            let unfenced = image.brokers().filter(|b| !b.fenced).count();
            let unfenced = i16::try_from(unfenced).unwrap_or(i16::MAX);
            topic.replication_factor.min(unfenced).max(1)
        }
        false => 1,
    };
    if let Some(min) = topic.min_insync_replicas.filter(|_| cluster) {
        let min = min.min(i32::from(replication_factor));
        configs.insert("min.insync.replicas".to_string(), min.to_string());
    }
    NewTopic {
        name: topic.name.to_string(),
        partitions: topic.partitions,
        replication_factor,
        configs,
        assignments: Vec::new(),
    }
}

/// One topic of a CreatePartitions: its new partition count and, when
/// given, each new partition's replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowTopic {
    pub name: String,
    pub total: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// A failed controller operation as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFailure {
    pub code: ErrorCode,
    pub message: String,
}

impl TopicFailure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        TopicFailure {
            code,
            message: message.into(),
        }
    }
}

/// Why the controller could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum ControllerShardError {
    #[error("metadata log: {0}")]
    Metadata(#[from] rafka_core::metadata::MetadataLogError),
    #[error("metadata commit: {0}")]
    Commit(#[from] rafka_core::metadata::CommitError),
    #[error("producer ids: {0}")]
    Producer(#[from] rafka_core::producer::ProducerError),
    #[error("metadata quorum: {0}")]
    Quorum(#[from] QuorumError),
    #[error("creating {topic}: {message}")]
    InternalTopic {
        topic: &'static str,
        message: String,
    },
}

/// How a committed change reaches every shard: the shard layer broadcasts
/// it and returns once every shard applied it.
#[allow(async_fn_in_trait)]
pub trait Publisher {
    /// Err when some shard could not apply all of it (the change is
    /// committed either way).
    async fn publish(&self, committed: Committed) -> Result<(), PublishError>;
}

/// What some shards could not apply, one message per shard.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .failures.join("; "))]
pub struct PublishError {
    pub failures: Vec<String>,
}

/// A created (or, with validate_only, validated) topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub partitions: i32,
}

/// Which topic a DeleteTopics entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

/// Where the controller's records go: the node's own metadata log (a
/// single node, no quorum configured: a quorum of one whose commit is the
/// local fsync), or the replicated quorum.
enum Backend<S: ShardStorage> {
    Local(MetadataStore<S>),
    Quorum(Rc<Quorum>),
}

impl<S: ShardStorage> Backend<S> {
    /// The image as of every committed (quorum: applied) record.
    fn image(&self) -> Arc<MetadataImage> {
        match self {
            Backend::Local(store) => Arc::clone(store.image()),
            Backend::Quorum(quorum) => quorum.image(),
        }
    }
}

struct Inner<S: ShardStorage> {
    store: Backend<S>,
    controller: Controller,
    producer_ids: ProducerIdAllocator,
    metadata_dir: PathBuf,
    /// The `controller_mutation_rate` sensors (KIP-599), one per
    /// (user, client-id). They live here, with the controller on shard 0,
    /// because every CreateTopics, CreatePartitions and DeleteTopics of
    /// every shard reaches it: one sensor sees all of a client's
    /// mutations, so, unlike the byte-rate sensors, they need no owner
    /// shard and no cross-shard aggregation.
    mutation_sensors: QuotaSensors,
}

/// The controller, over the storage it was given.
pub struct ControllerShard<S: ShardStorage = BrokerStorage> {
    storage: S,
    /// The quorum, when this node is a voter (never changes after open).
    quorum: Option<Rc<Quorum>>,
    /// Producer ids of this node start at `node_id << 40` in a cluster
    /// (interim, until blocks are allocated through the quorum).
    producer_id_base: i64,
    inner: RwLock<Inner<S>>,
    /// An idle connection to the active controller for this node's
    /// AlterPartition calls when another node is the active controller: a
    /// call takes it (or opens one) and puts it back when done.
    controller_link: RefCell<Option<ControllerLink>>,
}

impl<S: ShardStorage> ControllerShard<S> {
    /// Opens (replays) the metadata log and the producer-id block.
    pub async fn open(
        storage: S,
        config: &BrokerConfig,
        shard_count: u32,
        quorum: Option<QuorumSettings>,
    ) -> Result<Self, ControllerShardError> {
        let metadata_dir = config.metadata_dir();
        let store = match quorum {
            Some(mut settings) => {
                settings.shards = shard_count;
                settings.controller.shard_count = shard_count;
                let dir = metadata_dir.join(rafka_core::quorum::QUORUM_DIR_NAME);
                Backend::Quorum(Quorum::open(storage.clone(), dir, settings).await?)
            }
            None => {
                let (store, _replayed) = MetadataStore::open(
                    storage.clone(),
                    metadata_dir.clone(),
                    SNAPSHOT_INTERVAL_RECORDS_DEFAULT,
                )
                .await?;
                Backend::Local(store)
            }
        };
        let producer_ids =
            ProducerIdAllocator::load(&storage, &metadata_dir, PRODUCER_ID_BLOCK_IDS_DEFAULT)
                .await?;
        let inner = Inner {
            store,
            controller: Controller::new(config, shard_count),
            producer_ids,
            metadata_dir,
            mutation_sensors: QuotaSensors::new(
                QuotaKey::ControllerMutationRate,
                config.quota_window(),
            ),
        };
        let producer_id_base = match &inner.store {
            Backend::Local(_) => 0,
            Backend::Quorum(_) => i64::from(config.node_id.max(0)) << 40,
        };
        let quorum = match &inner.store {
            Backend::Quorum(quorum) => Some(Rc::clone(quorum)),
            Backend::Local(_) => None,
        };
        Ok(ControllerShard {
            storage,
            quorum,
            producer_id_base,
            inner: RwLock::new(inner),
            controller_link: RefCell::new(None),
        })
    }

    /// At startup: moves partitions off shards that no longer exist and
    /// evens the load; returns the image to load.
    pub async fn replace_for_shard_count(
        &self,
    ) -> Result<Arc<MetadataImage>, ControllerShardError> {
        let mut inner = self.lock().await;
        let Inner {
            store, controller, ..
        } = &mut *inner;
        let store = match store {
            Backend::Local(store) => store,
            Backend::Quorum(quorum) => {
                // In a cluster the shard of a partition is this node's
                // own business: re-placed in its image, not committed.
                return Ok(quorum.rebalance_locally());
            }
        };
        let records = controller.replace_for_shard_count(store.image());
        if !records.is_empty() {
            tracing::info!(
                moves = records.len(),
                "re-placing partitions for the core count"
            );
            store.commit(&records).await?;
        }
        Ok(Arc::clone(store.image()))
    }

    async fn lock(&self) -> glommio::sync::RwLockWriteGuard<'_, Inner<S>> {
        self.inner
            .write()
            .await
            .expect("the controller lock is never closed")
    }

    /// CreateTopics: one outcome per entry, in order.
    pub async fn create_topics(
        &self,
        publisher: &impl Publisher,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<CreatedTopic, TopicFailure>> {
        self.create_topics_charged(publisher, topics, validate_only, None)
            .await
            .outcomes
    }

    /// CreateTopics with each valid topic's partitions counted against
    /// `quota` (KIP-599; `None`: no quota), before `validate_only` is
    /// looked at, as Kafka's controller does.
    pub async fn create_topics_charged(
        &self,
        publisher: &impl Publisher,
        topics: Vec<NewTopic>,
        validate_only: bool,
        quota: Option<MutationQuota>,
    ) -> Charged<Vec<Result<CreatedTopic, TopicFailure>>> {
        let mut inner = self.lock().await;
        let mut charge = mutation_charge(&inner, quota.as_ref());
        let mut outcomes = Vec::with_capacity(topics.len());
        for topic in &topics {
            let image = inner.store.image();
            let topic_id = new_topic_id();
            let records = match inner.controller.create_topic(&image, topic, topic_id) {
                Ok(records) => records,
                Err(error) => {
                    outcomes.push(Err(TopicFailure::new(
                        error.error_code(),
                        error.to_string(),
                    )));
                    continue;
                }
            };
            let partitions = records
                .iter()
                .filter(|r| matches!(r, MetadataRecord::Partition(_)))
                .count() as i32;
            if let Err(failure) = charge_partitions(&mut inner, &mut charge, partitions) {
                outcomes.push(Err(failure));
                continue;
            }
            if validate_only {
                outcomes.push(Ok(CreatedTopic {
                    topic_id,
                    partitions,
                }));
                continue;
            }
            let outcome = match commit_and_publish(&mut inner, publisher, &records).await {
                Ok(Ok(())) => Ok(CreatedTopic {
                    topic_id,
                    partitions,
                }),
                Ok(Err(unapplied)) => {
                    Err(roll_back_create(&mut inner, publisher, topic, unapplied).await)
                }
                Err(failure) => Err(failure),
            };
            outcomes.push(outcome);
        }
        Charged {
            outcomes,
            throttle_time_ms: charge.throttle_time_ms(),
        }
    }

    /// CreatePartitions: grows each topic to its new total, one outcome
    /// per entry, in order. A topic whose new partitions some shard could
    /// not open is shrunk back to its old count (nothing half-created) and
    /// answered KAFKA_STORAGE_ERROR. The partitions added count against
    /// `quota` (KIP-599), `validate_only` or not, as Kafka's controller.
    pub async fn create_partitions(
        &self,
        publisher: &impl Publisher,
        topics: Vec<GrowTopic>,
        validate_only: bool,
        quota: Option<MutationQuota>,
    ) -> Charged<Vec<Result<(), TopicFailure>>> {
        let mut inner = self.lock().await;
        let mut charge = mutation_charge(&inner, quota.as_ref());
        let mut outcomes = Vec::with_capacity(topics.len());
        for GrowTopic {
            name,
            total,
            assignments,
        } in &topics
        {
            let image = inner.store.image();
            let records = match inner.controller.create_partitions(
                &image,
                name,
                *total,
                assignments.as_deref(),
            ) {
                Ok(records) => records,
                Err(error) => {
                    outcomes.push(Err(TopicFailure::new(
                        error.error_code(),
                        error.to_string(),
                    )));
                    continue;
                }
            };
            let first = image.topic(name).map_or(0, |t| t.partition_count());
            let added = total.saturating_sub(first);
            if let Err(failure) = charge_partitions(&mut inner, &mut charge, added) {
                outcomes.push(Err(failure));
                continue;
            }
            if validate_only {
                outcomes.push(Ok(()));
                continue;
            }
            let outcome = match commit_and_publish(&mut inner, publisher, &records).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(unapplied)) => {
                    Err(roll_back_partitions(&mut inner, publisher, name, first, unapplied).await)
                }
                Err(failure) => Err(failure),
            };
            outcomes.push(outcome);
        }
        Charged {
            outcomes,
            throttle_time_ms: charge.throttle_time_ms(),
        }
    }

    /// AlterConfigs / IncrementalAlterConfigs: one outcome per resource,
    /// in order, each committed on its own (Kafka answers per resource).
    /// An answered change is durable and every shard applies it.
    pub async fn alter_configs(
        &self,
        publisher: &impl Publisher,
        changes: Vec<(ConfigTarget, ConfigChange)>,
        validate_only: bool,
    ) -> Vec<Result<(), TopicFailure>> {
        let mut inner = self.lock().await;
        let mut outcomes = Vec::with_capacity(changes.len());
        for (target, change) in &changes {
            let image = inner.store.image();
            let controller = &inner.controller;
            let records = match (target, change) {
                (ConfigTarget::Topic(name), ConfigChange::Incremental(ops)) => {
                    controller.alter_topic_config(&image, name, ops)
                }
                (ConfigTarget::Topic(name), ConfigChange::Replace(configs)) => {
                    controller.replace_topic_config(&image, name, configs)
                }
                (ConfigTarget::Broker(name), ConfigChange::Incremental(ops)) => {
                    controller.alter_broker_config(&image, name, ops)
                }
                (ConfigTarget::Broker(name), ConfigChange::Replace(configs)) => {
                    controller.replace_broker_config(&image, name, configs)
                }
            };
            let mut records = match records {
                Ok(records) => records,
                Err(error) => {
                    let failure = TopicFailure::new(error.error_code(), error.to_string());
                    outcomes.push(Err(failure));
                    continue;
                }
            };
            let cleared = controller.elr_cleared_by_configs(&image, &records);
            records.extend(cleared);
            if validate_only || records.is_empty() {
                outcomes.push(Ok(()));
                continue;
            }
            // A shard that fails to reload logs its own error; the change
            // is committed and applies on its next reload either way.
            let outcome = commit_and_publish(&mut inner, publisher, &records)
                .await
                .map(|_applied| ());
            outcomes.push(outcome);
        }
        outcomes
    }

    /// CreateAcls: the valid ACLs of one request, all committed or none.
    pub async fn create_acls(
        &self,
        publisher: &impl Publisher,
        acls: Vec<AclBinding>,
    ) -> Result<(), TopicFailure> {
        let mut inner = self.lock().await;
        let image = inner.store.image();
        let records = acl_control::create_acls(&image, &acls, Uuid::new_v4)
            .map_err(|error| TopicFailure::new(error.error_code(), error.to_string()))?;
        if records.is_empty() {
            return Ok(());
        }
        commit_and_publish(&mut inner, publisher, &records)
            .await
            .map(|_applied| ())
    }

    /// DeleteAcls: per filter, the ACLs it deleted.
    pub async fn delete_acls(
        &self,
        publisher: &impl Publisher,
        filters: Vec<AclBindingFilter>,
    ) -> Result<Vec<Vec<AclBinding>>, TopicFailure> {
        let mut inner = self.lock().await;
        let image = inner.store.image();
        let deletion = acl_control::delete_acls(&image, &filters)
            .map_err(|error| TopicFailure::new(error.error_code(), error.to_string()))?;
        if !deletion.records.is_empty() {
            commit_and_publish(&mut inner, publisher, &deletion.records)
                .await
                .map(|_applied| ())?;
        }
        Ok(deletion
            .matched
            .into_iter()
            .map(|found| found.into_iter().map(|(_, acl)| acl).collect())
            .collect())
    }

    /// AlterUserScramCredentials: an outcome per user; the accepted
    /// entries are committed together before the answer.
    pub async fn alter_scram_credentials(
        &self,
        publisher: &impl Publisher,
        deletions: Vec<ScramDeletion>,
        upsertions: Vec<ScramUpsertion>,
    ) -> Vec<(String, Result<(), TopicFailure>)> {
        let mut inner = self.lock().await;
        let image = inner.store.image();
        let ScramAlteration { results, records } =
            scram_control::alter_scram_credentials(&image, &deletions, &upsertions);
        let committed = if records.is_empty() {
            Ok(())
        } else {
            commit_and_publish(&mut inner, publisher, &records)
                .await
                .map(|_applied| ())
        };
        results
            .into_iter()
            .map(|(user, outcome)| {
                let outcome = match outcome {
                    Ok(()) => committed.clone(),
                    Err(error) => Err(scram_failure(&error)),
                };
                (user, outcome)
            })
            .collect()
    }

    /// AlterClientQuotas: an outcome per distinct entity (see
    /// `rafka_core::metadata::quota_control` for Kafka's rules); the
    /// accepted entities are committed together before the answer, and
    /// nothing is written with `validate_only`.
    pub async fn alter_client_quotas(
        &self,
        publisher: &impl Publisher,
        entries: Vec<QuotaAlterationEntry>,
        validate_only: bool,
    ) -> Vec<(WireEntity, Result<(), TopicFailure>)> {
        let mut inner = self.lock().await;
        let image = inner.store.image();
        let QuotaAlteration { results, records } =
            quota_control::alter_client_quotas(&image, &entries, validate_only);
        let committed = if records.is_empty() {
            Ok(())
        } else {
            commit_and_publish(&mut inner, publisher, &records)
                .await
                .map(|_applied| ())
        };
        results
            .into_iter()
            .map(|(entity, outcome)| {
                let outcome = match outcome {
                    Ok(()) => committed.clone(),
                    Err(error) => Err(TopicFailure::new(error.error_code(), error.to_string())),
                };
                (entity, outcome)
            })
            .collect()
    }

    /// `--add-scram` at start: commits the credentials whose user has
    /// none for that mechanism yet; returns how many were added.
    pub async fn seed_scram_credentials(
        &self,
        publisher: &impl Publisher,
        credentials: Vec<(String, ScramCredential)>,
    ) -> Result<usize, TopicFailure> {
        let mut inner = self.lock().await;
        let image = inner.store.image();
        let records = scram_control::seed_scram_credentials(&image, &credentials);
        if records.is_empty() {
            return Ok(0);
        }
        // Committed either way; a shard that failed to apply logs it.
        if let Err(error) = commit_and_publish(&mut inner, publisher, &records).await? {
            tracing::warn!(%error, "publishing --add-scram credentials");
        }
        Ok(records.len())
    }

    /// DeleteTopics: one outcome per entry, in order (the name deleted).
    pub async fn delete_topics(
        &self,
        publisher: &impl Publisher,
        topics: Vec<TopicRef>,
        quota: Option<MutationQuota>,
    ) -> Charged<Vec<Result<(String, Uuid), TopicFailure>>> {
        let mut inner = self.lock().await;
        let mut charge = mutation_charge(&inner, quota.as_ref());
        let mut outcomes = Vec::with_capacity(topics.len());
        for topic in &topics {
            let image = inner.store.image();
            let found = match topic {
                TopicRef::Name(name) => image.topic(name),
                TopicRef::Id(id) => image.topic_by_id(id),
            };
            let named = found.map(|t| (t.name.clone(), t.id));
            let partitions = found.map_or(0, |t| t.partition_count());
            let records = match topic {
                TopicRef::Name(name) => inner.controller.delete_topic(&image, name),
                TopicRef::Id(id) => inner.controller.delete_topic_by_id(&image, *id),
            };
            let records = match records {
                // Only a topic that can be deleted counts (Kafka checks
                // the quota once the topic is found).
                Ok(records) => charge_partitions(&mut inner, &mut charge, partitions)
                    .map(|()| records)
                    .map_err(ControllerDeleteRefusal::Quota),
                Err(error) => Err(ControllerDeleteRefusal::Controller(error)),
            };
            let outcome = match (records, named) {
                // A shard that failed to delete logs its own errors; the
                // topic is gone from the image either way.
                (Ok(records), Some(named)) => commit_and_publish(&mut inner, publisher, &records)
                    .await
                    .map(|_applied| named),
                (Err(ControllerDeleteRefusal::Controller(error)), _) => {
                    Err(TopicFailure::new(error.error_code(), error.to_string()))
                }
                (Err(ControllerDeleteRefusal::Quota(failure)), _) => Err(failure),
                (Ok(_), None) => Err(TopicFailure::new(
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    "unknown topic",
                )),
            };
            outcomes.push(outcome);
        }
        Charged {
            outcomes,
            throttle_time_ms: charge.throttle_time_ms(),
        }
    }

    /// Creates an internal topic ([`internal_topic_spec`]) unless it
    /// exists: `__consumer_offsets` on the first FindCoordinator for a
    /// group.
    pub async fn ensure_internal_topic(
        &self,
        publisher: &impl Publisher,
        topic: InternalTopic,
    ) -> Result<(), ControllerShardError> {
        let new_topic = {
            let inner = self.lock().await;
            let image = inner.store.image();
            if image.topic(topic.name).is_some() {
                return Ok(());
            }
            internal_topic_spec(inner.controller.cluster, &image, topic)
        };
        let created = self.create_topics(publisher, vec![new_topic], false).await;
        match created.into_iter().next() {
            Some(Ok(_)) => Ok(()),
            // Two first lookups raced: the other one created it.
            Some(Err(failure)) if failure.code == ErrorCode::TOPIC_ALREADY_EXISTS => Ok(()),
            Some(Err(failure)) => Err(ControllerShardError::InternalTopic {
                topic: topic.name,
                message: failure.message,
            }),
            None => Err(ControllerShardError::InternalTopic {
                topic: topic.name,
                message: "no outcome".to_string(),
            }),
        }
    }

    /// InitProducerId for an idempotent (non-transactional) producer.
    pub async fn allocate_producer_id(&self) -> Result<i64, rafka_core::producer::ProducerError> {
        let mut inner = self.lock().await;
        let dir = inner.metadata_dir.clone();
        let id = inner.producer_ids.allocate(&self.storage, &dir).await?;
        Ok(self.producer_id_base + id)
    }

    /// DescribeQuorum's view: the quorum's, or on a single node a quorum
    /// of one (this node leads, epoch 1, its log's end as the high
    /// watermark).
    pub async fn quorum_view(&self, node_id: i32) -> crate::quorum::QuorumView {
        if let Some(quorum) = &self.quorum {
            return quorum.view();
        }
        let inner = self
            .inner
            .read()
            .await
            .expect("the controller lock is never closed");
        match &inner.store {
            Backend::Quorum(quorum) => quorum.view(),
            Backend::Local(store) => {
                let end = store.next_offset();
                crate::quorum::QuorumView {
                    leader_id: node_id,
                    leader_epoch: 1,
                    high_watermark: end,
                    voters: vec![crate::quorum::VoterView {
                        node_id,
                        log_end_offset: end,
                        last_heard_ms_ago: Some(0),
                    }],
                }
            }
        }
    }

    /// AlterPartition for `node_id`, the partition's leader: committed by
    /// the active controller, here when it is this node, otherwise sent to
    /// it in the Kafka protocol. The partition's leadership after it
    /// (`partition_epoch` included), or Kafka's error (NOT_CONTROLLER
    /// while no active controller answers: retriable). A node without a
    /// quorum replicates nothing: UNKNOWN_TOPIC_OR_PARTITION.
    ///
    /// Members go without their broker epochs (KIP-903's -1): the leader
    /// knows its followers by id only.
    pub async fn alter_partition(
        &self,
        node_id: i32,
        change: IsrChange,
    ) -> Result<Leadership, ErrorCode> {
        let quorum = self
            .quorum
            .as_ref()
            .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
        let image = quorum.image();
        let topic = image
            .topic(&change.topic)
            .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
        let request = AlterPartition {
            broker_id: node_id,
            broker_epoch: image.broker(node_id).map_or(-1, |b| b.epoch),
            topic_id: topic.id,
            partition: change.partition,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            new_isr: change
                .new_isr
                .iter()
                .copied()
                .map(IsrMember::any_epoch)
                .collect(),
        };
        if quorum.is_active_controller() {
            return partitions::alter_partition(quorum, &request).await;
        }
        let mut leadership = self.alter_partition_remotely(quorum, &request).await?;
        // The answer has no replicas; they change only by reassignment.
        leadership.replicas = topic
            .leadership(change.partition)
            .map(|l| l.replicas.clone())
            .unwrap_or_default();
        Ok(leadership)
    }

    /// ElectLeaders (see [`partitions::elect_leaders`]); `None` on a node
    /// that is no voter of a quorum (a single node, where every partition
    /// is led by its only, preferred replica, or a broker-only node).
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Option<Result<Vec<partitions::ElectionAnswer>, ErrorCode>> {
        let quorum = self.quorum.as_ref()?;
        Some(partitions::elect_leaders(quorum, election, partitions).await)
    }

    /// AlterPartitionReassignments (see
    /// [`partitions::alter_reassignments`]); `None` on a node that is no
    /// voter of a quorum.
    pub async fn alter_reassignments(
        &self,
        requests: Vec<partitions::ReassignmentRequest>,
        allow_replication_factor_change: bool,
    ) -> Option<Result<Vec<partitions::ElectionOutcome>, ErrorCode>> {
        let quorum = self.quorum.as_ref()?;
        Some(
            partitions::alter_reassignments(quorum, requests, allow_replication_factor_change)
                .await,
        )
    }

    /// AlterPartition sent to the active controller another node is.
    async fn alter_partition_remotely(
        &self,
        quorum: &Quorum,
        request: &AlterPartition,
    ) -> Result<Leadership, ErrorCode> {
        let leader = quorum.leader_id().ok_or(ErrorCode::NOT_CONTROLLER)?;
        let idle = self.controller_link.borrow_mut().take();
        let mut link = match idle.filter(|l| l.voter == leader) {
            Some(link) => link,
            None => {
                let voters = quorum.voters();
                let (_, address) = voters
                    .iter()
                    .find(|(id, _)| *id == leader)
                    .ok_or(ErrorCode::NOT_CONTROLLER)?;
                ControllerLink::open(leader, address)
                    .await
                    .ok_or(ErrorCode::NOT_CONTROLLER)?
            }
        };
        match link.alter_partition(request).await {
            Ok(answer) => {
                if answer != Err(ErrorCode::NOT_CONTROLLER) {
                    self.controller_link.borrow_mut().replace(link);
                }
                answer
            }
            Err(error) => {
                tracing::debug!(%error, "AlterPartition to the active controller");
                Err(ErrorCode::NOT_CONTROLLER)
            }
        }
    }

    /// The quorum, when this node is a voter of one.
    pub fn quorum(&self) -> Option<Rc<Quorum>> {
        self.quorum.clone()
    }

    /// Clean shutdown, after the listeners stopped: with no operation in
    /// flight (the lock is held throughout), runs `close` (the shard layer
    /// closes every partition and writes its checkpoints), then snapshots
    /// the metadata log so the next start replays nothing.
    pub async fn shutdown<E>(&self, close: impl AsyncFnOnce() -> Result<(), E>) -> Result<(), E> {
        let mut inner = self.lock().await;
        close().await?;
        match &mut inner.store {
            Backend::Local(store) => {
                if let Err(error) = store.snapshot().await {
                    tracing::warn!(%error, "metadata snapshot at shutdown");
                }
            }
            Backend::Quorum(quorum) => {
                quorum.save_observed_image().await;
                quorum.close()
            }
        }
        Ok(())
    }
}

/// A created topic some shard could not open: deleted again (committed
/// and applied like any delete), so that nothing of it stays, and refused
/// with KAFKA_STORAGE_ERROR. The usual cause is the data dir (no space, no
/// permission, a stray file where a partition directory goes).
async fn roll_back_create<S: ShardStorage>(
    inner: &mut Inner<S>,
    publisher: &impl Publisher,
    topic: &NewTopic,
    unapplied: PublishError,
) -> TopicFailure {
    let image = inner.store.image();
    match inner
        .controller
        .roll_back_created_topic(&image, &topic.name)
    {
        Ok(records) => match commit_and_publish(inner, publisher, &records).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::error!(topic = topic.name, %error, "rolling back a failed create")
            }
            Err(failure) => tracing::error!(
                topic = topic.name,
                error = failure.message,
                "rolling back a failed create"
            ),
        },
        Err(error) => {
            tracing::error!(topic = topic.name, %error, "rolling back a failed create")
        }
    }
    TopicFailure::new(
        ErrorCode::KAFKA_STORAGE_ERROR,
        format!(
            "the broker could not open the topic's partitions, so it was not created: {unapplied}"
        ),
    )
}

async fn roll_back_partitions<S: ShardStorage>(
    inner: &mut Inner<S>,
    publisher: &impl Publisher,
    name: &str,
    first: i32,
    unapplied: PublishError,
) -> TopicFailure {
    let image = inner.store.image();
    let undone = match inner
        .controller
        .roll_back_created_partitions(&image, name, first)
    {
        Ok(records) => match commit_and_publish(inner, publisher, &records).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(failure) => Err(failure.message),
        },
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = undone {
        tracing::error!(topic = name, error, "rolling back failed new partitions");
    }
    TopicFailure::new(
        ErrorCode::KAFKA_STORAGE_ERROR,
        format!("the broker could not open the new partitions, so none were added: {unapplied}"),
    )
}

/// Why DeleteTopics refused a topic before writing anything.
enum ControllerDeleteRefusal {
    Controller(rafka_core::metadata::ControllerError),
    Quota(TopicFailure),
}

/// The charge of one request against its controller mutation quota,
/// resolved from the current image (no quota: unbounded).
fn mutation_charge<S: ShardStorage>(
    inner: &Inner<S>,
    quota: Option<&MutationQuota>,
) -> MutationCharge {
    match quota {
        Some(quota) => MutationCharge::new(inner.store.image().client_quotas(), quota),
        None => MutationCharge::unbounded(),
    }
}

/// Takes `partitions` from the request's quota; a strict quota that is
/// exhausted refuses the topic with THROTTLING_QUOTA_EXCEEDED.
fn charge_partitions<S: ShardStorage>(
    inner: &mut Inner<S>,
    charge: &mut MutationCharge,
    partitions: i32,
) -> Result<(), TopicFailure> {
    let partitions = u32::try_from(partitions).unwrap_or(0);
    charge
        .charge(&mut inner.mutation_sensors, partitions)
        .map_err(|_throttle_time_ms| {
            TopicFailure::new(
                ErrorCode::THROTTLING_QUOTA_EXCEEDED,
                THROTTLING_QUOTA_EXCEEDED_MESSAGE,
            )
        })
}

/// Commits `records`, then has every shard apply the new image; the outer
/// error is a failed commit (nothing changed), the inner one shards that
/// could not apply all of the committed change.
async fn commit_and_publish<S: ShardStorage>(
    inner: &mut Inner<S>,
    publisher: &impl Publisher,
    records: &[MetadataRecord],
) -> Result<Result<(), PublishError>, TopicFailure> {
    let store = match &mut inner.store {
        Backend::Local(store) => store,
        // The quorum's applier publishes every applied entry itself, on
        // every node, in log order.
        Backend::Quorum(quorum) => {
            return match quorum.commit(records).await {
                Ok((_index, published)) => Ok(published),
                Err(ProposalError::Rejected(error)) => {
                    Err(TopicFailure::new(error.error_code(), error.to_string()))
                }
                Err(error @ ProposalError::NoLeader) => Err(TopicFailure::new(
                    ErrorCode::NOT_CONTROLLER,
                    error.to_string(),
                )),
                Err(error @ ProposalError::TimedOut(_)) => Err(TopicFailure::new(
                    ErrorCode::REQUEST_TIMED_OUT,
                    error.to_string(),
                )),
            };
        }
    };
    let committed: Committed = store.commit(records).await.map_err(|error| {
        tracing::error!(%error, "metadata commit");
        TopicFailure::new(error.error_code(), error.to_string())
    })?;
    if let Err(error) = store.snapshot_if_due().await {
        tracing::warn!(%error, "metadata snapshot");
    }
    Ok(publisher.publish(committed).await)
}

/// A refused SCRAM alteration as the client sees it.
fn scram_failure(error: &ScramAlterError) -> TopicFailure {
    TopicFailure::new(error.error_code(), error.to_string())
}

#[cfg(test)]
mod tests {
    use rafka_core::metadata::{BrokerFencingRecord, RegisterBrokerRecord};

    use super::*;

    fn txn_topic(factor: i16) -> InternalTopic {
        InternalTopic {
            name: "__transaction_state",
            partitions: 50,
            replication_factor: factor,
            min_insync_replicas: Some(2),
        }
    }

    /// An image with brokers 1..=`brokers`, the first `fenced` of them
    /// fenced.
    fn cluster_of(brokers: i32, fenced: i32) -> MetadataImage {
        let mut image = MetadataImage::new();
        for node_id in 1..=brokers {
            let registered = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                node_id,
                epoch: 1,
                incarnation_id: Uuid::from_u128(node_id as u128),
                rack: None,
                endpoints: Vec::new(),
                fresh_data_dir: false,
            });
            image.apply(&registered).expect("register");
            if node_id <= fenced {
                let fencing = MetadataRecord::BrokerFencing(BrokerFencingRecord {
                    node_id,
                    epoch: 1,
                    fenced: true,
                });
                image.apply(&fencing).expect("fence");
            }
        }
        image
    }

    fn spec(cluster: bool, image: &MetadataImage, topic: InternalTopic) -> (i16, Option<String>) {
        let spec = internal_topic_spec(cluster, image, topic);
        assert_eq!(spec.partitions, 50);
        assert_eq!(spec.configs["cleanup.policy"], "compact");
        assert_eq!(spec.configs["segment.bytes"], "104857600");
        let min = spec.configs.get("min.insync.replicas").cloned();
        (spec.replication_factor, min)
    }

    #[test]
    fn internal_topics_get_their_factor_capped_at_the_unfenced_brokers() {
        let five = cluster_of(5, 0);
        assert_eq!(spec(true, &five, txn_topic(3)), (3, Some("2".into())));
        // Two brokers fenced: three live, the factor fits.
        assert_eq!(
            spec(true, &cluster_of(5, 2), txn_topic(3)),
            (3, Some("2".into()))
        );
        // One live broker of two: one replica, and min ISR at most that.
        assert_eq!(
            spec(true, &cluster_of(2, 1), txn_topic(3)),
            (1, Some("1".into()))
        );
        // No broker registered yet: still one replica, never zero.
        assert_eq!(
            spec(true, &cluster_of(0, 0), txn_topic(3)),
            (1, Some("1".into()))
        );
        let offsets = InternalTopic {
            name: "__consumer_offsets",
            min_insync_replicas: None,
            ..txn_topic(2)
        };
        assert_eq!(spec(true, &five, offsets), (2, None));
    }

    #[test]
    fn a_single_node_creates_them_as_before() {
        // Whatever the keys say, and whatever the image holds.
        assert_eq!(spec(false, &cluster_of(3, 0), txn_topic(3)), (1, None));
        assert_eq!(spec(false, &MetadataImage::new(), txn_topic(1)), (1, None));
    }
}
