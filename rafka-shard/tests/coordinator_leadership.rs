//! Coordinators follow the leadership of their internal partitions, on
//! the shard layer over simulated storage and a manual clock. The
//! cluster's decisions arrive as they do in a cluster, as
//! `PartitionLeadership` records applied to the shard's image
//! (`Shard::apply_metadata`); broker 1 is the other replica, played by the
//! test (its fetches, the batches it leads).
//!
//! - Groups: led elsewhere, a partition's groups answer NOT_COORDINATOR, a
//!   member waiting in JoinGroup hears it, no timer stays armed and the
//!   follower's log takes no coordinator write; led here again, the load
//!   waits until the high watermark reaches the log end (a commit the
//!   other leader wrote and this broker copied), answering
//!   COORDINATOR_LOAD_IN_PROGRESS meanwhile, then serves that commit; an
//!   ISR change in the same leader epoch keeps what is loaded.
//! - Transactions: a marker is refused on a follower; a coordinator that
//!   loses its partition forgets its ids and stops; the next leadership
//!   replays the PrepareCommit it left and finishes the transaction with
//!   markers carrying its own leader epoch as the coordinator epoch.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rafka_core::config::BrokerConfig;
use rafka_core::group::{
    CommitPartition, CommitRequest, Coordinator, GroupConfig, JoinRequest, JoinResult,
    GROUP_METADATA_TOPIC,
};
use rafka_core::metadata::{MetadataRecord, NewTopic, PartitionLeadershipRecord};
use rafka_core::sim::{ManualClock, SimStorage};
use rafka_core::txn::{TxnState, TRANSACTION_STATE_TOPIC};
use rafka_proto::acks::Acks;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{BatchBuilder, Batches, Compression, ControlType};
use rafka_shard::controller_handle::ControllerHandle;
use rafka_shard::partition::PartitionError;
use rafka_shard::runtime::{run, RuntimeConfig, ShardEnv};
use rafka_shard::shard::Shard;
use rafka_shard::startup::start_with;
use rafka_shard::txn::{write_marker_on_owner, TxnMarker};

const START_MS: i64 = 1_700_000_000_000;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a poll for a state that follows from what the test did.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(5);
const TOPIC: &str = "t";
const GROUP: &str = "g";
const TXN_ID: &str = "tx";
/// This broker; broker 1 is the other replica of every partition moved.
const ME: i32 = 0;
const OTHER: i32 = 1;

/// Runs `scenario` on a one-shard broker over simulated storage, with
/// topic `t` (1 partition), `__consumer_offsets` and `__transaction_state`
/// (1 partition each) created, then stops it cleanly.
fn on_sim_broker<F, Fut>(scenario: F)
where
    F: FnOnce(Rc<Shard<SimStorage>>) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let config = Arc::new(BrokerConfig {
        log_dirs: vec![PathBuf::from("/sim/data")],
        offsets_topic_num_partitions: 1,
        transaction_state_log_num_partitions: 1,
        ..Default::default()
    });
    let main = move |env: ShardEnv<Shard<SimStorage>>| {
        let config = Arc::clone(&config);
        let scenario = scenario.clone();
        async move {
            let storage = SimStorage::with_seed(47);
            let clock = ManualClock::new(START_MS);
            let (shard, _) = start_with(env, config, storage, Rc::new(clock))
                .await
                .expect("start");
            let controller = ControllerHandle::new(Rc::clone(&shard));
            let topic = NewTopic {
                name: TOPIC.to_string(),
                partitions: 1,
                replication_factor: -1,
                configs: Default::default(),
                assignments: Vec::new(),
            };
            let created = controller.create_topics(vec![topic], false, None).await;
            assert!(created.expect("controller").iter().all(Result::is_ok));
            for internal in [shard.offsets_topic(), shard.transaction_topic()] {
                let ensured = controller.ensure_internal_topic(internal, None).await;
                ensured.expect("controller").expect(internal.name);
            }
            scenario(Rc::clone(&shard)).await;
            shard.shutdown().await.expect("clean stop");
            shard.stop_all().await;
        }
    };
    run(&RuntimeConfig::for_tests(1), main).expect("runtime");
}

