//! Startup and clean stop of the shard layer.
//!
//! Startup: every shard joins the mesh, builds its parts over the storage
//! and clock it is given and serves the mesh; shard 0 opens the controller
//! (replays the metadata log), re-places partitions if the core count
//! changed, has every shard open the partitions it owns and replay its
//! coordinators' internal partitions, and only then removes the
//! clean-shutdown marker and declares the broker ready. The other shards
//! wait for that ([`start`] returns on every shard once the broker is
//! ready).
//!
//! Clean stop ([`Shard::shutdown`], shard 0, after the listeners drained):
//! with the controller paused, every shard flushes and closes its
//! partitions, then Kafka's checkpoint files and the clean-shutdown marker
//! are written so the next start skips recovery; [`Shard::stop_all`] then
//! releases every shard's tasks.
//!
//! Lives on: every shard; the orchestration runs on shard 0.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rafka_core::config::BrokerConfig;
use rafka_core::io::{Clock, SystemClock};
use rafka_core::log::checkpoint::{
    clean_shutdown_marker_exists, read_offset_checkpoint, remove_clean_shutdown_marker,
    write_clean_shutdown_marker, write_offset_checkpoint, TopicPartition,
    LOG_START_OFFSET_CHECKPOINT_FILE, RECOVERY_POINT_CHECKPOINT_FILE,
    REPLICATION_OFFSET_CHECKPOINT_FILE,
};
use rafka_core::log::RecoveryHints;
use rafka_core::metadata::MetadataImage;

use crate::controller::{ControllerShard, ControllerShardError};
use crate::coordinator::{CoordinatorHost, LoadError};
use crate::flusher::Flusher;
use crate::group::{offsets_topic, GroupCoordinator};
use crate::image::ImageView;
use crate::quorum::QuorumSettings;
use crate::registry::{ClosedPartition, OpenError, OpenHints, PartitionRegistry};
use crate::runtime::{RouteError, ShardEnv};
use crate::shard::{Shard, ShardParts};
use crate::storage::{GlommioStorage, ShardStorage};
use crate::txn::{transaction_topic, TransactionCoordinator};
use rafka_core::io::cache::{CachedStorage, FileBudget};

