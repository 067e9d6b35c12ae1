//! The shard core end to end, without the network: topics created through
//! the controller on shard 0, records produced and fetched across shards,
//! idempotent retries, and a restart on the same data dir.

use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rafka_core::config::BrokerConfig;
use rafka_core::metadata::NewTopic;
use rafka_proto::acks::Acks;
use rafka_proto::record::{BatchBuilder, Batches, Compression};
use rafka_shard::controller_handle::ControllerHandle;
use rafka_shard::runtime::{run, RuntimeConfig, ShardEnv};
use rafka_shard::shard::{start, Shard};

const TIMEOUT: Duration = Duration::from_secs(10);

fn config(dir: &Path) -> Arc<BrokerConfig> {
    Arc::new(BrokerConfig {
        log_dirs: vec![dir.to_path_buf()],
        ..Default::default()
    })
}

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
    F: Fn(Rc<Shard>) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let config = config(dir);
    let main = move |env: ShardEnv<Shard>| {
        let config = Arc::clone(&config);
        let scenario = scenario.clone();
        async move {
            let (shard, _started) = start(env, config).await.expect("start");
            if shard.id() == 0 {
                scenario(Rc::clone(&shard)).await;
                shard.shutdown().await.expect("shutdown");
                shard.stop_all().await;
            }
            shard.wait_stop().await;
        }
    };
    run(&RuntimeConfig::for_tests(shards), main).expect("runtime");
}

async fn produce(shard: &Rc<Shard>, topic: &str, partition: i32, records: Bytes) -> i64 {
    let owner = shard.owner_of(topic, partition).expect("owner");
    let topic = topic.to_string();
    shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            s.registry()
                .produce(&topic, partition, &records, Acks::All, TIMEOUT)
                .await
                .map(|a| (a.base_offset, a.duplicate))
                .map_err(|e| e.error_code())
        })
        .await
        .expect("route")
        .expect("produce")
        .0
}

async fn fetch_all(shard: &Rc<Shard>, topic: &str, partition: i32) -> (i64, Vec<(i64, Bytes)>) {
    let owner = shard.owner_of(topic, partition).expect("owner");
    let topic = topic.to_string();
    let fetched = shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            s.registry()
                .fetch(&topic, partition, 0, 1 << 20)
                .await
                .map_err(|e| e.error_code())
        })
        .await
        .expect("route")
        .expect("fetch");
    let batches = Batches::new(fetched.records)
        .map(|b| {
            let b = b.expect("valid batch");
            (b.header().base_offset, b.records_bytes())
        })
        .collect();
    (fetched.high_watermark, batches)
}

#[test]
fn produce_fetch_across_shards_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    with_broker(dir.path(), 2, |shard| async move {
        let controller = ControllerHandle::new(Rc::clone(&shard));
        let topic = NewTopic {
            name: "orders".to_string(),
            partitions: 4,
            replication_factor: -1,
            configs: Default::default(),
        };
        let created = controller.create_topics(vec![topic], false, None).await;
        let created = created.expect("controller");
        assert_eq!(created[0].as_ref().expect("created").partitions, 4);
        let owners: Vec<usize> = (0..4)
            .map(|p| shard.owner_of("orders", p).unwrap())
            .collect();
        assert_eq!(owners.iter().filter(|&&o| o == 0).count(), 2);
        assert_eq!(owners.iter().filter(|&&o| o == 1).count(), 2);
        for partition in 0..4 {
            for i in 0..3 {
                let offset = produce(&shard, "orders", partition, batch(partition, i, None)).await;
                assert_eq!(offset, i64::from(i));
            }
        }
        let (high_watermark, batches) = fetch_all(&shard, "orders", 3).await;
        assert_eq!(high_watermark, 3);
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].0, 2);
    });
    // Same dir, 2 shards again: everything is still there, offsets go on.
    with_broker(dir.path(), 2, |shard| async move {
        let (high_watermark, batches) = fetch_all(&shard, "orders", 1).await;
        assert_eq!(high_watermark, 3);
        let offsets: Vec<i64> = batches.iter().map(|b| b.0).collect();
        assert_eq!(offsets, vec![0, 1, 2]);
        assert_eq!(produce(&shard, "orders", 1, batch(1, 3, None)).await, 3);
    });
    // A different core count re-places partitions; the data follows.
    with_broker(dir.path(), 1, |shard| async move {
        for partition in 0..4 {
            assert_eq!(shard.owner_of("orders", partition), Some(0));
        }
        let (high_watermark, _) = fetch_all(&shard, "orders", 1).await;
        assert_eq!(high_watermark, 4);
    });
}

#[test]
fn idempotent_retry_answers_the_original_offset_even_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    with_broker(dir.path(), 2, |shard| async move {
        let controller = ControllerHandle::new(Rc::clone(&shard));
        let topic = NewTopic {
            name: "idem".to_string(),
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
        };
        let created = controller.create_topics(vec![topic], false, None).await;
        created.expect("controller")[0].as_ref().expect("created");
        let pid = controller
            .allocate_producer_id()
            .await
            .expect("controller")
            .expect("pid");
        assert_eq!(
            produce(&shard, "idem", 0, batch(0, 0, Some((pid, 0)))).await,
            0
        );
        assert_eq!(
            produce(&shard, "idem", 0, batch(0, 1, Some((pid, 1)))).await,
            1
        );
        // The retry of sequence 0 is answered with offset 0, nothing written.
        assert_eq!(
            produce(&shard, "idem", 0, batch(0, 0, Some((pid, 0)))).await,
            0
        );
        let (high_watermark, _) = fetch_all(&shard, "idem", 0).await;
        assert_eq!(high_watermark, 2);
    });
    with_broker(dir.path(), 2, |shard| async move {
        // Producer state came back from the snapshot written at shutdown.
        let pid = 0; // the first id a fresh broker hands out
        assert_eq!(
            produce(&shard, "idem", 0, batch(0, 1, Some((pid, 1)))).await,
            1
        );
        let (high_watermark, _) = fetch_all(&shard, "idem", 0).await;
        assert_eq!(high_watermark, 2);
        // A new producer id does not repeat the old one.
        let controller = ControllerHandle::new(Rc::clone(&shard));
        let next = controller.allocate_producer_id().await.expect("controller");
        assert!(next.expect("pid") > pid);
    });
}
