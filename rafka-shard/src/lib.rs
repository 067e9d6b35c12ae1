//! rafka-shard: one glommio executor per core, and everything a core owns.
//!
//! # Layout
//! - `runtime`: starts one executor per shard and joins them in a channel
//!   mesh; [`runtime::Router`] runs work on the shard that owns it;
//!   [`runtime::within`] bounds a wait with the executor's timer.
//! - `storage`: [`storage::GlommioStorage`], the io_uring-backed
//!   implementation of rafka-core's storage traits; [`storage::FileRegion`]
//!   (what zero-copy fetch sends) and [`storage::ShardStorage`], what the
//!   shard layer needs of any storage (glommio, or the simulated one under
//!   feature `sim`).
//! - `partition`: one partition's log + producer state + high watermark.
//! - `flusher`: the per-shard group-commit loop.
//! - `registry`: [`registry::PartitionRegistry`], the partitions a shard
//!   owns (open, produce, fetch, close, delete).
//! - `disk`: [`disk::DiskSpace`], the data dir's free space as the produce
//!   path sees it, and shard 0's monitor refusing produce below
//!   `rafka.log.dir.min.free.bytes`.
//! - `image`: [`image::ImageView`], a shard's copy of the metadata image.
//! - `apply`: a committed metadata change applied on every shard (the
//!   controller's publisher).
//! - `coordinator`: [`coordinator::CoordinatorHost`], what any coordinator
//!   living in an internal topic needs (ownership, replay, persist, timers).
//! - `group`: [`group::GroupCoordinator`], the group coordinator on the
//!   host, speaking rafka-core's request and result types.
//! - `controller`: shard 0's metadata log writer and producer-id
//!   allocator; `controller_handle`: [`controller_handle::ControllerHandle`],
//!   the only way to reach it.
//! - `lifecycle`: ready / stopping flags; `startup`: start and clean stop;
//!   `cleaner`: retention and compaction; `scrubber`: re-verifies closed
//!   segments and takes damaged batches out of service.
//! - `log_health`: [`log_health::LogHealth`], recovery and scrub facts
//!   logged with their partition and counted for metrics.
//! - `shard`: [`shard::Shard`], the per-core context tying the parts
//!   together.
//! - `quota`: [`quota::ShardQuotas`], the client quota sensors a shard
//!   owns, and the serving shard's report to a sensor's owner.
//! - `histogram`: fixed-bucket latency histograms for metrics.
//! - `turnstile`: first-come, first-served turns (appends in call order).
//! - `limits`: the process's open-file budget (RLIMIT_NOFILE): raised to
//!   the hard limit at start, read back by whatever sizes itself by it.
//!
//! Modules depend downwards only: `shard` holds the parts; `apply`,
//! `startup`, `cleaner`, `scrubber`, `quota` and `controller_handle` act on a shard; the parts
//! know nothing of `Shard`.

pub mod apply;
pub mod cleaner;
pub mod controller;
pub mod controller_handle;
pub mod coordinator;
pub mod disk;
pub mod flusher;
pub mod group;
pub mod histogram;
pub mod hw_checkpoint;
pub mod image;
pub mod isr;
pub mod kafka_client;
pub mod lifecycle;
pub mod limits;
pub mod log_health;
pub mod partition;
pub mod quorum;
pub mod quota;
pub mod registration;
pub mod registry;
pub mod replication;
pub mod runtime;
pub mod scrubber;
pub mod shard;
pub mod startup;
pub mod storage;
pub mod turnstile;
pub mod txn;
