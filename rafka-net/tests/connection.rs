//! The connection layer over real sockets on 127.0.0.1: ApiVersions bytes,
//! ordering of pipelined responses, in-flight bounds, bad input, idle and
//! graceful shutdown. Server and clients share one unpinned glommio
//! executor; clients are glommio `TcpStream`s.

use std::cell::Cell;
use std::future::Future;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::future::poll_once;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use glommio::{LocalExecutorBuilder, Placement};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rafka_net::handlers::HandlerError;
use rafka_net::{
    bind, bind_first, ConnectionConfig, NetConfig, Request, Response, Service, ShardNet,
};
use rafka_proto::header::RequestHeader;
use rafka_testkit::broker::{api_table, ApiVersionsOnly};
use rafka_testkit::wire::{frame, header_frame, raw_header_v1, request_frame, request_header};

/// Small enough for an unprivileged RLIMIT_MEMLOCK.
const IO_MEMORY_BYTES: usize = 512 << 10;
/// Upper bound on any one test; reached only when the code under test hangs.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
const FRAME_BYTES_MAX: usize = 1 << 20;
const UNSUPPORTED_VERSION: i16 = 35;
const API_VERSIONS_VERSION_MAX: i16 = 4;

fn run<F, Fut>(test: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .unwrap();
    ex.run(async {
        glommio::timer::timeout(TEST_TIMEOUT, async {
            test().await;
            Ok(())
        })
        .await
        .expect("test timed out");
    });
}

fn config() -> NetConfig {
    NetConfig {
        connection: ConnectionConfig {
            frame_bytes_max: FRAME_BYTES_MAX,
            ..ConnectionConfig::default()
        },
        ..NetConfig::default()
    }
}

fn start<S: Service>(service: S, config: NetConfig) -> (Rc<ShardNet<S>>, SocketAddr) {
    let (listener, addr) = bind_first("127.0.0.1:0".parse().unwrap()).unwrap();
    let net = ShardNet::new(Rc::new(service), api_table(), config);
    net.serve(listener).unwrap();
    (net, addr)
}

/// The broker's ApiVersions handler alone: `Handlers` needs a running shard
/// core, and every request these tests send past the header is ApiVersions.
fn broker() -> ApiVersionsOnly {
    ApiVersionsOnly::new()
}

/// Yields to the server until `done` holds.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        glommio::executor().yield_task_queue_now().await;
    }
}

// ---- client side -----------------------------------------------------------

fn header(api_key: ApiKey, version: i16, correlation_id: i32) -> RequestHeader {
    request_header(api_key, version, correlation_id, Some(b"net-test")).unwrap()
}

fn api_versions_request(version: i16, correlation_id: i32) -> Vec<u8> {
    let body = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("rafka-test"))
        .with_client_software_version(StrBytes::from_static_str("0.1.0"));
    let header = header(ApiKey::ApiVersions, version, correlation_id);
    // A version past the newest known is laid out as the newest.
    let body_version = version.min(API_VERSIONS_VERSION_MAX);
    request_frame(&header, &body, body_version)
        .unwrap()
        .to_vec()
}

/// A request with its header only, for the fake services.
fn empty_request(api_key: ApiKey, version: i16, correlation_id: i32) -> Vec<u8> {
    header_frame(&header(api_key, version, correlation_id))
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

async fn read_frame(stream: &mut TcpStream) -> Bytes {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut body).await.unwrap();
    Bytes::from(body)
}

/// Reads a response frame and splits off its v0 header's correlation id.
async fn read_response(stream: &mut TcpStream) -> (i32, Bytes) {
    let frame = read_frame(stream).await;
    let correlation_id = i32::from_be_bytes(frame[..4].try_into().unwrap());
    (correlation_id, frame.slice(4..))
}

/// The server must close without sending anything.
async fn expect_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf).await {
        Ok(0) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close, got {other:?}"),
    }
}

async fn api_versions_roundtrip(stream: &mut TcpStream, version: i16, correlation_id: i32) {
    stream
        .write_all(&api_versions_request(version, correlation_id))
        .await
        .unwrap();
    let (echoed, mut body) = read_response(stream).await;
    assert_eq!(echoed, correlation_id);
    let response = ApiVersionsResponse::decode(&mut body, version).unwrap();
    assert_eq!(response.error_code, 0);
}

// ---- fake services ---------------------------------------------------------

/// Releases one held request when sent to (or dropped).
type Release = LocalSender<()>;

