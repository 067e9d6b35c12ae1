//! Topic configs with Kafka's names, validators and defaults. The defaults
//! come from the broker (`segment.bytes` <- `log.segment.bytes`, ...; see
//! [`BROKER_SYNONYMS`]); a topic's overrides are kept as the strings the
//! client sent, so DescribeConfigs returns them unchanged, and parsed into a
//! typed [`TopicConfig`] for the log.

use rafka_proto::error::ErrorCode;
use std::collections::BTreeMap;
use std::fmt;

use rafka_proto::record::{Compression, TargetCompression, TimestampType};

use crate::log::LogConfig;

use super::value::{
    parse_bool, parse_f64, parse_i32, parse_i64, parse_one_of, split_list, Expected, InvalidValue,
};

/// Kafka's lower bound for `segment.bytes` since 4.0 (it was 14 before):
/// smaller segments only multiply files and open descriptors.
pub const SEGMENT_BYTES_MIN: i32 = 1024 * 1024;

/// Longest override value accepted: far above any legal value, and it keeps
/// a client from storing megabytes in the metadata log through a list key.
pub const TOPIC_CONFIG_VALUE_BYTES_MAX: usize = 16 * 1024;

/// Which of delete (retention) and compact apply to the topic's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

const CLEANUP_NAMES: &[&str] = &["compact", "delete"];

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };

    pub fn parse(key: &str, value: &str) -> Result<CleanupPolicy, InvalidValue> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for item in split_list(value) {
            match item.to_ascii_lowercase().as_str() {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                _ => {
                    return Err(InvalidValue::new(
                        key,
                        value,
                        Expected::ListOf(CLEANUP_NAMES),
                    ))
                }
            }
        }
        if !policy.delete && !policy.compact {
            return Err(InvalidValue::new(
                key,
                value,
                Expected::ListOf(CLEANUP_NAMES),
            ));
        }
        Ok(policy)
    }
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.compact, self.delete) {
            (true, true) => write!(f, "compact,delete"),
            (true, false) => write!(f, "compact"),
            _ => write!(f, "delete"),
        }
    }
}

/// `compression.type`: keep the producer's codec, or recompress to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionType {
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

const COMPRESSION_NAMES: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];
const COMPRESSION_TYPES: [CompressionType; 6] = [
    CompressionType::Producer,
    CompressionType::Uncompressed,
    CompressionType::Gzip,
    CompressionType::Snappy,
    CompressionType::Lz4,
    CompressionType::Zstd,
];

impl CompressionType {
    pub fn parse(key: &str, value: &str) -> Result<CompressionType, InvalidValue> {
        let i = parse_one_of(key, value, COMPRESSION_NAMES)?;
        Ok(COMPRESSION_TYPES[i])
    }

    /// The codec batches are stored with; None keeps the producer's.
    pub fn codec(self) -> Option<Compression> {
        match self {
            CompressionType::Producer => None,
            CompressionType::Uncompressed => Some(Compression::None),
            CompressionType::Gzip => Some(Compression::Gzip),
            CompressionType::Snappy => Some(Compression::Snappy),
            CompressionType::Lz4 => Some(Compression::Lz4),
            CompressionType::Zstd => Some(Compression::Zstd),
        }
    }

    pub fn name(self) -> &'static str {
        let i = COMPRESSION_TYPES
            .iter()
            .position(|t| *t == self)
            .unwrap_or(0);
        COMPRESSION_NAMES[i]
    }
}

const TIMESTAMP_NAMES: &[&str] = &["CreateTime", "LogAppendTime"];

fn parse_timestamp_type(key: &str, value: &str) -> Result<TimestampType, InvalidValue> {
    match parse_one_of(key, value, TIMESTAMP_NAMES)? {
        0 => Ok(TimestampType::CreateTime),
        _ => Ok(TimestampType::LogAppendTime),
    }
}

fn timestamp_type_name(t: TimestampType) -> &'static str {
    match t {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    }
}

/// gzip accepts -1 (the codec's default) or 1..=9.
fn parse_gzip_level(key: &str, value: &str) -> Result<i32, InvalidValue> {
    let level = parse_i32(key, value, -1, 9)?;
    if level == 0 {
        return Err(InvalidValue::new(
            key,
            value,
            Expected::Int { min: 1, max: 9 },
        ));
    }
    Ok(level)
}

