//! The active controller's partition changes through the quorum: an
//! AlterPartition committed, a broker fenced or unfenced together with the
//! elections it calls for, and the elections still owed (a controller
//! that took over mid-way, a broker that came back).
//!
//! Each validates against the applied image (`Controller`'s pure
//! decisions, `rafka_core::metadata::partition_control`) and proposes its
//! records as one entry. Another change may commit between the two: every
//! leadership record carries the partition epoch it leads to, so an entry
//! computed from an older image no longer applies and is skipped on every
//! node; the change is then validated again against the newer image.
//!
//! Lives on: the controller's shard (shard 0) of the active controller.

use std::collections::{BTreeMap, BTreeSet};

use rafka_core::metadata::controller::RECORDS_PER_OPERATION_MAX;
use rafka_core::metadata::{
    AlterPartition, AlterPartitionOutcome, BrokerFencingRecord, ElectionRefusal, ElectionType,
    Leadership, MetadataImage, MetadataRecord, PartitionLeadershipRecord, ReassignmentRefusal,
};
use rafka_proto::error::ErrorCode;

use super::driver::{ProposalError, Quorum};

/// Validations of one change, the first and those after lost races.
const ATTEMPTS_MAX: usize = 3;

/// AlterPartition on the active controller: the partition's leadership
/// once the change is applied here (or as it is, for the ISR it already
/// has), or Kafka's error for the request.
pub(crate) async fn alter_partition(
    quorum: &Quorum,
    request: &AlterPartition,
) -> Result<Leadership, ErrorCode> {
    for _ in 0..ATTEMPTS_MAX {
        if !quorum.is_active_controller() {
            return Err(ErrorCode::NOT_CONTROLLER);
        }
        let image = quorum.image();
        let outcome =
            quorum
                .settings()
                .controller
                .alter_partition(&image, &quorum.shutting_down(), request);
        let record = match outcome {
            Ok(AlterPartitionOutcome::Unchanged(current)) => return Ok(current),
            Ok(AlterPartitionOutcome::Changed(record)) => record,
            Err(error) => {
                tracing::debug!(
                    broker = request.broker_id,
                    topic_id = %request.topic_id,
                    partition = request.partition,
                    %error,
                    "AlterPartition refused"
                );
                return Err(error.error_code());
            }
        };
        let leadership = Leadership::from_record(&record);
        match quorum
            .commit(&[MetadataRecord::PartitionLeadership(record)])
            .await
        {
            Ok(_) => {
                tracing::info!(
                    broker = request.broker_id,
                    topic_id = %request.topic_id,
                    partition = request.partition,
                    isr = ?leadership.isr,
                    partition_epoch = leadership.partition_epoch,
                    "ISR changed"
                );
                if leadership.leader != request.broker_id {
                    // The ISR completed a reassignment that removed the
                    // leader: committed, and the sender must learn its
                    // new state from the metadata (Kafka's answer).
                    return Err(ErrorCode::NEW_LEADER_ELECTED);
                }
                return Ok(leadership);
            }
            // Another change of the partition won: validate again.
            Err(ProposalError::Rejected(_)) => continue,
            Err(ProposalError::NoLeader) => return Err(ErrorCode::NOT_CONTROLLER),
            Err(ProposalError::TimedOut(_)) => return Err(ErrorCode::REQUEST_TIMED_OUT),
        }
    }
    Err(ErrorCode::NOT_CONTROLLER)
}

/// One partition's ElectLeaders outcome: elected, or Kafka's error code
/// and message.
pub type ElectionOutcome = Result<(), (ErrorCode, String)>;

/// A partition named by topic and index, with its ElectLeaders outcome.
pub type ElectionAnswer = ((String, i32), ElectionOutcome);

