//! A 3-node cluster (scripts/cluster.sh, every node broker + controller on
//! one raft-rs metadata quorum) with real clients: librdkafka sees three
//! brokers and one controller, produces to and consumes from partitions led
//! by different brokers; a broker that does not lead a partition refuses it
//! with NOT_LEADER_OR_FOLLOWER; topics are created through any broker; the
//! active controller is killed under topic-creation load and every
//! acknowledged topic exists afterwards on every broker, the killed one
//! included once it is back; a killed broker is fenced and its partitions
//! shown offline until it returns, or, replicated, led by another in-sync
//! replica; AlterPartition on the controller listener checks epochs; a
//! consumer group's coordinator killed, its committed offsets served by
//! the internal partition's new leader.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, FetchRequest, FetchResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rafka_testkit::WireClient;

use support::client::{assert_topic, now_ms, produce, producer, records};
use support::ports::{free_base_port, PortLock};

const NODES: [u16; 3] = [1, 2, 3];
const DEADLINE: Duration = Duration::from_secs(60);
/// Kafka's NOT_LEADER_OR_FOLLOWER.
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

struct Cluster {
    dir: tempfile::TempDir,
    base: u16,
    /// Broker-only nodes beside the three voters (nodes 4, 5, ...).
    brokers: u16,
    /// Each node's rack, in node order (`CLUSTER_RACKS`); empty: none.
    racks: String,
}

impl Cluster {
    /// Starts nodes 1-3 with a short broker session (fencing in 3 s).
    fn start() -> Cluster {
        Cluster::start_with_brokers(0)
    }

    /// Nodes 1-3 (voters) and `brokers` broker-only nodes after them.
    fn start_with_brokers(brokers: u16) -> Cluster {
        Cluster::start_configured(brokers, "")
    }

    /// As [`Cluster::start_with_brokers`], with `extra` properties lines.
    fn start_configured(brokers: u16, extra: &str) -> Cluster {
        Cluster::start_in_racks(brokers, extra, "")
    }

    /// As [`Cluster::start_configured`], node N in the Nth of `racks`
    /// (space-separated).
    fn start_in_racks(brokers: u16, extra: &str, racks: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("server.properties");
        std::fs::write(
            &config,
            format!("broker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=500\n{extra}"),
        )
        .expect("config");
        // Picking free ports and binding them is not atomic: tests (and
        // test runs) that start clusters at once take turns, so no two
        // pick the same ports before either has bound them.
        let _turn = PortLock::take();
        let cluster = Cluster {
            dir,
            base: free_base_port(5),
            brokers,
            racks: racks.to_string(),
        };
        let lines = cluster.ok(&["start", "--fresh"]);
        let last = lines.last().expect("a bootstrap line");
        assert_eq!(last, &format!("bootstrap={}", cluster.bootstrap()));
        cluster
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_cores(args, 1)
    }

    fn run_with_cores(&self, args: &[&str], cores: u32) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
        Command::new("bash")
            .arg(script)
            .args(args)
            .env("RAFKA_BIN", env!("CARGO_BIN_EXE_rafka"))
            .env("CLUSTER_DIR", self.cluster_dir())
            .env("CLUSTER_BASE_PORT", self.base.to_string())
            .env("CLUSTER_CONFIG", self.dir.path().join("server.properties"))
            .env("CLUSTER_CORES", cores.to_string())
            .env("CLUSTER_BROKERS", self.brokers.to_string())
            .env("CLUSTER_RACKS", &self.racks)
            .env_remove("CLUSTER_NO_QUORUM")
            .env_remove("CLUSTER_BUILD")
            .output()
            .expect("run scripts/cluster.sh")
    }

    fn ok(&self, args: &[&str]) -> Vec<String> {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "cluster.sh {args:?}: {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout.lines().map(str::to_string).collect()
    }

    fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    fn listener(&self, node: u16) -> SocketAddr {
        format!("127.0.0.1:{}", self.base + node)
            .parse()
            .expect("address")
    }

    /// Every node: the voters, then the broker-only nodes.
    fn nodes(&self) -> Vec<u16> {
        (1..=3 + self.brokers).collect()
    }

    fn bootstrap(&self) -> String {
        self.nodes()
            .iter()
            .map(|n| self.listener(*n).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn pid(&self, node: u16) -> Option<u32> {
        let file = self.cluster_dir().join(format!("node-{node}.pid"));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    fn metadata(&self, node: u16, topics: Option<Vec<&str>>) -> MetadataResponse {
        let mut client = WireClient::connect(self.listener(node), "cluster").expect("connect");
        let topics = topics.map(|names| {
            names
                .into_iter()
                .map(|name| {
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
                })
                .collect()
        });
        client
            .call(
                12,
                &MetadataRequest::default()
                    .with_topics(topics)
                    .with_allow_auto_topic_creation(false),
            )
            .expect("Metadata")
    }

    /// Node N's /metrics text.
    fn metrics(&self, node: u16) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.base + 200 + node))
            .expect("metrics connect");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("metrics request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("metrics response");
        text
    }

    /// `rafka topic create` through `node`; whether it was acknowledged.
    fn create_topic(&self, node: u16, name: &str, partitions: u32) -> Result<(), String> {
        let output = Command::new(env!("CARGO_BIN_EXE_rafka"))
            .args(["topic", "--bootstrap", &self.listener(node).to_string()])
            .args(["create", name, "--partitions", &partitions.to_string()])
            .output()
            .expect("run rafka topic create");
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Polls Metadata on `node` until `check` holds.
    fn await_metadata(&self, node: u16, what: &str, check: impl Fn(&MetadataResponse) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut client = WireClient::connect(self.listener(node), "cluster");
            if let Ok(client) = client.as_mut() {
                let answer: Result<MetadataResponse, _> = client.call(
                    12,
                    &MetadataRequest::default()
                        .with_topics(None)
                        .with_allow_auto_topic_creation(false),
                );
                if answer.is_ok_and(|m| check(&m)) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "node {node}: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
        // RAFKA_CLUSTER_LOGS=DIR keeps the nodes' logs for a look after.
        if let Some(keep) = std::env::var_os("RAFKA_CLUSTER_LOGS") {
            let keep = PathBuf::from(keep);
            let _ = std::fs::create_dir_all(&keep);
            for node in self.nodes() {
                let name = format!("node-{node}.log");
                let _ = std::fs::copy(self.cluster_dir().join(&name), keep.join(name));
            }
        }
        for node in self.nodes() {
            if let Some(pid) = self.pid(node) {
                // SAFETY: kill(2) of this test's broker if it is still up.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
    }
}

fn broker_ids(metadata: &MetadataResponse) -> Vec<i32> {
    metadata.brokers.iter().map(|b| b.node_id.0).collect()
}

fn topic_names(metadata: &MetadataResponse) -> BTreeSet<String> {
    metadata
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect()
}

#[test]
fn three_brokers_serve_partitions_led_across_the_cluster() {
    let cluster = Cluster::start();
    // Every node shows the same three brokers, controller and cluster id.
    let views: Vec<MetadataResponse> = NODES.iter().map(|n| cluster.metadata(*n, None)).collect();
    for view in &views {
        assert_eq!(broker_ids(view), vec![1, 2, 3]);
        assert_eq!(view.controller_id, views[0].controller_id);
        assert_eq!(view.cluster_id, views[0].cluster_id);
    }
    let controller = views[0].controller_id.0;
    assert!((1..=3).contains(&controller));

    // DescribeQuorum on the active controller: three voters, all caught up
    // to a high watermark past the three registrations.
    let node = u16::try_from(controller).expect("node id");
    let mut client = WireClient::connect(cluster.listener(node), "cluster").expect("connect");
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let quorum: DescribeQuorumResponse = client.call(2, &request).expect("DescribeQuorum");
    assert_eq!(quorum.error_code, 0);
    let partition = &quorum.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    assert_eq!(partition.leader_id.0, controller);
    assert!(partition.high_watermark >= 3, "{partition:?}");
    let voters: Vec<i32> = partition
        .current_voters
        .iter()
        .map(|v| v.replica_id.0)
        .collect();
    assert_eq!(voters, vec![1, 2, 3]);
    assert!(partition
        .current_voters
        .iter()
        .all(|v| v.log_end_offset >= 1));
    assert_eq!(quorum.nodes.len(), 3);
    // Every node's /metrics agrees on the quorum's leader and the brokers.
    for n in NODES {
        let text = cluster.metrics(n);
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("node {n}: no {prefix} in\n{text}"))
                .rsplit(' ')
                .next()
                .expect("a value")
                .to_string()
        };
        assert_eq!(line("rafka_quorum_leader{"), controller.to_string());
        assert_eq!(line("rafka_cluster_brokers{state=\"live\"}"), "3");
        assert_eq!(line("rafka_cluster_brokers{state=\"fenced\"}"), "0");
    }

    // Created through node 2, led by all three.
    cluster.create_topic(2, "spread", 6).expect("created");
    let described = cluster.metadata(3, Some(vec!["spread"]));
    let leaders: BTreeMap<i32, i32> = described.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    assert_eq!(leaders.len(), 6);
    assert_eq!(
        leaders.values().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 3]),
        "{leaders:?}"
    );

    // librdkafka produces to every partition's leader and reads it all back.
    let bootstrap = cluster.bootstrap();
    let expected = records(6, 20, now_ms());
    let producer = producer(&bootstrap, &[("acks", "all")]);
    let offsets = produce(&producer, "spread", &expected);
    for partition in &offsets {
        assert_eq!(partition, &(0..20).collect::<Vec<i64>>());
    }
    assert_topic(&bootstrap, "spread", &expected);

    // Deleted through node 1: gone from every broker, data included.
    cluster.create_topic(3, "doomed", 3).expect("created");
    let holders = |partition: i32| -> Vec<u16> {
        NODES
            .iter()
            .copied()
            .filter(|node| {
                cluster
                    .cluster_dir()
                    .join(format!("node-{node}/doomed-{partition}"))
                    .is_dir()
            })
            .collect()
    };
    // Each partition lives on its one replica only.
    let doomed = cluster.metadata(2, Some(vec!["doomed"]));
    for p in &doomed.topics[0].partitions {
        let leader = u16::try_from(p.leader_id.0).expect("a leader");
        assert_eq!(holders(p.partition_index), vec![leader]);
    }
    let deleted = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args(["delete", "doomed"])
        .output()
        .expect("rafka topic delete");
    assert!(deleted.status.success(), "{deleted:?}");
    for node in NODES {
        cluster.await_metadata(node, "doomed deleted", |m| {
            !topic_names(m).contains("doomed")
        });
    }
    for partition in 0..3 {
        assert_eq!(
            holders(partition),
            Vec::<u16>::new(),
            "partition {partition}"
        );
    }

    // Shard placement is each node's own: node 3 comes back with two cores
    // and serves its partitions (now spread over its cores) as before.
    cluster.ok(&["kill", "3"]);
    let restarted = cluster.run_with_cores(&["start", "3"], 2);
    assert!(restarted.status.success(), "{restarted:?}");
    cluster.await_metadata(1, "node 3 back", |m| broker_ids(m) == vec![1, 2, 3]);
    assert_topic(&bootstrap, "spread", &expected);
    let more = records(6, 5, now_ms());
    let offsets = produce(&producer, "spread", &more);
    for partition in &offsets {
        assert_eq!(partition, &(20..25).collect::<Vec<i64>>());
    }

    // A broker that does not lead partition 0 refuses it.
    let leader = leaders[&0];
    let other = NODES
        .iter()
        .copied()
        .find(|n| i32::from(*n) != leader)
        .expect("a non-leader");
    let mut client = WireClient::connect(cluster.listener(other), "cluster").expect("connect");
    let batch = rafka_testkit::records::value_batch("v");
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("spread")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let answer: ProduceResponse = client.call(9, &request).expect("Produce");
    assert_eq!(
        answer.responses[0].partition_responses[0].error_code,
        NOT_LEADER_OR_FOLLOWER
    );
    // From v10 the refusal names the leader and where it is (KIP-951).
    let answer: ProduceResponse = client.call(10, &request).expect("Produce v10");
    let refused = &answer.responses[0].partition_responses[0];
    assert_eq!(refused.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(refused.current_leader.leader_id.0, leader);
    // 0, or 2 if node 3 led it and was fenced while down (no leader, then
    // itself again).
    let now = cluster.metadata(other, Some(vec!["spread"]));
    let epoch = now.topics[0].partitions[0].leader_epoch;
    assert_eq!(refused.current_leader.leader_epoch, epoch);
    let endpoints: Vec<(i32, i32)> = answer
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.port))
        .collect();
    let leader_port = i32::from(cluster.listener(u16::try_from(leader).expect("id")).port());
    assert_eq!(endpoints, vec![(leader, leader_port)]);
    // Fetch v16 from the same broker: refused with the same hints.
    let topic_id = described.topics[0].topic_id;
    let fetch = FetchRequest::default()
        .with_replica_state(ReplicaState::default().with_replica_id(BrokerId(-1)))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic_id(topic_id)
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let answer: FetchResponse = client.call(16, &fetch).expect("Fetch v16");
    let refused = &answer.responses[0].partitions[0];
    assert_eq!(refused.error_code, NOT_LEADER_OR_FOLLOWER);
    assert_eq!(refused.current_leader.leader_id.0, leader);
    let endpoints: Vec<(i32, i32)> = answer
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.port))
        .collect();
    assert_eq!(endpoints, vec![(leader, leader_port)]);
}

