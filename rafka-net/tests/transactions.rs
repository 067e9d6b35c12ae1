//! The transaction coordinator end to end through the handlers, on a real
//! broker core over 1, 2 and 4 shards: FindCoordinator and InitProducerId
//! for transactional ids, AddPartitionsToTxn / AddOffsetsToTxn / EndTxn /
//! TxnOffsetCommit, DescribeTransactions and ListTransactions, fencing,
//! and every refusal with Kafka's code.

use std::time::{Duration, Instant};

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use rafka_core::config::BrokerConfig;
use rafka_testkit::proto::{group_id, str_bytes, topic_name};
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const UNSTABLE_OFFSET_COMMIT: i16 = 88;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const INVALID_REQUEST: i16 = 42;

const DEADLINE: Duration = Duration::from_secs(20);

fn broker() -> TestBroker {
    let small = |c: &mut BrokerConfig| {
        c.transaction_state_log_num_partitions = 4;
        c.offsets_topic_num_partitions = 4;
    };
    TestBroker::builder().config(small)
}

async fn find_txn_coordinator(broker: &Broker, id: &str) -> i16 {
    let request = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![str_bytes(id)]);
    let response: FindCoordinatorResponse = broker.call(4, &request).await;
    response.coordinators[0].error_code
}

/// InitProducerId v5 (timeout 60 s): (error, producer id, epoch).
async fn init(broker: &Broker, id: &str, expected: Option<(i64, i16)>) -> (i16, i64, i16) {
    let (pid, epoch) = expected.unwrap_or((-1, -1));
    let request = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(str_bytes(id))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch);
    let r: InitProducerIdResponse = broker.call(5, &request).await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// InitProducerId until it stops answering CONCURRENT_TRANSACTIONS.