/// Commits the cluster's decision that `leader` leads `topic`-0 in
/// `epoch` with `isr` (replicas: this broker and broker 1), as the
/// metadata log would bring it.
async fn lead(shard: &Shard<SimStorage>, topic: &str, leader: i32, epoch: i32, isr: &[i32]) {
    let mut image = (*shard.image()).clone();
    let current = image.topic(topic).expect("topic");
    let topic_id = current.id;
    // Every change raises the partition epoch.
    let partition_epoch = current.leadership(0).map_or(0, |l| l.partition_epoch + 1);
    let record = MetadataRecord::PartitionLeadership(PartitionLeadershipRecord {
        topic_id,
        partition: 0,
        leader,
        leader_epoch: epoch,
        partition_epoch,
        replicas: vec![ME, OTHER],
        isr: isr.to_vec(),
        adding: Vec::new(),
        removing: Vec::new(),
        elr: Vec::new(),
    });
    let delta = image.apply(&record).expect("leadership applies");
    shard
        .apply_metadata(Arc::new(image), &[delta])
        .await
        .expect("applied");
}

/// Polls until `done` holds, or fails at the deadline.
async fn await_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "never: {what}");
        glommio::timer::sleep(POLL).await;
    }
}

fn commit_request(offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: GROUP.to_string(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        topics: vec![(
            TOPIC.to_string(),
            vec![CommitPartition {
                partition: 0,
                offset,
                leader_epoch: -1,
                metadata: None,
            }],
        )],
    }
}

/// OffsetCommit of `t`-0 at `offset` for the group (standalone).
async fn commit(shard: &Shard<SimStorage>, offset: i64) -> ErrorCode {
    let codes = shard.groups().commit_offsets(commit_request(offset)).await;
    codes[0].1[0].1
}

/// The group's committed offset of `t`-0, or the coordinator's error.
fn committed(shard: &Shard<SimStorage>) -> Result<i64, ErrorCode> {
    let topics = [(TOPIC.to_string(), vec![0])];
    let fetched = shard.groups().fetch_offsets(GROUP, Some(&topics))?;
    Ok(fetched[0].1[0].offset)
}

fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: GROUP.to_string(),
        member_id: member_id.to_string(),
        group_instance_id: None,
        protocol_type: "consumer".to_string(),
        protocols: vec![(
            "range".to_string(),
            Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]),
        )],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        client_id: "c".to_string(),
        client_host: "/127.0.0.1".to_string(),
        require_known_member_id: true,
    }
}

/// What broker 1, leading `__consumer_offsets`-0 in `epoch`, wrote for a
/// commit of `offset`: its batch at `base_offset`, as a follower copies it.
fn leaders_commit_batch(offset: i64, base_offset: i64, epoch: i32) -> Bytes {
    let mut machine = Coordinator::new(GroupConfig {
        offsets_partitions: 1,
        ..GroupConfig::default()
    });
    let plan = machine.commit_offsets(START_MS, &commit_request(offset));
    assert_eq!(plan.records.len(), 1);
    let mut builder = BatchBuilder::new(Compression::None);
    for record in &plan.records {
        builder.push(Some(&record.key), record.value.as_deref());
    }
    let mut batch = BytesMut::from(&builder.build().expect("batch")[..]);
    // baseOffset and partitionLeaderEpoch are outside the CRC: the leader
    // stamps them.
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
    batch.freeze()
}

