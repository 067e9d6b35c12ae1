//! `ceiling-sink`: the produce ceiling a broker can be held to. A minimal
//! Kafka-speaking sink driven by the same load generator as the broker, so
//! the same client, the same loopback TCP copies and the same page-cache
//! copy are in both figures, and nothing else is in the sink's: no
//! validation, no index, no executor, no cross-core hop.
//!
//! - It answers ApiVersions, Metadata (one broker, node 0, at the address
//!   the client connected to), CreateTopics and Produce v3-v12. Metadata
//!   creates every unknown topic it is asked about with `partitions`
//!   partitions (as `auto.create.topics.enable` does). ApiVersions also
//!   lists Fetch v4-v12, never served: librdkafka writes RecordBatch v2
//!   only to a broker that lists both Produce v3+ and Fetch v4+
//!   (`rdkafka_feature.c`), and old-format message sets otherwise.
//! - Produce appends each partition's record bytes as they came to
//!   `<dir>/<topic>-<partition>.log`. Base offsets count records per
//!   partition from the record count of each RecordBatch v2 header (bytes
//!   57..61), so the client sees the offsets a broker would give.
//! - acks=all is answered after an fdatasync that covers the request's
//!   bytes. Group commit per file, pipelined: each partition file has a
//!   syncer thread that runs fdatasync as soon as an acks=all append
//!   waits and the previous fdatasync of that file is done; one fdatasync
//!   covers every append before it, appends during it wait for the next.
//!   Files sync concurrently. acks=1 is answered after the write and
//!   acks=0 never (as Kafka); their files are synced whenever `sync_bytes`
//!   have accumulated unsynced, as `ceiling-write` does.
//! - Threads: a connection has a reader (read, decode, append, encode the
//!   answer) and an acker (wait for the syncs, send the answers in request
//!   order, at most [`ANSWERS_QUEUED_MAX`] queued); each partition file
//!   has its syncer, asleep or in fdatasync. Blocking sockets need the
//!   acker to keep reading while answers wait for the disk. With the
//!   bench's one produce connection that is two busy threads on the
//!   machine's 2 cores, as the broker runs two shards.
//! - Bad bytes (a frame over the limit, an unserved API or version, a body
//!   that does not decode, a cut batch header) close that connection and
//!   are logged on stderr; other connections go on.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rafka_proto::api::{
    decodable_versions, decode_request, encode_response_into, ApiTable, ApiTableError, DecodeError,
    EncodeError, ServedApi,
};
use rafka_proto::error::ErrorCode;
use rafka_proto::frame::{begin_frame, finish_frame, FrameEncodeError, FRAME_BYTES_MAX_DEFAULT};
use rafka_proto::header::{HeaderError, RequestHeader};

use crate::admin::topic_name;

/// Answers a connection may have queued for its acker; the reader stops
/// reading when that many wait (the broker's in-flight limit).
pub const ANSWERS_QUEUED_MAX: usize = 64;
/// Most partitions a topic may be created with (a syncer thread each).
pub const PARTITIONS_MAX: i32 = 1024;
const READ_BUFFER_BYTES: usize = 64 << 10;
const NODE_ID: BrokerId = BrokerId(0);
const CLUSTER_ID: &str = "rafka-ceiling-sink";
/// RecordBatch v2: the i32 at 8..12 counts the bytes after it, the byte at
/// 16 is the magic (2); the record count is the i32 at 57..61, the
/// header's last field.
const BATCH_LENGTH_AT: usize = 8;
const BATCH_LENGTH_END: usize = 12;
const MAGIC_AT: usize = 16;
const MAGIC_V2: u8 = 2;
const RECORD_COUNT_AT: usize = 57;
const BATCH_HEADER_BYTES: usize = 61;

const NONE: i16 = ErrorCode::NONE.code();
const UNKNOWN_TOPIC_OR_PARTITION: i16 = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
const INVALID_TOPIC: i16 = ErrorCode::INVALID_TOPIC_EXCEPTION.code();
const INVALID_PARTITIONS: i16 = ErrorCode::INVALID_PARTITIONS.code();
const TOPIC_ALREADY_EXISTS: i16 = ErrorCode::TOPIC_ALREADY_EXISTS.code();

/// What the sink lists in ApiVersions, each clamped to what kafka-protocol
/// decodes. Fetch is listed only for librdkafka's feature check (see the
/// module docs); a Fetch request is unserved and ends its connection.
const SERVED: [(ApiKey, i16, i16); 5] = [
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
];

