//! The transaction coordinator's clocks on the shard layer, over simulated
//! storage and a manual clock: an open transaction past its timeout is
//! fenced and aborted (PrepareAbort, markers, CompleteAbort, each record
//! read back from `__transaction_state`), and an idle transactional id
//! expires after `transactional.id.expiration.ms` while a younger one
//! stays.
//!
//! Time moves only when the test moves it; the timer task is kicked after
//! each move, and the expiry task runs on its real-time interval (a few
//! milliseconds here), so every wait below is a poll with a deadline for a
//! state the clock already made due.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rafka_core::config::BrokerConfig;
use rafka_core::log::AbortedTxn;
use rafka_core::metadata::NewTopic;
use rafka_core::sim::{ManualClock, SimStorage};
use rafka_core::txn::schema::{decode_key, TxnLogValue};
use rafka_core::txn::{TxnDescription, TxnState, TRANSACTION_STATE_TOPIC};
use rafka_proto::acks::Acks;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{BatchBuilder, Batches, Compression, ControlType, RecordLimits};
use rafka_shard::controller_handle::ControllerHandle;
use rafka_shard::partition::PartitionError;
use rafka_shard::runtime::{run, RuntimeConfig, ShardEnv};
use rafka_shard::shard::Shard;
use rafka_shard::startup::start_with;

const START_MS: i64 = 1_700_000_000_000;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on a poll for a state the clock already made due.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(5);
const TXN_TIMEOUT_MS: i32 = 10_000;
/// `transactional.id.expiration.ms`: ten minutes of the manual clock,
/// shorter than [`BUSY_TIMEOUT_MS`].
const EXPIRATION_MS: i64 = 600_000;
/// The timeout of a transaction that must stay open past the expiration.
const BUSY_TIMEOUT_MS: i32 = 900_000;
/// `transaction.remove.expired.transaction.cleanup.interval.ms`: real
/// milliseconds between expiry passes.
const EXPIRY_INTERVAL_MS: i64 = 5;
const TOPIC: &str = "t";
/// Records per transactional batch.
const RECORDS: i64 = 3;

/// Runs `scenario` on a one-shard broker over simulated storage whose
/// clock it holds, with topic `t` (2 partitions) and `__transaction_state`
/// (1 partition) created, then stops it cleanly.
fn on_sim_broker<F, Fut>(scenario: F)
where
    F: FnOnce(Rc<Shard<SimStorage>>, ManualClock) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let config = Arc::new(BrokerConfig {
        log_dirs: vec![PathBuf::from("/sim/data")],
        transaction_state_log_num_partitions: 1,
        transactional_id_expiration_ms: EXPIRATION_MS,
        transaction_remove_expired_interval_ms: EXPIRY_INTERVAL_MS,
        ..Default::default()
    });
    let main = move |env: ShardEnv<Shard<SimStorage>>| {
        let config = Arc::clone(&config);
        let scenario = scenario.clone();
        async move {
            let storage = SimStorage::with_seed(31);
            let clock = ManualClock::new(START_MS);
            let (shard, _) = start_with(env, config, storage, Rc::new(clock.clone()))
                .await
                .expect("start");
            let controller = ControllerHandle::new(Rc::clone(&shard));
            let topic = NewTopic {
                name: TOPIC.to_string(),
                partitions: 2,
                replication_factor: -1,
                configs: Default::default(),
                assignments: Vec::new(),
            };
            let created = controller.create_topics(vec![topic], false, None).await;
            assert!(created.expect("controller").iter().all(Result::is_ok));
            let ensured = controller
                .ensure_internal_topic(shard.transaction_topic(), None)
                .await;
            ensured.expect("controller").expect(TRANSACTION_STATE_TOPIC);
            scenario(Rc::clone(&shard), clock).await;
            shard.shutdown().await.expect("clean stop");
            shard.stop_all().await;
        }
    };
    run(&RuntimeConfig::for_tests(1), main).expect("runtime");
}

/// A transactional batch of `RECORDS` records.
fn txn_batch(producer_id: i64, epoch: i16, sequence: i32) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(producer_id, epoch, sequence)
        .transactional(true);
    for _ in 0..RECORDS {
        builder.push(Some(b"k".as_slice()), Some(b"v".as_slice()));
    }
    builder.build().expect("batch")
}

