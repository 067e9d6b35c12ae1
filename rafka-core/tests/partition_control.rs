//! The controller's partition changes (`metadata::partition_control`):
//! AlterPartition with each of Kafka's answers, and the elections from the
//! ISR that fencing, controlled shutdown and unfencing call for.

use std::collections::{BTreeMap, BTreeSet};

use rafka_core::config::BrokerConfig;
use rafka_core::metadata::partition_control::leaderships_of;
use rafka_core::metadata::{
    AlterPartition, AlterPartitionOutcome, ApplyError, BrokerFencingRecord, ConfigRecord,
    ConfigResource, Controller, ElectionRefusal, ElectionType, IneligibleReason, IsrError,
    IsrMember, Leadership, MetadataImage, MetadataRecord, NewTopic, PartitionLeadershipRecord,
    PartitionRecord, RegisterBrokerRecord, TopicRecord, NO_LEADER,
};
use rafka_proto::error::ErrorCode;
use uuid::Uuid;

const TOPIC: Uuid = Uuid::from_u128(0x7001);

fn controller() -> Controller {
    let mut controller = Controller::new(&BrokerConfig::default(), 1);
    controller.cluster = true;
    controller
}

fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for record in records {
        if let Err(error) = image.apply(record) {
            panic!("{record:?}: {error}");
        }
    }
}

fn register(node_id: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        node_id,
        epoch,
        incarnation_id: Uuid::from_u128(node_id as u128),
        rack: None,
        endpoints: Vec::new(),
        fresh_data_dir: false,
    })
}

fn fencing(node_id: i32, fenced: bool) -> MetadataRecord {
    MetadataRecord::BrokerFencing(BrokerFencingRecord {
        node_id,
        epoch: 1,
        fenced,
    })
}

fn leadership(leader: i32, leader_epoch: i32, replicas: &[i32], isr: &[i32]) -> Leadership {
    Leadership {
        leader,
        leader_epoch,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        partition_epoch: leader_epoch,
        adding: Vec::new(),
        removing: Vec::new(),
        elr: Vec::new(),
    }
}

/// Brokers 1-3 (epoch 1) and topic "t" with one partition per entry of
/// `partitions`, each with that leadership.
fn cluster(partitions: &[Leadership]) -> MetadataImage {
    let mut image = MetadataImage::new();
    apply(
        &mut image,
        &[register(1, 1), register(2, 1), register(3, 1)],
    );
    apply(
        &mut image,
        &[MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: TOPIC,
        })],
    );
    for (index, l) in partitions.iter().enumerate() {
        let partition = index as i32;
        apply(
            &mut image,
            &[
                MetadataRecord::Partition(PartitionRecord {
                    topic_id: TOPIC,
                    partition,
                    shard: 0,
                }),
                MetadataRecord::PartitionLeadership(l.to_record(TOPIC, partition)),
            ],
        );
    }
    image
}

fn current(image: &MetadataImage, partition: i32) -> Leadership {
    image
        .topic_by_id(&TOPIC)
        .and_then(|t| t.leadership(partition))
        .cloned()
        .expect("a leadership")
}

/// Leader 1 of partition 0 as of `image`, asking for `isr`.
fn ask(image: &MetadataImage, isr: &[i32]) -> AlterPartition {
    ask_as(image, 1, isr)
}

/// `leader` of partition 0 as of `image` (at broker epoch 1), asking for
/// `isr`.
fn ask_as(image: &MetadataImage, leader: i32, isr: &[i32]) -> AlterPartition {
    let l = current(image, 0);
    assert_eq!(l.leader, leader, "the partition's leader");
    AlterPartition {
        broker_id: l.leader,
        broker_epoch: 1,
        topic_id: TOPIC,
        partition: 0,
        leader_epoch: l.leader_epoch,
        partition_epoch: l.partition_epoch,
        new_isr: isr.iter().map(|id| IsrMember::any_epoch(*id)).collect(),
    }
}

/// Applies the elections `image` calls for (nobody shutting down).
fn elect(c: &Controller, image: &mut MetadataImage) {
    let records = c.elections(image, &none(), 100);
    apply(image, &records);
}

fn none() -> BTreeSet<i32> {
    BTreeSet::new()
}

fn changed(outcome: Result<AlterPartitionOutcome, IsrError>) -> PartitionLeadershipRecord {
    match outcome {
        Ok(AlterPartitionOutcome::Changed(record)) => record,
        other => panic!("not a change: {other:?}"),
    }
}

fn refused(outcome: Result<AlterPartitionOutcome, IsrError>) -> (ErrorCode, IsrError) {
    match outcome {
        Err(error) => (error.error_code(), error),
        Ok(outcome) => panic!("accepted: {outcome:?}"),
    }
}

#[test]
fn new_partitions_start_with_every_replica_in_sync() {
    let mut image = MetadataImage::new();
    apply(
        &mut image,
        &[register(1, 1), register(2, 1), register(3, 1)],
    );
    let topic = NewTopic {
        name: "t".into(),
        partitions: 4,
        replication_factor: 3,
        configs: BTreeMap::new(),
        assignments: Vec::new(),
    };
    let records = controller()
        .create_topic(&image, &topic, TOPIC)
        .expect("created");
    apply(&mut image, &records);
    let created = image.topic("t").expect("topic");
    for partition in 0..4 {
        let l = created.leadership(partition).expect("a leadership");
        assert_eq!(l.replicas.len(), 3, "{l:?}");
        assert_eq!(l.isr, l.replicas, "{l:?}");
        assert_eq!(l.leader, l.replicas[0]);
        assert_eq!((l.leader_epoch, l.partition_epoch), (0, 0));
    }
    // CreatePartitions too.
    let records = controller()
        .create_partitions(&image, "t", 6, None)
        .expect("grown");
    apply(&mut image, &records);
    let grown = image.topic("t").expect("topic");
    let l = grown.leadership(5).expect("a leadership");
    assert_eq!(l.isr, l.replicas);
}

