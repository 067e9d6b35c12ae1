//! read_committed end to end without sockets: transactional batches
//! produced through the shard API (the kit hands the partition's KIP-890
//! guard back), markers written on the partition's owner as
//! WriteTxnMarkers will, then Fetch and ListOffsets asked through their
//! handlers on shard 0 (1, 2 and 4 shards) and their answers checked
//! field by field: read_committed stops at the last stable offset and
//! lists the aborted transaction, read_uncommitted does not.

use std::time::Duration;

use bytes::Bytes;
use futures_lite::future::poll_once;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_net::handlers::list_offsets::LATEST_TIMESTAMP;
use rafka_proto::record::{BatchBuilder, Batches, Compression};
use rafka_shard::partition::TxnMarker;
use rafka_testkit::records::{stored, value_batch};
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Outlives [`TEST_TIMEOUT`]: only the commit can end such a long poll.
const LONG_POLL_MS: i32 = 120_000;
const TOPIC: &str = "tx";
const READ_UNCOMMITTED: i8 = 0;
const READ_COMMITTED: i8 = 1;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn txn_batch(producer_id: i64, sequence: i32, values: &[&str]) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, 0, sequence)
        .transactional(true);
    for value in values {
        builder.push(Some(b"key".as_slice()), Some(value.as_bytes()));
    }
    builder.build().expect("batch")
}

fn marker(producer_id: i64, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit,
    }
}

fn fetch(offset: i64, isolation_level: i8) -> FetchRequest {
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20);
    let topic = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partitions(vec![partition]);
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(isolation_level)
        .with_topics(vec![topic])
}

async fn fetched(broker: &Broker, request: &FetchRequest) -> PartitionData {
    let response = broker.call_on(0, 12, request).await;
    assert_eq!(response.error_code, 0);
    response.responses[0].partitions[0].clone()
}

/// (producer id, first offset) of the response's aborted transactions.
fn aborted(data: &PartitionData) -> Option<Vec<(i64, i64)>> {
    data.aborted_transactions.as_ref().map(|list| {
        list.iter()
            .map(|txn| (txn.producer_id.0, txn.first_offset))
            .collect()
    })
}

/// Base offsets of the batches in the answer.
fn batch_offsets(data: &PartitionData) -> Vec<i64> {
    Batches::new(data.records.clone().unwrap_or_default())
        .map(|batch| batch.expect("valid batch").header().base_offset)
        .collect()
}

async fn latest(broker: &Broker, isolation_level: i8) -> i64 {
    let partition = ListOffsetsPartition::default()
        .with_partition_index(0)
        .with_timestamp(LATEST_TIMESTAMP)
        .with_current_leader_epoch(-1);
    let topic = ListOffsetsTopic::default()
        .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
        .with_partitions(vec![partition]);
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_isolation_level(isolation_level)
        .with_topics(vec![topic]);
    let response = broker.call_on(0, 10, &request).await;
    let answer = &response.topics[0].partitions[0];
    assert_eq!(answer.error_code, 0);
    answer.offset
}

#[test]
fn read_committed_stops_at_the_lso_and_lists_the_aborted_transaction() {
    let broker = TestBroker::builder().timeout(TEST_TIMEOUT);
    broker.run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id(TOPIC, 1, &[]).await;
        let aborting = broker.allocate_producer_id().await;
        let committing = broker.allocate_producer_id().await;
        let plain = value_batch("plain");
        assert_eq!(broker.produce(TOPIC, 0, plain.clone()).await, 0);
        let doomed = txn_batch(aborting, 0, &["a1", "a2"]);
        assert_eq!(broker.produce_verified(TOPIC, 0, doomed).await, 1);
        let kept = txn_batch(committing, 0, &["c1"]);
        assert_eq!(broker.produce_verified(TOPIC, 0, kept).await, 3);
        let abort = broker.write_txn_marker(TOPIC, 0, marker(aborting, false));
        assert_eq!(abort.await, Ok(4));

        // read_uncommitted: everything below the high watermark, the real
        // LSO, no aborted list.
        let all = fetched(&broker, &fetch(0, READ_UNCOMMITTED)).await;
        assert_eq!((all.high_watermark, all.last_stable_offset), (5, 3));
        assert_eq!(batch_offsets(&all), [0, 1, 3, 4]);
        assert_eq!(aborted(&all), None);

        // read_committed: only below the LSO (the committing producer's
        // open transaction at 3), the aborted transaction listed.
        let committed = fetched(&broker, &fetch(0, READ_COMMITTED)).await;
        assert_eq!(
            (committed.high_watermark, committed.last_stable_offset),
            (5, 3)
        );
        assert_eq!(batch_offsets(&committed), [0, 1]);
        assert_eq!(
            committed
                .records
                .clone()
                .unwrap_or_default()
                .slice(..plain.len()),
            stored(&plain, 0),
            "records go out as stored"
        );
        assert_eq!(aborted(&committed), Some(vec![(aborting, 1)]));
        assert_eq!(latest(&broker, READ_UNCOMMITTED).await, 5);
        assert_eq!(latest(&broker, READ_COMMITTED).await, 3);

        // A read_committed long poll at the LSO wakes when the commit is
        // durable, not before.
        let body = fetch(3, READ_COMMITTED)
            .with_min_bytes(1)
            .with_max_wait_ms(LONG_POLL_MS);
        let mut pending = Box::pin(broker.call_on(0, 12, &body));
        assert!(
            poll_once(&mut pending).await.is_none(),
            "nothing stable yet"
        );
        let stale = broker.write_txn_marker(
            TOPIC,
            0,
            TxnMarker {
                producer_epoch: -1,
                ..marker(committing, true)
            },
        );
        assert_eq!(stale.await, Err(INVALID_PRODUCER_EPOCH));
        let commit = broker.write_txn_marker(TOPIC, 0, marker(committing, true));
        assert_eq!(commit.await, Ok(5));
        let woken = pending.await;
        let woken = &woken.responses[0].partitions[0];
        assert_eq!((woken.high_watermark, woken.last_stable_offset), (6, 6));
        // The committed batch and both markers (consumers skip those).
        assert_eq!(batch_offsets(woken), [3, 4, 5]);
        assert_eq!(
            aborted(woken),
            Some(vec![(aborting, 1)]),
            "its marker is at 4"
        );
        assert_eq!(latest(&broker, READ_COMMITTED).await, 6);

        let past_the_abort = fetched(&broker, &fetch(5, READ_COMMITTED)).await;
        assert_eq!(aborted(&past_the_abort), Some(vec![]));
        assert_eq!(batch_offsets(&past_the_abort), [5]);
    });
}
