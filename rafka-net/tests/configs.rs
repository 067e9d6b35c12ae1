//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs end to end on
//! a real broker core, at their lowest and highest versions: values,
//! sources and synonyms; every refusal; changes applied live by the
//! running partitions (on every shard) and kept across a restart. The
//! test broker is node 3 (rafka-testkit's `NODE_ID`).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_testkit::proto::{produce_answers, produce_request};
use rafka_testkit::records::{batch, batches_of, segment_files, value_batch};
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

// Kafka's ConfigSource codes.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const DYNAMIC_BROKER_LOGGER_CONFIG: i8 = 6;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn describe_request(resources: &[(i8, &str, Option<&[&str]>)]) -> DescribeConfigsRequest {
    let resources = resources
        .iter()
        .map(|(kind, name, keys)| {
            DescribeConfigsResource::default()
                .with_resource_type(*kind)
                .with_resource_name(s(name))
                .with_configuration_keys(keys.map(|keys| keys.iter().map(|k| s(k)).collect()))
        })
        .collect();
    DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(true)
}

async fn describe(broker: &Broker, version: i16, kind: i8, name: &str) -> DescribeConfigsResult {
    let request = describe_request(&[(kind, name, None)]).with_include_documentation(version >= 3);
    let response: DescribeConfigsResponse = broker.call(version, &request).await;
    assert_eq!(response.results.len(), 1);
    response.results.into_iter().next().expect("one result")
}

/// name -> (value, source) of a described resource.
fn values(result: &DescribeConfigsResult) -> BTreeMap<String, (Option<String>, i8)> {
    result
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string());
            (c.name.to_string(), (value, c.config_source))
        })
        .collect()
}

fn value_of(result: &DescribeConfigsResult, name: &str) -> (Option<String>, i8) {
    values(result)
        .remove(name)
        .unwrap_or_else(|| panic!("{name} is not described"))
}

/// One config operation: (key, op, value).
type Op<'a> = (&'a str, i8, Option<&'a str>);
/// One resource of an IncrementalAlterConfigs: (type, name, operations).
type Resource<'a> = (i8, &'a str, &'a [Op<'a>]);

fn incremental_request(
    resources: &[Resource<'_>],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    let resources = resources
        .iter()
        .map(|(kind, name, ops)| {
            let configs = ops
                .iter()
                .map(|(key, op, value)| {
                    incremental::AlterableConfig::default()
                        .with_name(s(key))
                        .with_config_operation(*op)
                        .with_value(value.map(s))
                })
                .collect();
            incremental::AlterConfigsResource::default()
                .with_resource_type(*kind)
                .with_resource_name(s(name))
                .with_configs(configs)
        })
        .collect();
    IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only)
}

