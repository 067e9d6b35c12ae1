//! The process-level harness: starts a broker binary (the `rafka` binary
//! of the root crate, whose tests pass `env!("CARGO_BIN_EXE_rafka")`) as a
//! child process on an ephemeral port and a private temp dir, learns its
//! address from the startup line, and stops it gracefully (SIGTERM),
//! brutally (SIGKILL) or restarts it on the same data dir. A start may also
//! be given an address, a data dir or an open-files limit, and may be
//! expected to fail ([`BrokerProcess::try_start`]). Every wait has a
//! deadline; a failing test prints the tail of the broker's log.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long the broker may take to print its listening line (debug build,
/// possibly recovering a data dir).
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take (flush + exit).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);
/// The prefix of the one stdout line the broker prints once it serves.
const LISTENING_PREFIX: &str = "rafka listening on ";
/// The prefix of the line after it: `rafka metrics on http://ADDR/metrics`.
const METRICS_PREFIX: &str = "rafka metrics on http://";
/// How much of the broker's stderr log a failing test prints.
const LOG_TAIL_BYTES: u64 = 6 * 1024;

/// How to start a broker: the binary, core count, `server.properties`
/// entries, and optionally its address, data dir and open-files limit.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    pub binary: PathBuf,
    pub cores: u32,
    /// Kafka-style `key=value` entries written to a `server.properties` file
    /// passed with `--config`; none means no file.
    pub properties: Vec<(String, String)>,
    /// The first start's `--listen`; None is 127.0.0.1 port 0.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`; None is `data` in the process's own temp dir.
    pub data_dir: Option<PathBuf>,
    /// RLIMIT_NOFILE (soft, hard) the broker process starts with; None
    /// inherits the test's.
    pub open_files: Option<(u64, u64)>,
    /// The broker's RUST_LOG; None is the test's own, or `info`.
    pub log_filter: Option<String>,
    /// More command-line flags (`--add-scram ...`), after the harness's.
    pub args: Vec<String>,
    /// How long a start may take to print its listening line.
    pub startup_deadline: Duration,
    /// How long a graceful stop may take.
    pub shutdown_deadline: Duration,
}

impl BrokerOptions {
    /// `binary` with `cores` shards and no config file.
    pub fn new(binary: impl Into<PathBuf>, cores: u32) -> BrokerOptions {
        BrokerOptions {
            binary: binary.into(),
            cores,
            properties: Vec::new(),
            listen: None,
            data_dir: None,
            open_files: None,
            log_filter: None,
            args: Vec::new(),
            startup_deadline: STARTUP_DEADLINE,
            shutdown_deadline: SHUTDOWN_DEADLINE,
        }
    }

    /// Longer waits for a broker with a large data dir: `startup` for the
    /// listening line (recovery runs before it), `shutdown` for a clean
    /// stop (every partition flushes and closes).
    pub fn deadlines(mut self, startup: Duration, shutdown: Duration) -> BrokerOptions {
        self.startup_deadline = startup;
        self.shutdown_deadline = shutdown;
        self
    }

    /// One more command-line argument.
    pub fn arg(mut self, arg: &str) -> BrokerOptions {
        self.args.push(arg.to_owned());
        self
    }

    pub fn property(mut self, key: &str, value: &str) -> BrokerOptions {
        self.properties.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn listen(mut self, addr: SocketAddr) -> BrokerOptions {
        self.listen = Some(addr);
        self
    }

    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> BrokerOptions {
        self.data_dir = Some(dir.into());
        self
    }

    pub fn open_files(mut self, soft: u64, hard: u64) -> BrokerOptions {
        self.open_files = Some((soft, hard));
        self
    }

    pub fn log_filter(mut self, filter: &str) -> BrokerOptions {
        self.log_filter = Some(filter.to_owned());
        self
    }
}

/// A start that did not reach the listening line.
#[derive(Debug)]
pub struct StartFailure {
    /// Why the harness gave up waiting.
    pub reason: String,
    /// The exit status; None when the broker hung and had to be killed.
    pub status: Option<ExitStatus>,
    /// Its whole stderr log.
    pub log: String,
}

/// What the broker announced on its listening line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Startup {
    pub addr: SocketAddr,
    pub shards: u32,
    pub recovered_partitions: u64,
    /// Every listener's name and bound address (`listeners=`), in order.
    pub listeners: Vec<(String, SocketAddr)>,
}

