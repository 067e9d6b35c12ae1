//! [`Coordinator`]: the groups of the `__consumer_offsets` partitions one
//! shard owns, the rebalance core shared by every request (prepare a
//! rebalance, end a join phase, remove a member) and the timers.
//!
//! Lives on: one shard; the shard layer wraps it in a `RefCell`.

use rafka_proto::error::ErrorCode;
use std::collections::HashMap;

use super::schema::{encode_group_metadata_key, GroupMetadataValue, MemberMetadata};
use super::state::{Group, GroupState, InitialDelay};
use super::types::{Effects, JoinResult, JoinedMember, OffsetsRecord, SyncResult};
use super::{partition_for_group, OFFSET_METADATA_BYTES_MAX};
use crate::config::BrokerConfig;

/// The broker settings the coordinator follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub group_size_max: usize,
    pub offsets_partitions: i32,
    pub offsets_retention_ms: i64,
    pub offset_metadata_bytes_max: usize,
}

impl GroupConfig {
    pub fn from_broker(config: &BrokerConfig) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: i64::from(config.group_initial_rebalance_delay_ms),
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            group_size_max: usize::try_from(config.group_max_size).unwrap_or(usize::MAX),
            offsets_partitions: config.offsets_topic_num_partitions,
            offsets_retention_ms: i64::from(config.offsets_retention_minutes) * 60_000,
            offset_metadata_bytes_max: OFFSET_METADATA_BYTES_MAX,
        }
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig::from_broker(&BrokerConfig::default())
    }
}

/// The group coordinator of one shard.
#[derive(Debug, Clone)]
pub struct Coordinator {
    pub(super) config: GroupConfig,
    pub(super) groups: HashMap<String, Group>,
}

impl Coordinator {
    pub fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            config,
            groups: HashMap::new(),
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    pub fn group_ids(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.config.offsets_partitions)
    }

    /// Forgets the groups of `partition` (deleted, or led by another
    /// broker now). Members waiting in JoinGroup or SyncGroup are answered
    /// NOT_COORDINATOR, as Kafka's `onGroupUnloaded` does, so they look for
    /// the new coordinator and join there; the returned effects hold those
    /// replies and no record.
    pub fn unload_partition(&mut self, partition: i32) -> Effects {
        let partitions = self.config.offsets_partitions;
        let mut fx = Effects::default();
        self.groups.retain(|id, group| {
            if partition_for_group(id, partitions) != partition {
                return true;
            }
            for member in group.members.values_mut() {
                if let Some(token) = member.awaiting_join.take() {
                    let answer = JoinResult::error(ErrorCode::NOT_COORDINATOR, &member.member_id);
                    fx.join(token, answer);
                }
                if let Some(token) = member.awaiting_sync.take() {
                    fx.sync(token, SyncResult::error(ErrorCode::NOT_COORDINATOR));
                }
            }
            false
        });
        fx
    }

    /// The earliest timer of any group, if one is armed.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.groups.values().filter_map(group_deadline_ms).min()
    }

    /// Fires every timer due at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        let due: Vec<String> = self
            .groups
            .values()
            .filter(|g| group_deadline_ms(g).is_some_and(|d| d <= now_ms))
            .map(|g| g.group_id.clone())
            .collect();
        for group_id in due {
            if let Some(group) = self.groups.get_mut(&group_id) {
                fire_timers(&self.config, group, now_ms, &mut fx);
            }
        }
        fx
    }
}

fn group_deadline_ms(group: &Group) -> Option<i64> {
    let sessions = group
        .members
        .values()
        .filter(|m| !m.kept_alive())
        .map(|m| m.session_deadline_ms);
    let pending = group.pending_members.values().copied();
    sessions
        .chain(pending)
        .chain(group.join_deadline_ms)
        .chain(group.sync_deadline_ms)
        .min()
}

