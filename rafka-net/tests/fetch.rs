//! Fetch end to end without sockets: a real broker core (1, 2 and 4
//! shards on a temp dir), records produced through the shard API, Fetch
//! requests encoded with kafka-protocol and answered by the handler on
//! shard 0, responses decoded and checked value by value.

use std::time::Duration;

use bytes::Bytes;
use futures_lite::future::poll_once;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_testkit::records::{concat, stored, value_batch as batch};
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};
use uuid::Uuid;

/// Upper bound on a scenario; reached only when the code under test hangs.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A long poll this long outlives [`TEST_TIMEOUT`]: only a wakeup by the
/// produce can finish it in time.
const LONG_POLL_MS: i32 = 120_000;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const UNKNOWN_TOPIC_ID: i16 = 100;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// Runs `scenario` over each of `shard_counts`, bounded by [`TEST_TIMEOUT`].
fn with_brokers<F, Fut>(shard_counts: &[usize], scenario: F)
where
    F: FnOnce(Broker) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let broker = TestBroker::builder().timeout(TEST_TIMEOUT);
    broker.run_matrix(shard_counts, scenario);
}

/// Produces `records` (acks=all) and returns what the log now holds for
/// them.
async fn produce(broker: &Broker, topic: &str, partition: i32, records: Bytes) -> Bytes {
    let base_offset = broker.produce(topic, partition, records.clone()).await;
    stored(&records, base_offset)
}

fn part(partition: i32, fetch_offset: i64, partition_max_bytes: i32) -> FetchPartition {
    FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(fetch_offset)
        .with_partition_max_bytes(partition_max_bytes)
}

fn named(name: &str, partitions: Vec<FetchPartition>) -> FetchTopic {
    FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_string(name.to_string())))
        .with_partitions(partitions)
}

fn by_id(id: Uuid, partitions: Vec<FetchPartition>) -> FetchTopic {
    FetchTopic::default()
        .with_topic_id(id)
        .with_partitions(partitions)
}

/// A sessionless request that answers at once with up to 1 MiB.
fn request(topics: Vec<FetchTopic>) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_topics(topics)
}

/// Has the Fetch handler of shard 0 answer `body` as a `version` request.
async fn call(broker: &Broker, version: i16, body: &FetchRequest) -> FetchResponse {
    broker.call_on(0, version, body).await
}

/// The response's partitions in order, with their topic's name or id.
fn partitions(response: &FetchResponse) -> Vec<(String, &PartitionData)> {
    response
        .responses
        .iter()
        .flat_map(|topic| {
            let name = if topic.topic.0.is_empty() {
                topic.topic_id.to_string()
            } else {
                topic.topic.0.to_string()
            };
            topic.partitions.iter().map(move |p| (name.clone(), p))
        })
        .collect()
}

fn records(data: &PartitionData) -> Bytes {
    data.records.clone().unwrap_or_default()
}

#[test]
fn records_come_back_byte_for_byte_in_every_version() {
    with_brokers(&SHARD_MATRIX, |broker| async move {
        let id = broker.create_topic_id("orders", 2, &[]).await;
        let first = produce(&broker, "orders", 1, batch("first")).await;
        let second = produce(&broker, "orders", 1, batch("second")).await;
        for version in [4, 5, 7, 11, 12, 13, 15, 17, 18] {
            let topic = if version >= 13 {
                by_id(id, vec![part(1, 0, 1 << 20)])
            } else {
                named("orders", vec![part(1, 0, 1 << 20)])
            };
            let response = call(&broker, version, &request(vec![topic])).await;
            assert_eq!(response.error_code, 0, "v{version}");
            assert_eq!(response.session_id, 0, "v{version}");
            let answered = partitions(&response);
            assert_eq!(answered.len(), 1, "v{version}");
            let (name, data) = &answered[0];
            let expected_name = if version >= 13 {
                id.to_string()
            } else {
                "orders".into()
            };
            assert_eq!(name, &expected_name, "v{version}");
            assert_eq!(data.partition_index, 1);
            assert_eq!(data.error_code, 0);
            assert_eq!(data.high_watermark, 2);
            assert_eq!(data.last_stable_offset, 2);
            assert_eq!(data.log_start_offset, if version >= 5 { 0 } else { -1 });
            assert_eq!(
                data.aborted_transactions, None,
                "read_uncommitted sends null"
            );
            assert_eq!(records(data), concat(&[&first, &second]), "v{version}");
        }
        // From offset 1: the second batch only; read_committed up to the
        // last stable offset, with an empty aborted list.
        let committed =
            request(vec![named("orders", vec![part(1, 1, 1 << 20)])]).with_isolation_level(1);
        let response = call(&broker, 12, &committed).await;
        let answered = partitions(&response);
        assert_eq!(records(answered[0].1), second);
        assert_eq!(answered[0].1.last_stable_offset, 2);
        assert_eq!(answered[0].1.aborted_transactions, Some(vec![]));
    });
}

