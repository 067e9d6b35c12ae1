//! `rafka-bench ceiling-sink` as perf.sh runs it: the real binary on port 0
//! and a temp dir, driven with raw kafka-protocol frames over real
//! sockets. Checks the files hold exactly the batch bytes sent, in order,
//! and that base offsets count records per partition.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Request, StrBytes};
use rafka_proto::frame::{begin_frame, finish_frame};
use rafka_proto::header::{RequestHeader, RequestHeaderVersion};
use rafka_proto::record::{BatchBuilder, Compression};

const TOPIC: &str = "sink-test";
const PRODUCE_VERSION: i16 = 9;
const METADATA_VERSION: i16 = 12;

/// Kills the sink if the test fails before it stops it.
struct SinkProcess(Child);

impl Drop for SinkProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sink(dir: &Path) -> (SinkProcess, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rafka-bench"))
        .args([
            "ceiling-sink",
            "--listen",
            "127.0.0.1:0",
            "--partitions",
            "2",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let sink = SinkProcess(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("ceiling-sink listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_owned();
    (sink, addr)
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

fn send<R: Request>(stream: &mut TcpStream, correlation_id: i32, request: &R, version: i16) {
    let api_key = ApiKey::try_from(R::KEY).unwrap();
    let header = RequestHeader {
        api_key,
        api_version: version,
        correlation_id,
        header_version: RequestHeaderVersion::from_i16(api_key.request_header_version(version))
            .unwrap(),
        client_id: Some(Bytes::from_static(b"sink-test")),
    };
    let mut out = BytesMut::new();
    let start = begin_frame(&mut out);
    header.encode(&mut out).unwrap();
    request.encode(&mut out, version).unwrap();
    finish_frame(&mut out, start).unwrap();
    stream.write_all(&out).unwrap();
}

/// The next response on `stream`: its correlation id and body.
fn receive<T: Decodable>(stream: &mut TcpStream, api_key: ApiKey, version: i16) -> (i32, T) {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).unwrap();
    let mut frame = vec![0u8; i32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut frame).unwrap();
    let mut body = Bytes::from(frame);
    let correlation_id = body.get_i32();
    if api_key.response_header_version(version) >= 1 {
        assert_eq!(body.get_u8(), 0, "no tagged fields in the response header");
    }
    (correlation_id, T::decode(&mut body, version).unwrap())
}

fn batch(records: usize, fill: u8) -> Bytes {
    let value = vec![fill; 100];
    let mut builder = BatchBuilder::with_capacity(Compression::None, records * 128);
    for _ in 0..records {
        builder.push_record(1_700_000_000_000, None, Some(&value), &[]);
    }
    builder.build().unwrap()
}

fn produce(acks: i16, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// (partition, error code, base offset) of a one-topic answer.
fn answered(response: &ProduceResponse) -> Vec<(i32, i16, i64)> {
    response.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect()
}

fn metadata(stream: &mut TcpStream, correlation_id: i32) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]))
        .with_allow_auto_topic_creation(true);
    send(stream, correlation_id, &request, METADATA_VERSION);
    let (got, response) = receive::<MetadataResponse>(stream, ApiKey::Metadata, METADATA_VERSION);
    assert_eq!(got, correlation_id);
    response
}

#[test]
fn sink_appends_batches_as_sent_and_counts_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut sink, addr) = start_sink(dir.path());
    let mut client = connect(&addr);

    send(&mut client, 1, &ApiVersionsRequest::default(), 3);
    let (_, versions) = receive::<ApiVersionsResponse>(&mut client, ApiKey::ApiVersions, 3);
    let range = |api_key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == api_key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::Produce), Some((3, 12)));
    // Listed (not served) so librdkafka sends RecordBatch v2.
    assert_eq!(range(ApiKey::Fetch), Some((4, 12)));

    // Metadata creates the topic with --partitions, led by the sink itself.
    let response = metadata(&mut client, 2);
    let port = addr.rsplit(':').next().unwrap().parse::<i32>().unwrap();
    assert_eq!(response.brokers.len(), 1);
    assert_eq!(
        (response.brokers[0].node_id.0, response.brokers[0].port),
        (0, port)
    );
    let topic = &response.topics[0];
    assert_eq!(topic.error_code, 0);
    let leaders: Vec<(i32, i32)> = topic
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    assert_eq!(leaders, [(0, 0), (1, 0)]);

    // Pipelined acks=all to partition 0, acks=1 to partition 1: answers in
    // request order, base offsets counting each partition's records.
    let sent = [
        (0, -1, batch(3, b'a')),
        (0, -1, batch(5, b'b')),
        (1, 1, batch(4, b'c')),
        (0, -1, batch(1, b'd')),
    ];
    for (at, (partition, acks, records)) in sent.iter().enumerate() {
        let request = produce(*acks, *partition, records.clone());
        send(&mut client, 10 + at as i32, &request, PRODUCE_VERSION);
    }
    let mut answers = Vec::new();
    for _ in &sent {
        let (id, response) =
            receive::<ProduceResponse>(&mut client, ApiKey::Produce, PRODUCE_VERSION);
        answers.push((id, answered(&response)));
    }
    assert_eq!(
        answers,
        [
            (10, vec![(0, 0, 0)]),
            (11, vec![(0, 0, 3)]),
            (12, vec![(1, 0, 0)]),
            (13, vec![(0, 0, 8)]),
        ]
    );

    // acks=0 is never answered: the next answer is the Metadata call's.
    let unanswered = batch(2, b'e');
    send(
        &mut client,
        20,
        &produce(0, 1, unanswered.clone()),
        PRODUCE_VERSION,
    );
    metadata(&mut client, 21);

    // An unknown partition is an error code, not a closed connection.
    send(
        &mut client,
        22,
        &produce(-1, 7, batch(1, b'f')),
        PRODUCE_VERSION,
    );
    let (id, response) = receive::<ProduceResponse>(&mut client, ApiKey::Produce, PRODUCE_VERSION);
    assert_eq!((id, answered(&response)), (22, vec![(7, 3, -1)]));

    let data = |partition: i32| std::fs::read(dir.path().join(format!("{TOPIC}-{partition}.log")));
    let expected_0 = [&sent[0].2[..], &sent[1].2[..], &sent[3].2[..]].concat();
    let expected_1 = [&sent[2].2[..], &unanswered[..]].concat();
    assert_eq!(data(0).unwrap().len(), expected_0.len());
    assert_eq!(data(0).unwrap(), expected_0);
    assert_eq!(data(1).unwrap(), expected_1);

    // Bad bytes close that connection only.
    let mut bad = connect(&addr);
    bad.write_all(&[0, 0, 0, 8, 0x03, 0xe7, 0, 0, 0, 0, 0, 1])
        .unwrap(); // api key 999
    let mut rest = Vec::new();
    assert_eq!(bad.read_to_end(&mut rest).unwrap(), 0);
    let mut negative = connect(&addr);
    negative.write_all(&(-1i32).to_be_bytes()).unwrap();
    assert_eq!(negative.read_to_end(&mut rest).unwrap(), 0);
    let mut cut = connect(&addr);
    let mut short_batch = batch(2, b'g').to_vec();
    short_batch.truncate(40);
    send(
        &mut cut,
        1,
        &produce(-1, 0, short_batch.into()),
        PRODUCE_VERSION,
    );
    assert_eq!(cut.read_to_end(&mut rest).unwrap(), 0);
    assert_eq!(data(0).unwrap(), expected_0);
    assert_eq!(metadata(&mut client, 30).topics[0].partitions.len(), 2);

    // SIGTERM stops it cleanly.
    // SAFETY: kill(2) on the child's pid, which is alive (it just answered).
    let killed = unsafe { libc::kill(sink.0.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(killed, 0);
    assert!(sink.0.wait().unwrap().success());
}

fn create_topic(addr: &str, topic: &str, partitions: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rafka-bench"))
        .args(["create-topic", "--bootstrap", addr, "--topic", topic])
        .args(["--partitions", partitions])
        .output()
        .unwrap()
}

/// `create-topic` as perf-clients.sh runs it before librdkafka's tool:
/// the topic gets the asked partitions, not the sink's --partitions (2),
/// and a second call leaves it as it is.
#[test]
fn create_topic_makes_the_asked_partitions_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_sink, addr) = start_sink(dir.path());

    let first = create_topic(&addr, TOPIC, "6");
    assert!(first.status.success(), "{first:?}");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "sink-test: 6 partitions\n"
    );
    let again = create_topic(&addr, TOPIC, "3");
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout),
        "sink-test: 6 partitions\n"
    );

    let mut client = connect(&addr);
    let response = metadata(&mut client, 1);
    let indexes: Vec<i32> = response.topics[0]
        .partitions
        .iter()
        .map(|p| p.partition_index)
        .collect();
    assert_eq!(indexes, [0, 1, 2, 3, 4, 5]);

    let bad = create_topic(&addr, "other", "0");
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());
}