/// (error code, message) of each resource of an IncrementalAlterConfigs.
async fn incremental_alter(
    broker: &Broker,
    version: i16,
    resources: &[Resource<'_>],
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let response: IncrementalAlterConfigsResponse = broker
        .call(version, &incremental_request(resources, validate_only))
        .await;
    response
        .responses
        .iter()
        .map(|r| {
            (
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

async fn legacy_alter(
    broker: &Broker,
    version: i16,
    kind: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
) -> (i16, Option<String>) {
    let configs = configs
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(s(key))
                .with_value(value.map(s))
        })
        .collect();
    let request =
        AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configs(configs)]);
    let response: AlterConfigsResponse = broker.call(version, &request).await;
    let answer = &response.responses[0];
    (
        answer.error_code,
        answer.error_message.as_ref().map(|m| m.to_string()),
    )
}

fn codes(outcomes: &[(i16, Option<String>)]) -> Vec<i16> {
    outcomes.iter().map(|(code, _)| *code).collect()
}

#[test]
fn describe_topic_broker_and_loggers_at_v1_and_v4() {
    let static_file = |c: &mut rafka_core::config::BrokerConfig| {
        let (parsed, _) = rafka_core::config::BrokerConfig::from_properties_text(
            "num.partitions=3\nlog.retention.hours=24\n",
        )
        .expect("config");
        c.num_partitions = parsed.num_partitions;
        c.topic_defaults = parsed.topic_defaults;
        c.explicit = parsed.explicit;
    };
    TestBroker::builder()
        .config(static_file)
        .run(|broker| async move {
            broker
                .create_topic_id("described", 1, &[("cleanup.policy", "compact")])
                .await;
            for version in [1, 4] {
                let topic = describe(&broker, version, TOPIC, "described").await;
                assert_eq!(topic.error_code, NONE);
                assert_eq!(
                    (topic.resource_type, topic.resource_name.as_str()),
                    (TOPIC, "described")
                );
                assert_eq!(topic.configs.len(), 26);
                assert_eq!(
                    value_of(&topic, "cleanup.policy"),
                    (Some("compact".into()), DYNAMIC_TOPIC_CONFIG)
                );
                assert_eq!(
                    value_of(&topic, "retention.ms"),
                    (Some("86400000".into()), STATIC_BROKER_CONFIG)
                );
                assert_eq!(
                    value_of(&topic, "segment.bytes"),
                    (Some("1073741824".into()), DEFAULT_CONFIG)
                );
                let retention = topic
                    .configs
                    .iter()
                    .find(|c| c.name.as_str() == "retention.ms")
                    .expect("retention.ms");
                let synonyms: Vec<(String, Option<String>, i8)> = retention
                    .synonyms
                    .iter()
                    .map(|s| {
                        let value = s.value.as_ref().map(|v| v.to_string());
                        (s.name.to_string(), value, s.source)
                    })
                    .collect();
                assert_eq!(
                    synonyms,
                    vec![
                        // As the file wrote it, then Kafka's default.
                        (
                            "log.retention.hours".into(),
                            Some("24".into()),
                            STATIC_BROKER_CONFIG
                        ),
                        (
                            "log.retention.hours".into(),
                            Some("168".into()),
                            DEFAULT_CONFIG
                        ),
                    ]
                );
                assert!(!retention.read_only && !retention.is_sensitive);
                if version >= 3 {
                    assert_eq!(retention.config_type, 5, "LONG");
                    assert!(retention.documentation.is_some());
                }

                let node = describe(&broker, version, BROKER, "3").await;
                assert_eq!(node.error_code, NONE);
                assert_eq!(
                    value_of(&node, "num.partitions"),
                    (Some("3".into()), STATIC_BROKER_CONFIG)
                );
                assert_eq!(
                    value_of(&node, "log.retention.hours"),
                    (Some("24".into()), STATIC_BROKER_CONFIG)
                );
                assert_eq!(
                    value_of(&node, "log.segment.bytes"),
                    (Some("1073741824".into()), DEFAULT_CONFIG)
                );
                let read_only: BTreeMap<String, bool> = node
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.read_only))
                    .collect();
                assert!(read_only["num.partitions"]);
                assert!(!read_only["log.segment.bytes"]);

                let default = describe(&broker, version, BROKER, "").await;
                assert_eq!((default.error_code, default.configs.len()), (NONE, 0));

                let loggers = describe(&broker, version, BROKER_LOGGER, "3").await;
                assert_eq!(loggers.error_code, NONE);
                let (root, source) = value_of(&loggers, "root");
                assert!(root.is_some());
                assert_eq!(source, DYNAMIC_BROKER_LOGGER_CONFIG);

                let filtered: DescribeConfigsResponse = broker
                    .call(
                        version,
                        &describe_request(&[
                            (TOPIC, "described", Some(&["segment.ms", "no.such.key"])),
                            (TOPIC, "missing", None),
                            (BROKER, "7", None),
                            (32, "group", None),
                        ]),
                    )
                    .await;
                let summary: Vec<(i16, usize)> = filtered
                    .results
                    .iter()
                    .map(|r| (r.error_code, r.configs.len()))
                    .collect();
                assert_eq!(
                    summary,
                    vec![
                        (NONE, 1),
                        (UNKNOWN_TOPIC_OR_PARTITION, 0),
                        (INVALID_REQUEST, 0),
                        (INVALID_REQUEST, 0)
                    ]
                );
            }
        });
}

