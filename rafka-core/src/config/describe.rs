//! The described view of configs, as DescribeConfigs answers it: every
//! topic key and every broker key rafka honours, each with its effective
//! value, where that value comes from, the synonyms it was chosen among
//! (highest precedence first), its type and its documentation.
//!
//! Precedence, as Kafka's: a topic override, then this broker's dynamic
//! config, then the cluster-wide dynamic default, then the properties file
//! or a flag (STATIC_BROKER_CONFIG), then the built-in default
//! (DEFAULT_CONFIG). Only each topic key's first broker synonym
//! (`log.retention.ms`, `log.segment.bytes`, ...) can be set dynamically;
//! every other broker key is read-only.

use std::collections::BTreeMap;

use super::broker::BrokerConfig;
use super::topic::{topic_key_for_dynamic_broker_key, ConfigSource, TopicConfig, BROKER_SYNONYMS};

/// Kafka's DescribeConfigs `ConfigType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One value a described config was chosen among.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    /// None for a sensitive value, or a key with no value at all.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub kind: ConfigType,
    pub doc: &'static str,
    /// Highest precedence first; the first one is the effective value.
    pub synonyms: Vec<Synonym>,
}

/// Type and documentation of each topic key, in the order of
/// [`BROKER_SYNONYMS`].
const TOPIC_KEY_DOCS: &[(ConfigType, &str)] = &[
    (ConfigType::List, "Which cleanup applies to old log segments: \"delete\" (retention by time and size), \"compact\" (keep the latest value per key), or both."),
    (ConfigType::Int, "Compression level for gzip when compression.type is gzip (-1 = the codec's default, or 1-9)."),
    (ConfigType::Int, "Compression level for lz4 when compression.type is lz4 (1-17)."),
    (ConfigType::String, "The codec batches are stored with: \"producer\" keeps the producer's; uncompressed, gzip, snappy, lz4 or zstd recompresses any batch that differs."),
    (ConfigType::Int, "Compression level for zstd when compression.type is zstd."),
    (ConfigType::Long, "How long delete tombstones are kept after compaction reaches them, in ms."),
    (ConfigType::Long, "How long a deleted segment file is kept before it is removed from disk, in ms."),
    (ConfigType::Long, "Force an fsync after this many messages (rafka is durable before it acknowledges whatever this says)."),
    (ConfigType::Long, "Force an fsync after this many ms (rafka is durable before it acknowledges whatever this says)."),
    (ConfigType::Int, "Bytes between two entries of the offset index."),
    (ConfigType::Long, "The longest a record may stay uncompacted, in ms."),
    (ConfigType::Int, "The largest record batch size accepted, in bytes (after compression)."),
    (ConfigType::Long, "How far after the broker's clock a CreateTime timestamp may be, in ms."),
    (ConfigType::Long, "How far before the broker's clock a CreateTime timestamp may be, in ms."),
    (ConfigType::String, "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock."),
    (ConfigType::Double, "The dirty share of a log above which it is compacted."),
    (ConfigType::Long, "The shortest a record stays uncompacted, in ms."),
    (ConfigType::Int, "Replicas that must acknowledge an acks=all write."),
    (ConfigType::Boolean, "Preallocate segment files."),
    (ConfigType::Long, "Largest size of a partition's log before old segments are deleted, in bytes (-1: no limit)."),
    (ConfigType::Long, "Longest time a segment is kept before it is deleted, in ms (-1: no limit)."),
    (ConfigType::Int, "Size of one log segment file, in bytes."),
    (ConfigType::Int, "Size of a segment's offset index, in bytes."),
    (ConfigType::Long, "Largest random jitter subtracted from segment.ms, in ms."),
    (ConfigType::Long, "Time after which the active segment rolls even if not full, in ms."),
    (ConfigType::Boolean, "Whether a replica outside the ISR may become leader (losing data)."),
];

const _: () = assert!(TOPIC_KEY_DOCS.len() == BROKER_SYNONYMS.len());

/// The dynamic config layers above the broker's static topic defaults.
#[derive(Debug, Clone, Copy)]
pub struct DynamicLayers<'a> {
    /// Cluster-wide default (`""` resource).
    pub cluster: &'a BTreeMap<String, String>,
    /// This broker's own (its node id as the resource name).
    pub broker: &'a BTreeMap<String, String>,
}

