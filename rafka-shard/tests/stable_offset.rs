//! The partition side of transactions on one partition over simulated
//! storage: markers and their checks, the last stable offset moving only
//! once a marker is durable, the KIP-890 verification guard and the
//! verifying append's place in line, a
//! coordinator's transactional batches, read_committed reads and waits,
//! restarts mid-transaction, and markers passing the free-space gate.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use glommio::{LocalExecutorBuilder, Placement};
use rafka_core::config::BrokerConfig;
use rafka_core::io::Clock;
use rafka_core::log::{AbortedTxn, LogConfig, RecoveryHints};
use rafka_core::metadata::MetadataImage;
use rafka_core::sim::{ManualClock, SimStorage};
use rafka_proto::acks::Acks;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_shard::flusher::Flusher;
use rafka_shard::partition::{IsolationLevel, Partition, PartitionError, PartitionSpec, TxnMarker};
use rafka_shard::registry::{OpenHints, PartitionRegistry};

const START_MS: i64 = 1_700_000_000_000;
const TIMEOUT: Duration = Duration::from_secs(10);
const COMMITTED: IsolationLevel = IsolationLevel::ReadCommitted;
const UNCOMMITTED: IsolationLevel = IsolationLevel::ReadUncommitted;

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

/// `count` records of producer `producer_id` (epoch `epoch`) from
/// `sequence`; transactional or not.
fn batch(producer_id: i64, epoch: i16, sequence: i32, count: usize, txn: bool) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, epoch, sequence)
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

fn marker(producer_id: i64, epoch: i16, coordinator_epoch: i32, commit: bool) -> TxnMarker {
    TxnMarker {
        producer_id,
        producer_epoch: epoch,
        coordinator_epoch,
        commit,
    }
}

struct Fixture {
    storage: SimStorage,
    clock: Rc<dyn Clock>,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            storage: SimStorage::with_seed(3),
            clock: Rc::new(ManualClock::new(START_MS)),
            dir: PathBuf::from("/sim/data/t-0"),
        }
    }

    async fn open(&self) -> Rc<Partition<SimStorage>> {
        let spec = PartitionSpec {
            topic: Rc::from("t"),
            index: 0,
            dir: self.dir.clone(),
            config: LogConfig::default(),
            hints: RecoveryHints::default(),
            write_caching: false,
            high_watermark: None,
        };
        Partition::open(self.storage.clone(), Rc::clone(&self.clock), spec)
            .await
            .expect("open")
    }
}

/// Appends a transactional batch the way the produce handler will: the
/// first try hands out a guard, the retry with it goes in.
async fn append_verified(partition: &Partition<SimStorage>, records: &Bytes) -> i64 {
    let guard = match partition.append(records, None).await {
        Err(PartitionError::TxnVerificationNeeded { guard, .. }) => guard,
        other => panic!("expected a verification request, got {other:?}"),
    };
    partition
        .append(records, Some(guard))
        .await
        .expect("verified append")
        .base_offset
}

fn offsets(partition: &Partition<SimStorage>) -> (i64, i64, i64) {
    (
        partition.high_watermark(),
        partition.last_stable_offset(),
        partition.log_end_offset(),
    )
}

#[test]
fn the_lso_moves_past_a_transaction_only_once_its_marker_is_durable() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let partition = fixture.open().await;
        partition.append(&plain(2), None).await.expect("plain");
        assert_eq!(
            append_verified(&partition, &batch(5, 0, 0, 3, true)).await,
            2
        );
        assert_eq!(offsets(&partition), (0, 0, 5));
        partition.flush().await.expect("flush");
        assert_eq!(offsets(&partition), (5, 2, 5), "5's transaction holds it");

        let abort = partition
            .write_txn_marker(marker(5, 0, 0, false))
            .await
            .expect("abort");
        assert_eq!(abort, 5);
        assert_eq!(offsets(&partition), (5, 2, 6), "marker not durable yet");
        partition.flush().await.expect("flush");
        assert_eq!(offsets(&partition), (6, 6, 6));

        let entry = AbortedTxn {
            producer_id: 5,
            first_offset: 2,
            last_offset: 5,
            last_stable_offset: 6,
        };
        let aborted = partition.aborted_transactions(0, 6).await.expect("index");
        assert_eq!(aborted, vec![entry]);
        assert!(partition.ongoing_transactions().await.unwrap().is_empty());

        // read_committed reads everything below the LSO, with the abort.
        let read = partition
            .fetch_regions(0, 1 << 20, COMMITTED)
            .await
            .unwrap();
        assert_eq!((read.next_offset, read.last_stable_offset), (6, 6));
        assert_eq!(read.aborted, vec![entry]);
        let read = partition
            .fetch_regions(0, 1 << 20, UNCOMMITTED)
            .await
            .unwrap();
        assert_eq!(read.aborted, vec![], "read_uncommitted lists none");
    });
}

