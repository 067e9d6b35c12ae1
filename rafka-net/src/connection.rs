//! One client connection: read frames, serve requests concurrently, write
//! responses in request order.
//!
//! A connection is one task running two halves over the same socket:
//! - the reader cuts size-prefixed frames, parses each header against the
//!   API table and spawns a task per request into the shard's service;
//! - the writer awaits those tasks in the order their requests arrived and
//!   writes each response as soon as it and every earlier one are done,
//!   coalescing responses that are already done into one write.
//!
//! Bounds. As soon as a frame's size prefix has arrived, and before its body
//! is read, the reader takes the frame's budget: one of the connection's
//! `inflight_requests_max` slots and `frame_bytes` of both the connection's
//! `inflight_bytes_max` and the shard's `shard_inflight_bytes_max`. The
//! budget is returned once the response is on the socket. While a frame
//! waits for budget nothing more is read, so TCP pushes back on the client.
//!
//! Fairness. Because a connection's reader waits for one frame's budget
//! before reading the next, each connection has at most one frame waiting
//! for the shard's budget, and that budget admits waiters in arrival
//! order: when a deep pipeline of large requests holds the shard's bytes,
//! another connection's request waits for one release, not for the whole
//! pipeline (round-robin admission; `tests/connection.rs` pins it). A
//! connection over its client quota is muted on top (KIP-219).
//!
//! Errors. A refused size prefix or request header closes the connection
//! (Kafka does the same), after the responses to earlier requests are
//! written; an ApiVersions request of an unsupported version is answered
//! instead. A [`Response::Close`] from the service closes it the same way.
//! Every close for a protocol error is logged at warn with the peer and the
//! request's api key, version and correlation id, and counted.
//!
//! Zero copy. A [`Response::Chunks`] (Fetch) is written as its size prefix,
//! then its chunks in order; the file regions among them go from the page
//! cache to the socket with `sendfile(2)` ([`crate::zero_copy`], which also
//! says why the socket is made non-blocking and how a full socket buffer is
//! waited for without stalling the shard). With
//! [`ConnectionConfig::zero_copy`] off, or on a TLS connection
//! ([`crate::stream::Stream`]), regions are read into memory.
//!
//! Ending. When the reader stops, for whatever reason, the session is
//! marked closed ([`Session::close`]), so that requests parked on a long
//! wait (a Fetch's `max_wait_ms`) answer at once. If the peer is gone (end
//! of stream, read error, idle) the writer is dropped with the socket: its
//! answers could not be delivered, and waiting for them would hold the
//! descriptor. The request tasks are not cancelled: a produce completes
//! its append, and each task returns its budget when it ends. Otherwise
//! (shutdown, protocol error) the writer writes what is owed first.
//!
//! Throttling (KIP-219). After a response with a throttle time the
//! session is muted ([`Session::mute_until`], set by the request driver
//! before the response is handed over): the reader takes no further
//! frame until the mute is over, checked before reading a frame and again
//! before dispatching one, so a frame read while the throttled request
//! was being served waits too. Responses already owed are still written
//! in order; only new requests wait. A muted reader still notices
//! shutdown, and a peer that closes while nothing is buffered. For
//! request versions older than KIP-219 the driver also holds the
//! response back for the throttle time ([`crate::throttle`]).
//!
//! Memory. An idle connection holds no read buffer ([`ReadBuffer`]).
//!
//! Lives on: the shard that accepted the socket; nothing here is `Send`.

