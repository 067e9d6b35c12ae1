//! `scripts/cluster.sh` with `CLUSTER_NO_QUORUM=1` (three single nodes, no
//! quorum flags): `start --fresh`, `status`, `kill N`, `start N`, `stop`,
//! on ports and a data dir of the test's own. Each node answers Metadata
//! as its own node id; the status lines name the pids the pid files hold;
//! a killed or stopped node's process is gone; nothing is left running
//! (the guard SIGKILLs whatever a failed run leaves).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use rafka_testkit::WireClient;

use support::ports::{free_base_port, PortLock};

const NODES: [u16; 3] = [1, 2, 3];

/// The script run against one cluster dir and port base.
struct Cluster {
    dir: tempfile::TempDir,
    base: u16,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            dir: tempfile::tempdir().expect("tempdir"),
            base: {
                let _turn = PortLock::take();
                free_base_port(3)
            },
        }
    }

    fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    fn run(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
        Command::new("bash")
            .arg(script)
            .args(args)
            .env("RAFKA_BIN", env!("CARGO_BIN_EXE_rafka"))
            .env("CLUSTER_DIR", self.cluster_dir())
            .env("CLUSTER_BASE_PORT", self.base.to_string())
            .env("CLUSTER_NO_QUORUM", "1")
            .env("CLUSTER_CORES", "1")
            .env_remove("CLUSTER_BUILD")
            .output()
            .expect("run scripts/cluster.sh")
    }

    /// Runs the script, requires exit 0, returns its stdout lines.
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

    fn listener(&self, node: u16) -> String {
        format!("127.0.0.1:{}", self.base + node)
    }

    fn data_dir(&self, node: u16) -> String {
        self.cluster_dir()
            .join(format!("node-{node}"))
            .display()
            .to_string()
    }

    /// The pid node N's pid file holds, if any.
    fn pid(&self, node: u16) -> Option<u32> {
        let file = self.cluster_dir().join(format!("node-{node}.pid"));
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Whether `pid` is a live rafka of node N (its data dir on its
    /// command line; a zombie's command line is empty).
    fn alive(&self, node: u16, pid: u32) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let data_dir = self.data_dir(node);
        cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == data_dir.as_bytes())
    }

    /// Metadata from node N: the broker id it answers with.
    fn node_id_of(&self, node: u16) -> i32 {
        let addr: SocketAddr = self.listener(node).parse().expect("address");
        let mut client = WireClient::connect(addr, "cluster-sh").expect("connect");
        let metadata: MetadataResponse = client
            .call(
                12,
                &MetadataRequest::default().with_topics(Some(Vec::new())),
            )
            .expect("Metadata");
        let ids: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
        assert_eq!(ids.len(), 1, "one broker per single node: {ids:?}");
        ids[0]
    }
}

impl Drop for Cluster {
    /// Whatever a failed run left running is killed.
    fn drop(&mut self) {
        for node in NODES {
            if let Some(pid) = self.pid(node).filter(|pid| self.alive(node, *pid)) {
                // SAFETY: kill(2) on a pid that is this test's broker.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
    }
}

#[test]
fn start_status_kill_restart_stop() {
    let cluster = Cluster::new();
    // --fresh wipes what was there.
    std::fs::create_dir_all(cluster.cluster_dir()).expect("mkdir");
    let stale = cluster.cluster_dir().join("stale");
    std::fs::write(&stale, b"x").expect("write");

    let started = cluster.ok(&["start", "--fresh"]);
    assert!(!stale.exists(), "start --fresh wiped the dir");
    let pids: Vec<u32> = NODES
        .iter()
        .map(|n| cluster.pid(*n).expect("pid file"))
        .collect();
    let mut expected: Vec<String> = NODES
        .iter()
        .zip(&pids)
        .map(|(n, pid)| format!("node {n} pid {pid} listening on {}", cluster.listener(*n)))
        .collect();
    let bootstrap: Vec<String> = NODES.iter().map(|n| cluster.listener(*n)).collect();
    expected.push(format!("bootstrap={}", bootstrap.join(",")));
    assert_eq!(started, expected);
    for (n, pid) in NODES.iter().zip(&pids) {
        assert!(cluster.alive(*n, *pid), "node {n}");
        assert_eq!(cluster.node_id_of(*n), i32::from(*n));
    }
    let status = |cluster: &Cluster, pids: [Option<u32>; 3]| -> Vec<String> {
        NODES
            .iter()
            .zip(pids)
            .map(|(n, pid)| {
                let pid = pid.map_or("down".to_string(), |p| p.to_string());
                format!("{n} {pid} {}", cluster.listener(*n))
            })
            .collect()
    };
    assert_eq!(
        cluster.ok(&["status"]),
        status(&cluster, [Some(pids[0]), Some(pids[1]), Some(pids[2])])
    );

    // A running cluster is not started twice.
    let again = cluster.run(&["start"]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        format!(
            "cluster.sh: node 1 is running (pid {}): scripts/cluster.sh stop first\n",
            pids[0]
        )
    );

    assert_eq!(
        cluster.ok(&["kill", "2"]),
        [format!("node 2 pid {} killed", pids[1])]
    );
    assert!(!cluster.alive(2, pids[1]), "SIGKILLed");
    assert_eq!(
        cluster.ok(&["status"]),
        status(&cluster, [Some(pids[0]), None, Some(pids[2])])
    );

    let restarted = cluster.ok(&["start", "2"]);
    let new_pid = cluster.pid(2).expect("pid file");
    assert_ne!(new_pid, pids[1]);
    assert_eq!(
        restarted,
        [format!(
            "node 2 pid {new_pid} listening on {}",
            cluster.listener(2)
        )]
    );
    assert_eq!(cluster.node_id_of(2), 2);
    assert_eq!(
        cluster.ok(&["status"]),
        status(&cluster, [Some(pids[0]), Some(new_pid), Some(pids[2])])
    );

    assert_eq!(
        cluster.ok(&["stop"]),
        ["node 1 stopped", "node 2 stopped", "node 3 stopped"]
    );
    for (n, pid) in NODES.iter().zip([pids[0], new_pid, pids[2]]) {
        assert!(!cluster.alive(*n, pid), "node {n} pid {pid} exited");
        assert_eq!(cluster.pid(*n), None, "node {n}'s pid file removed");
    }
    assert_eq!(
        cluster.ok(&["status"]),
        status(&cluster, [None, None, None])
    );
    assert_eq!(cluster.ok(&["stop"]), ["no node running"]);
    // Data dirs and logs stay for the next start.
    for n in NODES {
        assert!(Path::new(&cluster.data_dir(n))
            .join("meta.properties")
            .exists());
        let log = cluster.cluster_dir().join(format!("node-{n}.log"));
        let text = std::fs::read_to_string(log).expect("log");
        assert!(text.contains("rafka listening on"), "{text}");
    }
}
