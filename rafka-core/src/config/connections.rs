//! Connection limits under Kafka's names (KIP-308, KIP-402, KIP-612):
//! `max.connections` broker-wide and per listener
//! (`listener.name.<name>.max.connections`), `max.connections.per.ip`
//! with `max.connections.per.ip.overrides`, and the connection creation
//! rate, `max.connection.creation.rate`, broker-wide and per listener.
//! All default to `i32::MAX` (no limit), as in Kafka.
//!
//! Override hosts are kept as written: a host name is resolved by the
//! network layer when the broker starts (Kafka's `InetAddress.getByName`),
//! since this crate does no IO. The per-IP connection creation *quota*
//! is not a config key: it is the `connection_creation_rate` client quota
//! on `ip` entities, in the metadata image (`crate::quota`).

use std::collections::BTreeMap;

use super::listener::Listener;
use super::value::{parse_i32, InvalidValue};

pub const MAX_CONNECTIONS: &str = "max.connections";
pub const MAX_CONNECTIONS_PER_IP: &str = "max.connections.per.ip";
pub const MAX_CONNECTIONS_PER_IP_OVERRIDES: &str = "max.connections.per.ip.overrides";
pub const MAX_CONNECTION_CREATION_RATE: &str = "max.connection.creation.rate";

/// Why the connection limits cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionLimitsError {
    /// Kafka's `KafkaConfig` requirement.
    #[error("max.connections.per.ip can be set to zero only if max.connections.per.ip.overrides property is set.")]
    ZeroPerIpWithoutOverrides,
    /// An entry that is not `host:count` (Kafka's `Csv.parseCsvMap` and
    /// `toInt`), or a host with characters `Utils.validHostPattern` refuses.
    #[error("max.connections.per.ip.overrides contains an invalid entry: {0:?}")]
    BadOverride(String),
}

/// One listener's own limits (`listener.name.<name>.*`); `None` where the
/// listener sets none (Kafka's default for a listener is `i32::MAX`, the
/// broker-wide limits still apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerLimits {
    pub max_connections: Option<i32>,
    pub max_connection_creation_rate: Option<i32>,
}

/// Every connection limit of the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimitsConfig {
    /// `max.connections`: open connections over every listener.
    pub max_connections: i32,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: i32,
    /// `max.connections.per.ip.overrides`: (host or IP, count), in the
    /// order written; a host named twice keeps its last count.
    pub max_connections_per_ip_overrides: Vec<(String, i32)>,
    /// `max.connection.creation.rate`: new connections per second over
    /// every listener.
    pub max_connection_creation_rate: i32,
    /// By listener name, the listeners with a limit of their own.
    pub listeners: BTreeMap<String, ListenerLimits>,
}

impl Default for ConnectionLimitsConfig {
    fn default() -> Self {
        ConnectionLimitsConfig {
            max_connections: i32::MAX,
            max_connections_per_ip: i32::MAX,
            max_connections_per_ip_overrides: Vec::new(),
            max_connection_creation_rate: i32::MAX,
            listeners: BTreeMap::new(),
        }
    }
}

impl ConnectionLimitsConfig {
    /// The limits of `listener` (none when it sets none).
    pub fn listener(&self, name: &str) -> ListenerLimits {
        self.listeners.get(name).cloned().unwrap_or_default()
    }

    /// Whether any per-IP connection count limit is in force.
    pub fn limits_per_ip(&self) -> bool {
        self.max_connections_per_ip != i32::MAX
            || self
                .max_connections_per_ip_overrides
                .iter()
                .any(|(_, count)| *count != i32::MAX)
    }

    /// `max.connections.per.ip.overrides` as Kafka writes it back.
    pub fn overrides_string(&self) -> String {
        let pairs: Vec<String> = self
            .max_connections_per_ip_overrides
            .iter()
            .map(|(host, count)| format!("{host}:{count}"))
            .collect();
        pairs.join(",")
    }
}

/// The key of a listener-level limit: `listener.name.<lower name>.<key>`.
pub fn listener_key(listener: &str, key: &str) -> String {
    format!("listener.name.{}.{key}", listener.to_ascii_lowercase())
}

