//! CreateTopics, DeleteTopics, FindCoordinator, DescribeCluster and
//! InitProducerId end to end on a real broker core (1, 2 and 4 shards),
//! decoded with kafka-protocol.

use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};
use rafka_core::config::BrokerConfig;
use rafka_testkit::broker::{CLUSTER_ID, HOST, NODE_ID, PORT};
use rafka_testkit::proto::{creatable, str_bytes, topic_name};
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};
use uuid::Uuid;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const TOPIC_DELETION_DISABLED: i16 = 73;
const UNKNOWN_TOPIC_ID: i16 = 100;
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
/// Kafka's DescribeConfigs sources.
const TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

fn no_deletion(config: &mut BrokerConfig) {
    config.delete_topic_enable = false;
}

async fn create(
    broker: &Broker,
    version: i16,
    request: &CreateTopicsRequest,
) -> CreateTopicsResponse {
    broker.call(version, request).await
}

fn result_names(response: &CreateTopicsResponse) -> Vec<&str> {
    response.topics.iter().map(|t| t.name.as_str()).collect()
}

async fn create_then_metadata_scenario(broker: Broker) {
    let result = broker
        .create_topic("orders", 4, &[("retention.ms", "1000")])
        .await;
    assert_eq!(result.error_code, 0);
    assert_eq!(result.error_message, None);
    assert_eq!(result.num_partitions, 4);
    assert_eq!(result.replication_factor, 1);
    assert_ne!(result.topic_id, Uuid::nil());
    let configs = result.configs.expect("configs (v5+)");
    let config = |name: &str| {
        configs
            .iter()
            .find(|c| c.name.as_str() == name)
            .map(|c| (c.value.as_deref().map(str::to_string), c.config_source))
    };
    assert_eq!(
        config("retention.ms"),
        Some((Some("1000".to_string()), TOPIC_CONFIG))
    );
    assert_eq!(
        config("segment.bytes"),
        Some((Some("1073741824".to_string()), DEFAULT_CONFIG))
    );
    assert_eq!(
        config("cleanup.policy"),
        Some((Some("delete".to_string()), DEFAULT_CONFIG))
    );

    let metadata = broker.metadata_of(&["orders"]).await;
    let topic = &metadata.topics[0];
    assert_eq!(topic.error_code, 0);
    assert_eq!(topic.topic_id, result.topic_id);
    assert_eq!(topic.partitions.len(), 4);
    for (index, partition) in topic.partitions.iter().enumerate() {
        let index = index as i32;
        assert_eq!(partition.partition_index, index);
        assert_eq!(partition.leader_id, BrokerId(NODE_ID));
        assert!(broker.is_open_on_owner("orders", index).await);
        assert!(broker.has_partition_dir("orders", index));
    }
    // Least-loaded placement spreads the partitions over every shard.
    let owners: std::collections::BTreeSet<usize> = (0..4)
        .map(|i| broker.shard.owner_of("orders", i).expect("owner"))
        .collect();
    assert_eq!(owners.len(), broker.shard.count());
}

#[test]
fn create_then_metadata_one_shard() {
    TestBroker::builder()
        .shards(1)
        .run(create_then_metadata_scenario);
}

#[test]
fn create_then_metadata_two_shards() {
    TestBroker::builder()
        .shards(2)
        .run(create_then_metadata_scenario);
}

#[test]
fn create_then_metadata_four_shards() {
    TestBroker::builder()
        .shards(4)
        .run(create_then_metadata_scenario);
}

