//! ApiVersions (key 18), v0-v4: which APIs and versions this broker serves,
//! straight from the API table that also drives dispatch.
//!
//! Two answers besides the table's listing, both as Kafka gives them:
//! - An unsupported version never reaches [`handle`]: the header parser
//!   refuses it, and the connection answers with
//!   [`encode_unsupported_version`] (UNSUPPORTED_VERSION in the v0 layout,
//!   listing the ApiVersions range so the client retries with one it shares).
//! - From v3 the client names its software; a name or version Kafka would
//!   refuse gets INVALID_REQUEST with no API list (KIP-511).

use bytes::Bytes;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::ResponseError;
use rafka_proto::api::{decode_request, encode_response, ApiTable, EncodeError};

use super::{HandlerContext, HandlerError};
use crate::service::{Request, Response};

/// First version carrying the client software name and version.
const CLIENT_SOFTWARE_VERSION_MIN: i16 = 3;

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    answer(&ctx.table, request)
}

/// The whole handler; it needs nothing but the table, so services other
/// than the broker's (tests, tools) can answer ApiVersions the same way.
pub fn answer(table: &ApiTable, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let correlation_id = request.header.correlation_id;
    let mut body = request.body;
    let decoded: ApiVersionsRequest = decode_request(&mut body, version)?;
    if version >= CLIENT_SOFTWARE_VERSION_MIN && !names_client_software(&decoded) {
        let error = ApiVersionsResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_throttle_time_ms(0);
        let reply = encode_response(
            correlation_id,
            request.response_header_version,
            &error,
            version,
        )?;
        return Ok(Response::Reply(reply));
    }
    let reply = table.encode_api_versions_response(correlation_id, version)?;
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