use std::cell::{Cell, RefCell};
use std::future::{pending, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_lite::future::{or, poll_once};
use futures_lite::io::AsyncWrite;
use futures_util::future::{select, Either};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::sync::{Semaphore, StaticPermit};
use glommio::task::JoinHandle;
use glommio::timer::Timer;
use kafka_protocol::messages::ApiKey;
use rafka_proto::api::ApiLookupError;
use rafka_proto::frame::{
    frame_prefix, FrameDecoder, FrameEncodeError, FrameError, FRAME_BYTES_MAX_DEFAULT,
    FRAME_PREFIX_BYTES,
};
use rafka_proto::header::{HeaderError, RequestHeader, RequestPrefix};
use rafka_shard::storage::FileRegion;
use tracing::{debug, info, warn};

use crate::handlers::{api_versions, HandlerError};
use crate::latch::Latch;
use crate::listener::ShardNet;
use crate::read_buffer::ReadBuffer;
use crate::service::{Request, Response, Service};
use crate::session::Session;
use crate::stream::Stream;
use crate::zero_copy::{self, Chunk, ChunkedReply, SendStep};

/// Responses are copied into one buffer and written together up to this
/// size; a larger response body is written from its own buffer.
const WRITE_COALESCE_BYTES_MAX: usize = 64 << 10;
/// When `sendfile` finds the socket full, this much of the region is read
/// and written through glommio, which waits for the socket to drain.
const WRITABLE_WAIT_BYTES: usize = 16 << 10;

// A piece written while waiting for room is staged like a small response.
const _: () = assert!(WRITABLE_WAIT_BYTES <= WRITE_COALESCE_BYTES_MAX);
// The size prefix is an i32: no frame the broker accepts can overflow it.
const _: () = assert!(FRAME_BYTES_MAX_DEFAULT <= i32::MAX as usize);

/// Limits of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Largest request frame, prefix not counted (`socket.request.max.bytes`).
    pub frame_bytes_max: usize,
    /// Requests read but not yet answered. At least 1.
    pub inflight_requests_max: usize,
    /// Frame bytes of requests read but not yet answered; a frame larger
    /// than this waits until the connection has nothing else in flight.
    pub inflight_bytes_max: usize,
    /// `connections.max.idle.ms`: a connection with nothing read, nothing
    /// written and no request in flight for this long is closed. 0 disables.
    pub connections_max_idle_ms: u64,
    /// Send Fetch records from the segment files with `sendfile`; off, they
    /// are read into memory first (TLS must encrypt them in user space).
    pub zero_copy: bool,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            // Clients send up to 5 per connection; a consumer's fetches to
            // one broker can share a connection with its commits.
            inflight_requests_max: 64,
            inflight_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            connections_max_idle_ms: 600_000,
            zero_copy: true,
        }
    }
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve<S: Service>(net: &Rc<ShardNet<S>>, stream: Stream, session: Session) {
    let conn = Connection::new(net, stream, session);
    let (slots_in, slots_out) = local_channel::new_unbounded();
    let reader = pin!(conn.read_loop(slots_in));
    let writer = pin!(conn.write_loop(slots_out));
    let (read_end, write_end) = match select(reader, writer).await {
        Either::Left((read_end, writer)) => {
            // No more requests: nothing already read may wait for more.
            conn.session.close();
            let write_end = if read_end.peer_gone() {
                // Nobody will read the answers: let go of the socket now.
                // The request tasks run on (a produce still appends) and
                // return their budget when they end.
                WriteEnd::PeerGone {
                    responses_dropped: conn.responses_pending.get(),
                }
            } else {
                // The writer still owes the requests read so far.
                writer.await
            };
            (Some(read_end), write_end)
        }
        // The writer closed the connection: reading on is pointless.
        Either::Right((write_end, _reader)) => (None, write_end),
    };
    conn.session.close();
    // The reader, and its buffer, are gone.
    conn.count_read_buffer(0);
    conn.record_end(read_end, write_end);
}

/// The budget a request holds from the moment its size is known until its
/// response has been written.
#[derive(Debug)]
struct Admission {
    _request: StaticPermit,
    _connection_bytes: StaticPermit,
    _shard_bytes: StaticPermit,
}

/// What a request task hands back to the writer.
struct Completed {
    response: Response,
    admission: Admission,
}

/// One request in the order it arrived.
struct Slot {
    prefix: RequestPrefix,
    state: SlotState,
}

enum SlotState {
    Running(JoinHandle<Completed>),
    /// `None`: the task ended without completing (the executor is stopping).
    Done(Option<Completed>),
}

impl Slot {
    /// Whether the response is ready, without waiting for it.
    async fn try_finish(&mut self) -> bool {
        if let SlotState::Running(handle) = &mut self.state {
            if let Some(completed) = poll_once(handle).await {
                self.state = SlotState::Done(completed);
            }
        }
        matches!(self.state, SlotState::Done(_))
    }

    async fn finish(self) -> Option<Completed> {
        match self.state {
            SlotState::Running(handle) => handle.await,
            SlotState::Done(completed) => completed,
        }
    }
}

/// Why the reader stopped.
#[derive(Debug)]
enum ReadEnd {
    /// The peer closed its side; `buffered_bytes` of a frame were pending.
    Eof {
        buffered_bytes: usize,
    },
    Idle,
    Shutdown,
    Io(io::Error),
    Frame(FrameError),
    Header(HeaderError),
    /// The writer is gone, so nothing read could be answered.
    WriterGone,
}