#[test]
fn a_new_controller_takes_over_and_every_acknowledged_topic_survives() {
    let cluster = Arc::new(Cluster::start());
    let controller = cluster.metadata(1, None).controller_id.0;
    let controller = u16::try_from(controller).expect("a node id");
    let creator = NODES
        .iter()
        .copied()
        .find(|n| *n != controller)
        .expect("another node");
    // Topic creations through a survivor while the controller dies.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let running = Arc::new(AtomicBool::new(true));
    let load = {
        let (cluster, acknowledged, running) = (
            Arc::clone(&cluster),
            Arc::clone(&acknowledged),
            Arc::clone(&running),
        );
        std::thread::spawn(move || {
            let mut i = 0;
            while running.load(Ordering::Relaxed) {
                let name = format!("load-{i}");
                if cluster.create_topic(creator, &name, 1).is_ok() {
                    acknowledged.lock().expect("lock").push(name);
                }
                i += 1;
            }
        })
    };
    // A few creations land before the kill.
    let deadline = Instant::now() + DEADLINE;
    while acknowledged.lock().expect("lock").len() < 5 {
        assert!(Instant::now() < deadline, "no topic acknowledged");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_at = Instant::now();
    cluster.ok(&["kill", &controller.to_string()]);
    let survivors: Vec<u16> = NODES.iter().copied().filter(|n| *n != controller).collect();
    for node in &survivors {
        cluster.await_metadata(*node, "a new controller", |m| {
            m.controller_id.0 > 0 && m.controller_id.0 != i32::from(controller)
        });
    }
    eprintln!(
        "a new controller answered {} ms after the kill",
        killed_at.elapsed().as_millis()
    );
    // Creations go on through the new controller.
    let before = acknowledged.lock().expect("lock").len();
    let deadline = Instant::now() + DEADLINE;
    while acknowledged.lock().expect("lock").len() < before + 5 {
        assert!(Instant::now() < deadline, "no creation after the failover");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.store(false, Ordering::Relaxed);
    load.join().expect("load thread");
    // The killed node is fenced: survivors stop listing it.
    for node in &survivors {
        cluster.await_metadata(*node, "the killed broker fenced", |m| {
            !broker_ids(m).contains(&i32::from(controller))
        });
    }
    // It comes back on its data dir and catches up.
    cluster.ok(&["start", &controller.to_string()]);
    let acknowledged = acknowledged.lock().expect("lock").clone();
    for node in NODES {
        cluster.await_metadata(node, "every acknowledged topic", |m| {
            let names = topic_names(m);
            acknowledged.iter().all(|t| names.contains(t)) && broker_ids(m) == vec![1, 2, 3]
        });
    }
    eprintln!(
        "{} topics acknowledged, all on every broker",
        acknowledged.len()
    );
}

#[test]
fn a_paused_controller_is_replaced_and_rejoins_as_a_follower() {
    let cluster = Cluster::start();
    let controller = cluster.metadata(1, None).controller_id.0;
    let paused = u16::try_from(controller).expect("a node id");
    let pid = cluster.pid(paused).expect("its pid");
    let survivor = NODES
        .iter()
        .copied()
        .find(|n| *n != paused)
        .expect("another node");
    cluster
        .create_topic(survivor, "before-pause", 1)
        .expect("created");
    // SIGSTOP past the election timeout: the others elect a new leader
    // and go on committing without it.
    // SAFETY: kill(2) of this test's broker.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGSTOP);
    }
    cluster.await_metadata(survivor, "a new controller while paused", |m| {
        m.controller_id.0 > 0 && m.controller_id.0 != controller
    });
    let deadline = Instant::now() + DEADLINE;
    while cluster.create_topic(survivor, "while-paused", 1).is_err() {
        assert!(Instant::now() < deadline, "no creation while paused");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Resumed, it learns the new term, steps down and catches up.
    // SAFETY: as above.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGCONT);
    }
    let new_controller = cluster.metadata(survivor, None).controller_id.0;
    cluster.await_metadata(paused, "the paused node caught up", |m| {
        let names = topic_names(m);
        m.controller_id.0 == new_controller
            && names.contains("before-pause")
            && names.contains("while-paused")
    });
    // It takes admin requests again, through the new controller.
    let deadline = Instant::now() + DEADLINE;
    while cluster.create_topic(paused, "after-resume", 1).is_err() {
        assert!(Instant::now() < deadline, "no creation after resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    for node in NODES {
        cluster.await_metadata(node, "every topic everywhere", |m| {
            let names = topic_names(m);
            ["before-pause", "while-paused", "after-resume"]
                .iter()
                .all(|t| names.contains(*t))
        });
    }
}

/// Node i reaches node j's controller through `proxies[i][j]`.
struct CutCluster {
    nodes: Vec<rafka_testkit::process::BrokerProcess>,
    proxies: BTreeMap<(u16, u16), rafka_testkit::proxy::FaultProxy>,
}

impl CutCluster {
    fn start(dir: &Path) -> CutCluster {
        CutCluster::start_with_roles(dir, ["broker,controller"; 3])
    }

    /// Node i + 1 runs with `roles[i]`.
    fn start_with_roles(dir: &Path, roles: [&str; 3]) -> CutCluster {
        let _turn = PortLock::take();
        let base = free_base_port(3);
        let controllers: BTreeMap<u16, SocketAddr> = NODES
            .iter()
            .map(|n| (*n, SocketAddr::from(([127, 0, 0, 1], base + 100 + n))))
            .collect();
        let mut proxies = BTreeMap::new();
        for from in NODES {
            for to in NODES.iter().copied().filter(|to| *to != from) {
                let proxy = rafka_testkit::proxy::FaultProxy::start(controllers[&to]);
                proxies.insert((from, to), proxy);
            }
        }
        let starts: Vec<_> = NODES
            .iter()
            .map(|node| {
                let voters: Vec<String> = NODES
                    .iter()
                    .map(|peer| {
                        let addr = if peer == node {
                            controllers[node]
                        } else {
                            proxies[&(*node, *peer)].addr()
                        };
                        format!("{peer}@{addr}")
                    })
                    .collect();
                let options =
                    rafka_testkit::process::BrokerOptions::new(env!("CARGO_BIN_EXE_rafka"), 1)
                        .data_dir(dir.join(format!("node-{node}")))
                        .property("broker.session.timeout.ms", "3000")
                        .property("controller.quorum.request.timeout.ms", "400")
                        .arg("--node-id")
                        .arg(&node.to_string())
                        .arg("--process-roles")
                        .arg(roles[usize::from(*node) - 1])
                        .arg("--controller-quorum-voters")
                        .arg(&voters.join(","))
                        .arg("--cluster-id")
                        .arg("cut-cluster-test-id-00");
                std::thread::spawn(move || rafka_testkit::process::BrokerProcess::start(options))
            })
            .collect();
        let nodes = starts
            .into_iter()
            .map(|start| start.join().expect("node started"))
            .collect();
        CutCluster { nodes, proxies }
    }

    fn addr(&self, node: u16) -> SocketAddr {
        self.nodes[usize::from(node) - 1]
            .bootstrap()
            .parse()
            .expect("address")
    }

    fn metadata(&self, node: u16) -> Option<MetadataResponse> {
        let mut client = WireClient::connect(self.addr(node), "cut").ok()?;
        client
            .call(
                12,
                &MetadataRequest::default()
                    .with_topics(None)
                    .with_allow_auto_topic_creation(false),
            )
            .ok()
    }

    fn await_metadata(&self, node: u16, what: &str, check: impl Fn(&MetadataResponse) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !self.metadata(node).is_some_and(|m| check(&m)) {
            assert!(Instant::now() < deadline, "node {node}: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_topic(&self, node: u16, name: &str) -> Result<(), String> {
        let output = Command::new(env!("CARGO_BIN_EXE_rafka"))
            .args(["topic", "--bootstrap", &self.addr(node).to_string()])
            .args(["create", name, "--partitions", "1"])
            .output()
            .expect("rafka topic create");
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Cuts (or heals) every link between `node` and the others, both ways.
    fn isolate(&self, node: u16, cut: bool) {
        for ((from, to), proxy) in &self.proxies {
            if *from == node || *to == node {
                if cut {
                    proxy.cut();
                } else {
                    proxy.heal();
                }
            }
        }
    }
}

#[test]
fn a_controller_cut_off_from_the_others_steps_down_and_the_majority_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = CutCluster::start(dir.path());
    let controller = cluster.metadata(1).expect("metadata").controller_id.0;
    let isolated = u16::try_from(controller).expect("a node id");
    let majority: Vec<u16> = NODES.iter().copied().filter(|n| *n != isolated).collect();
    cluster
        .create_topic(majority[0], "before-cut")
        .expect("created");
    for node in NODES {
        cluster.await_metadata(node, "before-cut everywhere", |m| {
            topic_names(m).contains("before-cut")
        });
    }
    // Cut off from the other controllers, not from its clients.
    cluster.isolate(isolated, true);
    for node in &majority {
        cluster.await_metadata(*node, "a new controller in the majority", |m| {
            m.controller_id.0 > 0 && m.controller_id.0 != controller
        });
    }
    let deadline = Instant::now() + DEADLINE;
    while cluster.create_topic(majority[1], "majority").is_err() {
        assert!(Instant::now() < deadline, "the majority commits nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Alone, the old leader steps down (check-quorum): it knows of no
    // active controller any more.
    cluster.await_metadata(isolated, "the isolated leader stepped down", |m| {
        m.controller_id.0 != controller
    });
    // The minority of one cannot commit: refused, and never applied.
    let refused = cluster.create_topic(isolated, "minority");
    assert!(refused.is_err(), "a lone node committed: {refused:?}");
    // Healed, it follows the new controller and has exactly what the
    // majority committed.
    cluster.isolate(isolated, false);
    let new_controller = cluster
        .metadata(majority[0])
        .expect("metadata")
        .controller_id
        .0;
    cluster.await_metadata(isolated, "the healed node caught up", |m| {
        let names = topic_names(m);
        m.controller_id.0 == new_controller && names.contains("majority")
    });
    for node in NODES {
        let names = topic_names(&cluster.metadata(node).expect("metadata"));
        assert!(names.contains("before-cut") && names.contains("majority"));
        assert!(!names.contains("minority"), "node {node}: {names:?}");
    }
}

#[test]
fn a_controller_only_node_votes_but_holds_no_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = CutCluster::start_with_roles(
        dir.path(),
        ["broker,controller", "broker,controller", "controller"],
    );
    // Node 3 is in the quorum but is no broker: nobody lists it.
    for node in NODES {
        cluster.await_metadata(node, "brokers 1 and 2", |m| broker_ids(m) == vec![1, 2]);
    }
    cluster
        .create_topic(3, "two-brokers")
        .expect("created through node 3");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let names = cluster
            .metadata(1)
            .map(|m| topic_names(&m))
            .unwrap_or_default();
        if names.contains("two-brokers") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "two-brokers never reached node 1"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.addr(3).to_string()])
        .args(["create", "wide", "--partitions", "6"])
        .output()
        .expect("rafka topic create");
    assert!(output.status.success(), "{output:?}");
    let mut client = WireClient::connect(cluster.addr(1), "cut").expect("connect");
    let wide: MetadataResponse = client
        .call(
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("wide")))),
            ])),
        )
        .expect("Metadata");
    let leaders: BTreeSet<i32> = wide.topics[0]
        .partitions
        .iter()
        .map(|p| p.leader_id.0)
        .collect();
    assert_eq!(leaders, BTreeSet::from([1, 2]));
}

#[test]
fn a_node_waiting_for_its_quorum_stops_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let ports: Vec<u16> = {
        let _turn = PortLock::take();
        let base = free_base_port(3);
        NODES.iter().map(|n| base + 100 + n).collect()
    };
    let voters = format!(
        "1@127.0.0.1:{},2@127.0.0.1:{},3@127.0.0.1:{}",
        ports[0], ports[1], ports[2]
    );
    // Node 1 alone: no majority, so it never registers nor gets ready.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "none"])
        .args(["--cores", "1", "--pin", "false", "--node-id", "1"])
        .arg("--data-dir")
        .arg(dir.path().join("node-1"))
        .args(["--controller-quorum-voters", &voters])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rafka");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let waiting = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("registering with the cluster"));
    assert!(waiting, "no registration line");
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    // SAFETY: kill(2) of this test's child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status =
        rafka_testkit::process::stop_child(child, DEADLINE).expect("it exits after SIGTERM");
    assert!(status.success(), "{status}");
    drain.join().expect("stderr reader");
}

/// Kafka's NOT_CONTROLLER, STALE_BROKER_EPOCH, INCONSISTENT_CLUSTER_ID.
const NOT_CONTROLLER: i16 = 41;
const STALE_BROKER_EPOCH: i16 = 77;
const INCONSISTENT_CLUSTER_ID: i16 = 104;

