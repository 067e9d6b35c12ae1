//! The quorum's driver and applier, and [`Quorum`], the controller's handle
//! on them.
//!
//! The driver task owns the `RawNode` and does everything raft-rs asks of
//! the application, in raft-rs's order: send the leader's messages, install
//! a received snapshot, hand committed entries to the applier, persist new
//! entries and the hard state (one fdatasync), send the messages that had
//! to wait for it, advance. Its inputs are events on one local channel:
//! ticks (a timer task), messages from peers (the transport), proposals
//! (the controller), compactions (the applier) and link reports.
//!
//! The applier task applies committed entries in order to the image and
//! publishes each applied change to every shard (the shard layer's
//! [`Publisher`]) before the next, so shards see the log's order. It starts
//! only once the broker loaded its partitions ([`Quorum::start_applying`]);
//! until then committed entries wait in its queue. At open, the entries
//! already known committed on disk are applied before anything starts, so
//! the broker loads the image as of its last commit.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::TcpListener;
use rafka_core::config::BrokerConfig;
use rafka_core::io::Storage;
use rafka_core::metadata::placement::place_partitions;
use rafka_core::metadata::snapshot::{encode_snapshot, read_snapshot};
use rafka_core::metadata::{
    ApplyError, Committed, Controller, MetadataDelta, MetadataImage, MetadataRecord,
    PartitionPlacementRecord,
};
use raft::prelude::{Entry, EntryType, Message, Snapshot};
use raft::{GetEntriesContext, RawNode, SnapshotStatus, StateRole, Storage as _};

use super::observer::{Fetched, Follower, LeaderInfo};
use super::payload::{self, ProposalId};
use super::transport::{self, Closed, Transport};
use crate::controller::{PublishError, Publisher};
use crate::runtime::within;
use rafka_core::quorum::{QuorumLog, QuorumLogError, QuorumStorage};

/// How this node takes part in the quorum.
#[derive(Debug, Clone)]
pub struct QuorumSettings {
    pub node_id: u64,
    /// Every voter (this node too): id and `host:port` of its controller
    /// listener.
    pub voters: Vec<(u64, String)>,
    /// `controller.quorum.bootstrap.servers`: where a broker-only node
    /// without `controller.quorum.voters` finds the voters (it learns
    /// their ids and addresses from them).
    pub bootstrap: Vec<String>,
    /// Where this node's controller listener binds.
    pub listen: String,
    /// One raft-rs tick.
    pub tick: Duration,
    /// Ticks without a leader before a follower campaigns (raft-rs
    /// randomizes within [election, 2 x election)).
    pub election_ticks: usize,
    /// Ticks between the leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Applied entries between snapshots.
    pub snapshot_interval_entries: u64,
    /// How long a proposal may wait to be applied.
    pub proposal_timeout: Duration,
    /// This node's shard count: where it places the partitions it holds
    /// is its own decision (see [`place_locally`]).
    pub shards: u32,
    /// The cluster id brokers must register with.
    pub cluster_id: String,
    /// `broker.session.timeout.ms`: a broker not heard from for this long
    /// is fenced.
    pub session_timeout: Duration,
    /// The controller's decisions this node takes as the active
    /// controller outside admin operations: AlterPartition and leader
    /// elections (`partitions`). The same settings as its
    /// `ControllerShard`'s.
    pub controller: Controller,
}

impl QuorumSettings {
    /// Kafka-like timing from `controller.quorum.election.timeout.ms`: a
    /// 50 ms tick, heartbeats every 2 ticks.
    pub fn new(node_id: u64, voters: Vec<(u64, String)>, election_timeout: Duration) -> Self {
        let tick = Duration::from_millis(50);
        let listen = voters
            .iter()
            .find(|(id, _)| *id == node_id)
            .map(|(_, address)| address.clone())
            .unwrap_or_default();
        let election_ticks =
            usize::try_from(election_timeout.as_millis() / tick.as_millis()).unwrap_or(20);
        QuorumSettings {
            node_id,
            voters,
            listen,
            tick,
            election_ticks: election_ticks.max(4),
            heartbeat_ticks: 2,
            snapshot_interval_entries: 10_000,
            proposal_timeout: Duration::from_secs(10),
            shards: 1,
            cluster_id: String::new(),
            session_timeout: Duration::from_secs(9),
            bootstrap: Vec::new(),
            controller: {
                let mut controller = Controller::new(&BrokerConfig::default(), 1);
                controller.cluster = true;
                controller.node_id = node_id_of(node_id).unwrap_or(-1);
                controller
            },
        }
    }

    /// A broker-only node: it follows the quorum without a vote.
    pub fn is_observer(&self) -> bool {
        !self.voters.iter().any(|(id, _)| *id == self.node_id)
    }

    /// The settings `config` asks for: `None` without
    /// `controller.quorum.voters` (a single node on its own log). Raft ids
    /// are Kafka node ids + 1: raft-rs reserves 0 for "none", Kafka allows
    /// node 0.
    pub fn from_config(
        config: &rafka_core::config::BrokerConfig,
    ) -> Result<Option<Self>, QuorumError> {
        let quorum = &config.quorum;
        if quorum.voters.is_empty() {
            if !config.quorum_configured() {
                return Ok(None);
            }
            if config.process_roles.controller {
                return Err(QuorumError::Unsupported(
                    "a controller with controller.quorum.bootstrap.servers and no \
                     controller.quorum.voters (a dynamic quorum, KIP-853): set \
                     controller.quorum.voters",
                ));
            }
        }
        let voters = quorum
            .voters
            .iter()
            .map(|v| (raft_id(v.id), v.address().to_string()))
            .collect();
        let election = Duration::from_millis(quorum.election_timeout_ms.max(1) as u64);
        let mut settings = QuorumSettings::new(raft_id(config.node_id), voters, election);
        settings.proposal_timeout =
            Duration::from_millis(quorum.request_timeout_ms.max(1) as u64 * 5);
        settings.cluster_id = config.cluster_id.clone().unwrap_or_default();
        settings.bootstrap = quorum
            .bootstrap_servers
            .iter()
            .map(ToString::to_string)
            .collect();
        settings.session_timeout =
            Duration::from_millis(config.broker_session_timeout_ms.max(1) as u64);
        settings.controller = Controller::new(config, 1);
        Ok(Some(settings))
    }

