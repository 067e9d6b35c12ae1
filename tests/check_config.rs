//! `rafka check-config`, fail-fast startup and `--log-format json`, on the
//! real binary: a file with an unknown key, bad values and good keys gives
//! exactly those `FILE:LINE:` lines and exit 1, a clean file exits 0, the
//! broker refuses to start on the bad file with the same lines (and
//! touches no data dir), and JSON logs parse line by line.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rafka_testkit::process::{parse_listening, stop_child};
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(30);

/// num.io.threads is a Kafka key rafka replaces: a warning, not an error.
const BAD: &str = "# a Kafka-style file\n\
                   num.partitions=3\n\
                   log.retention.hour=5\n\
                   log.segment.bytes=banana\n\
                   num.io.threads=8\n\
                   auto.create.topics.enable=maybe\n";

const CLEAN: &str = "num.partitions=2\nlog.retention.hours=24\nauto.create.topics.enable=false\n";

fn rafka() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rafka"))
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write properties");
    path
}

fn check(path: &Path) -> Output {
    rafka()
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run rafka check-config")
}

fn bad_lines(path: &Path) -> Vec<String> {
    let file = path.display();
    vec![
        format!("{file}:3: unknown key log.retention.hour: not a rafka or Kafka broker setting"),
        format!(
            "{file}:4: invalid value \"banana\" for log.segment.bytes: expected an integer >= 1048576"
        ),
        format!("{file}:5: warning: num.io.threads does not apply to rafka, ignored"),
        format!(
            "{file}:6: invalid value \"maybe\" for auto.create.topics.enable: expected true or false"
        ),
    ]
}

#[test]
fn check_config_reports_every_problem_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "server.properties", BAD);
    let output = check(&path);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_eq!(lines, bad_lines(&path));
}

#[test]
fn check_config_passes_a_clean_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "server.properties", CLEAN);
    let output = check(&path);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}: ok\n", path.display())
    );
    let missing = check(&dir.path().join("absent.properties"));
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn the_broker_refuses_to_start_on_the_same_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "server.properties", BAD);
    let data_dir = dir.path().join("data");
    let output = rafka()
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "none"])
        .args(["--cores", "1", "--pin", "false"])
        .output()
        .expect("run rafka");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<String> = stderr
        .lines()
        .filter_map(|line| line.strip_prefix("rafka: "))
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = bad_lines(&path)
        .into_iter()
        .filter(|line| !line.contains(": warning: "))
        .collect();
    assert_eq!(errors, expected, "{stderr}");
    assert!(!data_dir.exists(), "no data dir is created on a bad config");
}

#[test]
fn json_logs_parse_line_by_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "server.properties", CLEAN);
    let mut child = rafka()
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "none"])
        .args(["--cores", "1", "--pin", "false", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rafka");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    // stderr is read to its end on another thread so the pipe never fills.
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    parse_listening(&line).expect("listening line");
    let status = stop_child(child, DEADLINE).expect("exits after SIGTERM");
    assert!(status.success(), "exit 0, got {status}");
    let text = logs.join().expect("reader thread").expect("stderr");
    let entries: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    for entry in &entries {
        assert!(entry["level"].is_string(), "{entry}");
        assert!(entry["fields"]["message"].is_string(), "{entry}");
    }
    let explicit: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["fields"]["message"] == "non-default config")
        .map(|e| {
            let field = |name: &str| e["fields"][name].as_str().unwrap_or("");
            (field("key"), field("value"))
        })
        .collect();
    let data_dir = dir.path().join("data").display().to_string();
    assert_eq!(
        explicit,
        [
            ("auto.create.topics.enable", "false"),
            ("listeners", "PLAINTEXT://127.0.0.1:0"),
            ("log.dirs", data_dir.as_str()),
            ("log.retention.hours", "24"),
            ("num.partitions", "2"),
        ]
    );
    assert!(
        entries.iter().any(|e| e["level"] == "INFO"
            && e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("rafka listening on"))),
        "{text}"
    );
}

/// A node of a 3-voter quorum, as `scripts/cluster.sh` describes one.
const VOTERS: &str = "1@127.0.0.1:19191,2@127.0.0.1:19192,3@127.0.0.1:19193";

