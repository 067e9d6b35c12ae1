//! A TLS listener's settings under Kafka's `ssl.*` keys, and Kafka's
//! `ssl.principal.mapping.rules`.
//!
//! Every key may be set for one listener with Kafka's prefix
//! `listener.name.<lower-case listener name>.ssl.*`, which wins over the
//! plain `ssl.*` key. Only PEM key and trust stores are read (Kafka's
//! `ssl.keystore.type=PEM`): the key and certificate chain in one PEM file
//! (`ssl.keystore.location`) or inline (`ssl.keystore.certificate.chain` +
//! `ssl.keystore.key`), the key optionally an encrypted PKCS#8 block
//! (`ssl.key.password`). rafka's default keystore type is PEM (Kafka's is
//! JKS, which rafka cannot read: asking for JKS or PKCS12 is an error that
//! says to use PEM).
//!
//! This file only parses: reading the files and building the TLS server
//! happen in `rafka-net`'s `tls` module, at startup, with errors that name
//! the key whose value is wrong.

use std::fmt;
use std::path::PathBuf;

use regex::Regex;

use super::value::{parse_i64, split_list, Expected, InvalidValue};

/// `rafka.ssl.handshake.timeout.ms`: how long a TLS client may take to
/// finish its handshake before the connection is closed.
pub const HANDSHAKE_TIMEOUT_KEY: &str = "rafka.ssl.handshake.timeout.ms";
pub const HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// Why a listener's TLS settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{key}={value}: only PEM key and trust stores are supported; use {key}=PEM")]
    UnsupportedStoreType { key: String, value: String },
    #[error("listener {listener} is a TLS listener but has no key store: set {location_key}, or {chain_key} and {key_key}")]
    NoKeystore {
        listener: String,
        location_key: String,
        chain_key: String,
        key_key: String,
    },
    #[error("{key} and {other_key} are both set: give the key store either as a file or inline")]
    KeystoreTwice { key: String, other_key: String },
    #[error("{key} is set without {missing_key}")]
    Incomplete { key: String, missing_key: String },
    #[error("{key}={value} needs a trust store ({location_key} or {certificates_key}) to check client certificates against")]
    NoTruststore {
        key: String,
        value: String,
        location_key: String,
        certificates_key: String,
    },
    #[error("invalid value for {key}: {message}")]
    BadRule { key: String, message: String },
}

/// Whether a TLS listener asks its clients for a certificate
/// (`ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    Required,
}

const CLIENT_AUTH_NAMES: &[&str] = &["none", "requested", "required"];

/// A TLS protocol version (`ssl.enabled.protocols`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

const PROTOCOL_NAMES: &[&str] = &["TLSv1.2", "TLSv1.3"];

/// A secret value; never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// PEM text, in a file or inline in the config, with the key that gave it
/// (what an error about it names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemSource {
    File { key: String, path: PathBuf },
    Inline { key: String, text: Secret },
}

impl PemSource {
    pub fn key(&self) -> &str {
        match self {
            PemSource::File { key, .. } | PemSource::Inline { key, .. } => key,
        }
    }
}

/// One TLS listener's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsConfig {
    /// Where the certificate chain is (`ssl.keystore.location` or
    /// `ssl.keystore.certificate.chain`).
    pub certificate_chain: PemSource,
    /// Where the private key is (the same file, or `ssl.keystore.key`).
    pub private_key: PemSource,
    /// `ssl.key.password`: the key is an encrypted PKCS#8 block.
    pub key_password: Option<(String, Secret)>,
    /// CA certificates that sign client certificates.
    pub truststore: Option<PemSource>,
    pub client_auth: ClientAuth,
    /// The key that set `client_auth` (for errors).
    pub client_auth_key: String,
    /// Sorted, non-empty.
    pub enabled_protocols: Vec<TlsVersion>,
    pub principal_mapping: PrincipalMapping,
    pub handshake_timeout_ms: u64,
}