#[test]
fn partition_max_bytes_below_a_batch_returns_exactly_one_batch() {
    with_brokers(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("big", 1, &[]).await;
        let b0 = produce(&broker, "big", 0, batch("zero")).await;
        let b1 = produce(&broker, "big", 0, batch("one")).await;
        let b2 = produce(&broker, "big", 0, batch("two")).await;
        let tiny = request(vec![named("big", vec![part(0, 0, 10)])]);
        let response = call(&broker, 12, &tiny).await;
        assert_eq!(records(partitions(&response)[0].1), b0);
        // Two batches' worth, one byte short of the third.
        let two = i32::try_from(b0.len() + b1.len() + b2.len() - 1).expect("small");
        let response = call(
            &broker,
            12,
            &request(vec![named("big", vec![part(0, 0, two)])]),
        )
        .await;
        assert_eq!(records(partitions(&response)[0].1), concat(&[&b0, &b1]));
        // max_bytes is the same kind of limit over the whole response.
        let limited = request(vec![named("big", vec![part(0, 0, 1 << 20)])]).with_max_bytes(two);
        let response = call(&broker, 12, &limited).await;
        assert_eq!(records(partitions(&response)[0].1), concat(&[&b0, &b1]));
    });
}

#[test]
fn max_bytes_spans_partitions_on_both_shards_in_request_order() {
    with_brokers(&[2, 4], |broker| async move {
        broker.create_topic_id("spread", 3, &[]).await;
        let owners: Vec<usize> = (0..3)
            .map(|p| broker.shard.owner_of("spread", p).expect("owner"))
            .collect();
        assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
        let mut stored_batches = Vec::new();
        for p in 0..3 {
            let a = produce(&broker, "spread", p, batch(&format!("p{p}-a"))).await;
            let b = produce(&broker, "spread", p, batch(&format!("p{p}-b"))).await;
            stored_batches.push((a, b));
        }
        let (p2a, p2b) = stored_batches[2].clone();
        let (p0a, _) = stored_batches[0].clone();
        // Request order 2, 0, 1; room for p2's two batches and one of p0's.
        let max_bytes = i32::try_from(p2a.len() + p2b.len() + p0a.len()).expect("small");
        let all = vec![
            part(2, 0, 1 << 20),
            part(0, 0, 1 << 20),
            part(1, 0, 1 << 20),
        ];
        let body = request(vec![named("spread", all.clone())]).with_max_bytes(max_bytes);
        let response = call(&broker, 12, &body).await;
        let answered = partitions(&response);
        let order: Vec<i32> = answered.iter().map(|(_, d)| d.partition_index).collect();
        assert_eq!(order, vec![2, 0, 1]);
        assert_eq!(response.responses.len(), 1, "one topic entry");
        assert_eq!(records(answered[0].1), concat(&[&p2a, &p2b]));
        assert_eq!(records(answered[1].1), p0a);
        assert_eq!(records(answered[2].1), Bytes::new());
        assert_eq!(answered[2].1.high_watermark, 2, "watermarks still reported");
        // max_bytes of 1: the first batch of the first partition only.
        let body = request(vec![named("spread", all)]).with_max_bytes(1);
        let response = call(&broker, 12, &body).await;
        let sizes: Vec<usize> = partitions(&response)
            .iter()
            .map(|(_, d)| records(d).len())
            .collect();
        assert_eq!(sizes, vec![p2a.len(), 0, 0]);
    });
}

