//! Committed offsets and the group admin calls on the [`Coordinator`]:
//! OffsetCommit / OffsetFetch / OffsetDelete, DeleteGroups, describe and
//! list, offset expiry (KIP-211), and the rebuild from the records of
//! `__consumer_offsets`.

use rafka_proto::error::ErrorCode;
use std::collections::BTreeMap;

use bytes::Bytes;

use super::coordinator::{Coordinator, GroupConfig};
use super::partition_for_group;
use super::schema::{
    encode_group_metadata_key, GroupMetadataValue, OffsetCommitKey, OffsetCommitValue, RecordKey,
    SchemaError,
};
use super::state::{Group, GroupState, Member};
use super::types::{
    CommitPlan, CommitRequest, CommittedOffset, DescribedMember, FetchedOffset, GroupDescription,
    GroupListing, OffsetsRecord,
};

/// Per topic, per partition: what OffsetDelete answers.
pub type PartitionCodes = Vec<(String, Vec<(i32, ErrorCode)>)>;

impl Coordinator {
    /// Validates an OffsetCommit. Persist `plan.records`, then call
    /// [`Coordinator::complete_commit`]; the plan's codes are the answer.
    pub fn commit_offsets(&mut self, now_ms: i64, req: &CommitRequest) -> CommitPlan {
        let code = self.commit_check(now_ms, req);
        self.plan_commit(now_ms, req, code)
    }

    /// The plan of a commit whose group-level check answered `code`.
    pub(super) fn plan_commit(
        &self,
        now_ms: i64,
        req: &CommitRequest,
        code: ErrorCode,
    ) -> CommitPlan {
        let mut plan = CommitPlan {
            group_id: req.group_id.clone(),
            ..CommitPlan::default()
        };
        for (topic, partitions) in &req.topics {
            let mut codes_out = Vec::with_capacity(partitions.len());
            for p in partitions {
                let metadata = p.metadata.clone().unwrap_or_default();
                let code = if code != ErrorCode::NONE {
                    code
                } else if metadata.len() > self.config.offset_metadata_bytes_max {
                    ErrorCode::OFFSET_METADATA_TOO_LARGE
                } else {
                    let offset = CommittedOffset {
                        offset: p.offset,
                        leader_epoch: p.leader_epoch,
                        metadata,
                        commit_timestamp_ms: now_ms,
                        expire_timestamp_ms: -1,
                    };
                    match offset_record(&self.config, &req.group_id, topic, p.partition, &offset) {
                        Some(record) => {
                            plan.records.push(record);
                            plan.accepted.push((topic.clone(), p.partition, offset));
                            ErrorCode::NONE
                        }
                        None => ErrorCode::OFFSET_METADATA_TOO_LARGE,
                    }
                };
                codes_out.push((p.partition, code));
            }
            plan.results.push((topic.clone(), codes_out));
        }
        plan
    }

