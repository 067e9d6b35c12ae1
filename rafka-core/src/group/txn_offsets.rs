//! Transactional offset commits (TxnOffsetCommit, KIP-98): the offsets are
//! written to `__consumer_offsets` inside the producer's transaction and
//! kept pending per producer id; the transaction's marker on the group's
//! partition makes them the committed offsets (COMMIT) or drops them
//! (ABORT). OffsetFetch with `require_stable` answers
//! UNSTABLE_OFFSET_COMMIT for a partition with a pending offset.

use rafka_proto::error::ErrorCode;

use super::coordinator::Coordinator;
use super::schema::{OffsetCommitValue, RecordKey, SchemaError};
use super::state::{Group, GroupState};
use super::types::{CommitPlan, CommitRequest, CommittedOffset};

impl Coordinator {
    /// Validates a TxnOffsetCommit. Persist `plan.records` in the
    /// producer's transaction, then call
    /// [`Coordinator::complete_txn_commit`].
    ///
    /// As Kafka, membership is checked only when the request names a
    /// member or generation (v3+ with a group-managed consumer); a
    /// producer that sends offsets of a group it is not a member of (v0-2,
    /// or `send_offsets_to_transaction` with only a group id) is accepted.
    pub fn commit_txn_offsets(&mut self, now_ms: i64, req: &CommitRequest) -> CommitPlan {
        let named_member =
            req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some();
        let code = if req.group_id.is_empty() {
            ErrorCode::INVALID_GROUP_ID
        } else if named_member {
            self.commit_check(now_ms, req)
        } else {
            let group = self
                .groups
                .entry(req.group_id.clone())
                .or_insert_with(|| Group::new(&req.group_id, now_ms));
            match group.state {
                GroupState::Dead => ErrorCode::COORDINATOR_NOT_AVAILABLE,
                _ => ErrorCode::NONE,
            }
        };
        self.plan_commit(now_ms, req, code)
    }

    /// The records of `plan` are durable: its offsets are pending in
    /// `producer_id`'s transaction.
    pub fn complete_txn_commit(&mut self, plan: CommitPlan, producer_id: i64) {
        let Some(group) = self.groups.get_mut(&plan.group_id) else {
            return;
        };
        let pending = group.pending_txn_offsets.entry(producer_id).or_default();
        for (topic, partition, offset) in plan.accepted {
            pending.insert((topic, partition), offset);
        }
    }

    /// A marker of `producer_id`'s transaction reached `__consumer_offsets`
    /// partition `partition`: its pending offsets in the groups of that
    /// partition become committed (COMMIT) or are dropped (ABORT).
    pub fn complete_txn(&mut self, partition: i32, producer_id: i64, commit: bool) {
        let offsets_partitions = self.config.offsets_partitions;
        let mut emptied = Vec::new();
        for (group_id, group) in self.groups.iter_mut() {
            if super::partition_for_group(group_id, offsets_partitions) != partition {
                continue;
            }
            let Some(pending) = group.pending_txn_offsets.remove(&producer_id) else {
                continue;
            };
            if commit {
                group.offsets.extend(pending);
            }
            emptied.push(group_id.clone());
        }
        for group_id in emptied {
            self.drop_if_blank(&group_id);
        }
    }

    /// Whether some transaction holds a pending offset for the partition.
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.groups.get(group_id).is_some_and(|g| {
            let key = (topic.to_string(), partition);
            g.pending_txn_offsets.values().any(|p| p.contains_key(&key))
        })
    }

    /// Replays an offset commit written inside `producer_id`'s transaction
    /// (a transactional batch of `__consumer_offsets`).
    pub fn replay_txn(
        &mut self,
        now_ms: i64,
        producer_id: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), SchemaError> {
        let RecordKey::OffsetCommit(key) = RecordKey::decode(key)? else {
            return Ok(());
        };
        let Some(value) = value.map(OffsetCommitValue::decode).transpose()? else {
            return Ok(());
        };
        let group = self
            .groups
            .entry(key.group.clone())
            .or_insert_with(|| Group::new(&key.group, now_ms));
        group
            .pending_txn_offsets
            .entry(producer_id)
            .or_default()
            .insert(
                (key.topic, key.partition),
                CommittedOffset {
                    offset: value.offset,
                    leader_epoch: value.leader_epoch,
                    metadata: value.metadata,
                    commit_timestamp_ms: value.commit_timestamp_ms,
                    expire_timestamp_ms: value.expire_timestamp_ms,
                },
            );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::{CommitPartition, GroupConfig};

    fn request(group: &str, offset: i64) -> CommitRequest {
        CommitRequest {
            group_id: group.to_string(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            topics: vec![(
                "in".to_string(),
                vec![CommitPartition {
                    partition: 0,
                    offset,
                    leader_epoch: -1,
                    metadata: None,
                }],
            )],
        }
    }

    #[test]
    fn pending_offsets_show_only_after_commit() {
        let mut c = Coordinator::new(GroupConfig::default());
        let p = c.partition_of("g");
        let plan = c.commit_txn_offsets(10, &request("g", 42));
        assert_eq!(plan.results[0].1, vec![(0, ErrorCode::NONE)]);
        assert_eq!(plan.records.len(), 1);
        c.complete_txn_commit(plan, 7);
        assert!(c.has_pending_txn_offset("g", "in", 0));
        assert_eq!(c.fetch_offsets("g", None).len(), 0);
        // A marker of another partition or producer changes nothing.
        c.complete_txn(p + 1, 7, true);
        c.complete_txn(p, 8, true);
        assert!(c.has_pending_txn_offset("g", "in", 0));
        c.complete_txn(p, 7, true);
        assert!(!c.has_pending_txn_offset("g", "in", 0));
        let fetched = c.fetch_offsets("g", None);
        assert_eq!(fetched[0].1[0].offset, 42);
        // An aborted transaction's offsets never show.
        let plan = c.commit_txn_offsets(20, &request("g", 99));
        c.complete_txn_commit(plan, 7);
        c.complete_txn(p, 7, false);
        assert_eq!(c.fetch_offsets("g", None)[0].1[0].offset, 42);
    }

    #[test]
    fn replayed_pending_offsets_wait_for_the_marker() {
        let mut c = Coordinator::new(GroupConfig::default());
        let plan = c.commit_txn_offsets(10, &request("g", 5));
        let record = plan.records[0].clone();
        let mut restarted = Coordinator::new(GroupConfig::default());
        restarted
            .replay_txn(10, 3, &record.key, record.value.as_deref())
            .unwrap();
        assert!(restarted.has_pending_txn_offset("g", "in", 0));
        restarted.complete_txn(record.partition, 3, true);
        assert_eq!(restarted.fetch_offsets("g", None)[0].1[0].offset, 5);
    }
}
