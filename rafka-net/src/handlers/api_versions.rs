//! ApiVersions (key 18), v0-v4: which APIs and versions this broker serves,
//! straight from the API table that also drives dispatch.
//!
//! Two answers besides the table's listing, both as Kafka gives them:
//! - An unsupported version never reaches [`handle`]: the header parser
//!   refuses it, and the connection answers with
//!   [`encode_unsupported_version`] (UNSUPPORTED_VERSION in the v0 layout,
//!   listing the ApiVersions range so the client retries with one it shares).
//! - From v3 the client names its software; a name or version Kafka would
//!   refuse gets INVALID_REQUEST with no API list (KIP-511). An accepted
//!   one is kept in the connection's session.

use bytes::Bytes;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use rafka_proto::api::{decode_request, encode_response, ApiTable, EncodeError};
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};
use crate::service::{Request, Response};
use crate::session::ClientSoftware;

/// First version carrying the client software name and version.
const CLIENT_SOFTWARE_VERSION_MIN: i16 = 3;

pub async fn handle(
    ctx: &RequestContext,
    request: ApiVersionsRequest,
) -> Result<ApiVersionsResponse, HandlerError> {
    let response = response(ctx.table(), &request, ctx.version());
    if ErrorCode::from_code(response.error_code).is_none()
        && ctx.version() >= CLIENT_SOFTWARE_VERSION_MIN
    {
        ctx.session().set_client_software(ClientSoftware {
            name: request.client_software_name.to_string(),
            version: request.client_software_version.to_string(),
        });
    }
    Ok(response)
}

/// The answer to `request`: the table's listing, or INVALID_REQUEST with
/// no API list for client software Kafka would refuse (KIP-511).
fn response(table: &ApiTable, request: &ApiVersionsRequest, version: i16) -> ApiVersionsResponse {
    if version >= CLIENT_SOFTWARE_VERSION_MIN && !names_client_software(request) {
        return ApiVersionsResponse::default().with_error_code(ErrorCode::INVALID_REQUEST.code());
    }
    table.api_versions_response(version)
}

/// ApiVersions alone, from nothing but the table, for services other than
/// the broker's (tests, tools): decode -> answer -> encode.
pub fn answer(table: &ApiTable, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let mut body = request.body;
    let decoded: ApiVersionsRequest = decode_request(&mut body, version)?;
    let body = response(table, &decoded, version);
    let reply = encode_response(
        request.header.correlation_id,
        request.response_header_version,
        &body,
        version,
    )?;
    Ok(Response::Reply(reply))
}

/// The answer to an ApiVersions request of a version the table does not
/// serve, given only what the header prefix says.
pub fn encode_unsupported_version(
    table: &ApiTable,
    correlation_id: i32,
    version: i16,
) -> Result<Bytes, EncodeError> {
    table.encode_api_versions_response(correlation_id, version)
}

/// Kafka's check on both fields: `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn names_client_software(request: &ApiVersionsRequest) -> bool {
    is_software_token(&request.client_software_name)
        && is_software_token(&request.client_software_version)
}

fn is_software_token(token: &str) -> bool {
    let bytes = token.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_tokens_follow_kafkas_pattern() {
        for good in ["librdkafka", "2.3.0", "apache-kafka-java", "a", "v1.0-rc1"] {
            assert!(is_software_token(good), "{good}");
        }
        for bad in ["", "-lead", "trail.", "with space", "ünï", "a_b"] {
            assert!(!is_software_token(bad), "{bad}");
        }
    }
}