/// What a shard's startup or stop can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Controller(#[from] ControllerShardError),
    #[error("checkpoint files: {0}")]
    Checkpoint(#[from] rafka_core::log::checkpoint::CheckpointError),
    #[error(transparent)]
    Io(#[from] rafka_core::io::IoError),
    #[error(transparent)]
    OpenPartition(#[from] OpenError),
    #[error("loading coordinators: {0}")]
    Coordinator(#[from] LoadError),
    #[error("shard {shard} failed to load: {message}")]
    Load { shard: usize, message: String },
    #[error("shard 0 failed to start the broker")]
    StartupAborted,
}

/// What the data dir told a shard at startup.
#[derive(Debug, Clone, Default)]
pub struct LoadHints {
    pub recovery_points: BTreeMap<TopicPartition, i64>,
    pub log_start_offsets: BTreeMap<TopicPartition, i64>,
    /// `replication-offset-checkpoint`; None when the data dir has none
    /// (written by a version before it).
    pub high_watermarks: Option<BTreeMap<TopicPartition, i64>>,
    pub clean_shutdown: bool,
}

impl LoadHints {
    fn for_partition(&self, tp: &TopicPartition) -> OpenHints {
        let recovery = RecoveryHints {
            recovery_point: self.recovery_points.get(tp).copied(),
            log_start_offset: self.log_start_offsets.get(tp).copied(),
            clean_shutdown: self.clean_shutdown,
        };
        // A partition the checkpoint does not name was created after its
        // last write: nothing of it is vouched for.
        let high_watermark = self
            .high_watermarks
            .as_ref()
            .map(|checkpointed| checkpointed.get(tp).copied().unwrap_or(0));
        OpenHints {
            recovery,
            high_watermark,
        }
    }
}

/// How startup went, for the broker's first log line.
#[derive(Debug, Clone, Copy)]
pub struct Started {
    pub partitions_recovered: usize,
}

/// [`start_with`] over glommio's storage, within this shard's share of the
/// open-file budget, and the system clock, plus the free-space monitor of
/// the data dir ([`crate::disk`]): the broker.
pub async fn start(
    env: ShardEnv<Shard>,
    config: Arc<BrokerConfig>,
) -> Result<(Rc<Shard>, Started), ShardError> {
    start_clocked(env, config, Rc::new(SystemClock)).await
}

/// [`start`] with `clock` instead of the system clock: the broker over
/// its real files in a time a test moves (transaction timeouts, expiries).
pub async fn start_clocked(
    env: ShardEnv<Shard>,
    config: Arc<BrokerConfig>,
    clock: Rc<dyn Clock>,
) -> Result<(Rc<Shard>, Started), ShardError> {
    let budget = FileBudget::new(file_budget_per_shard(&config, env.shard_count()));
    let storage = CachedStorage::new(GlommioStorage::new(), budget);
    let (shard, started) = start_with(env, config, storage, clock).await?;
    shard.start_disk_monitor().await;
    Ok((shard, started))
}

/// One shard's share of `rafka.log.open.files.max`, or of a quarter of
/// the process's descriptor limit when unset: the rest stays for sockets,
/// the io_uring rings, the duplicated descriptors zero-copy fetch sends
/// from (up to one per open segment) and the files of in-flight work.
pub fn file_budget_per_shard(config: &BrokerConfig, shard_count: usize) -> usize {
    let total = match u64::try_from(config.log_open_files_max) {
        Ok(files) if files > 0 => files,
        _ => nofile_limit() / 4,
    };
    let per_shard = total / shard_count.max(1) as u64;
    usize::try_from(per_shard).unwrap_or(usize::MAX)
}

/// The soft RLIMIT_NOFILE of the process (1024 if it cannot be read,
/// 2^20 if unlimited).
fn nofile_limit() -> u64 {
    match crate::limits::open_files_limit() {
        Ok(limit) if limit.soft == libc::RLIM_INFINITY => 1 << 20,
        Ok(limit) => limit.soft,
        Err(_) => 1024,
    }
}

/// Joins the mesh, builds this shard over `storage` and `clock` and, on
/// shard 0, loads the whole broker. Every shard returns once the broker is
/// ready.
pub async fn start_with<S: ShardStorage>(
    env: ShardEnv<Shard<S>>,
    config: Arc<BrokerConfig>,
    storage: S,
    clock: Rc<dyn Clock>,
) -> Result<(Rc<Shard<S>>, Started), ShardError> {
    let router = env.join().await?;
    let is_controller = router.shard_id() == 0;
    let controller = if is_controller {
        let shard_count = u32::try_from(router.shard_count()).unwrap_or(u32::MAX);
        let opened = match QuorumSettings::from_config(&config) {
            Ok(quorum) => {
                ControllerShard::open(storage.clone(), &config, shard_count, quorum).await
            }
            Err(error) => Err(error.into()),
        };
        match opened {
            Ok(controller) => Some(controller),
            Err(error) => {
                abort_startup(&router).await;
                return Err(error.into());
            }
        }
    } else {
        None
    };
    let flush_delay = Duration::from_millis(config.flush_interval_ms.max(0) as u64);
    let registry = Rc::new(PartitionRegistry::new(
        storage,
        Rc::clone(&clock),
        Arc::clone(&config),
        Flusher::new(flush_delay),
    ));
    // A cluster's broker serves nothing before its own registration is let
    // in (a restart may find the old process's leaderships in the image).
    let image = Rc::new(ImageView::registering(
        config.quorum_configured() && config.process_roles.broker,
    ));
    let host = CoordinatorHost::new(
        offsets_topic(&config),
        router.shard_id(),
        config.node_id,
        Rc::clone(&registry),
        Rc::clone(&image),
        Rc::clone(&clock),
    );
    let groups = Rc::new(GroupCoordinator::new(host, &config));
    let txn_host = CoordinatorHost::new(
        transaction_topic(&config),
        router.shard_id(),
        config.node_id,
        Rc::clone(&registry),
        Rc::clone(&image),
        Rc::clone(&clock),
    );
    let txns = Rc::new(TransactionCoordinator::new(txn_host, &config));
    let shard = Rc::new(Shard::from_parts(ShardParts {
        router,
        config,
        clock,
        registry,
        image,
        groups,
        txns,
        controller,
    }));
    shard.txns().attach(&shard);
    shard.router.serve(&shard);
    glommio::spawn_local(Rc::clone(shard.flusher()).run()).detach();
    glommio::spawn_local(Rc::clone(&shard).run_log_cleaner()).detach();
    glommio::spawn_local(Rc::clone(&shard).run_scrubber()).detach();
    glommio::spawn_local(Rc::clone(shard.groups()).run_timers()).detach();
    glommio::spawn_local(Rc::clone(shard.groups()).run_expiry()).detach();
    glommio::spawn_local(Rc::clone(shard.txns()).run_timers()).detach();
    glommio::spawn_local(Rc::clone(shard.txns()).run_expiry()).detach();
    glommio::spawn_local(crate::quota::run_expiry(Rc::clone(&shard))).detach();
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
        shard.lifecycle().wait_ready().await;
        if !shard.is_ready() {
            return Err(ShardError::StartupAborted);
        }
    }
    Ok((shard, started))
}

/// Shard 0 failed to load the broker: the other shards, which wait for it
/// to declare the broker ready, are told to stop instead, so the process
/// exits with shard 0's error rather than hanging.
async fn abort_startup<S: ShardStorage>(router: &crate::runtime::Router<Shard<S>>) {
    let calls = (1..router.shard_count())
        .map(|other| router.invoke_on(other, |s: Rc<Shard<S>>| async move { s.request_stop() }));
    futures_util::future::join_all(calls).await;
}

/// Shard 0: has every shard open its partitions and load its coordinators,
/// then removes the clean shutdown marker (from now on a crash needs
/// recovery) and releases all.
async fn load_broker<S: ShardStorage>(shard: &Rc<Shard<S>>) -> Result<usize, ShardError> {
    let controller = shard.controller().ok_or(ShardError::StartupAborted)?;
    let image = controller.replace_for_shard_count().await?;
    let storage = shard.registry().storage().clone();
    let dir = shard.registry().data_dir();
    storage.create_dir_all(&dir).await?;
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
        high_watermarks: match storage
            .exists(&dir.join(REPLICATION_OFFSET_CHECKPOINT_FILE))
            .await?
        {
            true => Some(
                read_offset_checkpoint(&storage, &dir.join(REPLICATION_OFFSET_CHECKPOINT_FILE))
                    .await?,
            ),
            false => None,
        },
        clean_shutdown: clean_shutdown_marker_exists(&storage, &dir).await?,
    });
    let loads = shard
        .router
        .invoke_on_all(move |shard: Rc<Shard<S>>| {
            let image = Arc::clone(&image);
            let hints = Arc::clone(&hints);
            async move { shard.load(image, &hints).await.map_err(|e| e.to_string()) }
        })
        .await;
    let mut total = 0;
    for (index, load) in loads.into_iter().enumerate() {
        match load? {
            Ok(count) => total += count,
            Err(message) => {
                tracing::error!(shard = index, %message, "loading partitions");
                return Err(ShardError::Load {
                    shard: index,
                    message,
                });
            }
        }
    }
    remove_clean_shutdown_marker(&storage, &dir).await?;
    crate::hw_checkpoint::spawn(shard);
    if let Some(quorum) = controller.quorum() {
        quorum.start_applying(crate::apply::ShardPublisher::new(shard));
        glommio::spawn_local(follow_controller(Rc::downgrade(shard), quorum)).detach();
        crate::registration::spawn_fencing(shard);
    }
    for result in shard
        .router
        .invoke_on_all(|shard: Rc<Shard<S>>| async move {
            crate::replication::spawn(&shard);
            crate::isr::spawn(&shard);
        })
        .await
    {
        result?;
    }
    for result in shard
        .router
        .invoke_on_all(|shard: Rc<Shard<S>>| async move { shard.lifecycle().set_ready() })
        .await
    {
        result?;
    }
    Ok(total)
}

