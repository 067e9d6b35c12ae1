//! Broker-to-controller traffic in the Kafka protocol, on the controller
//! listener: BrokerRegistration, BrokerHeartbeat and AlterPartition (and
//! ApiVersions), as KRaft's brokers send them to the active controller.
//!
//! The active controller (the quorum's leader) answers them: a
//! registration commits a RegisterBroker record (epoch one above the
//! broker's last, its listeners, rack and incarnation id) and answers with
//! the epoch once applied; a heartbeat keeps the broker alive for
//! `broker.session.timeout.ms` (the fencing loop in `registration` reads
//! it), and one asking to shut down fences the broker with the elections
//! that moves its leaderships (controlled shutdown) and answers
//! `should_shut_down` once it leads no partition. AlterPartition (v2-3,
//! topic ids) changes a partition's ISR for its leader (`partitions`).
//! Any other voter answers NOT_CONTROLLER, and the broker looks for the
//! leader (its metadata fetches name it).
//!
//! Combined nodes are voters: their raft traffic is their heartbeat, and
//! they register through their own quorum handle. The Kafka APIs serve
//! the broker-only nodes (`observer`), and any node's AlterPartition and
//! controlled shutdown when another node is the active controller.
//!
//! Lives on: the controller's shard (shard 0) of every node.

use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::broker_registration_request::Listener;
use kafka_protocol::messages::{
    alter_partition_request, alter_partition_response, AlterPartitionRequest,
    AlterPartitionResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
    BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId, BrokerRegistrationRequest,
    BrokerRegistrationResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rafka_core::metadata::partition_control::leaderships_of;
use rafka_core::metadata::{
    AlterPartition, BrokerEndpoint, IsrMember, Leadership, MetadataRecord, RegisterBrokerRecord,
};
use rafka_proto::error::ErrorCode;
use uuid::Uuid;

use super::driver::Quorum;
use super::partitions;
use crate::kafka_client::KafkaLink;
use crate::runtime::within;

/// Largest request the controller listener reads.
const REQUEST_BYTES_MAX: usize = 1024 * 1024;
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The versions served: (api, min, max).
const SERVED: [(ApiKey, i16, i16); 4] = [
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::AlterPartition, 2, 3),
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
];
/// The versions a broker sends.
const REGISTRATION_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 1;
const ALTER_PARTITION_VERSION: i16 = 3;

/// The controller's side of one Kafka-protocol connection whose first
/// `prefix` bytes were already read (they told it from a quorum link).
pub(crate) async fn serve(
    mut stream: TcpStream,
    prefix: [u8; 8],
    quorum: Weak<Quorum>,
) -> Result<(), String> {
    let mut pending: Vec<u8> = prefix.to_vec();
    loop {
        let mut size = [0u8; 4];
        let from_prefix = pending.len().min(4);
        size[..from_prefix].copy_from_slice(&pending[..from_prefix]);
        if from_prefix < 4 && stream.read_exact(&mut size[from_prefix..]).await.is_err() {
            return Ok(());
        }
        pending.drain(..from_prefix);
        let size = i32::from_be_bytes(size);
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s >= 8 && *s <= REQUEST_BYTES_MAX)
            .ok_or_else(|| format!("a request of {size} bytes"))?;
        let mut body = vec![0u8; size];
        let from_pending = pending.len().min(size);
        body[..from_pending].copy_from_slice(&pending[..from_pending]);
        pending.drain(..from_pending);
        stream
            .read_exact(&mut body[from_pending..])
            .await
            .map_err(|e| e.to_string())?;
        let quorum = quorum.upgrade().ok_or("the quorum stopped")?;
        let Some(answer) = answer(&quorum, Bytes::from(body)).await? else {
            return Ok(());
        };
        within(ANSWER_TIMEOUT, stream.write_all(&answer))
            .await
            .ok_or("writing a response timed out")?
            .map_err(|e| e.to_string())?;
    }
}