/// Reads one listener's TLS settings; `get` answers a key's value.
pub fn read_listener_tls(
    listener: &str,
    get: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<TlsConfig, super::ConfigError> {
    let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
    let mut lookup = |name: &str| -> Option<(String, String)> {
        let prefixed = format!("{prefix}{name}");
        if let Some(value) = get(&prefixed) {
            return Some((prefixed, value));
        }
        get(name).map(|value| (name.to_string(), value))
    };
    let keystore_type = lookup("ssl.keystore.type");
    let truststore_type = lookup("ssl.truststore.type");
    for (key, value) in keystore_type.iter().chain(&truststore_type) {
        if !value.trim().eq_ignore_ascii_case("PEM") {
            return Err(TlsConfigError::UnsupportedStoreType {
                key: key.clone(),
                value: value.clone(),
            }
            .into());
        }
    }
    // Passwords of the stores themselves mean nothing for PEM; read so
    // that a Kafka file using them gets no unknown-key warning.
    let _ = lookup("ssl.keystore.password");
    let _ = lookup("ssl.truststore.password");
    let _ = lookup("ssl.protocol");
    let _ = lookup("ssl.endpoint.identification.algorithm");
    let (certificate_chain, private_key) = keystore(listener, &prefix, &mut lookup)?;
    let key_password = lookup("ssl.key.password").map(|(k, v)| (k, Secret(v)));
    let truststore = truststore(&mut lookup)?;
    let (client_auth_key, client_auth) = match lookup("ssl.client.auth") {
        Some((key, value)) => {
            let auth = match value.trim().to_ascii_lowercase().as_str() {
                "none" => ClientAuth::None,
                "requested" => ClientAuth::Requested,
                "required" => ClientAuth::Required,
                _ => {
                    let expected = Expected::OneOf(CLIENT_AUTH_NAMES);
                    return Err(InvalidValue::new(&key, &value, expected).into());
                }
            };
            (key, auth)
        }
        None => ("ssl.client.auth".to_string(), ClientAuth::None),
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(TlsConfigError::NoTruststore {
            key: client_auth_key,
            value: CLIENT_AUTH_NAMES[client_auth as usize].to_string(),
            location_key: format!("{prefix}ssl.truststore.location"),
            certificates_key: format!("{prefix}ssl.truststore.certificates"),
        }
        .into());
    }
    let enabled_protocols = match lookup("ssl.enabled.protocols") {
        Some((key, value)) => parse_protocols(&key, &value)?,
        None => vec![TlsVersion::Tls12, TlsVersion::Tls13],
    };
    let principal_mapping = match lookup("ssl.principal.mapping.rules") {
        Some((key, value)) => PrincipalMapping::parse(&value)
            .map_err(|message| TlsConfigError::BadRule { key, message })?,
        None => PrincipalMapping::default(),
    };
    let handshake_timeout_ms = match get(HANDSHAKE_TIMEOUT_KEY) {
        Some(v) => parse_i64(HANDSHAKE_TIMEOUT_KEY, &v, 1, i64::MAX)?.unsigned_abs(),
        None => HANDSHAKE_TIMEOUT_MS_DEFAULT,
    };
    Ok(TlsConfig {
        certificate_chain,
        private_key,
        key_password,
        truststore,
        client_auth,
        client_auth_key,
        enabled_protocols,
        principal_mapping,
        handshake_timeout_ms,
    })
}

type Lookup<'l> = dyn FnMut(&str) -> Option<(String, String)> + 'l;

fn keystore(
    listener: &str,
    prefix: &str,
    lookup: &mut Lookup<'_>,
) -> Result<(PemSource, PemSource), TlsConfigError> {
    let location = lookup("ssl.keystore.location");
    let chain = lookup("ssl.keystore.certificate.chain");
    let key = lookup("ssl.keystore.key");
    match (location, chain, key) {
        (Some((key, path)), None, None) => {
            let file = PemSource::File {
                key,
                path: PathBuf::from(path.trim()),
            };
            Ok((file.clone(), file))
        }
        (Some((key, _)), Some((other_key, _)), _)
        | (Some((key, _)), None, Some((other_key, _))) => {
            Err(TlsConfigError::KeystoreTwice { key, other_key })
        }
        (None, Some((chain_key, chain)), Some((key_key, key))) => Ok((
            PemSource::Inline {
                key: chain_key,
                text: Secret(chain),
            },
            PemSource::Inline {
                key: key_key,
                text: Secret(key),
            },
        )),
        (None, Some((key, _)), None) => Err(TlsConfigError::Incomplete {
            key,
            missing_key: format!("{prefix}ssl.keystore.key"),
        }),
        (None, None, Some((key, _))) => Err(TlsConfigError::Incomplete {
            key,
            missing_key: format!("{prefix}ssl.keystore.certificate.chain"),
        }),
        (None, None, None) => Err(TlsConfigError::NoKeystore {
            listener: listener.to_string(),
            location_key: format!("{prefix}ssl.keystore.location"),
            chain_key: format!("{prefix}ssl.keystore.certificate.chain"),
            key_key: format!("{prefix}ssl.keystore.key"),
        }),
    }
}

fn truststore(lookup: &mut Lookup<'_>) -> Result<Option<PemSource>, TlsConfigError> {
    let location = lookup("ssl.truststore.location");
    let certificates = lookup("ssl.truststore.certificates");
    match (location, certificates) {
        (Some((key, _)), Some((other_key, _))) => {
            Err(TlsConfigError::KeystoreTwice { key, other_key })
        }
        (Some((key, path)), None) => Ok(Some(PemSource::File {
            key,
            path: PathBuf::from(path.trim()),
        })),
        (None, Some((key, text))) => Ok(Some(PemSource::Inline {
            key,
            text: Secret(text),
        })),
        (None, None) => Ok(None),
    }
}

fn parse_protocols(key: &str, value: &str) -> Result<Vec<TlsVersion>, InvalidValue> {
    let bad = || InvalidValue::new(key, value, Expected::ListOf(PROTOCOL_NAMES));
    let mut versions = Vec::new();
    for item in split_list(value) {
        let version = match item {
            "TLSv1.2" => TlsVersion::Tls12,
            "TLSv1.3" => TlsVersion::Tls13,
            _ => return Err(bad()),
        };
        versions.push(version);
    }
    versions.sort();
    versions.dedup();
    if versions.is_empty() {
        return Err(bad());
    }
    Ok(versions)
}

/// Kafka's `ssl.principal.mapping.rules`: from a certificate's subject DN
/// to a user name. Rules are tried in order; the first whose pattern
/// matches the whole DN gives the name (`DEFAULT`: the DN itself).
#[derive(Debug, Clone)]
pub struct PrincipalMapping {
    rules: Vec<MappingRule>,
}

#[derive(Debug, Clone)]
enum MappingRule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl PartialEq for PrincipalMapping {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Default for PrincipalMapping {
    /// `DEFAULT`: the full DN.
    fn default() -> Self {
        PrincipalMapping {
            rules: vec![MappingRule::Default],
        }
    }
}

impl fmt::Display for PrincipalMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match rule {
                MappingRule::Default => f.write_str("DEFAULT")?,
                MappingRule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    let case = match case {
                        Case::Keep => "",
                        Case::Lower => "L",
                        Case::Upper => "U",
                    };
                    write!(f, "RULE:{}/{replacement}/{case}", pattern.as_str())?;
                }
            }
        }
        Ok(())
    }
}