impl ReadEnd {
    /// Whether the peer can no longer read answers: it closed (Kafka
    /// clients never half-close; Kafka too drops the answers of a
    /// connection whose peer closed), the socket failed, or the connection
    /// is idle with nothing owed.
    fn peer_gone(&self) -> bool {
        matches!(self, ReadEnd::Eof { .. } | ReadEnd::Io(_) | ReadEnd::Idle)
    }
}

/// Why the writer stopped.
#[derive(Debug)]
enum WriteEnd {
    /// Every response owed was written and the reader stopped.
    Drained,
    /// The peer went away; the answers of these requests were not awaited.
    PeerGone {
        responses_dropped: usize,
    },
    Closed {
        prefix: RequestPrefix,
        reason: HandlerError,
    },
    TaskLost {
        prefix: RequestPrefix,
    },
    Oversized {
        prefix: RequestPrefix,
        error: FrameEncodeError,
    },
    Io(io::Error),
}

struct Connection<'n, S: Service> {
    net: &'n Rc<ShardNet<S>>,
    /// Shared by the two halves; each borrow lasts one poll, never across
    /// an await, so the halves never see each other's borrow.
    stream: RefCell<Stream>,
    peer: SocketAddr,
    /// Who is on the other end, shared by every request of the connection.
    session: Rc<Session>,
    inflight_requests: Rc<Semaphore>,
    inflight_bytes: Rc<Semaphore>,
    /// Requests handed to the writer and not yet written.
    responses_pending: Cell<usize>,
    last_activity: Cell<Instant>,
    /// What the read buffer held when last counted in the metrics.
    read_buffer_bytes: Cell<usize>,
    /// File regions go out with `sendfile` (the socket is non-blocking).
    zero_copy: bool,
}

impl<'n, S: Service> Connection<'n, S> {
    fn new(net: &'n Rc<ShardNet<S>>, stream: Stream, session: Session) -> Self {
        let config = &net.config.connection;
        let peer = session.peer();
        // TLS encrypts in user space: its file regions are read instead.
        let zero_copy = config.zero_copy
            && stream.plain_socket().is_some_and(|socket| {
                match zero_copy::set_nonblocking(socket.as_raw_fd()) {
                    Ok(()) => true,
                    Err(error) => {
                        debug!(%peer, %error, "no zero copy: socket stays blocking");
                        false
                    }
                }
            });
        Connection {
            net,
            stream: RefCell::new(stream),
            peer,
            session: Rc::new(session),
            inflight_requests: Rc::new(Semaphore::new(config.inflight_requests_max.max(1) as u64)),
            inflight_bytes: Rc::new(Semaphore::new(config.inflight_bytes_max.max(1) as u64)),
            responses_pending: Cell::new(0),
            last_activity: Cell::new(Instant::now()),
            read_buffer_bytes: Cell::new(0),
            zero_copy,
        }
    }

    fn config(&self) -> &ConnectionConfig {
        &self.net.config.connection
    }

    // ---- reader ----------------------------------------------------------

    async fn read_loop(&self, slots: LocalSender<Slot>) -> ReadEnd {
        let mut buf = ReadBuffer::default();
        let mut decoder = FrameDecoder::new(self.config().frame_bytes_max);
        loop {
            if let Err(end) = self.read_frame(&mut buf, &mut decoder, &slots).await {
                return end;
            }
        }
    }