fn fire_timers(config: &GroupConfig, group: &mut Group, now_ms: i64, fx: &mut Effects) {
    let before = group.pending_members.len();
    group
        .pending_members
        .retain(|_, deadline| *deadline > now_ms);
    let expired: Vec<String> = group
        .members
        .values()
        .filter(|m| !m.kept_alive() && m.session_deadline_ms <= now_ms)
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in expired {
        remove_member(config, group, &member_id, now_ms, fx);
    }
    if before != group.pending_members.len() {
        try_complete_join(config, group, now_ms, fx);
    }
    if group.join_deadline_ms.is_some_and(|d| d <= now_ms) {
        on_join_deadline(config, group, now_ms, fx);
    }
    if group.sync_deadline_ms.is_some_and(|d| d <= now_ms) {
        on_sync_deadline(config, group, now_ms, fx);
    }
}

/// Starts a join phase: from Empty with the initial delay, otherwise
/// waiting up to the members' rebalance timeout. Members waiting in
/// SyncGroup learn that the generation they joined is over.
pub(super) fn prepare_rebalance(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    fx: &mut Effects,
) {
    if group.state == GroupState::CompletingRebalance {
        for member in group.members.values_mut() {
            member.assignment = bytes::Bytes::new();
            if let Some(token) = member.awaiting_sync.take() {
                fx.sync(token, SyncResult::error(ErrorCode::REBALANCE_IN_PROGRESS));
            }
        }
    }
    group.sync_deadline_ms = None;
    if group.state == GroupState::Empty {
        let delay_ms = config.initial_rebalance_delay_ms;
        group.initial_delay = Some(InitialDelay {
            remaining_ms: (group.rebalance_timeout_ms() - delay_ms).max(0),
            new_member_added: false,
        });
        group.join_deadline_ms = Some(now_ms.saturating_add(delay_ms));
    } else {
        group.initial_delay = None;
        group.join_deadline_ms = Some(now_ms.saturating_add(group.rebalance_timeout_ms()));
    }
    group.transition(GroupState::PreparingRebalance, now_ms);
}

pub(super) fn maybe_prepare_rebalance(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    fx: &mut Effects,
) {
    if matches!(
        group.state,
        GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
    ) {
        prepare_rebalance(config, group, now_ms, fx);
    }
}

/// Ends the join phase early once every member rejoined (never during the
/// initial delay, which exists to wait for more members).
pub(super) fn try_complete_join(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    fx: &mut Effects,
) {
    if group.state == GroupState::PreparingRebalance
        && group.initial_delay.is_none()
        && group.all_members_joined()
    {
        complete_join(config, group, now_ms, fx);
    }
}

fn on_join_deadline(config: &GroupConfig, group: &mut Group, now_ms: i64, fx: &mut Effects) {
    if let Some(delay) = group.initial_delay.as_mut() {
        if delay.new_member_added && delay.remaining_ms > 0 {
            let step_ms = config.initial_rebalance_delay_ms.min(delay.remaining_ms);
            delay.remaining_ms -= step_ms;
            delay.new_member_added = false;
            group.join_deadline_ms = Some(now_ms.saturating_add(step_ms));
            return;
        }
    }
    complete_join(config, group, now_ms, fx);
}

/// The join phase is over: dynamic members that did not rejoin are
/// removed, the generation advances, and every joined member gets its
/// JoinGroup answer (the leader with the member list).
fn complete_join(config: &GroupConfig, group: &mut Group, now_ms: i64, fx: &mut Effects) {
    group.join_deadline_ms = None;
    group.initial_delay = None;
    let gone: Vec<String> = group
        .members
        .values()
        .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in gone {
        forget_member(group, &member_id);
    }
    group.generation = group.generation.wrapping_add(1);
    if group.members.is_empty() {
        group.protocol = None;
        group.leader = None;
        group.transition(GroupState::Empty, now_ms);
        fx.records.extend(group_metadata_record(config, group));
        return;
    }
    group.protocol = group.select_protocol();
    elect_leader(group);
    group.transition(GroupState::CompletingRebalance, now_ms);
    group.sync_deadline_ms = Some(now_ms.saturating_add(group.rebalance_timeout_ms()));
    let protocol = group.protocol.clone().unwrap_or_default();
    let everyone: Vec<JoinedMember> = group
        .members
        .values()
        .map(|m| JoinedMember {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            metadata: m.metadata_for(&protocol),
        })
        .collect();
    let leader = group.leader.clone().unwrap_or_default();
    for member in group.members.values_mut() {
        member.synced = false;
        member.refresh_session(now_ms);
        if let Some(token) = member.awaiting_join.take() {
            let members = if member.member_id == leader {
                everyone.clone()
            } else {
                Vec::new()
            };
            let result = JoinResult {
                error_code: ErrorCode::NONE,
                generation_id: group.generation,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol.clone(),
                leader: leader.clone(),
                member_id: member.member_id.clone(),
                members,
                skip_assignment: false,
            };
            fx.join(token, result);
        }
    }
}

