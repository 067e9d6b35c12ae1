//! The operator CLI end to end: the real broker binary started by the
//! testkit, the same binary run as `rafka topic|group|config|cluster|
//! produce|consume --bootstrap ADDR` against it, its output read back
//! (JSON parsed with serde_json) and its exit codes checked.
//!
//! Secured brokers (`--command-config`, `rafka acl`) are in
//! tests/cli_security.rs.
//!
//! librdkafka checks both
//! directions of the record path: what it produced (every codec) the CLI
//! consumes, what the CLI produced it consumes.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rafka_testkit::process::{parse_listening, stop_child};
use rafka_testkit::BrokerProcess;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;
use support::cli::*;
use support::client;
use support::rafka;

#[test]
fn topic_create_list_describe_grow_delete() {
    let mut broker = BrokerProcess::start(rafka(2));
    let created = json(&broker, &["topic", "create", "orders", "--partitions", "3"]);
    assert_eq!(created["name"], "orders");
    assert_eq!(created["partitions"], 3);
    assert_eq!(created["replication_factor"], 1);
    let id = created["id"].as_str().expect("id").to_string();
    assert!(!id.is_empty());

    let again = fails(&broker, &["topic", "create", "orders", "--partitions", "3"]);
    assert!(again.contains("TOPIC_ALREADY_EXISTS"), "{again}");

    let listed = json(&broker, &["topic", "list"]);
    let orders: Vec<&Value> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter(|t| t["name"] == "orders")
        .collect();
    assert_eq!(orders.len(), 1, "{listed}");
    assert_eq!(orders[0]["partitions"], 3);
    assert_eq!(orders[0]["id"], id.as_str());
    let table = ok(&broker, &["topic", "list"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("orders ")), "{table}");

    let node_id = json(&broker, &["cluster", "info"])["brokers"][0]["id"].clone();
    let described = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(described["name"], "orders");
    assert_eq!(described["id"], id.as_str());
    let partitions = described["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 3);
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["partition"], i as i64);
        assert_eq!(p["leader"], node_id);
        assert_eq!(p["replicas"], Value::Array(vec![node_id.clone()]));
        assert_eq!(p["isr"], Value::Array(vec![node_id.clone()]));
    }
    if let Some(configs) = described.get("configs") {
        assert!(configs.is_object(), "{described}");
    }

    let grown = json(
        &broker,
        &["topic", "add-partitions", "orders", "--count", "5"],
    );
    assert_eq!(grown["partitions"], 5);
    let described = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(described["partitions"].as_array().expect("array").len(), 5);
    let shrink = fails(
        &broker,
        &["topic", "add-partitions", "orders", "--count", "2"],
    );
    assert!(shrink.contains("INVALID_PARTITIONS"), "{shrink}");

    let too_many = fails(
        &broker,
        &["topic", "create", "wide", "--replication-factor", "3"],
    );
    assert!(
        too_many.contains("INVALID_REPLICATION_FACTOR"),
        "{too_many}"
    );
    let bad_config = fails(
        &broker,
        &["topic", "create", "odd", "--config", "retention.ms"],
    );
    assert!(bad_config.contains("KEY=VALUE"), "{bad_config}");

    let deleted = json(&broker, &["topic", "delete", "orders"]);
    assert_eq!(deleted["deleted"], serde_json::json!(["orders"]));
    assert!(!topic_names(&broker).contains(&"orders".to_string()));
    for args in [
        &["topic", "describe", "orders"][..],
        &["produce", "orders"],
        &["consume", "orders", "--timeout-ms", "100"],
        &[
            "topic",
            "trim",
            "orders",
            "--partition",
            "0",
            "--offset",
            "1",
        ],
    ] {
        let gone = fails(&broker, args);
        assert!(
            gone.contains("UNKNOWN_TOPIC_OR_PARTITION"),
            "{args:?}: {gone}"
        );
    }
    let twice = fails(&broker, &["topic", "delete", "orders"]);
    assert!(twice.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{twice}");
    broker.stop();
}

