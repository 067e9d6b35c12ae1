//! Startup paths the other tests don't take: the default relative data dir
//! (the README's zero-config start) and a broker that cannot start, which
//! must exit with its error instead of hanging.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rafka_testkit::process::{stop_child, wait_exit};

const DEADLINE: Duration = Duration::from_secs(30);

fn rafka() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rafka"));
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "127.0.0.1:0",
        "--cores",
        "2",
        "--pin",
        "false",
    ]);
    command
}

#[test]
fn default_relative_data_dir_starts_and_stops_cleanly() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut child = rafka()
        .current_dir(cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rafka");
    let stdout = child.stdout.take().expect("stdout");
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    let data_dir = cwd.path().join("rafka-data");
    let canonical = std::fs::canonicalize(&data_dir).expect("data dir created");
    assert!(line.starts_with("rafka listening on 127.0.0.1:"), "{line}");
    assert!(
        line.contains(&format!("data_dir={}", data_dir.display()))
            || line.contains(&format!("data_dir={}", canonical.display())),
        "absolute data dir in {line}"
    );
    assert!(canonical.join("meta.properties").is_file());
    let status = stop_child(child, DEADLINE).expect("exits after SIGTERM");
    assert!(status.success(), "exit 0, got {status}");
    assert!(canonical.join(".kafka_cleanshutdown").is_file());
}

#[test]
fn a_broker_that_cannot_start_exits_with_its_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The metadata log's directory is taken by a file: shard 0 cannot open
    // the controller, and the other shard must not wait for it forever.
    std::fs::write(dir.path().join("__rafka_metadata"), b"not a dir").expect("write");
    let mut child = rafka()
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rafka");
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let status = wait_exit(child, DEADLINE).expect("exits instead of hanging");
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut stderr_pipe, &mut stderr).expect("read stderr");
    assert!(
        stderr.contains("__rafka_metadata"),
        "names the path: {stderr}"
    );
}
