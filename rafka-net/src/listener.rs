//! Listening sockets and the per-shard network state: binding with
//! SO_REUSEPORT, the accept loop, the connection bound and graceful
//! shutdown.
//!
//! Every shard binds the same address with SO_REUSEPORT, so the kernel
//! spreads incoming connections over the shards' listeners and a
//! connection stays on the shard that accepted it. SO_REUSEADDR too, as
//! Kafka: the accepted sockets inherit it, so the connections a stopped
//! broker leaves closing (FIN_WAIT, TIME_WAIT) never keep the next one
//! from binding, nor from passing its address-in-use check
//! (`server::ensure_free`). With port 0, shard 0 calls [`bind_first`] to learn the port
//! the kernel chose, and the other shards [`bind`] that exact address.
//!
//! Shutdown (SIGTERM): [`ShardNet::shutdown`] stops the accept loops, makes
//! every connection stop reading new requests, and waits until the requests
//! already read have been answered and their connections closed. The
//! listening socket closes when its accept loop ends; glommio accepts
//! through io_uring, so the socket only stops listening once the queued
//! accept's cancellation has gone through the ring (the next time the
//! executor submits). A connection that lands in that window sits in the
//! backlog and is reset when the socket closes.
//!
//! Lives on: one [`ShardNet`] per shard; listeners and connections of that
//! shard share it.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::unix::io::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future::or;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::{Gate, Semaphore};
use glommio::GlommioError;
use rafka_proto::api::ApiTable;
use rafka_proto::frame::FRAME_BYTES_MAX_DEFAULT;
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::connection::{self, ConnectionConfig};
use crate::connection_limits::{Admission, BrokerConnections, LimitsMesh, Refusal, ShardLimits};
use crate::latch::Latch;
use crate::metrics::{NetMetrics, NetMetricsSnapshot};
use crate::service::Service;
use crate::session::{ListenerInfo, Session};
use crate::stream::Stream;
use crate::tls::TlsServer;
use rafka_core::acl::Principal;
use rafka_core::config::SecurityProtocol;

/// How long the accept loop pauses after a failed accept. Failures such as
/// EMFILE last until some connection closes; retrying at once would spin
/// the shard and starve the connections that could free a descriptor.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(10);

/// A failing accept is logged at most once per this interval; the lines
/// in between are counted (`unlogged`) and every failure is in the metrics.
const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Room for a few maximum-size requests at once; decoded requests can take
/// many times their wire size.
const SHARD_INFLIGHT_BYTES_MAX_DEFAULT: usize = 256 << 20;
// A frame of the default maximum fits the shard's budget (it would
// otherwise wait for all of it, serializing the shard's connections).
const _: () = assert!(FRAME_BYTES_MAX_DEFAULT <= SHARD_INFLIGHT_BYTES_MAX_DEFAULT);

/// Limits of one shard's network layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Open connections per shard; new ones beyond it are closed at once.
    pub connections_max: usize,
    /// Frame bytes of requests read but not yet answered, summed over every
    /// connection of the shard. A frame waits until this much is free (a
    /// frame larger than the whole budget waits for all of it).
    pub shard_inflight_bytes_max: usize,
    pub connection: ConnectionConfig,
    /// The listener [`ShardNet::serve`]'s connections' sessions name.
    pub listener: ListenerInfo,
    /// The broker-wide connection counts and limits (`max.connections`,
    /// per IP, creation rates): one object shared by every shard's
    /// config (see `connection_limits`).
    pub connection_limits: Arc<BrokerConnections>,
}

/// One listener as its connections see it: its name and security
/// protocol, and for a TLS listener the server that runs its handshakes.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub info: ListenerInfo,
    pub tls: Option<TlsServer>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            connections_max: 10_000,
            shard_inflight_bytes_max: SHARD_INFLIGHT_BYTES_MAX_DEFAULT,
            connection: ConnectionConfig::default(),
            listener: ListenerInfo::default(),
            connection_limits: Arc::new(BrokerConnections::unlimited()),
        }
    }
}

/// Why a listener could not be opened.
#[derive(Debug, Error)]
pub enum BindError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: GlommioError<()>,
    },
    #[error("reading the bound address of {addr}: {source}")]
    LocalAddr {
        addr: SocketAddr,
        #[source]
        source: GlommioError<()>,
    },
}

