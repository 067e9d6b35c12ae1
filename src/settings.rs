//! From the command line and an optional Kafka-style `server.properties` to
//! the broker's [`ServerOptions`]. Flags win over the file: they are
//! appended to its entries as the same Kafka keys (`listeners`, `log.dirs`,
//! `advertised.listeners`, `node.id`, `controller.quorum.voters`,
//! `process.roles`, `broker.rack`), so one parser validates both.
//!
//! Fail fast: [`check_properties`] finds every problem of a file (what
//! `rafka check-config` prints) and the broker refuses to start on any
//! error among them, with the same `FILE:LINE: message` lines. Errors are
//! bad values, cross-key conflicts and unknown keys (a typo such as
//! `log.retention.hour` would otherwise silently keep the default); Kafka
//! broker keys that configure parts rafka replaces (thread pools,
//! internal-topic replication, ZooKeeper) are warnings, so a Kafka
//! `server.properties` still starts a broker. The KRaft keys
//! (`process.roles`, `controller.quorum.*`) are rafka's own, checked by
//! Kafka's rules.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use clap::{ArgAction, Args};
use rafka_core::config::{parse_properties, BrokerConfig, ConfigError, ConfigWarning, Property};
use rafka_net::listener::{Endpoint, NetConfig};
use rafka_net::server::{ListenerOptions, ServerOptions};
use rafka_net::session::ListenerInfo;
use rafka_net::tls::TlsServer;
use rafka_shard::runtime::RuntimeConfig;

use crate::dir_lock::{lock_dirs, DirLocks, LockError};

/// The broker's flags: `rafka [FLAGS]` and `rafka serve [FLAGS]`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A Kafka `server.properties` file (listeners, log.dirs,
    /// num.partitions, auto.create.topics.enable, log.segment.bytes, ...).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9092]; port 0 picks one.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Address clients are told to connect to [default: the listen address].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertised_listen: Option<String>,
    /// Data directory (log.dirs) [default: ./rafka-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Shards, one executor each [default: all online CPUs].
    #[arg(long, value_name = "N")]
    pub cores: Option<usize>,
    /// Pin shard i to CPU i (only when there are no more shards than CPUs).
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set)]
    pub pin: bool,
    /// Memory each executor locks for io_uring buffers.
    #[arg(long, value_name = "BYTES", default_value_t = 2 << 20)]
    pub io_memory_bytes: usize,
    /// How long an idle shard spins before parking: lower wake-up latency
    /// for more CPU (0 parks at once).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 0)]
    pub spin_before_park_us: u64,
    /// Where to serve Prometheus metrics at /metrics (`rafka.metrics.listen`)
    /// [default: 127.0.0.1:9644]; port 0 picks one, `none` serves none.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
    /// A SCRAM credential to create at start unless the user already has
    /// one for that mechanism, in `kafka-storage format --add-scram`
    /// syntax: `'SCRAM-SHA-256=[name=admin,password=admin-secret]'`
    /// (also `iterations=`, `salt=` and `saltedpassword=`, base64).
    /// Repeatable.
    #[arg(long = "add-scram", value_name = "MECHANISM=[name=..,password=..]")]
    pub add_scram: Vec<String>,
    /// Log lines for people (`text`) or one JSON object per line for log
    /// shippers (`json`).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The cluster flags, each a `server.properties` key it overrides; shared
/// by the broker and `rafka check-config`. Values go through the config's
/// own parser, so a bad one is reported as a bad value of its key.
#[derive(Debug, Default, Args)]
pub struct ClusterArgs {
    /// This node's id (`node.id`; replaces the file's `broker.id` too)
    /// [default: 0].
    #[arg(long, value_name = "N")]
    pub node_id: Option<String>,
    /// The metadata quorum's voters (`controller.quorum.voters`), e.g.
    /// `1@127.0.0.1:9190,2@127.0.0.1:9191,3@127.0.0.1:9192`; this node's
    /// entry is where its controller listener binds [default: none, a
    /// single node].
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    pub controller_quorum_voters: Option<String>,
    /// `broker`, `controller` or `broker,controller` (`process.roles`)
    /// [default: broker,controller].
    #[arg(long, value_name = "ROLES")]
    pub process_roles: Option<String>,
    /// This broker's rack (`broker.rack`), shown to clients.
    #[arg(long, value_name = "RACK")]
    pub broker_rack: Option<String>,
    /// The cluster id written to a new data dir's meta.properties (Kafka's
    /// `kafka-storage format -t`); an existing dir with another id is
    /// refused [default: a random id on a single node; in a cluster, one
    /// derived from controller.quorum.voters, the same on every node].
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<String>,
}