/// The framed response to one request; `None` closes the connection
/// (an API this listener does not serve, as Kafka's controller does).
async fn answer(quorum: &Rc<Quorum>, mut body: Bytes) -> Result<Option<Vec<u8>>, String> {
    let api_key = i16::from_be_bytes([body[0], body[1]]);
    let version = i16::from_be_bytes([body[2], body[3]]);
    let Ok(api) = ApiKey::try_from(api_key) else {
        return Ok(None);
    };
    let Some((_, min, max)) = SERVED.iter().find(|(a, _, _)| *a == api) else {
        return Ok(None);
    };
    if api != ApiKey::ApiVersions && !(*min..=*max).contains(&version) {
        return Ok(None);
    }
    let header = RequestHeader::decode(&mut body, api.request_header_version(version.max(0)))
        .map_err(|e| format!("request header: {e}"))?;
    let correlation_id = header.correlation_id;
    let out = match api {
        ApiKey::ApiVersions => {
            // An unknown version gets v0's answer with UNSUPPORTED_VERSION,
            // as every Kafka listener does.
            let (reply_version, error) = if (*min..=*max).contains(&version) {
                ApiVersionsRequest::decode(&mut body, version).map_err(|e| e.to_string())?;
                (version, 0)
            } else {
                (0, ResponseError::UnsupportedVersion.code())
            };
            let response = ApiVersionsResponse::default()
                .with_error_code(error)
                .with_api_keys(
                    SERVED
                        .iter()
                        .map(|(api, min, max)| {
                            ApiVersion::default()
                                .with_api_key(*api as i16)
                                .with_min_version(*min)
                                .with_max_version(*max)
                        })
                        .collect(),
                );
            encode_response(correlation_id, reply_version, &response)?
        }
        ApiKey::BrokerRegistration => {
            let request =
                BrokerRegistrationRequest::decode(&mut body, version).map_err(|e| e.to_string())?;
            let response = register(quorum, request).await;
            encode_response(correlation_id, version, &response)?
        }
        ApiKey::BrokerHeartbeat => {
            let request =
                BrokerHeartbeatRequest::decode(&mut body, version).map_err(|e| e.to_string())?;
            let response = heartbeat(quorum, request).await;
            encode_response(correlation_id, version, &response)?
        }
        ApiKey::AlterPartition => {
            let request =
                AlterPartitionRequest::decode(&mut body, version).map_err(|e| e.to_string())?;
            let response = alter_partition(quorum, request, version).await;
            encode_response(correlation_id, version, &response)?
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> Result<Vec<u8>, String> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0; 4]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, R::header_version(version))
        .map_err(|e| e.to_string())?;
    response
        .encode(&mut out, version)
        .map_err(|e| e.to_string())?;
    let len = i32::try_from(out.len() - 4).map_err(|_| "a response over 2 GiB")?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out.to_vec())
}

async fn register(
    quorum: &Rc<Quorum>,
    request: BrokerRegistrationRequest,
) -> BrokerRegistrationResponse {
    let refuse = |error: ResponseError| {
        BrokerRegistrationResponse::default()
            .with_error_code(error.code())
            .with_broker_epoch(-1)
    };
    if !quorum.is_active_controller() {
        return refuse(ResponseError::NotController);
    }
    if request.cluster_id.as_str() != quorum.settings().cluster_id {
        return refuse(ResponseError::InconsistentClusterId);
    }
    let node_id = request.broker_id.0;
    let incarnation_id = request.incarnation_id;
    let image = quorum.image();
    let known = image.broker(node_id);
    if let Some(broker) = known {
        // Another process holds the id while it is alive: one of the two
        // is misconfigured, and the live one keeps it.
        let alive = quorum
            .peer_alive(node_id, quorum.session_timeout())
            .unwrap_or(true);
        if broker.incarnation_id != incarnation_id && !broker.fenced && alive {
            return refuse(ResponseError::DuplicateBrokerRegistration);
        }
        if broker.incarnation_id == incarnation_id {
            // A retry of a registration that committed.
            quorum.note_heartbeat(node_id);
            return BrokerRegistrationResponse::default().with_broker_epoch(broker.epoch);
        }
    }
    let epoch = known.map_or(1, |b| b.epoch + 1);
    let endpoints = request
        .listeners
        .iter()
        .map(|l| BrokerEndpoint {
            listener: l.name.to_string(),
            host: l.host.to_string(),
            port: l.port,
            security_protocol: l.security_protocol,
        })
        .collect();
    let record = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        node_id,
        epoch,
        incarnation_id,
        rack: request.rack.as_ref().map(ToString::to_string),
        endpoints,
        // A broker known before that lost its data dir (-1 is
        // what it sends for a data dir created at this start).
        fresh_data_dir: request.previous_broker_epoch < 0 && known.is_some(),
    });
    match quorum.commit(&[record]).await {
        Ok(_) => {
            quorum.note_heartbeat(node_id);
            quorum.clear_shutting_down(node_id);
            tracing::info!(node_id, epoch, "broker registered");
            BrokerRegistrationResponse::default().with_broker_epoch(epoch)
        }
        Err(error) => {
            tracing::debug!(node_id, %error, "broker registration not committed");
            refuse(ResponseError::NotController)
        }
    }
}