    /// Kafka's group-level checks of a commit (`doCommitOffsets`).
    pub(super) fn commit_check(&mut self, now_ms: i64, req: &CommitRequest) -> ErrorCode {
        if req.group_id.is_empty() {
            return ErrorCode::INVALID_GROUP_ID;
        }
        let group = match self.groups.get_mut(&req.group_id) {
            Some(group) => group,
            // Not using Kafka for membership: a standalone commit.
            None if req.generation_id < 0 => self
                .groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id, now_ms)),
            None => return ErrorCode::ILLEGAL_GENERATION,
        };
        if group.state == GroupState::Dead {
            return ErrorCode::COORDINATOR_NOT_AVAILABLE;
        }
        if group.is_fenced(req.group_instance_id.as_deref(), &req.member_id) {
            return ErrorCode::FENCED_INSTANCE_ID;
        }
        if req.generation_id < 0 && group.state == GroupState::Empty {
            return ErrorCode::NONE;
        }
        if group.state == GroupState::CompletingRebalance {
            return ErrorCode::REBALANCE_IN_PROGRESS;
        }
        let generation = group.generation;
        let Some(member) = group.members.get_mut(&req.member_id) else {
            return ErrorCode::UNKNOWN_MEMBER_ID;
        };
        if req.generation_id != generation {
            return ErrorCode::ILLEGAL_GENERATION;
        }
        member.refresh_session(now_ms);
        ErrorCode::NONE
    }

    /// The records of `plan` are durable: its offsets become visible.
    pub fn complete_commit(&mut self, plan: CommitPlan) {
        let Some(group) = self.groups.get_mut(&plan.group_id) else {
            return;
        };
        for (topic, partition, offset) in plan.accepted {
            group.offsets.insert((topic, partition), offset);
        }
    }

    /// OffsetFetch for one group: the listed partitions, or (None) every
    /// committed one. Nothing committed reads as offset -1.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> Vec<(String, Vec<FetchedOffset>)> {
        let offsets = self.groups.get(group_id).map(|g| &g.offsets);
        let lookup = |topic: &str, partition: i32| {
            let found = offsets.and_then(|o| o.get(&(topic.to_string(), partition)));
            fetched(partition, found)
        };
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, parts)| {
                    let parts = parts.iter().map(|p| lookup(topic, *p)).collect();
                    (topic.clone(), parts)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<&str, Vec<FetchedOffset>> = BTreeMap::new();
                for ((topic, partition), offset) in offsets.into_iter().flatten() {
                    by_topic
                        .entry(topic)
                        .or_default()
                        .push(fetched(*partition, Some(offset)));
                }
                by_topic
                    .into_iter()
                    .map(|(t, p)| (t.to_string(), p))
                    .collect()
            }
        }
    }

    /// DescribeGroups for one group: an unknown group reads as Dead.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(group) = self.groups.get(group_id) else {
            return GroupDescription {
                error_code: ErrorCode::NONE,
                state: GroupState::Dead.name(),
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            };
        };
        // Kafka shows member metadata and assignments only when Stable.
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol.clone().unwrap_or_default();
        let members = group
            .members
            .values()
            .map(|m| DescribedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect();
        GroupDescription {
            error_code: ErrorCode::NONE,
            state: group.state.name(),
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { protocol } else { String::new() },
            members,
        }
    }

    /// Every group of this coordinator, sorted by id.
    pub fn list(&self) -> Vec<GroupListing> {
        let mut listed: Vec<GroupListing> = self
            .groups
            .values()
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state.name(),
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed
    }

    /// DeleteGroups for one group: only an Empty group goes; its offsets
    /// and metadata become tombstones.
    pub fn delete_group(&mut self, group_id: &str) -> Result<Vec<OffsetsRecord>, ErrorCode> {
        let group = self
            .groups
            .get(group_id)
            .ok_or(ErrorCode::GROUP_ID_NOT_FOUND)?;
        match group.state {
            GroupState::Dead => return Err(ErrorCode::GROUP_ID_NOT_FOUND),
            GroupState::Empty => {}
            _ => return Err(ErrorCode::NON_EMPTY_GROUP),
        }
        let Some(group) = self.groups.remove(group_id) else {
            return Err(ErrorCode::GROUP_ID_NOT_FOUND);
        };
        let mut records: Vec<OffsetsRecord> = group
            .offsets
            .keys()
            .filter_map(|(topic, partition)| {
                offset_tombstone(&self.config, group_id, topic, *partition)
            })
            .collect();
        records.extend(group_tombstone(&self.config, group_id));
        Ok(records)
    }

    /// OffsetDelete: refused per partition while members consume the topic.
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        topics: &[(String, Vec<i32>)],
    ) -> Result<(PartitionCodes, Vec<OffsetsRecord>), ErrorCode> {
        let config = &self.config;
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(ErrorCode::GROUP_ID_NOT_FOUND)?;
        match group.state {
            GroupState::Dead => return Err(ErrorCode::GROUP_ID_NOT_FOUND),
            GroupState::Empty => {}
            _ if group.protocol_type.as_deref() == Some(super::CONSUMER_PROTOCOL_TYPE) => {}
            _ => return Err(ErrorCode::NON_EMPTY_GROUP),
        }
        let mut results = Vec::with_capacity(topics.len());
        let mut records = Vec::new();
        for (topic, partitions) in topics {
            let subscribed = group.is_subscribed_to(topic);
            let mut out = Vec::with_capacity(partitions.len());
            for partition in partitions {
                if subscribed {
                    out.push((*partition, ErrorCode::GROUP_SUBSCRIBED_TO_TOPIC));
                    continue;
                }
                if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                    records.extend(offset_tombstone(config, group_id, topic, *partition));
                }
                out.push((*partition, ErrorCode::NONE));
            }
            results.push((topic.clone(), out));
        }
        Ok((results, records))
    }

    /// Removes offsets past `offsets.retention.minutes` (KIP-211): an Empty
    /// group's count from when it became Empty, a standalone group's and
    /// the unsubscribed topics of a Stable consumer group's from their
    /// commit. An Empty group left without offsets is deleted.
    pub fn expire_offsets(&mut self, now_ms: i64) -> Vec<OffsetsRecord> {
        let mut records = Vec::new();
        let mut dead = Vec::new();
        for group in self.groups.values_mut() {
            records.extend(expire_group_offsets(&self.config, group, now_ms));
            if group.state == GroupState::Empty
                && group.offsets.is_empty()
                && group.pending_members.is_empty()
                && group.join_deadline_ms.is_none()
            {
                dead.push(group.group_id.clone());
            }
        }
        for group_id in dead {
            if let Some(group) = self.groups.get(&group_id) {
                // A group that only ever committed offsets has no metadata
                // record to delete.
                if group.protocol_type.is_some() || group.generation > 0 {
                    records.extend(group_tombstone(&self.config, &group_id));
                }
            }
            self.groups.remove(&group_id);
        }
        records
    }

    /// Applies one record of `__consumer_offsets` while rebuilding: the
    /// latest record per key wins, a tombstone deletes.
    pub fn replay(
        &mut self,
        now_ms: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), SchemaError> {
        match RecordKey::decode(key)? {
            RecordKey::OffsetCommit(key) => {
                let parsed = value.map(OffsetCommitValue::decode).transpose()?;
                let group = self
                    .groups
                    .entry(key.group.clone())
                    .or_insert_with(|| Group::new(&key.group, now_ms));
                let tp = (key.topic, key.partition);
                match parsed {
                    Some(v) => {
                        group.offsets.insert(tp, committed_of(v));
                    }
                    None => {
                        group.offsets.remove(&tp);
                    }
                }
                self.drop_if_blank(&key.group);
            }
            RecordKey::GroupMetadata { group } => {
                let parsed = value.map(GroupMetadataValue::decode).transpose()?;
                let offsets = self
                    .groups
                    .remove(&group)
                    .map(|g| g.offsets)
                    .unwrap_or_default();
                let mut loaded = match parsed {
                    Some(v) => loaded_group(&group, v, now_ms),
                    None => Group::new(&group, now_ms),
                };
                loaded.offsets = offsets;
                self.groups.insert(group.clone(), loaded);
                self.drop_if_blank(&group);
            }
            RecordKey::Other { .. } => {}
        }
        Ok(())
    }

    /// A group with no metadata, members or offsets does not exist.
    pub(super) fn drop_if_blank(&mut self, group_id: &str) {
        let blank = self.groups.get(group_id).is_some_and(|g| {
            g.offsets.is_empty()
                && g.pending_txn_offsets.is_empty()
                && g.members.is_empty()
                && g.protocol_type.is_none()
                && g.generation == 0
        });
        if blank {
            self.groups.remove(group_id);
        }
    }
}