/// The effective settings of one topic's log, every field typed.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    pub cleanup_policy: CleanupPolicy,
    pub compression_type: CompressionType,
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    pub delete_retention_ms: i64,
    pub file_delete_delay_ms: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub index_interval_bytes: i32,
    pub max_compaction_lag_ms: i64,
    pub max_message_bytes: i32,
    pub message_timestamp_after_max_ms: i64,
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_type: TimestampType,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub min_insync_replicas: i32,
    pub preallocate: bool,
    /// -1: no size limit.
    pub retention_bytes: i64,
    /// -1: no time limit.
    pub retention_ms: i64,
    pub segment_bytes: i32,
    pub segment_index_bytes: i32,
    pub segment_jitter_ms: i64,
    pub segment_ms: i64,
    pub unclean_leader_election_enable: bool,
}

const HOUR_MS: i64 = 60 * 60 * 1000;

impl Default for TopicConfig {
    /// Kafka's defaults for a broker with no `log.*` settings.
    fn default() -> Self {
        TopicConfig {
            cleanup_policy: CleanupPolicy::DELETE,
            compression_type: CompressionType::Producer,
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            delete_retention_ms: 24 * HOUR_MS,
            file_delete_delay_ms: 60_000,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            index_interval_bytes: 4096,
            max_compaction_lag_ms: i64::MAX,
            // 1 MiB plus the 12-byte log overhead (offset + length).
            max_message_bytes: 1024 * 1024 + 12,
            message_timestamp_after_max_ms: HOUR_MS,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_type: TimestampType::CreateTime,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            min_insync_replicas: 1,
            preallocate: false,
            retention_bytes: -1,
            retention_ms: 7 * 24 * HOUR_MS,
            segment_bytes: 1024 * 1024 * 1024,
            segment_index_bytes: 10 * 1024 * 1024,
            segment_jitter_ms: 0,
            segment_ms: 7 * 24 * HOUR_MS,
            unclean_leader_election_enable: false,
        }
    }
}

type ParseFn = fn(&mut TopicConfig, &str, &str) -> Result<(), InvalidValue>;
type ShowFn = fn(&TopicConfig) -> String;

/// One topic config key: how to parse it into and render it from the struct.
struct KeyDef {
    name: &'static str,
    parse: ParseFn,
    show: ShowFn,
}

macro_rules! key {
    ($name:literal, $field:ident, $parse:expr) => {
        KeyDef {
            name: $name,
            parse: |c, k, v| {
                c.$field = ($parse)(k, v)?;
                Ok(())
            },
            show: |c| c.$field.to_string(),
        }
    };
    ($name:literal, $field:ident, $parse:expr, $show:expr) => {
        KeyDef {
            name: $name,
            parse: |c, k, v| {
                c.$field = ($parse)(k, v)?;
                Ok(())
            },
            show: |c| ($show)(c.$field).to_string(),
        }
    };
}

const MAX64: i64 = i64::MAX;
const MAX32: i32 = i32::MAX;