/// The message of a refusal that must be INVALID_REPLICA_ASSIGNMENT.
fn invalid_assignment(
    outcome: Result<Vec<MetadataRecord>, rafka_core::metadata::ControllerError>,
) -> String {
    let error = outcome.expect_err("refused");
    assert_eq!(
        error.error_code(),
        ErrorCode::INVALID_REPLICA_ASSIGNMENT,
        "{error}"
    );
    error.to_string()
}

#[test]
fn a_manual_assignment_places_each_partition_on_its_brokers_with_kafkas_checks() {
    let mut image = MetadataImage::new();
    apply(
        &mut image,
        &[
            register(1, 1),
            register(2, 1),
            register(3, 1),
            fencing(3, true),
        ],
    );
    let assigned = |assignments: Vec<Vec<i32>>| NewTopic {
        name: format!("m{}", assignments.len()),
        partitions: -1,
        replication_factor: -1,
        configs: BTreeMap::new(),
        assignments,
    };
    let c = controller();
    let records = c
        .create_topic(&image, &assigned(vec![vec![2, 1], vec![3, 2]]), TOPIC)
        .expect("created");
    apply(&mut image, &records);
    let created = image.topic("m2").expect("topic");
    assert_eq!(created.partition_count(), 2);
    let first = created.leadership(0).expect("partition 0");
    assert_eq!(
        (first.leader, &first.replicas, &first.isr),
        (2, &vec![2, 1], &vec![2, 1])
    );
    // Fenced broker 3 is a replica out of the ISR; 2 leads.
    let second = created.leadership(1).expect("partition 1");
    assert_eq!(
        (second.leader, &second.replicas, &second.isr),
        (2, &vec![3, 2], &vec![2])
    );

    let refused = |assignments: Vec<Vec<i32>>| {
        invalid_assignment(c.create_topic(&image, &assigned(assignments), Uuid::from_u128(9)))
    };
    assert_eq!(
        refused(vec![vec![1, 2], vec![1], vec![2, 1]]),
        "The manual partition assignment includes a partition with 1 replica(s), but this is \
         not consistent with previous partitions, which have 2 replica(s)."
    );
    assert_eq!(
        refused(vec![vec![1, 1]]),
        "The manual partition assignment specifies the same node id more than once."
    );
    assert_eq!(
        refused(vec![vec![1, 7]]),
        "The manual partition assignment includes broker 7, but no such broker is registered."
    );
    assert_eq!(
        refused(vec![vec![3]]),
        "All brokers specified in the manual partition assignment for partition 0 are fenced or \
         in controlled shutdown."
    );
    assert_eq!(
        refused(vec![vec![]]),
        "partition 0 has an empty replica list"
    );

    // CreatePartitions: one list per new partition, as wide as the
    // topic's partitions.
    let records = c
        .create_partitions(&image, "m2", 4, Some(&[vec![1, 3], vec![3, 1]]))
        .expect("grown");
    apply(&mut image, &records);
    let grown = image.topic("m2").expect("topic");
    assert_eq!(grown.partition_count(), 4);
    for (partition, replicas) in [(2, vec![1, 3]), (3, vec![3, 1])] {
        let l = grown.leadership(partition).expect("a new partition");
        assert_eq!((l.leader, &l.replicas, &l.isr), (1, &replicas, &vec![1]));
    }
    let grow_refused = |image: &MetadataImage, total: i32, assignments: &[Vec<i32>]| {
        invalid_assignment(c.create_partitions(image, "m2", total, Some(assignments)))
    };
    assert_eq!(
        grow_refused(&image, 6, &[vec![1, 2]]),
        "Attempted to add 2 additional partitions, but only 1 assignments were supplied."
    );
    assert_eq!(
        grow_refused(&image, 5, &[vec![1]]),
        "The manual partition assignment includes a partition with 1 replica(s), but this is \
         not consistent with previous partitions, which have 2 replica(s)."
    );
    assert_eq!(
        grow_refused(&image, 6, &[vec![1, 2], vec![3, 3]]),
        "The manual partition assignment specifies the same node id more than once."
    );
    assert_eq!(
        grow_refused(&image, 5, &[vec![3, 9]]),
        "The manual partition assignment includes broker 9, but no such broker is registered."
    );
    apply(&mut image, &[fencing(2, true)]);
    assert_eq!(
        grow_refused(&image, 5, &[vec![3, 2]]),
        "All brokers specified in the manual partition assignment for partition 4 are fenced or \
         in controlled shutdown."
    );

    // A single node takes only assignments to itself.
    let single = Controller::new(&BrokerConfig::default(), 1);
    let node = BrokerConfig::default().node_id;
    let alone = MetadataImage::new();
    let records = single
        .create_topic(&alone, &assigned(vec![vec![node], vec![node]]), TOPIC)
        .expect("created on this node");
    assert_eq!(
        records.len(),
        3,
        "the topic and two partitions: {records:?}"
    );
    let error = single
        .create_topic(&alone, &assigned(vec![vec![node + 1]]), TOPIC)
        .expect_err("another broker");
    assert_eq!(error.error_code(), ErrorCode::INVALID_REPLICA_ASSIGNMENT);
}

