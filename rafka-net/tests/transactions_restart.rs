//! A restart in every state a crash can leave a transaction in, on a real
//! broker core over 1 and 2 shards: the first run builds the state (a
//! transaction through InitProducerId, AddPartitionsToTxn and the Produce
//! handler, then the coordinator's record or markers appended by hand
//! where the crash would have cut the coordinator short) and stops; the
//! second run, on the same data dir, must finish what the coordinator had
//! decided, through read_committed Fetch, the LSO and
//! DescribeTransactions:
//!
//! - PrepareCommit written, no marker: committed on every partition;
//! - PrepareAbort written, no marker: aborted on every partition;
//! - PrepareCommit written, one partition's COMMIT marker written: both
//!   committed (the marker task writes that partition's marker again);
//! - Ongoing: the LSO stays at the transaction's first offset across the
//!   restart, until the transaction's timeout aborts it.
//!
//! Both runs share a [`SharedClock`] that moves only when a test moves it,
//! so no transaction times out unless a test says so.

use std::collections::BTreeSet;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::*;
use rafka_core::config::BrokerConfig;
use rafka_core::txn::schema::{encode_key, TxnLogValue};
use rafka_core::txn::{TxnState, COORDINATOR_EPOCH, TRANSACTION_STATE_TOPIC};
use rafka_proto::record::{BatchBuilder, Batches, Compression, ControlType};
use rafka_shard::shard::Shard;
use rafka_shard::txn::TxnMarker;
use rafka_testkit::proto::{produce_answers, produce_request, str_bytes, topic_name};
use rafka_testkit::{Broker, SharedClock, TestBroker};

const NONE: i16 = 0;
const ID: &str = "restarted";
/// The transaction's partitions: two topics, one partition of each.
const PARTITIONS: [(&str, i32); 2] = [("left", 0), ("right", 1)];
/// Records per transactional batch (one batch per partition).
const RECORDS: i64 = 3;
/// The timeout of the transactions that must not time out (the clock
/// does not move in those tests anyway).
const LONG_TIMEOUT_MS: i32 = 60_000;
/// The timeout of the transaction the clock times out.
const SHORT_TIMEOUT_MS: i32 = 1_000;
const SHARD_COUNTS: [usize; 2] = [1, 2];
/// Bound on a poll for a state already due.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(10);

/// The producer of the transaction, carried from the first run to the
/// second.
#[derive(Debug, Clone, Copy)]
struct Producer {
    id: i64,
    epoch: i16,
    start_ms: i64,
}

type Carried = Arc<Mutex<Option<Producer>>>;

/// What the first run leaves behind after the transaction's batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeftBehind {
    /// The coordinator's Prepare record (commit or abort), then nothing.
    Prepared { commit: bool },
    /// PrepareCommit, and the COMMIT marker of the first partition only.
    FirstMarker,
    /// Nothing: the transaction is open.
    Open,
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("ms fit i64")
}

fn broker(dir: &Path, shards: usize, clock: &SharedClock) -> TestBroker {
    let small = |c: &mut BrokerConfig| {
        c.transaction_state_log_num_partitions = 4;
    };
    TestBroker::builder()
        .shards(shards)
        .config(small)
        .clock(clock.clone())
        .data_dir(dir)
}

/// Runs `first`, stops, restarts on the same data dir and runs `second`,
/// once per shard count, each on a fresh dir.
fn restart_matrix<F1, Fut1, F2, Fut2>(first: F1, second: F2)
where
    F1: FnOnce(Broker, SharedClock, Carried) -> Fut1 + Send + Clone + 'static,
    Fut1: std::future::Future<Output = ()> + 'static,
    F2: FnOnce(Broker, SharedClock, Producer) -> Fut2 + Send + Clone + 'static,
    Fut2: std::future::Future<Output = ()> + 'static,
{
    for shards in SHARD_COUNTS {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = SharedClock::new(now_ms());
        let carried: Carried = Arc::new(Mutex::new(None));
        let (first, clock1, carried1) = (first.clone(), clock.clone(), Arc::clone(&carried));
        broker(dir.path(), shards, &clock).run(move |broker| first(broker, clock1, carried1));
        let producer = carried
            .lock()
            .expect("lock")
            .expect("the first run's producer");
        let (second, clock2) = (second.clone(), clock.clone());
        broker(dir.path(), shards, &clock).run(move |broker| second(broker, clock2, producer));
    }
}

async fn find_txn_coordinator(broker: &Broker, id: &str) -> i16 {
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![str_bytes(id)]);
    let response: FindCoordinatorResponse = broker.call(4, &request).await;
    response.coordinators[0].error_code
}