/// Kafka's built-in defaults carried by a broker key other than the topic
/// key's first synonym (`retention.ms` defaults through
/// `log.retention.hours=168`), as Kafka names the DEFAULT_CONFIG synonym.
const KAFKA_DEFAULT_SYNONYMS: &[(&str, &str)] = &[
    ("log.retention.hours", "168"),
    ("log.roll.hours", "168"),
    ("log.roll.jitter.hours", "0"),
    ("log.flush.scheduler.interval.ms", "9223372036854775807"),
];

/// Every topic config of a topic with `overrides`, in key order. Values
/// are in the topic key's units; synonyms carry the broker keys' values
/// as they were set.
pub fn describe_topic(
    config: &BrokerConfig,
    layers: DynamicLayers<'_>,
    overrides: &BTreeMap<String, String>,
) -> Vec<DescribedConfig> {
    let effective = config
        .topic_defaults
        .with_dynamic(layers.cluster, layers.broker);
    BROKER_SYNONYMS
        .iter()
        .zip(TOPIC_KEY_DOCS)
        .map(|((topic_key, brokers), (kind, doc))| {
            let mut synonyms = Vec::new();
            let override_value = overrides.get(*topic_key);
            if let Some(value) = override_value {
                synonyms.push(synonym(
                    topic_key,
                    Some(value.clone()),
                    ConfigSource::TopicOverride,
                ));
            }
            synonyms.extend(broker_synonyms(config, layers, brokers));
            let value = match override_value {
                Some(value) => Some(value.clone()),
                None => effective.config.value_string(topic_key),
            };
            entry(topic_key, value, false, *kind, doc, synonyms)
        })
        .collect()
}