#[test]
fn groups_follow_the_leadership_of_their_partition() {
    on_sim_broker(|shard| async move {
        let offsets = shard
            .partition(GROUP_METADATA_TOPIC, 0)
            .expect("__consumer_offsets-0");
        assert_eq!(commit(&shard, 7).await, ErrorCode::NONE);
        assert_eq!(committed(&shard), Ok(7));
        // A member waits in JoinGroup (the initial rebalance delay, which
        // the manual clock never ends).
        let joined = shard.groups().join(join_request("")).await;
        assert_eq!(joined.error_code, ErrorCode::MEMBER_ID_REQUIRED);
        let groups = Rc::clone(shard.groups());
        let member_id = joined.member_id.clone();
        let waiting =
            glommio::spawn_local(async move { groups.join(join_request(&member_id)).await });
        let parked = || {
            shard.groups().with_machine(|m| {
                m.group(GROUP)
                    .is_some_and(|g| g.members.values().any(|m| m.awaiting_join.is_some()))
            })
        };
        await_until("the member waits in JoinGroup", parked).await;

        // Broker 1 leads the partition now.
        lead(&shard, GROUP_METADATA_TOPIC, OTHER, 1, &[OTHER, ME]).await;
        let answer: JoinResult = waiting.await;
        assert_eq!(
            (answer.error_code, answer.member_id.as_str()),
            (ErrorCode::NOT_COORDINATOR, joined.member_id.as_str())
        );
        assert_eq!(committed(&shard), Err(ErrorCode::NOT_COORDINATOR));
        let end = offsets.log_end_offset();
        assert_eq!(commit(&shard, 8).await, ErrorCode::NOT_COORDINATOR);
        assert_eq!(
            offsets.log_end_offset(),
            end,
            "a follower's log takes no coordinator write"
        );
        assert!(shard.groups().list().is_empty());
        assert_eq!(shard.groups().with_machine(|m| m.next_deadline_ms()), None);

        // Broker 1's commit of 9 reaches this follower.
        let batch = leaders_commit_batch(9, end, 1);
        let registry = shard.registry();
        let copied = registry
            .replicate(GROUP_METADATA_TOPIC, 0, &batch, None, TIMEOUT)
            .await;
        assert_eq!(copied.expect("replicated"), end + 1);
        assert!(
            offsets.high_watermark() < end + 1,
            "not known committed here"
        );

        // Leadership comes back in epoch 2 with broker 1 in the ISR, which
        // has not fetched from this leader yet: the high watermark stays
        // below the log end, and so does the load.
        lead(&shard, GROUP_METADATA_TOPIC, ME, 2, &[ME, OTHER]).await;
        for _ in 0..10 {
            assert_eq!(
                committed(&shard),
                Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)
            );
            assert_eq!(
                commit(&shard, 10).await,
                ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
            );
            glommio::yield_if_needed().await;
        }
        // Broker 1 fetches from the log end: everything is on the ISR, the
        // load replays it, the commit broker 1 led included.
        let fetched = offsets.follower_fetched(OTHER, end + 1).await;
        fetched.expect("follower fetch");
        await_until("the partition loads", || committed(&shard).is_ok()).await;
        assert_eq!(committed(&shard), Ok(9));

        // Broker 1 leaves the ISR: same leader epoch, nothing reloads.
        lead(&shard, GROUP_METADATA_TOPIC, ME, 2, &[ME]).await;
        assert_eq!(committed(&shard), Ok(9));
        assert_eq!(commit(&shard, 11).await, ErrorCode::NONE);
        assert_eq!(committed(&shard), Ok(11));
    });
}

/// Appends a transactional batch of `t`-0 the way the produce handler
/// does (verified with the coordinator).
async fn produce_verified(shard: &Shard<SimStorage>, producer_id: i64, epoch: i16) {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, epoch, 0)
        .transactional(true);
    builder.push(Some(b"k".as_slice()), Some(b"v".as_slice()));
    let batch = builder.build().expect("batch");
    let registry = shard.registry();
    let first = registry
        .produce(TOPIC, 0, &batch, Acks::All, TIMEOUT, None)
        .await;
    let guard = match first {
        Err(PartitionError::TxnVerificationNeeded { guard, .. }) => guard,
        other => panic!("expected a verification request, got {other:?}"),
    };
    let partitions = [(TOPIC.to_string(), 0)];
    let verified = shard
        .txns()
        .verify_partitions(TXN_ID, producer_id, epoch, &partitions);
    assert_eq!(verified, vec![ErrorCode::NONE]);
    registry
        .produce(TOPIC, 0, &batch, Acks::All, TIMEOUT, Some(guard))
        .await
        .expect("verified append");
}