    fn voter_ids(&self) -> Vec<u64> {
        self.voters.iter().map(|(id, _)| *id).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("quorum log: {0}")]
    Log(#[from] QuorumLogError),
    #[error("quorum log: {0}")]
    Raft(#[from] raft::Error),
    #[error("snapshot at index {index}: {message}")]
    Snapshot { index: u64, message: String },
    #[error("binding the controller listener {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: glommio::GlommioError<()>,
    },
    #[error("node {0} is not among controller.quorum.voters")]
    NotAVoter(u64),
    #[error("not supported yet: {0}")]
    Unsupported(&'static str),
}

/// Why a proposal was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// Committed, but its records no longer applied (a concurrent change
    /// won): skipped on every node.
    #[error("{0}")]
    Rejected(ApplyError),
    /// No leader to take it, or this node's quorum stopped.
    #[error("no active controller")]
    NoLeader,
    /// Not applied within the proposal timeout; it may still commit.
    #[error("the quorum did not commit within {0:?}")]
    TimedOut(Duration),
}

/// What a proposal became: the entry's index and its publish outcome.
type Outcome = Result<(u64, Result<(), PublishError>), ProposalError>;

/// The quorum as DescribeQuorum and Metadata see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: u64,
    /// 0: no known leader.
    pub leader_id: u64,
    pub term: u64,
    pub role: StateRole,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The last index in this node's log.
    pub last_index: u64,
    /// Per voter: (id, matched index); known on the leader only.
    pub progress: Vec<(u64, u64)>,
}

/// The quorum as Kafka's DescribeQuorum reports it, in Kafka node ids and
/// milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    /// -1: no known leader.
    pub leader_id: i32,
    pub leader_epoch: i32,
    /// The commit index (Kafka's high watermark of the metadata log).
    pub high_watermark: i64,
    pub voters: Vec<VoterView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoterView {
    pub node_id: i32,
    /// -1 where this node does not know it (a follower knows only its own).
    pub log_end_offset: i64,
    /// Milliseconds since this node last heard from the voter (0 for
    /// itself); `None` when unknown.
    pub last_heard_ms_ago: Option<u64>,
}

pub(crate) enum Event {
    Tick,
    Step(Box<Message>),
    Propose { id: ProposalId, data: Rc<Vec<u8>> },
    Compact { index: u64, data: Vec<u8> },
    Unreachable { to: u64, snapshot: bool },
    SnapshotSent { to: u64 },
}

pub(crate) enum Apply {
    Entries(Vec<Entry>),
    Snapshot { index: u64, data: Vec<u8> },
}

pub(crate) struct Shared {
    pub(crate) status: QuorumStatus,
    image: Arc<MetadataImage>,
    /// Proposals of this node not applied yet: their waiter and data (to
    /// propose again when the leader changes).
    pub(crate) waiters: HashMap<ProposalId, (oneshot::Sender<Outcome>, Rc<Vec<u8>>)>,
    /// The driver stopped (its log failed): proposals fail at once.
    stopped: bool,
    /// Ticks since the driver started.
    ticks: u64,
    /// Per peer (raft id), the tick its last message arrived on.
    heard: HashMap<u64, u64>,
    /// Per broker-only node (Kafka node id), the tick of its last
    /// BrokerHeartbeat (or registration) to this node as leader.
    heartbeats: HashMap<i32, u64>,
    /// Brokers that asked to shut down (controlled shutdown), with the
    /// broker epoch they asked at: fenced, not unfenced by their last
    /// heartbeats, led by no partition. A new registration (a new epoch)
    /// ends it.
    shutting_down: HashMap<i32, i64>,
    /// The voters (raft id, controller listener): from the settings, or
    /// on an observer that started from bootstrap servers, as the voters
    /// told it.
    pub(crate) voters: Vec<(u64, String)>,
    /// The tick this node last became leader.
    leader_since: u64,
    /// This node's proposals by outcome, for metrics.
    outcomes: ProposalCounts,
}

/// This node's proposals by outcome (counters since start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProposalCounts {
    pub applied: u64,
    pub refused: u64,
    pub no_leader: u64,
    pub timed_out: u64,
}

/// The controller's handle on the quorum (shard 0 only).
pub struct Quorum {
    settings: QuorumSettings,
    /// Ends the driver, the ticks and every socket ([`Quorum::close`]).
    closed: Rc<Closed>,
    /// Notified whenever the known leader changes.
    leader_changed: Rc<event_listener::Event>,
    events: Rc<LocalSender<Event>>,
    shared: Rc<RefCell<Shared>>,
    incarnation: u64,
    next_sequence: Cell<u64>,
    applier: RefCell<Option<LocalReceiver<Apply>>>,
    /// Notified when the commit index moves (observers' fetches wait on
    /// it).
    commit_advanced: Rc<event_listener::Event>,
    /// The raft log as raft-rs reads it (voters): observers are served
    /// from it.
    log_view: Option<QuorumStorage>,
    /// A broker-only node's epoch once registered (0 before).
    broker_epoch: Cell<i64>,
    /// A broker-only node saves its image with it.
    save_image: Option<super::observer::SaveImage>,
}

