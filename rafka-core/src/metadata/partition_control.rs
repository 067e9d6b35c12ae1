//! Partition leadership changes, as Kafka's `ReplicationControlManager`
//! and `PartitionChangeBuilder` make them: AlterPartition from a
//! partition's leader (the ISR it asks for), and elections when brokers
//! are fenced, shut down or come back. Pure, like the rest of the
//! controller: it reads the image and returns records.
//!
//! The rules (Kafka's, with KIP-966's eligible leader replicas in a
//! cluster):
//! - A broker is *active* when it is registered, not fenced and not
//!   shutting down. Only active brokers lead or join an ISR.
//! - Every change bumps the partition epoch; a change of leader also bumps
//!   the leader epoch. An ISR change keeps the leader epoch (Kafka 3.6+).
//! - An ISR member that is not active leaves the ISR. Outside a cluster
//!   the last one stays: the ISR never becomes empty, so the last member
//!   keeps the partition's data as the only clean choice when it returns.
//! - In a cluster, a replica that leaves an ISR smaller than the topic's
//!   `min.insync.replicas` (or was in it when it fell below) becomes an
//!   *eligible leader replica* (ELR). Leaders do not move the high
//!   watermark while their ISR is below `min.insync.replicas` (KIP-966's
//!   strict min ISR, `crate::partition` in rafka-shard), so an ELR member
//!   holds everything below it; the ISR may become empty, and then an
//!   active ELR member leads with an ISR of itself. The ELR is empty
//!   whenever the ISR is at `min.insync.replicas` or above.
//! - A leader that is not active (or no leader, -1) is replaced by the
//!   first replica, in replica order, that is in the ISR and active (or,
//!   with an empty ISR, eligible and active). With
//!   `unclean.leader.election.enable` and no such replica, the first active
//!   replica leads with an ISR of itself alone (data may be lost, as Kafka
//!   warns). Without any, the partition has no leader (-1).

use std::collections::BTreeSet;

use rafka_proto::error::ErrorCode;
use uuid::Uuid;

use super::controller::Controller;
use super::image::{Leadership, MetadataImage, TopicImage, NO_LEADER};
use super::record::{MetadataRecord, PartitionLeadershipRecord};

/// A broker named in an AlterPartition's new ISR, with the broker epoch
/// the leader knows it by (AlterPartition v3, KIP-903), or -1 when the
/// epoch is not to be checked (v2, or a leader that does not know it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsrMember {
    pub node_id: i32,
    pub broker_epoch: i64,
}

impl IsrMember {
    /// A member whose broker epoch is not checked.
    pub fn any_epoch(node_id: i32) -> IsrMember {
        IsrMember {
            node_id,
            broker_epoch: -1,
        }
    }
}

/// One partition of an AlterPartition request: its leader (`broker_id`, at
/// `broker_epoch`) asks for `new_isr`, having seen the partition at
/// `leader_epoch` and `partition_epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterPartition {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<IsrMember>,
}

/// What an accepted AlterPartition does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterPartitionOutcome {
    /// The ISR already is the one asked for: answered with the current
    /// state, nothing to write.
    Unchanged(Leadership),
    /// The record to commit; the partition's state once it applied.
    Changed(PartitionLeadershipRecord),
}

/// Why an AlterPartition was refused; `error_code` gives Kafka's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsrError {
    #[error("broker {broker_id} is not registered at epoch {broker_epoch}")]
    StaleBrokerEpoch { broker_id: i32, broker_epoch: i64 },
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    #[error("topic {topic_id} has no partition {partition} with replicas")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    /// The request saw a newer partition than this controller's image:
    /// this node is likely no longer the active controller.
    #[error("the request's epochs are ahead of this controller")]
    ControllerBehind,
    #[error("leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("broker {broker_id} does not lead the partition (broker {leader} does)")]
    NotLeader { broker_id: i32, leader: i32 },
    #[error("partition epoch {requested} is older than the current {current}")]
    InvalidUpdateVersion { requested: i32, current: i32 },
    #[error("the new ISR {isr:?} names a broker twice or one that is not a replica")]
    InvalidIsr { isr: Vec<i32> },
    #[error("the new ISR {isr:?} leaves out the leader")]
    LeaderNotInIsr { isr: Vec<i32> },
    #[error("broker {node_id} cannot join the ISR: {reason}")]
    IneligibleReplica {
        node_id: i32,
        reason: IneligibleReason,
    },
}

