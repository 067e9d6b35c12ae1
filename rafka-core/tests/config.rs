//! Broker config from `server.properties` text and topic config overrides.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rafka_core::config::{
    BrokerConfig, ConfigError, ConfigSource, ConfigWarning, Expected, InvalidValue, Property,
    SecurityProtocol, TopicConfigError, TopicDefaults,
};

fn load(text: &str) -> (BrokerConfig, Vec<ConfigWarning>) {
    match BrokerConfig::from_properties_text(text) {
        Ok(loaded) => loaded,
        Err(e) => panic!("config rejected: {e}"),
    }
}

fn load_err(text: &str) -> ConfigError {
    match BrokerConfig::from_properties_text(text) {
        Ok(_) => panic!("config accepted: {text}"),
        Err(e) => e,
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn empty_file_gives_kafka_defaults() {
    let (c, warnings) = load("");
    assert!(warnings.is_empty());
    assert_eq!(c.node_id, 0);
    assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    assert_eq!(c.advertised_listeners, c.listeners);
    assert_eq!(c.log_dirs, vec![PathBuf::from("./rafka-data")]);
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert!(c.auto_create_topics_enable && c.delete_topic_enable);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.offsets_retention_minutes, 10_080);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(
        (
            c.group_min_session_timeout_ms,
            c.group_max_session_timeout_ms
        ),
        (6000, 1_800_000)
    );
    assert_eq!(c.group_max_size, i32::MAX);
    assert_eq!(c.transaction_state_log_num_partitions, 50);
    assert_eq!(
        (
            c.offsets_topic_replication_factor,
            c.transaction_state_log_replication_factor,
            c.transaction_state_log_min_isr
        ),
        (3, 3, 2)
    );
    assert!(!c.write_caching);
    assert_eq!(c.flush_interval_ms, 0);
    assert_eq!(c.fetch_max_wait_ms, 30_000);
    assert_eq!(c.log_scrub_bytes_per_second, 16 << 20);
    assert_eq!(c.log_dir_min_free_bytes, None);
    assert_eq!((c.quota_window_num, c.quota_window_size_seconds), (11, 1));
    assert_eq!(c.quota_window(), rafka_core::quota::QuotaWindow::default());
    let t = &c.topic_defaults.config;
    assert_eq!(t.segment_bytes, 1 << 30);
    assert_eq!(t.segment_ms, 168 * 3_600_000);
    assert_eq!(t.retention_ms, 168 * 3_600_000);
    assert_eq!(t.retention_bytes, -1);
    assert_eq!(t.index_interval_bytes, 4096);
    assert_eq!(t.segment_index_bytes, 10 << 20);
    assert_eq!(t.max_message_bytes, 1_048_588);
}

#[test]
fn kafka_stock_file_parses_with_warnings() {
    let text = "\
# Kafka's KRaft server.properties, abridged
process.roles=broker,controller
node.id=3
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
controller.listener.names=CONTROLLER
advertised.listeners=PLAINTEXT://kafka1.example:9092
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL
num.network.threads=3
log.dirs=/var/lib/kafka-1,/var/lib/kafka-2
num.partitions=4
log.retention.hours=24
log.segment.bytes=536870912
log.retention.check.interval.ms=60000
my.plugin.setting=x
";
    let (c, warnings) = load(text);
    assert_eq!(c.node_id, 3);
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://:9092");
    assert_eq!(c.advertised_listeners[0].host, "kafka1.example");
    assert_eq!(
        c.log_dirs,
        vec![
            PathBuf::from("/var/lib/kafka-1"),
            PathBuf::from("/var/lib/kafka-2")
        ]
    );
    assert_eq!(
        c.metadata_dir(),
        PathBuf::from("/var/lib/kafka-1/__rafka_metadata")
    );
    assert_eq!(c.num_partitions, 4);
    assert_eq!(c.topic_defaults.config.retention_ms, 24 * 3_600_000);
    assert_eq!(c.topic_defaults.config.segment_bytes, 536_870_912);
    assert_eq!(c.log_retention_check_interval_ms, 60_000);
    let expected = vec![
        ConfigWarning::ControllerListenerSkipped {
            name: "CONTROLLER".into(),
        },
        ConfigWarning::UnknownKey {
            key: "my.plugin.setting".into(),
            line: 15,
        },
        ConfigWarning::NotApplicable {
            key: "num.network.threads".into(),
            line: 9,
        },
    ];
    assert_eq!(warnings, expected);
    // The cluster keys are rafka's now: stored, not warned about.
    assert_eq!(c.process_roles, rafka_core::config::ProcessRoles::COMBINED);
    assert_eq!(c.quorum.bootstrap_servers[0].to_string(), "localhost:9093");
    assert!(c.quorum_configured());
    assert_eq!(c.controller_address(), None);
}

#[test]
fn retention_precedence_ms_over_minutes_over_hours() {
    let (c, _) = load("log.retention.hours=1\nlog.retention.minutes=5\n");
    assert_eq!(c.topic_defaults.config.retention_ms, 300_000);
    let from = c.topic_defaults.from_broker.get("retention.ms").copied();
    assert_eq!(from, Some("log.retention.minutes"));
    let (c, _) = load("log.retention.hours=1\nlog.retention.minutes=5\nlog.retention.ms=1234\n");
    assert_eq!(c.topic_defaults.config.retention_ms, 1234);
    let (c, _) = load("log.retention.ms=-5\n");
    assert_eq!(c.topic_defaults.config.retention_ms, -1);
    let (c, _) = load("log.roll.hours=2\n");
    assert_eq!(c.topic_defaults.config.segment_ms, 7_200_000);
    let (c, _) = load("log.roll.hours=2\nlog.roll.ms=10\n");
    assert_eq!(c.topic_defaults.config.segment_ms, 10);
}

#[test]
fn later_entries_win_so_cli_overrides_apply() {
    let mut props = rafka_core::config::parse_properties("num.partitions=3\n").unwrap_or_default();
    props.push(Property {
        key: "num.partitions".into(),
        value: "8".into(),
        line: 0,
    });
    let loaded = BrokerConfig::from_properties(&props);
    assert_eq!(loaded.map(|(c, _)| c.num_partitions), Ok(8));
}

#[test]
fn rafka_extras() {
    let (c, _) = load("metadata.log.dir=/fast/meta\n");
    assert_eq!(
        c.metadata_dir(),
        PathBuf::from("/fast/meta/__rafka_metadata")
    );
    let (c, _) =
        load("write.caching=true\nrafka.flush.interval.ms=2\nsuper.users=User:admin;User:ops\n");
    assert!(c.write_caching);
    assert_eq!(c.flush_interval_ms, 2);
    assert_eq!(
        c.super_users,
        vec!["User:admin".to_string(), "User:ops".to_string()]
    );
    // No authorizer unless authorizer.class.name names one of Kafka's.
    assert_eq!(c.authorizer(), None);
    for class in [
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "kafka.security.authorizer.AclAuthorizer",
    ] {
        let (c, _) = load(&format!(
            "authorizer.class.name={class}\nsuper.users=User:admin\nallow.everyone.if.no.acl.found=true\n"
        ));
        let authorizer = c.authorizer().expect("enabled");
        assert_eq!(authorizer.super_users, ["User:admin".to_string()].into());
        assert!(authorizer.allow_everyone_if_no_acl_found);
    }
    let (c, _) = load("authorizer.class.name=kafka.security.authorizer.AclAuthorizer\n");
    assert_eq!(
        c.authorizer().map(|a| a.allow_everyone_if_no_acl_found),
        Some(false)
    );
    let err = load_err("authorizer.class.name=com.example.Mine\n");
    assert!(matches!(err, ConfigError::InvalidValue(ref v) if v.key == "authorizer.class.name"));
    let (c, _) = load("rafka.fetch.max.wait.ms=0\n");
    assert_eq!(c.fetch_max_wait_ms, 0);
    let (c, _) = load("rafka.fetch.max.wait.ms=2147483647\n");
    assert_eq!(c.fetch_max_wait_ms, i32::MAX);
    let err = load_err("rafka.fetch.max.wait.ms=-1\n");
    assert!(matches!(err, ConfigError::InvalidValue(ref v) if v.key == "rafka.fetch.max.wait.ms"));
    let (c, warnings) = load("rafka.log.scrub.bytes.per.second=0\n");
    assert_eq!((c.log_scrub_bytes_per_second, warnings.len()), (0, 0));
    let (c, _) = load("rafka.log.scrub.bytes.per.second=104857600\n");
    assert_eq!(c.log_scrub_bytes_per_second, 100 << 20);
    let err = load_err("rafka.log.scrub.bytes.per.second=-1\n");
    assert!(
        matches!(err, ConfigError::InvalidValue(ref v) if v.key == "rafka.log.scrub.bytes.per.second")
    );
    let (c, warnings) = load("rafka.log.dir.min.free.bytes=8388608\n");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.log_dir_min_free_bytes, Some(8 << 20));
    let (c, _) = load("rafka.log.dir.min.free.bytes=0\n");
    assert_eq!(c.log_dir_min_free_bytes, Some(0));
    let err = load_err("rafka.log.dir.min.free.bytes=-1\n");
    assert!(
        matches!(err, ConfigError::InvalidValue(ref v) if v.key == "rafka.log.dir.min.free.bytes")
    );
}

