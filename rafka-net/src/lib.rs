//! rafka-net: listeners, connections and one handler per Kafka API.
//!
//! # Layout
//! - `listener`: [`listener::bind`] / [`listener::bind_first`] (SO_REUSEPORT
//!   on every shard), [`listener::ShardNet`] — one shard's accept loops,
//!   connection bound, shared byte budget and graceful shutdown.
//! - `connection`: one connection's task — frames in, requests served
//!   concurrently, responses out in request order, in-flight bounds, idle
//!   timeout, protocol errors.
//! - `connection_limits`: Kafka's connection limits at accept
//!   (`max.connections`, per IP, creation rates, the IP quota), counted
//!   broker-wide across shards.
//! - `stream`: [`stream::Stream`], a connection's bytes: plain TCP or TLS
//!   over it; `tls`: [`tls::TlsServer`], a TLS listener built from its
//!   `ssl.*` settings, its handshake (with a deadline) and the client
//!   certificate's principal.
//! - `service`: the contract between the two sides: [`service::Request`],
//!   [`service::Response`], the [`service::Service`] trait.
//! - `session`: [`session::Session`], a connection's identity (listener,
//!   principal, client software, peer) that every request carries, and
//!   its end (`closed`), which long waits race.
//! - `throttle`: how a throttled client waits (KIP-219 muting, the
//!   delayed response of older versions) and the request quota's
//!   measure of handling time.
//! - `latch`: [`latch::Latch`], the one-way signal behind a shard's
//!   shutdown and a session's end.
//! - `read_buffer`: a connection's read buffer, which holds no memory
//!   while the connection waits with nothing buffered.
//! - `fetch_session`: per-shard fetch sessions (KIP-227) for Fetch.
//! - `fetch_encode`: the Fetch response written as chunks whose records are
//!   file regions; `zero_copy`: those chunks and the `sendfile` path that
//!   sends the regions from the page cache.
//! - `handlers`: the broker's `Service` — the handler table that drives
//!   dispatch and ApiVersions, the request driver and
//!   [`handlers::RequestContext`], the fan-out to partition owners, and one
//!   file per API (`handlers/api_versions.rs`, ...).
//! - `metrics`: the connection layer's per-shard counters;
//!   `metrics_shard`: per-shard request/topic recording (thread local);
//!   `metrics_snapshot`: a scrape's merged, `Send` view and its Prometheus
//!   encoding; `metrics_http`: the `/metrics` HTTP endpoint.
//! - `server`: the whole broker — shards, listeners on every shard, the
//!   ready line, the clean stop ([`server::run`]).
//!
//! Per shard, at start: build the table ([`handlers::broker_table`]) and the
//! handlers, then `ShardNet::new(service, table, config)` and
//! `serve(listener)`; on SIGTERM `shutdown().await`.

pub mod connection;
pub mod connection_limits;
pub mod fetch_budget;
pub mod fetch_encode;
pub mod fetch_session;
pub mod handlers;
pub mod latch;
pub mod listener;
pub mod metrics;
pub mod metrics_http;
pub mod metrics_shard;
pub mod metrics_snapshot;
mod read_buffer;
pub mod sasl;
pub mod server;
pub mod service;
pub mod session;
pub mod stream;
pub mod throttle;
pub mod tls;
pub mod zero_copy;

pub use connection::ConnectionConfig;
pub use listener::{bind, bind_first, BindError, NetConfig, ServeError, ShardNet};
pub use metrics::{NetMetrics, NetMetricsSnapshot};
pub use service::{Request, Response, Service};
