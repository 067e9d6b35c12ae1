//! The controller on shard 0: the only writer of the metadata log, and the
//! allocator of producer ids.
//!
//! Lives on: shard 0 only. Other shards reach it with
//! `router.invoke_on(0, ...)`.
//!
//! Operations run one at a time (a shard-local async lock): each validates
//! against the current image, commits its records durably, then broadcasts
//! the new image and deltas to every shard and waits until all applied
//! them. So when CreateTopics answers, every shard already serves the
//! topic, and when DeleteTopics answers its data is gone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::RwLock;
use rafka_core::config::BrokerConfig;
use rafka_core::log::checkpoint::{
    write_clean_shutdown_marker, write_offset_checkpoint, TopicPartition,
    LOG_START_OFFSET_CHECKPOINT_FILE, RECOVERY_POINT_CHECKPOINT_FILE,
};
use rafka_core::metadata::log::SNAPSHOT_INTERVAL_RECORDS_DEFAULT;
use rafka_core::metadata::{
    new_topic_id, Committed, Controller, MetadataImage, MetadataRecord, MetadataStore, NewTopic,
};
use rafka_core::producer::{ProducerIdAllocator, PRODUCER_ID_BLOCK_IDS_DEFAULT};
use uuid::Uuid;

use crate::group::GROUP_METADATA_TOPIC;
use crate::shard::{data_dir, Shard, ShardError};
use crate::storage::GlommioStorage;

/// `segment.bytes` of `__consumer_offsets`: Kafka's
/// `offsets.topic.segment.bytes` default.
const OFFSETS_SEGMENT_BYTES: i32 = 104_857_600;

/// Kafka's TOPIC_ALREADY_EXISTS error code.
const TOPIC_ALREADY_EXISTS: i16 = 36;

/// A failed controller operation as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFailure {
    pub code: i16,
    pub message: String,
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

struct Inner {
    store: MetadataStore<GlommioStorage>,
    controller: Controller,
    producer_ids: ProducerIdAllocator,
    metadata_dir: PathBuf,
}

pub struct ControllerShard {
    inner: RwLock<Inner>,
}

impl ControllerShard {
    /// Opens (replays) the metadata log and the producer-id block.
    pub async fn open(config: &BrokerConfig, shard_count: u32) -> Result<Self, ShardError> {
        let storage = GlommioStorage::new();
        let metadata_dir = config.metadata_dir();
        let (store, _replayed) = MetadataStore::open(
            storage,
            metadata_dir.clone(),
            SNAPSHOT_INTERVAL_RECORDS_DEFAULT,
        )
        .await?;
        let producer_ids =
            ProducerIdAllocator::load(&storage, &metadata_dir, PRODUCER_ID_BLOCK_IDS_DEFAULT)
                .await?;
        let inner = Inner {
            store,
            controller: Controller::new(config, shard_count),
            producer_ids,
            metadata_dir,
        };
        Ok(ControllerShard {
            inner: RwLock::new(inner),
        })
    }

    /// At startup: moves partitions off shards that no longer exist and
    /// evens the load; returns the image to load.
    pub async fn replace_for_shard_count(
        &self,
        _shard: &Rc<Shard>,
    ) -> Result<Arc<MetadataImage>, ShardError> {
        let mut inner = self.lock().await;
        let records = inner
            .controller
            .replace_for_shard_count(inner.store.image());
        if !records.is_empty() {
            tracing::info!(
                moves = records.len(),
                "re-placing partitions for the core count"
            );
            inner.store.commit(&records).await?;
        }
        Ok(Arc::clone(inner.store.image()))
    }

