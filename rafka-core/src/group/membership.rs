//! JoinGroup, SyncGroup, Heartbeat and LeaveGroup on the [`Coordinator`],
//! with Kafka's checks in Kafka's order (GroupCoordinator.scala).

use bytes::Bytes;
use rafka_proto::error::ErrorCode;

use super::coordinator::{
    forget_member, group_metadata_record, maybe_prepare_rebalance, remove_member,
    try_complete_join, Coordinator, GroupConfig,
};
use super::state::{Group, GroupState, Member};
use super::types::{
    Effects, JoinRequest, JoinResult, JoinedMember, LeaveResult, LeavingMember, ReplyToken,
    SyncRequest, SyncResult,
};

impl Coordinator {
    /// JoinGroup. The reply to `token` is in these effects or a later
    /// call's (when the join phase ends).
    pub fn join(&mut self, now_ms: i64, token: ReplyToken, req: JoinRequest) -> Effects {
        let mut fx = Effects::default();
        if let Err(code) = self.join_checked(now_ms, token, &req, &mut fx) {
            fx.join(token, JoinResult::error(code, &req.member_id));
        }
        fx
    }

    fn join_checked(
        &mut self,
        now_ms: i64,
        token: ReplyToken,
        req: &JoinRequest,
        fx: &mut Effects,
    ) -> Result<(), ErrorCode> {
        if req.group_id.is_empty() {
            return Err(ErrorCode::INVALID_GROUP_ID);
        }
        let config = &self.config;
        if req.session_timeout_ms < config.min_session_timeout_ms
            || req.session_timeout_ms > config.max_session_timeout_ms
        {
            return Err(ErrorCode::INVALID_SESSION_TIMEOUT);
        }
        let known = !req.member_id.is_empty();
        if known && !self.groups.contains_key(&req.group_id) {
            return Err(ErrorCode::UNKNOWN_MEMBER_ID);
        }
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id, now_ms));
        if group.state == GroupState::Dead {
            return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
        }
        if !group.supports(&req.protocol_type, &req.protocols) {
            return Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
        }
        let pending = group.pending_members.contains_key(&req.member_id);
        if known && !pending {
            return join_current_member(config, group, now_ms, token, req, fx);
        }
        if !group.members.contains_key(&req.member_id)
            && group.members.len() + group.pending_members.len() - usize::from(pending)
                >= config.group_size_max
        {
            return Err(ErrorCode::GROUP_MAX_SIZE_REACHED);
        }
        join_new_member(config, group, now_ms, token, req, fx)
    }

    /// SyncGroup. The reply to `token` is in these effects or a later
    /// call's (when the leader sends the assignment).
    pub fn sync(&mut self, now_ms: i64, token: ReplyToken, req: SyncRequest) -> Effects {
        let mut fx = Effects::default();
        let config = &self.config;
        let result = match self.groups.get_mut(&req.group_id) {
            None => Err(ErrorCode::UNKNOWN_MEMBER_ID),
            Some(group) => sync_checked(config, group, now_ms, token, &req, &mut fx),
        };
        if let Err(code) = result {
            fx.sync(token, SyncResult::error(code));
        }
        fx
    }

    /// Heartbeat: the error code Kafka answers with.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> ErrorCode {
        let Some(group) = self.groups.get_mut(group_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        if group.state == GroupState::Dead {
            return ErrorCode::COORDINATOR_NOT_AVAILABLE;
        }
        if group.is_fenced(group_instance_id, member_id) {
            return ErrorCode::FENCED_INSTANCE_ID;
        }
        let state = group.state;
        let generation = group.generation;
        let Some(member) = group.members.get_mut(member_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        if generation_id != generation {
            return ErrorCode::ILLEGAL_GENERATION;
        }
        match state {
            GroupState::Empty | GroupState::Dead => ErrorCode::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                member.refresh_session(now_ms);
                ErrorCode::REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.refresh_session(now_ms);
                ErrorCode::NONE
            }
        }
    }

    /// LeaveGroup, by member id or (static members) group.instance.id.
    pub fn leave(
        &mut self,
        now_ms: i64,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> (LeaveResult, Effects) {
        let mut fx = Effects::default();
        let config = &self.config;
        let Some(group) = self.groups.get_mut(group_id) else {
            let members = members
                .into_iter()
                .map(|m| (m, ErrorCode::UNKNOWN_MEMBER_ID))
                .collect();
            return (
                LeaveResult {
                    error_code: ErrorCode::NONE,
                    members,
                },
                fx,
            );
        };
        if group.state == GroupState::Dead {
            let result = LeaveResult {
                error_code: ErrorCode::COORDINATOR_NOT_AVAILABLE,
                members: Vec::new(),
            };
            return (result, fx);
        }
        let mut results = Vec::with_capacity(members.len());
        for leaving in members {
            let code = leave_one(config, group, now_ms, &leaving, &mut fx);
            results.push((leaving, code));
        }
        let result = LeaveResult {
            error_code: ErrorCode::NONE,
            members: results,
        };
        (result, fx)
    }
}

