//! The shard layer over rafka-core's fault-injecting storage and a manual
//! clock instead of glommio's files and the system clock: the same
//! partition, controller, group coordinator and checkpoint code, with
//! every byte in memory, crashes on demand and failing fsyncs.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use rafka_core::config::BrokerConfig;
use rafka_core::group::{CommitPartition, CommitRequest};
use rafka_core::io::Clock;
use rafka_core::log::{LogConfig, RecoveryHints};
use rafka_core::metadata::NewTopic;
use rafka_core::sim::{ManualClock, SimStorage};
use rafka_proto::acks::Acks;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{BatchBuilder, Batches, Compression};
use rafka_shard::controller_handle::ControllerHandle;
use rafka_shard::partition::{Partition, PartitionSpec};
use rafka_shard::runtime::{run, RuntimeConfig, ShardEnv};
use rafka_shard::shard::Shard;
use rafka_shard::startup::start_with;

const START_MS: i64 = 1_700_000_000_000;
const TIMEOUT: Duration = Duration::from_secs(10);

fn batch(value: &str) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Some(b"k".as_slice()), Some(value.as_bytes()));
    builder.build().expect("batch")
}

/// The values of every batch readable from `offset`.
fn values(records: Bytes) -> Vec<String> {
    Batches::new(records)
        .map(|b| {
            let b = b.expect("valid batch");
            let records = b.records(Default::default()).expect("records");
            let record = records
                .into_iter()
                .next()
                .expect("one record")
                .expect("record");
            String::from_utf8(record.value.expect("value").to_vec()).expect("utf-8")
        })
        .collect()
}

fn in_executor<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 << 10)
        .spawn(test)
        .expect("executor");
    executor.join().expect("test");
}

fn spec(dir: &Path) -> PartitionSpec {
    PartitionSpec {
        topic: Rc::from("t"),
        index: 0,
        dir: dir.to_path_buf(),
        config: LogConfig::default(),
        hints: RecoveryHints::default(),
        write_caching: false,
        high_watermark: None,
    }
}

/// A partition keeps what a flush made durable across a crash, and loses
/// exactly what it had not flushed (nothing of it was ever readable).
#[test]
fn a_partition_over_simulated_storage_survives_a_crash_with_what_it_flushed() {
    in_executor(|| async {
        let storage = SimStorage::with_seed(7);
        let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(START_MS));
        let dir = PathBuf::from("/sim/data/t-0");
        let partition = Partition::open(storage.clone(), Rc::clone(&clock), spec(&dir))
            .await
            .expect("open");
        partition
            .append(&batch("durable"), None)
            .await
            .expect("append");
        assert_eq!(partition.flush().await.expect("flush"), 1);
        partition
            .append(&batch("lost"), None)
            .await
            .expect("append");
        assert_eq!(
            (partition.high_watermark(), partition.log_end_offset()),
            (1, 2)
        );
        let read = partition.fetch(0, 1 << 20).await.expect("fetch");
        assert_eq!(values(read.records), ["durable"]);
        storage.crash();
        drop(partition);
        let reopened = Partition::open(storage.clone(), clock, spec(&dir))
            .await
            .expect("reopen after the crash");
        assert_eq!(
            (reopened.high_watermark(), reopened.log_end_offset()),
            (1, 1)
        );
        let read = reopened.fetch(0, 1 << 20).await.expect("fetch");
        assert_eq!(values(read.records), ["durable"]);
    });
}