/// Reads the limits; `get` looks a key up (and marks it used).
pub fn read_connection_limits(
    listeners: &[Listener],
    get: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<ConnectionLimitsConfig, ConnectionLimitsReadError> {
    let mut config = ConnectionLimitsConfig::default();
    let mut int = |key: &str, default: i32| -> Result<i32, InvalidValue> {
        get(key).map_or(Ok(default), |v| parse_i32(key, &v, 0, i32::MAX))
    };
    config.max_connections = int(MAX_CONNECTIONS, i32::MAX)?;
    config.max_connections_per_ip = int(MAX_CONNECTIONS_PER_IP, i32::MAX)?;
    config.max_connection_creation_rate = int(MAX_CONNECTION_CREATION_RATE, i32::MAX)?;
    for listener in listeners {
        let max = listener_key(&listener.name, MAX_CONNECTIONS);
        let rate = listener_key(&listener.name, MAX_CONNECTION_CREATION_RATE);
        let limits = ListenerLimits {
            max_connections: get(&max)
                .map(|v| parse_i32(&max, &v, 0, i32::MAX))
                .transpose()?,
            max_connection_creation_rate: get(&rate)
                .map(|v| parse_i32(&rate, &v, 0, i32::MAX))
                .transpose()?,
        };
        if limits != ListenerLimits::default() {
            config.listeners.insert(listener.name.clone(), limits);
        }
    }
    if let Some(value) = get(MAX_CONNECTIONS_PER_IP_OVERRIDES) {
        config.max_connections_per_ip_overrides = parse_overrides(&value)?;
    }
    if config.max_connections_per_ip == 0 && config.max_connections_per_ip_overrides.is_empty() {
        return Err(ConnectionLimitsError::ZeroPerIpWithoutOverrides.into());
    }
    Ok(config)
}

/// Either a bad value of one key or a rule across keys.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectionLimitsReadError {
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    #[error(transparent)]
    Limits(#[from] ConnectionLimitsError),
}

/// Kafka's `Csv.parseCsvMap` (split at commas with the spaces around
/// them, each entry at its *last* colon, so IPv6 addresses work), then
/// the count as an int and the host through `validHostPattern`
/// (`[0-9a-zA-Z\-%._:]*`). A host named twice keeps its last count, as
/// the map Kafka builds does.
fn parse_overrides(value: &str) -> Result<Vec<(String, i32)>, ConnectionLimitsError> {
    let mut out: Vec<(String, i32)> = Vec::new();
    if value.trim().is_empty() {
        return Ok(out);
    }
    for entry in value.split(',') {
        let bad = || ConnectionLimitsError::BadOverride(entry.trim().to_string());
        let (host, count) = entry.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim();
        let count: i32 = count.trim().parse().map_err(|_| bad())?;
        let valid_host = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-%._:".contains(c));
        if !valid_host || count < 0 {
            return Err(bad());
        }
        out.retain(|(h, _)| h != host);
        out.push((host.to_string(), count));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecurityProtocol;

    fn listener(name: &str) -> Listener {
        Listener {
            name: name.to_string(),
            protocol: SecurityProtocol::Plaintext,
            host: "127.0.0.1".to_string(),
            port: 0,
        }
    }

    fn read(pairs: &[(&str, &str)]) -> Result<ConnectionLimitsConfig, ConnectionLimitsReadError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let listeners = [listener("PLAINTEXT"), listener("INTERNAL")];
        read_connection_limits(&listeners, &mut |key| map.get(key).cloned())
    }

    #[test]
    fn defaults_are_unlimited() {
        let config = read(&[]).unwrap();
        assert_eq!(config, ConnectionLimitsConfig::default());
        assert!(!config.limits_per_ip());
        assert_eq!(config.listener("PLAINTEXT"), ListenerLimits::default());
    }

    #[test]
    fn keys_broker_wide_and_per_listener() {
        let config = read(&[
            ("max.connections", "100"),
            ("max.connections.per.ip", "5"),
            ("max.connection.creation.rate", "30"),
            ("listener.name.internal.max.connections", "7"),
            ("listener.name.plaintext.max.connection.creation.rate", "3"),
        ])
        .unwrap();
        assert_eq!(config.max_connections, 100);
        assert_eq!(config.max_connections_per_ip, 5);
        assert_eq!(config.max_connection_creation_rate, 30);
        assert_eq!(
            config.listener("INTERNAL"),
            ListenerLimits {
                max_connections: Some(7),
                max_connection_creation_rate: None
            }
        );
        assert_eq!(
            config.listener("PLAINTEXT").max_connection_creation_rate,
            Some(3)
        );
        assert!(config.limits_per_ip());
        let err = read(&[("max.connections", "-1")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid value \"-1\" for max.connections: expected an integer >= 0"
        );
        let err = read(&[("listener.name.internal.max.connections", "x")]).unwrap_err();
        assert!(err
            .to_string()
            .contains("listener.name.internal.max.connections"));
    }

    #[test]
    fn overrides_parse_as_kafka_and_zero_needs_them() {
        let config = read(&[
            ("max.connections.per.ip", "0"),
            (
                "max.connections.per.ip.overrides",
                "broker-1.example:100 , 127.0.0.1:2,::1:3,127.0.0.1:4",
            ),
        ])
        .unwrap();
        assert_eq!(
            config.max_connections_per_ip_overrides,
            vec![
                ("broker-1.example".to_string(), 100),
                ("::1".to_string(), 3),
                ("127.0.0.1".to_string(), 4),
            ]
        );
        assert_eq!(
            config.overrides_string(),
            "broker-1.example:100,::1:3,127.0.0.1:4"
        );
        assert_eq!(
            read(&[("max.connections.per.ip", "0")]).unwrap_err(),
            ConnectionLimitsError::ZeroPerIpWithoutOverrides.into()
        );
        for bad in ["host", "host:x", "ho st:1", "host:-1", "a/b:1"] {
            assert!(
                read(&[("max.connections.per.ip.overrides", bad)]).is_err(),
                "{bad}"
            );
        }
        assert!(read(&[("max.connections.per.ip.overrides", "")])
            .unwrap()
            .max_connections_per_ip_overrides
            .is_empty());
    }
}