impl ClusterArgs {
    /// Appends the flags given to `properties` as their keys (flags win:
    /// the last entry of a key is the one read). `--node-id` also takes
    /// out the file's `broker.id`, which would otherwise conflict.
    pub fn apply(&self, properties: &mut Vec<Property>) {
        let mut set = |key: &str, value: &str| {
            properties.push(Property {
                key: key.to_string(),
                value: value.to_string(),
                line: 0,
            });
        };
        if let Some(voters) = &self.controller_quorum_voters {
            set("controller.quorum.voters", voters);
        }
        if let Some(roles) = &self.process_roles {
            set("process.roles", roles);
        }
        if let Some(rack) = &self.broker_rack {
            set("broker.rack", rack);
        }
        if let Some(node_id) = &self.node_id {
            set("node.id", node_id);
            properties.retain(|p| p.key != "broker.id");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The data dir's format version: what this binary writes and the newest it
/// reads. It is `rafka.format.version` in `<data dir>/meta.properties`, next
/// to Kafka's own keys, which keep their Kafka meaning (`version=1` there is
/// Kafka's meta.properties version, not this one).
///
/// - 1: Kafka's layout (`<topic>-<partition>/` with `.log`, `.index`,
///   `.timeindex`, producer `.snapshot`s), the offset checkpoints,
///   `.kafka_cleanshutdown`, and the metadata log in `__rafka_metadata/`
///   (or `metadata.log.dir`). A dir without the key was written by rafka
///   before the key existed and is format 1: it is opened as is and the key
///   is added on start.
///
/// Bump it when a change to any of those files would make the previous
/// release misread a dir this one wrote (a new segment, index, snapshot,
/// checkpoint or metadata record format it cannot parse or would parse
/// differently). A new file the previous release ignores needs no bump.
/// Every version up to this one must stay readable: opening an older dir
/// upgrades it in place and then writes this version.
pub const DATA_DIR_FORMAT_VERSION: u32 = 1;
/// The `meta.properties` key of [`DATA_DIR_FORMAT_VERSION`].
const FORMAT_VERSION_KEY: &str = "rafka.format.version";

/// The `server.properties` key of `--metrics-listen`.
pub const METRICS_LISTEN_KEY: &str = "rafka.metrics.listen";
const METRICS_LISTEN_DEFAULT: &str = "127.0.0.1:9644";
/// The `--metrics-listen` value that turns the endpoint off.
const METRICS_LISTEN_NONE: &str = "none";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Properties(#[from] rafka_core::config::PropertiesError),
    #[error("no listener configured")]
    NoListener,
    #[error("listener {listener}: {source}")]
    Tls {
        listener: String,
        #[source]
        source: rafka_net::tls::TlsLoadError,
    },
    #[error("cannot resolve listen address {0}")]
    Resolve(String),
    #[error("--cores must be at least 1")]
    NoCores,
    #[error(
        "a broker that finds its controllers through controller.quorum.bootstrap.servers \
         needs the cluster's id on its first start: --cluster-id ID (`rafka cluster info` \
         on any node prints it; Kafka's `kafka-storage format -t`)"
    )]
    ClusterIdRequired,
    #[error("meta.properties in {}: {message}", dir.display())]
    Meta { dir: PathBuf, message: String },
    #[error(
        "data dir {} has format version {found} but this rafka supports up to {supported}: \
         it was written by a newer rafka; start that release (or a later one) on it. \
         The dir was not modified.",
        dir.display()
    )]
    NewerFormat {
        dir: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("--add-scram: {0}")]
    AddScram(#[from] rafka_core::sasl::AddScramError),
    /// The configuration's errors, one `FILE:LINE: message` each.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

/// How much a [`ConfigProblem`] matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The broker refuses to start; `rafka check-config` exits 1.
    Error,
    /// Reported, then ignored.
    Warning,
}

/// One thing wrong with a configuration, and the line it is on (0: not
/// from the file, e.g. a flag, or a rule across keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub line: u32,
    pub severity: Severity,
    pub message: String,
}

impl ConfigProblem {
    fn error(line: u32, message: String) -> ConfigProblem {
        ConfigProblem {
            line,
            severity: Severity::Error,
            message,
        }
    }