/// Every topic config rafka knows, sorted by name (DescribeConfigs order).
const KEYS: &[KeyDef] = &[
    key!("cleanup.policy", cleanup_policy, CleanupPolicy::parse),
    key!(
        "compression.gzip.level",
        compression_gzip_level,
        parse_gzip_level
    ),
    key!("compression.lz4.level", compression_lz4_level, |k, v| {
        parse_i32(k, v, 1, 17)
    }),
    key!(
        "compression.type",
        compression_type,
        CompressionType::parse,
        CompressionType::name
    ),
    key!("compression.zstd.level", compression_zstd_level, |k, v| {
        parse_i32(k, v, -131072, 22)
    }),
    key!(
        "delete.retention.ms",
        delete_retention_ms,
        |k, v| parse_i64(k, v, 0, MAX64)
    ),
    key!("file.delete.delay.ms", file_delete_delay_ms, |k, v| {
        parse_i64(k, v, 0, MAX64)
    }),
    key!("flush.messages", flush_messages, |k, v| parse_i64(
        k, v, 1, MAX64
    )),
    key!("flush.ms", flush_ms, |k, v| parse_i64(k, v, 0, MAX64)),
    key!("index.interval.bytes", index_interval_bytes, |k, v| {
        parse_i32(k, v, 0, MAX32)
    }),
    key!("max.compaction.lag.ms", max_compaction_lag_ms, |k, v| {
        parse_i64(k, v, 1, MAX64)
    }),
    key!("max.message.bytes", max_message_bytes, |k, v| parse_i32(
        k, v, 0, MAX32
    )),
    key!(
        "message.timestamp.after.max.ms",
        message_timestamp_after_max_ms,
        |k, v| parse_i64(k, v, 0, MAX64)
    ),
    key!(
        "message.timestamp.before.max.ms",
        message_timestamp_before_max_ms,
        |k, v| parse_i64(k, v, 0, MAX64)
    ),
    key!(
        "message.timestamp.type",
        message_timestamp_type,
        parse_timestamp_type,
        timestamp_type_name
    ),
    key!(
        "min.cleanable.dirty.ratio",
        min_cleanable_dirty_ratio,
        |k, v| parse_f64(k, v, 0.0, 1.0)
    ),
    key!("min.compaction.lag.ms", min_compaction_lag_ms, |k, v| {
        parse_i64(k, v, 0, MAX64)
    }),
    key!(
        "min.insync.replicas",
        min_insync_replicas,
        |k, v| parse_i32(k, v, 1, MAX32)
    ),
    key!("preallocate", preallocate, parse_bool),
    key!("retention.bytes", retention_bytes, |k, v| parse_i64(
        k,
        v,
        i64::MIN,
        MAX64
    )),
    key!("retention.ms", retention_ms, |k, v| parse_i64(
        k, v, -1, MAX64
    )),
    key!("segment.bytes", segment_bytes, |k, v| parse_i32(
        k,
        v,
        SEGMENT_BYTES_MIN,
        MAX32
    )),
    key!(
        "segment.index.bytes",
        segment_index_bytes,
        |k, v| parse_i32(k, v, 4, MAX32)
    ),
    key!("segment.jitter.ms", segment_jitter_ms, |k, v| parse_i64(
        k, v, 0, MAX64
    )),
    key!("segment.ms", segment_ms, |k, v| parse_i64(k, v, 1, MAX64)),
    key!(
        "unclean.leader.election.enable",
        unclean_leader_election_enable,
        parse_bool
    ),
];

/// For each topic key, the broker keys that set its default, highest
/// precedence first (Kafka's `ServerTopicConfigSynonyms`).
pub const BROKER_SYNONYMS: &[(&str, &[&str])] = &[
    ("cleanup.policy", &["log.cleanup.policy"]),
    ("compression.gzip.level", &["compression.gzip.level"]),
    ("compression.lz4.level", &["compression.lz4.level"]),
    ("compression.type", &["compression.type"]),
    ("compression.zstd.level", &["compression.zstd.level"]),
    ("delete.retention.ms", &["log.cleaner.delete.retention.ms"]),
    ("file.delete.delay.ms", &["log.segment.delete.delay.ms"]),
    ("flush.messages", &["log.flush.interval.messages"]),
    (
        "flush.ms",
        &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
    ),
    ("index.interval.bytes", &["log.index.interval.bytes"]),
    (
        "max.compaction.lag.ms",
        &["log.cleaner.max.compaction.lag.ms"],
    ),
    ("max.message.bytes", &["message.max.bytes"]),
    (
        "message.timestamp.after.max.ms",
        &["log.message.timestamp.after.max.ms"],
    ),
    (
        "message.timestamp.before.max.ms",
        &["log.message.timestamp.before.max.ms"],
    ),
    ("message.timestamp.type", &["log.message.timestamp.type"]),
    (
        "min.cleanable.dirty.ratio",
        &["log.cleaner.min.cleanable.ratio"],
    ),
    (
        "min.compaction.lag.ms",
        &["log.cleaner.min.compaction.lag.ms"],
    ),
    ("min.insync.replicas", &["min.insync.replicas"]),
    ("preallocate", &["log.preallocate"]),
    ("retention.bytes", &["log.retention.bytes"]),
    (
        "retention.ms",
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
    ),
    ("segment.bytes", &["log.segment.bytes"]),
    ("segment.index.bytes", &["log.index.size.max.bytes"]),
    (
        "segment.jitter.ms",
        &["log.roll.jitter.ms", "log.roll.jitter.hours"],
    ),
    ("segment.ms", &["log.roll.ms", "log.roll.hours"]),
    (
        "unclean.leader.election.enable",
        &["unclean.leader.election.enable"],
    ),
];

