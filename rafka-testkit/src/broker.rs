//! The one in-process broker of the tests: a real broker core (shards,
//! controller, partitions, group coordinators) over a fresh temp dir, with
//! requests served through the broker's own handler dispatch, without
//! sockets, or over a loopback listener when a test needs bytes on a wire.
//!
//! ```text
//! TestBroker::builder()
//!     .shards(2)
//!     .config(|c| c.auto_create_topics_enable = false)
//!     .run(|broker| async move {
//!         let response: MetadataResponse = broker.call(12, &request).await;
//!     });
//! ```
//!
//! The scenario runs on shard 0 under a timeout; requests are served on the
//! last shard unless a test picks one ([`Broker::call_on`]), so with more
//! than one shard every controller call and most partitions are reached
//! over the mesh. Whatever the scenario does, the broker stops cleanly
//! afterwards (listener drained, controller shutdown, every shard asked to
//! stop); a panic is re-raised on the test thread once it has.
//!
//! This file is the only one in the tests that knows rafka-net's handler
//! API (`serve`, `BrokerContext`, `NodeInfo`, `Handlers`, the broker's
//! API table, sessions) and the controller's handle: when those change,
//! only this file changes.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::{Decodable, Request as ProtocolRequest};
use rafka_core::config::BrokerConfig;
use rafka_core::io::{Clock, SystemClock};
use rafka_net::connection_limits::{BrokerConnections, LimitsMesh, ShardMesh};
use rafka_net::handlers::{
    api_versions, broker_table, serve, BrokerContext, ControllerHandle, Handlers, NodeInfo,
};
use rafka_net::listener::Endpoint;
use rafka_net::metrics_shard::traffic_snapshot;
use rafka_net::session::{ListenerInfo, Session};
use rafka_net::{
    bind, bind_first, ConnectionConfig, NetConfig, NetMetricsSnapshot, Request, Response, Service,
    ShardNet,
};
use rafka_proto::acks::Acks;
use rafka_proto::api::ApiTable;
use rafka_proto::header::{RequestHeader, ResponseHeaderVersion};
use rafka_proto::record::Batches;
use rafka_shard::partition::TxnMarker;
use rafka_shard::runtime::{run, within, RuntimeConfig, ShardEnv};
use rafka_shard::shard::Shard;
use rafka_shard::startup::start_clocked;
use uuid::Uuid;

use crate::clock::SharedClock;
use crate::proto::{creatable, metadata_topic, produce_answers, produce_request};

/// How the in-process broker presents itself without a listener
/// (Metadata, FindCoordinator, DescribeCluster answers).
pub const NODE_ID: i32 = 3;
pub const HOST: &str = "broker.test";
pub const PORT: u16 = 19092;
pub const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qg";
/// The shard counts every broker-level scenario runs over.
pub const SHARD_MATRIX: [usize; 3] = [1, 2, 4];
/// Upper bound on a scenario; reached only when the code under test hangs.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);
/// Generous: an acks=all produce waits for one fdatasync of a temp dir.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the listener may take to drain after the scenario (the
/// broker's own clean stop allows 10 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const CORRELATION_ID: i32 = 41;
const CLIENT_ID: &[u8] = b"rafka-testkit";

/// How to start the broker; [`TestBroker::run`] starts it.
#[derive(Debug, Clone)]
pub struct TestBroker {
    shards: usize,
    config: BrokerConfig,
    network: bool,
    zero_copy: bool,
    endpoint: Option<Endpoint>,
    data_dir: Option<PathBuf>,
    clock: Option<SharedClock>,
    timeout: Duration,
    listen_everywhere: bool,
}

impl TestBroker {
    /// One shard, default config, no listener, a fresh temp dir.
    pub fn builder() -> TestBroker {
        TestBroker {
            shards: 1,
            config: BrokerConfig::default(),
            network: false,
            zero_copy: true,
            endpoint: None,
            data_dir: None,
            clock: None,
            timeout: SCENARIO_TIMEOUT,
            listen_everywhere: false,
        }
    }

    /// With the listener: every shard binds it (SO_REUSEPORT, as the
    /// broker does), so connections spread over the shards; without,
    /// only the serving shard listens.
    pub fn listen_everywhere(mut self, everywhere: bool) -> TestBroker {
        self.listen_everywhere = everywhere;
        self
    }

