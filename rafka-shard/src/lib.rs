//! rafka-shard: one glommio executor per core.
//!
//! # Layout
//! - `storage`: [`storage::GlommioStorage`], the io_uring-backed
//!   implementation of rafka-core's storage traits.
//! - `shard`: [`shard::Shard`], the per-core context (metadata image,
//!   owned partitions, flusher) and broker startup ([`shard::start`]).
//! - `partition`: one partition's log + producer state + high watermark.
//! - `flusher`: the per-shard group-commit loop.
//! - `group`: [`group::GroupService`], the shard's group coordinator
//!   (rafka-core's machine + timers + `__consumer_offsets` persistence).
//! - `histogram`: fixed-bucket latency histograms (fsync, request
//!   latency) and their mergeable snapshots, for metrics.
//! - `controller`: shard 0's metadata log writer and producer-id allocator.
//! - `runtime`: starts one executor per shard and joins them in a channel
//!   mesh; [`runtime::Router`] runs work on the shard that owns it.

pub mod controller;
pub mod flusher;
pub mod group;
mod group_convert;
pub mod histogram;
pub mod partition;
pub mod runtime;
pub mod shard;
pub mod storage;