impl Quorum {
    /// Opens the quorum's log in `dir`, applies what it already knows
    /// committed, binds the controller listener and starts the driver.
    /// Returns with the image as of the last known commit.
    pub async fn open<S: Storage + Clone + 'static>(
        storage: S,
        dir: PathBuf,
        settings: QuorumSettings,
    ) -> Result<Rc<Quorum>, QuorumError> {
        let me = settings.node_id;
        let voter_ids = settings.voter_ids();
        if settings.is_observer() {
            return Ok(Quorum::open_observer(storage, dir, settings).await);
        }
        let (log, mem, recovered) = QuorumLog::open(storage, dir, &voter_ids).await?;
        if recovered.truncated_bytes > 0 {
            tracing::warn!(
                truncated_bytes = recovered.truncated_bytes,
                "quorum log: a torn, never acknowledged append was cut"
            );
        }
        let (image, applied) = replay(&log, &mem, settings.shards.max(1))?;
        let config = raft::Config {
            id: me,
            election_tick: settings.election_ticks,
            heartbeat_tick: settings.heartbeat_ticks,
            applied,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            pre_vote: true,
            check_quorum: true,
            ..Default::default()
        };
        config.validate()?;
        let log_view = mem.clone();
        let node = RawNode::new(&config, mem, &super::logging::raft_logger(me))?;
        let listener =
            TcpListener::bind(settings.listen.as_str()).map_err(|source| QuorumError::Bind {
                address: settings.listen.clone(),
                source,
            })?;
        let (events_tx, events_rx) = local_channel::new_unbounded();
        let events = Rc::new(events_tx);
        let (apply_tx, apply_rx) = local_channel::new_unbounded();
        let shared = Rc::new(RefCell::new(Shared {
            status: QuorumStatus {
                node_id: me,
                leader_id: 0,
                term: node.raft.term,
                role: StateRole::Follower,
                commit_index: applied,
                applied_index: applied,
                last_index: applied,
                progress: Vec::new(),
            },
            image: Arc::new(image),
            waiters: HashMap::new(),
            stopped: false,
            ticks: 0,
            heard: HashMap::new(),
            heartbeats: HashMap::new(),
            shutting_down: HashMap::new(),
            voters: settings.voters.clone(),
            leader_since: 0,
            outcomes: ProposalCounts::default(),
        }));
        let closed = Rc::new(Closed::default());
        let commit_advanced = Rc::new(event_listener::Event::new());
        let transport =
            Transport::start(me, &settings.voters, Rc::clone(&events), Rc::clone(&closed));
        let leader_changed = Rc::new(event_listener::Event::new());
        let driver = Driver {
            commit_advanced: Rc::clone(&commit_advanced),
            leader_changed: Rc::clone(&leader_changed),
            node,
            log,
            transport,
            shared: Rc::clone(&shared),
            apply: apply_tx,
        };
        let driving = Rc::clone(&closed);
        glommio::spawn_local(async move { driving.or_closed(driver.run(events_rx)).await })
            .detach();
        let ticker = Rc::clone(&events);
        let tick = settings.tick;
        let ticking = Rc::clone(&closed);
        glommio::spawn_local(async move {
            while ticking
                .or_closed(glommio::timer::sleep(tick))
                .await
                .is_some()
            {
                if ticker.try_send(Event::Tick).is_err() {
                    return;
                }
            }
        })
        .detach();
        let quorum = Rc::new(Quorum {
            settings,
            closed: Rc::clone(&closed),
            leader_changed,
            events: Rc::clone(&events),
            shared,
            incarnation: incarnation(),
            next_sequence: Cell::new(0),
            applier: RefCell::new(Some(apply_rx)),
            commit_advanced,
            log_view: Some(log_view),
            broker_epoch: Cell::new(0),
            save_image: None,
        });
        glommio::spawn_local(transport::serve(
            listener,
            me,
            Rc::new(voter_ids),
            events,
            closed,
            Rc::downgrade(&quorum),
        ))
        .detach();
        Ok(quorum)
    }

    /// A broker-only node's quorum: no raft log, no vote, no listener. It
    /// starts from the image it last saved in `dir` (Kafka's brokers keep
    /// a copy of the metadata log; here a snapshot of the image, saved
    /// every [`OBSERVER_SAVE_ENTRIES`] applied entries) and follows the
    /// voters' committed log from there ([`Follower`]); its proposals go
    /// to them.
    async fn open_observer<S: Storage + Clone + 'static>(
        storage: S,
        dir: PathBuf,
        settings: QuorumSettings,
    ) -> Rc<Quorum> {
        let (image, applied) = match super::observer::load_image(&storage, &dir).await {
            Ok(Some((index, data))) => match image_from_snapshot(index, &data) {
                Ok(image) => (image, index),
                Err(error) => {
                    tracing::warn!(%error, "the saved metadata image does not load: following from the start");
                    (MetadataImage::new(), 0)
                }
            },
            Ok(None) => (MetadataImage::new(), 0),
            Err(error) => {
                tracing::warn!(%error, "reading the saved metadata image: following from the start");
                (MetadataImage::new(), 0)
            }
        };
        let (events_tx, events_rx) = local_channel::new_unbounded();
        let (apply_tx, apply_rx) = local_channel::new_unbounded();
        let shared = Rc::new(RefCell::new(Shared {
            status: QuorumStatus {
                node_id: settings.node_id,
                leader_id: 0,
                term: 0,
                role: StateRole::Follower,
                commit_index: applied,
                applied_index: applied,
                last_index: applied,
                progress: Vec::new(),
            },
            image: Arc::new(image),
            waiters: HashMap::new(),
            stopped: false,
            ticks: 0,
            heard: HashMap::new(),
            heartbeats: HashMap::new(),
            shutting_down: HashMap::new(),
            voters: settings.voters.clone(),
            leader_since: 0,
            outcomes: ProposalCounts::default(),
        }));
        let closed = Rc::new(Closed::default());
        let leader_changed = Rc::new(event_listener::Event::new());
        let mut settings = settings;
        // The applier's snapshots are this node's saved image.
        settings.snapshot_interval_entries = OBSERVER_SAVE_ENTRIES;
        let save: super::observer::SaveImage = Rc::new(move |index, data| {
            let storage = storage.clone();
            let dir = dir.clone();
            Box::pin(async move {
                if let Err(error) = super::observer::save_image(&storage, &dir, index, &data).await
                {
                    tracing::warn!(%error, index, "saving the metadata image");
                }
            })
        });
        Follower {
            me: node_id_of(settings.node_id).unwrap_or(-1),
            bootstrap: settings.bootstrap.clone(),
            shared: Rc::clone(&shared),
            apply: apply_tx,
            leader_changed: Rc::clone(&leader_changed),
            closed: Rc::clone(&closed),
            save: Rc::clone(&save),
        }
        .start(events_rx, applied + 1);
        tracing::info!(
            node_id = node_id_of(settings.node_id),
            applied,
            "following the metadata quorum as an observer (process.roles=broker)"
        );
        Rc::new(Quorum {
            settings,
            closed,
            leader_changed,
            events: Rc::new(events_tx),
            shared,
            incarnation: incarnation(),
            next_sequence: Cell::new(0),
            applier: RefCell::new(Some(apply_rx)),
            commit_advanced: Rc::new(event_listener::Event::new()),
            log_view: None,
            broker_epoch: Cell::new(0),
            save_image: Some(save),
        })
    }

    /// A broker-only node's clean stop: its image as of the last applied
    /// entry is saved, so the next start loads it and follows from there.
    /// (Voters have their log.)
    pub async fn save_observed_image(&self) {
        let Some(save) = &self.save_image else {
            return;
        };
        let (index, image) = {
            let shared = self.shared.borrow();
            (shared.status.applied_index, Arc::clone(&shared.image))
        };
        if index == 0 {
            return;
        }
        let end = i64::try_from(index).unwrap_or(i64::MAX);
        save(index, encode_snapshot(end, &image.to_records())).await;
        tracing::info!(index, "metadata image saved for the next start");
    }

    /// A broker-only node (no vote, no log).
    pub fn is_observer(&self) -> bool {
        self.log_view.is_none()
    }

    /// The voters (raft id, controller listener address) as this node
    /// knows them: an observer that started from bootstrap servers knows
    /// them once a voter answered it.
    pub fn voters(&self) -> Vec<(u64, String)> {
        self.shared.borrow().voters.clone()
    }

    /// This node leads the quorum: it is the active controller.
    pub fn is_active_controller(&self) -> bool {
        let shared = self.shared.borrow();
        shared.status.role == StateRole::Leader
            && shared.status.leader_id == self.settings.node_id
            && !shared.stopped
    }

    pub fn session_timeout(&self) -> Duration {
        self.settings.session_timeout
    }

    /// A broker-only node's BrokerHeartbeat (or registration) arrived.
    pub(crate) fn note_heartbeat(&self, node_id: i32) {
        let mut shared = self.shared.borrow_mut();
        let now = shared.ticks;
        shared.heartbeats.insert(node_id, now);
    }

    /// Broker `node_id`, registered at `epoch`, asked to shut down: it
    /// stays fenced and leads nothing until it registers again.
    pub(crate) fn note_shutting_down(&self, node_id: i32, epoch: i64) {
        self.shared
            .borrow_mut()
            .shutting_down
            .insert(node_id, epoch);
    }

    pub(crate) fn clear_shutting_down(&self, node_id: i32) {
        self.shared.borrow_mut().shutting_down.remove(&node_id);
    }

    /// The brokers in controlled shutdown: those that asked at the epoch
    /// they are still registered with.
    pub fn shutting_down(&self) -> BTreeSet<i32> {
        let shared = self.shared.borrow();
        shared
            .shutting_down
            .iter()
            .filter(|(id, epoch)| {
                shared
                    .image
                    .broker(**id)
                    .is_some_and(|b| b.epoch == **epoch)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// A broker-only node's broker epoch once registered (0 before).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.get()
    }

    pub(crate) fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.set(epoch);
    }

    /// Committed entries from `from` (at most `max_bytes` of them, at
    /// least one), or the snapshot when they were compacted away; waits up
    /// to `wait` for the commit to reach `from`. (A voter serving an
    /// observer.)
    pub(crate) async fn serve_fetch(
        &self,
        from: u64,
        wait: Duration,
        max_bytes: u32,
    ) -> (LeaderInfo, Fetched) {
        let deadline = Instant::now() + wait;
        loop {
            let listener = self.commit_advanced.listen();
            let (info, fetched) = self.fetch_now(from, max_bytes);
            let empty = matches!(&fetched, Fetched::Entries(entries) if entries.is_empty());
            let left = deadline.saturating_duration_since(Instant::now());
            if !empty || left.is_zero() {
                return (info, fetched);
            }
            if self
                .closed
                .or_closed(within(left, listener))
                .await
                .is_none()
            {
                return (info, fetched);
            }
        }
    }

    fn fetch_now(&self, from: u64, max_bytes: u32) -> (LeaderInfo, Fetched) {
        let status = self.status();
        let info = LeaderInfo {
            leader: status.leader_id,
            term: status.term,
            commit: status.commit_index,
            voters: self.settings.voters.clone(),
        };
        let nothing = Fetched::Entries(Vec::new());
        let Some(log) = &self.log_view else {
            return (info, nothing);
        };
        let first = log.first_index().unwrap_or(1);
        if from < first {
            return match log.snapshot(0, 0) {
                Ok(snapshot) => {
                    let index = snapshot.get_metadata().index;
                    let data = snapshot.get_data().to_vec();
                    (info, Fetched::Snapshot { index, data })
                }
                Err(_) => (info, nothing),
            };
        }
        let last = status.commit_index.min(log.last_index().unwrap_or(0));
        if from > last {
            return (info, nothing);
        }
        let context = GetEntriesContext::empty(false);
        let entries = log
            .entries(from, last + 1, u64::from(max_bytes), context)
            .unwrap_or_default();
        let entries = entries
            .into_iter()
            .map(|entry| {
                let data = if entry.get_entry_type() == EntryType::EntryNormal {
                    entry.data.to_vec()
                } else {
                    Vec::new()
                };
                (entry.index, data)
            })
            .collect();
        (info, Fetched::Entries(entries))
    }

    /// An observer's proposal, to propose as this node's raft node would
    /// its own (the observer keeps the waiter); whether it was queued.
    pub(crate) fn forward_proposal(&self, data: Vec<u8>) -> bool {
        let Ok(decoded) = payload::decode(&data) else {
            return false;
        };
        let event = Event::Propose {
            id: decoded.id,
            data: Rc::new(data),
        };
        !self.shared.borrow().stopped && self.events.try_send(event).is_ok()
    }

    /// Leaves the quorum: the driver, the applier, the listener and every
    /// link stop, and proposals fail at once. (A broker's clean stop.)
    pub fn close(&self) {
        self.closed.close();
        let mut shared = self.shared.borrow_mut();
        shared.stopped = true;
        shared.status.leader_id = 0;
        for (_, (waiter, _)) in shared.waiters.drain() {
            let _ = waiter.send(Err(ProposalError::NoLeader));
        }
    }

    /// The image as of the last applied entry.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.shared.borrow().image)
    }

    pub fn status(&self) -> QuorumStatus {
        self.shared.borrow().status.clone()
    }

    /// This node's proposals by outcome since start.
    pub fn proposal_counts(&self) -> ProposalCounts {
        self.shared.borrow().outcomes
    }

    /// The active controller's node id, if one is known.
    pub fn leader_id(&self) -> Option<u64> {
        let leader = self.shared.borrow().status.leader_id;
        (leader != 0).then_some(leader)
    }

    /// DescribeQuorum's view: every voter, with its log end where this
    /// node knows it (the leader knows every voter's matched index).
    pub fn view(&self) -> QuorumView {
        let shared = self.shared.borrow();
        let status = &shared.status;
        let tick_ms = self.settings.tick.as_millis() as u64;
        let voters = shared
            .voters
            .iter()
            .map(|(id, _)| {
                let matched = status
                    .progress
                    .iter()
                    .find(|(p, _)| p == id)
                    .map(|(_, m)| *m);
                let log_end = if *id == self.settings.node_id {
                    Some(status.last_index)
                } else {
                    matched
                };
                let heard = if *id == self.settings.node_id {
                    Some(0)
                } else {
                    shared
                        .heard
                        .get(id)
                        .map(|tick| shared.ticks.saturating_sub(*tick) * tick_ms)
                };
                VoterView {
                    node_id: node_id_of(*id).unwrap_or(-1),
                    log_end_offset: log_end.map_or(-1, |i| i as i64),
                    last_heard_ms_ago: heard,
                }
            })
            .collect();
        QuorumView {
            leader_id: node_id_of(status.leader_id).unwrap_or(-1),
            leader_epoch: i32::try_from(status.term).unwrap_or(i32::MAX),
            high_watermark: status.commit_index as i64,
            voters,
        }
    }

    /// Whether this node leads and heard from broker `node_id` (a Kafka
    /// node id) within `period`: the active controller's view of a
    /// broker's liveness. `None` when this node does not lead, or has led
    /// for less than `period` and not heard from the broker (it cannot
    /// judge silence yet).
    pub fn peer_alive(&self, node_id: i32, period: Duration) -> Option<bool> {
        let shared = self.shared.borrow();
        let status = &shared.status;
        if status.role != StateRole::Leader || status.leader_id != self.settings.node_id {
            return None;
        }
        let window = (period.as_millis() / self.settings.tick.as_millis().max(1)) as u64;
        let registered = shared.image.broker(node_id).map(|b| b.epoch);
        if registered.is_some() && shared.shutting_down.get(&node_id).copied() == registered {
            return Some(false);
        }
        let id = raft_id(node_id);
        if id == self.settings.node_id {
            return Some(true);
        }
        let heard = if self.settings.voters.iter().any(|(v, _)| *v == id) {
            shared.heard.get(&id).copied()
        } else {
            shared.heartbeats.get(&node_id).copied()
        };
        if heard.is_some_and(|tick| shared.ticks.saturating_sub(tick) <= window) {
            return Some(true);
        }
        // A new leader has not had a whole session to hear from everyone:
        // silence is not news yet (but being heard is: a broker that
        // registered again is let in without waiting).
        if shared.ticks.saturating_sub(shared.leader_since) < window {
            return None;
        }
        Some(false)
    }

    /// Moves partitions off shards this node no longer has (its core count
    /// changed) and evens its load, in this node's image only: placement
    /// is local, nothing is committed.
    pub fn rebalance_locally(&self) -> Arc<MetadataImage> {
        let shards = self.settings.shards.max(1);
        let mut shared = self.shared.borrow_mut();
        let moves = rafka_core::metadata::placement::rebalance(&shared.image, shards);
        if !moves.is_empty() {
            let mut next = MetadataImage::clone(&shared.image);
            for placement in moves {
                let _ = next.apply(&MetadataRecord::PartitionPlacement(placement));
            }
            shared.image = Arc::new(next);
        }
        Arc::clone(&shared.image)
    }

    /// Waits until the known leader differs from `seen` (0: none); returns
    /// the new one (0 when leadership is lost).
    pub async fn leader_change(&self, seen: u64) -> u64 {
        loop {
            let listener = self.leader_changed.listen();
            let leader = self.shared.borrow().status.leader_id;
            if leader != seen {
                return leader;
            }
            listener.await;
        }
    }

    pub fn settings(&self) -> &QuorumSettings {
        &self.settings
    }

    /// Starts applying committed entries and publishing them through
    /// `publisher` (once the broker loaded the image [`Quorum::image`]
    /// returned). Later calls do nothing.
    pub fn start_applying<P: Publisher + 'static>(&self, publisher: P) {
        let Some(rx) = self.applier.borrow_mut().take() else {
            return;
        };
        let closed = Rc::clone(&self.closed);
        let applier = Applier {
            shards: self.settings.shards.max(1),
            shared: Rc::clone(&self.shared),
            events: Rc::clone(&self.events),
            publisher,
            snapshot_interval: self.settings.snapshot_interval_entries.max(1),
            last_snapshot: self.shared.borrow().status.applied_index,
        };
        glommio::spawn_local(async move { closed.or_closed(applier.run(rx)).await }).detach();
    }

    /// Proposes `records` as one entry and waits until it is applied on
    /// this node and published to its shards.
    pub async fn commit(
        &self,
        records: &[MetadataRecord],
    ) -> Result<(u64, Result<(), PublishError>), ProposalError> {
        if self.shared.borrow().stopped {
            return Err(ProposalError::NoLeader);
        }
        let sequence = self.next_sequence.get();
        self.next_sequence.set(sequence + 1);
        let id = ProposalId {
            node_id: node_id_of(self.settings.node_id).unwrap_or(i32::MAX),
            incarnation: self.incarnation,
            sequence,
        };
        let data = Rc::new(payload::encode(id, records));
        let (tx, rx) = oneshot::channel();
        self.shared
            .borrow_mut()
            .waiters
            .insert(id, (tx, Rc::clone(&data)));
        if self.events.try_send(Event::Propose { id, data }).is_err() {
            self.shared.borrow_mut().waiters.remove(&id);
            return Err(ProposalError::NoLeader);
        }
        let timeout = self.settings.proposal_timeout;
        let outcome = match within(timeout, rx).await {
            Some(Ok(outcome)) => outcome,
            Some(Err(_dropped)) => Err(ProposalError::NoLeader),
            None => {
                self.shared.borrow_mut().waiters.remove(&id);
                Err(ProposalError::TimedOut(timeout))
            }
        };
        let mut shared = self.shared.borrow_mut();
        let counts = &mut shared.outcomes;
        match &outcome {
            Ok(_) => counts.applied += 1,
            Err(ProposalError::Rejected(_)) => counts.refused += 1,
            Err(ProposalError::NoLeader) => counts.no_leader += 1,
            Err(ProposalError::TimedOut(_)) => counts.timed_out += 1,
        }
        outcome
    }
}

