//! rafka-shard: one glommio executor per core.
//!
//! # Layout
//! - `storage`: [`storage::GlommioStorage`], the io_uring-backed
//!   implementation of rafka-core's storage traits.
//! - `runtime`: starts one executor per shard and joins them in a channel
//!   mesh; [`runtime::Router`] runs work on the shard that owns it.

pub mod runtime;
pub mod storage;
