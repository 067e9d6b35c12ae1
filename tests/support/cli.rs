//! Running this crate's binary as the operator CLI against a test broker:
//! `rafka ARGS --bootstrap <broker>`, its exit code checked, its output
//! returned (JSON parsed with serde_json). Shared by tests/cli.rs and
//! tests/cli_security.rs.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rafka_testkit::BrokerProcess;
use serde_json::Value;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// `rafka ARGS --bootstrap <broker>`.
pub fn cli(broker: &BrokerProcess, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rafka"));
    command
        .args(args)
        .arg("--bootstrap")
        .arg(broker.bootstrap());
    command
}

pub fn run(broker: &BrokerProcess, args: &[&str]) -> Output {
    cli(broker, args)
        .stdin(Stdio::null())
        .output()
        .expect("run rafka")
}

/// Runs `args`, asserts exit 0, returns stdout.
pub fn ok(broker: &BrokerProcess, args: &[&str]) -> String {
    let output = run(broker, args);
    assert!(
        output.status.success(),
        "rafka {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 stdout")
}

/// Runs `args --format json`, asserts exit 0, parses stdout.
pub fn json(broker: &BrokerProcess, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    let stdout = ok(broker, &args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// Runs `args`, asserts exit 1, returns stderr.
pub fn fails(broker: &BrokerProcess, args: &[&str]) -> String {
    let output = run(broker, args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "rafka {args:?}: stdout {} stderr {stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    stderr
}

/// Runs `args` with `input` on stdin, asserts exit 0, returns stdout.
pub fn with_stdin(broker: &BrokerProcess, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = cli(broker, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rafka");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    let output = child.wait_with_output().expect("rafka exits");
    assert!(
        output.status.success(),
        "rafka {args:?} failed with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

pub fn topic_names(broker: &BrokerProcess) -> Vec<String> {
    json(broker, &["topic", "list"])
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

/// `consume TOPIC --from-beginning --count N`, stdout as bytes.
pub fn consume(broker: &BrokerProcess, topic: &str, extra: &[&str], count: usize) -> Vec<u8> {
    let count = count.to_string();
    let mut args = vec![
        "consume",
        topic,
        "--from-beginning",
        "--count",
        &count,
        "--timeout-ms",
        "20000",
    ];
    args.extend(extra);
    with_stdin(broker, &args, b"")
}

/// `rafka user list --format json` as `(user, [(mechanism, iterations)])`.
pub fn users(broker: &BrokerProcess) -> Vec<(String, Vec<(String, i64)>)> {
    json(broker, &["user", "list"])
        .as_array()
        .expect("array")
        .iter()
        .map(|u| {
            let credentials = u["credentials"]
                .as_array()
                .expect("credentials")
                .iter()
                .map(|c| {
                    let mechanism = c["mechanism"].as_str().expect("mechanism").to_string();
                    (mechanism, c["iterations"].as_i64().expect("iterations"))
                })
                .collect();
            (u["user"].as_str().expect("user").to_string(), credentials)
        })
        .collect()
}

pub fn user(name: &str, credentials: &[(&str, i64)]) -> (String, Vec<(String, i64)>) {
    let credentials = credentials
        .iter()
        .map(|(m, i)| (m.to_string(), *i))
        .collect();
    (name.to_string(), credentials)
}
