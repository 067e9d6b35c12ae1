//! Per-shard counters of the network layer: connections, requests per API
//! key, protocol errors and bytes moved.
//!
//! Plain `Cell<u64>`s: each shard owns its own [`NetMetrics`] and only that
//! shard's tasks touch it, so counting is a load and a store, no atomics.
//! Readers take a [`NetMetricsSnapshot`]; issue 5 exports these through
//! Prometheus by gathering one snapshot per shard.
//!
//! Lives on: one per shard, shared by its listeners and connections.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// API keys with their own request counter. Kafka's keys are dense and stay
/// below this (the highest in 4.x is under 100); a larger key is never
/// dispatched, because the API table only serves keys it knows.
pub const API_KEY_SLOTS: usize = 128;

/// The counters of one shard.
#[derive(Debug)]
pub struct NetMetrics {
    connections_accepted: Cell<u64>,
    connections_closed: Cell<u64>,
    connections_rejected: Cell<u64>,
    connections_idle_closed: Cell<u64>,
    accept_failures: Cell<u64>,
    tls_handshakes: Cell<u64>,
    tls_handshake_failures: Cell<u64>,
    sasl_authentication_failures: Cell<u64>,
    frame_errors: Cell<u64>,
    header_errors: Cell<u64>,
    handler_errors: Cell<u64>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    read_buffer_bytes: Cell<u64>,
    requests_by_api_key: [Cell<u64>; API_KEY_SLOTS],
    /// By (listener, reason): connections refused by a connection limit.
    connections_limited: RefCell<BTreeMap<(String, &'static str), u64>>,
    /// By listener: ms the accept loop waited for the creation rate.
    accept_throttle_ms: RefCell<BTreeMap<String, u64>>,
    /// By listener: accepts that waited for a `max.connections` slot.
    accepts_blocked: RefCell<BTreeMap<String, u64>>,
}

/// A copy of one shard's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetMetricsSnapshot {
    /// Connections accepted and given a connection task.
    pub connections_accepted: u64,
    /// Connections whose task has ended, for any reason.
    pub connections_closed: u64,
    /// Connections closed at once because the shard was at `connections_max`
    /// or shutting down; not counted as accepted.
    pub connections_rejected: u64,
    /// Of the closed connections, those closed for `connections.max.idle.ms`.
    pub connections_idle_closed: u64,
    /// Failed `accept` calls (EMFILE, ENFILE, ENOBUFS, ...): each is a
    /// connection the kernel queued that waits for a descriptor.
    pub accept_failures: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed or timed out (each closed its connection).
    pub tls_handshake_failures: u64,
    /// SASL authentications (and re-authentications) refused: wrong
    /// credentials, expired tokens, bad exchanges; each closed its
    /// connection. Not counted in `handler_errors`.
    pub sasl_authentication_failures: u64,
    /// Refused size prefixes (negative, zero, above the limit).
    pub frame_errors: u64,
    /// Refused request headers: truncated, unknown API key, unsupported
    /// version (other than ApiVersions), malformed client id or tags.
    pub header_errors: u64,
    /// Requests whose handler asked to close the connection (body decode
    /// failures, APIs without a handler).
    pub handler_errors: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Memory held by the connections' read buffers now (a gauge): frames
    /// being read; an idle connection holds none.
    pub read_buffer_bytes: u64,
    /// `(api_key, requests)` for every key with at least one request, in key
    /// order.
    pub requests_by_api_key: Vec<(i16, u64)>,
    /// `(listener, reason, connections)` refused by a connection limit:
    /// reason `per_ip` (`max.connections.per.ip`, closed at once),
    /// `ip_rate` (the IP's connection creation rate quota, closed after
    /// the throttle time) or `max_connections` (the shard's
    /// `connections_max`, closed at once).
    pub connections_limited: Vec<(String, String, u64)>,
    /// `(listener, ms)` the accept loop waited for
    /// `max.connection.creation.rate`.
    pub accept_throttle_ms: Vec<(String, u64)>,
    /// `(listener, accepts)` that waited for a `max.connections` slot.
    pub accepts_blocked: Vec<(String, u64)>,
}

