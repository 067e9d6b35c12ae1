//! Harness of the zero-copy tests: a broker core with its network layer on
//! shard 0 (2 shards, temp dir), records produced through the shard API, a
//! blocking raw-socket Kafka client run on glommio's blocking pool while
//! the shards keep serving, and the segment files read back from disk.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use rafka_core::config::BrokerConfig;
use rafka_core::metadata::NewTopic;
use rafka_net::handlers::{broker_table, BrokerContext, ControllerHandle, Handlers, NodeInfo};
use rafka_net::{bind_first, ConnectionConfig, NetConfig, ShardNet};
use rafka_proto::acks::Acks;
use rafka_proto::record::{batch_size_bytes, BatchBuilder, BatchHeader, Compression};
use rafka_shard::runtime::{run, RuntimeConfig, ShardEnv};
use rafka_shard::shard::{start, Shard};
use uuid::Uuid;

const PRODUCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on a scenario; reached only when the code under test hangs.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// A socket read or write this slow means the broker stopped answering.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `scenario` on shard 0 of a 2-shard broker serving on a loopback
/// port (zero copy on or off), then stops it cleanly.
pub fn with_net_broker<F, Fut>(zero_copy: bool, scenario: F)
where
    F: Fn(Rc<BrokerContext>, SocketAddr) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Arc::new(BrokerConfig {
        log_dirs: vec![dir.path().to_path_buf()],
        ..Default::default()
    });
    let main = move |env: ShardEnv<Shard>| {
        let config = Arc::clone(&config);
        let scenario = scenario.clone();
        async move {
            let (shard, _started) = start(env, config).await.expect("start");
            if shard.id() == 0 {
                serve_and_run(&shard, zero_copy, scenario).await;
                stop_broker(&shard).await;
            }
            shard.wait_stop().await;
        }
    };
    run(&RuntimeConfig::for_tests(2), main).expect("runtime");
}

async fn serve_and_run<F, Fut>(shard: &Rc<Shard>, zero_copy: bool, scenario: F)
where
    F: Fn(Rc<BrokerContext>, SocketAddr) -> Fut,
    Fut: Future<Output = ()>,
{
    let (listener, addr) = bind_first("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let table = Rc::new(broker_table());
    let ctx = Rc::new(BrokerContext {
        table: Rc::clone(&table),
        shard: Rc::clone(shard),
        node: NodeInfo {
            node_id: 1,
            host: "127.0.0.1".to_string(),
            port: addr.port(),
            cluster_id: "rafka-test-cluster-id0".to_string(),
        },
    });
    let config = NetConfig {
        connection: ConnectionConfig {
            zero_copy,
            ..ConnectionConfig::default()
        },
        ..NetConfig::default()
    };
    let net = ShardNet::new(Rc::new(Handlers::new(Rc::clone(&ctx))), table, config);
    net.serve(listener).expect("serve");
    glommio::timer::timeout(TEST_TIMEOUT, async {
        scenario(ctx, addr).await;
        Ok(())
    })
    .await
    .expect("scenario timed out");
    net.shutdown().await;
}

async fn stop_broker(shard: &Rc<Shard>) {
    shard.shutdown().await.expect("shutdown");
    shard.stop_all().await;
}

/// Runs blocking client code off the shard (which keeps serving) and
/// re-raises its panic here.
pub async fn blocking<F: FnOnce() + Send + 'static>(client: F) {
    let outcome = glommio::executor()
        .spawn_blocking(move || std::panic::catch_unwind(std::panic::AssertUnwindSafe(client)))
        .await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

pub async fn create_topic(
    ctx: &Rc<BrokerContext>,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let controller = ControllerHandle::new(Rc::clone(&ctx.shard));
    let topic = NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor: -1,
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let created = controller
        .create_topics(vec![topic], false, None)
        .await
        .expect("controller");
    created[0].as_ref().expect("created");
}

/// Produces (acks=all) batches of varied sizes and codecs until the
/// partition holds at least `total_bytes`.
pub async fn produce_varied(
    ctx: &Rc<BrokerContext>,
    topic: &str,
    partition: i32,
    total_bytes: usize,
) {
    let codecs = [
        Compression::None,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
        Compression::Gzip,
    ];
    let mut seed = 0x1234_5678_9abc_def1u64 ^ partition as u64;
    let mut produced_bytes = 0usize;
    let mut round = 0usize;
    while produced_bytes < total_bytes {
        let mut builder = BatchBuilder::new(codecs[round % codecs.len()]);
        // 1 to 200 records of 16 B to ~1 KiB, half of them incompressible.
        let records = 1 + (round * 37) % 200;
        for record in 0..records {
            let len = 16 + (round * 131 + record * 17) % 1000;
            let value: Vec<u8> = if round.is_multiple_of(2) {
                (0..len).map(|_| next(&mut seed) as u8).collect()
            } else {
                format!("{round}-{record}-")
                    .repeat(len / 8 + 1)
                    .into_bytes()
            };
            builder.push(Some(format!("k{record}").as_bytes()), Some(&value));
        }
        let batch = builder.build().expect("batch");
        produced_bytes += batch.len();
        produce(ctx, topic, partition, batch).await;
        round += 1;
    }
}

fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *seed >> 33
}