/// The broker keys rafka honours, as broker `node_id` describes itself.
pub fn describe_broker(config: &BrokerConfig, layers: DynamicLayers<'_>) -> Vec<DescribedConfig> {
    let effective = config
        .topic_defaults
        .with_dynamic(layers.cluster, layers.broker);
    let mut out: Vec<DescribedConfig> = Vec::new();
    for ((topic_key, brokers), (kind, doc)) in BROKER_SYNONYMS.iter().zip(TOPIC_KEY_DOCS) {
        for (i, broker_key) in brokers.iter().enumerate() {
            let (synonyms, value) = if i == 0 {
                // The dynamic key: its value is the effective default.
                let synonyms = broker_synonyms(config, layers, brokers);
                (synonyms, effective.config.value_string(topic_key))
            } else {
                // An alternate spelling (`log.retention.hours`): its own
                // static value, else Kafka's built-in one.
                let synonyms = alternate_synonyms(config, broker_key);
                let value = synonyms.first().and_then(|s| s.value.clone());
                (synonyms, value)
            };
            let kind = if broker_key.ends_with(".hours") || broker_key.ends_with(".minutes") {
                ConfigType::Int
            } else {
                *kind
            };
            out.push(entry(broker_key, value, i != 0, kind, doc, synonyms));
        }
    }
    for key in BROKER_KEYS {
        let rendered = (key.render)(config);
        let source = if key.names.iter().any(|n| config.explicit.contains_key(*n)) {
            ConfigSource::StaticBroker
        } else {
            ConfigSource::Default
        };
        for name in key.names {
            let synonyms = vec![synonym(name, rendered.clone(), source)];
            out.push(entry(
                name,
                rendered.clone(),
                true,
                key.kind,
                key.doc,
                synonyms,
            ));
        }
    }
    out.extend(listener_limit_entries(config));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The listener-level connection limits a listener sets
/// (`listener.name.<name>.max.connections`, `...max.connection.creation.rate`),
/// read-only static entries as Kafka lists a listener's prefixed keys.
fn listener_limit_entries(config: &BrokerConfig) -> Vec<DescribedConfig> {
    use super::connections::{listener_key, MAX_CONNECTIONS, MAX_CONNECTION_CREATION_RATE};
    let mut out = Vec::new();
    for (listener, limits) in &config.connection_limits.listeners {
        let keys = [
            (MAX_CONNECTIONS, limits.max_connections, "Open connections on this listener; at the limit new ones wait until one closes."),
            (MAX_CONNECTION_CREATION_RATE, limits.max_connection_creation_rate, "New connections accepted per second on this listener; accepting is delayed above it."),
        ];
        for (key, value, doc) in keys {
            let Some(value) = value else { continue };
            let name = listener_key(listener, key);
            let value = Some(value.to_string());
            let synonyms = vec![synonym(&name, value.clone(), ConfigSource::StaticBroker)];
            out.push(entry(&name, value, true, ConfigType::Int, doc, synonyms));
        }
    }
    out
}

/// The cluster-wide dynamic defaults (the broker resource named `""`):
/// only the keys set there, as Kafka describes it.
pub fn describe_broker_default(cluster: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
    let mut out = Vec::new();
    for (key, value) in cluster {
        let Some(topic_key) = topic_key_for_dynamic_broker_key(key) else {
            continue;
        };
        let (kind, doc) = topic_key_doc(topic_key);
        let synonyms = vec![synonym(
            key,
            Some(value.clone()),
            ConfigSource::DynamicDefaultBroker,
        )];
        out.push(entry(key, Some(value.clone()), false, kind, doc, synonyms));
    }
    out
}

/// Whether `key` is a broker config rafka can change at runtime.
pub fn is_dynamic_broker_key(key: &str) -> bool {
    topic_key_for_dynamic_broker_key(key).is_some()
}

/// Whether `key` is a broker config rafka knows (dynamic or read-only).
pub fn is_known_broker_key(key: &str) -> bool {
    BROKER_SYNONYMS
        .iter()
        .any(|(_, brokers)| brokers.contains(&key))
        || BROKER_KEYS.iter().any(|k| k.names.contains(&key))
}

fn topic_key_doc(topic_key: &str) -> (ConfigType, &'static str) {
    let i = BROKER_SYNONYMS
        .iter()
        .position(|(k, _)| *k == topic_key)
        .unwrap_or(0);
    TOPIC_KEY_DOCS[i]
}

/// The broker-level values a topic key's default is chosen among, highest
/// precedence first: this broker's dynamic value, the cluster's, the
/// static ones (as written), Kafka's built-in one.
fn broker_synonyms(
    config: &BrokerConfig,
    layers: DynamicLayers<'_>,
    brokers: &[&'static str],
) -> Vec<Synonym> {
    let Some(primary) = brokers.first().copied() else {
        return Vec::new();
    };
    let mut synonyms = Vec::new();
    if let Some(value) = layers.broker.get(primary) {
        synonyms.push(synonym(
            primary,
            Some(value.clone()),
            ConfigSource::DynamicBroker,
        ));
    }
    if let Some(value) = layers.cluster.get(primary) {
        let source = ConfigSource::DynamicDefaultBroker;
        synonyms.push(synonym(primary, Some(value.clone()), source));
    }
    for broker_key in brokers {
        if let Some(value) = config.explicit.get(*broker_key) {
            let source = ConfigSource::StaticBroker;
            synonyms.push(synonym(broker_key, Some(value.clone()), source));
        }
    }
    synonyms.push(builtin_synonym(brokers));
    synonyms
}

/// An alternate broker key's own synonyms: its static value if set, then
/// Kafka's default for it if it has one.
fn alternate_synonyms(config: &BrokerConfig, broker_key: &str) -> Vec<Synonym> {
    let mut synonyms = Vec::new();
    if let Some(value) = config.explicit.get(broker_key) {
        synonyms.push(synonym(
            broker_key,
            Some(value.clone()),
            ConfigSource::StaticBroker,
        ));
    }
    if let Some((_, value)) = KAFKA_DEFAULT_SYNONYMS
        .iter()
        .find(|(k, _)| *k == broker_key)
    {
        synonyms.push(synonym(
            broker_key,
            Some(value.to_string()),
            ConfigSource::Default,
        ));
    }
    synonyms
}

/// The DEFAULT_CONFIG synonym of a topic key, named as Kafka names it.
fn builtin_synonym(brokers: &[&'static str]) -> Synonym {
    for broker_key in brokers {
        if let Some((_, value)) = KAFKA_DEFAULT_SYNONYMS.iter().find(|(k, _)| k == broker_key) {
            return synonym(broker_key, Some(value.to_string()), ConfigSource::Default);
        }
    }
    let primary = brokers.first().copied().unwrap_or_default();
    let topic_key = super::topic::topic_key_for_dynamic_broker_key(primary).unwrap_or_default();
    let value = TopicConfig::default().value_string(topic_key);
    synonym(primary, value, ConfigSource::Default)
}

fn synonym(name: &str, value: Option<String>, source: ConfigSource) -> Synonym {
    Synonym {
        name: name.to_string(),
        value,
        source,
    }
}

/// One described config; its source is its first synonym's.
fn entry(
    name: &str,
    value: Option<String>,
    read_only: bool,
    kind: ConfigType,
    doc: &'static str,
    synonyms: Vec<Synonym>,
) -> DescribedConfig {
    let source = synonyms.first().map_or(ConfigSource::Default, |s| s.source);
    DescribedConfig {
        name: name.to_string(),
        value,
        source,
        read_only,
        sensitive: false,
        kind,
        doc,
        synonyms,
    }
}

/// A read-only broker key: its type, how to render its value, its doc.
struct BrokerKey {
    /// The key, and any older spelling Kafka still accepts.
    names: &'static [&'static str],
    kind: ConfigType,
    render: fn(&BrokerConfig) -> Option<String>,
    doc: &'static str,
}

fn some<T: ToString>(value: T) -> Option<String> {
    Some(value.to_string())
}

fn joined<T: ToString>(items: &[T]) -> Option<String> {
    let items: Vec<String> = items.iter().map(ToString::to_string).collect();
    Some(items.join(","))
}

/// The broker keys that are not topic defaults, each read-only.
const BROKER_KEYS: &[BrokerKey] = &[
    BrokerKey {
        names: &["advertised.listeners"],
        kind: ConfigType::String,
        render: |c| joined(&c.advertised_listeners),
        doc: "Listeners published to clients in Metadata, if different from listeners.",
    },
    BrokerKey {
        names: &["allow.everyone.if.no.acl.found"],
        kind: ConfigType::Boolean,
        render: |c| some(c.allow_everyone_if_no_acl_found),
        doc: "Allow a request on a resource that has no ACL at all.",
    },
    BrokerKey {
        names: &["authorizer.class.name"],
        kind: ConfigType::String,
        render: |c| Some(c.authorizer_class_name.clone().unwrap_or_default()),
        doc: "The authorizer: StandardAuthorizer (or AclAuthorizer) turns ACLs on; empty: off.",
    },
    BrokerKey {
        names: &["auto.create.topics.enable"],
        kind: ConfigType::Boolean,
        render: |c| some(c.auto_create_topics_enable),
        doc: "Create a topic on a Metadata request that names an unknown one.",
    },
    BrokerKey {
        names: &["broker.heartbeat.interval.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.broker_heartbeat_interval_ms),
        doc: "How often a broker heartbeats the controller quorum, in ms.",
    },
    BrokerKey {
        names: &["broker.session.timeout.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.broker_session_timeout_ms),
        doc: "A broker without a heartbeat for this long is fenced, in ms.",
    },
    BrokerKey {
        names: &["controller.listener.names"],
        kind: ConfigType::String,
        render: |c| Some(c.controller_listener_names.join(",")),
        doc: "Names of the controller listeners; a voter's binds at its controller.quorum.voters address.",
    },
    BrokerKey {
        names: &["controller.quorum.bootstrap.servers"],
        kind: ConfigType::List,
        render: |c| joined(&c.quorum.bootstrap_servers),
        doc: "Controllers to find the quorum through, as host:port entries.",
    },
    BrokerKey {
        names: &["controller.quorum.election.backoff.max.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.quorum.election_backoff_max_ms),
        doc: "Longest backoff before a new election, in ms (exponential backoff against gridlocked elections).",
    },
    BrokerKey {
        names: &["controller.quorum.election.timeout.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.quorum.election_timeout_ms),
        doc: "Longest wait without hearing from the leader before a new election, in ms.",
    },
    BrokerKey {
        names: &["controller.quorum.fetch.timeout.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.quorum.fetch_timeout_ms),
        doc: "Longest time without a successful fetch from the leader before a voter becomes a candidate, in ms.",
    },
    BrokerKey {
        names: &["controller.quorum.request.timeout.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.quorum.request_timeout_ms),
        doc: "How long a quorum request waits for its response, in ms.",
    },
    BrokerKey {
        names: &["controller.quorum.voters"],
        kind: ConfigType::List,
        render: |c| joined(&c.quorum.voters),
        doc: "The voters of the metadata quorum as id@host:port entries (empty: a single node).",
    },
    BrokerKey {
        names: &["broker.rack"],
        kind: ConfigType::String,
        render: |c| c.rack.clone(),
        doc: "The rack of this broker, reported to clients in Metadata and DescribeCluster.",
    },
    BrokerKey {
        names: &["connections.max.idle.ms"],
        kind: ConfigType::Long,
        render: |c| some(c.connections_max_idle_ms),
        doc: "Close connections idle for this long, in ms.",
    },
    BrokerKey {
        names: &["default.replication.factor"],
        kind: ConfigType::Int,
        render: |c| some(c.default_replication_factor),
        doc: "Replication factor of topics created without one.",
    },
    BrokerKey {
        names: &["delete.topic.enable"],
        kind: ConfigType::Boolean,
        render: |c| some(c.delete_topic_enable),
        doc: "Whether DeleteTopics may delete topics.",
    },
    BrokerKey {
        names: &["fetch.max.bytes"],
        kind: ConfigType::Int,
        render: |c| some(c.fetch_max_bytes),
        doc: "Most bytes one Fetch response carries.",
    },
    BrokerKey {
        names: &["replica.fetch.max.bytes"],
        kind: ConfigType::Int,
        render: |c| some(c.replica_fetch_max_bytes),
        doc: "Bytes a follower asks per partition in one fetch.",
    },
    BrokerKey {
        names: &["replica.fetch.response.max.bytes"],
        kind: ConfigType::Int,
        render: |c| some(c.replica_fetch_response_max_bytes),
        doc: "Bytes a follower asks per fetch.",
    },
    BrokerKey {
        names: &["replica.fetch.wait.max.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.replica_fetch_wait_max_ms),
        doc: "How long a follower's fetch waits at the leader for new data.",
    },
    BrokerKey {
        names: &["replica.lag.time.max.ms"],
        kind: ConfigType::Long,
        render: |c| some(c.replica_lag_time_max_ms),
        doc: "A follower not caught up for this long leaves the ISR.",
    },
    BrokerKey {
        names: &["auto.leader.rebalance.enable"],
        kind: ConfigType::Boolean,
        render: |c| some(c.auto_leader_rebalance_enable),
        doc: "The active controller moves leadership back to preferred replicas in sync.",
    },
    BrokerKey {
        names: &["leader.imbalance.check.interval.seconds"],
        kind: ConfigType::Long,
        render: |c| some(c.leader_imbalance_check_interval_seconds),
        doc: "How often the active controller looks for leaders off their preferred replica.",
    },
    BrokerKey {
        names: &["replica.high.watermark.checkpoint.interval.ms"],
        kind: ConfigType::Long,
        render: |c| some(c.replica_high_watermark_checkpoint_interval_ms),
        doc: "How often the high watermarks are checkpointed to disk.",
    },
    BrokerKey {
        names: &["replica.selector.class"],
        kind: ConfigType::String,
        render: |c| {
            c.replica_selector_rack_aware
                .then(|| super::broker::REPLICA_SELECTORS[1].to_string())
        },
        doc: "How a consumer's fetch picks its replica: the leader (unset) or an in-sync one in its rack.",
    },
    BrokerKey {
        names: &["group.initial.rebalance.delay.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.group_initial_rebalance_delay_ms),
        doc: "How long an empty group waits for more members before its first rebalance, in ms.",
    },
    BrokerKey {
        names: &["group.max.session.timeout.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.group_max_session_timeout_ms),
        doc: "Largest session timeout a group member may ask for, in ms.",
    },
    BrokerKey {
        names: &["group.max.size"],
        kind: ConfigType::Int,
        render: |c| some(c.group_max_size),
        doc: "Most members one group may have.",
    },
    BrokerKey {
        names: &["group.min.session.timeout.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.group_min_session_timeout_ms),
        doc: "Smallest session timeout a group member may ask for, in ms.",
    },
    BrokerKey {
        names: &["listener.security.protocol.map"],
        kind: ConfigType::String,
        render: |c| {
            let pairs: Vec<String> = c
                .listener_protocols
                .iter()
                .map(|(name, protocol)| format!("{name}:{}", protocol.name()))
                .collect();
            Some(pairs.join(","))
        },
        doc: "Security protocol of each listener name.",
    },
    BrokerKey {
        names: &["listeners"],
        kind: ConfigType::String,
        render: |c| joined(&c.listeners),
        doc: "The addresses the broker listens on, as NAME://host:port.",
    },
    BrokerKey {
        names: &["log.dirs"],
        kind: ConfigType::String,
        render: |c| {
            let dirs: Vec<String> = c.log_dirs.iter().map(|d| d.display().to_string()).collect();
            Some(dirs.join(","))
        },
        doc: "The directories partition data is kept in.",
    },
    BrokerKey {
        names: &["log.retention.check.interval.ms"],
        kind: ConfigType::Long,
        render: |c| some(c.log_retention_check_interval_ms),
        doc: "How often segments past retention are looked for, in ms.",
    },
    BrokerKey {
        names: &["max.connection.creation.rate"],
        kind: ConfigType::Int,
        render: |c| some(c.connection_limits.max_connection_creation_rate),
        doc: "New connections accepted per second over every listener; accepting is delayed above it (listener.name.<name>.max.connection.creation.rate for one listener).",
    },
    BrokerKey {
        names: &["max.connections"],
        kind: ConfigType::Int,
        render: |c| some(c.connection_limits.max_connections),
        doc: "Open connections over every listener; at the limit new ones wait until one closes (listener.name.<name>.max.connections for one listener).",
    },
    BrokerKey {
        names: &["max.connections.per.ip"],
        kind: ConfigType::Int,
        render: |c| some(c.connection_limits.max_connections_per_ip),
        doc: "Open connections from one IP address; beyond it new ones are closed at once (0 only with overrides).",
    },
    BrokerKey {
        names: &["max.connections.per.ip.overrides"],
        kind: ConfigType::String,
        render: |c| Some(c.connection_limits.overrides_string()),
        doc: "Per-IP or host name overrides of max.connections.per.ip, as host:count,host:count.",
    },
    BrokerKey {
        names: &["metadata.log.dir"],
        kind: ConfigType::String,
        render: |c| c.metadata_log_dir.as_ref().map(|d| d.display().to_string()),
        doc: "Where the metadata log lives (default: the first of log.dirs).",
    },
    BrokerKey {
        names: &["broker.id", "node.id"],
        kind: ConfigType::Int,
        render: |c| some(c.node_id),
        doc: "This broker's id.",
    },
    BrokerKey {
        names: &["num.partitions"],
        kind: ConfigType::Int,
        render: |c| some(c.num_partitions),
        doc: "Partitions of topics created without a count.",
    },
    BrokerKey {
        names: &["offsets.retention.check.interval.ms"],
        kind: ConfigType::Long,
        render: |c| some(c.offsets_retention_check_interval_ms),
        doc: "How often expired committed offsets are removed, in ms.",
    },
    BrokerKey {
        names: &["offsets.retention.minutes"],
        kind: ConfigType::Int,
        render: |c| some(c.offsets_retention_minutes),
        doc: "How long the committed offsets of an empty group are kept, in minutes.",
    },
    BrokerKey {
        names: &["offsets.topic.num.partitions"],
        kind: ConfigType::Int,
        render: |c| some(c.offsets_topic_num_partitions),
        doc: "Partitions of __consumer_offsets.",
    },
    BrokerKey {
        names: &["offsets.topic.replication.factor"],
        kind: ConfigType::Short,
        render: |c| some(c.offsets_topic_replication_factor),
        doc: "Replicas of each __consumer_offsets partition in a cluster, at most the live brokers when it is created.",
    },
    BrokerKey {
        names: &["process.roles"],
        kind: ConfigType::List,
        render: |c| some(c.process_roles),
        doc: "The roles of this node: broker, controller, or broker,controller (both).",
    },
    BrokerKey {
        names: &["quota.window.num"],
        kind: ConfigType::Int,
        render: |c| some(c.quota_window_num),
        doc: "Samples a client quota's rate is measured over.",
    },
    BrokerKey {
        names: &["quota.window.size.seconds"],
        kind: ConfigType::Int,
        render: |c| some(c.quota_window_size_seconds),
        doc: "Length of one client quota sample, in seconds.",
    },
    BrokerKey {
        names: &["rafka.fetch.max.wait.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.fetch_max_wait_ms),
        doc: "The longest a Fetch waits for min_bytes, whatever it asks, in ms.",
    },
    BrokerKey {
        names: &["rafka.flush.interval.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.flush_interval_ms),
        doc: "How long a shard may hold a group commit open before its fdatasync, in ms.",
    },
    BrokerKey {
        names: &["rafka.log.dir.min.free.bytes"],
        kind: ConfigType::Long,
        render: |c| c.log_dir_min_free_bytes.map(|b| b.to_string()),
        doc: "Below this many free bytes produce to user topics is refused (unset: 1 GiB or 5% of the filesystem).",
    },
    BrokerKey {
        names: &["rafka.log.open.files.max"],
        kind: ConfigType::Long,
        render: |c| some(c.log_open_files_max),
        doc: "Segment and index files kept open at once (0: a quarter of RLIMIT_NOFILE).",
    },
    BrokerKey {
        names: &["rafka.log.scrub.bytes.per.second"],
        kind: ConfigType::Long,
        render: |c| some(c.log_scrub_bytes_per_second),
        doc: "Rate at which each shard re-verifies closed segments (0: off).",
    },
    BrokerKey {
        names: &["socket.request.max.bytes"],
        kind: ConfigType::Int,
        render: |c| some(c.socket_request_max_bytes),
        doc: "Largest request accepted, in bytes.",
    },
    BrokerKey {
        names: &["super.users"],
        kind: ConfigType::List,
        render: |c| Some(c.super_users.join(";")),
        doc: "Principals that bypass ACLs, separated by ';'.",
    },
    BrokerKey {
        names: &["transaction.max.timeout.ms"],
        kind: ConfigType::Int,
        render: |c| some(c.transaction_max_timeout_ms),
        doc: "Largest transaction timeout a producer may ask for, in ms.",
    },
    BrokerKey {
        names: &["transaction.remove.expired.transaction.cleanup.interval.ms"],
        kind: ConfigType::Long,
        render: |c| some(c.transaction_remove_expired_interval_ms),
        doc: "How often idle transactional ids are looked for, in ms.",
    },
    BrokerKey {
        names: &["transaction.state.log.min.isr"],
        kind: ConfigType::Int,
        render: |c| some(c.transaction_state_log_min_isr),
        doc: "min.insync.replicas of __transaction_state in a cluster, at most its replication factor.",
    },
    BrokerKey {
        names: &["transaction.state.log.num.partitions"],
        kind: ConfigType::Int,
        render: |c| some(c.transaction_state_log_num_partitions),
        doc: "Partitions of __transaction_state.",
    },
    BrokerKey {
        names: &["transaction.state.log.replication.factor"],
        kind: ConfigType::Short,
        render: |c| some(c.transaction_state_log_replication_factor),
        doc: "Replicas of each __transaction_state partition in a cluster, at most the live brokers when it is created.",
    },
    BrokerKey {
        names: &["transactional.id.expiration.ms"],
        kind: ConfigType::Long,
        render: |c| some(c.transactional_id_expiration_ms),
        doc: "An idle transactional id is forgotten after this long, in ms.",
    },
    BrokerKey {
        names: &["write.caching"],
        kind: ConfigType::Boolean,
        render: |c| some(c.write_caching),
        doc: "Acknowledge acks=all once in the page cache, before fdatasync (default false: durable first).",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn topic_precedence_and_synonyms() {
        let (config, _) = BrokerConfig::from_properties_text(
            "log.retention.hours=24\nlog.segment.bytes=2097152\n",
        )
        .unwrap();
        let cluster = BTreeMap::from([("log.segment.bytes".to_string(), "3145728".to_string())]);
        let broker = BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
        let layers = DynamicLayers {
            cluster: &cluster,
            broker: &broker,
        };
        let overrides = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        let described = describe_topic(&config, layers, &overrides);
        let find = |name: &str| described.iter().find(|d| d.name == name).unwrap().clone();
        let retention = find("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("1000"));
        assert_eq!(retention.source, ConfigSource::DynamicBroker);
        let names: Vec<(&str, Option<&str>, ConfigSource)> = retention
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
            .collect();
        assert_eq!(
            names,
            vec![
                (
                    "log.retention.ms",
                    Some("1000"),
                    ConfigSource::DynamicBroker
                ),
                (
                    "log.retention.hours",
                    Some("24"),
                    ConfigSource::StaticBroker
                ),
                ("log.retention.hours", Some("168"), ConfigSource::Default),
            ]
        );
        let segment = find("segment.bytes");
        assert_eq!(
            (segment.value.as_deref(), segment.source),
            (Some("3145728"), ConfigSource::DynamicDefaultBroker)
        );
        let cleanup = find("cleanup.policy");
        assert_eq!(
            (cleanup.value.as_deref(), cleanup.source, cleanup.kind),
            (
                Some("compact"),
                ConfigSource::TopicOverride,
                ConfigType::List
            )
        );
        let ratio = find("min.cleanable.dirty.ratio");
        assert_eq!(
            (ratio.value.as_deref(), ratio.source, ratio.kind),
            (Some("0.5"), ConfigSource::Default, ConfigType::Double)
        );
        assert_eq!(described.len(), BROKER_SYNONYMS.len());
    }

    #[test]
    fn broker_keys_are_read_only_except_dynamic_ones() {
        let (config, _) = BrokerConfig::from_properties_text("num.partitions=3\n").unwrap();
        let (cluster, broker) = (empty(), empty());
        let layers = DynamicLayers {
            cluster: &cluster,
            broker: &broker,
        };
        let described = describe_broker(&config, layers);
        let find = |name: &str| described.iter().find(|d| d.name == name).unwrap().clone();
        let partitions = find("num.partitions");
        assert_eq!(
            (
                partitions.value.as_deref(),
                partitions.source,
                partitions.read_only
            ),
            (Some("3"), ConfigSource::StaticBroker, true)
        );
        let retention = find("log.retention.ms");
        assert_eq!(
            (
                retention.value.as_deref(),
                retention.source,
                retention.read_only
            ),
            (Some("604800000"), ConfigSource::Default, false)
        );
        let hours = find("log.retention.hours");
        assert_eq!(
            (hours.value.as_deref(), hours.source, hours.read_only),
            (Some("168"), ConfigSource::Default, true)
        );
        let minutes = find("log.retention.minutes");
        assert_eq!((minutes.value, minutes.read_only), (None, true));
        assert_eq!(find("broker.id").value.as_deref(), Some("0"));
        let segment = find("log.segment.bytes").synonyms;
        assert_eq!(segment.len(), 1);
        assert_eq!(
            (segment[0].name.as_str(), segment[0].value.as_deref()),
            ("log.segment.bytes", Some("1073741824"))
        );
        assert_eq!(
            find("listeners").value.as_deref(),
            Some("PLAINTEXT://127.0.0.1:9092")
        );
        // Kafka's SHORT replication factors and the txn log's min ISR.
        for (name, value, kind) in [
            ("offsets.topic.replication.factor", "3", ConfigType::Short),
            (
                "transaction.state.log.replication.factor",
                "3",
                ConfigType::Short,
            ),
            ("transaction.state.log.min.isr", "2", ConfigType::Int),
        ] {
            let d = find(name);
            assert_eq!(
                (d.value.as_deref(), d.source, d.kind, d.read_only),
                (Some(value), ConfigSource::Default, kind, true),
                "{name}"
            );
        }
        let mut names: Vec<&str> = described.iter().map(|d| d.name.as_str()).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort_unstable();
            s
        };
        assert_eq!(names, sorted);
        names.dedup();
        assert_eq!(names.len(), described.len());
        assert!(is_dynamic_broker_key("log.segment.bytes"));
        assert!(!is_dynamic_broker_key("log.retention.hours"));
        assert!(is_known_broker_key("log.retention.hours"));
        assert!(!is_known_broker_key("no.such.key"));
        let max = find("max.connections");
        assert_eq!(
            (max.value.as_deref(), max.source, max.kind),
            (Some("2147483647"), ConfigSource::Default, ConfigType::Int)
        );
        assert_eq!(
            find("max.connections.per.ip.overrides").value.as_deref(),
            Some("")
        );
    }

    #[test]
    fn connection_limits_are_described_with_listener_keys() {
        let (config, _) = BrokerConfig::from_properties_text(
            "max.connections.per.ip=3\nmax.connections.per.ip.overrides=127.0.0.1:5\n\
             listener.name.plaintext.max.connections=9\n",
        )
        .unwrap();
        let (cluster, broker) = (empty(), empty());
        let layers = DynamicLayers {
            cluster: &cluster,
            broker: &broker,
        };
        let described = describe_broker(&config, layers);
        let find = |name: &str| described.iter().find(|d| d.name == name).unwrap().clone();
        let per_ip = find("max.connections.per.ip");
        assert_eq!(
            (per_ip.value.as_deref(), per_ip.source),
            (Some("3"), ConfigSource::StaticBroker)
        );
        let overrides = find("max.connections.per.ip.overrides");
        assert_eq!(overrides.value.as_deref(), Some("127.0.0.1:5"));
        let listener = find("listener.name.plaintext.max.connections");
        assert_eq!(
            (
                listener.value.as_deref(),
                listener.source,
                listener.read_only
            ),
            (Some("9"), ConfigSource::StaticBroker, true)
        );
        assert_eq!(
            find("max.connection.creation.rate").value.as_deref(),
            Some("2147483647")
        );
    }
}