/// Shard 0 in a cluster: tells every shard who the active controller is
/// whenever the quorum's leader changes.
async fn follow_controller<S: ShardStorage>(
    shard: std::rc::Weak<Shard<S>>,
    quorum: Rc<crate::quorum::Quorum>,
) {
    let mut seen = 0;
    loop {
        seen = quorum.leader_change(seen).await;
        let Some(shard) = shard.upgrade() else {
            return;
        };
        let controller = crate::quorum::driver::node_id_of(seen);
        shard
            .router
            .invoke_on_all(move |s: Rc<Shard<S>>| async move {
                s.image_view().set_controller(controller)
            })
            .await;
    }
}

impl<S: ShardStorage> Shard<S> {
    /// Opens every partition the image places on this shard, then replays
    /// its coordinators' internal partitions that this broker leads. Returns how many partitions
    /// it opened.
    async fn load(
        &self,
        image: Arc<MetadataImage>,
        hints: &LoadHints,
    ) -> Result<usize, ShardError> {
        let me = u32::try_from(self.id()).unwrap_or(u32::MAX);
        let node_id = self.config.node_id;
        let mine: Vec<(String, i32)> = image
            .partitions_on_shard(me)
            .filter(|(topic, index)| topic.is_replica(*index, node_id))
            .map(|(topic, index)| (topic.name.clone(), index))
            .collect();
        self.image_view().set(Arc::clone(&image));
        let opens = mine.iter().map(|(topic, index)| {
            let tp = TopicPartition {
                topic: topic.clone(),
                partition: *index,
            };
            (topic.as_str(), *index, hints.for_partition(&tp))
        });
        for opened in self.registry().open_all(&image, opens).await {
            opened?;
        }
        // `__consumer_offsets` is created by the first FindCoordinator for
        // a group, as Kafka does: a broker that never saw a group has none.
        // Only the partitions this broker leads are loaded; the others
        // follow their leadership (`apply`).
        self.groups().load_partitions().await?;
        self.txns().load_partitions().await?;
        self.image_view().notify();
        Ok(mine.len())
    }

