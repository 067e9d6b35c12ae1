//! ListOffsets end to end without sockets: batches produced through the
//! Produce handler, offsets asked through the ListOffsets handler on a real
//! shard core (1, 2 and 4 shards), answers checked field by field.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_net::handlers::list_offsets::{
    EARLIEST_LOCAL_TIMESTAMP, EARLIEST_TIMESTAMP, LATEST_TIERED_TIMESTAMP, LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
};
use rafka_testkit::proto::{produce_answers, produce_request};
use rafka_testkit::records::batch;
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

const NEWEST: i16 = 10;
/// One partition's answer: (error code, timestamp, offset, leader epoch).
type Answer = (i16, i64, i64, i32);
const NOT_FOUND: Answer = (0, -1, -1, -1);

/// (topic, [(partition, timestamp, current leader epoch)]).
type Asked<'a> = Vec<(&'a str, Vec<(i32, i64, i32)>)>;

fn list_request(topics: Asked<'_>) -> ListOffsetsRequest {
    let topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, timestamp, epoch)| {
                    ListOffsetsPartition::default()
                        .with_partition_index(index)
                        .with_timestamp(timestamp)
                        .with_current_leader_epoch(epoch)
                })
                .collect();
            ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(topics)
}

/// Every partition answer, flattened.
fn answers(response: &ListOffsetsResponse) -> Vec<Answer> {
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.error_code, p.timestamp, p.offset, p.leader_epoch))
        .collect()
}

/// Asks for `timestamp` on partitions 0 and 1 of `topic`.
async fn both(
    broker: &Broker,
    on: usize,
    version: i16,
    topic: &str,
    timestamp: i64,
) -> Vec<Answer> {
    let request = list_request(vec![(topic, vec![(0, timestamp, -1), (1, timestamp, -1)])]);
    let response = broker.call_on(on, version, &request).await;
    assert_eq!(response.throttle_time_ms, 0);
    answers(&response)
}

#[test]
fn special_and_plain_timestamps_on_one_and_two_shards() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("events", 2, &[]).await;
        // Partition 1 holds offsets 0..4 at 1000, 2000, 2500, 3000;
        // partition 0 stays empty.
        assert_eq!(
            broker
                .produce_one("events", 1, batch(&[("a", 1_000)]))
                .await,
            0
        );
        let two = batch(&[("b", 2_000), ("c", 2_500)]);
        assert_eq!(broker.produce_one("events", 1, two).await, 1);
        assert_eq!(
            broker
                .produce_one("events", 1, batch(&[("d", 3_000)]))
                .await,
            3
        );
        let last = broker.serving_shard();
        let cases: Vec<(i64, [Answer; 2])> = vec![
            (EARLIEST_TIMESTAMP, [(0, -1, 0, 0), (0, -1, 0, 0)]),
            (EARLIEST_LOCAL_TIMESTAMP, [(0, -1, 0, 0), (0, -1, 0, 0)]),
            (LATEST_TIMESTAMP, [(0, -1, 0, 0), (0, -1, 4, 0)]),
            (MAX_TIMESTAMP, [NOT_FOUND, (0, 3_000, 3, 0)]),
            (LATEST_TIERED_TIMESTAMP, [NOT_FOUND, NOT_FOUND]),
            (0, [NOT_FOUND, (0, 1_000, 0, 0)]),
            (1_500, [NOT_FOUND, (0, 2_000, 1, 0)]),
            (2_400, [NOT_FOUND, (0, 2_500, 2, 0)]),
            (2_500, [NOT_FOUND, (0, 2_500, 2, 0)]),
            (3_000, [NOT_FOUND, (0, 3_000, 3, 0)]),
            (3_001, [NOT_FOUND, NOT_FOUND]),
        ];
        for (timestamp, expected) in cases {
            for on in [0, last] {
                let got = both(&broker, on, NEWEST, "events", timestamp).await;
                assert_eq!(
                    got,
                    expected.to_vec(),
                    "timestamp {timestamp} on shard {on}"
                );
            }
        }
        // v1 has no leader epoch: it decodes as the default -1.
        let got = both(&broker, last, 1, "events", LATEST_TIMESTAMP).await;
        assert_eq!(got, vec![(0, -1, 0, -1), (0, -1, 4, -1)]);
    });
}

/// With the shard's flush held back for a minute, acks=1 data sits above
/// the high watermark: no answer may point a consumer at it.
#[test]
fn only_offsets_below_the_high_watermark_are_answered() {
    fn slow_flush(config: &mut rafka_core::config::BrokerConfig) {
        config.flush_interval_ms = 60_000;
    }
    TestBroker::builder()
        .config(slow_flush)
        .run_matrix(&SHARD_MATRIX, |broker| async move {
            broker.create_topic_id("pending", 2, &[]).await;
            let mut produce = produce_request(
                1,
                vec![("pending", vec![(1, Some(batch(&[("a", 5_000)])))])],
            );
            produce.timeout_ms = 1;
            let response = broker.call_on(0, 9, &produce).await;
            assert_eq!(produce_answers(&response)[0].1.error_code, 0);
            for (timestamp, expected) in [
                (LATEST_TIMESTAMP, (0, -1, 0, 0)),
                (EARLIEST_TIMESTAMP, (0, -1, 0, 0)),
                (MAX_TIMESTAMP, NOT_FOUND),
                (4_000, NOT_FOUND),
            ] {
                let got = both(&broker, 0, NEWEST, "pending", timestamp).await;
                assert_eq!(got[1], expected, "timestamp {timestamp}");
            }
        });
}

#[test]
fn unknown_partitions_duplicates_and_leader_epochs() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("known", 2, &[]).await;
        assert_eq!(broker.produce_one("known", 0, batch(&[("a", 1)])).await, 0);
        let request = list_request(vec![
            ("unknown", vec![(0, LATEST_TIMESTAMP, -1)]),
            (
                "known",
                vec![
                    (2, LATEST_TIMESTAMP, -1),
                    (1, LATEST_TIMESTAMP, 1),
                    (1, EARLIEST_TIMESTAMP, -1),
                ],
            ),
            ("known", vec![(0, LATEST_TIMESTAMP, 0)]),
        ]);
        let response = broker.call(NEWEST, &request).await;
        let names: Vec<&str> = response.topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["unknown", "known", "known"]);
        let indexes: Vec<i32> = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
            .collect();
        assert_eq!(indexes, vec![0, 2, 1, 1, 0]);
        let expected = vec![
            (UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1),
            (INVALID_REQUEST, -1, -1, -1),
            (INVALID_REQUEST, -1, -1, -1),
            (0, -1, 1, 0),
        ];
        assert_eq!(answers(&response), expected);
        let epochs = list_request(vec![(
            "known",
            vec![(0, LATEST_TIMESTAMP, 1), (1, LATEST_TIMESTAMP, -2)],
        )]);
        let response = broker.call_on(0, NEWEST, &epochs).await;
        let expected = vec![
            (UNKNOWN_LEADER_EPOCH, -1, -1, -1),
            (FENCED_LEADER_EPOCH, -1, -1, -1),
        ];
        assert_eq!(answers(&response), expected);
    });
}

#[test]
fn every_version_answers() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("versions", 2, &[]).await;
        assert_eq!(
            broker.produce_one("versions", 0, batch(&[("a", 10)])).await,
            0
        );
        for version in 1..=NEWEST {
            let epoch = if version >= 4 { 0 } else { -1 };
            let got = both(&broker, 0, version, "versions", 10).await;
            assert_eq!(got, vec![(0, 10, 0, epoch), NOT_FOUND], "v{version}");
        }
    });
}