#[test]
fn bad_values_name_key_value_and_expectation() {
    let err = load_err("log.segment.bytes=1000\n");
    assert_eq!(
        err,
        ConfigError::InvalidValue(InvalidValue {
            key: "log.segment.bytes".into(),
            value: "1000".into(),
            expected: Expected::Int {
                min: 1 << 20,
                max: i32::MAX.into()
            },
        })
    );
    assert_eq!(
        err.to_string(),
        "invalid value \"1000\" for log.segment.bytes: expected an integer >= 1048576"
    );
    let err = load_err("auto.create.topics.enable=yes\n");
    assert!(
        matches!(err, ConfigError::InvalidValue(ref v) if v.key == "auto.create.topics.enable" && v.expected == Expected::Bool)
    );
    let err = load_err("listeners=PLAINTEXT//nohost\n");
    assert!(matches!(err, ConfigError::InvalidValue(ref v) if v.expected == Expected::Listeners));
    let err = load_err("advertised.listeners=SSL://host:9093\n");
    assert!(matches!(err, ConfigError::InvalidValue(ref v) if v.key == "advertised.listeners"));
    let err = load_err("node.id=1\nbroker.id=2\n");
    assert!(matches!(err, ConfigError::Conflict { key: "node.id", .. }));
    let err = load_err("log.cleanup.policy=archive\n");
    assert!(matches!(err, ConfigError::InvalidValue(ref v) if v.key == "log.cleanup.policy"));
    let err = load_err("super.users=admin\n");
    assert!(matches!(err, ConfigError::InvalidValue(ref v) if v.expected == Expected::Principals));
    let err = load_err("rafka.fetch.max.wait.ms=-1\n");
    assert!(matches!(err, ConfigError::InvalidValue(ref v) if v.key == "rafka.fetch.max.wait.ms"));
    let err = load_err("x=\\u00zz\n");
    assert!(matches!(err, ConfigError::Properties(_)));
}

