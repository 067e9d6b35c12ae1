//! Shared by `tests/metadata.rs` and `tests/admin.rs`: a real broker core
//! (1 or 2 shards) over a temp dir, requests encoded and responses decoded
//! with kafka-protocol, served through the broker's `dispatch` on the
//! shard a test picks, without sockets.

#![allow(dead_code)] // each test file uses its own subset

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use futures_util::FutureExt;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Request as ProtocolRequest, StrBytes};
use rafka_core::config::BrokerConfig;
use rafka_net::handlers::{broker_table, serve, BrokerContext, NodeInfo};
use rafka_net::session::{ListenerInfo, Session};
use rafka_net::{Request, Response};
use rafka_proto::header::{RequestHeader, ResponseHeaderVersion};
use rafka_shard::runtime::{run, RuntimeConfig, ShardEnv};
use rafka_shard::shard::{start, Shard};

pub const NODE_ID: i32 = 3;
pub const HOST: &str = "broker.test";
pub const PORT: u16 = 19092;
pub const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qg";
const CORRELATION_ID: i32 = 41;

/// The broker a scenario talks to: shard 0's context, and the shard whose
/// handlers serve the requests (the last one, so that with 2 shards every
/// controller call crosses the mesh).
pub struct Broker {
    pub shard: Rc<Shard>,
    pub data_dir: PathBuf,
}

/// Runs `scenario` on shard 0 of a broker with `shards` shards over a
/// fresh temp dir, then shuts the broker down; a panic in the scenario
/// stops every shard first, then fails the test.
pub fn with_broker<F, Fut>(shards: usize, tweak: fn(&mut BrokerConfig), scenario: F)
where
    F: Fn(Broker) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_path_buf();
    let mut config = BrokerConfig {
        log_dirs: vec![data_dir.clone()],
        ..Default::default()
    };
    tweak(&mut config);
    let config = Arc::new(config);
    let main = move |env: ShardEnv<Shard>| {
        let config = Arc::clone(&config);
        let scenario = scenario.clone();
        let data_dir = data_dir.clone();
        async move {
            let (shard, _started) = start(env, config).await.expect("start");
            if shard.id() == 0 {
                let broker = Broker {
                    shard: Rc::clone(&shard),
                    data_dir,
                };
                let outcome = AssertUnwindSafe(scenario(broker)).catch_unwind().await;
                stop(&shard).await;
                if let Err(panic) = outcome {
                    std::panic::resume_unwind(panic);
                }
            }
            shard.wait_stop().await;
        }
    };
    run(&RuntimeConfig::for_tests(shards), main).expect("runtime");
}

async fn stop(shard: &Rc<Shard>) {
    shard.shutdown().await.expect("shutdown");
    shard.stop_all().await;
}

/// What the listener of shard `shard` would hand its handlers.
pub fn context(shard: Rc<Shard>) -> Rc<BrokerContext> {
    Rc::new(BrokerContext {
        table: Rc::new(broker_table()),
        shard,
        node: NodeInfo {
            node_id: NODE_ID,
            host: HOST.to_string(),
            port: PORT,
            cluster_id: CLUSTER_ID.to_string(),
        },
    })
}

impl Broker {
    /// The shard that serves requests.
    pub fn serving_shard(&self) -> usize {
        self.shard.count() - 1
    }

    /// Sends `body` as a `version` request, returns the decoded response.
    pub async fn call<Req, Resp>(&self, version: i16, body: &Req) -> Resp
    where
        Req: ProtocolRequest,
        Resp: Decodable,
    {
        let request = request(version, body);
        let header_version = request.response_header_version;
        let reply = self.serve(request).await;
        decode_reply(reply, header_version, version)
    }

    /// Serves one request on the serving shard through `dispatch`.
    pub async fn serve(&self, request: Request) -> Response {
        let request = sendable(request);
        self.shard
            .router
            .invoke_on(self.serving_shard(), move |shard: Rc<Shard>| async move {
                serve(&context(shard), request()).await
            })
            .await
            .expect("route")
    }

    /// CreateTopics v7 of one topic; returns its result.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> CreatableTopicResult {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![creatable(name, partitions, configs)])
            .with_timeout_ms(30_000);
        let response: CreateTopicsResponse = self.call(7, &request).await;
        assert_eq!(response.topics.len(), 1);
        response.topics.into_iter().next().expect("one result")
    }

    /// Metadata v12 for `names`, without auto-creation.
    pub async fn metadata_of(&self, names: &[&str]) -> MetadataResponse {
        let topics = names.iter().map(|n| metadata_topic(n)).collect();
        let request = MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(false);
        self.call(12, &request).await
    }

    /// Whether the data dir has a directory for `topic`-`partition`.
    pub fn has_partition_dir(&self, topic: &str, partition: i32) -> bool {
        partition_dir(&self.data_dir, topic, partition).is_dir()
    }

    /// Whether partition `index` of `topic` is open on the shard the image
    /// says owns it.
    pub async fn is_open_on_owner(&self, topic: &str, index: i32) -> bool {
        let Some(owner) = self.shard.owner_of(topic, index) else {
            return false;
        };
        let topic = topic.to_string();
        self.shard
            .router
            .invoke_on(owner, move |s: Rc<Shard>| async move {
                s.partition(&topic, index).is_some()
            })
            .await
            .expect("route")
    }
}

pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

pub fn creatable(name: &str, partitions: i32, configs: &[(&str, &str)]) -> CreatableTopic {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(str_bytes(k))
                .with_value(Some(str_bytes(v)))
        })
        .collect();
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(-1)
        .with_configs(configs)
}

pub fn metadata_topic(name: &str) -> MetadataRequestTopic {
    MetadataRequestTopic::default().with_name(Some(topic_name(name)))
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A request as the connection layer hands it to `dispatch`.
pub fn request<R: ProtocolRequest>(version: i16, body: &R) -> Request {
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded, version).expect("encode request");
    let api_key = ApiKey::try_from(R::KEY).expect("api key");
    let table = broker_table();
    let entry = table.entry(api_key).expect("served");
    Request {
        header: RequestHeader {
            api_key,
            api_version: version,
            correlation_id: CORRELATION_ID,
            header_version: entry.request_header_version(version),
            client_id: Some(bytes::Bytes::from_static(b"admin-test")),
        },
        response_header_version: entry.response_header_version(version),
        frame_bytes: encoded.len() + 32,
        body: encoded.freeze(),
        session: Rc::new(Session::new(
            "127.0.0.1:40001".parse().expect("addr"),
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

/// Checks the response header and decodes the whole body as `Resp`.
pub fn decode_reply<Resp: Decodable>(
    reply: Response,
    header_version: ResponseHeaderVersion,
    version: i16,
) -> Resp {
    let mut bytes = match reply {
        Response::Reply(bytes) => bytes,
        other => panic!("expected a reply, got {other:?}"),
    };
    assert_eq!(bytes.get_i32(), CORRELATION_ID);
    if header_version == ResponseHeaderVersion::V1 {
        assert_eq!(bytes.get_u8(), 0, "no tagged fields in the header");
    }
    let decoded = Resp::decode(&mut bytes, version).expect("decode response");
    assert_eq!(bytes.remaining(), 0, "response has trailing bytes");
    decoded
}
