//! A partition as a replica, over simulated storage: the high watermark
//! waits for every ISR member's fetch offset, min.insync.replicas, a
//! follower's byte-for-byte appends replaying transactions, and a
//! follower cutting a divergent tail.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use glommio::{LocalExecutorBuilder, Placement};
use rafka_core::io::Clock;
use rafka_core::log::{AbortedTxn, EpochEntry, LogConfig, RecoveryHints};
use rafka_core::sim::{ManualClock, SimStorage};
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_shard::partition::{
    Assignment, IsolationLevel, Partition, PartitionError, PartitionSpec, TxnMarker,
};

const START_MS: i64 = 1_700_000_000_000;

fn in_executor<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 << 10)
        .spawn(test)
        .expect("executor");
    executor.join().expect("test");
}

fn batch(producer_id: i64, sequence: i32, count: usize, txn: bool) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, 0, sequence)
        .transactional(txn);
    for _ in 0..count {
        builder.push(Some(b"k".as_slice()), Some(b"v".as_slice()));
    }
    builder.build().expect("batch")
}

fn plain(count: usize) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for _ in 0..count {
        builder.push(Some(b"k".as_slice()), Some(b"v".as_slice()));
    }
    builder.build().expect("batch")
}

struct Fixture {
    storage: SimStorage,
    clock: Rc<dyn Clock>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            storage: SimStorage::with_seed(5),
            clock: Rc::new(ManualClock::new(START_MS)),
        }
    }

    async fn open(&self, dir: &str) -> Rc<Partition<SimStorage>> {
        self.open_at(dir, None).await
    }

    /// Opens with `high_watermark` from a checkpoint.
    async fn open_at(&self, dir: &str, high_watermark: Option<i64>) -> Rc<Partition<SimStorage>> {
        let spec = PartitionSpec {
            topic: Rc::from("t"),
            index: 0,
            dir: PathBuf::from(dir),
            config: LogConfig::default(),
            hints: RecoveryHints::default(),
            write_caching: false,
            high_watermark,
        };
        Partition::open(self.storage.clone(), Rc::clone(&self.clock), spec)
            .await
            .expect("open")
    }
}

fn led_by(leader: i32, isr: &[i32]) -> Assignment {
    Assignment {
        leader,
        leader_epoch: 1,
        partition_epoch: 1,
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
    }
}

#[test]
fn a_deposed_leader_acknowledges_and_appends_nothing_more_even_if_the_high_watermark_passes() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let deposed = fixture.open("/sim/data/d/t-0").await;
        deposed.assign(1, led_by(1, &[1, 2, 3])).await.unwrap();
        deposed.append(&plain(3), None).await.unwrap();
        deposed.flush().await.unwrap();
        let mut acked = Box::pin(deposed.wait_durable(3, Duration::from_secs(30)));
        assert!((&mut acked).now_or_never().is_none());
        // Another broker leads now (the next epoch); this one follows and
        // its high watermark, the new leader's, passes the offsets its
        // own append took, whatever the new leader holds there.
        let mut next = led_by(2, &[1, 2, 3]);
        next.leader_epoch = 2;
        next.partition_epoch = 2;
        deposed.assign(1, next).await.unwrap();
        deposed.leader_high_watermark(3).await.unwrap();
        assert_eq!(deposed.high_watermark(), 3);
        let lost = acked.await.expect_err("never acknowledged");
        assert!(
            matches!(
                lost,
                PartitionError::LeadershipLost {
                    epoch: 1,
                    offset: 3
                }
            ),
            "{lost:?}"
        );
        assert_eq!(lost.error_code(), ErrorCode::NOT_LEADER_OR_FOLLOWER);
        // A wait that starts after the leadership ended fails at once.
        let late = deposed.wait_durable(3, Duration::from_secs(30)).await;
        assert!(matches!(late, Err(PartitionError::LeadershipLost { .. })));
        // And a client's append that reaches its turn now is refused: a
        // follower's log takes only its leader's batches.
        let refused = deposed
            .append(&plain(2), None)
            .await
            .expect_err("a follower");
        assert!(matches!(refused, PartitionError::NotLeader), "{refused:?}");
        assert_eq!(refused.error_code(), ErrorCode::NOT_LEADER_OR_FOLLOWER);
        assert_eq!(deposed.log_end_offset(), 3);
    });
}

