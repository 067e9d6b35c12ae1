//! rafka-shard: one glommio executor per core.
//!
//! # Layout
//! - `runtime`: starts one executor per shard and joins them in a channel
//!   mesh; [`runtime::Router`] runs work on the shard that owns it.

pub mod runtime;
