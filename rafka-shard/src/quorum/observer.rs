//! Broker-only nodes (`process.roles=broker`): observers of the metadata
//! quorum, as KRaft's brokers are. An observer is no voter; it follows the
//! committed log from the voters and forwards its own proposals to them.
//!
//! KRaft's observers fetch the metadata log with the Fetch API; here the
//! log's entries are raft-rs entries, so the quorum's own framing carries
//! them, on the controller listener, in a connection that opens with its
//! own hello (`RAFKAOBS`, a `u32` version, the observer's node id):
//!
//! ```text
//! request   u32 length, then
//!   FETCH    u8 1, u64 from_index, u32 max_wait_ms, u32 max_bytes
//!   PROPOSE  u8 2, the entry payload (`payload`: proposer id + records)
//! response  u32 length, then
//!   ENTRIES  u8 1, quorum, u32 count,
//!            each: u64 index, u32 length, data (empty: no records)
//!   SNAPSHOT u8 2, quorum, u64 index, data
//!   PROPOSED u8 3, u8 accepted
//! quorum    u64 leader, u64 term, u64 commit, u32 voters,
//!           each: u64 raft id, u16 length, controller listener address
//! ```
//!
//! The voters come with every answer, so a broker given only
//! `controller.quorum.bootstrap.servers` learns them (ids and addresses)
//! from the first voter that answers and follows the leader from then on.
//!
//! Only committed entries are served, so an observer may fetch from any
//! voter: committed entries are the same everywhere. It prefers the leader
//! (the freshest commit). A FETCH with nothing new waits up to
//! `max_wait_ms` for the commit to move (a long poll). A fetch below the
//! voter's first entry (compacted away) gets the voter's snapshot.
//!
//! A forwarded proposal enters the voter's raft node like its own (raft-rs
//! hands a follower's proposal to the leader). The observer keeps its
//! proposals until it applies them and sends them again when the leader
//! changes or after a while; the image's proposal window applies each one
//! once however many copies reach the log.
//!
//! Lives on: the controller's shard (shard 0) of every node.

use std::cell::RefCell;
use std::path::Path;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{LocalReceiver, LocalSender};
use glommio::net::TcpStream;
use rafka_core::io::{IoError, Storage, StorageFile};
use raft::prelude::{Entry, EntryType};

use super::driver::{node_id_of, Apply, Event, Quorum, Shared};
use super::payload;
use super::transport::Closed;
use crate::runtime::within;

pub(crate) const MAGIC: &[u8; 8] = b"RAFKAOBS";
const VERSION: u32 = 1;
pub(crate) const HELLO_BYTES: usize = 16;
/// Largest request a voter reads (a proposal of many records fits).
const REQUEST_BYTES_MAX: u32 = 64 * 1024 * 1024;
/// Largest response an observer reads (a large image's snapshot fits).
const RESPONSE_BYTES_MAX: u32 = super::transport::FRAME_BYTES_MAX;
/// Entry bytes a FETCH answer carries at most (at least one entry).
const FETCH_BYTES: u32 = 1024 * 1024;
/// How long a FETCH waits for the commit to move.
const FETCH_WAIT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A voter that does not answer in this long is given up for another.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_BACKOFF: Duration = Duration::from_millis(200);
/// How often proposals not applied yet are sent again.
const RESEND_EVERY: Duration = Duration::from_secs(2);

const FETCH: u8 = 1;
const PROPOSE: u8 = 2;
const ENTRIES: u8 = 1;
const SNAPSHOT: u8 = 2;
const PROPOSED: u8 = 3;

/// What a voter answers a FETCH with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// Committed entries from the index asked (maybe none): (index, data).
    Entries(Vec<(u64, Vec<u8>)>),
    /// The entries asked were compacted away: the snapshot instead.
    Snapshot { index: u64, data: Vec<u8> },
}

/// The quorum as a voter sees it, sent with every FETCH answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LeaderInfo {
    /// Raft id of the leader (0: none known).
    pub leader: u64,
    pub term: u64,
    pub commit: u64,
    /// Every voter: raft id, controller listener address.
    pub voters: Vec<(u64, String)>,
}