#[test]
fn broker_only_nodes_follow_the_quorum_and_register_through_kafka_apis() {
    use kafka_protocol::messages::{
        ApiVersionsRequest, ApiVersionsResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse,
        BrokerRegistrationRequest, BrokerRegistrationResponse,
    };
    // Voters 1-3 and two broker-only nodes, 4 and 5.
    let cluster = Cluster::start_with_brokers(2);
    let all = cluster.nodes();
    assert_eq!(all, vec![1, 2, 3, 4, 5]);
    for node in &all {
        cluster.await_metadata(*node, "five brokers", |m| {
            broker_ids(m) == vec![1, 2, 3, 4, 5] && (1..=3).contains(&m.controller_id.0)
        });
    }
    let controller = cluster.metadata(4, None).controller_id.0;
    let controller_port = |node: u16| -> SocketAddr {
        format!("127.0.0.1:{}", cluster.base + 100 + node)
            .parse()
            .expect("address")
    };

    // The controller listener speaks the Kafka protocol to brokers.
    let leader = u16::try_from(controller).expect("node id");
    let follower = (1..=3).find(|n| *n != leader).expect("a follower voter");
    let mut to_leader = WireClient::connect(controller_port(leader), "t").expect("connect");
    let versions: ApiVersionsResponse = to_leader
        .call(3, &ApiVersionsRequest::default())
        .expect("ApiVersions");
    let keys: Vec<(i16, i16, i16)> = versions
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    assert_eq!(keys, vec![(18, 0, 3), (56, 2, 3), (62, 0, 4), (63, 0, 1)]);
    let heartbeat = BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(4))
        .with_broker_epoch(999);
    let answer: BrokerHeartbeatResponse = to_leader.call(1, &heartbeat).expect("heartbeat");
    assert_eq!(answer.error_code, STALE_BROKER_EPOCH);
    let registration = BrokerRegistrationRequest::default()
        .with_broker_id(BrokerId(9))
        .with_cluster_id(StrBytes::from_static_str("some-other-cluster"));
    let answer: BrokerRegistrationResponse =
        to_leader.call(3, &registration).expect("registration");
    assert_eq!(answer.error_code, INCONSISTENT_CLUSTER_ID);
    let mut to_follower = WireClient::connect(controller_port(follower), "t").expect("connect");
    let answer: BrokerHeartbeatResponse = to_follower.call(1, &heartbeat).expect("heartbeat");
    assert_eq!(answer.error_code, NOT_CONTROLLER);

    // Created through a broker-only node (its proposal forwarded to the
    // voters), led by all five.
    cluster.create_topic(5, "observed", 10).expect("created");
    let described = cluster.metadata(4, Some(vec!["observed"]));
    let leaders: BTreeMap<i32, i32> = described.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    assert_eq!(
        leaders.values().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 3, 4, 5]),
        "{leaders:?}"
    );
    let bootstrap = cluster.bootstrap();
    let expected = records(10, 10, now_ms());
    let producer = producer(&bootstrap, &[("acks", "all")]);
    let offsets = produce(&producer, "observed", &expected);
    for partition in &offsets {
        assert_eq!(partition, &(0..10).collect::<Vec<i64>>());
    }
    assert_topic(&bootstrap, "observed", &expected);

    // SIGTERM: node 5 asks the controller to shut down (a heartbeat) and
    // is fenced by it before it stops.
    let node5 = cluster.pid(5).expect("node 5 runs");
    // SAFETY: kill(2) of this test's broker.
    unsafe {
        libc::kill(node5 as libc::pid_t, libc::SIGTERM);
    }
    cluster.await_metadata(1, "node 5 fenced", |m| broker_ids(m) == vec![1, 2, 3, 4]);
    let log = std::fs::read_to_string(cluster.cluster_dir().join(format!("node-{leader}.log")))
        .expect("the controller's log");
    assert!(
        log.contains("broker fenced for its controlled shutdown node_id=5"),
        "{log}"
    );

    // SIGKILL: node 4 is fenced once silent, its partitions offline; it
    // comes back on its data dir, registers again and serves them.
    cluster.ok(&["kill", "4"]);
    cluster.await_metadata(1, "node 4 fenced", |m| broker_ids(m) == vec![1, 2, 3]);
    // Metadata changes while it is down reach it when it is back.
    cluster.create_topic(1, "while-down", 3).expect("created");
    let restarted = cluster.run(&["start", "4"]);
    assert!(restarted.status.success(), "{restarted:?}");
    let restarted = cluster.run(&["start", "5"]);
    assert!(restarted.status.success(), "{restarted:?}");
    // Node 5 stopped cleanly: it saved its image and starts from it
    // (node 4, killed, follows the log from its start).
    let log = |node: u16| {
        std::fs::read_to_string(cluster.cluster_dir().join(format!("node-{node}.log")))
            .expect("a node's log")
    };
    let saved = log(5)
        .lines()
        .find_map(|l| {
            l.contains("metadata image saved for the next start")
                .then(|| l.rsplit("index=").next()?.trim().parse::<u64>().ok())
                .flatten()
        })
        .expect("node 5 saved its image");
    assert!(saved >= 8, "{saved}");
    assert!(
        log(5).contains(&format!(
            "following the metadata quorum as an observer (process.roles=broker) node_id=5 applied={saved}"
        )),
        "{}",
        log(5)
    );
    for node in &all {
        cluster.await_metadata(*node, "five brokers again, every topic", |m| {
            broker_ids(m) == vec![1, 2, 3, 4, 5]
                && topic_names(m).is_superset(&BTreeSet::from([
                    "observed".to_string(),
                    "while-down".to_string(),
                ]))
        });
    }
    assert_topic(&bootstrap, "observed", &expected);

    // A broker given only controller.quorum.bootstrap.servers (one
    // follower voter's controller listener) learns the voters from it.
    let cluster_id = cluster
        .metadata(1, None)
        .cluster_id
        .expect("a cluster id")
        .to_string();
    let sixth = || {
        rafka_testkit::process::BrokerOptions::new(env!("CARGO_BIN_EXE_rafka"), 1)
            .property("process.roles", "broker")
            .property("node.id", "6")
            .property(
                "controller.quorum.bootstrap.servers",
                &controller_port(follower).to_string(),
            )
            .property("broker.session.timeout.ms", "3000")
            .property("broker.heartbeat.interval.ms", "500")
    };
    // Its first start needs the cluster id: there are no voters to derive
    // it from.
    let refused = rafka_testkit::process::BrokerProcess::try_start(sixth())
        .err()
        .expect("refused without --cluster-id");
    assert!(
        refused
            .log
            .contains("needs the cluster's id on its first start"),
        "{}",
        refused.log
    );
    let six =
        rafka_testkit::process::BrokerProcess::start(sixth().arg("--cluster-id").arg(&cluster_id));
    cluster.await_metadata(1, "node 6 registered", |m| {
        broker_ids(m) == vec![1, 2, 3, 4, 5, 6]
    });
    let mut client = WireClient::connect(six.addr, "six").expect("connect");
    let seen: MetadataResponse = client
        .call(12, &MetadataRequest::default().with_topics(None))
        .expect("Metadata");
    assert_eq!(seen.controller_id.0, controller);
    assert!(topic_names(&seen).contains("observed"));
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let quorum: DescribeQuorumResponse = client.call(1, &request).expect("DescribeQuorum");
    let voters: Vec<i32> = quorum.topics[0].partitions[0]
        .current_voters
        .iter()
        .map(|v| v.replica_id.0)
        .collect();
    assert_eq!(voters, vec![1, 2, 3]);
    assert_eq!(quorum.topics[0].partitions[0].leader_id.0, controller);
    // An idempotent producer may ask any broker for its id: a broker-only
    // node (no metadata log dir of its own) hands out ids of its range.
    let init: kafka_protocol::messages::InitProducerIdResponse = client
        .call(
            4,
            &kafka_protocol::messages::InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .expect("InitProducerId");
    assert_eq!(init.error_code, 0);
    assert_eq!(
        init.producer_id.0 >> 40,
        6,
        "node 6's range: {:?}",
        init.producer_id
    );
    assert_eq!(init.producer_epoch, 0);
}

#[test]
fn followers_copy_their_leaders_logs_byte_for_byte_and_catch_up_after_a_restart() {
    let cluster = Cluster::start();
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args([
            "create",
            "copied",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    let described = cluster.metadata(1, Some(vec!["copied"]));
    let leaders: Vec<u16> = described.topics[0]
        .partitions
        .iter()
        .map(|p| u16::try_from(p.leader_id.0).expect("a leader"))
        .collect();
    for p in &described.topics[0].partitions {
        assert_eq!(p.replica_nodes.len(), 3, "{p:?}");
    }
    let segment = |node: u16, partition: usize| {
        cluster.cluster_dir().join(format!(
            "node-{node}/copied-{partition}/00000000000000000000.log"
        ))
    };
    // Polls until every node's first segment of every partition is the
    // leader's, byte for byte, and the leader's holds `records` records.
    let await_copies = |what: &str| {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let copies: Vec<Vec<Option<Vec<u8>>>> = (0..3)
                .map(|p| {
                    NODES
                        .iter()
                        .map(|n| std::fs::read(segment(*n, p)).ok())
                        .collect()
                })
                .collect();
            let same = copies.iter().enumerate().all(|(p, nodes)| {
                let leader = &nodes[usize::from(leaders[p]) - 1];
                leader.as_ref().is_some_and(|l| !l.is_empty())
                    && nodes.iter().all(|copy| copy == leader)
            });
            if same {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: followers never matched their leaders"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let bootstrap = cluster.bootstrap();
    let producer = producer(&bootstrap, &[("acks", "all")]);
    let first = records(3, 40, now_ms());
    let offsets = produce(&producer, "copied", &first);
    for partition in &offsets {
        assert_eq!(partition, &(0..40).collect::<Vec<i64>>());
    }
    await_copies("after the first produce");

    // A follower down while its leaders take more: back on its data dir,
    // it fetches what it missed from each leader.
    let down = NODES
        .iter()
        .copied()
        .find(|n| leaders.iter().filter(|l| *l == n).count() < 3)
        .expect("a node that does not lead everything");
    cluster.ok(&["kill", &down.to_string()]);
    let more: Vec<Vec<support::client::Record>> = (0..3)
        .map(|p| {
            if leaders[p] == down {
                Vec::new()
            } else {
                records(3, 25, now_ms()).swap_remove(p)
            }
        })
        .collect();
    let offsets = produce(&producer, "copied", &more);
    for (p, partition) in offsets.iter().enumerate() {
        let expected: Vec<i64> = if leaders[p] == down {
            Vec::new()
        } else {
            (40..65).collect()
        };
        assert_eq!(partition, &expected, "partition {p}");
    }
    let restarted = cluster.run(&["start", &down.to_string()]);
    assert!(restarted.status.success(), "{restarted:?}");
    await_copies("after the follower's restart");

    // DeleteRecords on a leader: its followers' logs start there too.
    // A leader elected while the follower was down takes the high
    // watermark over once its ISR fetched from it: until then offset 10
    // may be above it (OFFSET_OUT_OF_RANGE, retriable for the caller).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let deleted = support::client::delete_records(&bootstrap, "copied", &[(0, 10)]);
        if deleted == vec![(0, Ok(10))] {
            break;
        }
        assert!(Instant::now() < deadline, "DeleteRecords: {deleted:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let starts: Vec<i64> = NODES
            .iter()
            .map(|n| {
                let text = cluster.metrics(*n);
                text.lines()
                    .find(|l| {
                        l.starts_with("rafka_partition_log_start_offset{")
                            && l.contains("topic=\"copied\"")
                            && l.contains("partition=\"0\"")
                    })
                    .and_then(|l| l.rsplit(' ').next()?.parse().ok())
                    .unwrap_or(-1)
            })
            .collect();
        if starts == vec![10, 10, 10] {
            break;
        }
        assert!(Instant::now() < deadline, "log starts {starts:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Node `node`'s broker epoch, from its log's registration line.
fn broker_epoch(cluster: &Cluster, node: u16) -> i64 {
    let log = std::fs::read_to_string(cluster.cluster_dir().join(format!("node-{node}.log")))
        .expect("a node's log");
    let line = format!("registered with the cluster node_id={node} epoch=");
    log.lines()
        .rev()
        .filter_map(|l| l.split(&line).nth(1))
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("node {node} never registered:\n{log}"))
}

#[test]
fn a_dead_leaders_partitions_move_to_in_sync_replicas_and_alter_partition_checks_epochs() {
    use kafka_protocol::messages::alter_partition_request::{
        BrokerState, PartitionData as AlterPartitionData, TopicData as AlterTopicData,
    };
    use kafka_protocol::messages::{AlterPartitionRequest, AlterPartitionResponse};
    const NOT_CONTROLLER: i16 = 41;
    const FENCED_LEADER_EPOCH: i16 = 74;
    const INVALID_UPDATE_VERSION: i16 = 95;
    const INVALID_REQUEST: i16 = 42;

    let cluster = Cluster::start();
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args(["create", "moved", "--partitions", "3"])
        .args(["--replication-factor", "3"])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    // Every replica starts in sync; the first one leads, epoch 0.
    let before = cluster.metadata(1, Some(vec!["moved"]));
    let topic_id = before.topics[0].topic_id;
    let replicas: Vec<Vec<i32>> = before.topics[0]
        .partitions
        .iter()
        .map(|p| p.replica_nodes.iter().map(|b| b.0).collect())
        .collect();
    for p in &before.topics[0].partitions {
        let isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
        assert_eq!(isr, replicas[p.partition_index as usize], "{p:?}");
        assert_eq!(p.leader_id.0, replicas[p.partition_index as usize][0]);
        assert_eq!(p.leader_epoch, 0);
    }
    // Records on every partition, copied by both followers before the kill.
    let bootstrap = cluster.bootstrap();
    let producer = producer(&bootstrap, &[("acks", "all")]);
    let first = records(3, 10, now_ms());
    let offsets = produce(&producer, "moved", &first);
    for partition in &offsets {
        assert_eq!(partition, &(0..10).collect::<Vec<i64>>());
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let copied = (0..3).all(|p| {
            let copies: Vec<Option<Vec<u8>>> = NODES
                .iter()
                .map(|n| {
                    std::fs::read(
                        cluster
                            .cluster_dir()
                            .join(format!("node-{n}/moved-{p}/00000000000000000000.log")),
                    )
                    .ok()
                })
                .collect();
            copies[0].as_ref().is_some_and(|c| !c.is_empty())
                && copies.iter().all(|c| c == &copies[0])
        });
        if copied {
            break;
        }
        assert!(Instant::now() < deadline, "followers never copied");
        std::thread::sleep(Duration::from_millis(20));
    }

    // kill -9 the leader of partition 0: once fenced, each partition it
    // led goes to its first other in-sync replica, one leader epoch on,
    // and it leaves every ISR.
    let dead = replicas[0][0];
    let killed_at = Instant::now();
    cluster.ok(&["kill", &dead.to_string()]);
    let survivors: Vec<i32> = (1..=3).filter(|n| *n != dead).collect();
    let survivor = u16::try_from(survivors[0]).expect("node id");
    cluster.await_metadata(survivor, "partition 0 led by a survivor", |m| {
        let leader = m
            .topics
            .iter()
            .find(|t| t.topic_id == topic_id)
            .map(|t| t.partitions[0].leader_id.0);
        broker_ids(m) == survivors
            && survivors.contains(&m.controller_id.0)
            && leader.is_some_and(|l| l >= 0 && l != dead)
    });
    eprintln!(
        "partition 0 led by a survivor {} ms after the kill (session 3000 ms)",
        killed_at.elapsed().as_millis()
    );
    let after = cluster.metadata(survivor, Some(vec!["moved"]));
    for p in &after.topics[0].partitions {
        let index = p.partition_index as usize;
        let without: Vec<i32> = replicas[index]
            .iter()
            .copied()
            .filter(|id| *id != dead)
            .collect();
        let isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
        assert_eq!(isr, without, "{p:?}");
        let offline: Vec<i32> = p.offline_replicas.iter().map(|b| b.0).collect();
        assert_eq!(offline, vec![dead], "{p:?}");
        if replicas[index][0] == dead {
            assert_eq!(p.leader_id.0, without[0], "{p:?}");
            assert_eq!(p.leader_epoch, 1, "{p:?}");
        } else {
            assert_eq!(p.leader_id.0, replicas[index][0], "{p:?}");
            assert_eq!(p.leader_epoch, 0, "{p:?}");
        }
    }
    let log = |node: i32| {
        std::fs::read_to_string(cluster.cluster_dir().join(format!("node-{node}.log")))
            .expect("a node's log")
    };
    let controller = after.controller_id.0;
    assert!(
        log(controller).contains(&format!("broker fenced: not heard from node_id={dead}")),
        "{}",
        log(controller)
    );

    // AlterPartition on the controller listener, from partition 0's new
    // leader: epochs are checked; the ISR it already has is answered as
    // it is, at partition epoch 1 (the election's).
    let leader = after.topics[0].partitions[0].leader_id.0;
    let isr: Vec<i32> = replicas[0]
        .iter()
        .copied()
        .filter(|id| *id != dead)
        .collect();
    let epoch = broker_epoch(&cluster, u16::try_from(leader).expect("id"));
    // v3 names the members with their broker epochs (-1: unchecked), v2
    // by id only.
    let alter = |version: i16, leader_epoch: i32, partition_epoch: i32, isr: &[i32]| {
        let mut partition = AlterPartitionData::default()
            .with_partition_index(0)
            .with_leader_epoch(leader_epoch)
            .with_partition_epoch(partition_epoch);
        if version >= 3 {
            partition.new_isr_with_epochs = isr
                .iter()
                .map(|id| {
                    BrokerState::default()
                        .with_broker_id(BrokerId(*id))
                        .with_broker_epoch(-1)
                })
                .collect();
        } else {
            partition.new_isr = isr.iter().map(|id| BrokerId(*id)).collect();
        }
        let request = AlterPartitionRequest::default()
            .with_broker_id(BrokerId(leader))
            .with_broker_epoch(epoch)
            .with_topics(vec![AlterTopicData::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![partition])]);
        (version, request)
    };
    let controller_listener = |node: i32| -> SocketAddr {
        format!("127.0.0.1:{}", cluster.base + 100 + node as u16)
            .parse()
            .expect("address")
    };
    let follower = survivors
        .iter()
        .copied()
        .find(|n| *n != controller)
        .expect("a follower voter");
    let mut to_follower = WireClient::connect(controller_listener(follower), "t").expect("connect");
    let (version, request) = alter(3, 1, 1, &isr);
    let answer: AlterPartitionResponse =
        to_follower.call(version, &request).expect("AlterPartition");
    assert_eq!(answer.error_code, NOT_CONTROLLER);
    let mut to_controller =
        WireClient::connect(controller_listener(controller), "t").expect("connect");
    let partition_answer =
        |client: &mut WireClient, (version, request): (i16, AlterPartitionRequest)| {
            let answer: AlterPartitionResponse =
                client.call(version, &request).expect("AlterPartition");
            assert_eq!(answer.error_code, 0, "{answer:?}");
            answer.topics[0].partitions[0].clone()
        };
    let stale = partition_answer(&mut to_controller, alter(3, 1, 0, &isr));
    assert_eq!(stale.error_code, INVALID_UPDATE_VERSION, "{stale:?}");
    let fenced = partition_answer(&mut to_controller, alter(2, 0, 1, &isr));
    assert_eq!(fenced.error_code, FENCED_LEADER_EPOCH, "{fenced:?}");
    let without_leader: Vec<i32> = isr.iter().copied().filter(|id| *id != leader).collect();
    let refused = partition_answer(&mut to_controller, alter(3, 1, 1, &without_leader));
    assert_eq!(refused.error_code, INVALID_REQUEST, "{refused:?}");
    let same = partition_answer(&mut to_controller, alter(2, 1, 1, &isr));
    assert_eq!(same.error_code, 0, "{same:?}");
    assert_eq!(same.leader_id.0, leader);
    assert_eq!(same.leader_epoch, 1);
    assert_eq!(same.partition_epoch, 1);
    let answered: Vec<i32> = same.isr.iter().map(|b| b.0).collect();
    assert_eq!(answered, isr);

    // Clients follow: more records go to the new leaders, and every
    // record, old and new, reads back from them.
    let more = records(3, 5, now_ms());
    let offsets = produce(&producer, "moved", &more);
    for partition in &offsets {
        assert_eq!(partition, &(10..15).collect::<Vec<i64>>());
    }
    let all: Vec<Vec<support::client::Record>> = first
        .iter()
        .zip(&more)
        .map(|(a, b)| a.iter().chain(b).cloned().collect())
        .collect();
    // (Through the survivors: a consumer reports the dead bootstrap
    // address as an error.)
    let live: Vec<String> = survivors
        .iter()
        .map(|n| cluster.listener(u16::try_from(*n).expect("id")).to_string())
        .collect();
    assert_topic(&live.join(","), "moved", &all);

    // Back on its data dir, the dead node is unfenced and listed again;
    // leaders stay where they are (the controller moves nothing back).
    let restarted = cluster.run(&["start", &dead.to_string()]);
    assert!(restarted.status.success(), "{restarted:?}");
    cluster.await_metadata(survivor, "the dead node back", |m| {
        broker_ids(m) == vec![1, 2, 3]
    });
    let back = cluster.metadata(survivor, Some(vec!["moved"]));
    for (p, was) in back.topics[0]
        .partitions
        .iter()
        .zip(&after.topics[0].partitions)
    {
        assert_eq!(
            (p.leader_id, p.leader_epoch),
            (was.leader_id, was.leader_epoch),
            "{p:?}"
        );
        assert!(p.offline_replicas.is_empty(), "{p:?}");
    }

    // SIGTERM partition 0's leader: its controlled shutdown moves the
    // leadership to another in-sync replica before it stops.
    let pid = cluster
        .pid(u16::try_from(leader).expect("id"))
        .expect("the leader runs");
    // SAFETY: kill(2) of this test's broker.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let watcher = u16::try_from(
        survivors
            .iter()
            .copied()
            .find(|n| *n != leader)
            .expect("another survivor"),
    )
    .expect("id");
    cluster.await_metadata(watcher, "partition 0 handed over", |m| {
        m.topics
            .iter()
            .find(|t| t.topic_id == topic_id)
            .is_some_and(|t| {
                let p = &t.partitions[0];
                p.leader_id.0 >= 0
                    && p.leader_id.0 != leader
                    && p.leader_epoch == 2
                    && !p.isr_nodes.contains(&BrokerId(leader))
            })
    });
    let deadline = Instant::now() + DEADLINE;
    while !log(leader).contains("controlled shutdown: fenced, leads nothing") {
        assert!(Instant::now() < deadline, "{}", log(leader));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Partition `partition` of `topic` as node `node` describes it: (leader,
/// leader epoch, ISR sorted).
fn partition_state(
    cluster: &Cluster,
    node: u16,
    topic: &str,
    partition: i32,
) -> Option<(i32, i32, Vec<i32>)> {
    let mut client = WireClient::connect(cluster.listener(node), "cluster").ok()?;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(topic.to_string())))),
        ]))
        .with_allow_auto_topic_creation(false);
    let answer: MetadataResponse = client.call(12, &request).ok()?;
    let found = answer
        .topics
        .first()?
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)?;
    let mut isr: Vec<i32> = found.isr_nodes.iter().map(|n| n.0).collect();
    isr.sort_unstable();
    Some((found.leader_id.0, found.leader_epoch, isr))
}

