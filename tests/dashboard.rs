//! The deploy files checked against the real broker: every metric the
//! Grafana dashboard (`deploy/grafana/rafka.json`) queries is exposed by a
//! live `/metrics` after produce, fetch, commit and quota traffic, and the
//! example `deploy/server.properties` starts a broker with no key ignored.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::{AlterClientQuotasRequest, ApiVersionsRequest, CreateTopicsRequest};
use kafka_protocol::protocol::StrBytes;
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_testkit::proto::{creatable, long_poll_fetch, produce_answers, produce_request};
use rafka_testkit::wire_group::Offsets;
use rafka_testkit::{BrokerProcess, WireClient};
use serde_json::Value;
use support::rafka;

const TOPIC: &str = "charted";
const GROUP: &str = "charted-group";
const CLIENT_ID: &str = "charted-client";
const RECORDS: i64 = 10;
const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The `/metrics` body of `broker`.
fn scrape(broker: &BrokerProcess) -> String {
    let mut stream = TcpStream::connect(broker.metrics_addr).expect("connect to /metrics");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("send request");
    let mut response = String::new();
    // The server closes after one answer.
    stream.read_to_string(&mut response).expect("read response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.ends_with("# EOF\n"), "complete exposition");
    body.to_owned()
}

/// What a scrape exposes: the sample names (`rafka_requests_total`,
/// `rafka_request_duration_seconds_bucket`, ...) and each family's type.
struct Exposed {
    samples: BTreeSet<String>,
    types: BTreeMap<String, String>,
}

impl Exposed {
    fn parse(body: &str) -> Exposed {
        let mut samples = BTreeSet::new();
        let mut types = BTreeMap::new();
        for line in body.lines() {
            if let Some(declared) = line.strip_prefix("# TYPE ") {
                let (family, kind) = declared.split_once(' ').expect("TYPE name kind");
                types.insert(family.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') {
                let end = line.find(['{', ' ']).expect("sample name");
                samples.insert(line[..end].to_owned());
            }
        }
        Exposed { samples, types }
    }

    /// Why `name` (as a query uses it) has no series, or None when it has.
    fn missing(&self, name: &str) -> Option<String> {
        if !self.samples.contains(name) {
            return Some("no sample of that name in the scrape".to_owned());
        }
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))?;
        match self.types.get(base).map(String::as_str) {
            Some("histogram") => None,
            other => Some(format!("{base} is a {other:?}, not a histogram")),
        }
    }
}

impl Exposed {
    /// [`Exposed::missing`] for prose, which may also name a histogram by
    /// its family (`rafka_fsync_duration_seconds`).
    fn missing_in_prose(&self, name: &str) -> Option<String> {
        match self.types.get(name).map(String::as_str) {
            Some("histogram") => None,
            _ => self.missing(name),
        }
    }
}

/// Every `rafka_*` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("rafka_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        names.push(name);
    }
    names
}

/// (panel title, PromQL) of every panel target (rows included) and of the
/// query variables.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        let title = panel["title"].as_str().expect("panel title");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("target expr");
            queries.push((title.to_owned(), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            let name = variable["name"].as_str().expect("variable name");
            queries.push((format!("variable ${name}"), query.to_owned()));
        }
    }
    queries
}

