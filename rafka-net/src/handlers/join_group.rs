//! JoinGroup (key 11), v0-v9: a member asks to join its group; the answer
//! comes from the group's coordinator once the join phase of the
//! rebalance ends (so this request may wait up to the rebalance timeout).
//!
//! Decisions a client can notice, following Kafka:
//! - An empty group id is INVALID_GROUP_ID without asking a coordinator.
//! - v0 carries no rebalance timeout: the session timeout stands in for it,
//!   as Kafka's broker does.
//! - Below v7 the protocol name is not nullable: an answer without one
//!   (an error) carries the empty string. `skip_assignment` exists from v9
//!   only; an older leader is never told to skip the assignment.

use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_proto::api::decode_request;

use super::group_call::{caller, on_coordinator, INVALID_GROUP_ID};
use super::{reply, HandlerContext, HandlerError};
use crate::service::{Request, Response};

/// First version with a rebalance timeout of its own.
const REBALANCE_TIMEOUT_VERSION_MIN: i16 = 1;
/// First version whose protocol name may be null.
const NULLABLE_PROTOCOL_NAME_VERSION_MIN: i16 = 7;
/// First version carrying `skip_assignment`.
const SKIP_ASSIGNMENT_VERSION_MIN: i16 = 9;
/// Kafka's `JoinGroupRequest.UNKNOWN_GENERATION_ID`.
const UNKNOWN_GENERATION_ID: i32 = -1;

pub async fn handle(ctx: &HandlerContext, request: Request) -> Result<Response, HandlerError> {
    let version = request.header.api_version;
    let caller = caller(&request);
    let mut body = request.body;
    let mut decoded: JoinGroupRequest = decode_request(&mut body, version)?;
    if version < REBALANCE_TIMEOUT_VERSION_MIN {
        decoded.rebalance_timeout_ms = decoded.session_timeout_ms;
    }
    let member_id = decoded.member_id.clone();
    let response = if decoded.group_id.is_empty() {
        failure(INVALID_GROUP_ID, member_id)
    } else {
        let group_id = decoded.group_id.to_string();
        let joined = on_coordinator(ctx, &group_id, move |shard| async move {
            shard.groups().join_group(caller, decoded).await
        })
        .await;
        joined.unwrap_or_else(|code| failure(code, member_id))
    };
    reply(
        &request.header,
        request.response_header_version,
        &encodable(response, version),
        version,
    )
}

/// Kafka's `JoinGroupResult(memberId, error)`: no generation, no leader.
fn failure(error_code: i16, member_id: StrBytes) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error_code)
        .with_generation_id(UNKNOWN_GENERATION_ID)
        .with_protocol_name(None)
        .with_leader(StrBytes::new())
        .with_member_id(member_id)
}

/// The coordinator's answer with what `version` cannot carry cleared.
pub(crate) fn encodable(mut response: JoinGroupResponse, version: i16) -> JoinGroupResponse {
    response.throttle_time_ms = 0;
    if version < NULLABLE_PROTOCOL_NAME_VERSION_MIN {
        response.protocol_type = None;
        if response.protocol_name.is_none() {
            response.protocol_name = Some(StrBytes::new());
        }
    }
    if version < SKIP_ASSIGNMENT_VERSION_MIN {
        response.skip_assignment = false;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_versions_get_an_empty_protocol_name_and_no_skip() {
        let response = JoinGroupResponse::default()
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(None)
            .with_skip_assignment(true)
            .with_throttle_time_ms(7);
        let old = encodable(response.clone(), 6);
        assert_eq!(old.protocol_type, None);
        assert_eq!(old.protocol_name.as_deref(), Some(""));
        assert!(!old.skip_assignment);
        assert_eq!(old.throttle_time_ms, 0);
        let new = encodable(response, 9);
        assert_eq!(new.protocol_type.as_deref(), Some("consumer"));
        assert_eq!(new.protocol_name, None);
        assert!(new.skip_assignment);
    }

    #[test]
    fn every_version_encodes_a_failure() {
        for version in 0..=9 {
            let response = encodable(failure(INVALID_GROUP_ID, StrBytes::new()), version);
            let mut buf = bytes::BytesMut::new();
            kafka_protocol::protocol::Encodable::encode(&response, &mut buf, version)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }
}
