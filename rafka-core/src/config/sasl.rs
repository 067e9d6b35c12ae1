//! SASL settings of the broker's listeners, under Kafka's keys:
//!
//! - `sasl.enabled.mechanisms`, overridden per listener by
//!   `listener.name.<listener>.sasl.enabled.mechanisms` (listener names
//!   lower-cased in keys, as Kafka's `ListenerName.configPrefix`).
//! - PLAIN's users: `listener.name.<listener>.plain.sasl.jaas.config`,
//!   else `sasl.jaas.config` (a `PlainLoginModule` with `user_<name>`
//!   options). SCRAM's users are `UserScramCredentialRecord`s of the
//!   metadata log, not configuration.
//! - `connection.failed.authentication.delay.ms` (100),
//!   `connections.max.reauth.ms` (0: no re-authentication, sessions never
//!   expire), `sasl.server.max.receive.size` (524288: the largest frame a
//!   connection may send before it has authenticated).
//!
//! - OAUTHBEARER, when enabled: `listener.name.<listener>.oauthbearer.*`
//!   as Kafka reads them ([`OAuthBearerListenerConfig`]: unsecured JWS by
//!   default, signed JWTs against a `file://` JWKS with Kafka's
//!   `OAuthBearerValidatorCallbackHandler`).
//!
//! Decision (Kafka's default mechanism is GSSAPI, which rafka lacks):
//! with `sasl.enabled.mechanisms` unset, a SASL listener enables every
//! mechanism rafka has that can succeed on it without more settings:
//! SCRAM-SHA-256 and SCRAM-SHA-512 always (credentials may be added while
//! running), PLAIN when the listener has PLAIN users. OAUTHBEARER is only
//! on when named (it needs a JAAS config, and unsecured tokens are for
//! development). A mechanism rafka does not have (GSSAPI, a typo) named
//! in the setting is a startup error, and so is PLAIN without users, or
//! OAUTHBEARER without its JAAS config, rather than a listener on which
//! nobody can log in.
//!
//! Lives on: the config, read once at start; each listener's part is
//! shared (`Arc`) by every connection's session.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::listener::{Listener, SecurityProtocol};
use super::value::{parse_i64, split_list, InvalidValue};
use crate::sasl::{
    JaasError, OAuthBearerConfigError, OAuthBearerListenerConfig, OAuthBearerValidator, PlainUsers,
    SaslMechanism,
};

pub const ENABLED_MECHANISMS_KEY: &str = "sasl.enabled.mechanisms";
pub const JAAS_CONFIG_KEY: &str = "sasl.jaas.config";
pub const FAILED_AUTHENTICATION_DELAY_KEY: &str = "connection.failed.authentication.delay.ms";
pub const MAX_REAUTH_KEY: &str = "connections.max.reauth.ms";
pub const MAX_RECEIVE_SIZE_KEY: &str = "sasl.server.max.receive.size";

pub const FAILED_AUTHENTICATION_DELAY_MS_DEFAULT: u64 = 100;
pub const MAX_RECEIVE_SIZE_DEFAULT: usize = 524_288;

/// Why the SASL settings cannot be used (the broker does not start).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SaslConfigError {
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    #[error(
        "{key}: SASL mechanism {mechanism:?} is not supported by rafka (supported: PLAIN, \
         SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER)"
    )]
    UnsupportedMechanism { key: String, mechanism: String },
    #[error("{key}: {source}")]
    Jaas { key: String, source: JaasError },
    #[error(
        "listener {listener} enables PLAIN but has no PLAIN users: set \
         listener.name.{lower}.plain.sasl.jaas.config (or sasl.jaas.config) to a PlainLoginModule \
         with user_<name>=\"<password>\" options",
        lower = listener.to_ascii_lowercase()
    )]
    PlainWithoutUsers { listener: String },
    #[error("listener {listener}: OAUTHBEARER: {source}")]
    OAuthBearer {
        listener: String,
        source: OAuthBearerConfigError,
    },
    #[error("listener {listener} is a SASL listener with no SASL mechanism enabled ({key})")]
    NoMechanism { listener: String, key: String },
}

