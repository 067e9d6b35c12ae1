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
//! Lives on: the shard that accepted the connection; one per connection.

use std::cell::RefCell;
use std::net::SocketAddr;

use kafka_protocol::messages::ApiKey;
use rafka_core::acl::Principal;
use rafka_core::config::SecurityProtocol;

use crate::latch::Latch;

/// The listener a connection came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerInfo {
    /// Kafka's listener name (`PLAINTEXT`, `CLIENT`, ...).
    pub name: String,
    pub security_protocol: SecurityProtocol,
}

impl Default for ListenerInfo {
    /// The zero-config listener.
    fn default() -> Self {
        ListenerInfo {
            name: "PLAINTEXT".to_string(),
            security_protocol: SecurityProtocol::Plaintext,
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
    principal: Principal,
    client_software: RefCell<Option<ClientSoftware>>,
    /// Triggered when the connection stops taking requests.
    closed: Latch,
}

impl Session {
    /// A fresh connection from `peer` on `listener`, not authenticated.
    pub fn new(peer: SocketAddr, listener: ListenerInfo) -> Session {
        Session {
            peer,
            listener,
            principal: Principal::anonymous(),
            client_software: RefCell::new(None),
            closed: Latch::new(),
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
            principal,
            ..Session::new(peer, listener)
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn listener(&self) -> &ListenerInfo {
        &self.listener
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
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

    /// Whether the connection may send `api_key` now. Every listener today
    /// is unauthenticated, so every API passes; a SASL listener will let
    /// only ApiVersions, SaslHandshake and SaslAuthenticate through until
    /// the client has authenticated, as Kafka does.
    pub fn admits(&self, api_key: ApiKey) -> bool {
        let _ = api_key;
        true
    }
}