    pub fn shards(mut self, shards: usize) -> TestBroker {
        self.shards = shards;
        self
    }

    /// Changes the broker config; the first of `log_dirs` is set by `run`
    /// to the data dir whatever `tweak` does (further dirs stay: the
    /// broker keeps nothing in them, DescribeLogDirs lists them).
    pub fn config(mut self, tweak: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        tweak(&mut self.config);
        self
    }

    /// Serves a loopback listener ([`Broker::addr`]) on the serving shard.
    pub fn network(mut self, network: bool) -> TestBroker {
        self.network = network;
        self
    }

    /// With the listener: Fetch records sent with `sendfile` (default) or
    /// read into memory first (as for TLS).
    pub fn zero_copy(mut self, zero_copy: bool) -> TestBroker {
        self.zero_copy = zero_copy;
        self
    }

    /// Serves the loopback listener as `endpoint` (a TLS listener, its
    /// name and protocol) instead of a plaintext PLAINTEXT one.
    pub fn endpoint(mut self, endpoint: Endpoint) -> TestBroker {
        self.network = true;
        self.endpoint = Some(endpoint);
        self
    }

    /// Runs over `dir` instead of a fresh temp dir, so a second run is a
    /// restart on the same data.
    pub fn data_dir(mut self, dir: &Path) -> TestBroker {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Runs every shard on `clock` instead of the system clock, so the
    /// test decides when timeouts and expiries are due (each coordinator's
    /// timer task still sleeps on real time: kick it after moving the
    /// clock).
    pub fn clock(mut self, clock: SharedClock) -> TestBroker {
        self.clock = Some(clock);
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> TestBroker {
        self.timeout = timeout;
        self
    }

    /// [`TestBroker::run`] once per shard count in `shard_counts`
    /// (typically [`SHARD_MATRIX`]), each on a fresh broker.
    pub fn run_matrix<F, Fut>(self, shard_counts: &[usize], scenario: F)
    where
        F: FnOnce(Broker) -> Fut + Send + Clone + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        for &shards in shard_counts {
            self.clone().shards(shards).run(scenario.clone());
        }
    }

    /// Starts the broker, runs `scenario` on shard 0, stops the broker
    /// cleanly, then fails the test if the scenario panicked or timed out.
    pub fn run<F, Fut>(self, scenario: F)
    where
        F: FnOnce(Broker) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let temp = tempfile::tempdir().expect("tempdir");
        let data_dir = self.data_dir.unwrap_or_else(|| temp.path().to_path_buf());
        let mut config = self.config;
        // The data dir comes first; further dirs a config tweak lists stay.
        let further_dirs = config.log_dirs.iter().skip(1).cloned();
        config.log_dirs = std::iter::once(data_dir.clone())
            .chain(further_dirs)
            .collect();
        config.node_id = NODE_ID;
        let limits =
            BrokerConnections::from_config(&config, self.shards).expect("connection limits");
        let config = Arc::new(config);
        let settings = Settings {
            connection_limits: Arc::new(limits),
            listen_everywhere: self.listen_everywhere,
            network: self.network,
            zero_copy: self.zero_copy,
            endpoint: self.endpoint,
            timeout: self.timeout,
            data_dir: data_dir.clone(),
        };
        // Only shard 0 runs the scenario; the closure every shard gets
        // hands it over once.
        let scenario = Arc::new(Mutex::new(Some(scenario)));
        let clock = self.clock;
        let main = move |env: ShardEnv<Shard>| {
            let config = Arc::clone(&config);
            let scenario = Arc::clone(&scenario);
            let settings = settings.clone();
            let clock: Rc<dyn Clock> = match &clock {
                Some(clock) => Rc::new(clock.clone()),
                None => Rc::new(SystemClock),
            };
            async move {
                let started = start_clocked(env, config, clock).await;
                let (shard, _started) = started.expect("start");
                let mut outcome = None;
                if shard.id() == 0 {
                    let scenario = scenario.lock().expect("lock").take();
                    let scenario = scenario.expect("the scenario runs once");
                    outcome = Some(lead(&shard, &settings, scenario).await);
                }
                shard.wait_stop().await;
                outcome
            }
        };
        let outcomes = run(&RuntimeConfig::for_tests(self.shards), main).expect("runtime");
        let failed = |what: &str| {
            let dir = data_dir.display();
            format!(
                "{what} on a broker with {} shard(s) over {dir}",
                self.shards
            )
        };
        match outcomes.into_iter().next().flatten() {
            Some(Outcome::Passed) => {}
            Some(Outcome::Panicked(panic)) => {
                // The panic message was printed where it happened.
                eprintln!("{}", failed("the scenario panicked"));
                std::panic::resume_unwind(panic)
            }
            Some(Outcome::NotDrained) => panic!(
                "{}",
                failed(&format!(
                    "the listener did not drain within {DRAIN_TIMEOUT:?} after the scenario"
                ))
            ),
            Some(Outcome::TimedOut) => {
                panic!(
                    "{}",
                    failed(&format!("scenario timed out after {:?}", self.timeout))
                )
            }
            None => panic!("shard 0 did not run the scenario"),
        }
    }
}