/// What one SASL listener's connections authenticate with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSasl {
    /// In the order configured: SaslHandshake lists them so.
    pub mechanisms: Vec<SaslMechanism>,
    pub plain_users: PlainUsers,
    /// Which tokens OAUTHBEARER accepts; `Some` exactly when it is enabled.
    pub oauthbearer: Option<OAuthBearerValidator>,
    pub failed_authentication_delay_ms: u64,
    /// 0: sessions never expire.
    pub connections_max_reauth_ms: u64,
    pub max_receive_bytes: usize,
}

impl ListenerSasl {
    /// A listener enabling `mechanisms`, with Kafka's defaults otherwise
    /// (tests, tools).
    pub fn new(mechanisms: Vec<SaslMechanism>, plain_users: PlainUsers) -> ListenerSasl {
        ListenerSasl {
            mechanisms,
            plain_users,
            oauthbearer: None,
            failed_authentication_delay_ms: FAILED_AUTHENTICATION_DELAY_MS_DEFAULT,
            connections_max_reauth_ms: 0,
            max_receive_bytes: MAX_RECEIVE_SIZE_DEFAULT,
        }
    }

    pub fn enables(&self, mechanism: SaslMechanism) -> bool {
        self.mechanisms.contains(&mechanism)
    }

    pub fn mechanism_names(&self) -> Vec<&'static str> {
        self.mechanisms.iter().map(|m| m.name()).collect()
    }
}

/// The SASL part of the broker config: one entry per SASL listener.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaslSettings {
    pub listeners: BTreeMap<String, Arc<ListenerSasl>>,
}

impl SaslSettings {
    /// The settings of listener `name`, if it is a SASL listener.
    pub fn listener(&self, name: &str) -> Option<Arc<ListenerSasl>> {
        self.listeners.get(name).cloned()
    }
}

pub fn is_sasl(protocol: SecurityProtocol) -> bool {
    matches!(
        protocol,
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
    )
}

