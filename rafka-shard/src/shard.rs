//! [`Shard`]: everything one core owns, and the entry points other shards
//! call through the [`Router`].
//!
//! Lives on: every shard, one `Shard` each, behind an `Rc`. Shard 0 also
//! holds the controller ([`crate::controller`]), which every shard reaches
//! through a [`crate::controller_handle::ControllerHandle`].
//!
//! A shard is its parts, each in its own module: the partitions it owns
//! ([`PartitionRegistry`]), its copy of the metadata image ([`ImageView`]),
//! its coordinators ([`GroupCoordinator`], [`TransactionCoordinator`]),
//! the client quota sensors it owns ([`ShardQuotas`]), its lifecycle flags
//! ([`Lifecycle`]). What acts across parts lives beside them: applying a
//! metadata change ([`crate::apply`]), startup and clean stop
//! ([`crate::startup`]), the log cleaner ([`crate::cleaner`]).
//!
//! The shard runs over the storage and clock it is given (glommio and the
//! system clock in the broker, rafka-core's simulated storage and a manual
//! clock in tests); nothing below it creates its own.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rafka_core::config::BrokerConfig;
use rafka_core::io::Clock;
use rafka_core::metadata::MetadataImage;
use rafka_proto::error::ErrorCode;

use crate::controller::ControllerShard;
use crate::coordinator::InternalTopic;
use crate::flusher::Flusher;
use crate::group::{offsets_topic, GroupCoordinator};
use crate::hw_checkpoint::CheckpointGate;
use crate::image::ImageView;
use crate::kafka_client::LinkPool;
use crate::lifecycle::Lifecycle;
use crate::partition::Partition;
use crate::quota::ShardQuotas;
use crate::registry::PartitionRegistry;
use crate::runtime::Router;
use crate::storage::{BrokerStorage, ShardStorage};
use crate::txn::{transaction_topic, TransactionCoordinator};

pub use crate::registry::data_dir;

pub struct Shard<S: ShardStorage = BrokerStorage> {
    pub router: Router<Shard<S>>,
    pub config: Arc<BrokerConfig>,
    clock: Rc<dyn Clock>,
    registry: Rc<PartitionRegistry<S>>,
    image: Rc<ImageView>,
    /// The group coordinator for this shard's `__consumer_offsets`
    /// partitions.
    groups: Rc<GroupCoordinator<S>>,
    /// The transaction coordinator for this shard's `__transaction_state`
    /// partitions.
    txns: Rc<TransactionCoordinator<S>>,
    /// Shard 0 only.
    controller: Option<ControllerShard<S>>,
    /// The client quota sensors this shard owns.
    quotas: ShardQuotas,
    lifecycle: Lifecycle,
    /// Idle links to other brokers for one-off calls.
    links: LinkPool,
    /// Shard 0: the high watermark checkpoint's writers.
    hw_checkpoint: Rc<CheckpointGate>,
}

/// The parts a shard is built from (see [`crate::startup`]).
pub(crate) struct ShardParts<S: ShardStorage> {
    pub router: Router<Shard<S>>,
    pub config: Arc<BrokerConfig>,
    pub clock: Rc<dyn Clock>,
    pub registry: Rc<PartitionRegistry<S>>,
    pub image: Rc<ImageView>,
    pub groups: Rc<GroupCoordinator<S>>,
    pub txns: Rc<TransactionCoordinator<S>>,
    pub controller: Option<ControllerShard<S>>,
}

impl<S: ShardStorage> Shard<S> {
    pub(crate) fn from_parts(parts: ShardParts<S>) -> Self {
        let quotas = ShardQuotas::new(parts.config.quota_window());
        Shard {
            router: parts.router,
            config: parts.config,
            clock: parts.clock,
            registry: parts.registry,
            image: parts.image,
            groups: parts.groups,
            txns: parts.txns,
            controller: parts.controller,
            quotas,
            lifecycle: Lifecycle::new(),
            links: LinkPool::default(),
            hw_checkpoint: Rc::default(),
        }
    }

    /// Shard 0: who writes `replication-offset-checkpoint`, and whether
    /// the clean stop's final write happened.
    pub fn hw_checkpoint(&self) -> &Rc<CheckpointGate> {
        &self.hw_checkpoint
    }

    /// Idle links to other brokers (transaction markers, verification).
    pub fn links(&self) -> &LinkPool {
        &self.links
    }