/// Polls node `node` until `check` holds for the partition's state;
/// returns that state.
fn await_partition(
    cluster: &Cluster,
    node: u16,
    topic: &str,
    partition: i32,
    what: &str,
    check: impl Fn(&(i32, i32, Vec<i32>)) -> bool,
) -> (i32, i32, Vec<i32>) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let state = partition_state(cluster, node, topic, partition);
        if let Some(state) = state.as_ref().filter(|s| check(s)) {
            return state.clone();
        }
        assert!(
            Instant::now() < deadline,
            "node {node}, {topic}-{partition}: {what}; last seen {state:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `signal` to node `node` of the test's own cluster.
fn signal(cluster: &Cluster, node: u16, signal: libc::c_int) {
    let pid = cluster.pid(node).expect("its pid");
    // SAFETY: kill(2) of a broker this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

#[test]
fn acks_all_waits_for_the_isr_and_a_killed_leader_loses_no_acknowledged_record() {
    let cluster = Cluster::start_configured(0, "replica.lag.time.max.ms=2000\n");
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args([
            "create",
            "durable",
            "--partitions",
            "1",
            "--replication-factor",
            "3",
        ])
        .args(["--config", "min.insync.replicas=2"])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    let (leader, epoch, isr) =
        await_partition(&cluster, 1, "durable", 0, "a leader", |(l, _, _)| *l > 0);
    assert_eq!(isr, vec![1, 2, 3], "every replica starts in sync");
    let bootstrap = cluster.bootstrap();
    let producer = idempotent_producer(&bootstrap);
    let base_ms = now_ms();
    let batch = |from: u32, count: u32| vec![numbered(0, from, count, base_ms)];
    let mut acknowledged = Vec::new();
    let first = batch(0, 50);
    assert_eq!(
        produce(&producer, "durable", &first)[0],
        (0..50).collect::<Vec<i64>>()
    );
    acknowledged.extend(first[0].iter().cloned());

    // A follower paused past replica.lag.time.max.ms (and the broker
    // session): it leaves the ISR, and acks=all goes on with the other two.
    let follower = [1u16, 2, 3]
        .into_iter()
        .find(|n| i32::from(*n) != leader)
        .expect("a follower");
    signal(&cluster, follower, libc::SIGSTOP);
    let paused_isr = await_partition(
        &cluster,
        u16::try_from(leader).unwrap(),
        "durable",
        0,
        "the paused follower out of the ISR",
        |(_, _, isr)| !isr.contains(&i32::from(follower)),
    );
    assert_eq!(paused_isr.2.len(), 2);
    let second = batch(50, 20);
    assert_eq!(
        produce(&producer, "durable", &second)[0],
        (50..70).collect::<Vec<i64>>()
    );
    acknowledged.extend(second[0].iter().cloned());

    // Resumed, it catches up and the leader takes it back into the ISR.
    signal(&cluster, follower, libc::SIGCONT);
    await_partition(
        &cluster,
        u16::try_from(leader).unwrap(),
        "durable",
        0,
        "the follower back in the ISR",
        |(_, _, isr)| isr == &vec![1, 2, 3],
    );

    // kill -9 the leader: the controller elects another ISR member with
    // the next epoch, and producing goes on there.
    cluster.ok(&["kill", &leader.to_string()]);
    let survivor = [1u16, 2, 3]
        .into_iter()
        .find(|n| i32::from(*n) != leader)
        .expect("a survivor");
    let (new_leader, new_epoch, new_isr) = await_partition(
        &cluster,
        survivor,
        "durable",
        0,
        "a new leader",
        |(l, _, _)| *l > 0 && *l != leader,
    );
    assert!(new_epoch > epoch, "epoch {new_epoch} after {epoch}");
    assert!(!new_isr.contains(&leader), "{new_isr:?}");
    let third = batch(70, 30);
    assert_eq!(
        produce(&producer, "durable", &third)[0],
        (70..100).collect::<Vec<i64>>()
    );
    acknowledged.extend(third[0].iter().cloned());

    // Every acknowledged record, once, in order, from the new leader.
    assert_topic(&bootstrap, "durable", &[acknowledged.clone()]);

    // The old leader restarts on its disk, follows the new one, and
    // rejoins the ISR.
    let restarted = cluster.run(&["start", &leader.to_string()]);
    assert!(restarted.status.success(), "{restarted:?}");
    await_partition(
        &cluster,
        u16::try_from(new_leader).unwrap(),
        "durable",
        0,
        "the old leader back in the ISR",
        |(_, _, isr)| isr == &vec![1, 2, 3],
    );
    assert_topic(&bootstrap, "durable", &[acknowledged]);
}

#[test]
fn acks_all_below_min_insync_replicas_is_refused_with_not_enough_replicas() {
    let cluster = Cluster::start_configured(0, "replica.lag.time.max.ms=2000\n");
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args([
            "create",
            "strict",
            "--partitions",
            "1",
            "--replication-factor",
            "2",
        ])
        .args(["--config", "min.insync.replicas=2"])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    let (leader, _, isr) =
        await_partition(&cluster, 1, "strict", 0, "a leader", |(l, _, _)| *l > 0);
    assert_eq!(isr.len(), 2);
    let follower = isr
        .iter()
        .copied()
        .find(|r| *r != leader)
        .expect("the follower");
    let leader_node = u16::try_from(leader).expect("node id");
    let produce_once = |acks: i16| -> (i16, i64) {
        let mut client =
            WireClient::connect(cluster.listener(leader_node), "cluster").expect("connect");
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("strict")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(rafka_testkit::records::value_batch("v")))])]);
        let answer: ProduceResponse = client.call(9, &request).expect("Produce");
        let partition = &answer.responses[0].partition_responses[0];
        (partition.error_code, partition.base_offset)
    };
    // The leader may not have applied the topic when node 1 shows it:
    // UNKNOWN_TOPIC_OR_PARTITION (3) is retriable, as clients retry it.
    let deadline = Instant::now() + DEADLINE;
    let first = loop {
        match produce_once(-1) {
            (3, _) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            answer => break answer,
        }
    };
    assert_eq!(first, (0, 0));
    cluster.ok(&["kill", &follower.to_string()]);
    await_partition(
        &cluster,
        leader_node,
        "strict",
        0,
        "the ISR without the killed follower",
        |(_, _, isr)| isr == &vec![leader],
    );
    // Kafka's NOT_ENOUGH_REPLICAS (19): nothing appended.
    assert_eq!(produce_once(-1).0, 19);
    // acks=1 does not need the ISR.
    assert_eq!(produce_once(1), (0, 1));
    let metrics = cluster.metrics(leader_node);
    for (gauge, value) in [
        ("rafka_partition_in_sync_replicas", "1"),
        ("rafka_partition_under_replicated", "1"),
        ("rafka_partition_under_min_isr", "1"),
    ] {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(&format!("{gauge}{{topic=\"strict\"")))
            .unwrap_or_else(|| panic!("{gauge} in {metrics}"));
        assert!(line.ends_with(&format!(" {value}")), "{line}");
    }
    // The follower back: caught up, in the ISR, acks=all accepted again.
    let restarted = cluster.run(&["start", &follower.to_string()]);
    assert!(restarted.status.success(), "{restarted:?}");
    await_partition(
        &cluster,
        leader_node,
        "strict",
        0,
        "the follower back in the ISR",
        |(_, _, isr)| isr.len() == 2,
    );
    assert_eq!(produce_once(-1), (0, 2));
}

/// FindCoordinator v3 of `key` (`key_type` 0: group, 1: transactional id)
/// asked of `node`: the coordinator's node id, or the error code (-1: no
/// answer).
fn find_coordinator(cluster: &Cluster, node: u16, key_type: i8, key: &str) -> Result<i32, i16> {
    use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
    let mut client = WireClient::connect(cluster.listener(node), "cluster").map_err(|_| -1i16)?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(key.to_string()))
        .with_key_type(key_type);
    let answer: FindCoordinatorResponse = client.call(3, &request).map_err(|_| -1i16)?;
    match answer.error_code {
        0 => Ok(answer.node_id.0),
        code => Err(code),
    }
}

/// OffsetFetch v7 of `group`'s offsets of `topic`'s partitions
/// `0..partitions`, asked of `node`: the committed offsets, or the error
/// code (-1: no answer).
fn offset_fetch(
    cluster: &Cluster,
    node: u16,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Result<Vec<i64>, i16> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
    let mut client = WireClient::connect(cluster.listener(node), "cluster").map_err(|_| -1i16)?;
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_indexes((0..partitions).collect())]));
    let answer: OffsetFetchResponse = client.call(7, &request).map_err(|_| -1i16)?;
    if answer.error_code != 0 {
        return Err(answer.error_code);
    }
    let mut offsets = vec![-1; usize::try_from(partitions).unwrap_or(0)];
    for p in answer.topics.iter().flat_map(|t| t.partitions.iter()) {
        if p.error_code != 0 {
            return Err(p.error_code);
        }
        offsets[usize::try_from(p.partition_index).expect("index")] = p.committed_offset;
    }
    Ok(offsets)
}

