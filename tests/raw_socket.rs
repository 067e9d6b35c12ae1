//! Hostile bytes against the real broker over plain sockets: each bad
//! connection is answered (where Kafka has an answer) or closed, and a
//! normal librdkafka client keeps producing and consuming throughout.

mod support;

use rafka_testkit::wire::{frame, raw_header_v1};
use rafka_testkit::{BrokerProcess, WireClient};
use support::client;
use support::rafka;

fn connect(broker: &BrokerProcess) -> WireClient {
    WireClient::connect(broker.addr, "raw").expect("connect")
}

/// Request header v1: api key, version, correlation id, client id "raw".
fn header(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    raw_header_v1(api_key, version, correlation_id, Some(b"raw"))
}

/// Produces and consumes 50 records with librdkafka: the broker still works.
fn normal_client_roundtrip(broker: &BrokerProcess, topic: &str) {
    let base_ms = client::now_ms();
    let records = client::records(1, 50, base_ms);
    let producer = client::producer(&broker.bootstrap(), &[]);
    client::produce(&producer, topic, &records);
    client::assert_topic(&broker.bootstrap(), topic, &records);
}

#[test]
fn bad_connections_are_closed_and_the_broker_keeps_serving() {
    let broker = BrokerProcess::start(rafka(2));
    client::create_topic(&broker.bootstrap(), "raw-before", 1);
    normal_client_roundtrip(&broker, "raw-before");

    let garbage = b"\x7f\x45\x4c\x46 not kafka at all \x00\x01\x02".to_vec();
    let negative_size = (-5_i32).to_be_bytes().to_vec();
    let huge_size = (i32::MAX).to_be_bytes().to_vec();
    let truncated_header = frame(&header(3, 12, 9)[..5]);
    let unknown_api_key = frame(&header(9999, 0, 11));
    let bad_cases = [
        ("garbage", garbage),
        ("negative size", negative_size),
        ("huge size", huge_size),
        ("truncated header", truncated_header),
        ("unknown api key", unknown_api_key),
    ];
    for (name, bytes) in bad_cases {
        let mut stream = connect(&broker);
        stream.write_raw(&bytes).expect("send");
        let received = stream
            .read_until_closed()
            .expect("expected the broker to close the connection");
        assert!(received.is_empty(), "{name}: no answer, just a close");
    }

    // ApiVersions v99: UNSUPPORTED_VERSION (35) in the v0 layout, and the
    // connection stays open for a v0 retry.
    let mut stream = connect(&broker);
    stream.write_raw(&frame(&header(18, 99, 42))).expect("send");
    let response = stream.read_frame().expect("response");
    assert_eq!(&response[..4], &42_i32.to_be_bytes(), "correlation id");
    assert_eq!(
        &response[4..6],
        &35_i16.to_be_bytes(),
        "UNSUPPORTED_VERSION"
    );
    stream.write_raw(&frame(&header(18, 0, 43))).expect("send");
    let response = stream.read_frame().expect("response");
    assert_eq!(&response[..4], &43_i32.to_be_bytes());
    assert_eq!(&response[4..6], &0_i16.to_be_bytes(), "v0 answered");

    // 200 connections that send half a request and vanish.
    for i in 0..200 {
        let mut stream = connect(&broker);
        let request = frame(&header(3, 12, i));
        stream
            .write_raw(&request[..request.len() / 2])
            .expect("send");
    }

    normal_client_roundtrip(&broker, "raw-after");
}

/// `socket.request.max.bytes` binds every shard, shard 0 included (it
/// once served with the built-in 100 MiB limit): a frame announcing more
/// closes the connection before its body is read, and one within the limit
/// is served.
#[test]
fn socket_request_max_bytes_binds_every_shard() {
    let broker = BrokerProcess::start(rafka(1).property("socket.request.max.bytes", "1024"));
    let mut over = connect(&broker);
    over.write_raw(&2048_i32.to_be_bytes()).expect("send");
    let received = over.read_until_closed().expect("closed");
    assert!(received.is_empty(), "no answer, just a close");
    let mut within = connect(&broker);
    within.write_raw(&frame(&header(18, 0, 7))).expect("send");
    let response = within.read_frame().expect("ApiVersions answered");
    assert_eq!(&response[..4], &7_i32.to_be_bytes(), "correlation id");
}
