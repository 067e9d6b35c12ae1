//! The per-shard context: everything one core owns, and the entry points
//! other shards call through the [`Router`].
//!
//! Lives on: every shard, one `Shard` each, behind an `Rc`. Shard 0 also
//! holds the controller ([`crate::controller`]).
//!
//! Startup: every shard joins the mesh and serves; shard 0 opens the
//! metadata log, re-places partitions if the core count changed, then has
//! every shard open the partitions it owns ([`Shard::load`]) and only then
//! removes the clean-shutdown marker and declares the broker ready. The
//! metadata image reaches the other shards as an `Arc` (immutable, shared)
//! plus the deltas that say which logs to open or delete.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use event_listener::Event;
use rafka_core::config::BrokerConfig;
use rafka_core::io::{Clock, SystemClock};
use rafka_core::log::checkpoint::{
    clean_shutdown_marker_exists, partition_dir_name, read_offset_checkpoint, TopicPartition,
    LOG_START_OFFSET_CHECKPOINT_FILE, RECOVERY_POINT_CHECKPOINT_FILE,
};
use rafka_core::log::{LogConfig, RecoveryHints};
use rafka_core::metadata::{MetadataDelta, MetadataImage};

use crate::controller::ControllerShard;
use crate::flusher::Flusher;
use crate::group::{GroupService, GROUP_METADATA_TOPIC};
use crate::partition::{Appended, Fetched, Partition, PartitionError};
use crate::runtime::{RouteError, Router, ShardEnv};
use crate::storage::GlommioStorage;

