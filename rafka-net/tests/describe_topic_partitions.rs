//! DescribeTopicPartitions (v0, flexible) end to end on a real broker
//! core: every partition led by this node, paging with the partition limit
//! and the cursor, and the refusals.

use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::describe_topic_partitions_response::DescribeTopicPartitionsResponsePartition;
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use rafka_testkit::broker::NODE_ID;
use rafka_testkit::proto::topic_name;
use rafka_testkit::{Broker, TestBroker};
use uuid::Uuid;

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUEST: i16 = 42;
/// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS,
/// ALTER_CONFIGS: every topic operation, as there are no ACLs.
const ALL_TOPIC_OPERATIONS: i32 = 0b1101_1111_1000;

fn request(
    names: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsRequest {
    let topics = names
        .iter()
        .map(|name| TopicRequest::default().with_name(topic_name(name)))
        .collect();
    let cursor = cursor.map(|(topic, partition)| {
        Cursor::default()
            .with_topic_name(topic_name(topic))
            .with_partition_index(partition)
    });
    DescribeTopicPartitionsRequest::default()
        .with_topics(topics)
        .with_response_partition_limit(limit)
        .with_cursor(cursor)
}

/// (name, error, partitions listed) of every topic, and the next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn page(response: &DescribeTopicPartitionsResponse) -> Page {
    let topics = response
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
            (name, t.error_code, partitions)
        })
        .collect();
    let cursor = response
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.to_string(), c.partition_index));
    (topics, cursor)
}

fn listed(topics: &[(&str, i16, &[i32])], cursor: Option<(&str, i32)>) -> Page {
    let topics = topics
        .iter()
        .map(|&(name, code, partitions)| (name.to_string(), code, partitions.to_vec()))
        .collect();
    (
        topics,
        cursor.map(|(topic, partition)| (topic.to_string(), partition)),
    )
}

async fn describe(broker: &Broker, request: &DescribeTopicPartitionsRequest) -> Page {
    let response: DescribeTopicPartitionsResponse = broker.call(0, request).await;
    assert_eq!(response.throttle_time_ms, 0);
    page(&response)
}

async fn pages_scenario(broker: Broker) {
    let alpha = broker.create_topic_id("alpha", 3, &[]).await;
    broker.create_topic_id("beta", 2, &[]).await;
    broker.create_topic_id("gamma", 1, &[]).await;

    // Every topic, fields checked once.
    let response: DescribeTopicPartitionsResponse = broker.call(0, &request(&[], 2000, None)).await;
    assert_eq!(
        page(&response),
        listed(
            &[
                ("alpha", NONE, &[0, 1, 2]),
                ("beta", NONE, &[0, 1]),
                ("gamma", NONE, &[0])
            ],
            None
        )
    );
    let first = &response.topics[0];
    assert_eq!(first.topic_id, alpha);
    assert!(!first.is_internal);
    assert_eq!(first.topic_authorized_operations, ALL_TOPIC_OPERATIONS);
    let node = BrokerId(NODE_ID);
    let expected = DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(1)
        .with_leader_id(node)
        .with_leader_epoch(0)
        .with_replica_nodes(vec![node])
        .with_isr_nodes(vec![node])
        .with_eligible_leader_replicas(Some(vec![]))
        .with_last_known_elr(Some(vec![]))
        .with_offline_replicas(vec![]);
    assert_eq!(first.partitions[1], expected);

    // Paging: a topic cut short, the cursor inside it, a page ending
    // exactly at a topic's end.
    assert_eq!(
        describe(&broker, &request(&[], 2, None)).await,
        listed(&[("alpha", NONE, &[0, 1])], Some(("alpha", 2)))
    );
    assert_eq!(
        describe(&broker, &request(&[], 2, Some(("alpha", 2)))).await,
        listed(
            &[("alpha", NONE, &[2]), ("beta", NONE, &[0])],
            Some(("beta", 1))
        )
    );
    assert_eq!(
        describe(&broker, &request(&[], 1, Some(("beta", 1)))).await,
        listed(&[("beta", NONE, &[1])], Some(("gamma", 0)))
    );
    assert_eq!(
        describe(&broker, &request(&[], 0, Some(("gamma", 0)))).await,
        listed(&[("gamma", NONE, &[0])], None)
    );

    // Named topics: once each, by name, unknown and invalid ones answered.
    let named = ["gamma", "absent", "alpha", "gamma", "bad/name"];
    let response: DescribeTopicPartitionsResponse =
        broker.call(0, &request(&named, 100, None)).await;
    assert_eq!(
        page(&response),
        listed(
            &[
                ("absent", UNKNOWN_TOPIC_OR_PARTITION, &[]),
                ("alpha", NONE, &[0, 1, 2]),
                ("bad/name", INVALID_TOPIC_EXCEPTION, &[]),
                ("gamma", NONE, &[0]),
            ],
            None
        )
    );
    assert_eq!(response.topics[0].topic_id, Uuid::nil());
    // The cursor names a topic from where the named ones are listed.
    assert_eq!(
        describe(
            &broker,
            &request(&["beta", "alpha"], 100, Some(("beta", 1)))
        )
        .await,
        listed(&[("beta", NONE, &[1])], None)
    );

    // A cursor outside the named topics, or before partition 0.
    assert_eq!(
        describe(&broker, &request(&["alpha"], 10, Some(("beta", 0)))).await,
        listed(&[("alpha", INVALID_REQUEST, &[])], None)
    );
    assert_eq!(
        describe(&broker, &request(&["alpha"], 10, Some(("alpha", -1)))).await,
        listed(&[("alpha", INVALID_REQUEST, &[])], None)
    );

    // Internal topics say so.
    broker.ensure_offsets_topic().await;
    let response: DescribeTopicPartitionsResponse = broker
        .call(0, &request(&["__consumer_offsets"], 1, None))
        .await;
    assert!(response.topics[0].is_internal);
    assert_eq!(
        page(&response),
        listed(
            &[("__consumer_offsets", NONE, &[0])],
            Some(("__consumer_offsets", 1))
        )
    );
}

#[test]
fn describe_topic_partitions_pages_through_topics() {
    TestBroker::builder()
        .shards(2)
        .config(|c| c.offsets_topic_num_partitions = 2)
        .run(pages_scenario);
}