#[test]
fn listener_protocols_from_the_map() {
    let (c, _) = load(
        "listener.security.protocol.map=INTERNAL:SASL_SSL,EXTERNAL:SSL\n\
         listeners=INTERNAL://10.0.0.1:9094,EXTERNAL://0.0.0.0:9095\n\
         ssl.keystore.location=/etc/rafka/server.pem\n",
    );
    // Both are TLS listeners, which need a key store.
    assert_eq!(
        c.listener_tls.keys().collect::<Vec<_>>(),
        vec!["EXTERNAL", "INTERNAL"]
    );
    let protocols: Vec<SecurityProtocol> = c.listeners.iter().map(|l| l.protocol).collect();
    assert_eq!(
        protocols,
        vec![SecurityProtocol::SaslSsl, SecurityProtocol::Ssl]
    );
}

#[test]
fn topic_defaults_follow_broker_settings() {
    let (c, _) =
        load("message.max.bytes=2000000\nlog.cleanup.policy=compact\ncompression.type=zstd\n");
    let resolved = c
        .topic_defaults
        .resolve(&map(&[("retention.ms", "+60000 ")]));
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(resolved.config.max_message_bytes, 2_000_000);
    assert_eq!(resolved.config.retention_ms, 60_000);
    let max_bytes = resolved.entry("max.message.bytes");
    assert_eq!(
        max_bytes.map(|e| e.source),
        Some(ConfigSource::StaticBroker)
    );
    assert_eq!(
        max_bytes.map(|e| e.broker_synonym),
        Some("message.max.bytes")
    );
    assert_eq!(max_bytes.map(|e| e.value.as_str()), Some("2000000"));
    // The override is returned exactly as the client wrote it.
    let retention = resolved.entry("retention.ms");
    assert_eq!(retention.map(|e| e.value.as_str()), Some("+60000 "));
    assert_eq!(
        retention.map(|e| e.source),
        Some(ConfigSource::TopicOverride)
    );
    let segment = resolved.entry("segment.bytes");
    assert_eq!(segment.map(|e| e.source), Some(ConfigSource::Default));
    assert_eq!(
        resolved.entry("cleanup.policy").map(|e| e.value.as_str()),
        Some("compact")
    );
    assert_eq!(resolved.entries.len(), 26);
}

