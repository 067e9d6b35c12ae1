//! The quorum's own traffic between controllers: raft-rs `Message`s over
//! TCP, one connection per direction and peer.
//!
//! A frame is `u32` length (big-endian) + the message's protobuf encoding;
//! lengths above [`FRAME_BYTES_MAX`] close the connection. A connection
//! opens with a 16-byte hello: the magic `RAFKAQRM`, a `u32` version and
//! the sender's node id (`i32`), so the receiver drops a stray client or a
//! node that is not a voter before reading anything else.
//!
//! Sending never blocks the driver: each peer has a bounded queue and a
//! task that connects (with a deadline), writes, and reconnects after a
//! back-off. A full queue or a dead link drops messages, which Raft
//! tolerates (it retransmits); the driver is told, so raft-rs probes the
//! peer instead of streaming to it, and a snapshot that was not delivered
//! is reported failed so it is sent again.
//!
//! Lives on: the controller's shard (shard 0) of every voter.

use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use protobuf::Message as _;
use raft::prelude::{Message, MessageType};

use super::driver::Event;
use crate::runtime::within;

/// Largest frame accepted: a snapshot of a very large image fits.
pub const FRAME_BYTES_MAX: u32 = 256 * 1024 * 1024;
const MAGIC: &[u8; 8] = b"RAFKAQRM";
const VERSION: u32 = 1;
const HELLO_BYTES: usize = 16;
/// Messages queued per peer before new ones are dropped.
const PEER_QUEUE_LEN: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A write that does not finish in this long (a peer that stopped
/// reading: paused, wedged) drops the connection; messages meanwhile are
/// dropped and Raft retransmits.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// A connection that does not say what it is within this long is closed.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Set once when the quorum closes: every transport task ends and drops
/// its sockets.
#[derive(Default)]
pub(crate) struct Closed {
    closed: std::cell::Cell<bool>,
    event: event_listener::Event,
}

impl Closed {
    pub(crate) fn close(&self) {
        self.closed.set(true);
        self.event.notify(usize::MAX);
    }

    /// Completes once closed.
    pub(crate) async fn wait(&self) {
        loop {
            let listener = self.event.listen();
            if self.closed.get() {
                return;
            }
            listener.await;
        }
    }

    /// `work`, unless the quorum closes first.
    pub(crate) async fn or_closed<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        let work = std::pin::pin!(work);
        let closed = std::pin::pin!(self.wait());
        match futures_util::future::select(work, closed).await {
            futures_util::future::Either::Left((output, _)) => Some(output),
            futures_util::future::Either::Right(_) => None,
        }
    }
}

/// Outbound links to every other voter.
pub struct Transport {
    peers: HashMap<u64, LocalSender<Message>>,
    events: Rc<LocalSender<Event>>,
}

impl Transport {
    /// Starts one sender task per peer in `voters` (other than `me`).
    pub(crate) fn start(
        me: u64,
        voters: &[(u64, String)],
        events: Rc<LocalSender<Event>>,
        closed: Rc<Closed>,
    ) -> Transport {
        let mut peers = HashMap::new();
        for (id, address) in voters {
            if *id == me {
                continue;
            }
            let (tx, rx) = local_channel::new_bounded(PEER_QUEUE_LEN);
            let link = PeerLink {
                closed: Rc::clone(&closed),
                me,
                peer: *id,
                address: address.clone(),
                events: Rc::clone(&events),
            };
            glommio::spawn_local(link.run(rx)).detach();
            peers.insert(*id, tx);
        }
        Transport { peers, events }
    }

    /// Queues `message` for its peer; drops it when the queue is full.
    pub fn send(&self, message: Message) {
        let to = message.to;
        let Some(peer) = self.peers.get(&to) else {
            tracing::warn!(to, "raft message for an unknown node dropped");
            return;
        };
        let snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
        if peer.try_send(message).is_err() {
            let _ = self.events.try_send(Event::Unreachable { to, snapshot });
        }
    }
}

struct PeerLink {
    closed: Rc<Closed>,
    me: u64,
    peer: u64,
    address: String,
    events: Rc<LocalSender<Event>>,
}