#[derive(Debug, Clone)]
struct Settings {
    /// The broker-wide connection counts, shared by every listening shard.
    connection_limits: Arc<BrokerConnections>,
    listen_everywhere: bool,
    network: bool,
    zero_copy: bool,
    endpoint: Option<Endpoint>,
    timeout: Duration,
    data_dir: PathBuf,
}

enum Outcome {
    Passed,
    /// The scenario passed but the listener's connections did not drain.
    NotDrained,
    Panicked(Box<dyn Any + Send>),
    TimedOut,
}

/// Shard 0's part: the listener if asked, the scenario, the clean stop.
async fn lead<F, Fut>(shard: &Rc<Shard>, settings: &Settings, scenario: F) -> Outcome
where
    F: FnOnce(Broker) -> Fut,
    Fut: Future<Output = ()>,
{
    let serving = shard.count() - 1;
    let (node, addr) = match settings.network {
        true => {
            let (node, addr) = listen(shard, serving, settings, None).await;
            if settings.listen_everywhere {
                for other in (0..shard.count()).filter(|s| *s != serving) {
                    listen(shard, other, settings, Some(addr)).await;
                }
            }
            (node, Some(addr))
        }
        false => (default_node(), None),
    };
    let broker = Broker {
        shard: Rc::clone(shard),
        data_dir: settings.data_dir.clone(),
        addr,
        serving,
        node,
    };
    let scenario = AssertUnwindSafe(scenario(broker)).catch_unwind();
    let finished = glommio::timer::timeout(settings.timeout, async {
        Ok::<_, glommio::GlommioError<()>>(scenario.await)
    })
    .await;
    // A connection that never drains (a request that never ends) fails
    // the test instead of hanging it; the shards stop regardless.
    let drained = !settings.network
        || within(DRAIN_TIMEOUT, stop_listening_everywhere(shard))
            .await
            .is_some();
    stop(shard).await;
    match finished {
        Ok(Ok(())) if drained => Outcome::Passed,
        Ok(Ok(())) => Outcome::NotDrained,
        Ok(Err(panic)) => Outcome::Panicked(panic),
        Err(_) => Outcome::TimedOut,
    }
}

/// Clean shutdown (flush, checkpoints), then every shard stops.
async fn stop(shard: &Rc<Shard>) {
    shard.shutdown().await.expect("clean shutdown");
    shard.stop_all().await;
}

fn default_node() -> NodeInfo {
    NodeInfo {
        node_id: NODE_ID,
        host: HOST.to_string(),
        port: PORT,
        cluster_id: CLUSTER_ID.to_string(),
        listeners: Vec::new(),
    }
}

fn context(shard: Rc<Shard>, table: Rc<ApiTable>, node: NodeInfo) -> Rc<BrokerContext> {
    Rc::new(BrokerContext::new(table, shard, node))
}

thread_local! {
    /// The listener's network layer, on the serving shard only.
    static NET: RefCell<Option<Rc<ShardNet<Handlers>>>> = const { RefCell::new(None) };
}