async fn init_retrying(broker: &Broker, id: &str) -> (i16, i64, i16) {
    let start = Instant::now();
    loop {
        let answer = init(broker, id, None).await;
        if answer.0 != CONCURRENT_TRANSACTIONS || start.elapsed() > DEADLINE {
            return answer;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

/// AddPartitionsToTxn v3: each partition's code, in order.
async fn add_partitions(
    broker: &Broker,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    topics: &[(&str, &[i32])],
) -> Vec<i16> {
    let topics = topics
        .iter()
        .map(|(name, partitions)| {
            AddPartitionsToTxnTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions.to_vec())
        })
        .collect();
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(str_bytes(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let response: AddPartitionsToTxnResponse = broker.call(version, &request).await;
    response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

async fn end_txn(
    broker: &Broker,
    version: i16,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(str_bytes(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let response: EndTxnResponse = broker.call(version, &request).await;
    response.error_code
}

async fn describe(broker: &Broker, id: &str) -> describe_transactions_response::TransactionState {
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(str_bytes(id))]);
    let response: DescribeTransactionsResponse = broker.call(0, &request).await;
    response
        .transaction_states
        .into_iter()
        .next()
        .expect("one state")
}

/// DescribeTransactions until the id is in `state`.
async fn await_state(broker: &Broker, id: &str, state: &str) {
    let start = Instant::now();
    loop {
        let described = describe(broker, id).await;
        if described.transaction_state.as_str() == state {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{id} never reached {state}: {described:?}"
        );
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_transaction_commits_through_prepare_and_complete() {
    broker().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("t", 3, &[]).await;
        assert_eq!(find_txn_coordinator(&broker, "tx").await, NONE);
        let topics = broker.metadata_of(&["__transaction_state"]).await.topics;
        assert_eq!(topics[0].partitions.len(), 4);
        let (code, pid, epoch) = init(&broker, "tx", None).await;
        assert_eq!((code, epoch), (NONE, 0));
        assert!(pid >= 0);
        // A second init of an idle id bumps the epoch of the same id.
        assert_eq!(init(&broker, "tx", None).await, (NONE, pid, 1));
        let producer = (pid, 1);
        let codes = add_partitions(&broker, 3, "tx", producer, &[("t", &[0, 2])]).await;
        assert_eq!(codes, vec![NONE, NONE]);
        let described = describe(&broker, "tx").await;
        assert_eq!(described.error_code, NONE);
        assert_eq!(described.transaction_state.as_str(), "Ongoing");
        assert_eq!(
            (described.producer_id.0, described.producer_epoch),
            (pid, 1)
        );
        assert_eq!(described.transaction_timeout_ms, 60_000);
        assert!(described.transaction_start_time_ms > 0);
        assert_eq!(described.topics.len(), 1);
        assert_eq!(described.topics[0].partitions, vec![0, 2]);
        // Listed while open, with the state filter.
        let list = ListTransactionsRequest::default()
            .with_state_filters(vec![str_bytes("Ongoing"), str_bytes("Bogus")])
            .with_duration_filter(-1);
        let listed: ListTransactionsResponse = broker.call(1, &list).await;
        assert_eq!(listed.unknown_state_filters, vec![str_bytes("Bogus")]);
        let ids: Vec<&str> = listed
            .transaction_states
            .iter()
            .map(|t| t.transactional_id.as_str())
            .collect();
        assert_eq!(ids, vec!["tx"]);
        assert_eq!(end_txn(&broker, 3, "tx", producer, true).await, NONE);
        await_state(&broker, "tx", "CompleteCommit").await;
        // A retried commit is answered; an abort now is not valid.
        assert_eq!(end_txn(&broker, 3, "tx", producer, true).await, NONE);
        assert_eq!(
            end_txn(&broker, 3, "tx", producer, false).await,
            INVALID_TXN_STATE
        );
        assert!(describe(&broker, "tx").await.topics.is_empty());
        // Counted once, on the coordinator's shard: one commit, its two markers.
        let stats = txn_stats(&broker).await;
        assert_eq!(
            (
                stats.committed,
                stats.aborted,
                stats.markers_written,
                stats.open
            ),
            (1, 0, 2, 0)
        );
    });
}

/// The transaction coordinators' counts, summed over the shards.
async fn txn_stats(broker: &Broker) -> rafka_shard::txn::TxnStats {
    let stats = broker
        .shard
        .router
        .invoke_on_all(|s| async move { s.txns().stats() })
        .await;
    let mut sum = rafka_shard::txn::TxnStats::default();
    for s in stats {
        let s = s.expect("shard");
        sum.committed += s.committed;
        sum.aborted += s.aborted;
        sum.timed_out += s.timed_out;
        sum.fenced += s.fenced;
        sum.markers_written += s.markers_written;
        sum.open += s.open;
    }
    sum
}

#[test]
fn a_new_incarnation_fences_the_old_producer_and_aborts_its_transaction() {
    broker().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("t", 2, &[]).await;
        assert_eq!(find_txn_coordinator(&broker, "zombie").await, NONE);
        let (_, pid, epoch) = init(&broker, "zombie", None).await;
        let old = (pid, epoch);
        assert_eq!(
            add_partitions(&broker, 3, "zombie", old, &[("t", &[1])]).await,
            vec![NONE]
        );
        // The new producer waits until the old transaction is aborted,
        // then gets the epoch after the fencing one.
        let (code, new_pid, new_epoch) = init_retrying(&broker, "zombie").await;
        assert_eq!((code, new_pid, new_epoch), (NONE, pid, epoch + 2));
        assert_eq!(
            describe(&broker, "zombie").await.transaction_state.as_str(),
            "Empty"
        );
        let stats = txn_stats(&broker).await;
        assert_eq!((stats.fenced, stats.aborted, stats.committed), (1, 1, 0));
        // The old one is fenced: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH before.
        assert_eq!(
            end_txn(&broker, 3, "zombie", old, true).await,
            PRODUCER_FENCED
        );
        assert_eq!(
            end_txn(&broker, 1, "zombie", old, true).await,
            INVALID_PRODUCER_EPOCH
        );
        let codes = add_partitions(&broker, 3, "zombie", old, &[("t", &[0])]).await;
        assert_eq!(codes, vec![PRODUCER_FENCED]);
        // KIP-360: a stranger's id and epoch is fenced, the current one bumps.
        assert_eq!(
            init(&broker, "zombie", Some((pid + 1000, 0))).await.0,
            PRODUCER_FENCED
        );
        assert_eq!(
            init(&broker, "zombie", Some((pid, new_epoch))).await,
            (NONE, pid, new_epoch + 1)
        );
    });
}

#[test]
fn invalid_requests_get_kafkas_codes() {
    broker().run(|broker| async move {
        broker.create_topic_id("t", 1, &[]).await;
        assert_eq!(find_txn_coordinator(&broker, "e").await, NONE);
        let timeout = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(str_bytes("e"))))
            .with_transaction_timeout_ms(900_001)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let r: InitProducerIdResponse = broker.call(4, &timeout).await;
        assert_eq!(
            (r.error_code, r.producer_id.0),
            (INVALID_TRANSACTION_TIMEOUT, -1)
        );
        let empty = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(str_bytes(""))))
            .with_transaction_timeout_ms(1000);
        let r: InitProducerIdResponse = broker.call(4, &empty).await;
        assert_eq!(r.error_code, INVALID_REQUEST);
        // Nothing known about the id yet.
        let codes = add_partitions(&broker, 3, "e", (1, 0), &[("t", &[0])]).await;
        assert_eq!(codes, vec![INVALID_PRODUCER_ID_MAPPING]);
        assert_eq!(
            describe(&broker, "e").await.error_code,
            TRANSACTIONAL_ID_NOT_FOUND
        );
        let (_, pid, epoch) = init(&broker, "e", None).await;
        // Ending what was never begun.
        assert_eq!(
            end_txn(&broker, 3, "e", (pid, epoch), true).await,
            INVALID_TXN_STATE
        );
        // Another producer id than the id's.
        let codes = add_partitions(&broker, 3, "e", (pid + 1, epoch), &[("t", &[0])]).await;
        assert_eq!(codes, vec![INVALID_PRODUCER_ID_MAPPING]);
        // One unknown partition: all or none.
        let codes = add_partitions(
            &broker,
            3,
            "e",
            (pid, epoch),
            &[("t", &[0, 7]), ("nope", &[0])],
        )
        .await;
        assert_eq!(
            codes,
            vec![
                OPERATION_NOT_ATTEMPTED,
                UNKNOWN_TOPIC_OR_PARTITION,
                UNKNOWN_TOPIC_OR_PARTITION
            ]
        );
        assert_eq!(
            describe(&broker, "e").await.transaction_state.as_str(),
            "Empty"
        );
        // v4 verify_only reports the partition outside the transaction.
        let verify = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes("e")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_verify_only(true)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(topic_name("t"))
                    .with_partitions(vec![0])]),
        ]);
        let r: AddPartitionsToTxnResponse = broker.call(4, &verify).await;
        let code = r.results_by_transaction[0].topic_results[0].results_by_partition[0]
            .partition_error_code;
        assert_eq!(code, INVALID_TXN_STATE);
    });
}

