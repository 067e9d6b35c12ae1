//! Partition leadership changes, as Kafka's `ReplicationControlManager`
//! and `PartitionChangeBuilder` make them: AlterPartition from a
//! partition's leader (the ISR it asks for), and elections when brokers
//! are fenced, shut down or come back. Pure, like the rest of the
//! controller: it reads the image and returns records.
//!
//! The rules (Kafka's, without eligible leader replicas or reassignments):
//! - A broker is *active* when it is registered, not fenced and not
//!   shutting down. Only active brokers lead or join an ISR.
//! - Every change bumps the partition epoch; a change of leader also bumps
//!   the leader epoch. An ISR change keeps the leader epoch (Kafka 3.6+).
//! - An ISR member that is not active leaves the ISR, unless it is the last
//!   one: the ISR never becomes empty, so the last member keeps the
//!   partition's data as the only clean choice when it returns.
//! - A leader that is not active (or no leader, -1) is replaced by the
//!   first replica, in replica order, that is in the ISR and active. With
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

/// Kafka's `PartitionChangeBuilder` for an ONLINE (or, with `unclean`,
/// UNCLEAN) election towards `target_isr`: the partition's next state, or
/// `None` when nothing changes.
fn partition_change(
    current: &Leadership,
    target_isr: Vec<i32>,
    unclean: bool,
    brokers: &Brokers<'_>,
) -> Option<Leadership> {
    let in_sync = |id: i32| target_isr.contains(&id) && brokers.is_active(id);
    let mut isr = target_isr.clone();
    let leader = if in_sync(current.leader) {
        current.leader
    } else if let Some(id) = current.replicas.iter().copied().find(|id| in_sync(*id)) {
        id
    } else if let Some(id) = unclean
        .then(|| {
            current
                .replicas
                .iter()
                .copied()
                .find(|id| brokers.is_active(*id))
        })
        .flatten()
    {
        // Unclean: whatever the others had beyond its log is lost.
        isr = vec![id];
        id
    } else {
        NO_LEADER
    };
    if isr.is_empty() {
        // Never an empty ISR: its last member stays.
        isr = current.isr.clone();
    }
    if leader == current.leader && isr == current.isr {
        return None;
    }
    let leader_epoch = if leader == current.leader {
        current.leader_epoch
    } else {
        current.leader_epoch.saturating_add(1)
    };
    Some(Leadership {
        leader,
        leader_epoch,
        replicas: current.replicas.clone(),
        isr,
        partition_epoch: current.partition_epoch.saturating_add(1),
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
                Leadership {
                    leader: preferred,
                    leader_epoch: current.leader_epoch.saturating_add(1),
                    replicas: current.replicas.clone(),
                    isr,
                    partition_epoch: current.partition_epoch.saturating_add(1),
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
                partition_change(current, target, true, &brokers)
                    .filter(|next| next.leader != NO_LEADER)
                    .ok_or_else(|| {
                        ElectionRefusal::EligibleNotAvailable(topic.to_string(), partition)
                    })?
            }
        };
        Ok(next.to_record(found.id, partition))
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
        let unclean = self.unclean_leader_election(image, topic);
        let Some(next) = partition_change(current, isr, unclean, &brokers) else {
            return Ok(AlterPartitionOutcome::Unchanged(current.clone()));
        };
        // Every member, the leader too, is active: it keeps leading. (Kafka
        // moves the leader here only when the change completes a
        // reassignment, answering NEW_LEADER_ELECTED; rafka has none.)
        assert_eq!(next.leader, current.leader, "AlterPartition moved a leader");
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
            let mut unclean = None;
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
                let unclean =
                    *unclean.get_or_insert_with(|| self.unclean_leader_election(image, topic));
                let target: Vec<i32> = current
                    .isr
                    .iter()
                    .copied()
                    .filter(|id| brokers.is_active(*id))
                    .collect();
                if let Some(next) = partition_change(current, target, unclean, &brokers) {
                    let partition = i32::try_from(index).unwrap_or(i32::MAX);
                    records.push(MetadataRecord::PartitionLeadership(
                        next.to_record(topic.id, partition),
                    ));
                }
            }
        }
        records
    }

    /// `unclean.leader.election.enable` for `topic`: its override, else
    /// this controller's default (static, then dynamic broker configs).
    fn unclean_leader_election(&self, image: &MetadataImage, topic: &TopicImage) -> bool {
        image
            .topic_defaults(&self.topic_defaults, self.node_id)
            .validate(&topic.configs)
            .is_ok_and(|config| config.unclean_leader_election_enable)
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
