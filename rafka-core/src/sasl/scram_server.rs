//! The SCRAM server (RFC 5802 section 5, as Kafka's `ScramSaslServer`):
//! fed the client's two messages, it answers server-first and then
//! server-final, or fails. Sans IO: the caller moves the bytes (Kafka's
//! SaslAuthenticate) and says where credentials live.
//!
//! What it accepts, as Kafka does: the gs2 header `n,,` or `n,a=<user>,`
//! (an authorization id must name the user itself); `y,,` too (the client
//! could bind but believes we cannot: true, RFC 5802 lets it through);
//! never `p=` (no channel binding, rafka offers no `-PLUS` mechanism).
//! Extensions after the nonce are refused: Kafka's only one, `tokenauth`
//! (delegation tokens), is not supported yet. Every failure ends the
//! exchange: the server stays failed and answers nothing more.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use rafka_proto::error::ErrorCode;

use super::scram::{constant_time_eq, xor, ScramCredential, ScramMechanism};
use super::SaslStep;

/// Longest client message accepted (Kafka's own are ~100 bytes).
pub const SCRAM_MESSAGE_BYTES_MAX: usize = 8192;
/// Random bytes in the server's half of the nonce (base64: 32 chars).
const SERVER_NONCE_BYTES: usize = 24;

/// Where the server finds a user's credential: the metadata image in the
/// broker, a map in tests.
pub trait ScramCredentials {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential>;
}

/// Why an exchange failed. Every variant is an authentication failure
/// for the client (Kafka's SASL_AUTHENTICATION_FAILED); `rfc_error` is
/// RFC 5802's name for it, for logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    InvalidEncoding(&'static str),
    #[error("malformed SCRAM user name")]
    InvalidUsernameEncoding,
    #[error("channel binding requested, none is supported")]
    ChannelBindingNotSupported,
    #[error("SCRAM extensions are not supported")]
    ExtensionsNotSupported,
    #[error("delegation token authentication (tokenauth) is not supported")]
    TokenAuthNotSupported,
    #[error("unknown user")]
    UnknownUser,
    #[error("authorization id differs from the user name")]
    AuthorizationIdMismatch,
    #[error("channel binding of the final message differs from the first")]
    ChannelBindingsDontMatch,
    #[error("nonce of the final message differs from the server's")]
    NonceMismatch,
    #[error("invalid proof")]
    InvalidProof,
    #[error("message after the exchange ended")]
    ExchangeOver,
    #[error("no random bytes for a nonce")]
    NoRandom,
}

impl ScramError {
    /// Every failure is Kafka's SASL_AUTHENTICATION_FAILED.
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::SASL_AUTHENTICATION_FAILED
    }

    /// RFC 5802's `server-error-value` for this failure.
    pub fn rfc_error(&self) -> &'static str {
        match self {
            ScramError::InvalidEncoding(_) => "invalid-encoding",
            ScramError::InvalidUsernameEncoding => "invalid-username-encoding",
            ScramError::ChannelBindingNotSupported => "channel-binding-not-supported",
            ScramError::ExtensionsNotSupported | ScramError::TokenAuthNotSupported => {
                "extensions-not-supported"
            }
            ScramError::UnknownUser => "unknown-user",
            ScramError::ChannelBindingsDontMatch => "channel-bindings-dont-match",
            ScramError::InvalidProof => "invalid-proof",
            ScramError::NoRandom => "no-resources",
            ScramError::AuthorizationIdMismatch
            | ScramError::NonceMismatch
            | ScramError::ExchangeOver => "other-error",
        }
    }

    /// RFC 5802's server-final-message for this failure (`e=invalid-proof`),
    /// for a transport that sends one; Kafka answers SaslAuthenticate with
    /// SASL_AUTHENTICATION_FAILED and [`Self::client_message`] instead.
    pub fn server_final(&self) -> Vec<u8> {
        format!("e={}", self.rfc_error()).into_bytes()
    }

    /// What Kafka tells the client: the authorization id mismatch in its
    /// own words, everything else in one sentence so that a client cannot
    /// tell an unknown user from a wrong password.
    pub fn client_message(&self, mechanism: ScramMechanism) -> String {
        match self {
            ScramError::AuthorizationIdMismatch => "Authentication failed: Client requested an \
                authorization id that is different from username"
                .to_string(),
            _ => format!(
                "Authentication failed during authentication due to invalid credentials \
                 with SASL mechanism {mechanism}"
            ),
        }
    }
}

/// One connection's SCRAM exchange, server side.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    server_nonce: String,
    state: State,
}

#[derive(Debug)]
enum State {
    ClientFirst,
    ClientFinal(Box<Pending>),
    Over,
}