    /// Reads one frame (prefix, budget, body) and dispatches it.
    async fn read_frame(
        &self,
        buf: &mut ReadBuffer,
        decoder: &mut FrameDecoder,
        slots: &LocalSender<Slot>,
    ) -> Result<(), ReadEnd> {
        self.wait_unmuted(buf).await?;
        self.read_until(buf, FRAME_PREFIX_BYTES).await?;
        // Before SASL authentication frames are capped tighter
        // (`sasl.server.max.receive.size`): refused on the prefix alone.
        let mut sasl_decoder;
        let decoder = match self.session.frame_limit() {
            Some(limit) if limit < decoder.frame_bytes_max() => {
                sasl_decoder = FrameDecoder::new(limit);
                &mut sasl_decoder
            }
            _ => decoder,
        };
        // On the prefix alone, bytes_needed is the announced body size.
        let frame_bytes = decoder
            .bytes_needed(&buf.filled()[..FRAME_PREFIX_BYTES])
            .map_err(ReadEnd::Frame)?;
        let admission = self.admit(frame_bytes).await?;
        let frame_end = FRAME_PREFIX_BYTES + frame_bytes;
        // One allocation for the frame instead of regrowing per read.
        buf.reserve_frame(frame_end);
        self.count_read_buffer(buf.capacity_bytes());
        self.read_until(buf, frame_end).await?;
        let frame = buf.decode(decoder);
        self.count_read_buffer(buf.capacity_bytes());
        let Some(frame) = frame.map_err(ReadEnd::Frame)? else {
            // Cannot happen with the whole frame buffered; reading the frame
            // again is still correct.
            return Ok(());
        };
        // Before SASL authentication, one request at a time: the next
        // frame is read once this one is answered, so the exchange's state
        // (and whether the next frame is a raw token) is settled.
        // A mute that began while this frame was being read holds it too;
        // for a client with quotas, the previous request first gets to
        // send its quota report (its task runs before this one resumes).
        if self.session.is_quota_client() {
            futures_lite::future::yield_now().await;
        }
        self.wait_unmuted(buf).await?;
        let done = self.session.serial().then(|| Rc::new(Latch::new()));
        if self.session.expects_raw_token() {
            self.dispatch_raw_token(frame, admission, done.clone(), slots)?;
        } else {
            self.dispatch(frame, admission, done.clone(), slots)?;
        }
        if let Some(done) = done {
            let stop = async {
                self.net.shutdown.wait().await;
                Err(ReadEnd::Shutdown)
            };
            let answered = async {
                done.wait().await;
                Ok(())
            };
            or(answered, stop).await?;
        }
        Ok(())
    }

    /// KIP-219: while the session is muted (a throttled response), or a
    /// request's quota verdict is awaited, no request is taken. Shutdown ends the wait at once. With nothing
    /// buffered the socket is still watched, so a peer that leaves ends it
    /// too; what such a read brings (one window at most) waits in the
    /// buffer until the mute is over.
    async fn wait_unmuted(&self, buf: &mut ReadBuffer) -> Result<(), ReadEnd> {
        enum Wake {
            Over,
            Read(Result<(), ReadEnd>),
            Shutdown,
        }
        loop {
            let over = async {
                if let Some(mute) = self.session.mute() {
                    mute.wait().await;
                } else if let Some(verdict) = self.session.awaiting_verdict() {
                    verdict.await;
                }
                Wake::Over
            };
            if self.session.mute().is_none() && self.session.awaiting_verdict().is_none() {
                return Ok(());
            }
            let stop = async {
                self.net.shutdown.wait().await;
                Wake::Shutdown
            };
            let watch = buf.len() == 0;
            let read = async {
                if !watch {
                    return pending().await;
                }
                Wake::Read(self.read_more(buf, FRAME_PREFIX_BYTES).await)
            };
            match or(over, or(stop, read)).await {
                Wake::Over => {}
                Wake::Shutdown => return Err(ReadEnd::Shutdown),
                Wake::Read(result) => result?,
            }
        }
    }

    /// A raw SASL token (after SaslHandshake v0): no header; the answer is
    /// a raw size-prefixed token.
    fn dispatch_raw_token(
        &self,
        frame: Bytes,
        admission: Admission,
        done: Option<Rc<Latch>>,
        slots: &LocalSender<Slot>,
    ) -> Result<(), ReadEnd> {
        let prefix = RequestPrefix {
            api_key: ApiKey::SaslAuthenticate as i16,
            api_version: 0,
            correlation_id: 0,
        };
        self.net.metrics.request(prefix.api_key);
        let service = Rc::clone(&self.net.service);
        let session = Rc::clone(&self.session);
        let task = self.net.requests.spawn(async move {
            let response = service.raw_sasl_token(session, frame).await;
            if let Some(done) = done {
                done.trigger();
            }
            Completed {
                response,
                admission,
            }
        });
        let state = match task {
            Ok(task) => SlotState::Running(task.detach()),
            Err(_) => SlotState::Done(None),
        };
        self.responses_pending.set(self.responses_pending.get() + 1);
        slots
            .try_send(Slot { prefix, state })
            .map_err(|_| ReadEnd::WriterGone)
    }

    /// Takes the budget of a frame of `frame_bytes`; waits until it is free.
    async fn admit(&self, frame_bytes: usize) -> Result<Admission, ReadEnd> {
        let config = self.config();
        let connection_units = units(frame_bytes, config.inflight_bytes_max);
        let shard_units = units(frame_bytes, self.net.config.shard_inflight_bytes_max);
        let acquire = async {
            Some(Admission {
                _request: self.inflight_requests.acquire_static_permit(1).await.ok()?,
                _connection_bytes: self
                    .inflight_bytes
                    .acquire_static_permit(connection_units)
                    .await
                    .ok()?,
                _shard_bytes: self
                    .net
                    .inflight_bytes
                    .acquire_static_permit(shard_units)
                    .await
                    .ok()?,
            })
        };
        let stop = async {
            self.net.shutdown.wait().await;
            None
        };
        or(stop, acquire).await.ok_or(ReadEnd::Shutdown)
    }

