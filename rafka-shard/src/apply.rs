//! Applying a committed metadata change on a shard, and the controller's
//! [`Publisher`] that brings it to every shard.
//!
//! The controller commits records, then publishes the new image (an `Arc`,
//! immutable, shared) with its deltas; each shard swaps its image and acts
//! on the deltas that concern it: open the partitions placed on it, delete
//! removed topics' data, apply changed configs, and tell its coordinators
//! about their internal partitions (created, deleted, and whether this
//! broker leads them: coordinators follow leadership). The publish returns
//! once every shard did, so an answer to CreateTopics means every shard
//! serves the topic.
//!
//! Lives on: every shard (apply); the publish runs on shard 0.

use std::rc::{Rc, Weak};
use std::sync::Arc;

use rafka_core::log::RecoveryHints;
use rafka_core::metadata::{Committed, Leadership, MetadataDelta, MetadataImage};

use crate::controller::{PublishError, Publisher};
use crate::registry::{assignment_of, OpenError, OpenHints};
use crate::runtime::Router;
use crate::shard::Shard;
use crate::storage::ShardStorage;

/// A partition this broker opens on a metadata change (a new topic or
/// partition, or a reassignment adding this broker): nothing of what its
/// directory may hold from an earlier copy is vouched for, so its high
/// watermark starts at its log start.
const NEW_REPLICA: OpenHints = OpenHints {
    recovery: RecoveryHints {
        recovery_point: None,
        log_start_offset: None,
        clean_shutdown: false,
    },
    high_watermark: Some(0),
};

/// The partitions a shard could not open for a committed change (the
/// rest of the change was applied).
#[derive(Debug, thiserror::Error)]
#[error("{}", .failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ApplyError {
    pub failures: Vec<OpenError>,
}

impl<S: ShardStorage> Shard<S> {
    /// Takes a new image from the controller and acts on the deltas that
    /// concern this shard. A partition that fails to open does not stop
    /// the others: every delta is applied, and the failures are returned
    /// (a created partition that failed leaves no directory behind).
    pub async fn apply_metadata(
        &self,
        image: Arc<MetadataImage>,
        deltas: &[MetadataDelta],
    ) -> Result<(), ApplyError> {
        self.image_view().set(Arc::clone(&image));
        let me = u32::try_from(self.id()).unwrap_or(u32::MAX);
        let offsets_topic = self.offsets_topic().name;
        let txn_topic = self.transaction_topic().name;
        // (topic, partition) of every partition this change opened here.
        let mut opened: Vec<(String, i32)> = Vec::new();
        let mut broker_defaults_changed = false;
        let mut failures = Vec::new();
        // Partitions created on this shard are opened together, before any
        // later delta of the change acts.
        let mut created: Vec<(&str, i32)> = Vec::new();
        for delta in deltas {
            if let MetadataDelta::PartitionCreated {
                name,
                partition,
                shard,
                ..
            } = delta
            {
                // In a cluster, only the partition's replicas hold it.
                let held = image
                    .topic(name)
                    .is_some_and(|t| t.is_replica(*partition, self.config.node_id));
                if *shard == me && held {
                    created.push((name.as_str(), *partition));
                }
                continue;
            }
            self.open_created(&image, &mut created, &mut opened, &mut failures)
                .await;
            match delta {
                MetadataDelta::PartitionsRemoved {
                    name,
                    first,
                    shards,
                    ..
                } => {
                    for (index, shard) in (*first..).zip(shards) {
                        if *shard == me {
                            self.registry().remove_partition(name, index).await;
                            if name == offsets_topic {
                                self.groups().unload_partition(index);
                            }
                            if name == txn_topic {
                                self.txns().unload_partition(index);
                            }
                        }
                    }
                }
                MetadataDelta::TopicRemoved { name, .. } => {
                    for index in self.registry().remove_topic(name).await {
                        if name == offsets_topic {
                            self.groups().unload_partition(index);
                        }
                        if name == txn_topic {
                            self.txns().unload_partition(index);
                        }
                    }
                }
                MetadataDelta::ConfigChanged { name, .. } => {
                    self.registry().reload_config(&image, name).await;
                }
                MetadataDelta::BrokerConfigChanged { .. } => {
                    broker_defaults_changed = true;
                }
                MetadataDelta::LeadershipChanged {
                    name,
                    partition,
                    new,
                    ..
                } => {
                    let replica = new.replicas.contains(&self.config.node_id);
                    match self.partition(name, *partition) {
                        // A reassignment dropped this broker: its copy
                        // goes (Kafka's StopReplica with delete).
                        Some(_) if !replica => {
                            self.registry().remove_partition(name, *partition).await;
                            if name == offsets_topic {
                                self.groups().unload_partition(*partition);
                            }
                            if name == txn_topic {
                                self.txns().unload_partition(*partition);
                            }
                            tracing::info!(
                                topic = name,
                                partition,
                                "no longer a replica: partition deleted"
                            );
                        }
                        Some(held) => {
                            self.registry()
                                .take_leadership(name, *partition, &held, assignment_of(new))
                                .await;
                            // A partition opened by this change is loaded
                            // below, before the publish returns.
                            let fresh = opened.iter().any(|(t, p)| t == name && p == partition);
                            if !fresh {
                                self.coordinators_follow(name, *partition, new);
                            }
                        }
                        // A reassignment added this broker: the owning
                        // shard opens the partition (empty, or what an
                        // earlier copy left) and follows the leader.
                        None if replica => {
                            let owner = image.topic(name).and_then(|t| t.shard_of(*partition));
                            if owner == Some(me) {
                                created.push((name.as_str(), *partition));
                            }
                        }
                        None => {}
                    }
                }
                _ => {}
            }
        }
        self.open_created(&image, &mut created, &mut opened, &mut failures)
            .await;
        if broker_defaults_changed {
            self.registry().reload_all_configs(&image).await;
        }
        if opened.iter().any(|(topic, _)| topic == offsets_topic) {
            // New partitions are empty: this only marks them loaded, before
            // the controller's publish returns and groups get routed here.
            if let Err(error) = self.groups().load_partitions().await {
                tracing::error!(%error, "loading new {offsets_topic} partitions");
            }
        }
        if opened.iter().any(|(topic, _)| topic == txn_topic) {
            if let Err(error) = self.txns().load_partitions().await {
                tracing::error!(%error, "loading new {txn_topic} partitions");
            }
        }
        self.image_view().notify();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ApplyError { failures })
        }
    }

    /// A new leadership of `topic`/`partition`, held here: when the topic
    /// is internal, its coordinator follows it (loads it as its new
    /// leader, or unloads it; see [`crate::coordinator`]).
    fn coordinators_follow(&self, topic: &str, partition: i32, leadership: &Leadership) {
        let leads = leadership.leader == self.config.node_id;
        let epoch = leadership.leader_epoch;
        if topic == self.offsets_topic().name {
            self.groups().follow_leadership(partition, leads, epoch);
        } else if topic == self.transaction_topic().name {
            self.txns().follow_leadership(partition, leads, epoch);
        }
    }

    /// Opens the partitions `created` lists (and empties it): each one
    /// opened goes to `opened`, the failures to `failures`, after removing
    /// what they left.
    async fn open_created(
        &self,
        image: &MetadataImage,
        created: &mut Vec<(&str, i32)>,
        opened: &mut Vec<(String, i32)>,
        failures: &mut Vec<OpenError>,
    ) {
        if created.is_empty() {
            return;
        }
        let batch = std::mem::take(created);
        let opens = batch
            .iter()
            .map(|(name, partition)| (*name, *partition, NEW_REPLICA));
        let outcomes = self.registry().open_all(image, opens).await;
        for ((name, partition), outcome) in batch.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => opened.push((name.to_string(), partition)),
                Err(error) => {
                    tracing::error!(%error, "a new partition could not be opened");
                    self.registry().discard_new_partition(name, partition).await;
                    failures.push(error);
                }
            }
        }
    }
}

