//! One group's data: its state, generation, members and committed offsets.
//! The transitions live in [`super::coordinator`] and [`super::membership`].

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::schema::subscription_topics;
use super::types::{CommittedOffset, ReplyToken};
use super::CONSUMER_PROTOCOL_TYPE;

/// Kafka's classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka's DescribeGroups / ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (name, metadata) in preference order.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// A JoinGroup waiting for the join phase to end.
    pub awaiting_join: Option<ReplyToken>,
    /// A SyncGroup waiting for the leader's assignment.
    pub awaiting_sync: Option<ReplyToken>,
    /// When the session expires unless a heartbeat comes.
    pub session_deadline_ms: i64,
    /// Sent SyncGroup for the current generation.
    pub synced: bool,
}

impl Member {
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// A member waiting on a request is not expired: its session resumes
    /// when the reply goes out (Kafka's `shouldKeepAlive`).
    pub fn kept_alive(&self) -> bool {
        self.awaiting_join.is_some() || self.awaiting_sync.is_some()
    }

    pub fn refresh_session(&mut self, now_ms: i64) {
        self.session_deadline_ms = now_ms.saturating_add(i64::from(self.session_timeout_ms));
    }
}

/// The first rebalance of an empty group waits for more members:
/// `group.initial.rebalance.delay.ms`, extended while members keep coming,
/// up to the rebalance timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitialDelay {
    pub remaining_ms: i64,
    pub new_member_added: bool,
}

/// One group, on the shard that owns its `__consumer_offsets` partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    pub state_since_ms: i64,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Ids handed out with MEMBER_ID_REQUIRED -> deadline to rejoin.
    pub pending_members: HashMap<String, i64>,
    pub join_deadline_ms: Option<i64>,
    pub initial_delay: Option<InitialDelay>,
    /// Members that did not send SyncGroup by then are removed.
    pub sync_deadline_ms: Option<i64>,
    /// (topic, partition) -> committed offset.
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// TxnOffsetCommit's offsets by producer id, durable but visible only
    /// once the transaction's COMMIT marker reaches the group's partition.
    pub pending_txn_offsets: BTreeMap<i64, BTreeMap<(String, i32), CommittedOffset>>,
}

impl Group {
    pub fn new(group_id: &str, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            state_since_ms: now_ms,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            join_deadline_ms: None,
            initial_delay: None,
            sync_deadline_ms: None,
            offsets: BTreeMap::new(),
            pending_txn_offsets: BTreeMap::new(),
        }
    }

    pub fn transition(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Kafka's `supportsProtocols`: an empty group takes any non-empty
    /// protocol list; otherwise the type must match and one protocol must
    /// be supported by every member.
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|(name, _)| self.members.values().all(|m| supports(m, name)))
    }

    /// The protocol all members support that most members prefer (ties go
    /// to the lexically first name, so the choice is deterministic).
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| self.members.values().all(|m| supports(m, name)))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            let vote = member
                .protocols
                .iter()
                .map(|(name, _)| name.as_str())
                .find(|name| candidates.contains(name));
            if let Some(vote) = vote {
                *votes.entry(vote).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, count)| *count == best)
            .map(|(name, _)| name.to_string())
    }

    /// The longest rebalance timeout of the members: how long a join
    /// phase waits.
    pub fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Whether `instance_id` belongs to a member other than `member_id`.
    pub fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|id| self.static_members.get(id))
            .is_some_and(|owner| owner != member_id)
    }

    /// The topics the members subscribe to, when the group uses the
    /// consumer protocol and every subscription decodes.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = Vec::new();
        for member in self.members.values() {
            topics.extend(subscription_topics(&member.metadata_for(protocol)).ok()?);
        }
        topics.sort();
        topics.dedup();
        Some(topics)
    }

    /// Whether OffsetDelete must refuse `topic` (GROUP_SUBSCRIBED_TO_TOPIC):
    /// a subscription that cannot be read counts as subscribed.
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        if self.members.is_empty() {
            return false;
        }
        match self.subscribed_topics() {
            Some(topics) => topics.iter().any(|t| t == topic),
            None => self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE),
        }
    }
}

fn supports(member: &Member, protocol: &str) -> bool {
    member.protocols.iter().any(|(name, _)| name == protocol)
}