/// No rule matched a DN (Kafka fails the authentication then).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no ssl.principal.mapping.rules rule matches {dn:?}")]
pub struct NoMatchingRule {
    pub dn: String,
}

impl PrincipalMapping {
    /// Parses `RULE:pattern/replacement/[LU]` and `DEFAULT` entries,
    /// separated by commas (and spaces); `\/` in a pattern or replacement
    /// is a literal `/`.
    pub fn parse(text: &str) -> Result<PrincipalMapping, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(MappingRule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| format!("a RULE without /replacement/ in {text:?}"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| format!("a RULE without a closing / in {text:?}"))?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("pattern {pattern:?}: {e}"))?;
                rules.push(MappingRule::Replace {
                    pattern,
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!(
                    "expected RULE:pattern/replacement/[LU] or DEFAULT at {rest:?}"
                ));
            }
            let trimmed = rest.trim_start_matches(char::is_whitespace);
            rest = match trimmed.strip_prefix(',') {
                Some(after) => after.trim_start_matches(|c: char| c == ',' || c.is_whitespace()),
                None if trimmed.is_empty() => trimmed,
                None => return Err(format!("expected a comma before {trimmed:?}")),
            };
        }
        if rules.is_empty() {
            return Err("no rules".to_string());
        }
        Ok(PrincipalMapping { rules })
    }

    /// The user name for a certificate whose subject is `dn`.
    pub fn apply(&self, dn: &str) -> Result<String, NoMatchingRule> {
        for rule in &self.rules {
            match rule {
                MappingRule::Default => return Ok(dn.to_string()),
                MappingRule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    let Some(captures) = pattern.captures(dn) else {
                        continue;
                    };
                    let mut name = String::new();
                    captures.expand(replacement, &mut name);
                    return Ok(match case {
                        Case::Keep => name,
                        Case::Lower => name.to_lowercase(),
                        Case::Upper => name.to_uppercase(),
                    });
                }
            }
        }
        Err(NoMatchingRule { dn: dn.to_string() })
    }
}

