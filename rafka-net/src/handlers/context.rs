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
//! - How long to wait: the throttle time every response carries, the
//!   largest of what the client's quotas answered
//!   ([`RequestContext::add_throttle_ms`]), stamped on the response by the
//!   driver; [`RequestContext::record_quota`] reports to a sensor's owner
//!   shard ([`rafka_shard::quota`]).
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
use rafka_core::quota::QuotaKey;
use rafka_proto::api::ApiTable;
use rafka_proto::header::{RequestHeader, ResponseHeaderVersion};
use rafka_shard::controller_handle::ControllerHandle;
use rafka_shard::shard::Shard;

use rafka_shard::quota;

use crate::service::Request;
use crate::session::{Session, VerdictPending};
use crate::throttle::Mute;

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
    /// The whole frame without its size prefix (Kafka's `sizeInBytes`).
    frame_bytes: usize,
    throttle_time_ms: Cell<i32>,
    /// Set by a handler whose request Kafka exempts from the request
    /// quota (a follower's fetch, acks=0 produce).
    request_quota_exempt: Cell<bool>,
}

impl RequestContext {
    /// The context of `request` and its body, still encoded.
    pub fn new(broker: Rc<BrokerContext>, request: Request) -> (RequestContext, Bytes) {
        let ctx = RequestContext {
            broker,
            session: request.session,
            header: request.header,
            response_header_version: request.response_header_version,
            frame_bytes: request.frame_bytes,
            throttle_time_ms: Cell::new(0),
            request_quota_exempt: Cell::new(false),
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

    /// Raises the throttle time to `throttle_ms` if that is larger: a
    /// request throttled by several quotas waits for the longest (Kafka
    /// takes the max).
    pub fn add_throttle_ms(&self, throttle_ms: i32) {
        self.throttle_time_ms
            .set(self.throttle_time_ms.get().max(throttle_ms));
    }

    /// The request's size as Kafka's quotas count it: header and body.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// The user quotas know the session by: the principal's name
    /// (`ANONYMOUS` without authentication), as Kafka's `Session`.
    pub fn quota_user(&self) -> String {
        self.session.principal().name
    }

    /// Reports `value` of `key` for this request's (user, client id) to
    /// the sensor's owner shard and answers its throttle time (0 without a
    /// quota, and then no message is sent).
    ///
    /// While the report travels the connection takes no further request
    /// ([`Session::verdict_pending`]), and a throttle mutes it before the
    /// next one is taken: a client pipelining requests is held from the
    /// next request on, as Kafka's one-at-a-time channel holds it.
    pub async fn record_quota(&self, key: QuotaKey, value: f64) -> i32 {
        let user = self.quota_user();
        let client_id = self.client_id();
        let shard = self.shard();
        let Some(planned) = quota::plan(shard, key, &user, &client_id, value) else {
            return 0;
        };
        let _pending = self.session.verdict_pending();
        let throttle_ms = quota::send(shard, planned, quota::Then::Keep).await;
        self.mute_for(throttle_ms);
        throttle_ms
    }

    /// Whether a `key` quota applies to this request's client now.
    pub fn quota_applies(&self, key: QuotaKey) -> bool {
        quota::applies(self.shard(), key, &self.quota_user(), &self.client_id())
    }

    /// Holds the connection's next request until this one's quota verdict
    /// (the request quota's, known only after handling).
    pub fn verdict_pending(&self) -> VerdictPending {
        self.session.verdict_pending()
    }

    /// Mutes the connection for `throttle_ms` from now (KIP-219); nothing
    /// for 0.
    pub fn mute_for(&self, throttle_ms: i32) {
        if throttle_ms <= 0 {
            return;
        }
        self.session.mute_until(Mute {
            until_ms: self.now_ms() + i64::from(throttle_ms),
            clock: Rc::clone(self.shard().clock()),
        });
    }

    /// Exempts this request from the request quota (Kafka's
    /// `sendResponseExemptThrottle` cases the handler knows of).
    pub fn exempt_from_request_quota(&self) {
        self.request_quota_exempt.set(true);
    }

    pub fn is_request_quota_exempt(&self) -> bool {
        self.request_quota_exempt.get()
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