// Each topic key has exactly one synonym entry, in the same order.
const _: () = assert!(KEYS.len() == BROKER_SYNONYMS.len());

/// The topic key a dynamic broker config sets the default of: only each
/// topic key's first broker synonym is dynamic (Kafka's
/// `TOPIC_CONFIG_SYNONYMS`), e.g. `log.retention.ms` but not
/// `log.retention.hours`.
pub fn topic_key_for_dynamic_broker_key(broker_key: &str) -> Option<&'static str> {
    BROKER_SYNONYMS
        .iter()
        .find(|(_, brokers)| brokers.first() == Some(&broker_key))
        .map(|(topic, _)| *topic)
}

/// The topic key a broker key sets the default of, if any.
pub fn topic_key_for_broker_key(broker_key: &str) -> Option<&'static str> {
    BROKER_SYNONYMS
        .iter()
        .find(|(_, brokers)| brokers.contains(&broker_key))
        .map(|(topic, _)| *topic)
}

/// Names of every topic config key, sorted.
pub fn topic_config_names() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|k| k.name)
}

fn key_def(name: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.name == name)
}

/// A rejected topic config (Kafka's INVALID_CONFIG, code 40); the Display
/// text is the error message returned to the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TopicConfigError {
    #[error("unknown topic config name: {key}")]
    UnknownKey { key: String },
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    #[error("value of {key} is {length} bytes, more than {TOPIC_CONFIG_VALUE_BYTES_MAX}")]
    ValueTooLong { key: String, length: usize },
    #[error("{key} ({value}) must not be greater than {other_key} ({other_value})")]
    Conflict {
        key: &'static str,
        value: i64,
        other_key: &'static str,
        other_value: i64,
    },
}

impl TopicConfigError {
    /// INVALID_CONFIG.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::INVALID_CONFIG
    }
}

impl TopicConfig {
    /// Sets one key from its string form.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), TopicConfigError> {
        let def = key_def(key).ok_or_else(|| TopicConfigError::UnknownKey {
            key: key.to_string(),
        })?;
        if value.len() > TOPIC_CONFIG_VALUE_BYTES_MAX {
            return Err(TopicConfigError::ValueTooLong {
                key: key.to_string(),
                length: value.len(),
            });
        }
        (def.parse)(self, key, value)?;
        Ok(())
    }

    /// The value of `key` as Kafka renders it, or None for an unknown key.
    pub fn value_string(&self, key: &str) -> Option<String> {
        key_def(key).map(|def| (def.show)(self))
    }

    /// This config with `overrides` applied and cross-key rules checked.
    pub fn with_overrides(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, TopicConfigError> {
        let mut config = self.clone();
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        config.check_cross_keys()?;
        Ok(config)
    }

    /// The settings the partition log enforces. A few values Kafka accepts
    /// do not fit the log's types; each maps to the value with the same
    /// effect: any negative `retention.bytes` is "no limit" (-1), and
    /// `segment.index.bytes` below one 12-byte entry rolls after every
    /// batch either way.
    pub fn log_config(&self) -> LogConfig {
        let unsigned = |v: i32| u32::try_from(v).unwrap_or(0);
        LogConfig {
            segment_bytes: unsigned(self.segment_bytes),
            segment_ms: self.segment_ms,
            segment_index_bytes: unsigned(self.segment_index_bytes).max(12),
            index_interval_bytes: unsigned(self.index_interval_bytes),
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes.max(-1),
            // 0 and 1 both refuse every batch (none is under 61 bytes).
            max_message_bytes: unsigned(self.max_message_bytes).max(1),
            message_timestamp_type: self.message_timestamp_type,
            cleanup_delete: self.cleanup_policy.delete,
            cleanup_compact: self.cleanup_policy.compact,
            delete_retention_ms: self.delete_retention_ms,
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            compression: self.target_compression(),
        }
    }

    /// `compression.type` with the level its codec is configured at;
    /// `None` for `producer`.
    pub fn target_compression(&self) -> Option<TargetCompression> {
        let codec = self.compression_type.codec()?;
        let level = match codec {
            Compression::Gzip => Some(self.compression_gzip_level),
            Compression::Lz4 => Some(self.compression_lz4_level),
            Compression::Zstd => Some(self.compression_zstd_level),
            Compression::None | Compression::Snappy => None,
        };
        Some(TargetCompression { codec, level })
    }

    fn check_cross_keys(&self) -> Result<(), TopicConfigError> {
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms {
            return Err(TopicConfigError::Conflict {
                key: "min.compaction.lag.ms",
                value: self.min_compaction_lag_ms,
                other_key: "max.compaction.lag.ms",
                other_value: self.max_compaction_lag_ms,
            });
        }
        Ok(())
    }
}

