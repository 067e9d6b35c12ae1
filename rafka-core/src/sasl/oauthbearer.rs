//! The OAUTHBEARER server (RFC 7628, as Kafka's `OAuthBearerSaslServer`,
//! KIP-255), sans IO, and its client side.
//!
//! The exchange: the client sends its initial response
//! `n,[a=<authzid>],\x01auth=Bearer <token>\x01[key=value\x01]*\x01`. A
//! valid token completes the exchange with an empty response. An invalid
//! one gets the RFC 7628 error JSON (`{"status":"invalid_token"}`) as a
//! challenge; the client answers `\x01` and the server then fails with
//! SASL_AUTHENTICATION_FAILED and that JSON as its message, as Kafka does.
//! (Kafka also takes any other answer as a fresh initial response; so does
//! this server, at most [`OAUTHBEARER_ATTEMPTS_MAX`] times.)
//!
//! Which validator checks tokens is [`OAuthBearerValidator`]: unsecured
//! JWS (Kafka's default) or signed JWTs against a JWKS; the listener's
//! config chooses (`oauthbearer_config`). Time is passed in, in ms since
//! the epoch.
//!
//! Lives on: the shard owning the connection (one server per exchange).

use std::collections::BTreeMap;

use rafka_proto::error::ErrorCode;

use super::oauthbearer_jwks::JwksValidator;
use super::oauthbearer_token::{OAuthBearerToken, TokenError, TOKEN_BYTES_MAX};
use super::oauthbearer_unsecured::UnsecuredValidator;
use super::SaslStep;

/// Longest client message accepted: a token plus extensions.
pub const OAUTHBEARER_MESSAGE_BYTES_MAX: usize = TOKEN_BYTES_MAX + 4096;
/// Most SASL extensions in one initial response.
pub const OAUTHBEARER_EXTENSIONS_MAX: usize = 32;
/// Most initial responses one exchange takes (each retry follows an
/// error challenge).
pub const OAUTHBEARER_ATTEMPTS_MAX: u32 = 3;
/// The `auth` key of the initial response, reserved among extensions.
pub const AUTH_KEY: &str = "auth";
const SEPARATOR: char = '\u{1}';

/// What Kafka tells a client whose message it could not parse.
const GENERIC_FAILURE: &str =
    "Authentication failed during authentication due to invalid credentials with SASL mechanism \
     OAUTHBEARER";

/// Why an exchange failed; every one is SASL_AUTHENTICATION_FAILED.
/// `Display` is for logs; [`Self::client_message`] is what Kafka sends.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OAuthBearerError {
    #[error("Invalid OAUTHBEARER client first message: {0}")]
    Malformed(&'static str),
    #[error("Invalid OAUTHBEARER client first message: longer than {OAUTHBEARER_MESSAGE_BYTES_MAX} bytes")]
    TooLong,
    #[error("Invalid OAUTHBEARER client first message: 'auth' not specified")]
    NoAuth,
    #[error("Invalid OAUTHBEARER client first message: invalid 'auth' format")]
    BadAuth,
    #[error("Invalid scheme in OAUTHBEARER client first message: {0}")]
    Scheme(String),
    #[error("Invalid OAUTHBEARER client first message: key {0:?} given twice")]
    DuplicateKey(String),
    #[error("Invalid OAUTHBEARER client first message: more than {OAUTHBEARER_EXTENSIONS_MAX} extensions")]
    TooManyExtensions,
    /// The client acknowledged the error challenge: the token's refusal.
    #[error("token refused ({json}): {reason}")]
    TokenRefused { json: String, reason: TokenError },
    #[error(
        "Authentication failed: Client requested an authorization id ({authzid}) that is \
         different from the token's principal name ({principal})"
    )]
    AuthorizationIdMismatch { authzid: String, principal: String },
    #[error("OAUTHBEARER: more than {OAUTHBEARER_ATTEMPTS_MAX} initial responses")]
    TooManyAttempts,
    #[error("OAUTHBEARER message after the exchange ended")]
    ExchangeOver,
}

impl OAuthBearerError {
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::SASL_AUTHENTICATION_FAILED
    }

    /// The SaslAuthenticate error message Kafka sends: the error JSON for a
    /// refused token, its own sentence for an authzid mismatch (both are
    /// `SaslAuthenticationException`s there), a generic one otherwise.
    pub fn client_message(&self) -> String {
        match self {
            OAuthBearerError::TokenRefused { json, .. } => json.clone(),
            OAuthBearerError::AuthorizationIdMismatch { .. } => self.to_string(),
            _ => GENERIC_FAILURE.to_string(),
        }
    }
}

