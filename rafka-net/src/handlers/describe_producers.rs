//! DescribeProducers (key 61), v0: the idempotent (and, later,
//! transactional) producers a partition's producer state holds, as
//! `kafka-transactions.sh describe-producers` and the admin client's
//! `describeProducers` show them.
//!
//! Top-down: decode -> authorize and resolve each topic on the shard that
//! read the request -> split by owning shard -> read the producer state on
//! every owner at once -> gather -> encode.
//!
//! Answers, as Kafka's `KafkaApis.handleDescribeProducersRequest` and
//! `Partition.activeProducerState`:
//! - An invalid topic name is INVALID_TOPIC_EXCEPTION; READ on the topic is
//!   required (TOPIC_AUTHORIZATION_FAILED); an unknown topic is
//!   UNKNOWN_TOPIC_OR_PARTITION. These topic-level errors carry Kafka's
//!   text for the code as the error message, as Kafka's do.
//! - An unknown partition of a known topic is UNKNOWN_TOPIC_OR_PARTITION
//!   (no message).
//! - Each producer id in the state, by ascending id: its epoch, the last
//!   sequence written (-1 if none in this epoch), the last batch's
//!   timestamp, coordinator epoch -1 (no transaction marker written yet)
//!   and current transaction start offset -1 (none open). Producers stay
//!   listed until they leave the producer state (as in Kafka, where they
//!   expire after `transactional.id.expiration.ms` of silence).

use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};
use kafka_protocol::protocol::StrBytes;
use rafka_core::acl::{AclOperation, Resource};
use rafka_core::config::topic_name::validate_topic_name;
use rafka_proto::error::ErrorCode;
use rafka_shard::partition::{ActiveProducer, PartitionError};
use rafka_shard::shard::Shard;

use super::fanout::{scatter, Grid, Slot, Split};
use super::{HandlerError, RequestContext};

/// Kafka's "no transaction open" start offset.
const NO_TXN_START_OFFSET: i64 = -1;

/// One partition's answer.
#[derive(Debug, Clone)]
struct Answer {
    error_code: ErrorCode,
    /// Kafka's text for topic-level errors.
    error_message: Option<String>,
    producers: Vec<ActiveProducer>,
}

impl Answer {
    fn error(error_code: ErrorCode) -> Self {
        Answer {
            error_code,
            error_message: None,
            producers: Vec::new(),
        }
    }

    fn topic_error(error_code: ErrorCode) -> Self {
        Answer {
            error_message: Some(error_code.message()),
            ..Answer::error(error_code)
        }
    }
}

/// One partition to describe on its owner. Crosses shards.
struct Lookup {
    topic: String,
    partition: i32,
}

pub async fn handle(
    ctx: &RequestContext,
    request: DescribeProducersRequest,
) -> Result<DescribeProducersResponse, HandlerError> {
    let rows = request.topics.iter().map(|t| t.partition_indexes.len());
    let mut answers: Grid<Answer> = Grid::new(rows);
    let split = split(ctx, &request, &mut answers);
    let described = scatter(ctx.shard(), split, describe_on_owner, || {
        Answer::error(ErrorCode::NOT_LEADER_OR_FOLLOWER)
    })
    .await;
    for (slot, answer) in described {
        answers.set(slot, answer);
    }
    let topics = request
        .topics
        .iter()
        .zip(answers.into_rows())
        .map(|(topic, answers)| {
            let partitions = topic
                .partition_indexes
                .iter()
                .zip(answers)
                .map(|(&index, answer)| partition_response(index, answer))
                .collect();
            TopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Ok(DescribeProducersResponse::default().with_topics(topics))
}

fn partition_response(index: i32, answer: Answer) -> PartitionResponse {
    let producers = answer
        .producers
        .iter()
        .map(|producer| {
            ProducerState::default()
                .with_producer_id(producer.producer_id.into())
                .with_producer_epoch(i32::from(producer.producer_epoch))
                .with_last_sequence(producer.last_sequence)
                .with_last_timestamp(producer.last_timestamp)
                .with_coordinator_epoch(producer.coordinator_epoch)
                .with_current_txn_start_offset(
                    producer
                        .current_txn_start_offset
                        .unwrap_or(NO_TXN_START_OFFSET),
                )
        })
        .collect();
    PartitionResponse::default()
        .with_partition_index(index)
        .with_error_code(answer.error_code.code())
        .with_error_message(answer.error_message.map(StrBytes::from_string))
        .with_active_producers(producers)
}

/// Answers what this shard can (invalid, unauthorized or unknown topics,
/// unknown partitions) and groups the rest by owning shard.
fn split(
    ctx: &RequestContext,
    request: &DescribeProducersRequest,
    answers: &mut Grid<Answer>,
) -> Split<Slot, Lookup> {
    let image = ctx.image();
    let mut split = Split::new();
    for (t, topic) in request.topics.iter().enumerate() {
        let name = topic.name.as_str();
        let found = image.topic(name);
        let topic_error = if validate_topic_name(name).is_err() {
            ErrorCode::INVALID_TOPIC_EXCEPTION
        } else if !ctx.authorize(AclOperation::Read, Resource::Topic(name)) {
            ErrorCode::TOPIC_AUTHORIZATION_FAILED
        } else if found.is_none() {
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        } else {
            ErrorCode::NONE
        };
        if topic_error.is_err() {
            answers.fill_row(t, &Answer::topic_error(topic_error));
            continue;
        }
        for (p, &index) in topic.partition_indexes.iter().enumerate() {
            let owner = found.map_or(Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION), |topic| {
                super::cluster_view::leader_shard(ctx, topic, index)
            });
            match owner {
                Ok(owner) => {
                    let lookup = Lookup {
                        topic: name.to_string(),
                        partition: index,
                    };
                    split.push(owner, (t, p), lookup);
                }
                Err(code) => answers.set((t, p), Answer::error(code)),
            }
        }
    }
    split
}

/// On the owner: its partitions' producer states, read concurrently.
async fn describe_on_owner(shard: Rc<Shard>, lookups: Vec<Lookup>) -> Vec<Answer> {
    join_all(lookups.iter().map(|lookup| describe(&shard, lookup))).await
}

async fn describe(shard: &Shard, lookup: &Lookup) -> Answer {
    let described = match shard.partition(&lookup.topic, lookup.partition) {
        Some(partition) => partition.active_producers().await,
        None => Err(PartitionError::Closed),
    };
    match described {
        Ok(producers) => Answer {
            error_code: ErrorCode::NONE,
            error_message: None,
            producers,
        },
        Err(error) => {
            tracing::debug!(
                topic = %lookup.topic,
                partition = lookup.partition,
                %error,
                "describe producers"
            );
            Answer::error(error.error_code())
        }
    }
}