/// Asks the live `nodes` who coordinates `group` until one names a
/// coordinator among them that serves `expected` as the group's committed
/// offsets; returns that coordinator. Loading, a move and a dead broker
/// are retried until the deadline.
fn await_committed(
    cluster: &Cluster,
    nodes: &[u16],
    group: &str,
    topic: &str,
    expected: &[i64],
) -> u16 {
    let partitions = i32::try_from(expected.len()).expect("partitions");
    let deadline = Instant::now() + DEADLINE;
    let mut last = None;
    loop {
        for &node in nodes {
            let coordinator = find_coordinator(cluster, node, 0, group)
                .ok()
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| nodes.contains(c));
            let Some(coordinator) = coordinator else {
                continue;
            };
            let fetched = offset_fetch(cluster, coordinator, group, topic, partitions);
            if fetched.as_deref() == Ok(expected) {
                return coordinator;
            }
            last = Some((coordinator, fetched));
        }
        assert!(
            Instant::now() < deadline,
            "{group}: never {expected:?} from a live coordinator; last {last:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A member of `group` subscribed to `topic`, committing by hand.
fn group_member(bootstrap: &str, group: &str, topic: &str) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let mut config = support::client::config(bootstrap);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "200")
        .set("topic.metadata.refresh.interval.ms", "500");
    let member: rdkafka::consumer::BaseConsumer = config.create().expect("group consumer");
    member.subscribe(&[topic]).expect("subscribe");
    member
}

/// Polls `member` until it has read every partition of `topic` up to
/// `until`: `next[p]` is the offset it reads next in partition p. Each
/// record must come at `next[p]`, with the key the producer wrote there;
/// one below it is a record read again after a rebalance, which only a
/// member that already read (`rereads`) may meet. Panics at the deadline.
fn read_until(
    member: &rdkafka::consumer::BaseConsumer,
    topic: &str,
    next: &mut [i64],
    until: i64,
    rereads: bool,
) {
    use rdkafka::message::Message;
    let deadline = Instant::now() + DEADLINE;
    while next.iter().any(|n| *n < until) {
        assert!(
            Instant::now() < deadline,
            "{topic}: read up to {next:?} of {until}"
        );
        let Some(message) = member.poll(Duration::from_millis(100)) else {
            continue;
        };
        let Ok(message) = message else {
            // A leader moving away answers retriable errors meanwhile.
            continue;
        };
        let partition = message.partition();
        let slot = &mut next[usize::try_from(partition).expect("partition")];
        let offset = message.offset();
        assert!(
            offset <= *slot && (offset == *slot || rereads),
            "{topic}-{partition}: read {offset} when {slot} was next"
        );
        if offset < *slot {
            continue;
        }
        let key = format!("key-{partition}-{offset}");
        assert_eq!(message.key(), Some(key.as_bytes()), "{topic}-{partition}");
        *slot += 1;
    }
}

/// Commits offset `offset` of every partition of `topic` for `member`,
/// synchronously, retrying (and polling) until the coordinator takes it.
fn commit_all(member: &rdkafka::consumer::BaseConsumer, topic: &str, partitions: i32, offset: i64) {
    use rdkafka::consumer::{CommitMode, Consumer};
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset))
            .expect("offset entry");
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        match member.commit(&list, CommitMode::Sync) {
            Ok(()) => return,
            Err(error) => {
                assert!(Instant::now() < deadline, "commit {offset}: {error}");
                member.poll(Duration::from_millis(100));
            }
        }
    }
}

#[test]
fn a_groups_committed_offsets_survive_the_kill_of_its_coordinator() {
    const TOPIC: &str = "events";
    const GROUP: &str = "moving";
    const PARTITIONS: i32 = 2;
    let cluster = Cluster::start_configured(
        0,
        "group.initial.rebalance.delay.ms=0\n\
         offsets.topic.num.partitions=3\n\
         transaction.state.log.num.partitions=3\n",
    );
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args(["create", TOPIC, "--partitions", &PARTITIONS.to_string()])
        .args(["--replication-factor", "3"])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    let bootstrap = cluster.bootstrap();
    let producer = producer(&bootstrap, &[("acks", "all")]);
    let written = produce(&producer, TOPIC, &records(PARTITIONS, 20, now_ms()));
    assert_eq!(written, vec![(0..20).collect::<Vec<i64>>(); 2]);

    // A member reads ten records of each partition and commits there.
    let first = group_member(&bootstrap, GROUP, TOPIC);
    let mut next = vec![0; 2];
    read_until(&first, TOPIC, &mut next, 10, true);
    commit_all(&first, TOPIC, PARTITIONS, 10);
    let coordinator = await_committed(&cluster, &NODES, GROUP, TOPIC, &[10, 10]);

    // The internal topics have three replicas each (the brokers' default
    // offsets.topic.replication.factor / transaction.state.log.*), and
    // __transaction_state Kafka's min.insync.replicas.
    let deadline = Instant::now() + DEADLINE;
    while find_coordinator(&cluster, 1, 1, "a-transaction").is_err() {
        assert!(Instant::now() < deadline, "no transaction coordinator");
        std::thread::sleep(Duration::from_millis(50));
    }
    for internal in ["__consumer_offsets", "__transaction_state"] {
        cluster.await_metadata(1, internal, |m| {
            m.topics.iter().any(|t| {
                t.name.as_deref().map(|n| n.as_str()) == Some(internal)
                    && t.partitions.len() == 3
                    && t.partitions.iter().all(|p| p.replica_nodes.len() == 3)
            })
        });
    }
    let configs = support::client::describe_configs(
        &bootstrap,
        rdkafka::admin::ResourceSpecifier::Topic("__transaction_state"),
    )
    .expect("DescribeConfigs");
    assert_eq!(configs["min.insync.replicas"].0.as_deref(), Some("2"));

    // kill -9 the coordinator: the controller elects another in-sync
    // replica of the group's partition, whose load finds the commits.
    cluster.ok(&["kill", &coordinator.to_string()]);
    let killed_at = Instant::now();
    let survivors: Vec<u16> = NODES.into_iter().filter(|n| *n != coordinator).collect();
    let moved_to = await_committed(&cluster, &survivors, GROUP, TOPIC, &[10, 10]);
    eprintln!(
        "{GROUP}'s offsets served by node {moved_to} {} ms after node {coordinator}'s kill",
        killed_at.elapsed().as_millis()
    );

    // The live member goes on with the new coordinator: it reads on to
    // fifteen records of each partition and commits them there.
    read_until(&first, TOPIC, &mut next, 15, true);
    commit_all(&first, TOPIC, PARTITIONS, 15);
    await_committed(&cluster, &survivors, GROUP, TOPIC, &[15, 15]);
    drop(first);

    // A new member of the group resumes where the commits left off: its
    // first record of each partition is the fifteenth.
    let second = group_member(&bootstrap, GROUP, TOPIC);
    let mut resumed = vec![15; 2];
    read_until(&second, TOPIC, &mut resumed, 20, false);
}