/// Tells the test about every request it receives, then holds it until the
/// test releases it; answers with the correlation id and "done".
struct HeldService {
    dispatched: LocalSender<(i32, Release)>,
}

fn held_service() -> (HeldService, LocalReceiver<(i32, Release)>) {
    let (dispatched, receiver) = local_channel::new_unbounded();
    (HeldService { dispatched }, receiver)
}

impl Service for HeldService {
    async fn call(&self, request: Request) -> Response {
        let correlation_id = request.header.correlation_id;
        let (release, released) = local_channel::new_bounded(1);
        self.dispatched.try_send((correlation_id, release)).unwrap();
        released.recv().await;
        let mut reply = BytesMut::new();
        reply.put_i32(correlation_id);
        reply.put_slice(b"done");
        Response::Reply(reply.freeze())
    }
}

// ---- ApiVersions -----------------------------------------------------------

#[test]
fn api_versions_v0_and_v3_list_the_table() {
    run(|| async {
        let (net, addr) = start(broker(), config());
        let mut stream = connect(addr).await;
        let table = api_table();
        for (version, correlation_id) in [(0_i16, 7_i32), (3, 0x0102_0304)] {
            stream
                .write_all(&api_versions_request(version, correlation_id))
                .await
                .unwrap();
            let frame = read_frame(&mut stream).await;
            let expected = table
                .encode_api_versions_response(correlation_id, version)
                .unwrap();
            assert_eq!(frame, expected, "v{version} response bytes");
            assert_eq!(&frame[..4], &correlation_id.to_be_bytes());
            let response = ApiVersionsResponse::decode(&mut frame.slice(4..), version).unwrap();
            assert_eq!(response.error_code, 0);
            let ranges: Vec<(i16, i16, i16)> = response
                .api_keys
                .iter()
                .map(|key| (key.api_key, key.min_version, key.max_version))
                .collect();
            assert_eq!(ranges.len(), 49);
            assert!(ranges.contains(&(18, 0, 4)), "{ranges:?}");
            assert!(ranges.contains(&(0, 0, 13)), "{ranges:?}");
            assert!(ranges.contains(&(1, 4, 18)), "{ranges:?}");
        }
        let metrics = net.metrics();
        assert_eq!(metrics.requests(18), 2);
        assert_eq!(metrics.protocol_errors(), 0);
    });
}

#[test]
fn api_versions_unsupported_version_answers_35_and_keeps_the_connection() {
    run(|| async {
        let (net, addr) = start(broker(), config());
        let mut stream = connect(addr).await;
        // v99 with a v2 header, as a newer client would send it.
        stream
            .write_all(&api_versions_request(99, 42))
            .await
            .unwrap();
        let (correlation_id, mut body) = read_response(&mut stream).await;
        assert_eq!(correlation_id, 42);
        let response = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert!(body.is_empty(), "v0 layout leaves nothing over");
        assert_eq!(response.error_code, UNSUPPORTED_VERSION);
        let ranges: Vec<_> = response
            .api_keys
            .iter()
            .map(|key| (key.api_key, key.min_version, key.max_version))
            .collect();
        assert_eq!(ranges, vec![(18, 0, 4)]);
        api_versions_roundtrip(&mut stream, 3, 43).await;
        let metrics = net.metrics();
        assert_eq!(metrics.requests(18), 2);
        assert_eq!(metrics.protocol_errors(), 0);
        assert_eq!(metrics.connections_closed, 0);
    });
}

#[test]
fn api_versions_v3_with_invalid_software_name_gets_invalid_request() {
    run(|| async {
        let (_net, addr) = start(broker(), config());
        let mut stream = connect(addr).await;
        let body = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("bad name"))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let request = request_frame(&header(ApiKey::ApiVersions, 3, 5), &body, 3).unwrap();
        stream.write_all(&request).await.unwrap();
        let (correlation_id, mut body) = read_response(&mut stream).await;
        assert_eq!(correlation_id, 5);
        let response = ApiVersionsResponse::decode(&mut body, 3).unwrap();
        assert_eq!(response.error_code, 42);
        assert!(response.api_keys.is_empty());
        api_versions_roundtrip(&mut stream, 3, 6).await;
    });
}

// ---- pipelining and bounds -------------------------------------------------

