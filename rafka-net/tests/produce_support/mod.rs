//! Shared by `tests/produce.rs` and `tests/list_offsets.rs`: a real broker
//! core (1 or 2 shards) over a temp dir, requests built and responses
//! decoded with kafka-protocol, served through the broker's `dispatch` on a
//! chosen shard, without sockets.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::{Decodable, Request as ProtocolRequest, StrBytes};
use rafka_core::config::BrokerConfig;
use rafka_core::metadata::NewTopic;
use rafka_net::handlers::{
    broker_table, serve, BrokerContext, ControllerHandle, HandlerError, NodeInfo,
};
use rafka_net::session::{ListenerInfo, Session};
use rafka_net::{Request, Response};
use rafka_proto::header::{RequestHeader, ResponseHeaderVersion};
use rafka_proto::record::{BatchBuilder, Batches, Compression};
use rafka_shard::runtime::{run, RuntimeConfig, ShardEnv};
use rafka_shard::shard::{start, Shard};
use uuid::Uuid;

pub const CORRELATION_ID: i32 = 7;
/// Generous: a produce waits for one fdatasync of a temp dir.
pub const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// Runs `scenario` on shard 0 of a broker with `shards` shards over a
/// fresh temp dir, then shuts the broker down. A panic in the scenario
/// still stops every shard, then fails the test.
pub fn with_broker<F, Fut>(shards: usize, tweak: fn(&mut BrokerConfig), scenario: F)
where
    F: Fn(Rc<Shard>) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig {
        log_dirs: vec![dir.path().to_path_buf()],
        ..Default::default()
    };
    tweak(&mut config);
    let config = Arc::new(config);
    let main = move |env: ShardEnv<Shard>| {
        let config = Arc::clone(&config);
        let scenario = scenario.clone();
        async move {
            let (shard, _started) = start(env, config).await.expect("start");
            if shard.id() == 0 {
                let outcome = AssertUnwindSafe(scenario(Rc::clone(&shard)))
                    .catch_unwind()
                    .await;
                stop_broker(&shard).await;
                if let Err(panic) = outcome {
                    std::panic::resume_unwind(panic);
                }
            }
            shard.wait_stop().await;
        }
    };
    run(&RuntimeConfig::for_tests(shards), main).expect("runtime");
}

async fn stop_broker(shard: &Rc<Shard>) {
    shard.shutdown().await.expect("shutdown");
    shard.stop_all().await;
}

/// The context a shard's connections hand to handlers.
pub fn context(shard: &Rc<Shard>) -> Rc<BrokerContext> {
    Rc::new(BrokerContext {
        table: Rc::new(broker_table()),
        shard: Rc::clone(shard),
        node: NodeInfo {
            node_id: 0,
            host: "127.0.0.1".to_string(),
            port: 9092,
            cluster_id: "rafka-test-cluster-id0".to_string(),
        },
    })
}

/// Creates `name` through the controller; returns its topic id.
pub async fn create_topic(
    shard: &Rc<Shard>,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Uuid {
    let controller = ControllerHandle::new(Rc::clone(shard));
    let topic = NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor: -1,
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    let created = controller
        .create_topics(vec![topic], false, None)
        .await
        .expect("controller");
    created[0].as_ref().expect("created").topic_id
}

/// A request as the connection layer hands it to `dispatch`.
pub fn request<R: ProtocolRequest>(version: i16, body: &R, client_id: Option<&str>) -> Request {
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded, version).expect("encode request");
    raw_request(R::KEY, version, encoded.freeze(), client_id)
}

/// A request whose body is given as bytes (for malformed bodies).
pub fn raw_request(api_key: i16, version: i16, body: Bytes, client_id: Option<&str>) -> Request {
    let api_key = ApiKey::try_from(api_key).expect("api key");
    let table = broker_table();
    let entry = table.entry(api_key).expect("served");
    Request {
        header: RequestHeader {
            api_key,
            api_version: version,
            correlation_id: CORRELATION_ID,
            header_version: entry.request_header_version(version),
            client_id: client_id.map(|id| Bytes::copy_from_slice(id.as_bytes())),
        },
        response_header_version: entry.response_header_version(version),
        frame_bytes: body.len() + 64,
        body,
        session: Rc::new(Session::new(
            "127.0.0.1:40000".parse().expect("addr"),
            ListenerInfo::default(),
        )),
    }
}

/// `request` apart from its session (an `Rc`, which stays on its shard),
/// rebuilt on the shard that serves it.
pub fn sendable(request: Request) -> impl FnOnce() -> Request + Send {
    let Request {
        header,
        response_header_version,
        body,
        frame_bytes,
        session,
    } = request;
    let peer = session.peer();
    move || Request {
        header,
        response_header_version,
        body,
        frame_bytes,
        session: Rc::new(Session::new(peer, ListenerInfo::default())),
    }
}