#[test]
fn out_of_range_offsets_and_unknown_topics() {
    with_brokers(&SHARD_MATRIX, |broker| async move {
        let id = broker.create_topic_id("bounds", 1, &[]).await;
        produce(&broker, "bounds", 0, batch("a")).await;
        produce(&broker, "bounds", 0, batch("b")).await;
        let body = request(vec![
            named(
                "bounds",
                vec![part(0, 5, 1024), part(0, -1, 1024), part(0, 2, 1024)],
            ),
            named("bounds", vec![part(9, 0, 1024)]),
            named("missing", vec![part(0, 0, 1024)]),
        ]);
        let response = call(&broker, 12, &body).await;
        let answered: Vec<(String, i32, i16, i64, i64, usize)> = partitions(&response)
            .into_iter()
            .map(|(name, d)| {
                let size = records(d).len();
                (
                    name,
                    d.partition_index,
                    d.error_code,
                    d.high_watermark,
                    d.log_start_offset,
                    size,
                )
            })
            .collect();
        let expected = vec![
            ("bounds".to_string(), 0, OFFSET_OUT_OF_RANGE, 2, 0, 0),
            ("bounds".to_string(), 0, OFFSET_OUT_OF_RANGE, 2, 0, 0),
            ("bounds".to_string(), 0, 0, 2, 0, 0),
            (
                "bounds".to_string(),
                9,
                UNKNOWN_TOPIC_OR_PARTITION,
                -1,
                -1,
                0,
            ),
            (
                "missing".to_string(),
                0,
                UNKNOWN_TOPIC_OR_PARTITION,
                -1,
                -1,
                0,
            ),
        ];
        assert_eq!(answered, expected);
        // v13+: unknown topic id.
        let unknown = Uuid::from_u128(0xfeed);
        let body = request(vec![
            by_id(unknown, vec![part(0, 0, 1024)]),
            by_id(id, vec![part(0, 0, 1024)]),
        ]);
        let response = call(&broker, 13, &body).await;
        let answered = partitions(&response);
        assert_eq!(answered[0].0, unknown.to_string());
        assert_eq!(answered[0].1.error_code, UNKNOWN_TOPIC_ID);
        assert_eq!(answered[1].0, id.to_string());
        assert_eq!(answered[1].1.error_code, 0);
        assert_eq!(answered[1].1.high_watermark, 2);
    });
}

#[test]
fn the_clients_leader_epoch_is_checked_from_v9() {
    with_brokers(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("epochs", 1, &[]).await;
        produce(&broker, "epochs", 0, batch("a")).await;
        let at = |epoch: i32| part(0, 0, 1024).with_current_leader_epoch(epoch);
        let body = request(vec![named("epochs", vec![at(-1), at(0), at(1), at(-5)])]);
        let response = call(&broker, 12, &body).await;
        let answered: Vec<(i16, usize)> = partitions(&response)
            .into_iter()
            .map(|(_, d)| (d.error_code, records(d).len()))
            .collect();
        let one = answered[0].1;
        assert!(one > 0);
        // -1 skips the check; epoch 0 is the partition's; a newer one was
        // not applied here, an older one is fenced.
        assert_eq!(
            answered,
            vec![
                (0, one),
                (0, one),
                (UNKNOWN_LEADER_EPOCH, 0),
                (FENCED_LEADER_EPOCH, 0)
            ]
        );
        // v8 has no epoch: every mention reads.
        let response = call(&broker, 8, &body).await;
        let codes: Vec<i16> = partitions(&response)
            .into_iter()
            .map(|(_, d)| d.error_code)
            .collect();
        assert_eq!(codes, vec![0, 0, 0, 0]);
    });
}