#[test]
fn pipelined_responses_come_back_in_request_order() {
    const REQUESTS: i32 = 50;
    run(|| async {
        let (service, dispatched) = held_service();
        let (net, addr) = start(service, config());
        let mut stream = connect(addr).await;
        let mut batch = Vec::new();
        for correlation_id in 0..REQUESTS {
            batch.extend(empty_request(ApiKey::Metadata, 12, correlation_id));
        }
        stream.write_all(&batch).await.unwrap();
        // All 50 are served at once before any is released.
        let mut releases = Vec::new();
        for _ in 0..REQUESTS {
            releases.push(dispatched.recv().await.unwrap());
        }
        let order: Vec<i32> = releases.iter().map(|(id, _)| *id).collect();
        assert_eq!(order, (0..REQUESTS).collect::<Vec<_>>());
        // The first request is the slowest: release in reverse.
        while let Some((_, release)) = releases.pop() {
            release.try_send(()).unwrap();
        }
        for expected in 0..REQUESTS {
            let (correlation_id, body) = read_response(&mut stream).await;
            assert_eq!(correlation_id, expected);
            assert_eq!(&body[..], b"done");
        }
        let metrics = net.metrics();
        assert_eq!(metrics.requests(ApiKey::Metadata as i16), REQUESTS as u64);
        assert_eq!(metrics.bytes_out, REQUESTS as u64 * (4 + 8));
    });
}

#[test]
fn third_request_waits_for_a_free_inflight_slot() {
    run(|| async {
        let (service, dispatched) = held_service();
        let mut config = config();
        config.connection.inflight_requests_max = 2;
        let (net, addr) = start(service, config);
        let mut stream = connect(addr).await;
        let mut batch = Vec::new();
        for correlation_id in 0..3 {
            batch.extend(empty_request(ApiKey::Metadata, 12, correlation_id));
        }
        stream.write_all(&batch).await.unwrap();
        let (first, release_first) = dispatched.recv().await.unwrap();
        let (second, release_second) = dispatched.recv().await.unwrap();
        assert_eq!((first, second), (0, 1));
        let sent_bytes = batch.len() as u64;
        wait_until("the server to read all three", || {
            net.metrics().bytes_in == sent_bytes
        })
        .await;
        for _ in 0..100 {
            glommio::executor().yield_task_queue_now().await;
        }
        assert!(
            poll_once(dispatched.recv()).await.is_none(),
            "3rd ran early"
        );
        release_first.try_send(()).unwrap();
        let (third, release_third) = dispatched.recv().await.unwrap();
        assert_eq!(third, 2);
        assert_eq!(read_response(&mut stream).await.0, 0);
        release_third.try_send(()).unwrap();
        release_second.try_send(()).unwrap();
        assert_eq!(read_response(&mut stream).await.0, 1);
        assert_eq!(read_response(&mut stream).await.0, 2);
    });
}

#[test]
fn shard_byte_budget_holds_back_another_connections_frame() {
    run(|| async {
        let (service, dispatched) = held_service();
        let request = empty_request(ApiKey::Metadata, 12, 1);
        let frame_bytes = request.len() - 4;
        let mut config = config();
        // Room for one frame only, across the whole shard.
        config.shard_inflight_bytes_max = frame_bytes + frame_bytes / 2;
        let (net, addr) = start(service, config);
        let mut first = connect(addr).await;
        let mut second = connect(addr).await;
        first.write_all(&request).await.unwrap();
        let (_, release_first) = dispatched.recv().await.unwrap();
        second.write_all(&request).await.unwrap();
        let sent_bytes = 2 * request.len() as u64;
        wait_until("both frames read", || net.metrics().bytes_in == sent_bytes).await;
        for _ in 0..100 {
            glommio::executor().yield_task_queue_now().await;
        }
        assert!(poll_once(dispatched.recv()).await.is_none());
        release_first.try_send(()).unwrap();
        assert_eq!(read_response(&mut first).await.0, 1);
        let (_, release_second) = dispatched.recv().await.unwrap();
        release_second.try_send(()).unwrap();
        assert_eq!(read_response(&mut second).await.0, 1);
    });
}