/// The parsed client initial response (Kafka's
/// `OAuthBearerClientInitialResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInitialResponse {
    /// The gs2 authzid, unescaped (`=2C` is `,`, `=3D` is `=`).
    pub authzid: Option<String>,
    pub token: String,
    /// SASL extensions (RFC 7628 `key=value`), without `auth`.
    pub extensions: BTreeMap<String, String>,
}

impl ClientInitialResponse {
    /// Parses strictly what Kafka's pattern accepts: gs2 flag `n` only,
    /// keys of ASCII letters, values of printable ASCII, space, tab, CR
    /// and LF, a token of `[-_.a-zA-Z0-9]`, scheme `Bearer` in any case.
    pub fn parse(message: &[u8]) -> Result<ClientInitialResponse, OAuthBearerError> {
        if message.len() > OAUTHBEARER_MESSAGE_BYTES_MAX {
            return Err(OAuthBearerError::TooLong);
        }
        let text =
            std::str::from_utf8(message).map_err(|_| OAuthBearerError::Malformed("not UTF-8"))?;
        let rest = text
            .strip_prefix("n,")
            .ok_or(OAuthBearerError::Malformed("gs2 header is not \"n,\""))?;
        let (authzid, rest) = rest
            .split_once(',')
            .ok_or(OAuthBearerError::Malformed("gs2 header not terminated"))?;
        let authzid = match authzid {
            "" => None,
            a => Some(unescape_saslname(
                a.strip_prefix("a=")
                    .ok_or(OAuthBearerError::Malformed("bad authorization id"))?,
            )?),
        };
        let pairs = rest
            .strip_prefix(SEPARATOR)
            .and_then(|r| r.strip_suffix(SEPARATOR))
            .ok_or(OAuthBearerError::Malformed(
                "no \\x01 around the key-value pairs",
            ))?;
        let mut fields = BTreeMap::new();
        // `pairs` is `(key=value\x01)*`: every pair ends with a separator.
        let mut rest = pairs;
        while !rest.is_empty() {
            let (pair, tail) = rest
                .split_once(SEPARATOR)
                .ok_or(OAuthBearerError::Malformed("key-value pair not terminated"))?;
            rest = tail;
            let (key, value) = pair
                .split_once('=')
                .filter(|(k, v)| valid_key(k) && valid_value(v))
                .ok_or(OAuthBearerError::Malformed("bad key-value pair"))?;
            // `auth` plus the extensions.
            if fields.len() > OAUTHBEARER_EXTENSIONS_MAX {
                return Err(OAuthBearerError::TooManyExtensions);
            }
            if fields.insert(key.to_string(), value.to_string()).is_some() {
                return Err(OAuthBearerError::DuplicateKey(key.to_string()));
            }
        }
        let auth = fields.remove(AUTH_KEY).ok_or(OAuthBearerError::NoAuth)?;
        let token = parse_auth(&auth)?;
        Ok(ClientInitialResponse {
            authzid,
            token,
            extensions: fields,
        })
    }

    /// The message bytes (Kafka's `toBytes`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let authzid = self
            .authzid
            .as_deref()
            .map(|a| format!("a={}", escape_saslname(a)))
            .unwrap_or_default();
        let mut message = format!("n,{authzid},{SEPARATOR}auth=Bearer {}", self.token);
        for (key, value) in &self.extensions {
            message.push(SEPARATOR);
            message.push_str(&format!("{key}={value}"));
        }
        message.push(SEPARATOR);
        message.push(SEPARATOR);
        message.into_bytes()
    }
}

/// `Bearer <token>`: scheme `\w+`, spaces, then RFC 6750's b64token
/// (`[-._~+/a-zA-Z0-9]+=*`). Kafka's pattern takes only `[-_.a-zA-Z0-9]+`,
/// which refuses RFC 7628's own examples; every JWT fits both.
fn parse_auth(auth: &str) -> Result<String, OAuthBearerError> {
    let (scheme, token) = auth.split_once(' ').ok_or(OAuthBearerError::BadAuth)?;
    let token = token.trim_start_matches(' ');
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let body = token.trim_end_matches('=');
    let token_ok = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/')
        });
    if !word(scheme) || !token_ok {
        return Err(OAuthBearerError::BadAuth);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(OAuthBearerError::Scheme(scheme.to_string()));
    }
    Ok(token.to_string())
}

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic())
}

fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// RFC 7628's saslname: ASCII 0x01-0x7F except `=` and `,`, with `=2C`
/// and `=3D` for those two.
fn unescape_saslname(name: &str) -> Result<String, OAuthBearerError> {
    let bad = OAuthBearerError::Malformed("bad authorization id");
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| (0x01..=0x7f).contains(&b) && b != b',')
    {
        return Err(bad);
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(bad),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Which tokens a listener accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthBearerValidator {
    /// Kafka's default: unsecured JWS (development only).
    Unsecured(UnsecuredValidator),
    /// Signed JWTs against a JWKS.
    Jwks(Box<JwksValidator>),
}

impl OAuthBearerValidator {
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<OAuthBearerToken, TokenError> {
        match self {
            OAuthBearerValidator::Unsecured(v) => v.validate(token, now_ms),
            OAuthBearerValidator::Jwks(v) => v.validate(token, now_ms),
        }
    }
}

/// One connection's OAUTHBEARER exchange, server side.
#[derive(Debug, Default)]
pub struct OAuthBearerServer {
    state: State,
    attempts: u32,
    extensions: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Initial,
    /// The error JSON was sent; `\x01` ends the exchange with it.
    Refused {
        json: String,
        reason: TokenError,
    },
    Complete(OAuthBearerToken),
    Over,
}

impl OAuthBearerServer {
    pub fn new() -> OAuthBearerServer {
        OAuthBearerServer::default()
    }

    /// Takes the client's next message at `now_ms`. Completes with the
    /// token's principal and an empty response, or challenges with the
    /// error JSON, or fails; after a failure or completion every further
    /// message is [`OAuthBearerError::ExchangeOver`].
    pub fn evaluate(
        &mut self,
        message: &[u8],
        validator: &OAuthBearerValidator,
        now_ms: i64,
    ) -> Result<SaslStep, OAuthBearerError> {
        match std::mem::replace(&mut self.state, State::Over) {
            State::Initial => {}
            State::Refused { json, reason } => {
                if message == [SEPARATOR as u8] {
                    return Err(OAuthBearerError::TokenRefused { json, reason });
                }
            }
            State::Complete(token) => {
                self.state = State::Complete(token);
                return Err(OAuthBearerError::ExchangeOver);
            }
            State::Over => return Err(OAuthBearerError::ExchangeOver),
        }
        self.attempts += 1;
        if self.attempts > OAUTHBEARER_ATTEMPTS_MAX {
            return Err(OAuthBearerError::TooManyAttempts);
        }
        let response = ClientInitialResponse::parse(message)?;
        let token = match validator.validate(&response.token, now_ms) {
            Ok(token) => token,
            Err(reason) => {
                let json = reason.json_status();
                let challenge = json.clone().into_bytes();
                self.state = State::Refused { json, reason };
                return Ok(SaslStep::Challenge(challenge));
            }
        };
        if let Some(authzid) = response.authzid.filter(|a| *a != token.principal) {
            return Err(OAuthBearerError::AuthorizationIdMismatch {
                authzid,
                principal: token.principal,
            });
        }
        // Kafka's validators accept every extension; they are kept for
        // whoever wants them (Kafka's negotiated properties).
        self.extensions = response.extensions;
        let user = token.principal.clone();
        self.state = State::Complete(token);
        Ok(SaslStep::Complete {
            user,
            response: Vec::new(),
        })
    }

    /// The validated token once complete: its principal, and its expiry,
    /// which caps the session's lifetime (KIP-368).
    pub fn token(&self) -> Option<&OAuthBearerToken> {
        match &self.state {
            State::Complete(token) => Some(token),
            _ => None,
        }
    }

    /// The client's SASL extensions once complete.
    pub fn extensions(&self) -> &BTreeMap<String, String> {
        &self.extensions
    }
}

/// The client side: Kafka's `OAuthBearerSaslClient`, for tools and tests.
pub struct OAuthBearerClient;

impl OAuthBearerClient {
    /// The initial response carrying `token` and `extensions` (keys of
    /// ASCII letters, not `auth`; values printable ASCII).
    pub fn initial_response(token: &str, extensions: &[(&str, &str)]) -> Vec<u8> {
        Self::initial_response_as(None, token, extensions)
    }

    /// The same, asking for authorization id `authzid`.
    pub fn initial_response_as(
        authzid: Option<&str>,
        token: &str,
        extensions: &[(&str, &str)],
    ) -> Vec<u8> {
        ClientInitialResponse {
            authzid: authzid.map(String::from),
            token: token.to_string(),
            extensions: extensions
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
        .to_bytes()
    }

    /// What the client answers to an error challenge (RFC 7628 3.2.3).
    pub const ERROR_ACK: &'static [u8] = b"\x01";
}

#[cfg(test)]
mod tests;