/// Why a broker may not be in an ISR (Kafka's `IneligibleReplica`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IneligibleReason {
    #[error("not registered")]
    NotRegistered,
    #[error("shutting down")]
    ShuttingDown,
    #[error("fenced")]
    Fenced,
    #[error("broker epoch {requested} is not its current {current}")]
    EpochMismatch { requested: i64, current: i64 },
}

impl IsrError {
    /// Kafka's code for AlterPartition v2+ (`validateAlterPartitionData`).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            IsrError::StaleBrokerEpoch { .. } => ErrorCode::STALE_BROKER_EPOCH,
            IsrError::UnknownTopicId(_) => ErrorCode::UNKNOWN_TOPIC_ID,
            IsrError::UnknownPartition { .. } => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            IsrError::ControllerBehind => ErrorCode::NOT_CONTROLLER,
            IsrError::FencedLeaderEpoch { .. } => ErrorCode::FENCED_LEADER_EPOCH,
            IsrError::NotLeader { .. }
            | IsrError::InvalidIsr { .. }
            | IsrError::LeaderNotInIsr { .. } => ErrorCode::INVALID_REQUEST,
            IsrError::InvalidUpdateVersion { .. } => ErrorCode::INVALID_UPDATE_VERSION,
            IsrError::IneligibleReplica { .. } => ErrorCode::INELIGIBLE_REPLICA,
        }
    }
}

/// Which brokers may lead or be in an ISR: the image's registrations
/// less the fenced ones and those shutting down (a set the active
/// controller keeps; controlled shutdown).
#[derive(Debug, Clone, Copy)]
pub struct Brokers<'a> {
    image: &'a MetadataImage,
    shutting_down: &'a BTreeSet<i32>,
}

impl<'a> Brokers<'a> {
    pub fn new(image: &'a MetadataImage, shutting_down: &'a BTreeSet<i32>) -> Self {
        Brokers {
            image,
            shutting_down,
        }
    }

    /// Why `node_id` (known at `broker_epoch`, -1: any) may not be in an
    /// ISR, in Kafka's order of checks; `None` when it may.
    fn ineligible(&self, node_id: i32, broker_epoch: i64) -> Option<IneligibleReason> {
        let Some(broker) = self.image.broker(node_id) else {
            return Some(IneligibleReason::NotRegistered);
        };
        if self.shutting_down.contains(&node_id) {
            return Some(IneligibleReason::ShuttingDown);
        }
        if broker.fenced {
            return Some(IneligibleReason::Fenced);
        }
        if broker_epoch != -1 && broker_epoch != broker.epoch {
            return Some(IneligibleReason::EpochMismatch {
                requested: broker_epoch,
                current: broker.epoch,
            });
        }
        None
    }

    fn is_active(&self, node_id: i32) -> bool {
        self.ineligible(node_id, -1).is_none()
    }
}

/// What a change aims a partition's replica sets at, before its leader
/// is elected (the targets of Kafka's `PartitionChangeBuilder`).
#[derive(Debug, Clone)]
struct Target {
    replicas: Vec<i32>,
    isr: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

impl Target {
    /// The partition's sets as they are, with the ISR `isr`.
    fn isr(current: &Leadership, isr: Vec<i32>) -> Target {
        Target {
            replicas: current.replicas.clone(),
            isr,
            adding: current.adding.clone(),
            removing: current.removing.clone(),
        }
    }

    /// Kafka's `completeReassignmentIfNeeded`: once every replica the
    /// reassignment keeps is in the ISR (less the replicas it removes,
    /// and not empty), the removed replicas go and the reassignment ends.
    fn complete_reassignment(&mut self) {
        if self.adding.is_empty() && self.removing.is_empty() {
            return;
        }
        let removing = &self.removing;
        let isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|id| !removing.contains(id))
            .collect();
        let replicas: Vec<i32> = self
            .replicas
            .iter()
            .copied()
            .filter(|id| !removing.contains(id))
            .collect();
        if isr.is_empty() || !replicas.iter().all(|id| isr.contains(id)) {
            return;
        }
        self.replicas = replicas;
        self.isr = isr;
        self.adding.clear();
        self.removing.clear();
    }
}