/// What a shard's startup can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error("metadata log: {0}")]
    Metadata(#[from] rafka_core::metadata::MetadataLogError),
    #[error("metadata commit: {0}")]
    Commit(#[from] rafka_core::metadata::CommitError),
    #[error("checkpoint files: {0}")]
    Checkpoint(#[from] rafka_core::log::checkpoint::CheckpointError),
    #[error(transparent)]
    Io(#[from] rafka_core::io::IoError),
    #[error("opening {topic}-{partition}: {source}")]
    OpenPartition {
        topic: String,
        partition: i32,
        #[source]
        source: PartitionError,
    },
    #[error("producer ids: {0}")]
    Producer(#[from] rafka_core::producer::ProducerError),
    #[error("shard 0 failed to start the broker")]
    StartupAborted,
    #[error("creating {GROUP_METADATA_TOPIC}: {message}")]
    OffsetsTopic { message: String },
}

/// What the data dir told a shard at startup.
#[derive(Debug, Clone, Default)]
pub struct LoadHints {
    pub recovery_points: BTreeMap<TopicPartition, i64>,
    pub log_start_offsets: BTreeMap<TopicPartition, i64>,
    pub clean_shutdown: bool,
}

impl LoadHints {
    fn for_partition(&self, tp: &TopicPartition) -> RecoveryHints {
        RecoveryHints {
            recovery_point: self.recovery_points.get(tp).copied(),
            log_start_offset: self.log_start_offsets.get(tp).copied(),
            clean_shutdown: self.clean_shutdown,
        }
    }
}

pub struct Shard {
    pub router: Router<Shard>,
    pub config: Arc<BrokerConfig>,
    pub flusher: Rc<Flusher>,
    /// Shard 0 only.
    pub controller: Option<ControllerShard>,
    /// The group coordinator for this shard's `__consumer_offsets`
    /// partitions.
    groups: GroupService,
    clock: Rc<dyn Clock>,
    image: RefCell<Arc<MetadataImage>>,
    image_changed: Event,
    /// topic name -> partition index -> partition, for partitions this
    /// shard owns.
    partitions: RefCell<HashMap<String, BTreeMap<i32, Rc<Partition>>>>,
    ready: Cell<bool>,
    ready_event: Event,
    stopping: Cell<bool>,
    stop_event: Event,
}

impl Shard {
    pub fn id(&self) -> usize {
        self.router.shard_id()
    }

    pub fn count(&self) -> usize {
        self.router.shard_count()
    }

    /// The data directory (first of `log.dirs`).
    pub fn data_dir(&self) -> PathBuf {
        data_dir(&self.config)
    }

    /// This shard's coordinator (groups of the __consumer_offsets
    /// partitions it owns).
    pub fn groups(&self) -> &GroupService {
        &self.groups
    }

    /// The shard whose coordinator owns `group_id` (owner of its
    /// __consumer_offsets partition), or Err(kafka error code): 15
    /// COORDINATOR_NOT_AVAILABLE when the topic/partition does not exist yet.
    pub fn group_coordinator_shard(&self, group_id: &str) -> Result<usize, i16> {
        let partitions = self.config.offsets_topic_num_partitions.max(1);
        let partition = crate::group::partition_for_group(group_id, partitions);
        self.owner_of(GROUP_METADATA_TOPIC, partition)
            .ok_or(rafka_proto::error::ErrorCode::COORDINATOR_NOT_AVAILABLE.code())
    }

    pub fn clock(&self) -> &Rc<dyn Clock> {
        &self.clock
    }

    /// This shard's copy of the metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.borrow())
    }

    /// The shard owning `topic`/`partition`, by this shard's image.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Option<usize> {
        let image = self.image.borrow();
        let shard = image.topic(topic)?.shard_of(partition)?;
        Some(shard as usize)
    }

    /// A partition this shard owns.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Rc<Partition>> {
        self.partitions.borrow().get(topic)?.get(&index).cloned()
    }

    /// All partitions this shard owns.
    pub fn local_partitions(&self) -> Vec<Rc<Partition>> {
        let partitions = self.partitions.borrow();
        partitions
            .values()
            .flat_map(|p| p.values().cloned())
            .collect()
    }

    /// Waits until this shard's image has `topic` (after a create that
    /// another shard's controller committed), up to `timeout`.
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.image.borrow().topic(topic).is_some() {
                return true;
            }
            let listener = self.image_changed.listen();
            if self.image.borrow().topic(topic).is_some() {
                return true;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let sleep = glommio::timer::sleep(deadline - now);
            futures_util::pin_mut!(sleep);
            futures_util::future::select(listener, sleep).await;
        }
    }

    /// Produce to a partition this shard owns. With `acks == -1` returns
    /// once the records are durable (unless `write.caching`).
    pub async fn produce(
        &self,
        topic: &str,
        index: i32,
        records: &Bytes,
        acks: i16,
        timeout: Duration,
    ) -> Result<Appended, PartitionError> {
        let partition = self.partition(topic, index).ok_or(PartitionError::Closed)?;
        let appended = partition.append(records).await?;
        self.flusher.enqueue(&partition);
        if acks == -1 {
            partition
                .wait_durable(appended.last_offset + 1, timeout)
                .await?;
        }
        Ok(appended)
    }

    /// Fetch from a partition this shard owns.
    pub async fn fetch(
        &self,
        topic: &str,
        index: i32,
        offset: i64,
        max_bytes: u32,
    ) -> Result<Fetched, PartitionError> {
        let partition = self.partition(topic, index).ok_or(PartitionError::Closed)?;
        partition.fetch(offset, max_bytes).await
    }

    /// Opens every partition the image places on this shard, then marks
    /// the shard ready. Returns how many partitions it opened.
    pub async fn load(
        self: &Rc<Self>,
        image: Arc<MetadataImage>,
        hints: &LoadHints,
    ) -> Result<usize, ShardError> {
        let mine: Vec<(String, i32)> = image
            .partitions_on_shard(self.id() as u32)
            .map(|(topic, index)| (topic.name.clone(), index))
            .collect();
        *self.image.borrow_mut() = Arc::clone(&image);
        for (topic, index) in &mine {
            self.open_partition(&image, topic, *index, hints).await?;
        }
        self.image_changed.notify(usize::MAX);
        Ok(mine.len())
    }

    async fn open_partition(
        self: &Rc<Self>,
        image: &MetadataImage,
        topic: &str,
        index: i32,
        hints: &LoadHints,
    ) -> Result<(), ShardError> {
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition: index,
        };
        let dir = self.data_dir().join(partition_dir_name(topic, index));
        let config = self.log_config(image, topic);
        let partition = Partition::open(
            Rc::from(topic),
            index,
            dir,
            config,
            hints.for_partition(&tp),
            Rc::clone(&self.clock),
            self.config.write_caching,
        )
        .await
        .map_err(|source| ShardError::OpenPartition {
            topic: topic.to_string(),
            partition: index,
            source,
        })?;
        self.partitions
            .borrow_mut()
            .entry(topic.to_string())
            .or_default()
            .insert(index, partition);
        Ok(())
    }

    /// The log settings of `topic`: broker defaults plus its overrides.
    fn log_config(&self, image: &MetadataImage, topic: &str) -> LogConfig {
        let defaults = &self.config.topic_defaults;
        let overrides = image.topic(topic).map(|t| t.configs.clone());
        let config = overrides
            .and_then(|o| defaults.validate(&o).ok())
            .unwrap_or_else(|| defaults.config.clone());
        config.log_config()
    }

    /// Takes a new image from the controller and acts on the deltas that
    /// concern this shard: open new partitions, delete removed ones, apply
    /// changed configs.
    pub async fn apply_metadata(
        self: &Rc<Self>,
        image: Arc<MetadataImage>,
        deltas: Arc<Vec<MetadataDelta>>,
    ) -> Result<(), ShardError> {
        *self.image.borrow_mut() = Arc::clone(&image);
        let me = self.id() as u32;
        let no_hints = LoadHints::default();
        for delta in deltas.iter() {
            match delta {
                MetadataDelta::PartitionCreated {
                    name,
                    partition,
                    shard,
                    ..
                } if *shard == me => {
                    self.open_partition(&image, name, *partition, &no_hints)
                        .await?;
                }
                MetadataDelta::TopicRemoved { name, .. } => self.remove_topic(name).await,
                MetadataDelta::ConfigChanged { name, .. } => self.reload_config(&image, name).await,
                _ => {}
            }
        }
        let offsets_partition_opened = deltas.iter().any(|delta| {
            matches!(delta, MetadataDelta::PartitionCreated { name, shard, .. }
                if *shard == me && name == GROUP_METADATA_TOPIC)
        });
        if offsets_partition_opened {
            // New partitions are empty: this only marks them loaded, before
            // the controller's broadcast returns and groups get routed here.
            if let Err(error) = self.groups().load_partitions().await {
                tracing::error!(%error, "loading new {GROUP_METADATA_TOPIC} partitions");
            }
        }
        self.image_changed.notify(usize::MAX);
        Ok(())
    }

    async fn remove_topic(&self, name: &str) {
        let removed = self.partitions.borrow_mut().remove(name);
        for (index, partition) in removed.into_iter().flatten() {
            if name == GROUP_METADATA_TOPIC {
                self.groups().unload_partition(index);
            }
            if let Err(error) = partition.delete().await {
                tracing::error!(topic = name, partition = index, %error, "deleting partition data");
            }
        }
    }

    async fn reload_config(&self, image: &MetadataImage, name: &str) {
        let config = self.log_config(image, name);
        let partitions: Vec<_> = self
            .partitions
            .borrow()
            .get(name)
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        for partition in partitions {
            if let Err(error) = partition.set_config(config.clone()).await {
                tracing::error!(topic = name, %error, "applying topic config");
            }
        }
    }

    /// Flushes and closes every partition of this shard (shutdown); returns
    /// their checkpoint values.
    pub async fn close_partitions(&self) -> Vec<(TopicPartition, i64, i64)> {
        self.flusher.stop();
        let all: Vec<_> = std::mem::take(&mut *self.partitions.borrow_mut())
            .into_values()
            .flat_map(|p| p.into_values())
            .collect();
        let mut closed = Vec::with_capacity(all.len());
        for partition in all {
            let tp = TopicPartition {
                topic: partition.topic.to_string(),
                partition: partition.index,
            };
            match partition.close().await {
                Ok((recovery_point, log_start)) => closed.push((tp, recovery_point, log_start)),
                Err(error) => tracing::error!(%error, topic = %tp.topic, "closing partition"),
            }
        }
        closed
    }

    /// Applies retention, then compaction, to every partition of this
    /// shard (one partition at a time: a pass holds at most one segment
    /// group and one key map in memory per shard).
    pub async fn apply_retention(&self) {
        let now_ms = self.clock.now_ms();
        for partition in self.local_partitions() {
            if let Err(error) = partition.apply_retention(now_ms).await {
                tracing::warn!(topic = %partition.topic, %error, "retention");
            }
            match partition.compact(now_ms).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(
                    topic = %partition.topic,
                    partition = partition.index,
                    removed,
                    "compacted"
                ),
                Err(error) => tracing::warn!(topic = %partition.topic, %error, "compaction"),
            }
        }
    }

    /// Runs [`Shard::apply_retention`] every
    /// `log.retention.check.interval.ms` until the shard stops.
    pub async fn run_log_cleaner(self: Rc<Self>) {
        let interval_ms = self.config.log_retention_check_interval_ms.max(1) as u64;
        let interval = Duration::from_millis(interval_ms);
        while !self.is_stopping() {
            let stop = self.stop_event.listen();
            if self.is_stopping() {
                break;
            }
            let tick = glommio::timer::sleep(interval);
            futures_util::pin_mut!(tick);
            if let futures_util::future::Either::Left(_) =
                futures_util::future::select(stop, tick).await
            {
                break;
            }
            if self.is_ready() {
                self.apply_retention().await;
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        self.ready.get()
    }

    pub fn set_ready(&self) {
        self.ready.set(true);
        self.ready_event.notify(usize::MAX);
    }

    /// Tells this shard's tasks (listeners, the shard's main) to stop.
    pub fn request_stop(&self) {
        self.stopping.set(true);
        self.groups.stop();
        self.stop_event.notify(usize::MAX);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Waits until [`Shard::request_stop`].
    pub async fn wait_stop(&self) {
        while !self.stopping.get() {
            let listener = self.stop_event.listen();
            if self.stopping.get() {
                break;
            }
            listener.await;
        }
    }

    /// Waits until shard 0 has loaded every shard, or gave up (stop).
    pub async fn wait_ready(&self) {
        while !self.ready.get() && !self.stopping.get() {
            let ready = self.ready_event.listen();
            let stop = self.stop_event.listen();
            if self.ready.get() || self.stopping.get() {
                break;
            }
            futures_util::future::select(ready, stop).await;
        }
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

/// How startup went, for the broker's first log line.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub partitions_recovered: usize,
}

/// Joins the mesh, builds this shard's context and, on shard 0, loads the
/// whole broker. Every shard returns once the broker is ready.
pub async fn start(
    env: ShardEnv<Shard>,
    config: Arc<BrokerConfig>,
) -> Result<(Rc<Shard>, Started), ShardError> {
    let router = env.join().await?;
    let is_controller = router.shard_id() == 0;
    let shard_count = router.shard_count();
    let controller = if is_controller {
        match ControllerShard::open(&config, shard_count as u32).await {
            Ok(controller) => Some(controller),
            Err(error) => {
                abort_startup(&router).await;
                return Err(error);
            }
        }
    } else {
        None
    };
    let flush_delay = Duration::from_millis(config.flush_interval_ms.max(0) as u64);
    let shard = Rc::new_cyclic(|weak| Shard {
        router,
        groups: GroupService::new(weak.clone(), &config),
        config,
        flusher: Flusher::new(flush_delay),
        controller,
        clock: Rc::new(SystemClock),
        image: RefCell::new(Arc::new(MetadataImage::new())),
        image_changed: Event::new(),
        partitions: RefCell::new(HashMap::new()),
        ready: Cell::new(false),
        ready_event: Event::new(),
        stopping: Cell::new(false),
        stop_event: Event::new(),
    });
    shard.router.serve(&shard);
    glommio::spawn_local(Rc::clone(&shard.flusher).run()).detach();
    glommio::spawn_local(Rc::clone(&shard).run_log_cleaner()).detach();
    glommio::spawn_local(crate::group::run_timers(Rc::clone(&shard))).detach();
    glommio::spawn_local(crate::group::run_expiry(Rc::clone(&shard))).detach();
    let mut started = Started {
        partitions_recovered: 0,
    };
    if is_controller {
        match load_broker(&shard).await {
            Ok(count) => started.partitions_recovered = count,
            Err(error) => {
                abort_startup(&shard.router).await;
                return Err(error);
            }
        }
    } else {
        shard.wait_ready().await;
        if !shard.is_ready() {
            return Err(ShardError::StartupAborted);
        }
    }
    Ok((shard, started))
}

/// Shard 0 failed to load the broker: the other shards, which wait for it
/// to declare the broker ready, are told to stop instead, so the process
/// exits with shard 0's error rather than hanging.
async fn abort_startup(router: &Router<Shard>) {
    let calls = (1..router.shard_count())
        .map(|other| router.invoke_on(other, |s: Rc<Shard>| async move { s.request_stop() }));
    futures_util::future::join_all(calls).await;
}

/// Shard 0: has every shard open its partitions, then removes the clean
/// shutdown marker (from now on a crash needs recovery) and releases all.
async fn load_broker(shard: &Rc<Shard>) -> Result<usize, ShardError> {
    let controller = shard
        .controller
        .as_ref()
        .expect("shard 0 has the controller");
    let image = controller.replace_for_shard_count(shard).await?;
    let storage = GlommioStorage::new();
    let dir = shard.data_dir();
    rafka_core::io::Storage::create_dir_all(&storage, &dir).await?;
    let hints = Arc::new(LoadHints {
        recovery_points: read_offset_checkpoint(
            &storage,
            &dir.join(RECOVERY_POINT_CHECKPOINT_FILE),
        )
        .await?,
        log_start_offsets: read_offset_checkpoint(
            &storage,
            &dir.join(LOG_START_OFFSET_CHECKPOINT_FILE),
        )
        .await?,
        clean_shutdown: clean_shutdown_marker_exists(&storage, &dir).await?,
    });
    let loads = shard
        .router
        .invoke_on_all(move |shard: Rc<Shard>| {
            let image = Arc::clone(&image);
            let hints = Arc::clone(&hints);
            async move { shard.load(image, &hints).await.map_err(|e| e.to_string()) }
        })
        .await;
    let mut total = 0;
    for load in loads {
        match load? {
            Ok(count) => total += count,
            Err(message) => {
                tracing::error!(%message, "loading partitions");
                return Err(ShardError::Io(rafka_core::io::IoError::new(
                    "load partitions",
                    dir.clone(),
                    std::io::Error::other(message),
                )));
            }
        }
    }
    load_groups(shard).await?;
    rafka_core::log::checkpoint::remove_clean_shutdown_marker(&storage, &dir).await?;
    for result in shard
        .router
        .invoke_on_all(|shard: Rc<Shard>| async move { shard.set_ready() })
        .await
    {
        result?;
    }
    Ok(total)
}

/// Shard 0, before the broker is ready: has every shard rebuild the groups
/// of its `__consumer_offsets` partitions. The topic itself is created on
/// the first FindCoordinator for a group, as Kafka does, so a broker that
/// never sees a group carries no 50 empty partitions.
async fn load_groups(shard: &Rc<Shard>) -> Result<(), ShardError> {
    if shard.image().topic(GROUP_METADATA_TOPIC).is_none() {
        return Ok(());
    }
    let loads = shard
        .router
        .invoke_on_all(|shard: Rc<Shard>| async move {
            shard
                .groups()
                .load_partitions()
                .await
                .map_err(|e| e.to_string())
        })
        .await;
    for load in loads {
        if let Err(message) = load? {
            return Err(ShardError::OffsetsTopic { message });
        }
    }
    Ok(())
}