/// TxnOffsetCommit: pending until the commit marker, never after an abort,
/// refused without AddOffsetsToTxn; OffsetFetch with require_stable answers
/// UNSTABLE_OFFSET_COMMIT meanwhile.
#[test]
fn transactional_offsets_show_only_after_commit() {
    broker().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("in", 1, &[]).await;
        broker.ensure_offsets_topic().await;
        assert_eq!(find_txn_coordinator(&broker, "ctp").await, NONE);
        let (_, pid, epoch) = init(&broker, "ctp", None).await;
        let commit = |offset: i64| {
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(str_bytes("ctp")))
                .with_group_id(group_id("g"))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(topic_name("in"))
                    .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)])])
        };
        let code_of = |r: &TxnOffsetCommitResponse| r.topics[0].partitions[0].error_code;
        // Without AddOffsetsToTxn first: refused (KIP-890 part 1).
        let r: TxnOffsetCommitResponse = broker.call(3, &commit(5)).await;
        assert_eq!(code_of(&r), INVALID_TXN_STATE);
        for (offset, commit_it) in [(10, true), (20, false)] {
            let add = AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(str_bytes("ctp")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(group_id("g"));
            let r: AddOffsetsToTxnResponse = broker.call(3, &add).await;
            assert_eq!(r.error_code, NONE);
            let r: TxnOffsetCommitResponse = broker.call(3, &commit(offset)).await;
            assert_eq!(code_of(&r), NONE);
            let stable: OffsetFetchResponse = broker.call(7, &offset_fetch(true)).await;
            assert_eq!(
                stable.topics[0].partitions[0].error_code,
                UNSTABLE_OFFSET_COMMIT
            );
            assert_eq!(
                end_txn(&broker, 3, "ctp", (pid, epoch), commit_it).await,
                NONE
            );
            let state = if commit_it {
                "CompleteCommit"
            } else {
                "CompleteAbort"
            };
            await_state(&broker, "ctp", state).await;
            let fetched: OffsetFetchResponse = broker.call(7, &offset_fetch(true)).await;
            let partition = &fetched.topics[0].partitions[0];
            assert_eq!(
                (partition.error_code, partition.committed_offset),
                (NONE, 10)
            );
        }
    });
}