/// ElectLeaders on the active controller (Kafka's `ReplicationControl
/// Manager.electLeaders`): each of `partitions` (`None`: every partition,
/// answering only those that needed an election) elected by
/// `election`, the changes committed in bounded entries; a change that
/// lost a race to another is validated again. NOT_CONTROLLER when this
/// node is not the active controller.
pub(crate) async fn elect_leaders(
    quorum: &Quorum,
    election: ElectionType,
    partitions: Option<Vec<(String, i32)>>,
) -> Result<Vec<ElectionAnswer>, ErrorCode> {
    let every = partitions.is_none();
    let wanted = partitions.unwrap_or_else(|| {
        let image = quorum.image();
        image
            .topics()
            .flat_map(|topic| {
                (0..topic.partition_count()).map(|index| (topic.name.to_string(), index))
            })
            .collect()
    });
    let outcomes = commit_changes(quorum, wanted.len(), |image, shutting_down, i| {
        let (topic, index) = &wanted[i];
        let controller = &quorum.settings().controller;
        match controller.elect_leader(image, shutting_down, election, topic, *index) {
            Ok(record) => Ok(Some(record)),
            Err(refusal) => Err(refused(&refusal)),
        }
    })
    .await?;
    let elected = outcomes.iter().filter(|o| o.is_ok()).count();
    if elected > 0 {
        tracing::info!(
            ?election,
            partitions = elected,
            "ElectLeaders: leaders changed"
        );
    }
    Ok(wanted
        .into_iter()
        .zip(outcomes)
        .filter(|(_, outcome)| {
            let not_needed =
                matches!(outcome, Err((code, _)) if *code == ErrorCode::ELECTION_NOT_NEEDED);
            !(every && not_needed)
        })
        .collect())
}

/// Automatic leader balancing (Kafka's `auto.leader.rebalance.enable`; in
/// KRaft the controller's `maybeBalancePartitionLeaders`): a preferred
/// election for every partition whose first replica is in sync and alive
/// but does not lead. How many leaders moved.
pub(crate) async fn balance_leaders(quorum: &Quorum) -> Result<usize, ErrorCode> {
    let answers = elect_leaders(quorum, ElectionType::Preferred, None).await?;
    let moved = answers
        .iter()
        .filter(|(_, outcome)| outcome.is_ok())
        .count();
    if moved > 0 {
        tracing::info!(
            partitions = moved,
            "leaders moved back to preferred replicas"
        );
    }
    Ok(moved)
}

/// One partition of an AlterPartitionReassignments: topic, index, and the
/// target replicas (`None`: cancel the reassignment in progress).
pub type ReassignmentRequest = (String, i32, Option<Vec<i32>>);

/// AlterPartitionReassignments on the active controller (Kafka's
/// `ReplicationControlManager.alterPartitionReassignments`): each
/// partition's reassignment started, replaced, completed or cancelled
/// (`Controller::reassign`), committed as ElectLeaders' changes are.
/// One outcome per request, in order; NOT_CONTROLLER when this node is
/// not the active controller.
pub(crate) async fn alter_reassignments(
    quorum: &Quorum,
    requests: Vec<ReassignmentRequest>,
    allow_replication_factor_change: bool,
) -> Result<Vec<ElectionOutcome>, ErrorCode> {
    let outcomes = commit_changes(quorum, requests.len(), |image, shutting_down, i| {
        let (topic, index, target) = &requests[i];
        let controller = &quorum.settings().controller;
        controller
            .reassign(
                image,
                shutting_down,
                topic,
                *index,
                target.as_deref(),
                allow_replication_factor_change,
            )
            .map_err(|refusal| {
                let code = refusal.error_code();
                match refusal {
                    ReassignmentRefusal::NotInProgress(..) => (code, code.message()),
                    _ => (code, refusal.to_string()),
                }
            })
    })
    .await?;
    for ((topic, index, target), outcome) in requests.iter().zip(&outcomes) {
        if outcome.is_ok() {
            tracing::info!(topic, partition = index, ?target, "partition reassignment");
        }
    }
    Ok(outcomes)
}