async fn create_refusals_scenario(broker: Broker) {
    broker.create_topic("taken", 1, &[]).await;
    let again = broker.create_topic("taken", 1, &[]).await;
    assert_eq!(again.error_code, TOPIC_ALREADY_EXISTS);
    assert!(again.error_message.expect("message").contains("taken"));
    assert_eq!(again.topic_id, Uuid::nil());
    assert_eq!(again.num_partitions, -1);

    // A name twice in one request: answered once, last, and not created;
    // the other topic of the request is.
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            creatable("twice", 1, &[]),
            creatable("once", 2, &[]),
            creatable("twice", 1, &[]),
        ])
        .with_timeout_ms(30_000);
    let response = create(&broker, 7, &request).await;
    assert_eq!(result_names(&response), vec!["once", "twice"]);
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[1].error_code, INVALID_REQUEST);
    assert_eq!(
        response.topics[1].error_message.as_deref(),
        Some("Duplicate topic name.")
    );
    assert!(broker.shard.image().topic("twice").is_none());
    assert_eq!(
        broker
            .shard
            .image()
            .topic("once")
            .map(|t| t.partition_count()),
        Some(2)
    );

    let bad_config = broker
        .create_topic("bad-config", 1, &[("retention.ms", "soon")])
        .await;
    assert_eq!(bad_config.error_code, INVALID_CONFIG);
    assert!(bad_config
        .error_message
        .expect("message")
        .contains("retention.ms"));
    let unknown_key = broker
        .create_topic("unknown-key", 1, &[("no.such.key", "1")])
        .await;
    assert_eq!(unknown_key.error_code, INVALID_CONFIG);
    let zero = broker.create_topic("zero", 0, &[]).await;
    assert_eq!(zero.error_code, INVALID_PARTITIONS);
    let bad_name = broker.create_topic("bad name", 1, &[]).await;
    assert_eq!(bad_name.error_code, 17);

    let mut replicated = creatable("replicated", 1, &[]);
    replicated.replication_factor = 3;
    let request = CreateTopicsRequest::default().with_topics(vec![replicated]);
    let response = create(&broker, 7, &request).await;
    assert_eq!(response.topics[0].error_code, INVALID_REPLICATION_FACTOR);

    let mut null_value = creatable("null-value", 1, &[("retention.ms", "1")]);
    null_value.configs[0].value = None;
    let request = CreateTopicsRequest::default().with_topics(vec![null_value]);
    let response = create(&broker, 7, &request).await;
    assert_eq!(response.topics[0].error_code, INVALID_CONFIG);
    assert_eq!(
        response.topics[0].error_message.as_deref(),
        Some("Null value not supported for topic configs: retention.ms")
    );
    for refused in [
        "bad-config",
        "unknown-key",
        "zero",
        "bad name",
        "replicated",
        "null-value",
    ] {
        assert!(broker.shard.image().topic(refused).is_none(), "{refused}");
    }
}

#[test]
fn create_refusals_one_shard() {
    TestBroker::builder()
        .shards(1)
        .run(create_refusals_scenario);
}

#[test]
fn create_refusals_two_shards() {
    TestBroker::builder()
        .shards(2)
        .run(create_refusals_scenario);
}

#[test]
fn create_refusals_four_shards() {
    TestBroker::builder()
        .shards(4)
        .run(create_refusals_scenario);
}

fn assignment(partition: i32, brokers: &[i32]) -> CreatableReplicaAssignment {
    CreatableReplicaAssignment::default()
        .with_partition_index(partition)
        .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
}

fn assigned(name: &str, assignments: Vec<CreatableReplicaAssignment>) -> CreatableTopic {
    creatable(name, -1, &[]).with_assignments(assignments)
}

#[test]
fn manual_assignments() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        let request = CreateTopicsRequest::default().with_topics(vec![
            assigned(
                "manual",
                vec![assignment(1, &[NODE_ID]), assignment(0, &[NODE_ID])],
            ),
            assigned("elsewhere", vec![assignment(0, &[NODE_ID + 1])]),
            assigned(
                "gap",
                vec![assignment(0, &[NODE_ID]), assignment(2, &[NODE_ID])],
            ),
            assigned("twice-on-me", vec![assignment(0, &[NODE_ID, NODE_ID])]),
            assigned("empty", vec![assignment(0, &[])]),
            assigned("both", vec![assignment(0, &[NODE_ID])]).with_num_partitions(1),
        ]);
        let response = create(&broker, 7, &request).await;
        let codes: Vec<(&str, i16)> = response
            .topics
            .iter()
            .map(|t| (t.name.as_str(), t.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("manual", 0),
                ("elsewhere", INVALID_REPLICA_ASSIGNMENT),
                ("gap", INVALID_REPLICA_ASSIGNMENT),
                ("twice-on-me", INVALID_REPLICA_ASSIGNMENT),
                ("empty", INVALID_REPLICA_ASSIGNMENT),
                ("both", INVALID_REQUEST),
            ]
        );
        assert_eq!(response.topics[0].num_partitions, 2);
        assert_eq!(broker.shard.image().topic_count(), 1);
    });
}