#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Where the partition files go.
    pub dir: PathBuf,
    /// Partitions of a topic created by Metadata or by CreateTopics with
    /// num_partitions -1.
    pub partitions: i32,
    /// Unsynced bytes of a file that make acks=1/0 traffic sync it.
    pub sync_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("{op} {}: {source}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("request frame of {size_bytes} bytes is negative or above the limit")]
    FrameSize { size_bytes: i32 },
    #[error("request header: {0}")]
    Header(#[from] HeaderError),
    #[error("{0:?} is not served by the sink")]
    Unserved(ApiKey),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("encoding a response: {0}")]
    Encode(#[from] EncodeError),
    #[error("framing a response: {0}")]
    Frame(#[from] FrameEncodeError),
    #[error("the sink's API table: {0}")]
    Table(#[from] ApiTableError),
    #[error("records of partition {partition}: {reason}")]
    Batch {
        partition: i32,
        reason: &'static str,
    },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked mid-update is a bug that already aborted its
    // connection; the counters it guards stay usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One partition's file. Shared by every connection that writes it and
/// by its syncer thread.
#[derive(Debug)]
struct PartitionFile {
    path: PathBuf,
    file: File,
    sync_bytes: u64,
    state: Mutex<FileState>,
    /// Wakes the syncer: an append to make durable, or `sync_bytes`
    /// unsynced.
    sync_wanted: Condvar,
    /// Wakes the ackers: a sync ended.
    synced: Condvar,
}

#[derive(Debug, Default)]
struct FileState {
    written_bytes: u64,
    synced_bytes: u64,
    /// The length an acks=all answer waits to see durable.
    wanted_bytes: u64,
    /// Records appended: the next base offset.
    records: i64,
    /// An fdatasync failed: nothing after it can be called durable.
    failed: bool,
}

impl FileState {
    fn sync_due(&self, sync_bytes: u64) -> bool {
        self.written_bytes > self.synced_bytes
            && (self.wanted_bytes > self.synced_bytes
                || self.written_bytes - self.synced_bytes >= sync_bytes)
    }
}

impl PartitionFile {
    /// Creates the file and starts its syncer.
    fn create(path: PathBuf, sync_bytes: u64) -> Result<Arc<PartitionFile>, SinkError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|source| SinkError::File {
                op: "creating",
                path: path.clone(),
                source,
            })?;
        let partition = Arc::new(PartitionFile {
            path,
            file,
            sync_bytes,
            state: Mutex::new(FileState::default()),
            sync_wanted: Condvar::new(),
            synced: Condvar::new(),
        });
        let syncer = Arc::clone(&partition);
        std::thread::Builder::new()
            .name("sink-syncer".into())
            .spawn(move || syncer.sync_loop())
            .map_err(|source| SinkError::File {
                op: "starting the syncer of",
                path: partition.path.clone(),
                source,
            })?;
        Ok(partition)
    }

    fn file_err(&self, op: &'static str) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
        move |source| SinkError::File {
            op,
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `bytes` holding `records` records; returns their base
    /// offset and the file's length after them. The lock keeps appends
    /// whole and in offset order. `durable`: the syncer starts on them
    /// now, before the acker asks.
    fn append(&self, bytes: &[u8], records: i64, durable: bool) -> Result<(i64, u64), SinkError> {
        let mut state = lock(&self.state);
        (&self.file)
            .write_all(bytes)
            .map_err(self.file_err("writing"))?;
        let base_offset = state.records;
        state.records += records;
        state.written_bytes += bytes.len() as u64;
        if durable {
            state.wanted_bytes = state.written_bytes;
        }
        if state.sync_due(self.sync_bytes) {
            self.sync_wanted.notify_one();
        }
        Ok((base_offset, state.written_bytes))
    }

    /// Returns once the file is durable up to `end`.
    fn wait_synced(&self, end: u64) -> Result<(), SinkError> {
        let mut state = lock(&self.state);
        while state.synced_bytes < end && !state.failed {
            state = self
                .synced
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.synced_bytes < end {
            return Err(SinkError::File {
                op: "fdatasync (failed earlier)",
                path: self.path.clone(),
                source: ErrorKind::Other.into(),
            });
        }
        Ok(())
    }

    fn synced_bytes(&self) -> u64 {
        lock(&self.state).synced_bytes
    }

    /// The syncer: fdatasync whenever one is due; appends go on meanwhile
    /// and wait for the next. Lives as long as the sink (topics are never
    /// deleted); stops after a failed fdatasync.
    fn sync_loop(&self) {
        loop {
            let target = {
                let mut state = lock(&self.state);
                while !state.sync_due(self.sync_bytes) {
                    state = self
                        .sync_wanted
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.written_bytes
            };
            let result = self.file.sync_data();
            let mut state = lock(&self.state);
            match result {
                Ok(()) => state.synced_bytes = state.synced_bytes.max(target),
                Err(err) => {
                    eprintln!("ceiling-sink: fdatasync {}: {err}", self.path.display());
                    state.failed = true;
                }
            }
            let failed = state.failed;
            drop(state);
            self.synced.notify_all();
            if failed {
                return;
            }
        }
    }
}

type Topic = Arc<[Arc<PartitionFile>]>;

/// A file and the length a request needs durable.
type SyncTarget = (Arc<PartitionFile>, u64);

/// The sink's state, shared by all connections.
#[derive(Debug)]
pub struct Sink {
    config: SinkConfig,
    table: ApiTable,
    topics: Mutex<HashMap<String, Topic>>,
}

/// What the acker does for one request, in request order.
#[derive(Debug)]
struct Answer {
    /// The framed response; None for acks=0.
    frame: Option<Bytes>,
    /// The files the request wrote and their lengths after it.
    wrote: Vec<SyncTarget>,
    /// acks=all: answer only once `wrote` is durable.
    durable: bool,
}

impl Answer {
    fn reply(frame: Bytes) -> Answer {
        Answer {
            frame: Some(frame),
            wrote: Vec::new(),
            durable: false,
        }
    }

    fn settled(&self) -> bool {
        !self.durable || covered(&self.wrote)
    }
}

fn covered(targets: &[SyncTarget]) -> bool {
    targets
        .iter()
        .all(|(file, end)| file.synced_bytes() >= *end)
}

impl Sink {
    pub fn new(config: SinkConfig) -> Result<Sink, SinkError> {
        let mut apis = Vec::new();
        for (api_key, min, max) in SERVED {
            let range = decodable_versions(api_key)?;
            let min_version = min.max(range.min);
            apis.push(ServedApi {
                api_key,
                min_version,
                max_version: max.min(range.max),
                advertised_min_version: min_version,
            });
        }
        Ok(Sink {
            config,
            table: ApiTable::new(&apis)?,
            topics: Mutex::new(HashMap::new()),
        })
    }

    /// Accepts connections until the listener fails; each gets its threads.
    pub fn serve(self: &Arc<Sink>, listener: &TcpListener) -> std::io::Result<()> {
        loop {
            let (stream, peer) = listener.accept()?;
            let sink = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name(format!("sink-{peer}"))
                .spawn(move || {
                    if let Err(err) = sink.connection(stream) {
                        eprintln!("ceiling-sink: {peer}: {err}; connection closed");
                    }
                });
            if let Err(err) = spawned {
                eprintln!("ceiling-sink: {peer}: no thread for the connection: {err}");
            }
        }
    }

    fn connection(&self, stream: TcpStream) -> Result<(), SinkError> {
        stream.set_nodelay(true)?;
        let advertised = stream.local_addr()?;
        let ack_stream = stream.try_clone()?;
        let (sender, receiver) = sync_channel::<Answer>(ANSWERS_QUEUED_MAX);
        std::thread::scope(|scope| {
            let acker = std::thread::Builder::new()
                .name("sink-acker".into())
                .spawn_scoped(scope, || self.ack(ack_stream, receiver))?;
            // Ends at the client's EOF or on bad bytes; dropping the sender
            // lets the acker send what is queued and stop.
            let read = self.read_requests(stream, advertised, sender);
            let acked = acker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            read.and(acked)
        })
    }

    fn read_requests(
        &self,
        stream: TcpStream,
        advertised: SocketAddr,
        answers: SyncSender<Answer>,
    ) -> Result<(), SinkError> {
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, stream);
        while let Some(frame) = read_frame(&mut reader)? {
            let answer = self.handle(&frame, advertised)?;
            if answers.send(answer).is_err() {
                return Ok(()); // the acker failed and reports why
            }
        }
        Ok(())
    }

    fn ack(&self, mut stream: TcpStream, answers: Receiver<Answer>) -> Result<(), SinkError> {
        let result = self.ack_loop(&mut stream, &answers);
        if result.is_err() {
            // Wakes the reader: the connection is over.
            let _ = stream.shutdown(Shutdown::Both);
        }
        result
    }

    /// Sends the answers in order; answers already settled behind the
    /// first go out in the same write.
    fn ack_loop(
        &self,
        stream: &mut TcpStream,
        answers: &Receiver<Answer>,
    ) -> Result<(), SinkError> {
        let mut out = Vec::new();
        let mut held: Option<Answer> = None;
        loop {
            let Some(mut answer) = held.take().or_else(|| answers.recv().ok()) else {
                return Ok(());
            };
            loop {
                if answer.durable {
                    for (file, end) in &answer.wrote {
                        file.wait_synced(*end)?;
                    }
                }
                if let Some(frame) = &answer.frame {
                    out.extend_from_slice(frame);
                }
                match answers.try_recv() {
                    Ok(next) if next.settled() => answer = next,
                    Ok(next) => {
                        held = Some(next);
                        break;
                    }
                    Err(_) => break,
                }
            }
            stream.write_all(&out)?;
            out.clear();
        }
    }

    fn handle(&self, frame: &Bytes, advertised: SocketAddr) -> Result<Answer, SinkError> {
        let (header, mut body) = match RequestHeader::parse(frame, &self.table) {
            Ok(parsed) => parsed,
            Err(HeaderError::Unsupported { prefix, .. })
                if prefix.api_key == ApiKey::ApiVersions as i16 =>
            {
                // Kafka's answer, so the client retries with a version both know.
                let response = self
                    .table
                    .encode_api_versions_response(prefix.correlation_id, prefix.api_version)?;
                let mut out = BytesMut::new();
                let start = begin_frame(&mut out);
                out.extend_from_slice(&response);
                finish_frame(&mut out, start)?;
                return Ok(Answer::reply(out.freeze()));
            }
            Err(err) => return Err(err.into()),
        };
        let version = header.api_version;
        match header.api_key {
            ApiKey::ApiVersions => {
                let response = self.table.api_versions_response(version);
                Ok(Answer::reply(self.framed(&header, &response)?))
            }
            ApiKey::Metadata => {
                let request: MetadataRequest = decode_request(&mut body, version)?;
                let response = self.metadata(&request, version, advertised)?;
                Ok(Answer::reply(self.framed(&header, &response)?))
            }
            ApiKey::CreateTopics => {
                let request: CreateTopicsRequest = decode_request(&mut body, version)?;
                let response = self.create_topics(&request)?;
                Ok(Answer::reply(self.framed(&header, &response)?))
            }
            ApiKey::Produce => self.produce(&header, body),
            other => Err(SinkError::Unserved(other)),
        }
    }

    /// The size-prefixed response to `header`'s request.
    fn framed<T: Encodable>(&self, header: &RequestHeader, body: &T) -> Result<Bytes, SinkError> {
        let entry = self
            .table
            .entry(header.api_key)
            .ok_or(SinkError::Unserved(header.api_key))?;
        let header_version = entry.response_header_version(header.api_version);
        let mut out = BytesMut::new();
        let start = begin_frame(&mut out);
        encode_response_into(
            &mut out,
            header.correlation_id,
            header_version,
            body,
            header.api_version,
        )?;
        finish_frame(&mut out, start)?;
        Ok(out.freeze())
    }

    fn produce(&self, header: &RequestHeader, mut body: Bytes) -> Result<Answer, SinkError> {
        let request: ProduceRequest = decode_request(&mut body, header.api_version)?;
        let mut wrote = Vec::new();
        let mut responses = Vec::with_capacity(request.topic_data.len());
        for topic in &request.topic_data {
            let files = self.find_topic(topic.name.0.as_str());
            let mut partitions = Vec::with_capacity(topic.partition_data.len());
            for data in &topic.partition_data {
                let durable = request.acks == -1;
                partitions.push(append(files.as_ref(), data, durable, &mut wrote)?);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic.name.clone())
                    .with_partition_responses(partitions),
            );
        }
        let frame = match request.acks {
            0 => None,
            _ => {
                let response = ProduceResponse::default().with_responses(responses);
                Some(self.framed(header, &response)?)
            }
        };
        Ok(Answer {
            frame,
            wrote,
            durable: request.acks == -1,
        })
    }

    fn metadata(
        &self,
        request: &MetadataRequest,
        version: i16,
        advertised: SocketAddr,
    ) -> Result<MetadataResponse, SinkError> {
        let broker = MetadataResponseBroker::default()
            .with_node_id(NODE_ID)
            .with_host(StrBytes::from_string(advertised.ip().to_string()))
            .with_port(i32::from(advertised.port()));
        // Before v4 every Metadata request may create topics.
        let create = version < 4 || request.allow_auto_topic_creation;
        let names: Vec<String> = match &request.topics {
            None => lock(&self.topics).keys().cloned().collect(),
            Some(asked) => asked
                .iter()
                .map(|t| {
                    t.name
                        .as_ref()
                        .map_or_else(String::new, |n| n.0.to_string())
                })
                .collect(),
        };
        let mut topics = Vec::with_capacity(names.len());
        for name in names {
            topics.push(self.metadata_topic(&name, create)?);
        }
        Ok(MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_cluster_id(Some(StrBytes::from_static_str(CLUSTER_ID)))
            .with_controller_id(NODE_ID)
            .with_topics(topics))
    }

    fn metadata_topic(&self, name: &str, create: bool) -> Result<MetadataResponseTopic, SinkError> {
        let topic = MetadataResponseTopic::default().with_name(Some(topic_name(name)));
        if !valid_topic_name(name) {
            return Ok(topic.with_error_code(INVALID_TOPIC));
        }
        let files = match self.find_topic(name) {
            Some(files) => files,
            None if create => self.ensure_topic(name, self.config.partitions)?.0,
            None => return Ok(topic.with_error_code(UNKNOWN_TOPIC_OR_PARTITION)),
        };
        let partitions = (0..files.len() as i32)
            .map(|index| {
                MetadataResponsePartition::default()
                    .with_partition_index(index)
                    .with_leader_id(NODE_ID)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![NODE_ID])
                    .with_isr_nodes(vec![NODE_ID])
            })
            .collect();
        Ok(topic.with_partitions(partitions))
    }

    fn create_topics(
        &self,
        request: &CreateTopicsRequest,
    ) -> Result<CreateTopicsResponse, SinkError> {
        let mut results = Vec::with_capacity(request.topics.len());
        for asked in &request.topics {
            results.push(self.create_topic(asked, request.validate_only)?);
        }
        Ok(CreateTopicsResponse::default().with_topics(results))
    }

    fn create_topic(
        &self,
        asked: &CreatableTopic,
        validate_only: bool,
    ) -> Result<CreatableTopicResult, SinkError> {
        let result = CreatableTopicResult::default().with_name(asked.name.clone());
        let name = asked.name.0.as_str();
        if !valid_topic_name(name) {
            return Ok(result.with_error_code(INVALID_TOPIC));
        }
        let partitions = match asked.num_partitions {
            -1 => self.config.partitions,
            n => n,
        };
        if !(1..=PARTITIONS_MAX).contains(&partitions) {
            return Ok(result.with_error_code(INVALID_PARTITIONS));
        }
        if self.find_topic(name).is_some() {
            return Ok(result.with_error_code(TOPIC_ALREADY_EXISTS));
        }
        if validate_only {
            return Ok(result.with_num_partitions(partitions));
        }
        let (files, created) = self.ensure_topic(name, partitions)?;
        let code = if created { NONE } else { TOPIC_ALREADY_EXISTS };
        Ok(result
            .with_error_code(code)
            .with_num_partitions(files.len() as i32)
            .with_replication_factor(1))
    }

    fn find_topic(&self, name: &str) -> Option<Topic> {
        lock(&self.topics).get(name).cloned()
    }

    /// The topic's files, creating the topic with `partitions` if it does
    /// not exist; true if it was created here.
    fn ensure_topic(&self, name: &str, partitions: i32) -> Result<(Topic, bool), SinkError> {
        let mut topics = lock(&self.topics);
        if let Some(files) = topics.get(name) {
            return Ok((Arc::clone(files), false));
        }
        let files = (0..partitions.clamp(1, PARTITIONS_MAX))
            .map(|index| {
                let path = partition_path(&self.config.dir, name, index);
                PartitionFile::create(path, self.config.sync_bytes)
            })
            .collect::<Result<Topic, SinkError>>()?;
        topics.insert(name.to_owned(), Arc::clone(&files));
        Ok((files, true))
    }
}

/// Appends one partition's records; an unknown partition is answered with
/// its error code, a cut batch header ends the connection.
fn append(
    files: Option<&Topic>,
    data: &PartitionProduceData,
    durable: bool,
    wrote: &mut Vec<SyncTarget>,
) -> Result<PartitionProduceResponse, SinkError> {
    let response = PartitionProduceResponse::default()
        .with_index(data.index)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1);
    let file = files.and_then(|files| files.get(usize::try_from(data.index).ok()?));
    let Some(file) = file else {
        return Ok(response.with_error_code(UNKNOWN_TOPIC_OR_PARTITION));
    };
    let records = data.records.as_deref().unwrap_or_default();
    let count = record_count(records).map_err(|reason| SinkError::Batch {
        partition: data.index,
        reason,
    })?;
    let (base_offset, end) = file.append(records, count, durable)?;
    wrote.push((Arc::clone(file), end));
    Ok(response
        .with_error_code(NONE)
        .with_base_offset(base_offset)
        .with_log_start_offset(0))
}

/// Reads one size-prefixed frame; None at a clean end of the stream.
fn read_frame(reader: &mut impl Read) -> Result<Option<Bytes>, SinkError> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix) {
        Err(err) if err.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        read => read?,
    }
    let size_bytes = i32::from_be_bytes(prefix);
    let size = usize::try_from(size_bytes)
        .ok()
        .filter(|&size| size <= FRAME_BYTES_MAX_DEFAULT)
        .ok_or(SinkError::FrameSize { size_bytes })?;
    // read_to_end fills spare capacity without zeroing it first.
    let mut frame = Vec::with_capacity(size);
    reader.take(size as u64).read_to_end(&mut frame)?;
    if frame.len() < size {
        return Err(SinkError::Socket(ErrorKind::UnexpectedEof.into()));
    }
    Ok(Some(Bytes::from(frame)))
}