/// Splits at the first unescaped `/`: the part before (with `\/` made
/// `/`) and what follows the slash.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '/' => return Some((out, &text[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

/// Java's replacement syntax (`$1`, `\$`) as the regex crate's: group
/// numbers are braced so that `$1a` stays group 1 followed by `a`.
fn java_replacement(java: &str) -> String {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut group = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    group.push(d);
                    chars.next();
                }
                out.push_str(&format!("${{{group}}}"));
            }
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::ConfigError;
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<TlsConfig, ConfigError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        read_listener_tls("SSL", &mut |key| map.get(key).cloned())
    }

    #[test]
    fn a_pem_file_keystore_with_defaults() {
        let config = read(&[("ssl.keystore.location", "/k.pem")]).expect("config");
        let file = PemSource::File {
            key: "ssl.keystore.location".into(),
            path: "/k.pem".into(),
        };
        assert_eq!(config.certificate_chain, file);
        assert_eq!(config.private_key, file);
        assert_eq!(config.client_auth, ClientAuth::None);
        assert_eq!(
            config.enabled_protocols,
            vec![TlsVersion::Tls12, TlsVersion::Tls13]
        );
        assert_eq!(config.principal_mapping.to_string(), "DEFAULT");
        assert_eq!(config.handshake_timeout_ms, 10_000);
        assert_eq!(config.truststore, None);
    }

    #[test]
    fn listener_prefix_wins_over_the_plain_key() {
        let config = read(&[
            ("ssl.keystore.location", "/plain.pem"),
            ("listener.name.ssl.ssl.keystore.location", "/listener.pem"),
            ("listener.name.ssl.ssl.client.auth", "required"),
            ("ssl.truststore.certificates", "-----BEGIN CERTIFICATE-----"),
            ("ssl.enabled.protocols", "TLSv1.3"),
            (HANDSHAKE_TIMEOUT_KEY, "250"),
        ])
        .expect("config");
        assert_eq!(
            config.private_key.key(),
            "listener.name.ssl.ssl.keystore.location"
        );
        assert_eq!(config.client_auth, ClientAuth::Required);
        assert_eq!(config.client_auth_key, "listener.name.ssl.ssl.client.auth");
        assert_eq!(
            config.truststore.as_ref().map(PemSource::key),
            Some("ssl.truststore.certificates")
        );
        assert_eq!(config.enabled_protocols, vec![TlsVersion::Tls13]);
        assert_eq!(config.handshake_timeout_ms, 250);
    }

    #[test]
    fn inline_keystore_and_password() {
        let config = read(&[
            ("ssl.keystore.certificate.chain", "CHAIN"),
            ("ssl.keystore.key", "KEY"),
            ("ssl.key.password", "pw"),
        ])
        .expect("config");
        assert_eq!(config.private_key.key(), "ssl.keystore.key");
        assert_eq!(
            config.key_password.as_ref().map(|(_, s)| s.0.as_str()),
            Some("pw")
        );
        // Secrets stay out of logs.
        assert!(!format!("{config:?}").contains("KEY\""));
        assert!(!format!("{config:?}").contains("pw"));
    }

    #[test]
    fn config_errors_name_their_keys() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("ssl.keystore.type", "JKS"), ("ssl.keystore.location", "/k")],
                "ssl.keystore.type=JKS: only PEM key and trust stores are supported; use ssl.keystore.type=PEM",
            ),
            (
                &[("ssl.keystore.location", "/k"), ("listener.name.ssl.ssl.truststore.type", "PKCS12")],
                "listener.name.ssl.ssl.truststore.type=PKCS12: only PEM key and trust stores are supported; use listener.name.ssl.ssl.truststore.type=PEM",
            ),
            (
                &[],
                "listener SSL is a TLS listener but has no key store: set listener.name.ssl.ssl.keystore.location, or listener.name.ssl.ssl.keystore.certificate.chain and listener.name.ssl.ssl.keystore.key",
            ),
            (
                &[("ssl.keystore.certificate.chain", "C")],
                "ssl.keystore.certificate.chain is set without listener.name.ssl.ssl.keystore.key",
            ),
            (
                &[("ssl.keystore.location", "/k"), ("ssl.keystore.key", "K")],
                "ssl.keystore.location and ssl.keystore.key are both set: give the key store either as a file or inline",
            ),
            (
                &[("ssl.keystore.location", "/k"), ("ssl.client.auth", "required")],
                "ssl.client.auth=required needs a trust store (listener.name.ssl.ssl.truststore.location or listener.name.ssl.ssl.truststore.certificates) to check client certificates against",
            ),
            (
                &[("ssl.keystore.location", "/k"), ("ssl.client.auth", "maybe")],
                "invalid value \"maybe\" for ssl.client.auth: expected one of none, requested, required",
            ),
            (
                &[("ssl.keystore.location", "/k"), ("ssl.enabled.protocols", "TLSv1.1")],
                "invalid value \"TLSv1.1\" for ssl.enabled.protocols: expected a comma-separated list of TLSv1.2, TLSv1.3",
            ),
            (
                &[("ssl.keystore.location", "/k"), ("ssl.principal.mapping.rules", "RULE:x")],
                "invalid value for ssl.principal.mapping.rules: a RULE without /replacement/ in \"RULE:x\"",
            ),
            (
                &[("ssl.keystore.location", "/k"), (HANDSHAKE_TIMEOUT_KEY, "0")],
                "invalid value \"0\" for rafka.ssl.handshake.timeout.ms: expected an integer >= 1",
            ),
        ];
        for (pairs, want) in cases {
            let got = read(pairs).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_string()), "{pairs:?}");
        }
    }

    #[test]
    fn mapping_rules_as_kafka_documents_them() {
        let rules = PrincipalMapping::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\n RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L, DEFAULT",
        )
        .expect("rules");
        let map = |dn: &str| rules.apply(dn).expect("a rule matches");
        assert_eq!(
            map("CN=kafka-server1,OU=ServiceUsers,O=Org,C=US"),
            "kafka-server1"
        );
        assert_eq!(
            map("CN=adminUser,OU=Admin,O=Org,L=X,ST=Y,C=US"),
            "adminuser@admin"
        );
        assert_eq!(map("CN=Alice.Smith,O=Org"), "alice.smith");
        assert_eq!(map("O=Org"), "O=Org");
        let upper = PrincipalMapping::parse("RULE:^CN=([^,]*).*$/$1-x/U").expect("rule");
        assert_eq!(upper.apply("CN=bob,O=acme").as_deref(), Ok("BOB-X"));
        assert_eq!(
            upper.apply("O=acme"),
            Err(NoMatchingRule {
                dn: "O=acme".into()
            })
        );
        let slash = PrincipalMapping::parse(r"RULE:^CN=(.*)$/team\/$1/").expect("rule");
        assert_eq!(slash.apply("CN=a").as_deref(), Ok("team/a"));
        assert_eq!(
            PrincipalMapping::default().apply("CN=a,O=b").as_deref(),
            Ok("CN=a,O=b")
        );
        for bad in ["", "RULE:(/x/", "NOPE", "DEFAULT DEFAULT"] {
            assert!(PrincipalMapping::parse(bad).is_err(), "{bad:?}");
        }
    }
}
