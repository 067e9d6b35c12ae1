//! [`PartitionRegistry`]: the partitions one shard owns, and the only way
//! to reach them (open, find, produce, fetch, close, delete).
//!
//! Lives on: every shard, one registry each, shared as `Rc` by the shard's
//! parts (metadata apply, coordinators, cleaner). Other shards reach a
//! partition only through the router, which runs their work here.

use futures_util::StreamExt;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rafka_core::config::{BrokerConfig, TopicConfig};
use rafka_core::io::Clock;
use rafka_core::log::checkpoint::{partition_dir_name, TopicPartition};
use rafka_core::log::{LogConfig, RecoveryHints};
use rafka_core::metadata::MetadataImage;
use rafka_proto::acks::Acks;

use crate::disk::DiskSpace;
use crate::flusher::Flusher;
use crate::log_health::LogHealth;
use crate::partition::{
    Appended, Assignment, Fetched, FetchedAt, Partition, PartitionError, PartitionSpec, TxnMarker,
};
use crate::storage::{BrokerStorage, ShardStorage};

/// A partition could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("opening {topic}-{partition}: {source}")]
pub struct OpenError {
    pub topic: String,
    pub partition: i32,
    #[source]
    pub source: PartitionError,
}

/// Partitions a clean stop closes at once on a shard (each holds up to
/// three files open while it writes its indexes and syncs).
const CLOSES_AT_ONCE: usize = 16;

/// Partitions a shard opens at once (a created topic's, or all of them at
/// start). Opening is mostly waiting on the filesystem (mkdir, directory
/// listings, reads, fsyncs), so one at a time made 100,000 partitions
/// wait for each in turn (`tests/scale.rs`).
const OPENS_AT_ONCE: usize = 16;

/// What the data dir's checkpoints say about a partition being opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenHints {
    pub recovery: RecoveryHints,
    /// See [`PartitionSpec::high_watermark`].
    pub high_watermark: Option<i64>,
}

/// What a clean close of a partition leaves for the checkpoint files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedPartition {
    pub partition: TopicPartition,
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// topic name -> partition index -> partition.
type ByTopic<S> = HashMap<String, BTreeMap<i32, Rc<Partition<S>>>>;

/// The partitions of one shard, over the storage and clock it was given.
pub struct PartitionRegistry<S: ShardStorage = BrokerStorage> {
    storage: S,
    clock: Rc<dyn Clock>,
    config: Arc<BrokerConfig>,
    flusher: Rc<Flusher<S>>,
    /// The data dir's free space as the produce path sees it.
    disk: DiskSpace,
    partitions: RefCell<ByTopic<S>>,
    /// What recovery and the scrubber found in this shard's logs.
    log_health: Rc<LogHealth>,
}