/// A running broker child process with its own temp dir (data dir, config
/// file and one stderr log per start). Dropping it kills the process.
pub struct BrokerProcess {
    pub addr: SocketAddr,
    /// Where the latest start serves `/metrics` (an ephemeral port).
    pub metrics_addr: SocketAddr,
    /// The startup line of the latest start.
    pub startup: Startup,
    pub dir: TempDir,
    child: Option<Child>,
    options: BrokerOptions,
    starts: u32,
}

impl BrokerProcess {
    pub fn start(options: BrokerOptions) -> BrokerProcess {
        BrokerProcess::try_start(options)
            .unwrap_or_else(|failure| panic!("broker did not start: {failure:?}"))
    }

    /// Starts a broker that may fail to start (a taken address, a data dir
    /// in use): its exit status and log when it does.
    pub fn try_start(options: BrokerOptions) -> Result<BrokerProcess, StartFailure> {
        let dir = tempfile::Builder::new()
            .prefix("rafka-e2e-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = data_dir_of(dir.path(), &options);
        fs::create_dir_all(&data_dir).expect("create data dir");
        let listen = options.listen.unwrap_or_else(ephemeral);
        let (child, startup, metrics_addr) = launch(dir.path(), &options, 0, listen)?;
        Ok(BrokerProcess {
            addr: startup.addr,
            metrics_addr,
            startup,
            dir,
            child: Some(child),
            options,
            starts: 1,
        })
    }

    /// The bound address of the listener named `name` (`SSL`, ...).
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        let listeners = &self.startup.listeners;
        listeners.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// `host:port` for a client's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's `--data-dir` (Kafka's `log.dirs`).
    pub fn data_dir(&self) -> PathBuf {
        data_dir_of(self.dir.path(), &self.options)
    }

    /// The directory of one partition, `<data dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{partition}"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then waits for the exit and asserts it is a clean exit 0.
    pub fn stop(&mut self) {
        let child = self.child.take().expect("stop: broker is not running");
        signal(child.id(), libc::SIGTERM);
        let deadline = self.options.shutdown_deadline;
        let status = wait_exit(child, deadline);
        match status {
            Some(status) => assert!(
                status.success(),
                "broker exited with {status} after SIGTERM; log:\n{}",
                self.log_tail()
            ),
            None => panic!(
                "broker did not exit within {deadline:?} of SIGTERM; log:\n{}",
                self.log_tail()
            ),
        }
    }

    /// SIGKILL: no flush, no shutdown path, as a power cut of the process.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("kill9: broker is not running");
        child.kill().expect("SIGKILL the broker");
        let status = child.wait().expect("reap the killed broker");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "broker was not killed by SIGKILL: {status}"
        );
    }

    /// Stops the broker if it runs (SIGTERM) and starts it again on the same
    /// data dir with the same options, on a new ephemeral port.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let (child, startup, metrics_addr) =
            launch(self.dir.path(), &self.options, self.starts, ephemeral())
                .unwrap_or_else(|failure| panic!("broker did not restart: {failure:?}"));
        self.starts += 1;
        self.addr = startup.addr;
        self.metrics_addr = metrics_addr;
        self.startup = startup;
        self.child = Some(child);
    }

    /// Like [`BrokerProcess::restart`] but on the same port, so that clients that
    /// outlive the restart reconnect to it.
    pub fn restart_on_same_port(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let (child, startup, metrics_addr) =
            launch(self.dir.path(), &self.options, self.starts, self.addr)
                .unwrap_or_else(|failure| panic!("broker did not restart: {failure:?}"));
        self.starts += 1;
        assert_eq!(startup.addr, self.addr, "restarted on the same address");
        self.metrics_addr = metrics_addr;
        self.startup = startup;
        self.child = Some(child);
    }

    /// Like [`BrokerProcess::restart`] with other extra flags.
    pub fn restart_with_args(&mut self, args: &[&str]) {
        if self.child.is_some() {
            self.stop();
        }
        self.options.args = args.iter().map(|a| a.to_string()).collect();
        self.restart();
    }

    /// Like [`BrokerProcess::restart`] with another shard count: partitions must be
    /// placed again.
    pub fn restart_with_cores(&mut self, cores: u32) {
        if self.child.is_some() {
            self.stop();
        }
        self.options.cores = cores;
        self.restart();
    }

    /// The end of the latest start's stderr log, for failure messages.
    pub fn log_tail(&self) -> String {
        let latest = self.starts.saturating_sub(1);
        read_tail(&log_path(self.dir.path(), latest), LOG_TAIL_BYTES)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Best effort: the process may already be gone.
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("---- rafka broker log (tail) ----\n{}", self.log_tail());
        }
    }
}