/// The markers in `t`-0: (type, coordinator epoch), in log order.
async fn markers(shard: &Shard<SimStorage>) -> Vec<(ControlType, i32)> {
    let partition = shard.partition(TOPIC, 0).expect("t-0");
    let fetched = partition.fetch(0, 1 << 20).await.expect("fetch");
    Batches::new(fetched.records)
        .map(|batch| batch.expect("valid batch"))
        .filter(|batch| batch.header().is_control())
        .map(|batch| {
            let marker = batch.end_txn_marker().expect("marker").expect("end marker");
            (marker.control_type, marker.coordinator_epoch)
        })
        .collect()
}

fn state_of(shard: &Shard<SimStorage>) -> Result<TxnState, ErrorCode> {
    shard.txns().describe(TXN_ID).map(|d| d.state)
}

#[test]
fn a_transaction_is_finished_by_its_partitions_next_leadership() {
    on_sim_broker(|shard| async move {
        let txns = shard.txns();
        let (producer_id, epoch) = txns
            .init_producer_id(TXN_ID, 60_000, None)
            .await
            .expect("producer id");
        let partitions = vec![(TOPIC.to_string(), 0)];
        let added = txns.add_partitions(TXN_ID, producer_id, epoch, partitions);
        added.await.expect("added");
        produce_verified(&shard, producer_id, epoch).await;

        // Broker 1 leads `t`-0: no marker can go there from this broker.
        lead(&shard, TOPIC, OTHER, 1, &[OTHER, ME]).await;
        let marker = TxnMarker {
            producer_id,
            producer_epoch: epoch,
            coordinator_epoch: 0,
            commit: true,
        };
        let refused = write_marker_on_owner(&shard, TOPIC, 0, marker).await;
        assert_eq!(refused, Err(ErrorCode::NOT_LEADER_OR_FOLLOWER));
        // The commit is decided (PrepareCommit durable); its marker task
        // retries.
        let ended = txns.end_txn(TXN_ID, producer_id, epoch, true).await;
        assert_eq!(ended, Ok(()));
        assert_eq!(state_of(&shard), Ok(TxnState::PrepareCommit));
        assert_eq!(txns.marker_tasks(), 1);

        // Broker 1 leads `__transaction_state`-0: this coordinator forgets
        // the id, keeps no timeout and gives its marker task up.
        lead(&shard, TRANSACTION_STATE_TOPIC, OTHER, 1, &[OTHER, ME]).await;
        assert_eq!(state_of(&shard), Err(ErrorCode::NOT_COORDINATOR));
        assert_eq!(txns.with_machine(|m| m.next_deadline_ms()), None);
        assert_eq!(txns.stats().open, 0);
        let ended = txns.end_txn(TXN_ID, producer_id, epoch, true).await;
        assert_eq!(ended, Err(ErrorCode::NOT_COORDINATOR));
        // The marker task ends at its next attempt, having written nothing.
        await_until("the marker task ends", || txns.marker_tasks() == 0).await;
        assert_eq!(markers(&shard).await, vec![]);

        // `t`-0 comes back, then `__transaction_state`-0 in epoch 2: the
        // replay finds the PrepareCommit and finishes it, with markers of
        // coordinator epoch 2.
        lead(&shard, TOPIC, ME, 2, &[ME]).await;
        lead(&shard, TRANSACTION_STATE_TOPIC, ME, 2, &[ME]).await;
        let completed = || state_of(&shard) == Ok(TxnState::CompleteCommit);
        await_until("the transaction completes", completed).await;
        assert_eq!(markers(&shard).await, vec![(ControlType::Commit, 2)]);
        let partition = shard.partition(TOPIC, 0).expect("t-0");
        assert_eq!(partition.last_stable_offset(), partition.high_watermark());
    });
}