impl<S: ShardStorage> PartitionRegistry<S> {
    pub fn new(
        storage: S,
        clock: Rc<dyn Clock>,
        config: Arc<BrokerConfig>,
        flusher: Rc<Flusher<S>>,
    ) -> Self {
        PartitionRegistry {
            storage,
            clock,
            disk: DiskSpace::new(data_dir(&config)),
            config,
            flusher,
            partitions: RefCell::new(HashMap::new()),
            log_health: Rc::new(LogHealth::default()),
        }
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    pub fn flusher(&self) -> &Rc<Flusher<S>> {
        &self.flusher
    }

    pub fn log_health(&self) -> &Rc<LogHealth> {
        &self.log_health
    }

    /// The data dir's free space (produce refusal, metrics).
    pub fn disk(&self) -> &DiskSpace {
        &self.disk
    }

    /// The data directory (first of `log.dirs`).
    pub fn data_dir(&self) -> PathBuf {
        data_dir(&self.config)
    }

    /// A partition of this shard.
    pub fn get(&self, topic: &str, index: i32) -> Option<Rc<Partition<S>>> {
        self.partitions.borrow().get(topic)?.get(&index).cloned()
    }

    /// Every partition of this shard.
    pub fn all(&self) -> Vec<Rc<Partition<S>>> {
        let partitions = self.partitions.borrow();
        partitions
            .values()
            .flat_map(|p| p.values().cloned())
            .collect()
    }

    /// The partitions of `topic` on this shard, by index.
    pub fn of_topic(&self, topic: &str) -> Vec<Rc<Partition<S>>> {
        let partitions = self.partitions.borrow();
        partitions
            .get(topic)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Opens `topic`/`index` with the settings `image` gives the topic.
    pub async fn open(
        &self,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        hints: OpenHints,
    ) -> Result<(), OpenError> {
        let spec = PartitionSpec {
            topic: Rc::from(topic),
            index,
            dir: self.data_dir().join(partition_dir_name(topic, index)),
            config: self.log_config(image, topic),
            hints: hints.recovery,
            write_caching: self.config.write_caching,
            high_watermark: hints.high_watermark,
        };
        let partition = Partition::open(self.storage.clone(), Rc::clone(&self.clock), spec)
            .await
            .map_err(|source| OpenError {
                topic: topic.to_string(),
                partition: index,
                source,
            })?;
        if let Ok(report) = partition.recovery_report().await {
            self.log_health.on_recovery(topic, index, &report);
        }
        partition.set_min_insync_replicas(self.topic_config(image, topic).min_insync_replicas);
        let assignment = image
            .topic(topic)
            .and_then(|t| t.leadership(index))
            .map_or_else(|| Assignment::alone(self.config.node_id), assignment_of);
        self.take_leadership(topic, index, &partition, assignment)
            .await;
        self.partitions
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(index, partition);
        Ok(())
    }

    /// A leadership of `partition` (at open, or a LeadershipChanged
    /// record): appends from now on carry its epoch, the ISR bounds the
    /// high watermark, and when this broker is the leader the epoch starts
    /// at the log end in the leader-epoch cache (Kafka's `makeLeader`), so
    /// OffsetForLeaderEpoch answers it before the first batch of it. A
    /// follower's cache takes the leader's epochs from the batches it
    /// copies.
    pub async fn take_leadership(
        &self,
        topic: &str,
        index: i32,
        partition: &Partition<S>,
        assignment: Assignment,
    ) {
        let (leader, epoch) = (assignment.leader, assignment.leader_epoch);
        if let Err(error) = partition.assign(self.config.node_id, assignment).await {
            tracing::warn!(topic, partition = index, %error, "applying a leadership");
        }
        if leader != self.config.node_id {
            return;
        }
        if let Err(error) = partition.assign_leader_epoch(epoch).await {
            tracing::warn!(
                topic,
                partition = index,
                epoch,
                %error,
                "could not start the leader epoch in the epoch cache"
            );
        }
    }

    /// Opens `partitions`, up to [`OPENS_AT_ONCE`] at a time; one outcome
    /// per partition, in the order given. A failure does not stop the
    /// others.
    pub async fn open_all<'a>(
        &self,
        image: &MetadataImage,
        partitions: impl IntoIterator<Item = (&'a str, i32, OpenHints)>,
    ) -> Vec<Result<(), OpenError>> {
        futures_util::stream::iter(partitions)
            .map(|(topic, index, hints)| self.open(image, topic, index, hints))
            .buffered(OPENS_AT_ONCE)
            .collect()
            .await
    }

    /// Removes what a failed open of a new partition may have left (its
    /// directory), so that nothing of a refused topic stays behind.
    pub async fn discard_new_partition(&self, topic: &str, index: i32) {
        let dir = self.data_dir().join(partition_dir_name(topic, index));
        match self.storage.exists(&dir).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(topic, partition = index, %error, "checking a failed partition's dir");
                return;
            }
        }
        if let Err(error) = self.storage.remove_dir_all(&dir).await {
            tracing::warn!(topic, partition = index, %error, "removing a failed partition's dir");
        }
    }

    /// The log settings of `topic`: broker defaults plus its overrides.
    pub fn log_config(&self, image: &MetadataImage, topic: &str) -> LogConfig {
        self.topic_config(image, topic).log_config()
    }

    /// `topic`'s effective config: its overrides over the broker's
    /// defaults.
    pub fn topic_config(&self, image: &MetadataImage, topic: &str) -> TopicConfig {
        let defaults = image.topic_defaults(&self.config.topic_defaults, self.config.node_id);
        let overrides = image.topic(topic).map(|t| t.configs.clone());
        overrides
            .and_then(|o| defaults.validate(&o).ok())
            .unwrap_or_else(|| defaults.config.clone())
    }

    /// Forgets every partition of `name` and deletes their data; returns
    /// the indexes it removed.
    pub async fn remove_topic(&self, name: &str) -> Vec<i32> {
        let removed = self.partitions.borrow_mut().remove(name);
        let mut indexes = Vec::new();
        for (index, partition) in removed.into_iter().flatten() {
            indexes.push(index);
            if let Err(error) = partition.delete().await {
                tracing::error!(topic = name, partition = index, %error, "deleting partition data");
            }
        }
        indexes
    }

