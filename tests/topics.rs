//! Topic lifecycle against the real broker with librdkafka: auto-creation on
//! produce (on by default, `num.partitions`), no creation when it is off,
//! DeleteTopics removing metadata and data, re-creation starting empty,
//! CreatePartitions growing a topic for good, DeleteRecords trimming one
//! for good, AlterConfigs changes that survive kill -9.

mod support;

use rafka_testkit::BrokerProcess;
use rdkafka::admin::{ConfigSource, ResourceSpecifier};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use support::client;
use support::rafka;

/// Produces one keyed record to a topic that does not exist and returns the
/// partition count the broker then lists for it.
fn produce_to_missing_topic(broker: &BrokerProcess, topic: &str) -> usize {
    let bootstrap = broker.bootstrap();
    assert!(!client::list_topics(&bootstrap).contains_key(topic));
    let producer = client::producer(&bootstrap, &[]);
    let record = client::record(0, 1, client::now_ms());
    let (partition, offset) = client::produce_unassigned(&producer, topic, &record)
        .unwrap_or_else(|error| panic!("produce to auto-created {topic}: {error}"));
    assert_eq!(offset, 0, "first record of a new topic");
    let topics = client::list_topics(&bootstrap);
    let partitions = *topics
        .get(topic)
        .unwrap_or_else(|| panic!("{topic} not listed after auto-creation: {topics:?}"));
    assert!(usize::try_from(partition).is_ok_and(|p| p < partitions));
    partitions
}

#[test]
fn auto_create_uses_one_partition_by_default() {
    let broker = BrokerProcess::start(rafka(2));
    assert_eq!(produce_to_missing_topic(&broker, "auto-default"), 1);
    assert!(broker.partition_dir("auto-default", 0).is_dir());
}

#[test]
fn auto_create_uses_num_partitions() {
    let options = rafka(2)
        .property("auto.create.topics.enable", "true")
        .property("num.partitions", "3");
    let broker = BrokerProcess::start(options);
    assert_eq!(produce_to_missing_topic(&broker, "auto-three"), 3);
    for partition in 0..3 {
        assert!(broker.partition_dir("auto-three", partition).is_dir());
    }
}

#[test]
fn no_auto_create_when_disabled() {
    let options = rafka(1).property("auto.create.topics.enable", "false");
    let broker = BrokerProcess::start(options);
    let bootstrap = broker.bootstrap();
    // librdkafka gives up on a topic the broker keeps reporting unknown
    // after topic.metadata.propagation.max.ms.
    let producer = client::producer(
        &bootstrap,
        &[
            ("topic.metadata.propagation.max.ms", "2000"),
            ("message.timeout.ms", "10000"),
        ],
    );
    let record = client::record(0, 1, client::now_ms());
    let result = client::produce_unassigned(&producer, "never-created", &record);
    assert!(
        matches!(
            result,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition
            ))
        ),
        "produce to a missing topic with auto-create off: {result:?}"
    );
    assert!(!client::list_topics(&bootstrap).contains_key("never-created"));
    assert!(!broker.partition_dir("never-created", 0).exists());
}