#[test]
fn alter_partition_shrinks_and_expands_the_isr_and_bumps_only_the_partition_epoch() {
    let c = controller();
    let mut image = cluster(&[leadership(1, 3, &[1, 2, 3], &[1, 2, 3])]);
    let shrink = changed(c.alter_partition(&image, &none(), &ask(&image, &[1, 3])));
    assert_eq!(
        shrink,
        PartitionLeadershipRecord {
            topic_id: TOPIC,
            partition: 0,
            leader: 1,
            leader_epoch: 3,
            replicas: vec![1, 2, 3],
            isr: vec![1, 3],
            partition_epoch: 4,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        }
    );
    apply(&mut image, &[MetadataRecord::PartitionLeadership(shrink)]);
    let grow = changed(c.alter_partition(&image, &none(), &ask(&image, &[1, 3, 2])));
    assert_eq!(
        (grow.isr.clone(), grow.leader_epoch, grow.partition_epoch),
        (vec![1, 3, 2], 3, 5)
    );
    apply(&mut image, &[MetadataRecord::PartitionLeadership(grow)]);
    // The same ISR again: the current state, nothing to write.
    let again = c.alter_partition(&image, &none(), &ask(&image, &[1, 3, 2]));
    assert_eq!(
        again,
        Ok(AlterPartitionOutcome::Unchanged(current(&image, 0)))
    );
    // A member's broker epoch is checked when given (v3).
    let mut with_epochs = ask(&image, &[1, 2]);
    with_epochs.new_isr[1].broker_epoch = 1;
    let record = changed(c.alter_partition(&image, &none(), &with_epochs));
    assert_eq!(record.isr, vec![1, 2]);
}

#[test]
fn alter_partition_refusals_carry_kafkas_codes() {
    let c = controller();
    let mut image = cluster(&[leadership(1, 2, &[1, 2, 3, 4], &[1, 2])]);
    let base = ask(&image, &[1, 2, 3]);
    let refuse = |request: &AlterPartition, image: &MetadataImage, shutting: &BTreeSet<i32>| {
        refused(c.alter_partition(image, shutting, request))
    };
    let with = |edit: &dyn Fn(&mut AlterPartition)| {
        let mut request = base.clone();
        edit(&mut request);
        request
    };

    let (code, _) = refuse(&with(&|r| r.broker_epoch = 2), &image, &none());
    assert_eq!(code, ErrorCode::STALE_BROKER_EPOCH);
    let (code, _) = refuse(&with(&|r| r.broker_id = 9), &image, &none());
    assert_eq!(code, ErrorCode::STALE_BROKER_EPOCH);
    let (code, _) = refuse(&with(&|r| r.topic_id = Uuid::from_u128(5)), &image, &none());
    assert_eq!(code, ErrorCode::UNKNOWN_TOPIC_ID);
    let (code, _) = refuse(&with(&|r| r.partition = 1), &image, &none());
    assert_eq!(code, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    // Epochs ahead of this controller: it is probably not the active one.
    let (code, _) = refuse(&with(&|r| r.leader_epoch = 3), &image, &none());
    assert_eq!(code, ErrorCode::NOT_CONTROLLER);
    let (code, _) = refuse(&with(&|r| r.partition_epoch = 3), &image, &none());
    assert_eq!(code, ErrorCode::NOT_CONTROLLER);
    let (code, error) = refuse(&with(&|r| r.leader_epoch = 1), &image, &none());
    assert_eq!(code, ErrorCode::FENCED_LEADER_EPOCH);
    assert_eq!(
        error,
        IsrError::FencedLeaderEpoch {
            requested: 1,
            current: 2
        }
    );
    let (code, error) = refuse(&with(&|r| r.broker_id = 2), &image, &none());
    assert_eq!(code, ErrorCode::INVALID_REQUEST);
    assert_eq!(
        error,
        IsrError::NotLeader {
            broker_id: 2,
            leader: 1
        }
    );
    let (code, _) = refuse(&with(&|r| r.partition_epoch = 1), &image, &none());
    assert_eq!(code, ErrorCode::INVALID_UPDATE_VERSION);
    for isr in [&[1, 2, 5][..], &[1, 2, 2], &[2, 3]] {
        let request = with(&|r| {
            r.new_isr = isr.iter().map(|id| IsrMember::any_epoch(*id)).collect();
        });
        let (code, _) = refuse(&request, &image, &none());
        assert_eq!(code, ErrorCode::INVALID_REQUEST, "{isr:?}");
    }
    // Ineligible members: not registered (4), shutting down, fenced, or
    // at another broker epoch.
    let request = with(&|r| r.new_isr.push(IsrMember::any_epoch(4)));
    let (code, error) = refuse(&request, &image, &none());
    assert_eq!(code, ErrorCode::INELIGIBLE_REPLICA);
    assert_eq!(
        error,
        IsrError::IneligibleReplica {
            node_id: 4,
            reason: IneligibleReason::NotRegistered
        }
    );
    let (_, error) = refuse(&base, &image, &BTreeSet::from([3]));
    assert!(matches!(
        error,
        IsrError::IneligibleReplica {
            node_id: 3,
            reason: IneligibleReason::ShuttingDown
        }
    ));
    let stale_member = with(&|r| r.new_isr[2].broker_epoch = 7);
    let (code, error) = refuse(&stale_member, &image, &none());
    assert_eq!(code, ErrorCode::INELIGIBLE_REPLICA);
    assert!(matches!(
        error,
        IsrError::IneligibleReplica {
            node_id: 3,
            reason: IneligibleReason::EpochMismatch {
                requested: 7,
                current: 1
            }
        }
    ));
    apply(&mut image, &[fencing(3, true)]);
    let (code, error) = refuse(&base, &image, &none());
    assert_eq!(code, ErrorCode::INELIGIBLE_REPLICA);
    assert!(matches!(
        error,
        IsrError::IneligibleReplica {
            reason: IneligibleReason::Fenced,
            ..
        }
    ));
    // A shrink that leaves the fenced broker out is fine.
    let shrink = with(&|r| r.new_isr.truncate(1));
    assert_eq!(
        changed(c.alter_partition(&image, &none(), &shrink)).isr,
        vec![1]
    );
}

#[test]
fn a_fenced_leader_is_replaced_from_the_isr_and_a_fenced_follower_leaves_it() {
    let c = controller();
    let mut image = cluster(&[
        leadership(1, 0, &[1, 2, 3], &[1, 2, 3]),
        leadership(2, 4, &[2, 1, 3], &[2, 1, 3]),
        leadership(2, 0, &[2, 3], &[2, 3]),
        // 3 is the first replica but out of sync: 2 must lead.
        leadership(1, 0, &[3, 1, 2], &[1, 2]),
    ]);
    assert!(c.elections(&image, &none(), 100).is_empty(), "all settled");
    apply(&mut image, &[fencing(1, true)]);
    let records = c.elections(&image, &none(), 100);
    assert_eq!(records.len(), 3, "{records:?}");
    apply(&mut image, &records);
    // Led by 1: the first in-sync replica leads, one leader epoch later.
    assert_eq!(
        current(&image, 0),
        Leadership {
            leader: 2,
            leader_epoch: 1,
            replicas: vec![1, 2, 3],
            isr: vec![2, 3],
            partition_epoch: 1,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        }
    );
    // 1 followed: out of the ISR, same leader and leader epoch.
    assert_eq!(
        current(&image, 1),
        Leadership {
            leader: 2,
            leader_epoch: 4,
            replicas: vec![2, 1, 3],
            isr: vec![2, 3],
            partition_epoch: 5,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        }
    );
    assert_eq!(current(&image, 2), leadership(2, 0, &[2, 3], &[2, 3]));
    assert_eq!(current(&image, 3).leader, 2);
    assert_eq!(current(&image, 3).isr, vec![2]);
    assert_eq!(leaderships_of(&image, 1), 0);
    assert!(c.elections(&image, &none(), 100).is_empty(), "nothing left");

    // Back: 1 is not put back in any ISR (its leaders do that through
    // AlterPartition once it caught up), and leads nothing.
    apply(&mut image, &[fencing(1, false)]);
    assert!(c.elections(&image, &none(), 100).is_empty());
    assert_eq!(current(&image, 0).isr, vec![2, 3]);
}

fn eligible(l: Leadership, elr: &[i32]) -> Leadership {
    Leadership {
        elr: elr.to_vec(),
        ..l
    }
}

fn min_isr(image: &mut MetadataImage, min: &str) {
    apply(
        image,
        &[MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Topic("t".into()),
            name: "min.insync.replicas".into(),
            value: Some(min.into()),
        })],
    );
}