/// Fairness at the shard's byte budget: a connection with a deep pipeline
/// holds at most one waiting frame (its reader reads nothing more until
/// that frame is admitted), and the budget admits waiters in arrival
/// order, so another connection's request waits for one release, not for
/// the flood's whole pipeline.
#[test]
fn a_deep_pipeline_does_not_starve_another_connection_at_the_shard_budget() {
    run(|| async {
        let (service, dispatched) = held_service();
        let request = |correlation_id| empty_request(ApiKey::Metadata, 12, correlation_id);
        let frame_bytes = request(0).len() - 4;
        let mut config = config();
        // Room for two frames across the shard.
        config.shard_inflight_bytes_max = 2 * frame_bytes + frame_bytes / 2;
        let (net, addr) = start(service, config);
        let mut flood = connect(addr).await;
        let mut other = connect(addr).await;
        let pipeline: Vec<u8> = (0..10).flat_map(request).collect();
        flood.write_all(&pipeline).await.unwrap();
        let mut held = Vec::new();
        for expected in 0..2 {
            let (id, release) = dispatched.recv().await.unwrap();
            assert_eq!(id, expected);
            held.push(release);
        }
        // The flood's whole pipeline fits one read window: its reader
        // holds the rest buffered, its third frame waiting for budget. The
        // other connection's frame queues behind that one.
        let flood_bytes = pipeline.len() as u64;
        wait_until("the flood's pipeline read", || {
            net.metrics().bytes_in == flood_bytes
        })
        .await;
        other.write_all(&request(100)).await.unwrap();
        let total = flood_bytes + request(100).len() as u64;
        wait_until("the other frame read", || net.metrics().bytes_in == total).await;
        held.remove(0).try_send(()).unwrap();
        let (id, release) = dispatched.recv().await.unwrap();
        assert_eq!(id, 2, "the flood's waiting frame is admitted first");
        held.push(release);
        held.remove(0).try_send(()).unwrap();
        let (id, release) = dispatched.recv().await.unwrap();
        assert_eq!(
            id, 100,
            "then the other connection's, before the flood's 4th"
        );
        release.try_send(()).unwrap();
        assert_eq!(read_response(&mut other).await.0, 100);
        // The flood goes on once budget frees.
        for release in held.drain(..) {
            release.try_send(()).unwrap();
        }
        for expected in 3..10 {
            let (id, release) = dispatched.recv().await.unwrap();
            assert_eq!(id, expected);
            release.try_send(()).unwrap();
        }
        for expected in 0..10 {
            assert_eq!(read_response(&mut flood).await.0, expected);
        }
    });
}

/// Answers with the correlation id followed by the request body.
struct Echo;

impl Service for Echo {
    async fn call(&self, request: Request) -> Response {
        let mut reply = BytesMut::new();
        reply.put_i32(request.header.correlation_id);
        reply.put_slice(&request.body);
        Response::Reply(reply.freeze())
    }
}

#[test]
fn large_frames_span_reads_and_large_replies_keep_their_order() {
    run(|| async {
        let (net, addr) = start(Echo, config());
        let mut stream = connect(addr).await;
        // Larger than the read window and the write coalescing buffer.
        let large_body: Vec<u8> = (0..600_000_u32).map(|i| (i % 251) as u8).collect();
        let mut large = BytesMut::new();
        header(ApiKey::Fetch, 11, 1).encode(&mut large).unwrap();
        large.put_slice(&large_body);
        let mut batch = frame(&large);
        batch.extend(empty_request(ApiKey::Fetch, 11, 2));
        stream.write_all(&batch).await.unwrap();
        let (first, body) = read_response(&mut stream).await;
        assert_eq!(first, 1);
        assert_eq!(&body[..], &large_body[..]);
        let (second, body) = read_response(&mut stream).await;
        assert_eq!(second, 2);
        assert!(body.is_empty());
        let metrics = net.metrics();
        assert_eq!(metrics.bytes_in, batch.len() as u64);
        assert_eq!(metrics.bytes_out, (4 + 4 + 600_000) + (4 + 4));
    });
}

// ---- bad input -------------------------------------------------------------

/// A request whose header names api key 9999 (no such API).
fn unknown_api_key_request() -> Vec<u8> {
    frame(&raw_header_v1(9999, 0, 77, None))
}

/// Produce at a version nobody serves.
fn unsupported_produce_request() -> Vec<u8> {
    frame(&raw_header_v1(ApiKey::Produce as i16, 99, 78, None))
}

/// ApiVersions v1 whose client id claims more bytes than the frame holds.
fn overlong_client_id_request() -> Vec<u8> {
    let mut payload = BytesMut::new();
    payload.put_i16(ApiKey::ApiVersions as i16);
    payload.put_i16(1);
    payload.put_i32(79);
    payload.put_i16(100);
    payload.put_slice(b"short");
    frame(&payload)
}