/// Applied entries between the saved images of a broker-only node.
pub const OBSERVER_SAVE_ENTRIES: u64 = 1_000;

/// The raft id of Kafka node `node_id`.
pub fn raft_id(node_id: i32) -> u64 {
    u64::try_from(node_id).unwrap_or(0) + 1
}

/// The Kafka node id of raft id `id` (`None` for 0, raft-rs's "none").
pub fn node_id_of(id: u64) -> Option<i32> {
    id.checked_sub(1).and_then(|id| i32::try_from(id).ok())
}

/// A random incarnation id for this process's proposals.
fn incarnation() -> u64 {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// The image from the log's snapshot plus every entry the log knows
/// committed, and the index it is as of.
fn replay<S: Storage>(
    log: &QuorumLog<S>,
    mem: &QuorumStorage,
    shards: u32,
) -> Result<(MetadataImage, u64), QuorumError> {
    let mut image = MetadataImage::new();
    let mut applied = 0;
    if let Some(snapshot) = log.snapshot() {
        let index = snapshot.get_metadata().index;
        image = image_from_snapshot(index, snapshot.get_data())?;
        applied = index;
    }
    let state = mem.initial_state()?;
    let commit = state.hard_state.commit;
    if commit > applied {
        let entries = mem.entries(
            applied + 1,
            commit + 1,
            None,
            GetEntriesContext::empty(false),
        )?;
        for entry in &entries {
            match apply_entry(&image, entry, shards) {
                Applied::Nothing => {}
                Applied::Changed { image: next, .. } | Applied::Refused { image: next, .. } => {
                    image = next
                }
            }
        }
        applied = commit;
    }
    Ok((image, applied))
}

pub(crate) fn image_from_snapshot(index: u64, data: &[u8]) -> Result<MetadataImage, QuorumError> {
    let end = i64::try_from(index).unwrap_or(i64::MAX);
    let failed = |message: String| QuorumError::Snapshot { index, message };
    let records = read_snapshot(data, end).map_err(|e| failed(e.to_string()))?;
    let mut image = MetadataImage::new();
    for record in &records {
        image.apply(record).map_err(|e| failed(e.to_string()))?;
    }
    Ok(image)
}

/// What applying a committed entry did.
enum Applied {
    /// No records (the leader's empty entry, a conf change), an
    /// undecodable payload, or a copy of a proposal already in the log
    /// (proposed again after a leader change): nothing changes.
    Nothing,
    /// The records applied: the new image and its deltas.
    Changed {
        id: ProposalId,
        image: MetadataImage,
        deltas: Vec<MetadataDelta>,
    },
    /// The records no longer apply (a concurrent change won); `image` only
    /// notes the proposal.
    Refused {
        id: ProposalId,
        image: MetadataImage,
        error: ApplyError,
    },
}

/// What applying `entry` to `image` gives, the same on every node.
fn apply_entry(image: &MetadataImage, entry: &Entry, shards: u32) -> Applied {
    if entry.get_entry_type() != EntryType::EntryNormal || entry.data.is_empty() {
        return Applied::Nothing;
    }
    let payload = match payload::decode(&entry.data) {
        Ok(payload) => payload,
        Err(error) => {
            // Every node decodes the same bytes the same way, so every
            // node skips it alike.
            tracing::error!(index = entry.index, %error, "undecodable quorum entry skipped");
            return Applied::Nothing;
        }
    };
    let id = payload.id;
    let mut noted = image.clone();
    if !noted.note_proposal(id.node_id, id.incarnation, id.sequence) {
        return Applied::Nothing;
    }
    let mut records = payload.records;
    place_locally(image, &mut records, shards);
    let mut next = noted.clone();
    let mut deltas = Vec::with_capacity(records.len());
    for record in &records {
        match next.apply(record) {
            Ok(delta) => deltas.push(delta),
            Err(error) => {
                return Applied::Refused {
                    id,
                    image: noted,
                    error,
                }
            }
        }
    }
    Applied::Changed {
        id,
        image: next,
        deltas,
    }
}

/// A node's own placement of the partitions it holds on its shards: the
/// shard a proposer wrote into a Partition record is its own core count's
/// business, so every node overwrites it with its least-loaded shard
/// (`rafka_core::metadata::placement`). Whether an entry applies does not
/// depend on shards, so every node still accepts and refuses the same
/// entries; only where a partition sits among a node's cores differs, as
/// it should. PartitionPlacement records (a single node's rebalancing)
/// are never proposed in a cluster and are dropped here.
pub(crate) fn place_locally(image: &MetadataImage, records: &mut Vec<MetadataRecord>, shards: u32) {
    records.retain(|r| !matches!(r, MetadataRecord::PartitionPlacement(_)));
    let mut loads = image.shard_loads(shards.max(1));
    for record in records.iter_mut() {
        if let MetadataRecord::Partition(partition) = record {
            partition.shard = place_partitions(&mut loads, 1)[0];
        }
    }
}

/// A leader's snapshot placed on this node's shards: partitions this node
/// already had keep their shard, new ones go to the least-loaded.
fn place_snapshot(old: &MetadataImage, next: &mut MetadataImage, shards: u32) {
    let mut loads = vec![0u64; shards.max(1) as usize];
    let mut moves = Vec::new();
    let mut fresh = Vec::new();
    for topic in next.topics() {
        let known = old.topic_by_id(&topic.id);
        for index in 0..topic.partition_count() {
            match known
                .and_then(|t| t.shard_of(index))
                .filter(|s| *s < shards)
            {
                Some(shard) => {
                    loads[shard as usize] += 1;
                    moves.push((topic.id, index, shard));
                }
                None => fresh.push((topic.id, index)),
            }
        }
    }
    for (topic_id, index) in fresh {
        moves.push((topic_id, index, place_partitions(&mut loads, 1)[0]));
    }
    for (topic_id, partition, shard) in moves {
        let placement = MetadataRecord::PartitionPlacement(PartitionPlacementRecord {
            topic_id,
            partition,
            shard,
        });
        // The partition exists in `next`: placement cannot fail.
        let _ = next.apply(&placement);
    }
}

struct Driver<S: Storage> {
    commit_advanced: Rc<event_listener::Event>,
    leader_changed: Rc<event_listener::Event>,
    node: RawNode<QuorumStorage>,
    log: QuorumLog<S>,
    transport: Transport,
    shared: Rc<RefCell<Shared>>,
    apply: LocalSender<Apply>,
}

impl<S: Storage> Driver<S> {
    async fn run(mut self, events: LocalReceiver<Event>) {
        while let Some(event) = events.recv().await {
            let handled = match event {
                Event::Tick => {
                    self.shared.borrow_mut().ticks += 1;
                    self.node.tick();
                    Ok(())
                }
                Event::Step(message) => {
                    let mut shared = self.shared.borrow_mut();
                    let now = shared.ticks;
                    shared.heard.insert(message.from, now);
                    drop(shared);
                    if let Err(error) = self.node.step(*message) {
                        tracing::debug!(%error, "raft message refused");
                    }
                    Ok(())
                }
                Event::Propose { id, data } => {
                    if self.node.propose(Vec::new(), data.to_vec()).is_err() {
                        self.answer(id, Err(ProposalError::NoLeader));
                    }
                    Ok(())
                }
                Event::Compact { index, data } => self.compact(index, data).await,
                Event::Unreachable { to, snapshot } => {
                    self.node.report_unreachable(to);
                    if snapshot {
                        self.node.report_snapshot(to, SnapshotStatus::Failure);
                    }
                    Ok(())
                }
                Event::SnapshotSent { to } => {
                    self.node.report_snapshot(to, SnapshotStatus::Finish);
                    Ok(())
                }
            };
            let handled = match handled {
                Ok(()) if self.node.has_ready() => self.on_ready().await,
                other => other,
            };
            if let Err(error) = handled {
                tracing::error!(
                    %error,
                    "the metadata quorum's log failed: this node leaves the quorum \
                     (its disk can no longer be trusted); restart it once fixed"
                );
                self.stop();
                return;
            }
            self.publish_status();
        }
    }

    fn answer(&self, id: ProposalId, outcome: Outcome) {
        if let Some((waiter, _)) = self.shared.borrow_mut().waiters.remove(&id) {
            let _ = waiter.send(outcome);
        }
    }

    /// A new leader: proposals not applied yet may have been lost with the
    /// old one (a follower forwards proposals and forgets them), so they
    /// are proposed again under the same id, in the order they were first
    /// proposed. Whichever copy reaches the log first is applied and
    /// answers the waiter; every later copy is skipped on every node (the
    /// image notes which proposals it has seen).
    fn propose_again(&mut self) {
        let mut pending: Vec<(u64, Rc<Vec<u8>>)> = self
            .shared
            .borrow()
            .waiters
            .iter()
            .map(|(id, (_, data))| (id.sequence, Rc::clone(data)))
            .collect();
        pending.sort_by_key(|(sequence, _)| *sequence);
        for (_, data) in pending {
            let _ = self.node.propose(Vec::new(), data.to_vec());
        }
    }

    fn stop(&self) {
        let mut shared = self.shared.borrow_mut();
        shared.stopped = true;
        shared.status.leader_id = 0;
        self.leader_changed.notify(usize::MAX);
        for (_, (waiter, _)) in shared.waiters.drain() {
            let _ = waiter.send(Err(ProposalError::NoLeader));
        }
    }

    fn send_all(&self, messages: Vec<Message>) {
        for message in messages {
            self.transport.send(message);
        }
    }

    fn hand_to_applier(&self, entries: Vec<Entry>) {
        if !entries.is_empty() {
            let _ = self.apply.try_send(Apply::Entries(entries));
        }
    }

    async fn on_ready(&mut self) -> Result<(), QuorumError> {
        let mut ready = self.node.ready();
        let mut repropose = false;
        if let Some(soft) = ready.ss() {
            let mut shared = self.shared.borrow_mut();
            let changed = shared.status.leader_id != soft.leader_id;
            if changed && soft.raft_state == StateRole::Leader {
                shared.leader_since = shared.ticks;
            }
            shared.status.leader_id = soft.leader_id;
            shared.status.role = soft.raft_state;
            if changed && soft.leader_id != 0 {
                repropose = true;
            }
            if changed {
                tracing::info!(
                    leader = soft.leader_id,
                    term = self.node.raft.term,
                    "quorum leader"
                );
                self.leader_changed.notify(usize::MAX);
            }
        }
        self.send_all(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot: Snapshot = ready.snapshot().clone();
            self.log.install_snapshot(&snapshot).await?;
            let _ = self.apply.try_send(Apply::Snapshot {
                index: snapshot.get_metadata().index,
                data: snapshot.get_data().to_vec(),
            });
        }
        self.hand_to_applier(ready.take_committed_entries());
        if !ready.entries().is_empty() || ready.hs().is_some() {
            self.log.persist(ready.entries(), ready.hs()).await?;
        }
        self.send_all(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if light.commit_index().is_some() {
            let hard_state = self.node.raft.hard_state();
            self.log.persist(&[], Some(&hard_state)).await?;
        }
        self.send_all(light.take_messages());
        self.hand_to_applier(light.take_committed_entries());
        self.node.advance_apply();
        if repropose {
            self.propose_again();
        }
        Ok(())
    }

    async fn compact(&mut self, index: u64, data: Vec<u8>) -> Result<(), QuorumError> {
        // The hard state on disk must cover the snapshot's index.
        let hard_state = self.node.raft.hard_state();
        if hard_state.commit < index {
            return Ok(());
        }
        self.log.persist(&[], Some(&hard_state)).await?;
        self.log.compact(index, data).await?;
        tracing::debug!(index, "quorum log compacted");
        Ok(())
    }

    fn publish_status(&self) {
        let raft = &self.node.raft;
        let mut shared = self.shared.borrow_mut();
        let status = &mut shared.status;
        status.term = raft.term;
        if status.commit_index != raft.raft_log.committed {
            self.commit_advanced.notify(usize::MAX);
        }
        status.commit_index = raft.raft_log.committed;
        status.last_index = raft.raft_log.last_index();
        status.progress = if raft.state == StateRole::Leader {
            raft.prs()
                .iter()
                .map(|(id, progress)| (*id, progress.matched))
                .collect()
        } else {
            Vec::new()
        };
    }
}

struct Applier<P: Publisher> {
    shards: u32,
    shared: Rc<RefCell<Shared>>,
    events: Rc<LocalSender<Event>>,
    publisher: P,
    snapshot_interval: u64,
    last_snapshot: u64,
}

impl<P: Publisher> Applier<P> {
    async fn run(mut self, rx: LocalReceiver<Apply>) {
        while let Some(apply) = rx.recv().await {
            match apply {
                Apply::Entries(entries) => {
                    for entry in entries {
                        self.apply(entry).await;
                    }
                }
                Apply::Snapshot { index, data } => self.install(index, &data).await,
            }
        }
    }

    fn applied(&self) -> u64 {
        self.shared.borrow().status.applied_index
    }

    async fn apply(&mut self, entry: Entry) {
        if entry.index <= self.applied() {
            return;
        }
        let image = Arc::clone(&self.shared.borrow().image);
        match apply_entry(&image, &entry, self.shards) {
            Applied::Nothing => {}
            Applied::Refused { id, image, error } => {
                tracing::debug!(index = entry.index, %error, "quorum entry no longer applies");
                self.shared.borrow_mut().image = Arc::new(image);
                self.answer(id, Err(ProposalError::Rejected(error)));
            }
            Applied::Changed {
                id,
                image: next,
                deltas,
            } => {
                let next = Arc::new(next);
                self.shared.borrow_mut().image = Arc::clone(&next);
                let committed = Committed {
                    first_offset: i64::try_from(entry.index).unwrap_or(i64::MAX),
                    deltas,
                    image: next,
                };
                let published = self.publisher.publish(committed).await;
                self.answer(id, Ok((entry.index, published)));
            }
        }
        self.shared.borrow_mut().status.applied_index = entry.index;
        if entry.index - self.last_snapshot >= self.snapshot_interval {
            self.snapshot(entry.index);
        }
    }

    fn snapshot(&mut self, index: u64) {
        let image = Arc::clone(&self.shared.borrow().image);
        let end = i64::try_from(index).unwrap_or(i64::MAX);
        let data = encode_snapshot(end, &image.to_records());
        self.last_snapshot = index;
        let _ = self.events.try_send(Event::Compact { index, data });
    }

    /// A leader's snapshot replaces the image; shards get the difference.
    async fn install(&mut self, index: u64, data: &[u8]) {
        if index <= self.applied() {
            return;
        }
        let mut next = match image_from_snapshot(index, data) {
            Ok(image) => image,
            Err(error) => {
                tracing::error!(%error, "a leader's snapshot does not load");
                return;
            }
        };
        let old = Arc::clone(&self.shared.borrow().image);
        place_snapshot(&old, &mut next, self.shards);
        let next = Arc::new(next);
        let deltas = old.deltas_to(&next);
        self.shared.borrow_mut().image = Arc::clone(&next);
        let committed = Committed {
            first_offset: i64::try_from(index).unwrap_or(i64::MAX),
            deltas,
            image: next,
        };
        if let Err(error) = self.publisher.publish(committed).await {
            tracing::error!(%error, "applying a leader's snapshot on the shards");
        }
        self.shared.borrow_mut().status.applied_index = index;
        self.last_snapshot = index;
    }

    fn answer(&self, id: ProposalId, outcome: Outcome) {
        if let Some((waiter, _)) = self.shared.borrow_mut().waiters.remove(&id) {
            let _ = waiter.send(outcome);
        }
    }
}