impl NetMetricsSnapshot {
    /// Connections refused for `reason` (any listener).
    pub fn limited(&self, reason: &str) -> u64 {
        self.connections_limited
            .iter()
            .filter(|(_, r, _)| r == reason)
            .map(|(_, _, n)| n)
            .sum()
    }

    /// Accept throttle time over every listener, in ms.
    pub fn accept_throttle_ms_total(&self) -> u64 {
        self.accept_throttle_ms.iter().map(|(_, ms)| ms).sum()
    }

    /// Accepts that waited for a slot, over every listener.
    pub fn accepts_blocked_total(&self) -> u64 {
        self.accepts_blocked.iter().map(|(_, n)| n).sum()
    }

    /// Every error that closed a connection because of what the peer sent.
    pub fn protocol_errors(&self) -> u64 {
        self.frame_errors + self.header_errors + self.handler_errors
    }

    /// Requests counted for `api_key`.
    pub fn requests(&self, api_key: i16) -> u64 {
        self.requests_by_api_key
            .iter()
            .find(|(key, _)| *key == api_key)
            .map_or(0, |(_, count)| *count)
    }

    pub fn requests_total(&self) -> u64 {
        self.requests_by_api_key.iter().map(|(_, n)| n).sum()
    }
}

impl Default for NetMetrics {
    fn default() -> Self {
        NetMetrics {
            connections_accepted: Cell::new(0),
            connections_closed: Cell::new(0),
            connections_rejected: Cell::new(0),
            connections_idle_closed: Cell::new(0),
            accept_failures: Cell::new(0),
            tls_handshakes: Cell::new(0),
            tls_handshake_failures: Cell::new(0),
            sasl_authentication_failures: Cell::new(0),
            frame_errors: Cell::new(0),
            header_errors: Cell::new(0),
            handler_errors: Cell::new(0),
            bytes_in: Cell::new(0),
            bytes_out: Cell::new(0),
            read_buffer_bytes: Cell::new(0),
            requests_by_api_key: std::array::from_fn(|_| Cell::new(0)),
            connections_limited: RefCell::new(BTreeMap::new()),
            accept_throttle_ms: RefCell::new(BTreeMap::new()),
            accepts_blocked: RefCell::new(BTreeMap::new()),
        }
    }
}

fn bump(counter: &Cell<u64>, by: u64) {
    counter.set(counter.get().wrapping_add(by));
}

impl NetMetrics {
    pub fn new() -> Self {
        NetMetrics::default()
    }

    pub(crate) fn connection_accepted(&self) {
        bump(&self.connections_accepted, 1);
    }

    pub(crate) fn connection_closed(&self) {
        bump(&self.connections_closed, 1);
    }

    pub(crate) fn connection_rejected(&self) {
        bump(&self.connections_rejected, 1);
    }

    pub(crate) fn connection_idle_closed(&self) {
        bump(&self.connections_idle_closed, 1);
    }

    pub(crate) fn accept_failed(&self) {
        bump(&self.accept_failures, 1);
    }

    pub(crate) fn tls_handshake_completed(&self) {
        bump(&self.tls_handshakes, 1);
    }

    pub(crate) fn tls_handshake_failed(&self) {
        bump(&self.tls_handshake_failures, 1);
    }

    pub(crate) fn sasl_authentication_failed(&self) {
        bump(&self.sasl_authentication_failures, 1);
    }

    pub(crate) fn frame_error(&self) {
        bump(&self.frame_errors, 1);
    }

    pub(crate) fn header_error(&self) {
        bump(&self.header_errors, 1);
    }

    pub(crate) fn handler_error(&self) {
        bump(&self.handler_errors, 1);
    }

    pub(crate) fn bytes_in(&self, bytes: usize) {
        bump(&self.bytes_in, bytes as u64);
    }