impl PeerLink {
    async fn run(self, rx: glommio::channels::local_channel::LocalReceiver<Message>) {
        let mut stream: Option<TcpStream> = None;
        let mut retry_at = Instant::now();
        let mut buffer = Vec::new();
        while let Some(Some(message)) = self.closed.or_closed(rx.recv()).await {
            let snapshot = message.get_msg_type() == MessageType::MsgSnapshot;
            // The peer never writes on this link, so anything readable is
            // its end: a peer that restarted closed it, and a message
            // written now would be lost (costing Raft a retry, an election
            // timeout for a pre-vote). Reconnect first instead.
            if stream.as_ref().is_some_and(peer_closed) {
                tracing::debug!(
                    peer = self.peer,
                    "raft link closed by the peer, reconnecting"
                );
                stream = None;
                retry_at = Instant::now();
            }
            if stream.is_none() && Instant::now() >= retry_at {
                stream = self.connect().await;
                if stream.is_none() {
                    retry_at = Instant::now() + RECONNECT_BACKOFF;
                }
            }
            let Some(connection) = stream.as_mut() else {
                self.report(snapshot, false);
                continue;
            };
            buffer.clear();
            buffer.extend_from_slice(&[0; 4]);
            if let Err(error) = message.write_to_vec(&mut buffer) {
                tracing::error!(peer = self.peer, %error, "encoding a raft message");
                continue;
            }
            let len = u32::try_from(buffer.len() - 4).unwrap_or(u32::MAX);
            buffer[..4].copy_from_slice(&len.to_be_bytes());
            let written = within(WRITE_TIMEOUT, connection.write_all(&buffer))
                .await
                .unwrap_or_else(|| Err(std::io::ErrorKind::TimedOut.into()));
            match written {
                Ok(()) => {
                    if snapshot {
                        self.report(true, true);
                    }
                }
                Err(error) => {
                    tracing::debug!(peer = self.peer, %error, "raft link lost");
                    stream = None;
                    retry_at = Instant::now() + RECONNECT_BACKOFF;
                    self.report(snapshot, false);
                }
            }
        }
    }

    fn report(&self, snapshot: bool, delivered: bool) {
        let event = if delivered {
            Event::SnapshotSent { to: self.peer }
        } else {
            Event::Unreachable {
                to: self.peer,
                snapshot,
            }
        };
        let _ = self.events.try_send(event);
    }

    async fn connect(&self) -> Option<TcpStream> {
        let connecting = TcpStream::connect(self.address.as_str());
        let mut stream = match within(CONNECT_TIMEOUT, connecting).await {
            Some(Ok(stream)) => stream,
            Some(Err(error)) => {
                tracing::debug!(peer = self.peer, address = self.address, %error, "raft connect");
                return None;
            }
            None => return None,
        };
        let _ = stream.set_nodelay(true);
        let mut hello = Vec::with_capacity(HELLO_BYTES);
        hello.extend_from_slice(MAGIC);
        hello.extend_from_slice(&VERSION.to_be_bytes());
        hello.extend_from_slice(&(self.me as i32).to_be_bytes());
        stream.write_all(&hello).await.ok()?;
        Some(stream)
    }
}

/// Whether the peer closed (or reset) an outbound link: a non-blocking
/// peek finds its end of stream or an error. The link carries nothing the
/// other way, so no real data is ever peeked.
fn peer_closed(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    // SAFETY: recv(2) into a one-byte buffer on a descriptor the stream
    // owns; MSG_PEEK leaves the socket as it was.
    let read = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if read > 0 {
        return false;
    }
    if read == 0 {
        return true;
    }
    let error = std::io::Error::last_os_error();
    error.kind() != std::io::ErrorKind::WouldBlock
        && error.kind() != std::io::ErrorKind::Interrupted
}