async fn validate_only_scenario(broker: Broker) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable("dry", 5, &[("cleanup.policy", "compact")])])
        .with_validate_only(true);
    let response = create(&broker, 7, &request).await;
    let result = &response.topics[0];
    assert_eq!(result.error_code, 0);
    assert_eq!(result.topic_id, Uuid::nil());
    assert_eq!(result.num_partitions, 5);
    let configs = result.configs.as_ref().expect("configs");
    let policy = configs
        .iter()
        .find(|c| c.name.as_str() == "cleanup.policy")
        .expect("cleanup.policy");
    assert_eq!(policy.value.as_deref(), Some("compact"));
    assert_eq!(policy.config_source, TOPIC_CONFIG);
    // Nothing exists afterwards.
    let metadata = broker.metadata_of(&["dry"]).await;
    assert_eq!(metadata.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(!broker.has_partition_dir("dry", 0));
    // v4 results stop at the error message.
    let v4 = create(&broker, 4, &request).await;
    assert_eq!(v4.topics[0].error_code, 0);
    assert_eq!(v4.topics[0].num_partitions, -1);
    assert_eq!(broker.shard.image().topic_count(), 0);
}

#[test]
fn validate_only_one_shard() {
    TestBroker::builder().shards(1).run(validate_only_scenario);
}

#[test]
fn validate_only_two_shards() {
    TestBroker::builder().shards(2).run(validate_only_scenario);
}

#[test]
fn validate_only_four_shards() {
    TestBroker::builder().shards(4).run(validate_only_scenario);
}

fn delete_by_names(names: &[&str]) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default()
        .with_topic_names(names.iter().map(|n| topic_name(n)).collect())
        .with_timeout_ms(30_000)
}

fn delete_by_states(states: Vec<(Option<&str>, Uuid)>) -> DeleteTopicsRequest {
    let topics = states
        .into_iter()
        .map(|(name, id)| {
            DeleteTopicState::default()
                .with_name(name.map(topic_name))
                .with_topic_id(id)
        })
        .collect();
    DeleteTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(30_000)
}