fn offset_fetch(require_stable: bool) -> OffsetFetchRequest {
    OffsetFetchRequest::default()
        .with_group_id(group_id("g"))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name("in"))
            .with_partition_indexes(vec![0])]))
        .with_require_stable(require_stable)
}

/// A transactional batch of `producer` at `sequence`, one record.
fn txn_batch((pid, epoch): (i64, i16), sequence: i32, value: &str) -> bytes::Bytes {
    let mut builder =
        rafka_proto::record::BatchBuilder::new(rafka_proto::record::Compression::None)
            .producer(pid, epoch, sequence)
            .transactional(true);
    builder.push_record(1_000, Some(b"k"), Some(value.as_bytes()), &[]);
    builder.build().expect("batch")
}

/// Produce v9 acks=all of one batch with `txn_id`: (error code, base offset).
async fn produce_txn(
    broker: &Broker,
    txn_id: &str,
    partition: i32,
    batch: bytes::Bytes,
) -> (i16, i64) {
    let request =
        rafka_testkit::proto::produce_request(-1, vec![("t", vec![(partition, Some(batch))])])
            .with_transactional_id(Some(TransactionalId(str_bytes(txn_id))));
    let response: ProduceResponse = broker.call(9, &request).await;
    let (_, answer) = rafka_testkit::proto::produce_answers(&response).remove(0);
    (answer.error_code, answer.base_offset)
}

/// (producer id, coordinator epoch, open transaction's first offset) of
/// every producer of `t`-`partition`.
async fn producers_of(broker: &Broker, partition: i32) -> Vec<(i64, i32, i64)> {
    let request = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(topic_name("t"))
            .with_partition_indexes(vec![partition]),
    ]);
    let response: DescribeProducersResponse = broker.call(0, &request).await;
    response.topics[0].partitions[0]
        .active_producers
        .iter()
        .map(|p| {
            (
                p.producer_id.0,
                p.coordinator_epoch,
                p.current_txn_start_offset,
            )
        })
        .collect()
}

