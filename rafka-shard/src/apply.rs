//! Applying a committed metadata change on a shard, and the controller's
//! [`Publisher`] that brings it to every shard.
//!
//! The controller commits records, then publishes the new image (an `Arc`,
//! immutable, shared) with its deltas; each shard swaps its image and acts
//! on the deltas that concern it: open the partitions placed on it, delete
//! removed topics' data, apply changed configs, and tell its coordinators
//! about their internal partitions. The publish returns once every shard
//! did, so an answer to CreateTopics means every shard serves the topic.
//!
//! Lives on: every shard (apply); the publish runs on shard 0.

use std::rc::Rc;
use std::sync::Arc;

use rafka_core::log::RecoveryHints;
use rafka_core::metadata::{Committed, MetadataDelta, MetadataImage};

use crate::controller::Publisher;
use crate::registry::OpenError;
use crate::runtime::Router;
use crate::shard::Shard;
use crate::storage::ShardStorage;

impl<S: ShardStorage> Shard<S> {
    /// Takes a new image from the controller and acts on the deltas that
    /// concern this shard.
    pub async fn apply_metadata(
        &self,
        image: Arc<MetadataImage>,
        deltas: &[MetadataDelta],
    ) -> Result<(), OpenError> {
        self.image_view().set(Arc::clone(&image));
        let me = u32::try_from(self.id()).unwrap_or(u32::MAX);
        let offsets_topic = self.offsets_topic().name;
        let mut offsets_partition_opened = false;
        for delta in deltas {
            match delta {
                MetadataDelta::PartitionCreated {
                    name,
                    partition,
                    shard,
                    ..
                } if *shard == me => {
                    let hints = RecoveryHints::default();
                    self.registry()
                        .open(&image, name, *partition, hints)
                        .await?;
                    offsets_partition_opened |= name == offsets_topic;
                }
                MetadataDelta::TopicRemoved { name, .. } => {
                    for index in self.registry().remove_topic(name).await {
                        if name == offsets_topic {
                            self.groups().unload_partition(index);
                        }
                    }
                }
                MetadataDelta::ConfigChanged { name, .. } => {
                    self.registry().reload_config(&image, name).await;
                }
                _ => {}
            }
        }
        if offsets_partition_opened {
            // New partitions are empty: this only marks them loaded, before
            // the controller's publish returns and groups get routed here.
            if let Err(error) = self.groups().load_partitions().await {
                tracing::error!(%error, "loading new {offsets_topic} partitions");
            }
        }
        self.image_view().notify();
        Ok(())
    }
}

/// The controller's publisher: every shard applies the change before the
/// publish returns.
impl<S: ShardStorage> Publisher for Router<Shard<S>> {
    async fn publish(&self, committed: Committed) {
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
        for result in applied {
            let failure = match result {
                Ok(Ok(())) => continue,
                Ok(Err(message)) => message,
                Err(route) => route.to_string(),
            };
            // The record is durable; a shard that failed to open a log
            // answers for its partitions with errors until restart.
            tracing::error!(%failure, "a shard failed to apply metadata");
        }
    }
}