/// KIP-966: the last ISR member leaves the ISR when fenced and becomes an
/// eligible leader replica, which leads again when it returns.
#[test]
fn the_last_in_sync_replica_becomes_eligible_and_leads_again_when_it_returns() {
    let c = controller();
    let mut image = cluster(&[
        leadership(1, 2, &[1], &[1]),
        leadership(1, 0, &[1, 2], &[1]),
        leadership(2, 0, &[2, 1], &[2, 1]),
    ]);
    apply(&mut image, &[fencing(1, true)]);
    let records = c.elections(&image, &none(), 100);
    apply(&mut image, &records);
    // No other in-sync replica: no leader, an empty ISR, 1 eligible.
    assert_eq!(
        current(&image, 0),
        eligible(leadership(NO_LEADER, 3, &[1], &[]), &[1])
    );
    // 2 is a live replica but neither in sync nor eligible: no leader.
    assert_eq!(
        current(&image, 1),
        Leadership {
            partition_epoch: 1,
            ..eligible(leadership(NO_LEADER, 1, &[1, 2], &[]), &[1])
        }
    );
    // 2 alone is at min.insync.replicas (1): nobody is eligible.
    assert_eq!(current(&image, 2).isr, vec![2]);
    assert_eq!(current(&image, 2).elr, Vec::<i32>::new());
    // Leaderless partitions are settled until an eligible one comes back.
    assert!(c.elections(&image, &none(), 100).is_empty());
    apply(&mut image, &[fencing(1, false)]);
    let records = c.elections(&image, &none(), 100);
    assert_eq!(records.len(), 2, "{records:?}");
    apply(&mut image, &records);
    assert_eq!(current(&image, 0), leadership(1, 4, &[1], &[1]));
    assert_eq!(current(&image, 1).leader, 1);
    assert_eq!(current(&image, 1).leader_epoch, 2);
    assert_eq!(current(&image, 1).isr, vec![1]);
    assert_eq!(current(&image, 1).elr, Vec::<i32>::new());

    // Both members of an ISR gone at once: both eligible (either holds
    // every committed record), and the first to return leads.
    let mut image = cluster(&[leadership(1, 0, &[1, 2, 3], &[1, 2])]);
    apply(&mut image, &[fencing(1, true), fencing(2, true)]);
    elect(&c, &mut image);
    assert_eq!(current(&image, 0).leader, NO_LEADER);
    assert_eq!(current(&image, 0).isr, Vec::<i32>::new());
    assert_eq!(current(&image, 0).elr, vec![1, 2]);
    apply(&mut image, &[fencing(2, false)]);
    elect(&c, &mut image);
    assert_eq!(current(&image, 0).leader, 2);
    assert_eq!(current(&image, 0).isr, vec![2]);
    assert_eq!(current(&image, 0).elr, Vec::<i32>::new());
}

