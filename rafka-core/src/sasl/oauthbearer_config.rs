//! Which OAUTHBEARER validator a listener uses, from its config, chosen as
//! Kafka chooses:
//!
//! - `listener.name.<l>.oauthbearer.sasl.server.callback.handler.class`
//!   absent (or Kafka's unsecured handler): unsecured JWS, with the
//!   `unsecuredValidator*` options of
//!   `listener.name.<l>.oauthbearer.sasl.jaas.config`.
//! - `org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler`
//!   (or its older `...oauthbearer.secured...` name): signed JWTs against
//!   the key set of `sasl.oauthbearer.jwks.endpoint.url`, with
//!   `sasl.oauthbearer.expected.issuer`, `.expected.audience`,
//!   `.sub.claim.name`, `.scope.claim.name`, `.clock.skew.seconds`.
//!
//! rafka's broker does not fetch keys over the network: the JWKS URL must
//! be `file://`, read once here at startup (Kafka re-reads a changed file;
//! rafka needs a restart). `http(s)://` is refused with a clear error; the
//! `*.jwks.endpoint.refresh.ms` and retry settings are therefore ignored.
//!
//! The `sasl.oauthbearer.*` keys are looked up as Kafka resolves listener
//! overrides: `listener.name.<l>.oauthbearer.<key>`, then
//! `listener.name.<l>.<key>`, then `<key>`.
//!
//! Lives on: the broker's startup thread (reads the JWKS file), then
//! shared read-only.

use std::path::PathBuf;

use super::jaas::{JaasConfig, JaasError};
use super::oauthbearer::OAuthBearerValidator;
use super::oauthbearer_jwks::{Jwks, JwksError, JwksValidator, JWKS_BYTES_MAX};
use super::oauthbearer_unsecured::{UnsecuredOptionsError, UnsecuredValidator};

/// Kafka's JWKS validator, by its current and its older (3.1-3.x) name.
pub const VALIDATOR_CALLBACK_HANDLER: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";
pub const VALIDATOR_CALLBACK_HANDLER_SECURED: &str =
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler";
/// Kafka's default validator, which may also be named explicitly.
pub const UNSECURED_VALIDATOR_CALLBACK_HANDLER: &str = "org.apache.kafka.common.security.\
    oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

pub const JWKS_ENDPOINT_URL: &str = "sasl.oauthbearer.jwks.endpoint.url";
pub const EXPECTED_ISSUER: &str = "sasl.oauthbearer.expected.issuer";
pub const EXPECTED_AUDIENCE: &str = "sasl.oauthbearer.expected.audience";
pub const SUB_CLAIM_NAME: &str = "sasl.oauthbearer.sub.claim.name";
pub const SCOPE_CLAIM_NAME: &str = "sasl.oauthbearer.scope.claim.name";
pub const CLOCK_SKEW_SECONDS: &str = "sasl.oauthbearer.clock.skew.seconds";

/// What is wrong with a listener's OAUTHBEARER config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthBearerConfigError {
    #[error("{0} is not set: an OAUTHBEARER listener needs an OAuthBearerLoginModule JAAS config")]
    NoJaasConfig(String),
    #[error("{key}: {error}")]
    Jaas { key: String, error: JaasError },
    #[error("{key}: {error}")]
    UnsecuredOptions {
        key: String,
        error: UnsecuredOptionsError,
    },
    #[error("{key}: unknown server callback handler {class}")]
    UnknownCallbackHandler { key: String, class: String },
    #[error("{JWKS_ENDPOINT_URL} is not set: {VALIDATOR_CALLBACK_HANDLER} needs a key set")]
    NoJwksUrl,
    #[error(
        "{JWKS_ENDPOINT_URL} ({0}): rafka does not fetch keys over HTTP(S); save the key set to \
         a file and give it as a file:// URL"
    )]
    RemoteJwks(String),
    #[error(
        "The OAuth configuration option {JWKS_ENDPOINT_URL} contains a URL ({url}) that is \
         malformed or unsupported: {reason}"
    )]
    BadUrl { url: String, reason: &'static str },
    #[error("Could not read JWKS from file {path}: {error}")]
    JwksRead { path: String, error: String },
    #[error("JWKS file {path}: {error}")]
    Jwks { path: String, error: JwksError },
    #[error("{key}: not an integer: {value:?}")]
    NotInteger { key: String, value: String },
    #[error("{key} must not be negative: {value}")]
    Negative { key: String, value: i64 },
    #[error("{key} must not be blank")]
    Blank { key: String },
}

/// A listener's OAUTHBEARER setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthBearerListenerConfig {
    pub validator: OAuthBearerValidator,
}