async fn delete_scenario(broker: Broker) {
    let by_name = broker.create_topic("by-name", 3, &[]).await.topic_id;
    let by_id = broker.create_topic("by-id", 2, &[]).await.topic_id;
    assert!(broker.has_partition_dir("by-name", 2));
    assert!(broker.has_partition_dir("by-id", 1));

    let response: DeleteTopicsResponse = broker
        .call(5, &delete_by_names(&["by-name", "ghost"]))
        .await;
    let results: Vec<(Option<&str>, i16)> = response
        .responses
        .iter()
        .map(|r| (r.name.as_deref().map(|n| n.as_str()), r.error_code))
        .collect();
    assert_eq!(
        results,
        vec![
            (Some("by-name"), 0),
            (Some("ghost"), UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    assert_eq!(response.responses[0].error_message, None);
    for partition in 0..3 {
        assert!(!broker.has_partition_dir("by-name", partition));
    }
    let metadata = broker.metadata_of(&["by-name"]).await;
    assert_eq!(metadata.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    let stranger = Uuid::from_u128(7);
    let request = delete_by_states(vec![(None, by_id), (None, stranger), (None, Uuid::nil())]);
    let response: DeleteTopicsResponse = broker.call(6, &request).await;
    let first = &response.responses[0];
    assert_eq!(first.name.as_deref().map(|n| n.as_str()), Some("by-id"));
    assert_eq!((first.topic_id, first.error_code), (by_id, 0));
    let second = &response.responses[1];
    assert_eq!((second.name.clone(), second.topic_id), (None, stranger));
    assert_eq!(second.error_code, UNKNOWN_TOPIC_ID);
    assert_eq!(response.responses[2].error_code, INVALID_REQUEST);
    assert!(!broker.has_partition_dir("by-id", 0));
    assert!(!broker.has_partition_dir("by-id", 1));
    assert_eq!(broker.shard.image().topic_count(), 0);
    // The name-deleted topic's id is unknown now too.
    let response: DeleteTopicsResponse = broker
        .call(6, &delete_by_states(vec![(None, by_name)]))
        .await;
    assert_eq!(response.responses[0].error_code, UNKNOWN_TOPIC_ID);
}

#[test]
fn delete_one_shard() {
    TestBroker::builder().shards(1).run(delete_scenario);
}

#[test]
fn delete_two_shards() {
    TestBroker::builder().shards(2).run(delete_scenario);
}

#[test]
fn delete_four_shards() {
    TestBroker::builder().shards(4).run(delete_scenario);
}

#[test]
fn delete_refusals() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        let id = broker.create_topic("kept", 1, &[]).await.topic_id;
        let request = delete_by_states(vec![
            (Some("kept"), Uuid::nil()),
            (None, id),
            (Some("kept"), Uuid::nil()),
            (Some("kept"), id),
        ]);
        let response: DeleteTopicsResponse = broker.call(6, &request).await;
        let results: Vec<(Option<String>, Uuid, i16)> = response
            .responses
            .iter()
            .map(|r| {
                (
                    r.name.as_ref().map(|n| n.as_str().to_string()),
                    r.topic_id,
                    r.error_code,
                )
            })
            .collect();
        // The id entry is the only one deleting; the twice-named one and
        // the name+id one are refused.
        assert_eq!(
            results,
            vec![
                (Some("kept".to_string()), id, 0),
                (Some("kept".to_string()), id, INVALID_REQUEST),
                (Some("kept".to_string()), Uuid::nil(), INVALID_REQUEST),
            ]
        );
        assert_eq!(
            response.responses[2].error_message.as_deref(),
            Some("Duplicate topic name.")
        );
    });
}

#[test]
fn delete_disabled() {
    TestBroker::builder()
        .config(no_deletion)
        .run_matrix(&SHARD_MATRIX, |broker| async move {
            broker.create_topic("kept", 1, &[]).await;
            let response: DeleteTopicsResponse = broker.call(4, &delete_by_names(&["kept"])).await;
            assert_eq!(response.responses[0].error_code, TOPIC_DELETION_DISABLED);
            assert!(broker.has_partition_dir("kept", 0));
            assert!(broker.shard.image().topic("kept").is_some());
        });
}

async fn find_coordinator_scenario(broker: Broker) {
    for version in [0, 1, 3] {
        let request = FindCoordinatorRequest::default().with_key(str_bytes("group-1"));
        let response: FindCoordinatorResponse = broker.call(version, &request).await;
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.node_id, BrokerId(NODE_ID));
        assert_eq!(response.host.as_str(), HOST);
        assert_eq!(response.port, i32::from(PORT));
        assert!(response.coordinators.is_empty());
    }
    let transaction = FindCoordinatorRequest::default()
        .with_key(str_bytes("tx-1"))
        .with_key_type(1);
    let response: FindCoordinatorResponse = broker.call(3, &transaction).await;
    assert_eq!(
        (response.error_code, response.node_id),
        (0, BrokerId(NODE_ID))
    );

    let batched = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![str_bytes("g1"), str_bytes("g2")]);
    let response: FindCoordinatorResponse = broker.call(4, &batched).await;
    let keys: Vec<(&str, BrokerId, &str, i32, i16)> = response
        .coordinators
        .iter()
        .map(|c| {
            (
                c.key.as_str(),
                c.node_id,
                c.host.as_str(),
                c.port,
                c.error_code,
            )
        })
        .collect();
    let port = i32::from(PORT);
    assert_eq!(
        keys,
        vec![
            ("g1", BrokerId(NODE_ID), HOST, port, 0),
            ("g2", BrokerId(NODE_ID), HOST, port, 0),
        ]
    );
    let share = batched.with_key_type(2);
    let response: FindCoordinatorResponse = broker.call(6, &share).await;
    assert_eq!(response.coordinators.len(), 2);
    assert_eq!(response.coordinators[0].error_code, INVALID_REQUEST);
    assert_eq!(response.coordinators[0].node_id, BrokerId(-1));
}

#[test]
fn find_coordinator_one_shard() {
    TestBroker::builder()
        .shards(1)
        .run(find_coordinator_scenario);
}

#[test]
fn find_coordinator_two_shards() {
    TestBroker::builder()
        .shards(2)
        .run(find_coordinator_scenario);
}

#[test]
fn find_coordinator_four_shards() {
    TestBroker::builder()
        .shards(4)
        .run(find_coordinator_scenario);
}

#[test]
fn describe_cluster() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        for version in [0, 1, 2] {
            let request = DescribeClusterRequest::default();
            let response: DescribeClusterResponse = broker.call(version, &request).await;
            assert_eq!(response.error_code, 0);
            assert_eq!(response.cluster_id.as_str(), CLUSTER_ID);
            assert_eq!(response.controller_id, BrokerId(NODE_ID));
            assert_eq!(response.endpoint_type, 1);
            assert_eq!(response.cluster_authorized_operations, i32::MIN);
            assert_eq!(response.brokers.len(), 1);
            let node = &response.brokers[0];
            assert_eq!(node.broker_id, BrokerId(NODE_ID));
            assert_eq!((node.host.as_str(), node.port), (HOST, i32::from(PORT)));
            assert!(!node.is_fenced);
            assert_eq!(node.rack, None);
        }
        let with_operations =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let response: DescribeClusterResponse = broker.call(1, &with_operations).await;
        assert_eq!(response.cluster_authorized_operations, 8096);
        let controllers = DescribeClusterRequest::default().with_endpoint_type(2);
        let response: DescribeClusterResponse = broker.call(1, &controllers).await;
        assert_eq!(response.error_code, MISMATCHED_ENDPOINT_TYPE);
        assert!(response.brokers.is_empty());
    });
}

