//! A tiny fake Kafka broker that records what real producers send.
//!
//! It serves just enough of the protocol for a producer to get to its first
//! Produce request (ApiVersions, Metadata, FindCoordinator, InitProducerId)
//! and writes each
//! partition's raw `records` bytes to `DIR/<topic>.records`, untouched, so the
//! files can serve as record-batch fixtures. It is a capture tool for tests,
//! not the broker: one blocking thread per connection, one topic with one
//! partition, no storage beyond the capture files.
//!
//! ```text
//! cargo run -p rafka-proto --example capture_produce -- \
//!     --port 0 --out DIR --topic T [--max-produce N]
//! ```
//!
//! `--port 0` binds a free port; the first line on stdout is
//! `listening on 127.0.0.1:<port>`. With `--max-produce N` the process exits
//! after the N-th Produce request has been answered; without it, it serves
//! until killed.

use std::error::Error as StdError;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rafka_proto::record::Batches;

/// Kafka's default socket.request.max.bytes.
const FRAME_BYTES_MAX: usize = 100 * 1024 * 1024;
/// What idempotent producers (the Java client and kafka-python 3 are by
/// default) get from InitProducerId; their fixtures carry it in the batch
/// headers.
const PRODUCER_ID: i64 = 4242;
const BROKER_ID: i32 = 0;
const CLUSTER_ID: &str = "rafka-capture";
const TOPIC_ID: u128 = 0x7261_666b_6100_4000_8000_0000_0000_0001;

const ERROR_NONE: i16 = 0;
const ERROR_CORRUPT_MESSAGE: i16 = 2;
const ERROR_UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ERROR_UNSUPPORTED_VERSION: i16 = 35;

/// The APIs advertised in ApiVersions, with the ranges Kafka 3.9 advertises,
/// so clients take the paths they take against a real 3.9 broker. Requests
/// are decoded only within kafka-protocol's ranges too (Produce from v3);
/// every client here picks the highest common version anyway.
/// - Produce starts at v0 because librdkafka 2.0 checks gzip/snappy support
///   as "Produce v0 is advertised" and silently stops compressing otherwise.
/// - Fetch is advertised but never served: librdkafka only writes v2 record
///   batches (and zstd) when Fetch v4 (v10) is advertised next to Produce
///   v3 (v7), and only lz4 when FindCoordinator is.
/// - ApiVersions stops at v3, so clients that open with v4 take the
///   UNSUPPORTED_VERSION downgrade.
const APIS: [(ApiKey, i16, i16); 6] = [
    (ApiKey::Produce, 0, 11),
    (ApiKey::Fetch, 0, 17),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 5),
];

type BoxError = Box<dyn StdError + Send + Sync>;