/// Keeps the leader if it rejoined, else picks a member that did.
fn elect_leader(group: &mut Group) {
    let rejoined = |id: &str| {
        group
            .members
            .get(id)
            .is_some_and(|m| m.awaiting_join.is_some())
    };
    if group.leader.as_deref().is_some_and(rejoined) {
        return;
    }
    let joined = group
        .members
        .values()
        .find(|m| m.awaiting_join.is_some())
        .or_else(|| group.members.values().next());
    group.leader = joined.map(|m| m.member_id.clone());
}

/// Members that never sent SyncGroup for this generation are removed.
fn on_sync_deadline(config: &GroupConfig, group: &mut Group, now_ms: i64, fx: &mut Effects) {
    group.sync_deadline_ms = None;
    if !matches!(
        group.state,
        GroupState::CompletingRebalance | GroupState::Stable
    ) {
        return;
    }
    let unsynced: Vec<String> = group
        .members
        .values()
        .filter(|m| !m.synced)
        .map(|m| m.member_id.clone())
        .collect();
    for member_id in unsynced {
        remove_member(config, group, &member_id, now_ms, fx);
    }
}

/// Drops a member from the maps without touching the group's state.
/// A request it still had waiting is answered UNKNOWN_MEMBER_ID.
pub(super) fn forget_member(group: &mut Group, member_id: &str) -> Option<super::Member> {
    let member = group.members.remove(member_id)?;
    if let Some(instance) = &member.group_instance_id {
        if group.static_members.get(instance).map(String::as_str) == Some(member_id) {
            group.static_members.remove(instance);
        }
    }
    if group.is_leader(member_id) {
        group.leader = group.members.keys().next().cloned();
    }
    Some(member)
}

/// A member left or expired: the group rebalances (or, mid-join, may now
/// be complete).
pub(super) fn remove_member(
    config: &GroupConfig,
    group: &mut Group,
    member_id: &str,
    now_ms: i64,
    fx: &mut Effects,
) {
    let Some(member) = forget_member(group, member_id) else {
        return;
    };
    if let Some(token) = member.awaiting_join {
        fx.join(
            token,
            JoinResult::error(ErrorCode::UNKNOWN_MEMBER_ID, member_id),
        );
    }
    if let Some(token) = member.awaiting_sync {
        fx.sync(token, SyncResult::error(ErrorCode::UNKNOWN_MEMBER_ID));
    }
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(config, group, now_ms, fx);
            try_complete_join(config, group, now_ms, fx);
        }
        GroupState::PreparingRebalance => try_complete_join(config, group, now_ms, fx),
        GroupState::Empty | GroupState::Dead => {}
    }
}

/// The group's current generation as a `__consumer_offsets` record.
pub(super) fn group_metadata_record(config: &GroupConfig, group: &Group) -> Option<OffsetsRecord> {
    let protocol = group.protocol.clone().unwrap_or_default();
    let value = GroupMetadataValue {
        protocol_type: group.protocol_type.clone().unwrap_or_default(),
        generation: group.generation,
        protocol: group.protocol.clone(),
        leader: group.leader.clone(),
        current_state_timestamp_ms: group.state_since_ms,
        members: group
            .members
            .values()
            .map(|m| MemberMetadata {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.metadata_for(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect(),
    };
    encode_record(config, &group.group_id, value.encode())
}

fn encode_record(
    config: &GroupConfig,
    group_id: &str,
    value: Result<bytes::Bytes, super::schema::SchemaError>,
) -> Option<OffsetsRecord> {
    // Encoding only fails on strings over 32767 bytes, which no request
    // can carry into a group (Kafka's STRING fields are INT16-sized).
    match (encode_group_metadata_key(group_id), value) {
        (Ok(key), Ok(value)) => Some(OffsetsRecord {
            partition: partition_for_group(group_id, config.offsets_partitions),
            key,
            value: Some(value),
        }),
        _ => None,
    }
}