    fn of_warning(warning: ConfigWarning, properties: &[Property]) -> ConfigProblem {
        let (line, severity, message) = match warning {
            ConfigWarning::UnknownKey { key, line } => (
                line,
                Severity::Error,
                format!("unknown key {key}: not a rafka or Kafka broker setting"),
            ),
            ConfigWarning::NotApplicable { key, line } => (
                line,
                Severity::Warning,
                format!("{key} does not apply to rafka, ignored"),
            ),
            ConfigWarning::ControllerListenerSkipped { name } => (
                line_of(properties, "controller.listener.names"),
                Severity::Warning,
                format!("listener {name} is a controller listener, not opened"),
            ),
        };
        ConfigProblem {
            line,
            severity,
            message,
        }
    }

    /// `FILE:LINE: message` (`FILE:LINE: warning: message`), without
    /// `LINE` when there is none, the message alone without a file.
    pub fn render(&self, file: Option<&Path>) -> String {
        let message = match self.severity {
            Severity::Error => self.message.clone(),
            Severity::Warning => format!("warning: {}", self.message),
        };
        match (file, self.line) {
            (Some(file), 0) => format!("{}: {message}", file.display()),
            (Some(file), line) => format!("{}:{line}: {message}", file.display()),
            (None, _) => message,
        }
    }
}

/// The line of the entry of `key` that wins (the last), 0 if none.
fn line_of(properties: &[Property], key: &str) -> u32 {
    properties
        .iter()
        .rev()
        .find(|p| p.key == key)
        .map_or(0, |p| p.line)
}

/// Every problem of `properties`, in line order, and the config when none
/// is an error. Parsing stops at the first bad value, so each bad key is
/// taken out and the rest parsed again (each round removes at least one
/// entry, so this ends) to report every bad value at once.
pub fn check_properties(properties: &[Property]) -> (Option<BrokerConfig>, Vec<ConfigProblem>) {
    let mut remaining = properties.to_vec();
    let mut problems = Vec::new();
    let config = loop {
        match BrokerConfig::from_properties(&remaining) {
            Ok((config, warnings)) => {
                problems.extend(
                    warnings
                        .into_iter()
                        .map(|w| ConfigProblem::of_warning(w, properties)),
                );
                break Some(config);
            }
            Err(ConfigError::InvalidValue(invalid)) => {
                let line = line_of(&remaining, &invalid.key);
                let before = remaining.len();
                remaining.retain(|p| p.key != invalid.key);
                problems.push(ConfigProblem::error(line, invalid.to_string()));
                if remaining.len() == before {
                    break None;
                }
            }
            Err(error) => {
                let line = match &error {
                    ConfigError::Conflict { key, .. } => line_of(&remaining, key),
                    ConfigError::Quorum(quorum) => line_of(&remaining, quorum.key()),
                    _ => 0,
                };
                problems.push(ConfigProblem::error(line, error.to_string()));
                break None;
            }
        }
    };
    problems.sort_by_key(|p| p.line);
    let failed = problems.iter().any(|p| p.severity == Severity::Error);
    (config.filter(|_| !failed), problems)
}

/// `rafka check-config FILE [CLUSTER FLAGS]`: every problem of the file
/// with the flags applied, as the broker would read them (its properties,
/// `rafka.metrics.listen`, the listeners' addresses and TLS key stores),
/// rendered; and whether any is an error.
pub fn check_file(path: &Path, flags: &ClusterArgs) -> (Vec<String>, bool) {
    let render = |problems: &[ConfigProblem]| -> Vec<String> {
        problems.iter().map(|p| p.render(Some(path))).collect()
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => return (vec![format!("{}: {error}", path.display())], true),
    };
    let mut properties = match parse_properties(&text) {
        Ok(properties) => properties,
        Err(error) => return (vec![format!("{}: {error}", path.display())], true),
    };
    flags.apply(&mut properties);
    let metrics_line = line_of(&properties, METRICS_LISTEN_KEY);
    let mut problems = Vec::new();
    if let Err(error) = metrics_listen(None, &mut properties) {
        problems.push(ConfigProblem::error(metrics_line, error.to_string()));
    }
    let (config, more) = check_properties(&properties);
    problems.extend(more);
    if let Some(config) = config {
        if let Err(error) = listener_options(&config) {
            problems.push(ConfigProblem::error(0, error.to_string()));
        }
    }
    problems.sort_by_key(|p| p.line);
    let failed = problems.iter().any(|p| p.severity == Severity::Error);
    (render(&problems), failed)
}