/// Binds 127.0.0.1 on an ephemeral port (or `addr`, SO_REUSEPORT) on
/// shard `on` and serves the broker's handlers there; the node
/// advertises that address.
async fn listen(
    shard: &Rc<Shard>,
    on: usize,
    settings: &Settings,
    addr: Option<SocketAddr>,
) -> (NodeInfo, SocketAddr) {
    let zero_copy = settings.zero_copy;
    let endpoint = settings.endpoint.clone();
    let limits = Arc::clone(&settings.connection_limits);
    let work = move |s: Rc<Shard>| async move {
        let (listener, addr) = match addr {
            Some(addr) => (bind(addr).expect("bind"), addr),
            None => bind_first(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind"),
        };
        let node = NodeInfo {
            host: addr.ip().to_string(),
            port: addr.port(),
            ..default_node()
        };
        let table = Rc::new(broker_table());
        let handlers = Handlers::new(context(Rc::clone(&s), Rc::clone(&table), node.clone()));
        // The config's first listener names the sessions (SASL included).
        let info = s
            .config
            .listeners
            .first()
            .map(|l| ListenerInfo::of(&s.config, l))
            .unwrap_or_default();
        let config = NetConfig {
            connection: ConnectionConfig {
                zero_copy,
                ..ConnectionConfig::default()
            },
            listener: info,
            connection_limits: limits,
            ..NetConfig::default()
        };
        let mesh: Rc<dyn LimitsMesh> = Rc::new(ShardMesh::new(Rc::clone(&s)));
        let net = ShardNet::with_mesh(Rc::new(handlers), table, config, Some(mesh));
        match endpoint {
            Some(endpoint) => net.serve_endpoint(listener, endpoint).expect("serve"),
            None => net.serve(listener).expect("serve"),
        }
        NET.with(|slot| *slot.borrow_mut() = Some(net));
        (node, addr)
    };
    shard.router.invoke_on(on, work).await.expect("route")
}

/// [`stop_listening`] on every shard (those that do not listen have
/// nothing to stop).
async fn stop_listening_everywhere(shard: &Rc<Shard>) {
    for on in 0..shard.count() {
        stop_listening(shard, on).await;
    }
}

/// Stops accepting and drains the listener's connections (once: a second
/// call finds nothing to stop).
async fn stop_listening(shard: &Rc<Shard>, on: usize) {
    let work = |_: Rc<Shard>| async move {
        if let Some(net) = NET.with(|slot| slot.borrow_mut().take()) {
            net.shutdown().await;
        }
    };
    shard.router.invoke_on(on, work).await.expect("route");
}

/// The listener's connection layer as a scenario sees it, on the serving
/// shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerState {
    pub connections_open: usize,
    /// Requests being served on the serving shard now, from any source
    /// (the listener's connections and the scenario's own `call`s).
    pub requests_running: u64,
    pub metrics: NetMetricsSnapshot,
}

/// What a scenario gets: shard 0 of the running broker and ways to reach
/// it. Lives on shard 0.
#[derive(Clone)]
pub struct Broker {
    /// Shard 0's context: the metadata image, the router, the config.
    pub shard: Rc<Shard>,
    /// The data dir (`log.dirs`).
    pub data_dir: PathBuf,
    addr: Option<SocketAddr>,
    serving: usize,
    node: NodeInfo,
}

impl Broker {
    /// Sets (`Some`) or removes (`None`) the client quota `key` on client
    /// id `client_id` (`None`: the `<default>` client id), through the
    /// controller as AlterClientQuotas does; every shard's image has it on
    /// return.
    pub async fn set_client_quota(&self, client_id: Option<&str>, key: &str, value: Option<f64>) {
        let entry = rafka_core::metadata::quota_control::QuotaAlterationEntry {
            entity: vec![("client-id".to_string(), client_id.map(str::to_string))],
            ops: vec![rafka_core::metadata::quota_control::QuotaOp {
                key: key.to_string(),
                value: value.unwrap_or(0.0),
                remove: value.is_none(),
            }],
        };
        let controller = ControllerHandle::new(Rc::clone(&self.shard));
        let outcome = controller.alter_client_quotas(vec![entry], false).await;
        let outcome = outcome.expect("controller");
        assert!(outcome.iter().all(|(_, r)| r.is_ok()), "{outcome:?}");
    }