/// The records in `bytes`, a run of RecordBatch v2: the sum of each
/// header's record count. Only the lengths and the magic are checked (an
/// old-format message set has no record count there); the sink does not
/// validate (no CRC).
pub fn record_count(mut bytes: &[u8]) -> Result<i64, &'static str> {
    let be_i32 = |b: &[u8], at: usize| i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut records = 0i64;
    while !bytes.is_empty() {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err("a batch header is cut short");
        }
        let length = be_i32(bytes, BATCH_LENGTH_AT);
        let batch_bytes = usize::try_from(length)
            .ok()
            .map(|length| length + BATCH_LENGTH_END)
            .filter(|&size| (BATCH_HEADER_BYTES..=bytes.len()).contains(&size))
            .ok_or("a batch length is shorter than its header or runs past the records")?;
        if bytes[MAGIC_AT] != MAGIC_V2 {
            return Err("a batch is not RecordBatch v2 (magic 2)");
        }
        let count = be_i32(bytes, RECORD_COUNT_AT);
        if count < 0 {
            return Err("a batch has a negative record count");
        }
        records += i64::from(count);
        bytes = &bytes[batch_bytes..];
    }
    Ok(records)
}

/// Kafka's rule: 1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`. It also keeps
/// names safe as file names.
fn valid_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn partition_path(dir: &Path, topic: &str, partition: i32) -> PathBuf {
    dir.join(format!("{topic}-{partition}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_proto::record::{BatchBuilder, Compression};

    fn batch(records: usize) -> Bytes {
        let mut builder = BatchBuilder::with_capacity(Compression::None, 256);
        for _ in 0..records {
            builder.push_record(1_700_000_000_000, None, Some(b"value"), &[]);
        }
        builder.build().unwrap()
    }

    #[test]
    fn record_count_sums_every_batch_header() {
        let mut run = Vec::new();
        run.extend_from_slice(&batch(3));
        run.extend_from_slice(&batch(5));
        assert_eq!(record_count(&run), Ok(8));
        assert_eq!(record_count(&[]), Ok(0));
    }

    #[test]
    fn record_count_refuses_cut_batches() {
        let one = batch(2);
        assert!(record_count(&one[..BATCH_HEADER_BYTES - 1]).is_err());
        assert!(record_count(&one[..one.len() - 1]).is_err());
        let mut negative = one.to_vec();
        negative[BATCH_LENGTH_AT..BATCH_LENGTH_END].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(record_count(&negative).is_err());
    }

    #[test]
    fn record_count_refuses_old_message_formats() {
        let mut old = batch(2).to_vec();
        old[MAGIC_AT] = 1;
        assert_eq!(
            record_count(&old),
            Err("a batch is not RecordBatch v2 (magic 2)")
        );
    }

    #[test]
    fn topic_names_are_kafkas_and_safe_as_file_names() {
        assert!(valid_topic_name("perf-produce_1.x"));
        for bad in ["", ".", "..", "../etc", "a/b", "sp ace", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad:?}");
        }
    }
}