fn leave_one(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    leaving: &LeavingMember,
    fx: &mut Effects,
) -> ErrorCode {
    let member_id = match &leaving.group_instance_id {
        Some(instance) => match group.static_members.get(instance) {
            None => return ErrorCode::UNKNOWN_MEMBER_ID,
            Some(owner) if !leaving.member_id.is_empty() && *owner != leaving.member_id => {
                return ErrorCode::FENCED_INSTANCE_ID
            }
            Some(owner) => owner.clone(),
        },
        None => leaving.member_id.clone(),
    };
    if group.pending_members.remove(&member_id).is_some() {
        try_complete_join(config, group, now_ms, fx);
        return ErrorCode::NONE;
    }
    if !group.members.contains_key(&member_id) {
        return ErrorCode::UNKNOWN_MEMBER_ID;
    }
    remove_member(config, group, &member_id, now_ms, fx);
    ErrorCode::NONE
}

fn new_member(req: &JoinRequest, member_id: String, token: ReplyToken) -> Member {
    let rebalance_timeout_ms = if req.rebalance_timeout_ms > 0 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    Member {
        member_id,
        group_instance_id: req.group_instance_id.clone(),
        client_id: req.client_id.clone(),
        client_host: req.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms,
        protocols: req.protocols.clone(),
        assignment: Bytes::new(),
        awaiting_join: Some(token),
        awaiting_sync: None,
        session_deadline_ms: 0,
        synced: false,
    }
}

fn join_new_member(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    token: ReplyToken,
    req: &JoinRequest,
    fx: &mut Effects,
) -> Result<(), ErrorCode> {
    let member_id = if req.member_id.is_empty() {
        format!("{}-{}", req.client_id, uuid::Uuid::new_v4())
    } else {
        req.member_id.clone()
    };
    if req.member_id.is_empty() {
        if let Some(instance) = &req.group_instance_id {
            if let Some(old_id) = group.static_members.get(instance).cloned() {
                return join_static_replacing(
                    config, group, now_ms, token, req, old_id, member_id, fx,
                );
            }
        } else if req.require_known_member_id {
            let deadline_ms = now_ms.saturating_add(i64::from(req.session_timeout_ms));
            group.pending_members.insert(member_id.clone(), deadline_ms);
            fx.join(
                token,
                JoinResult::error(ErrorCode::MEMBER_ID_REQUIRED, &member_id),
            );
            return Ok(());
        }
    }
    group.pending_members.remove(&member_id);
    let member = new_member(req, member_id, token);
    add_member_and_rebalance(config, group, now_ms, member, &req.protocol_type, fx);
    Ok(())
}

fn add_member_and_rebalance(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    mut member: Member,
    protocol_type: &str,
    fx: &mut Effects,
) {
    if group.members.is_empty() {
        group.protocol_type = Some(protocol_type.to_string());
    }
    member.refresh_session(now_ms);
    if let Some(delay) = group.initial_delay.as_mut() {
        delay.new_member_added = true;
    }
    if group.leader.is_none() {
        group.leader = Some(member.member_id.clone());
    }
    if let Some(instance) = &member.group_instance_id {
        group
            .static_members
            .insert(instance.clone(), member.member_id.clone());
    }
    group.members.insert(member.member_id.clone(), member);
    maybe_prepare_rebalance(config, group, now_ms, fx);
    try_complete_join(config, group, now_ms, fx);
}