/// KIP-966 with min.insync.replicas=2: who leaves an ISR below it stays
/// eligible (the high watermark stopped with it); who left while the ISR
/// was at or above it does not, and never leads cleanly.
#[test]
fn replicas_that_leave_an_isr_below_min_insync_replicas_stay_eligible_to_lead() {
    let c = controller();
    let mut image = cluster(&[leadership(1, 0, &[1, 2, 3], &[1, 2, 3])]);
    min_isr(&mut image, "2");
    // 3 leaves while two stay: not eligible.
    let record = changed(c.alter_partition(&image, &none(), &ask(&image, &[1, 2])));
    apply(&mut image, &[MetadataRecord::PartitionLeadership(record)]);
    assert_eq!(current(&image, 0).elr, Vec::<i32>::new());
    // 2 leaves: the ISR is below 2, 2 holds everything committed.
    let record = changed(c.alter_partition(&image, &none(), &ask(&image, &[1])));
    assert_eq!(record.isr, vec![1]);
    assert_eq!(record.elr, vec![2]);
    apply(&mut image, &[MetadataRecord::PartitionLeadership(record)]);
    // The leader dies: 2, eligible and live, leads with an ISR of itself;
    // 1 is eligible now. 3, live too, is not.
    apply(&mut image, &[fencing(1, true)]);
    elect(&c, &mut image);
    let after = current(&image, 0);
    assert_eq!(
        (after.leader, after.isr.clone(), after.elr.clone()),
        (2, vec![2], vec![1])
    );
    assert_eq!(after.leader_epoch, 1);
    // 3 catches up and joins: the ISR is at min.insync.replicas again and
    // nobody is eligible any more (1 misses what commits from now on).
    let record = changed(c.alter_partition(&image, &none(), &ask_as(&image, 2, &[2, 3])));
    assert_eq!(
        (record.isr.clone(), record.elr.clone()),
        (vec![2, 3], vec![])
    );
    apply(&mut image, &[MetadataRecord::PartitionLeadership(record)]);

    // Without any eligible replica a live out-of-sync one does not lead;
    // an unclean election (asked for) makes it leader and forgets the
    // eligible replicas.
    let mut image = cluster(&[eligible(leadership(1, 0, &[1, 2, 3], &[1]), &[2])]);
    min_isr(&mut image, "2");
    apply(&mut image, &[fencing(1, true), fencing(2, true)]);
    elect(&c, &mut image);
    assert_eq!(
        (current(&image, 0).leader, current(&image, 0).elr.clone()),
        (NO_LEADER, vec![1, 2])
    );
    let record = c
        .elect_leader(&image, &none(), ElectionType::Unclean, "t", 0)
        .expect("an unclean election");
    assert_eq!(
        (record.leader, record.isr.clone(), record.elr.clone()),
        (3, vec![3], vec![])
    );
}

#[test]
fn unclean_leader_election_takes_a_live_replica_when_no_in_sync_one_is_left() {
    let c = controller();
    let mut image = cluster(&[
        leadership(1, 0, &[1, 3, 2], &[1]),
        leadership(1, 0, &[1, 3, 2], &[1]),
    ]);
    // Topic "t" allows it; nothing else does.
    apply(
        &mut image,
        &[MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Topic("t".into()),
            name: "unclean.leader.election.enable".into(),
            value: Some("true".into()),
        })],
    );
    apply(&mut image, &[fencing(1, true)]);
    let shutting = BTreeSet::from([3]);
    let records = c.elections(&image, &shutting, 100);
    apply(&mut image, &records);
    // 3 is shutting down, so 2: the first active replica, alone in the ISR.
    assert_eq!(
        current(&image, 0),
        Leadership {
            leader: 2,
            leader_epoch: 1,
            replicas: vec![1, 3, 2],
            isr: vec![2],
            partition_epoch: 1,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        }
    );

    // The cluster-wide dynamic default turns it on for every topic.
    let mut image = cluster(&[leadership(1, 0, &[1, 3, 2], &[1])]);
    apply(&mut image, &[fencing(1, true)]);
    elect(&c, &mut image);
    assert_eq!(current(&image, 0).leader, NO_LEADER);
    apply(
        &mut image,
        &[MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Broker(String::new()),
            name: "unclean.leader.election.enable".into(),
            value: Some("true".into()),
        })],
    );
    elect(&c, &mut image);
    assert_eq!(current(&image, 0).leader, 3);
    assert_eq!(current(&image, 0).isr, vec![3]);
    assert_eq!(current(&image, 0).leader_epoch, 2);
}

#[test]
fn a_broker_shutting_down_hands_over_its_leaderships_and_leaves_every_isr() {
    let c = controller();
    let image = cluster(&[
        leadership(3, 0, &[3, 1, 2], &[3, 1, 2]),
        leadership(1, 0, &[1, 3], &[1, 3]),
        leadership(3, 0, &[3], &[3]),
    ]);
    let shutting = BTreeSet::from([3]);
    assert_eq!(leaderships_of(&image, 3), 2);
    let mut next = image.clone();
    apply(&mut next, &c.elections(&image, &shutting, 100));
    assert_eq!(current(&next, 0).leader, 1);
    assert_eq!(current(&next, 0).isr, vec![1, 2]);
    assert_eq!(current(&next, 1).isr, vec![1]);
    // Its only replica: leaderless (Kafka's controlled shutdown too).
    assert_eq!(current(&next, 2).leader, NO_LEADER);
    assert_eq!(leaderships_of(&next, 3), 0);
    // An AlterPartition adding it back is refused meanwhile.
    let request = AlterPartition {
        new_isr: vec![IsrMember::any_epoch(1), IsrMember::any_epoch(3)],
        ..ask(&next, &[1])
    };
    let request = AlterPartition {
        partition: 1,
        leader_epoch: current(&next, 1).leader_epoch,
        partition_epoch: current(&next, 1).partition_epoch,
        ..request
    };
    assert_eq!(
        refused(c.alter_partition(&next, &shutting, &request)).0,
        ErrorCode::INELIGIBLE_REPLICA
    );
}

#[test]
fn elections_come_in_bounded_batches_and_a_stale_change_no_longer_applies() {
    let c = controller();
    let partitions: Vec<Leadership> = (0..10)
        .map(|_| leadership(1, 0, &[1, 2, 3], &[1, 2, 3]))
        .collect();
    let mut image = cluster(&partitions);
    apply(&mut image, &[fencing(1, true)]);
    let mut batches = Vec::new();
    loop {
        let records = c.elections(&image, &none(), 4);
        if records.is_empty() {
            break;
        }
        batches.push(records.len());
        apply(&mut image, &records);
    }
    assert_eq!(batches, vec![4, 4, 2]);
    assert_eq!(leaderships_of(&image, 2), 10);

    // An AlterPartition and an election computed from the same image:
    // whichever commits second carries a partition epoch that is no
    // longer above the current one, and is refused.
    let mut image = cluster(&[leadership(1, 0, &[1, 2, 3], &[1, 2, 3])]);
    let shrink = changed(c.alter_partition(&image, &none(), &ask(&image, &[1, 2])));
    let mut fenced = image.clone();
    apply(&mut fenced, &[fencing(3, true)]);
    let election = c.elections(&fenced, &none(), 100);
    apply(&mut image, &[fencing(3, true)]);
    apply(&mut image, &election);
    assert_eq!(
        image.apply(&MetadataRecord::PartitionLeadership(shrink)),
        Err(ApplyError::StalePartitionEpoch {
            topic_id: TOPIC,
            partition: 0,
            epoch: 1,
            current: 1
        })
    );
    // Snapshots keep partition epochs.
    let mut rebuilt = MetadataImage::new();
    apply(&mut rebuilt, &image.to_records());
    assert_eq!(rebuilt, image);
    assert_eq!(current(&rebuilt, 0).partition_epoch, 1);
}