#[test]
fn produce_then_consume_gives_the_lines_back_byte_exact() {
    let mut broker = BrokerProcess::start(rafka(2));
    ok(&broker, &["topic", "create", "lines", "--partitions", "1"]);
    let mut input = Vec::new();
    for i in 0..200 {
        input.extend_from_slice(format!("line {i} \t with spaces and ünïcödé\r").as_bytes());
        input.push(b'\n');
    }
    input.extend_from_slice(b"\n\xff\xfe not utf-8\nlast line\n");
    let lines = 203;
    let produced = with_stdin(&broker, &["produce", "lines", "--format", "json"], &input);
    let produced: Value = serde_json::from_slice(&produced).expect("json");
    assert_eq!(produced["records"], lines);
    assert_eq!(produced["partitions"][0]["first_offset"], 0);
    assert_eq!(produced["partitions"][0]["last_offset"], lines - 1);

    assert_eq!(consume(&broker, "lines", &[], lines as usize), input);
    // A count below what is there stops early.
    let first_two = consume(&broker, "lines", &["--partition", "0"], 2);
    assert_eq!(first_two, b"line 0 \t with spaces and \xc3\xbcn\xc3\xafc\xc3\xb6d\xc3\xa9\r\nline 1 \t with spaces and \xc3\xbcn\xc3\xafc\xc3\xb6d\xc3\xa9\r\n");

    // Without --from-beginning it starts at the end: nothing within the
    // timeout, and a clean exit.
    let output = with_stdin(&broker, &["consume", "lines", "--timeout-ms", "300"], b"");
    assert!(output.is_empty());
    broker.stop();
}

#[test]
fn keyed_produce_spreads_by_key_and_json_consume_shows_it() {
    let mut broker = BrokerProcess::start(rafka(2));
    ok(&broker, &["topic", "create", "keyed", "--partitions", "3"]);
    let mut input = String::new();
    for i in 0..30 {
        input.push_str(&format!("key-{}:value {i}\n", i % 5));
    }
    let produced = with_stdin(
        &broker,
        &[
            "produce",
            "keyed",
            "--key-separator",
            ":",
            "--format",
            "json",
        ],
        input.as_bytes(),
    );
    let produced: Value = serde_json::from_slice(&produced).expect("json");
    assert_eq!(produced["records"], 30);

    let out = consume(&broker, "keyed", &["--format", "json"], 30);
    let records: Vec<Value> = out
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("json line"))
        .collect();
    assert_eq!(records.len(), 30);
    let mut partition_of_key = std::collections::BTreeMap::new();
    for record in &records {
        let key = record["key"].as_str().expect("key").to_string();
        let value = record["value"].as_str().expect("value");
        let i: usize = value
            .strip_prefix("value ")
            .expect("value")
            .parse()
            .expect("i");
        assert_eq!(key, format!("key-{}", i % 5));
        let partition = record["partition"].as_i64().expect("partition");
        assert_eq!(
            *partition_of_key.entry(key).or_insert(partition),
            partition,
            "one key, one partition"
        );
    }
    // Per partition, offsets count up from 0.
    for partition in 0..3 {
        let offsets: Vec<i64> = records
            .iter()
            .filter(|r| r["partition"] == partition)
            .map(|r| r["offset"].as_i64().expect("offset"))
            .collect();
        assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>());
    }

    // --partition pins every record.
    with_stdin(
        &broker,
        &["produce", "keyed", "--partition", "2"],
        b"a\nb\n",
    );
    let described = json(&broker, &["topic", "describe", "keyed"]);
    assert_eq!(described["partitions"].as_array().expect("array").len(), 3);
    let pinned = consume(
        &broker,
        "keyed",
        &["--partition", "2", "--format", "json"],
        100,
    );
    let tail: Vec<Value> = pinned
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("json line"))
        .collect();
    let values: Vec<&str> = tail
        .iter()
        .map(|r| r["value"].as_str().expect("v"))
        .collect();
    assert_eq!(&values[values.len() - 2..], ["a", "b"]);
    assert!(tail.iter().all(|r| r["partition"] == 2));
    broker.stop();
}