/// Builds everything the server needs: locks the data dirs (the returned
/// locks must live as long as the broker), then creates the data dir's
/// `meta.properties` (cluster id, format version) on first start. A data
/// dir of a newer format than [`DATA_DIR_FORMAT_VERSION`] is refused before
/// anything in it is touched, the lock file included.
pub fn server_options(cli: &ServeArgs) -> Result<(ServerOptions, DirLocks), SettingsError> {
    // Before any dir is touched: a typo here is a usage error.
    let scram_seeds = scram_seeds(&cli.add_scram)?;
    let mut properties = read_properties(cli)?;
    let metrics_listen = metrics_listen(cli.metrics_listen.as_deref(), &mut properties)?;
    let config = broker_config(&properties, cli.config.as_deref())?;
    let listeners = listener_options(&config)?;
    let data_dir = rafka_shard::shard::data_dir(&config);
    // Read-only, before the lock creates anything; checked again under it.
    let existing = read_meta(&data_dir)?;
    let locks = lock_dirs(&locked_dirs(&config))?;
    let wanted = cli
        .cluster
        .cluster_id
        .clone()
        .or_else(|| voters_cluster_id(&config));
    // Without voters there is nothing to derive the id from, and a made-up
    // one would never register.
    if wanted.is_none() && existing.is_none() && config.quorum_configured() {
        return Err(SettingsError::ClusterIdRequired);
    }
    let cluster_id = ensure_meta(&data_dir, config.node_id, wanted.as_deref())?;
    let shard_count = cli
        .cores
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if shard_count == 0 {
        return Err(SettingsError::NoCores);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = RuntimeConfig {
        shard_count,
        pin_to_cores: cli.pin && shard_count <= cpus,
        io_memory_bytes: cli.io_memory_bytes,
        mesh_queue_len: 1024,
        name: "rafka".to_string(),
        spin_before_park: std::time::Duration::from_micros(cli.spin_before_park_us),
    };
    let mut config = config;
    config.cluster_id = Some(cluster_id.clone());
    config.data_dir_new = existing.is_none();
    let options = ServerOptions {
        config: Arc::new(config),
        runtime,
        listeners,
        cluster_id,
        net: NetConfig::default(),
        metrics_listen,
        scram_seeds,
    };
    Ok((options, locks))
}

/// `--add-scram` arguments -> the credentials to seed (salted here, so
/// the password goes no further than this process's argument list).
fn scram_seeds(
    arguments: &[String],
) -> Result<Vec<(String, rafka_core::sasl::ScramCredential)>, SettingsError> {
    arguments
        .iter()
        .map(|argument| {
            let parsed = rafka_core::sasl::parse_add_scram(argument)?;
            let credential = parsed.credential()?;
            Ok((parsed.name, credential))
        })
        .collect()
}

/// Every listener: its bind address, its advertised endpoint (the
/// advertised listener of the same name, else its own host) and, for SSL
/// and SASL_SSL, its TLS server, built here so that a bad key store stops
/// the start before any data dir is touched.
fn listener_options(config: &BrokerConfig) -> Result<Vec<ListenerOptions>, SettingsError> {
    let mut out = Vec::new();
    for listener in &config.listeners {
        let listen = resolve(&listener.host, listener.port)?;
        let advertised = config
            .advertised_listeners
            .iter()
            .find(|a| a.name == listener.name)
            .unwrap_or(listener);
        let tls = match config.listener_tls.get(&listener.name) {
            Some(tls) => Some(TlsServer::load(tls).map_err(|source| SettingsError::Tls {
                listener: listener.name.clone(),
                source,
            })?),
            None => None,
        };
        out.push(ListenerOptions {
            endpoint: Endpoint {
                info: ListenerInfo::of(config, listener),
                tls,
            },
            listen,
            advertised_host: advertised_host(&advertised.host, listen),
            // Without an explicit advertised port, clients get the port
            // actually bound (which differs only for port 0).
            advertised_port: Some(advertised.port).filter(|&port| port != 0),
        });
    }
    if out.is_empty() {
        return Err(SettingsError::NoListener);
    }
    Ok(out)
}

/// The directories the broker writes, each locked: the data dir (the first
/// of `log.dirs`, the only one rafka uses) and `metadata.log.dir` when it
/// is another one.
fn locked_dirs(config: &BrokerConfig) -> Vec<PathBuf> {
    let data_dir = rafka_shard::shard::data_dir(config);
    let metadata = config
        .metadata_log_dir
        .clone()
        .filter(|dir| *dir != data_dir);
    std::iter::once(data_dir).chain(metadata).collect()
}

/// The metrics address: the flag, else the last `rafka.metrics.listen`
/// entry, else the default. Takes the entries out, so the broker config
/// does not count it as a key it does not know.
fn metrics_listen(
    flag: Option<&str>,
    properties: &mut Vec<Property>,
) -> Result<Option<SocketAddr>, SettingsError> {
    let from_file = properties
        .iter()
        .rev()
        .find(|p| p.key == METRICS_LISTEN_KEY)
        .map(|p| p.value.trim().to_string());
    properties.retain(|p| p.key != METRICS_LISTEN_KEY);
    let value = flag
        .map(str::to_string)
        .or(from_file)
        .unwrap_or_else(|| METRICS_LISTEN_DEFAULT.to_string());
    if value.eq_ignore_ascii_case(METRICS_LISTEN_NONE) {
        return Ok(None);
    }
    value
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(Some)
        .ok_or(SettingsError::Resolve(value))
}

fn read_properties(cli: &ServeArgs) -> Result<Vec<Property>, SettingsError> {
    let mut properties: Vec<Property> = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                path: path.clone(),
                source,
            })?;
            parse_properties(&text)?
        }
        None => Vec::new(),
    };
    let mut set = |key: &str, value: String| {
        properties.push(Property {
            key: key.to_string(),
            value,
            line: 0,
        });
    };
    if let Some(listen) = &cli.listen {
        set("listeners", format!("PLAINTEXT://{listen}"));
    }
    if let Some(advertised) = &cli.advertised_listen {
        set("advertised.listeners", format!("PLAINTEXT://{advertised}"));
    }
    if let Some(dir) = &cli.data_dir {
        set("log.dirs", dir.display().to_string());
    }
    cli.cluster.apply(&mut properties);
    Ok(properties)
}