#[test]
fn long_poll_wakes_on_produce_on_either_shard() {
    with_brokers(&[2, 4], |broker| async move {
        broker.create_topic_id("wait", 2, &[]).await;
        let owners: Vec<usize> = (0..2)
            .map(|p| broker.shard.owner_of("wait", p).expect("owner"))
            .collect();
        assert_eq!(owners.iter().sum::<usize>(), 1, "one partition per shard");
        for partition in [0, 1] {
            // Both partitions past their data: the first round has none.
            let p0_offset = i64::from(partition > 0);
            let both = vec![part(0, p0_offset, 1 << 20), part(1, 0, 1 << 20)];
            let body = request(vec![named("wait", both)])
                .with_min_bytes(1)
                .with_max_wait_ms(LONG_POLL_MS);
            let mut pending = Box::pin(call(&broker, 12, &body));
            // The fetch reads first (its job reaches the owner before the
            // produce's), finds nothing and waits.
            assert!(
                poll_once(&mut pending).await.is_none(),
                "answered before data"
            );
            let written = produce(&broker, "wait", partition, batch("wake")).await;
            let response = pending.await;
            let answered = partitions(&response);
            let shard = owners[partition as usize];
            let woken = answered[partition as usize].1;
            assert_eq!(woken.partition_index, partition);
            assert_eq!(records(woken), written, "partition on shard {shard}");
            assert_eq!(woken.high_watermark, 1);
            assert_eq!(records(answered[1 - partition as usize].1), Bytes::new());
        }
    });
}

/// min_bytes over two owners: the first owner's data wakes the fetch but
/// is too little; the wait goes on with that owner's fresh read kept, and
/// the second owner's data completes the answer with both.
#[test]
fn long_poll_adds_up_min_bytes_across_owners() {
    with_brokers(&[2, 4], |broker| async move {
        broker.create_topic_id("sum", 2, &[]).await;
        let owners: Vec<usize> = (0..2)
            .map(|p| broker.shard.owner_of("sum", p).expect("owner"))
            .collect();
        assert_ne!(owners[0], owners[1], "one partition per shard");
        let one = batch("first");
        let min_bytes = i32::try_from(one.len() * 2 - 1).expect("small");
        let both = vec![part(0, 0, 1 << 20), part(1, 0, 1 << 20)];
        let body = request(vec![named("sum", both)])
            .with_min_bytes(min_bytes)
            .with_max_wait_ms(LONG_POLL_MS);
        let mut pending = Box::pin(call(&broker, 12, &body));
        assert!(
            poll_once(&mut pending).await.is_none(),
            "answered before data"
        );
        let first = produce(&broker, "sum", 0, batch("first")).await;
        assert_eq!(first.len(), one.len());
        // One batch is below min_bytes: still waiting.
        for _ in 0..4 {
            assert!(
                poll_once(&mut pending).await.is_none(),
                "answered below min_bytes"
            );
            futures_lite::future::yield_now().await;
        }
        let second = produce(&broker, "sum", 1, batch("other")).await;
        let response = pending.await;
        let answered = partitions(&response);
        assert_eq!(records(answered[0].1), first);
        assert_eq!(records(answered[1].1), second);
        assert_eq!(
            (answered[0].1.high_watermark, answered[1].1.high_watermark),
            (1, 1)
        );
    });
}

#[test]
fn long_poll_without_data_answers_empty_after_max_wait() {
    with_brokers(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("quiet", 2, &[]).await;
        let body = request(vec![named(
            "quiet",
            vec![part(0, 0, 1024), part(1, 0, 1024)],
        )])
        .with_min_bytes(1)
        .with_max_wait_ms(100);
        let response = call(&broker, 12, &body).await;
        let answered = partitions(&response);
        assert_eq!(answered.len(), 2);
        for (_, data) in answered {
            assert_eq!(data.error_code, 0);
            assert_eq!(data.high_watermark, 0);
            assert_eq!(records(data), Bytes::new());
        }
    });
}

