//! SaslAuthenticate (key 36), v0-2, and the raw tokens of SaslHandshake v0
//! (KIP-43): the client's token goes through the chosen mechanism's server;
//! its challenge, or its last message, goes back.
//!
//! Answers, as Kafka's `SaslServerAuthenticator.handleSaslToken`:
//! - A challenge: NONE with the server's bytes (SCRAM's server-first).
//! - Complete: NONE with the last bytes; the session's principal becomes
//!   `User:<name>`; v1+ carries `session_lifetime_ms` (0 without
//!   `connections.max.reauth.ms` or a credential expiry).
//! - Failed: SASL_AUTHENTICATION_FAILED with Kafka's message (for bad
//!   credentials "Authentication failed: Invalid username or password"
//!   for PLAIN, "Authentication failed during authentication due to invalid
//!   credentials with SASL mechanism SCRAM-SHA-256" for SCRAM), written at
//!   once; the connection closes `connection.failed.authentication.delay.ms`
//!   later (Kafka's delayed close, KIP-306: the client reads why, and a
//!   brute-forcing client waits). The delay is a timer in the connection's
//!   writer: other connections go on meanwhile.
//! - Out of order (before SaslHandshake, after a v0 handshake with a
//!   header): ILLEGAL_SASL_STATE, then close. After authentication
//!   without a re-authentication handshake, or on a listener without SASL:
//!   ILLEGAL_SASL_STATE, the connection stays (Kafka's `KafkaApis`).
//!
//! A raw token failing closes the connection after the delay with nothing
//! written: the v0 protocol has no way to say why.

use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_proto::error::ErrorCode;
use tracing::{debug, info};

use super::reply::Reply;
use super::{BrokerContext, HandlerError, RequestContext};
use crate::sasl::{AuthState, Evaluated};
use crate::service::Response;
use crate::session::Session;

/// Kafka's answer to SaslAuthenticate outside an exchange.
pub const AFTER_AUTHENTICATION_MESSAGE: &str =
    "SaslAuthenticate request received after successful authentication";

/// SaslAuthenticate's answer; `close` ends the connection after it.
#[derive(Debug)]
pub struct AuthenticateReply {
    pub response: SaslAuthenticateResponse,
    pub close: Option<HandlerError>,
}

impl Reply for AuthenticateReply {
    /// SaslAuthenticate has no throttle time.
    fn set_throttle_time_ms(&mut self, _throttle_time_ms: i32) {}

    fn into_response(self, ctx: &RequestContext) -> Result<Response, HandlerError> {
        let bytes = rafka_proto::api::encode_response(
            ctx.correlation_id(),
            ctx.response_header_version(),
            &self.response,
            ctx.version(),
        )?;
        Ok(match self.close {
            Some(reason) => Response::ReplyThenClose(bytes, reason),
            None => Response::Reply(bytes),
        })
    }
}

/// What one token did to the exchange.
enum Outcome {
    Challenge(Vec<u8>),
    Complete {
        response: Vec<u8>,
        session_lifetime_ms: i64,
    },
    /// Refused; the connection stays.
    Refused(ErrorCode, String),
    /// Failed; the connection closes after the delay.
    Failed(ErrorCode, String),
}

pub async fn handle(
    ctx: &RequestContext,
    request: SaslAuthenticateRequest,
) -> Result<AuthenticateReply, HandlerError> {
    let outcome = evaluate(ctx.broker(), ctx.session(), &request.auth_bytes, false);
    let response = SaslAuthenticateResponse::default();
    Ok(match outcome {
        Outcome::Challenge(bytes) => AuthenticateReply {
            response: response.with_auth_bytes(Bytes::from(bytes)),
            close: None,
        },
        Outcome::Complete {
            response: bytes,
            session_lifetime_ms,
        } => AuthenticateReply {
            response: response
                .with_auth_bytes(Bytes::from(bytes))
                .with_session_lifetime_ms(session_lifetime_ms),
            close: None,
        },
        Outcome::Refused(code, message) => AuthenticateReply {
            response: response
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message))),
            close: None,
        },
        Outcome::Failed(code, message) => AuthenticateReply {
            response: response
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message.clone()))),
            close: Some(HandlerError::SaslFailed { message }),
        },
    })
}