fn expire_group_offsets(
    config: &GroupConfig,
    group: &mut Group,
    now_ms: i64,
) -> Vec<OffsetsRecord> {
    let retention_ms = config.offsets_retention_ms;
    let from_state_change = match (&group.protocol_type, group.state) {
        (Some(_), GroupState::Empty) => Some(group.state_since_ms),
        (None, _) => None,
        (Some(_), GroupState::Stable) => None,
        _ => return Vec::new(),
    };
    let keep_topics = match (&group.protocol_type, group.state) {
        (Some(_), GroupState::Stable) => match group.subscribed_topics() {
            Some(topics) => Some(topics),
            None => return Vec::new(),
        },
        _ => None,
    };
    let expired: Vec<(String, i32)> = group
        .offsets
        .iter()
        .filter(|((topic, _), _)| keep_topics.as_ref().is_none_or(|k| !k.contains(topic)))
        .filter(|(_, o)| {
            if o.expire_timestamp_ms >= 0 {
                return now_ms >= o.expire_timestamp_ms;
            }
            let base_ms = from_state_change.unwrap_or(o.commit_timestamp_ms);
            now_ms.saturating_sub(base_ms) >= retention_ms
        })
        .map(|(tp, _)| tp.clone())
        .collect();
    let mut records = Vec::with_capacity(expired.len());
    for (topic, partition) in expired {
        group.offsets.remove(&(topic.clone(), partition));
        records.extend(offset_tombstone(config, &group.group_id, &topic, partition));
    }
    records
}