#[test]
fn incremental_alter_validates_like_kafka_and_validate_only_changes_nothing() {
    TestBroker::builder().run(|broker| async move {
        broker.create_topic_id("altered", 1, &[]).await;
        for version in [0, 1] {
            let refused = incremental_alter(
                &broker,
                version,
                &[
                    (TOPIC, "altered", &[("retention.ms", SET, Some("soon"))]),
                    (
                        TOPIC,
                        "altered-missing",
                        &[("retention.ms", SET, Some("1"))],
                    ),
                    (TOPIC, "x", &[("no.such.config", SET, Some("1"))]),
                    (BROKER, "3", &[("num.partitions", SET, Some("4"))]),
                    (BROKER, "3", &[("log.retention.hours", SET, Some("4"))]),
                    (BROKER, "zero", &[("log.retention.ms", SET, Some("4"))]),
                    (BROKER_LOGGER, "3", &[("rafka_net", SET, Some("LOUD"))]),
                    (BROKER_LOGGER, "7", &[("rafka_net", SET, Some("INFO"))]),
                ],
                false,
            )
            .await;
            assert_eq!(
                codes(&refused),
                vec![
                    INVALID_CONFIG,
                    UNKNOWN_TOPIC_OR_PARTITION,
                    UNKNOWN_TOPIC_OR_PARTITION,
                    INVALID_REQUEST, // BROKER "3" named twice
                    INVALID_REQUEST,
                    INVALID_REQUEST,
                    INVALID_CONFIG,
                    INVALID_REQUEST,
                ]
            );
            let message = refused[0].1.as_deref().unwrap_or_default();
            assert!(message.contains("retention.ms"), "{message}");

            let single = |ops: &'static [(&'static str, i8, Option<&'static str>)]| {
                let broker = &broker;
                async move {
                    incremental_alter(broker, version, &[(TOPIC, "altered", ops)], false).await
                }
            };
            assert_eq!(
                codes(&single(&[("segment.ms", SET, None)]).await),
                [INVALID_REQUEST]
            );
            assert_eq!(
                codes(&single(&[("segment.ms", 9, Some("1"))]).await),
                [INVALID_REQUEST]
            );
            assert_eq!(
                codes(
                    &single(&[("segment.ms", SET, Some("1")), ("segment.ms", DELETE, None)]).await
                ),
                [INVALID_REQUEST]
            );
            assert_eq!(
                codes(&single(&[("no.such.config", SET, Some("1"))]).await),
                [INVALID_CONFIG]
            );
            assert_eq!(
                codes(&single(&[("retention.ms", APPEND, Some("1"))]).await),
                [INVALID_CONFIG]
            );
            assert_eq!(
                codes(&single(&[("segment.bytes", SET, Some("1000"))]).await),
                [INVALID_CONFIG],
                "below Kafka's 1 MiB minimum"
            );
            let broker_refusals = incremental_alter(
                &broker,
                version,
                &[(BROKER, "3", &[("num.partitions", SET, Some("4"))])],
                false,
            )
            .await;
            assert_eq!(codes(&broker_refusals), [INVALID_CONFIG]);
            let message = broker_refusals[0].1.as_deref().unwrap_or_default();
            assert!(message.contains("dynamically"), "{message}");

            let validated = incremental_alter(
                &broker,
                version,
                &[
                    (TOPIC, "altered", &[("retention.ms", SET, Some("1234"))]),
                    (BROKER, "", &[("log.segment.bytes", SET, Some("2097152"))]),
                    (BROKER_LOGGER, "3", &[("rafka_net", SET, Some("debug"))]),
                ],
                true,
            )
            .await;
            assert_eq!(codes(&validated), [NONE, NONE, NONE]);
            let topic = describe(&broker, 4, TOPIC, "altered").await;
            assert_eq!(
                value_of(&topic, "retention.ms"),
                (Some("604800000".into()), DEFAULT_CONFIG)
            );
            assert_eq!(describe(&broker, 4, BROKER, "").await.configs.len(), 0);
            let loggers = describe(&broker, 4, BROKER_LOGGER, "3").await;
            assert!(!values(&loggers).contains_key("rafka_net"));
        }
    });
}