/// Produce (from a client under a producer quota), fetch, an offset
/// commit and a connection refused by a limit, so the series that only exist once there is traffic do.
fn traffic(broker: &BrokerProcess) {
    let addr: SocketAddr = broker.bootstrap().parse().expect("address");
    let mut client = WireClient::connect(addr, CLIENT_ID).expect("connect");
    let alter = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(StrBytes::from_static_str("client-id"))
            .with_entity_name(Some(StrBytes::from_static_str(CLIENT_ID)))])
        .with_ops(vec![OpData::default()
            .with_key(StrBytes::from_static_str("producer_byte_rate"))
            .with_value(1_000_000.0)])]);
    let altered = client.call(1, &alter).expect("AlterClientQuotas");
    assert_eq!(altered.entries[0].error_code, 0, "{altered:?}");
    let create = CreateTopicsRequest::default()
        .with_topics(vec![creatable(TOPIC, 1, &[])])
        .with_timeout_ms(30_000);
    let created = client.call(7, &create).expect("CreateTopics");
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let mut builder = BatchBuilder::new(Compression::None);
    for i in 0..RECORDS {
        builder.push_record(i, None, Some(b"charted".as_slice()), &[]);
    }
    let produce = produce_request(
        -1,
        vec![(TOPIC, vec![(0, Some(builder.build().expect("batch")))])],
    );
    let produced = client.call(9, &produce).expect("Produce");
    let (_, answer) = &produce_answers(&produced)[0];
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
    let fetched = client
        .call(12, &long_poll_fetch(TOPIC, &[0], 0, 1))
        .expect("Fetch");
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(
        (partition.error_code, partition.high_watermark),
        (0, RECORDS)
    );
    // The first FindCoordinator creates `__consumer_offsets`; the group's
    // coordinator answers once its partition is loaded.
    let deadline = Instant::now() + IO_TIMEOUT;
    while client.find_coordinator(GROUP).expect("FindCoordinator") != 0 {
        assert!(Instant::now() < deadline, "no coordinator for {GROUP}");
        std::thread::yield_now();
    }
    let offsets: Offsets = BTreeMap::from([(TOPIC.to_owned(), BTreeMap::from([(0, 4)]))]);
    client
        .commit(GROUP, -1, "", &offsets)
        .expect("OffsetCommit");
    // max.connections.per.ip=2: a second connection is taken, a third
    // refused (the connection-limit series exist once one was).
    let mut second = WireClient::connect(addr, "second").expect("connect");
    // Answered, so accepted: the third cannot overtake it on another shard.
    let versions = second
        .call(2, &ApiVersionsRequest::default())
        .expect("ApiVersions");
    assert_eq!(versions.error_code, 0);
    let mut third = WireClient::connect(addr, "third").expect("connect");
    assert_eq!(third.read_until_closed().expect("closed at accept"), b"");
}

#[test]
fn every_dashboard_metric_is_in_a_live_scrape() {
    let path = repo_file("deploy/grafana/rafka.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    assert_eq!(dashboard["schemaVersion"], 39);
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
        "a Prometheus datasource variable"
    );
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 30, "{} queries", queries.len());

    let broker = BrokerProcess::start(rafka(2).property("max.connections.per.ip", "2"));
    traffic(&broker);
    let body = scrape(&broker);
    let exposed = Exposed::parse(&body);
    // The commit above (offset 4 of 10) is what the lag panels chart.
    let lag = format!(
        "rafka_consumer_group_lag{{group=\"{GROUP}\",topic=\"{TOPIC}\",partition=\"0\"}} 6"
    );
    assert!(body.lines().any(|l| l == lag), "{lag} in:\n{body}");

    let mut missing = Vec::new();
    let mut checked = BTreeSet::new();
    for (panel, expr) in &queries {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "panel {panel:?} queries no rafka metric: {expr}"
        );
        for name in names {
            if let Some(why) = exposed.missing(&name) {
                missing.push(format!("panel {panel:?}: {name}: {why}"));
            }
            checked.insert(name);
        }
    }
    assert!(
        missing.is_empty(),
        "metrics the dashboard queries that /metrics does not expose:\n{}",
        missing.join("\n")
    );
    assert!(checked.len() >= 35, "{} metrics checked", checked.len());

    // The runbooks and the sizing guide name metrics too.
    let mut named = 0;
    for doc in operator_docs() {
        let text = std::fs::read_to_string(&doc).expect("read doc");
        for name in metric_names(&text) {
            if let Some(why) = exposed.missing_in_prose(&name) {
                missing.push(format!("{}: {name}: {why}", doc.display()));
            }
            named += 1;
        }
    }
    assert!(
        missing.is_empty(),
        "metrics the docs name that /metrics does not expose:\n{}",
        missing.join("\n")
    );
    assert!(named >= 20, "{named} metric names in the docs");
}

/// docs/sizing.md and every runbook.
fn operator_docs() -> Vec<PathBuf> {
    let runbooks = std::fs::read_dir(repo_file("docs/runbooks")).expect("docs/runbooks");
    let mut docs: Vec<PathBuf> = runbooks
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    docs.push(repo_file("docs/sizing.md"));
    docs
}

/// The text of every Rust source of the broker, with string continuations
/// (`\` at a line end and the next line's indentation) joined as the
/// compiler joins them.
fn broker_sources() -> String {
    let mut dirs: Vec<PathBuf> = ["src", "rafka-core/src", "rafka-shard/src", "rafka-net/src"]
        .iter()
        .map(|dir| repo_file(dir))
        .collect();
    let mut text = String::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let source = std::fs::read_to_string(&path).expect("read source");
                for piece in source.split("\\\n") {
                    text.push_str(piece.trim_start());
                }
            }
        }
    }
    text
}