    /// The listener's address; the broker must run with `network(true)`.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("the broker runs without a listener")
    }

    /// The listener's state now; the broker must run with `network(true)`
    /// and still listen.
    pub async fn listener_state(&self) -> ListenerState {
        let work = |_: Rc<Shard>| async move {
            let net = NET.with(|slot| slot.borrow().clone());
            let net = net.expect("the broker listens");
            let (_, _, requests_running) = traffic_snapshot();
            ListenerState {
                connections_open: net.connections_open(),
                requests_running,
                metrics: net.metrics(),
            }
        };
        let state = self.shard.router.invoke_on(self.serving, work).await;
        state.expect("route")
    }

    /// The listener's state on every shard that listens, in shard order
    /// (with [`TestBroker::listen_everywhere`], all of them).
    pub async fn listener_states(&self) -> Vec<(usize, ListenerState)> {
        let mut states = Vec::new();
        for on in 0..self.shard.count() {
            let work = |_: Rc<Shard>| async move {
                let net = NET.with(|slot| slot.borrow().clone())?;
                let (_, _, requests_running) = traffic_snapshot();
                Some(ListenerState {
                    connections_open: net.connections_open(),
                    requests_running,
                    metrics: net.metrics(),
                })
            };
            if let Some(state) = self.shard.router.invoke_on(on, work).await.expect("route") {
                states.push((on, state));
            }
        }
        states
    }

    /// Stops the listener now as a clean stop does (no new connections,
    /// every connection answers what it has read and closes) and returns
    /// once it has drained; the broker's own stop later skips it.
    pub async fn stop_listening(&self) {
        stop_listening_everywhere(&self.shard).await;
    }

    pub fn shard_count(&self) -> usize {
        self.shard.count()
    }

    /// The shard that serves requests by default (and the listener): the
    /// last one.
    pub fn serving_shard(&self) -> usize {
        self.serving
    }

    /// Sends `body` as a `version` request to the serving shard and
    /// decodes the response, checking its header.
    pub async fn call<R: ProtocolRequest>(&self, version: i16, body: &R) -> R::Response {
        self.call_on(self.serving, version, body).await
    }

    /// [`Broker::call`] served on shard `on`.
    pub async fn call_on<R: ProtocolRequest>(
        &self,
        on: usize,
        version: i16,
        body: &R,
    ) -> R::Response {
        let request = request(version, body);
        let header_version = request.response_header_version;
        let response = self.serve_on(on, request).await;
        decode_reply(response, header_version, version)
    }

    /// Serves one request on the serving shard through the broker's
    /// dispatch, as its connections would; a handler error comes back as
    /// `Response::Close`.
    pub async fn serve(&self, request: TestRequest) -> Response {
        self.serve_on(self.serving, request).await
    }

    /// [`Broker::serve`] on shard `on`.
    pub async fn serve_on(&self, on: usize, request: TestRequest) -> Response {
        let node = self.node.clone();
        let work = move |shard: Rc<Shard>| async move {
            let ctx = context(shard, Rc::new(broker_table()), node);
            // Boxed: the whole request path nested in a test's scenario
            // future is deeper than the compiler's default layout limit.
            Box::pin(serve(&ctx, request.into_request())).await
        };
        self.shard.router.invoke_on(on, work).await.expect("route")
    }

    /// CreateTopics v7 of one topic (replication factor -1); returns its
    /// result, success or not.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> CreatableTopicResult {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![creatable(name, partitions, configs)])
            .with_timeout_ms(30_000);
        let response: CreateTopicsResponse = self.call(7, &request).await;
        assert_eq!(response.topics.len(), 1);
        response.topics.into_iter().next().expect("one result")
    }

    /// [`Broker::create_topic`] that must succeed; returns the topic id.
    pub async fn create_topic_id(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Uuid {
        let result = self.create_topic(name, partitions, configs).await;
        assert_eq!(result.error_code, 0, "creating {name}: {result:?}");
        result.topic_id
    }

    /// Metadata v12 for `names`, without auto-creation.
    pub async fn metadata_of(&self, names: &[&str]) -> MetadataResponse {
        let topics = names.iter().map(|n| metadata_topic(n)).collect();
        let request = MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(false);
        self.call(12, &request).await
    }

    /// A fresh producer id from the controller.
    pub async fn allocate_producer_id(&self) -> i64 {
        let controller = self.controller();
        let allocated = controller.allocate_producer_id().await;
        allocated.expect("controller").expect("producer id")
    }

    /// Creates `__consumer_offsets` as the first FindCoordinator does (a
    /// no-op when it exists).
    pub async fn ensure_offsets_topic(&self) {
        let controller = self.controller();
        let topic = self.shard.offsets_topic();
        let ensured = controller.ensure_internal_topic(topic, None).await;
        ensured.expect("controller").expect("__consumer_offsets");
    }

    fn controller(&self) -> ControllerHandle {
        ControllerHandle::new(Rc::clone(&self.shard))
    }

    /// Appends `records` on the partition's owner through the shard API
    /// (no Produce handler), acks=all; returns the base offset.
    pub async fn produce(&self, topic: &str, partition: i32, records: Bytes) -> i64 {
        let owner = self.shard.owner_of(topic, partition).expect("owner");
        let topic = topic.to_string();
        let work = move |s: Rc<Shard>| async move {
            s.registry()
                .produce(
                    &topic,
                    partition,
                    &records,
                    Acks::All,
                    PRODUCE_TIMEOUT,
                    None,
                )
                .await
                .map(|appended| appended.base_offset)
                .map_err(|e| e.error_code())
        };
        let produced = self.shard.router.invoke_on(owner, work).await;
        produced.expect("route").expect("produce")
    }

    /// [`Broker::produce`] of a transactional batch that opens its
    /// producer's transaction on the partition: the KIP-890 guard the
    /// partition asks for is handed straight back (standing in for the
    /// coordinator's verification). Returns the base offset.
    pub async fn produce_verified(&self, topic: &str, partition: i32, records: Bytes) -> i64 {
        let owner = self.shard.owner_of(topic, partition).expect("owner");
        let topic = topic.to_string();
        let work = move |s: Rc<Shard>| async move {
            let verified = |_, _| async { Ok(()) };
            s.registry()
                .produce_verifying(
                    &topic,
                    partition,
                    &records,
                    Acks::All,
                    PRODUCE_TIMEOUT,
                    verified,
                )
                .await
                .map(|appended| appended.base_offset)
                .map_err(|e| e.error_code())
        };
        let produced = self.shard.router.invoke_on(owner, work).await;
        produced.expect("route").expect("produce")
    }

    /// Writes a transaction marker on the partition's owner (as
    /// WriteTxnMarkers will); its offset once durable, or the error code.
    pub async fn write_txn_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: TxnMarker,
    ) -> Result<i64, i16> {
        let owner = self.shard.owner_of(topic, partition).expect("owner");
        let topic = topic.to_string();
        let work = move |s: Rc<Shard>| async move {
            s.registry()
                .write_txn_marker(&topic, partition, marker, PRODUCE_TIMEOUT)
                .await
                .map_err(|e| e.error_code().code())
        };
        self.shard
            .router
            .invoke_on(owner, work)
            .await
            .expect("route")
    }

    /// One batch through the Produce handler (v9, acks=all) on shard 0,
    /// which must take it; returns its base offset.
    pub async fn produce_one(&self, topic: &str, partition: i32, records: Bytes) -> i64 {
        let request = produce_request(-1, vec![(topic, vec![(partition, Some(records))])]);
        let response = self.call_on(0, 9, &request).await;
        let (_, answer) = produce_answers(&response).remove(0);
        assert_eq!(answer.error_code, 0, "{answer:?}");
        answer.base_offset
    }

    /// Everything readable in a partition, through the shard API: (high
    /// watermark, batches as (base offset, whole batch bytes)).
    pub async fn fetch_all(&self, topic: &str, partition: i32) -> (i64, Vec<(i64, Bytes)>) {
        let owner = self.shard.owner_of(topic, partition).expect("owner");
        let topic = topic.to_string();
        let work = move |s: Rc<Shard>| async move {
            s.registry()
                .fetch(&topic, partition, 0, 1 << 20)
                .await
                .map_err(|e| e.error_code())
        };
        let fetched = self.shard.router.invoke_on(owner, work).await;
        let fetched = fetched.expect("route").expect("fetch");
        let batches = Batches::new(fetched.records)
            .map(|b| {
                let b = b.expect("valid batch");
                (b.header().base_offset, b.as_bytes().clone())
            })
            .collect();
        (fetched.high_watermark, batches)
    }

    /// `<data dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{partition}"))
    }

    /// Whether the data dir has a directory for `topic`-`partition`.
    pub fn has_partition_dir(&self, topic: &str, partition: i32) -> bool {
        self.partition_dir(topic, partition).is_dir()
    }

    /// Whether partition `index` of `topic` is open on the shard the image
    /// says owns it.
    pub async fn is_open_on_owner(&self, topic: &str, index: i32) -> bool {
        let Some(owner) = self.shard.owner_of(topic, index) else {
            return false;
        };
        let topic = topic.to_string();
        let work = move |s: Rc<Shard>| async move { s.partition(&topic, index).is_some() };
        self.shard
            .router
            .invoke_on(owner, work)
            .await
            .expect("route")
    }
}

