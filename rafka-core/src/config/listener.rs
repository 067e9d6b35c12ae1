//! `listeners` / `advertised.listeners` entries (`NAME://host:port`) and the
//! `listener.security.protocol.map` that gives each name its protocol.

use std::collections::BTreeMap;
use std::fmt;

use super::value::{split_list, Expected, InvalidValue};

/// How a listener authenticates and encrypts (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

const PROTOCOL_NAMES: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];
const PROTOCOLS: [SecurityProtocol; 4] = [
    SecurityProtocol::Plaintext,
    SecurityProtocol::Ssl,
    SecurityProtocol::SaslPlaintext,
    SecurityProtocol::SaslSsl,
];

impl SecurityProtocol {
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        let i = PROTOCOL_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))?;
        Some(PROTOCOLS[i])
    }

    /// Kafka's `SecurityProtocol` id (as in BrokerRegistration).
    pub fn id(self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }

    pub fn name(self) -> &'static str {
        let i = PROTOCOLS.iter().position(|p| *p == self).unwrap_or(0);
        PROTOCOL_NAMES[i]
    }
}

/// Kafka's default map: each protocol name is a listener name for itself.
pub fn default_protocol_map() -> BTreeMap<String, SecurityProtocol> {
    PROTOCOL_NAMES
        .iter()
        .zip(PROTOCOLS)
        .map(|(n, p)| (n.to_string(), p))
        .collect()
}

/// Parses `NAME:PROTOCOL[,NAME:PROTOCOL...]`.
pub fn parse_protocol_map(
    key: &str,
    value: &str,
) -> Result<BTreeMap<String, SecurityProtocol>, InvalidValue> {
    let bad = || InvalidValue::new(key, value, Expected::OneOf(PROTOCOL_NAMES));
    let mut map = BTreeMap::new();
    for item in split_list(value) {
        let (name, proto) = item.split_once(':').ok_or_else(bad)?;
        let proto = SecurityProtocol::from_name(proto.trim()).ok_or_else(bad)?;
        map.insert(name.trim().to_ascii_uppercase(), proto);
    }
    Ok(map)
}

/// One endpoint: a name (which picks the protocol), a host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-cased, as Kafka normalizes listener names.
    pub name: String,
    pub protocol: SecurityProtocol,
    /// Empty: every interface (bind) or the machine's name (advertise).
    /// IPv6 addresses are kept without their brackets.
    pub host: String,
    /// 0 asks the OS for an ephemeral port (tests).
    pub port: u16,
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

fn parse_one(item: &str, protocols: &BTreeMap<String, SecurityProtocol>) -> Option<Listener> {
    let (name, rest) = item.split_once("://")?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let name = name.trim().to_ascii_uppercase();
    let protocol = *protocols.get(&name)?;
    Some(Listener {
        name,
        protocol,
        host: host.to_string(),
        port: port.trim().parse().ok()?,
    })
}

/// Parses a listener list; names must be unique and known to `protocols`,
/// and two listeners cannot bind the same non-zero port.
pub fn parse_listeners(
    key: &str,
    value: &str,
    protocols: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, InvalidValue> {
    let bad = || InvalidValue::new(key, value, Expected::Listeners);
    let mut out: Vec<Listener> = Vec::new();
    for item in split_list(value) {
        let listener = parse_one(item, protocols).ok_or_else(bad)?;
        let clash = out
            .iter()
            .any(|l| l.name == listener.name || (listener.port != 0 && l.port == listener.port));
        if clash {
            return Err(bad());
        }
        out.push(listener);
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_protocols() {
        let map = default_protocol_map();
        let got = parse_listeners("listeners", "plaintext://:9092, SSL://[::1]:9093", &map);
        let want = vec![
            Listener {
                name: "PLAINTEXT".into(),
                protocol: SecurityProtocol::Plaintext,
                host: String::new(),
                port: 9092,
            },
            Listener {
                name: "SSL".into(),
                protocol: SecurityProtocol::Ssl,
                host: "::1".into(),
                port: 9093,
            },
        ];
        assert_eq!(got, Ok(want.clone()));
        assert_eq!(want[1].to_string(), "SSL://[::1]:9093");
    }

    #[test]
    fn rejects_bad_entries() {
        let map = default_protocol_map();
        for bad in [
            "",
            "PLAINTEXT://host",
            "PLAINTEXT://host:99999",
            "INTERNAL://host:1",
            "PLAINTEXT://::1:9092",
            "PLAINTEXT://a:1,PLAINTEXT://b:2",
            "PLAINTEXT://a:1,SSL://b:1",
        ] {
            assert!(parse_listeners("listeners", bad, &map).is_err(), "{bad}");
        }
    }

    #[test]
    fn custom_names_through_the_map() {
        let mut map = default_protocol_map();
        let custom = parse_protocol_map("m", "internal:sasl_ssl");
        map.extend(custom.unwrap_or_default());
        let got = parse_listeners("listeners", "INTERNAL://h:1", &map);
        assert_eq!(got.map(|l| l[0].protocol), Ok(SecurityProtocol::SaslSsl));
    }
}
