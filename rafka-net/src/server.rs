//! The whole broker: shards, then listeners, then a clean stop.
//!
//! Every shard runs [`shard_main`]. Before any shard starts, and again
//! right before the listeners bind, the listen and `/metrics` addresses
//! are checked to be free ([`ensure_free`]): SO_REUSEPORT would otherwise
//! let a second broker join the first one's socket group. Shard 0 loads the
//! broker (the shard core's startup), binds every listener's address first
//! (so port 0 resolves to one port each), tells every other shard to bind
//! the same ports with SO_REUSEPORT and serve them all, starts the `/metrics` endpoint (when
//! configured), prints the ready line (then `rafka metrics on
//! http://ADDR/metrics`), and waits for the stop signal. On stop it stops
//! `/metrics`, drains every shard's connections (answers in flight are
//! written), has the controller flush and close every partition and write
//! the checkpoints, and releases all shards.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use rafka_core::config::BrokerConfig;
use rafka_core::metadata::BrokerEndpoint;
use rafka_core::sasl::ScramCredential;
use rafka_proto::api::ApiTable;
use rafka_shard::controller_handle::ControllerHandle;
use rafka_shard::runtime::{run as run_shards, within, RuntimeConfig, ShardEnv};
use rafka_shard::shard::Shard;
use rafka_shard::startup::{start as start_shard, ShardError, Started};

use crate::connection_limits::{BrokerConnections, LimitsMesh, ShardMesh};
use crate::handlers::{broker_table, AdvertisedListener, BrokerContext, Handlers, NodeInfo};
use crate::listener::{bind, bind_first, BindError, Endpoint, NetConfig, ShardNet};
use crate::metrics_http::{MetricsHttpError, MetricsServer};
use crate::metrics_shard::{executor_totals, traffic_snapshot};
use crate::metrics_snapshot::{BrokerSnapshot, GroupOffset, PartitionOffsets, ShardSnapshot};

/// One listener of the broker: where it binds, what it advertises, and
/// its name, protocol and TLS server.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    pub endpoint: Endpoint,
    pub listen: SocketAddr,
    /// Advertised host; the port is the bound port unless set.
    pub advertised_host: String,
    pub advertised_port: Option<u16>,
}

