//! Connection limits at accept over real loopback sockets, on in-process
//! brokers of 1 and 2 shards that all listen (SO_REUSEPORT, as the
//! broker): `max.connections.per.ip` and its overrides (127.0.0.1 vs
//! 127.0.0.2 as source addresses), `max.connections` (the extra
//! connection waits unaccepted until one closes), the IP's
//! `connection_creation_rate` quota set through the controller, and the
//! counts being broker-wide whichever shard accepts.
//!
//! Clients are blocking std sockets run off the shard ([`blocking`]); a
//! read timeout only guards against a hang. Conditions are polled from
//! the listeners' metrics with a deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::StrBytes;
use rafka_core::metadata::quota_control::{QuotaAlterationEntry, QuotaOp};
use rafka_net::NetMetricsSnapshot;
use rafka_shard::controller_handle::ControllerHandle;
use rafka_testkit::broker::blocking;
use rafka_testkit::wire::{decode_response, request_frame, request_header};
use rafka_testkit::{Broker, TestBroker};
use socket2::{Domain, Socket, Type};

const TEST_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a condition is polled for before the test fails.
const CONDITION_DEADLINE: Duration = Duration::from_secs(30);
/// Guards a blocking read against a broker that never answers.
const READ_GUARD: Duration = Duration::from_secs(30);
const POLL_PAUSE: Duration = Duration::from_millis(2);
const API_VERSIONS_VERSION: i16 = 3;
const SHARDS: [usize; 2] = [1, 2];

const LOCAL: [u8; 4] = [127, 0, 0, 1];
const LOCAL_2: [u8; 4] = [127, 0, 0, 2];

fn brokers(
    configure: impl FnOnce(&mut rafka_core::config::BrokerConfig) + Clone,
) -> Vec<TestBroker> {
    SHARDS
        .iter()
        .map(|&shards| {
            TestBroker::builder()
                .shards(shards)
                .network(true)
                .listen_everywhere(true)
                .timeout(TEST_TIMEOUT)
                .config(configure.clone())
        })
        .collect()
}

/// A blocking connection from `source` (bound before connecting).
fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("bind the source address");
    socket.connect(&addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(READ_GUARD)).expect("timeout");
    stream
}

fn api_versions_body() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("rafka-test"))
        .with_client_software_version(StrBytes::from_static_str("0.1.0"))
}

/// ApiVersions on `stream`: the error code of the answer.
fn api_versions(stream: &mut TcpStream, correlation_id: i32) -> i16 {
    let header = request_header(
        ApiKey::ApiVersions,
        API_VERSIONS_VERSION,
        correlation_id,
        Some(b"limits"),
    )
    .expect("header");
    let frame = request_frame(&header, &api_versions_body(), API_VERSIONS_VERSION).expect("frame");
    stream.write_all(&frame).expect("write");
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).expect("a response size");
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).expect("a response body");
    let response = decode_response::<ApiVersionsRequest>(
        API_VERSIONS_VERSION,
        correlation_id,
        Bytes::from(body),
    )
    .expect("decode");
    response.error_code
}

/// Whether the broker closed `stream`: a read ends (EOF or reset)
/// without any byte.
fn closed_by_broker(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Ok(_) => false,
        Err(e) => panic!("reading a refused connection: {e}"),
    }
}

/// Opens `count` connections from `source` and checks each answers.
async fn open_answering(addr: SocketAddr, source: [u8; 4], count: usize) -> Vec<TcpStream> {
    blocking(move || {
        (0..count)
            .map(|i| {
                let mut stream = connect_from(source, addr);
                assert_eq!(api_versions(&mut stream, i as i32), 0, "connection {i}");
                stream
            })
            .collect()
    })
    .await
}

/// Connects from `source` and expects the broker to close it unanswered.
async fn refused(addr: SocketAddr, source: [u8; 4]) {
    let closed = blocking(move || {
        let mut stream = connect_from(source, addr);
        closed_by_broker(&mut stream)
    })
    .await;
    assert!(closed, "the connection from {source:?} was closed");
}

/// Every listening shard's metrics.
async fn shard_metrics(broker: &Broker) -> Vec<NetMetricsSnapshot> {
    let states = broker.listener_states().await;
    assert_eq!(states.len(), broker.shard_count(), "every shard listens");
    states.into_iter().map(|(_, state)| state.metrics).collect()
}