/// ApiVersions v3 whose body ends inside the client software name.
fn truncated_body_request() -> Vec<u8> {
    let mut payload = BytesMut::new();
    header(ApiKey::ApiVersions, 3, 80)
        .encode(&mut payload)
        .unwrap();
    payload.put_u8(11); // compact string of 10 bytes...
    payload.put_slice(b"abc"); // ...of which 3 arrive
    frame(&payload)
}

#[test]
fn bad_input_closes_only_that_connection_and_is_counted() {
    let frame_errors: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: rafka\r\n\r\n".to_vec()),
        ("negative size", (-1_i32).to_be_bytes().to_vec()),
        ("zero size", 0_i32.to_be_bytes().to_vec()),
        (
            "size above the limit",
            (FRAME_BYTES_MAX as i32 + 1).to_be_bytes().to_vec(),
        ),
    ];
    let header_errors: Vec<(&str, Vec<u8>)> = vec![
        ("truncated header", frame(&[0, 18, 0])),
        ("unknown api key", unknown_api_key_request()),
        ("unsupported version", unsupported_produce_request()),
        ("client id beyond the frame", overlong_client_id_request()),
    ];
    let handler_errors: Vec<(&str, Vec<u8>)> = vec![("truncated body", truncated_body_request())];
    run(|| async move {
        let (net, addr) = start(broker(), config());
        let mut before = connect(addr).await;
        api_versions_roundtrip(&mut before, 0, 1).await;
        let cases = frame_errors
            .iter()
            .chain(&header_errors)
            .chain(&handler_errors);
        let mut closed = 0;
        for (name, bytes) in cases {
            let mut bad = connect(addr).await;
            bad.write_all(bytes).await.unwrap();
            expect_closed(&mut bad).await;
            closed += 1;
            wait_until(name, || net.metrics().connections_closed == closed).await;
            api_versions_roundtrip(&mut before, 3, 2).await;
        }
        let mut after = connect(addr).await;
        api_versions_roundtrip(&mut after, 3, 3).await;
        let metrics = net.metrics();
        assert_eq!(metrics.frame_errors, frame_errors.len() as u64);
        assert_eq!(metrics.header_errors, header_errors.len() as u64);
        assert_eq!(metrics.handler_errors, handler_errors.len() as u64);
        assert_eq!(metrics.connections_accepted, closed + 2);
        assert_eq!(metrics.connections_closed, closed);
        // 1 + 9 + 1 good ones, plus the truncated body, whose header parsed;
        // refused headers are not requests.
        assert_eq!(metrics.requests(18), 1 + 9 + 1 + 1);
        assert_eq!(net.connections_open(), 2);
    });
}

/// A fake that refuses Metadata and answers everything else.
struct RefusesMetadata;

impl Service for RefusesMetadata {
    async fn call(&self, request: Request) -> Response {
        let api_key = request.header.api_key;
        if api_key == ApiKey::Metadata {
            return Response::Close(HandlerError::NotServed { api_key });
        }
        Response::Reply(Bytes::copy_from_slice(
            &request.header.correlation_id.to_be_bytes(),
        ))
    }
}

#[test]
fn service_close_writes_earlier_responses_first() {
    run(|| async {
        let (net, addr) = start(RefusesMetadata, config());
        let mut stream = connect(addr).await;
        let mut batch = empty_request(ApiKey::Fetch, 12, 1);
        batch.extend(empty_request(ApiKey::Metadata, 12, 2));
        batch.extend(empty_request(ApiKey::Fetch, 12, 3));
        stream.write_all(&batch).await.unwrap();
        assert_eq!(read_response(&mut stream).await.0, 1);
        expect_closed(&mut stream).await;
        wait_until("the close", || net.metrics().connections_closed == 1).await;
        assert_eq!(net.metrics().handler_errors, 1);
    });
}

#[test]
fn two_hundred_half_requests_then_a_normal_client() {
    const HALF_OPEN: u64 = 200;
    run(|| async {
        let (net, addr) = start(broker(), config());
        for _ in 0..HALF_OPEN {
            let mut stream = connect(addr).await;
            let request = api_versions_request(3, 9);
            stream
                .write_all(&request[..request.len() / 2])
                .await
                .unwrap();
        }
        wait_until("200 closed connections", || {
            net.metrics().connections_closed == HALF_OPEN
        })
        .await;
        let mut client = connect(addr).await;
        api_versions_roundtrip(&mut client, 3, 10).await;
        let metrics = net.metrics();
        assert_eq!(metrics.connections_closed, HALF_OPEN);
        assert_eq!(metrics.protocol_errors(), 0);
        assert_eq!(net.connections_open(), 1);
    });
}