/// The whole shard layer (controller and metadata log, partitions and
/// group commit, the group coordinator's writes, the checkpoints of a
/// clean stop) runs over the simulated storage, and a failing fsync there
/// reaches the producer as Kafka's storage error.
#[test]
fn the_shard_layer_runs_over_simulated_storage() {
    let config = Arc::new(BrokerConfig {
        log_dirs: vec![PathBuf::from("/sim/data")],
        offsets_topic_num_partitions: 1,
        ..Default::default()
    });
    let main = move |env: ShardEnv<Shard<SimStorage>>| {
        let config = Arc::clone(&config);
        async move {
            let storage = SimStorage::with_seed(11);
            let clock = Rc::new(ManualClock::new(START_MS));
            let (shard, _) = start_with(env, config, storage.clone(), clock)
                .await
                .expect("start");
            scenario(&shard, &storage).await;
            shard.shutdown().await.expect("clean stop");
            shard.stop_all().await;
            let checkpoint = storage
                .file_contents(Path::new("/sim/data/recovery-point-offset-checkpoint"))
                .expect("checkpoint written");
            let checkpoint = String::from_utf8(checkpoint).expect("text");
            assert!(checkpoint.contains("orders 0 2\n"), "{checkpoint}");
            // The partition whose fsync failed cannot vouch for anything.
            assert!(!checkpoint.contains("flaky"), "{checkpoint}");
            let high_watermarks = storage
                .file_contents(Path::new("/sim/data/replication-offset-checkpoint"))
                .expect("high watermarks written");
            let high_watermarks = String::from_utf8(high_watermarks).expect("text");
            assert!(
                high_watermarks.contains("orders 0 2\n"),
                "{high_watermarks}"
            );
        }
    };
    run(&RuntimeConfig::for_tests(1), main).expect("runtime");
}

async fn scenario(shard: &Rc<Shard<SimStorage>>, storage: &SimStorage) {
    let controller = ControllerHandle::new(Rc::clone(shard));
    let topics = ["orders", "flaky"].map(|name| NewTopic {
        name: name.to_string(),
        partitions: 1,
        replication_factor: -1,
        configs: Default::default(),
        assignments: Vec::new(),
    });
    let created = controller.create_topics(topics.to_vec(), false, None).await;
    assert!(created.expect("controller").iter().all(Result::is_ok));
    let registry = shard.registry();
    for (i, value) in ["a", "b"].into_iter().enumerate() {
        let appended = registry
            .produce("orders", 0, &batch(value), Acks::All, TIMEOUT, None)
            .await
            .expect("produce");
        assert_eq!(appended.base_offset, i as i64);
    }
    let fetched = registry
        .fetch("orders", 0, 0, 1 << 20)
        .await
        .expect("fetch");
    assert_eq!(fetched.high_watermark, 2);
    assert_eq!(values(fetched.records), ["a", "b"]);
    // Offsets commit through the group coordinator's persist-then-reply.
    let offsets_topic = shard.offsets_topic();
    let ensured = controller.ensure_internal_topic(offsets_topic, None).await;
    ensured.expect("controller").expect("__consumer_offsets");
    let commit = CommitRequest {
        group_id: "g".to_string(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: vec![(
            "orders".to_string(),
            vec![CommitPartition {
                partition: 0,
                offset: 2,
                leader_epoch: -1,
                metadata: None,
            }],
        )],
    };
    let codes = shard.groups().commit_offsets(commit).await;
    assert_eq!(
        codes,
        vec![("orders".to_string(), vec![(0, ErrorCode::NONE)])]
    );
    let fetched = shard.groups().fetch_offsets("g", None).expect("owner");
    assert_eq!(fetched[0].1[0].offset, 2);
    // A failing fsync: the acks=all produce learns its data is not durable,
    // and the partition refuses writes after it; nothing of it was ever
    // durable, so a fetch answers, empty.
    storage.fail_next_syncs(1);
    let failed = registry
        .produce("flaky", 0, &batch("x"), Acks::All, TIMEOUT, None)
        .await
        .expect_err("the fsync failed");
    assert_eq!(failed.error_code(), ErrorCode::KAFKA_STORAGE_ERROR);
    let refused = registry
        .produce("flaky", 0, &batch("y"), Acks::All, TIMEOUT, None)
        .await
        .expect_err("read-only");
    assert_eq!(refused.error_code(), ErrorCode::KAFKA_STORAGE_ERROR);
    let fetched = registry
        .fetch("flaky", 0, 0, 1 << 20)
        .await
        .expect("reads go on");
    assert_eq!(fetched.high_watermark, 0);
    assert!(fetched.records.is_empty());
}

/// Runs `scenario` on a one-shard broker over simulated storage (topic
/// `orders`, one partition, created), then stops it cleanly.
fn on_sim_broker<F, Fut>(scenario: F)
where
    F: FnOnce(Rc<Shard<SimStorage>>, SimStorage) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let config = Arc::new(BrokerConfig {
        log_dirs: vec![PathBuf::from("/sim/data")],
        offsets_topic_num_partitions: 1,
        ..Default::default()
    });
    let main = move |env: ShardEnv<Shard<SimStorage>>| {
        let config = Arc::clone(&config);
        let scenario = scenario.clone();
        async move {
            let storage = SimStorage::with_seed(23);
            let clock = Rc::new(ManualClock::new(START_MS));
            let (shard, _) = start_with(env, config, storage.clone(), clock)
                .await
                .expect("start");
            let controller = ControllerHandle::new(Rc::clone(&shard));
            let orders = NewTopic {
                name: "orders".to_string(),
                partitions: 1,
                replication_factor: -1,
                configs: Default::default(),
                assignments: Vec::new(),
            };
            let created = controller.create_topics(vec![orders], false, None).await;
            assert!(created.expect("controller").iter().all(Result::is_ok));
            scenario(Rc::clone(&shard), storage).await;
            shard.shutdown().await.expect("clean stop");
            shard.stop_all().await;
        }
    };
    run(&RuntimeConfig::for_tests(1), main).expect("runtime");
}