/// A power loss of the whole cluster: every node killed at once, with
/// high watermark checkpoints an hour old (the last clean stop's), so
/// each replica of every partition, `__consumer_offsets` included,
/// restarts with a high watermark below its log end. Nothing restarted
/// vouches for its tail by itself: the leaders' high watermarks and the
/// coordinators' loads wait for the followers' fetches, then every
/// acknowledged record and every committed offset is there.
#[test]
fn a_whole_cluster_killed_at_once_restarts_behind_its_checkpoints_and_loses_nothing() {
    const TOPIC: &str = "power";
    const GROUP: &str = "outage";
    const PARTITIONS: i32 = 2;
    let cluster = Cluster::start_configured(
        0,
        "group.initial.rebalance.delay.ms=0\n\
         offsets.topic.num.partitions=2\n\
         replica.high.watermark.checkpoint.interval.ms=3600000\n",
    );
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args(["create", TOPIC, "--partitions", &PARTITIONS.to_string()])
        .args(["--replication-factor", "3"])
        .args(["--config", "min.insync.replicas=2"])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    let base_ms = now_ms();
    let expected = records(PARTITIONS, 40, base_ms);
    let (before, after): (Vec<_>, Vec<_>) = expected
        .iter()
        .map(|list| (list[..20].to_vec(), list[20..].to_vec()))
        .unzip();
    {
        let producer = producer(&cluster.bootstrap(), &[("acks", "all")]);
        let written = produce(&producer, TOPIC, &before);
        assert_eq!(written, vec![(0..20).collect::<Vec<i64>>(); 2]);
        let member = group_member(&cluster.bootstrap(), GROUP, TOPIC);
        let mut next = vec![0; 2];
        read_until(&member, TOPIC, &mut next, 10, true);
        commit_all(&member, TOPIC, PARTITIONS, 10);
        await_committed(&cluster, &NODES, GROUP, TOPIC, &[10, 10]);
    }

    // A clean stop writes every high watermark; the next writes would
    // come an hour later.
    cluster.ok(&["stop"]);
    let checkpoint = |node: u16| {
        let path = cluster
            .cluster_dir()
            .join(format!("node-{node}/replication-offset-checkpoint"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    // Every node names every partition; a follower may not have heard
    // its leader's last high watermark before the stop, the leader has.
    let at_stop: Vec<String> = NODES.iter().map(|node| checkpoint(*node)).collect();
    for (node, text) in NODES.iter().zip(&at_stop) {
        for partition in 0..PARTITIONS {
            assert!(
                text.contains(&format!("{TOPIC} {partition} ")),
                "{node}: {text}"
            );
        }
        assert!(text.contains("__consumer_offsets 0 "), "{node}: {text}");
    }
    for partition in 0..PARTITIONS {
        let entry = format!("{TOPIC} {partition} 20\n");
        assert!(
            at_stop.iter().any(|text| text.contains(&entry)),
            "{at_stop:?}"
        );
    }
    cluster.ok(&["start"]);
    {
        let producer = producer(&cluster.bootstrap(), &[("acks", "all")]);
        let written = produce(&producer, TOPIC, &after);
        assert_eq!(written, vec![(20..40).collect::<Vec<i64>>(); 2]);
        let member = group_member(&cluster.bootstrap(), GROUP, TOPIC);
        let mut next = vec![10; 2];
        read_until(&member, TOPIC, &mut next, 30, true);
        commit_all(&member, TOPIC, PARTITIONS, 30);
        await_committed(&cluster, &NODES, GROUP, TOPIC, &[30, 30]);
    }

    // Power loss: all three at once. Their checkpoints are still the
    // clean stop's: every high watermark at most 20, the log ends at 40.
    for node in NODES {
        cluster.ok(&["kill", &node.to_string()]);
    }
    for (node, text) in NODES.iter().zip(&at_stop) {
        assert_eq!(&checkpoint(*node), text, "node {node}");
    }
    cluster.ok(&["start"]);
    await_committed(&cluster, &NODES, GROUP, TOPIC, &[30, 30]);
    assert_topic(&cluster.bootstrap(), TOPIC, &expected);
    // A new member of the group resumes at the commits.
    let member = group_member(&cluster.bootstrap(), GROUP, TOPIC);
    let mut resumed = vec![30; 2];
    read_until(&member, TOPIC, &mut resumed, 40, false);
}

/// (leader, ISR, eligible leader replicas) of `topic` partition 0 from
/// node `node`'s DescribeTopicPartitions (KIP-966's fields).
fn eligible_leaders(
    cluster: &Cluster,
    node: u16,
    topic: &str,
) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
    use kafka_protocol::messages::{
        DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    };
    let mut client = WireClient::connect(cluster.listener(node), "cluster").ok()?;
    let request = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![
            TopicRequest::default().with_name(TopicName(StrBytes::from_string(topic.to_string())))
        ])
        .with_response_partition_limit(10);
    let answer: DescribeTopicPartitionsResponse = client.call(0, &request).ok()?;
    let partition = answer.topics.first()?.partitions.first()?;
    let ids = |ids: &[BrokerId]| ids.iter().map(|id| id.0).collect::<Vec<i32>>();
    Some((
        partition.leader_id.0,
        ids(&partition.isr_nodes),
        ids(partition
            .eligible_leader_replicas
            .as_deref()
            .unwrap_or_default()),
    ))
}

/// Polls node 1 until `topic`'s (leader, ISR, ELR) is `want`.
fn await_eligible(cluster: &Cluster, topic: &str, want: (i32, Vec<i32>, Vec<i32>)) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let seen = eligible_leaders(cluster, 1, topic);
        if seen.as_ref() == Some(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: never (leader, isr, elr) {want:?}; last {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// KIP-966 on a 3-replica partition with min.insync.replicas=2 (replicas
/// on the broker-only nodes 4, 5 and 6, so the quorum of 1-3 is never
/// touched): a follower that
/// leaves an ISR already at the minimum is not eligible to lead; one that
/// leaves it below the minimum is, and the leader holds its high
/// watermark from then on (acks=1 records stay unreadable). Once the
/// leader dies too, the eligible replica leads as soon as it is back,
/// with every acknowledged record; neither the replica that missed
/// records nor the old leader back on a new disk ever does.
#[test]
fn an_eligible_leader_replica_takes_over_when_the_isr_is_gone_and_loses_no_acknowledged_record() {
    const TOPIC: &str = "eligible";
    let cluster = Cluster::start_in_racks(
        3,
        "replica.lag.time.max.ms=2000\nmin.insync.replicas=2\n",
        "",
    );
    create_assigned(&cluster, 1, TOPIC, &[4, 5, 6]);
    await_eligible(&cluster, TOPIC, (4, vec![4, 5, 6], vec![]));
    let bootstrap = cluster.bootstrap();
    let base_ms = now_ms();
    let expected = records(1, 50, base_ms);
    let (first, second): (Vec<_>, Vec<_>) = expected
        .iter()
        .map(|list| (list[..30].to_vec(), list[30..].to_vec()))
        .unzip();
    let producer = producer(&bootstrap, &[("acks", "all")]);
    assert_eq!(
        produce(&producer, TOPIC, &first),
        vec![(0..30).collect::<Vec<i64>>()]
    );

    // 6 stops: the ISR is still at the minimum, 6 is not eligible.
    signal(&cluster, 6, libc::SIGSTOP);
    await_eligible(&cluster, TOPIC, (4, vec![4, 5], vec![]));
    assert_eq!(
        produce(&producer, TOPIC, &second),
        vec![(30..50).collect::<Vec<i64>>()]
    );
    // 5 stops: below the minimum, 5 (which holds all 50) is eligible.
    signal(&cluster, 5, libc::SIGSTOP);
    await_eligible(&cluster, TOPIC, (4, vec![4], vec![5]));
    assert_eq!(
        produce_raw(&cluster, 4, TOPIC, "refused", -1, 5_000),
        (19, -1),
        "acks=all: NOT_ENOUGH_REPLICAS"
    );
    assert_eq!(
        produce_raw(&cluster, 4, TOPIC, "unreplicated", 1, 5_000),
        (0, 50)
    );
    assert_eq!(
        support::client::watermarks(&cluster.listener(4).to_string(), TOPIC, 0),
        (0, 50),
        "the acks=1 record is above the held high watermark"
    );

    // The leader dies: nobody in sync, 4 and 5 eligible, no leader.
    cluster.ok(&["kill", "4"]);
    await_eligible(&cluster, TOPIC, (-1, vec![], vec![4, 5]));
    // 6 is back first: it misses records 30-49 and may not lead.
    signal(&cluster, 6, libc::SIGCONT);
    await_value(
        "6 unfenced",
        || broker_ids(&cluster.metadata(1, None)),
        |ids| ids.contains(&6),
    );
    assert_eq!(
        eligible_leaders(&cluster, 1, TOPIC),
        Some((-1, vec![], vec![4, 5]))
    );
    // 4 comes back on a new, empty disk: what made it eligible is gone
    // (KIP-966's unclean shutdown), so it is eligible no more, and it may
    // not lead either.
    let disk = cluster.cluster_dir().join("node-4");
    for entry in std::fs::read_dir(&disk).expect("node 4's data dir") {
        let path = entry.expect("an entry").path();
        match path.is_dir() {
            true => std::fs::remove_dir_all(&path),
            false => std::fs::remove_file(&path),
        }
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    cluster.ok(&["start", "4"]);
    await_value(
        "4 unfenced",
        || broker_ids(&cluster.metadata(1, None)),
        |ids| ids.contains(&4),
    );
    assert_eq!(
        eligible_leaders(&cluster, 1, TOPIC),
        Some((-1, vec![], vec![5]))
    );
    // 5 is back: it leads, alone in the ISR at first, with all 50
    // acknowledged records; 4 and 6 copy them and join, and nobody is
    // eligible any more.
    signal(&cluster, 5, libc::SIGCONT);
    await_eligible(&cluster, TOPIC, (5, vec![4, 5, 6], vec![]));
    assert_topic(&bootstrap, TOPIC, &expected);
    assert_eq!(
        support::client::watermarks(&bootstrap, TOPIC, 0),
        (0, 50),
        "the acks=1 record died with 4's disk"
    );
}

/// One Produce of a one-record batch of `value` to node `node` with
/// `acks` and `timeout_ms`: (error code, base offset).
fn produce_raw(
    cluster: &Cluster,
    node: u16,
    topic: &str,
    value: &str,
    acks: i16,
    timeout_ms: i32,
) -> (i16, i64) {
    let mut client = WireClient::connect(cluster.listener(node), "cluster").expect("connect");
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(rafka_testkit::records::value_batch(value)))])]);
    let answer: ProduceResponse = client.call(9, &request).expect("Produce");
    let partition = &answer.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn a_leader_restarted_within_its_session_leads_nothing_until_let_in_then_follows_the_new_leader() {
    let cluster = Cluster::start();
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args(["create", "restart", "--partitions", "1"])
        .args(["--replication-factor", "3"])
        .args(["--config", "min.insync.replicas=2"])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    let (leader, epoch, _) = await_partition(&cluster, 1, "restart", 0, "all in sync", |s| {
        s.0 > 0 && s.2 == vec![1, 2, 3]
    });
    let old = u16::try_from(leader).expect("node id");
    let followers: Vec<u16> = NODES.iter().copied().filter(|n| *n != old).collect();
    // Every segment of the partition on `node`, in offset order, as one
    // byte string (a restarted replica may have rolled a new segment).
    let segment = |node: u16| {
        let dir = cluster.cluster_dir().join(format!("node-{node}/restart-0"));
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| Some(e.ok()?.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "log"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap_or_default())
            .collect::<Vec<u8>>()
    };
    let await_same_logs = |leader: u16, what: &str| {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let logs: Vec<Vec<u8>> = NODES.iter().map(|n| segment(*n)).collect();
            let lead = &logs[usize::from(leader) - 1];
            if !lead.is_empty() && logs.iter().all(|l| l == lead) {
                return lead.clone();
            }
            if Instant::now() >= deadline {
                let lens: Vec<usize> = logs.iter().map(Vec::len).collect();
                panic!("{what}: logs differ: lengths {lens:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Acknowledged by the whole ISR: on every disk.
    let deadline = Instant::now() + DEADLINE;
    let first = loop {
        match produce_raw(&cluster, old, "restart", "a", -1, 10_000) {
            // Not applied on the leader yet: retriable, as clients retry.
            (3, _) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            answer => break answer,
        }
    };
    assert_eq!(first, (0, 0));
    let acknowledged = await_same_logs(old, "the first record copied");

    // Both followers paused: the leader appends the next record but
    // cannot acknowledge it (REQUEST_TIMED_OUT, 7). Then it dies, the
    // followers resume, and it is back on its disk within its session.
    for follower in &followers {
        signal(&cluster, *follower, libc::SIGSTOP);
    }
    assert_eq!(
        produce_raw(&cluster, old, "restart", "b", -1, 300).0,
        7,
        "not acknowledged without the ISR"
    );
    assert!(
        segment(old).len() > acknowledged.len(),
        "appended on the leader"
    );
    cluster.ok(&["kill", &old.to_string()]);
    for follower in &followers {
        signal(&cluster, *follower, libc::SIGCONT);
    }
    cluster.ok(&["start", &old.to_string()]);

    // Ready means let in again: by then its leadership moved to an
    // in-sync replica with the next epoch, and it refuses to lead
    // (NOT_LEADER_OR_FOLLOWER) rather than serve its unreplicated tail.
    let (new_leader, new_epoch, _) = partition_state(&cluster, old, "restart", 0).expect("state");
    assert!(
        followers.contains(&u16::try_from(new_leader).unwrap_or(0)),
        "led by {new_leader} after the restart of {old}"
    );
    assert!(new_epoch > epoch, "epoch {new_epoch} after {epoch}");
    assert_eq!(produce_raw(&cluster, old, "restart", "x", -1, 1_000).0, 6);

    // The new leader goes on from its own log: with the record it never
    // acknowledged (offset 1) if a follower's fetch took it just before
    // the pause, else without it; either way the restarted replica's log
    // becomes the new leader's, byte for byte.
    let new_leader = u16::try_from(new_leader).expect("node id");
    let (code, next) = produce_raw(&cluster, new_leader, "restart", "c", -1, 10_000);
    assert_eq!(code, 0);
    assert!(next == 1 || next == 2, "next offset {next}");
    let copied = await_same_logs(new_leader, "the restarted replica truncated and caught up");
    assert!(copied.starts_with(&acknowledged));
    await_partition(
        &cluster,
        new_leader,
        "restart",
        0,
        "the ISR whole again",
        |s| s.2 == vec![1, 2, 3],
    );
}

/// ElectLeaders to `node` for partition 0 of each of `topics`: the
/// top-level error and each partition's.
fn elect_leaders(cluster: &Cluster, node: u16, election: i8, topics: &[&str]) -> (i16, Vec<i16>) {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
    let mut client = WireClient::connect(cluster.listener(node), "cluster").expect("connect");
    let request = ElectLeadersRequest::default()
        .with_election_type(election)
        .with_timeout_ms(30_000)
        .with_topic_partitions(Some(
            topics
                .iter()
                .map(|name| {
                    TopicPartitions::default()
                        .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                        .with_partitions(vec![0])
                })
                .collect(),
        ));
    let answer: ElectLeadersResponse = client.call(2, &request).expect("ElectLeaders");
    let codes = answer
        .replica_election_results
        .iter()
        .flat_map(|t| t.partition_result.iter().map(|p| p.error_code))
        .collect();
    (answer.error_code, codes)
}

/// The replicas of partition 0 of `topic`, in assignment order, as `node`
/// describes them.
fn replicas_of(cluster: &Cluster, node: u16, topic: &str) -> Vec<i32> {
    let metadata = cluster.metadata(node, Some(vec![topic]));
    metadata.topics[0].partitions[0]
        .replica_nodes
        .iter()
        .map(|n| n.0)
        .collect()
}

#[test]
fn elect_leaders_moves_leadership_back_to_the_preferred_replica_and_revives_a_leaderless_partition()
{
    const PREFERRED: i8 = 0;
    const UNCLEAN: i8 = 1;
    const NONE: i16 = 0;
    const NOT_CONTROLLER: i16 = 41;
    const ELECTION_NOT_NEEDED: i16 = 84;
    // Broker-only nodes 4 and 5 hold the partition the unclean election
    // revives, so losing both of its replicas leaves the quorum whole.
    let cluster = Cluster::start_configured(2, "replica.lag.time.max.ms=2000\n");
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args([
            "create",
            "pref",
            "--partitions",
            "1",
            "--replication-factor",
            "3",
        ])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
    let replicas = replicas_of(&cluster, 1, "pref");
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    let preferred = replicas[0];
    let (_, first_epoch, _) =
        await_partition(&cluster, 1, "pref", 0, "led by its first replica", |s| {
            s.0 == preferred && s.2.len() == 3
        });
    let bootstrap = cluster.bootstrap();
    let producer = idempotent_producer(&bootstrap);
    let base_ms = now_ms();
    let batch = |from: u32, count: u32| vec![numbered(0, from, count, base_ms)];
    let mut acknowledged = batch(0, 20);
    assert_eq!(
        produce(&producer, "pref", &acknowledged)[0],
        (0..20).collect::<Vec<i64>>()
    );

    // The preferred replica restarts: another in-sync replica leads, and
    // leadership does not come back by itself.
    cluster.ok(&["kill", &preferred.to_string()]);
    // Any node but the killed one describes the partition.
    let other = NODES
        .into_iter()
        .find(|n| i32::from(*n) != preferred)
        .expect("another voter");
    await_partition(&cluster, other, "pref", 0, "another leader", |s| {
        s.0 > 0 && s.0 != preferred
    });
    cluster.ok(&["start", &preferred.to_string()]);
    let (moved_to, moved_epoch, _) = await_partition(
        &cluster,
        other,
        "pref",
        0,
        "the preferred replica in sync again",
        |s| s.2.len() == 3,
    );
    assert_ne!(moved_to, preferred);
    assert!(moved_epoch > first_epoch);

    // Only the active controller elects; another node says NOT_CONTROLLER.
    let controller = u16::try_from(cluster.metadata(1, Some(vec![])).controller_id.0).unwrap();
    let bystander = NODES.into_iter().find(|n| *n != controller).unwrap();
    assert_eq!(
        elect_leaders(&cluster, bystander, PREFERRED, &["pref"]),
        (NOT_CONTROLLER, vec![NOT_CONTROLLER])
    );
    assert_eq!(
        elect_leaders(&cluster, controller, PREFERRED, &["pref"]),
        (NONE, vec![NONE])
    );
    let (leader, epoch, isr) =
        await_partition(&cluster, other, "pref", 0, "the preferred leader", |s| {
            s.0 == preferred
        });
    assert_eq!((leader, epoch, isr.len()), (preferred, moved_epoch + 1, 3));
    assert_eq!(
        elect_leaders(&cluster, controller, PREFERRED, &["pref"]),
        (NONE, vec![ELECTION_NOT_NEEDED])
    );
    assert_eq!(
        elect_leaders(&cluster, controller, UNCLEAN, &["pref"]),
        (NONE, vec![ELECTION_NOT_NEEDED]),
        "a partition with a leader needs no unclean election"
    );
    // The producer follows the move; every acknowledged record is there once.
    let more = batch(20, 20);
    assert_eq!(
        produce(&producer, "pref", &more)[0],
        (20..40).collect::<Vec<i64>>()
    );
    acknowledged[0].extend(more[0].iter().cloned());
    assert_topic(&bootstrap, "pref", &acknowledged);
    drop(producer);

    // A partition on brokers 4 and 5: 5 paused out of the ISR, then 4
    // killed, leaves it without a leader and with an empty ISR (4 is its
    // eligible leader replica, KIP-966; 5 left an ISR at
    // min.insync.replicas and is not); once 5 is back, an unclean
    // election makes it the leader, alone in its ISR.
    create_assigned(&cluster, controller, "lonely", &[4, 5]);
    await_partition(&cluster, 1, "lonely", 0, "led by 4", |s| {
        s.0 == 4 && s.2 == vec![4, 5]
    });
    signal(&cluster, 5, libc::SIGSTOP);
    await_partition(&cluster, 1, "lonely", 0, "5 out of the ISR", |s| {
        s.2 == vec![4]
    });
    cluster.ok(&["kill", "4"]);
    let (_, orphan_epoch, _) = await_partition(&cluster, 1, "lonely", 0, "no leader", |s| {
        s.0 == -1 && s.2.is_empty()
    });
    assert_eq!(
        eligible_leaders(&cluster, 1, "lonely"),
        Some((-1, vec![], vec![4]))
    );
    signal(&cluster, 5, libc::SIGCONT);
    // Until 5 is unfenced, no replica can lead.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (top, codes) = elect_leaders(&cluster, controller, UNCLEAN, &["lonely"]);
        assert_eq!(top, NONE);
        if codes == vec![NONE] {
            break;
        }
        // ELIGIBLE_LEADERS_NOT_AVAILABLE while 5 is still fenced.
        assert_eq!(codes, vec![83]);
        assert!(Instant::now() < deadline, "5 never eligible");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (leader, epoch, isr) = await_partition(&cluster, 1, "lonely", 0, "led by 5", |s| s.0 == 5);
    assert_eq!((leader, epoch, isr), (5, orphan_epoch + 1, vec![5]));
}

/// Records `from..from + count` of partition `partition`
/// ([`support::client::record`]).
fn numbered(partition: i32, from: u32, count: u32, base_ms: i64) -> Vec<support::client::Record> {
    (from..from + count)
        .map(|i| support::client::record(partition, i, base_ms))
        .collect()
}

/// An idempotent acks=all producer.
fn idempotent_producer(bootstrap: &str) -> rdkafka::producer::FutureProducer {
    producer(
        bootstrap,
        &[("acks", "all"), ("enable.idempotence", "true")],
    )
}

/// CreateTopics through `node` with partition 0 on `replicas`, in order.
fn create_assigned(cluster: &Cluster, node: u16, name: &str, replicas: &[i32]) {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
    let mut client = WireClient::connect(cluster.listener(node), "cluster").expect("connect");
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(
                    replicas.iter().map(|id| BrokerId(*id)).collect(),
                )])]);
    let answer: CreateTopicsResponse = client.call(7, &request).expect("CreateTopics");
    assert_eq!(answer.topics[0].error_code, 0, "{answer:?}");
}

