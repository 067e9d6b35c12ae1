//! Configuration: the broker's `server.properties` settings and topic
//! configs, both under Kafka's names, defaults and validators.
//!
//! - `properties`: the Java `.properties` text format.
//! - `value`: typed parsing of one value and the error naming key, value and
//!   what was expected.
//! - `broker`: [`BrokerConfig`], built from properties entries.
//! - `connections`: [`connections::ConnectionLimitsConfig`], Kafka's
//!   connection count and creation rate limits.
//! - `describe`: the DescribeConfigs view of topic and broker configs
//!   (values, sources, synonyms, types, docs).
//! - `listener`: `listeners` entries and their security protocols.
//! - `quorum`: the cluster keys (`process.roles`, `controller.quorum.*`)
//!   and Kafka's rules across them.
//! - `tls`: a TLS listener's `ssl.*` keys, `ssl.principal.mapping.rules`.
//! - `topic`: [`TopicConfig`], override validation and the described view.
//! - `topic_name`: Kafka's topic name rules.

pub mod broker;
pub mod connections;
pub mod describe;
pub mod listener;
pub mod properties;
pub mod quorum;
pub mod sasl;
pub mod tls;
pub mod topic;
pub mod topic_name;
pub mod value;

pub use broker::{BrokerConfig, ConfigError, ConfigWarning};
pub use listener::{Listener, SecurityProtocol};
pub use properties::{parse_properties, PropertiesError, Property};
pub use quorum::{HostPort, ProcessRoles, QuorumConfig, QuorumConfigError, QuorumVoter};
pub use tls::{ClientAuth, PemSource, PrincipalMapping, TlsConfig, TlsConfigError, TlsVersion};
pub use topic::{
    CleanupPolicy, CompressionType, ConfigEntry, ConfigSource, ResolvedTopicConfig, TopicConfig,
    TopicConfigError, TopicDefaults,
};
pub use topic_name::{validate_topic_name, TopicNameError, TOPIC_NAME_LENGTH_MAX};
pub use value::{Expected, InvalidValue};