/// KIP-890 part 1: a transactional batch to a partition outside the open
/// transaction is refused, so no transaction can hang; inside it, the
/// partition shows the open transaction until the marker.
#[test]
fn transactional_produce_needs_the_partition_in_the_transaction() {
    broker().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("t", 2, &[]).await;
        broker
            .produce("t", 0, rafka_testkit::records::value_batch("before"))
            .await;
        assert_eq!(find_txn_coordinator(&broker, "p").await, NONE);
        let (_, pid, epoch) = init(&broker, "p", None).await;
        let producer = (pid, epoch);
        // Not added yet: refused, nothing written.
        let refused = produce_txn(&broker, "p", 0, txn_batch(producer, 0, "x")).await;
        assert_eq!(refused, (INVALID_TXN_STATE, -1));
        assert!(producers_of(&broker, 0).await.is_empty());
        assert_eq!(
            add_partitions(&broker, 3, "p", producer, &[("t", &[0])]).await,
            vec![NONE]
        );
        assert_eq!(
            produce_txn(&broker, "p", 0, txn_batch(producer, 0, "a")).await,
            (NONE, 1)
        );
        assert_eq!(
            produce_txn(&broker, "p", 0, txn_batch(producer, 1, "b")).await,
            (NONE, 2)
        );
        // Partition 1 is still outside the transaction.
        let refused = produce_txn(&broker, "p", 1, txn_batch(producer, 0, "c")).await;
        assert_eq!(refused.0, INVALID_TXN_STATE);
        assert_eq!(producers_of(&broker, 0).await, vec![(pid, -1, 1)]);
        assert_eq!(end_txn(&broker, 3, "p", producer, true).await, NONE);
        await_state(&broker, "p", "CompleteCommit").await;
        // The commit marker ended it: coordinator epoch 0, nothing open.
        assert_eq!(producers_of(&broker, 0).await, vec![(pid, 0, -1)]);
        // The transaction is over: a late batch of it is refused again.
        let late = produce_txn(&broker, "p", 0, txn_batch(producer, 2, "late")).await;
        assert_eq!(late.0, INVALID_TXN_STATE);
        // read_committed sees both records and the marker's offset is the LSO's past.
        let (high_watermark, batches) = broker.fetch_all("t", 0).await;
        assert_eq!(high_watermark, 4);
        let offsets: Vec<i64> = batches.iter().map(|(offset, _)| *offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 3]);
    });
}

/// A transactional id whose coordinator is on another shard than
/// `t`-`partition`: its KIP-890 verification is a round trip between
/// shards, during which other requests run.
async fn id_coordinated_elsewhere(broker: &Broker, partition: i32) -> String {
    let owner = broker.shard.owner_of("t", partition).expect("owner");
    assert_eq!(find_txn_coordinator(broker, "probe").await, NONE);
    let topic = broker.shard.transaction_topic();
    (0..64)
        .map(|i| format!("p{i}"))
        .find(|id| broker.shard.coordinator_shard(topic, id) != Ok(owner))
        .expect("an id coordinated on another shard")
}

/// One producer's pipelined Produce requests to a partition its open
/// transaction has not written yet: the first waits for the KIP-890
/// verification at the coordinator on another shard, and the second must
/// wait behind it, not be judged against the sequence before the first
/// (OUT_OF_ORDER_SEQUENCE_NUMBER for the batch right after one the client
/// saw acknowledged is fatal for the Java producer). Again in the next
/// transaction, whose sequences continue after the marker.
#[test]
fn pipelined_produces_keep_their_order_across_the_verification() {
    broker().run_matrix(&[2, 4], |broker| async move {
        broker.create_topic_id("t", 1, &[]).await;
        let id = id_coordinated_elsewhere(&broker, 0).await;
        let (_, pid, epoch) = init(&broker, &id, None).await;
        let producer = (pid, epoch);
        let mut offsets = Vec::new();
        for (transaction, first_sequence) in [(0, 0), (1, 2)] {
            let added = add_partitions(&broker, 3, &id, producer, &[("t", &[0])]).await;
            assert_eq!(added, vec![NONE], "transaction {transaction}");
            let (first, second) = futures_util::future::join(
                produce_txn(&broker, &id, 0, txn_batch(producer, first_sequence, "a")),
                produce_txn(
                    &broker,
                    &id,
                    0,
                    txn_batch(producer, first_sequence + 1, "b"),
                ),
            )
            .await;
            assert_eq!(
                (first.0, second.0),
                (NONE, NONE),
                "transaction {transaction}"
            );
            offsets.extend([first.1, second.1]);
            assert_eq!(end_txn(&broker, 3, &id, producer, true).await, NONE);
            await_state(&broker, &id, "CompleteCommit").await;
        }
        // Two records, the marker, two records.
        assert_eq!(offsets, vec![0, 1, 3, 4]);
    });
}
