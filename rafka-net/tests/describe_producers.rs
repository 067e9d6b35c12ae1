//! DescribeProducers (v0, flexible) end to end on a real broker core (1, 2
//! and 4 shards): idempotent producers' state as the partitions' owners
//! hold it, and the refusals.

use bytes::Bytes;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_testkit::proto::topic_name;
use rafka_testkit::records::value_batch;
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;

/// A batch of producer `producer_id` at `epoch` from `base_sequence`, one
/// record per timestamp.
fn producer_batch(producer_id: i64, epoch: i16, base_sequence: i32, timestamps: &[i64]) -> Bytes {
    let mut builder =
        BatchBuilder::new(Compression::None).producer(producer_id, epoch, base_sequence);
    for &timestamp in timestamps {
        builder.push_record(timestamp, Some(b"key"), Some(b"value"), &[]);
    }
    builder.build().expect("batch")
}

fn request(topics: &[(&str, &[i32])]) -> DescribeProducersRequest {
    let topics = topics
        .iter()
        .map(|&(name, partitions)| {
            TopicRequest::default()
                .with_name(topic_name(name))
                .with_partition_indexes(partitions.to_vec())
        })
        .collect();
    DescribeProducersRequest::default().with_topics(topics)
}

/// (producer id, epoch, last sequence, last timestamp, coordinator epoch,
/// txn start offset).
type Producer = (i64, i32, i32, i64, i32, i64);

/// (partition, error code, message, producers) of every answer, in order.
type Answer = (i32, i16, Option<String>, Vec<Producer>);

fn answers(response: &DescribeProducersResponse) -> Vec<Answer> {
    response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            let producers = p
                .active_producers
                .iter()
                .map(|s| {
                    (
                        s.producer_id.0,
                        s.producer_epoch,
                        s.last_sequence,
                        s.last_timestamp,
                        s.coordinator_epoch,
                        s.current_txn_start_offset,
                    )
                })
                .collect();
            let message = p.error_message.as_ref().map(|m| m.to_string());
            (p.partition_index, p.error_code, message, producers)
        })
        .collect()
}

async fn producers_scenario(broker: Broker) {
    let topic = "producers";
    broker.create_topic_id(topic, 2, &[]).await;
    let first = broker.allocate_producer_id().await;
    let second = broker.allocate_producer_id().await;
    assert!(first < second);
    let batches = [
        producer_batch(second, 2, 0, &[3_000]),
        producer_batch(first, 0, 0, &[1_000, 1_001, 1_002]),
        producer_batch(first, 0, 3, &[2_000, 2_001]),
    ];
    for batch in batches {
        broker.produce(topic, 0, batch).await;
    }
    broker.produce(topic, 1, value_batch("plain")).await;

    let asked = request(&[(topic, &[0, 1, 5]), ("absent", &[0]), ("bad/name", &[0])]);
    let response: DescribeProducersResponse = broker.call(0, &asked).await;
    assert_eq!(response.throttle_time_ms, 0);
    let message = |code: ErrorCode| Some(code.message());
    assert_eq!(
        answers(&response),
        vec![
            (
                0,
                NONE,
                None,
                vec![(first, 0, 4, 2_001, -1, -1), (second, 2, 0, 3_000, -1, -1)]
            ),
            // Batches without a producer id leave no producer state.
            (1, NONE, None, vec![]),
            (5, UNKNOWN_TOPIC_OR_PARTITION, None, vec![]),
            (
                0,
                UNKNOWN_TOPIC_OR_PARTITION,
                message(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                vec![]
            ),
            (
                0,
                INVALID_TOPIC_EXCEPTION,
                message(ErrorCode::INVALID_TOPIC_EXCEPTION),
                vec![]
            ),
        ]
    );
    let names: Vec<String> = response.topics.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["producers", "absent", "bad/name"]);
}

#[test]
fn describe_producers_lists_each_partitions_producers() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, producers_scenario);
}