/// A request as the connection layer hands it to the handlers, but for
/// its session: a session is a connection's, stays on its shard (`Rc`),
/// and is made fresh (`User:ANONYMOUS` on PLAINTEXT) on the shard that
/// serves the request.
#[derive(Debug, Clone)]
pub struct TestRequest {
    pub header: RequestHeader,
    pub response_header_version: ResponseHeaderVersion,
    pub body: Bytes,
    pub frame_bytes: usize,
}

impl TestRequest {
    /// The request of a fresh connection from 127.0.0.1:40001.
    pub fn into_request(self) -> Request {
        let peer = SocketAddr::from(([127, 0, 0, 1], 40_001));
        Request {
            header: self.header,
            response_header_version: self.response_header_version,
            body: self.body,
            frame_bytes: self.frame_bytes,
            session: Rc::new(Session::new(peer, ListenerInfo::default())),
        }
    }
}

/// A request as the connection layer hands it to the handlers: `body`
/// encoded at `version`, the header versions from the broker's table.
pub fn request<R: ProtocolRequest>(version: i16, body: &R) -> TestRequest {
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded, version).expect("encode request");
    let api_key = ApiKey::try_from(R::KEY).expect("api key");
    raw_request(api_key, version, encoded.freeze())
}

/// A request whose body is given as bytes (malformed on purpose).
pub fn raw_request(api_key: ApiKey, version: i16, body: Bytes) -> TestRequest {
    let table = broker_table();
    let entry = table.entry(api_key).expect("served");
    TestRequest {
        header: RequestHeader {
            api_key,
            api_version: version,
            correlation_id: CORRELATION_ID,
            header_version: entry.request_header_version(version),
            client_id: Some(Bytes::from_static(CLIENT_ID)),
        },
        response_header_version: entry.response_header_version(version),
        frame_bytes: body.len() + 64,
        body,
    }
}