/// How a topic's partitions change, from its configs as the deciding
/// controller reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Policy {
    /// `unclean.leader.election.enable`.
    unclean: bool,
    /// `min.insync.replicas` when the controller keeps eligible leader
    /// replicas (KIP-966: in a cluster); `None` outside one, where the last
    /// ISR member stays in the ISR.
    min_isr: Option<usize>,
}

/// KIP-966: the eligible leader replicas once the ISR is `isr`. At or
/// above `min_isr` none (the high watermark moves with the ISR alone);
/// below it, every replica that was in the ISR or eligible and is not in
/// the new ISR. The high watermark does not move while the ISR is below
/// `min.insync.replicas`, so a replica that left then holds everything
/// below it.
fn next_elr(
    current: &Leadership,
    replicas: &[i32],
    isr: &[i32],
    min_isr: Option<usize>,
) -> Vec<i32> {
    match min_isr {
        Some(min) if isr.len() < min => replicas
            .iter()
            .copied()
            .filter(|id| current.isr.contains(id) || current.elr.contains(id))
            .filter(|id| !isr.contains(id))
            .collect(),
        _ => Vec::new(),
    }
}

/// The record that gives partition `index` of `topic_id`, now `current`,
/// the eligible leader replicas `elr`, one partition epoch on.
fn with_elr(current: &Leadership, elr: Vec<i32>, topic_id: Uuid, index: usize) -> MetadataRecord {
    let next = Leadership {
        elr,
        partition_epoch: current.partition_epoch.saturating_add(1),
        ..current.clone()
    };
    let partition = i32::try_from(index).unwrap_or(i32::MAX);
    MetadataRecord::PartitionLeadership(next.to_record(topic_id, partition))
}

/// Kafka's `PartitionChangeBuilder` for an ONLINE (or, with
/// `policy.unclean`, UNCLEAN) election towards `target`: the partition's
/// next state, or `None` when nothing changes. A reassignment the target
/// ISR completes ends here (its removed replicas leave, a removed leader
/// is replaced), and a replica leaving the replica set bumps the leader
/// epoch as a leader change does, so the removed replica is fenced
/// (Kafka's `triggerLeaderEpochBumpForReplicaReassignmentIfNeeded`).
///
/// With eligible leader replicas (`policy.min_isr`), the ISR may become
/// empty: its last member joins the eligible ones, and once the ISR is
/// empty an active eligible replica leads with an ISR of itself. Unlike
/// Kafka, the eligible replicas are dropped as soon as the ISR is back at
/// `min.insync.replicas`, the election included: a member left behind by
/// that election would miss what the high watermark covers next.
fn partition_change(
    current: &Leadership,
    mut target: Target,
    policy: Policy,
    brokers: &Brokers<'_>,
) -> Option<Leadership> {
    target.complete_reassignment();
    let Target {
        replicas,
        mut isr,
        adding,
        removing,
    } = target;
    let mut elr = next_elr(current, &replicas, &isr, policy.min_isr);
    let eligible = |id: i32, isr: &[i32], elr: &[i32]| {
        (isr.contains(&id) || (isr.is_empty() && elr.contains(&id)))
            && replicas.contains(&id)
            && brokers.is_active(id)
    };
    let leader = if eligible(current.leader, &isr, &elr) {
        current.leader
    } else if let Some(id) = replicas
        .iter()
        .copied()
        .find(|id| eligible(*id, &isr, &elr))
    {
        id
    } else if let Some(id) = policy
        .unclean
        .then(|| replicas.iter().copied().find(|id| brokers.is_active(*id)))
        .flatten()
    {
        // Unclean: whatever the others had beyond its log is lost.
        isr = vec![id];
        elr.clear();
        id
    } else {
        NO_LEADER
    };
    if isr.is_empty() && leader != NO_LEADER {
        // Elected from the eligible replicas.
        isr = vec![leader];
        elr.retain(|id| *id != leader);
        if policy.min_isr.is_some_and(|min| isr.len() >= min) {
            elr.clear();
        }
    }
    if isr.is_empty() && policy.min_isr.is_none() {
        // Never an empty ISR: its last member stays.
        isr = current.isr.clone();
    }
    let unchanged = leader == current.leader
        && isr == current.isr
        && replicas == current.replicas
        && adding == current.adding
        && removing == current.removing
        && elr == current.elr;
    if unchanged {
        return None;
    }
    let replica_removed = current.replicas.iter().any(|id| !replicas.contains(id));
    let leader_epoch = if leader == current.leader && !replica_removed {
        current.leader_epoch
    } else {
        current.leader_epoch.saturating_add(1)
    };
    Some(Leadership {
        leader,
        leader_epoch,
        replicas,
        isr,
        partition_epoch: current.partition_epoch.saturating_add(1),
        adding,
        removing,
        elr,
    })
}