fn data_dir_of(dir: &Path, options: &BrokerOptions) -> PathBuf {
    options.data_dir.clone().unwrap_or_else(|| dir.join("data"))
}

fn log_path(dir: &Path, start: u32) -> PathBuf {
    dir.join(format!("broker-{start}.log"))
}

fn write_properties(dir: &Path, options: &BrokerOptions) -> Option<PathBuf> {
    if options.properties.is_empty() {
        return None;
    }
    let path = dir.join("server.properties");
    let text: String = options
        .properties
        .iter()
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect();
    fs::write(&path, text).expect("write server.properties");
    Some(path)
}

/// 127.0.0.1 port 0: the kernel picks a free port.
fn ephemeral() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Spawns the binary on `listen` and waits (bounded) for its listening line
/// and then its metrics line.
fn launch(
    dir: &Path,
    options: &BrokerOptions,
    start: u32,
    listen: SocketAddr,
) -> Result<(Child, Startup, SocketAddr), StartFailure> {
    let log = File::create(log_path(dir, start)).expect("create broker log");
    let mut command = Command::new(&options.binary);
    // A config that names its own listeners keeps them.
    if !options.properties.iter().any(|(key, _)| key == "listeners") {
        command.arg("--listen").arg(listen.to_string());
    }
    command
        .arg("--data-dir")
        .arg(data_dir_of(dir, options))
        .arg("--cores")
        .arg(options.cores.to_string())
        // Tests share the machine's cores with each other: no pinning.
        .arg("--pin")
        .arg("false")
        // Tests run side by side: never the fixed default metrics port.
        .arg("--metrics-listen")
        .arg("127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log));
    if let Some(path) = write_properties(dir, options) {
        command.arg("--config").arg(path);
    }
    command.args(&options.args);
    if let Some(filter) = &options.log_filter {
        command.env("RUST_LOG", filter);
    } else if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "info");
    }
    if let Some((soft, hard)) = options.open_files {
        set_open_files_limit(&mut command, soft, hard);
    }
    let mut child = command.spawn().expect("spawn the rafka binary");
    let stdout = child.stdout.take().expect("child stdout is piped");
    let lines = forward_lines(stdout);
    let deadline = options.startup_deadline;
    let started = wait_for_listening(&lines, deadline)
        .and_then(|startup| Ok((startup, wait_for_metrics(&lines, deadline)?)));
    match started {
        Ok((startup, metrics_addr)) => {
            assert_eq!(startup.shards, options.cores, "shards on the startup line");
            Ok((child, startup, metrics_addr))
        }
        Err(reason) => {
            // A closed stdout means the broker is exiting; one that hangs
            // instead is killed at the deadline (status None).
            let status = wait_exit(child, options.shutdown_deadline);
            let log = fs::read_to_string(log_path(dir, start)).unwrap_or_default();
            Err(StartFailure {
                reason,
                status,
                log,
            })
        }
    }
}

/// Sets RLIMIT_NOFILE in the child between fork and exec.
fn set_open_files_limit(command: &mut Command, soft: u64, hard: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    let set = move || {
        // SAFETY: setrlimit is async-signal-safe and reads one rlimit from
        // a value captured by copy; nothing else runs in the forked child.
        match unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    };
    // SAFETY: the closure only calls setrlimit (async-signal-safe) and
    // allocates nothing before exec.
    unsafe { command.pre_exec(set) };
}

/// RLIMIT_NOFILE (soft, hard) of process `pid` ("self" for the caller) as
/// `/proc/<pid>/limits` shows it; `u64::MAX` is "unlimited".
pub fn open_files_limit(pid: &str) -> (u64, u64) {
    let path = format!("/proc/{pid}/limits");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .unwrap_or_else(|| panic!("no Max open files in {path}:\n{text}"));
    let value = |word: Option<&str>| match word {
        Some("unlimited") => u64::MAX,
        Some(number) => number
            .parse()
            .unwrap_or_else(|_| panic!("bad limit in {line:?}")),
        None => panic!("short Max open files line {line:?}"),
    };
    let mut words = line.split_whitespace();
    (value(words.next()), value(words.next()))
}

