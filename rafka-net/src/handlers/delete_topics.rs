//! DeleteTopics (key 20), v1-v6: topics by name (all versions) or by id
//! (v6), deleted by the controller on shard 0. The controller answers once
//! every shard has dropped the topic and removed its data.
//!
//! Checks only the request can show come first, as in Kafka's controller:
//! a name or id given twice, an entry with both or neither, each answered
//! once with INVALID_REQUEST after the others. Unknown names get
//! UNKNOWN_TOPIC_OR_PARTITION, unknown ids UNKNOWN_TOPIC_ID, and with
//! `delete.topic.enable=false` existing topics get TOPIC_DELETION_DISABLED.
//! `timeout_ms` works as in CreateTopics ([`request_timeout`]).
//! The deleted partitions count against the client's
//! `controller_mutation_rate` (KIP-599): from v5 a topic over the quota
//! is refused with THROTTLING_QUOTA_EXCEEDED; older versions are only
//! throttled.

use std::collections::HashMap;
use std::hash::Hash;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller::{TopicFailure, TopicRef};
use rafka_shard::controller_handle::{request_timeout, ControllerCallError};
use uuid::Uuid;

use super::{HandlerError, RequestContext};

type Outcome = Result<(String, Uuid), TopicFailure>;

/// First version on which the controller mutation quota refuses topics
/// (THROTTLING_QUOTA_EXCEEDED) rather than only throttling (KIP-599).
const STRICT_MUTATION_QUOTA_VERSION_MIN: i16 = 5;

/// One entry of the request as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Entry {
    Name(String),
    Id(Uuid),
    Both(String, Uuid),
    Neither,
}

pub async fn handle(
    ctx: &RequestContext,
    request: DeleteTopicsRequest,
) -> Result<DeleteTopicsResponse, HandlerError> {
    let (unique, duplicates) = split_duplicates(entries(&request));
    let allowed: Vec<bool> = unique.iter().map(|entry| may_delete(ctx, entry)).collect();
    let refs: Vec<TopicRef> = unique
        .iter()
        .zip(&allowed)
        .filter(|(_, allowed)| **allowed)
        .filter_map(|(entry, _)| topic_ref(entry))
        .collect();
    let mut deleted = delete(ctx, refs, request.timeout_ms).await.into_iter();
    let mut results = Vec::with_capacity(unique.len() + duplicates.len());
    for (entry, allowed) in unique.into_iter().zip(allowed) {
        let outcome = match &entry {
            Entry::Both(..) => Err(invalid("You may not specify both topic name and topic id.")),
            Entry::Neither => Err(invalid("Neither topic name nor id were specified.")),
            _ if !allowed => Err(TopicFailure::new(
                ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.",
            )),
            Entry::Name(_) | Entry::Id(_) => deleted
                .next()
                .unwrap_or(Err(ControllerCallError::Unavailable.topic_failure())),
        };
        results.push(result(&entry, outcome));
    }
    for entry in duplicates {
        let message = match entry {
            Entry::Id(_) => "Duplicate topic id.",
            _ => "Duplicate topic name.",
        };
        results.push(result(&entry, Err(invalid(message))));
    }
    Ok(DeleteTopicsResponse::default().with_responses(results))
}

/// DELETE on the topic, as Kafka checks it; an id names the topic it has
/// in the image (an unknown id is the controller's to answer).
fn may_delete(ctx: &RequestContext, entry: &Entry) -> bool {
    let name = match entry {
        Entry::Name(name) => Some(name.clone()),
        Entry::Id(id) => ctx.image().topic_by_id(id).map(|topic| topic.name.clone()),
        Entry::Both(..) | Entry::Neither => None,
    };
    name.is_none_or(|name| ctx.authorize(AclOperation::Delete, Resource::Topic(&name)))
}

/// The request's entries in order: v1-v5 list names, v6 lists states.
fn entries(request: &DeleteTopicsRequest) -> Vec<Entry> {
    let names = request
        .topic_names
        .iter()
        .map(|name| Entry::Name(name.as_str().to_string()));
    let states = request
        .topics
        .iter()
        .map(|state| match (&state.name, state.topic_id.is_nil()) {
            (Some(name), true) => Entry::Name(name.as_str().to_string()),
            (Some(name), false) => Entry::Both(name.as_str().to_string(), state.topic_id),
            (None, false) => Entry::Id(state.topic_id),
            (None, true) => Entry::Neither,
        });
    names.chain(states).collect()
}

/// Entries given once (in order), and each name or id given more than once.
/// Every `Neither` and `Both` entry stays: each is its own error.
fn split_duplicates(entries: Vec<Entry>) -> (Vec<Entry>, Vec<Entry>) {
    let mut counts: HashMap<&Entry, usize> = HashMap::new();
    for entry in &entries {
        *counts.entry(entry).or_default() += 1;
    }
    let repeated = |entry: &Entry| {
        matches!(entry, Entry::Name(_) | Entry::Id(_)) && counts.get(entry).copied() > Some(1)
    };
    let mut duplicates: Vec<Entry> = Vec::new();
    let mut unique = Vec::new();
    for entry in &entries {
        if !repeated(entry) {
            unique.push(entry.clone());
        } else if !duplicates.contains(entry) {
            duplicates.push(entry.clone());
        }
    }
    (unique, duplicates)
}

fn topic_ref(entry: &Entry) -> Option<TopicRef> {
    match entry {
        Entry::Name(name) => Some(TopicRef::Name(name.clone())),
        Entry::Id(id) => Some(TopicRef::Id(*id)),
        Entry::Both(..) | Entry::Neither => None,
    }
}

/// The controller's outcome for each reference, in order.
async fn delete(ctx: &RequestContext, refs: Vec<TopicRef>, timeout_ms: i32) -> Vec<Outcome> {
    if refs.is_empty() {
        return Vec::new();
    }
    let count = refs.len();
    let timeout = request_timeout(timeout_ms);
    let quota = ctx.mutation_quota(STRICT_MUTATION_QUOTA_VERSION_MIN);
    match ctx
        .controller()
        .delete_topics(refs, timeout, Some(quota))
        .await
    {
        Ok(charged) => {
            ctx.add_throttle_ms(charged.throttle_time_ms);
            charged.outcomes
        }
        Err(error) => vec![Err(error.topic_failure()); count],
    }
}

fn invalid(message: &str) -> TopicFailure {
    TopicFailure::new(ErrorCode::INVALID_REQUEST, message)
}

/// A result names the topic as the request did; a deletion by name also
/// gives the id and one by id the name.
fn result(entry: &Entry, outcome: Outcome) -> DeletableTopicResult {
    let (name, id) = match entry {
        Entry::Name(name) => (Some(name.clone()), Uuid::nil()),
        Entry::Id(id) => (None, *id),
        Entry::Both(name, id) => (Some(name.clone()), *id),
        Entry::Neither => (None, Uuid::nil()),
    };
    let result = DeletableTopicResult::default();
    match outcome {
        Ok((deleted_name, deleted_id)) => result
            .with_name(Some(topic_name(deleted_name)))
            .with_topic_id(deleted_id)
            .with_error_code(ErrorCode::NONE.code())
            .with_error_message(None),
        Err(failure) => result
            .with_name(name.map(topic_name))
            .with_topic_id(id)
            .with_error_code(failure.code.code())
            .with_error_message(Some(StrBytes::from_string(failure.message))),
    }
}

fn topic_name(name: String) -> TopicName {
    TopicName(StrBytes::from_string(name))
}