#[test]
fn trim_deletes_records_below_an_offset_and_minus_one_empties() {
    let mut broker = BrokerProcess::start(rafka(1));
    ok(
        &broker,
        &["topic", "create", "trimmed", "--partitions", "2"],
    );
    let input: String = (0..10).map(|i| format!("{i}\n")).collect();
    with_stdin(
        &broker,
        &["produce", "trimmed", "--partition", "0"],
        input.as_bytes(),
    );

    let trimmed = json(
        &broker,
        &[
            "topic",
            "trim",
            "trimmed",
            "--partition",
            "0",
            "--offset",
            "4",
        ],
    );
    assert_eq!(trimmed["low_watermark"], 4);
    let rest = consume(&broker, "trimmed", &["--partition", "0"], 6);
    assert_eq!(rest, b"4\n5\n6\n7\n8\n9\n");

    let all = json(
        &broker,
        &[
            "topic",
            "trim",
            "trimmed",
            "--partition",
            "0",
            "--offset",
            "-1",
        ],
    );
    assert_eq!(all["low_watermark"], 10);
    let (low, high) = client::watermarks(&broker.bootstrap(), "trimmed", 0);
    assert_eq!((low, high), (10, 10));

    let beyond = fails(
        &broker,
        &[
            "topic",
            "trim",
            "trimmed",
            "--partition",
            "0",
            "--offset",
            "11",
        ],
    );
    assert!(beyond.contains("OFFSET_OUT_OF_RANGE"), "{beyond}");
    let no_partition = fails(
        &broker,
        &[
            "topic",
            "trim",
            "trimmed",
            "--partition",
            "7",
            "--offset",
            "1",
        ],
    );
    assert!(no_partition.contains("no partition 7"), "{no_partition}");
    broker.stop();
}

/// `group describe`'s offsets as partition -> (committed, log end, lag).
fn group_offsets(broker: &BrokerProcess, group: &str) -> Vec<(i64, Value, Value, Value)> {
    let described = json(broker, &["group", "describe", group]);
    described["offsets"]
        .as_array()
        .expect("offsets")
        .iter()
        .map(|o| {
            (
                o["partition"].as_i64().expect("partition"),
                o["committed_offset"].clone(),
                o["log_end_offset"].clone(),
                o["lag"].clone(),
            )
        })
        .collect()
}

#[test]
fn group_reset_describe_list_delete() {
    let mut broker = BrokerProcess::start(rafka(2));
    ok(&broker, &["topic", "create", "events", "--partitions", "2"]);
    let five: String = (0..5).map(|i| format!("{i}\n")).collect();
    for partition in ["0", "1"] {
        with_stdin(
            &broker,
            &["produce", "events", "--partition", partition],
            five.as_bytes(),
        );
    }
    with_stdin(
        &broker,
        &["produce", "events", "--partition", "1"],
        b"5\n6\n",
    );

    let reset = json(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g1",
            "--topic",
            "events",
            "--to-earliest",
        ],
    );
    assert_eq!(
        reset["offsets"],
        serde_json::json!([{"partition": 0, "offset": 0}, {"partition": 1, "offset": 0}])
    );
    let listed = json(&broker, &["group", "list"]);
    let g1: Vec<&Value> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter(|g| g["group"] == "g1")
        .collect();
    assert_eq!(g1.len(), 1, "{listed}");
    assert_eq!(g1[0]["state"], "Empty");

    use serde_json::json as j;
    assert_eq!(
        group_offsets(&broker, "g1"),
        vec![(0, j!(0), j!(5), j!(5)), (1, j!(0), j!(7), j!(7))]
    );
    let described = json(&broker, &["group", "describe", "g1"]);
    assert_eq!(described["state"], "Empty");
    assert_eq!(described["members"], j!([]));

    json(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g1",
            "--topic",
            "events",
            "--to-offset",
            "3",
        ],
    );
    assert_eq!(
        group_offsets(&broker, "g1"),
        vec![(0, j!(3), j!(5), j!(2)), (1, j!(3), j!(7), j!(4))]
    );
    // Beyond the log end is kept at the log end, as Kafka's tool does.
    let clamped = json(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g1",
            "--topic",
            "events",
            "--to-offset",
            "6",
        ],
    );
    assert_eq!(
        clamped["offsets"],
        j!([{"partition": 0, "offset": 5}, {"partition": 1, "offset": 6}])
    );
    // A dry run commits nothing.
    json(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g1",
            "--topic",
            "events",
            "--to-earliest",
            "--dry-run",
        ],
    );
    assert_eq!(
        group_offsets(&broker, "g1"),
        vec![(0, j!(5), j!(5), j!(0)), (1, j!(6), j!(7), j!(1))]
    );
    json(
        &broker,
        &[
            "group",
            "reset-offsets",
            "g1",
            "--topic",
            "events",
            "--to-latest",
            "--partition",
            "1",
        ],
    );
    assert_eq!(
        group_offsets(&broker, "g1"),
        vec![(0, j!(5), j!(5), j!(0)), (1, j!(7), j!(7), j!(0))]
    );
    let table = ok(&broker, &["group", "describe", "g1"]);
    assert!(table.contains("LAG"), "{table}");

    let deleted = json(&broker, &["group", "delete", "g1"]);
    assert_eq!(deleted["deleted"], j!(["g1"]));
    let listed = json(&broker, &["group", "list"]);
    assert!(
        !listed
            .as_array()
            .expect("array")
            .iter()
            .any(|g| g["group"] == "g1"),
        "{listed}"
    );
    let gone = fails(&broker, &["group", "describe", "g1"]);
    assert!(gone.contains("GROUP_ID_NOT_FOUND"), "{gone}");
    let twice = fails(&broker, &["group", "delete", "g1"]);
    assert!(twice.contains("GROUP_ID_NOT_FOUND"), "{twice}");
    broker.stop();
}

