//! [`Session`]: what a connection knows about who is on the other end, for
//! every request it carries.
//!
//! Kafka ties identity to the connection: the listener it came in on (its
//! name and security protocol), the principal it authenticated as
//! (`User:ANONYMOUS` on a listener without authentication), and the client
//! software it named in ApiVersions v3+ (KIP-511). Every request of the
//! connection sees the same session through its
//! [`crate::handlers::RequestContext`].
//!
//! A session also says when its connection has ended ([`Session::closed`]):
//! the peer closed, a read or write failed, the connection was idle, it
//! was closed for a protocol error, or the shard is shutting down. From
//! then on no request of the connection should wait for more: a parked
//! Fetch answers with what it has (or the answer is dropped with the
//! socket). Work that changes state (a produce's append) is not cancelled.
//!
//! On a SASL listener the session also holds the connection's
//! [`SaslSession`]: the principal is `User:ANONYMOUS` until the client
//! authenticates, then `User:<name>`, and [`Session::admits`] gates APIs
//! by the exchange's state (see [`crate::sasl`]).
//!
//! A throttled response mutes its connection ([`Session::mute_until`]):
//! the reader takes no further request until the mute is over (KIP-219,
//! [`crate::throttle`]).
//!
//! Lives on: the shard that accepted the connection; one per connection.

use std::cell::{Cell, RefCell, RefMut};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::messages::ApiKey;
use rafka_core::acl::Principal;
use rafka_core::config::sasl::ListenerSasl;
use rafka_core::config::{BrokerConfig, Listener, SecurityProtocol};

use crate::latch::Latch;
use crate::sasl::SaslSession;
use crate::throttle::Mute;

/// The listener a connection came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// Kafka's listener name (`PLAINTEXT`, `CLIENT`, ...).
    pub name: String,
    pub security_protocol: SecurityProtocol,
    /// A SASL listener's mechanisms, users and limits; None on a listener
    /// without authentication.
    pub sasl: Option<Arc<ListenerSasl>>,
}

impl Default for ListenerInfo {
    /// The zero-config listener.
    fn default() -> Self {
        ListenerInfo {
            name: "PLAINTEXT".to_string(),
            security_protocol: SecurityProtocol::Plaintext,
            sasl: None,
        }
    }
}

impl ListenerInfo {
    /// `listener` of `config`, with its SASL settings if it has any.
    pub fn of(config: &BrokerConfig, listener: &Listener) -> ListenerInfo {
        ListenerInfo {
            name: listener.name.clone(),
            security_protocol: listener.protocol,
            sasl: config.sasl.listener(&listener.name),
        }
    }
}

/// The client software a connection named (ApiVersions v3+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSoftware {
    pub name: String,
    pub version: String,
}

/// One connection's identity.
#[derive(Debug)]
pub struct Session {
    peer: SocketAddr,
    listener: ListenerInfo,
    principal: RefCell<Principal>,
    /// Some on a SASL listener.
    sasl: Option<RefCell<SaslSession>>,
    client_software: RefCell<Option<ClientSoftware>>,
    /// Triggered when the connection stops taking requests.
    closed: Latch,
    /// Until when the reader takes no request (a throttled response).
    mute: RefCell<Option<Mute>>,
    /// Quota reports of this connection's requests not yet answered by
    /// their sensor's owner: the reader takes no request meanwhile.
    verdicts_pending: Cell<usize>,
    /// Notified as each verdict arrives.
    verdict: event_listener::Event,
    /// Some request of this connection had a quota report.
    quota_client: Cell<bool>,
}

impl Session {
    /// A fresh connection from `peer` on `listener`, not authenticated.
    pub fn new(peer: SocketAddr, listener: ListenerInfo) -> Session {
        let sasl = listener
            .sasl
            .clone()
            .map(|config| RefCell::new(SaslSession::new(config)));
        Session {
            peer,
            listener,
            principal: RefCell::new(Principal::anonymous()),
            sasl,
            client_software: RefCell::new(None),
            closed: Latch::new(),
            mute: RefCell::new(None),
            verdicts_pending: Cell::new(0),
            verdict: event_listener::Event::new(),
            quota_client: Cell::new(false),
        }
    }

