//! Durability across a graceful restart of the real broker: everything
//! produced is read back byte-exact from the same data dir, ListOffsets
//! (earliest, latest, by timestamp) answers as before, also when the shard
//! count changes and partitions are placed again.

mod support;

use rafka_testkit::{BrokerOptions, BrokerProcess};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};
use support::client::{self, Record};
use support::rafka;

const TOPIC: &str = "durable";
const PARTITIONS: i32 = 6;
const PER_PARTITION: u32 = 7_000;

/// Small segments so that each partition spans several of them and the
/// restart has to recover more than one active segment.
fn options(cores: u32) -> BrokerOptions {
    rafka(cores).property("log.segment.bytes", "1048576")
}

fn produce_expected(broker: &BrokerProcess, base_ms: i64) -> Vec<Vec<Record>> {
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    let expected = client::records(PARTITIONS, PER_PARTITION, base_ms);
    let producer = client::producer(&bootstrap, &[]);
    let offsets = client::produce(&producer, TOPIC, &expected);
    client::assert_offsets_in_send_order(TOPIC, &offsets);
    expected
}

/// Segment files (`*.log`) of one partition.
fn segment_count(broker: &BrokerProcess, partition: i32) -> usize {
    let dir = broker.partition_dir(TOPIC, partition);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        })
        .count()
}

/// ListOffsets earliest/latest and by timestamp: record i of every
/// partition has timestamp base + i, so timestamp base + i finds offset i.
fn assert_list_offsets(broker: &BrokerProcess, base_ms: i64) {
    let bootstrap = broker.bootstrap();
    for partition in 0..PARTITIONS {
        assert_eq!(
            client::watermarks(&bootstrap, TOPIC, partition),
            (0, i64::from(PER_PARTITION)),
            "{TOPIC}/{partition} earliest/latest"
        );
    }
    let consumer = client::consumer(&bootstrap);
    let probes = [(0, Offset::Offset(0)), (700, Offset::Offset(700))];
    for (index, want) in probes {
        let mut query = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            query
                .add_partition_offset(TOPIC, partition, Offset::Offset(base_ms + index))
                .expect("query entry");
        }
        let answer = consumer
            .offsets_for_times(query, client::REQUEST_TIMEOUT)
            .expect("ListOffsets by timestamp");
        for element in answer.elements() {
            assert_eq!(
                element.offset(),
                want,
                "{TOPIC}/{} offset for timestamp base+{index}",
                element.partition()
            );
        }
    }
}

#[test]
fn graceful_restart_keeps_everything() {
    let mut broker = BrokerProcess::start(options(2));
    let base_ms = client::now_ms();
    let expected = produce_expected(&broker, base_ms);
    assert!(
        segment_count(&broker, 0) > 1,
        "log.segment.bytes=1048576 (the least Kafka allows) should roll partition 0 at least once"
    );

    broker.restart();
    assert_eq!(
        broker.startup.recovered_partitions, 6,
        "recovered partitions"
    );
    assert_eq!(
        client::list_topics(&broker.bootstrap()).get(TOPIC),
        Some(&6)
    );
    assert_list_offsets(&broker, base_ms);
    client::assert_topic(&broker.bootstrap(), TOPIC, &expected);

    // A second restart after reading changes nothing either.
    broker.restart();
    client::assert_topic(&broker.bootstrap(), TOPIC, &expected);
}

#[test]
fn restart_with_another_core_count_keeps_everything() {
    let mut broker = BrokerProcess::start(options(1));
    let base_ms = client::now_ms();
    let expected = produce_expected(&broker, base_ms);

    broker.restart_with_cores(3);
    assert_eq!(broker.startup.shards, 3);
    assert_eq!(
        broker.startup.recovered_partitions, 6,
        "recovered partitions"
    );
    assert_list_offsets(&broker, base_ms);
    client::assert_topic(&broker.bootstrap(), TOPIC, &expected);

    // New records keep going on from the recovered end.
    let producer = client::producer(&broker.bootstrap(), &[]);
    let more = client::records(PARTITIONS, 1, base_ms + 10_000);
    let offsets = client::produce(&producer, TOPIC, &more);
    let end = i64::from(PER_PARTITION);
    assert_eq!(offsets, vec![vec![end]; 6]);
}

/// One idempotent producer lives across a graceful restart on the same port:
/// its records before and after land exactly once, in order (the broker
/// keeps the producer's id, epoch and sequences across the restart).
#[test]
fn idempotent_producer_continues_across_restart() {
    let mut broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, 2);
    let expected = client::records(2, 600, client::now_ms());
    let (before, after): (Vec<Vec<Record>>, Vec<Vec<Record>>) = expected
        .iter()
        .map(|list| (list[..300].to_vec(), list[300..].to_vec()))
        .unzip();
    let producer = client::producer(&bootstrap, &[("enable.idempotence", "true")]);
    assert_eq!(
        client::produce(&producer, TOPIC, &before),
        vec![(0..300).collect::<Vec<i64>>(); 2]
    );

    broker.restart_on_same_port();
    assert_eq!(
        client::produce(&producer, TOPIC, &after),
        vec![(300..600).collect::<Vec<i64>>(); 2]
    );
    client::assert_topic(&bootstrap, TOPIC, &expected);
}

/// `replication-offset-checkpoint` is written while the broker runs (every
/// `replica.high.watermark.checkpoint.interval.ms`), not only by a clean
/// stop; after a kill -9 the broker starts each high watermark there, and
/// a partition whose only in-sync replica is this broker vouches for its
/// whole log again at once: every record is readable and the end offsets
/// are the log ends.
#[test]
fn high_watermarks_are_checkpointed_while_running_and_a_crash_restarts_from_them() {
    let mut broker = BrokerProcess::start(
        rafka(2).property("replica.high.watermark.checkpoint.interval.ms", "100"),
    );
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, 2);
    let expected = client::records(2, 500, client::now_ms());
    let producer = client::producer(&bootstrap, &[("acks", "all")]);
    assert_eq!(
        client::produce(&producer, TOPIC, &expected),
        vec![(0..500).collect::<Vec<i64>>(); 2]
    );
    let checkpoint = broker.data_dir().join("replication-offset-checkpoint");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let written = loop {
        let text = std::fs::read_to_string(&checkpoint).unwrap_or_default();
        if text.contains(&format!("{TOPIC} 0 500\n")) && text.contains(&format!("{TOPIC} 1 500\n"))
        {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never held both high watermarks: {text:?}",
            checkpoint.display()
        );
        std::thread::park_timeout(std::time::Duration::from_millis(50));
    };
    assert!(
        written.starts_with("0\n"),
        "Kafka's version line: {written:?}"
    );

    broker.kill9();
    broker.restart();
    for partition in 0..2 {
        assert_eq!(
            client::watermarks(&broker.bootstrap(), TOPIC, partition),
            (0, 500),
            "{TOPIC}/{partition} earliest/latest after the crash"
        );
    }
    client::assert_topic(&broker.bootstrap(), TOPIC, &expected);
}
