//! Upgrades of the data dir format (`rafka.format.version` in
//! meta.properties, see `DATA_DIR_FORMAT_VERSION` in src/settings.rs).
//!
//! tests/fixtures/format-1-data-dir.tar.gz is a data dir written by rafka
//! before the key existed (tests/fixtures/make-format-1-data-dir.sh made it
//! with that release's binary): this binary must open it with everything in
//! it (records byte for byte at their offsets and timestamps, the committed
//! group offset, the topic's configs and id, the cluster id) and record the
//! format version in it. A data dir of a newer format must be refused with a
//! message naming the dir and both versions, and left exactly as it was.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rafka_testkit::BrokerProcess;
use serde_json::{json, Value};
use support::cli;
use support::rafka;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/format-1-data-dir.tar.gz"
);
/// The fixture's meta.properties, as the old release wrote it.
const FIXTURE_META: &str = "#rafka\nversion=1\ncluster.id=AmYBDTrxToS_GuMgZrlqag\nnode.id=0\n";
const TOPIC: &str = "upgraded";
const TOPIC_ID: &str = "ioMOCsseQE6bYRAtqtwakw";

/// Unpacks the fixture into `<parent>/data`.
fn unpack_fixture(parent: &Path) -> PathBuf {
    let data_dir = parent.join("data");
    std::fs::create_dir_all(&data_dir).expect("create data dir");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(FIXTURE)
        .arg("-C")
        .arg(&data_dir)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar -xzf {FIXTURE}: {status}");
    assert_eq!(read_meta(&data_dir), FIXTURE_META, "the fixture as written");
    data_dir
}

fn read_meta(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("meta.properties")).expect("read meta.properties")
}

/// Every file under `dir` (relative path -> bytes).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                let relative = path.strip_prefix(dir).expect("under dir").to_path_buf();
                files.insert(relative, bytes);
            }
        }
    }
    files
}

#[test]
fn a_format_1_data_dir_opens_with_its_records_group_offset_and_configs() {
    let parent = tempfile::tempdir().expect("temp dir");
    let data_dir = unpack_fixture(parent.path());
    // The committed offset dates from when the fixture was made: without
    // this the broker would rightly expire it 7 days later.
    let options = rafka(1)
        .data_dir(&data_dir)
        .property("offsets.retention.minutes", "2147483647");
    let mut broker = BrokerProcess::start(options);

    // The format version is recorded, every line the old release wrote kept.
    assert_eq!(
        read_meta(&data_dir),
        format!("{FIXTURE_META}rafka.format.version=1\n")
    );
    assert!(!data_dir.join("meta.properties.tmp").exists());

    let info = cli::json(&broker, &["cluster", "info"]);
    assert_eq!(info["cluster_id"], "AmYBDTrxToS_GuMgZrlqag");

    // Records: key, value (UTF-8 bytes), offset and timestamp as produced.
    let consumed = cli::consume(&broker, TOPIC, &["--format", "json"], 5);
    let mut records: Vec<Value> = String::from_utf8(consumed)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON record"))
        .collect();
    records.sort_by_key(|r| (r["partition"].as_i64(), r["offset"].as_i64()));
    let record = |partition: i32, offset: i64, timestamp: i64, key: Value, value: &str| {
        json!({
            "partition": partition,
            "offset": offset,
            "timestamp": timestamp,
            "key": key,
            "value": value,
        })
    };
    let expected = vec![
        record(0, 0, 1796475569113, json!("k0"), "v0"),
        record(0, 1, 1796475569113, json!("k1"), "value one"),
        record(0, 2, 1796475569113, json!("k2"), "\u{e9}t\u{e9}"),
        record(1, 0, 1796475569118, Value::Null, "no key here"),
        record(1, 1, 1796475569118, json!("k4"), "four"),
    ];
    assert_eq!(records, expected);

    // The group's committed offset, with the log end it is measured against.
    let group = cli::json(&broker, &["group", "describe", "readers"]);
    assert_eq!(group["state"], "Empty", "{group}");
    let offsets = group["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), 1, "{group}");
    assert_eq!(offsets[0]["topic"], TOPIC);
    assert_eq!(offsets[0]["partition"], 0);
    assert_eq!(offsets[0]["committed_offset"], 2);
    assert_eq!(offsets[0]["log_end_offset"], 3);

    // The topic: same id, partitions and its own configs.
    let topic = cli::json(&broker, &["topic", "describe", TOPIC]);
    assert_eq!(topic["id"], TOPIC_ID);
    assert_eq!(topic["partitions"].as_array().expect("partitions").len(), 2);
    assert_eq!(
        topic["configs"],
        json!({"max.message.bytes": "65536", "retention.ms": "-1"})
    );

    // The upgraded dir takes new records after the old ones and opens again.
    let produced = cli::with_stdin(
        &broker,
        &["produce", TOPIC, "--partition", "0", "--format", "json"],
        b"after the upgrade\n",
    );
    let produced: Value = serde_json::from_slice(&produced).expect("produce JSON");
    assert_eq!(produced["partitions"][0]["first_offset"], 3, "{produced}");
    broker.restart();
    assert_eq!(
        read_meta(&data_dir),
        format!("{FIXTURE_META}rafka.format.version=1\n")
    );
    let again = cli::consume(&broker, TOPIC, &["--partition", "0"], 4);
    assert_eq!(
        again,
        b"v0\nvalue one\n\xc3\xa9t\xc3\xa9\nafter the upgrade\n"
    );
}

#[test]
fn a_data_dir_of_a_newer_format_is_refused_and_left_unchanged() {
    let parent = tempfile::tempdir().expect("temp dir");
    let data_dir = unpack_fixture(parent.path());
    let newer = format!("{FIXTURE_META}rafka.format.version=2\n");
    std::fs::write(data_dir.join("meta.properties"), &newer).expect("write meta.properties");
    // Without its lock file, so that the snapshot also shows the refusal
    // came before the lock would have created one.
    std::fs::remove_file(data_dir.join(".lock")).expect("remove .lock");
    let before = snapshot(&data_dir);

    let failure = match BrokerProcess::try_start(rafka(1).data_dir(&data_dir)) {
        Ok(_) => panic!("a broker started on a data dir of format 2"),
        Err(failure) => failure,
    };
    assert_eq!(
        failure.status.and_then(|s| s.code()),
        Some(1),
        "{failure:?}"
    );
    let message = format!(
        "rafka: data dir {} has format version 2 but this rafka supports up to 1",
        data_dir.display()
    );
    assert!(failure.log.contains(&message), "{}", failure.log);

    assert_eq!(read_meta(&data_dir), newer);
    assert!(snapshot(&data_dir) == before, "the data dir changed");
}