/// Serves `request` on shard `on` through the broker's dispatch.
pub async fn serve_on(
    shard: &Rc<Shard>,
    on: usize,
    request: Request,
) -> Result<Response, HandlerError> {
    let request = sendable(request);
    shard
        .router
        .invoke_on(on, move |shard: Rc<Shard>| async move {
            match serve(&context(&shard), request()).await {
                Response::Close(error) => Err(error),
                response => Ok(response),
            }
        })
        .await
        .expect("route")
}

/// Sends `body` to shard `on` and decodes the reply.
pub async fn call<R: ProtocolRequest>(
    shard: &Rc<Shard>,
    on: usize,
    version: i16,
    body: &R,
) -> R::Response {
    let request = request(version, body, None);
    let header_version = request.response_header_version;
    let response = serve_on(shard, on, request).await.expect("handled");
    decode_reply(response, header_version, version)
}

/// The body of a `Response::Reply`, checking the header before it.
pub fn decode_reply<T: Decodable>(
    response: Response,
    header_version: ResponseHeaderVersion,
    version: i16,
) -> T {
    let Response::Reply(mut bytes) = response else {
        panic!("expected a reply, got {response:?}");
    };
    assert_eq!(bytes.get_i32(), CORRELATION_ID);
    if header_version == ResponseHeaderVersion::V1 {
        assert_eq!(bytes.get_u8(), 0, "no tagged fields in the header");
    }
    let body = T::decode(&mut bytes, version).expect("decode response");
    assert!(bytes.is_empty(), "{} trailing bytes", bytes.len());
    body
}

/// One batch of records keyed `k<i>` with the given values and timestamps.
pub fn batch(records: &[(&str, i64)]) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for (i, (value, timestamp_ms)) in records.iter().enumerate() {
        let key = format!("k{i}");
        builder.push_record(
            *timestamp_ms,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[],
        );
    }
    builder.build().expect("batch")
}

/// A batch of an idempotent producer.
pub fn idempotent_batch(producer_id: i64, base_sequence: i32, values: &[&str]) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None).producer(producer_id, 0, base_sequence);
    for value in values {
        builder.push(Some(b"key"), Some(value.as_bytes()));
    }
    builder.build().expect("batch")
}

/// Records per partition index, as a Produce request carries them.
pub type PartitionRecords = Vec<(i32, Option<Bytes>)>;

/// A Produce request for topics named by name (v3-v12).
pub fn produce_request(acks: i16, topics: Vec<(&str, PartitionRecords)>) -> ProduceRequest {
    let topic_data = topics
        .into_iter()
        .map(|(name, partitions)| {
            TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_partition_data(partition_data(partitions))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(topic_data)
}

/// A Produce request for topics named by id (v13).
pub fn produce_request_by_id(acks: i16, topics: Vec<(Uuid, PartitionRecords)>) -> ProduceRequest {
    let topic_data = topics
        .into_iter()
        .map(|(id, partitions)| {
            TopicProduceData::default()
                .with_topic_id(id)
                .with_partition_data(partition_data(partitions))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(PRODUCE_TIMEOUT_MS)
        .with_topic_data(topic_data)
}

fn partition_data(partitions: PartitionRecords) -> Vec<PartitionProduceData> {
    partitions
        .into_iter()
        .map(|(index, records)| {
            PartitionProduceData::default()
                .with_index(index)
                .with_records(records)
        })
        .collect()
}

/// Every partition response, flattened: (topic name, partition response).
pub fn partitions(response: &ProduceResponse) -> Vec<(String, PartitionProduceResponse)> {
    response
        .responses
        .iter()
        .flat_map(|topic| {
            topic
                .partition_responses
                .iter()
                .map(|p| (topic.name.to_string(), p.clone()))
        })
        .collect()
}

/// Produces one batch with acks=-1 (v9) and returns its base offset.
pub async fn produce_one(shard: &Rc<Shard>, topic: &str, partition: i32, records: Bytes) -> i64 {
    let request = produce_request(-1, vec![(topic, vec![(partition, Some(records))])]);
    let response = call(shard, 0, 9, &request).await;
    let (_, answer) = partitions(&response).remove(0);
    assert_eq!(answer.error_code, 0, "{answer:?}");
    answer.base_offset
}

/// Everything readable in a partition: (high watermark, batches as
/// (base offset, whole batch bytes)).
pub async fn fetch_all(shard: &Rc<Shard>, topic: &str, partition: i32) -> (i64, Vec<(i64, Bytes)>) {
    let owner = shard.owner_of(topic, partition).expect("owner");
    let topic = topic.to_string();
    let fetched = shard
        .router
        .invoke_on(owner, move |s: Rc<Shard>| async move {
            s.registry()
                .fetch(&topic, partition, 0, 1 << 20)
                .await
                .map_err(|e| e.error_code())
        })
        .await
        .expect("route")
        .expect("fetch");
    let batches = Batches::new(fetched.records)
        .map(|b| {
            let b = b.expect("valid batch");
            (b.header().base_offset, b.as_bytes().clone())
        })
        .collect();
    (fetched.high_watermark, batches)
}