#[test]
fn list_operations_and_loggers() {
    TestBroker::builder().run(|broker| async move {
        broker.create_topic_id("listed", 1, &[]).await;
        let appended = incremental_alter(
            &broker,
            1,
            &[(
                TOPIC,
                "listed",
                &[("cleanup.policy", APPEND, Some("compact"))],
            )],
            false,
        )
        .await;
        assert_eq!(codes(&appended), [NONE]);
        let topic = describe(&broker, 4, TOPIC, "listed").await;
        assert_eq!(
            value_of(&topic, "cleanup.policy"),
            (Some("delete,compact".into()), DYNAMIC_TOPIC_CONFIG)
        );
        let subtracted = incremental_alter(
            &broker,
            0,
            &[(
                TOPIC,
                "listed",
                &[("cleanup.policy", SUBTRACT, Some("delete"))],
            )],
            false,
        )
        .await;
        assert_eq!(codes(&subtracted), [NONE]);
        let topic = describe(&broker, 1, TOPIC, "listed").await;
        assert_eq!(
            value_of(&topic, "cleanup.policy"),
            (Some("compact".into()), DYNAMIC_TOPIC_CONFIG)
        );
        // Subtracting the last item leaves an empty list: invalid.
        let emptied = incremental_alter(
            &broker,
            1,
            &[(
                TOPIC,
                "listed",
                &[("cleanup.policy", SUBTRACT, Some("compact"))],
            )],
            false,
        )
        .await;
        assert_eq!(codes(&emptied), [INVALID_CONFIG]);

        let logger = incremental_alter(
            &broker,
            1,
            &[(
                BROKER_LOGGER,
                "3",
                &[("rafka_shard.cleaner", SET, Some("debug"))],
            )],
            false,
        )
        .await;
        assert_eq!(codes(&logger), [NONE]);
        let loggers = describe(&broker, 4, BROKER_LOGGER, "3").await;
        assert_eq!(
            value_of(&loggers, "rafka_shard.cleaner"),
            (Some("DEBUG".into()), DYNAMIC_BROKER_LOGGER_CONFIG)
        );
        let refused = incremental_alter(
            &broker,
            1,
            &[(BROKER_LOGGER, "3", &[("root", DELETE, None)])],
            false,
        )
        .await;
        assert_eq!(codes(&refused), [INVALID_CONFIG]);
        let appended = incremental_alter(
            &broker,
            1,
            &[(
                BROKER_LOGGER,
                "3",
                &[("rafka_shard", APPEND, Some("debug"))],
            )],
            false,
        )
        .await;
        assert_eq!(codes(&appended), [INVALID_REQUEST]);
        let deleted = incremental_alter(
            &broker,
            1,
            &[(BROKER_LOGGER, "3", &[("rafka_shard.cleaner", DELETE, None)])],
            false,
        )
        .await;
        assert_eq!(codes(&deleted), [NONE]);
        let loggers = describe(&broker, 4, BROKER_LOGGER, "3").await;
        assert!(!values(&loggers).contains_key("rafka_shard.cleaner"));
    });
}