/// Kafka's `replication-offset-checkpoint`: a reopened replica does not
/// vouch for what is past the high watermark it checkpointed (the other
/// replicas may not hold it) until the ISR does again.
#[test]
fn a_reopened_replica_starts_at_its_checkpointed_high_watermark_until_the_isr_vouches_again() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let dir = "/sim/data/c/t-0";
        let first = fixture.open(dir).await;
        first.assign(1, led_by(1, &[1])).await.unwrap();
        first.append(&plain(2), None).await.unwrap();
        first.append(&plain(3), None).await.unwrap();
        first.flush().await.unwrap();
        assert_eq!(first.high_watermark(), 5);
        first.close().await.unwrap();

        let reopened = fixture.open_at(dir, Some(2)).await;
        assert_eq!(
            (reopened.high_watermark(), reopened.log_end_offset()),
            (2, 5)
        );
        let read = reopened.fetch(0, 1 << 20).await.unwrap();
        assert_eq!(read.high_watermark, 2);
        assert_eq!(read.records.len(), plain(2).len(), "only the first batch");
        // Leading with followers in the ISR: it rises as they fetch.
        reopened.assign(1, led_by(1, &[1, 2, 3])).await.unwrap();
        assert_eq!(reopened.high_watermark(), 2);
        reopened.follower_fetched(2, 5).await.unwrap();
        reopened.follower_fetched(3, 2).await.unwrap();
        assert_eq!(reopened.high_watermark(), 2);
        reopened.follower_fetched(3, 5).await.unwrap();
        assert_eq!(reopened.high_watermark(), 5);
        reopened.close().await.unwrap();

        // A checkpoint past the log end (a tail lost with its page cache)
        // is cut to it; below the log start, raised to it.
        let past = fixture.open_at(dir, Some(99)).await;
        assert_eq!(past.high_watermark(), 5);
        past.close().await.unwrap();
        let low = fixture.open_at(dir, Some(-7)).await;
        assert_eq!(low.high_watermark(), 0);
        // Alone in the ISR, its own log vouches for everything at once.
        low.assign(1, led_by(1, &[1])).await.unwrap();
        assert_eq!(low.high_watermark(), 5);
        low.close().await.unwrap();

        // As follower it takes the leader's high watermark, within its log.
        let follower = fixture.open_at(dir, Some(0)).await;
        follower.assign(1, led_by(2, &[1, 2])).await.unwrap();
        assert_eq!(follower.high_watermark(), 0);
        follower.leader_high_watermark(9).await.unwrap();
        assert_eq!(follower.high_watermark(), 5);
    });
}

#[test]
fn the_high_watermark_waits_for_the_isrs_fetch_offsets() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let leader = fixture.open("/sim/data/a/t-0").await;
        leader.assign(1, led_by(1, &[1, 2, 3])).await.unwrap();
        assert!(leader.is_leader());
        leader.append(&plain(3), None).await.unwrap();
        leader.flush().await.unwrap();
        assert_eq!((leader.flushed_offset(), leader.high_watermark()), (3, 0));
        // acks=all waits on the high watermark.
        let mut acked = Box::pin(leader.wait_durable(3, Duration::from_secs(30)));
        assert!((&mut acked).now_or_never().is_none());
        leader.follower_fetched(2, 3).await.unwrap();
        assert_eq!(leader.high_watermark(), 0, "3 has not fetched");
        leader.follower_fetched(3, 2).await.unwrap();
        assert_eq!(leader.high_watermark(), 2);
        leader.follower_fetched(3, 3).await.unwrap();
        assert_eq!(leader.high_watermark(), 3);
        acked.await.expect("acknowledged");
        // A fetch from past the log end, or by a non-replica, counts for
        // nothing.
        leader.follower_fetched(3, 9).await.unwrap();
        leader.follower_fetched(4, 3).await.unwrap();
        assert_eq!(leader.follower_state(3).unwrap().fetch_offset, 3);
        assert!(leader.follower_state(4).is_none());

        // 3 leaves the ISR: only 2 holds the high watermark.
        leader.append(&plain(2), None).await.unwrap();
        leader.flush().await.unwrap();
        assert_eq!(leader.high_watermark(), 3);
        let mut shrunk = led_by(1, &[1, 2]);
        shrunk.partition_epoch = 2;
        leader.assign(1, shrunk).await.unwrap();
        leader.follower_fetched(2, 5).await.unwrap();
        assert_eq!(leader.high_watermark(), 5);

        // min.insync.replicas: acks=all is refused below it.
        leader.set_min_insync_replicas(3);
        let refused = leader.check_enough_in_sync().unwrap_err();
        assert!(matches!(
            refused,
            PartitionError::NotEnoughReplicas { in_sync: 2, min: 3 }
        ));
        assert_eq!(refused.error_code(), ErrorCode::NOT_ENOUGH_REPLICAS);
        leader.set_min_insync_replicas(2);
        leader.check_enough_in_sync().unwrap();
    });
}