/// InitProducerId v4 with a transactional id: (producer id, epoch).
async fn init(broker: &Broker, timeout_ms: i32) -> (i64, i16) {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes(ID))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r: InitProducerIdResponse = broker.call(4, &request).await;
    assert_eq!(r.error_code, NONE, "InitProducerId");
    (r.producer_id.0, r.producer_epoch)
}

async fn add_partitions(broker: &Broker, pid: i64, epoch: i16) {
    let topics = PARTITIONS
        .iter()
        .map(|(name, partition)| {
            AddPartitionsToTxnTopic::default()
                .with_name(topic_name(name))
                .with_partitions(vec![*partition])
        })
        .collect();
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(str_bytes(ID)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let response: AddPartitionsToTxnResponse = broker.call(3, &request).await;
    let codes: Vec<i16> = response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect();
    assert_eq!(codes, vec![NONE; PARTITIONS.len()], "AddPartitionsToTxn");
}

/// The values of the transaction's batch in `topic`-`partition`.
fn values(topic: &str, partition: i32) -> Vec<String> {
    (0..RECORDS)
        .map(|i| format!("{topic}-{partition}-{i}"))
        .collect()
}

/// Produces the transaction's batch to every partition through the
/// Produce handler (v9, with the transactional id), so the partition asks
/// the coordinator to verify it first (KIP-890 part 1).
async fn produce_batches(broker: &Broker, pid: i64, epoch: i16) {
    for (topic, partition) in PARTITIONS {
        let mut builder = BatchBuilder::new(Compression::None)
            .producer(pid, epoch, 0)
            .transactional(true);
        for value in values(topic, partition) {
            builder.push(Some(b"k".as_slice()), Some(value.as_bytes()));
        }
        let batch = builder.build().expect("batch");
        let request = produce_request(-1, vec![(topic, vec![(partition, Some(batch))])])
            .with_transactional_id(Some(TransactionalId(str_bytes(ID))));
        let response: ProduceResponse = broker.call(9, &request).await;
        let (_, answer) = produce_answers(&response).remove(0);
        assert_eq!(
            (answer.error_code, answer.base_offset),
            (NONE, 0),
            "{topic}-{partition}: {answer:?}"
        );
    }
}

async fn describe(broker: &Broker) -> describe_transactions_response::TransactionState {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(str_bytes(ID))]);
    let response: DescribeTransactionsResponse = broker.call(0, &request).await;
    let state = response.transaction_states.into_iter().next();
    let state = state.expect("one state");
    assert_eq!(state.error_code, NONE, "{state:?}");
    state
}

/// DescribeTransactions until the id is in `state`.
async fn await_state(
    broker: &Broker,
    state: TxnState,
) -> describe_transactions_response::TransactionState {
    let start = Instant::now();
    loop {
        let described = describe(broker).await;
        if described.transaction_state.as_str() == state.name() {
            return described;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{ID} never reached {}: {described:?}",
            state.name()
        );
        glommio::timer::sleep(POLL).await;
    }
}

/// Appends `state` as the id's latest `__transaction_state` record, as the
/// coordinator would have written it, through the partition's owner.
async fn append_state(broker: &Broker, clock: &SharedClock, producer: Producer, state: TxnState) {
    let mut partitions: Vec<(String, Vec<i32>)> = Vec::new();
    for (topic, partition) in PARTITIONS {
        partitions.push((topic.to_string(), vec![partition]));
    }
    let now = rafka_core::io::Clock::now_ms(clock);
    let value = TxnLogValue {
        producer_id: producer.id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: producer.epoch,
        timeout_ms: LONG_TIMEOUT_MS,
        state,
        partitions,
        last_update_ms: now,
        start_ms: producer.start_ms,
    };
    let key = encode_key(ID).expect("key");
    let value = value.encode().expect("value");
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push_record(now, Some(&key), Some(&value), &[]);
    let batch = builder.build().expect("batch");
    let partition = broker.shard.transaction_topic().partition_for(ID);
    broker
        .produce(TRANSACTION_STATE_TOPIC, partition, batch)
        .await;
}

/// Writes the transaction's COMMIT marker to `topic`-`partition` on its
/// owner, as the coordinator's marker task would; returns its offset.
async fn write_commit_marker(
    broker: &Broker,
    producer: Producer,
    topic: &str,
    partition: i32,
) -> i64 {
    let owner = broker.shard.owner_of(topic, partition).expect("owner");
    let marker = TxnMarker {
        producer_id: producer.id,
        producer_epoch: producer.epoch,
        coordinator_epoch: COORDINATOR_EPOCH,
        commit: true,
    };
    let topic = topic.to_string();
    let work = move |s: Rc<Shard>| async move {
        s.registry()
            .write_txn_marker(&topic, partition, marker, DEADLINE)
            .await
            .map_err(|e| e.error_code())
    };
    let written = broker.shard.router.invoke_on(owner, work).await;
    written.expect("route").expect("marker")
}