/// Where a described value comes from; the numbers are Kafka's
/// DescribeConfigs `ConfigSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (TOPIC_CONFIG).
    TopicOverride = 1,
    /// Set dynamically for this broker (DYNAMIC_BROKER_CONFIG).
    DynamicBroker = 2,
    /// Set dynamically as the cluster-wide default
    /// (DYNAMIC_DEFAULT_BROKER_CONFIG).
    DynamicDefaultBroker = 3,
    /// Set in the broker's properties file (STATIC_BROKER_CONFIG).
    StaticBroker = 4,
    /// Kafka's built-in default (DEFAULT_CONFIG).
    Default = 5,
    /// A logger's level (DYNAMIC_BROKER_LOGGER_CONFIG).
    DynamicBrokerLogger = 6,
}

/// One row of a topic's described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: &'static str,
    /// The override exactly as the client sent it, or the rendered default.
    pub value: String,
    pub source: ConfigSource,
    /// The broker key that sets the default (for DescribeConfigs synonyms).
    pub broker_synonym: &'static str,
}

/// Topic defaults as the broker resolved them, and which of them its
/// properties file set explicitly.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TopicDefaults {
    pub config: TopicConfig,
    /// Topic keys whose default came from the broker file, with the broker
    /// key that set it.
    pub from_broker: BTreeMap<&'static str, &'static str>,
}

/// A topic's effective config: typed values plus one entry per key.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedTopicConfig {
    pub config: TopicConfig,
    pub entries: Vec<ConfigEntry>,
}

