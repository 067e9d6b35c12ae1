//! Test support for end-to-end tests of the `rafka` binary. The process
//! harness itself (start on an ephemeral port, SIGTERM / SIGKILL / restart)
//! and the raw wire client live in `rafka-testkit`; this module adds what
//! only this crate has.
//!
//! # Layout
//! - `mod.rs`: [`rafka`], the options that start this crate's binary.
//! - `checker.rs`: the fault tests' history (records attempted,
//!   acknowledged, read) and its verdict: lost, phantom, offset reused,
//!   duplicated.
//! - `cli.rs`: running the binary as the operator CLI against a broker.
//! - `client.rs`: librdkafka helpers (admin, producer, consumer) and the
//!   deterministic [`client::Record`] generator the tests check against.
//! - `cluster.rs`: a 3-node cluster (scripts/cluster.sh) for fault tests:
//!   kill -9, SIGSTOP / SIGCONT, restart, partition and coordinator state.
//! - `load.rs`: an idempotent acks=all producer thread and a whole-topic
//!   reader, both noting what they see in the checker.
//! - `ports.rs`: port ranges for test clusters, outside the ephemeral range.
//! - `seed.rs`: the randomized tests' seed and the note that replays it.

// Each integration test crate compiles this module and uses a different
// subset of it; what one crate leaves unused is not dead.
#![allow(dead_code)]

pub mod checker;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod load;
pub mod ports;
pub mod seed;

use rafka_testkit::BrokerOptions;

/// This crate's `rafka` binary with `cores` shards and no config file.
pub fn rafka(cores: u32) -> BrokerOptions {
    BrokerOptions::new(env!("CARGO_BIN_EXE_rafka"), cores)
}
