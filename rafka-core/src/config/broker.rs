//! The broker's settings under Kafka's `server.properties` names and
//! defaults, plus rafka's own durability knobs. Built from properties text
//! (later entries win, so CLI flags are appended as extra entries); keys
//! rafka does not know are warnings, never errors, because operators reuse
//! their Kafka files.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use super::connections::{
    read_connection_limits, ConnectionLimitsConfig, ConnectionLimitsError,
    ConnectionLimitsReadError,
};
use super::listener::{
    default_protocol_map, parse_listeners, parse_protocol_map, Listener, SecurityProtocol,
};
use super::properties::{parse_properties, PropertiesError, Property};
use super::quorum::{
    parse_bootstrap_servers, parse_process_roles, parse_voters, ProcessRoles, QuorumConfig,
    QuorumConfigError,
};
use super::sasl::{read_sasl, SaslConfigError, SaslSettings};
use super::tls::{read_listener_tls, TlsConfig, TlsConfigError};
use super::topic::{TopicConfigError, TopicDefaults, BROKER_SYNONYMS};
use super::value::{
    parse_bool, parse_i32, parse_i64, parse_one_of, split_list, Expected, InvalidValue,
};

/// Why a broker config cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Properties(#[from] PropertiesError),
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    /// A topic default that breaks a cross-key rule.
    #[error(transparent)]
    Topic(#[from] TopicConfigError),
    #[error(transparent)]
    Sasl(#[from] SaslConfigError),
    /// A TLS listener's `ssl.*` settings.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// `max.connections*` rules across keys.
    #[error(transparent)]
    ConnectionLimits(#[from] ConnectionLimitsError),
    /// `process.roles`, `node.id`, `controller.*`: Kafka's KRaft rules.
    #[error(transparent)]
    Quorum(QuorumConfigError),
    #[error("{key}={value} conflicts with {other_key}={other_value}")]
    Conflict {
        key: &'static str,
        value: String,
        other_key: &'static str,
        other_value: String,
    },
}

/// Something in the file the operator should know about but that does not
/// stop the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    /// Not a key rafka or Kafka's broker knows (a typo, or a plugin's).
    UnknownKey { key: String, line: u32 },
    /// A Kafka key with no meaning for rafka (threads, replication of
    /// internal topics, ZooKeeper, ...).
    NotApplicable { key: String, line: u32 },
    /// A listener named in `controller.listener.names` on a node that runs
    /// no quorum (no `controller.quorum.voters`): the controller is in
    /// process, so it is not opened.
    ControllerListenerSkipped { name: String },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::UnknownKey { key, line } => {
                write!(f, "line {line}: {key} is not a rafka setting, ignored")
            }
            ConfigWarning::NotApplicable { key, line } => {
                write!(f, "line {line}: {key} does not apply to rafka, ignored")
            }
            ConfigWarning::ControllerListenerSkipped { name } => {
                write!(f, "listener {name} is a controller listener, not opened")
            }
        }
    }
}

/// Kafka broker keys accepted silently-but-reported: they configure parts
/// rafka replaces (thread pools, share groups, ZooKeeper).
const NOT_APPLICABLE_KEYS: &[&str] = &[
    "inter.broker.listener.name",
    "log.cleaner.threads",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "share.coordinator.state.topic.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
    "zookeeper.connect",
    "zookeeper.connection.timeout.ms",
];

/// `controller.listener.names` by default (Kafka has none and requires
/// the key in KRaft mode; rafka's zero-config start needs a name).
pub const CONTROLLER_LISTENER_NAME_DEFAULT: &str = "CONTROLLER";
/// Kafka's `broker.session.timeout.ms` default.
pub const BROKER_SESSION_TIMEOUT_MS_DEFAULT: i32 = 9_000;
/// Kafka's `broker.heartbeat.interval.ms` default.
pub const BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT: i32 = 2_000;

/// `rafka.log.scrub.bytes.per.second` by default: 16 MiB/s per shard, a
/// small share of any disk, which still re-reads 1 TiB in under a day.
pub const LOG_SCRUB_BYTES_PER_SECOND_DEFAULT: u64 = 16 << 20;

