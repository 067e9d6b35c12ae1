//! rafka-testkit: the one harness every test uses — one seeded generator,
//! one raw wire client, one way to start a broker in process and one to
//! start the binary. Test code only (`publish = false`); the crates take it
//! as a dev-dependency.
//!
//! # Layout
//! - `rng`: [`rng::Rng`], SplitMix64 with a seed; `RAFKA_TEST_SEED`
//!   replays a failing seed ([`rng::Rng::from_env`], [`rng::seeds`]).
//! - `wire`: [`wire::WireClient`], a blocking Kafka client on one TCP
//!   connection (any kafka-protocol request at any version, timeouts on
//!   every socket operation, raw frames for bad bytes), and the frame and
//!   header encoders raw-byte tests build requests from.
//! - `wire_group`: the consumer-group flows of `WireClient` (join, sync,
//!   heartbeat, leave, commit, offsets), the embedded consumer-protocol
//!   bytes and Kafka's range assignor.
//! - `broker`: [`broker::TestBroker`], a broker core in process (1..N
//!   shards, temp dir, optional loopback listener, optionally a
//!   [`clock::SharedClock`] the test moves) running a scenario on
//!   shard 0 and stopping cleanly; [`broker::Broker`], the scenario's
//!   handle (`call` a request through the broker's dispatch, create
//!   topics, produce, read partitions). The only file that knows
//!   rafka-net's handler API and the controller's.
//! - `process`: [`process::BrokerProcess`], the broker binary as a child
//!   process (ephemeral port, temp dir, SIGTERM / SIGKILL / restart; or
//!   a given address, data dir or open-files limit, and
//!   [`process::BrokerProcess::try_start`] for a start that must fail).
//! - `proto`: kafka-protocol request pieces shared by tests (names,
//!   CreateTopics / Metadata entries, Produce requests).
//! - `tls`: [`tls::TestPki`], a CA with server and client certificates
//!   made per test (rcgen) as PEM files, and the rustls client configs
//!   [`wire::WireClient::connect_tls`] speaks through.
//! - `records`: batch builders, a batch as the log stores it, a
//!   partition's segment files read back.

pub mod broker;
pub mod clock;
pub mod process;
pub mod proto;
pub mod proxy;
pub mod records;
pub mod rng;
pub mod tls;
pub mod wire;
pub mod wire_group;

pub use broker::{Broker, TestBroker, SHARD_MATRIX};
pub use clock::SharedClock;
pub use process::{BrokerOptions, BrokerProcess};
pub use rng::Rng;
pub use wire::{WireClient, WireError};