/// Why [`ShardNet::serve`] could not start an accept loop.
#[derive(Debug, Error)]
pub enum ServeError {
    #[error("the shard's network layer is shutting down")]
    ShuttingDown,
}

/// Binds `addr` with SO_REUSEPORT on the calling shard's executor (it must
/// run inside one).
pub fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    let listening = listening_socket(addr).map_err(|source| BindError::Bind {
        addr,
        source: GlommioError::IoError(source),
    })?;
    // SAFETY: the descriptor is a bound, listening TCP socket whose
    // ownership passes to the listener.
    Ok(unsafe { TcpListener::from_raw_fd(listening.into_raw_fd()) })
}

/// Connections the kernel queues per listener before the accept loop takes
/// them (capped by net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 1024;

fn listening_socket(addr: SocketAddr) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket)
}

/// Binds `addr` and returns the address actually bound, so that with port 0
/// the other shards can bind the port the kernel chose.
pub fn bind_first(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), BindError> {
    let listener = bind(addr)?;
    let bound = listener
        .local_addr()
        .map_err(|source| BindError::LocalAddr { addr, source })?;
    Ok((listener, bound))
}

/// One shard's network layer: the service, the API table, limits, metrics
/// and the tasks to wait for on shutdown.
pub struct ShardNet<S: Service> {
    pub(crate) service: Rc<S>,
    pub(crate) table: Rc<ApiTable>,
    pub(crate) config: NetConfig,
    pub(crate) metrics: NetMetrics,
    /// `shard_inflight_bytes_max`, shared by every connection of the shard.
    pub(crate) inflight_bytes: Rc<Semaphore>,
    /// Triggered once by [`ShardNet::shutdown`].
    pub(crate) shutdown: Latch,
    /// Accept loops and connection tasks.
    connections: Gate,
    /// Request tasks. Separate from `connections`: a connection closed by a
    /// protocol error leaves its running requests behind, and they are only
    /// waited for once no connection can start new ones.
    pub(crate) requests: Gate,
    connections_open: Cell<usize>,
    /// This shard's side of the broker's connection limits.
    limits: Rc<ShardLimits>,
    /// When to hand freed connection memory back to the kernel.
    memory_return: MemoryReturn,
}

impl<S: Service> ShardNet<S> {
    /// Must be called on the shard's executor. Connection limits that
    /// count per IP or per broker across shards need the mesh
    /// ([`ShardNet::with_mesh`]); without it this shard is the broker.
    pub fn new(service: Rc<S>, table: Rc<ApiTable>, config: NetConfig) -> Rc<Self> {
        ShardNet::with_mesh(service, table, config, None)
    }

    /// [`ShardNet::new`] reaching the other shards' connection state
    /// through `mesh` (the broker's: `connection_limits::ShardMesh`).
    pub fn with_mesh(
        service: Rc<S>,
        table: Rc<ApiTable>,
        config: NetConfig,
        mesh: Option<Rc<dyn LimitsMesh>>,
    ) -> Rc<Self> {
        let shard_bytes = config.shard_inflight_bytes_max.max(1) as u64;
        let limits = Rc::new(ShardLimits::new(
            Arc::clone(&config.connection_limits),
            mesh,
        ));
        Rc::new(ShardNet {
            limits,
            service,
            table,
            config,
            metrics: NetMetrics::new(),
            inflight_bytes: Rc::new(Semaphore::new(shard_bytes)),
            shutdown: Latch::new(),
            connections: Gate::new(),
            requests: Gate::new(),
            connections_open: Cell::new(0),
            memory_return: MemoryReturn::default(),
        })
    }

    pub fn metrics(&self) -> NetMetricsSnapshot {
        self.metrics.snapshot()
    }

    pub fn connections_open(&self) -> usize {
        self.connections_open.get()
    }

    /// Starts accepting plaintext connections from `listener` on this
    /// shard, as the config's listener.
    pub fn serve(self: &Rc<Self>, listener: TcpListener) -> Result<(), ServeError> {
        let endpoint = Endpoint {
            info: self.config.listener.clone(),
            tls: None,
        };
        self.serve_endpoint(listener, endpoint)
    }