    /// Clean stop, on shard 0 once no connection serves requests any more:
    /// every shard flushes and closes its partitions, then the checkpoint
    /// files and the clean-shutdown marker are written, with no controller
    /// operation in flight.
    pub async fn shutdown(self: &Rc<Self>) -> Result<(), ShardError> {
        let controller = self.controller().ok_or(ShardError::StartupAborted)?;
        let gate = Rc::clone(self.hw_checkpoint());
        controller
            .shutdown(async || {
                gate.close_with(async || self.close_and_checkpoint().await)
                    .await
            })
            .await
    }

    /// Every shard flushes and closes its partitions; then the checkpoint
    /// files and the clean-shutdown marker are written.
    async fn close_and_checkpoint(&self) -> Result<(), ShardError> {
        let closed = self
            .router
            .invoke_on_all(|shard: Rc<Shard<S>>| async move { shard.registry().close_all().await })
            .await;
        let mut all = Vec::new();
        for shard_closed in closed {
            all.extend(shard_closed?);
        }
        self.write_checkpoints(&all).await
    }

    async fn write_checkpoints(&self, closed: &[ClosedPartition]) -> Result<(), ShardError> {
        let recovery_points: BTreeMap<TopicPartition, i64> = closed
            .iter()
            .map(|c| (c.partition.clone(), c.recovery_point))
            .collect();
        let log_starts: BTreeMap<TopicPartition, i64> = closed
            .iter()
            .map(|c| (c.partition.clone(), c.log_start_offset))
            .collect();
        let storage = self.registry().storage();
        let dir = self.registry().data_dir();
        let recovery = dir.join(RECOVERY_POINT_CHECKPOINT_FILE);
        write_offset_checkpoint(storage, &recovery, &recovery_points).await?;
        let starts = dir.join(LOG_START_OFFSET_CHECKPOINT_FILE);
        write_offset_checkpoint(storage, &starts, &log_starts).await?;
        let high_watermarks: BTreeMap<TopicPartition, i64> = closed
            .iter()
            .map(|c| (c.partition.clone(), c.high_watermark))
            .collect();
        let replication = dir.join(REPLICATION_OFFSET_CHECKPOINT_FILE);
        write_offset_checkpoint(storage, &replication, &high_watermarks).await?;
        write_clean_shutdown_marker(storage, &dir).await?;
        Ok(())
    }

    /// Releases every shard's tasks (after [`Shard::shutdown`], or when the
    /// broker gives up).
    pub async fn stop_all(&self) {
        for stopped in self
            .router
            .invoke_on_all(|shard: Rc<Shard<S>>| async move { shard.request_stop() })
            .await
        {
            if let Err(error) = stopped {
                tracing::debug!(%error, "stopping a shard");
            }
        }
    }
}
