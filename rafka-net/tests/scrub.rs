//! Recovery facts and the scrubber end to end, over real files: a broker
//! stops cleanly, a byte of its data rots, it starts again. A Fetch at the
//! damaged batch used to answer the damaged bytes, which every client
//! rejects (CRC) and retries forever; once scrubbed it answers the next
//! good batch with error NONE. What recovery cut at startup and what the
//! scrubber found are counted on the owning shard.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use rafka_proto::record::{validate, BatchHeader};
use rafka_shard::log_health::LogHealthSnapshot;
use rafka_shard::shard::Shard;
use rafka_testkit::proto::topic_name;
use rafka_testkit::records::{stored, value_batch};
use rafka_testkit::{Broker, TestBroker};

const TOPIC: &str = "rot";
/// Kafka's smallest segment.bytes.
const SEGMENT_BYTES: usize = 1 << 20;
/// Three batches fill a segment: 12 batches make closed segments 0, 3, 6
/// and the active one at 9.
const VALUE_BYTES: usize = 340_000;
const BATCHES: usize = 12;
/// Upper bound on a scenario; reached only when the code under test hangs.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

fn nth_batch(i: usize) -> Bytes {
    let value = format!("{i:02}{}", "x".repeat(VALUE_BYTES));
    value_batch(&value)
}

fn broker(dir: &Path, scrub_bytes_per_second: u64) -> TestBroker {
    TestBroker::builder()
        .data_dir(dir)
        .timeout(TEST_TIMEOUT)
        .config(move |c| c.log_scrub_bytes_per_second = scrub_bytes_per_second)
}

/// First run: the topic and its 12 batches, then a clean stop.
fn write_and_stop(dir: &Path) {
    broker(dir, 0).run(|broker| async move {
        let segment_bytes = SEGMENT_BYTES.to_string();
        broker
            .create_topic_id(TOPIC, 1, &[("segment.bytes", &segment_bytes)])
            .await;
        for i in 0..BATCHES {
            let base_offset = broker.produce(TOPIC, 0, nth_batch(i)).await;
            assert_eq!(base_offset, i as i64);
        }
    });
    let bases: Vec<String> = segment_names(dir);
    assert_eq!(
        bases,
        [0, 3, 6, 9].map(|base| format!("{base:020}.log")),
        "three batches per segment"
    );
}

fn partition_dir(dir: &Path) -> PathBuf {
    dir.join(format!("{TOPIC}-0"))
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(partition_dir(dir))
        .expect("partition dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".log"))
        .collect();
    names.sort();
    names
}

fn batch_bytes() -> u64 {
    nth_batch(0).len() as u64
}

/// Flips one byte of segment 3's middle batch (offset 4), inside its
/// value: its CRC no longer holds.
fn rot_offset_4(dir: &Path) {
    let path = partition_dir(dir).join(format!("{:020}.log", 3));
    let mut contents = std::fs::read(&path).expect("segment");
    contents[batch_bytes() as usize + 1000] ^= 0x20;
    std::fs::write(&path, contents).expect("rewrite the segment");
}

/// Fetch v11 of partition 0 at `offset`, at most one batch.
async fn fetch_one(broker: &Broker, offset: i64) -> (i16, Bytes) {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1)])]);
    let response: FetchResponse = broker.call_on(0, 11, &request).await;
    let data = &response.responses[0].partitions[0];
    (data.error_code, data.records.clone().unwrap_or_default())
}

/// A scrub pass on the partition's owner, without pacing; returns the
/// damaged ranges it found as (first offset, next offset, position, bytes)
/// and the owner's counters.
async fn scrub_on_owner(broker: &Broker) -> (Vec<(i64, i64, u64, u64)>, LogHealthSnapshot) {
    let owner = broker.shard.owner_of(TOPIC, 0).expect("owner");
    let work = |shard: Rc<Shard>| async move {
        let summary = shard.scrub_pass(None).await;
        let found = summary
            .damaged
            .iter()
            .map(|(_, _, r)| (r.first_offset, r.next_offset, r.position, r.len_bytes))
            .collect();
        (found, shard.registry().log_health().snapshot())
    };
    broker
        .shard
        .router
        .invoke_on(owner, work)
        .await
        .expect("route")
}