#[test]
fn the_broker_bounds_how_long_a_fetch_waits() {
    let broker = TestBroker::builder()
        .timeout(TEST_TIMEOUT)
        .config(|c| c.fetch_max_wait_ms = 1);
    broker.run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("bounded", 2, &[]).await;
        // ~24.8 days for 2 GiB that will never come: only the broker's
        // bound can answer it.
        let body = request(vec![named(
            "bounded",
            vec![part(0, 0, 1024), part(1, 0, 1024)],
        )])
        .with_min_bytes(i32::MAX)
        .with_max_wait_ms(i32::MAX);
        let response = call(&broker, 12, &body).await;
        assert_eq!(response.error_code, 0);
        let answered = partitions(&response);
        assert_eq!(answered.len(), 2);
        for (index, (name, data)) in answered.into_iter().enumerate() {
            assert_eq!(name, "bounded");
            assert_eq!(data.partition_index, index as i32);
            assert_eq!(data.error_code, 0);
            assert_eq!(data.high_watermark, 0);
            assert_eq!(records(data), Bytes::new());
        }
    });
}

fn session(id: i32, epoch: i32, topics: Vec<FetchTopic>) -> FetchRequest {
    request(topics)
        .with_session_id(id)
        .with_session_epoch(epoch)
}

#[test]
fn fetch_sessions_answer_only_what_changed() {
    with_brokers(&[2, 4], |broker| async move {
        let id = broker.create_topic_id("sess", 2, &[]).await;
        let b0 = produce(&broker, "sess", 0, batch("p0")).await;
        // Full fetch creating a session: both partitions answered.
        let full = session(
            0,
            0,
            vec![by_id(id, vec![part(0, 0, 1024), part(1, 0, 1024)])],
        );
        let response = call(&broker, 13, &full).await;
        let session_id = response.session_id;
        assert!(session_id > 0);
        assert_eq!(session_id % 2, 0, "shard 0 of 2 owns the even ids");
        let answered = partitions(&response);
        assert_eq!(answered.len(), 2);
        assert_eq!(records(answered[0].1), b0);
        // Epoch 1: p0 moves to offset 1; nothing new anywhere.
        let moved = session(session_id, 1, vec![by_id(id, vec![part(0, 1, 1024)])]);
        let response = call(&broker, 13, &moved).await;
        assert_eq!((response.error_code, response.session_id), (0, session_id));
        assert!(response.responses.is_empty(), "{:?}", response.responses);
        // Epoch 2: p1 gets data; only p1 is answered.
        let b1 = produce(&broker, "sess", 1, batch("p1")).await;
        let response = call(&broker, 13, &session(session_id, 2, vec![])).await;
        let answered = partitions(&response);
        assert_eq!(answered.len(), 1);
        assert_eq!(answered[0].1.partition_index, 1);
        assert_eq!(records(answered[0].1), b1);
        // Wrong epoch (3 expected) and unknown id.
        let response = call(&broker, 13, &session(session_id, 5, vec![])).await;
        assert_eq!(
            (response.error_code, response.session_id),
            (INVALID_FETCH_SESSION_EPOCH, 0)
        );
        assert!(response.responses.is_empty());
        let response = call(&broker, 13, &session(session_id + 2, 1, vec![])).await;
        assert_eq!(response.error_code, FETCH_SESSION_ID_NOT_FOUND);
        // Epoch 3: forget p1, then new data on p1 stays unanswered.
        let forget = session(session_id, 3, vec![by_id(id, vec![part(1, 1, 1024)])])
            .with_forgotten_topics_data(vec![ForgottenTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![1])]);
        let response = call(&broker, 13, &forget).await;
        assert!(response.responses.is_empty());
        produce(&broker, "sess", 1, batch("p1-again")).await;
        let response = call(&broker, 13, &session(session_id, 4, vec![])).await;
        assert!(response.responses.is_empty());
        // Epoch -1 closes the session (answered sessionless).
        let response = call(&broker, 13, &session(session_id, -1, vec![])).await;
        assert_eq!((response.error_code, response.session_id), (0, 0));
        let response = call(&broker, 13, &session(session_id, 5, vec![])).await;
        assert_eq!(response.error_code, FETCH_SESSION_ID_NOT_FOUND);
    });
}