/// KIP-966's strict min ISR: below `min.insync.replicas` the leader of a
/// replicated partition holds its high watermark, so the replicas that
/// left hold everything below it; acks=all waits end with
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND. A partition of one replica is never
/// held.
#[test]
fn an_isr_below_min_insync_replicas_holds_the_high_watermark() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let leader = fixture.open("/sim/data/h/t-0").await;
        leader.set_min_insync_replicas(2);
        leader.assign(1, led_by(1, &[1, 2])).await.unwrap();
        leader.append(&plain(3), None).await.unwrap();
        leader.flush().await.unwrap();
        leader.follower_fetched(2, 3).await.unwrap();
        assert_eq!(leader.high_watermark(), 3);
        let mut alone = led_by(1, &[1]);
        alone.partition_epoch = 2;
        leader.assign(1, alone).await.unwrap();
        // acks=1 appends, flushed, stay above the high watermark.
        leader.append(&plain(2), None).await.unwrap();
        leader.flush().await.unwrap();
        assert_eq!((leader.flushed_offset(), leader.high_watermark()), (5, 3));
        let read = leader.fetch(0, 1 << 20).await.unwrap();
        assert_eq!(read.records.len(), plain(3).len(), "the first batch only");
        let held = leader
            .wait_durable(5, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(
            matches!(
                held,
                PartitionError::NotEnoughReplicasAfterAppend { in_sync: 1, min: 2 }
            ),
            "{held:?}"
        );
        assert_eq!(
            held.error_code(),
            ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        );
        // 2 is back in the ISR and fetched everything: it moves again.
        let mut back = led_by(1, &[1, 2]);
        back.partition_epoch = 3;
        leader.assign(1, back).await.unwrap();
        assert_eq!(leader.high_watermark(), 3, "2 has not fetched past 3");
        leader.follower_fetched(2, 5).await.unwrap();
        assert_eq!(leader.high_watermark(), 5);
        leader.close().await.unwrap();

        // One replica: nobody else could be elected, nothing is held.
        let single = fixture.open("/sim/data/s/t-0").await;
        single.set_min_insync_replicas(2);
        single
            .assign(
                1,
                Assignment {
                    replicas: vec![1],
                    ..led_by(1, &[1])
                },
            )
            .await
            .unwrap();
        single.append(&plain(2), None).await.unwrap();
        single.flush().await.unwrap();
        assert_eq!(single.high_watermark(), 2);
    });
}

#[test]
fn a_follower_takes_the_leaders_high_watermark_within_its_own_flush() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let leader = fixture.open("/sim/data/a/t-0").await;
        let follower = fixture.open("/sim/data/b/t-0").await;
        leader.append(&plain(4), None).await.unwrap();
        leader.flush().await.unwrap();
        follower.assign(2, led_by(1, &[1, 2])).await.unwrap();
        assert!(!follower.is_leader());
        let fetched = leader.fetch(0, 1 << 20).await.unwrap();
        assert_eq!(
            follower.append_replicated(&fetched.records).await.unwrap(),
            4
        );
        follower.leader_high_watermark(4).await.unwrap();
        assert_eq!(follower.high_watermark(), 0, "not flushed here yet");
        let mut flushed = Box::pin(follower.wait_flushed(4, Duration::from_secs(30)));
        assert!((&mut flushed).now_or_never().is_none());
        follower.flush().await.unwrap();
        flushed.await.expect("flushed");
        assert_eq!(follower.high_watermark(), 4);
        follower.leader_high_watermark(2).await.unwrap();
        assert_eq!(follower.high_watermark(), 4, "never goes back");
    });
}

