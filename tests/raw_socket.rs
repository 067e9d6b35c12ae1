//! Hostile bytes against the real broker over plain sockets: each bad
//! connection is answered (where Kafka has an answer) or closed, and a
//! normal librdkafka client keeps producing and consuming throughout.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::client;
use support::Broker;

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.bootstrap()).expect("connect");
    stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    stream
}

/// Request header v1: api key, version, correlation id, client id "raw".
fn header(api_key: i16, version: i16, correlation_id: i32) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&correlation_id.to_be_bytes());
    out.extend_from_slice(&3_i16.to_be_bytes());
    out.extend_from_slice(b"raw");
    out
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// Reads until the broker closes the connection; returns what came first.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return received,
            Err(e) => panic!("expected the broker to close the connection: {e}"),
        }
    }
}

fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("response body");
    body
}

/// Produces and consumes 50 records with librdkafka: the broker still works.
fn normal_client_roundtrip(broker: &Broker, topic: &str) {
    let base_ms = client::now_ms();
    let records = client::records(1, 50, base_ms);
    let producer = client::producer(&broker.bootstrap(), &[]);
    client::produce(&producer, topic, &records);
    client::assert_topic(&broker.bootstrap(), topic, &records);
}

#[test]
fn bad_connections_are_closed_and_the_broker_keeps_serving() {
    let broker = Broker::start(2);
    client::create_topic(&broker.bootstrap(), "raw-before", 1);
    normal_client_roundtrip(&broker, "raw-before");

    let garbage = b"\x7f\x45\x4c\x46 not kafka at all \x00\x01\x02".to_vec();
    let negative_size = (-5_i32).to_be_bytes().to_vec();
    let huge_size = (i32::MAX).to_be_bytes().to_vec();
    let truncated_header = framed(&header(3, 12, 9)[..5]);
    let unknown_api_key = framed(&header(9999, 0, 11));
    let bad_cases = [
        ("garbage", garbage),
        ("negative size", negative_size),
        ("huge size", huge_size),
        ("truncated header", truncated_header),
        ("unknown api key", unknown_api_key),
    ];
    for (name, bytes) in bad_cases {
        let mut stream = connect(&broker);
        stream.write_all(&bytes).expect("send");
        let received = read_until_closed(&mut stream);
        assert!(received.is_empty(), "{name}: no answer, just a close");
    }

    // ApiVersions v99: UNSUPPORTED_VERSION (35) in the v0 layout, and the
    // connection stays open for a v0 retry.
    let mut stream = connect(&broker);
    stream
        .write_all(&framed(&header(18, 99, 42)))
        .expect("send");
    let response = read_frame(&mut stream);
    assert_eq!(&response[..4], &42_i32.to_be_bytes(), "correlation id");
    assert_eq!(
        &response[4..6],
        &35_i16.to_be_bytes(),
        "UNSUPPORTED_VERSION"
    );
    stream.write_all(&framed(&header(18, 0, 43))).expect("send");
    let response = read_frame(&mut stream);
    assert_eq!(&response[..4], &43_i32.to_be_bytes());
    assert_eq!(&response[4..6], &0_i16.to_be_bytes(), "v0 answered");

    // 200 connections that send half a request and vanish.
    for i in 0..200 {
        let mut stream = connect(&broker);
        let request = framed(&header(3, 12, i));
        stream
            .write_all(&request[..request.len() / 2])
            .expect("send");
    }

    normal_client_roundtrip(&broker, "raw-after");
}