#[test]
fn elect_leaders_moves_to_the_preferred_replica_or_a_leaderless_partition_to_any_live_one() {
    let c = controller();
    // 0: led by 2, preferred 1 in sync. 1: preferred 1 leads. 2: preferred
    // 3 out of the ISR. 3: no leader, ISR [2] (fenced below), replica 3
    // alive. 4: led by 2, preferred 3 in sync but fenced below.
    let mut image = cluster(&[
        leadership(2, 4, &[1, 2, 3], &[1, 2, 3]),
        leadership(1, 0, &[1, 2, 3], &[1, 2, 3]),
        leadership(1, 2, &[3, 1, 2], &[1, 2]),
        leadership(NO_LEADER, 5, &[2, 3], &[2]),
        leadership(2, 1, &[3, 2], &[2, 3]),
    ]);
    let preferred = |image: &MetadataImage, partition| {
        c.elect_leader(image, &none(), ElectionType::Preferred, "t", partition)
    };
    let moved = preferred(&image, 0).expect("an election");
    assert_eq!(
        (moved.leader, moved.leader_epoch, moved.partition_epoch),
        (1, 5, 5)
    );
    assert_eq!(moved.isr, vec![1, 2, 3]);
    assert_eq!(moved.replicas, vec![1, 2, 3]);
    assert_eq!(preferred(&image, 1), Err(ElectionRefusal::NotNeeded));
    assert_eq!(
        preferred(&image, 1).unwrap_err().error_code(),
        ErrorCode::ELECTION_NOT_NEEDED
    );
    let unavailable = preferred(&image, 2).unwrap_err();
    assert_eq!(
        unavailable.error_code(),
        ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE
    );
    assert_eq!(
        unavailable.to_string(),
        "Failed to elect leader for partition t-2 under strategy PREFERRED"
    );
    assert_eq!(
        preferred(&image, 9),
        Err(ElectionRefusal::UnknownPartition("t".into(), 9))
    );
    assert_eq!(
        c.elect_leader(&image, &none(), ElectionType::Preferred, "nope", 0)
            .unwrap_err()
            .error_code(),
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );
    // A preferred replica shutting down is not available either.
    let shutting: BTreeSet<i32> = [1].into_iter().collect();
    assert_eq!(
        c.elect_leader(&image, &shutting, ElectionType::Preferred, "t", 0)
            .unwrap_err()
            .error_code(),
        ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE
    );
    apply(&mut image, &[MetadataRecord::PartitionLeadership(moved)]);
    assert_eq!(current(&image, 0).leader, 1);
    // The same election again is not needed.
    assert_eq!(preferred(&image, 0), Err(ElectionRefusal::NotNeeded));

    apply(&mut image, &[fencing(2, true)]);
    let unclean = |image: &MetadataImage, partition| {
        c.elect_leader(image, &none(), ElectionType::Unclean, "t", partition)
    };
    // A partition with a leader needs no unclean election.
    assert_eq!(unclean(&image, 1), Err(ElectionRefusal::NotNeeded));
    let took = unclean(&image, 3).expect("an unclean election");
    assert_eq!((took.leader, took.leader_epoch), (3, 6));
    assert_eq!(took.isr, vec![3], "an unclean leader starts alone");
    apply(&mut image, &[MetadataRecord::PartitionLeadership(took)]);
    // With every replica fenced, nobody can lead.
    apply(&mut image, &[fencing(3, true)]);
    let none_left = unclean(&image, 3);
    assert_eq!(
        none_left,
        Err(ElectionRefusal::NotNeeded),
        "3 still leads in the image"
    );
    let mut orphan = cluster(&[leadership(NO_LEADER, 1, &[2, 3], &[2])]);
    apply(&mut orphan, &[fencing(2, true), fencing(3, true)]);
    let refused = unclean(&orphan, 0).unwrap_err();
    assert_eq!(
        refused.error_code(),
        ErrorCode::ELIGIBLE_LEADERS_NOT_AVAILABLE
    );
    // Preferred replica 3 is in sync but fenced.
    assert_eq!(
        preferred(&image, 4).unwrap_err().error_code(),
        ErrorCode::PREFERRED_LEADER_NOT_AVAILABLE
    );
}