fn put_info(out: &mut Vec<u8>, info: &LeaderInfo) {
    put_u64(out, info.leader);
    put_u64(out, info.term);
    put_u64(out, info.commit);
    put_u32(out, u32::try_from(info.voters.len()).unwrap_or(u32::MAX));
    for (id, address) in &info.voters {
        put_u64(out, *id);
        let bytes = &address.as_bytes()[..address.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    }
}

fn get_info(r: &mut Reader<'_>) -> Option<LeaderInfo> {
    let leader = r.u64()?;
    let term = r.u64()?;
    let commit = r.u64()?;
    let count = r.u32()?;
    let mut voters = Vec::new();
    for _ in 0..count {
        let id = r.u64()?;
        let len = u16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes"));
        let address = std::str::from_utf8(r.take(usize::from(len))?).ok()?;
        voters.push((id, address.to_string()));
    }
    Some(LeaderInfo {
        leader,
        term,
        commit,
        voters,
    })
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Reads big-endian fields off a frame; `None` past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn rest(self) -> &'a [u8] {
        self.0
    }
}

fn encode_answer(info: &LeaderInfo, fetched: &Fetched) -> Vec<u8> {
    let mut out = vec![0; 4];
    match fetched {
        Fetched::Entries(entries) => {
            out.push(ENTRIES);
            put_info(&mut out, info);
            put_u32(&mut out, u32::try_from(entries.len()).unwrap_or(u32::MAX));
            for (index, data) in entries {
                put_u64(&mut out, *index);
                put_u32(&mut out, u32::try_from(data.len()).unwrap_or(u32::MAX));
                out.extend_from_slice(data);
            }
        }
        Fetched::Snapshot { index, data } => {
            out.push(SNAPSHOT);
            put_info(&mut out, info);
            put_u64(&mut out, *index);
            out.extend_from_slice(data);
        }
    }
    close_frame(out)
}

