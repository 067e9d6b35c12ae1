//! `ControllerHandle::alter_partition` on a broker that is the active
//! controller (a quorum of one voter, real files and sockets): called from
//! any shard, the change is committed and every shard's image has it
//! before the answer; stale epochs get Kafka's answers.

use std::rc::Rc;
use std::time::{Duration, Instant};

use rafka_core::config::QuorumVoter;
use rafka_core::metadata::{
    Leadership, MetadataRecord, PartitionLeadershipRecord, PartitionRecord, RegisterBrokerRecord,
    TopicRecord,
};
use rafka_proto::error::ErrorCode;
use rafka_shard::controller_handle::{ControllerHandle, IsrChange};
use rafka_shard::shard::Shard;
use rafka_testkit::broker::NODE_ID;
use rafka_testkit::TestBroker;
use uuid::Uuid;

const TOPIC: Uuid = Uuid::from_u128(0xa1);
const DEADLINE: Duration = Duration::from_secs(20);

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
        register(NODE_ID),
        register(1),
        register(2),
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
            leader: NODE_ID,
            leader_epoch: 0,
            replicas: vec![NODE_ID, 1, 2],
            isr: vec![NODE_ID, 1, 2],
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            elr: Vec::new(),
        }),
    ]
}

/// AlterPartition through the handle of shard `on`.
async fn alter_on(
    shard: &Rc<Shard>,
    on: usize,
    change: IsrChange,
) -> Result<Leadership, ErrorCode> {
    shard
        .router
        .invoke_on(on, move |shard: Rc<Shard>| async move {
            ControllerHandle::new(shard).alter_partition(change).await
        })
        .await
        .expect("the shard runs")
}

fn change(partition_epoch: i32, new_isr: &[i32]) -> IsrChange {
    IsrChange {
        topic: "t".into(),
        partition: 0,
        leader_epoch: 0,
        partition_epoch,
        new_isr: new_isr.to_vec(),
    }
}

#[test]
fn alter_partition_from_any_shard_commits_through_the_local_active_controller() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    TestBroker::builder()
        .shards(2)
        .network(false)
        .config(move |c| {
            c.quorum.voters = vec![QuorumVoter {
                id: NODE_ID,
                host: "127.0.0.1".into(),
                port,
            }];
            c.quorum.election_timeout_ms = 200;
            // Brokers 1 and 2 exist only as records: never judged.
            c.broker_session_timeout_ms = 600_000;
        })
        .run(|broker| async move {
            let shard = Rc::clone(&broker.shard);
            let quorum = shard.quorum().expect("a voter");
            let deadline = Instant::now() + DEADLINE;
            while !quorum.is_active_controller() {
                assert!(Instant::now() < deadline, "never led");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
            let (_, published) = quorum.commit(&setup()).await.expect("committed");
            published.expect("published");

            // From shard 1: committed, published, answered.
            let shrunk = alter_on(&shard, 1, change(0, &[NODE_ID, 2])).await;
            let want = Leadership {
                leader: NODE_ID,
                leader_epoch: 0,
                replicas: vec![NODE_ID, 1, 2],
                isr: vec![NODE_ID, 2],
                partition_epoch: 1,
                adding: Vec::new(),
                removing: Vec::new(),
                elr: Vec::new(),
            };
            assert_eq!(shrunk, Ok(want.clone()));
            let seen = shard
                .router
                .invoke_on(1, |shard: Rc<Shard>| async move {
                    shard
                        .image()
                        .topic("t")
                        .and_then(|t| t.leadership(0))
                        .cloned()
                })
                .await
                .expect("shard 1 runs");
            assert_eq!(seen, Some(want.clone()));
            // The same change again: its partition epoch is old now.
            let again = alter_on(&shard, 1, change(0, &[NODE_ID, 2])).await;
            assert_eq!(again, Err(ErrorCode::INVALID_UPDATE_VERSION));
            // The ISR it has: answered as it is (shard 0's handle).
            let same = alter_on(&shard, 0, change(1, &[NODE_ID, 2])).await;
            assert_eq!(same, Ok(want));
            let unknown = IsrChange {
                topic: "nope".into(),
                ..change(1, &[NODE_ID])
            };
            let unknown = alter_on(&shard, 1, unknown).await;
            assert_eq!(unknown, Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
            let without_leader = alter_on(&shard, 1, change(1, &[1, 2])).await;
            assert_eq!(without_leader, Err(ErrorCode::INVALID_REQUEST));
        });
}