    /// Starts accepting connections from `listener` on this shard as
    /// `endpoint` (a shard serves every listener of the broker).
    pub fn serve_endpoint(
        self: &Rc<Self>,
        listener: TcpListener,
        endpoint: Endpoint,
    ) -> Result<(), ServeError> {
        if self.shutdown.is_triggered() {
            return Err(ServeError::ShuttingDown);
        }
        let net = Rc::clone(self);
        let endpoint = Rc::new(endpoint);
        let task = self
            .connections
            .spawn(async move { net.accept_loop(listener, endpoint).await })
            .map_err(|_| ServeError::ShuttingDown)?;
        task.detach();
        Ok(())
    }

    /// Stops accepting, lets every connection answer the requests it has
    /// read, and returns once all of them are closed and every request task
    /// has finished. Only the first call waits.
    pub async fn shutdown(&self) {
        self.shutdown.trigger();
        // Err means another call already closed the gate.
        let _ = self.connections.close().await;
        let _ = self.requests.close().await;
    }

    async fn accept_loop(self: Rc<Self>, listener: TcpListener, endpoint: Rc<Endpoint>) {
        let addr = listener.local_addr().ok();
        let mut failures = AcceptFailures::default();
        loop {
            let accept = async { Some(listener.accept().await) };
            let stop = async {
                self.shutdown.wait().await;
                None
            };
            match or(stop, accept).await {
                None => break,
                Some(Ok(stream)) => {
                    if let Some(unlogged) = failures.on_success() {
                        info!(listener = ?addr, unlogged, "accepting again after failures");
                    }
                    self.admit(stream, &endpoint).await;
                }
                Some(Err(error)) => {
                    self.metrics.accept_failed();
                    if let Some(unlogged) = failures.on_failure(Instant::now()) {
                        warn!(listener = ?addr, %error, unlogged, "accept failed");
                    }
                    glommio::timer::Timer::new(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
        info!(listener = ?addr, "stopped accepting connections");
    }

    /// The connection limits' steps for a new connection (see
    /// `connection_limits`): the creation rate's throttle, a
    /// `max.connections` slot, the IP's quota and count. Run inside the
    /// accept loop, so that while one waits nothing else is accepted (the
    /// next connections stay in the backlog), as Kafka's acceptor blocks.
    async fn admit(self: &Rc<Self>, stream: TcpStream, endpoint: &Rc<Endpoint>) {
        let Ok(peer) = stream.peer_addr() else {
            debug!("peer left before its connection was set up");
            return;
        };
        let listener = endpoint.info.name.as_str();
        let throttle_ms = self.limits.creation_throttle_ms(listener).await;
        if throttle_ms > 0 {
            let throttle_ms = throttle_ms.unsigned_abs();
            self.metrics.accept_throttled(listener, throttle_ms);
            debug!(%peer, listener, throttle_ms, "accepting throttled by max.connection.creation.rate");
            if !self.pause(Duration::from_millis(throttle_ms)).await {
                return;
            }
        }
        let mut blocked = false;
        let slot = loop {
            match self.limits.try_reserve(listener) {
                Ok(slot) => break slot,
                Err(freed) => {
                    if !blocked {
                        blocked = true;
                        self.metrics.accept_blocked(listener);
                        debug!(%peer, listener, "at max.connections: accepting waits for a connection to close");
                    }
                    let stop = async {
                        self.shutdown.wait().await;
                        false
                    };
                    let freed = async {
                        freed.wait().await;
                        true
                    };
                    if !or(stop, freed).await {
                        return;
                    }
                }
            }
        };
        match self.limits.admit_ip(listener, slot, peer.ip()).await {
            Ok(admission) => self.start_connection(stream, peer, endpoint, admission),
            Err(refusal) => self.refuse(stream, peer, listener, refusal),
        }
    }

    /// Waits `duration` unless the shard stops first (false then).
    async fn pause(&self, duration: Duration) -> bool {
        let stop = async {
            self.shutdown.wait().await;
            false
        };
        let wait = async {
            glommio::timer::Timer::new(duration).await;
            true
        };
        or(stop, wait).await
    }

    /// Closes a connection a limit refused: at once, or after the IP
    /// quota's throttle time (Kafka's delayed close, so the client does
    /// not reconnect at once).
    fn refuse(
        self: &Rc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        listener: &str,
        refusal: Refusal,
    ) {
        self.metrics.connection_limited(listener, refusal.reason());
        match refusal {
            Refusal::PerIp { max } => {
                info!(
                    ip = %peer.ip(),
                    listener,
                    max,
                    "Rejected connection from {}, address already has the configured maximum of {max} connections.",
                    peer.ip()
                );
            }
            Refusal::IpRate { throttle_ms } => {
                debug!(ip = %peer.ip(), listener, throttle_ms, "delaying the close of a connection over its IP's connection creation rate");
                let net = Rc::clone(self);
                let delay = Duration::from_millis(throttle_ms.unsigned_abs());
                let closing = self.connections.spawn(async move {
                    net.pause(delay).await;
                    drop(stream);
                });
                if let Ok(task) = closing {
                    task.detach();
                }
            }
            Refusal::MaxConnections => {}
        }
    }

    /// Gives `admission`'s slots back from a synchronous place.
    fn release_later(&self, admission: Admission) {
        let limits = Rc::clone(&self.limits);
        glommio::spawn_local(async move { limits.release(admission).await }).detach();
    }

    fn start_connection(
        self: &Rc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        endpoint: &Rc<Endpoint>,
        admission: Admission,
    ) {
        if self.connections_open.get() >= self.config.connections_max {
            warn!(
                %peer,
                connections_max = self.config.connections_max,
                "refusing connection: shard is at connections_max"
            );
            self.metrics.connection_rejected();
            self.metrics
                .connection_limited(&endpoint.info.name, Refusal::MaxConnections.reason());
            self.release_later(admission);
            return;
        }
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%peer, %error, "could not set TCP_NODELAY");
        }
        let net = Rc::clone(self);
        let endpoint = Rc::clone(endpoint);
        // Released by the task's tail, or here when the task never runs.
        let admission = Rc::new(Cell::new(Some(admission)));
        let kept = Rc::clone(&admission);
        let spawned = self.connections.spawn(async move {
            if let Some((stream, session)) = net.open(stream, peer, &endpoint).await {
                connection::serve(&net, stream, session).await;
            }
            let open = net.connections_open.get() - 1;
            net.connections_open.set(open);
            if let Some(admission) = kept.take() {
                net.limits.release(admission).await;
            }
            // Counted once its slots are free: a new connection from the
            // same IP is then admitted.
            net.metrics.connection_closed();
            if net.memory_return.on_close(open) {
                return_free_memory();
            }
        });
        match spawned {
            Ok(task) => {
                let open = self.connections_open.get() + 1;
                self.connections_open.set(open);
                self.memory_return.on_open(open);
                self.metrics.connection_accepted();
                task.detach();
            }
            Err(_) => {
                debug!(%peer, "refusing connection: shutting down");
                self.metrics.connection_rejected();
                if let Some(admission) = admission.take() {
                    self.release_later(admission);
                }
            }
        }
    }
}

impl<S: Service> ShardNet<S> {
    /// The connection's stream and session: at once on a plaintext
    /// listener, after the TLS handshake on a TLS one. A failed or
    /// timed-out handshake (or a shutdown during it) closes the socket
    /// and gives `None`; it is counted and concerns no other connection.
    async fn open(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
        endpoint: &Endpoint,
    ) -> Option<(Stream, Session)> {
        let Some(tls) = &endpoint.tls else {
            let session = Session::new(peer, endpoint.info.clone());
            return Some((Stream::Plain(socket), session));
        };
        let handshake = async { Some(tls.accept(socket).await) };
        let stop = async {
            self.shutdown.wait().await;
            None
        };
        match or(stop, handshake).await? {
            Ok((stream, name)) => {
                self.metrics.tls_handshake_completed();
                // On SASL_SSL the principal comes from SASL, not the
                // certificate (as in Kafka).
                let principal = match name {
                    Some(name) if endpoint.info.security_protocol == SecurityProtocol::Ssl => {
                        Principal {
                            principal_type: "User".to_string(),
                            name,
                        }
                    }
                    _ => Principal::anonymous(),
                };
                let session = Session::with_principal(peer, endpoint.info.clone(), principal);
                Some((stream, session))
            }
            Err(error) => {
                self.metrics.tls_handshake_failed();
                debug!(%peer, listener = %endpoint.info.name, %error, "closing connection");
                None
            }
        }
    }
}

/// Closes after which freed memory may be worth returning.
const TRIM_AFTER_CLOSES: usize = 1024;

/// Hands the memory of closed connections back to the kernel. glibc's
/// malloc keeps freed memory in its arenas for reuse; after a burst of
/// connections closes (10,000 idle ones held ~67 MB) the broker would go
/// on holding their peak for good. Once at least [`TRIM_AFTER_CLOSES`]
/// connections have closed and the shard has at most half the
/// connections it had at its peak since the last trim, `malloc_trim`
/// releases the free pages of every arena (a few ms, at most a handful of
/// times per burst). A broker with steady connection churn never trims.
#[derive(Debug, Default)]
struct MemoryReturn {
    peak: Cell<usize>,
    closed: Cell<usize>,
}

impl MemoryReturn {
    fn on_open(&self, open: usize) {
        self.peak.set(self.peak.get().max(open));
    }

    /// Whether to return free memory now.
    fn on_close(&self, open: usize) -> bool {
        let closed = self.closed.get() + 1;
        self.closed.set(closed);
        if closed < TRIM_AFTER_CLOSES || open * 2 > self.peak.get() {
            return false;
        }
        self.closed.set(0);
        self.peak.set(open);
        true
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_free_memory() {}

/// Which accept failures get a log line: the first, then at most one per
/// [`ACCEPT_ERROR_LOG_INTERVAL`] carrying how many went unlogged. At
/// EMFILE the loop retries every [`ACCEPT_ERROR_PAUSE`], which would
/// otherwise write a hundred lines a second.
#[derive(Debug, Default)]
struct AcceptFailures {
    last_logged: Option<Instant>,
    /// Failures since the last logged one, not logged themselves.
    unlogged: u64,
}

impl AcceptFailures {
    /// A failure at `now`: `Some(failures not logged before it)` when this
    /// one is to be logged.
    fn on_failure(&mut self, now: Instant) -> Option<u64> {
        let due = self
            .last_logged
            .is_none_or(|last| now.saturating_duration_since(last) >= ACCEPT_ERROR_LOG_INTERVAL);
        if !due {
            self.unlogged += 1;
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// An accept succeeded: `Some(failures never logged)` when the last
    /// failing stretch left some, so its end is logged with its count.
    fn on_success(&mut self) -> Option<u64> {
        self.last_logged = None;
        let unlogged = std::mem::take(&mut self.unlogged);
        (unlogged > 0).then_some(unlogged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_are_logged_once_per_interval_with_the_unlogged_count() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut failures = AcceptFailures::default();
        assert_eq!(failures.on_failure(at(0)), Some(0), "the first is logged");
        // EMFILE retried every 10 ms for just under a second: silent.
        for ms in (10..1000).step_by(10) {
            assert_eq!(failures.on_failure(at(ms)), None, "at {ms} ms");
        }
        assert_eq!(failures.on_failure(at(1000)), Some(99));
        assert_eq!(failures.on_failure(at(1500)), None);
        assert_eq!(failures.on_success(), Some(1), "the stretch's tail");
        assert_eq!(failures.on_success(), None);
        // A new stretch starts with a logged line again.
        assert_eq!(failures.on_failure(at(1600)), Some(0));
        assert_eq!(failures.on_success(), None, "nothing left unlogged");
    }

    #[test]
    fn memory_is_returned_after_a_burst_of_closes_not_under_churn() {
        let policy = MemoryReturn::default();
        for open in 1..=10_000 {
            policy.on_open(open);
        }
        // 10,000 connections close: a trim once at least 1,024 have closed
        // since the last one and at most half its peak is left.
        let trims: Vec<usize> = (0..10_000)
            .rev()
            .filter(|&open| policy.on_close(open))
            .collect();
        assert_eq!(trims, vec![5_000, 2_500, 1_250, 226]);
        // Steady churn around 100 connections never trims.
        let churn = MemoryReturn::default();
        for open in 1..=100 {
            churn.on_open(open);
        }
        let trimmed = (0..5_000).any(|_| {
            let closed = churn.on_close(99);
            churn.on_open(100);
            closed
        });
        assert!(!trimmed);
    }
}
