//! A 3-node cluster for fault tests: scripts/cluster.sh starts, kills and
//! restarts the nodes (every node broker + controller of one raft-rs
//! metadata quorum, each on its own data dir kept across restarts); this
//! wraps it with SIGSTOP / SIGCONT, Metadata polling and the group
//! coordinator's APIs. Dropping a [`Cluster`] stops every node it started,
//! paused ones included, and copies the node logs to `RAFKA_FAULT_LOGS`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_testkit::WireClient;

use super::ports::{free_base_port, PortLock};

/// The nodes of every cluster: three voters, each broker and controller.
pub const NODES: [u16; 3] = [1, 2, 3];
/// Bound on any wait for the cluster to reach a state.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A partition as one node describes it: leader (-1: none), leader epoch,
/// ISR sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: i32,
    pub epoch: i32,
    pub isr: Vec<i32>,
}

pub struct Cluster {
    /// Names the directory the logs are copied to under `RAFKA_FAULT_LOGS`.
    name: String,
    dir: tempfile::TempDir,
    base: u16,
}

impl Cluster {
    /// Starts nodes 1-3 fresh, with a 3 s broker session and `extra`
    /// server.properties lines after it (later lines win).
    pub fn start_configured(name: &str, extra: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("server.properties"),
            format!("broker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=500\n{extra}"),
        )
        .expect("config");
        // Picking free ports and binding them is not atomic: clusters that
        // start at once take turns (see ports.rs).
        let _turn = PortLock::take();
        let cluster = Cluster {
            name: name.to_string(),
            dir,
            base: free_base_port(3),
        };
        let lines = cluster.ok(&["start", "--fresh"]);
        assert_eq!(
            lines.last(),
            Some(&format!("bootstrap={}", cluster.bootstrap()))
        );
        cluster
    }

    /// scripts/cluster.sh `args` on this cluster.
    pub fn run(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
        Command::new("bash")
            .arg(script)
            .args(args)
            .env("RAFKA_BIN", env!("CARGO_BIN_EXE_rafka"))
            .env("CLUSTER_DIR", self.cluster_dir())
            .env("CLUSTER_BASE_PORT", self.base.to_string())
            .env("CLUSTER_CONFIG", self.dir.path().join("server.properties"))
            .env("CLUSTER_CORES", "1")
            .env("CLUSTER_BROKERS", "0")
            .env_remove("CLUSTER_NO_QUORUM")
            .env_remove("CLUSTER_BUILD")
            .output()
            .expect("run scripts/cluster.sh")
    }

    /// [`Cluster::run`] that must succeed; its stdout lines.
    pub fn ok(&self, args: &[&str]) -> Vec<String> {
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

    pub fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    pub fn listener(&self, node: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.base + node))
    }

    pub fn bootstrap(&self) -> String {
        NODES
            .iter()
            .map(|n| self.listener(*n).to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node N's pid while the script counts it as started.
    pub fn pid(&self, node: u16) -> Option<u32> {
        let file = self.cluster_dir().join(format!("node-{node}.pid"));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// kill -9 of node N; returns once it has exited and its ports closed.
    pub fn kill(&self, node: u16) {
        self.ok(&["kill", &node.to_string()]);
    }

    /// Starts node N again on its data dir; returns once it listens.
    pub fn restart(&self, node: u16) {
        self.ok(&["start", &node.to_string()]);
    }

    /// SIGSTOP of node N: it keeps its sockets but answers nothing.
    pub fn pause(&self, node: u16) {
        self.signal(node, libc::SIGSTOP);
    }

    /// SIGCONT of a node [`Cluster::pause`]d.
    pub fn resume(&self, node: u16) {
        self.signal(node, libc::SIGCONT);
    }

    fn signal(&self, node: u16, signal: libc::c_int) {
        let pid = self.pid(node).expect("a running node's pid");
        let pid = libc::pid_t::try_from(pid).expect("pid");
        // SAFETY: kill(2) of a broker this cluster started.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "signal {signal} to node {node}");
    }

    /// Metadata of `topics` (None: every topic) asked of node N, or None
    /// if it does not answer.
    pub fn metadata(&self, node: u16, topics: Option<&[&str]>) -> Option<MetadataResponse> {
        let mut client = WireClient::connect(self.listener(node), "cluster").ok()?;
        let topics = topics.map(|names| {
            names
                .iter()
                .map(|name| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))
                })
                .collect()
        });
        let request = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        client.call(12, &request).ok()
    }

    /// `topic`-`partition` as node N describes it, if it answers.
    pub fn partition_state(
        &self,
        node: u16,
        topic: &str,
        partition: i32,
    ) -> Option<PartitionState> {
        let answer = self.metadata(node, Some(&[topic]))?;
        let found = answer
            .topics
            .first()?
            .partitions
            .iter()
            .find(|p| p.partition_index == partition)?;
        let mut isr: Vec<i32> = found.isr_nodes.iter().map(|n| n.0).collect();
        isr.sort_unstable();
        Some(PartitionState {
            leader: found.leader_id.0,
            epoch: found.leader_epoch,
            isr,
        })
    }

    /// Polls `nodes` in turn until one describes `topic`-`partition` so
    /// that `check` holds; returns that state. Panics at the deadline with
    /// the last state seen.
    pub fn await_partition(
        &self,
        nodes: &[u16],
        topic: &str,
        partition: i32,
        what: &str,
        check: impl Fn(&PartitionState) -> bool,
    ) -> PartitionState {
        let deadline = Instant::now() + DEADLINE;
        let mut last = None;
        loop {
            for &node in nodes {
                let state = self.partition_state(node, topic, partition);
                if let Some(state) = state.as_ref().filter(|s| check(s)) {
                    return state.clone();
                }
                last = Some((node, state));
            }
            assert!(
                Instant::now() < deadline,
                "{topic}-{partition}: {what}; last seen (node, state) {last:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The live leader of `topic`-`partition` as `nodes` see it.
    pub fn leader(&self, nodes: &[u16], topic: &str, partition: i32) -> u16 {
        let state = self.await_partition(nodes, topic, partition, "a leader", |s| {
            s.leader > 0 && nodes.contains(&u16::try_from(s.leader).unwrap_or(0))
        });
        u16::try_from(state.leader).expect("node id")
    }

    /// FindCoordinator v3 of group `group` asked of node N: the
    /// coordinator's node id, or the error code (-1: no answer).
    pub fn find_coordinator(&self, node: u16, group: &str) -> Result<i32, i16> {
        self.find_coordinator_of(node, 0, group)
    }

    /// FindCoordinator v3 of `key` (`key_type` 0: a group, 1: a
    /// transactional id) asked of node N.
    pub fn find_coordinator_of(&self, node: u16, key_type: i8, key: &str) -> Result<i32, i16> {
        use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
        let mut client = WireClient::connect(self.listener(node), "cluster").map_err(|_| -1i16)?;
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(key.to_string()))
            .with_key_type(key_type);
        let answer: FindCoordinatorResponse = client.call(3, &request).map_err(|_| -1i16)?;
        match answer.error_code {
            0 => Ok(answer.node_id.0),
            code => Err(code),
        }
    }

    /// OffsetFetch v7 of `group`'s committed offsets of `topic`'s
    /// partitions `0..partitions` asked of node N (-1: none committed), or
    /// the error code (-1: no answer).
    pub fn offset_fetch(
        &self,
        node: u16,
        group: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<Vec<i64>, i16> {
        use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
        use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};
        let mut client = WireClient::connect(self.listener(node), "cluster").map_err(|_| -1i16)?;
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

    /// Copies every node's log to `$RAFKA_FAULT_LOGS/<name>/` if set.
    pub fn copy_logs(&self) {
        let Some(root) = std::env::var_os("RAFKA_FAULT_LOGS") else {
            return;
        };
        let target = PathBuf::from(root).join(&self.name);
        if let Err(error) = std::fs::create_dir_all(&target) {
            eprintln!("RAFKA_FAULT_LOGS: {}: {error}", target.display());
            return;
        }
        for node in NODES {
            let log = format!("node-{node}.log");
            let copied = std::fs::copy(self.cluster_dir().join(&log), target.join(&log));
            if let Err(error) = copied {
                eprintln!("RAFKA_FAULT_LOGS: {log}: {error}");
            }
        }
        eprintln!("node logs copied to {}", target.display());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A paused node would never answer SIGTERM.
        for node in NODES {
            if let Some(pid) = self.pid(node).and_then(|p| libc::pid_t::try_from(p).ok()) {
                // SAFETY: kill(2) of a broker this cluster started.
                unsafe {
                    libc::kill(pid, libc::SIGCONT);
                }
            }
        }
        let _ = self.run(&["stop"]);
        for node in NODES {
            if let Some(pid) = self.pid(node).and_then(|p| libc::pid_t::try_from(p).ok()) {
                // SAFETY: kill(2) of this cluster's broker if still up.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        self.copy_logs();
    }
}