/// Polls the shards' metrics summed by `value` until it is `want`.
async fn wait_total(
    broker: &Broker,
    what: &str,
    want: u64,
    value: impl Fn(&NetMetricsSnapshot) -> u64,
) {
    let deadline = Instant::now() + CONDITION_DEADLINE;
    loop {
        let total: u64 = shard_metrics(broker).await.iter().map(&value).sum();
        if total == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} = {want} (at {total})"
        );
        glommio::timer::sleep(POLL_PAUSE).await;
    }
}

#[test]
fn per_ip_limit_is_broker_wide_and_a_close_frees_a_slot() {
    // 20 connections: on 2 shards SO_REUSEPORT puts some on each (all on
    // one has odds of 2^-19), so the limit must count across shards.
    const PER_IP: usize = 20;
    for broker in brokers(|c| c.connection_limits.max_connections_per_ip = PER_IP as i32) {
        broker.run(|broker| async move {
            let addr = broker.addr();
            let mut open = open_answering(addr, LOCAL, PER_IP).await;
            let accepted: Vec<u64> = shard_metrics(&broker)
                .await
                .iter()
                .map(|m| m.connections_accepted)
                .collect();
            assert!(
                accepted.iter().all(|n| *n > 0),
                "every shard accepted some: {accepted:?}"
            );
            assert_eq!(accepted.iter().sum::<u64>(), PER_IP as u64);
            refused(addr, LOCAL).await;
            wait_total(&broker, "per_ip refusals", 1, |m| m.limited("per_ip")).await;
            // The first ones are untouched and still answer.
            let mut open = blocking(move || {
                for (i, stream) in open.iter_mut().enumerate() {
                    assert_eq!(api_versions(stream, 100 + i as i32), 0);
                }
                open
            })
            .await;
            // A close frees the slot: once counted closed, a new one is in.
            drop(open.pop());
            wait_total(&broker, "connections closed", 1, |m| m.connections_closed).await;
            let again = open_answering(addr, LOCAL, 1).await;
            refused(addr, LOCAL).await;
            wait_total(&broker, "per_ip refusals", 2, |m| m.limited("per_ip")).await;
            drop((open, again));
        });
    }
}

#[test]
fn an_override_for_one_ip_and_the_default_for_another() {
    for broker in brokers(|c| {
        c.connection_limits.max_connections_per_ip = 2;
        c.connection_limits.max_connections_per_ip_overrides = vec![("127.0.0.1".into(), 4)];
    }) {
        broker.run(|broker| async move {
            let addr = broker.addr();
            let first = open_answering(addr, LOCAL, 4).await;
            refused(addr, LOCAL).await;
            let second = open_answering(addr, LOCAL_2, 2).await;
            refused(addr, LOCAL_2).await;
            wait_total(&broker, "per_ip refusals", 2, |m| m.limited("per_ip")).await;
            let metrics = shard_metrics(&broker).await;
            let by_listener: Vec<(String, String, u64)> = metrics
                .iter()
                .flat_map(|m| m.connections_limited.clone())
                .collect();
            assert!(by_listener
                .iter()
                .all(|(listener, reason, _)| listener == "PLAINTEXT" && reason == "per_ip"));
            drop((first, second));
        });
    }
}