/// Decides and commits a change for each of `count` partitions: `decide`
/// gives partition `i`'s record against the applied image (`None`:
/// nothing to change, answered NONE) or its refusal. Records go in
/// bounded entries; one that lost a race to another change is decided
/// again against the newer image, up to [`ATTEMPTS_MAX`] times. One
/// outcome per partition, in order.
async fn commit_changes(
    quorum: &Quorum,
    count: usize,
    decide: impl Fn(
        &MetadataImage,
        &BTreeSet<i32>,
        usize,
    ) -> Result<Option<PartitionLeadershipRecord>, (ErrorCode, String)>,
) -> Result<Vec<ElectionOutcome>, ErrorCode> {
    let mut outcomes: BTreeMap<usize, ElectionOutcome> = BTreeMap::new();
    let mut pending: Vec<usize> = (0..count).collect();
    for _ in 0..ATTEMPTS_MAX {
        if pending.is_empty() {
            break;
        }
        if !quorum.is_active_controller() {
            return Err(ErrorCode::NOT_CONTROLLER);
        }
        let image = quorum.image();
        let shutting_down = quorum.shutting_down();
        let mut records = Vec::new();
        let mut changed = Vec::new();
        for i in std::mem::take(&mut pending) {
            match decide(&image, &shutting_down, i) {
                Ok(Some(record)) => {
                    records.push(MetadataRecord::PartitionLeadership(record));
                    changed.push(i);
                }
                Ok(None) => {
                    outcomes.insert(i, Ok(()));
                }
                Err(refusal) => {
                    outcomes.insert(i, Err(refusal));
                }
            }
        }
        let chunks = records
            .chunks(RECORDS_PER_OPERATION_MAX)
            .zip(changed.chunks(RECORDS_PER_OPERATION_MAX));
        for (entry, which) in chunks {
            let failed = match quorum.commit(entry).await {
                Ok(_) => None,
                // Another change of one of them won: decide again.
                Err(ProposalError::Rejected(_)) => {
                    pending.extend_from_slice(which);
                    continue;
                }
                Err(ProposalError::NoLeader) => Some(ErrorCode::NOT_CONTROLLER),
                Err(ProposalError::TimedOut(_)) => Some(ErrorCode::REQUEST_TIMED_OUT),
            };
            for &i in which {
                let outcome = match failed {
                    None => Ok(()),
                    Some(code) => Err((code, code.message())),
                };
                outcomes.insert(i, outcome);
            }
        }
    }
    for i in pending {
        let code = ErrorCode::NOT_CONTROLLER;
        outcomes.insert(i, Err((code, code.message())));
    }
    Ok(outcomes.into_values().collect())
}

fn refused(refusal: &ElectionRefusal) -> (ErrorCode, String) {
    let code = refusal.error_code();
    match refusal {
        ElectionRefusal::NotNeeded => (code, code.message()),
        _ => (code, refusal.to_string()),
    }
}

/// Fences (`fenced`) or unfences broker `node_id` at `epoch`, in one entry
/// with the first elections that calls for (as Kafka's
/// `handleBrokerFenced` / `handleBrokerUnfenced`): a fenced broker's
/// leaderships move within the same commit, so clients are never sent to
/// it. Elections beyond one entry's bound follow through [`elect`].
pub(crate) async fn change_fencing(
    quorum: &Quorum,
    node_id: i32,
    epoch: i64,
    fenced: bool,
) -> Result<(), ProposalError> {
    let fencing = MetadataRecord::BrokerFencing(BrokerFencingRecord {
        node_id,
        epoch,
        fenced,
    });
    let mut last = Err(ProposalError::NoLeader);
    for _ in 0..ATTEMPTS_MAX {
        let mut next = quorum.image().as_ref().clone();
        // Read before the unfencing applies: that clears it.
        let new_disk = next.broker(node_id).is_some_and(|b| b.fresh_data_dir);
        if let Err(error) = next.apply(&fencing) {
            // Registered again meanwhile: nothing to fence.
            return Err(ProposalError::Rejected(error));
        }
        let mut records = vec![fencing.clone()];
        let controller = &quorum.settings().controller;
        if !fenced && new_disk {
            // Its disk is new: eligible for nothing it held before, and
            // the elections below must not pick it.
            for record in controller.forget_eligible(&next, node_id) {
                if next.apply(&record).is_ok() {
                    records.push(record);
                }
            }
        }
        records.extend(
            controller.elections(
                &next,
                &quorum.shutting_down(),
                RECORDS_PER_OPERATION_MAX
                    .saturating_sub(records.len())
                    .max(1),
            ),
        );
        let moved = records.len() - 1;
        last = quorum.commit(&records).await.map(|_| ());
        match &last {
            Ok(()) if moved > 0 => {
                tracing::info!(
                    node_id,
                    fenced,
                    partitions = moved,
                    "leaders and ISRs changed"
                )
            }
            Err(ProposalError::Rejected(_)) => continue,
            _ => {}
        }
        return last;
    }
    last
}

