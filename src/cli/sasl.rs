//! The CLI's SASL login, as Kafka's clients do it after ApiVersions:
//! SaslHandshake v1 names the mechanism, then SaslAuthenticate carries the
//! mechanism's messages (PLAIN: one; SCRAM: client-first, client-final,
//! and the server's signature checked with rafka-core's SCRAM client). A
//! refused login is the broker's error code and message.

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use rafka_core::sasl::scram_client::ScramClient;
use rafka_proto::error::ErrorCode;

use crate::cli::client::Connection;
use crate::cli::error::CliError;
use crate::cli::security::{SaslLogin, SaslMechanism};

/// SaslHandshake v0 sends the mechanism's bytes unframed; only v1 (Kafka
/// 1.0+) wraps them in SaslAuthenticate, which is all the CLI speaks.
const HANDSHAKE_VERSION: i16 = 1;

pub fn log_in(connection: &mut Connection, login: &SaslLogin) -> Result<(), CliError> {
    let subject = format!(
        "SASL {} login as {} at {}",
        login.mechanism.name(),
        login.username,
        connection.addr()
    );
    handshake(connection, login.mechanism, &subject)?;
    match login.mechanism {
        SaslMechanism::Plain => {
            let mut message = Vec::with_capacity(2 + login.username.len() + login.password.len());
            message.push(0);
            message.extend_from_slice(login.username.as_bytes());
            message.push(0);
            message.extend_from_slice(login.password.as_bytes());
            authenticate(connection, message, &subject)?;
            Ok(())
        }
        SaslMechanism::Scram(mechanism) => {
            let addr = connection.addr().to_string();
            let scram_error = |source| CliError::Scram {
                addr: addr.clone(),
                source,
            };
            let mut client =
                ScramClient::new(mechanism, &login.username, login.password.as_bytes())
                    .map_err(scram_error)?;
            let first = client.client_first().map_err(scram_error)?;
            let server_first = authenticate(connection, first, &subject)?;
            let last = client.client_final(&server_first).map_err(scram_error)?;
            let server_final = authenticate(connection, last, &subject)?;
            client.verify(&server_final).map_err(scram_error)
        }
    }
}

fn handshake(
    connection: &mut Connection,
    mechanism: SaslMechanism,
    subject: &str,
) -> Result<(), CliError> {
    let served = connection.version_range::<SaslHandshakeRequest>();
    if !served.is_some_and(|(min, max)| (min..=max).contains(&HANDSHAKE_VERSION)) {
        return Err(CliError::Unsupported {
            addr: connection.addr().to_string(),
            api: kafka_protocol::messages::ApiKey::SaslHandshake,
        });
    }
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism.name()));
    let response = connection.call_at(HANDSHAKE_VERSION, &request)?;
    if ErrorCode::from_code(response.error_code) == ErrorCode::UNSUPPORTED_SASL_MECHANISM {
        let enabled: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        let message = format!("the broker enables {}", enabled.join(", "));
        return CliError::check(response.error_code, Some(&message), subject);
    }
    CliError::check(response.error_code, None, subject)
}

/// One SaslAuthenticate round: our bytes out, the server's back.
fn authenticate(
    connection: &mut Connection,
    auth_bytes: Vec<u8>,
    subject: &str,
) -> Result<Bytes, CliError> {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(auth_bytes));
    let response = connection.call(&request)?;
    CliError::check(
        response.error_code,
        response.error_message.as_deref(),
        subject,
    )?;
    Ok(response.auth_bytes)
}