/// The config of `properties` (read from `file`), or every error in it.
/// Warnings are logged.
fn broker_config(
    properties: &[Property],
    file: Option<&Path>,
) -> Result<BrokerConfig, SettingsError> {
    let (config, problems) = check_properties(properties);
    let mut errors = Vec::new();
    for problem in &problems {
        match problem.severity {
            Severity::Warning => tracing::warn!("{}", problem.render(file)),
            Severity::Error => errors.push(problem.render(file)),
        }
    }
    let mut config = match config {
        Some(config) if errors.is_empty() => config,
        _ => return Err(SettingsError::Invalid(errors)),
    };
    // Absolute from here on: io_uring's directory opens fail on relative
    // paths (EBADF), and the ready line should name the real place.
    let absolute = |dir: &PathBuf| {
        std::path::absolute(dir).map_err(|source| SettingsError::Read {
            path: dir.clone(),
            source,
        })
    };
    config.log_dirs = config
        .log_dirs
        .iter()
        .map(absolute)
        .collect::<Result<_, _>>()?;
    if let Some(dir) = &config.metadata_log_dir {
        config.metadata_log_dir = Some(absolute(dir)?);
    }
    Ok(config)
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, SettingsError> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| SettingsError::Resolve(format!("{host}:{port}")))
}