/// What the server keeps between its two answers.
#[derive(Debug)]
struct Pending {
    user: String,
    credential: ScramCredential,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// The client's half of `nonce`, which it starts with.
    client_nonce: String,
    nonce: String,
}

impl Pending {
    /// The client-final nonce is the combined one (RFC 5802), or, from
    /// librdkafka before 2.6.1 (Debian's kcat among its users), the
    /// client's nonce again in front of it: Kafka 3.x accepts that too (it
    /// checks only that the nonce ends with the combined one). rafka takes
    /// exactly these two forms; the proof is checked over the message as
    /// sent either way, so the server's fresh nonce stays signed.
    fn nonce_matches(&self, nonce: &str) -> bool {
        nonce == self.nonce
            || (nonce.len() == self.client_nonce.len() + self.nonce.len()
                && nonce.starts_with(self.client_nonce.as_str())
                && nonce.ends_with(self.nonce.as_str()))
    }
}

impl ScramServer {
    /// A server with a fresh random nonce.
    pub fn new(mechanism: ScramMechanism) -> Result<ScramServer, ScramError> {
        let mut bytes = [0u8; SERVER_NONCE_BYTES];
        getrandom::fill(&mut bytes).map_err(|_| ScramError::NoRandom)?;
        Ok(Self::with_nonce(mechanism, BASE64.encode(bytes)))
    }

    /// A server with a given nonce: printable ASCII without `,` (tests,
    /// deterministic simulation).
    pub fn with_nonce(mechanism: ScramMechanism, server_nonce: String) -> ScramServer {
        assert!(valid_nonce(&server_nonce), "invalid SCRAM server nonce");
        ScramServer {
            mechanism,
            server_nonce,
            state: State::ClientFirst,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// Takes the client's next message. `credentials` is only read for
    /// the first one. After an error or the last answer, every further
    /// message is [`ScramError::ExchangeOver`].
    pub fn evaluate(
        &mut self,
        message: &[u8],
        credentials: &impl ScramCredentials,
    ) -> Result<SaslStep, ScramError> {
        let state = std::mem::replace(&mut self.state, State::Over);
        match state {
            State::ClientFirst => {
                let pending = self.client_first(message, credentials)?;
                let answer = pending.server_first.clone().into_bytes();
                self.state = State::ClientFinal(Box::new(pending));
                Ok(SaslStep::Challenge(answer))
            }
            State::ClientFinal(pending) => self.client_final(message, &pending),
            State::Over => Err(ScramError::ExchangeOver),
        }
    }

    fn client_first(
        &self,
        message: &[u8],
        credentials: &impl ScramCredentials,
    ) -> Result<Pending, ScramError> {
        let first = ClientFirst::parse(message)?;
        if first.token_auth {
            return Err(ScramError::TokenAuthNotSupported);
        }
        let credential = credentials
            .scram_credential(&first.user, self.mechanism)
            .filter(|c| c.mechanism() == self.mechanism)
            .ok_or(ScramError::UnknownUser)?
            .clone();
        if first.authzid.as_ref().is_some_and(|a| *a != first.user) {
            return Err(ScramError::AuthorizationIdMismatch);
        }
        let nonce = format!("{}{}", first.nonce, self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(credential.salt()),
            credential.iterations()
        );
        Ok(Pending {
            user: first.user,
            credential,
            gs2_header: first.gs2_header.to_string(),
            client_first_bare: first.bare.to_string(),
            server_first,
            client_nonce: first.nonce.to_string(),
            nonce,
        })
    }

    fn client_final(&self, message: &[u8], pending: &Pending) -> Result<SaslStep, ScramError> {
        let last = ClientFinal::parse(message)?;
        if last.channel_binding != pending.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBindingsDontMatch);
        }
        if !pending.nonce_matches(last.nonce) {
            return Err(ScramError::NonceMismatch);
        }
        let mechanism = self.mechanism;
        let credential = &pending.credential;
        if last.proof.len() != mechanism.digest_bytes() {
            return Err(ScramError::InvalidProof);
        }
        let auth_message = format!(
            "{},{},{}",
            pending.client_first_bare, pending.server_first, last.without_proof
        );
        let client_signature = mechanism.hmac(credential.stored_key(), auth_message.as_bytes());
        let client_key = xor(&last.proof, &client_signature);
        let stored_key = mechanism.stored_key(&client_key);
        if !constant_time_eq(&stored_key, credential.stored_key()) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = mechanism.hmac(credential.server_key(), auth_message.as_bytes());
        Ok(SaslStep::Complete {
            user: pending.user.clone(),
            response: format!("v={}", BASE64.encode(server_signature)).into_bytes(),
        })
    }
}

