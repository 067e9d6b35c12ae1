//! rafka-core: broker logic that does no IO of its own.
//!
//! # Layout
//! - `acl`: Kafka's authorization vocabulary (principal, operations,
//!   resources) that the request context's `authorize` speaks.
//! - `io`: the [`io::Storage`] / [`io::StorageFile`] traits the log writes
//!   through, and the [`io::Clock`].
//! - `log`: one partition's segmented log — segments, offset and time
//!   indexes, recovery, roll, retention, checkpoints.
//! - `sim`: a fault-injecting in-memory [`io::Storage`] for tests.
//! - `metadata`: the controller's deterministic state machine (topics,
//!   partitions, placement, configs) and its records.
//! - `quorum`: the metadata quorum's durable raft storage (raft-rs's
//!   entries, hard state and snapshots over [`io::Storage`], and the
//!   in-memory `raft::Storage` its RawNode reads).
//! - `producer`: idempotent producer state per partition (sequence checks,
//!   epoch fencing, snapshots, recovery) and the producer id allocator.
//! - `coordinator`: what coordinators kept in internal topics share
//!   ([`coordinator::InternalRecord`], Kafka's key -> partition hash).
//! - `group`: the classic group coordinator (Kafka's group state machine,
//!   committed offsets, `__consumer_offsets` record formats), sans IO.
//! - `sasl`: the SASL mechanisms' server side, sans IO (PLAIN, SCRAM-SHA-256
//!   and -512, OAUTHBEARER with unsecured or JWKS-checked tokens), SCRAM
//!   credentials, Kafka's JAAS and `--add-scram` syntaxes.
//! - `txn`: the transaction coordinator (Kafka's state machine, the
//!   `__transaction_state` records), sans IO.
//! - `quota`: client quotas, sans IO — Kafka's entities, keys and
//!   precedence, the quota table the metadata image holds, the sampled
//!   rate and throttle time, the sensors, and which shard owns each.
//! - `logger`: runtime logger levels (Kafka's BROKER_LOGGER resource).
//! - `config`: broker settings (Kafka's `server.properties` names) and topic
//!   configs with Kafka's names and defaults.

pub mod acl;
pub mod config;
pub mod coordinator;
pub mod group;
pub mod io;
pub mod log;
pub mod logger;
pub mod metadata;
pub mod producer;
pub mod quorum;
pub mod quota;
pub mod sasl;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod txn;
