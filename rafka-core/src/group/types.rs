//! What goes into and comes out of the group [`super::Coordinator`]:
//! requests in plain Rust types (the shard layer converts Kafka's message
//! structs), replies, and the [`Effects`] of a call.

use bytes::Bytes;
use rafka_proto::error::ErrorCode;

/// Identifies a waiting JoinGroup or SyncGroup request; the caller picks
/// it and gets it back with the reply.
pub type ReplyToken = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    /// Empty on a first join.
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    /// <= 0 (JoinGroup v0) means the session timeout.
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED and its id.
    pub require_known_member_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResult {
    pub error_code: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<JoinedMember>,
    /// A static leader rejoined a stable group: it must not reassign.
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(error_code: ErrorCode, member_id: &str) -> JoinResult {
        JoinResult {
            error_code,
            generation_id: -1,
            member_id: member_id.to_string(),
            ..JoinResult::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's (member id, assignment) list; empty from followers.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResult {
    pub error_code: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error_code: ErrorCode) -> SyncResult {
        SyncResult {
            error_code,
            ..SyncResult::default()
        }
    }
}

/// An answer to a waiting request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(JoinResult),
    Sync(SyncResult),
}

/// One record for `__consumer_offsets`.
pub type OffsetsRecord = crate::coordinator::InternalRecord;

/// What a call asks of its caller: persist `records` (in order, durably),
/// then deliver `replies`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub records: Vec<OffsetsRecord>,
    pub replies: Vec<(ReplyToken, Reply)>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.replies.is_empty()
    }

    pub(crate) fn join(&mut self, token: ReplyToken, result: JoinResult) {
        self.replies.push((token, Reply::Join(result)));
    }

    pub(crate) fn sync(&mut self, token: ReplyToken, result: SyncResult) {
        self.replies.push((token, Reply::Sync(result)));
    }

    /// The reply for `token`, if this call produced one.
    pub fn reply_for(&self, token: ReplyToken) -> Option<&Reply> {
        self.replies
            .iter()
            .find(|(t, _)| *t == token)
            .map(|(_, r)| r)
    }
}

/// One member of a LeaveGroup request (v3+ batches them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeavingMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaveResult {
    pub error_code: ErrorCode,
    pub members: Vec<(LeavingMember, ErrorCode)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPartition {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    /// -1 for a simple (standalone) commit.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub topics: Vec<(String, Vec<CommitPartition>)>,
}

/// A committed offset as the coordinator keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Set only by old (v1) records; -1 otherwise.
    pub expire_timestamp_ms: i64,
}

/// A validated commit: persist `records`, then [`super::Coordinator::complete_commit`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommitPlan {
    pub group_id: String,
    /// Per topic, per partition error code, in request order.
    pub results: Vec<(String, Vec<(i32, ErrorCode)>)>,
    pub records: Vec<OffsetsRecord>,
    pub(crate) accepted: Vec<(String, i32, CommittedOffset)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub partition: i32,
    /// -1 when nothing is committed.
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub error_code: ErrorCode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub error_code: ErrorCode,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: &'static str,
}
