//! DescribeUserScramCredentials (key 50), v0 (KIP-554): which SCRAM
//! mechanisms each user has a credential for, and with how many
//! iterations; never a salt or a key.
//!
//! Top-down: decode -> authorize (DESCRIBE on the cluster) -> read the
//! shard's image (every shard holds every credential; no cross-core call)
//! -> encode.
//!
//! Answers, as Kafka's `KafkaApis.handleDescribeUserScramCredentialsRequest`
//! and `ScramImage.describe` (see `rafka_core::metadata::scram_control`):
//! - Without DESCRIBE on the cluster: the top-level error
//!   CLUSTER_AUTHORIZATION_FAILED and, as Kafka's `getErrorResponse`, one
//!   result per requested user holding the same error (and no name).
//! - `users` null or empty: every user with a credential, in name order.
//! - A success's error message is the schema default, `""`, as Kafka's
//!   generated `DescribeUserScramCredentialsResult` leaves it.
//! - A named user without credentials: RESOURCE_NOT_FOUND; a user named
//!   twice: DUPLICATE_RESOURCE (once), with Kafka's messages.

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::metadata::scram_control::describe_scram_credentials;
use rafka_proto::error::ErrorCode;

use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> Result<DescribeUserScramCredentialsResponse, HandlerError> {
    if !ctx.authorize(AclOperation::Describe, Resource::Cluster) {
        let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        let count = request.users.as_ref().map_or(0, Vec::len);
        let failed = DescribeUserScramCredentialsResult::default()
            .with_error_code(code)
            .with_error_message(None);
        return Ok(DescribeUserScramCredentialsResponse::default()
            .with_error_code(code)
            .with_error_message(None)
            .with_results(vec![failed; count]));
    }
    let named: Option<Vec<String>> = request
        .users
        .map(|users| users.into_iter().map(|u| u.name.to_string()).collect());
    let image = ctx.image();
    let results = describe_scram_credentials(&image, named.as_deref())
        .into_iter()
        .map(|described| {
            let result = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(described.user));
            match described.outcome {
                Ok(credentials) => result
                    .with_error_code(ErrorCode::NONE.code())
                    .with_credential_infos(
                        credentials
                            .into_iter()
                            .map(|(mechanism, iterations)| {
                                CredentialInfo::default()
                                    .with_mechanism(mechanism.type_code() as i8)
                                    .with_iterations(iterations as i32)
                            })
                            .collect(),
                    ),
                Err(error) => result
                    .with_error_code(error.error_code().code())
                    .with_error_message(Some(StrBytes::from_string(error.to_string()))),
            }
        })
        .collect();
    Ok(DescribeUserScramCredentialsResponse::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_results(results))
}