    async fn read_until(&self, buf: &mut ReadBuffer, len: usize) -> Result<(), ReadEnd> {
        while buf.len() < len {
            self.read_more(buf, len - buf.len()).await?;
        }
        Ok(())
    }

    /// One read of at least one byte appended to `buf`.
    async fn read_more(&self, buf: &mut ReadBuffer, needed: usize) -> Result<(), ReadEnd> {
        match self.read_or_stop(buf, needed).await? {
            0 => Err(ReadEnd::Eof {
                buffered_bytes: buf.len(),
            }),
            read_bytes => {
                self.net.metrics.bytes_in(read_bytes);
                self.touch();
                Ok(())
            }
        }
    }

    /// Reads into `buf`, unless the shard shuts down or the connection has
    /// been idle for `connections.max.idle.ms` first.
    async fn read_or_stop(&self, buf: &mut ReadBuffer, needed: usize) -> Result<usize, ReadEnd> {
        enum Wake {
            Read(io::Result<usize>),
            Idle,
            Shutdown,
        }
        loop {
            let read = async {
                let read = poll_fn(|cx| {
                    let read = buf.poll_read(cx, &mut *self.stream.borrow_mut(), needed);
                    // Counted on every poll: a pending read may have let
                    // the buffer go.
                    self.count_read_buffer(buf.capacity_bytes());
                    read
                });
                Wake::Read(read.await)
            };
            let stop = async {
                self.net.shutdown.wait().await;
                Wake::Shutdown
            };
            let idle = async {
                self.idle_timer().await;
                Wake::Idle
            };
            match or(read, or(stop, idle)).await {
                Wake::Read(result) => return result.map_err(ReadEnd::Io),
                Wake::Shutdown => return Err(ReadEnd::Shutdown),
                Wake::Idle if self.is_idle() => return Err(ReadEnd::Idle),
                // Served requests count as activity: restart the clock.
                Wake::Idle if self.responses_pending.get() > 0 => self.touch(),
                Wake::Idle => {}
            }
        }
    }

    fn count_read_buffer(&self, held_bytes: usize) {
        let old_bytes = self.read_buffer_bytes.replace(held_bytes);
        if old_bytes != held_bytes {
            self.net.metrics.read_buffer_resized(old_bytes, held_bytes);
        }
    }

    /// Completes when the connection may have become idle.
    async fn idle_timer(&self) {
        match self.config().connections_max_idle_ms {
            0 => pending::<()>().await,
            idle_ms => {
                let deadline = self.last_activity.get() + Duration::from_millis(idle_ms);
                Timer::new(deadline.saturating_duration_since(Instant::now())).await;
            }
        }
    }

    fn is_idle(&self) -> bool {
        let idle = Duration::from_millis(self.config().connections_max_idle_ms);
        self.responses_pending.get() == 0 && self.last_activity.get().elapsed() >= idle
    }

    fn touch(&self) {
        self.last_activity.set(Instant::now());
    }

    /// Parses the header and starts serving the request, or answers or
    /// refuses it when the header does not parse.
    fn dispatch(
        &self,
        frame: Bytes,
        admission: Admission,
        done: Option<Rc<Latch>>,
        slots: &LocalSender<Slot>,
    ) -> Result<(), ReadEnd> {
        let frame_bytes = frame.len();
        let slot = match RequestHeader::parse(&frame, &self.net.table) {
            Ok((header, body)) => self.start_request(header, body, frame_bytes, admission, done),
            Err(error) => {
                // Answered (or refused) at once: nothing to wait for.
                if let Some(done) = done {
                    done.trigger();
                }
                self.refused_header(error, admission)?
            }
        };
        self.responses_pending.set(self.responses_pending.get() + 1);
        slots.try_send(slot).map_err(|_| ReadEnd::WriterGone)
    }

