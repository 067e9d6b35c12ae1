//! Metadata end to end on a real broker core (1, 2 and 4 shards): all topics,
//! named topics, topics by id, auto-creation on and off, invalid names and
//! authorized operations, decoded with kafka-protocol.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use rafka_core::config::BrokerConfig;
use rafka_net::handlers::HandlerError;
use rafka_net::Response;
use rafka_testkit::broker::{self, CLUSTER_ID, HOST, NODE_ID, PORT};
use rafka_testkit::proto::{metadata_topic, topic_name};
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};
use uuid::Uuid;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNKNOWN_TOPIC_ID: i16 = 100;
const NOT_REQUESTED: i32 = i32::MIN;

fn no_auto_create(config: &mut BrokerConfig) {
    config.auto_create_topics_enable = false;
}

fn three_partitions_by_default(config: &mut BrokerConfig) {
    config.num_partitions = 3;
}

fn names(response: &MetadataResponse) -> Vec<Option<String>> {
    response
        .topics
        .iter()
        .map(|t| t.name.as_ref().map(|n| n.as_str().to_string()))
        .collect()
}

/// Checks a served topic: `partitions` partitions, all led by this node.
fn assert_served(topic: &MetadataResponseTopic, name: &str, id: Uuid, partitions: i32) {
    assert_eq!(topic.error_code, 0, "{name}");
    assert_eq!(topic.name.as_ref().map(|n| n.as_str()), Some(name));
    assert_eq!(topic.topic_id, id);
    assert!(!topic.is_internal);
    let indexes: Vec<i32> = topic.partitions.iter().map(|p| p.partition_index).collect();
    assert_eq!(indexes, (0..partitions).collect::<Vec<_>>());
    for partition in &topic.partitions {
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.leader_id, BrokerId(NODE_ID));
        assert_eq!(partition.leader_epoch, 0);
        assert_eq!(partition.replica_nodes, vec![BrokerId(NODE_ID)]);
        assert_eq!(partition.isr_nodes, vec![BrokerId(NODE_ID)]);
        assert!(partition.offline_replicas.is_empty());
    }
}

async fn all_topics_scenario(broker: Broker) {
    let beta = broker.create_topic("beta", 1, &[]).await.topic_id;
    let alpha = broker.create_topic("alpha", 3, &[]).await.topic_id;
    let all = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = broker.call(12, &all).await;
    assert_eq!(response.brokers.len(), 1);
    let node = &response.brokers[0];
    assert_eq!(node.node_id, BrokerId(NODE_ID));
    assert_eq!(node.host.as_str(), HOST);
    assert_eq!(node.port, i32::from(PORT));
    assert_eq!(node.rack, None);
    assert_eq!(response.cluster_id.as_deref(), Some(CLUSTER_ID));
    assert_eq!(response.controller_id, BrokerId(NODE_ID));
    assert_eq!(response.cluster_authorized_operations, NOT_REQUESTED);
    // Name order, whatever the creation order.
    assert_eq!(
        names(&response),
        vec![Some("alpha".to_string()), Some("beta".to_string())]
    );
    assert_served(&response.topics[0], "alpha", alpha, 3);
    assert_served(&response.topics[1], "beta", beta, 1);
    assert_eq!(
        response.topics[0].topic_authorized_operations,
        NOT_REQUESTED
    );

    // v0: an empty list means all topics; v1+: it means none.
    let v0_all = MetadataRequest::default().with_topics(Some(Vec::new()));
    let v0: MetadataResponse = broker.call(0, &v0_all).await;
    assert_eq!(names(&v0).len(), 2);
    assert_eq!(v0.cluster_id, None);
    let v1: MetadataResponse = broker.call(1, &v0_all).await;
    assert!(v1.topics.is_empty());
    assert_eq!(v1.brokers.len(), 1);
}

#[test]
fn all_topics_one_shard() {
    TestBroker::builder().shards(1).run(all_topics_scenario);
}

#[test]
fn all_topics_two_shards() {
    TestBroker::builder().shards(2).run(all_topics_scenario);
}

#[test]
fn all_topics_four_shards() {
    TestBroker::builder().shards(4).run(all_topics_scenario);
}

async fn named_and_by_id_scenario(broker: Broker) {
    let alpha = broker.create_topic("alpha", 2, &[]).await.topic_id;
    broker.create_topic("beta", 1, &[]).await;

    // Named, with a repeat and a missing one (no auto-creation asked).
    let response = broker.metadata_of(&["beta", "missing", "beta"]).await;
    assert_eq!(
        names(&response),
        vec![Some("beta".to_string()), Some("missing".to_string())]
    );
    assert_eq!(response.topics[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(response.topics[1].topic_id, Uuid::nil());
    assert!(response.topics[1].partitions.is_empty());

    // By id (v10+): known and unknown.
    let stranger = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let by_id = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(alpha),
            MetadataRequestTopic::default()
                .with_name(None)
                .with_topic_id(stranger),
            // An id wins over a name given with it.
            MetadataRequestTopic::default()
                .with_name(Some(topic_name("beta")))
                .with_topic_id(alpha),
        ]))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = broker.call(12, &by_id).await;
    assert_eq!(response.topics.len(), 2);
    assert_served(&response.topics[0], "alpha", alpha, 2);
    assert_eq!(response.topics[1].error_code, UNKNOWN_TOPIC_ID);
    assert_eq!(response.topics[1].name, None);
    assert_eq!(response.topics[1].topic_id, stranger);
    // Nothing was created for the stranger.
    assert_eq!(broker.shard.image().topic_count(), 2);
}

#[test]
fn named_and_by_id_one_shard() {
    TestBroker::builder()
        .shards(1)
        .run(named_and_by_id_scenario);
}