/// Everything the binary decides before the shards start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub config: Arc<BrokerConfig>,
    pub runtime: RuntimeConfig,
    /// Every listener, in `listeners` order; the first is the one the
    /// ready line names first. Never empty.
    pub listeners: Vec<ListenerOptions>,
    pub cluster_id: String,
    pub net: NetConfig,
    /// Where to serve Prometheus' `/metrics` (shard 0); None serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// `--add-scram`: credentials created at start for users that have
    /// none for that mechanism yet (an existing one is left alone).
    pub scram_seeds: Vec<(String, ScramCredential)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    AddressInUse(#[from] AddressInUse),
    #[error(transparent)]
    Runtime(#[from] rafka_shard::runtime::RuntimeError),
    #[error("shard {shard}: {message}")]
    Shard { shard: usize, message: String },
    #[error(transparent)]
    ConnectionLimits(#[from] crate::connection_limits::UnknownOverrideHost),
}

/// How long a stop waits for connections to drain before closing the logs.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A stop request from outside the shards (the binary's signal thread).
pub type StopReceiver = futures_channel::oneshot::Receiver<()>;

thread_local! {
    /// This shard's network layer, kept per executor thread so that the
    /// stop sequence (run from shard 0 through the router) can drain it.
    static NET: RefCell<Option<Rc<ShardNet<Handlers>>>> = const { RefCell::new(None) };
}

/// Another process holds an address the broker must serve.
#[derive(Debug, thiserror::Error)]
#[error("the {what} address {addr} is in use by another process: {source}")]
pub struct AddressInUse {
    /// Which address: "listen" or "metrics".
    pub what: &'static str,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// Fails when any socket listens on `addr`. The shards bind with
/// SO_REUSEPORT, which the kernel lets join any same-user socket group on
/// the address, another broker's included; a plain bind (std sets
/// SO_REUSEADDR and never SO_REUSEPORT) fails with EADDRINUSE while anyone
/// listens there. Connections a previous broker left closing do not count:
/// they inherited SO_REUSEADDR from its listener. The probe is released at
/// once. Port 0 has nothing to check: the kernel
/// picks a port nobody holds.
pub fn ensure_free(addr: SocketAddr, what: &'static str) -> Result<(), AddressInUse> {
    if addr.port() == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind(addr) {
        Ok(probe) => {
            drop(probe);
            Ok(())
        }
        Err(source) => Err(AddressInUse { what, addr, source }),
    }
}

/// Runs the broker until `stop` fires (or its sender is dropped), then stops
/// it cleanly. Blocks the calling thread.
pub fn run(options: ServerOptions, stop: StopReceiver) -> Result<(), ServerError> {
    // Before loading anything: a broker that cannot serve should not
    // recover a data dir first.
    for listener in &options.listeners {
        ensure_free(listener.listen, "listen")?;
    }
    if let Some(metrics) = options.metrics_listen {
        ensure_free(metrics, "metrics")?;
    }
    // The broker-wide connection counts every shard shares; override
    // hosts resolve here, before any shard starts.
    let limits = BrokerConnections::from_config(&options.config, options.runtime.shard_count)?;
    let mut options = options;
    options.net.connection_limits = Arc::new(limits);
    let stop = Arc::new(Mutex::new(Some(stop)));
    let runtime = options.runtime.clone();
    let options = Arc::new(options);
    let results = run_shards(&runtime, move |env| {
        shard_main(env, Arc::clone(&options), Arc::clone(&stop))
    })?;
    for (shard, result) in results.into_iter().enumerate() {
        result.map_err(|message| ServerError::Shard { shard, message })?;
    }
    Ok(())
}

async fn shard_main(
    env: ShardEnv<Shard>,
    options: Arc<ServerOptions>,
    stop: Arc<Mutex<Option<StopReceiver>>>,
) -> Result<(), String> {
    let served = serve_shard(env, options, stop).await;
    // The shard's network layer holds the shard and through it every open
    // file: let it go here, inside the executor, not in the thread-local's
    // destructor at thread exit, where glommio's file drop logs through a
    // logger that thread has already torn down (an abort).
    drop(NET.with(|n| n.borrow_mut().take()));
    served
}

async fn serve_shard(
    env: ShardEnv<Shard>,
    options: Arc<ServerOptions>,
    stop: Arc<Mutex<Option<StopReceiver>>>,
) -> Result<(), String> {
    let (shard, started) = start_shard(env, Arc::clone(&options.config))
        .await
        .map_err(|e| e.to_string())?;
    if shard.id() == 0 {
        let stop = stop.lock().ok().and_then(|mut s| s.take());
        if let Err(error) = lead(&shard, &options, started, stop).await {
            tracing::error!(%error, "broker stopped with an error");
            shard.stop_all().await;
            return Err(error.to_string());
        }
    }
    shard.wait_stop().await;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum LeadError {
    #[error(transparent)]
    AddressInUse(#[from] AddressInUse),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Shard(#[from] ShardError),
    #[error("shard {shard} could not listen: {message}")]
    Listen { shard: usize, message: String },
    #[error(transparent)]
    Metrics(#[from] MetricsHttpError),
    #[error("--add-scram: {0}")]
    SeedScram(String),
}

/// Shard 0's part: listeners on every shard, the ready line, then the stop.
async fn lead(
    shard: &Rc<Shard>,
    options: &Arc<ServerOptions>,
    started: Started,
    stop: Option<StopReceiver>,
) -> Result<(), LeadError> {
    seed_scram(shard, &options.scram_seeds).await?;
    // Again, with no await between the check and the bind: the window in
    // which another process could take an address is a few syscalls.
    for listener in &options.listeners {
        ensure_free(listener.listen, "listen")?;
    }
    let mut sockets = Vec::new();
    let mut bound = Vec::new();
    for listener in &options.listeners {
        let (socket, addr) = bind_first(listener.listen)?;
        sockets.push((socket, listener.endpoint.clone()));
        bound.push(addr);
    }
    let node = node_info(options, &bound);
    let base = options.net.clone();
    start_net(shard, sockets, node.clone(), net_config_of(&base, shard));
    let endpoints: Vec<(SocketAddr, Endpoint)> = bound
        .iter()
        .zip(&options.listeners)
        .map(|(addr, listener)| (*addr, listener.endpoint.clone()))
        .collect();
    let others = shard
        .router
        .invoke_on_all(move |other: Rc<Shard>| {
            let node = node.clone();
            let net = net_config_of(&base, &other);
            let endpoints = endpoints.clone();
            async move {
                if other.id() == 0 {
                    return Ok(());
                }
                let mut sockets = Vec::new();
                for (addr, endpoint) in endpoints {
                    sockets.push((bind(addr).map_err(|e| e.to_string())?, endpoint));
                }
                start_net(&other, sockets, node, net);
                Ok::<(), String>(())
            }
        })
        .await;
    for (index, result) in others.into_iter().enumerate() {
        let message = match result {
            Ok(Ok(())) => continue,
            Ok(Err(message)) => message,
            Err(route) => route.to_string(),
        };
        return Err(LeadError::Listen {
            shard: index,
            message,
        });
    }
    let metrics = match options.metrics_listen {
        Some(addr) => Some(start_metrics(shard, addr)?),
        None => None,
    };
    // A stop while the broker waits for the quorum to register it (no
    // majority up) ends the wait: the broker stops without having been
    // ready.
    let mut stop = stop;
    let registered = match stop.as_mut() {
        Some(receiver) => {
            let registering = std::pin::pin!(register(shard, options, &bound));
            matches!(
                futures_util::future::select(registering, receiver).await,
                futures_util::future::Either::Left(_)
            )
        }
        None => {
            register(shard, options, &bound).await;
            true
        }
    };
    if registered {
        announce(shard, &options.listeners, &bound, started);
        if let Some(metrics) = &metrics {
            // After the ready line, which tools read as the first line.
            let line = format!("rafka metrics on http://{}/metrics", metrics.local_addr());
            tracing::info!("{line}");
            print_line(&line);
        }
        if let Some(stop) = stop {
            // A dropped sender (the signal thread ended) also means stop.
            let _ = stop.await;
        } else {
            futures_util::future::pending::<()>().await;
        }
    }
    if let Some(metrics) = &metrics {
        metrics.shutdown().await;
    }
    rafka_shard::registration::controlled_shutdown(shard).await;
    tracing::info!("stopping: draining connections");
    shard
        .router
        .invoke_on_all(|shard: Rc<Shard>| async move {
            let Some(net) = NET.with(|n| n.borrow().clone()) else {
                return;
            };
            // A client that never reads its responses must not hold the
            // stop forever; the partitions are flushed either way.
            if within(DRAIN_TIMEOUT, net.shutdown()).await.is_none() {
                tracing::warn!(
                    shard = shard.id(),
                    "connections still open after the drain timeout"
                );
            }
        })
        .await;
    shard.shutdown().await?;
    tracing::info!("stopped cleanly");
    shard.stop_all().await;
    Ok(())
}

/// `--add-scram`, committed before the listeners open: a client that sees
/// the ready line can log in with them.
async fn seed_scram(
    shard: &Rc<Shard>,
    seeds: &[(String, ScramCredential)],
) -> Result<(), LeadError> {
    if seeds.is_empty() {
        return Ok(());
    }
    let controller = ControllerHandle::new(Rc::clone(shard));
    let added = controller
        .seed_scram_credentials(seeds.to_vec())
        .await
        .map_err(|error| LeadError::SeedScram(error.to_string()))?
        .map_err(|failure| LeadError::SeedScram(failure.message))?;
    tracing::info!(
        added,
        given = seeds.len(),
        "--add-scram credentials (users that had one are left alone)"
    );
    Ok(())
}

/// In a cluster, registers this broker's endpoints (bound ports where none
/// is advertised) with the quorum; returns once committed.
async fn register(shard: &Rc<Shard>, options: &ServerOptions, bound: &[SocketAddr]) {
    if !options.config.process_roles.broker {
        // A controller-only node takes no partitions and is no broker.
        return;
    }
    let endpoints = options
        .listeners
        .iter()
        .zip(bound)
        .map(|(listener, addr)| BrokerEndpoint {
            listener: listener.endpoint.info.name.clone(),
            host: listener.advertised_host.clone(),
            port: listener.advertised_port.unwrap_or(addr.port()),
            security_protocol: listener.endpoint.info.security_protocol.id(),
        })
        .collect();
    let rack = options.config.rack.clone();
    rafka_shard::registration::register(shard, endpoints, rack).await;
}

/// This broker as clients see it: every listener's advertised endpoint
/// (the bound port where none is set), the first one's as the default.
fn node_info(options: &ServerOptions, bound: &[SocketAddr]) -> NodeInfo {
    let listeners: Vec<AdvertisedListener> = options
        .listeners
        .iter()
        .zip(bound)
        .map(|(listener, addr)| AdvertisedListener {
            name: listener.endpoint.info.name.clone(),
            host: listener.advertised_host.clone(),
            port: listener.advertised_port.unwrap_or(addr.port()),
        })
        .collect();
    let first = listeners.first().cloned().unwrap_or(AdvertisedListener {
        name: String::new(),
        host: String::new(),
        port: 0,
    });
    NodeInfo {
        node_id: options.config.node_id,
        host: first.host,
        port: first.port,
        cluster_id: options.cluster_id.clone(),
        listeners,
    }
}

/// The network settings of a shard: `base` with the broker config's
/// limits (every shard the same, shard 0 included).
fn net_config_of(base: &NetConfig, shard: &Shard) -> NetConfig {
    let mut net = base.clone();
    if let Some(listener) = shard.config.listeners.first() {
        net.listener = crate::session::ListenerInfo::of(&shard.config, listener);
    }
    net.connection.frame_bytes_max = shard.config.socket_request_max_bytes.max(1) as usize;
    net.connection.connections_max_idle_ms = shard.config.connections_max_idle_ms.max(0) as u64;
    net
}

fn start_net(
    shard: &Rc<Shard>,
    sockets: Vec<(glommio::net::TcpListener, Endpoint)>,
    node: NodeInfo,
    net_config: NetConfig,
) {
    let table: Rc<ApiTable> = Rc::new(broker_table());
    let ctx = BrokerContext::new(Rc::clone(&table), Rc::clone(shard), node);
    let mesh: Rc<dyn LimitsMesh> = Rc::new(ShardMesh::new(Rc::clone(shard)));
    let service = Rc::new(Handlers::new(Rc::new(ctx)));
    let net = ShardNet::with_mesh(service, table, net_config, Some(mesh));
    for (socket, endpoint) in sockets {
        if let Err(error) = net.serve_endpoint(socket, endpoint) {
            tracing::error!(%error, shard = shard.id(), "serving");
        }
    }
    NET.with(|n| *n.borrow_mut() = Some(net));
}

/// The ready line: the first listener's bound address (what tools read),
/// then the shard count, data dir and recovery, then every listener as
/// `listeners=NAME://ADDR,...` (their bound ports, also with port 0).
fn announce(shard: &Shard, listeners: &[ListenerOptions], bound: &[SocketAddr], started: Started) {
    let data_dir = rafka_shard::shard::data_dir(&shard.config);
    let first = bound.first().map_or_else(String::new, ToString::to_string);
    let named: Vec<String> = listeners
        .iter()
        .zip(bound)
        .map(|(listener, addr)| format!("{}://{addr}", listener.endpoint.info.name))
        .collect();
    let line = format!(
        "rafka listening on {first} shards={} data_dir={} recovered_partitions={} listeners={}",
        shard.count(),
        data_dir.display(),
        started.partitions_recovered,
        named.join(",")
    );
    tracing::info!("{line}");
    print_line(&line);
}

/// Writes one line to stdout for whoever started the broker. A closed
/// stdout (the reader took the ready line and went away) must not stop a
/// running broker, as `println!`'s panic would.
fn print_line(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    if let Err(error) = written {
        tracing::warn!(%error, "stdout closed; the line is in the log only");
    }
}

/// Serves `/metrics` from this shard (0); every scrape gathers a snapshot
/// from each shard through the router. Bound before the ready line, so a
/// taken port stops the start.
fn start_metrics(shard: &Rc<Shard>, addr: SocketAddr) -> Result<MetricsServer, LeadError> {
    let scraper = Rc::clone(shard);
    let server = MetricsServer::start(addr, move || {
        let shard = Rc::clone(&scraper);
        async move { scrape(&shard).await }
    })?;
    Ok(server)
}

async fn scrape(shard: &Shard) -> Result<String, std::fmt::Error> {
    let scraper = shard.id();
    let answers = shard
        .router
        .invoke_on_all(move |shard: Rc<Shard>| async move {
            // On the other shards the scrape is itself a mesh job.
            let own_jobs = u64::from(shard.id() != scraper);
            shard_snapshot(&shard, own_jobs)
        })
        .await;
    // A shard that is stopping has nothing left to report.
    let snapshots = answers.into_iter().filter_map(Result::ok).collect();
    BrokerSnapshot::merge(snapshots).encode()
}

/// This shard's metrics, on its own thread.
fn shard_snapshot(shard: &Shard, own_jobs: u64) -> ShardSnapshot {
    let (apis, topics, requests_running) = traffic_snapshot();
    let (busy, tasks_executed) = executor_totals();
    let net = NET.with(|n| n.borrow().clone());
    let partitions = shard
        .local_partitions()
        .iter()
        .map(|partition| {
            let replication = partition.replication_summary();
            PartitionOffsets {
                topic: partition.topic.to_string(),
                partition: partition.index,
                log_start_offset: partition.log_start_offset(),
                log_end_offset: partition.log_end_offset(),
                high_watermark: partition.high_watermark(),
                replicas: replication.replicas,
                in_sync_replicas: replication.in_sync_replicas,
                under_replicated: i64::from(replication.under_replicated),
                under_min_isr: i64::from(replication.under_min_isr),
            }
        })
        .collect();
    ShardSnapshot {
        shard: u32::try_from(shard.id()).unwrap_or(u32::MAX),
        apis,
        topics,
        net: net.as_ref().map(|net| net.metrics()).unwrap_or_default(),
        connections_open: net.as_ref().map_or(0, |net| net.connections_open() as u64),
        requests_running,
        mesh_jobs_running: shard.router.jobs_running().saturating_sub(own_jobs),
        busy,
        tasks_executed,
        flush_cycles: shard.flusher().cycles(),
        fsync_latency: shard.flusher().fsync_latency(),
        mesh: shard.router.mesh_stats(),
        open_files: shard.registry().storage().budget().stats(),
        log_health: shard.registry().log_health().snapshot(),
        partitions,
        group_offsets: group_offsets(shard),
        disk: shard.registry().disk().snapshot(),
        txn: shard.txns().stats(),
        quotas: shard.quotas().snapshot(),
        quorum: shard.quorum().map(|quorum| quorum_snapshot(shard, &quorum)),
    }
}

fn quorum_snapshot(
    shard: &Shard,
    quorum: &rafka_shard::quorum::Quorum,
) -> crate::metrics_snapshot::QuorumSnapshot {
    let status = quorum.status();
    let image = shard.image();
    let fenced = image.brokers().filter(|b| b.fenced).count() as u64;
    crate::metrics_snapshot::QuorumSnapshot {
        leader_id: rafka_shard::quorum::driver::node_id_of(status.leader_id).unwrap_or(-1),
        is_leader: status.leader_id != 0 && status.leader_id == status.node_id,
        term: status.term,
        commit_index: status.commit_index,
        applied_index: status.applied_index,
        last_index: status.last_index,
        proposals: quorum.proposal_counts(),
        brokers_live: image.brokers().count() as u64 - fenced,
        brokers_fenced: fenced,
    }
}

/// The committed offsets of every group this shard coordinates.
fn group_offsets(shard: &Shard) -> Vec<GroupOffset> {
    shard.groups().with_machine(|machine| {
        machine
            .group_ids()
            .filter_map(|id| machine.group(id).map(|group| (id, group)))
            .flat_map(|(id, group)| {
                group
                    .offsets
                    .iter()
                    .map(move |((topic, partition), committed)| GroupOffset {
                        group: id.to_string(),
                        topic: topic.clone(),
                        partition: *partition,
                        committed_offset: committed.offset,
                    })
            })
            .collect()
    })
}