    fn start_request(
        &self,
        header: RequestHeader,
        body: Bytes,
        frame_bytes: usize,
        admission: Admission,
        done: Option<Rc<Latch>>,
    ) -> Slot {
        let prefix = RequestPrefix {
            api_key: header.api_key as i16,
            api_version: header.api_version,
            correlation_id: header.correlation_id,
        };
        self.net.metrics.request(prefix.api_key);
        let entry = self.net.table.lookup(prefix.api_key, prefix.api_version);
        let Ok(entry) = entry else {
            // The header parsed against this very table, so the entry exists.
            if let Some(done) = done {
                done.trigger();
            }
            let lost = SlotState::Done(None);
            return Slot {
                prefix,
                state: lost,
            };
        };
        let request = Request {
            response_header_version: entry.response_header_version(header.api_version),
            header,
            body,
            frame_bytes,
            session: Rc::clone(&self.session),
        };
        let service = Rc::clone(&self.net.service);
        let task = self.net.requests.spawn(async move {
            let response = service.call(request).await;
            if let Some(done) = done {
                done.trigger();
            }
            Completed {
                response,
                admission,
            }
        });
        let state = match task {
            Ok(task) => SlotState::Running(task.detach()),
            Err(_) => SlotState::Done(None),
        };
        Slot { prefix, state }
    }

    /// An ApiVersions request of a version not served gets its answer (the
    /// client retries with a version both sides know); every other refused
    /// header ends the connection.
    fn refused_header(&self, error: HeaderError, admission: Admission) -> Result<Slot, ReadEnd> {
        let (prefix, version) = match &error {
            HeaderError::Unsupported {
                prefix,
                source:
                    ApiLookupError::UnsupportedVersion {
                        api_key: ApiKey::ApiVersions,
                        version,
                        ..
                    },
            } => (*prefix, *version),
            _ => return Err(ReadEnd::Header(error)),
        };
        self.net.metrics.request(prefix.api_key);
        let response = match api_versions::encode_unsupported_version(
            &self.net.table,
            prefix.correlation_id,
            version,
        ) {
            Ok(reply) => Response::Reply(reply),
            Err(error) => Response::Close(HandlerError::Encode(error)),
        };
        let completed = Completed {
            response,
            admission,
        };
        Ok(Slot {
            prefix,
            state: SlotState::Done(Some(completed)),
        })
    }

    // ---- writer ----------------------------------------------------------

    async fn write_loop(&self, slots: LocalReceiver<Slot>) -> WriteEnd {
        let mut out = BytesMut::new();
        match self.write_slots(&slots, &mut out).await {
            Ok(()) => WriteEnd::Drained,
            Err(end) => end,
        }
    }

    /// Writes responses in slot order until the reader has stopped and
    /// every slot is written (`Ok`) or the connection must close (`Err`).
    async fn write_slots(
        &self,
        slots: &LocalReceiver<Slot>,
        out: &mut BytesMut,
    ) -> Result<(), WriteEnd> {
        // Budgets of responses staged in `out`, returned once it is written.
        let mut staged: Vec<Admission> = Vec::new();
        let mut next: Option<Slot> = None;
        loop {
            let slot = match next.take() {
                Some(slot) => slot,
                None => match slots.recv().await {
                    Some(slot) => slot,
                    None => return Ok(()),
                },
            };
            let prefix = slot.prefix;
            let completed = slot.finish().await;
            self.responses_pending.set(self.responses_pending.get() - 1);
            let Some(Completed {
                response,
                admission,
            }) = completed
            else {
                self.flush(out).await?;
                return Err(WriteEnd::TaskLost { prefix });
            };
            staged.push(admission);
            match response {
                Response::Reply(reply) => self.stage_reply(out, prefix, &reply).await?,
                Response::Chunks(reply) => self.stage_chunks(out, prefix, &reply).await?,
                Response::NoReply => {}
                Response::Close(reason) => {
                    self.flush(out).await?;
                    return Err(WriteEnd::Closed { prefix, reason });
                }
                Response::ReplyThenClose(reply, reason) => {
                    self.stage_reply(out, prefix, &reply).await?;
                    self.flush(out).await?;
                    self.delay_close().await;
                    return Err(WriteEnd::Closed { prefix, reason });
                }
            }
            if out.len() < WRITE_COALESCE_BYTES_MAX {
                match poll_once(slots.recv()).await {
                    Some(Some(mut ready)) => {
                        let is_ready = ready.try_finish().await;
                        next = Some(ready);
                        if is_ready {
                            continue;
                        }
                    }
                    Some(None) => {
                        self.flush(out).await?;
                        return Ok(());
                    }
                    None => {}
                }
            }
            self.flush(out).await?;
            staged.clear();
        }
    }

