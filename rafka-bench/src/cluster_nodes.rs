//! The 3-node cluster `rafka-bench cluster` measures: started, killed,
//! restarted and stopped through scripts/cluster.sh (the one way to run a
//! local cluster, as tests/cluster.rs does), on a temp dir and a free base
//! port of its own.
//!
//! Every node is stopped at the end, on an error (drop) and on SIGINT /
//! SIGTERM (a handler thread): `cluster.sh stop`, then SIGKILL to any node
//! still up, each by the pid in its pid file and only while that process
//! has the node's data dir on its command line (a reused pid is left
//! alone).

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cluster::ClusterError;

/// The script's node ids.
pub const NODES: [u16; 3] = [1, 2, 3];
/// A process killed by SIGKILL is gone well within this.
const DEATH_DEADLINE: Duration = Duration::from_secs(10);
/// How long `cluster.sh stop` may wait for the nodes at the end.
const TEARDOWN_STOP_SECS: u64 = 15;
/// The script's ports: client base+N, controller base+100+N, metrics
/// base+200+N.
const PORT_SPAN: u16 = 210;

/// What running the script needs; shared with the signal thread.
#[derive(Debug)]
struct Files {
    script: PathBuf,
    rafka_bin: PathBuf,
    /// CLUSTER_DIR, canonical (the script compares it with command lines).
    cluster_dir: PathBuf,
    /// The temp dir holding `cluster_dir`, removed at the end unless
    /// `keep_dir`.
    temp: PathBuf,
    keep_dir: bool,
    base_port: u16,
    cores: u32,
    config: Option<PathBuf>,
}

/// A running 3-node cluster; stopped when dropped.
#[derive(Debug)]
pub struct Cluster {
    files: Arc<Files>,
}

/// Where and how to start the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSetup {
    pub script: PathBuf,
    pub rafka_bin: PathBuf,
    pub cores: u32,
    /// A server.properties every node reads (CLUSTER_CONFIG).
    pub config: Option<PathBuf>,
    /// Leave the data dirs and node logs in place at the end.
    pub keep_dir: bool,
}

impl Cluster {
    /// Starts nodes 1-3 on a fresh temp dir and waits for their ready
    /// lines (the script's `start --fresh`).
    pub fn start(setup: &ClusterSetup) -> Result<Cluster, ClusterError> {
        for path in [&setup.script, &setup.rafka_bin] {
            if !path.is_file() {
                return Err(ClusterError::Missing(path.clone()));
            }
        }
        let temp = tempfile::Builder::new()
            .prefix("rafka-bench-cluster")
            .tempdir()
            .map_err(ClusterError::TempDir)?
            .keep();
        let temp = std::fs::canonicalize(&temp).map_err(ClusterError::TempDir)?;
        let files = Arc::new(Files {
            script: setup.script.clone(),
            rafka_bin: setup.rafka_bin.clone(),
            cluster_dir: temp.join("cluster"),
            temp,
            keep_dir: setup.keep_dir,
            base_port: free_base_port()?,
            cores: setup.cores,
            config: setup.config.clone(),
        });
        let cluster = Cluster { files };
        stop_on_signals(Arc::clone(&cluster.files))?;
        cluster.run(&["start", "--fresh"])?;
        Ok(cluster)
    }

    /// Node `node`'s client listener.
    pub fn addr(&self, node: u16) -> String {
        format!("127.0.0.1:{}", self.files.base_port + node)
    }

    /// Node `node`'s /metrics listener.
    pub fn metrics_addr(&self, node: u16) -> String {
        format!("127.0.0.1:{}", self.files.base_port + 200 + node)
    }

    pub fn cluster_dir(&self) -> &Path {
        &self.files.cluster_dir
    }

    /// `cluster.sh start N`: node N alone on its data dir, until ready.
    pub fn restart(&self, node: u16) -> Result<(), ClusterError> {
        self.run(&["start", &node.to_string()]).map(drop)
    }

    /// Starts `cluster.sh kill N` (SIGKILL, then the script waits for the
    /// process to go and cleans up after it).
    pub fn kill(&self, node: u16) -> Result<Kill, ClusterError> {
        let pid = self
            .files
            .live_pid(node)
            .ok_or(ClusterError::NotRunning(node))?;
        let args = vec!["kill".to_owned(), node.to_string()];
        let child = self.files.command(&args).spawn();
        let child = child.map_err(|source| ClusterError::Spawn {
            path: self.files.script.clone(),
            source,
        })?;
        Ok(Kill {
            node,
            pid,
            args,
            child,
            script: self.files.script.clone(),
        })
    }

    fn run(&self, args: &[&str]) -> Result<Vec<String>, ClusterError> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let output = self
            .files
            .command(&args)
            .output()
            .map_err(|source| ClusterError::Spawn {
                path: self.files.script.clone(),
                source,
            })?;
        check(&args, output)
    }
}

/// A `cluster.sh kill N` under way.
#[derive(Debug)]
pub struct Kill {
    node: u16,
    pid: i32,
    args: Vec<String>,
    child: Child,
    script: PathBuf,
}