fn loaded_group(group_id: &str, v: GroupMetadataValue, now_ms: i64) -> Group {
    let mut group = Group::new(group_id, now_ms);
    group.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
    group.generation = v.generation;
    group.protocol = v.protocol.clone();
    group.leader = v.leader;
    let protocol = v.protocol.unwrap_or_default();
    for m in v.members {
        if let Some(instance) = &m.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), m.member_id.clone());
        }
        let mut member = Member {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocols: vec![(protocol.clone(), m.subscription)],
            assignment: m.assignment,
            awaiting_join: None,
            awaiting_sync: None,
            session_deadline_ms: 0,
            synced: true,
        };
        // Members get a full session from the load to show up again.
        member.refresh_session(now_ms);
        group.members.insert(m.member_id, member);
    }
    let state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    let since_ms = if v.current_state_timestamp_ms >= 0 {
        v.current_state_timestamp_ms
    } else {
        now_ms
    };
    group.transition(state, since_ms);
    group
}

fn committed_of(v: OffsetCommitValue) -> CommittedOffset {
    CommittedOffset {
        offset: v.offset,
        leader_epoch: v.leader_epoch,
        metadata: v.metadata,
        commit_timestamp_ms: v.commit_timestamp_ms,
        expire_timestamp_ms: v.expire_timestamp_ms,
    }
}

fn fetched(partition: i32, offset: Option<&CommittedOffset>) -> FetchedOffset {
    match offset {
        Some(o) => FetchedOffset {
            partition,
            offset: o.offset,
            leader_epoch: o.leader_epoch,
            metadata: o.metadata.clone(),
            error_code: ErrorCode::NONE,
        },
        None => FetchedOffset {
            partition,
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            error_code: ErrorCode::NONE,
        },
    }
}

fn offset_key(group_id: &str, topic: &str, partition: i32) -> Option<Bytes> {
    let key = OffsetCommitKey {
        group: group_id.to_string(),
        topic: topic.to_string(),
        partition,
    };
    key.encode().ok()
}

fn offset_record(
    config: &GroupConfig,
    group_id: &str,
    topic: &str,
    partition: i32,
    offset: &CommittedOffset,
) -> Option<OffsetsRecord> {
    let value = OffsetCommitValue {
        offset: offset.offset,
        leader_epoch: offset.leader_epoch,
        metadata: offset.metadata.clone(),
        commit_timestamp_ms: offset.commit_timestamp_ms,
        expire_timestamp_ms: -1,
    };
    Some(OffsetsRecord {
        partition: partition_for_group(group_id, config.offsets_partitions),
        key: offset_key(group_id, topic, partition)?,
        value: Some(value.encode().ok()?),
    })
}

fn offset_tombstone(
    config: &GroupConfig,
    group_id: &str,
    topic: &str,
    partition: i32,
) -> Option<OffsetsRecord> {
    Some(OffsetsRecord {
        partition: partition_for_group(group_id, config.offsets_partitions),
        key: offset_key(group_id, topic, partition)?,
        value: None,
    })
}

fn group_tombstone(config: &GroupConfig, group_id: &str) -> Option<OffsetsRecord> {
    Some(OffsetsRecord {
        partition: partition_for_group(group_id, config.offsets_partitions),
        key: encode_group_metadata_key(group_id).ok()?,
        value: None,
    })
}