impl OAuthBearerListenerConfig {
    /// Reads `listener`'s OAUTHBEARER settings through `lookup` (a broker
    /// property by key); reads the JWKS file if one is named.
    pub fn parse(
        listener: &str,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<OAuthBearerListenerConfig, OAuthBearerConfigError> {
        let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
        let jaas_key = format!("{prefix}oauthbearer.sasl.jaas.config");
        let jaas_text = lookup(&jaas_key)
            .ok_or_else(|| OAuthBearerConfigError::NoJaasConfig(jaas_key.clone()))?;
        let jaas = JaasConfig::parse(&jaas_text).map_err(|error| OAuthBearerConfigError::Jaas {
            key: jaas_key.clone(),
            error,
        })?;
        let unsecured = UnsecuredValidator::from_jaas(&jaas).map_err(|error| {
            OAuthBearerConfigError::UnsecuredOptions {
                key: jaas_key.clone(),
                error,
            }
        })?;
        let handler_key = format!("{prefix}oauthbearer.sasl.server.callback.handler.class");
        let validator = match lookup(&handler_key).as_deref().map(str::trim) {
            None | Some("") | Some(UNSECURED_VALIDATOR_CALLBACK_HANDLER) => {
                OAuthBearerValidator::Unsecured(unsecured)
            }
            Some(VALIDATOR_CALLBACK_HANDLER | VALIDATOR_CALLBACK_HANDLER_SECURED) => {
                let setting = |key: &str| {
                    [
                        format!("{prefix}oauthbearer.{key}"),
                        format!("{prefix}{key}"),
                        key.to_string(),
                    ]
                    .iter()
                    .find_map(|k| lookup(k))
                    .map(|v| v.trim().to_string())
                };
                OAuthBearerValidator::Jwks(Box::new(jwks_validator(&setting)?))
            }
            Some(class) => {
                return Err(OAuthBearerConfigError::UnknownCallbackHandler {
                    key: handler_key,
                    class: class.to_string(),
                })
            }
        };
        Ok(OAuthBearerListenerConfig { validator })
    }
}

fn jwks_validator(
    setting: &dyn Fn(&str) -> Option<String>,
) -> Result<JwksValidator, OAuthBearerConfigError> {
    let url = setting(JWKS_ENDPOINT_URL)
        .filter(|u| !u.is_empty())
        .ok_or(OAuthBearerConfigError::NoJwksUrl)?;
    let path = file_url_path(&url)?;
    let shown = path.display().to_string();
    let bytes = read_bounded(&path).map_err(|error| OAuthBearerConfigError::JwksRead {
        path: shown.clone(),
        error,
    })?;
    let jwks =
        Jwks::parse(&bytes).map_err(|error| OAuthBearerConfigError::Jwks { path: shown, error })?;
    let mut validator = JwksValidator::new(jwks);
    validator.expected_issuer = setting(EXPECTED_ISSUER).filter(|s| !s.is_empty());
    validator.expected_audience = setting(EXPECTED_AUDIENCE)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    for (key, field) in [
        (SUB_CLAIM_NAME, &mut validator.sub_claim),
        (SCOPE_CLAIM_NAME, &mut validator.scope_claim),
    ] {
        if let Some(name) = setting(key) {
            if name.is_empty() {
                return Err(OAuthBearerConfigError::Blank {
                    key: key.to_string(),
                });
            }
            *field = name;
        }
    }
    if let Some(skew) = setting(CLOCK_SKEW_SECONDS) {
        let value: i32 = skew
            .parse()
            .map_err(|_| OAuthBearerConfigError::NotInteger {
                key: CLOCK_SKEW_SECONDS.to_string(),
                value: skew.clone(),
            })?;
        if value < 0 {
            return Err(OAuthBearerConfigError::Negative {
                key: CLOCK_SKEW_SECONDS.to_string(),
                value: i64::from(value),
            });
        }
        validator.clock_skew_s = i64::from(value);
    }
    Ok(validator)
}

/// The local path of a `file:` URL: `file:///abs/path`,
/// `file://localhost/abs/path` or Java's `file:/abs/path`, `%XX` decoded.
pub fn file_url_path(url: &str) -> Result<PathBuf, OAuthBearerConfigError> {
    let bad = |reason| OAuthBearerConfigError::BadUrl {
        url: url.to_string(),
        reason,
    };
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(bad("no scheme"));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "file" => {}
        "http" | "https" => return Err(OAuthBearerConfigError::RemoteJwks(url.to_string())),
        _ => return Err(bad("only the file protocol is supported")),
    }
    let path = match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let at = authority_and_path
                .find('/')
                .unwrap_or(authority_and_path.len());
            let (host, path) = authority_and_path.split_at(at);
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                return Err(bad("a file URL on another host"));
            }
            path
        }
        None => rest,
    };
    if !path.starts_with('/') {
        return Err(bad("the path is not absolute"));
    }
    Ok(PathBuf::from(
        percent_decode(path).ok_or_else(|| bad("bad %-escape"))?,
    ))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads at most [`JWKS_BYTES_MAX`] bytes (a key set is a few KiB).
fn read_bounded(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(JWKS_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() > JWKS_BYTES_MAX {
        return Err(format!("longer than {JWKS_BYTES_MAX} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls() {
        let path = |url: &str| file_url_path(url).map(|p| p.display().to_string());
        assert_eq!(path("file:///etc/jwks.json"), Ok("/etc/jwks.json".into()));
        assert_eq!(path("FILE:///a%20b.json"), Ok("/a b.json".into()));
        assert_eq!(path("file://localhost/x"), Ok("/x".into()));
        assert_eq!(path("file:/x"), Ok("/x".into()));
        assert_eq!(
            path("https://idp.example/jwks").unwrap_err().to_string(),
            "sasl.oauthbearer.jwks.endpoint.url (https://idp.example/jwks): rafka does not fetch \
             keys over HTTP(S); save the key set to a file and give it as a file:// URL"
        );
        assert!(matches!(
            path("file://otherhost/x"),
            Err(OAuthBearerConfigError::BadUrl {
                reason: "a file URL on another host",
                ..
            })
        ));
        assert!(matches!(
            path("ftp://x/y"),
            Err(OAuthBearerConfigError::BadUrl {
                reason: "only the file protocol is supported",
                ..
            })
        ));
        assert!(matches!(
            path("file:relative"),
            Err(OAuthBearerConfigError::BadUrl {
                reason: "the path is not absolute",
                ..
            })
        ));
        assert!(matches!(
            path("file:///a%zz"),
            Err(OAuthBearerConfigError::BadUrl {
                reason: "bad %-escape",
                ..
            })
        ));
        assert!(matches!(
            path("jwks.json"),
            Err(OAuthBearerConfigError::BadUrl { .. })
        ));
    }
}