#[test]
fn runbook_log_lines_are_what_the_broker_logs() {
    let quoted = [
        ("disk-full.md", "log dir free space below rafka.log.dir.min.free.bytes: refusing produce (reads go on) until it is back above resume_free_bytes"),
        ("disk-full.md", "log dir free space is back: accepting produce again"),
        ("disk-full.md", "log flush failed: partition refuses writes until restart; records below the high watermark are durable and still served"),
        ("disk-full.md", "cannot measure the log dir's free space; keeping the last state until it works again"),
        ("corrupt-segment.md", "recovery truncated a segment at an invalid batch"),
        ("corrupt-segment.md", "recovery deleted the segments after an invalid batch"),
        ("corrupt-segment.md", "recovery rebuilt a segment's missing or invalid index"),
        ("corrupt-segment.md", "scrub found damaged batches: offsets [first_offset, next_offset) are no longer served"),
        ("corrupt-segment.md", "loading partitions"),
        ("corrupt-segment.md", "broker failed"),
        ("stuck-consumer-group.md", "expiring committed offsets"),
        ("rolling-restart.md", "is not a rafka setting, ignored"),
        ("rolling-restart.md", "stop requested"),
        ("rolling-restart.md", "stopping: draining connections"),
        ("rolling-restart.md", "connections still open after the drain timeout"),
        ("rolling-restart.md", "stopped cleanly"),
        ("rolling-restart.md", "rafka listening on"),
        ("rolling-restart.md", "re-placing partitions for the core count"),
        ("restore-data-dir.md", "two brokers cannot share a data dir"),
    ];
    let sources = broker_sources();
    let mut wrong = Vec::new();
    for (runbook, message) in quoted {
        let path = repo_file(&format!("docs/runbooks/{runbook}"));
        let text = std::fs::read_to_string(&path).expect("read runbook");
        if !text.contains(message) {
            wrong.push(format!("{runbook} does not quote {message:?}"));
        }
        if !sources.contains(message) {
            wrong.push(format!("{runbook}: no source logs {message:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn metric_names_are_taken_from_promql() {
    let expr = "histogram_quantile(0.99, sum by (api, le) \
        (rate(rafka_request_duration_seconds_bucket{instance=~\"$instance\"}[$__rate_interval])))";
    assert_eq!(
        metric_names(expr),
        ["rafka_request_duration_seconds_bucket"]
    );
    let exposed = Exposed::parse(
        "# TYPE rafka_lag gauge\nrafka_lag{g=\"a\"} 1\n# TYPE rafka_x histogram\nrafka_x_count 0\n",
    );
    assert_eq!(exposed.missing("rafka_x_count"), None);
    assert_eq!(exposed.missing("rafka_lag"), None);
    assert!(exposed.missing("rafka_lag_total").is_some());
    assert!(exposed.missing("rafka_x_sum").is_some());
    assert!(
        exposed.missing("rafka_x").is_some(),
        "a query needs a sample name"
    );
    assert_eq!(exposed.missing_in_prose("rafka_x"), None);
    assert!(exposed.missing_in_prose("rafka_lag_total").is_some());
}

#[test]
fn the_example_server_properties_starts_a_broker_with_every_key_taken() {
    // The harness's --listen, --data-dir and --metrics-listen win over the
    // file's production addresses and paths; every other key applies.
    let config = repo_file("deploy/server.properties");
    let mut broker = BrokerProcess::start(
        rafka(1)
            .arg("--config")
            .arg(config.to_str().expect("utf-8 path")),
    );
    let log = broker.log_tail();
    for ignored in ["is not a rafka setting", "does not apply to rafka"] {
        assert!(!log.contains(ignored), "{ignored}:\n{log}");
    }
    let addr: SocketAddr = broker.bootstrap().parse().expect("address");
    let mut client = WireClient::connect(addr, "deploy-config").expect("connect");
    let create = CreateTopicsRequest::default()
        .with_topics(vec![creatable(TOPIC, -1, &[])])
        .with_timeout_ms(30_000);
    let created = client.call(7, &create).expect("CreateTopics");
    // num.partitions=6 from the file.
    assert_eq!(
        (
            created.topics[0].error_code,
            created.topics[0].num_partitions
        ),
        (0, 6),
        "{created:?}"
    );
    broker.stop();
}