/// A librdkafka member of `group` subscribed to `topic`, polled until it
/// owns partitions.
fn member(broker: &BrokerProcess, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = client::config(&broker.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + DEADLINE;
    while consumer.assignment().map_or(0, |a| a.count()) == 0 {
        assert!(Instant::now() < deadline, "no assignment for {group}");
        let _ = consumer.poll(Duration::from_millis(100));
    }
    consumer
}

#[test]
fn a_group_with_members_is_described_and_not_reset() {
    let mut broker = BrokerProcess::start(rafka(2));
    ok(&broker, &["topic", "create", "busy", "--partitions", "2"]);
    let consumer = member(&broker, "live", "busy");

    let described = json(&broker, &["group", "describe", "live"]);
    assert_eq!(described["state"], "Stable", "{described}");
    assert_eq!(described["protocol_type"], "consumer");
    let members = described["members"].as_array().expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["client_id"], "rafka-e2e");
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!([{"topic": "busy", "partitions": [0, 1]}])
    );
    // Nothing committed yet: each owned partition is listed without an
    // offset or lag, with its owner.
    let offsets = described["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), 2);
    for o in offsets {
        assert_eq!(o["committed_offset"], Value::Null);
        assert_eq!(o["lag"], Value::Null);
        assert_eq!(o["log_end_offset"], 0);
        assert_eq!(o["member_id"], members[0]["member_id"]);
    }

    let refused = fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "live",
            "--topic",
            "busy",
            "--to-earliest",
        ],
    );
    assert!(refused.contains("Stable"), "{refused}");
    let not_empty = fails(&broker, &["group", "delete", "live"]);
    assert!(not_empty.contains("NON_EMPTY_GROUP"), "{not_empty}");
    drop(consumer);
    broker.stop();
}

#[test]
fn cluster_info_names_the_broker() {
    let mut broker = BrokerProcess::start(rafka(1));
    let info = json(&broker, &["cluster", "info"]);
    let cluster_id = info["cluster_id"].as_str().expect("cluster id");
    let meta = std::fs::read_to_string(broker.data_dir().join("meta.properties")).expect("meta");
    assert!(
        meta.lines()
            .any(|l| l == format!("cluster.id={cluster_id}")),
        "{cluster_id} not in {meta}"
    );
    let brokers = info["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1);
    assert_eq!(brokers[0]["port"], broker.addr.port());
    assert_eq!(brokers[0]["host"], "127.0.0.1");
    assert_eq!(info["controller"], brokers[0]["id"]);
    let table = ok(&broker, &["cluster", "info"]);
    assert!(
        table.contains(&format!("cluster id: {cluster_id}")),
        "{table}"
    );
    broker.stop();
}

#[test]
fn a_connection_failure_names_the_address() {
    // Port 1 on loopback: nothing listens there.
    let output = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["topic", "list", "--bootstrap", "127.0.0.1:1"])
        .output()
        .expect("run rafka");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot connect to 127.0.0.1:1"), "{stderr}");
}

