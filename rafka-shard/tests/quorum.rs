//! The metadata quorum over real sockets: three voters, each on its own
//! executor thread, elect a leader, commit from any node in one order,
//! refuse a change that lost a race, survive the leader's loss, and stop
//! committing without a majority.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};
use rafka_core::metadata::{
    ApplyError, Committed, MetadataImage, MetadataRecord, PartitionRecord, TopicRecord,
};
use rafka_shard::controller::{PublishError, Publisher};
use rafka_shard::quorum::{ProposalError, Quorum, QuorumSettings, QuorumStatus};
use rafka_shard::storage::GlommioStorage;
use uuid::Uuid;

const IO_MEMORY_BYTES: usize = 64 * 1024;
const DEADLINE: Duration = Duration::from_secs(20);

/// Every published change's log index, in publish order.
struct Recorder(Rc<RefCell<Vec<i64>>>);

impl Publisher for Recorder {
    async fn publish(&self, committed: Committed) -> Result<(), PublishError> {
        self.0.borrow_mut().push(committed.first_offset);
        Ok(())
    }
}

type CommitAnswer = Result<u64, ProposalError>;

enum Command {
    Commit(Vec<MetadataRecord>, mpsc::Sender<CommitAnswer>),
    Status(mpsc::Sender<(QuorumStatus, std::sync::Arc<MetadataImage>, Vec<i64>)>),
    Stop,
}

struct Node {
    id: u64,
    commands: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

impl Node {
    fn start(id: u64, voters: Vec<(u64, String)>, dir: PathBuf) -> Node {
        Node::start_with(id, voters, dir, 10_000)
    }

    fn start_with(
        id: u64,
        voters: Vec<(u64, String)>,
        dir: PathBuf,
        snapshot_interval_entries: u64,
    ) -> Node {
        let (tx, rx) = mpsc::channel::<Command>();
        let thread = std::thread::spawn(move || {
            let executor = LocalExecutorBuilder::new(Placement::Unbound)
                .io_memory(IO_MEMORY_BYTES)
                .make()
                .expect("executor");
            executor.run(async move {
                let mut settings = QuorumSettings::new(id, voters, Duration::from_millis(500));
                settings.proposal_timeout = Duration::from_secs(3);
                settings.snapshot_interval_entries = snapshot_interval_entries;
                let quorum = Quorum::open(GlommioStorage::new(), dir, settings)
                    .await
                    .expect("quorum opens");
                let published = Rc::new(RefCell::new(Vec::new()));
                quorum.start_applying(Recorder(Rc::clone(&published)));
                loop {
                    match rx.try_recv() {
                        Ok(Command::Commit(records, reply)) => {
                            let quorum = Rc::clone(&quorum);
                            glommio::spawn_local(async move {
                                let answer = quorum.commit(&records).await.map(|(index, _)| index);
                                let _ = reply.send(answer);
                            })
                            .detach();
                        }
                        Ok(Command::Status(reply)) => {
                            let _ = reply.send((
                                quorum.status(),
                                quorum.image(),
                                published.borrow().clone(),
                            ));
                        }
                        Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => {
                            quorum.close();
                            // Let the woken tasks run to their end (and
                            // drop their sockets) before the executor goes.
                            for _ in 0..8 {
                                futures_lite::future::yield_now().await;
                            }
                            return;
                        }
                        Err(mpsc::TryRecvError::Empty) => {
                            glommio::timer::sleep(Duration::from_millis(5)).await
                        }
                    }
                }
            });
        });
        Node {
            id,
            commands: tx,
            thread: Some(thread),
        }
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> CommitAnswer {
        let (tx, rx) = mpsc::channel();
        self.commands
            .send(Command::Commit(records, tx))
            .expect("node runs");
        rx.recv().expect("node answers")
    }

    /// Commits, retrying while the quorum has no leader (one was just
    /// stopped) until the deadline.
    fn commit_retrying(&self, records: Vec<MetadataRecord>) -> u64 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.commit(records.clone()) {
                Ok(index) => return index,
                Err(ProposalError::NoLeader) | Err(ProposalError::TimedOut(_))
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(error) => panic!("node {} commit: {error}", self.id),
            }
        }
    }

    fn status(&self) -> (QuorumStatus, std::sync::Arc<MetadataImage>, Vec<i64>) {
        let (tx, rx) = mpsc::channel();
        self.commands.send(Command::Status(tx)).expect("node runs");
        rx.recv().expect("node answers")
    }

    fn stop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("node thread");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Loopback ports nobody listens on right now.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

fn topic(name: &str) -> Vec<MetadataRecord> {
    let topic_id = Uuid::new_v4();
    vec![
        MetadataRecord::Topic(TopicRecord {
            name: name.to_string(),
            topic_id,
        }),
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: 0,
            shard: 0,
        }),
    ]
}