/// Names in the data dir that belong to `topic` (`<topic>-<n>` and any
/// Kafka-style `<topic>-<n>.<id>-delete` leftovers).
fn topic_dirs(broker: &BrokerProcess, topic: &str) -> Vec<String> {
    let prefix = format!("{topic}-");
    let entries = std::fs::read_dir(broker.data_dir()).expect("read data dir");
    let mut names: Vec<String> = entries
        .map(|entry| {
            entry
                .expect("data dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| {
            name.strip_prefix(&prefix)
                .and_then(|rest| rest.split('.').next())
                .is_some_and(|number| number.parse::<u32>().is_ok())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn delete_removes_metadata_and_data_then_recreate_is_empty() {
    let options = rafka(2).property("auto.create.topics.enable", "false");
    let mut broker = BrokerProcess::start(options);
    let bootstrap = broker.bootstrap();
    let topic = "doomed";
    client::create_topic(&bootstrap, topic, 2);
    let producer = client::producer(&bootstrap, &[]);
    let expected = client::records(2, 50, client::now_ms());
    client::produce(&producer, topic, &expected);
    drop(producer);
    assert_eq!(topic_dirs(&broker, topic), ["doomed-0", "doomed-1"]);

    assert_eq!(
        client::delete_topic(&bootstrap, topic),
        Ok(topic.to_owned())
    );
    let topics = client::list_topics(&bootstrap);
    assert!(
        !topics.contains_key(topic),
        "deleted topic still listed: {topics:?}"
    );
    assert!(!broker.partition_dir(topic, 0).exists());
    assert!(!broker.partition_dir(topic, 1).exists());
    assert_eq!(
        client::delete_topic(&bootstrap, topic),
        Err((topic.to_owned(), RDKafkaErrorCode::UnknownTopicOrPartition)),
        "deleting it again"
    );

    // The deletion is durable and leaves no data behind once shut down.
    broker.restart();
    let bootstrap = broker.bootstrap();
    assert!(!client::list_topics(&bootstrap).contains_key(topic));
    assert_eq!(topic_dirs(&broker, topic), Vec::<String>::new());

    client::create_topic(&bootstrap, topic, 2);
    for partition in 0..2 {
        assert_eq!(client::watermarks(&bootstrap, topic, partition), (0, 0));
    }
    let producer = client::producer(&bootstrap, &[]);
    let fresh = client::records(2, 3, client::now_ms());
    let offsets = client::produce(&producer, topic, &fresh);
    assert_eq!(offsets, vec![vec![0, 1, 2], vec![0, 1, 2]]);
    client::assert_topic(&bootstrap, topic, &fresh);
}

#[test]
fn create_partitions_grows_a_topic_that_survives_kill9() {
    let mut broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, "growing", 2);
    assert_eq!(
        client::create_partitions(&bootstrap, "growing", 5),
        Ok("growing".to_string())
    );
    assert_eq!(
        client::create_partitions(&bootstrap, "growing", 3),
        Err(("growing".to_string(), RDKafkaErrorCode::InvalidPartitions))
    );
    assert_eq!(
        client::create_partitions(&bootstrap, "absent", 3),
        Err((
            "absent".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))
    );
    assert_eq!(client::list_topics(&bootstrap).get("growing"), Some(&5));
    // The new partitions take records from a producer that refreshed its
    // metadata.
    let expected = client::records(5, 10, client::now_ms());
    let producer = client::producer(&bootstrap, &[]);
    let offsets = client::produce(&producer, "growing", &expected);
    client::assert_offsets_in_send_order("growing", &offsets);

    // Acknowledged means durable: the growth and the records survive kill -9.
    broker.kill9();
    broker.restart();
    let bootstrap = broker.bootstrap();
    assert_eq!(client::list_topics(&bootstrap).get("growing"), Some(&5));
    client::assert_topic(&bootstrap, "growing", &expected);
    broker.stop();
}

#[test]
fn delete_records_trims_a_topic_for_good_across_kill9() {
    let mut broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, "trimmed", 2);
    let expected = client::records(2, 50, client::now_ms());
    let producer = client::producer(&bootstrap, &[]);
    client::produce(&producer, "trimmed", &expected);
    assert_eq!(
        client::delete_records(&bootstrap, "trimmed", &[(0, 20), (1, 50)]),
        vec![(0, Ok(20)), (1, Ok(50))]
    );
    assert_eq!(
        client::delete_records(&bootstrap, "trimmed", &[(0, 51)]),
        vec![(0, Err(RDKafkaErrorCode::OffsetOutOfRange))]
    );
    assert_eq!(client::watermarks(&bootstrap, "trimmed", 0), (20, 50));
    assert_eq!(client::watermarks(&bootstrap, "trimmed", 1), (50, 50));

    // Acknowledged means durable: the deleted records stay deleted.
    broker.kill9();
    broker.restart();
    let bootstrap = broker.bootstrap();
    assert_eq!(client::watermarks(&bootstrap, "trimmed", 0), (20, 50));
    assert_eq!(client::watermarks(&bootstrap, "trimmed", 1), (50, 50));
    broker.stop();
}

#[test]
fn altered_configs_survive_kill9() {
    let mut broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, "configured", 2);
    let topic = ResourceSpecifier::Topic("configured");
    let node = ResourceSpecifier::Broker(0);
    assert_eq!(
        client::alter_configs(
            &bootstrap,
            topic,
            &[("retention.ms", "3600000"), ("cleanup.policy", "compact")]
        ),
        Ok(())
    );
    assert_eq!(
        client::alter_configs(&bootstrap, node, &[("log.segment.bytes", "2097152")]),
        Ok(())
    );
    // Refusals are checked on the wire (rafka-net/tests/configs.rs) and
    // with confluent-kafka: the rdkafka crate drops AlterConfigs'
    // and DescribeConfigs' per-resource error codes (its futures answer Ok
    // for each resource).
    let expect = |bootstrap: &str| {
        let described = client::describe_configs(bootstrap, topic).expect("describe topic");
        assert_eq!(
            described["retention.ms"],
            (Some("3600000".to_string()), ConfigSource::DynamicTopic)
        );
        assert_eq!(
            described["cleanup.policy"],
            (Some("compact".to_string()), ConfigSource::DynamicTopic)
        );
        assert_eq!(
            described["segment.bytes"],
            (Some("2097152".to_string()), ConfigSource::DynamicBroker)
        );
        assert_eq!(
            described["max.message.bytes"],
            (Some("1048588".to_string()), ConfigSource::Default)
        );
        let node = client::describe_configs(bootstrap, node).expect("describe broker");
        assert_eq!(
            node["log.segment.bytes"],
            (Some("2097152".to_string()), ConfigSource::DynamicBroker)
        );
        assert_eq!(
            node["node.id"],
            (Some("0".to_string()), ConfigSource::Default)
        );
    };
    expect(&bootstrap);
    // Acknowledged means durable: every change survives kill -9.
    broker.kill9();
    broker.restart();
    expect(&broker.bootstrap());
    broker.stop();
}
