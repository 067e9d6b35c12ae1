//! CreatePartitions end to end on a real broker core (1, 2 and 4 shards),
//! at its lowest (v0) and highest (v3, flexible) versions, decoded with
//! kafka-protocol.

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::{BrokerId, CreatePartitionsRequest, CreatePartitionsResponse};
use rafka_testkit::broker::NODE_ID;
use rafka_testkit::proto::topic_name;
use rafka_testkit::records::value_batch;
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_REQUEST: i16 = 42;
const KAFKA_STORAGE_ERROR: i16 = 56;

fn grow(name: &str, count: i32) -> CreatePartitionsTopic {
    // Null assignments: the broker places the new partitions.
    CreatePartitionsTopic::default()
        .with_name(topic_name(name))
        .with_count(count)
        .with_assignments(None)
}

fn assigned(name: &str, count: i32, brokers: &[&[i32]]) -> CreatePartitionsTopic {
    let assignments = brokers
        .iter()
        .map(|ids| {
            CreatePartitionsAssignment::default()
                .with_broker_ids(ids.iter().map(|&id| BrokerId(id)).collect())
        })
        .collect();
    grow(name, count).with_assignments(Some(assignments))
}

fn request(topics: Vec<CreatePartitionsTopic>) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
}

/// (name, error code, message) of every result, in answer order.
fn results(response: &CreatePartitionsResponse) -> Vec<(String, i16, Option<String>)> {
    response
        .results
        .iter()
        .map(|r| {
            (
                r.name.as_str().to_string(),
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

async fn partition_count(broker: &Broker, name: &str) -> usize {
    let metadata = broker.metadata_of(&[name]).await;
    assert_eq!(metadata.topics[0].error_code, NONE, "Metadata of {name}");
    metadata.topics[0].partitions.len()
}

async fn grow_scenario(broker: Broker) {
    for version in [0, 3] {
        let name = format!("grown-v{version}");
        broker.create_topic_id(&name, 2, &[]).await;
        let response: CreatePartitionsResponse =
            broker.call(version, &request(vec![grow(&name, 5)])).await;
        assert_eq!(response.throttle_time_ms, 0);
        assert_eq!(results(&response), vec![(name.clone(), NONE, None)]);
        assert_eq!(partition_count(&broker, &name).await, 5);
        // Each new partition is open on its owner and takes records.
        for partition in 2..5 {
            assert!(broker.has_partition_dir(&name, partition));
            let offset = broker
                .produce_one(&name, partition, value_batch("new"))
                .await;
            assert_eq!(offset, 0, "{name}/{partition}");
        }
        // Manual assignments naming this node.
        let node: &[i32] = &[NODE_ID];
        let response: CreatePartitionsResponse = broker
            .call(version, &request(vec![assigned(&name, 7, &[node, node])]))
            .await;
        assert_eq!(results(&response), vec![(name.clone(), NONE, None)]);
        assert_eq!(partition_count(&broker, &name).await, 7);
    }
}

#[test]
fn grow_and_produce_to_new_partitions() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, grow_scenario);
}

async fn refusals_scenario(broker: Broker) {
    broker.create_topic_id("four", 4, &[]).await;
    let node: &[i32] = &[NODE_ID];
    let elsewhere: &[i32] = &[NODE_ID + 1];
    let response: CreatePartitionsResponse = broker
        .call(
            3,
            &request(vec![
                grow("four", 4),
                grow("missing", 3),
                grow("twice", 9),
                grow("four", 3),
                grow("twice", 10),
            ]),
        )
        .await;
    let codes: Vec<(String, i16)> = results(&response)
        .into_iter()
        .map(|(name, code, _)| (name, code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("missing".to_string(), UNKNOWN_TOPIC_OR_PARTITION),
            ("four".to_string(), INVALID_REQUEST),
            ("twice".to_string(), INVALID_REQUEST),
        ]
    );
    for (name, count, want) in [
        ("four", 4, "already has 4 partitions"),
        ("four", 2, "already has 4 partitions"),
    ] {
        let response: CreatePartitionsResponse =
            broker.call(1, &request(vec![grow(name, count)])).await;
        let (_, code, message) = results(&response).remove(0);
        assert_eq!(code, INVALID_PARTITIONS);
        assert!(message.expect("a message").contains(want));
    }
    for assignment in [
        assigned("four", 6, &[node]),
        assigned("four", 6, &[node, elsewhere]),
        assigned("four", 5, &[&[NODE_ID, NODE_ID]]),
    ] {
        let response: CreatePartitionsResponse = broker.call(3, &request(vec![assignment])).await;
        let (_, code, message) = results(&response).remove(0);
        assert_eq!(code, INVALID_REPLICA_ASSIGNMENT, "{message:?}");
    }
    // validate_only answers as a change would and changes nothing.
    let validated: CreatePartitionsResponse = broker
        .call(
            3,
            &request(vec![grow("four", 8), grow("missing", 2)]).with_validate_only(true),
        )
        .await;
    let codes: Vec<i16> = results(&validated).iter().map(|r| r.1).collect();
    assert_eq!(codes, vec![NONE, UNKNOWN_TOPIC_OR_PARTITION]);
    assert_eq!(partition_count(&broker, "four").await, 4);
    assert!(!broker.has_partition_dir("four", 4));
}

#[test]
fn refusals_and_validate_only() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, refusals_scenario);
}

/// New partitions a shard cannot open (a stray file sits where partition
/// 5's directory goes) are all taken back: the topic keeps its count, no
/// new directory stays, the answer is KAFKA_STORAGE_ERROR, and the same
/// growth succeeds once the obstacle is gone.
async fn unservable_scenario(broker: Broker) {
    broker.create_topic_id("blocked", 3, &[]).await;
    let stray = broker.partition_dir("blocked", 5);
    std::fs::write(&stray, b"not a directory").unwrap();

    let response: CreatePartitionsResponse =
        broker.call(3, &request(vec![grow("blocked", 7)])).await;
    let (_, code, message) = results(&response).remove(0);
    assert_eq!(code, KAFKA_STORAGE_ERROR);
    assert!(message.expect("a message").contains("blocked-5"));
    assert_eq!(partition_count(&broker, "blocked").await, 3);
    for index in [3, 4, 6] {
        assert!(
            !broker.has_partition_dir("blocked", index),
            "partition {index} left behind"
        );
        assert!(!broker.is_open_on_owner("blocked", index).await);
    }

    std::fs::remove_file(&stray).unwrap();
    let response: CreatePartitionsResponse =
        broker.call(3, &request(vec![grow("blocked", 7)])).await;
    assert_eq!(
        results(&response),
        vec![("blocked".to_string(), NONE, None)]
    );
    let offset = broker.produce_one("blocked", 6, value_batch("after")).await;
    assert_eq!(offset, 0);
}

#[test]
fn growth_that_cannot_be_served_is_refused_whole() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, unservable_scenario);
}