#[test]
fn bad_usage_exits_2() {
    let rafka = || Command::new(env!("CARGO_BIN_EXE_rafka"));
    let no_target = rafka()
        .args(["group", "reset-offsets", "g", "--topic", "t"])
        .output()
        .expect("run rafka");
    assert_eq!(no_target.status.code(), Some(2));
    let both = rafka()
        .args(["config", "describe", "--topic", "t", "--broker", "1"])
        .output()
        .expect("run rafka");
    assert_eq!(both.status.code(), Some(2));
    let no_change = rafka()
        .args(["topic", "alter-config", "t"])
        .output()
        .expect("run rafka");
    assert_eq!(no_change.status.code(), Some(2));
    let no_principal = rafka()
        .args([
            "acl",
            "add",
            "--resource-type",
            "topic",
            "--operation",
            "read",
        ])
        .output()
        .expect("run rafka");
    assert_eq!(no_principal.status.code(), Some(2));
    let help = rafka().arg("--help").output().expect("run rafka");
    let help = String::from_utf8_lossy(&help.stdout);
    for command in [
        "serve", "topic", "group", "config", "cluster", "user", "acl", "produce", "consume",
    ] {
        assert!(help.contains(command), "{command} in {help}");
    }
}

#[test]
fn serve_starts_the_broker_like_no_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--cores", "1", "--pin", "false", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rafka serve");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    let startup = parse_listening(&line).expect("listening line");
    assert_eq!(startup.shards, 1);
    let output = Command::new(env!("CARGO_BIN_EXE_rafka"))
        .args(["cluster", "info", "--format", "json", "--bootstrap"])
        .arg(startup.addr.to_string())
        .output()
        .expect("run rafka");
    assert!(output.status.success());
    let info: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(info["brokers"][0]["port"], startup.addr.port());
    let status = stop_child(child, DEADLINE).expect("exits after SIGTERM");
    assert!(status.success(), "exit 0, got {status}");
}

#[test]

fn config_set_describe_delete_on_a_topic() {
    let mut broker = BrokerProcess::start(rafka(1));
    ok(
        &broker,
        &[
            "topic",
            "create",
            "tuned",
            "--partitions",
            "1",
            "--config",
            "cleanup.policy=compact",
        ],
    );
    let described = json(&broker, &["topic", "describe", "tuned"]);
    assert_eq!(
        described["configs"],
        serde_json::json!({"cleanup.policy": "compact"})
    );

    json(
        &broker,
        &["config", "set", "--topic", "tuned", "retention.ms=60000"],
    );
    let configs = json(&broker, &["config", "describe", "--topic", "tuned"]);
    let entry = |configs: &Value, name: &str| -> Value {
        configs["configs"]
            .as_array()
            .expect("configs")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let retention = entry(&configs, "retention.ms");
    assert_eq!(retention["value"], "60000");
    assert_eq!(retention["source"], "DYNAMIC_TOPIC_CONFIG");

    json(
        &broker,
        &["config", "delete", "--topic", "tuned", "retention.ms"],
    );
    let configs = json(&broker, &["config", "describe", "--topic", "tuned"]);
    assert_ne!(
        entry(&configs, "retention.ms")["source"],
        "DYNAMIC_TOPIC_CONFIG"
    );

    json(
        &broker,
        &[
            "topic",
            "alter-config",
            "tuned",
            "--set",
            "segment.bytes=1048576",
            "--delete",
            "cleanup.policy",
        ],
    );
    let described = json(&broker, &["topic", "describe", "tuned"]);
    assert_eq!(
        described["configs"],
        serde_json::json!({"segment.bytes": "1048576"})
    );
    let bad = fails(
        &broker,
        &[
            "config",
            "set",
            "--topic",
            "tuned",
            "cleanup.policy=sideways",
        ],
    );
    assert!(bad.contains("INVALID_CONFIG"), "{bad}");
    let missing = fails(&broker, &["config", "describe", "--topic", "nope"]);
    assert!(missing.contains("UNKNOWN_TOPIC_OR_PARTITION"), "{missing}");
    broker.stop();
}

#[test]

fn config_describe_a_broker() {
    let mut broker = BrokerProcess::start(rafka(1));
    let node_id = json(&broker, &["cluster", "info"])["brokers"][0]["id"]
        .as_i64()
        .expect("id")
        .to_string();
    let configs = json(&broker, &["config", "describe", "--broker", &node_id]);
    assert_eq!(configs["resource"], "broker");
    let names: Vec<&str> = configs["configs"]
        .as_array()
        .expect("configs")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"num.partitions"), "{names:?}");
    let table = ok(&broker, &["config", "describe", "--broker", &node_id]);
    assert!(table.starts_with("NAME"), "{table}");
    broker.stop();
}