    /// Appends a response behind its size prefix, writing out large bodies
    /// directly instead of copying them.
    async fn stage_reply(
        &self,
        out: &mut BytesMut,
        prefix: RequestPrefix,
        reply: &Bytes,
    ) -> Result<(), WriteEnd> {
        let size =
            frame_prefix(reply.len()).map_err(|error| WriteEnd::Oversized { prefix, error })?;
        out.extend_from_slice(&size);
        if reply.len() <= WRITE_COALESCE_BYTES_MAX {
            out.extend_from_slice(reply);
            return Ok(());
        }
        self.flush(out).await?;
        self.write_all(reply).await
    }

    /// Appends a chunked response behind its size prefix: small bytes are
    /// staged, file regions (after what is staged) go out with `sendfile`.
    async fn stage_chunks(
        &self,
        out: &mut BytesMut,
        prefix: RequestPrefix,
        reply: &ChunkedReply,
    ) -> Result<(), WriteEnd> {
        let size = usize::try_from(reply.size_bytes()).unwrap_or(usize::MAX);
        let size = frame_prefix(size).map_err(|error| WriteEnd::Oversized { prefix, error })?;
        out.extend_from_slice(&size);
        for chunk in reply.chunks() {
            match chunk {
                Chunk::Bytes(bytes) if bytes.len() <= WRITE_COALESCE_BYTES_MAX => {
                    out.extend_from_slice(bytes);
                }
                Chunk::Bytes(bytes) => {
                    self.flush(out).await?;
                    self.write_all(bytes).await?;
                }
                Chunk::File(region) if self.zero_copy => {
                    self.flush(out).await?;
                    self.send_region(region).await?;
                }
                Chunk::File(region) => {
                    let bytes = region.read_all().map_err(WriteEnd::Io)?;
                    self.flush(out).await?;
                    self.write_all(&bytes).await?;
                }
            }
        }
        Ok(())
    }

    /// Sends `region` with `sendfile`, waiting for room without blocking
    /// the shard (see [`crate::zero_copy`]).
    async fn send_region(&self, region: &FileRegion) -> Result<(), WriteEnd> {
        // Zero copy is only on for a plain stream.
        let Some(socket) = self.stream.borrow().plain_socket().map(AsRawFd::as_raw_fd) else {
            let bytes = region.read_all().map_err(WriteEnd::Io)?;
            return self.write_all(&bytes).await;
        };
        let mut sent_bytes = 0u64;
        while sent_bytes < region.len {
            match zero_copy::sendfile_once(socket, region, sent_bytes) {
                SendStep::Sent(0) => {
                    return Err(WriteEnd::Io(io::ErrorKind::UnexpectedEof.into()));
                }
                SendStep::Sent(sent) => {
                    sent_bytes += sent;
                    self.net.metrics.bytes_out(sent as usize);
                    self.touch();
                    glommio::yield_if_needed().await;
                }
                SendStep::WouldBlock => {
                    sent_bytes += self.write_when_writable(region, sent_bytes).await?
                }
                SendStep::Unsupported => {
                    let rest = region.slice(sent_bytes, region.len);
                    let bytes = rest.read_all().map_err(WriteEnd::Io)?;
                    return self.write_all(&bytes).await;
                }
                SendStep::Failed(error) => return Err(WriteEnd::Io(error)),
            }
        }
        Ok(())
    }

