//! One connection's SASL state on a SASL_PLAINTEXT / SASL_SSL listener, as
//! Kafka's `SaslServerAuthenticator` keeps it: handshake -> authenticate
//! (one or more tokens through the mechanism's server) -> authenticated,
//! or failed (the connection closes after the failure delay). With
//! `connections.max.reauth.ms` (or a mechanism's credential expiry) the
//! authenticated session has an end; a client re-authenticates on the same
//! connection (SaslHandshake + SaslAuthenticate again, same mechanism and
//! same principal), and a request after the end closes the connection.
//!
//! The handlers (`handlers/sasl_handshake.rs`, `sasl_authenticate.rs`)
//! drive it; the connection reads it to gate APIs ([`SaslSession::admits`]),
//! to serve one request at a time before authentication, to cap pre-auth
//! frame sizes and to cut raw tokens after SaslHandshake v0 (KIP-43).
//!
//! Mechanisms: [`MechanismServer`] is the per-connection server of the
//! mechanism the client chose, one enum arm per mechanism; a new mechanism
//! (OAUTHBEARER) is one arm in [`MechanismServer::new`] and
//! [`MechanismServer::evaluate`], and may give a credential expiry that
//! caps the session's lifetime.
//!
//! Lives on: the connection's shard, inside its [`crate::session::Session`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use rafka_core::acl::Principal;
use rafka_core::config::sasl::ListenerSasl;
use rafka_core::metadata::MetadataImage;
use rafka_core::sasl::{OAuthBearerServer, PlainServer, SaslMechanism, SaslStep, ScramServer};

/// The server side of the mechanism a connection chose.
#[derive(Debug)]
pub enum MechanismServer {
    Plain(PlainServer),
    Scram(ScramServer),
    OAuthBearer(OAuthBearerServer),
}

/// What a mechanism's server answered to one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluated {
    Challenge(Vec<u8>),
    Complete {
        user: String,
        response: Vec<u8>,
        /// When the credential stops being valid (wall clock, ms), for a
        /// mechanism whose credentials expire (OAUTHBEARER's tokens).
        credential_expiry_ms: Option<i64>,
    },
}

impl MechanismServer {
    /// A fresh server; `Err` carries the client's message.
    pub fn new(mechanism: SaslMechanism) -> Result<MechanismServer, String> {
        match mechanism {
            SaslMechanism::Plain => Ok(MechanismServer::Plain(PlainServer::new())),
            SaslMechanism::Scram(m) => ScramServer::new(m)
                .map(MechanismServer::Scram)
                .map_err(|e| e.client_message(m)),
            SaslMechanism::OAuthBearer => {
                Ok(MechanismServer::OAuthBearer(OAuthBearerServer::new()))
            }
        }
    }

    /// Feeds one client token. `Err` is the message Kafka sends with
    /// SASL_AUTHENTICATION_FAILED.
    pub fn evaluate(
        &mut self,
        token: &[u8],
        listener: &ListenerSasl,
        image: &MetadataImage,
    ) -> Result<Evaluated, String> {
        let step = match self {
            MechanismServer::Plain(server) => server
                .evaluate(token, &listener.plain_users)
                .map_err(|e| e.to_string())?,
            MechanismServer::Scram(server) => {
                let mechanism = server.mechanism();
                server
                    .evaluate(token, image)
                    .map_err(|e| e.client_message(mechanism))?
            }
            MechanismServer::OAuthBearer(server) => {
                // Enabled only with a validator (config::sasl); without
                // one nothing can be accepted.
                let validator = listener
                    .oauthbearer
                    .as_ref()
                    .ok_or_else(|| "OAUTHBEARER is not enabled on this listener".to_string())?;
                server
                    .evaluate(token, validator, wall_clock_ms())
                    .map_err(|e| e.client_message())?
            }
        };
        Ok(match step {
            SaslStep::Challenge(bytes) => Evaluated::Challenge(bytes),
            SaslStep::Complete { user, response } => Evaluated::Complete {
                user,
                response,
                credential_expiry_ms: match self {
                    MechanismServer::OAuthBearer(server) => {
                        server.token().map(|token| token.expires_at_ms)
                    }
                    _ => None,
                },
            },
        })
    }
}

/// Milliseconds since the epoch: tokens carry wall-clock times.
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where the exchange stands.
#[derive(Debug)]
pub enum AuthState {
    /// Expecting ApiVersions or SaslHandshake.
    Handshake,
    /// Expecting tokens for `mechanism`; `raw`: size-prefixed tokens with
    /// no Kafka header (after SaslHandshake v0).
    Authenticate {
        mechanism: SaslMechanism,
        server: MechanismServer,
        raw: bool,
    },
    /// A re-authentication asked for another mechanism: the next token
    /// fails with this message (Kafka's REAUTH_BAD_MECHANISM).
    ReauthBadMechanism(String),
    /// Authenticated (see [`SaslSession::principal`]).
    Authenticated,
    /// Failed: the connection is closing.
    Failed,
}

/// One connection's SASL state.
#[derive(Debug)]
pub struct SaslSession {
    config: Arc<ListenerSasl>,
    pub state: AuthState,
    /// Set by the first successful authentication; re-authentication must
    /// keep it.
    principal: Option<Principal>,
    /// The mechanism of the last successful authentication.
    mechanism: Option<SaslMechanism>,
    /// When the authenticated session ends (None: never).
    expires_at: Option<Instant>,
}