/// The first run: the transaction with its batches, then what `left`
/// says; the producer is carried to the second run.
async fn build_state(
    broker: Broker,
    clock: SharedClock,
    carried: Carried,
    left: LeftBehind,
    timeout_ms: i32,
) {
    for (topic, _) in PARTITIONS {
        broker.create_topic_id(topic, 2, &[]).await;
    }
    assert_eq!(find_txn_coordinator(&broker, ID).await, NONE);
    let (pid, epoch) = init(&broker, timeout_ms).await;
    add_partitions(&broker, pid, epoch).await;
    produce_batches(&broker, pid, epoch).await;
    let described = describe(&broker).await;
    assert_eq!(described.transaction_state.as_str(), "Ongoing");
    let producer = Producer {
        id: pid,
        epoch,
        start_ms: described.transaction_start_time_ms,
    };
    for (topic, partition) in PARTITIONS {
        let read = read_committed(&broker, topic, partition).await;
        assert_eq!(
            (read.lso, read.hw),
            (0, RECORDS),
            "{topic}-{partition} open"
        );
    }
    match left {
        LeftBehind::Prepared { commit } => {
            let state = match commit {
                true => TxnState::PrepareCommit,
                false => TxnState::PrepareAbort,
            };
            append_state(&broker, &clock, producer, state).await;
        }
        LeftBehind::FirstMarker => {
            append_state(&broker, &clock, producer, TxnState::PrepareCommit).await;
            let (topic, partition) = PARTITIONS[0];
            assert_eq!(
                write_commit_marker(&broker, producer, topic, partition).await,
                RECORDS
            );
            let read = read_committed(&broker, topic, partition).await;
            assert_eq!((read.lso, read.hw), (RECORDS + 1, RECORDS + 1));
        }
        LeftBehind::Open => {}
    }
    *carried.lock().expect("lock") = Some(producer);
}

/// A read_committed Fetch of one partition from offset 0, as a consumer
/// sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Read {
    hw: i64,
    lso: i64,
    /// The aborted transactions listed: (producer id, first offset).
    aborted: Vec<(i64, i64)>,
    /// The values a read_committed consumer hands out: aborted batches
    /// dropped as Kafka's consumer drops them.
    visible: Vec<String>,
    /// The markers returned: (offset, commit?).
    markers: Vec<(i64, bool)>,
}

async fn read_committed(broker: &Broker, topic: &str, partition: i32) -> Read {
    let fetch_partition = FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(0)
        .with_partition_max_bytes(1 << 20);
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![fetch_partition])]);
    let response: FetchResponse = broker.call(11, &request).await;
    let data = &response.responses[0].partitions[0];
    assert_eq!(data.error_code, NONE, "{topic}-{partition}");
    let aborted: Vec<(i64, i64)> = data
        .aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    let records = data.records.clone().unwrap_or_default();
    let (visible, markers) = consume(records, &aborted);
    Read {
        hw: data.high_watermark,
        lso: data.last_stable_offset,
        aborted,
        visible,
        markers,
    }
}

/// Kafka's read_committed consumer over `records`: a producer's
/// transactional batches are dropped from the first offset of one of its
/// aborted transactions up to its next ABORT marker; markers are not
/// records.
fn consume(records: Bytes, aborted: &[(i64, i64)]) -> (Vec<String>, Vec<(i64, bool)>) {
    let mut pending = aborted.to_vec();
    pending.sort_by_key(|&(_, first)| first);
    let mut aborting = BTreeSet::new();
    let (mut visible, mut markers) = (Vec::new(), Vec::new());
    for batch in Batches::new(records) {
        let batch = batch.expect("valid batch");
        let header = batch.header();
        while let Some(&(producer_id, first)) = pending.first() {
            if first > header.last_offset() {
                break;
            }
            aborting.insert(producer_id);
            pending.remove(0);
        }
        if header.is_control() {
            let marker = batch.end_txn_marker().expect("marker").expect("end txn");
            let commit = marker.control_type == ControlType::Commit;
            if !commit {
                aborting.remove(&header.producer_id);
            }
            markers.push((header.base_offset, commit));
            continue;
        }
        if header.is_transactional() && aborting.contains(&header.producer_id) {
            continue;
        }
        for record in batch.records(Default::default()).expect("records") {
            let value = record.expect("record").value.expect("value");
            visible.push(String::from_utf8(value.to_vec()).expect("utf-8"));
        }
    }
    (visible, markers)
}