    /// Writes the next bytes of `region` through glommio, whose write
    /// waits for the socket to become writable; returns how many it sent.
    async fn write_when_writable(
        &self,
        region: &FileRegion,
        skip_bytes: u64,
    ) -> Result<u64, WriteEnd> {
        let rest_bytes = region.len - skip_bytes;
        let len = usize::try_from(rest_bytes)
            .map_or(WRITABLE_WAIT_BYTES, |rest| rest.min(WRITABLE_WAIT_BYTES));
        let mut piece = vec![0u8; len];
        region
            .read_exact_at(skip_bytes, &mut piece)
            .map_err(WriteEnd::Io)?;
        let written = poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, &piece))
            .await
            .map_err(WriteEnd::Io)?;
        if written == 0 {
            return Err(WriteEnd::Io(io::ErrorKind::WriteZero.into()));
        }
        self.net.metrics.bytes_out(written);
        self.touch();
        Ok(written as u64)
    }

    /// Kafka's delayed close after a failed authentication (KIP-306): the
    /// answer is out, the socket stays open for the listener's delay (or
    /// until shutdown), so a client guessing passwords cannot go faster.
    async fn delay_close(&self) {
        let delay = self.session.sasl().map(|sasl| sasl.failure_delay());
        if let Some(delay) = delay.filter(|d| !d.is_zero()) {
            let stop = self.net.shutdown.wait();
            let wait = async {
                Timer::new(delay).await;
            };
            or(wait, stop).await;
        }
    }

    async fn flush(&self, out: &mut BytesMut) -> Result<(), WriteEnd> {
        if out.is_empty() {
            return Ok(());
        }
        self.write_all(out).await?;
        out.clear();
        Ok(())
    }

    async fn write_all(&self, mut bytes: &[u8]) -> Result<(), WriteEnd> {
        while !bytes.is_empty() {
            let written =
                poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_write(cx, bytes))
                    .await
                    .map_err(WriteEnd::Io)?;
            if written == 0 {
                return Err(WriteEnd::Io(io::ErrorKind::WriteZero.into()));
            }
            bytes = &bytes[written..];
            self.net.metrics.bytes_out(written);
            self.touch();
        }
        // A TLS stream may hold encrypted bytes back; a plain one holds none.
        poll_fn(|cx| Pin::new(&mut *self.stream.borrow_mut()).poll_flush(cx))
            .await
            .map_err(WriteEnd::Io)
    }

    // ---- end -------------------------------------------------------------

    /// Logs and counts why the connection ended.
    fn record_end(&self, read_end: Option<ReadEnd>, write_end: WriteEnd) {
        if let Some(read_end) = read_end {
            self.record_read_end(read_end);
        }
        self.record_write_end(write_end);
    }

    fn record_read_end(&self, end: ReadEnd) {
        let peer = self.peer;
        let metrics = &self.net.metrics;
        match end {
            ReadEnd::Eof { buffered_bytes: 0 } => debug!(%peer, "peer closed the connection"),
            ReadEnd::Eof { buffered_bytes } => {
                debug!(%peer, buffered_bytes, "peer closed the connection inside a frame");
            }
            ReadEnd::Idle => {
                metrics.connection_idle_closed();
                debug!(%peer, "closing idle connection");
            }
            ReadEnd::Shutdown => debug!(%peer, "closing connection for shutdown"),
            ReadEnd::Io(error) => debug!(%peer, %error, "read failed"),
            ReadEnd::WriterGone => {}
            ReadEnd::Frame(error) => {
                metrics.frame_error();
                warn!(%peer, %error, "closing connection: bad frame size");
            }
            ReadEnd::Header(error) => {
                metrics.header_error();
                match error.prefix() {
                    Some(prefix) => warn!(
                        %peer,
                        api_key = prefix.api_key,
                        api_version = prefix.api_version,
                        correlation_id = prefix.correlation_id,
                        %error,
                        "closing connection: refused request header"
                    ),
                    None => warn!(%peer, %error, "closing connection: truncated request header"),
                }
            }
        }
    }

    fn record_write_end(&self, end: WriteEnd) {
        let peer = self.peer;
        let (prefix, error): (RequestPrefix, &dyn std::fmt::Display) = match &end {
            WriteEnd::Drained
            | WriteEnd::PeerGone {
                responses_dropped: 0,
            } => return,
            WriteEnd::PeerGone { responses_dropped } => {
                debug!(%peer, responses_dropped, "peer left before its answers");
                return;
            }
            WriteEnd::Io(error) => {
                debug!(%peer, %error, "write failed");
                return;
            }
            WriteEnd::Closed {
                reason: HandlerError::SaslFailed { message },
                ..
            } => {
                // A refused login is the client's mistake, not a protocol
                // error: Kafka logs it at INFO and counts it apart.
                self.net.metrics.sasl_authentication_failed();
                info!(%peer, %message, "closing connection: failed authentication");
                return;
            }
            WriteEnd::Closed { prefix, reason } => {
                self.net.metrics.handler_error();
                (*prefix, reason)
            }
            WriteEnd::TaskLost { prefix } => (*prefix, &"request task ended without a response"),
            WriteEnd::Oversized { prefix, error } => (*prefix, error),
        };
        warn!(
            %peer,
            api_key = prefix.api_key,
            api_version = prefix.api_version,
            correlation_id = prefix.correlation_id,
            %error,
            "closing connection"
        );
    }
}

/// Semaphore units for a frame, capped at the semaphore's capacity so that a
/// frame larger than the budget waits for all of it instead of forever.
fn units(frame_bytes: usize, capacity_bytes: usize) -> u64 {
    frame_bytes.min(capacity_bytes.max(1)) as u64
}