/// Commits the elections the brokers' states still call for, one bounded
/// entry at a time, until none is left; how many partitions changed.
pub(crate) async fn elect(quorum: &Quorum) -> Result<usize, ProposalError> {
    let mut changed = 0;
    let mut lost_races = 0;
    while quorum.is_active_controller() {
        let image = quorum.image();
        let records = quorum.settings().controller.elections(
            &image,
            &quorum.shutting_down(),
            RECORDS_PER_OPERATION_MAX,
        );
        if records.is_empty() {
            break;
        }
        match quorum.commit(&records).await {
            Ok(_) => changed += records.len(),
            Err(ProposalError::Rejected(_)) if lost_races + 1 < ATTEMPTS_MAX => lost_races += 1,
            Err(error) => return Err(error),
        }
    }
    if changed > 0 {
        tracing::info!(partitions = changed, "leaders and ISRs changed");
    }
    Ok(changed)
}

/// The active controller of a one-voter quorum over real files and a real
/// controller listener: AlterPartition in the Kafka protocol (the broker's
/// `ControllerLink` against the controller's `broker_rpc`), a controlled
/// shutdown by heartbeat, fencing with its elections.
#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use rafka_core::metadata::{
        Committed, IsrMember, MetadataImage, MetadataRecord, PartitionLeadershipRecord,
        PartitionRecord, RegisterBrokerRecord, TopicRecord, NO_LEADER,
    };
    use uuid::Uuid;

    use super::*;
    use crate::controller::{PublishError, Publisher};
    use crate::quorum::broker_rpc::ControllerLink;
    use crate::quorum::driver::raft_id;
    use crate::quorum::QuorumSettings;
    use crate::storage::GlommioStorage;

    const TOPIC: Uuid = Uuid::from_u128(0x51);
    const DEADLINE: Duration = Duration::from_secs(20);

    struct Published(Rc<RefCell<u64>>);

    impl Publisher for Published {
        async fn publish(&self, _committed: Committed) -> Result<(), PublishError> {
            *self.0.borrow_mut() += 1;
            Ok(())
        }
    }

    fn setup() -> Vec<MetadataRecord> {
        let register = |node_id: i32| {
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                node_id,
                epoch: 1,
                incarnation_id: Uuid::from_u128(node_id as u128),
                rack: None,
                endpoints: Vec::new(),
                fresh_data_dir: false,
            })
        };
        vec![
            register(1),
            register(2),
            register(3),
            MetadataRecord::Topic(TopicRecord {
                name: "t".into(),
                topic_id: TOPIC,
            }),
            MetadataRecord::Partition(PartitionRecord {
                topic_id: TOPIC,
                partition: 0,
                shard: 0,
            }),
            MetadataRecord::PartitionLeadership(PartitionLeadershipRecord {
                topic_id: TOPIC,
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2, 3],
                partition_epoch: 0,
                adding: Vec::new(),
                removing: Vec::new(),
                elr: Vec::new(),
            }),
        ]
    }

    fn leadership(image: &MetadataImage) -> Leadership {
        image
            .topic_by_id(&TOPIC)
            .and_then(|t| t.leadership(0))
            .cloned()
            .expect("a leadership")
    }

    fn change(broker_id: i32, l: &Leadership, isr: &[i32]) -> AlterPartition {
        AlterPartition {
            broker_id,
            broker_epoch: 1,
            topic_id: TOPIC,
            partition: 0,
            leader_epoch: l.leader_epoch,
            partition_epoch: l.partition_epoch,
            new_isr: isr.iter().map(|id| IsrMember::any_epoch(*id)).collect(),
        }
    }

    #[test]
    fn the_active_controller_changes_isrs_and_moves_leaders_over_its_listener() {
        let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(64 * 1024)
            .make()
            .expect("executor");
        executor.run(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let address = format!("127.0.0.1:{port}");
            let me = raft_id(1);
            let settings =
                QuorumSettings::new(me, vec![(me, address.clone())], Duration::from_millis(200));
            let quorum = Quorum::open(GlommioStorage::new(), dir.path().join("q"), settings)
                .await
                .expect("quorum opens");
            quorum.start_applying(Published(Rc::new(RefCell::new(0))));
            let deadline = Instant::now() + DEADLINE;
            while !quorum.is_active_controller() {
                assert!(Instant::now() < deadline, "never led");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            let (_, published) = quorum.commit(&setup()).await.expect("setup commits");
            published.expect("published");

            // AlterPartition from leader 1 over the controller listener.
            let mut link = ControllerLink::open(me, &address).await.expect("a link");
            let before = leadership(&quorum.image());
            let shrunk = link
                .alter_partition(&change(1, &before, &[1, 2]))
                .await
                .expect("an answer")
                .expect("accepted");
            assert_eq!(
                (shrunk.leader, shrunk.leader_epoch, shrunk.isr.clone()),
                (1, 0, vec![1, 2])
            );
            assert_eq!(shrunk.partition_epoch, 1);
            let now = leadership(&quorum.image());
            assert_eq!((now.isr.clone(), now.partition_epoch), (vec![1, 2], 1));
            // The same request again is an old partition epoch now.
            let again = link.alter_partition(&change(1, &before, &[1, 2])).await;
            assert_eq!(again, Ok(Err(ErrorCode::INVALID_UPDATE_VERSION)));
            // A follower is not the leader; an unknown sender is stale.
            let from_follower = link.alter_partition(&change(2, &now, &[1, 2])).await;
            assert_eq!(from_follower, Ok(Err(ErrorCode::INVALID_REQUEST)));
            let stranger = AlterPartition {
                broker_epoch: 9,
                ..change(1, &now, &[1, 2])
            };
            let stale = link.alter_partition(&stranger).await;
            assert_eq!(stale, Ok(Err(ErrorCode::STALE_BROKER_EPOCH)));

            // Broker 1 shuts down: fenced, its leadership goes to 2, out
            // of the ISR; it may stop once it leads nothing.
            let answer = link.heartbeat(1, 1, 0, true).await.expect("an answer");
            assert_eq!(answer.error_code, 0);
            assert!(answer.is_fenced && answer.should_shut_down, "{answer:?}");
            let moved = leadership(&quorum.image());
            assert_eq!(
                (moved.leader, moved.leader_epoch, moved.isr.clone()),
                (2, 1, vec![2])
            );
            assert_eq!(moved.partition_epoch, 2);
            // Broker 1 may not join an ISR while it shuts down.
            let rejoin = link.alter_partition(&change(2, &moved, &[2, 1])).await;
            assert_eq!(rejoin, Ok(Err(ErrorCode::INELIGIBLE_REPLICA)));
            let grown = alter_partition(&quorum, &change(2, &moved, &[2, 3]))
                .await
                .expect("accepted in place");
            assert_eq!((grown.isr.clone(), grown.partition_epoch), (vec![2, 3], 3));

            // 2 fenced (its session ran out): 3 leads, in the same commit.
            change_fencing(&quorum, 2, 1, true).await.expect("fenced");
            let image = quorum.image();
            assert!(image.broker(2).is_some_and(|b| b.fenced));
            let l = leadership(&image);
            assert_eq!((l.leader, l.leader_epoch, l.isr.clone()), (3, 2, vec![3]));
            // 3 too: nobody left in sync, no leader, an empty ISR; 3 is
            // an eligible leader replica (KIP-966).
            change_fencing(&quorum, 3, 1, true).await.expect("fenced");
            let l = leadership(&quorum.image());
            assert_eq!(
                (l.leader, l.leader_epoch, l.isr.clone(), l.elr.clone()),
                (NO_LEADER, 3, vec![], vec![3])
            );
            // 2 back changes nothing (out of sync); 3 back leads again.
            change_fencing(&quorum, 2, 1, false)
                .await
                .expect("unfenced");
            assert_eq!(leadership(&quorum.image()).leader, NO_LEADER);
            change_fencing(&quorum, 3, 1, false)
                .await
                .expect("unfenced");
            let l = leadership(&quorum.image());
            assert_eq!((l.leader, l.leader_epoch, l.isr.clone()), (3, 4, vec![3]));
            assert_eq!(elect(&quorum).await, Ok(0), "nothing owed");
            quorum.close();
        });
    }
}