/// After the restart: the transaction completed as `commit` says, with
/// the producer's `epoch`; every partition ends in its marker(s), LSO =
/// high watermark.
async fn assert_completed(broker: &Broker, producer: Producer, commit: bool, epoch: i16) {
    let state = match commit {
        true => TxnState::CompleteCommit,
        false => TxnState::CompleteAbort,
    };
    let described = await_state(broker, state).await;
    assert_eq!(
        (described.producer_id.0, described.producer_epoch),
        (producer.id, epoch)
    );
    assert!(described.topics.is_empty(), "{described:?}");
    for (topic, partition) in PARTITIONS {
        let read = read_committed(broker, topic, partition).await;
        let end = read.markers.last().map_or(0, |m| m.0 + 1);
        assert_eq!((read.lso, read.hw), (end, end), "{topic}-{partition}");
        match commit {
            true => {
                assert_eq!(read.visible, values(topic, partition));
                assert_eq!(read.aborted, vec![]);
            }
            false => {
                assert_eq!(read.visible, Vec::<String>::new());
                assert_eq!(read.aborted, vec![(producer.id, 0)]);
            }
        }
    }
}

#[test]
fn a_prepared_commit_is_finished_after_a_restart() {
    let first = |broker, clock, carried| async move {
        let left = LeftBehind::Prepared { commit: true };
        build_state(broker, clock, carried, left, LONG_TIMEOUT_MS).await;
    };
    restart_matrix(first, |broker, _clock, producer| async move {
        assert_completed(&broker, producer, true, producer.epoch).await;
        for (topic, partition) in PARTITIONS {
            let read = read_committed(&broker, topic, partition).await;
            assert_eq!(read.markers, vec![(RECORDS, true)], "{topic}-{partition}");
        }
    });
}

#[test]
fn a_prepared_abort_is_finished_after_a_restart() {
    let first = |broker, clock, carried| async move {
        let left = LeftBehind::Prepared { commit: false };
        build_state(broker, clock, carried, left, LONG_TIMEOUT_MS).await;
    };
    restart_matrix(first, |broker, _clock, producer| async move {
        assert_completed(&broker, producer, false, producer.epoch).await;
        for (topic, partition) in PARTITIONS {
            let read = read_committed(&broker, topic, partition).await;
            assert_eq!(read.markers, vec![(RECORDS, false)], "{topic}-{partition}");
        }
    });
}

/// A crash between two markers: the marker task starts over and writes
/// every marker, so the partition that had one gets a second COMMIT
/// marker (as Kafka does); it changes nothing for a reader.
#[test]
fn a_commit_cut_between_markers_is_finished_after_a_restart() {
    let first = |broker, clock, carried| async move {
        build_state(
            broker,
            clock,
            carried,
            LeftBehind::FirstMarker,
            LONG_TIMEOUT_MS,
        )
        .await;
    };
    restart_matrix(first, |broker, _clock, producer| async move {
        assert_completed(&broker, producer, true, producer.epoch).await;
        let (topic, partition) = PARTITIONS[0];
        let read = read_committed(&broker, topic, partition).await;
        let twice = vec![(RECORDS, true), (RECORDS + 1, true)];
        assert_eq!(read.markers, twice, "{topic}-{partition}");
        let (topic, partition) = PARTITIONS[1];
        let read = read_committed(&broker, topic, partition).await;
        assert_eq!(read.markers, vec![(RECORDS, true)], "{topic}-{partition}");
    });
}

/// An open transaction keeps the LSO at its first offset across a
/// restart, and its timeout (from its start before the restart) aborts
/// it: fenced with the next epoch, ABORT markers, read_committed sees
/// nothing of it.
#[test]
fn an_open_transaction_holds_the_lso_across_a_restart_until_its_timeout() {
    let first = |broker, clock, carried| async move {
        build_state(broker, clock, carried, LeftBehind::Open, SHORT_TIMEOUT_MS).await;
    };
    restart_matrix(first, |broker, clock, producer| async move {
        let described = describe(&broker).await;
        assert_eq!(described.transaction_state.as_str(), "Ongoing");
        assert_eq!(described.transaction_start_time_ms, producer.start_ms);
        for (topic, partition) in PARTITIONS {
            let read = read_committed(&broker, topic, partition).await;
            assert_eq!((read.lso, read.hw), (0, RECORDS), "{topic}-{partition}");
            assert_eq!(read.visible, Vec::<String>::new());
        }
        clock.set_ms(producer.start_ms + i64::from(SHORT_TIMEOUT_MS));
        let owner = broker
            .shard
            .coordinator_shard(broker.shard.transaction_topic(), ID)
            .expect("coordinator");
        let kick = |s: Rc<Shard>| async move { s.txns().host().timers_changed() };
        broker
            .shard
            .router
            .invoke_on(owner, kick)
            .await
            .expect("route");
        assert_completed(&broker, producer, false, producer.epoch + 1).await;
        for (topic, partition) in PARTITIONS {
            let read = read_committed(&broker, topic, partition).await;
            assert_eq!(read.markers, vec![(RECORDS, false)], "{topic}-{partition}");
        }
    });
}