#[test]
fn consume_reads_what_librdkafka_produced_with_every_codec() {
    let mut broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        ok(&broker, &["topic", "create", &topic, "--partitions", "1"]);
        let producer = client::producer(
            &bootstrap,
            &[("compression.type", codec), ("linger.ms", "50")],
        );
        let records = client::records(1, 60, client::now_ms());
        client::produce(&producer, &topic, &records);
        let mut expected = Vec::new();
        for record in &records[0] {
            expected.extend_from_slice(record.value.as_deref().unwrap_or_default());
            expected.push(b'\n');
        }
        let consumed = consume(&broker, &topic, &["--partition", "0"], records[0].len());
        assert_eq!(consumed, expected, "{codec}");
    }
    broker.stop();
}

#[test]
fn librdkafka_reads_what_produce_wrote() {
    let mut broker = BrokerProcess::start(rafka(2));
    ok(
        &broker,
        &["topic", "create", "from-cli", "--partitions", "2"],
    );
    let input: String = (0..40).map(|i| format!("k{}|v{i}\n", i % 4)).collect();
    with_stdin(
        &broker,
        &["produce", "from-cli", "--key-separator", "|"],
        input.as_bytes(),
    );
    let counts: Vec<usize> = json(&broker, &["topic", "describe", "from-cli"])["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| {
            let partition = p["partition"].as_i64().expect("partition") as i32;
            client::watermarks(&broker.bootstrap(), "from-cli", partition).1 as usize
        })
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 40);
    let consumed = client::consume(&broker.bootstrap(), "from-cli", &counts);
    let mut seen: Vec<(String, String)> = consumed
        .iter()
        .flatten()
        .map(|c| {
            let key = String::from_utf8(c.record.key.clone()).expect("key");
            let value = String::from_utf8(c.record.value.clone().expect("value")).expect("value");
            (key, value)
        })
        .collect();
    seen.sort_by_key(|(_, value)| value[1..].parse::<u32>().expect("index"));
    let expected: Vec<(String, String)> = (0..40)
        .map(|i| (format!("k{}", i % 4), format!("v{i}")))
        .collect();
    assert_eq!(seen, expected);
    broker.stop();
}

