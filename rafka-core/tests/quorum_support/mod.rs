//! A raft cluster in one test: raft-rs RawNodes over QuorumLog/QuorumStorage
//! on one SimStorage (a directory per node), messages delivered by a loop,
//! a state machine that is the list of applied proposals.

use std::path::PathBuf;

use rafka_core::quorum::{QuorumLog, QuorumStorage};
use rafka_core::sim::SimStorage;
use raft::prelude::{Entry, EntryType, Message, Snapshot};
use raft::{Config, RawNode, StateRole};

/// Rounds of ready handling + delivery before a test gives up.
const SETTLE_ROUNDS_MAX: u32 = 10_000;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

pub struct Node {
    pub id: u64,
    pub raw: RawNode<QuorumStorage>,
    pub log: QuorumLog<SimStorage>,
    /// The state machine: proposals in applied order.
    pub applied: Vec<String>,
    pub applied_index: u64,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Nodes whose messages (to or from) are dropped.
    pub cut: Vec<u64>,
}

fn decode_image(data: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(data)
        .split('\n')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Node {
    /// Opens node `id`'s log and restarts its state machine from the
    /// snapshot, as a driver does.
    fn start(storage: &SimStorage, id: u64, voters: &[u64]) -> Node {
        let dir = PathBuf::from(format!("/data/node-{id}/__rafka_quorum"));
        let opened = block_on(QuorumLog::open(storage.clone(), dir, voters));
        let (log, mirror, _) = opened.unwrap_or_else(|e| panic!("node {id}: open: {e}"));
        let (applied, applied_index) = match log.snapshot() {
            Some(s) => (decode_image(&s.data), s.get_metadata().index),
            None => (Vec::new(), 0),
        };
        let config = Config {
            id,
            applied: applied_index,
            ..Config::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config, mirror, &logger)
            .unwrap_or_else(|e| panic!("node {id}: raw node: {e}"));
        Node {
            id,
            raw,
            log,
            applied,
            applied_index,
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) {
        for entry in entries {
            if entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty() {
                self.applied
                    .push(String::from_utf8_lossy(&entry.data).into_owned());
            }
            self.applied_index = entry.index;
        }
    }

    fn restore(&mut self, snapshot: &Snapshot) {
        self.applied = decode_image(&snapshot.data);
        self.applied_index = snapshot.get_metadata().index;
    }

    /// One Ready, handled in raft-rs's documented order.
    fn handle_ready(&mut self, outbox: &mut Vec<Message>) {
        if !self.raw.has_ready() {
            return;
        }
        let id = self.id;
        let mut ready = self.raw.ready();
        outbox.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            block_on(self.log.install_snapshot(&snapshot))
                .unwrap_or_else(|e| panic!("node {id}: install: {e}"));
            self.restore(&snapshot);
        }
        self.apply(ready.take_committed_entries());
        block_on(self.log.persist(ready.entries(), ready.hs()))
            .unwrap_or_else(|e| panic!("node {id}: persist: {e}"));
        outbox.extend(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.log.hard_state();
            hs.commit = commit;
            block_on(self.log.persist(&[], Some(&hs)))
                .unwrap_or_else(|e| panic!("node {id}: persist commit: {e}"));
        }
        outbox.extend(light.take_messages());
        self.apply(light.take_committed_entries());
        self.raw.advance_apply();
    }
}

impl Cluster {
    pub fn start(storage: &SimStorage, ids: &[u64]) -> Cluster {
        let nodes = ids
            .iter()
            .map(|id| Node::start(storage, *id, ids))
            .collect();
        Cluster {
            nodes,
            cut: Vec::new(),
        }
    }

    fn node(&mut self, id: u64) -> &mut Node {
        match self.nodes.iter_mut().find(|n| n.id == id) {
            Some(node) => node,
            None => panic!("no node {id}"),
        }
    }

    /// Handles readies and delivers messages until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..SETTLE_ROUNDS_MAX {
            let mut outbox = Vec::new();
            for node in &mut self.nodes {
                node.handle_ready(&mut outbox);
            }
            let idle = self.nodes.iter().all(|n| !n.raw.has_ready());
            if outbox.is_empty() && idle {
                return;
            }
            for message in outbox {
                if self.cut.contains(&message.to) || self.cut.contains(&message.from) {
                    continue;
                }
                let to = message.to;
                if let Err(e) = self.node(to).raw.step(message) {
                    panic!("node {to}: step: {e}");
                }
            }
        }
        panic!("no quiescence after {SETTLE_ROUNDS_MAX} rounds");
    }

    pub fn elect(&mut self, id: u64) {
        if let Err(e) = self.node(id).raw.campaign() {
            panic!("node {id}: campaign: {e}");
        }
        self.settle();
        assert_eq!(self.node(id).raw.raft.state, StateRole::Leader, "node {id}");
    }

    pub fn propose(&mut self, id: u64, proposal: &str) {
        let data = proposal.as_bytes().to_vec();
        if let Err(e) = self.node(id).raw.propose(Vec::new(), data) {
            panic!("node {id}: propose: {e}");
        }
        self.settle();
    }

    /// Snapshots node `id`'s state machine at its applied index.
    pub fn compact(&mut self, id: u64) {
        let node = self.node(id);
        let image = node.applied.join("\n").into_bytes();
        let index = node.applied_index;
        if let Err(e) = block_on(node.log.compact(index, image)) {
            panic!("node {id}: compact: {e}");
        }
    }

    pub fn applied(&mut self, id: u64) -> Vec<String> {
        self.node(id).applied.clone()
    }

    pub fn snapshot_index(&mut self, id: u64) -> u64 {
        let snapshot = self.node(id).log.snapshot();
        snapshot.map_or(0, |s| s.get_metadata().index)
    }
}
