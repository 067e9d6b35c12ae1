//! DeleteRecords end to end on a real broker core (1, 2 and 4 shards), at
//! its lowest (v0) and highest (v2, flexible) versions, with ListOffsets
//! and Fetch following the new low watermark.

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse,
};
use rafka_testkit::proto::{long_poll_fetch, topic_name};
use rafka_testkit::records::value_batch;
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUEST: i16 = 42;
const EARLIEST: i64 = -2;

fn request(topic: &str, partitions: &[(i32, i64)]) -> DeleteRecordsRequest {
    let partitions = partitions
        .iter()
        .map(|&(index, offset)| {
            DeleteRecordsPartition::default()
                .with_partition_index(index)
                .with_offset(offset)
        })
        .collect();
    DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions)])
        .with_timeout_ms(30_000)
}

/// (partition, low watermark, error code) of every answer, in order.
fn answers(response: &DeleteRecordsResponse) -> Vec<(i32, i64, i16)> {
    response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.low_watermark, p.error_code))
        .collect()
}

async fn earliest(broker: &Broker, topic: &str, partition: i32) -> i64 {
    let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(vec![ListOffsetsPartition::default()
            .with_partition_index(partition)
            .with_timestamp(EARLIEST)])]);
    let response: ListOffsetsResponse = broker.call(7, &request).await;
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.error_code, NONE);
    answer.offset
}

/// The error code a Fetch from offset 0 of the partition gets.
async fn fetch_from_zero(broker: &Broker, topic: &str, partition: i32) -> i16 {
    let response: FetchResponse = broker
        .call(12, &long_poll_fetch(topic, &[partition], 0, 0))
        .await;
    response.responses[0].partitions[0].error_code
}

async fn delete_scenario(broker: Broker) {
    for version in [0, 2] {
        let topic = format!("trimmed-v{version}");
        broker.create_topic_id(&topic, 2, &[]).await;
        for i in 0..10 {
            broker
                .produce(&topic, 0, value_batch(&format!("r{i}")))
                .await;
        }
        for i in 0..3 {
            broker
                .produce(&topic, 1, value_batch(&format!("s{i}")))
                .await;
        }
        let response: DeleteRecordsResponse = broker
            .call(version, &request(&topic, &[(0, 4), (1, -1)]))
            .await;
        assert_eq!(response.throttle_time_ms, 0);
        assert_eq!(answers(&response), vec![(0, 4, NONE), (1, 3, NONE)]);
        assert_eq!(earliest(&broker, &topic, 0).await, 4);
        assert_eq!(earliest(&broker, &topic, 1).await, 3);
        assert_eq!(
            fetch_from_zero(&broker, &topic, 0).await,
            OFFSET_OUT_OF_RANGE
        );
        // Lower than the start: nothing changes, the start is answered.
        let response: DeleteRecordsResponse =
            broker.call(version, &request(&topic, &[(0, 2)])).await;
        assert_eq!(answers(&response), vec![(0, 4, NONE)]);
        // Past the high watermark, below -1, unknown, named twice.
        let response: DeleteRecordsResponse = broker
            .call(
                version,
                &request(&topic, &[(0, 11), (1, -2), (7, 0), (0, 5), (0, 6)]),
            )
            .await;
        let codes: Vec<(i32, i16)> = answers(&response)
            .into_iter()
            .map(|(p, _, code)| (p, code))
            .collect();
        assert_eq!(
            codes,
            vec![
                (0, INVALID_REQUEST),
                (1, OFFSET_OUT_OF_RANGE),
                (7, UNKNOWN_TOPIC_OR_PARTITION),
                (0, INVALID_REQUEST),
                (0, INVALID_REQUEST),
            ]
        );
        let response: DeleteRecordsResponse =
            broker.call(version, &request(&topic, &[(0, 11)])).await;
        assert_eq!(answers(&response), vec![(0, -1, OFFSET_OUT_OF_RANGE)]);
        assert_eq!(earliest(&broker, &topic, 0).await, 4);
        // Up to the end: the partition is empty and takes the next offset.
        let response: DeleteRecordsResponse =
            broker.call(version, &request(&topic, &[(0, 10)])).await;
        assert_eq!(answers(&response), vec![(0, 10, NONE)]);
        assert_eq!(broker.produce(&topic, 0, value_batch("next")).await, 10);
    }
    // Internal topics are never trimmed (committed offsets live there).
    broker.ensure_offsets_topic().await;
    let internal: DeleteRecordsResponse = broker
        .call(2, &request("__consumer_offsets", &[(0, 0)]))
        .await;
    assert_eq!(answers(&internal), vec![(0, -1, INVALID_TOPIC_EXCEPTION)]);
    assert_eq!(earliest(&broker, "__consumer_offsets", 0).await, 0);
    let unknown: DeleteRecordsResponse = broker.call(2, &request("absent", &[(0, 1)])).await;
    assert_eq!(answers(&unknown), vec![(0, -1, UNKNOWN_TOPIC_OR_PARTITION)]);
}

#[test]
fn delete_records_moves_the_low_watermark() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, delete_scenario);
}