/// A known member rejoins: a rebalance unless nothing changed (a follower
/// re-sending the same protocols gets the current generation back).
fn join_current_member(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    token: ReplyToken,
    req: &JoinRequest,
    fx: &mut Effects,
) -> Result<(), ErrorCode> {
    if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
        return Err(ErrorCode::FENCED_INSTANCE_ID);
    }
    let Some(member) = group.members.get(&req.member_id) else {
        return Err(ErrorCode::UNKNOWN_MEMBER_ID);
    };
    let unchanged = member.protocols == req.protocols;
    let is_leader = group.is_leader(&req.member_id);
    match group.state {
        GroupState::Empty | GroupState::Dead => return Err(ErrorCode::UNKNOWN_MEMBER_ID),
        GroupState::CompletingRebalance if unchanged => {
            fx.join(token, current_generation(group, &req.member_id, is_leader));
        }
        GroupState::Stable if unchanged && !is_leader => {
            fx.join(token, current_generation(group, &req.member_id, false));
        }
        _ => update_member_and_rebalance(config, group, now_ms, token, req, &req.member_id, fx),
    }
    if let Some(member) = group.members.get_mut(&req.member_id) {
        member.refresh_session(now_ms);
    }
    Ok(())
}

fn update_member_and_rebalance(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    token: ReplyToken,
    req: &JoinRequest,
    member_id: &str,
    fx: &mut Effects,
) {
    if let Some(member) = group.members.get_mut(member_id) {
        member.protocols = req.protocols.clone();
        member.session_timeout_ms = req.session_timeout_ms;
        if req.rebalance_timeout_ms > 0 {
            member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        // A second JoinGroup replaces the first, whose client gave up.
        if let Some(old) = member.awaiting_join.replace(token) {
            fx.join(
                old,
                JoinResult::error(ErrorCode::REBALANCE_IN_PROGRESS, member_id),
            );
        }
    }
    maybe_prepare_rebalance(config, group, now_ms, fx);
    try_complete_join(config, group, now_ms, fx);
}

/// The JoinGroup answer for the generation in place.
fn current_generation(group: &Group, member_id: &str, with_members: bool) -> JoinResult {
    let protocol = group.protocol.clone().unwrap_or_default();
    let members = if with_members {
        group
            .members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinResult {
        error_code: ErrorCode::NONE,
        generation_id: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol.clone(),
        leader: group.leader.clone().unwrap_or_default(),
        member_id: member_id.to_string(),
        members,
        skip_assignment: false,
    }
}

/// A static member restarted (known group.instance.id, new member id):
/// the old id is fenced and the new one takes its place. In a Stable group
/// whose protocol choice does not change that is all: no rebalance, the
/// member gets the current generation and its old assignment.
#[allow(clippy::too_many_arguments)]
fn join_static_replacing(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    token: ReplyToken,
    req: &JoinRequest,
    old_id: String,
    new_id: String,
    fx: &mut Effects,
) -> Result<(), ErrorCode> {
    let was_leader = group.is_leader(&old_id);
    let Some(mut member) = forget_member(group, &old_id) else {
        return Err(ErrorCode::UNKNOWN_MEMBER_ID);
    };
    if let Some(old) = member.awaiting_join.take() {
        fx.join(
            old,
            JoinResult::error(ErrorCode::FENCED_INSTANCE_ID, &old_id),
        );
    }
    if let Some(old) = member.awaiting_sync.take() {
        fx.sync(old, SyncResult::error(ErrorCode::FENCED_INSTANCE_ID));
    }
    let old_protocols = std::mem::replace(&mut member.protocols, req.protocols.clone());
    member.member_id = new_id.clone();
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    member.session_timeout_ms = req.session_timeout_ms;
    member.refresh_session(now_ms);
    let instance = req.group_instance_id.clone().unwrap_or_default();
    group.static_members.insert(instance, new_id.clone());
    group.members.insert(new_id.clone(), member);
    // forget_member handed leadership to another member; give it back.
    if was_leader {
        group.leader = Some(new_id.clone());
    }
    let keeps_protocol = group.state == GroupState::Stable
        && group.select_protocol() == group.protocol
        && old_protocols
            .iter()
            .map(|(n, _)| n)
            .eq(req.protocols.iter().map(|(n, _)| n));
    if !keeps_protocol {
        update_member_and_rebalance(config, group, now_ms, token, req, &new_id, fx);
        return Ok(());
    }
    if let Some(member) = group.members.get_mut(&new_id) {
        member.synced = true;
    }
    fx.records.extend(group_metadata_record(config, group));
    let is_leader = group.is_leader(&new_id);
    let mut result = current_generation(group, &new_id, is_leader);
    result.skip_assignment = is_leader;
    fx.join(token, result);
    Ok(())
}

fn sync_checked(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    token: ReplyToken,
    req: &SyncRequest,
    fx: &mut Effects,
) -> Result<(), ErrorCode> {
    if group.state == GroupState::Dead {
        return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE);
    }
    if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
        return Err(ErrorCode::FENCED_INSTANCE_ID);
    }
    if !group.members.contains_key(&req.member_id) {
        return Err(ErrorCode::UNKNOWN_MEMBER_ID);
    }
    if req.generation_id != group.generation {
        return Err(ErrorCode::ILLEGAL_GENERATION);
    }
    let type_differs = req.protocol_type.is_some() && req.protocol_type != group.protocol_type;
    let name_differs = req.protocol_name.is_some() && req.protocol_name != group.protocol;
    if type_differs || name_differs {
        return Err(ErrorCode::INCONSISTENT_GROUP_PROTOCOL);
    }
    match group.state {
        GroupState::Empty | GroupState::Dead => Err(ErrorCode::UNKNOWN_MEMBER_ID),
        GroupState::PreparingRebalance => Err(ErrorCode::REBALANCE_IN_PROGRESS),
        GroupState::CompletingRebalance => {
            if let Some(member) = group.members.get_mut(&req.member_id) {
                member.synced = true;
                member.refresh_session(now_ms);
                if let Some(old) = member.awaiting_sync.replace(token) {
                    fx.sync(old, SyncResult::error(ErrorCode::REBALANCE_IN_PROGRESS));
                }
            }
            if group.is_leader(&req.member_id) {
                complete_sync(config, group, now_ms, &req.assignments, fx);
            }
            Ok(())
        }
        GroupState::Stable => {
            let protocol_type = group.protocol_type.clone();
            let protocol_name = group.protocol.clone();
            if let Some(member) = group.members.get_mut(&req.member_id) {
                member.synced = true;
                member.refresh_session(now_ms);
                let result = SyncResult {
                    error_code: ErrorCode::NONE,
                    protocol_type,
                    protocol_name,
                    assignment: member.assignment.clone(),
                };
                fx.sync(token, result);
            }
            clear_sync_deadline_if_all_synced(group);
            Ok(())
        }
    }
}

/// The leader's assignment arrived: the group is Stable, its generation is
/// written, and every member waiting in SyncGroup gets its part once the
/// record is durable.
fn complete_sync(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
    assignments: &[(String, Bytes)],
    fx: &mut Effects,
) {
    for member in group.members.values_mut() {
        member.assignment = assignments
            .iter()
            .find(|(id, _)| *id == member.member_id)
            .map(|(_, a)| a.clone())
            .unwrap_or_default();
    }
    group.transition(GroupState::Stable, now_ms);
    fx.records.extend(group_metadata_record(config, group));
    for member in group.members.values_mut() {
        if let Some(token) = member.awaiting_sync.take() {
            let result = SyncResult {
                error_code: ErrorCode::NONE,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol.clone(),
                assignment: member.assignment.clone(),
            };
            fx.sync(token, result);
        }
    }
    clear_sync_deadline_if_all_synced(group);
}

fn clear_sync_deadline_if_all_synced(group: &mut Group) {
    if group.members.values().all(|m| m.synced) {
        group.sync_deadline_ms = None;
    }
}