#[test]
fn max_connections_holds_the_next_accept_until_one_closes() {
    for broker in brokers(|c| c.connection_limits.max_connections = 3) {
        broker.run(|broker| async move {
            let addr = broker.addr();
            let mut open = open_answering(addr, LOCAL, 3).await;
            // The fourth: the kernel completes its handshake (backlog), the
            // broker does not accept it.
            let mut waiting = blocking(move || {
                let mut stream = connect_from(LOCAL_2, addr);
                let header =
                    request_header(ApiKey::ApiVersions, API_VERSIONS_VERSION, 7, Some(b"w"))
                        .unwrap();
                let frame =
                    request_frame(&header, &api_versions_body(), API_VERSIONS_VERSION).unwrap();
                stream.write_all(&frame).unwrap();
                stream
            })
            .await;
            wait_total(&broker, "blocked accepts", 1, |m| m.accepts_blocked_total()).await;
            let metrics = shard_metrics(&broker).await;
            let accepted: u64 = metrics.iter().map(|m| m.connections_accepted).sum();
            assert_eq!(accepted, 3, "the fourth is not accepted");
            waiting = blocking(move || {
                waiting.set_nonblocking(true).unwrap();
                let mut byte = [0u8; 1];
                let read = waiting.read(&mut byte);
                assert!(
                    matches!(&read, Err(e) if e.kind() == ErrorKind::WouldBlock),
                    "no answer while at the limit: {read:?}"
                );
                waiting.set_nonblocking(false).unwrap();
                waiting
            })
            .await;
            // One closes: the fourth is accepted and answered.
            drop(open.pop());
            let waiting = blocking(move || {
                let mut size = [0u8; 4];
                waiting
                    .read_exact(&mut size)
                    .expect("answered after a close");
                let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
                waiting.read_exact(&mut body).unwrap();
                let response =
                    decode_response::<ApiVersionsRequest>(API_VERSIONS_VERSION, 7, body.into())
                        .unwrap();
                assert_eq!(response.error_code, 0);
                waiting
            })
            .await;
            wait_total(&broker, "accepted", 4, |m| m.connections_accepted).await;
            // Nothing was refused: waiting is not a refusal.
            let metrics = shard_metrics(&broker).await;
            assert!(metrics.iter().all(|m| m.connections_limited.is_empty()));
            let mut last = waiting;
            blocking(move || assert_eq!(api_versions(&mut last, 8), 0)).await;
            drop(open);
        });
    }
}

async fn set_ip_rate(broker: &Broker, ip: Option<&str>, rate: Option<f64>) {
    let controller = ControllerHandle::new(broker.shard.clone());
    let entry = QuotaAlterationEntry {
        entity: vec![("ip".to_string(), ip.map(str::to_string))],
        ops: vec![QuotaOp {
            key: "connection_creation_rate".to_string(),
            value: rate.unwrap_or(0.0),
            remove: rate.is_none(),
        }],
    };
    let results = controller
        .alter_client_quotas(vec![entry], false)
        .await
        .expect("controller");
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
}

#[test]
fn the_ip_connection_rate_quota_closes_connections_beyond_it_live() {
    for broker in brokers(|_| {}) {
        broker.run(|broker| async move {
            let addr = broker.addr();
            set_ip_rate(&broker, Some("127.0.0.1"), Some(1.0)).await;
            // A fresh sensor measures over 10 windows of 1 s: 10
            // connections fit in a rate of 1/s, the 11th is over.
            let open = open_answering(addr, LOCAL, 10).await;
            refused(addr, LOCAL).await;
            wait_total(&broker, "ip_rate refusals", 1, |m| m.limited("ip_rate")).await;
            // Another IP has no quota (no default set).
            let other = open_answering(addr, LOCAL_2, 3).await;
            // The <default> IP quota now covers 127.0.0.2 too.
            set_ip_rate(&broker, None, Some(1.0)).await;
            // Its sensor starts now: 10 more fit.
            let more = open_answering(addr, LOCAL_2, 10).await;
            refused(addr, LOCAL_2).await;
            wait_total(&broker, "ip_rate refusals", 2, |m| m.limited("ip_rate")).await;
            // Removed: applied at the next accept.
            set_ip_rate(&broker, Some("127.0.0.1"), None).await;
            set_ip_rate(&broker, None, None).await;
            let after = open_answering(addr, LOCAL, 2).await;
            let metrics = shard_metrics(&broker).await;
            let accepted: u64 = metrics.iter().map(|m| m.connections_accepted).sum();
            assert_eq!(accepted, 10 + 3 + 10 + 2);
            drop((open, other, more, after));
        });
    }
}

#[test]
fn the_broker_creation_rate_throttles_the_acceptor() {
    // 1/s: ten connections fit a fresh sensor, the eleventh waits.
    for broker in brokers(|c| c.connection_limits.max_connection_creation_rate = 1) {
        broker.run(|broker| async move {
            let addr = broker.addr();
            let open = open_answering(addr, LOCAL, 11).await;
            let metrics = shard_metrics(&broker).await;
            let throttled: u64 = metrics.iter().map(|m| m.accept_throttle_ms_total()).sum();
            // One throttle of (11/10.x - 1) * 10.x s, capped at one window.
            assert!(
                throttled > 0 && throttled <= 1000,
                "throttled {throttled} ms"
            );
            assert!(metrics.iter().all(|m| m.connections_limited.is_empty()));
            drop(open);
        });
    }
}
