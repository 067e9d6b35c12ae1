//! What a handler knows about its request and the broker: the
//! [`RequestContext`] (Redpanda's `request_context`). Handlers never reach
//! around it.
//!
//! - Who asks: the connection's [`Session`] (principal, listener, security
//!   protocol, client software, peer) and the header's client id.
//! - May they: [`RequestContext::authorize`], called at the places Kafka's
//!   `KafkaApis` checks: the configured authorizer over the shard's copy
//!   of the ACLs, or always yes without `authorizer.class.name`. [`RequestContext::authorized_operations`] builds the
//!   bit sets Metadata / DescribeGroups / DescribeCluster report from it.
//! - Whom to ask: the shard (image, config, router), the
//!   [`ControllerHandle`], the coordinators ([`super::coordinator_call`]).
//! - How long to wait: the throttle time every response carries, raised
//!   by each quota ([`RequestContext::add_throttle_ms`]) and stamped on
//!   the response by the driver.
//!
//! Lives on: the shard serving the request; one per request.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use rafka_core::acl::{AclOperation, Authorizer, Decision, Requester, Resource};
use rafka_core::config::BrokerConfig;
use rafka_core::metadata::MetadataImage;
use rafka_core::quota::MutationQuota;
use rafka_proto::api::ApiTable;
use rafka_proto::header::{RequestHeader, ResponseHeaderVersion};
use rafka_shard::controller_handle::ControllerHandle;
use rafka_shard::shard::Shard;

use crate::service::Request;
use crate::session::Session;

/// Kafka's `MetadataResponse.AUTHORIZED_OPERATIONS_OMITTED`: the
/// authorized-operations field of a client that did not ask for it.
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// This broker as clients see it: the advertised endpoints and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub node_id: i32,
    /// The endpoint of a listener with no entry in `listeners`.
    pub host: String,
    pub port: u16,
    /// Kafka's cluster id (22-char base64 of a UUID), from meta.properties.
    pub cluster_id: String,
    /// Every listener's advertised endpoint, by listener name.
    pub listeners: Vec<AdvertisedListener>,
}

/// Where clients of one listener are told to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisedListener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl NodeInfo {
    /// The endpoint a client that came in on `listener` is told about, as
    /// Kafka answers with the advertised listener of the same name.
    pub fn advertised_for(&self, listener: &str) -> (&str, u16) {
        match self.listeners.iter().find(|l| l.name == listener) {
            Some(l) => (&l.host, l.port),
            None => (&self.host, self.port),
        }
    }
}

/// What every request of one shard shares: the served table, the shard,
/// and how clients reach this broker.
pub struct BrokerContext {
    pub table: Rc<ApiTable>,
    pub shard: Rc<Shard>,
    pub node: NodeInfo,
    /// The authorizer `authorizer.class.name` enables; `None`: every
    /// request is allowed (Kafka without an authorizer).
    pub authorizer: Option<Authorizer>,
}

impl BrokerContext {
    /// The context of `shard`, with the authorizer its config asks for.
    pub fn new(table: Rc<ApiTable>, shard: Rc<Shard>, node: NodeInfo) -> BrokerContext {
        let authorizer = shard.config.authorizer().map(Authorizer::new);
        BrokerContext {
            table,
            shard,
            node,
            authorizer,
        }
    }
}

impl std::fmt::Debug for BrokerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerContext")
            .field("shard", &self.shard.id())
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// One request in flight: see the module doc.
pub struct RequestContext {
    broker: Rc<BrokerContext>,
    session: Rc<Session>,
    header: RequestHeader,
    response_header_version: ResponseHeaderVersion,
    throttle_time_ms: Cell<i32>,
}

impl RequestContext {
    /// The context of `request` and its body, still encoded.
    pub fn new(broker: Rc<BrokerContext>, request: Request) -> (RequestContext, Bytes) {
        let ctx = RequestContext {
            broker,
            session: request.session,
            header: request.header,
            response_header_version: request.response_header_version,
            throttle_time_ms: Cell::new(0),
        };
        (ctx, request.body)
    }

    pub fn api_key(&self) -> ApiKey {
        self.header.api_key
    }