impl Kill {
    /// The moment the node's process was seen dead, polled every 200 µs:
    /// the start of a failover (the script's own waiting is not part of
    /// it).
    pub fn await_death(&self) -> Result<Instant, ClusterError> {
        let deadline = Instant::now() + DEATH_DEADLINE;
        loop {
            // Gone, or a zombie (an empty command line).
            let cmdline = std::fs::read(format!("/proc/{}/cmdline", self.pid));
            if !cmdline.is_ok_and(|c| !c.is_empty()) {
                return Ok(Instant::now());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Deadline {
                    what: format!("node {} (pid {}) to die after SIGKILL", self.node, self.pid),
                    secs: DEATH_DEADLINE.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Waits for the script; its failure is an error.
    pub fn finish(self) -> Result<(), ClusterError> {
        let output = self
            .child
            .wait_with_output()
            .map_err(|source| ClusterError::Spawn {
                path: self.script,
                source,
            })?;
        check(&self.args, output).map(drop)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.files.teardown();
    }
}

impl Files {
    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(&self.script)
            .args(args)
            .env("RAFKA_BIN", &self.rafka_bin)
            .env("CLUSTER_DIR", &self.cluster_dir)
            .env("CLUSTER_BASE_PORT", self.base_port.to_string())
            .env("CLUSTER_CORES", self.cores.to_string())
            .env_remove("CLUSTER_NO_QUORUM")
            .env_remove("CLUSTER_BUILD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &self.config {
            Some(config) => command.env("CLUSTER_CONFIG", config),
            None => command.env_remove("CLUSTER_CONFIG"),
        };
        command
    }

    fn data_dir(&self, node: u16) -> PathBuf {
        self.cluster_dir.join(format!("node-{node}"))
    }

    /// Node N's pid if that process runs with N's data dir on its command
    /// line (the script's own rule).
    fn live_pid(&self, node: u16) -> Option<i32> {
        let file = self.cluster_dir.join(format!("node-{node}.pid"));
        let pid: i32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
        let data_dir = OsString::from(self.data_dir(node));
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == data_dir.as_encoded_bytes())
            .then_some(pid)
    }

    /// Stops every node, then removes the temp dir. Safe to call twice.
    fn teardown(&self) {
        if self.cluster_dir.exists() {
            let stop = ["stop".to_owned()];
            let mut command = self.command(&stop);
            // A node still starting (waiting for its quorum) may sit out a
            // SIGTERM: SIGKILL follows sooner than the script's 60 s.
            command.env("CLUSTER_STOP_TIMEOUT", TEARDOWN_STOP_SECS.to_string());
            match command.output() {
                Ok(output) if output.status.success() => {}
                Ok(output) => eprintln!(
                    "rafka-bench cluster: cluster.sh stop: {}: {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                Err(err) => eprintln!("rafka-bench cluster: cluster.sh stop: {err}"),
            }
            for node in NODES {
                if let Some(pid) = self.live_pid(node) {
                    eprintln!("rafka-bench cluster: node {node} (pid {pid}) still up, SIGKILL");
                    // SAFETY: kill(2) has no memory effects; the pid is
                    // this cluster's node (its data dir is on its command
                    // line).
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        if self.keep_dir {
            eprintln!(
                "rafka-bench cluster: data and logs kept in {}",
                self.cluster_dir.display()
            );
        } else {
            // Already removed by an earlier call: nothing to do.
            let _ = std::fs::remove_dir_all(&self.temp);
        }
    }
}

/// SIGINT / SIGTERM stop the cluster, then end the bench: its nodes run in
/// the background and would outlive it.
fn stop_on_signals(files: Arc<Files>) -> Result<(), ClusterError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(ClusterError::Signals)?;
    std::thread::Builder::new()
        .name("cluster-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                eprintln!("rafka-bench cluster: signal {signal}, stopping the cluster");
                files.teardown();
                std::process::exit(128 + signal);
            }
        })
        .map_err(ClusterError::Signals)?;
    Ok(())
}

/// The script's stdout lines, or its failure with both streams.
fn check(args: &[String], output: Output) -> Result<Vec<String>, ClusterError> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(ClusterError::Script {
            args: args.join(" "),
            status: output.status.to_string(),
            output: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        });
    }
    Ok(stdout.lines().map(str::to_owned).collect())
}

/// A base port whose nine ports (clients, controllers, metrics) are free
/// now; another process may still take one before the nodes bind it, which
/// the start then reports.
fn free_base_port() -> Result<u16, ClusterError> {
    let io = ClusterError::Ports;
    for _ in 0..100 {
        let probe = TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let port = probe.local_addr().map_err(io)?.port();
        drop(probe);
        let Some(base) = port.checked_sub(1) else {
            continue;
        };
        if !(1024..=u16::MAX - PORT_SPAN).contains(&base) {
            continue;
        }
        let free = NODES
            .iter()
            .flat_map(|n| [base + n, base + 100 + n, base + 200 + n])
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return Ok(base);
        }
    }
    Err(ClusterError::Ports(std::io::Error::other(
        "no free run of ports after 100 tries",
    )))
}