    /// A connection whose transport already named its principal (a TLS
    /// client certificate, through `ssl.principal.mapping.rules`).
    pub fn with_principal(
        peer: SocketAddr,
        listener: ListenerInfo,
        principal: Principal,
    ) -> Session {
        Session {
            principal: RefCell::new(principal),
            ..Session::new(peer, listener)
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn listener(&self) -> &ListenerInfo {
        &self.listener
    }

    /// Who the connection acts as now (it changes when SASL completes).
    pub fn principal(&self) -> Principal {
        self.principal.borrow().clone()
    }

    /// Set when a SASL exchange completes.
    pub fn set_principal(&self, principal: Principal) {
        *self.principal.borrow_mut() = principal;
    }

    /// The SASL state, on a SASL listener. Borrows last no longer than one
    /// step of a handler (never across an await).
    pub fn sasl(&self) -> Option<RefMut<'_, SaslSession>> {
        self.sasl.as_ref().map(RefCell::borrow_mut)
    }

    /// Whether the reader must wait for this request's answer before
    /// reading the next frame (SASL, before authentication).
    pub fn serial(&self) -> bool {
        self.sasl().is_some_and(|s| s.serial())
    }

    /// The largest frame accepted now, when tighter than the connection's
    /// (`sasl.server.max.receive.size` before authentication).
    pub fn frame_limit(&self) -> Option<usize> {
        self.sasl().and_then(|s| s.frame_limit())
    }

    /// Whether the next frame is a raw SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        self.sasl().is_some_and(|s| s.expects_raw_token())
    }

    pub fn client_software(&self) -> Option<ClientSoftware> {
        self.client_software.borrow().clone()
    }

    /// Recorded by ApiVersions v3+.
    pub fn set_client_software(&self, software: ClientSoftware) {
        *self.client_software.borrow_mut() = Some(software);
    }

    /// Marks the connection ended: every [`Session::closed`] wait completes.
    /// Called by the connection; harmless twice.
    pub fn close(&self) {
        self.closed.trigger();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_triggered()
    }

    /// Completes once the connection has ended (see the module doc). A
    /// request that waits for something that may never come races this.
    pub async fn closed(&self) {
        self.closed.wait().await;
    }

    /// Mutes the connection until `mute` is over (a later end of an
    /// earlier mute wins: throttles do not add up, the longest holds).
    pub fn mute_until(&self, mute: Mute) {
        let mut current = self.mute.borrow_mut();
        if current.as_ref().is_none_or(|m| m.until_ms < mute.until_ms) {
            *current = Some(mute);
        }
    }

    /// The mute in force now, if any (an expired one is dropped).
    pub fn mute(&self) -> Option<Mute> {
        let mut current = self.mute.borrow_mut();
        if current.as_ref().is_some_and(Mute::is_over) {
            *current = None;
        }
        current.clone()
    }

    /// A quota report of one of this connection's requests is on its way
    /// to the sensor's owner: until [`VerdictPending`] drops, the reader
    /// takes no further request, so a throttle applies from the very next
    /// one, as Kafka's one-request-at-a-time channel has it. Connections
    /// without quotas never wait.
    pub fn verdict_pending(self: &Rc<Self>) -> VerdictPending {
        self.verdicts_pending.set(self.verdicts_pending.get() + 1);
        self.quota_client.set(true);
        VerdictPending {
            session: Rc::clone(self),
        }
    }

    /// Whether a verdict is awaited; with the listener to wait for it.
    pub fn awaiting_verdict(&self) -> Option<event_listener::EventListener> {
        if self.verdicts_pending.get() == 0 {
            return None;
        }
        let listener = self.verdict.listen();
        (self.verdicts_pending.get() > 0).then_some(listener)
    }

    /// Whether requests of this connection have had quota reports.
    pub fn is_quota_client(&self) -> bool {
        self.quota_client.get()
    }

    /// Whether the connection may send `api_key` now. A listener without
    /// SASL admits everything; a SASL listener only ApiVersions,
    /// SaslHandshake and SaslAuthenticate until the client has
    /// authenticated, and nothing once its session has expired, as Kafka.
    pub fn admits(&self, api_key: ApiKey) -> bool {
        self.sasl()
            .is_none_or(|s| s.admits(api_key, Instant::now()))
    }
}

/// See [`Session::verdict_pending`]; dropping it is the verdict.
#[derive(Debug)]
pub struct VerdictPending {
    session: Rc<Session>,
}

impl Drop for VerdictPending {
    fn drop(&mut self) {
        let pending = &self.session.verdicts_pending;
        pending.set(pending.get().saturating_sub(1));
        self.session.verdict.notify(usize::MAX);
    }
}