/// Appends a transactional batch the way the produce handler does: the
/// partition asks for verification, the coordinator confirms the
/// partition is in the transaction, the append goes in with the guard.
async fn produce_verified(shard: &Shard<SimStorage>, id: &str, partition: i32, batch: &Bytes) {
    let registry = shard.registry();
    let first = registry
        .produce(TOPIC, partition, batch, Acks::All, TIMEOUT, None)
        .await;
    let guard = match first {
        Err(PartitionError::TxnVerificationNeeded { guard, .. }) => guard,
        other => panic!("expected a verification request, got {other:?}"),
    };
    let header = rafka_proto::record::BatchHeader::decode(batch).expect("header");
    let verified = shard.txns().verify_partitions(
        id,
        header.producer_id,
        header.producer_epoch,
        &[(TOPIC.to_string(), partition)],
    );
    assert_eq!(verified, vec![ErrorCode::NONE]);
    registry
        .produce(TOPIC, partition, batch, Acks::All, TIMEOUT, Some(guard))
        .await
        .expect("verified append");
}

/// DescribeTransactions' view of `id` on this (its coordinator) shard.
fn describe(shard: &Shard<SimStorage>, id: &str) -> Result<TxnDescription, ErrorCode> {
    shard.txns().describe(id)
}

/// Polls until `done` holds of `id`'s description, or fails at the
/// deadline.
async fn await_described(
    shard: &Shard<SimStorage>,
    id: &str,
    what: &str,
    done: impl Fn(&Result<TxnDescription, ErrorCode>) -> bool,
) {
    let start = Instant::now();
    loop {
        let described = describe(shard, id);
        if done(&described) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{id} never {what}: {described:?}"
        );
        glommio::timer::sleep(POLL).await;
    }
}

/// Every record of `__transaction_state` partition 0 for `id`, in log
/// order: (state, epoch, last update), or None for a tombstone.
async fn state_log(shard: &Shard<SimStorage>, id: &str) -> Vec<Option<(TxnState, i16, i64)>> {
    let fetched = shard
        .registry()
        .fetch(TRANSACTION_STATE_TOPIC, 0, 0, 1 << 20)
        .await
        .expect("fetch");
    let mut log = Vec::new();
    for batch in Batches::new(fetched.records) {
        let batch = batch.expect("valid batch");
        for record in batch.records(RecordLimits::default()).expect("records") {
            let record = record.expect("record");
            let key = record.key.expect("key");
            if decode_key(&key).expect("key") != id {
                continue;
            }
            log.push(record.value.map(|value| {
                let value = TxnLogValue::decode(&value).expect("value");
                (value.state, value.producer_epoch, value.last_update_ms)
            }));
        }
    }
    log
}

/// Every batch of `t`-`partition`: (base offset, producer epoch, control
/// type if a marker).
async fn data_log(
    shard: &Shard<SimStorage>,
    partition: i32,
) -> Vec<(i64, i16, Option<ControlType>)> {
    let fetched = shard
        .registry()
        .fetch(TOPIC, partition, 0, 1 << 20)
        .await
        .expect("fetch");
    Batches::new(fetched.records)
        .map(|batch| {
            let batch = batch.expect("valid batch");
            let header = batch.header();
            let marker = match header.is_control() {
                true => batch.end_txn_marker().expect("marker"),
                false => None,
            };
            (
                header.base_offset,
                header.producer_epoch,
                marker.map(|m| m.control_type),
            )
        })
        .collect()
}