/// Reads the child's stdout on a thread for as long as it is open, so the
/// pipe never fills up, and hands every line over.
fn forward_lines(stdout: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                // Nobody listens any more: keep draining the pipe.
                continue;
            }
        }
    });
    receiver
}

fn wait_for_listening(lines: &mpsc::Receiver<String>, within: Duration) -> Result<Startup, String> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!("no listening line within {within:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err("stdout closed before the listening line".to_owned())
            }
        };
        if line.starts_with(LISTENING_PREFIX) {
            return parse_listening(&line);
        }
    }
}

/// The address of the metrics line, which follows the listening line.
fn wait_for_metrics(
    lines: &mpsc::Receiver<String>,
    within: Duration,
) -> Result<SocketAddr, String> {
    let line = lines
        .recv_timeout(within)
        .map_err(|_| format!("no metrics line within {within:?}"))?;
    line.strip_prefix(METRICS_PREFIX)
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|addr| addr.parse().ok())
        .ok_or_else(|| format!("not a metrics line: {line:?}"))
}

/// SIGTERM to a child process by its pid, then its exit status within
/// `deadline` (`None`: it had to be killed).
pub fn stop_child(child: Child, deadline: Duration) -> Option<ExitStatus> {
    signal(child.id(), libc::SIGTERM);
    wait_exit(child, deadline)
}

/// Parses `rafka listening on ADDR shards=N data_dir=DIR recovered_partitions=K
/// listeners=NAME://ADDR,...` (`listeners=` may be absent).
pub fn parse_listening(line: &str) -> Result<Startup, String> {
    let rest = line
        .strip_prefix(LISTENING_PREFIX)
        .ok_or_else(|| format!("not a listening line: {line:?}"))?;
    let mut words = rest.split_whitespace();
    let addr: SocketAddr = words
        .next()
        .and_then(|word| word.parse().ok())
        .ok_or_else(|| format!("no address in {line:?}"))?;
    let field = |name: &str| {
        rest.split_whitespace()
            .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| format!("no {name}= in {line:?}"))
    };
    let shards = field("shards")?
        .parse()
        .map_err(|_| format!("bad shards= in {line:?}"))?;
    let recovered_partitions = field("recovered_partitions")?
        .parse()
        .map_err(|_| format!("bad recovered_partitions= in {line:?}"))?;
    let mut listeners = Vec::new();
    if let Ok(list) = field("listeners") {
        for entry in list.split(',') {
            let parsed = entry
                .split_once("://")
                .and_then(|(name, addr)| Some((name.to_owned(), addr.parse().ok()?)));
            listeners.push(parsed.ok_or_else(|| format!("bad listeners= in {line:?}"))?);
        }
    }
    Ok(Startup {
        addr,
        shards,
        recovered_partitions,
        listeners,
    })
}

/// Sends `signal` to `pid`, which must be the caller's own unreaped child
/// (so the pid cannot have been recycled).
pub fn signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory effects; the pid is our own unreaped
    // child, so it cannot have been recycled for another process.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal}) failed");
}

/// Waits for the child on a thread so that the wait has a deadline (no
/// polling); on timeout the child is killed and `None` returned.
pub fn wait_exit(mut child: Child, deadline: Duration) -> Option<ExitStatus> {
    let pid = child.id();
    let (sender, receiver) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let status = child.wait().expect("wait for the broker");
        let _ = sender.send(status);
    });
    match receiver.recv_timeout(deadline) {
        Ok(status) => {
            waiter.join().expect("waiter thread");
            Some(status)
        }
        Err(_) => {
            signal(pid, libc::SIGKILL);
            waiter.join().expect("waiter thread");
            None
        }
    }
}

fn read_tail(path: &Path, bytes_max: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len_bytes = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let start = len_bytes.saturating_sub(bytes_max);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut tail = Vec::new();
    let _ = file.read_to_end(&mut tail);
    String::from_utf8_lossy(&tail).into_owned()
}