/// The controller's publisher: every shard applies the change before the
/// publish returns.
impl<S: ShardStorage> Publisher for Router<Shard<S>> {
    async fn publish(&self, committed: Committed) -> Result<(), PublishError> {
        let image = committed.image;
        let deltas = Arc::new(committed.deltas);
        let applied = self
            .invoke_on_all(move |shard: Rc<Shard<S>>| {
                let image = Arc::clone(&image);
                let deltas = Arc::clone(&deltas);
                async move {
                    shard
                        .apply_metadata(image, &deltas)
                        .await
                        .map_err(|e| e.to_string())
                }
            })
            .await;
        let mut failures = Vec::new();
        for (shard, result) in applied.into_iter().enumerate() {
            let failure = match result {
                Ok(Ok(())) => continue,
                Ok(Err(message)) => message,
                Err(route) => route.to_string(),
            };
            tracing::error!(shard, %failure, "a shard failed to apply metadata");
            failures.push(format!("shard {shard}: {failure}"));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(PublishError { failures })
        }
    }
}

/// The quorum applier's publisher: publishes through the shard's router
/// while the shard lives (weak: the shard holds the quorum).
pub struct ShardPublisher<S: ShardStorage> {
    shard: Weak<Shard<S>>,
}

impl<S: ShardStorage> ShardPublisher<S> {
    pub fn new(shard: &Rc<Shard<S>>) -> Self {
        ShardPublisher {
            shard: Rc::downgrade(shard),
        }
    }
}

impl<S: ShardStorage> Publisher for ShardPublisher<S> {
    async fn publish(&self, committed: Committed) -> Result<(), PublishError> {
        let Some(shard) = self.shard.upgrade() else {
            return Err(PublishError {
                failures: vec!["the broker is stopping".to_string()],
            });
        };
        shard.router.publish(committed).await
    }
}