async fn health_on_owner(broker: &Broker) -> LogHealthSnapshot {
    let owner = broker.shard.owner_of(TOPIC, 0).expect("owner");
    let work = |shard: Rc<Shard>| async move { shard.registry().log_health().snapshot() };
    broker
        .shard
        .router
        .invoke_on(owner, work)
        .await
        .expect("route")
}

#[test]
fn a_fetch_at_a_scrubbed_damaged_batch_gets_the_next_good_batch() {
    let temp = tempfile::tempdir().expect("tempdir");
    write_and_stop(temp.path());
    rot_offset_4(temp.path());
    broker(temp.path(), 0).run(|broker| async move {
        // Before the scrub: the damaged bytes, which no client accepts.
        let (error, records) = fetch_one(&broker, 4).await;
        assert_eq!(error, 0);
        assert_eq!(
            BatchHeader::decode(&records).expect("header").base_offset,
            4
        );
        assert!(validate(&records).is_err(), "served with a bad CRC");

        let (found, health) = scrub_on_owner(&broker).await;
        let size = batch_bytes();
        assert_eq!(found, vec![(4, 5, size, size)]);
        assert_eq!(health.scrub_bytes, 9 * size, "every closed byte once");
        assert_eq!(
            (health.scrub_damaged_ranges, health.scrub_damaged_bytes),
            (1, size)
        );
        assert_eq!(health.scrub_passes, 1);
        assert_eq!(health.recovery_truncations, 0, "a clean start cut nothing");

        // At the damaged batch: the next good one, error NONE.
        let (error, records) = fetch_one(&broker, 4).await;
        assert_eq!(error, 0);
        assert_eq!(records, stored(&nth_batch(5), 5));
        // Before it: up to it; the consumer's next fetch (at 4) goes on.
        let (error, records) = fetch_one(&broker, 3).await;
        assert_eq!((error, records), (0, stored(&nth_batch(3), 3)));

        // A second pass finds nothing new and logs nothing again.
        let (found, health) = scrub_on_owner(&broker).await;
        assert_eq!(found, vec![]);
        assert_eq!(health.scrub_damaged_ranges, 1);
    });
}

/// The scrubber task runs by itself once the broker is ready (at the
/// default rate): the damaged range shows up without anyone driving it.
#[test]
fn the_scrubber_task_finds_the_damage_by_itself() {
    let temp = tempfile::tempdir().expect("tempdir");
    write_and_stop(temp.path());
    rot_offset_4(temp.path());
    let rate = rafka_core::config::broker::LOG_SCRUB_BYTES_PER_SECOND_DEFAULT;
    broker(temp.path(), rate).run(|broker| async move {
        let deadline = std::time::Instant::now() + TEST_TIMEOUT / 2;
        loop {
            let health = health_on_owner(&broker).await;
            if health.scrub_damaged_ranges == 1 {
                assert_eq!(health.scrub_damaged_bytes, batch_bytes());
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not scrubbed: {health:?}"
            );
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        let (error, records) = fetch_one(&broker, 4).await;
        assert_eq!((error, records), (0, stored(&nth_batch(5), 5)));
    });
}

/// Garbage after the last batch (a torn write) is cut by recovery at
/// startup, and the owner counts the cut and its bytes.
#[test]
fn a_torn_tail_cut_at_startup_is_counted() {
    let temp = tempfile::tempdir().expect("tempdir");
    write_and_stop(temp.path());
    let active = partition_dir(temp.path()).join(format!("{:020}.log", 9));
    let mut contents = std::fs::read(&active).expect("active segment");
    contents.extend_from_slice(&nth_batch(12)[..500]);
    std::fs::write(&active, contents).expect("torn tail");
    broker(temp.path(), 0).run(|broker| async move {
        let health = health_on_owner(&broker).await;
        assert_eq!(health.recovery_truncations, 1);
        assert_eq!(health.recovery_truncated_bytes, 500);
        assert_eq!(health.recovery_index_rebuilds, 0);
        let (error, records) = fetch_one(&broker, 11).await;
        assert_eq!((error, records), (0, stored(&nth_batch(11), 11)));
        assert_eq!(broker.produce(TOPIC, 0, nth_batch(12)).await, 12);
    });
}