    pub fn version(&self) -> i16 {
        self.header.api_version
    }

    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }

    pub fn response_header_version(&self) -> ResponseHeaderVersion {
        self.response_header_version
    }

    /// The header's client id, as sent (`None`: null).
    pub fn client_id_bytes(&self) -> Option<&[u8]> {
        self.header.client_id.as_deref()
    }

    /// The header's client id as text (lossy; empty when null).
    pub fn client_id(&self) -> String {
        self.client_id_bytes()
            .map(|raw| String::from_utf8_lossy(raw).into_owned())
            .unwrap_or_default()
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The peer in Java's `InetAddress.toString()` form (`/127.0.0.1`),
    /// as Kafka records a group member's host and its tools print it.
    pub fn client_host(&self) -> String {
        format!("/{}", self.session.peer().ip())
    }

    pub fn table(&self) -> &ApiTable {
        &self.broker.table
    }

    pub fn node(&self) -> &NodeInfo {
        &self.broker.node
    }

    /// This broker's host and port for the listener the request came in on.
    pub fn advertised(&self) -> (&str, u16) {
        self.broker
            .node
            .advertised_for(&self.session.listener().name)
    }

    /// The shard serving the request (image, partitions, router).
    pub fn shard(&self) -> &Rc<Shard> {
        &self.broker.shard
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.broker.shard.image()
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.broker.shard.config
    }

    /// The shard's shared context (SASL's raw tokens reuse it).
    pub fn broker(&self) -> &Rc<BrokerContext> {
        &self.broker
    }

    pub fn now_ms(&self) -> i64 {
        self.broker.shard.clock().now_ms()
    }

    /// How this request reaches the controller.
    pub fn controller(&self) -> ControllerHandle {
        ControllerHandle::new(Rc::clone(&self.broker.shard))
    }

    /// The authorizer, when one is configured (the ACL APIs answer
    /// SECURITY_DISABLED without).
    pub fn authorizer(&self) -> Option<&Authorizer> {
        self.broker.authorizer.as_ref()
    }

    /// Whether the session's principal, from the client's address, may do
    /// `operation` on `resource`: the authorizer's decision over the ACLs
    /// of this shard's image (no cross-core call), or always true without
    /// an authorizer. Handlers call this where Kafka's `KafkaApis` does and
    /// answer a denial with Kafka's error for it.
    pub fn authorize(&self, operation: AclOperation, resource: Resource<'_>) -> bool {
        let Some(authorizer) = self.authorizer() else {
            return true;
        };
        let image = self.broker.shard.image();
        let host = self.session.peer().ip().to_string();
        let principal = self.session.principal();
        let who = Requester {
            principal: &principal,
            host: &host,
        };
        authorizer.authorize(image.acls(), who, operation, resource) == Decision::Allowed
    }

    /// The operations ACLs define on `resource` that the principal may do,
    /// as the bit set Kafka reports (`1 << AclOperation.code`).
    pub fn authorized_operations(&self, resource: Resource<'_>) -> i32 {
        resource
            .resource_type()
            .operations()
            .iter()
            .filter(|&&operation| self.authorize(operation, resource))
            .fold(0, |bits, operation| bits | operation.bit())
    }

    /// The throttle time every response of this request carries.
    pub fn throttle_time_ms(&self) -> i32 {
        self.throttle_time_ms.get()
    }

    /// Raises the throttle time to at least `ms`: each quota the request
    /// is checked against adds its own, and the response carries the
    /// largest (Kafka's `max` of the request and controller quotas).
    pub fn add_throttle_ms(&self, ms: i32) {
        self.throttle_time_ms
            .set(self.throttle_time_ms.get().max(ms));
    }

    /// The controller mutation quota (KIP-599) this request's topic
    /// mutations count against: its principal's name and client id,
    /// strict from `strict_since_version` (older clients cannot read
    /// THROTTLING_QUOTA_EXCEEDED, so they are only throttled).
    pub fn mutation_quota(&self, strict_since_version: i16) -> MutationQuota {
        MutationQuota {
            user: self.session.principal().name,
            client_id: self.client_id(),
            strict: self.version() >= strict_since_version,
            now_ms: self.now_ms(),
        }
    }
}
