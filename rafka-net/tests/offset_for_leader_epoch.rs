//! OffsetForLeaderEpoch end to end on a real broker core (1, 2 and 4
//! shards), at its lowest (v2) and highest (v4, flexible) versions: the
//! end of epoch 0 is the log end, other epochs are undefined, current
//! leader epochs are checked.

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};
use rafka_testkit::proto::topic_name;
use rafka_testkit::records::value_batch;
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// (partition, current leader epoch, leader epoch).
type Asked = (i32, i32, i32);

/// (topic, partitions asked).
fn request(topics: &[(&str, &[Asked])]) -> OffsetForLeaderEpochRequest {
    let topics = topics
        .iter()
        .map(|&(name, partitions)| {
            let partitions = partitions
                .iter()
                .map(|&(partition, current, epoch)| {
                    OffsetForLeaderPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(current)
                        .with_leader_epoch(epoch)
                })
                .collect();
            OffsetForLeaderTopic::default()
                .with_topic(topic_name(name))
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochRequest::default()
        .with_replica_id((-1).into())
        .with_topics(topics)
}

/// (topic, partition, error code, leader epoch, end offset) of every
/// answer, in order.
fn answers(response: &OffsetForLeaderEpochResponse) -> Vec<(String, i32, i16, i32, i64)> {
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let name = t.topic.to_string();
                (
                    name,
                    p.partition,
                    p.error_code,
                    p.leader_epoch,
                    p.end_offset,
                )
            })
        })
        .collect()
}

async fn epochs_scenario(broker: Broker) {
    let topic = "epochs";
    broker.create_topic_id(topic, 3, &[]).await;
    for i in 0..5 {
        broker
            .produce(topic, 0, value_batch(&format!("r{i}")))
            .await;
    }
    broker.produce(topic, 2, value_batch("s")).await;
    for version in [2, 4] {
        let asked = request(&[
            (
                topic,
                &[
                    (0, -1, 0),
                    (1, 0, 0),
                    (2, -1, 0),
                    (0, -1, 1),
                    (0, 0, -1),
                    (0, 1, 0),
                    (0, -2, 0),
                    (3, -1, 0),
                ],
            ),
            ("absent", &[(0, -1, 0)]),
        ]);
        let response: OffsetForLeaderEpochResponse = broker.call(version, &asked).await;
        assert_eq!(response.throttle_time_ms, 0);
        let t = || topic.to_string();
        assert_eq!(
            answers(&response),
            vec![
                (t(), 0, NONE, 0, 5),
                (t(), 1, NONE, 0, 0),
                (t(), 2, NONE, 0, 1),
                // An epoch this broker never had, and the undefined one.
                (t(), 0, NONE, -1, -1),
                (t(), 0, NONE, -1, -1),
                (t(), 0, UNKNOWN_LEADER_EPOCH, -1, -1),
                (t(), 0, FENCED_LEADER_EPOCH, -1, -1),
                (t(), 3, UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
                ("absent".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION, -1, -1),
            ],
            "v{version}"
        );
    }
    // A follower (replica_id 3, v3+) gets the same answer as a consumer.
    let follower = request(&[(topic, &[(0, 0, 0)])]).with_replica_id(3.into());
    let response: OffsetForLeaderEpochResponse = broker.call(4, &follower).await;
    assert_eq!(answers(&response), vec![(topic.to_string(), 0, NONE, 0, 5)]);
    // An epoch older than any: it ends where epoch 0 starts, at the log
    // start offset.
    let trim = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(2)])])
        .with_timeout_ms(30_000);
    let trimmed: DeleteRecordsResponse = broker.call(2, &trim).await;
    assert_eq!(trimmed.topics[0].partitions[0].error_code, NONE);
    let response: OffsetForLeaderEpochResponse = broker
        .call(4, &request(&[(topic, &[(0, -1, -3), (0, -1, 0)])]))
        .await;
    assert_eq!(
        answers(&response),
        vec![
            (topic.to_string(), 0, NONE, -3, 2),
            (topic.to_string(), 0, NONE, 0, 5)
        ]
    );
}

#[test]
fn offset_for_leader_epoch_answers_epoch_zero() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, epochs_scenario);
}