/// A wildcard listen address is no address to give clients: advertise the
/// machine's name instead, as Kafka does.
fn advertised_host(host: &str, listen: SocketAddr) -> String {
    if !host.is_empty() && !listen.ip().is_unspecified() {
        return host.to_string();
    }
    if !host.is_empty() && host != "0.0.0.0" && host != "::" {
        return host.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// What `<data dir>/meta.properties` says, once its format version is
/// known to be one this binary reads.
struct Meta {
    /// The file as it is, kept when the format version is added to it.
    text: String,
    properties: Vec<Property>,
    /// `rafka.format.version`; None in a dir written before the key existed.
    format_version: Option<u32>,
}

impl Meta {
    fn get(&self, key: &str) -> Option<&str> {
        let found = self.properties.iter().rev().find(|p| p.key == key);
        found.map(|p| p.value.trim())
    }
}

/// Reads `<data dir>/meta.properties` without touching the dir: None when
/// there is none yet (a new data dir), an error when it cannot be read or
/// its format is newer than [`DATA_DIR_FORMAT_VERSION`].
fn read_meta(dir: &Path) -> Result<Option<Meta>, SettingsError> {
    let meta_error = |message: String| SettingsError::Meta {
        dir: dir.to_path_buf(),
        message,
    };
    let text = match std::fs::read_to_string(dir.join("meta.properties")) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(meta_error(error.to_string())),
    };
    let properties = parse_properties(&text).map_err(|e| meta_error(e.to_string()))?;
    let mut meta = Meta {
        text,
        properties,
        format_version: None,
    };
    if let Some(value) = meta.get(FORMAT_VERSION_KEY) {
        let found = match value.parse::<u32>() {
            Ok(found) if found >= 1 => found,
            _ => {
                return Err(meta_error(format!(
                    "{FORMAT_VERSION_KEY}={value} is not a format version (1, 2, ...)"
                )))
            }
        };
        if found > DATA_DIR_FORMAT_VERSION {
            return Err(SettingsError::NewerFormat {
                dir: dir.to_path_buf(),
                found,
                supported: DATA_DIR_FORMAT_VERSION,
            });
        }
        meta.format_version = Some(found);
    }
    Ok(Some(meta))
}

/// In a cluster without `--cluster-id`: an id every node derives alike
/// from `controller.quorum.voters` (SHA-256 of the voters in id order,
/// 16 bytes, base64url as Kafka prints ids), so nodes started from the
/// same voters report one cluster id to clients.
fn voters_cluster_id(config: &BrokerConfig) -> Option<String> {
    use sha2::Digest;
    let mut voters = config.quorum.voters.clone();
    if voters.is_empty() {
        return None;
    }
    voters.sort_by_key(|v| v.id);
    let text: Vec<String> = voters.iter().map(ToString::to_string).collect();
    let digest = sha2::Sha256::digest(text.join(",").as_bytes());
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// Reads or creates `<data dir>/meta.properties` (Kafka's format) and
/// returns the cluster id. A dir of an older format (so far: format 1
/// without the key) gets the current [`DATA_DIR_FORMAT_VERSION`] written
/// into its file, every other line kept.
fn ensure_meta(dir: &Path, node_id: i32, wanted: Option<&str>) -> Result<String, SettingsError> {
    let meta_error = |message: String| SettingsError::Meta {
        dir: dir.to_path_buf(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| meta_error(e.to_string()))?;
    if let Some(meta) = read_meta(dir)? {
        if let Some(found) = meta.get("node.id") {
            if found != node_id.to_string() {
                return Err(meta_error(format!(
                    "node.id {found} does not match the configured {node_id}"
                )));
            }
        }
        let cluster_id = meta
            .get("cluster.id")
            .map(str::to_string)
            .ok_or_else(|| meta_error("no cluster.id".to_string()))?;
        if let Some(wanted) = wanted {
            if wanted != cluster_id {
                return Err(meta_error(format!(
                    "cluster.id {cluster_id} does not match the expected {wanted} (a data dir \
                     of another cluster?)"
                )));
            }
        }
        if meta.format_version != Some(DATA_DIR_FORMAT_VERSION) {
            write_meta(dir, &with_format_version(&meta.text))?;
            let found = meta
                .format_version
                .map_or_else(|| "none (format 1)".to_string(), |v| v.to_string());
            tracing::info!(
                dir = %dir.display(),
                found,
                written = DATA_DIR_FORMAT_VERSION,
                "data dir format version upgraded in meta.properties"
            );
        }
        return Ok(cluster_id);
    }
    let cluster_id = match wanted {
        Some(wanted) => wanted.to_string(),
        None => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(rafka_core::metadata::new_topic_id().as_bytes()),
    };
    let text = format!(
        "#rafka\nversion=1\ncluster.id={cluster_id}\nnode.id={node_id}\n\
         {FORMAT_VERSION_KEY}={DATA_DIR_FORMAT_VERSION}\n"
    );
    write_meta(dir, &text)?;
    Ok(cluster_id)
}

/// `text` (a meta.properties file) with its `rafka.format.version` lines
/// replaced by one of the current version at the end.
fn with_format_version(text: &str) -> String {
    let mut out: String = text
        .lines()
        .filter(|line| {
            let key = line
                .trim_start()
                .split(['=', ':', ' ', '\t'])
                .next()
                .unwrap_or("");
            key.trim() != FORMAT_VERSION_KEY
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    out.push_str(&format!("{FORMAT_VERSION_KEY}={DATA_DIR_FORMAT_VERSION}\n"));
    out
}

/// Replaces `<dir>/meta.properties` atomically: a temp file, fsync, rename,
/// fsync of the dir.
fn write_meta(dir: &Path, text: &str) -> Result<(), SettingsError> {
    let path = dir.join("meta.properties");
    let temp = dir.join("meta.properties.tmp");
    std::fs::write(&temp, text)
        .and_then(|()| std::fs::File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, &path))
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(|e| SettingsError::Meta {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> Property {
        Property {
            key: key.to_string(),
            value: value.to_string(),
            line: 1,
        }
    }

    /// The flags as `rafka` parses them without a subcommand.
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> ServeArgs {
        use clap::Parser;
        Flags::parse_from(std::iter::once("rafka").chain(args.iter().copied())).serve
    }

    fn metrics_of(args: &[&str], file: &[(&str, &str)]) -> (Option<SocketAddr>, usize) {
        let cli = parse(args);
        let mut properties: Vec<Property> = file.iter().map(|(k, v)| entry(k, v)).collect();
        let addr = metrics_listen(cli.metrics_listen.as_deref(), &mut properties)
            .expect("metrics address");
        (addr, properties.len())
    }

    #[test]
    fn metrics_listen_flag_beats_the_file_which_beats_the_default() {
        let file = [
            (METRICS_LISTEN_KEY, "127.0.0.1:9700"),
            ("num.partitions", "3"),
        ];
        let flag = metrics_of(&["--metrics-listen", "127.0.0.1:0"], &file);
        assert_eq!(flag, (Some(SocketAddr::from(([127, 0, 0, 1], 0))), 1));
        let from_file = metrics_of(&[], &file);
        assert_eq!(from_file.0, Some(SocketAddr::from(([127, 0, 0, 1], 9700))));
        assert_eq!(from_file.1, 1, "the key is taken out of the broker config");
        let default = metrics_of(&[], &[]);
        assert_eq!(default.0, Some(SocketAddr::from(([127, 0, 0, 1], 9644))));
        assert_eq!(metrics_of(&["--metrics-listen", "none"], &file).0, None);
    }

    #[test]
    fn an_unresolvable_metrics_address_is_an_error() {
        let cli = parse(&["--metrics-listen", "not an address"]);
        let result = metrics_listen(cli.metrics_listen.as_deref(), &mut Vec::new());
        assert!(matches!(result, Err(SettingsError::Resolve(value)) if value == "not an address"));
    }

    #[test]
    fn add_scram_is_repeatable_and_salted_at_parse_time() {
        let cli = parse(&[
            "--add-scram",
            "SCRAM-SHA-256=[name=admin,password=admin-secret]",
            "--add-scram",
            "SCRAM-SHA-512=[name=ops,password=x,iterations=8192,salt=c2FsdA==]",
        ]);
        let seeds = scram_seeds(&cli.add_scram).expect("valid arguments");
        let summary: Vec<(&str, &str, u32)> = seeds
            .iter()
            .map(|(user, c)| (user.as_str(), c.mechanism().name(), c.iterations()))
            .collect();
        assert_eq!(
            summary,
            [
                ("admin", "SCRAM-SHA-256", 4096),
                ("ops", "SCRAM-SHA-512", 8192)
            ]
        );
        assert_eq!(seeds[1].1.salt(), b"salt");
        let bad = scram_seeds(&["SCRAM-SHA-256=[password=x]".to_string()]);
        assert_eq!(
            bad.map_err(|e| e.to_string()).err().as_deref(),
            Some("--add-scram: You must supply 'name' to add-scram")
        );
    }

    #[test]
    fn cluster_flags_override_the_file() {
        let cli = parse(&[
            "--node-id",
            "2",
            "--controller-quorum-voters",
            "1@127.0.0.1:9190,2@127.0.0.1:9191",
            "--process-roles",
            "broker,controller",
            "--broker-rack",
            "r1",
        ]);
        let mut properties = vec![
            entry("broker.id", "7"),
            entry("broker.rack", "r0"),
            entry("process.roles", "broker"),
        ];
        cli.cluster.apply(&mut properties);
        let (config, problems) = check_properties(&properties);
        assert_eq!(problems, []);
        let config = config.expect("valid");
        assert_eq!(config.node_id, 2);
        assert_eq!(config.rack.as_deref(), Some("r1"));
        assert_eq!(
            config.process_roles,
            rafka_core::config::ProcessRoles::COMBINED
        );
        assert_eq!(
            config.controller_address(),
            Some(("127.0.0.1".to_string(), 9191))
        );
        // Without flags the file's entries stand.
        let mut properties = vec![entry("node.id", "5"), entry("broker.rack", "r0")];
        parse(&[]).cluster.apply(&mut properties);
        let (config, _) = check_properties(&properties);
        let config = config.expect("valid");
        assert_eq!((config.node_id, config.rack.as_deref()), (5, Some("r0")));
    }

    #[test]
    fn a_bad_cluster_flag_is_an_error_of_its_key() {
        let problems_of = |args: &[&str]| {
            let mut properties = vec![entry("num.partitions", "2")];
            parse(args).cluster.apply(&mut properties);
            let (config, problems) = check_properties(&properties);
            assert!(config.is_none(), "{args:?}");
            problems
                .into_iter()
                .map(|p| (p.line, p.message))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            problems_of(&[
                "--node-id",
                "3",
                "--controller-quorum-voters",
                "1@h:9190,2@h:9191"
            ]),
            [(
                0,
                "If process.roles contains the 'controller' role, the node id 3 must be \
                 included in the set of voters controller.quorum.voters=[1, 2]"
                    .to_string()
            )]
        );
        assert_eq!(
            problems_of(&["--process-roles", "banana", "--node-id", "x"]),
            [
                (
                    0,
                    "invalid value \"x\" for node.id: expected an integer >= 0".to_string()
                ),
                (
                    0,
                    "invalid value \"banana\" for process.roles: expected a comma-separated \
                     list of broker, controller"
                        .to_string()
                ),
            ]
        );
    }

    const FORMAT_1_META: &str = "#rafka\nversion=1\ncluster.id=c1\nnode.id=0\n";

    fn data_dir_with_meta(text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("meta.properties"), text).expect("write meta");
        dir
    }

    fn meta_text(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("meta.properties")).expect("read meta")
    }

    #[test]
    fn a_new_data_dir_gets_the_current_format_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cluster_id = ensure_meta(dir.path(), 3, None).expect("meta");
        let meta = read_meta(dir.path()).expect("readable").expect("written");
        assert_eq!(meta.format_version, Some(DATA_DIR_FORMAT_VERSION));
        assert_eq!(meta.get("cluster.id"), Some(cluster_id.as_str()));
        assert_eq!(meta.get("node.id"), Some("3"));
        assert_eq!(meta.get("version"), Some("1"), "Kafka's own key");
    }

    #[test]
    fn a_data_dir_without_the_key_is_format_1_and_gets_the_key_added() {
        let dir = data_dir_with_meta(FORMAT_1_META);
        assert_eq!(ensure_meta(dir.path(), 0, None).expect("meta"), "c1");
        assert_eq!(
            meta_text(dir.path()),
            format!("{FORMAT_1_META}rafka.format.version=1\n")
        );
        assert!(!dir.path().join("meta.properties.tmp").exists());
        // A second start finds the key and rewrites nothing.
        assert_eq!(ensure_meta(dir.path(), 0, None).expect("meta"), "c1");
        assert_eq!(
            meta_text(dir.path()),
            format!("{FORMAT_1_META}rafka.format.version=1\n")
        );
    }

    #[test]
    fn a_newer_format_is_refused_and_the_file_left_as_it_is() {
        let text = format!("{FORMAT_1_META}rafka.format.version=2\n");
        let dir = data_dir_with_meta(&text);
        let error = ensure_meta(dir.path(), 0, None).expect_err("newer format");
        match &error {
            SettingsError::NewerFormat {
                found, supported, ..
            } => assert_eq!((*found, *supported), (2, DATA_DIR_FORMAT_VERSION)),
            other => panic!("unexpected error {other}"),
        }
        assert!(error.to_string().contains("format version 2"), "{error}");
        assert_eq!(meta_text(dir.path()), text);
    }

    #[test]
    fn an_unreadable_format_version_is_an_error_not_a_guess() {
        for value in ["0", "-1", "two", ""] {
            let text = format!("{FORMAT_1_META}rafka.format.version={value}\n");
            let dir = data_dir_with_meta(&text);
            let error = ensure_meta(dir.path(), 0, None).expect_err("bad version");
            assert!(
                matches!(error, SettingsError::Meta { .. }),
                "{value}: {error}"
            );
            assert_eq!(meta_text(dir.path()), text);
        }
    }

    #[test]
    fn the_format_key_is_replaced_and_every_other_line_kept() {
        let text = "#c\nversion=1\nrafka.format.version = 0\ncluster.id=x";
        assert_eq!(
            with_format_version(text),
            "#c\nversion=1\ncluster.id=x\nrafka.format.version=1\n"
        );
    }
}