async fn heartbeat(
    quorum: &Rc<Quorum>,
    request: BrokerHeartbeatRequest,
) -> BrokerHeartbeatResponse {
    let refuse = |error: ResponseError| {
        BrokerHeartbeatResponse::default()
            .with_error_code(error.code())
            .with_is_fenced(true)
    };
    if !quorum.is_active_controller() {
        return refuse(ResponseError::NotController);
    }
    let node_id = request.broker_id.0;
    let image = quorum.image();
    let Some(broker) = image
        .broker(node_id)
        .filter(|b| b.epoch == request.broker_epoch)
    else {
        return refuse(ResponseError::StaleBrokerEpoch);
    };
    quorum.note_heartbeat(node_id);
    let (fenced, should_shut_down) = if request.want_shut_down {
        match controlled_shutdown(quorum, node_id, broker.epoch).await {
            Ok(should_shut_down) => (true, should_shut_down),
            Err(()) => return refuse(ResponseError::RequestTimedOut),
        }
    } else {
        (broker.fenced, false)
    };
    BrokerHeartbeatResponse::default()
        .with_is_caught_up(true)
        .with_is_fenced(fenced)
        .with_should_shut_down(should_shut_down)
}

/// One step of broker `node_id`'s controlled shutdown on the active
/// controller: noted as shutting down (it stays fenced, leads nothing,
/// joins no ISR), fenced with the elections that moves its leaderships,
/// then the elections still owed. Whether it may stop: Kafka's rule, once
/// it leads no partition (each went to another in-sync replica, or,
/// without one, to no leader). Err: the fencing did not commit.
pub(crate) async fn controlled_shutdown(
    quorum: &Quorum,
    node_id: i32,
    epoch: i64,
) -> Result<bool, ()> {
    quorum.note_shutting_down(node_id, epoch);
    let fenced = quorum.image().broker(node_id).is_some_and(|b| b.fenced);
    if !fenced {
        if let Err(error) = partitions::change_fencing(quorum, node_id, epoch, true).await {
            tracing::debug!(node_id, %error, "controlled shutdown not committed");
            return Err(());
        }
        tracing::info!(node_id, "broker fenced for its controlled shutdown");
    }
    if let Err(error) = partitions::elect(quorum).await {
        tracing::debug!(node_id, %error, "controlled shutdown elections");
    }
    Ok(leaderships_of(&quorum.image(), node_id) == 0)
}

/// AlterPartition: each partition changed (or refused) on its own, as
/// Kafka answers per partition; a sender not registered at its epoch is
/// refused whole (STALE_BROKER_EPOCH), as is any request to a node that
/// is not the active controller (NOT_CONTROLLER).
async fn alter_partition(
    quorum: &Rc<Quorum>,
    request: AlterPartitionRequest,
    version: i16,
) -> AlterPartitionResponse {
    let refuse = |error: ErrorCode| AlterPartitionResponse::default().with_error_code(error.code());
    if !quorum.is_active_controller() {
        return refuse(ErrorCode::NOT_CONTROLLER);
    }
    let (broker_id, broker_epoch) = (request.broker_id.0, request.broker_epoch);
    let registered = quorum.image().broker(broker_id).map(|b| b.epoch);
    if registered != Some(broker_epoch) {
        return refuse(ErrorCode::STALE_BROKER_EPOCH);
    }
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let change = AlterPartition {
                broker_id,
                broker_epoch,
                topic_id: topic.topic_id,
                partition: partition.partition_index,
                leader_epoch: partition.leader_epoch,
                partition_epoch: partition.partition_epoch,
                new_isr: requested_isr(&partition, version),
            };
            let answer = partitions::alter_partition(quorum, &change).await;
            partitions.push(partition_answer(partition.partition_index, answer));
        }
        topics.push(
            alter_partition_response::TopicData::default()
                .with_topic_id(topic.topic_id)
                .with_partitions(partitions),
        );
    }
    AlterPartitionResponse::default().with_topics(topics)
}

/// The new ISR of one partition: v3 names each member's broker epoch
/// (KIP-903), v2 only their ids.
fn requested_isr(
    partition: &alter_partition_request::PartitionData,
    version: i16,
) -> Vec<IsrMember> {
    if version >= 3 {
        partition
            .new_isr_with_epochs
            .iter()
            .map(|m| IsrMember {
                node_id: m.broker_id.0,
                broker_epoch: m.broker_epoch,
            })
            .collect()
    } else {
        partition
            .new_isr
            .iter()
            .map(|id| IsrMember::any_epoch(id.0))
            .collect()
    }
}