/// Accepts connections on the controller listener: the other voters'
/// raft links (their messages are stepped into the driver), observers
/// following the log (`observer`), and brokers speaking the Kafka protocol
/// (`broker_rpc`); the first 8 bytes tell which.
pub(crate) async fn serve(
    listener: TcpListener,
    me: u64,
    voters: Rc<Vec<u64>>,
    events: Rc<LocalSender<Event>>,
    closed: Rc<Closed>,
    quorum: Weak<super::driver::Quorum>,
) {
    loop {
        let Some(accepted) = closed.or_closed(listener.accept()).await else {
            return;
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "controller listener accept");
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let voters = Rc::clone(&voters);
        let events = Rc::clone(&events);
        let closed = Rc::clone(&closed);
        let quorum = quorum.clone();
        glommio::spawn_local(async move {
            let peer = stream.peer_addr().ok();
            let served = closed
                .or_closed(dispatch(stream, me, &voters, &events, quorum))
                .await;
            if let Some(Err(error)) = served {
                tracing::debug!(?peer, %error, "controller listener connection closed");
            }
        })
        .detach();
    }
}

/// Tells a connection's kind by its first 8 bytes and serves it.
async fn dispatch(
    mut stream: TcpStream,
    me: u64,
    voters: &[u64],
    events: &LocalSender<Event>,
    quorum: Weak<super::driver::Quorum>,
) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let mut head = [0u8; 8];
    within(HELLO_TIMEOUT, stream.read_exact(&mut head))
        .await
        .ok_or("no request within the hello timeout")?
        .map_err(|e| e.to_string())?;
    if &head == MAGIC {
        return receive(stream, me, voters, events).await;
    }
    if &head == super::observer::MAGIC {
        let mut rest = [0u8; super::observer::HELLO_BYTES - 8];
        stream
            .read_exact(&mut rest)
            .await
            .map_err(|e| e.to_string())?;
        let version = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(format!("observer protocol version {version} unknown"));
        }
        let from = i32::from_be_bytes(rest[4..8].try_into().expect("4 bytes"));
        if from < 0 || voters.contains(&super::driver::raft_id(from)) {
            return Err(format!("node {from} is no observer"));
        }
        return super::observer::serve(stream, from, quorum).await;
    }
    super::broker_rpc::serve(stream, head, quorum).await
}

/// A raft link from another voter, its magic already read.
async fn receive(
    mut stream: TcpStream,
    me: u64,
    voters: &[u64],
    events: &LocalSender<Event>,
) -> Result<(), String> {
    let mut hello = [0u8; HELLO_BYTES - 8];
    stream
        .read_exact(&mut hello)
        .await
        .map_err(|e| e.to_string())?;
    let version = u32::from_be_bytes(hello[..4].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("quorum protocol version {version} unknown"));
    }
    let from = i32::from_be_bytes(hello[4..8].try_into().expect("4 bytes"));
    let from = u64::try_from(from).map_err(|_| format!("node id {from} invalid"))?;
    if !voters.contains(&from) || from == me {
        return Err(format!("node {from} is not another voter"));
    }
    let mut body = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return Ok(());
        }
        let len = u32::from_be_bytes(len);
        if len > FRAME_BYTES_MAX {
            return Err(format!("raft frame of {len} bytes"));
        }
        body.resize(len as usize, 0);
        stream
            .read_exact(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        if !super::wire_check::parseable_message(&body) {
            return Err("a raft frame that is not a raft message".into());
        }
        let message = Message::parse_from_bytes(&body).map_err(|e| e.to_string())?;
        if message.from != from || message.to != me {
            return Err(format!(
                "message from {} to {} on node {from}'s link to {me}",
                message.from, message.to
            ));
        }
        if events.try_send(Event::Step(Box::new(message))).is_err() {
            return Err("the quorum driver stopped".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::{LocalExecutorBuilder, Placement};

    #[test]
    fn a_link_closed_by_the_peer_is_noticed_before_the_next_write() {
        let executor = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(64 * 1024)
            .make()
            .expect("executor");
        executor.run(async {
            let peer = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = peer.local_addr().expect("addr");
            let stream = TcpStream::connect(addr).await.expect("connect");
            let (accepted, _) = peer.accept().expect("accept");
            assert!(!peer_closed(&stream), "an open, quiet link");
            drop(accepted);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !peer_closed(&stream) {
                assert!(Instant::now() < deadline, "the peer's close never seen");
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        });
    }
}
