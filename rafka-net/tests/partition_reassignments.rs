//! AlterPartitionReassignments (v0-v1) and ListPartitionReassignments (v0)
//! end to end on a real broker core: the only target is this node, where
//! every partition already is, so nothing is ever being moved.

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};
use rafka_proto::error::ErrorCode;
use rafka_testkit::broker::NODE_ID;
use rafka_testkit::proto::topic_name;
use rafka_testkit::{Broker, TestBroker};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;

/// (topic, [(partition, replicas)]); replicas None cancels.
type Targets<'a> = &'a [(&'a str, &'a [(i32, Option<&'a [i32]>)])];

fn alter_request(targets: Targets<'_>) -> AlterPartitionReassignmentsRequest {
    let topics = targets
        .iter()
        .map(|&(name, partitions)| {
            let partitions = partitions
                .iter()
                .map(|&(index, replicas)| {
                    let replicas = replicas.map(|ids| ids.iter().map(|&id| BrokerId(id)).collect());
                    ReassignablePartition::default()
                        .with_partition_index(index)
                        .with_replicas(replicas)
                })
                .collect();
            ReassignableTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(topics)
}

/// (topic, partition, error code, message) of every answer, in order.
fn answers(
    response: &AlterPartitionReassignmentsResponse,
) -> Vec<(String, i32, i16, Option<String>)> {
    response
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let message = p.error_message.as_ref().map(|m| m.to_string());
                (t.name.to_string(), p.partition_index, p.error_code, message)
            })
        })
        .collect()
}

async fn alter_scenario(broker: Broker) {
    broker.create_topic_id("placed", 2, &[]).await;
    let here: &[i32] = &[NODE_ID];
    let elsewhere: &[i32] = &[NODE_ID, 7];
    let twice: &[i32] = &[NODE_ID, NODE_ID];
    let empty: &[i32] = &[];
    let targets: Targets<'_> = &[
        (
            "placed",
            &[
                (0, Some(here)),
                (1, None),
                (0, Some(elsewhere)),
                (1, Some(twice)),
                (1, Some(empty)),
                (2, Some(here)),
            ],
        ),
        ("absent", &[(0, Some(here))]),
    ];
    let message = |text: &str| Some(text.to_string());
    let placed =
        |partition, code, text: Option<String>| ("placed".to_string(), partition, code, text);
    for version in [0, 1] {
        let request = alter_request(targets);
        let response: AlterPartitionReassignmentsResponse = broker.call(version, &request).await;
        assert_eq!(response.error_code, NONE);
        assert_eq!(response.error_message, None);
        // v1 echoes the flag (v0 has none and decodes as the default).
        assert!(response.allow_replication_factor_change);
        assert_eq!(
            answers(&response),
            vec![
                placed(0, NONE, None),
                placed(
                    1,
                    NO_REASSIGNMENT_IN_PROGRESS,
                    Some(ErrorCode::NO_REASSIGNMENT_IN_PROGRESS.message())
                ),
                placed(
                    0,
                    INVALID_REPLICA_ASSIGNMENT,
                    message(
                        "The manual partition assignment includes broker 7, but no such \
                         broker is registered."
                    )
                ),
                placed(
                    1,
                    INVALID_REPLICA_ASSIGNMENT,
                    message(&format!(
                        "The manual partition assignment includes the broker {NODE_ID} \
                         more than once."
                    ))
                ),
                placed(
                    1,
                    INVALID_REPLICA_ASSIGNMENT,
                    message("The manual partition assignment includes an empty replica list.")
                ),
                placed(
                    2,
                    UNKNOWN_TOPIC_OR_PARTITION,
                    message("Unable to find partition placed:2.")
                ),
                (
                    "absent".to_string(),
                    0,
                    UNKNOWN_TOPIC_OR_PARTITION,
                    message("Unable to find a topic named absent.")
                ),
            ],
            "v{version}"
        );
    }
    // v1 echoes a false flag too.
    let request = alter_request(&[("placed", &[(0, Some(here))])])
        .with_allow_replication_factor_change(false);
    let response: AlterPartitionReassignmentsResponse = broker.call(1, &request).await;
    assert!(!response.allow_replication_factor_change);
    assert_eq!(answers(&response), vec![placed(0, NONE, None)]);

    // Nothing is ever in progress, whatever is asked.
    let all = ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000);
    let named = all.clone().with_topics(Some(vec![
        ListPartitionReassignmentsTopics::default()
            .with_name(topic_name("placed"))
            .with_partition_indexes(vec![0, 1, 9]),
        ListPartitionReassignmentsTopics::default()
            .with_name(topic_name("absent"))
            .with_partition_indexes(vec![0]),
    ]));
    for request in [all, named] {
        let response: ListPartitionReassignmentsResponse = broker.call(0, &request).await;
        assert_eq!(response.error_code, NONE);
        assert_eq!(response.error_message, None);
        assert!(response.topics.is_empty());
    }
}

#[test]
fn reassignments_have_nowhere_to_go() {
    TestBroker::builder().run(alter_scenario);
}