fn partition_answer(
    index: i32,
    answer: Result<Leadership, ErrorCode>,
) -> alter_partition_response::PartitionData {
    let data = alter_partition_response::PartitionData::default().with_partition_index(index);
    match answer {
        Ok(l) => data
            .with_leader_id(BrokerId(l.leader))
            .with_leader_epoch(l.leader_epoch)
            .with_isr(l.isr.iter().map(|id| BrokerId(*id)).collect())
            .with_partition_epoch(l.partition_epoch),
        Err(error) => data
            .with_error_code(error.code())
            .with_leader_id(BrokerId(-1))
            .with_leader_epoch(-1),
    }
}

/// A broker's connection to one controller.
pub(crate) struct ControllerLink {
    pub voter: u64,
    link: KafkaLink,
}

impl ControllerLink {
    pub(crate) async fn open(voter: u64, address: &str) -> Option<ControllerLink> {
        let link = KafkaLink::open(address, "rafka-broker", REQUEST_BYTES_MAX).await?;
        Some(ControllerLink { voter, link })
    }

    async fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, String> {
        self.link.call(request, version, ANSWER_TIMEOUT).await
    }

    pub(crate) async fn register(
        &mut self,
        node_id: i32,
        cluster_id: &str,
        incarnation_id: Uuid,
        endpoints: &[BrokerEndpoint],
        rack: Option<&str>,
        previous_epoch: i64,
    ) -> Result<Result<i64, ResponseError>, String> {
        let request = BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(node_id))
            .with_cluster_id(StrBytes::from_string(cluster_id.to_string()))
            .with_incarnation_id(incarnation_id)
            .with_listeners(
                endpoints
                    .iter()
                    .map(|e| {
                        Listener::default()
                            .with_name(StrBytes::from_string(e.listener.clone()))
                            .with_host(StrBytes::from_string(e.host.clone()))
                            .with_port(e.port)
                            .with_security_protocol(e.security_protocol)
                    })
                    .collect(),
            )
            .with_rack(rack.map(|r| StrBytes::from_string(r.to_string())))
            .with_previous_broker_epoch(previous_epoch);
        let response = self.call(&request, REGISTRATION_VERSION).await?;
        Ok(match ResponseError::try_from_code(response.error_code) {
            None => Ok(response.broker_epoch),
            Some(error) => Err(error),
        })
    }

    /// One partition's AlterPartition (v3) to the active controller:
    /// the partition's leadership after it, or the error it answered.
    pub(crate) async fn alter_partition(
        &mut self,
        change: &AlterPartition,
    ) -> Result<Result<Leadership, ErrorCode>, String> {
        let partition = alter_partition_request::PartitionData::default()
            .with_partition_index(change.partition)
            .with_leader_epoch(change.leader_epoch)
            .with_partition_epoch(change.partition_epoch)
            .with_new_isr_with_epochs(
                change
                    .new_isr
                    .iter()
                    .map(|m| {
                        alter_partition_request::BrokerState::default()
                            .with_broker_id(BrokerId(m.node_id))
                            .with_broker_epoch(m.broker_epoch)
                    })
                    .collect(),
            );
        let request = AlterPartitionRequest::default()
            .with_broker_id(BrokerId(change.broker_id))
            .with_broker_epoch(change.broker_epoch)
            .with_topics(vec![alter_partition_request::TopicData::default()
                .with_topic_id(change.topic_id)
                .with_partitions(vec![partition])]);
        let response = self.call(&request, ALTER_PARTITION_VERSION).await?;
        if response.error_code != 0 {
            return Ok(Err(ErrorCode::from_code(response.error_code)));
        }
        let answer = response
            .topics
            .into_iter()
            .find(|t| t.topic_id == change.topic_id)
            .and_then(|t| {
                t.partitions
                    .into_iter()
                    .find(|p| p.partition_index == change.partition)
            })
            .ok_or("an AlterPartition answer without the partition")?;
        if answer.error_code != 0 {
            return Ok(Err(ErrorCode::from_code(answer.error_code)));
        }
        Ok(Ok(Leadership {
            leader: answer.leader_id.0,
            leader_epoch: answer.leader_epoch,
            replicas: Vec::new(),
            isr: answer.isr.iter().map(|id| id.0).collect(),
            partition_epoch: answer.partition_epoch,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        }))
    }

    pub(crate) async fn heartbeat(
        &mut self,
        node_id: i32,
        epoch: i64,
        metadata_offset: u64,
        want_shut_down: bool,
    ) -> Result<BrokerHeartbeatResponse, String> {
        let request = BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(node_id))
            .with_broker_epoch(epoch)
            .with_current_metadata_offset(i64::try_from(metadata_offset).unwrap_or(i64::MAX))
            .with_want_fence(false)
            .with_want_shut_down(want_shut_down);
        self.call(&request, HEARTBEAT_VERSION).await
    }
}