#[test]
fn a_reassignment_adds_replicas_then_completes_when_they_are_in_sync_or_is_cancelled() {
    use rafka_core::metadata::{reassignments, Reassignment, ReassignmentRefusal};
    let mut image = cluster(&[leadership(1, 0, &[1, 2, 3], &[1, 2, 3])]);
    apply(&mut image, &[register(4, 1)]);
    let c = controller();
    let reassign = |image: &MetadataImage, target: Option<&[i32]>, allow: bool| {
        c.reassign(image, &none(), "t", 0, target, allow)
    };
    let code = |refusal: ReassignmentRefusal| (refusal.error_code(), refusal.to_string());

    // Moving 1 to 4: 4 is added out of the ISR, 1 stays until 4 caught up.
    let record = reassign(&image, Some(&[4, 2, 3]), false)
        .expect("accepted")
        .expect("a change");
    assert_eq!(
        (record.leader, record.leader_epoch, record.partition_epoch),
        (1, 0, 1)
    );
    assert_eq!(
        (
            &record.replicas,
            &record.isr,
            &record.adding,
            &record.removing
        ),
        (&vec![4, 2, 3, 1], &vec![1, 2, 3], &vec![4], &vec![1])
    );
    apply(&mut image, &[MetadataRecord::PartitionLeadership(record)]);
    assert_eq!(
        reassignments(&image, None),
        vec![Reassignment {
            topic: "t".into(),
            partition: 0,
            replicas: vec![4, 2, 3, 1],
            adding: vec![4],
            removing: vec![1],
        }]
    );
    assert_eq!(
        reassignments(&image, Some(&[("t".into(), 1), ("nope".into(), 0)])),
        Vec::new()
    );
    // The same target again changes nothing.
    assert_eq!(reassign(&image, Some(&[4, 2, 3]), false), Ok(None));

    // The leader brings 4 into the ISR: that completes it, 1 leaves and
    // the first in-sync replica of the target leads.
    let done = changed(c.alter_partition(&image, &none(), &ask(&image, &[1, 2, 3, 4])));
    assert_eq!(
        (done.leader, done.leader_epoch, done.partition_epoch),
        (4, 1, 2)
    );
    assert_eq!(
        (
            &done.replicas,
            &done.isr,
            done.adding.len(),
            done.removing.len()
        ),
        (&vec![4, 2, 3], &vec![2, 3, 4], 0, 0)
    );
    apply(&mut image, &[MetadataRecord::PartitionLeadership(done)]);
    assert_eq!(reassignments(&image, None), Vec::new());

    // Only dropping replicas completes at once; v1 may forbid the new
    // replication factor.
    assert_eq!(
        reassign(&image, Some(&[2, 3]), false).map_err(code),
        Err((
            ErrorCode::INVALID_REPLICATION_FACTOR,
            "The replication factor is changed from 3 to 2".into()
        ))
    );
    let shrunk = reassign(&image, Some(&[2, 3]), true)
        .expect("accepted")
        .expect("a change");
    assert_eq!(
        (
            shrunk.leader,
            shrunk.leader_epoch,
            &shrunk.replicas,
            &shrunk.isr
        ),
        (2, 2, &vec![2, 3], &vec![2, 3])
    );
    assert!(shrunk.adding.is_empty() && shrunk.removing.is_empty());
    apply(&mut image, &[MetadataRecord::PartitionLeadership(shrunk)]);

    // Nothing to cancel.
    let nothing = reassign(&image, None, false).expect_err("refused");
    assert_eq!(nothing.error_code(), ErrorCode::NO_REASSIGNMENT_IN_PROGRESS);

    // A cancel takes the added replicas out again and keeps the others.
    let started = reassign(&image, Some(&[1, 3]), false)
        .expect("accepted")
        .expect("a change");
    assert_eq!(
        (&started.replicas, &started.adding, &started.removing),
        (&vec![1, 3, 2], &vec![1], &vec![2])
    );
    apply(&mut image, &[MetadataRecord::PartitionLeadership(started)]);
    let reverted = reassign(&image, None, false)
        .expect("accepted")
        .expect("a change");
    assert_eq!(
        (reverted.leader, &reverted.replicas, &reverted.isr),
        (2, &vec![3, 2], &vec![2, 3])
    );
    assert!(reverted.adding.is_empty() && reverted.removing.is_empty());
    // Replica 1 left the replica set: its epoch is fenced.
    assert_eq!(reverted.leader_epoch, 3);

    // Kafka's checks and messages.
    let refusal = |target: &[i32]| code(reassign(&image, Some(target), true).expect_err("refused"));
    let invalid = ErrorCode::INVALID_REPLICA_ASSIGNMENT;
    assert_eq!(
        refusal(&[]),
        (
            invalid,
            "The manual partition assignment includes an empty replica list.".into()
        )
    );
    assert_eq!(
        refusal(&[3, 2, 3]),
        (
            invalid,
            "The manual partition assignment includes the broker 3 more than once.".into()
        )
    );
    assert_eq!(
        refusal(&[9, 2, 7]),
        (
            invalid,
            "The manual partition assignment includes broker 7, but no such broker is \
             registered."
                .into()
        )
    );
    let unknown = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
    assert_eq!(
        code(
            c.reassign(&image, &none(), "nope", 0, Some(&[1]), true)
                .expect_err("refused")
        ),
        (unknown, "Unable to find a topic named nope.".into())
    );
    assert_eq!(
        code(
            c.reassign(&image, &none(), "t", 5, Some(&[1]), true)
                .expect_err("refused")
        ),
        (unknown, "Unable to find partition t:5.".into())
    );
}

#[test]
fn a_replica_being_removed_that_is_fenced_lets_the_reassignment_complete() {
    let mut image = cluster(&[leadership(1, 0, &[1, 2], &[1, 2])]);
    let c = controller();
    // Replace 2 by 3; 3 catches up, so only 2's leaving is owed.
    let record = c
        .reassign(&image, &none(), "t", 0, Some(&[1, 3]), false)
        .expect("accepted")
        .expect("a change");
    apply(&mut image, &[MetadataRecord::PartitionLeadership(record)]);
    let joined = changed(c.alter_partition(&image, &none(), &ask(&image, &[1, 2, 3])));
    // Every kept replica is in sync: completed, 2 out, 1 keeps leading.
    assert_eq!(
        (joined.leader, &joined.replicas, &joined.isr),
        (1, &vec![1, 3], &vec![1, 3])
    );
    assert_eq!(joined.leader_epoch, 1, "2 left the replicas: epoch bumped");
    apply(&mut image, &[MetadataRecord::PartitionLeadership(joined)]);

    // Another one: 1 and 3 to 3 and 2 while 1 (the leader) gets fenced.
    let record = c
        .reassign(&image, &none(), "t", 0, Some(&[3, 2]), false)
        .expect("accepted")
        .expect("a change");
    apply(&mut image, &[MetadataRecord::PartitionLeadership(record)]);
    apply(&mut image, &[fencing(1, true)]);
    elect(&c, &mut image);
    let l = current(&image, 0);
    // 1 left the ISR and 3 leads; 2 is not in sync yet, so still moving.
    assert_eq!(
        (l.leader, &l.isr, &l.adding, &l.removing),
        (3, &vec![3], &vec![2], &vec![1])
    );
}