    /// Forgets partition `index` of `topic` and deletes its data (a
    /// rolled-back CreatePartitions); one that never opened leaves no
    /// directory either.
    pub async fn remove_partition(&self, topic: &str, index: i32) {
        let removed = self
            .partitions
            .borrow_mut()
            .get_mut(topic)
            .and_then(|partitions| partitions.remove(&index));
        match removed {
            Some(partition) => {
                if let Err(error) = partition.delete().await {
                    tracing::error!(topic, partition = index, %error, "deleting partition data");
                }
            }
            None => self.discard_new_partition(topic, index).await,
        }
    }

    /// Applies `topic`'s settings in `image` to its open partitions.
    /// Reloads every topic's config (a dynamic broker default changed).
    pub async fn reload_all_configs(&self, image: &MetadataImage) {
        let topics: Vec<String> = self.partitions.borrow().keys().cloned().collect();
        for topic in topics {
            self.reload_config(image, &topic).await;
        }
    }

    pub async fn reload_config(&self, image: &MetadataImage, topic: &str) {
        let topic_config = self.topic_config(image, topic);
        let config = topic_config.log_config();
        for partition in self.of_topic(topic) {
            partition.set_min_insync_replicas(topic_config.min_insync_replicas);
            if let Err(error) = partition.set_config(config.clone()).await {
                tracing::error!(topic, %error, "applying topic config");
            }
        }
    }

    /// Appends `records` (validated by the caller) to a partition of this
    /// shard. With [`Acks::All`] returns once the records are durable
    /// (unless `write.caching`). Refused while the data dir is below its
    /// free-space threshold (internal topics excepted, see
    /// [`crate::disk`]); a failed write has shard 0 measure the free
    /// space at once. `verified` is the KIP-890 guard of a transactional
    /// producer (see [`Partition::append`]); None for everything else.
    pub async fn produce(
        &self,
        topic: &str,
        index: i32,
        records: &Bytes,
        acks: Acks,
        timeout: Duration,
        verified: Option<u64>,
    ) -> Result<Appended, PartitionError> {
        let partition = self.get(topic, index).ok_or(PartitionError::Closed)?;
        self.disk.check_produce(topic)?;
        if acks == Acks::All {
            partition.check_enough_in_sync()?;
        }
        let appended = self.noting_write_errors(partition.append(records, verified).await)?;
        self.settle(&partition, appended, acks, timeout).await
    }

    /// [`PartitionRegistry::produce`] of a Produce request, whose
    /// transactional batch is verified by `verify` in its turn when the
    /// partition asks for it (see [`Partition::append_verifying`]).
    pub async fn produce_verifying<F, Fut>(
        &self,
        topic: &str,
        index: i32,
        records: &Bytes,
        acks: Acks,
        timeout: Duration,
        verify: F,
    ) -> Result<Appended, PartitionError>
    where
        F: FnOnce(i64, i16) -> Fut,
        Fut: std::future::Future<Output = Result<(), PartitionError>>,
    {
        let partition = self.get(topic, index).ok_or(PartitionError::Closed)?;
        self.disk.check_produce(topic)?;
        if acks == Acks::All {
            partition.check_enough_in_sync()?;
        }
        let appended = partition.append_verifying(records, verify).await;
        let appended = self.noting_write_errors(appended)?;
        self.settle(&partition, appended, acks, timeout).await
    }

    /// After an append: queues the flush and, with [`Acks::All`], waits
    /// for the high watermark to pass it (fsync'd on the ISR), then checks
    /// the ISR did not shrink below `min.insync.replicas` meanwhile
    /// (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND: the records stay, the
    /// producer's retry is a duplicate it recognises).
    async fn settle(
        &self,
        partition: &Rc<Partition<S>>,
        appended: Appended,
        acks: Acks,
        timeout: Duration,
    ) -> Result<Appended, PartitionError> {
        self.flusher.enqueue(partition);
        if acks == Acks::All {
            partition
                .wait_durable(appended.last_offset + 1, timeout)
                .await?;
            if let Err(PartitionError::NotEnoughReplicas { in_sync, min }) =
                partition.check_enough_in_sync()
            {
                return Err(PartitionError::NotEnoughReplicasAfterAppend { in_sync, min });
            }
        }
        Ok(appended)
    }

    /// A follower's append of batches fetched from the leader (see
    /// [`Partition::append_fetched`]; `asked`: what the fetch asked, the
    /// answer dropped if that no longer holds); returns the new log end once it
    /// is durable, the offset the follower fetches from next, so the
    /// leader learns from a follower's fetch offset what it holds on disk.
    pub async fn replicate(
        &self,
        topic: &str,
        index: i32,
        records: &Bytes,
        asked: Option<FetchedAt>,
        timeout: Duration,
    ) -> Result<i64, PartitionError> {
        let partition = self.get(topic, index).ok_or(PartitionError::Closed)?;
        let end = self.noting_write_errors(partition.append_fetched(records, asked).await)?;
        self.flusher.enqueue(&partition);
        partition.wait_flushed(end, timeout).await?;
        Ok(end)
    }