#[derive(Debug, thiserror::Error)]
enum CaptureError {
    #[error("io: {0}")]
    Io(#[from] io::Error),
    #[error("usage: {0}\n{USAGE}")]
    Usage(&'static str),
    #[error("invalid value {value:?} for {flag}\n{USAGE}")]
    BadValue { flag: &'static str, value: String },
    #[error("frame size {0} outside 8..={FRAME_BYTES_MAX}")]
    FrameSize(i64),
    #[error("unknown or unserved api key {0}")]
    UnknownApi(i16),
    #[error("{api:?} v{version} is not served")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("cannot decode {api:?} v{version}: {source}")]
    Decode {
        api: ApiKey,
        version: i16,
        source: BoxError,
    },
    #[error("cannot encode {api:?} v{version}: {source}")]
    Encode {
        api: ApiKey,
        version: i16,
        source: BoxError,
    },
}

const USAGE: &str = "capture_produce --port PORT --out DIR --topic TOPIC [--max-produce N]";

/// Command line settings.
#[derive(Debug)]
struct Config {
    port: u16,
    out_dir: PathBuf,
    topic: String,
    produce_requests_max: Option<u32>,
}

/// State shared by the connection threads.
struct Capture {
    config: Config,
    listen_port: u16,
    next_offset: AtomicI64,
    produce_requests: AtomicU32,
}

/// The fixed start of every request: enough to answer without the header.
struct RequestPrefix {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
}

fn main() {
    if let Err(error) = run() {
        eprintln!("capture_produce: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), CaptureError> {
    let config = parse_args(std::env::args().skip(1))?;
    std::fs::create_dir_all(&config.out_dir)?;
    let listener = TcpListener::bind(("127.0.0.1", config.port))?;
    let listen_port = listener.local_addr()?.port();
    println!("listening on 127.0.0.1:{listen_port}");
    io::stdout().flush()?;
    let capture = Arc::new(Capture {
        config,
        listen_port,
        next_offset: AtomicI64::new(0),
        produce_requests: AtomicU32::new(0),
    });
    for stream in listener.incoming() {
        let stream = stream?;
        let capture = Arc::clone(&capture);
        std::thread::spawn(move || {
            let peer = stream.peer_addr();
            if let Err(error) = serve(&capture, stream) {
                eprintln!("capture_produce: connection {peer:?} closed: {error}");
            }
        });
    }
    Ok(())
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Config, CaptureError> {
    let (mut port, mut out_dir, mut topic, mut produce_requests_max) = (None, None, None, None);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or(CaptureError::Usage("flag without a value"))?;
        match flag.as_str() {
            "--port" => port = Some(parse_number::<u16>("--port", value)?),
            "--out" => out_dir = Some(PathBuf::from(value)),
            "--topic" => topic = Some(value),
            "--max-produce" => {
                produce_requests_max = Some(parse_number::<u32>("--max-produce", value)?)
            }
            _ => return Err(CaptureError::Usage("unknown flag")),
        }
    }
    Ok(Config {
        port: port.ok_or(CaptureError::Usage("--port is required"))?,
        out_dir: out_dir.ok_or(CaptureError::Usage("--out is required"))?,
        topic: topic.ok_or(CaptureError::Usage("--topic is required"))?,
        produce_requests_max,
    })
}

fn parse_number<T: std::str::FromStr>(
    flag: &'static str,
    value: String,
) -> Result<T, CaptureError> {
    value
        .parse()
        .map_err(|_| CaptureError::BadValue { flag, value })
}

/// Answers requests in order until the peer closes or sends something this
/// tool does not serve (then the connection is dropped, as Kafka does).
fn serve(capture: &Capture, mut stream: TcpStream) -> Result<(), CaptureError> {
    let peer = stream.peer_addr()?;
    while let Some(frame) = read_frame(&mut stream)? {
        let prefix = parse_prefix(&frame)?;
        eprintln!(
            "capture_produce: {peer} {:?} v{}",
            prefix.api, prefix.version
        );
        let response = handle(capture, &prefix, frame)?;
        if let Some(response) = response {
            write_frame(&mut stream, &response)?;
        }
        if prefix.api == ApiKey::Produce {
            finish_if_done(capture, peer);
        }
    }
    Ok(())
}

fn finish_if_done(capture: &Capture, peer: SocketAddr) {
    let served = capture.produce_requests.fetch_add(1, Ordering::SeqCst) + 1;
    if capture.config.produce_requests_max == Some(served) {
        eprintln!("capture_produce: {peer} sent Produce request {served}, the last one; exiting");
        std::process::exit(0);
    }
}

/// Reads one size-prefixed frame; `None` when the peer closed between frames.
fn read_frame(stream: &mut TcpStream) -> Result<Option<Bytes>, CaptureError> {
    let mut size = [0u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(error) => return Err(error.into()),
    }
    let size_bytes = i32::from_be_bytes(size);
    // Eight bytes: api key, api version and correlation id, which every
    // request header starts with.
    if !(8..=FRAME_BYTES_MAX as i64).contains(&i64::from(size_bytes)) {
        return Err(CaptureError::FrameSize(i64::from(size_bytes)));
    }
    let mut frame = vec![0u8; size_bytes as usize];
    stream.read_exact(&mut frame)?;
    Ok(Some(Bytes::from(frame)))
}

fn write_frame(stream: &mut TcpStream, body: &[u8]) -> Result<(), CaptureError> {
    let size_bytes =
        i32::try_from(body.len()).map_err(|_| CaptureError::FrameSize(body.len() as i64))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&size_bytes.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame)?;
    Ok(())
}

/// `frame` holds at least 8 bytes (checked by `read_frame`).
fn parse_prefix(frame: &[u8]) -> Result<RequestPrefix, CaptureError> {
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api = ApiKey::try_from(api_key).map_err(|()| CaptureError::UnknownApi(api_key))?;
    Ok(RequestPrefix {
        api,
        version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes and answers one request; `None` means no response is sent
/// (Produce with acks=0).
fn handle(
    capture: &Capture,
    prefix: &RequestPrefix,
    mut frame: Bytes,
) -> Result<Option<Bytes>, CaptureError> {
    let (api, version) = (prefix.api, prefix.version);
    let (_, min, max) = APIS
        .iter()
        .find(|(served, _, _)| *served == api)
        .ok_or(CaptureError::UnknownApi(api as i16))?;
    if api == ApiKey::ApiVersions && version > *max {
        return unsupported_api_versions(prefix.correlation_id).map(Some);
    }
    let decodable = api.valid_versions();
    if !(*min..=*max).contains(&version) || !(decodable.min..=decodable.max).contains(&version) {
        return Err(CaptureError::UnsupportedVersion { api, version });
    }
    RequestHeader::decode(&mut frame, api.request_header_version(version))
        .map_err(decode_error(prefix))?;
    let response = match api {
        ApiKey::ApiVersions => encode_response(prefix, &api_versions(ERROR_NONE))?,
        ApiKey::Metadata => {
            let request =
                MetadataRequest::decode(&mut frame, version).map_err(decode_error(prefix))?;
            encode_response(prefix, &metadata(capture, &request, version))?
        }
        ApiKey::FindCoordinator => {
            let request = FindCoordinatorRequest::decode(&mut frame, version)
                .map_err(decode_error(prefix))?;
            encode_response(prefix, &find_coordinator(capture, request))?
        }
        ApiKey::InitProducerId => encode_response(prefix, &init_producer_id())?,
        ApiKey::Produce => {
            let request =
                ProduceRequest::decode(&mut frame, version).map_err(decode_error(prefix))?;
            match produce(capture, request)? {
                Some(response) => encode_response(prefix, &response)?,
                None => return Ok(None),
            }
        }
        _ => return Err(CaptureError::UnknownApi(api as i16)),
    };
    Ok(Some(response))
}

/// kafka-protocol reports decode errors as `anyhow::Error`; this keeps them
/// as the source of a typed error without naming that crate.
fn decode_error<E: Into<BoxError>>(prefix: &RequestPrefix) -> impl FnOnce(E) -> CaptureError {
    let (api, version) = (prefix.api, prefix.version);
    move |source| CaptureError::Decode {
        api,
        version,
        source: source.into(),
    }
}

fn encode_response<M: Encodable>(prefix: &RequestPrefix, body: &M) -> Result<Bytes, CaptureError> {
    let (api, version) = (prefix.api, prefix.version);
    let encode_error = |source: BoxError| CaptureError::Encode {
        api,
        version,
        source,
    };
    let header = ResponseHeader::default().with_correlation_id(prefix.correlation_id);
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.response_header_version(version))
        .map_err(|e| encode_error(e.into()))?;
    body.encode(&mut buf, version)
        .map_err(|e| encode_error(e.into()))?;
    Ok(buf.freeze())
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let api_keys = APIS
        .iter()
        .map(|(api, min, max)| {
            ApiVersion::default()
                .with_api_key(*api as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

/// Kafka's answer to an ApiVersions version it does not know: a v0 body
/// (the client cannot be assumed to parse anything newer) carrying
/// UNSUPPORTED_VERSION and the versions it does serve, so the client retries
/// with the highest of those.
fn unsupported_api_versions(correlation_id: i32) -> Result<Bytes, CaptureError> {
    let prefix = RequestPrefix {
        api: ApiKey::ApiVersions,
        version: 0,
        correlation_id,
    };
    encode_response(&prefix, &api_versions(ERROR_UNSUPPORTED_VERSION))
}

fn metadata(capture: &Capture, request: &MetadataRequest, version: i16) -> MetadataResponse {
    let served = TopicName(StrBytes::from_string(capture.config.topic.clone()));
    // v0 has no null array: an empty list asks for every topic.
    let names: Vec<Option<TopicName>> = match &request.topics {
        None => vec![Some(served.clone())],
        Some(topics) if topics.is_empty() && version == 0 => vec![Some(served.clone())],
        Some(topics) => topics.iter().map(|topic| topic.name.clone()).collect(),
    };
    let topics = names
        .into_iter()
        .map(|name| {
            if name.as_ref() == Some(&served) {
                served_topic(name)
            } else {
                MetadataResponseTopic::default()
                    .with_error_code(ERROR_UNKNOWN_TOPIC_OR_PARTITION)
                    .with_name(name)
            }
        })
        .collect();
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(BROKER_ID))
        .with_host(StrBytes::from_static_str("127.0.0.1"))
        .with_port(i32::from(capture.listen_port));
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
        .with_controller_id(BrokerId(BROKER_ID))
        .with_topics(topics)
}

fn served_topic(name: Option<TopicName>) -> MetadataResponseTopic {
    let partition = MetadataResponsePartition::default()
        .with_error_code(ERROR_NONE)
        .with_partition_index(0)
        .with_leader_id(BrokerId(BROKER_ID))
        .with_leader_epoch(0)
        .with_replica_nodes(vec![BrokerId(BROKER_ID)])
        .with_isr_nodes(vec![BrokerId(BROKER_ID)]);
    MetadataResponseTopic::default()
        .with_error_code(ERROR_NONE)
        .with_name(name)
        .with_topic_id(uuid::Uuid::from_u128(TOPIC_ID))
        .with_partitions(vec![partition])
}

/// This broker coordinates everything. v4+ batches the keys; older
/// versions carry one key and answer in the top-level fields.
fn find_coordinator(capture: &Capture, request: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let host = StrBytes::from_static_str("127.0.0.1");
    let port = i32::from(capture.listen_port);
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(BROKER_ID))
                .with_host(host.clone())
                .with_port(port)
        })
        .collect();
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(BROKER_ID))
        .with_host(host)
        .with_port(port)
        .with_coordinators(coordinators)
}

fn init_producer_id() -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(ERROR_NONE)
        .with_producer_id(ProducerId(PRODUCER_ID))
        .with_producer_epoch(0)
}

/// Appends every batch blob for the served topic to its capture file and
/// answers with base offsets counting up; `None` for acks=0.
fn produce(
    capture: &Capture,
    request: ProduceRequest,
) -> Result<Option<ProduceResponse>, CaptureError> {
    let acks = request.acks;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for topic in request.topic_data {
        let mut partition_responses = Vec::with_capacity(topic.partition_data.len());
        for partition in topic.partition_data {
            let is_served = topic.name.0.as_str() == capture.config.topic && partition.index == 0;
            let response = match partition.records {
                Some(records) if is_served => capture_records(capture, records)?,
                _ => PartitionProduceResponse::default()
                    .with_error_code(ERROR_UNKNOWN_TOPIC_OR_PARTITION),
            };
            partition_responses.push(response.with_index(partition.index));
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        return Ok(None);
    }
    Ok(Some(ProduceResponse::default().with_responses(responses)))
}

/// Writes the bytes as received, even when they do not validate: the
/// capture is the point, and a bad file will fail the fixture test loudly.
fn capture_records(
    capture: &Capture,
    records: Bytes,
) -> Result<PartitionProduceResponse, CaptureError> {
    let path = capture
        .config
        .out_dir
        .join(format!("{}.records", capture.config.topic));
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    file.write_all(&records)?;
    let mut record_count: i64 = 0;
    for batch in Batches::new(records) {
        match batch {
            Ok(batch) => record_count += i64::from(batch.header().last_offset_delta) + 1,
            Err(error) => {
                eprintln!("capture_produce: invalid batch written to {path:?}: {error}");
                return Ok(
                    PartitionProduceResponse::default().with_error_code(ERROR_CORRUPT_MESSAGE)
                );
            }
        }
    }
    let base_offset = capture
        .next_offset
        .fetch_add(record_count, Ordering::SeqCst);
    eprintln!("capture_produce: {record_count} records at offset {base_offset} -> {path:?}");
    Ok(PartitionProduceResponse::default()
        .with_error_code(ERROR_NONE)
        .with_base_offset(base_offset)
        .with_log_start_offset(0))
}