async fn produce(ctx: &Rc<BrokerContext>, topic: &str, partition: i32, records: Bytes) {
    let owner = ctx.shard.owner_of(topic, partition).expect("owner");
    let name = topic.to_string();
    ctx.shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            s.registry()
                .produce(&name, partition, &records, Acks::All, PRODUCE_TIMEOUT)
                .await
                .map(|_| ())
                .map_err(|e| e.error_code())
        })
        .await
        .expect("route")
        .expect("produce");
}

/// The partition's `.log` files in offset order, as they are on disk.
pub fn segment_files(dir: &Path) -> Vec<Bytes> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("partition dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| Bytes::from(std::fs::read(path).expect("segment")))
        .collect()
}

pub fn concat_segments(segments: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    for segment in segments {
        out.extend_from_slice(segment);
    }
    out.freeze()
}

/// One stored batch.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub base_offset: i64,
    pub bytes: Bytes,
}

pub fn batches_of(log: &Bytes) -> Vec<StoredBatch> {
    let mut batches = Vec::new();
    let mut position = 0;
    while position < log.len() {
        let size = batch_size_bytes(&log[position..]).expect("batch size");
        let bytes = log.slice(position..position + size);
        let header = BatchHeader::decode(&bytes).expect("header");
        batches.push(StoredBatch {
            base_offset: header.base_offset,
            bytes,
        });
        position += size;
    }
    batches
}

/// A sessionless fetch of partition 0 of `topic`, named as `version` does.
pub fn fetch_one(
    topic: &str,
    id: Uuid,
    version: i16,
    offset: i64,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(partition_max_bytes);
    request(topic, id, version, vec![partition], max_bytes)
}

/// Every partition of `topic` from offset 0, 64 MiB each.
pub fn fetch_all(topic: &str, id: Uuid, version: i16, partitions: i32) -> FetchRequest {
    let partitions = (0..partitions)
        .map(|p| {
            FetchPartition::default()
                .with_partition(p)
                .with_partition_max_bytes(64 << 20)
        })
        .collect();
    request(topic, id, version, partitions, 64 << 20)
}

fn request(
    topic: &str,
    id: Uuid,
    version: i16,
    partitions: Vec<FetchPartition>,
    max_bytes: i32,
) -> FetchRequest {
    let topic = if version >= 13 {
        FetchTopic::default().with_topic_id(id)
    } else {
        FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.to_string())))
    };
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_topics(vec![topic.with_partitions(partitions)])
}

pub fn only_partition(response: &FetchResponse) -> &PartitionData {
    assert_eq!(response.error_code, 0);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partitions.len(), 1);
    &response.responses[0].partitions[0]
}

/// A blocking Kafka client on one connection.
pub struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(SOCKET_TIMEOUT))
            .expect("timeout");
        stream
            .set_write_timeout(Some(SOCKET_TIMEOUT))
            .expect("timeout");
        Client {
            stream,
            correlation_id: 0,
        }
    }

    /// A connection whose receive buffer stays at 16 KiB, so the broker's
    /// send buffer fills up long before a large response is read.
    pub fn connect_small_window(addr: SocketAddr) -> Client {
        let client = Client::connect(addr);
        let bytes: libc::c_int = 16 << 10;
        // SAFETY: a valid socket and a c_int option value of the given size.
        let set = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&client.stream),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "SO_RCVBUF");
        client
    }

    fn send<T: Encodable + HeaderVersion>(&mut self, api_key: ApiKey, version: i16, body: &T) {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("zero-copy-test")));
        let mut frame = BytesMut::new();
        header
            .encode(&mut frame, T::header_version(version))
            .expect("header");
        body.encode(&mut frame, version).expect("body");
        let size = i32::try_from(frame.len()).expect("small").to_be_bytes();
        self.stream.write_all(&size).expect("write");
        self.stream.write_all(&frame).expect("write");
    }

    pub fn send_fetch(&mut self, version: i16, request: &FetchRequest) {
        self.send(ApiKey::Fetch, version, request);
    }

    pub fn read_size(&mut self) -> usize {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("size");
        usize::try_from(i32::from_be_bytes(size)).expect("positive size")
    }

    fn read_body(&mut self, size: usize, header_version: i16) -> Bytes {
        // Small reads: the reader is the slow side of the connection.
        let mut body = vec![0u8; size];
        for piece in body.chunks_mut(16 << 10) {
            self.stream.read_exact(piece).expect("body");
        }
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, header_version).expect("response header");
        assert_eq!(header.correlation_id, self.correlation_id);
        body
    }

    pub fn read_fetch_body(&mut self, version: i16, size: usize) -> FetchResponse {
        let header_version = FetchResponse::header_version(version);
        let mut body = self.read_body(size, header_version);
        let response = FetchResponse::decode(&mut body, version).expect("fetch response");
        assert!(body.is_empty(), "{} trailing bytes", body.len());
        response
    }

    pub fn fetch(&mut self, version: i16, request: &FetchRequest) -> FetchResponse {
        self.send_fetch(version, request);
        let size = self.read_size();
        self.read_fetch_body(version, size)
    }

    /// ApiVersions v0; returns its error code.
    pub fn api_versions_error(&mut self) -> i16 {
        self.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default());
        let size = self.read_size();
        let mut body = self.read_body(size, ApiVersionsResponse::header_version(0));
        let response = ApiVersionsResponse::decode(&mut body, 0).expect("api versions");
        assert!(!response.api_keys.is_empty());
        response.error_code
    }
}