type TxnProducer = rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>;

const TXN_TIMEOUT: Duration = Duration::from_secs(30);

fn txn_producer(bootstrap: &str, id: &str) -> TxnProducer {
    use rdkafka::producer::Producer;
    let producer: TxnProducer = support::client::config(bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", "30000")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(TXN_TIMEOUT)
        .expect("init_transactions");
    producer
}

/// One transaction of `count` records `NAME-PARTITION-I` on each of
/// `partitions` of `topic`, written (flushed) and then committed or
/// aborted.
fn run_transaction(
    producer: &TxnProducer,
    topic: &str,
    partitions: i32,
    name: &str,
    count: u32,
    commit: bool,
) {
    use rdkafka::producer::{BaseRecord, Producer};
    producer.begin_transaction().expect("begin_transaction");
    for i in 0..count {
        for partition in 0..partitions {
            let value = format!("{name}-{partition}-{i}");
            producer
                .send(
                    BaseRecord::<str, str>::to(topic)
                        .partition(partition)
                        .payload(&value),
                )
                .expect("enqueue");
        }
    }
    // Written before the abort (an abort drops what is still queued).
    producer.flush(TXN_TIMEOUT).expect("flush");
    match commit {
        true => producer
            .commit_transaction(TXN_TIMEOUT)
            .unwrap_or_else(|e| panic!("commit {name}: {e}")),
        false => producer
            .abort_transaction(TXN_TIMEOUT)
            .unwrap_or_else(|e| panic!("abort {name}: {e}")),
    }
}

/// Waits until every partition's last stable offset is `end` (every
/// transaction finished on every leader), then reads the topic
/// read_committed from the beginning: each partition's values, once
/// `expected` of them came.
fn read_committed(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    end: i64,
    expected: usize,
) -> BTreeMap<i32, Vec<String>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let committed: BaseConsumer = support::client::config(bootstrap)
        .set("group.id", "rafka-cluster-txn-reader")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("read_committed consumer");
    let deadline = Instant::now() + DEADLINE;
    for partition in 0..partitions {
        loop {
            let stable = committed
                .fetch_watermarks(topic, partition, TXN_TIMEOUT)
                .map(|(_, stable)| stable);
            if stable.as_ref().is_ok_and(|s| *s == end) {
                break;
            }
            let (_, high) = support::client::watermarks(bootstrap, topic, partition);
            assert!(
                Instant::now() < deadline,
                "{topic}-{partition}: last stable offset {stable:?}, not {end} (high watermark \
                 {high})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .expect("assignment");
    }
    committed.assign(&assignment).expect("assign");
    let mut read: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    while read.values().map(Vec::len).sum::<usize>() < expected {
        assert!(Instant::now() < deadline, "read only {read:?}");
        if let Some(message) = committed.poll(Duration::from_millis(500)) {
            let message = message.expect("a record");
            let value = String::from_utf8(message.payload().expect("a value").to_vec()).unwrap();
            read.entry(message.partition()).or_default().push(value);
        }
    }
    // Nothing more: aborted records stay hidden.
    assert!(committed.poll(Duration::from_millis(500)).is_none());
    read
}

/// What `read_committed` must find in each partition: `count` records of
/// each committed transaction, in order.
fn committed_values(names: &[&str], partition: i32, count: u32) -> Vec<String> {
    names
        .iter()
        .flat_map(|name| (0..count).map(move |i| format!("{name}-{partition}-{i}")))
        .collect()
}

fn create_replicated(cluster: &Cluster, topic: &str, partitions: u32) {
    let created = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args(["create", topic, "--partitions", &partitions.to_string()])
        .args(["--replication-factor", "3"])
        .output()
        .expect("rafka topic create");
    assert!(created.status.success(), "{created:?}");
}

#[test]
fn a_transaction_over_partitions_led_by_every_broker_commits_and_aborts_everywhere() {
    const PARTITIONS: i32 = 3;
    let cluster = Cluster::start();
    create_replicated(&cluster, "txn", 3);
    let leaders: BTreeSet<i32> = (0..PARTITIONS)
        .map(|p| await_partition(&cluster, 1, "txn", p, "a leader", |s| s.0 > 0).0)
        .collect();
    assert_eq!(
        leaders,
        BTreeSet::from([1, 2, 3]),
        "one partition led by each broker"
    );
    let bootstrap = cluster.bootstrap();
    let producer = txn_producer(&bootstrap, "cluster-txn");
    // Markers go from the coordinator to the two brokers it is not.
    let coordinator = find_coordinator(&cluster, 1, 1, "cluster-txn").expect("a coordinator");
    assert!(leaders.contains(&coordinator));
    run_transaction(&producer, "txn", PARTITIONS, "first", 10, true);
    run_transaction(&producer, "txn", PARTITIONS, "aborted", 5, false);
    run_transaction(&producer, "txn", PARTITIONS, "second", 10, true);
    // Each partition: 25 records and 3 markers.
    let read = read_committed(&bootstrap, "txn", PARTITIONS, 28, 60);
    for partition in 0..PARTITIONS {
        let expected = committed_values(&["first", "second"], partition, 10);
        assert_eq!(read.get(&partition), Some(&expected), "txn-{partition}");
    }
}

#[test]
fn transactions_go_on_after_their_coordinators_broker_is_killed_and_none_is_lost() {
    const PARTITIONS: i32 = 3;
    let cluster = Cluster::start_configured(0, "replica.lag.time.max.ms=2000\n");
    create_replicated(&cluster, "eos", 3);
    for partition in 0..PARTITIONS {
        await_partition(&cluster, 1, "eos", partition, "a full ISR", |s| {
            s.0 > 0 && s.2.len() == 3
        });
    }
    let bootstrap = cluster.bootstrap();
    let producer = txn_producer(&bootstrap, "cluster-eos");
    run_transaction(&producer, "eos", PARTITIONS, "before", 10, true);
    // The coordinator's broker dies between transactions: its
    // __transaction_state partition moves to an in-sync replica, which
    // loads the id, and the producer finds it there.
    let coordinator = find_coordinator(&cluster, 1, 1, "cluster-eos").expect("a coordinator");
    let killed = u16::try_from(coordinator).unwrap();
    cluster.ok(&["kill", &killed.to_string()]);
    let survivor = NODES.into_iter().find(|n| *n != killed).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let moved_to = loop {
        match find_coordinator(&cluster, survivor, 1, "cluster-eos") {
            Ok(node) if node != coordinator => break node,
            other => assert!(Instant::now() < deadline, "the coordinator still {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(moved_to, coordinator);
    run_transaction(&producer, "eos", PARTITIONS, "after", 10, true);
    run_transaction(&producer, "eos", PARTITIONS, "aborted", 5, false);
    // The killed broker comes back on its disk and follows.
    cluster.ok(&["start", &killed.to_string()]);
    run_transaction(&producer, "eos", PARTITIONS, "back", 10, true);
    // Each partition: 35 records and 4 markers.
    let read = read_committed(&bootstrap, "eos", PARTITIONS, 39, 90);
    for partition in 0..PARTITIONS {
        let expected = committed_values(&["before", "after", "back"], partition, 10);
        assert_eq!(read.get(&partition), Some(&expected), "eos-{partition}");
    }
}

/// AlterPartitionReassignments of `topic`-`partition` through `node`:
/// `target` replicas, or `None` to cancel; the top-level and the
/// partition's error codes.
fn reassign(
    cluster: &Cluster,
    node: u16,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
) -> (i16, i16) {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    };
    let mut client = WireClient::connect(cluster.listener(node), "cluster").expect("connect");
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    target.map(|ids| ids.iter().map(|id| BrokerId(*id)).collect()),
                )])]);
    let answer: AlterPartitionReassignmentsResponse = client
        .call(0, &request)
        .expect("AlterPartitionReassignments");
    let code = answer.responses[0].partitions[0].error_code;
    (answer.error_code, code)
}

/// DeleteRecords of partition 0 of `topic` below `offset`, through
/// `node` (its leader): the error code and the new log start.
fn delete_records(cluster: &Cluster, node: u16, topic: &str, offset: i64) -> (i16, i64) {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
    let mut client = WireClient::connect(cluster.listener(node), "cluster").expect("connect");
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let answer: DeleteRecordsResponse = client.call(2, &request).expect("DeleteRecords");
    let partition = &answer.topics[0].partitions[0];
    (partition.error_code, partition.low_watermark)
}

/// A reassignment in progress: topic, partition, replicas, adding,
/// removing.
type Moving = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// ListPartitionReassignments (every partition) through `node`.
fn reassignments(cluster: &Cluster, node: u16) -> Vec<Moving> {
    use kafka_protocol::messages::{
        ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    };
    let mut client = WireClient::connect(cluster.listener(node), "cluster").expect("connect");
    let request = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(None);
    let answer: ListPartitionReassignmentsResponse = client
        .call(0, &request)
        .expect("ListPartitionReassignments");
    assert_eq!(answer.error_code, 0, "{answer:?}");
    let ids = |ids: &[BrokerId]| ids.iter().map(|id| id.0).collect::<Vec<i32>>();
    answer
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    ids(&p.replicas),
                    ids(&p.adding_replicas),
                    ids(&p.removing_replicas),
                )
            })
        })
        .collect()
}

/// CreatePartitions through `node`: `topic` grown by one partition per
/// entry of `assignments`, each on those replicas; the topic's error code.
fn grow_assigned(
    cluster: &Cluster,
    node: u16,
    topic: &str,
    total: i32,
    assignments: &[&[i32]],
) -> i16 {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
    let mut client = WireClient::connect(cluster.listener(node), "cluster").expect("connect");
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_count(total)
            .with_assignments(Some(
                assignments
                    .iter()
                    .map(|ids| {
                        CreatePartitionsAssignment::default()
                            .with_broker_ids(ids.iter().map(|id| BrokerId(*id)).collect())
                    })
                    .collect(),
            ))]);
    let answer: CreatePartitionsResponse = client.call(3, &request).expect("CreatePartitions");
    answer.results[0].error_code
}

/// The replicas of `topic`-`partition` as `node`'s Metadata shows them.
fn replicas_of_partition(cluster: &Cluster, node: u16, topic: &str, partition: i32) -> Vec<i32> {
    let metadata = cluster.metadata(node, Some(vec![topic]));
    metadata.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .map(|p| p.replica_nodes.iter().map(|n| n.0).collect())
        .unwrap_or_default()
}