/// `rafka user set|list|describe|delete`, every refusal's message, and
/// acknowledged credentials surviving kill -9 of the broker.
#[test]
fn user_set_list_describe_delete_and_kill9() {
    let mut broker = BrokerProcess::start(rafka(2));
    let set = ok(
        &broker,
        &[
            "user",
            "set",
            "alice",
            "--mechanism",
            "SCRAM-SHA-256",
            "--password",
            "a-secret",
        ],
    );
    assert_eq!(set, "user alice: set SCRAM-SHA-256 (4096 iterations)\n");
    let set = json(
        &broker,
        &[
            "user",
            "set",
            "alice",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password",
            "b",
            "--iterations",
            "8192",
        ],
    );
    assert_eq!(
        set,
        serde_json::json!({"user": "alice", "mechanism": "SCRAM-SHA-512", "iterations": 8192})
    );
    ok(
        &broker,
        &[
            "user",
            "set",
            "bob",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password",
            "c",
        ],
    );
    assert_eq!(
        users(&broker),
        vec![
            user("alice", &[("SCRAM-SHA-256", 4096), ("SCRAM-SHA-512", 8192)]),
            user("bob", &[("SCRAM-SHA-512", 4096)]),
        ]
    );
    let table = ok(&broker, &["user", "describe", "alice"]);
    assert_eq!(
        table,
        "USER   MECHANISM      ITERATIONS\n\
         alice  SCRAM-SHA-256  4096\n\
         alice  SCRAM-SHA-512  8192\n"
    );
    // Refusals exit 1 with Kafka's error name and message.
    let missing = fails(&broker, &["user", "describe", "nobody"]);
    assert!(
        missing.contains(
            "user nobody: RESOURCE_NOT_FOUND: Attempt to describe a user credential that does not exist: nobody"
        ),
        "{missing}"
    );
    let few = fails(
        &broker,
        &[
            "user",
            "set",
            "carol",
            "--mechanism",
            "SCRAM-SHA-256",
            "--password",
            "p",
            "--iterations",
            "100",
        ],
    );
    assert!(
        few.contains("user carol: UNACCEPTABLE_CREDENTIAL: Too few iterations"),
        "{few}"
    );
    let gone = fails(
        &broker,
        &["user", "delete", "bob", "--mechanism", "SCRAM-SHA-256"],
    );
    assert!(
        gone.contains(
            "user bob: RESOURCE_NOT_FOUND: Attempt to delete a user credential that does not exist"
        ),
        "{gone}"
    );
    let deleted = ok(
        &broker,
        &["user", "delete", "alice", "--mechanism", "SCRAM-SHA-256"],
    );
    assert_eq!(deleted, "user alice: deleted SCRAM-SHA-256\n");
    // An unknown mechanism is a usage error, before any request.
    let bad = run(
        &broker,
        &["user", "delete", "bob", "--mechanism", "SCRAM-SHA-1"],
    );
    assert_eq!(bad.status.code(), Some(2));
    // Acknowledged means durable: kill -9, then the same users.
    let expected = vec![
        user("alice", &[("SCRAM-SHA-512", 8192)]),
        user("bob", &[("SCRAM-SHA-512", 4096)]),
    ];
    assert_eq!(users(&broker), expected);
    broker.kill9();
    broker.restart();
    assert_eq!(users(&broker), expected);
    broker.stop();
}

/// `--add-scram` seeds a credential at start; a later start with another
/// password (or iteration count) for the same user and mechanism leaves it
/// alone, while a new user is still added. A malformed argument stops the
/// start with Kafka's message and exit status 2.
#[test]
fn add_scram_seeds_once_and_bad_syntax_stops_the_start() {
    let first = "SCRAM-SHA-256=[name=admin,password=admin-secret,iterations=8192]";
    let mut broker = BrokerProcess::start(rafka(1).arg("--add-scram").arg(first));
    assert_eq!(
        users(&broker),
        vec![user("admin", &[("SCRAM-SHA-256", 8192)])]
    );
    broker.restart_with_args(&[
        "--add-scram",
        "SCRAM-SHA-256=[name=admin,password=other,iterations=4096]",
        "--add-scram",
        "SCRAM-SHA-512=[name=ops,password=ops-secret]",
    ]);
    assert_eq!(
        users(&broker),
        vec![
            user("admin", &[("SCRAM-SHA-256", 8192)]),
            user("ops", &[("SCRAM-SHA-512", 4096)]),
        ]
    );
    broker.stop();

    for (argument, message) in [
        (
            "SCRAM-SHA-256=[name=admin]",
            "--add-scram: You must supply one of 'password' or 'saltedpassword' to add-scram",
        ),
        (
            "SCRAM-SHA-1=[name=admin,password=x]",
            "--add-scram: The add-scram mechanism SCRAM-SHA-1 is not supported.",
        ),
        (
            "SCRAM-SHA-256=[name=admin,password=x,iterations=100]",
            "--add-scram: The 'iterations' value must be >= 4096 for add-scram using SCRAM-SHA-256",
        ),
    ] {
        let failure = BrokerProcess::try_start(rafka(1).arg("--add-scram").arg(argument))
            .err()
            .unwrap_or_else(|| panic!("{argument} must stop the start"));
        assert_eq!(
            failure.status.and_then(|s| s.code()),
            Some(2),
            "{argument}: {failure:?}"
        );
        assert!(failure.log.contains(message), "{argument}: {}", failure.log);
    }
}