    /// Writes a transaction marker into a partition of this shard (see
    /// [`Partition::write_txn_marker`]) and returns its offset once it is
    /// durable. Markers pass the free-space threshold, as internal topics
    /// do: a transaction must be able to end on a nearly full disk.
    pub async fn write_txn_marker(
        &self,
        topic: &str,
        index: i32,
        marker: TxnMarker,
        timeout: Duration,
    ) -> Result<i64, PartitionError> {
        let partition = self.get(topic, index).ok_or(PartitionError::Closed)?;
        let offset = self.noting_write_errors(partition.write_txn_marker(marker).await)?;
        self.flusher.enqueue(&partition);
        partition.wait_durable(offset + 1, timeout).await?;
        Ok(offset)
    }

    /// Appends transactional batches a coordinator writes for a producer
    /// (see [`Partition::append_as_coordinator`]) and returns once they
    /// are durable (acks=all). Not refused by the free-space threshold.
    pub async fn append_as_coordinator(
        &self,
        topic: &str,
        index: i32,
        records: &Bytes,
        timeout: Duration,
    ) -> Result<Appended, PartitionError> {
        let partition = self.get(topic, index).ok_or(PartitionError::Closed)?;
        let appended = self.noting_write_errors(partition.append_as_coordinator(records).await)?;
        self.flusher.enqueue(&partition);
        partition
            .wait_durable(appended.last_offset + 1, timeout)
            .await?;
        Ok(appended)
    }

    /// A failed write may mean a full disk: shard 0 measures at once.
    fn noting_write_errors<T>(
        &self,
        outcome: Result<T, PartitionError>,
    ) -> Result<T, PartitionError> {
        if let Err(error) = &outcome {
            if error.is_write_io() {
                self.disk.note_write_error();
            }
        }
        outcome
    }

    /// Reads whole batches from a partition of this shard.
    pub async fn fetch(
        &self,
        topic: &str,
        index: i32,
        offset: i64,
        max_bytes: u32,
    ) -> Result<Fetched, PartitionError> {
        let partition = self.get(topic, index).ok_or(PartitionError::Closed)?;
        partition.fetch(offset, max_bytes).await
    }

    /// Flushes and closes every partition (shutdown); returns what the
    /// checkpoint files record for each.
    pub async fn close_all(&self) -> Vec<ClosedPartition> {
        self.flusher.stop();
        let all: Vec<_> = std::mem::take(&mut *self.partitions.borrow_mut())
            .into_values()
            .flat_map(|p| p.into_values())
            .collect();
        // Closing is mostly waiting on fdatasync; overlapping a few keeps
        // a clean stop of thousands of partitions from taking a sync each
        // in turn.
        let closes = futures_util::stream::iter(all)
            .map(|partition| async move {
                let tp = TopicPartition {
                    topic: partition.topic.to_string(),
                    partition: partition.index,
                };
                // Nothing appends during the close: the high watermark
                // stays where it is now.
                let high_watermark = partition.high_watermark();
                (tp, high_watermark, partition.close().await)
            })
            .buffer_unordered(CLOSES_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let mut closed = Vec::with_capacity(closes.len());
        for (tp, high_watermark, outcome) in closes {
            match outcome {
                Ok((recovery_point, log_start_offset)) => closed.push(ClosedPartition {
                    partition: tp,
                    recovery_point,
                    log_start_offset,
                    high_watermark,
                }),
                Err(error) => tracing::error!(%error, topic = %tp.topic, "closing partition"),
            }
        }
        closed
    }
}

/// The data directory of `config` (the first of `log.dirs`).
pub fn data_dir(config: &BrokerConfig) -> PathBuf {
    config
        .log_dirs
        .first()
        .cloned()
        .unwrap_or_else(|| PathBuf::from("rafka-data"))
}

/// The partition's leadership record as the partition's replica state.
pub fn assignment_of(leadership: &rafka_core::metadata::Leadership) -> Assignment {
    Assignment {
        leader: leadership.leader,
        leader_epoch: leadership.leader_epoch,
        partition_epoch: leadership.partition_epoch,
        replicas: leadership.replicas.clone(),
        isr: leadership.isr.clone(),
    }
}