#[test]
fn read_committed_stops_at_the_lso_and_its_long_poll_wakes_when_it_moves() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let partition = fixture.open().await;
        partition.append(&plain(1), None).await.expect("plain");
        append_verified(&partition, &batch(9, 0, 0, 2, true)).await; // 1-2
        partition.append(&plain(1), None).await.expect("plain"); // 3
        partition.flush().await.expect("flush");
        assert_eq!(offsets(&partition), (4, 1, 4));

        let committed = partition
            .fetch_regions(0, 1 << 20, COMMITTED)
            .await
            .unwrap();
        assert_eq!(committed.next_offset, 1, "only below the LSO");
        assert_eq!(committed.high_watermark, 4);
        let uncommitted = partition
            .fetch_regions(0, 1 << 20, UNCOMMITTED)
            .await
            .unwrap();
        assert_eq!(uncommitted.next_offset, 4);
        assert!(uncommitted.size_bytes() > committed.size_bytes());
        let at_lso = partition
            .fetch_regions(1, 1 << 20, COMMITTED)
            .await
            .unwrap();
        assert!(at_lso.regions.is_empty());

        let mut waiting = Box::pin(partition.wait_for_data(1, TIMEOUT, COMMITTED));
        assert!((&mut waiting).now_or_never().is_none());
        assert!(partition.wait_for_data(1, TIMEOUT, UNCOMMITTED).await);
        // More data moves the high watermark, not the LSO.
        partition.append(&plain(1), None).await.expect("plain");
        partition.flush().await.expect("flush");
        assert!((&mut waiting).now_or_never().is_none());
        partition
            .write_txn_marker(marker(9, 0, 0, true))
            .await
            .expect("commit");
        assert!((&mut waiting).now_or_never().is_none(), "not durable yet");
        partition.flush().await.expect("flush");
        assert_eq!((&mut waiting).now_or_never(), Some(true));
        assert_eq!(offsets(&partition), (6, 6, 6));
    });
}

#[test]
fn the_verification_guard_is_spent_by_the_append_and_by_a_marker() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let partition = fixture.open().await;
        let first = batch(4, 0, 0, 1, true);
        let guard = match partition.append(&first, None).await {
            Err(error @ PartitionError::TxnVerificationNeeded { producer_id: 4, .. }) => {
                assert_eq!(error.error_code(), ErrorCode::INVALID_TXN_STATE);
                let PartitionError::TxnVerificationNeeded { guard, .. } = error else {
                    unreachable!()
                };
                guard
            }
            other => panic!("expected a verification request, got {other:?}"),
        };
        // Asked again before verifying: the same guard.
        match partition.append(&first, Some(guard + 1)).await {
            Err(PartitionError::TxnVerificationNeeded { guard: again, .. }) => {
                assert_eq!(again, guard)
            }
            other => panic!("expected the same guard, got {other:?}"),
        }
        assert_eq!(partition.log_end_offset(), 0, "nothing written");
        partition
            .append(&first, Some(guard))
            .await
            .expect("verified");
        // Inside the open transaction no guard is needed.
        let next = batch(4, 0, 1, 1, true);
        assert_eq!(partition.append(&next, None).await.unwrap().base_offset, 1);
        // Non-transactional producers never need one.
        partition
            .append(&batch(8, 0, 0, 1, false), None)
            .await
            .expect("idempotent");

        partition
            .write_txn_marker(marker(4, 0, 0, true))
            .await
            .expect("commit");
        // The next transaction's first batch is verified again; the spent
        // guard does not pass.
        let later = batch(4, 0, 2, 1, true);
        let fresh = match partition.append(&later, Some(guard)).await {
            Err(PartitionError::TxnVerificationNeeded { guard: fresh, .. }) => fresh,
            other => panic!("expected a verification request, got {other:?}"),
        };
        assert_ne!(fresh, guard);
        // A marker written after the verification spends that guard too:
        // the late batch of the ended transaction is refused.
        partition
            .write_txn_marker(marker(4, 0, 0, false))
            .await
            .expect("abort of nothing is still written");
        match partition.append(&later, Some(fresh)).await {
            Err(PartitionError::TxnVerificationNeeded { guard: newer, .. }) => {
                assert_ne!(newer, fresh)
            }
            other => panic!("expected a verification request, got {other:?}"),
        }
        assert!(partition.ongoing_transactions().await.unwrap().is_empty());
    });
}