#[test]
fn override_validation_maps_to_invalid_config() {
    let defaults = TopicDefaults::default();
    let cases: [(&str, &str); 6] = [
        ("segment.bytes", "1048575"),
        ("retention.ms", "-2"),
        ("compression.type", "brotli"),
        ("message.timestamp.type", "createtime"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.insync.replicas", "0"),
    ];
    for (key, value) in cases {
        let err = defaults.validate(&map(&[(key, value)])).err();
        match err {
            Some(TopicConfigError::InvalidValue(v)) => {
                assert_eq!((v.key.as_str(), v.value.as_str()), (key, value));
            }
            other => panic!("{key}={value}: {other:?}"),
        }
    }
    let err = defaults.validate(&map(&[("retention.hours", "1")])).err();
    assert_eq!(
        err.as_ref().map(|e| e.to_string()),
        Some("unknown topic config name: retention.hours".to_string())
    );
    assert_eq!(err.map(|e| e.error_code().code()), Some(40));
    let err = defaults
        .validate(&map(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]))
        .err();
    assert!(matches!(
        err,
        Some(TopicConfigError::Conflict {
            value: 10,
            other_value: 5,
            ..
        })
    ));
    let ok = defaults.validate(&map(&[
        ("segment.bytes", "1048576"),
        ("cleanup.policy", "compact,delete"),
    ]));
    assert_eq!(
        ok.map(|c| (c.segment_bytes, c.cleanup_policy.compact)),
        Ok((1 << 20, true))
    );
}

#[test]
fn quota_window_settings() {
    let (c, warnings) = load("quota.window.num=3\nquota.window.size.seconds=2\n");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.quota_window(), rafka_core::quota::QuotaWindow::new(3, 2));
    assert_eq!(c.quota_window().window_ms(), 2000);
    let error = load_err("quota.window.num=0\n");
    assert!(error.to_string().contains("quota.window.num"), "{error}");
}

#[test]
fn internal_topic_replication_settings() {
    let (c, warnings) = load(
        "offsets.topic.replication.factor=2\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n",
    );
    // Kafka's keys, rafka's own now: no NotApplicable warning.
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        (
            c.offsets_topic_replication_factor,
            c.transaction_state_log_replication_factor,
            c.transaction_state_log_min_isr
        ),
        (2, 1, 1)
    );
    for bad in [
        "offsets.topic.replication.factor=0\n",
        "offsets.topic.replication.factor=32768\n",
        "transaction.state.log.replication.factor=-1\n",
        "transaction.state.log.min.isr=0\n",
    ] {
        let key = bad.split('=').next().unwrap_or_default();
        let error = load_err(bad);
        assert!(error.to_string().contains(key), "{bad}: {error}");
    }
}