#[test]
fn named_and_by_id_two_shards() {
    TestBroker::builder()
        .shards(2)
        .run(named_and_by_id_scenario);
}

#[test]
fn named_and_by_id_four_shards() {
    TestBroker::builder()
        .shards(4)
        .run(named_and_by_id_scenario);
}

async fn auto_create_scenario(broker: Broker) {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![metadata_topic("fresh")]))
        .with_allow_auto_topic_creation(true);
    let response: MetadataResponse = broker.call(9, &request).await;
    // v9 carries no topic ids.
    assert_served(&response.topics[0], "fresh", Uuid::nil(), 3);
    let id = broker.shard.image().topic("fresh").expect("created").id;
    assert_ne!(id, Uuid::nil());
    for partition in 0..3 {
        assert!(broker.has_partition_dir("fresh", partition));
        assert!(broker.is_open_on_owner("fresh", partition).await);
    }
    // Asked again: the same topic, not a second one.
    let again: MetadataResponse = broker.call(12, &request).await;
    assert_served(&again.topics[0], "fresh", id, 3);

    // Before v4 a request cannot refuse auto-creation.
    let v3 = MetadataRequest::default().with_topics(Some(vec![metadata_topic("old-client")]));
    let response: MetadataResponse = broker.call(3, &v3).await;
    assert_eq!(response.topics[0].error_code, 0);
    assert_eq!(response.topics[0].partitions.len(), 3);

    // From v4 it can.
    let refused = broker.metadata_of(&["not-wanted"]).await;
    assert_eq!(refused.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(broker.shard.image().topic("not-wanted").is_none());
}

#[test]
fn auto_create_one_shard() {
    TestBroker::builder()
        .shards(1)
        .config(three_partitions_by_default)
        .run(auto_create_scenario);
}

#[test]
fn auto_create_two_shards() {
    TestBroker::builder()
        .shards(2)
        .config(three_partitions_by_default)
        .run(auto_create_scenario);
}

#[test]
fn auto_create_four_shards() {
    TestBroker::builder()
        .shards(4)
        .config(three_partitions_by_default)
        .run(auto_create_scenario);
}

async fn auto_create_disabled_scenario(broker: Broker) {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![metadata_topic("fresh")]))
        .with_allow_auto_topic_creation(true);
    let response: MetadataResponse = broker.call(12, &request).await;
    assert_eq!(response.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert!(broker.shard.image().topic("fresh").is_none());
    assert!(!broker.has_partition_dir("fresh", 0));
    let v0 = MetadataRequest::default().with_topics(Some(vec![metadata_topic("fresh")]));
    let response: MetadataResponse = broker.call(0, &v0).await;
    assert_eq!(response.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn auto_create_disabled_one_shard() {
    TestBroker::builder()
        .shards(1)
        .config(no_auto_create)
        .run(auto_create_disabled_scenario);
}

#[test]
fn auto_create_disabled_two_shards() {
    TestBroker::builder()
        .shards(2)
        .config(no_auto_create)
        .run(auto_create_disabled_scenario);
}

#[test]
fn auto_create_disabled_four_shards() {
    TestBroker::builder()
        .shards(4)
        .config(no_auto_create)
        .run(auto_create_disabled_scenario);
}

async fn invalid_names_scenario(broker: Broker) {
    let long = "x".repeat(250);
    for name in ["bad name", "..", "", "ünï", long.as_str()] {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![metadata_topic(name)]))
            .with_allow_auto_topic_creation(true);
        let response: MetadataResponse = broker.call(12, &request).await;
        assert_eq!(
            response.topics[0].error_code, INVALID_TOPIC_EXCEPTION,
            "{name:?}"
        );
        assert!(response.topics[0].partitions.is_empty());
    }
    assert_eq!(broker.shard.image().topic_count(), 0);
}

#[test]
fn invalid_names_with_auto_create() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, invalid_names_scenario);
}

#[test]
fn invalid_names_without_auto_create() {
    TestBroker::builder()
        .config(no_auto_create)
        .run_matrix(&SHARD_MATRIX, invalid_names_scenario);
}

#[test]
fn authorized_operations_when_asked() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic("alpha", 1, &[]).await;
        let request = MetadataRequest::default()
            .with_topics(None)
            .with_include_cluster_authorized_operations(true)
            .with_include_topic_authorized_operations(true);
        let v10: MetadataResponse = broker.call(10, &request).await;
        // READ..ALTER_CONFIGS on topics; CREATE..IDEMPOTENT_WRITE on the
        // cluster: what Kafka reports without an authorizer.
        assert_eq!(v10.cluster_authorized_operations, 8096);
        assert_eq!(v10.topics[0].topic_authorized_operations, 3576);
        // v11+ dropped the cluster field; topics keep theirs.
        let v11_request = request.with_include_cluster_authorized_operations(false);
        let v11: MetadataResponse = broker.call(11, &v11_request).await;
        assert_eq!(v11.cluster_authorized_operations, NOT_REQUESTED);
        assert_eq!(v11.topics[0].topic_authorized_operations, 3576);
    });
}

#[test]
fn undecodable_body_closes_the_connection() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        let whole = broker::request(12, &MetadataRequest::default().with_topics(None));
        let mut truncated = whole.clone();
        truncated.body = whole.body.slice(..whole.body.len() - 2);
        match broker.serve(truncated).await {
            Response::Close(HandlerError::Decode(_)) => {}
            other => panic!("expected a close on a decode error, got {other:?}"),
        }
        // The broker still answers the intact request.
        assert!(matches!(broker.serve(whole).await, Response::Reply(_)));
    });
}