/// Polls until `check` holds for what `read` returns; returns it.
fn await_value<T: std::fmt::Debug>(
    what: &str,
    read: impl Fn() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = read();
        if check(&value) {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}; last seen {value:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reassignment_moves_a_partition_to_another_broker_with_every_record_and_can_be_cancelled() {
    const NONE: i16 = 0;
    const NOT_CONTROLLER: i16 = 41;
    const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
    const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    // Broker-only node 4 holds nothing of the topic at first.
    let cluster = Cluster::start_configured(1, "replica.lag.time.max.ms=2000\n");
    let controller = u16::try_from(cluster.metadata(1, Some(vec![])).controller_id.0).unwrap();
    let bystander = NODES.into_iter().find(|n| *n != controller).unwrap();
    create_assigned(&cluster, controller, "moving", &[1, 2, 3]);
    await_partition(&cluster, 4, "moving", 0, "led by 1, all in sync", |s| {
        s.0 == 1 && s.2 == vec![1, 2, 3]
    });
    let bootstrap = cluster.bootstrap();
    let producer = idempotent_producer(&bootstrap);
    let base_ms = now_ms();
    let batch = |from: u32, count: u32| vec![numbered(0, from, count, base_ms)];
    let mut acknowledged = batch(0, 300);
    assert_eq!(
        produce(&producer, "moving", &acknowledged)[0],
        (0..300).collect::<Vec<i64>>()
    );

    // Only the active controller reassigns.
    assert_eq!(
        reassign(&cluster, bystander, "moving", 0, Some(&[4, 2, 3])),
        (NOT_CONTROLLER, NOT_CONTROLLER)
    );
    // With 4 paused the move cannot finish: 4 is being added, 1 removed.
    signal(&cluster, 4, libc::SIGSTOP);
    assert_eq!(
        reassign(&cluster, controller, "moving", 0, Some(&[4, 2, 3])),
        (NONE, NONE)
    );
    let moving = vec![("moving".to_string(), 0, vec![4, 2, 3, 1], vec![4], vec![1])];
    assert_eq!(reassignments(&cluster, controller), moving);
    // Another node lists it once it applied the change.
    await_value(
        "the move listed by another node",
        || reassignments(&cluster, bystander),
        |listed| *listed == moving,
    );
    assert_eq!(
        reassign(&cluster, controller, "moving", 0, Some(&[4, 4])),
        (NONE, INVALID_REPLICA_ASSIGNMENT)
    );
    signal(&cluster, 4, libc::SIGCONT);

    // 4 catches up and joins the ISR, which completes the move: 1 leaves,
    // and 4, the first in-sync replica of the target, leads.
    let (leader, _, isr) = await_partition(&cluster, 2, "moving", 0, "moved to 4, 2, 3", |s| {
        s.0 == 4 && s.2 == vec![2, 3, 4]
    });
    assert_eq!((leader, isr), (4, vec![2, 3, 4]));
    assert_eq!(
        replicas_of_partition(&cluster, 2, "moving", 0),
        vec![4, 2, 3]
    );
    assert_eq!(reassignments(&cluster, controller), Vec::<Moving>::new());
    let dir_on = |node: u16| {
        cluster
            .cluster_dir()
            .join(format!("node-{node}"))
            .join("moving-0")
    };
    await_value(
        "1 deleted its copy",
        || dir_on(1).exists(),
        |exists| !exists,
    );
    assert!(dir_on(4).exists());
    // The producer follows the move; every record is there once, read
    // from the new leader.
    let more = batch(300, 100);
    assert_eq!(
        produce(&producer, "moving", &more)[0],
        (300..400).collect::<Vec<i64>>()
    );
    acknowledged[0].extend(more[0].iter().cloned());
    assert_topic(&bootstrap, "moving", &acknowledged);

    // Nothing to cancel; then a move back onto 1 that 1 (paused) cannot
    // finish, cancelled: 4, 2, 3 again, and 1 keeps no copy. Pausing 1 may
    // pause the active controller: the move goes to whichever voter is.
    assert_eq!(
        reassign(&cluster, controller, "moving", 0, None),
        (NONE, NO_REASSIGNMENT_IN_PROGRESS)
    );
    signal(&cluster, 1, libc::SIGSTOP);
    let active = await_value(
        "a controller other than paused node 1 starts the move",
        || {
            let seen = cluster.metadata(2, Some(vec![])).controller_id.0;
            let active = u16::try_from(seen).ok().filter(|c| *c != 1 && *c != 0)?;
            let answer = reassign(&cluster, active, "moving", 0, Some(&[4, 2, 3, 1]));
            (answer == (NONE, NONE)).then_some(active)
        },
        Option::is_some,
    )
    .expect("an active controller");
    assert_eq!(
        reassignments(&cluster, active),
        vec![(
            "moving".to_string(),
            0,
            vec![4, 2, 3, 1],
            vec![1],
            Vec::new()
        )]
    );
    assert_eq!(reassign(&cluster, active, "moving", 0, None), (NONE, NONE));
    assert_eq!(reassignments(&cluster, active), Vec::<Moving>::new());
    assert_eq!(
        replicas_of_partition(&cluster, active, "moving", 0),
        vec![4, 2, 3]
    );
    signal(&cluster, 1, libc::SIGCONT);
    await_value("1 keeps no copy", || dir_on(1).exists(), |exists| !exists);
    let controller = await_value(
        "a known controller",
        || cluster.metadata(2, Some(vec![])).controller_id.0,
        |id| *id > 0,
    );
    let controller = u16::try_from(controller).expect("a node id");

    // CreatePartitions on chosen brokers, as wide as the topic.
    assert_eq!(
        grow_assigned(&cluster, controller, "moving", 2, &[&[3, 3, 1]]),
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        grow_assigned(&cluster, controller, "moving", 2, &[&[3, 1]]),
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        grow_assigned(&cluster, controller, "moving", 2, &[&[3, 4, 1]]),
        NONE
    );
    await_partition(&cluster, 2, "moving", 1, "led by 3", |s| {
        s.0 == 3 && s.2 == vec![1, 3, 4]
    });
    assert_eq!(
        replicas_of_partition(&cluster, 2, "moving", 1),
        vec![3, 4, 1]
    );
    let on_one = numbered(1, 0, 50, base_ms);
    let sent = vec![Vec::new(), on_one.clone()];
    // A new producer: the first one's metadata has one partition.
    drop(producer);
    let producer = idempotent_producer(&bootstrap);
    assert_eq!(
        produce(&producer, "moving", &sent)[1],
        (0..50).collect::<Vec<i64>>()
    );
    acknowledged.push(on_one);
    assert_topic(&bootstrap, "moving", &acknowledged);

    // A move onto a broker once the log no longer starts at 0: the new
    // replica starts its log at the leader's log start and catches up.
    create_assigned(&cluster, controller, "trimmed", &[2, 3]);
    await_partition(&cluster, 2, "trimmed", 0, "led by 2, both in sync", |s| {
        s.0 == 2 && s.2 == vec![2, 3]
    });
    let trimmed = numbered(0, 0, 100, base_ms);
    assert_eq!(
        produce(&producer, "trimmed", std::slice::from_ref(&trimmed))[0],
        (0..100).collect::<Vec<i64>>()
    );
    assert_eq!(delete_records(&cluster, 2, "trimmed", 60), (NONE, 60));
    assert_eq!(
        reassign(&cluster, controller, "trimmed", 0, Some(&[4])),
        (NONE, NONE)
    );
    await_partition(&cluster, 2, "trimmed", 0, "moved to 4 alone", |s| {
        s.0 == 4 && s.2 == vec![4]
    });
    let consumed = support::client::consume(&bootstrap, "trimmed", &[40]);
    let offsets: Vec<i64> = consumed[0].iter().map(|c| c.offset).collect();
    assert_eq!(offsets, (60..100).collect::<Vec<i64>>());
    for (got, want) in consumed[0].iter().zip(&trimmed[60..]) {
        assert_eq!(&got.record, want, "trimmed offset {}", got.offset);
    }
}

#[test]
fn leadership_moves_back_to_the_preferred_replica_by_itself_once_it_is_in_sync() {
    // auto.leader.rebalance.enable is on by default; look every second.
    let cluster = Cluster::start_configured(
        0,
        "leader.imbalance.check.interval.seconds=1\nreplica.lag.time.max.ms=2000\n",
    );
    let controller = u16::try_from(cluster.metadata(1, Some(vec![])).controller_id.0).unwrap();
    // The preferred replica is a node other than the controller, so that
    // killing it leaves the controller in place.
    let preferred = NODES.into_iter().find(|n| *n != controller).unwrap();
    let others: Vec<i32> = NODES
        .into_iter()
        .filter(|n| *n != preferred)
        .map(i32::from)
        .collect();
    let replicas = [i32::from(preferred), others[0], others[1]];
    create_assigned(&cluster, controller, "balanced", &replicas);
    let (_, first_epoch, _) = await_partition(
        &cluster,
        controller,
        "balanced",
        0,
        "led by its first replica",
        |s| s.0 == replicas[0] && s.2.len() == 3,
    );
    cluster.ok(&["kill", &preferred.to_string()]);
    let (moved_to, _, _) =
        await_partition(&cluster, controller, "balanced", 0, "another leader", |s| {
            s.0 > 0 && s.0 != replicas[0]
        });
    assert!(others.contains(&moved_to));
    cluster.ok(&["start", &preferred.to_string()]);
    // No ElectLeaders: the controller moves it back once it is in sync.
    let (leader, epoch, isr) = await_partition(
        &cluster,
        controller,
        "balanced",
        0,
        "the preferred leader again",
        |s| s.0 == replicas[0],
    );
    assert_eq!((leader, isr.len()), (replicas[0], 3));
    assert!(
        epoch >= first_epoch + 2,
        "two leader changes: {first_epoch} -> {epoch}"
    );
}

/// A consumer's Fetch (v12, by topic name) of partition 0 of `topic` from
/// `offset` through `node`, in `rack` (empty: none), read_uncommitted
/// unless `read_committed`: error code, preferred read replica, high
/// watermark and the records' bytes.
fn consumer_fetch(
    cluster: &Cluster,
    node: u16,
    topic: &str,
    rack: &str,
    offset: i64,
    read_committed: bool,
) -> (i16, i32, i64, usize) {
    let mut client = WireClient::connect(cluster.listener(node), "cluster").expect("connect");
    let epoch = cluster.metadata(node, Some(vec![topic])).topics[0].partitions[0].leader_epoch;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(i8::from(read_committed))
        .with_rack_id(StrBytes::from_string(rack.to_string()))
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(epoch)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let answer: FetchResponse = client.call(12, &request).expect("Fetch v12");
    let partition = &answer.responses[0].partitions[0];
    (
        partition.error_code,
        partition.preferred_read_replica.0,
        partition.high_watermark,
        partition.records.as_ref().map_or(0, |r| r.len()),
    )
}

/// `rafka_topic_records_out_total` of `topic` in node `node`'s /metrics.
fn records_out(cluster: &Cluster, node: u16, topic: &str) -> u64 {
    let prefix = format!("rafka_topic_records_out_total{{topic=\"{topic}\"}} ");
    cluster
        .metrics(node)
        .lines()
        .find_map(|line| line.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_consumer_that_names_its_rack_reads_from_the_in_sync_replica_there() {
    const NONE: i16 = 0;
    // Nodes 1, 2 and 3 in racks a, b and c, Kafka's rack-aware selector.
    let cluster = Cluster::start_in_racks(
        0,
        "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector\n",
        "a b c",
    );
    let controller = u16::try_from(cluster.metadata(1, Some(vec![])).controller_id.0).unwrap();
    create_assigned(&cluster, controller, "racked", &[1, 2, 3]);
    await_partition(&cluster, 1, "racked", 0, "led by 1, all in sync", |s| {
        s.0 == 1 && s.2 == vec![1, 2, 3]
    });
    let bootstrap = cluster.bootstrap();
    let producer = producer(&bootstrap, &[("acks", "all")]);
    let base_ms = now_ms();
    let sent = numbered(0, 0, 200, base_ms);
    assert_eq!(
        produce(&producer, "racked", std::slice::from_ref(&sent))[0],
        (0..200).collect::<Vec<i64>>()
    );
    drop(producer);

    // The leader sends a consumer of rack b to 2 (no records), keeps one
    // of its own rack or of none.
    let (code, preferred, _, bytes) = consumer_fetch(&cluster, 1, "racked", "b", 0, false);
    assert_eq!((code, preferred, bytes), (NONE, 2, 0));
    let (code, preferred, high_watermark, bytes) =
        consumer_fetch(&cluster, 1, "racked", "a", 0, false);
    assert_eq!((code, preferred, high_watermark), (NONE, -1, 200));
    assert!(bytes > 0);
    let (code, preferred, _, bytes) = consumer_fetch(&cluster, 1, "racked", "", 0, false);
    assert_eq!((code, preferred), (NONE, -1));
    assert!(bytes > 0);
    // A rack with no replica stays on the leader; read_committed goes too.
    assert_eq!(consumer_fetch(&cluster, 1, "racked", "z", 0, false).1, -1);
    assert_eq!(consumer_fetch(&cluster, 1, "racked", "b", 0, true).1, 2);

    // Follower 2 serves it, up to the high watermark it heard from 1, once
    // its copy caught up; read_committed up to its last stable offset.
    let (code, preferred, high_watermark, bytes) = await_value(
        "2 serves the consumer every record",
        || consumer_fetch(&cluster, 2, "racked", "b", 0, false),
        |answer| answer.2 == 200,
    );
    assert_eq!((code, preferred, high_watermark), (NONE, -1, 200));
    assert!(bytes > 0);
    let (code, _, high_watermark, bytes) = consumer_fetch(&cluster, 2, "racked", "b", 0, true);
    assert_eq!((code, high_watermark), (NONE, 200));
    assert!(bytes > 0);

    // librdkafka (read_committed by default) with client.rack=c reads
    // every record, from 3.
    let consumer: rdkafka::consumer::BaseConsumer = support::client::config(&bootstrap)
        .set("client.rack", "c")
        .set("group.id", "racked-readers")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    use rdkafka::consumer::Consumer;
    use rdkafka::Message;
    consumer.subscribe(&["racked"]).expect("subscribe");
    let mut read: Vec<(i64, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while read.len() < sent.len() {
        assert!(
            Instant::now() < deadline,
            "read {} of {}",
            read.len(),
            sent.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("a record");
            read.push((
                message.offset(),
                message.payload().unwrap_or_default().to_vec(),
            ));
        }
    }
    let offsets: Vec<i64> = read.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(offsets, (0..200).collect::<Vec<i64>>());
    for ((_, payload), want) in read.iter().zip(&sent) {
        assert_eq!(
            payload.as_slice(),
            want.value.as_deref().unwrap_or_default()
        );
    }
    assert!(
        records_out(&cluster, 3, "racked") >= 200,
        "node 3 served the rack-c consumer: {:?}",
        [1, 2, 3].map(|n| records_out(&cluster, n, "racked"))
    );
}

/// A replica moved away while its broker was down: the broker deletes
/// its copy once it is back (Kafka's stray logs), and keeps the others.
#[test]
fn a_replica_moved_away_while_its_broker_was_down_is_deleted_when_it_returns() {
    let cluster = Cluster::start_with_brokers(1);
    create_assigned(&cluster, 1, "stray", &[4, 1, 2]);
    create_assigned(&cluster, 1, "kept", &[4, 2, 3]);
    await_partition(&cluster, 1, "stray", 0, "led by 4", |s| {
        s.0 == 4 && s.2 == vec![1, 2, 4]
    });
    let dir = |topic: &str| cluster.cluster_dir().join(format!("node-4/{topic}-0"));
    await_value(
        "4 holds both",
        || dir("stray").exists() && dir("kept").exists(),
        |both| *both,
    );
    cluster.ok(&["kill", "4"]);
    let controller = await_value(
        "a known controller",
        || cluster.metadata(1, Some(vec![])).controller_id.0,
        |id| *id > 0,
    );
    let controller = u16::try_from(controller).expect("a node id");
    assert_eq!(
        reassign(&cluster, controller, "stray", 0, Some(&[1, 2, 3])),
        (0, 0)
    );
    await_value(
        "the move done without 4",
        || replicas_of_partition(&cluster, 1, "stray", 0),
        |replicas| replicas == &vec![1, 2, 3],
    );
    cluster.ok(&["start", "4"]);
    await_value("4's stray copy deleted", || dir("stray").exists(), |e| !e);
    assert!(dir("kept").exists());
}

/// A topic deleted and created again under the same name while one of its
/// brokers was down: back, that broker drops the old topic's records and
/// copies the new one's; led by it, the topic reads the new records only.
#[test]
fn a_topic_recreated_while_a_broker_was_down_holds_only_the_new_records_there() {
    let cluster = Cluster::start_with_brokers(1);
    let bootstrap = cluster.bootstrap();
    create_assigned(&cluster, 1, "again", &[4, 1, 2]);
    await_partition(&cluster, 1, "again", 0, "led by 4", |s| {
        s.0 == 4 && s.2 == vec![1, 2, 4]
    });
    let base_ms = now_ms();
    let old = records(1, 30, base_ms);
    let first = producer(&bootstrap, &[("acks", "all")]);
    assert_eq!(
        produce(&first, "again", &old),
        vec![(0..30).collect::<Vec<i64>>()]
    );
    drop(first);
    cluster.ok(&["kill", "4"]);
    let deleted = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "--bootstrap", &cluster.listener(1).to_string()])
        .args(["delete", "again"])
        .output()
        .expect("rafka topic delete");
    assert!(deleted.status.success(), "{deleted:?}");
    await_value(
        "the old topic gone",
        || cluster.metadata(1, Some(vec!["again"])).topics[0].error_code,
        |code| *code != 0,
    );
    create_assigned(&cluster, 1, "again", &[4, 1, 2]);
    await_partition(&cluster, 1, "again", 0, "led by 1", |s| s.0 == 1);
    let new = records(1, 10, base_ms + 100_000);
    let second = producer(&bootstrap, &[("acks", "all")]);
    assert_eq!(
        produce(&second, "again", &new),
        vec![(0..10).collect::<Vec<i64>>()]
    );
    drop(second);

    cluster.ok(&["start", "4"]);
    await_partition(&cluster, 1, "again", 0, "4 back in the ISR", |s| {
        s.2 == vec![1, 2, 4]
    });
    let controller = await_value(
        "a known controller",
        || cluster.metadata(1, Some(vec![])).controller_id.0,
        |id| *id > 0,
    );
    let controller = u16::try_from(controller).expect("a node id");
    assert_eq!(
        elect_leaders(&cluster, controller, 0, &["again"]),
        (0, vec![0])
    );
    await_partition(&cluster, 1, "again", 0, "led by 4", |s| s.0 == 4);
    assert_eq!(support::client::watermarks(&bootstrap, "again", 0), (0, 10));
    assert_topic(&bootstrap, "again", &new);
}