/// Fills in the length prefix `out` was started with.
fn close_frame(mut out: Vec<u8>) -> Vec<u8> {
    let len = u32::try_from(out.len() - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

fn decode_answer(body: &[u8]) -> Option<(LeaderInfo, Fetched)> {
    let mut r = Reader(body);
    let kind = r.u8()?;
    let info = get_info(&mut r)?;
    let fetched = match kind {
        ENTRIES => {
            let count = r.u32()?;
            let mut entries = Vec::new();
            for _ in 0..count {
                let index = r.u64()?;
                let len = r.u32()? as usize;
                entries.push((index, r.take(len)?.to_vec()));
            }
            if !r.rest().is_empty() {
                return None;
            }
            Fetched::Entries(entries)
        }
        SNAPSHOT => {
            let index = r.u64()?;
            Fetched::Snapshot {
                index,
                data: r.rest().to_vec(),
            }
        }
        _ => return None,
    };
    Some((info, fetched))
}

async fn read_frame(stream: &mut TcpStream, max: u32, body: &mut Vec<u8>) -> Result<(), String> {
    let mut len = [0u8; 4];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| e.to_string())?;
    let len = u32::from_be_bytes(len);
    if len > max {
        return Err(format!("a frame of {len} bytes (at most {max})"));
    }
    body.resize(len as usize, 0);
    stream.read_exact(body).await.map_err(|e| e.to_string())
}

/// A voter's side of one observer's connection (its hello already read):
/// answers FETCH and PROPOSE until the observer goes away.
pub(crate) async fn serve(
    mut stream: TcpStream,
    observer: i32,
    quorum: Weak<Quorum>,
) -> Result<(), String> {
    let mut body = Vec::new();
    loop {
        if read_frame(&mut stream, REQUEST_BYTES_MAX, &mut body)
            .await
            .is_err()
        {
            return Ok(());
        }
        let mut r = Reader(&body);
        let answer = match r.u8() {
            Some(FETCH) => {
                let (Some(from), Some(wait_ms), Some(max_bytes)) = (r.u64(), r.u32(), r.u32())
                else {
                    return Err("a truncated FETCH".into());
                };
                let wait = Duration::from_millis(u64::from(wait_ms)).min(ANSWER_TIMEOUT / 2);
                let max_bytes = max_bytes.min(FETCH_BYTES);
                let quorum = quorum.upgrade().ok_or("the quorum stopped")?;
                let (info, fetched) = quorum.serve_fetch(from.max(1), wait, max_bytes).await;
                encode_answer(&info, &fetched)
            }
            Some(PROPOSE) => {
                let data = r.rest();
                // Only the observer's own proposals: an entry's proposer
                // id decides who is answered, so none may pose as another.
                let accepted = payload::decode(data).is_ok_and(|p| p.id.node_id == observer)
                    && quorum
                        .upgrade()
                        .is_some_and(|q| q.forward_proposal(data.to_vec()));
                close_frame(vec![0, 0, 0, 0, PROPOSED, u8::from(accepted)])
            }
            _ => return Err("an unknown observer request".into()),
        };
        within(ANSWER_TIMEOUT, stream.write_all(&answer))
            .await
            .ok_or("writing to the observer timed out")?
            .map_err(|e| e.to_string())?;
    }
}

/// One observer connection to a voter.
struct Link {
    voter: u64,
    stream: TcpStream,
    body: Vec<u8>,
}

impl Link {
    async fn open(me: i32, voter: u64, address: &str) -> Option<Link> {
        let mut stream = match within(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Some(Ok(stream)) => stream,
            Some(Err(error)) => {
                tracing::debug!(voter, address, %error, "observer connect");
                return None;
            }
            None => return None,
        };
        let _ = stream.set_nodelay(true);
        let mut hello = Vec::with_capacity(HELLO_BYTES);
        hello.extend_from_slice(MAGIC);
        hello.extend_from_slice(&VERSION.to_be_bytes());
        hello.extend_from_slice(&me.to_be_bytes());
        within(CONNECT_TIMEOUT, stream.write_all(&hello))
            .await?
            .ok()?;
        Some(Link {
            voter,
            stream,
            body: Vec::new(),
        })
    }

    async fn call(&mut self, request: &[u8], wait: Duration) -> Result<&[u8], String> {
        let exchange = async {
            self.stream
                .write_all(request)
                .await
                .map_err(|e| e.to_string())?;
            read_frame(&mut self.stream, RESPONSE_BYTES_MAX, &mut self.body).await
        };
        within(wait + ANSWER_TIMEOUT, exchange)
            .await
            .ok_or_else(|| "the voter did not answer".to_string())??;
        Ok(&self.body)
    }
}

/// The observer's side: follows the committed log into the applier and
/// forwards this node's proposals, until the quorum closes.
pub(crate) struct Follower {
    pub me: i32,
    /// Where to look for voters before any told their set.
    pub bootstrap: Vec<String>,
    pub shared: Rc<RefCell<Shared>>,
    pub apply: LocalSender<Apply>,
    pub leader_changed: Rc<event_listener::Event>,
    pub closed: Rc<Closed>,
    /// Saves the image (an index and its snapshot) on this node.
    pub save: SaveImage,
}

/// Saves an image snapshot as of an index.
pub(crate) type SaveImage =
    Rc<dyn Fn(u64, Vec<u8>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>>;

/// Where a broker-only node keeps its image, in the quorum's directory.
const IMAGE_FILE: &str = "observer-image.snapshot";

/// Saves `data` (the image's snapshot as of `index`) for the next start:
/// a temporary file, synced, renamed over the last one, the directory
/// synced. The file is the index (u64) and the snapshot (its own CRCs).
pub(crate) async fn save_image<S: Storage>(
    storage: &S,
    dir: &Path,
    index: u64,
    data: &[u8],
) -> Result<(), IoError> {
    storage.create_dir_all(dir).await?;
    let tmp = dir.join(format!("{IMAGE_FILE}.tmp"));
    if storage.exists(&tmp).await? {
        storage.remove_file(&tmp).await?;
    }
    let file = storage.open(&tmp).await?;
    let mut bytes = Vec::with_capacity(8 + data.len());
    bytes.extend_from_slice(&index.to_be_bytes());
    bytes.extend_from_slice(data);
    file.write_at(0, &bytes).await?;
    file.sync_data().await?;
    file.close().await?;
    storage.rename(&tmp, &dir.join(IMAGE_FILE)).await?;
    storage.sync_dir(dir).await
}

/// The saved image: its index and snapshot bytes (checked when decoded),
/// if one was saved.
pub(crate) async fn load_image<S: Storage>(
    storage: &S,
    dir: &Path,
) -> Result<Option<(u64, Vec<u8>)>, IoError> {
    let path = dir.join(IMAGE_FILE);
    if !storage.exists(&path).await? {
        return Ok(None);
    }
    let file = storage.open_existing(&path).await?;
    let size = file.size().await?;
    let bytes = file
        .read_at(0, usize::try_from(size).unwrap_or(usize::MAX))
        .await?;
    file.close().await?;
    if bytes.len() < 8 {
        return Ok(None);
    }
    let index = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    Ok(Some((index, bytes[8..].to_vec())))
}

impl Follower {
    /// Starts the fetch loop and the proposal forwarder.
    pub(crate) fn start(self, events: LocalReceiver<Event>, next_index: u64) {
        let this = Rc::new(self);
        let fetching = Rc::clone(&this);
        glommio::spawn_local(async move {
            let closed = Rc::clone(&fetching.closed);
            closed.or_closed(fetching.fetch_loop(next_index)).await
        })
        .detach();
        glommio::spawn_local(async move {
            let closed = Rc::clone(&this.closed);
            closed.or_closed(this.forward_loop(events)).await
        })
        .detach();
    }

    fn leader(&self) -> u64 {
        self.shared.borrow().status.leader_id
    }

    fn address_of(&self, voter: u64) -> Option<String> {
        if voter == 0 {
            return None;
        }
        self.shared
            .borrow()
            .voters
            .iter()
            .find(|(id, _)| *id == voter)
            .map(|(_, address)| address.clone())
    }

    /// The voter to try next: the leader when known, else the voters in
    /// turn (the bootstrap servers, id unknown, before any voter
    /// answered).
    fn next_voter(&self, turn: &mut usize) -> (u64, String) {
        let leader = self.leader();
        if let Some(address) = self.address_of(leader) {
            return (leader, address);
        }
        let mut candidates = self.shared.borrow().voters.clone();
        if candidates.is_empty() {
            candidates = self.bootstrap.iter().map(|a| (0, a.clone())).collect();
        }
        *turn = (*turn + 1) % candidates.len().max(1);
        candidates.get(*turn).cloned().unwrap_or_default()
    }

    async fn fetch_loop(self: Rc<Self>, mut next: u64) {
        let mut turn = 0;
        loop {
            let (voter, address) = self.next_voter(&mut turn);
            let Some(mut link) = Link::open(self.me, voter, &address).await else {
                self.forget_leader(voter);
                glommio::timer::sleep(RETRY_BACKOFF).await;
                continue;
            };
            loop {
                match self.fetch_once(&mut link, next).await {
                    Ok(Some(advanced)) => next = advanced,
                    Ok(None) => break,
                    Err(error) => {
                        tracing::debug!(voter = link.voter, %error, "metadata fetch");
                        self.forget_leader(voter);
                        glommio::timer::sleep(RETRY_BACKOFF).await;
                        break;
                    }
                }
            }
        }
    }

    /// One FETCH from `next`; the next index to fetch, or `None` when the
    /// leader is another voter than this link's (go to it).
    async fn fetch_once(&self, link: &mut Link, next: u64) -> Result<Option<u64>, String> {
        let mut request = vec![0; 4];
        request.push(FETCH);
        put_u64(&mut request, next);
        put_u32(&mut request, FETCH_WAIT.as_millis() as u32);
        put_u32(&mut request, FETCH_BYTES);
        let request = close_frame(request);
        let body = link.call(&request, FETCH_WAIT).await?;
        let (info, fetched) = decode_answer(body).ok_or("an undecodable FETCH answer")?;
        let next = match fetched {
            Fetched::Entries(entries) => {
                let mut expected = next;
                let mut batch = Vec::with_capacity(entries.len());
                for (index, data) in entries {
                    if index != expected {
                        return Err(format!("entry {index} where {expected} was due"));
                    }
                    expected += 1;
                    batch.push(Entry {
                        index,
                        entry_type: EntryType::EntryNormal,
                        data: data.into(),
                        ..Default::default()
                    });
                }
                if !batch.is_empty() && self.apply.try_send(Apply::Entries(batch)).is_err() {
                    return Err("the applier stopped".into());
                }
                expected
            }
            Fetched::Snapshot { index, data } => {
                if index < next {
                    return Err(format!("a snapshot at {index} below {next}"));
                }
                if self
                    .apply
                    .try_send(Apply::Snapshot { index, data })
                    .is_err()
                {
                    return Err("the applier stopped".into());
                }
                index + 1
            }
        };
        let leader = info.leader;
        self.learn(info);
        if leader != 0 && leader != link.voter && self.address_of(leader).is_some() {
            return Ok(None);
        }
        Ok(Some(next))
    }

    /// Takes a voter's view of the quorum as this node's.
    fn learn(&self, info: LeaderInfo) {
        let mut shared = self.shared.borrow_mut();
        if !info.voters.is_empty() && shared.voters != info.voters {
            tracing::info!(voters = ?info.voters, "metadata quorum voters (observed)");
            shared.voters = info.voters;
        }
        let status = &mut shared.status;
        status.term = status.term.max(info.term);
        status.commit_index = status.commit_index.max(info.commit);
        status.last_index = status.commit_index;
        if info.leader != 0 && status.leader_id != info.leader {
            status.leader_id = info.leader;
            tracing::info!(
                leader = node_id_of(info.leader),
                term = info.term,
                "metadata quorum leader (observed)"
            );
            drop(shared);
            self.leader_changed.notify(usize::MAX);
        }
    }

    /// `voter` failed: if it was taken for the leader, no leader is known.
    fn forget_leader(&self, voter: u64) {
        let mut shared = self.shared.borrow_mut();
        if shared.status.leader_id == voter {
            shared.status.leader_id = 0;
            drop(shared);
            self.leader_changed.notify(usize::MAX);
        }
    }

    /// Sends this node's proposals to a voter: each when made, and every
    /// one not applied yet again after a leader change or a while.
    async fn forward_loop(self: Rc<Self>, events: LocalReceiver<Event>) {
        let mut link: Option<Link> = None;
        let mut turn = 0;
        let mut sent_to_leader = 0;
        let mut last_resend = Instant::now();
        loop {
            let event = within(RESEND_EVERY / 4, events.recv()).await;
            let mut pending: Vec<Rc<Vec<u8>>> = Vec::new();
            match event {
                Some(None) => return,
                Some(Some(Event::Propose { data, .. })) => pending.push(data),
                Some(Some(Event::Compact { index, data })) => (self.save)(index, data).await,
                Some(Some(_)) => {}
                None => {}
            }
            let leader = self.leader();
            if (leader != 0 && leader != sent_to_leader) || last_resend.elapsed() >= RESEND_EVERY {
                pending = self.unapplied();
                sent_to_leader = leader;
                last_resend = Instant::now();
            }
            for data in pending {
                let mut request = vec![0; 4];
                request.push(PROPOSE);
                request.extend_from_slice(&data);
                let request = close_frame(request);
                // A few tries; whatever is still pending goes again later.
                for _ in 0..3 {
                    if link.as_ref().is_none_or(|l| l.voter != self.leader()) {
                        let (voter, address) = self.next_voter(&mut turn);
                        link = Link::open(self.me, voter, &address).await;
                    }
                    let Some(current) = link.as_mut() else {
                        glommio::timer::sleep(RETRY_BACKOFF).await;
                        continue;
                    };
                    match current.call(&request, Duration::ZERO).await {
                        Ok(body) if body == [PROPOSED, 1] => break,
                        Ok(_) => {
                            glommio::timer::sleep(RETRY_BACKOFF).await;
                        }
                        Err(error) => {
                            tracing::debug!(voter = current.voter, %error, "forwarding a proposal");
                            link = None;
                        }
                    }
                }
            }
        }
    }

    /// This node's proposals not applied yet, oldest first.
    fn unapplied(&self) -> Vec<Rc<Vec<u8>>> {
        let shared = self.shared.borrow();
        let mut pending: Vec<(u64, Rc<Vec<u8>>)> = shared
            .waiters
            .iter()
            .map(|(id, (_, data))| (id.sequence, Rc::clone(data)))
            .collect();
        pending.sort_by_key(|(sequence, _)| *sequence);
        pending.into_iter().map(|(_, data)| data).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_round_trip() {
        let info = LeaderInfo {
            leader: 2,
            term: 7,
            commit: 42,
            voters: vec![(2, "127.0.0.1:9190".into()), (3, "[::1]:9191".into())],
        };
        let entries = Fetched::Entries(vec![(40, b"abc".to_vec()), (41, Vec::new())]);
        let frame = encode_answer(&info, &entries);
        assert_eq!(
            u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        assert_eq!(decode_answer(&frame[4..]), Some((info.clone(), entries)));
        let snapshot = Fetched::Snapshot {
            index: 30,
            data: vec![9; 100],
        };
        let frame = encode_answer(&info, &snapshot);
        assert_eq!(decode_answer(&frame[4..]), Some((info, snapshot)));
    }

    #[test]
    fn the_saved_image_is_replaced_whole_and_read_back() {
        use rafka_core::metadata::snapshot::encode_snapshot;
        use rafka_core::metadata::{MetadataRecord, RegisterBrokerRecord};
        let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(64 * 1024)
            .make()
            .expect("executor");
        executor.run(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = crate::storage::GlommioStorage::new();
            let dir = dir.path().join("quorum");
            assert_eq!(load_image(&storage, &dir).await.expect("load"), None);
            let broker = |epoch| {
                MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    node_id: 4,
                    epoch,
                    incarnation_id: uuid::Uuid::from_u128(7),
                    rack: None,
                    endpoints: Vec::new(),
                    fresh_data_dir: false,
                })
            };
            let first = encode_snapshot(1000, &[broker(1)]);
            save_image(&storage, &dir, 1000, &first)
                .await
                .expect("save");
            let second = encode_snapshot(2000, &[broker(2)]);
            save_image(&storage, &dir, 2000, &second)
                .await
                .expect("save");
            let (index, data) = load_image(&storage, &dir)
                .await
                .expect("load")
                .expect("an image");
            assert_eq!((index, &data), (2000, &second));
            let image = super::super::driver::image_from_snapshot(index, &data).expect("decodes");
            assert_eq!(image.broker(4).map(|b| b.epoch), Some(2));
            // Nothing of the temporary file stays.
            let names = storage.list_dir(&dir).await.expect("list");
            assert_eq!(names, vec![IMAGE_FILE.to_string()]);
            // A damaged image is refused, not half loaded.
            let mut damaged = second.clone();
            let last = damaged.len() - 1;
            damaged[last] ^= 0xff;
            save_image(&storage, &dir, 2000, &damaged)
                .await
                .expect("save");
            let (index, data) = load_image(&storage, &dir)
                .await
                .expect("load")
                .expect("image");
            assert!(super::super::driver::image_from_snapshot(index, &data).is_err());
        });
    }

    #[test]
    fn damaged_answers_are_refused() {
        let info = LeaderInfo {
            voters: vec![(1, "h:1".into())],
            ..LeaderInfo::default()
        };
        let frame = encode_answer(&info, &Fetched::Entries(vec![(1, b"abc".to_vec())]));
        let body = &frame[4..];
        for cut in 0..body.len() {
            assert_eq!(decode_answer(&body[..cut]), None, "cut at {cut}");
        }
        let mut longer = body.to_vec();
        longer.push(0);
        assert_eq!(decode_answer(&longer), None);
        let mut unknown = body.to_vec();
        unknown[0] = 9;
        assert_eq!(decode_answer(&unknown), None);
    }
}