/// The broker's API table, for tests of the connection layer that serve
/// with their own `Service`.
pub fn api_table() -> Rc<ApiTable> {
    Rc::new(broker_table())
}

/// The broker's ApiVersions handler alone, as a `Service`: a connection
/// layer to test without a running shard core.
pub struct ApiVersionsOnly {
    table: Rc<ApiTable>,
}

impl ApiVersionsOnly {
    pub fn new() -> ApiVersionsOnly {
        ApiVersionsOnly { table: api_table() }
    }
}

impl Default for ApiVersionsOnly {
    fn default() -> Self {
        ApiVersionsOnly::new()
    }
}

impl Service for ApiVersionsOnly {
    async fn call(&self, request: Request) -> Response {
        api_versions::answer(&self.table, request).unwrap_or_else(Response::Close)
    }
}

/// Checks the response header and decodes the whole body as `Resp`;
/// chunked replies (Fetch) are read into memory first.
fn decode_reply<Resp: Decodable>(
    response: Response,
    header_version: ResponseHeaderVersion,
    version: i16,
) -> Resp {
    let mut bytes = match response {
        Response::Reply(bytes) => bytes,
        Response::Chunks(chunks) => chunks.materialize().expect("regions readable"),
        other => panic!("expected a reply, got {other:?}"),
    };
    assert_eq!(bytes.get_i32(), CORRELATION_ID);
    if header_version == ResponseHeaderVersion::V1 {
        assert_eq!(bytes.get_u8(), 0, "no tagged fields in the header");
    }
    let decoded = Resp::decode(&mut bytes, version).expect("decode response");
    assert_eq!(bytes.remaining(), 0, "response has trailing bytes");
    decoded
}

/// Runs blocking client code (a [`crate::wire::WireClient`]) off the shard,
/// which keeps serving meanwhile, and re-raises its panic here.
pub async fn blocking<T, F>(client: F) -> T
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let outcome = glommio::executor()
        .spawn_blocking(move || std::panic::catch_unwind(AssertUnwindSafe(client)))
        .await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
