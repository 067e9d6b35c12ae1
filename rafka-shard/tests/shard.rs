//! The shard core end to end, without the network: topics created through
//! the controller on shard 0, records produced and fetched across shards
//! through the shard API, idempotent retries, and a restart on the same
//! data dir.

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::messages::CreateTopicsRequest;
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_testkit::proto::creatable;
use rafka_testkit::{Broker, TestBroker};

fn batch(partition: i32, i: i32, producer: Option<(i64, i32)>) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    if let Some((pid, seq)) = producer {
        builder = builder.producer(pid, 0, seq);
    }
    let key = format!("k{partition}-{i}");
    let value = format!("v{partition}-{i}");
    builder.push(Some(key.as_bytes()), Some(value.as_bytes()));
    builder.build().expect("batch")
}

/// Runs `scenario` on shard 0 of a broker with `shards` shards over `dir`,
/// then shuts the broker down cleanly.
fn with_broker<F, Fut>(dir: &Path, shards: usize, scenario: F)
where
    F: FnOnce(Broker) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    TestBroker::builder()
        .shards(shards)
        .data_dir(dir)
        .run(scenario);
}

#[test]
fn produce_fetch_across_shards_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    with_broker(dir.path(), 2, |broker| async move {
        let created = broker.create_topic("orders", 4, &[]).await;
        assert_eq!(created.error_code, 0, "created");
        assert_eq!(created.num_partitions, 4);
        let owners: Vec<usize> = (0..4)
            .map(|p| broker.shard.owner_of("orders", p).unwrap())
            .collect();
        assert_eq!(owners.iter().filter(|&&o| o == 0).count(), 2);
        assert_eq!(owners.iter().filter(|&&o| o == 1).count(), 2);
        for partition in 0..4 {
            for i in 0..3 {
                let offset = broker
                    .produce("orders", partition, batch(partition, i, None))
                    .await;
                assert_eq!(offset, i64::from(i));
            }
        }
        let (high_watermark, batches) = broker.fetch_all("orders", 3).await;
        assert_eq!(high_watermark, 3);
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].0, 2);
    });
    // Same dir, 2 shards again: everything is still there, offsets go on.
    with_broker(dir.path(), 2, |broker| async move {
        let (high_watermark, batches) = broker.fetch_all("orders", 1).await;
        assert_eq!(high_watermark, 3);
        let offsets: Vec<i64> = batches.iter().map(|b| b.0).collect();
        assert_eq!(offsets, vec![0, 1, 2]);
        assert_eq!(broker.produce("orders", 1, batch(1, 3, None)).await, 3);
    });
    // A different core count re-places partitions; the data follows.
    with_broker(dir.path(), 1, |broker| async move {
        for partition in 0..4 {
            assert_eq!(broker.shard.owner_of("orders", partition), Some(0));
        }
        let (high_watermark, _) = broker.fetch_all("orders", 1).await;
        assert_eq!(high_watermark, 4);
    });
}

#[test]
fn idempotent_retry_answers_the_original_offset_even_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    with_broker(dir.path(), 2, |broker| async move {
        let topic = creatable("idem", 1, &[]).with_replication_factor(1);
        let request = CreateTopicsRequest::default().with_topics(vec![topic]);
        let created = broker.call(7, &request).await;
        assert_eq!(created.topics[0].error_code, 0, "created");
        let pid = broker.allocate_producer_id().await;
        assert_eq!(
            broker.produce("idem", 0, batch(0, 0, Some((pid, 0)))).await,
            0
        );
        assert_eq!(
            broker.produce("idem", 0, batch(0, 1, Some((pid, 1)))).await,
            1
        );
        // The retry of sequence 0 is answered with offset 0, nothing written.
        assert_eq!(
            broker.produce("idem", 0, batch(0, 0, Some((pid, 0)))).await,
            0
        );
        let (high_watermark, _) = broker.fetch_all("idem", 0).await;
        assert_eq!(high_watermark, 2);
    });
    with_broker(dir.path(), 2, |broker| async move {
        // Producer state came back from the snapshot written at shutdown.
        let pid = 0; // the first id a fresh broker hands out
        assert_eq!(
            broker.produce("idem", 0, batch(0, 1, Some((pid, 1)))).await,
            1
        );
        let (high_watermark, _) = broker.fetch_all("idem", 0).await;
        assert_eq!(high_watermark, 2);
        // A new producer id does not repeat the old one.
        assert!(broker.allocate_producer_id().await > pid);
    });
}