/// The election ElectLeaders asks for (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica, if it is in sync and active.
    Preferred,
    /// Give a leaderless partition a leader: an in-sync replica if one is
    /// active, else any active replica (whatever the others had is lost).
    Unclean,
}

/// Why ElectLeaders elected nothing for a partition; `error_code` gives
/// Kafka's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionRefusal {
    #[error("No such topic as {0}")]
    UnknownTopic(String),
    #[error("No such partition as {0}-{1}")]
    UnknownPartition(String, i32),
    /// PREFERRED with the preferred replica leading, or UNCLEAN with a
    /// leader.
    #[error("Leader election not needed for topic partition.")]
    NotNeeded,
    #[error("Failed to elect leader for partition {0}-{1} under strategy PREFERRED")]
    PreferredNotAvailable(String, i32),
    #[error("Failed to elect leader for partition {0}-{1} under strategy UNCLEAN")]
    EligibleNotAvailable(String, i32),
}

impl ElectionRefusal {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ElectionRefusal::UnknownTopic(_) | ElectionRefusal::UnknownPartition(..) => {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            }
            ElectionRefusal::NotNeeded => ErrorCode::ELECTION_NOT_NEEDED,
            ElectionRefusal::PreferredNotAvailable(..) => ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE,
            ElectionRefusal::EligibleNotAvailable(..) => ErrorCode::ELIGIBLE_LEADERS_NOT_AVAILABLE,
        }
    }
}

/// Why AlterPartitionReassignments changes nothing for a partition;
/// `error_code` gives Kafka's answer, the message is Kafka's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignmentRefusal {
    #[error("Unable to find a topic named {0}.")]
    UnknownTopic(String),
    #[error("Unable to find partition {0}:{1}.")]
    UnknownPartition(String, i32),
    /// A cancel (null replicas) with nothing to cancel.
    #[error("No partition reassignment is in progress for the topic {0}:{1}.")]
    NotInProgress(String, i32),
    /// Kafka's `validateManualPartitionAssignment`.
    #[error("{0}")]
    InvalidAssignment(String),
    /// `allow_replication_factor_change` false (v1) and a target of
    /// another width.
    #[error("The replication factor is changed from {from} to {to}")]
    ReplicationFactorChanged { from: usize, to: usize },
    #[error(
        "Unable to revert partition assignment for {0}:{1} because it would require an \
         unclean leader election."
    )]
    RevertNeedsUncleanElection(String, i32),
}

impl ReassignmentRefusal {
    pub fn error_code(&self) -> ErrorCode {
        match self {
            ReassignmentRefusal::UnknownTopic(_) | ReassignmentRefusal::UnknownPartition(..) => {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            }
            ReassignmentRefusal::NotInProgress(..) => ErrorCode::NO_REASSIGNMENT_IN_PROGRESS,
            ReassignmentRefusal::InvalidAssignment(_)
            | ReassignmentRefusal::RevertNeedsUncleanElection(..) => {
                ErrorCode::INVALID_REPLICA_ASSIGNMENT
            }
            ReassignmentRefusal::ReplicationFactorChanged { .. } => {
                ErrorCode::INVALID_REPLICATION_FACTOR
            }
        }
    }
}