#[test]
fn replicated_markers_end_transactions_on_the_follower() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let leader = fixture.open("/sim/data/a/t-0").await;
        let follower = fixture.open("/sim/data/b/t-0").await;
        leader.append(&plain(2), None).await.unwrap();
        let guard = match leader.append(&batch(5, 0, 3, true), None).await {
            Err(PartitionError::TxnVerificationNeeded { guard, .. }) => guard,
            other => panic!("expected a verification request, got {other:?}"),
        };
        leader
            .append(&batch(5, 0, 3, true), Some(guard))
            .await
            .unwrap();
        let marker = TxnMarker {
            producer_id: 5,
            producer_epoch: 0,
            coordinator_epoch: 0,
            commit: false,
        };
        assert_eq!(leader.write_txn_marker(marker).await.unwrap(), 5);
        leader.flush().await.unwrap();
        let fetched = leader.fetch(0, 1 << 20).await.unwrap();
        follower.append_replicated(&fetched.records).await.unwrap();
        follower.flush().await.unwrap();
        assert_eq!(
            (follower.high_watermark(), follower.last_stable_offset()),
            (6, 6)
        );
        let entry = AbortedTxn {
            producer_id: 5,
            first_offset: 2,
            last_offset: 5,
            last_stable_offset: 6,
        };
        assert_eq!(
            follower.aborted_transactions(0, 6).await.unwrap(),
            vec![entry]
        );
        assert_eq!(
            leader.aborted_transactions(0, 6).await.unwrap(),
            follower.aborted_transactions(0, 6).await.unwrap()
        );
        // An open transaction replicated holds the follower's LSO too.
        let guard = match leader.append(&batch(7, 0, 1, true), None).await {
            Err(PartitionError::TxnVerificationNeeded { guard, .. }) => guard,
            other => panic!("expected a verification request, got {other:?}"),
        };
        leader
            .append(&batch(7, 0, 1, true), Some(guard))
            .await
            .unwrap();
        leader.flush().await.unwrap();
        let next = leader.fetch(6, 1 << 20).await.unwrap();
        follower.append_replicated(&next.records).await.unwrap();
        follower.flush().await.unwrap();
        assert_eq!(
            (follower.high_watermark(), follower.last_stable_offset()),
            (7, 6)
        );
        assert_eq!(follower.ongoing_transactions().await.unwrap(), vec![(6, 7)]);
        assert_eq!(
            follower.readable_end(IsolationLevel::ReadCommitted),
            leader.readable_end(IsolationLevel::ReadCommitted)
        );
    });
}

#[test]
fn a_truncated_tail_takes_its_producer_state_and_epochs_with_it() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let log = fixture.open("/sim/data/a/t-0").await;
        log.append(&batch(7, 0, 2, false), None).await.unwrap();
        log.set_leader_epoch(3);
        log.append(&batch(7, 2, 2, false), None).await.unwrap();
        log.append(&plain(1), None).await.unwrap();
        assert_eq!(
            log.epoch_entries().await.unwrap(),
            vec![EpochEntry::new(0, 0), EpochEntry::new(3, 2)]
        );
        assert_eq!(log.end_offset_for_epoch(0).await.unwrap(), (0, 2));
        log.flush().await.unwrap();
        assert_eq!(log.high_watermark(), 5);
        assert_eq!(log.truncate_to(2).await.unwrap(), 2);
        assert_eq!(
            (
                log.log_end_offset(),
                log.high_watermark(),
                log.flushed_offset()
            ),
            (2, 2, 2)
        );
        assert_eq!(
            log.epoch_entries().await.unwrap(),
            vec![EpochEntry::new(0, 0)]
        );
        // Producer 7's second batch is gone: its retry is new, not a
        // duplicate of what the log no longer has.
        let again = log.append(&batch(7, 2, 2, false), None).await.unwrap();
        assert_eq!((again.base_offset, again.duplicate), (2, false));
        // A truncation at the log end still drops an epoch that starts
        // there with no batch (a former leader's takeover).
        assert!(log.assign_leader_epoch(9).await.unwrap());
        assert_eq!(log.latest_epoch().await.unwrap(), 9);
        assert_eq!(log.truncate_to(4).await.unwrap(), 4);
        assert_eq!(log.latest_epoch().await.unwrap(), 3);
    });
}
