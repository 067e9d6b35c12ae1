//! The harness itself and the binary's process contract: the listening line,
//! a clean exit 0 on SIGTERM, a restart on the same data dir, SIGKILL.

mod support;

use rafka_testkit::process::{parse_listening, Startup};
use rafka_testkit::BrokerProcess;
use support::rafka;

#[test]
fn parses_the_listening_line() {
    let line = "rafka listening on 127.0.0.1:40123 shards=4 data_dir=/tmp/x recovered_partitions=6";
    assert_eq!(
        parse_listening(line),
        Ok(Startup {
            addr: "127.0.0.1:40123".parse().expect("addr"),
            shards: 4,
            recovered_partitions: 6,
            listeners: Vec::new(),
        })
    );
    let line = "rafka listening on 127.0.0.1:1 shards=1 data_dir=/x recovered_partitions=0 listeners=PLAINTEXT://127.0.0.1:1,SSL://127.0.0.1:2";
    let listeners = parse_listening(line).map(|startup| startup.listeners);
    let want = vec![
        ("PLAINTEXT".to_owned(), "127.0.0.1:1".parse().expect("addr")),
        ("SSL".to_owned(), "127.0.0.1:2".parse().expect("addr")),
    ];
    assert_eq!(listeners, Ok(want));
}

#[test]
fn rejects_malformed_listening_lines() {
    assert!(parse_listening("rafka listening on 127.0.0.1:1").is_err());
    assert!(parse_listening("rafka listening on nowhere shards=1 recovered_partitions=0").is_err());
    assert!(
        parse_listening("rafka listening on 127.0.0.1:1 shards=x recovered_partitions=0").is_err()
    );
    assert!(parse_listening("hello").is_err());
}

#[test]
fn starts_on_an_ephemeral_port_and_stops_on_sigterm() {
    let mut broker = BrokerProcess::start(rafka(2));
    assert!(broker.addr.ip().is_loopback());
    assert_ne!(broker.addr.port(), 0);
    assert_eq!(broker.startup.shards, 2);
    assert_eq!(broker.startup.recovered_partitions, 0);
    // Connecting proves the port is the one it listens on.
    std::net::TcpStream::connect(broker.addr).expect("connect to the broker");
    broker.stop();
    assert!(broker.pid().is_none());
}

#[test]
fn restarts_after_sigkill_on_the_same_data_dir() {
    let mut broker = BrokerProcess::start(rafka(1));
    let data_dir = broker.data_dir();
    broker.kill9();
    broker.restart();
    assert_eq!(broker.data_dir(), data_dir);
    std::net::TcpStream::connect(broker.addr).expect("connect after restart");
    broker.stop();
}

#[test]
fn two_brokers_get_their_own_ports_and_dirs() {
    let first = BrokerProcess::start(rafka(1));
    let second = BrokerProcess::start(rafka(1));
    assert_ne!(first.addr, second.addr);
    assert_ne!(first.data_dir(), second.data_dir());
}

/// The codec tests need every codec compiled into the bundled librdkafka
/// (snappy and lz4 are built in; gzip needs libz, zstd needs zstd-sys).
#[test]
fn librdkafka_has_every_codec() {
    let native = rdkafka::ClientConfig::new()
        .create_native_config()
        .expect("librdkafka config");
    let features = native.get("builtin.features").expect("builtin.features");
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        assert!(
            features.split(',').any(|feature| feature == codec),
            "librdkafka lacks {codec}: {features}"
        );
    }
}