impl ResolvedTopicConfig {
    pub fn entry(&self, name: &str) -> Option<&ConfigEntry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

impl TopicDefaults {
    /// Validates `overrides` (for CreateTopics / AlterConfigs) and returns
    /// the effective config.
    pub fn validate(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, TopicConfigError> {
        self.config.with_overrides(overrides)
    }

    /// These defaults with the dynamic broker configs on top: the
    /// cluster-wide default (`cluster`), then this broker's own (`broker`),
    /// each a map of broker key -> value as AlterConfigs stored it. Values
    /// were validated when set; one that no longer parses is skipped (the
    /// layer below stays in force).
    pub fn with_dynamic(
        &self,
        cluster: &BTreeMap<String, String>,
        broker: &BTreeMap<String, String>,
    ) -> TopicDefaults {
        let mut defaults = self.clone();
        for layer in [cluster, broker] {
            for (broker_key, value) in layer {
                let Some(topic_key) = topic_key_for_dynamic_broker_key(broker_key) else {
                    continue;
                };
                let mut next = defaults.config.clone();
                if next.set(topic_key, value).is_ok() {
                    defaults.config = next;
                }
            }
        }
        if defaults.config.check_cross_keys().is_err() {
            return self.clone();
        }
        defaults
    }

    /// The effective config with the source of every value.
    pub fn resolve(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<ResolvedTopicConfig, TopicConfigError> {
        let config = self.validate(overrides)?;
        let entries = BROKER_SYNONYMS
            .iter()
            .zip(KEYS)
            .map(|((name, brokers), def)| self.entry(name, brokers, def, &config, overrides))
            .collect();
        Ok(ResolvedTopicConfig { config, entries })
    }

    fn entry(
        &self,
        name: &'static str,
        brokers: &'static [&'static str],
        def: &KeyDef,
        config: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> ConfigEntry {
        let primary = brokers.first().copied().unwrap_or(name);
        if let Some(raw) = overrides.get(name) {
            return ConfigEntry {
                name,
                value: raw.clone(),
                source: ConfigSource::TopicOverride,
                broker_synonym: primary,
            };
        }
        let (source, broker_synonym) = match self.from_broker.get(name) {
            Some(broker_key) => (ConfigSource::StaticBroker, *broker_key),
            None => (ConfigSource::Default, primary),
        };
        ConfigEntry {
            name,
            value: (def.show)(config),
            source,
            broker_synonym,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_line_up() {
        for (def, (name, brokers)) in KEYS.iter().zip(BROKER_SYNONYMS) {
            assert_eq!(def.name, *name);
            assert!(!brokers.is_empty());
        }
        let names: Vec<&str> = topic_config_names().collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }

    #[test]
    fn defaults_render_like_kafka() {
        let c = TopicConfig::default();
        assert_eq!(
            c.value_string("segment.bytes").as_deref(),
            Some("1073741824")
        );
        assert_eq!(c.value_string("retention.ms").as_deref(), Some("604800000"));
        assert_eq!(
            c.value_string("max.message.bytes").as_deref(),
            Some("1048588")
        );
        assert_eq!(
            c.value_string("compression.type").as_deref(),
            Some("producer")
        );
        assert_eq!(
            c.value_string("message.timestamp.type").as_deref(),
            Some("CreateTime")
        );
        assert_eq!(
            c.value_string("min.cleanable.dirty.ratio").as_deref(),
            Some("0.5")
        );
        assert_eq!(c.value_string("cleanup.policy").as_deref(), Some("delete"));
        assert_eq!(c.value_string("nope"), None);
    }

    #[test]
    fn cleanup_policy_list() {
        let both = CleanupPolicy::parse("cleanup.policy", "Delete, compact");
        assert_eq!(
            both,
            Ok(CleanupPolicy {
                delete: true,
                compact: true
            })
        );
        assert!(CleanupPolicy::parse("cleanup.policy", "").is_err());
        assert!(CleanupPolicy::parse("cleanup.policy", "delete,archive").is_err());
    }

    #[test]
    fn converts_to_a_valid_log_config() {
        let mut c = TopicConfig::default();
        assert_eq!(c.log_config(), LogConfig::default());
        for (key, value) in [
            ("retention.bytes", "-7"),
            ("segment.index.bytes", "4"),
            ("max.message.bytes", "0"),
            ("message.timestamp.type", "LogAppendTime"),
        ] {
            assert_eq!(c.set(key, value), Ok(()));
        }
        let log = c.log_config();
        assert_eq!(log.validate(), Ok(()));
        assert_eq!(
            (
                log.retention_bytes,
                log.segment_index_bytes,
                log.max_message_bytes
            ),
            (-1, 12, 1)
        );
        assert_eq!(log.message_timestamp_type, TimestampType::LogAppendTime);
    }

    #[test]
    fn cleaner_settings_reach_the_log_config() {
        let mut c = TopicConfig::default();
        for (key, value) in [
            ("cleanup.policy", "compact"),
            ("delete.retention.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "250"),
        ] {
            assert_eq!(c.set(key, value), Ok(()));
        }
        let log = c.log_config();
        assert!(log.cleanup_compact && !log.cleanup_delete);
        assert_eq!(log.delete_retention_ms, 1000);
        assert_eq!(log.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(log.min_compaction_lag_ms, 250);
        assert_eq!(log.validate(), Ok(()));
    }

    #[test]
    fn compression_type_reaches_the_log_config() {
        let mut c = TopicConfig::default();
        assert_eq!(c.log_config().compression, None);
        c.set("compression.type", "zstd").unwrap();
        c.set("compression.zstd.level", "7").unwrap();
        assert_eq!(
            c.log_config().compression,
            Some(TargetCompression {
                codec: Compression::Zstd,
                level: Some(7)
            })
        );
        c.set("compression.type", "uncompressed").unwrap();
        assert_eq!(
            c.log_config().compression,
            Some(TargetCompression::new(Compression::None))
        );
        c.set("compression.type", "gzip").unwrap();
        assert_eq!(
            c.log_config().compression,
            Some(TargetCompression {
                codec: Compression::Gzip,
                level: Some(-1)
            })
        );
    }

    #[test]
    fn gzip_level_rejects_zero() {
        let mut c = TopicConfig::default();
        assert!(c.set("compression.gzip.level", "0").is_err());
        assert_eq!(c.set("compression.gzip.level", "-1"), Ok(()));
        assert_eq!(c.set("compression.gzip.level", "9"), Ok(()));
        assert_eq!(c.compression_gzip_level, 9);
    }
}