#[test]
fn legacy_alter_replaces_every_override() {
    TestBroker::builder().run(|broker| async move {
        broker
            .create_topic_id(
                "replaced",
                1,
                &[("retention.ms", "1000"), ("segment.ms", "5000")],
            )
            .await;
        for version in [0, 2] {
            let answer = legacy_alter(
                &broker,
                version,
                TOPIC,
                "replaced",
                &[("max.message.bytes", Some("2048"))],
            )
            .await;
            assert_eq!(answer.0, NONE, "{answer:?}");
            let topic = describe(&broker, 4, TOPIC, "replaced").await;
            let overridden: Vec<String> = topic
                .configs
                .iter()
                .filter(|c| c.config_source == DYNAMIC_TOPIC_CONFIG)
                .map(|c| format!("{}={}", c.name.as_str(), c.value.as_deref().unwrap_or("")))
                .collect();
            assert_eq!(overridden, vec!["max.message.bytes=2048".to_string()]);
            assert_eq!(
                legacy_alter(
                    &broker,
                    version,
                    TOPIC,
                    "replaced",
                    &[("retention.ms", None)]
                )
                .await
                .0,
                INVALID_REQUEST
            );
            assert_eq!(
                legacy_alter(
                    &broker,
                    version,
                    BROKER_LOGGER,
                    "3",
                    &[("root", Some("INFO"))]
                )
                .await
                .0,
                INVALID_REQUEST
            );
            assert_eq!(
                legacy_alter(
                    &broker,
                    version,
                    TOPIC,
                    "replaced",
                    &[("retention.ms", Some("soon"))]
                )
                .await
                .0,
                INVALID_CONFIG
            );
            assert_eq!(
                legacy_alter(&broker, version, TOPIC, "nope", &[]).await.0,
                UNKNOWN_TOPIC_OR_PARTITION
            );
            let broker_default = legacy_alter(
                &broker,
                version,
                BROKER,
                "",
                &[("log.retention.ms", Some("3600000"))],
            )
            .await;
            assert_eq!(broker_default.0, NONE);
            let default = describe(&broker, 4, BROKER, "").await;
            assert_eq!(
                value_of(&default, "log.retention.ms"),
                (Some("3600000".into()), DYNAMIC_DEFAULT_BROKER_CONFIG)
            );
            // The topic override wins over the dynamic default.
            let cleared = legacy_alter(&broker, version, BROKER, "", &[]).await;
            assert_eq!(cleared.0, NONE);
            assert_eq!(describe(&broker, 4, BROKER, "").await.configs.len(), 0);
        }
    });
}

/// Produce of one `value_len`-byte record through the Produce handler: the
/// partition's error code.
async fn produce_code(broker: &Broker, topic: &str, value_len: usize) -> i16 {
    let value = "v".repeat(value_len);
    let request = produce_request(-1, vec![(topic, vec![(0, Some(value_batch(&value)))])]);
    let response: ProduceResponse = broker.call(9, &request).await;
    produce_answers(&response)[0].1.error_code
}

/// A lowered `segment.bytes` rolls the running partition on its next
/// append, and a lowered `max.message.bytes` refuses the next produce; a
/// dynamic broker default does the same for topics without an override,
/// on whichever shard owns them.
#[test]
fn changes_apply_to_running_partitions_on_every_shard() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("live", 1, &[]).await;
        broker.create_topic_id("inherits", 1, &[]).await;
        let chunk = "x".repeat(700 * 1024);
        for topic in ["live", "inherits"] {
            broker.produce(topic, 0, value_batch(&chunk)).await;
            broker.produce(topic, 0, value_batch(&chunk)).await;
            assert_eq!(segment_files(&broker.partition_dir(topic, 0)).len(), 1);
        }
        let altered = incremental_alter(
            &broker,
            1,
            &[(TOPIC, "live", &[("segment.bytes", SET, Some("1048576"))])],
            false,
        )
        .await;
        assert_eq!(codes(&altered), [NONE]);
        broker.produce("live", 0, value_batch(&chunk)).await;
        assert_eq!(segment_files(&broker.partition_dir("live", 0)).len(), 2);
        broker.produce("inherits", 0, value_batch(&chunk)).await;
        assert_eq!(segment_files(&broker.partition_dir("inherits", 0)).len(), 1);

        let cluster_default = incremental_alter(
            &broker,
            0,
            &[(BROKER, "", &[("log.segment.bytes", SET, Some("1048576"))])],
            false,
        )
        .await;
        assert_eq!(codes(&cluster_default), [NONE]);
        broker.produce("inherits", 0, value_batch(&chunk)).await;
        assert_eq!(segment_files(&broker.partition_dir("inherits", 0)).len(), 2);
        let described = describe(&broker, 4, TOPIC, "inherits").await;
        assert_eq!(
            value_of(&described, "segment.bytes"),
            (Some("1048576".into()), DYNAMIC_DEFAULT_BROKER_CONFIG)
        );

        assert_eq!(produce_code(&broker, "inherits", 2000).await, NONE);
        let per_broker = incremental_alter(
            &broker,
            1,
            &[(BROKER, "3", &[("message.max.bytes", SET, Some("1024"))])],
            false,
        )
        .await;
        assert_eq!(codes(&per_broker), [NONE]);
        assert_eq!(
            produce_code(&broker, "inherits", 2000).await,
            MESSAGE_TOO_LARGE
        );
        let described = describe(&broker, 4, TOPIC, "inherits").await;
        assert_eq!(
            value_of(&described, "max.message.bytes"),
            (Some("1024".into()), DYNAMIC_BROKER_CONFIG)
        );
        // A topic override still wins over the broker's dynamic value.
        let topic_override = incremental_alter(
            &broker,
            1,
            &[(
                TOPIC,
                "inherits",
                &[("max.message.bytes", SET, Some("1048588"))],
            )],
            false,
        )
        .await;
        assert_eq!(codes(&topic_override), [NONE]);
        assert_eq!(produce_code(&broker, "inherits", 2000).await, NONE);
    });
}