impl SaslSession {
    pub fn new(config: Arc<ListenerSasl>) -> SaslSession {
        SaslSession {
            config,
            state: AuthState::Handshake,
            principal: None,
            mechanism: None,
            expires_at: None,
        }
    }

    pub fn config(&self) -> &Arc<ListenerSasl> {
        &self.config
    }

    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    pub fn mechanism(&self) -> Option<SaslMechanism> {
        self.mechanism
    }

    pub fn is_authenticated(&self) -> bool {
        self.principal.is_some()
    }

    pub fn is_reauthenticating(&self) -> bool {
        self.principal.is_some() && !matches!(self.state, AuthState::Authenticated)
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Whether the connection may send `api_key` now: after the session
    /// expired nothing (Kafka closes the connection); before
    /// authentication only ApiVersions, SaslHandshake and SaslAuthenticate.
    pub fn admits(&self, api_key: ApiKey, now: Instant) -> bool {
        if self.expired(now) {
            return false;
        }
        self.is_authenticated()
            || matches!(
                api_key,
                ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
            )
    }

    /// Whether the reader must wait for a request's answer before reading
    /// the next frame (the exchange's state changes apply in order).
    pub fn serial(&self) -> bool {
        !matches!(self.state, AuthState::Authenticated)
    }

    /// The largest frame the connection may send now: capped until the
    /// first authentication succeeds (`sasl.server.max.receive.size`).
    pub fn frame_limit(&self) -> Option<usize> {
        (!self.is_authenticated()).then_some(self.config.max_receive_bytes)
    }

    /// Whether the next frame is a raw token (SaslHandshake v0 chosen).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, AuthState::Authenticate { raw: true, .. })
    }

    pub fn failure_delay(&self) -> Duration {
        Duration::from_millis(self.config.failed_authentication_delay_ms)
    }

    /// Records a successful exchange as `user` at `now` (`now_ms` on the
    /// wall clock): the principal, the session's end. Returns the session
    /// lifetime to tell the client (0: no end), or the message of a
    /// re-authentication that changed principal.
    pub fn complete(
        &mut self,
        mechanism: SaslMechanism,
        user: &str,
        credential_expiry_ms: Option<i64>,
        now: Instant,
        now_ms: i64,
    ) -> Result<i64, String> {
        let principal = Principal {
            principal_type: "User".to_string(),
            name: user.to_string(),
        };
        if let Some(previous) = &self.principal {
            if *previous != principal {
                self.state = AuthState::Failed;
                return Err(format!(
                    "Cannot change principals during re-authentication from {}.{}: {}.{}",
                    previous.principal_type,
                    previous.name,
                    principal.principal_type,
                    principal.name
                ));
            }
        }
        let max_reauth_ms =
            i64::try_from(self.config.connections_max_reauth_ms).unwrap_or(i64::MAX);
        let lifetime_ms = match (credential_expiry_ms, max_reauth_ms > 0) {
            (None, false) => None,
            (None, true) => Some(max_reauth_ms),
            (Some(expiry), false) => Some(expiry.saturating_sub(now_ms).max(0)),
            (Some(expiry), true) => Some(expiry.saturating_sub(now_ms).min(max_reauth_ms).max(0)),
        };
        self.expires_at = lifetime_ms.map(|ms| now + Duration::from_millis(ms as u64));
        self.principal = Some(principal);
        self.mechanism = Some(mechanism);
        self.state = AuthState::Authenticated;
        Ok(lifetime_ms.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_core::sasl::PlainUsers;

    fn session(reauth_ms: u64) -> SaslSession {
        let mut config = ListenerSasl::new(
            vec![SaslMechanism::Plain],
            PlainUsers::new([("alice", "alice-secret"), ("bob", "bob-secret")]),
        );
        config.connections_max_reauth_ms = reauth_ms;
        SaslSession::new(Arc::new(config))
    }

    #[test]
    fn gate_before_and_after_authentication() {
        let now = Instant::now();
        let mut s = session(0);
        assert!(s.admits(ApiKey::ApiVersions, now));
        assert!(s.admits(ApiKey::SaslHandshake, now));
        assert!(!s.admits(ApiKey::Metadata, now));
        assert_eq!(s.frame_limit(), Some(524_288));
        assert!(s.serial());
        assert_eq!(
            s.complete(SaslMechanism::Plain, "alice", None, now, 0),
            Ok(0)
        );
        assert!(s.admits(ApiKey::Metadata, now + Duration::from_secs(86_400)));
        assert_eq!(s.frame_limit(), None);
        assert!(!s.serial());
    }

    #[test]
    fn session_lifetime_and_reauthentication() {
        let now = Instant::now();
        let mut s = session(1000);
        assert_eq!(
            s.complete(SaslMechanism::Plain, "alice", None, now, 5_000),
            Ok(1000)
        );
        assert!(s.admits(ApiKey::Produce, now + Duration::from_millis(999)));
        assert!(!s.admits(ApiKey::Produce, now + Duration::from_millis(1000)));
        assert!(!s.admits(ApiKey::SaslHandshake, now + Duration::from_millis(1000)));
        // A credential expiring sooner caps the lifetime.
        assert_eq!(
            s.complete(SaslMechanism::Plain, "alice", Some(5_400), now, 5_000),
            Ok(400)
        );
        assert_eq!(
            s.complete(SaslMechanism::Plain, "bob", None, now, 5_000),
            Err(
                "Cannot change principals during re-authentication from User.alice: User.bob"
                    .to_string()
            )
        );
        assert!(matches!(s.state, AuthState::Failed));
    }
}