/// Reads the settings of every SASL listener among `listeners`; `get`
/// looks a key up (and marks it as read).
pub fn read_sasl(
    listeners: &[Listener],
    get: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<SaslSettings, SaslConfigError> {
    let delay_ms = read_u64(get, FAILED_AUTHENTICATION_DELAY_KEY, 0, i64::from(i32::MAX))?
        .unwrap_or(FAILED_AUTHENTICATION_DELAY_MS_DEFAULT);
    let reauth_ms = read_u64(get, MAX_REAUTH_KEY, 0, i64::MAX)?.unwrap_or(0);
    let max_receive = read_u64(get, MAX_RECEIVE_SIZE_KEY, 1, i64::from(i32::MAX))?
        .map_or(MAX_RECEIVE_SIZE_DEFAULT, |v| v as usize);
    let global_mechanisms = get(ENABLED_MECHANISMS_KEY);
    let global_jaas = get(JAAS_CONFIG_KEY);
    let mut settings = SaslSettings::default();
    for listener in listeners.iter().filter(|l| is_sasl(l.protocol)) {
        let prefix = format!("listener.name.{}.", listener.name.to_ascii_lowercase());
        let jaas_key = format!("{prefix}plain.{JAAS_CONFIG_KEY}");
        let (jaas_key, jaas) = match get(&jaas_key) {
            Some(jaas) => (jaas_key, Some(jaas)),
            None => (JAAS_CONFIG_KEY.to_string(), global_jaas.clone()),
        };
        let plain_users = match jaas {
            Some(text) => {
                PlainUsers::parse_jaas(&text).map_err(|source| SaslConfigError::Jaas {
                    key: jaas_key,
                    source,
                })?
            }
            None => PlainUsers::default(),
        };
        let mechanisms_key = format!("{prefix}{ENABLED_MECHANISMS_KEY}");
        let configured = match get(&mechanisms_key) {
            Some(value) => Some((mechanisms_key, value)),
            None => global_mechanisms
                .clone()
                .map(|v| (ENABLED_MECHANISMS_KEY.to_string(), v)),
        };
        let mechanisms = match configured {
            Some((key, value)) => {
                let mechanisms = parse_mechanisms(&key, &value)?;
                if mechanisms.contains(&SaslMechanism::Plain) && plain_users.is_empty() {
                    return Err(SaslConfigError::PlainWithoutUsers {
                        listener: listener.name.clone(),
                    });
                }
                if mechanisms.is_empty() {
                    return Err(SaslConfigError::NoMechanism {
                        listener: listener.name.clone(),
                        key,
                    });
                }
                mechanisms
            }
            None => SaslMechanism::ALL
                .into_iter()
                .filter(|m| match m {
                    SaslMechanism::Plain => !plain_users.is_empty(),
                    SaslMechanism::Scram(_) => true,
                    SaslMechanism::OAuthBearer => false,
                })
                .collect(),
        };
        let oauthbearer = if mechanisms.contains(&SaslMechanism::OAuthBearer) {
            let lookup = RefCell::new(&mut *get);
            let config =
                OAuthBearerListenerConfig::parse(&listener.name, |key| (*lookup.borrow_mut())(key))
                    .map_err(|source| SaslConfigError::OAuthBearer {
                        listener: listener.name.clone(),
                        source,
                    })?;
            Some(config.validator)
        } else {
            None
        };
        // Kafka lets a listener override the session lifetime.
        let listener_reauth_key = format!("{prefix}{MAX_REAUTH_KEY}");
        let reauth_ms = read_u64(get, &listener_reauth_key, 0, i64::MAX)?.unwrap_or(reauth_ms);
        let sasl = ListenerSasl {
            mechanisms,
            plain_users,
            oauthbearer,
            failed_authentication_delay_ms: delay_ms,
            connections_max_reauth_ms: reauth_ms,
            max_receive_bytes: max_receive,
        };
        settings
            .listeners
            .insert(listener.name.clone(), Arc::new(sasl));
    }
    Ok(settings)
}

/// A comma-separated list of mechanism names, duplicates dropped.
pub fn parse_mechanisms(key: &str, value: &str) -> Result<Vec<SaslMechanism>, SaslConfigError> {
    let mut out = Vec::new();
    for name in split_list(value) {
        let mechanism = SaslMechanism::from_name(name).ok_or_else(|| {
            SaslConfigError::UnsupportedMechanism {
                key: key.to_string(),
                mechanism: name.to_string(),
            }
        })?;
        if !out.contains(&mechanism) {
            out.push(mechanism);
        }
    }
    Ok(out)
}

fn read_u64(
    get: &mut dyn FnMut(&str) -> Option<String>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<Option<u64>, SaslConfigError> {
    match get(key) {
        None => Ok(None),
        Some(value) => Ok(Some(parse_i64(key, &value, min, max)? as u64)),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::BrokerConfig;

    const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
        user_alice=\"alice-secret\";";

    fn parse(text: &str) -> Result<BrokerConfig, crate::config::ConfigError> {
        BrokerConfig::from_properties_text(text).map(|(c, _)| c)
    }

    #[test]
    fn defaults_enable_scram_and_plain_with_users() {
        let config = parse(&format!(
            "listeners=SASL_PLAINTEXT://127.0.0.1:9092\n\
             listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}\n"
        ))
        .unwrap();
        let sasl = config.sasl.listener("SASL_PLAINTEXT").unwrap();
        assert_eq!(
            sasl.mechanism_names(),
            ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
        );
        assert!(sasl.plain_users.check("alice", b"alice-secret"));
        assert_eq!(sasl.failed_authentication_delay_ms, 100);
        assert_eq!(sasl.connections_max_reauth_ms, 0);
        assert_eq!(sasl.max_receive_bytes, 524_288);

        let scram_only = parse("listeners=SASL_PLAINTEXT://127.0.0.1:9092\n").unwrap();
        let sasl = scram_only.sasl.listener("SASL_PLAINTEXT").unwrap();
        assert_eq!(sasl.mechanism_names(), ["SCRAM-SHA-256", "SCRAM-SHA-512"]);
        assert!(scram_only.sasl.listener("PLAINTEXT").is_none());
    }

    #[test]
    fn per_listener_mechanisms_and_limits() {
        let config = parse(&format!(
            "listeners=SASL_PLAINTEXT://127.0.0.1:9092,CLIENT://127.0.0.1:9093\n\
             listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT\n\
             sasl.enabled.mechanisms=SCRAM-SHA-512\n\
             listener.name.client.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256\n\
             sasl.jaas.config={JAAS}\n\
             connection.failed.authentication.delay.ms=5\n\
             connections.max.reauth.ms=60000\n\
             sasl.server.max.receive.size=1024\n"
        ))
        .unwrap();
        let client = config.sasl.listener("CLIENT").unwrap();
        assert_eq!(client.mechanism_names(), ["PLAIN", "SCRAM-SHA-256"]);
        assert_eq!(client.failed_authentication_delay_ms, 5);
        assert_eq!(client.connections_max_reauth_ms, 60_000);
        assert_eq!(client.max_receive_bytes, 1024);
        let other = config.sasl.listener("SASL_PLAINTEXT").unwrap();
        assert_eq!(other.mechanism_names(), ["SCRAM-SHA-512"]);
        assert_eq!(other.connections_max_reauth_ms, 60_000);

        let overridden = parse(&format!(
            "listeners=SASL_PLAINTEXT://127.0.0.1:9092,CLIENT://127.0.0.1:9093\n\
             listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT\n\
             sasl.jaas.config={JAAS}\n\
             connections.max.reauth.ms=60000\n\
             listener.name.client.connections.max.reauth.ms=5000\n"
        ))
        .unwrap();
        let client = overridden.sasl.listener("CLIENT").unwrap();
        assert_eq!(client.connections_max_reauth_ms, 5_000);
        let other = overridden.sasl.listener("SASL_PLAINTEXT").unwrap();
        assert_eq!(other.connections_max_reauth_ms, 60_000);
    }

    #[test]
    fn unusable_mechanisms_stop_the_broker() {
        let gssapi = parse(
            "listeners=SASL_PLAINTEXT://127.0.0.1:9092\nsasl.enabled.mechanisms=GSSAPI,PLAIN\n",
        )
        .unwrap_err();
        assert!(
            gssapi.to_string().contains("\"GSSAPI\" is not supported"),
            "{gssapi}"
        );
        let no_users =
            parse("listeners=SASL_PLAINTEXT://127.0.0.1:9092\nsasl.enabled.mechanisms=PLAIN\n")
                .unwrap_err();
        assert!(
            no_users.to_string().contains("no PLAIN users"),
            "{no_users}"
        );
        let empty = parse("listeners=SASL_PLAINTEXT://127.0.0.1:9092\nsasl.enabled.mechanisms=\n")
            .unwrap_err();
        assert!(empty.to_string().contains("no SASL mechanism"), "{empty}");
        let bad_jaas =
            parse("listeners=SASL_PLAINTEXT://127.0.0.1:9092\nsasl.jaas.config=nonsense\n")
                .unwrap_err();
        assert!(
            bad_jaas.to_string().starts_with("sasl.jaas.config:"),
            "{bad_jaas}"
        );
        let oauth_without_jaas = parse(
            "listeners=SASL_PLAINTEXT://127.0.0.1:9092\nsasl.enabled.mechanisms=OAUTHBEARER\n",
        )
        .unwrap_err();
        assert!(
            oauth_without_jaas
                .to_string()
                .starts_with("listener SASL_PLAINTEXT: OAUTHBEARER: "),
            "{oauth_without_jaas}"
        );
    }

    #[test]
    fn oauthbearer_only_when_named_with_its_validator() {
        let jaas = "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=\
            org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;";
        let named = parse(&format!(
            "listeners=SASL_PLAINTEXT://127.0.0.1:9092\n\
             sasl.enabled.mechanisms=OAUTHBEARER,SCRAM-SHA-256\n{jaas}\n"
        ))
        .unwrap();
        let sasl = named.sasl.listener("SASL_PLAINTEXT").unwrap();
        assert_eq!(sasl.mechanism_names(), ["OAUTHBEARER", "SCRAM-SHA-256"]);
        assert!(matches!(
            sasl.oauthbearer,
            Some(crate::sasl::OAuthBearerValidator::Unsecured(_))
        ));
        let unnamed = parse(&format!(
            "listeners=SASL_PLAINTEXT://127.0.0.1:9092\n{jaas}\n"
        ))
        .unwrap();
        let sasl = unnamed.sasl.listener("SASL_PLAINTEXT").unwrap();
        assert_eq!(sasl.mechanism_names(), ["SCRAM-SHA-256", "SCRAM-SHA-512"]);
        assert_eq!(sasl.oauthbearer, None);
    }
}