// ---- connection lifecycle --------------------------------------------------

#[test]
fn idle_connections_hold_no_read_buffer() {
    const CLIENTS: usize = 50;
    run(|| async {
        let (net, addr) = start(broker(), config());
        let mut clients = Vec::new();
        for correlation_id in 0..CLIENTS as i32 {
            let mut stream = connect(addr).await;
            api_versions_roundtrip(&mut stream, 3, correlation_id).await;
            clients.push(stream);
        }
        // Each reader went back to waiting for its next frame before the
        // answer was written, and waits holding nothing.
        assert_eq!(net.connections_open(), CLIENTS);
        assert_eq!(net.metrics().read_buffer_bytes, 0);
        // A frame in the middle of arriving holds its window, and only it.
        let request = api_versions_request(3, 99);
        clients[0].write_all(&request[..10]).await.unwrap();
        wait_until("the partial frame to be read", || {
            net.metrics().read_buffer_bytes > 0
        })
        .await;
        clients[0].write_all(&request[10..]).await.unwrap();
        let (correlation_id, _) = read_response(&mut clients[0]).await;
        assert_eq!(correlation_id, 99);
        assert_eq!(net.metrics().read_buffer_bytes, 0);
    });
}

#[test]
fn idle_connections_are_closed() {
    run(|| async {
        let mut config = config();
        config.connection.connections_max_idle_ms = 50;
        let (net, addr) = start(broker(), config);
        let mut busy = connect(addr).await;
        api_versions_roundtrip(&mut busy, 0, 1).await;
        // No request: the server closes it once idle.
        expect_closed(&mut busy).await;
        wait_until("the idle close", || net.metrics().connections_closed == 1).await;
        assert_eq!(net.metrics().connections_idle_closed, 1);
    });
}

#[test]
fn connections_beyond_the_bound_are_refused() {
    run(|| async {
        let mut config = config();
        config.connections_max = 1;
        let (net, addr) = start(broker(), config);
        let mut first = connect(addr).await;
        api_versions_roundtrip(&mut first, 0, 1).await;
        let mut second = connect(addr).await;
        expect_closed(&mut second).await;
        assert_eq!(net.metrics().connections_rejected, 1);
        api_versions_roundtrip(&mut first, 0, 2).await;
        drop(first);
        wait_until("the first to close", || net.connections_open() == 0).await;
        let mut third = connect(addr).await;
        api_versions_roundtrip(&mut third, 0, 3).await;
    });
}

#[test]
fn shutdown_stops_accepting_and_waits_for_inflight_requests() {
    run(|| async {
        let (service, dispatched) = held_service();
        let (net, addr) = start(service, config());
        let mut stream = connect(addr).await;
        stream
            .write_all(&empty_request(ApiKey::Metadata, 12, 1))
            .await
            .unwrap();
        let (_, release) = dispatched.recv().await.unwrap();
        let finished = Rc::new(Cell::new(false));
        let shutdown = glommio::spawn_local({
            let (net, finished) = (Rc::clone(&net), Rc::clone(&finished));
            async move {
                net.shutdown().await;
                finished.set(true);
            }
        });
        for _ in 0..100 {
            glommio::executor().yield_task_queue_now().await;
        }
        assert!(
            !finished.get(),
            "shutdown returned with a request in flight"
        );
        release.try_send(()).unwrap();
        assert_eq!(read_response(&mut stream).await.0, 1);
        expect_closed(&mut stream).await;
        shutdown.await;
        assert!(finished.get());
        assert_eq!(net.connections_open(), 0);
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    });
}

#[test]
fn every_shard_can_bind_the_port_the_first_one_got() {
    run(|| async {
        let (first, addr) = bind_first("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(addr.port(), 0);
        let second = bind(addr).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        let net = ShardNet::new(Rc::new(broker()), api_table(), config());
        net.serve(first).unwrap();
        net.serve(second).unwrap();
        let mut clients = Vec::new();
        for correlation_id in 0..4 {
            let mut stream = connect(addr).await;
            api_versions_roundtrip(&mut stream, 0, correlation_id).await;
            clients.push(stream);
        }
        assert_eq!(net.metrics().connections_accepted, 4);
    });
}