/// Serves one raw token (after SaslHandshake v0): the reply is the
/// server's token, written size-prefixed with no header.
pub async fn raw_token(
    broker: &Rc<BrokerContext>,
    session: &Rc<Session>,
    token: &[u8],
) -> Response {
    match evaluate(broker, session, token, true) {
        Outcome::Challenge(bytes)
        | Outcome::Complete {
            response: bytes, ..
        } => Response::Reply(Bytes::from(bytes)),
        Outcome::Refused(_, message) | Outcome::Failed(_, message) => {
            failure_delay(session).await;
            Response::Close(HandlerError::SaslFailed { message })
        }
    }
}

async fn failure_delay(session: &Session) {
    let delay = session.sasl().map(|s| s.failure_delay());
    if let Some(delay) = delay.filter(|d| !d.is_zero()) {
        glommio::timer::sleep(delay).await;
    }
}

/// Feeds `token` to the connection's mechanism server and moves the
/// exchange on. `raw`: the token came without a Kafka header.
fn evaluate(broker: &BrokerContext, session: &Session, token: &[u8], raw: bool) -> Outcome {
    let Some(mut sasl) = session.sasl() else {
        let message = AFTER_AUTHENTICATION_MESSAGE.to_string();
        return Outcome::Refused(ErrorCode::ILLEGAL_SASL_STATE, message);
    };
    let reauthenticating = sasl.is_reauthenticating();
    let phase = match reauthenticating {
        true => "re-authentication",
        false => "authentication",
    };
    let state = std::mem::replace(&mut sasl.state, AuthState::Failed);
    let (mechanism, mut server, raw_expected) = match state {
        AuthState::Authenticate {
            mechanism,
            server,
            raw: raw_expected,
        } => (mechanism, server, raw_expected),
        AuthState::ReauthBadMechanism(message) => {
            return Outcome::Failed(ErrorCode::SASL_AUTHENTICATION_FAILED, message);
        }
        AuthState::Authenticated => {
            sasl.state = AuthState::Authenticated;
            let message = AFTER_AUTHENTICATION_MESSAGE.to_string();
            return Outcome::Refused(ErrorCode::ILLEGAL_SASL_STATE, message);
        }
        AuthState::Handshake | AuthState::Failed => {
            let message = "Unexpected SaslAuthenticate request before SaslHandshake".to_string();
            return Outcome::Failed(ErrorCode::ILLEGAL_SASL_STATE, message);
        }
    };
    if raw != raw_expected {
        let message = "Unexpected Kafka request of type SASL_AUTHENTICATE during SASL \
                       authentication."
            .to_string();
        return Outcome::Failed(ErrorCode::ILLEGAL_SASL_STATE, message);
    }
    let image = broker.shard.image();
    let config = std::sync::Arc::clone(sasl.config());
    match server.evaluate(token, &config, &image) {
        Ok(Evaluated::Challenge(bytes)) => {
            sasl.state = AuthState::Authenticate {
                mechanism,
                server,
                raw: raw_expected,
            };
            Outcome::Challenge(bytes)
        }
        Ok(Evaluated::Complete {
            user,
            response,
            credential_expiry_ms,
        }) => {
            let now_ms = broker.shard.clock().now_ms();
            match sasl.complete(
                mechanism,
                &user,
                credential_expiry_ms,
                Instant::now(),
                now_ms,
            ) {
                Ok(session_lifetime_ms) => {
                    let principal = sasl.principal().cloned();
                    drop(sasl);
                    if let Some(principal) = principal {
                        info!(
                            peer = %session.peer(),
                            %principal,
                            mechanism = mechanism.name(),
                            session_lifetime_ms,
                            "SASL {phase} succeeded"
                        );
                        session.set_principal(principal);
                    }
                    Outcome::Complete {
                        response,
                        session_lifetime_ms,
                    }
                }
                Err(message) => Outcome::Failed(ErrorCode::SASL_AUTHENTICATION_FAILED, message),
            }
        }
        Err(message) => {
            debug!(peer = %session.peer(), mechanism = mechanism.name(), %message, "SASL {phase} failed");
            let message = match message.starts_with("Authentication failed during authentication")
                && reauthenticating
            {
                true => message.replacen("during authentication", "during re-authentication", 1),
                false => message,
            };
            Outcome::Failed(ErrorCode::SASL_AUTHENTICATION_FAILED, message)
        }
    }
}