/// Every kind of change survives a clean restart (the metadata log and its
/// snapshot carry them).
#[test]
fn altered_configs_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    TestBroker::builder()
        .data_dir(dir.path())
        .run(|broker| async move {
            broker.create_topic_id("kept", 2, &[]).await;
            let outcome = incremental_alter(
                &broker,
                1,
                &[
                    (TOPIC, "kept", &[("retention.ms", SET, Some("123456"))]),
                    (BROKER, "", &[("log.retention.bytes", SET, Some("999999"))]),
                    (BROKER, "3", &[("log.cleanup.policy", SET, Some("compact"))]),
                ],
                false,
            )
            .await;
            assert_eq!(codes(&outcome), [NONE, NONE, NONE]);
        });
    TestBroker::builder()
        .data_dir(dir.path())
        .run(|broker| async move {
            let topic = describe(&broker, 4, TOPIC, "kept").await;
            assert_eq!(
                value_of(&topic, "retention.ms"),
                (Some("123456".into()), DYNAMIC_TOPIC_CONFIG)
            );
            assert_eq!(
                value_of(&topic, "retention.bytes"),
                (Some("999999".into()), DYNAMIC_DEFAULT_BROKER_CONFIG)
            );
            assert_eq!(
                value_of(&topic, "cleanup.policy"),
                (Some("compact".into()), DYNAMIC_BROKER_CONFIG)
            );
        });
}

/// A lowered `retention.ms` deletes the closed segments of a running
/// partition at the next retention check, with no restart.
#[test]
fn lowered_retention_deletes_old_segments_at_the_next_check() {
    let fast_checks = |c: &mut rafka_core::config::BrokerConfig| {
        c.log_retention_check_interval_ms = 50;
    };
    TestBroker::builder()
        .config(fast_checks)
        .run(|broker| async move {
            broker
                .create_topic_id("expiring", 1, &[("segment.bytes", "1048576")])
                .await;
            let chunk = "x".repeat(700 * 1024);
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_millis() as i64;
            for _ in 0..4 {
                // Stamped now: the default 7-day retention keeps them.
                broker
                    .produce("expiring", 0, batch(&[(&chunk, now_ms)]))
                    .await;
            }
            let dir = broker.partition_dir("expiring", 0);
            // One 700 KiB batch per 1 MiB segment.
            assert_eq!(segment_files(&dir).len(), 4);
            let lowered = incremental_alter(
                &broker,
                1,
                &[(TOPIC, "expiring", &[("retention.ms", SET, Some("1"))])],
                false,
            )
            .await;
            assert_eq!(codes(&lowered), [NONE]);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while segment_files(&dir).len() > 1 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "retention never deleted the closed segment"
                );
                glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
            }
            let left = segment_files(&dir);
            let offsets: Vec<i64> = batches_of(&left[0]).iter().map(|b| b.base_offset).collect();
            assert_eq!(offsets, vec![3], "only the active segment is left");
        });
}