/// A producer's next batch, called while its transaction's first batch
/// here waits for the coordinator's verification, waits behind it rather
/// than being judged against the sequence before it (which would refuse
/// it with OUT_OF_ORDER_SEQUENCE_NUMBER); so does any other append.
#[test]
fn a_verifying_append_keeps_its_place_in_line() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let partition = fixture.open().await;
        // A first transaction: producer 4's last sequence is 0.
        append_verified(&partition, &batch(4, 0, 0, 1, true)).await;
        partition
            .write_txn_marker(marker(4, 0, 0, true))
            .await
            .expect("commit");
        let (confirm, confirmed) = futures_channel::oneshot::channel::<()>();
        let asked = std::cell::Cell::new(None);
        let first = batch(4, 0, 1, 2, true);
        let mut first_append = std::pin::pin!(partition.append_verifying(&first, |id, epoch| {
            asked.set(Some((id, epoch)));
            async move {
                confirmed.await.expect("the test confirms");
                Ok(())
            }
        }));
        assert!((&mut first_append).now_or_never().is_none(), "verifying");
        assert_eq!(asked.get(), Some((4, 0)));
        let second = batch(4, 0, 3, 1, true);
        let mut second_append = std::pin::pin!(partition.append_verifying(&second, |_, _| async {
            panic!("inside the open transaction: no verification")
        }));
        assert!((&mut second_append).now_or_never().is_none(), "in line");
        let other = plain(1);
        let mut plain_append = std::pin::pin!(partition.append(&other, None));
        assert!((&mut plain_append).now_or_never().is_none(), "in line");
        assert_eq!(partition.log_end_offset(), 2, "nothing written meanwhile");
        confirm.send(()).expect("the append waits");
        let (first, second, plain) =
            futures_util::future::join3(first_append, second_append, plain_append).await;
        let base_offsets = [first, second, plain].map(|appended| appended.unwrap().base_offset);
        // The first transaction's record and marker, then in call order.
        assert_eq!(base_offsets, [2, 4, 5]);
        assert_eq!(
            partition.ongoing_transactions().await.unwrap(),
            vec![(2, 4)]
        );
    });
}

/// A verification that does not confirm the transaction refuses the batch
/// with the coordinator's code, writes nothing, and passes the turn on.
#[test]
fn a_refused_verification_refuses_the_batch_only() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let partition = fixture.open().await;
        let refused = partition
            .append_verifying(&batch(4, 0, 0, 1, true), |producer_id, _| async move {
                Err(PartitionError::TxnNotVerified {
                    producer_id,
                    error_code: ErrorCode::INVALID_TXN_STATE,
                })
            })
            .await
            .expect_err("not in the transaction");
        assert_eq!(refused.error_code(), ErrorCode::INVALID_TXN_STATE);
        assert_eq!(partition.log_end_offset(), 0);
        assert!(partition.ongoing_transactions().await.unwrap().is_empty());
        let next = partition.append(&plain(1), None).await.expect("plain");
        assert_eq!(next.base_offset, 0);
    });
}

#[test]
fn markers_are_fenced_by_producer_and_coordinator_epochs() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let partition = fixture.open().await;
        append_verified(&partition, &batch(6, 2, 0, 1, true)).await;
        let stale_producer = partition
            .write_txn_marker(marker(6, 1, 0, false))
            .await
            .expect_err("older producer epoch");
        assert_eq!(
            stale_producer.error_code(),
            ErrorCode::INVALID_PRODUCER_EPOCH
        );
        // A newer epoch (an InitProducerId bump aborting the transaction)
        // ends it and moves the producer up; coordinator epoch 7 recorded.
        partition
            .write_txn_marker(marker(6, 3, 7, false))
            .await
            .expect("abort at the new epoch");
        let producers = partition.active_producers().await.unwrap();
        assert_eq!(
            (producers[0].producer_epoch, producers[0].coordinator_epoch),
            (3, 7)
        );
        assert_eq!(producers[0].current_txn_start_offset, None);
        let fenced = partition
            .write_txn_marker(marker(6, 3, 6, true))
            .await
            .expect_err("older coordinator");
        assert_eq!(
            fenced.error_code(),
            ErrorCode::TRANSACTION_COORDINATOR_FENCED
        );
        // The old epoch's data batches are fenced as well now.
        let late = partition.append(&batch(6, 2, 1, 1, true), None).await;
        assert_eq!(
            late.expect_err("fenced").error_code(),
            ErrorCode::INVALID_PRODUCER_EPOCH
        );
        assert_eq!(partition.log_end_offset(), 2);
    });
}