    pub fn id(&self) -> usize {
        self.router.shard_id()
    }

    pub fn count(&self) -> usize {
        self.router.shard_count()
    }

    pub fn clock(&self) -> &Rc<dyn Clock> {
        &self.clock
    }

    /// The partitions this shard owns.
    pub fn registry(&self) -> &Rc<PartitionRegistry<S>> {
        &self.registry
    }

    pub fn flusher(&self) -> &Rc<Flusher<S>> {
        self.registry.flusher()
    }

    /// This shard's copy of the metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.get()
    }

    pub fn image_view(&self) -> &Rc<ImageView> {
        &self.image
    }

    /// The shard owning `topic`/`partition`, by this shard's image.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Option<usize> {
        self.image.owner_of(topic, partition)
    }

    /// A partition this shard owns.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Rc<Partition<S>>> {
        self.registry.get(topic, index)
    }

    /// All partitions this shard owns.
    pub fn local_partitions(&self) -> Vec<Rc<Partition<S>>> {
        self.registry.all()
    }

    /// Waits until this shard's image has `topic`, up to `timeout`.
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> bool {
        self.image.wait_for_topic(topic, timeout).await
    }

    /// This shard's group coordinator (groups of the `__consumer_offsets`
    /// partitions it owns).
    pub fn groups(&self) -> &Rc<GroupCoordinator<S>> {
        &self.groups
    }

    /// This shard's transaction coordinator (transactional ids of the
    /// `__transaction_state` partitions it owns).
    pub fn txns(&self) -> &Rc<TransactionCoordinator<S>> {
        &self.txns
    }

    /// The client quota sensors this shard owns (see [`crate::quota`]).
    pub fn quotas(&self) -> &ShardQuotas {
        &self.quotas
    }

    /// The internal topic of transactions.
    pub fn transaction_topic(&self) -> InternalTopic {
        transaction_topic(&self.config)
    }

    /// The internal topic of groups.
    pub fn offsets_topic(&self) -> InternalTopic {
        offsets_topic(&self.config)
    }

    /// The shard coordinating `key` in `topic` (the owner of its
    /// partition), or COORDINATOR_NOT_AVAILABLE while that partition does
    /// not exist. One router for every kind of coordinator.
    pub fn coordinator_shard(&self, topic: InternalTopic, key: &str) -> Result<usize, ErrorCode> {
        if let Some(leader) = self.coordinator_leader(topic, key) {
            if leader != self.config.node_id {
                return Err(ErrorCode::NOT_COORDINATOR);
            }
        }
        self.owner_of(topic.name, topic.partition_for(key))
            .ok_or(ErrorCode::COORDINATOR_NOT_AVAILABLE)
    }

    /// In a cluster, the broker leading the internal partition of `key`:
    /// its coordinator (`None` on a single node, or before the topic
    /// exists).
    pub fn coordinator_leader(&self, topic: InternalTopic, key: &str) -> Option<i32> {
        let image = self.image();
        let leadership = image
            .topic(topic.name)?
            .leadership(topic.partition_for(key))?;
        Some(leadership.leader)
    }

    /// The shard coordinating group `group_id`.
    pub fn group_coordinator_shard(&self, group_id: &str) -> Result<usize, ErrorCode> {
        self.coordinator_shard(self.offsets_topic(), group_id)
    }

    /// The controller, on shard 0; callers go through the
    /// [`crate::controller_handle::ControllerHandle`].
    pub(crate) fn controller(&self) -> Option<&ControllerShard<S>> {
        self.controller.as_ref()
    }

    /// The metadata quorum, on shard 0 of a node that is a voter.
    pub fn quorum(&self) -> Option<Rc<crate::quorum::Quorum>> {
        self.controller().and_then(|c| c.quorum())
    }

    pub(crate) fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    pub fn is_ready(&self) -> bool {
        self.lifecycle.is_ready()
    }

    /// Tells this shard's tasks (listeners, coordinators, the shard's
    /// main) to stop.
    pub fn request_stop(&self) {
        self.groups.stop();
        self.txns.stop();
        self.lifecycle.request_stop();
    }

    pub fn is_stopping(&self) -> bool {
        self.lifecycle.is_stopping()
    }

    /// Waits until [`Shard::request_stop`].
    pub async fn wait_stop(&self) {
        self.lifecycle.wait_stop().await;
    }
}