/// A change of a topic's min.insync.replicas (its own, or the cluster's
/// default it follows) drops the eligible leader replicas it made: under
/// the new value the high watermark may have moved without them.
#[test]
fn a_min_insync_replicas_change_drops_the_eligible_leader_replicas() {
    let c = controller();
    let mut image = cluster(&[
        eligible(leadership(1, 0, &[1, 2, 3], &[1]), &[2]),
        leadership(1, 0, &[1, 2, 3], &[1, 2, 3]),
    ]);
    min_isr(&mut image, "2");
    let config = |resource: ConfigResource, value: &str| {
        MetadataRecord::Config(ConfigRecord {
            resource,
            name: "min.insync.replicas".into(),
            value: Some(value.into()),
        })
    };
    let lowered = [config(ConfigResource::Topic("t".into()), "1")];
    let cleared = c.elr_cleared_by_configs(&image, &lowered);
    assert_eq!(
        cleared,
        vec![MetadataRecord::PartitionLeadership(
            Leadership {
                partition_epoch: 1,
                ..leadership(1, 0, &[1, 2, 3], &[1])
            }
            .to_record(TOPIC, 0)
        )]
    );
    // The same value, another config, or the cluster default the topic
    // overrides: nothing.
    let same = [config(ConfigResource::Topic("t".into()), "2")];
    assert!(c.elr_cleared_by_configs(&image, &same).is_empty());
    let other = [MetadataRecord::Config(ConfigRecord {
        resource: ConfigResource::Topic("t".into()),
        name: "retention.ms".into(),
        value: Some("1000".into()),
    })];
    assert!(c.elr_cleared_by_configs(&image, &other).is_empty());
    let default = [config(ConfigResource::Broker(String::new()), "3")];
    assert!(c.elr_cleared_by_configs(&image, &default).is_empty());
    // Without the override, the cluster default is the topic's value.
    let mut image = cluster(&[eligible(leadership(1, 0, &[1, 2, 3], &[]), &[1, 2])]);
    let raised = [config(ConfigResource::Broker(String::new()), "2")];
    assert_eq!(c.elr_cleared_by_configs(&image, &raised).len(), 1);
    apply(&mut image, &raised);
    assert_eq!(current(&image, 0).elr, vec![1, 2]);
}

/// A broker registered again on a new disk (KIP-966's unclean shutdown)
/// is taken out of every eligible leader replica set, and its record says
/// so until it is let in; the flag survives the record's bytes.
#[test]
fn a_broker_back_on_a_new_disk_is_eligible_for_nothing() {
    let c = controller();
    let mut image = cluster(&[
        eligible(leadership(NO_LEADER, 1, &[1, 2, 3], &[]), &[1, 2]),
        eligible(leadership(3, 1, &[1, 2, 3], &[3]), &[2]),
        leadership(3, 1, &[1, 2, 3], &[3, 1, 2]),
    ]);
    let again = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        node_id: 2,
        epoch: 2,
        incarnation_id: Uuid::from_u128(22),
        rack: None,
        endpoints: Vec::new(),
        fresh_data_dir: true,
    });
    assert_eq!(MetadataRecord::decode(&again.to_bytes()), Ok(again.clone()));
    apply(&mut image, &[again]);
    let broker = image.broker(2).expect("registered");
    assert!(broker.fenced && broker.fresh_data_dir);
    let forgotten = c.forget_eligible(&image, 2);
    assert_eq!(forgotten.len(), 2, "{forgotten:?}");
    apply(&mut image, &forgotten);
    assert_eq!(current(&image, 0).elr, vec![1]);
    assert_eq!(current(&image, 0).partition_epoch, 2);
    assert_eq!(current(&image, 1).elr, Vec::<i32>::new());
    assert_eq!(
        current(&image, 2).isr,
        vec![3, 1, 2],
        "ISRs are elections' business"
    );
    apply(
        &mut image,
        &[MetadataRecord::BrokerFencing(BrokerFencingRecord {
            node_id: 2,
            epoch: 2,
            fenced: false,
        })],
    );
    assert!(!image.broker(2).expect("registered").fresh_data_dir);
}

/// With eligible leader replicas the controller and every leader must
/// agree on min.insync.replicas: a cluster takes it per topic or as the
/// cluster default, not per broker (Kafka's rule with ELR on).
#[test]
fn min_insync_replicas_is_not_set_for_one_broker_in_a_cluster() {
    use rafka_core::metadata::ConfigOp;
    let c = controller();
    let image = cluster(&[]);
    let set = |value: &str| vec![ConfigOp::Set("min.insync.replicas".into(), value.into())];
    let refused = c
        .alter_broker_config(&image, "2", &set("2"))
        .expect_err("per broker");
    assert_eq!(refused.error_code(), ErrorCode::INVALID_CONFIG);
    assert_eq!(
        c.alter_broker_config(&image, "", &set("2"))
            .map(|r| r.len()),
        Ok(1)
    );
    let retention = vec![ConfigOp::Set("log.retention.ms".into(), "1000".into())];
    assert_eq!(
        c.alter_broker_config(&image, "2", &retention)
            .map(|r| r.len()),
        Ok(1)
    );
    // A single node has no eligible replicas: anything goes.
    let single = Controller::new(&BrokerConfig::default(), 1);
    assert_eq!(
        single
            .alter_broker_config(&image, "2", &set("2"))
            .map(|r| r.len()),
        Ok(1)
    );
}