#[test]
fn a_coordinator_appends_transactional_batches_without_sequence_or_guard() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let partition = fixture.open().await;
        partition.append(&plain(1), None).await.expect("plain");
        let offsets_commit = batch(12, 1, -1, 2, true);
        let appended = partition
            .append_as_coordinator(&offsets_commit)
            .await
            .expect("coordinator append");
        assert_eq!((appended.base_offset, appended.last_offset), (1, 2));
        // Another of the same transaction: no sequence to continue.
        let again = partition
            .append_as_coordinator(&batch(12, 1, -1, 1, true))
            .await
            .expect("second");
        assert_eq!(again.base_offset, 3);
        partition.flush().await.expect("flush");
        assert_eq!(offsets(&partition), (4, 1, 4));
        assert_eq!(
            partition.ongoing_transactions().await.unwrap(),
            vec![(1, 12)]
        );
        let stale = partition
            .append_as_coordinator(&batch(12, 0, -1, 1, true))
            .await
            .expect_err("older epoch");
        assert_eq!(stale.error_code(), ErrorCode::INVALID_PRODUCER_EPOCH);
        partition
            .write_txn_marker(marker(12, 1, 0, true))
            .await
            .expect("commit");
        partition.flush().await.expect("flush");
        assert_eq!(offsets(&partition), (5, 5, 5));
    });
}

#[test]
fn a_restart_mid_transaction_keeps_the_lso_where_it_was() {
    in_executor(|| async {
        let fixture = Fixture::new();
        let partition = fixture.open().await;
        partition.append(&plain(2), None).await.expect("plain");
        append_verified(&partition, &batch(1, 0, 0, 1, true)).await; // 2
        append_verified(&partition, &batch(2, 0, 0, 1, true)).await; // 3
        partition
            .write_txn_marker(marker(2, 0, 4, false))
            .await
            .expect("abort 2");
        partition.flush().await.expect("flush");
        assert_eq!(offsets(&partition), (5, 2, 5));
        let aborted = partition.aborted_transactions(0, 5).await.unwrap();

        // Clean close (snapshot at the log end), then reopen.
        partition.close().await.expect("close");
        let reopened = fixture.open().await;
        assert_eq!(offsets(&reopened), (5, 2, 5));
        assert_eq!(reopened.ongoing_transactions().await.unwrap(), vec![(2, 1)]);
        assert_eq!(reopened.aborted_transactions(0, 5).await.unwrap(), aborted);

        // A crash with the commit of 1 written but not flushed: 1 is still
        // open after recovery.
        reopened
            .write_txn_marker(marker(1, 0, 4, true))
            .await
            .expect("commit 1");
        fixture.storage.crash();
        drop(reopened);
        let recovered = fixture.open().await;
        assert_eq!(offsets(&recovered), (5, 2, 5));
        let producers = recovered.active_producers().await.unwrap();
        let two = producers.iter().find(|p| p.producer_id == 2).unwrap();
        assert_eq!(two.coordinator_epoch, 4, "read back from the marker");
    });
}

#[test]
fn markers_pass_the_free_space_gate_and_wait_until_durable() {
    in_executor(|| async {
        let config = Arc::new(BrokerConfig {
            log_dirs: vec![PathBuf::from("/sim/data")],
            ..Default::default()
        });
        let clock: Rc<dyn Clock> = Rc::new(ManualClock::new(START_MS));
        let flusher = Flusher::new(Duration::ZERO);
        let registry =
            PartitionRegistry::new(SimStorage::with_seed(5), clock, config, Rc::clone(&flusher));
        glommio::spawn_local(Rc::clone(&flusher).run()).detach();
        let image = MetadataImage::default();
        registry
            .open(&image, "t", 0, OpenHints::default())
            .await
            .expect("open");
        let partition = registry.get("t", 0).expect("partition");
        append_verified(&partition, &batch(3, 0, 0, 1, true)).await;
        registry.disk().set_refusing(true, 1 << 30);
        let refused = registry
            .produce("t", 0, &plain(1), Acks::All, TIMEOUT, None)
            .await
            .expect_err("disk full");
        assert!(matches!(refused, PartitionError::DiskFull { .. }));
        let offset = registry
            .write_txn_marker("t", 0, marker(3, 0, 0, true), TIMEOUT)
            .await
            .expect("a marker is never refused for space");
        assert_eq!(offset, 1);
        assert_eq!(offsets(&partition), (2, 2, 2), "durable when answered");
        let coordinator = registry
            .append_as_coordinator("t", 0, &batch(3, 0, -1, 1, true), TIMEOUT)
            .await
            .expect("coordinator writes are not refused either");
        assert_eq!(coordinator.base_offset, 2);
        assert_eq!(offsets(&partition), (3, 2, 3));
        flusher.stop();
    });
}
