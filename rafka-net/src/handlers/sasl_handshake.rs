//! SaslHandshake (key 17), v0-1: the client names a mechanism, the broker
//! lists the listener's enabled ones and starts that mechanism's server.
//!
//! Answers, as Kafka's `SaslServerAuthenticator.handleHandshakeRequest`:
//! - An enabled mechanism: NONE with the enabled list; after v0 the
//!   client's tokens come raw (no Kafka header, KIP-43), after v1 inside
//!   SaslAuthenticate.
//! - Any other: UNSUPPORTED_SASL_MECHANISM with the enabled list, then the
//!   connection closes after `connection.failed.authentication.delay.ms`.
//! - Out of order (a second handshake mid-exchange): ILLEGAL_SASL_STATE,
//!   then the connection closes. On a listener without SASL:
//!   ILLEGAL_SASL_STATE (Kafka's `KafkaApis`), the connection stays.
//! - While authenticated: a re-authentication (KIP-368) begins; a
//!   mechanism other than the one authenticated with is accepted here and
//!   fails the next SaslAuthenticate, as Kafka does.

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::sasl::SaslMechanism;
use rafka_proto::error::ErrorCode;

use super::reply::Reply;
use super::{HandlerError, RequestContext};
use crate::sasl::{AuthState, MechanismServer};
use crate::service::Response;

/// SaslHandshake's answer; `close` ends the connection after it.
#[derive(Debug)]
pub struct HandshakeReply {
    pub response: SaslHandshakeResponse,
    pub close: Option<HandlerError>,
}

impl Reply for HandshakeReply {
    /// SaslHandshake has no throttle time.
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

pub async fn handle(
    ctx: &RequestContext,
    request: SaslHandshakeRequest,
) -> Result<HandshakeReply, HandlerError> {
    let requested = request.mechanism.to_string();
    let raw = ctx.version() == 0;
    let outcome = {
        let Some(mut sasl) = ctx.session().sasl() else {
            return Ok(reply(ErrorCode::ILLEGAL_SASL_STATE, Vec::new(), None));
        };
        let enabled = sasl.config().mechanism_names();
        let mechanism = SaslMechanism::from_name(&requested).filter(|m| sasl.config().enables(*m));
        let ready = matches!(sasl.state, AuthState::Handshake | AuthState::Authenticated);
        match (ready, mechanism) {
            (false, _) => {
                sasl.state = AuthState::Failed;
                let message = "Unexpected Kafka request of type SASL_HANDSHAKE during SASL \
                               authentication."
                    .to_string();
                Err((ErrorCode::ILLEGAL_SASL_STATE, enabled, message))
            }
            (true, None) => {
                sasl.state = AuthState::Failed;
                let message = format!("Unsupported SASL mechanism {requested}");
                Err((ErrorCode::UNSUPPORTED_SASL_MECHANISM, enabled, message))
            }
            (true, Some(mechanism)) => {
                let previous = sasl.mechanism().filter(|_| sasl.is_authenticated());
                match previous {
                    Some(previous) if previous != mechanism => {
                        sasl.state = AuthState::ReauthBadMechanism(format!(
                            "SASL mechanism '{requested}' requested by client is not supported \
                             for re-authentication of mechanism '{}'",
                            previous.name()
                        ));
                        Ok(enabled)
                    }
                    _ => match MechanismServer::new(mechanism) {
                        Ok(server) => {
                            sasl.state = AuthState::Authenticate {
                                mechanism,
                                server,
                                raw,
                            };
                            Ok(enabled)
                        }
                        Err(message) => {
                            sasl.state = AuthState::Failed;
                            Err((ErrorCode::UNSUPPORTED_SASL_MECHANISM, enabled, message))
                        }
                    },
                }
            }
        }
    };
    match outcome {
        Ok(enabled) => Ok(reply(ErrorCode::NONE, enabled, None)),
        Err((code, enabled, message)) => {
            let delay = ctx.session().sasl().map(|s| s.failure_delay());
            if let Some(delay) = delay.filter(|d| !d.is_zero()) {
                glommio::timer::sleep(delay).await;
            }
            let reason = HandlerError::SaslFailed { message };
            Ok(reply(code, enabled, Some(reason)))
        }
    }
}

fn reply(
    code: ErrorCode,
    enabled: Vec<&'static str>,
    close: Option<HandlerError>,
) -> HandshakeReply {
    let mechanisms = enabled.into_iter().map(StrBytes::from_static_str).collect();
    HandshakeReply {
        response: SaslHandshakeResponse::default()
            .with_error_code(code.code())
            .with_mechanisms(mechanisms),
        close,
    }
}