    pub(crate) fn bytes_out(&self, bytes: usize) {
        bump(&self.bytes_out, bytes as u64);
    }

    /// A connection on `listener` refused by a limit (`reason`).
    pub(crate) fn connection_limited(&self, listener: &str, reason: &'static str) {
        let mut limited = self.connections_limited.borrow_mut();
        *limited.entry((listener.to_string(), reason)).or_default() += 1;
    }

    pub(crate) fn accept_throttled(&self, listener: &str, ms: u64) {
        let mut throttled = self.accept_throttle_ms.borrow_mut();
        *throttled.entry(listener.to_string()).or_default() += ms;
    }

    pub(crate) fn accept_blocked(&self, listener: &str) {
        let mut blocked = self.accepts_blocked.borrow_mut();
        *blocked.entry(listener.to_string()).or_default() += 1;
    }

    /// A connection's read buffer went from `old_bytes` to `new_bytes`.
    pub(crate) fn read_buffer_resized(&self, old_bytes: usize, new_bytes: usize) {
        let held = self.read_buffer_bytes.get();
        let held = held.saturating_sub(old_bytes as u64) + new_bytes as u64;
        self.read_buffer_bytes.set(held);
    }

    /// Counts a request of a served API. Keys outside the slots are not
    /// counted (see [`API_KEY_SLOTS`]).
    pub(crate) fn request(&self, api_key: i16) {
        if let Some(counter) = usize::try_from(api_key)
            .ok()
            .and_then(|index| self.requests_by_api_key.get(index))
        {
            bump(counter, 1);
        }
    }

    pub fn snapshot(&self) -> NetMetricsSnapshot {
        let requests_by_api_key = (0_i16..)
            .zip(&self.requests_by_api_key)
            .map(|(key, count)| (key, count.get()))
            .filter(|(_, count)| *count > 0)
            .collect();
        NetMetricsSnapshot {
            connections_accepted: self.connections_accepted.get(),
            connections_closed: self.connections_closed.get(),
            connections_rejected: self.connections_rejected.get(),
            connections_idle_closed: self.connections_idle_closed.get(),
            accept_failures: self.accept_failures.get(),
            tls_handshakes: self.tls_handshakes.get(),
            tls_handshake_failures: self.tls_handshake_failures.get(),
            sasl_authentication_failures: self.sasl_authentication_failures.get(),
            frame_errors: self.frame_errors.get(),
            header_errors: self.header_errors.get(),
            handler_errors: self.handler_errors.get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
            read_buffer_bytes: self.read_buffer_bytes.get(),
            requests_by_api_key,
            connections_limited: self
                .connections_limited
                .borrow()
                .iter()
                .map(|((listener, reason), n)| (listener.clone(), reason.to_string(), *n))
                .collect(),
            accept_throttle_ms: self
                .accept_throttle_ms
                .borrow()
                .iter()
                .map(|(listener, ms)| (listener.clone(), *ms))
                .collect(),
            accepts_blocked: self
                .accepts_blocked
                .borrow()
                .iter()
                .map(|(listener, n)| (listener.clone(), *n))
                .collect(),
        }
    }
}

const _: () = assert!(API_KEY_SLOTS <= i16::MAX as usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_lists_only_keys_with_requests_and_sums_errors() {
        let metrics = NetMetrics::new();
        metrics.request(18);
        metrics.request(18);
        metrics.request(0);
        metrics.request(-1);
        metrics.request(9999);
        metrics.frame_error();
        metrics.header_error();
        metrics.header_error();
        metrics.bytes_in(10);
        metrics.bytes_out(7);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.requests_by_api_key, vec![(0, 1), (18, 2)]);
        assert_eq!(snapshot.requests(18), 2);
        assert_eq!(snapshot.requests(3), 0);
        assert_eq!(snapshot.requests_total(), 3);
        assert_eq!(snapshot.protocol_errors(), 3);
        assert_eq!((snapshot.bytes_in, snapshot.bytes_out), (10, 7));
    }
}