/// Produces `value` to orders-0 with acks=all: its base offset, or the
/// Kafka error code.
async fn produce(shard: &Shard<SimStorage>, value: &str) -> Result<i64, ErrorCode> {
    shard
        .registry()
        .produce("orders", 0, &batch(value), Acks::All, TIMEOUT, None)
        .await
        .map(|appended| appended.base_offset)
        .map_err(|error| error.error_code())
}

/// Everything readable in orders-0: (high watermark, batches as (base
/// offset, bytes)).
async fn fetch_all(shard: &Shard<SimStorage>) -> (i64, Vec<(i64, Bytes)>) {
    let fetched = shard
        .registry()
        .fetch("orders", 0, 0, 1 << 20)
        .await
        .expect("fetch");
    let batches = Batches::new(fetched.records)
        .map(|b| {
            let b = b.expect("valid batch");
            (b.header().base_offset, b.as_bytes().clone())
        })
        .collect();
    (fetched.high_watermark, batches)
}

/// A write that fails part-way (what ENOSPC does to a `pwrite`: some bytes
/// land, then the error) fails only that produce, with Kafka's storage
/// error. The partition keeps serving exactly the acknowledged records and
/// the next produce lands at the next offset: no gap, no duplicate, no
/// restart.
#[test]
fn a_failed_write_fails_one_produce_and_the_partition_goes_on() {
    on_sim_broker(|shard, storage| async move {
        assert_eq!(produce(&shard, "a").await, Ok(0));
        assert_eq!(produce(&shard, "b").await, Ok(1));
        let before = fetch_all(&shard).await;
        assert_eq!(before.0, 2);
        assert_eq!(before.1.iter().map(|b| b.0).collect::<Vec<_>>(), vec![0, 1]);
        storage.tear_next_write(9);
        assert_eq!(
            produce(&shard, "lost").await,
            Err(ErrorCode::KAFKA_STORAGE_ERROR)
        );
        assert_eq!(
            fetch_all(&shard).await,
            before,
            "acknowledged records, byte-exact"
        );
        let partition = shard.partition("orders", 0).expect("orders-0");
        assert!(!partition.is_read_only());
        assert_eq!(partition.log_end_offset(), 2);
        assert_eq!(produce(&shard, "c").await, Ok(2));
        let (high_watermark, batches) = fetch_all(&shard).await;
        assert_eq!(high_watermark, 3);
        let mut records = Vec::new();
        for (_, bytes) in &batches {
            records.extend(values(bytes.clone()));
        }
        assert_eq!(records, ["a", "b", "c"]);
        assert_eq!(
            batches.iter().map(|b| b.0).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(&batches[..2], &before.1[..]);
    });
}

/// A failed fsync cannot be undone (the page cache may show what the disk
/// lost): the partition refuses writes until restart, but the records it
/// acknowledged (flushed before the failure) are still served.
#[test]
fn a_failed_fsync_keeps_acknowledged_records_readable() {
    on_sim_broker(|shard, storage| async move {
        assert_eq!(produce(&shard, "a").await, Ok(0));
        assert_eq!(produce(&shard, "b").await, Ok(1));
        let before = fetch_all(&shard).await;
        storage.fail_next_syncs(1);
        assert_eq!(
            produce(&shard, "unsynced").await,
            Err(ErrorCode::KAFKA_STORAGE_ERROR)
        );
        assert_eq!(
            produce(&shard, "refused").await,
            Err(ErrorCode::KAFKA_STORAGE_ERROR)
        );
        let partition = shard.partition("orders", 0).expect("orders-0");
        assert!(partition.is_read_only());
        assert_eq!(
            (partition.high_watermark(), partition.log_end_offset()),
            (2, 3)
        );
        assert_eq!(fetch_all(&shard).await, before);
        let past = shard
            .registry()
            .fetch("orders", 0, 2, 1 << 20)
            .await
            .expect("fetch at the high watermark");
        assert!(past.records.is_empty());
    });
}

/// Below the free-space threshold (as shard 0's monitor sets it) produce
/// to user topics is refused with Kafka's storage error and counted,
/// reads and offset commits (an internal topic) go on, and produce
/// resumes at the next offset once the monitor lifts the refusal.
#[test]
fn below_the_free_space_threshold_produce_is_refused_and_reads_go_on() {
    on_sim_broker(|shard, _storage| async move {
        assert_eq!(produce(&shard, "a").await, Ok(0));
        let before = fetch_all(&shard).await;
        let disk = shard.registry().disk();
        disk.set_refusing(true, 1 << 30);
        let refused = shard
            .registry()
            .produce("orders", 0, &batch("x"), Acks::All, TIMEOUT, None)
            .await
            .expect_err("refused");
        assert_eq!(refused.error_code(), ErrorCode::KAFKA_STORAGE_ERROR);
        assert_eq!(
            refused.to_string(),
            "log dir /sim/data has less than 1073741824 bytes free \
             (rafka.log.dir.min.free.bytes): produce refused until space is freed"
        );
        assert_eq!(fetch_all(&shard).await, before);
        let controller = ControllerHandle::new(Rc::clone(&shard));
        let ensured = controller
            .ensure_internal_topic(shard.offsets_topic(), None)
            .await;
        ensured.expect("controller").expect("__consumer_offsets");
        let commit = CommitRequest {
            group_id: "g".to_string(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            topics: vec![(
                "orders".to_string(),
                vec![CommitPartition {
                    partition: 0,
                    offset: 1,
                    leader_epoch: -1,
                    metadata: None,
                }],
            )],
        };
        let codes = shard.groups().commit_offsets(commit).await;
        assert_eq!(
            codes,
            vec![("orders".to_string(), vec![(0, ErrorCode::NONE)])]
        );
        assert_eq!(disk.snapshot().produce_refused, 1);
        assert!(disk.snapshot().refusing_produce);
        disk.set_refusing(false, 1 << 30);
        assert_eq!(produce(&shard, "b").await, Ok(1));
        assert_eq!(disk.snapshot().produce_refused, 1);
    });
}