/// A partition being reassigned, as ListPartitionReassignments shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    /// Every replica: the target's, then those being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// The reassignments in progress in `image`, in topic name and partition
/// order; only of `wanted` partitions when given (unknown ones are left
/// out, as Kafka does).
pub fn reassignments(image: &MetadataImage, wanted: Option<&[(String, i32)]>) -> Vec<Reassignment> {
    let of = |topic: &TopicImage, partition: i32| {
        let l = topic.leadership(partition).filter(|l| l.reassigning())?;
        Some(Reassignment {
            topic: topic.name.clone(),
            partition,
            replicas: l.replicas.clone(),
            adding: l.adding.clone(),
            removing: l.removing.clone(),
        })
    };
    match wanted {
        Some(wanted) => wanted
            .iter()
            .filter_map(|(name, partition)| of(image.topic(name)?, *partition))
            .collect(),
        None => image
            .topics()
            .flat_map(|topic| (0..topic.partition_count()).filter_map(move |p| of(topic, p)))
            .collect(),
    }
}

/// Kafka's `validateManualPartitionAssignment` for a reassignment target:
/// not empty, registered brokers (lowest unknown id named), none twice.
fn validate_target(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignmentRefusal> {
    let invalid = |message: String| Err(ReassignmentRefusal::InvalidAssignment(message));
    if target.is_empty() {
        return invalid("The manual partition assignment includes an empty replica list.".into());
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        if pair[0] == pair[1] {
            return invalid(format!(
                "The manual partition assignment includes the broker {} more than once.",
                pair[0]
            ));
        }
    }
    if let Some(id) = sorted.iter().find(|id| image.broker(**id).is_none()) {
        return invalid(format!(
            "The manual partition assignment includes broker {id}, but no such broker is \
             registered."
        ));
    }
    Ok(())
}

impl Controller {
    /// ElectLeaders for one partition (Kafka's `ReplicationControlManager
    /// .electLeader`): the record that moves its leadership, or why none
    /// does. PREFERRED is not needed when the first replica leads and
    /// fails unless that replica is in the ISR and active; UNCLEAN is not
    /// needed when the partition has a leader, elects an active in-sync
    /// replica first and otherwise any active replica with an ISR of
    /// itself, whatever `unclean.leader.election.enable` says (the
    /// operator asked for it).
    pub fn elect_leader(
        &self,
        image: &MetadataImage,
        shutting_down: &BTreeSet<i32>,
        election: ElectionType,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionLeadershipRecord, ElectionRefusal> {
        let found = image
            .topic(topic)
            .ok_or_else(|| ElectionRefusal::UnknownTopic(topic.to_string()))?;
        let current = found
            .leadership(partition)
            .ok_or_else(|| ElectionRefusal::UnknownPartition(topic.to_string(), partition))?;
        let brokers = Brokers::new(image, shutting_down);
        let next = match election {
            ElectionType::Preferred => {
                let preferred = current.replicas.first().copied().unwrap_or(NO_LEADER);
                if current.leader == preferred {
                    return Err(ElectionRefusal::NotNeeded);
                }
                if !current.isr.contains(&preferred) || !brokers.is_active(preferred) {
                    return Err(ElectionRefusal::PreferredNotAvailable(
                        topic.to_string(),
                        partition,
                    ));
                }
                // The ISR keeps its members that are still active.
                let mut isr: Vec<i32> = current
                    .isr
                    .iter()
                    .copied()
                    .filter(|id| brokers.is_active(*id))
                    .collect();
                if isr.is_empty() {
                    isr.push(preferred);
                }
                let min_isr = self.policy(image, found).min_isr;
                Leadership {
                    leader: preferred,
                    leader_epoch: current.leader_epoch.saturating_add(1),
                    elr: next_elr(current, &current.replicas, &isr, min_isr),
                    isr,
                    partition_epoch: current.partition_epoch.saturating_add(1),
                    ..current.clone()
                }
            }
            ElectionType::Unclean => {
                if current.leader != NO_LEADER {
                    return Err(ElectionRefusal::NotNeeded);
                }
                let target = current
                    .isr
                    .iter()
                    .copied()
                    .filter(|id| brokers.is_active(*id))
                    .collect();
                let policy = Policy {
                    unclean: true,
                    ..self.policy(image, found)
                };
                partition_change(current, Target::isr(current, target), policy, &brokers)
                    .filter(|next| next.leader != NO_LEADER)
                    .ok_or_else(|| {
                        ElectionRefusal::EligibleNotAvailable(topic.to_string(), partition)
                    })?
            }
        };
        Ok(next.to_record(found.id, partition))
    }

    /// AlterPartitionReassignments for one partition (Kafka's
    /// `ReplicationControlManager.alterPartitionReassignment`): the record
    /// that starts, replaces, completes or (`target` `None`) cancels its
    /// reassignment, or `None` when the partition already is as asked.
    ///
    /// A target starts as Kafka's: the replicas become the target's
    /// followed by those it drops, the ones it brings are `adding` and
    /// the ones it drops `removing`, the ISR is unchanged; the leader
    /// brings the new replicas into the ISR as they catch up, and the
    /// AlterPartition that has them all completes it (or this record, when
    /// the ISR already has them: a reassignment that only drops replicas
    /// or reorders them). A cancel goes back to the replicas without the
    /// ones being added, refused when that would leave no in-sync replica
    /// and the topic does not allow unclean elections.
    #[allow(clippy::too_many_arguments)]
    pub fn reassign(
        &self,
        image: &MetadataImage,
        shutting_down: &BTreeSet<i32>,
        topic: &str,
        partition: i32,
        target: Option<&[i32]>,
        allow_replication_factor_change: bool,
    ) -> Result<Option<PartitionLeadershipRecord>, ReassignmentRefusal> {
        let found = image
            .topic(topic)
            .ok_or_else(|| ReassignmentRefusal::UnknownTopic(topic.to_string()))?;
        let current = found
            .leadership(partition)
            .ok_or_else(|| ReassignmentRefusal::UnknownPartition(topic.to_string(), partition))?;
        let brokers = Brokers::new(image, shutting_down);
        let clean = Policy {
            unclean: false,
            ..self.policy(image, found)
        };
        let next = match target {
            None => {
                if !current.reassigning() {
                    return Err(ReassignmentRefusal::NotInProgress(
                        topic.to_string(),
                        partition,
                    ));
                }
                let kept = |ids: &[i32]| -> Vec<i32> {
                    ids.iter()
                        .copied()
                        .filter(|id| !current.adding.contains(id))
                        .collect()
                };
                let replicas = kept(&current.replicas);
                let mut isr = kept(&current.isr);
                if isr.is_empty() {
                    if !self.policy(image, found).unclean {
                        return Err(ReassignmentRefusal::RevertNeedsUncleanElection(
                            topic.to_string(),
                            partition,
                        ));
                    }
                    isr = replicas.first().copied().into_iter().collect();
                }
                let target = Target {
                    replicas,
                    isr,
                    adding: Vec::new(),
                    removing: Vec::new(),
                };
                partition_change(current, target, clean, &brokers)
            }
            Some(target) => {
                validate_target(image, target)?;
                if !allow_replication_factor_change {
                    let from = current.replicas.len() - current.removing.len();
                    if from != target.len() {
                        return Err(ReassignmentRefusal::ReplicationFactorChanged {
                            from,
                            to: target.len(),
                        });
                    }
                }
                let dropped: Vec<i32> = current
                    .replicas
                    .iter()
                    .copied()
                    .filter(|id| !target.contains(id))
                    .collect();
                // Added: what the replicas had before any reassignment in
                // progress lacks (so replacing one keeps counting its
                // replicas still catching up as added).
                let adding = target
                    .iter()
                    .copied()
                    .filter(|id| !current.replicas.contains(id) || current.adding.contains(id))
                    .collect();
                let mut replicas = target.to_vec();
                replicas.extend_from_slice(&dropped);
                let target = Target {
                    replicas,
                    isr: current.isr.clone(),
                    adding,
                    removing: dropped,
                };
                partition_change(current, target, clean, &brokers)
            }
        };
        Ok(next.map(|next| next.to_record(found.id, partition)))
    }

    /// AlterPartition (Kafka's `ReplicationControlManager.alterPartition`
    /// for one partition): the leader asks for a new ISR. Checks, in
    /// Kafka's order: the sender's broker epoch, the topic and partition,
    /// epochs ahead of this controller (NOT_CONTROLLER), an older leader
    /// epoch, a sender that does not lead, an older partition epoch, an
    /// ISR of non-replicas or duplicates, one without the leader, and
    /// members that are not registered, fenced, shutting down or of
    /// another broker epoch. `shutting_down`: brokers in controlled
    /// shutdown.
    pub fn alter_partition(
        &self,
        image: &MetadataImage,
        shutting_down: &BTreeSet<i32>,
        request: &AlterPartition,
    ) -> Result<AlterPartitionOutcome, IsrError> {
        let stale = IsrError::StaleBrokerEpoch {
            broker_id: request.broker_id,
            broker_epoch: request.broker_epoch,
        };
        let sender = image.broker(request.broker_id).ok_or(stale.clone())?;
        if sender.epoch != request.broker_epoch {
            return Err(stale);
        }
        let topic = image
            .topic_by_id(&request.topic_id)
            .ok_or(IsrError::UnknownTopicId(request.topic_id))?;
        let current = topic
            .leadership(request.partition)
            .ok_or(IsrError::UnknownPartition {
                topic_id: request.topic_id,
                partition: request.partition,
            })?;
        check_epochs(request, current)?;
        let isr: Vec<i32> = request.new_isr.iter().map(|m| m.node_id).collect();
        let distinct: BTreeSet<i32> = isr.iter().copied().collect();
        if distinct.len() != isr.len() || !isr.iter().all(|id| current.replicas.contains(id)) {
            return Err(IsrError::InvalidIsr { isr });
        }
        if !isr.contains(&current.leader) {
            return Err(IsrError::LeaderNotInIsr { isr });
        }
        let brokers = Brokers::new(image, shutting_down);
        for member in &request.new_isr {
            if let Some(reason) = brokers.ineligible(member.node_id, member.broker_epoch) {
                return Err(IsrError::IneligibleReplica {
                    node_id: member.node_id,
                    reason,
                });
            }
        }
        let policy = self.policy(image, topic);
        let target = Target::isr(current, isr);
        let Some(next) = partition_change(current, target, policy, &brokers) else {
            return Ok(AlterPartitionOutcome::Unchanged(current.clone()));
        };
        // Every member, the leader too, is active: it keeps leading unless
        // the change completes a reassignment that removes it (the caller
        // answers NEW_LEADER_ELECTED then, as Kafka).
        Ok(AlterPartitionOutcome::Changed(
            next.to_record(request.topic_id, request.partition),
        ))
    }

    /// The partition changes the brokers' states call for (see the module
    /// doc): for every partition, in topic name and partition order, its
    /// inactive ISR members removed and a new leader elected where its
    /// leader is not active. At most `limit` records: with more to do,
    /// the caller commits these and asks again. Nothing when every
    /// partition is as it should be, so this is also what repairs the
    /// partitions after a controller failed over mid-way.
    pub fn elections(
        &self,
        image: &MetadataImage,
        shutting_down: &BTreeSet<i32>,
        limit: usize,
    ) -> Vec<MetadataRecord> {
        let brokers = Brokers::new(image, shutting_down);
        let mut records = Vec::new();
        for topic in image.topics() {
            // Resolved once per topic, only where something changes.
            let mut policy = None;
            for (index, leadership) in topic.leadership.iter().enumerate() {
                if records.len() >= limit {
                    return records;
                }
                let Some(current) = leadership else {
                    continue;
                };
                let settled = brokers.is_active(current.leader)
                    && current.isr.iter().all(|id| brokers.is_active(*id));
                if settled {
                    continue;
                }
                let policy = *policy.get_or_insert_with(|| self.policy(image, topic));
                let target: Vec<i32> = current
                    .isr
                    .iter()
                    .copied()
                    .filter(|id| brokers.is_active(*id))
                    .collect();
                let target = Target::isr(current, target);
                if let Some(next) = partition_change(current, target, policy, &brokers) {
                    let partition = i32::try_from(index).unwrap_or(i32::MAX);
                    records.push(MetadataRecord::PartitionLeadership(
                        next.to_record(topic.id, partition),
                    ));
                }
            }
        }
        records
    }

    /// KIP-966's unclean shutdown, for a broker whose registration says its
    /// data dir is new (it lost what it held): the records that take it
    /// out of every partition's eligible leader replicas, for the active
    /// controller to commit before it unfences the broker (it is fenced,
    /// and out of every ISR, until then). Kafka counts any unclean
    /// shutdown; here a kill -9 keeps everything acknowledged (fsync'd
    /// before the high watermark passes it), so only a lost disk counts.
    pub fn forget_eligible(&self, image: &MetadataImage, node_id: i32) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        for topic in image.topics() {
            for (index, leadership) in topic.leadership.iter().enumerate() {
                let Some(current) = leadership.as_ref().filter(|l| l.elr.contains(&node_id)) else {
                    continue;
                };
                let elr = current.elr.iter().copied().filter(|id| *id != node_id);
                records.push(with_elr(current, elr.collect(), topic.id, index));
            }
        }
        records
    }

    /// KIP-966: the eligible leader replicas a change of
    /// `min.insync.replicas` makes stale. Committed with `configs` (the
    /// config records of one change, not yet in `image`): every partition
    /// with eligible replicas whose topic's value changes loses them, as
    /// Kafka's controller does. They were eligible because the high
    /// watermark stopped below the old value; under a lower one it moves
    /// without them.
    pub fn elr_cleared_by_configs(
        &self,
        image: &MetadataImage,
        configs: &[MetadataRecord],
    ) -> Vec<MetadataRecord> {
        let touches = configs
            .iter()
            .any(|r| matches!(r, MetadataRecord::Config(c) if c.name == "min.insync.replicas"));
        let has_elr =
            |topic: &TopicImage| topic.leadership.iter().flatten().any(|l| !l.elr.is_empty());
        if !self.cluster || !touches || !image.topics().any(has_elr) {
            return Vec::new();
        }
        let mut after = image.clone();
        for record in configs {
            // Made from `image` by this controller: they apply (one that
            // did not would fail its commit anyway).
            let _ = after.apply(record);
        }
        let mut records = Vec::new();
        for topic in image.topics().filter(|t| has_elr(t)) {
            let changed = after
                .topic(&topic.name)
                .is_some_and(|now| self.policy(&after, now) != self.policy(image, topic));
            if !changed {
                continue;
            }
            for (index, leadership) in topic.leadership.iter().enumerate() {
                let Some(current) = leadership.as_ref().filter(|l| !l.elr.is_empty()) else {
                    continue;
                };
                records.push(with_elr(current, Vec::new(), topic.id, index));
            }
        }
        records
    }

    /// `unclean.leader.election.enable` and, in a cluster,
    /// `min.insync.replicas` for `topic`: its overrides, else this
    /// controller's defaults (static, then dynamic broker configs).
    fn policy(&self, image: &MetadataImage, topic: &TopicImage) -> Policy {
        let config = image
            .topic_defaults(&self.topic_defaults, self.node_id)
            .validate(&topic.configs);
        Policy {
            unclean: config
                .as_ref()
                .is_ok_and(|config| config.unclean_leader_election_enable),
            min_isr: self.cluster.then(|| {
                config.as_ref().map_or(1, |config| {
                    usize::try_from(config.min_insync_replicas.max(1)).unwrap_or(1)
                })
            }),
        }
    }
}

/// The request's epochs against the partition's, in Kafka's order.
fn check_epochs(request: &AlterPartition, current: &Leadership) -> Result<(), IsrError> {
    if request.leader_epoch > current.leader_epoch
        || request.partition_epoch > current.partition_epoch
    {
        return Err(IsrError::ControllerBehind);
    }
    if request.leader_epoch < current.leader_epoch {
        return Err(IsrError::FencedLeaderEpoch {
            requested: request.leader_epoch,
            current: current.leader_epoch,
        });
    }
    if request.broker_id != current.leader {
        return Err(IsrError::NotLeader {
            broker_id: request.broker_id,
            leader: current.leader,
        });
    }
    if request.partition_epoch < current.partition_epoch {
        return Err(IsrError::InvalidUpdateVersion {
            requested: request.partition_epoch,
            current: current.partition_epoch,
        });
    }
    Ok(())
}

/// How many partitions `node_id` leads in `image` (a broker in controlled
/// shutdown may stop once it leads none).
pub fn leaderships_of(image: &MetadataImage, node_id: i32) -> usize {
    image
        .topics()
        .flat_map(|t| t.leadership.iter().flatten())
        .filter(|l| l.leader == node_id)
        .count()
}