/// Every broker setting, typed. Topic-level defaults (`log.segment.bytes`,
/// `log.retention.*`, `message.max.bytes`, ...) live in `topic_defaults`.
/// The `replica.selector.class` values rafka implements: Kafka's leader-only
/// default and its rack-aware selector.
pub const REPLICA_SELECTORS: &[&str] = &[
    "org.apache.kafka.common.replica.LeaderSelector",
    "org.apache.kafka.common.replica.RackAwareReplicaSelector",
];

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// `node.id` (or its older name `broker.id`).
    pub node_id: i32,
    /// `broker.rack`: reported in Metadata and DescribeCluster.
    pub rack: Option<String>,
    /// The cluster id (`meta.properties`): set at start, not a config key;
    /// brokers register with it.
    pub cluster_id: Option<String>,
    /// Set at start, not a config key: the data dir had no
    /// `meta.properties` (a first start, or a disk lost and replaced). A
    /// broker registers so, and is then no eligible leader replica of what
    /// it held before (KIP-966).
    pub data_dir_new: bool,
    /// `process.roles`: broker, controller or both (the default).
    pub process_roles: ProcessRoles,
    /// `controller.quorum.*`: the voters (none: a single node whose
    /// controller runs in process, as before clusters), the bootstrap
    /// servers, the Raft timeouts.
    pub quorum: QuorumConfig,
    /// `controller.listener.names` (default `CONTROLLER`), upper-cased.
    pub controller_listener_names: Vec<String>,
    /// The entries of `listeners` named in `controller.listener.names`
    /// on a node that is one of the voters: where its controller listener
    /// binds (same port as its voter entry; without one it binds at the
    /// voter address itself). Never among `listeners`, which clients use.
    pub controller_listeners: Vec<Listener>,
    /// `broker.session.timeout.ms`: a broker that has not heartbeaten the
    /// controller for this long is fenced.
    pub broker_session_timeout_ms: i32,
    /// `broker.heartbeat.interval.ms`: how often a broker heartbeats.
    pub broker_heartbeat_interval_ms: i32,
    pub listeners: Vec<Listener>,
    /// Defaults to `listeners`.
    pub advertised_listeners: Vec<Listener>,
    pub listener_protocols: BTreeMap<String, SecurityProtocol>,
    /// The TLS settings of every SSL and SASL_SSL listener, by name.
    pub listener_tls: BTreeMap<String, TlsConfig>,
    /// `log.dirs`, else `log.dir`.
    pub log_dirs: Vec<PathBuf>,
    /// `metadata.log.dir`: where the controller's metadata log lives;
    /// None means the first of `log_dirs` (Kafka's default too).
    pub metadata_log_dir: Option<PathBuf>,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    pub log_retention_check_interval_ms: i64,
    /// `rafka.log.scrub.bytes.per.second`: the rate at which each shard's
    /// scrubber re-verifies closed segments (CRC and offsets) and takes
    /// damaged batches out of service; 0 disables it.
    pub log_scrub_bytes_per_second: u64,
    pub socket_request_max_bytes: i32,
    pub fetch_max_bytes: i32,
    /// `replica.fetch.max.bytes`: what a follower asks per partition in
    /// one fetch (Kafka: 1 MiB).
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: what a follower asks per fetch
    /// (Kafka: 10 MiB).
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.wait.max.ms`: how long a follower's fetch waits at
    /// the leader for new data (Kafka: 500).
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.lag.time.max.ms`: a follower not caught up with the
    /// leader for this long leaves the ISR (Kafka: 30000).
    pub replica_lag_time_max_ms: i64,
    /// `auto.leader.rebalance.enable`: the active controller moves
    /// leadership back to each partition's preferred replica (the first)
    /// once it is in sync again (Kafka: true).
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: how often it looks
    /// (Kafka: 300).
    pub leader_imbalance_check_interval_seconds: i64,
    /// `replica.high.watermark.checkpoint.interval.ms`: how often every
    /// partition's high watermark is written to the data dir's
    /// `replication-offset-checkpoint` (Kafka: 5000). A restarted broker
    /// starts each partition's high watermark there, not at its log end.
    pub replica_high_watermark_checkpoint_interval_ms: i64,
    /// `replica.selector.class`: Kafka's `RackAwareReplicaSelector` (true)
    /// sends a consumer that names its rack to an in-sync replica in that
    /// rack (KIP-392); unset, or Kafka's `LeaderSelector`, reads from
    /// leaders only.
    pub replica_selector_rack_aware: bool,
    /// `rafka.fetch.max.wait.ms`: the longest a Fetch waits for
    /// `min_bytes`, whatever its `max_wait_ms` asks (clients send 500 ms;
    /// a hostile one could ask for 24 days). Kafka has no such bound; the
    /// default, 30 s, is its clients' default `request.timeout.ms`, past
    /// which a client has given up on the answer anyway.
    pub fetch_max_wait_ms: i32,
    pub connections_max_idle_ms: i64,
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`: replicas of each
    /// `__consumer_offsets` partition in a cluster (Kafka: 3), capped at
    /// the unfenced brokers when the topic is created; 1 on a single node.
    pub offsets_topic_replication_factor: i16,
    /// `quota.window.num`: samples a client quota's rate is measured over.
    pub quota_window_num: i32,
    /// `quota.window.size.seconds`: the length of one such sample.
    pub quota_window_size_seconds: i32,
    pub offsets_retention_minutes: i32,
    /// `offsets.retention.check.interval.ms`: how often expired offsets go.
    pub offsets_retention_check_interval_ms: i64,
    pub group_initial_rebalance_delay_ms: i32,
    pub group_min_session_timeout_ms: i32,
    pub group_max_session_timeout_ms: i32,
    pub group_max_size: i32,
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor`: as
    /// `offsets.topic.replication.factor`, for `__transaction_state`.
    pub transaction_state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`: the `min.insync.replicas` of
    /// `__transaction_state` in a cluster (Kafka: 2), at most its
    /// replication factor.
    pub transaction_state_log_min_isr: i32,
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`: an idle transactional id is
    /// forgotten after this long (default 7 days).
    pub transactional_id_expiration_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`: how
    /// often idle ids are looked for (default 1 h).
    pub transaction_remove_expired_interval_ms: i64,
    /// Principals (`User:alice`) that bypass ACLs.
    pub super_users: Vec<String>,
    /// `authorizer.class.name`: Kafka's StandardAuthorizer (or the older
    /// AclAuthorizer name) turns ACL checks on; unset (default), every
    /// request is allowed and the ACL APIs answer SECURITY_DISABLED.
    pub authorizer_class_name: Option<String>,
    /// `allow.everyone.if.no.acl.found`: what the authorizer decides for a
    /// resource without any ACL (default false: denied).
    pub allow_everyone_if_no_acl_found: bool,
    /// `write.caching`: when true an acks=all produce is answered once
    /// written to the page cache, before fdatasync (Redpanda's relaxation).
    /// Default false: durable before acknowledged.
    pub write_caching: bool,
    /// `rafka.flush.interval.ms`: how long a shard may hold a group commit
    /// open to gather more writes before its fdatasync. 0 (default) syncs
    /// as soon as the shard's queue drains, which already groups every
    /// request that arrived during the previous sync; 1-2 ms trades latency
    /// for fewer syncs on slow disks.
    pub flush_interval_ms: i32,
    /// `rafka.log.open.files.max`: segment and index files the broker keeps
    /// open at once, over all shards (idle ones are closed and reopened on
    /// use). 0 (default): a quarter of RLIMIT_NOFILE, which the broker
    /// raises to its hard limit at start.
    pub log_open_files_max: i64,
    /// `rafka.log.dir.min.free.bytes`: below this many free bytes in the
    /// data dir, produce to user topics is refused (KAFKA_STORAGE_ERROR)
    /// until space is back; reads go on. None (unset): 1 GiB, or 5% of the
    /// filesystem if smaller; 0 disables the refusal. rafka-shard's `disk`
    /// module has the rules.
    pub log_dir_min_free_bytes: Option<u64>,
    pub topic_defaults: TopicDefaults,
    /// `max.connections`, `max.connections.per.ip` (+ overrides),
    /// `max.connection.creation.rate`, broker-wide and per listener.
    pub connection_limits: ConnectionLimitsConfig,
    /// The SASL listeners' mechanisms, users and limits (`sasl.rs`).
    pub sasl: SaslSettings,
    /// Every key the file or a flag set, with the value as written (what
    /// DescribeConfigs reports as STATIC_BROKER_CONFIG).
    pub explicit: BTreeMap<String, String>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        let listener = Listener {
            name: "PLAINTEXT".to_string(),
            protocol: SecurityProtocol::Plaintext,
            host: "127.0.0.1".to_string(),
            port: 9092,
        };
        BrokerConfig {
            node_id: 0,
            rack: None,
            cluster_id: None,
            data_dir_new: false,
            process_roles: ProcessRoles::default(),
            quorum: QuorumConfig::default(),
            controller_listener_names: vec![CONTROLLER_LISTENER_NAME_DEFAULT.to_string()],
            controller_listeners: Vec::new(),
            broker_session_timeout_ms: BROKER_SESSION_TIMEOUT_MS_DEFAULT,
            broker_heartbeat_interval_ms: BROKER_HEARTBEAT_INTERVAL_MS_DEFAULT,
            listeners: vec![listener.clone()],
            advertised_listeners: vec![listener],
            listener_protocols: default_protocol_map(),
            listener_tls: BTreeMap::new(),
            log_dirs: vec![PathBuf::from("./rafka-data")],
            metadata_log_dir: None,
            num_partitions: 1,
            default_replication_factor: 1,
            auto_create_topics_enable: true,
            delete_topic_enable: true,
            log_retention_check_interval_ms: 300_000,
            log_scrub_bytes_per_second: LOG_SCRUB_BYTES_PER_SECOND_DEFAULT,
            socket_request_max_bytes: 100 * 1024 * 1024,
            fetch_max_bytes: 55 * 1024 * 1024,
            replica_fetch_max_bytes: 1024 * 1024,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            replica_fetch_wait_max_ms: 500,
            replica_lag_time_max_ms: 30_000,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval_seconds: 300,
            replica_high_watermark_checkpoint_interval_ms: 5_000,
            replica_selector_rack_aware: false,
            fetch_max_wait_ms: 30_000,
            connections_max_idle_ms: 600_000,
            offsets_topic_num_partitions: 50,
            offsets_topic_replication_factor: 3,
            quota_window_num: 11,
            quota_window_size_seconds: 1,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            group_initial_rebalance_delay_ms: 3000,
            group_min_session_timeout_ms: 6000,
            group_max_session_timeout_ms: 1_800_000,
            group_max_size: i32::MAX,
            transaction_state_log_num_partitions: 50,
            transaction_state_log_replication_factor: 3,
            transaction_state_log_min_isr: 2,
            transaction_max_timeout_ms: 900_000,
            transactional_id_expiration_ms: 604_800_000,
            transaction_remove_expired_interval_ms: 3_600_000,
            super_users: Vec::new(),
            authorizer_class_name: None,
            allow_everyone_if_no_acl_found: false,
            write_caching: false,
            flush_interval_ms: 0,
            log_open_files_max: 0,
            log_dir_min_free_bytes: None,
            topic_defaults: TopicDefaults::default(),
            connection_limits: ConnectionLimitsConfig::default(),
            sasl: SaslSettings::default(),
            explicit: BTreeMap::new(),
        }
    }
}

/// The entries of a file, last one winning, with what was read from them.
struct Entries<'a> {
    map: BTreeMap<&'a str, (&'a str, u32)>,
    used: BTreeSet<&'a str>,
}

impl<'a> Entries<'a> {
    fn new(props: &'a [Property]) -> Self {
        let map = props
            .iter()
            .map(|p| (p.key.as_str(), (p.value.as_str(), p.line)))
            .collect();
        Entries {
            map,
            used: BTreeSet::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a str> {
        let (value, _) = *self.map.get(key)?;
        self.used.insert(key);
        Some(value)
    }

    /// A key made at run time (a listener's `listener.name.<name>.` prefix).
    fn get_named(&mut self, key: &str) -> Option<&'a str> {
        let (&stored, &(value, _)) = self.map.get_key_value(key)?;
        self.used.insert(stored);
        Some(value)
    }

    fn i32(
        &mut self,
        key: &'static str,
        min: i32,
        max: i32,
        default: i32,
    ) -> Result<i32, InvalidValue> {
        self.get(key)
            .map_or(Ok(default), |v| parse_i32(key, v, min, max))
    }

    /// A replication factor: Kafka's SHORT, at least 1.
    fn i16(&mut self, key: &'static str, default: i16) -> Result<i16, InvalidValue> {
        let value = self.i32(key, 1, i16::MAX.into(), default.into())?;
        Ok(i16::try_from(value).unwrap_or(i16::MAX))
    }

    fn i64(
        &mut self,
        key: &'static str,
        min: i64,
        max: i64,
        default: i64,
    ) -> Result<i64, InvalidValue> {
        self.get(key)
            .map_or(Ok(default), |v| parse_i64(key, v, min, max))
    }

    fn bool(&mut self, key: &'static str, default: bool) -> Result<bool, InvalidValue> {
        self.get(key).map_or(Ok(default), |v| parse_bool(key, v))
    }

    /// [`Entries::get`] for a key built at run time (per listener).
    fn get_dynamic(&mut self, key: &str) -> Option<&'a str> {
        let (&stored, &(value, _)) = self.map.get_key_value(key)?;
        self.used.insert(stored);
        Some(value)
    }

    /// The keys read, with their values as written.
    fn explicit(&self) -> BTreeMap<String, String> {
        self.used
            .iter()
            .filter_map(|k| self.map.get(k).map(|(v, _)| (k.to_string(), v.to_string())))
            .collect()
    }

    fn warnings(&self) -> Vec<ConfigWarning> {
        let unused = self.map.iter().filter(|(k, _)| !self.used.contains(*k));
        unused
            .map(|(key, (_, line))| {
                let (key, line) = (key.to_string(), *line);
                if NOT_APPLICABLE_KEYS.contains(&key.as_str()) {
                    ConfigWarning::NotApplicable { key, line }
                } else {
                    ConfigWarning::UnknownKey { key, line }
                }
            })
            .collect()
    }
}

impl BrokerConfig {
    /// The client quotas' sampling (`quota.window.num` samples of
    /// `quota.window.size.seconds`); parsing keeps both at least 1.
    pub fn quota_window(&self) -> crate::quota::QuotaWindow {
        let samples = u32::try_from(self.quota_window_num.max(1)).unwrap_or(1);
        let seconds = u32::try_from(self.quota_window_size_seconds.max(1)).unwrap_or(1);
        crate::quota::QuotaWindow::new(samples, seconds)
    }

    /// Parses `server.properties` text.
    pub fn from_properties_text(
        text: &str,
    ) -> Result<(BrokerConfig, Vec<ConfigWarning>), ConfigError> {
        let props = parse_properties(text)?;
        BrokerConfig::from_properties(&props)
    }

    /// Builds the config from entries in order (file, then CLI overrides).
    pub fn from_properties(
        props: &[Property],
    ) -> Result<(BrokerConfig, Vec<ConfigWarning>), ConfigError> {
        let mut e = Entries::new(props);
        let mut config = BrokerConfig::default();
        let mut warnings = Vec::new();
        config.node_id = node_id(&mut e)?;
        config.rack = e
            .get("broker.rack")
            .map(str::trim)
            .filter(|rack| !rack.is_empty())
            .map(str::to_string);
        read_quorum(&mut e, &mut config)?;
        read_listeners(&mut e, &mut config, &mut warnings)?;
        config.sasl = read_sasl(&config.listeners, &mut |key| {
            e.get_dynamic(key).map(str::to_string)
        })?;
        config.connection_limits = read_connection_limits(&config.listeners, &mut |key| {
            e.get_dynamic(key).map(str::to_string)
        })
        .map_err(|error| match error {
            ConnectionLimitsReadError::InvalidValue(v) => ConfigError::InvalidValue(v),
            ConnectionLimitsReadError::Limits(l) => ConfigError::ConnectionLimits(l),
        })?;
        config.log_dirs = log_dirs(&mut e)?;
        config.metadata_log_dir = e.get("metadata.log.dir").map(|v| PathBuf::from(v.trim()));
        read_limits(&mut e, &mut config)?;
        read_groups(&mut e, &mut config)?;
        config.topic_defaults = topic_defaults(&mut e)?;
        config.explicit = e.explicit();
        warnings.extend(e.warnings());
        Ok((config, warnings))
    }

    /// Whether this node is part of a cluster: `controller.quorum.voters`
    /// or `controller.quorum.bootstrap.servers` is set. False is the
    /// single node, its controller in process (the zero-config start).
    pub fn quorum_configured(&self) -> bool {
        !self.quorum.voters.is_empty() || !self.quorum.bootstrap_servers.is_empty()
    }

    /// This node's entry in `controller.quorum.voters` (host, port): the
    /// address its controller listener binds and its peers dial. None when
    /// it is not a voter (no quorum, or a broker-only node).
    pub fn controller_address(&self) -> Option<(String, u16)> {
        let voter = self.quorum.voter(self.node_id)?;
        Some((voter.host.clone(), voter.port))
    }

    /// The directory of the controller's metadata log files:
    /// `<metadata.log.dir or first log dir>/__rafka_metadata`.
    pub fn metadata_dir(&self) -> PathBuf {
        let parent = self
            .metadata_log_dir
            .as_ref()
            .or(self.log_dirs.first())
            .cloned()
            .unwrap_or_else(|| PathBuf::from("./rafka-data"));
        parent.join(crate::metadata::METADATA_DIR_NAME)
    }
}

fn node_id(e: &mut Entries<'_>) -> Result<i32, ConfigError> {
    let node = e.get("node.id");
    let broker = e.get("broker.id");
    let node_id = node
        .map(|v| parse_i32("node.id", v, 0, i32::MAX))
        .transpose()?;
    let broker_id = broker
        .map(|v| parse_i32("broker.id", v, 0, i32::MAX))
        .transpose()?;
    match (node_id, broker_id) {
        (Some(n), Some(b)) if n != b => Err(ConfigError::Conflict {
            key: "node.id",
            value: n.to_string(),
            other_key: "broker.id",
            other_value: b.to_string(),
        }),
        (n, b) => Ok(n.or(b).unwrap_or(0)),
    }
}

fn read_listeners(
    e: &mut Entries<'_>,
    config: &mut BrokerConfig,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(), ConfigError> {
    const MAP_KEY: &str = "listener.security.protocol.map";
    let map_set = match e.get(MAP_KEY) {
        Some(v) => {
            config.listener_protocols = parse_protocol_map(MAP_KEY, v)?;
            true
        }
        None => false,
    };
    if let Some(v) = e.get("controller.listener.names") {
        config.controller_listener_names = split_list(v).map(str::to_ascii_uppercase).collect();
    }
    let controller_names = config.controller_listener_names.clone();
    if config.quorum_configured() && controller_names.is_empty() {
        return Err(ConfigError::Quorum(
            QuorumConfigError::NoControllerListenerName,
        ));
    }
    // As Kafka: without an explicit map, a controller listener name that
    // is not a protocol's name is PLAINTEXT.
    let mut protocols = config.listener_protocols.clone();
    if !map_set {
        for name in &controller_names {
            protocols
                .entry(name.clone())
                .or_insert(SecurityProtocol::Plaintext);
        }
    }
    let mut listeners = match e.get("listeners") {
        Some(v) => parse_listeners("listeners", v, &protocols)?,
        None => config.listeners.clone(),
    };
    let (controllers, clients): (Vec<Listener>, Vec<Listener>) = listeners
        .drain(..)
        .partition(|l| controller_names.contains(&l.name));
    listeners = clients;
    controller_listeners(config, controllers, &listeners, warnings)?;
    let protocols = &config.listener_protocols;
    if listeners.is_empty() {
        let value = e.get("listeners").unwrap_or_default();
        return Err(InvalidValue::new("listeners", value, Expected::Listeners).into());
    }
    config.advertised_listeners = match e.get("advertised.listeners") {
        Some(v) => {
            let advertised = parse_listeners("advertised.listeners", v, protocols)?;
            // Clients can only reach a name the broker actually listens on.
            let unknown = advertised
                .iter()
                .any(|a| !listeners.iter().any(|l| l.name == a.name));
            if unknown {
                let expected = Expected::Listeners;
                return Err(InvalidValue::new("advertised.listeners", v, expected).into());
            }
            advertised
        }
        None => listeners.clone(),
    };
    config.listeners = listeners;
    for listener in &config.listeners {
        if matches!(
            listener.protocol,
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
        ) {
            let tls = read_listener_tls(&listener.name, &mut |key| {
                e.get_named(key).map(str::to_string)
            })?;
            config.listener_tls.insert(listener.name.clone(), tls);
        }
    }
    Ok(())
}

/// `process.roles`, `controller.quorum.*`, the broker's heartbeat keys,
/// and Kafka's rules between them and `node.id`.
fn read_quorum(e: &mut Entries<'_>, c: &mut BrokerConfig) -> Result<(), ConfigError> {
    const MAX32: i32 = i32::MAX;
    const ROLES: &str = "process.roles";
    const VOTERS: &str = "controller.quorum.voters";
    const BOOTSTRAP: &str = "controller.quorum.bootstrap.servers";
    if let Some(v) = e.get(ROLES) {
        c.process_roles = parse_process_roles(ROLES, v)?;
    }
    if let Some(v) = e.get(VOTERS) {
        c.quorum.voters = parse_voters(VOTERS, v).map_err(quorum_error)?;
    }
    if let Some(v) = e.get(BOOTSTRAP) {
        c.quorum.bootstrap_servers = parse_bootstrap_servers(BOOTSTRAP, v)?;
    }
    let q = &mut c.quorum;
    // Kafka takes any int for these; a timer of 0 or less cannot work.
    q.election_timeout_ms = e.i32(
        "controller.quorum.election.timeout.ms",
        1,
        MAX32,
        q.election_timeout_ms,
    )?;
    q.fetch_timeout_ms = e.i32(
        "controller.quorum.fetch.timeout.ms",
        1,
        MAX32,
        q.fetch_timeout_ms,
    )?;
    q.election_backoff_max_ms = e.i32(
        "controller.quorum.election.backoff.max.ms",
        1,
        MAX32,
        q.election_backoff_max_ms,
    )?;
    q.request_timeout_ms = e.i32(
        "controller.quorum.request.timeout.ms",
        1,
        MAX32,
        q.request_timeout_ms,
    )?;
    let session = c.broker_session_timeout_ms;
    c.broker_session_timeout_ms = e.i32("broker.session.timeout.ms", 1, MAX32, session)?;
    let heartbeat = c.broker_heartbeat_interval_ms;
    c.broker_heartbeat_interval_ms = e.i32("broker.heartbeat.interval.ms", 1, MAX32, heartbeat)?;
    // Not a Kafka rule, but a broker that heartbeats less often than its
    // session lasts would be fenced between every two heartbeats.
    if c.broker_heartbeat_interval_ms >= c.broker_session_timeout_ms {
        return Err(ConfigError::Conflict {
            key: "broker.heartbeat.interval.ms",
            value: c.broker_heartbeat_interval_ms.to_string(),
            other_key: "broker.session.timeout.ms",
            other_value: c.broker_session_timeout_ms.to_string(),
        });
    }
    c.quorum
        .validate(c.process_roles, c.node_id)
        .map_err(quorum_error)
}

/// A quorum error as the config error `check-config` handles: a bad value
/// stays an [`InvalidValue`] (every bad value is reported at once).
fn quorum_error(error: QuorumConfigError) -> ConfigError {
    match error {
        QuorumConfigError::InvalidValue(invalid) => ConfigError::InvalidValue(invalid),
        other => ConfigError::Quorum(other),
    }
}

/// Where the listeners named in `controller.listener.names` go: on a
/// voter they are its controller listener (at its voter entry's port), on
/// a broker-only node of a cluster they are refused (Kafka's rule), and
/// on a single node they are skipped with a warning. A client listener
/// cannot take the voter address either.
fn controller_listeners(
    config: &mut BrokerConfig,
    controllers: Vec<Listener>,
    clients: &[Listener],
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(), ConfigError> {
    let own_voter = config
        .process_roles
        .controller
        .then(|| config.quorum.voter(config.node_id).cloned())
        .flatten();
    for listener in controllers {
        if config.process_roles.is_broker_only() && config.quorum_configured() {
            let name = listener.name;
            let error = QuorumConfigError::ControllerListenerOnBroker { name };
            return Err(ConfigError::Quorum(error));
        }
        match &own_voter {
            Some(voter) if voter.port != listener.port => {
                let error = QuorumConfigError::ControllerListenerPort {
                    listener: listener.to_string(),
                    voter: voter.to_string(),
                };
                return Err(ConfigError::Quorum(error));
            }
            Some(_) => config.controller_listeners.push(listener),
            None => warnings.push(ConfigWarning::ControllerListenerSkipped {
                name: listener.name,
            }),
        }
    }
    let Some(voter) = own_voter else {
        return Ok(());
    };
    let wildcard = |host: &str| matches!(host, "" | "0.0.0.0" | "::");
    let taken = clients.iter().find(|l| {
        l.port == voter.port && (l.host == voter.host || wildcard(&l.host) || wildcard(&voter.host))
    });
    if let Some(listener) = taken {
        let error = QuorumConfigError::ControllerPortTaken {
            voter: voter.to_string(),
            listener: listener.to_string(),
        };
        return Err(ConfigError::Quorum(error));
    }
    Ok(())
}

fn log_dirs(e: &mut Entries<'_>) -> Result<Vec<PathBuf>, ConfigError> {
    let dirs = e.get("log.dirs");
    let dir = e.get("log.dir");
    let Some((key, value)) = dirs
        .map(|v| ("log.dirs", v))
        .or(dir.map(|v| ("log.dir", v)))
    else {
        return Ok(vec![PathBuf::from("./rafka-data")]);
    };
    let list: Vec<PathBuf> = split_list(value).map(PathBuf::from).collect();
    let unique: BTreeSet<&PathBuf> = list.iter().collect();
    if list.is_empty() || unique.len() != list.len() {
        return Err(InvalidValue::new(key, value, Expected::NonEmptyList).into());
    }
    Ok(list)
}

fn read_limits(e: &mut Entries<'_>, c: &mut BrokerConfig) -> Result<(), ConfigError> {
    const MAX32: i32 = i32::MAX;
    c.num_partitions = e.i32("num.partitions", 1, MAX32, c.num_partitions)?;
    let rf = e.i32("default.replication.factor", 1, i16::MAX.into(), 1)?;
    c.default_replication_factor = i16::try_from(rf).unwrap_or(i16::MAX);
    c.auto_create_topics_enable = e.bool("auto.create.topics.enable", true)?;
    c.delete_topic_enable = e.bool("delete.topic.enable", true)?;
    let check_ms = c.log_retention_check_interval_ms;
    c.log_retention_check_interval_ms =
        e.i64("log.retention.check.interval.ms", 1, i64::MAX, check_ms)?;
    let scrub_default = LOG_SCRUB_BYTES_PER_SECOND_DEFAULT as i64;
    let scrub_rate = e.i64(
        "rafka.log.scrub.bytes.per.second",
        0,
        i64::MAX,
        scrub_default,
    )?;
    c.log_scrub_bytes_per_second = scrub_rate as u64;
    c.socket_request_max_bytes = e.i32(
        "socket.request.max.bytes",
        1,
        MAX32,
        c.socket_request_max_bytes,
    )?;
    c.fetch_max_bytes = e.i32("fetch.max.bytes", 1024, MAX32, c.fetch_max_bytes)?;
    let replica_bytes = c.replica_fetch_max_bytes;
    c.replica_fetch_max_bytes = e.i32("replica.fetch.max.bytes", 0, MAX32, replica_bytes)?;
    let response_bytes = c.replica_fetch_response_max_bytes;
    c.replica_fetch_response_max_bytes =
        e.i32("replica.fetch.response.max.bytes", 0, MAX32, response_bytes)?;
    let wait_ms = c.replica_fetch_wait_max_ms;
    c.replica_fetch_wait_max_ms = e.i32("replica.fetch.wait.max.ms", 0, MAX32, wait_ms)?;
    let lag_ms = c.replica_lag_time_max_ms;
    c.replica_lag_time_max_ms = e.i64("replica.lag.time.max.ms", 1, i64::MAX, lag_ms)?;
    c.auto_leader_rebalance_enable = e.bool("auto.leader.rebalance.enable", true)?;
    if let Some(selector) = e
        .get("replica.selector.class")
        .filter(|v| !v.trim().is_empty())
    {
        let index = parse_one_of("replica.selector.class", selector, REPLICA_SELECTORS)?;
        c.replica_selector_rack_aware = index == 1;
    }
    let imbalance_s = c.leader_imbalance_check_interval_seconds;
    c.leader_imbalance_check_interval_seconds = e.i64(
        "leader.imbalance.check.interval.seconds",
        1,
        i64::MAX,
        imbalance_s,
    )?;
    let checkpoint_ms = c.replica_high_watermark_checkpoint_interval_ms;
    c.replica_high_watermark_checkpoint_interval_ms = e.i64(
        "replica.high.watermark.checkpoint.interval.ms",
        1,
        i64::MAX,
        checkpoint_ms,
    )?;
    c.fetch_max_wait_ms = e.i32("rafka.fetch.max.wait.ms", 0, MAX32, c.fetch_max_wait_ms)?;
    let idle_ms = c.connections_max_idle_ms;
    c.connections_max_idle_ms = e.i64("connections.max.idle.ms", -1, i64::MAX, idle_ms)?;
    c.write_caching = e.bool("write.caching", false)?;
    c.flush_interval_ms = e.i32("rafka.flush.interval.ms", 0, 1000, 0)?;
    c.log_open_files_max = e.i64("rafka.log.open.files.max", 0, i64::MAX, 0)?;
    const MIN_FREE_KEY: &str = "rafka.log.dir.min.free.bytes";
    c.log_dir_min_free_bytes = match e.get(MIN_FREE_KEY) {
        Some(v) => Some(parse_i64(MIN_FREE_KEY, v, 0, i64::MAX)?.unsigned_abs()),
        None => None,
    };
    c.super_users = super_users(e)?;
    c.authorizer_class_name = match e.get("authorizer.class.name").map(str::trim) {
        None | Some("") => None,
        Some(name) if AUTHORIZER_CLASS_NAMES.contains(&name) => Some(name.to_string()),
        Some(name) => {
            let expected = Expected::OneOf(AUTHORIZER_CLASS_NAMES);
            return Err(InvalidValue::new("authorizer.class.name", name, expected).into());
        }
    };
    c.allow_everyone_if_no_acl_found = e.bool("allow.everyone.if.no.acl.found", false)?;
    Ok(())
}

/// The `authorizer.class.name` values that turn rafka's authorizer (Kafka's
/// StandardAuthorizer semantics) on: KRaft's class and ZooKeeper-era
/// Kafka's, which decides the same way.
pub const AUTHORIZER_CLASS_NAMES: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

impl BrokerConfig {
    /// The authorizer's settings, when `authorizer.class.name` enables it.
    pub fn authorizer(&self) -> Option<crate::acl::AuthorizerConfig> {
        self.authorizer_class_name.as_ref()?;
        Some(crate::acl::AuthorizerConfig {
            super_users: self.super_users.iter().cloned().collect(),
            allow_everyone_if_no_acl_found: self.allow_everyone_if_no_acl_found,
        })
    }
}

fn super_users(e: &mut Entries<'_>) -> Result<Vec<String>, ConfigError> {
    let Some(value) = e.get("super.users") else {
        return Ok(Vec::new());
    };
    let mut users = Vec::new();
    for item in value.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        match item.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
                users.push(item.to_string());
            }
            _ => return Err(InvalidValue::new("super.users", value, Expected::Principals).into()),
        }
    }
    Ok(users)
}

fn read_groups(e: &mut Entries<'_>, c: &mut BrokerConfig) -> Result<(), ConfigError> {
    const MAX32: i32 = i32::MAX;
    c.offsets_topic_num_partitions = e.i32("offsets.topic.num.partitions", 1, MAX32, 50)?;
    c.offsets_topic_replication_factor = e.i16("offsets.topic.replication.factor", 3)?;
    c.quota_window_num = e.i32("quota.window.num", 1, MAX32, 11)?;
    c.quota_window_size_seconds = e.i32("quota.window.size.seconds", 1, MAX32, 1)?;
    c.offsets_retention_minutes = e.i32("offsets.retention.minutes", 1, MAX32, 7 * 24 * 60)?;
    c.offsets_retention_check_interval_ms =
        e.i64("offsets.retention.check.interval.ms", 1, i64::MAX, 600_000)?;
    c.group_initial_rebalance_delay_ms =
        e.i32("group.initial.rebalance.delay.ms", 0, MAX32, 3000)?;
    c.group_min_session_timeout_ms = e.i32("group.min.session.timeout.ms", 0, MAX32, 6000)?;
    c.group_max_session_timeout_ms = e.i32("group.max.session.timeout.ms", 0, MAX32, 1_800_000)?;
    c.group_max_size = e.i32("group.max.size", 1, MAX32, MAX32)?;
    c.transaction_state_log_num_partitions =
        e.i32("transaction.state.log.num.partitions", 1, MAX32, 50)?;
    c.transaction_state_log_replication_factor =
        e.i16("transaction.state.log.replication.factor", 3)?;
    c.transaction_state_log_min_isr = e.i32("transaction.state.log.min.isr", 1, MAX32, 2)?;
    c.transaction_max_timeout_ms = e.i32("transaction.max.timeout.ms", 1, MAX32, 900_000)?;
    c.transactional_id_expiration_ms =
        e.i64("transactional.id.expiration.ms", 1, i64::MAX, 604_800_000)?;
    c.transaction_remove_expired_interval_ms = e.i64(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        1,
        i64::MAX,
        3_600_000,
    )?;
    if c.group_min_session_timeout_ms > c.group_max_session_timeout_ms {
        return Err(ConfigError::Conflict {
            key: "group.min.session.timeout.ms",
            value: c.group_min_session_timeout_ms.to_string(),
            other_key: "group.max.session.timeout.ms",
            other_value: c.group_max_session_timeout_ms.to_string(),
        });
    }
    Ok(())
}

/// Reads every `log.*`-style key that sets a topic default, through the
/// topic key's own validator so both levels accept the same values.
fn topic_defaults(e: &mut Entries<'_>) -> Result<TopicDefaults, ConfigError> {
    let mut defaults = TopicDefaults::default();
    for (topic_key, broker_keys) in BROKER_SYNONYMS {
        let found = match *topic_key {
            "retention.ms" => retention_ms(e)?,
            "segment.ms" => scaled_ms(e, "log.roll.ms", "log.roll.hours", 1)?,
            "segment.jitter.ms" => scaled_ms(e, "log.roll.jitter.ms", "log.roll.jitter.hours", 0)?,
            _ => first_set(e, broker_keys),
        };
        let Some((broker_key, value)) = found else {
            continue;
        };
        defaults
            .config
            .set(topic_key, &value)
            .map_err(|err| rename_key(err, broker_key))?;
        defaults.from_broker.insert(topic_key, broker_key);
    }
    defaults
        .config
        .with_overrides(&BTreeMap::new())
        .map_err(ConfigError::Topic)?;
    Ok(defaults)
}

fn first_set(e: &mut Entries<'_>, keys: &[&'static str]) -> Option<(&'static str, String)> {
    let mut found = None;
    for key in keys {
        if let Some(v) = e.get(key) {
            found = found.or(Some((*key, v.to_string())));
        }
    }
    found
}

/// The error reported with the broker key the operator actually wrote.
fn rename_key(err: TopicConfigError, broker_key: &str) -> ConfigError {
    match err {
        TopicConfigError::InvalidValue(mut v) => {
            v.key = broker_key.to_string();
            ConfigError::InvalidValue(v)
        }
        other => ConfigError::Topic(other),
    }
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

/// Kafka's precedence ms > minutes > hours; any negative result means
/// "no limit" and becomes -1.
fn retention_ms(e: &mut Entries<'_>) -> Result<Option<(&'static str, String)>, ConfigError> {
    let ms = e.get("log.retention.ms");
    let minutes = e.get("log.retention.minutes");
    let hours = e.get("log.retention.hours");
    let millis = if let Some(v) = ms {
        (
            "log.retention.ms",
            parse_i64("log.retention.ms", v, i64::MIN, i64::MAX)?,
        )
    } else if let Some(v) = minutes {
        let m = parse_i32("log.retention.minutes", v, i32::MIN, i32::MAX)?;
        ("log.retention.minutes", i64::from(m) * MINUTE_MS)
    } else if let Some(v) = hours {
        let h = parse_i32("log.retention.hours", v, i32::MIN, i32::MAX)?;
        ("log.retention.hours", i64::from(h) * HOUR_MS)
    } else {
        return Ok(None);
    };
    let (key, value) = millis;
    Ok(Some((key, value.max(-1).to_string())))
}

/// `<ms key>` if set, else `<hours key>` (at least `hours_min`) in ms.
fn scaled_ms(
    e: &mut Entries<'_>,
    ms_key: &'static str,
    hours_key: &'static str,
    hours_min: i32,
) -> Result<Option<(&'static str, String)>, ConfigError> {
    let ms = e.get(ms_key);
    let hours = e.get(hours_key);
    if let Some(v) = ms {
        return Ok(Some((ms_key, v.to_string())));
    }
    let Some(v) = hours else {
        return Ok(None);
    };
    let h = parse_i32(hours_key, v, hours_min, i32::MAX)?;
    Ok(Some((hours_key, (i64::from(h) * HOUR_MS).to_string())))
}