/// An open transaction past its timeout: the coordinator fences the producer (epoch + 1), writes
/// PrepareAbort, an ABORT marker with the new epoch to both partitions,
/// and CompleteAbort; the partitions' LSO reaches their end and their
/// aborted-transaction index lists the transaction.
#[test]
fn an_open_transaction_past_its_timeout_is_fenced_and_aborted() {
    on_sim_broker(|shard, clock| async move {
        let txns = shard.txns();
        let (pid, epoch) = txns
            .init_producer_id("tx", TXN_TIMEOUT_MS, None)
            .await
            .expect("init");
        assert_eq!(epoch, 0);
        let partitions = vec![(TOPIC.to_string(), 0), (TOPIC.to_string(), 1)];
        txns.add_partitions("tx", pid, epoch, partitions.clone())
            .await
            .expect("add partitions");
        for partition in 0..2 {
            produce_verified(&shard, "tx", partition, &txn_batch(pid, epoch, 0)).await;
            let p = shard.partition(TOPIC, partition).expect("partition");
            assert_eq!((p.last_stable_offset(), p.high_watermark()), (0, RECORDS));
        }
        let deadline_ms = START_MS + i64::from(TXN_TIMEOUT_MS);
        let armed = txns.with_machine(|m| m.next_deadline_ms());
        assert_eq!(armed, Some(deadline_ms), "the timer's deadline");

        assert!(txns
            .with_machine(|m| m.timed_out(deadline_ms - 1))
            .is_empty());
        clock.set_ms(deadline_ms);
        txns.host().timers_changed();
        await_described(&shard, "tx", "completed its abort", |d| {
            d.as_ref().is_ok_and(|d| d.state == TxnState::CompleteAbort)
        })
        .await;
        let described = describe(&shard, "tx").expect("described");
        assert_eq!((described.producer_id, described.producer_epoch), (pid, 1));
        assert!(described.partitions.is_empty());
        assert_eq!(txns.with_machine(|m| m.next_deadline_ms()), None);

        assert_eq!(
            state_log(&shard, "tx").await,
            vec![
                Some((TxnState::Empty, 0, START_MS)),
                Some((TxnState::Ongoing, 0, START_MS)),
                Some((TxnState::PrepareAbort, 1, deadline_ms)),
                Some((TxnState::CompleteAbort, 1, deadline_ms)),
            ]
        );
        for partition in 0..2 {
            assert_eq!(
                data_log(&shard, partition).await,
                vec![(0, 0, None), (RECORDS, 1, Some(ControlType::Abort))],
                "t-{partition}"
            );
            let p = shard.partition(TOPIC, partition).expect("partition");
            let end = RECORDS + 1;
            assert_eq!((p.last_stable_offset(), p.high_watermark()), (end, end));
            let aborted = p.aborted_transactions(0, end).await.expect("index");
            let entry = AbortedTxn {
                producer_id: pid,
                first_offset: 0,
                last_offset: RECORDS,
                last_stable_offset: end,
            };
            assert_eq!(aborted, vec![entry], "t-{partition}");
        }

        // The timed-out producer is fenced; its epoch no longer writes.
        let again = txns.add_partitions("tx", pid, epoch, partitions).await;
        assert_eq!(again, Err(ErrorCode::PRODUCER_FENCED));
        assert_eq!(
            txns.end_txn("tx", pid, epoch, true).await,
            Err(ErrorCode::PRODUCER_FENCED)
        );
        let stale = shard
            .registry()
            .produce(
                TOPIC,
                0,
                &txn_batch(pid, epoch, 1),
                Acks::All,
                TIMEOUT,
                None,
            )
            .await
            .expect_err("fenced epoch");
        assert_eq!(stale.error_code(), ErrorCode::INVALID_PRODUCER_EPOCH);
    });
}

/// An idle id expires once `transactional.id.expiration.ms` has passed
/// since its last update: its tombstone is written and DescribeTransactions
/// no longer knows it, while an id updated a second later survives the
/// same expiry pass, and goes a second of the clock later.
#[test]
fn an_idle_transactional_id_expires_after_its_expiration() {
    on_sim_broker(|shard, clock| async move {
        let txns = shard.txns();
        let (old_pid, _) = txns
            .init_producer_id("old", TXN_TIMEOUT_MS, None)
            .await
            .expect("init old");
        clock.advance_ms(1_000);
        txns.init_producer_id("young", TXN_TIMEOUT_MS, None)
            .await
            .expect("init young");
        // An open transaction never expires, however old.
        let (busy_pid, busy_epoch) = txns
            .init_producer_id("busy", BUSY_TIMEOUT_MS, None)
            .await
            .expect("init busy");
        let partition = vec![(TOPIC.to_string(), 0)];
        txns.add_partitions("busy", busy_pid, busy_epoch, partition)
            .await
            .expect("add");

        clock.set_ms(START_MS + EXPIRATION_MS);
        await_described(&shard, "old", "expired", |d| {
            d == &Err(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND)
        })
        .await;
        // Expiry handles every id in one pass: "young" lived through it.
        assert_eq!(describe(&shard, "young").unwrap().state, TxnState::Empty);
        assert_eq!(describe(&shard, "busy").unwrap().state, TxnState::Ongoing);
        assert_eq!(
            state_log(&shard, "old").await,
            vec![Some((TxnState::Empty, 0, START_MS)), None],
            "the tombstone follows the last state"
        );

        clock.advance_ms(1_000);
        await_described(&shard, "young", "expired", |d| {
            d == &Err(ErrorCode::TRANSACTIONAL_ID_NOT_FOUND)
        })
        .await;
        assert_eq!(describe(&shard, "busy").unwrap().state, TxnState::Ongoing);

        // The id starts over: a new producer id, epoch 0.
        let (pid, epoch) = txns
            .init_producer_id("old", TXN_TIMEOUT_MS, None)
            .await
            .expect("init after expiry");
        assert_ne!(pid, old_pid);
        assert_eq!(epoch, 0);
    });
}
