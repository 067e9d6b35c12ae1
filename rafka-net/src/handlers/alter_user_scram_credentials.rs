//! AlterUserScramCredentials (key 51), v0 (KIP-554): sets and deletes
//! users' SCRAM credentials, as `kafka-configs.sh --alter --entity-type
//! users --add-config 'SCRAM-SHA-256=[...]'` and the admin clients'
//! `alterUserScramCredentials` do. The client salts the password; only
//! the salt, iteration count and salted password cross the wire, and the
//! controller keeps only the keys derived from them.
//!
//! Top-down: decode -> authorize (ALTER on the cluster) -> the whole
//! request to the controller in one call (one commit) -> encode one result
//! per user.
//!
//! Answers, as Kafka's `ControllerApis.handleAlterUserScramCredentials`
//! and `ScramControlManager` (see `rafka_core::metadata::scram_control`):
//! - Without ALTER on the cluster: every user, once and in name order,
//!   CLUSTER_AUTHORIZATION_FAILED (Kafka's `getErrorResponse`).
//! - Per user: DUPLICATE_RESOURCE when named twice, UNACCEPTABLE_CREDENTIAL
//!   (empty name, iterations outside 4096..=16384, empty salt or salted
//!   password), UNSUPPORTED_SASL_MECHANISM, RESOURCE_NOT_FOUND (deleting a
//!   credential that does not exist); the other users go ahead.

use std::collections::BTreeSet;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::metadata::{ScramDeletion, ScramUpsertion};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::TopicFailure;

use super::{HandlerError, RequestContext};

pub async fn handle(
    ctx: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> Result<AlterUserScramCredentialsResponse, HandlerError> {
    if !ctx.authorize(AclOperation::Alter, Resource::Cluster) {
        let failure = TopicFailure::new(ErrorCode::CLUSTER_AUTHORIZATION_FAILED, "");
        return Ok(every_user_failed(&request, &failure));
    }
    let users = users(&request);
    let deletions = request
        .deletions
        .into_iter()
        .map(|d| ScramDeletion {
            name: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    let upsertions = request
        .upsertions
        .into_iter()
        .map(|u| ScramUpsertion {
            name: u.name.to_string(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        })
        .collect();
    let outcomes = match ctx
        .controller()
        .alter_scram_credentials(deletions, upsertions)
        .await
    {
        Ok(outcomes) => outcomes,
        // No answer from the controller: every user gets its error.
        Err(error) => {
            let failure = error.topic_failure();
            let results = users.iter().map(|user| result(user, Err(&failure)));
            return Ok(response(results.collect()));
        }
    };
    let results = outcomes
        .iter()
        .map(|(user, outcome)| result(user, outcome.as_ref().map(|_| ())))
        .collect();
    Ok(response(results))
}

/// Every user named, once, in name order (Kafka's `getErrorResponse`).
fn users(request: &AlterUserScramCredentialsRequest) -> Vec<String> {
    let users: BTreeSet<&str> = request
        .deletions
        .iter()
        .map(|d| d.name.as_str())
        .chain(request.upsertions.iter().map(|u| u.name.as_str()))
        .collect();
    users.into_iter().map(str::to_string).collect()
}

fn every_user_failed(
    request: &AlterUserScramCredentialsRequest,
    failure: &TopicFailure,
) -> AlterUserScramCredentialsResponse {
    let results = users(request)
        .iter()
        .map(|user| result(user, Err(failure)))
        .collect();
    response(results)
}

fn result(user: &str, outcome: Result<(), &TopicFailure>) -> AlterUserScramCredentialsResult {
    let (code, message) = match outcome {
        Ok(()) => (ErrorCode::NONE.code(), None),
        Err(failure) => (
            failure.code.code(),
            (!failure.message.is_empty()).then(|| StrBytes::from_string(failure.message.clone())),
        ),
    };
    AlterUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(user.to_string()))
        .with_error_code(code)
        .with_error_message(message)
}

fn response(results: Vec<AlterUserScramCredentialsResult>) -> AlterUserScramCredentialsResponse {
    AlterUserScramCredentialsResponse::default().with_results(results)
}