/// Polls until every running node names the same leader, other than
/// `gone`; returns it.
fn wait_for_leader(nodes: &[&Node], gone: u64) -> u64 {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let leaders: Vec<u64> = nodes.iter().map(|n| n.status().0.leader_id).collect();
        if leaders[0] != 0 && leaders[0] != gone && leaders.iter().all(|l| *l == leaders[0]) {
            return leaders[0];
        }
        assert!(Instant::now() < deadline, "no common leader: {leaders:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls until `node` applied `index`.
fn wait_applied(node: &Node, index: u64) {
    let deadline = Instant::now() + DEADLINE;
    while node.status().0.applied_index < index {
        assert!(
            Instant::now() < deadline,
            "node {} never applied {index}",
            node.id
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn three_voters_commit_in_one_order_and_survive_the_leaders_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(3);
    let voters: Vec<(u64, String)> = (1..=3)
        .zip(&ports)
        .map(|(id, port)| (id, format!("127.0.0.1:{port}")))
        .collect();
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| Node::start(id, voters.clone(), dir.path().join(format!("node-{id}"))))
        .collect();
    let leader = wait_for_leader(&nodes.iter().collect::<Vec<_>>(), 0);
    let follower = nodes.iter().find(|n| n.id != leader).expect("a follower");

    // A follower's proposal is forwarded to the leader and applied on all.
    let first = follower.commit(topic("a")).expect("commits");
    let second = nodes[0].commit(topic("b")).expect("commits");
    assert!(second > first, "{second} after {first}");
    for node in &nodes {
        wait_applied(node, second);
        let (_, image, published) = node.status();
        assert!(image.topic("a").is_some() && image.topic("b").is_some());
        let ours: Vec<i64> = published
            .iter()
            .copied()
            .filter(|i| *i == first as i64 || *i == second as i64)
            .collect();
        assert_eq!(ours, vec![first as i64, second as i64], "node {}", node.id);
    }

    // The same name from another node: committed, but no longer applies.
    let loser = nodes[2].commit(topic("a"));
    assert_eq!(
        loser,
        Err(ProposalError::Rejected(ApplyError::NameTaken("a".into())))
    );

    // The leader goes: the other two elect one of them and commit.
    let leader_index = nodes.iter().position(|n| n.id == leader).expect("leader");
    nodes[leader_index].stop();
    let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id != leader).collect();
    wait_for_leader(&survivors, leader);
    let third = survivors[0].commit_retrying(topic("c"));
    for node in &survivors {
        wait_applied(node, third);
        assert!(node.status().1.topic("c").is_some());
    }

    // One voter of three is no majority: nothing commits.
    let last = survivors[1].id;
    let last_index = nodes.iter().position(|n| n.id == last).expect("node");
    let alone_index = nodes
        .iter()
        .position(|n| n.id != last && n.id != leader)
        .expect("node");
    nodes[last_index].stop();
    let alone = &nodes[alone_index];
    let refused = alone.commit(topic("d"));
    assert!(
        matches!(
            refused,
            Err(ProposalError::NoLeader) | Err(ProposalError::TimedOut(_))
        ),
        "{refused:?}"
    );
    assert!(alone.status().1.topic("d").is_none());
}

#[test]
fn a_restarted_voter_catches_up_from_a_snapshot_and_all_replay_from_disk() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(3);
    let voters: Vec<(u64, String)> = (1..=3)
        .zip(&ports)
        .map(|(id, port)| (id, format!("127.0.0.1:{port}")))
        .collect();
    let node_dir = |id: u64| dir.path().join(format!("node-{id}"));
    let start = |id: u64| Node::start_with(id, voters.clone(), node_dir(id), 4);
    let mut nodes: Vec<Node> = (1..=3).map(start).collect();
    wait_for_leader(&nodes.iter().collect::<Vec<_>>(), 0);
    nodes[2].stop();
    let mut last = 0;
    for i in 0..12 {
        last = nodes[0].commit_retrying(topic(&format!("t{i}")));
    }
    // Node 3 is back with its old log; the leader compacted past it.
    nodes[2] = start(3);
    wait_applied(&nodes[2], last);
    let (_, image, published) = nodes[2].status();
    assert_eq!(image.topic_count(), 12);
    assert!(
        published.iter().any(|index| *index < last as i64),
        "node 3 got a snapshot or entries before {last}: {published:?}"
    );
    // Everyone stops and comes back: the images replay from disk alone.
    for node in &mut nodes {
        node.stop();
    }
    let nodes: Vec<Node> = (1..=3).map(start).collect();
    for node in &nodes {
        let (status, image, _) = node.status();
        assert!(status.applied_index >= last, "node {}: {status:?}", node.id);
        assert_eq!(image.topic_count(), 12, "node {}", node.id);
    }
    wait_for_leader(&nodes.iter().collect::<Vec<_>>(), 0);
    let after = nodes[1].commit_retrying(topic("after-restart"));
    assert!(after > last);
}