/// `broker.rack` reaches clients in Metadata (v1+) and DescribeCluster.
#[test]
fn rack_is_reported() {
    let racked = |c: &mut BrokerConfig| c.rack = Some("eu-west-1a".to_string());
    TestBroker::builder()
        .config(racked)
        .run(|broker| async move {
            let response: DescribeClusterResponse =
                broker.call(0, &DescribeClusterRequest::default()).await;
            let rack = response.brokers[0].rack.as_ref().map(|r| r.to_string());
            assert_eq!(rack.as_deref(), Some("eu-west-1a"));
            let metadata = broker.metadata_of(&[]).await;
            let rack = metadata.brokers[0].rack.as_ref().map(|r| r.to_string());
            assert_eq!(rack.as_deref(), Some("eu-west-1a"));
        });
}

async fn init_producer_id_scenario(broker: Broker) {
    let idempotent = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(-1);
    let mut ids = Vec::new();
    for version in [0, 2, 4, 5] {
        let response: InitProducerIdResponse = broker.call(version, &idempotent).await;
        assert_eq!(response.error_code, 0);
        assert_eq!(response.producer_epoch, 0);
        ids.push(response.producer_id.0);
    }
    // KIP-360 bump of an idempotent producer: a fresh id, epoch 0.
    let bump = idempotent
        .clone()
        .with_producer_id(ProducerId(ids[3]))
        .with_producer_epoch(0);
    let response: InitProducerIdResponse = broker.call(4, &bump).await;
    assert_eq!(response.producer_epoch, 0);
    ids.push(response.producer_id.0);
    assert!(ids[0] >= 0);
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "{ids:?}");

    let transactional = idempotent
        .clone()
        .with_transactional_id(Some(str_bytes("tx-1").into()))
        .with_transaction_timeout_ms(60_000);
    let response: InitProducerIdResponse = broker.call(4, &transactional).await;
    assert_eq!(response.error_code, COORDINATOR_NOT_AVAILABLE);
    assert_eq!(
        (response.producer_id, response.producer_epoch),
        (ProducerId(-1), -1)
    );
    let empty = idempotent.with_transactional_id(Some(str_bytes("").into()));
    let response: InitProducerIdResponse = broker.call(1, &empty).await;
    assert_eq!(response.error_code, INVALID_REQUEST);
}

#[test]
fn init_producer_id_one_shard() {
    TestBroker::builder()
        .shards(1)
        .run(init_producer_id_scenario);
}

#[test]
fn init_producer_id_two_shards() {
    TestBroker::builder()
        .shards(2)
        .run(init_producer_id_scenario);
}

#[test]
fn init_producer_id_four_shards() {
    TestBroker::builder()
        .shards(4)
        .run(init_producer_id_scenario);
}

/// A topic a shard cannot open (here a stray file sits where partition
/// 3's directory goes) is refused with KAFKA_STORAGE_ERROR and nothing of
/// it stays: no metadata, no directories, and the name can be created
/// once the obstacle is gone.
async fn create_that_cannot_be_served_scenario(broker: Broker) {
    const KAFKA_STORAGE_ERROR: i16 = 56;
    let blocked = broker.partition_dir("blocked", 3);
    std::fs::write(&blocked, b"not a directory").unwrap();

    let result = broker.create_topic("blocked", 6, &[]).await;
    assert_eq!(result.error_code, KAFKA_STORAGE_ERROR, "{result:?}");
    let message = result.error_message.expect("a message").to_string();
    assert!(message.contains("blocked-3"), "{message}");
    let metadata = broker.metadata_of(&["blocked"]).await;
    assert_eq!(metadata.topics.len(), 1);
    assert_eq!(metadata.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    for index in [0, 1, 2, 4, 5] {
        assert!(
            !broker.has_partition_dir("blocked", index),
            "partition {index} left behind"
        );
        assert!(!broker.is_open_on_owner("blocked", index).await);
    }

    std::fs::remove_file(&blocked).unwrap();
    broker.create_topic_id("blocked", 6, &[]).await;
    let offset = broker
        .produce_one("blocked", 5, rafka_testkit::records::value_batch("v"))
        .await;
    assert_eq!(offset, 0);
}

#[test]
fn create_that_cannot_be_served_is_refused_whole() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, create_that_cannot_be_served_scenario);
}