/// A parsed client-first-message, borrowing from it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClientFirst<'a> {
    /// `n,,` / `n,a=user,` / `y,,`: what `c=` must repeat.
    pub gs2_header: &'a str,
    pub authzid: Option<String>,
    /// Everything after the gs2 header: the start of AuthMessage.
    pub bare: &'a str,
    pub user: String,
    pub nonce: &'a str,
    pub token_auth: bool,
}

impl<'a> ClientFirst<'a> {
    pub fn parse(message: &'a [u8]) -> Result<ClientFirst<'a>, ScramError> {
        let text = utf8(message)?;
        let (flag, rest) = text
            .split_once(',')
            .ok_or(ScramError::InvalidEncoding("no gs2 header"))?;
        match flag {
            "n" | "y" => {}
            _ if flag.starts_with("p=") => return Err(ScramError::ChannelBindingNotSupported),
            _ => return Err(ScramError::InvalidEncoding("bad channel binding flag")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or(ScramError::InvalidEncoding("no gs2 header"))?;
        let authzid = match authzid {
            "" => None,
            a => {
                let name = a
                    .strip_prefix("a=")
                    .ok_or(ScramError::InvalidEncoding("bad authorization id"))?;
                Some(unescape_name(name)?)
            }
        };
        let gs2_header = &text[..text.len() - bare.len()];
        let mut fields = bare.split(',');
        let user_field = fields.next().unwrap_or_default();
        if user_field.starts_with("m=") {
            return Err(ScramError::ExtensionsNotSupported);
        }
        let user = user_field
            .strip_prefix("n=")
            .ok_or(ScramError::InvalidEncoding("no user name"))?;
        let user = unescape_name(user)?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| valid_nonce(n))
            .ok_or(ScramError::InvalidEncoding("no valid nonce"))?;
        let mut token_auth = false;
        for extension in fields {
            let (key, _) = extension_parts(extension)?;
            if key != "tokenauth" {
                return Err(ScramError::ExtensionsNotSupported);
            }
            token_auth = true;
        }
        Ok(ClientFirst {
            gs2_header,
            authzid,
            bare,
            user,
            nonce,
            token_auth,
        })
    }
}

/// A parsed client-final-message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ClientFinal<'a> {
    /// The decoded `c=`: the gs2 header again (no channel binding data).
    pub channel_binding: Vec<u8>,
    pub nonce: &'a str,
    /// Everything before `,p=`: the end of AuthMessage.
    pub without_proof: &'a str,
    pub proof: Vec<u8>,
}

impl<'a> ClientFinal<'a> {
    pub fn parse(message: &'a [u8]) -> Result<ClientFinal<'a>, ScramError> {
        let text = utf8(message)?;
        let (without_proof, proof) = text
            .rsplit_once(',')
            .ok_or(ScramError::InvalidEncoding("no proof"))?;
        let proof = proof
            .strip_prefix("p=")
            .ok_or(ScramError::InvalidEncoding("proof is not last"))?;
        let proof = base64(proof)?;
        let mut fields = without_proof.split(',');
        let channel_binding = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(ScramError::InvalidEncoding("no channel binding"))?;
        let channel_binding = base64(channel_binding)?;
        let nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| valid_nonce(n))
            .ok_or(ScramError::InvalidEncoding("no valid nonce"))?;
        // Extensions here are covered by the proof; none is understood.
        for extension in fields {
            extension_parts(extension)?;
        }
        Ok(ClientFinal {
            channel_binding,
            nonce,
            without_proof,
            proof,
        })
    }
}

fn utf8(message: &[u8]) -> Result<&str, ScramError> {
    if message.len() > SCRAM_MESSAGE_BYTES_MAX {
        return Err(ScramError::InvalidEncoding("message too long"));
    }
    std::str::from_utf8(message).map_err(|_| ScramError::InvalidEncoding("not UTF-8"))
}

fn base64(text: &str) -> Result<Vec<u8>, ScramError> {
    BASE64
        .decode(text)
        .map_err(|_| ScramError::InvalidEncoding("bad base64"))
}

/// `key=value` with a key of ASCII letters and a non-empty value.
fn extension_parts(extension: &str) -> Result<(&str, &str), ScramError> {
    match extension.split_once('=') {
        Some((key, value))
            if !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphabetic())
                && !value.is_empty() =>
        {
            Ok((key, value))
        }
        _ => Err(ScramError::InvalidEncoding("bad extension")),
    }
}

/// RFC 5802's `printable` without `,`.
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `saslname` -> user name: `=2C` is `,`, `=3D` is `=`, any other `=`
/// is malformed; empty names and NUL are refused.
pub fn unescape_name(name: &str) -> Result<String, ScramError> {
    if name.is_empty() || name.contains('\0') {
        return Err(ScramError::InvalidUsernameEncoding);
    }
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::InvalidUsernameEncoding),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// User name -> `saslname` (what a client sends).
pub fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests;