    async fn lock(&self) -> glommio::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .await
            .expect("the controller lock is never closed")
    }

    /// CreateTopics: one outcome per entry, in order.
    pub async fn create_topics(
        &self,
        shard: &Rc<Shard>,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<CreatedTopic, TopicFailure>> {
        let mut inner = self.lock().await;
        let mut outcomes = Vec::with_capacity(topics.len());
        for topic in &topics {
            let image = Arc::clone(inner.store.image());
            let topic_id = new_topic_id();
            let records = match inner.controller.create_topic(&image, topic, topic_id) {
                Ok(records) => records,
                Err(error) => {
                    outcomes.push(Err(TopicFailure {
                        code: error.error_code().code(),
                        message: error.to_string(),
                    }));
                    continue;
                }
            };
            let partitions = records
                .iter()
                .filter(|r| matches!(r, MetadataRecord::Partition(_)))
                .count() as i32;
            if validate_only {
                outcomes.push(Ok(CreatedTopic {
                    topic_id,
                    partitions,
                }));
                continue;
            }
            let outcome = commit_and_broadcast(&mut inner, shard, &records).await;
            outcomes.push(outcome.map(|()| CreatedTopic {
                topic_id,
                partitions,
            }));
        }
        outcomes
    }

    /// DeleteTopics: one outcome per entry, in order (the name deleted).
    pub async fn delete_topics(
        &self,
        shard: &Rc<Shard>,
        topics: Vec<TopicRef>,
    ) -> Vec<Result<(String, Uuid), TopicFailure>> {
        let mut inner = self.lock().await;
        let mut outcomes = Vec::with_capacity(topics.len());
        for topic in &topics {
            let image = Arc::clone(inner.store.image());
            let found = match topic {
                TopicRef::Name(name) => image.topic(name),
                TopicRef::Id(id) => image.topic_by_id(id),
            };
            let named = found.map(|t| (t.name.clone(), t.id));
            let records = match topic {
                TopicRef::Name(name) => inner.controller.delete_topic(&image, name),
                TopicRef::Id(id) => inner.controller.delete_topic_by_id(&image, *id),
            };
            let outcome = match (records, named) {
                (Ok(records), Some(named)) => commit_and_broadcast(&mut inner, shard, &records)
                    .await
                    .map(|()| named),
                (Err(error), _) => Err(TopicFailure {
                    code: error.error_code().code(),
                    message: error.to_string(),
                }),
                (Ok(_), None) => Err(TopicFailure {
                    code: rafka_proto::error::ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(),
                    message: "unknown topic".to_string(),
                }),
            };
            outcomes.push(outcome);
        }
        outcomes
    }

    /// On the first FindCoordinator for a group: creates `__consumer_offsets`
    /// (offsets.topic.num.partitions partitions, compacted, 100 MiB
    /// segments as Kafka) unless it exists.
    pub async fn ensure_offsets_topic(&self, shard: &Rc<Shard>) -> Result<(), ShardError> {
        if shard.image().topic(GROUP_METADATA_TOPIC).is_some() {
            return Ok(());
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                OFFSETS_SEGMENT_BYTES.to_string(),
            ),
        ]);
        let topic = NewTopic {
            name: GROUP_METADATA_TOPIC.to_string(),
            partitions: shard.config.offsets_topic_num_partitions,
            replication_factor: -1,
            configs,
        };
        let created = self.create_topics(shard, vec![topic], false).await;
        match created.into_iter().next() {
            Some(Ok(_)) => Ok(()),
            // Two shards' first lookups raced: the other one created it.
            Some(Err(failure)) if failure.code == TOPIC_ALREADY_EXISTS => Ok(()),
            Some(Err(failure)) => Err(ShardError::OffsetsTopic {
                message: failure.message,
            }),
            None => Err(ShardError::OffsetsTopic {
                message: "no outcome".to_string(),
            }),
        }
    }

    /// InitProducerId for an idempotent (non-transactional) producer.
    pub async fn allocate_producer_id(&self) -> Result<i64, rafka_core::producer::ProducerError> {
        let mut inner = self.lock().await;
        let storage = GlommioStorage::new();
        let dir = inner.metadata_dir.clone();
        inner.producer_ids.allocate(&storage, &dir).await
    }

    /// Clean shutdown, after the listeners stopped: every shard flushes and
    /// closes its partitions, then the checkpoints and the clean-shutdown
    /// marker are written so the next start skips the rescan.
    pub async fn shutdown(&self, shard: &Rc<Shard>) -> Result<(), ShardError> {
        let mut inner = self.lock().await;
        let closed = shard
            .router
            .invoke_on_all(|shard: Rc<Shard>| async move { shard.close_partitions().await })
            .await;
        let mut recovery_points = BTreeMap::new();
        let mut log_starts = BTreeMap::new();
        for result in closed {
            for (tp, recovery_point, log_start) in result? {
                recovery_points.insert(tp.clone(), recovery_point);
                log_starts.insert(tp, log_start);
            }
        }
        write_checkpoints(&shard.config, &recovery_points, &log_starts).await?;
        if let Err(error) = inner.store.snapshot().await {
            tracing::warn!(%error, "metadata snapshot at shutdown");
        }
        Ok(())
    }
}

async fn write_checkpoints(
    config: &BrokerConfig,
    recovery_points: &BTreeMap<TopicPartition, i64>,
    log_starts: &BTreeMap<TopicPartition, i64>,
) -> Result<(), ShardError> {
    let storage = GlommioStorage::new();
    let dir = data_dir(config);
    let recovery = dir.join(RECOVERY_POINT_CHECKPOINT_FILE);
    write_offset_checkpoint(&storage, &recovery, recovery_points).await?;
    let starts = dir.join(LOG_START_OFFSET_CHECKPOINT_FILE);
    write_offset_checkpoint(&storage, &starts, log_starts).await?;
    write_clean_shutdown_marker(&storage, &dir).await?;
    Ok(())
}

/// Commits `records`, then has every shard apply the new image.
async fn commit_and_broadcast(
    inner: &mut Inner,
    shard: &Rc<Shard>,
    records: &[MetadataRecord],
) -> Result<(), TopicFailure> {
    let committed: Committed = inner.store.commit(records).await.map_err(|error| {
        tracing::error!(%error, "metadata commit");
        TopicFailure {
            code: error.error_code().code(),
            message: error.to_string(),
        }
    })?;
    if let Err(error) = inner.store.snapshot_if_due().await {
        tracing::warn!(%error, "metadata snapshot");
    }
    let image = committed.image;
    let deltas = Arc::new(committed.deltas);
    let applied = shard
        .router
        .invoke_on_all(move |shard: Rc<Shard>| {
            let image = Arc::clone(&image);
            let deltas = Arc::clone(&deltas);
            async move {
                shard
                    .apply_metadata(image, deltas)
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
        // The record is durable; a shard that failed to open a log answers
        // for its partitions with errors until restart.
        tracing::error!(%failure, "a shard failed to apply metadata");
    }
    Ok(())
}