fn check_with(path: &Path, flags: &[&str]) -> (Option<i32>, Vec<String>) {
    let output = rafka()
        .arg("check-config")
        .arg(path)
        .args(flags)
        .output()
        .expect("run rafka check-config");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout.lines().map(str::to_string).collect();
    (output.status.code(), lines)
}

#[test]
fn check_config_applies_the_cluster_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(
        dir.path(),
        "server.properties",
        &format!("num.partitions=3\nnode.id=1\ncontroller.quorum.voters={VOTERS}\n"),
    );
    let file = path.display();
    assert_eq!(
        check_with(&path, &[]),
        (Some(0), vec![format!("{file}: ok")])
    );
    let flags = ["--node-id", "2", "--broker-rack", "r2"];
    assert_eq!(
        check_with(&path, &flags),
        (Some(0), vec![format!("{file}: ok")])
    );
    // A flag wins over the file, and is checked against the rest of it
    // (the rule's line is its key's: the voters, line 3).
    assert_eq!(
        check_with(&path, &["--node-id", "4"]),
        (
            Some(1),
            vec![format!(
                "{file}:3: If process.roles contains the 'controller' role, the node id 4 must \
                 be included in the set of voters controller.quorum.voters=[1, 2, 3]"
            )]
        )
    );
    assert_eq!(
        check_with(&path, &["--process-roles", "broker"]),
        (
            Some(1),
            vec![format!(
                "{file}:3: If process.roles contains just the 'broker' role, the node id 1 must \
                 not be included in the set of voters controller.quorum.voters=[1, 2, 3]"
            )]
        )
    );
    assert_eq!(
        check_with(&path, &["--controller-quorum-voters", "1@127.0.0.1"]),
        (
            Some(1),
            vec![format!(
                "{file}: invalid value \"1@127.0.0.1\" for controller.quorum.voters: expected \
                 a comma-separated list of id@host:port"
            )]
        )
    );
    // The file's own line when the value is the file's.
    let bad = write(
        dir.path(),
        "bad.properties",
        "num.partitions=3\nprocess.roles=broker,zookeeper\n",
    );
    assert_eq!(
        check_with(&bad, &[]),
        (
            Some(1),
            vec![format!(
                "{}:2: invalid value \"broker,zookeeper\" for process.roles: expected a \
                 comma-separated list of broker, controller",
                bad.display()
            )]
        )
    );
}

#[test]
fn the_broker_takes_the_cluster_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = |data_dir: &Path, node_id: &str, voters: &str| {
        rafka()
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "none"])
            .args(["--cores", "1", "--pin", "false"])
            .args(["--node-id", node_id, "--controller-quorum-voters", voters])
            .args([
                "--process-roles",
                "broker,controller",
                "--broker-rack",
                "r2",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rafka")
    };
    // Not a voter: refused before any data dir is touched.
    let refused = dir.path().join("refused");
    let output = start(&refused, "4", VOTERS)
        .wait_with_output()
        .expect("rafka exits");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr
            .lines()
            .filter(|line| line.starts_with("rafka: "))
            .collect::<Vec<_>>(),
        [
            "rafka: If process.roles contains the 'controller' role, the node id 4 must be \
             included in the set of voters controller.quorum.voters=[1, 2, 3]"
        ]
    );
    assert!(!refused.exists());
    // A voter starts as node 2: alone in its quorum (one voter, on a free
    // port), it elects itself, registers and announces itself ready.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let data_dir = dir.path().join("node-2");
    let mut child = start(&data_dir, "2", &format!("2@127.0.0.1:{port}"));
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let line = BufReader::new(stdout)
        .lines()
        .next()
        .expect("a line")
        .expect("utf-8");
    parse_listening(&line).expect("listening line");
    let status = stop_child(child, DEADLINE).expect("exits after SIGTERM");
    assert!(status.success(), "exit 0, got {status}");
    let logs = logs.join().expect("reader thread").expect("stderr");
    let meta = std::fs::read_to_string(data_dir.join("meta.properties")).expect("meta");
    assert!(meta.lines().any(|l| l == "node.id=2"), "{meta}\n{logs}");
}
