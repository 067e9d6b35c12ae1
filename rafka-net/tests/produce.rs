//! Produce end to end without sockets: requests encoded with kafka-protocol
//! go through the broker's dispatch on a real shard core (1, 2 and 4 shards),
//! responses are decoded and checked field by field, and what reached the
//! log is read back.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use rafka_net::handlers::HandlerError;
use rafka_net::Response;
use rafka_proto::record::write_crc;
use rafka_testkit::broker;
use rafka_testkit::proto::{produce_answers, produce_request, produce_request_by_id};
use rafka_testkit::records::{batch, idempotent_batch};
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const CORRUPT_MESSAGE: i16 = 2;
const REQUEST_TIMED_OUT: i16 = 7;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_TIMESTAMP: i16 = 32;
const INVALID_RECORD: i16 = 87;
const UNKNOWN_TOPIC_ID: i16 = 100;

/// Byte offsets in a v2 batch header.
const LAST_OFFSET_DELTA_AT: usize = 23;
const MAGIC_AT: usize = 16;

fn answers(response: &kafka_protocol::messages::ProduceResponse) -> Vec<(String, i32, i16, i64)> {
    produce_answers(response)
        .into_iter()
        .map(|(topic, p)| (topic, p.index, p.error_code, p.base_offset))
        .collect()
}

async fn produce_on(
    broker: &Broker,
    on: usize,
    request: &ProduceRequest,
) -> Vec<(String, i32, i16, i64)> {
    answers(&broker.call_on(on, 9, request).await)
}

#[test]
fn acks_all_answers_offsets_and_stores_the_batches_on_one_and_two_shards() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("orders", 4, &[]).await;
        let sent: Vec<Bytes> = (0..4)
            .map(|p| batch(&[(&format!("a{p}"), 1_000), (&format!("b{p}"), 1_001)]))
            .collect();
        let request = produce_request(
            -1,
            vec![(
                "orders",
                (0..4)
                    .map(|p| (p, Some(sent[p as usize].clone())))
                    .collect(),
            )],
        );
        let response = broker.call_on(0, 9, &request).await;
        assert_eq!(response.throttle_time_ms, 0);
        for (topic, p) in produce_answers(&response) {
            assert_eq!(topic, "orders");
            assert_eq!((p.error_code, p.base_offset), (0, 0), "{p:?}");
            assert_eq!((p.log_append_time_ms, p.log_start_offset), (-1, 0));
            assert!(p.record_errors.is_empty() && p.error_message.is_none());
        }
        // The same request again, read by the last shard: offsets go on.
        let again = produce_on(&broker, broker.serving_shard(), &request).await;
        let expected: Vec<_> = (0..4).map(|p| ("orders".to_string(), p, 0, 2)).collect();
        assert_eq!(again, expected);
        for p in 0..4 {
            let (high_watermark, stored) = broker.fetch_all("orders", p).await;
            assert_eq!(high_watermark, 4);
            assert_eq!(stored.iter().map(|b| b.0).collect::<Vec<_>>(), vec![0, 2]);
            // Only baseOffset and the leader epoch (before the magic
            // byte, outside the CRC) are rewritten.
            assert_eq!(stored[1].1[MAGIC_AT..], sent[p as usize][MAGIC_AT..]);
        }
    });
}

#[test]
fn acks_zero_appends_without_an_answer() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("quiet", 2, &[]).await;
        let sent = batch(&[("x", 5), ("y", 6)]);
        let request = produce_request(0, vec![("quiet", vec![(1, Some(sent.clone()))])]);
        let response = broker.serve_on(0, broker::request(9, &request)).await;
        assert!(matches!(response, Response::NoReply), "{response:?}");
        // The next acknowledged batch lands after it.
        assert_eq!(broker.produce_one("quiet", 1, batch(&[("z", 7)])).await, 2);
        let (high_watermark, stored) = broker.fetch_all("quiet", 1).await;
        assert_eq!(high_watermark, 3);
        assert_eq!(stored[0].0, 0);
        assert_eq!(stored[0].1[MAGIC_AT..], sent[MAGIC_AT..]);
    });
}

#[test]
fn acks_zero_failure_closes_the_connection() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("known", 1, &[]).await;
        let request = produce_request(
            0,
            vec![
                ("known", vec![(0, Some(batch(&[("a", 1)])))]),
                ("missing", vec![(0, Some(batch(&[("b", 1)])))]),
            ],
        );
        let response = broker.serve_on(0, broker::request(9, &request)).await;
        match response {
            Response::Close(HandlerError::UnacknowledgedProduceFailed {
                failed_partitions,
                error_code,
            }) => assert_eq!(
                (failed_partitions, error_code.code()),
                (1, UNKNOWN_TOPIC_OR_PARTITION)
            ),
            other => panic!("expected the connection to close, got {other:?}"),
        }
        // The good partition was still written.
        assert_eq!(broker.produce_one("known", 0, batch(&[("c", 1)])).await, 1);
    });
}

#[test]
fn invalid_acks_rejects_every_partition_and_appends_nothing() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("acks", 2, &[]).await;
        let request = produce_request(
            2,
            vec![(
                "acks",
                vec![(0, Some(batch(&[("a", 1)]))), (1, Some(batch(&[("b", 1)])))],
            )],
        );
        let expected = vec![
            ("acks".to_string(), 0, INVALID_REQUIRED_ACKS, -1),
            ("acks".to_string(), 1, INVALID_REQUIRED_ACKS, -1),
        ];
        assert_eq!(produce_on(&broker, 0, &request).await, expected);
        assert_eq!(broker.produce_one("acks", 0, batch(&[("c", 1)])).await, 0);
        assert_eq!(broker.produce_one("acks", 1, batch(&[("d", 1)])).await, 0);
    });
}

#[test]
fn unknown_topics_and_partitions() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("two", 2, &[]).await;
        let records = Some(batch(&[("a", 1)]));
        let request = produce_request(
            -1,
            vec![
                ("nope", vec![(0, records.clone())]),
                (
                    "two",
                    vec![(2, records.clone()), (-1, records.clone()), (1, records)],
                ),
            ],
        );
        let expected = vec![
            ("nope".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION, -1),
            ("two".to_string(), 2, UNKNOWN_TOPIC_OR_PARTITION, -1),
            ("two".to_string(), -1, UNKNOWN_TOPIC_OR_PARTITION, -1),
            ("two".to_string(), 1, 0, 0),
        ];
        assert_eq!(
            produce_on(&broker, broker.serving_shard(), &request).await,
            expected
        );
    });
}

#[test]
fn a_corrupt_batch_is_refused_alone() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("crc", 2, &[]).await;
        let mut damaged = BytesMut::from(&batch(&[("payload", 1)])[..]);
        let last = damaged.len() - 1;
        damaged[last] ^= 0x01;
        let request = produce_request(
            -1,
            vec![(
                "crc",
                vec![(0, Some(damaged.freeze())), (1, Some(batch(&[("ok", 1)])))],
            )],
        );
        let expected = vec![
            ("crc".to_string(), 0, CORRUPT_MESSAGE, -1),
            ("crc".to_string(), 1, 0, 0),
        ];
        assert_eq!(produce_on(&broker, 0, &request).await, expected);
        let (high_watermark, stored) = broker.fetch_all("crc", 0).await;
        assert_eq!((high_watermark, stored.len()), (0, 0));
        assert_eq!(broker.produce_one("crc", 0, batch(&[("next", 1)])).await, 0);
    });
}

#[test]
fn last_offset_delta_mismatch_is_an_invalid_record() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("delta", 1, &[]).await;
        let mut bad = BytesMut::from(&batch(&[("a", 1), ("b", 1)])[..]);
        bad[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4].copy_from_slice(&5i32.to_be_bytes());
        write_crc(&mut bad);
        let bad = bad.freeze();
        let request = produce_request(-1, vec![("delta", vec![(0, Some(bad))])]);
        let (_, p) = produce_answers(&broker.call_on(0, 9, &request).await).remove(0);
        assert_eq!((p.error_code, p.base_offset), (INVALID_RECORD, -1));
        let message = p.error_message.expect("v9 carries the message").to_string();
        assert!(message.contains("lastOffsetDelta 5"), "{message}");
        // v7 has no message field; the code is the same.
        let (_, p) = produce_answers(&broker.call_on(0, 7, &request).await).remove(0);
        assert_eq!((p.error_code, p.error_message), (INVALID_RECORD, None));
        let (high_watermark, _) = broker.fetch_all("delta", 0).await;
        assert_eq!(high_watermark, 0);
    });
}

#[test]
fn an_idempotent_retry_gets_the_original_offset() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker.create_topic_id("idem", 2, &[]).await;
        let pid = broker.allocate_producer_id().await;
        let first = idempotent_batch(pid, 0, &["a", "b"]);
        assert_eq!(broker.produce_one("idem", 1, first.clone()).await, 0);
        assert_eq!(
            broker
                .produce_one("idem", 1, idempotent_batch(pid, 2, &["c"]))
                .await,
            2
        );
        assert_eq!(broker.produce_one("idem", 1, first).await, 0);
        let (high_watermark, stored) = broker.fetch_all("idem", 1).await;
        assert_eq!((high_watermark, stored.len()), (3, 2));
    });
}

#[test]
fn v13_names_topics_by_id() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        let id = broker.create_topic_id("by-id", 2, &[]).await;
        let unknown = uuid::Uuid::from_u128(0x1234);
        let records = Some(batch(&[("a", 1)]));
        let request = produce_request_by_id(
            -1,
            vec![
                (id, vec![(1, records.clone()), (0, records.clone())]),
                (unknown, vec![(0, records)]),
            ],
        );
        let response = broker.call(13, &request).await;
        assert_eq!(response.responses.len(), 2);
        assert_eq!(response.responses[0].topic_id, id);
        assert_eq!(response.responses[0].name.as_str(), "");
        let known: Vec<_> = response.responses[0]
            .partition_responses
            .iter()
            .map(|p| (p.index, p.error_code, p.base_offset, p.log_start_offset))
            .collect();
        assert_eq!(known, vec![(1, 0, 0, 0), (0, 0, 0, 0)]);
        assert_eq!(response.responses[1].topic_id, unknown);
        let p = &response.responses[1].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (UNKNOWN_TOPIC_ID, -1));
        let (high_watermark, _) = broker.fetch_all("by-id", 1).await;
        assert_eq!(high_watermark, 1);
    });
}

/// With the shard's flush held back for a minute, an acks=all produce whose
/// timeout is 1 ms cannot see its data durable in time.
#[test]
fn acks_all_times_out_when_the_flush_does_not_come_in_time() {
    fn slow_flush(config: &mut rafka_core::config::BrokerConfig) {
        config.flush_interval_ms = 60_000;
    }
    TestBroker::builder()
        .config(slow_flush)
        .run_matrix(&SHARD_MATRIX, |broker| async move {
            broker.create_topic_id("slow", 1, &[]).await;
            let mut request =
                produce_request(-1, vec![("slow", vec![(0, Some(batch(&[("a", 1)])))])]);
            request.timeout_ms = 1;
            let expected = vec![("slow".to_string(), 0, REQUEST_TIMED_OUT, -1)];
            assert_eq!(produce_on(&broker, 0, &request).await, expected);
            // The append itself happened: acks=1 does not wait and goes on.
            let mut request =
                produce_request(1, vec![("slow", vec![(0, Some(batch(&[("b", 1)])))])]);
            request.timeout_ms = 1;
            let expected = vec![("slow".to_string(), 0, 0, 1)];
            assert_eq!(produce_on(&broker, 0, &request).await, expected);
        });
}

#[test]
fn record_validation_follows_kafkas_codes() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker
            .create_topic_id("checks", 1, &[("max.message.bytes", "200")])
            .await;
        let good = batch(&[("a", 1)]);
        let mut two = BytesMut::from(&good[..]);
        two.extend_from_slice(&good);
        let mut old_magic = BytesMut::from(&good[..]);
        old_magic[MAGIC_AT] = 1;
        let mut moved = BytesMut::from(&good[..]);
        moved[..8].copy_from_slice(&5i64.to_be_bytes());
        let big = batch(&[(&"v".repeat(300), 1)]);
        let cases: Vec<(&str, Option<Bytes>, i16)> = vec![
            ("null records", None, INVALID_RECORD),
            ("empty records", Some(Bytes::new()), INVALID_RECORD),
            ("two batches", Some(two.freeze()), INVALID_RECORD),
            ("magic 1", Some(old_magic.freeze()), INVALID_RECORD),
            ("baseOffset 5", Some(moved.freeze()), INVALID_RECORD),
            ("over max.message.bytes", Some(big), MESSAGE_TOO_LARGE),
            (
                "truncated",
                Some(good.slice(..good.len() - 1)),
                CORRUPT_MESSAGE,
            ),
            (
                "shorter than a length",
                Some(good.slice(..10)),
                CORRUPT_MESSAGE,
            ),
        ];
        for (case, records, error_code) in cases {
            let request = produce_request(-1, vec![("checks", vec![(0, records)])]);
            let answer = produce_on(&broker, 0, &request).await;
            assert_eq!(
                answer,
                vec![("checks".to_string(), 0, error_code, -1)],
                "{case}"
            );
        }
        assert_eq!(broker.produce_one("checks", 0, good).await, 0);
    });
}

#[test]
fn timestamps_out_of_range_name_each_record() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker
            .create_topic_id("clock", 1, &[("message.timestamp.after.max.ms", "60000")])
            .await;
        let now_ms = broker.shard.clock().now_ms();
        let future_ms = now_ms + 3_600_000;
        let records = batch(&[
            ("ok", now_ms),
            ("late", future_ms),
            ("ok", now_ms),
            ("late", future_ms),
        ]);
        let request = produce_request(-1, vec![("clock", vec![(0, Some(records))])]);
        let (_, p) = produce_answers(&broker.call_on(0, 9, &request).await).remove(0);
        assert_eq!((p.error_code, p.base_offset), (INVALID_TIMESTAMP, -1));
        let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, vec![1, 3]);
        assert!(p.error_message.is_some());
        // A timestamp in the past is fine: before.max.ms is unlimited.
        assert_eq!(
            broker.produce_one("clock", 0, batch(&[("old", 1)])).await,
            0
        );
    });
}

#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker
            .create_topic_id("table", 1, &[("cleanup.policy", "compact")])
            .await;
        let mut builder =
            rafka_proto::record::BatchBuilder::new(rafka_proto::record::Compression::None);
        builder.push(Some(b"k"), Some(b"v"));
        builder.push(None, Some(b"keyless"));
        let records = builder.build().expect("batch");
        let request = produce_request(-1, vec![("table", vec![(0, Some(records))])]);
        let (_, p) = produce_answers(&broker.call_on(0, 9, &request).await).remove(0);
        assert_eq!(p.error_code, INVALID_RECORD);
        let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
        assert_eq!(indexes, vec![1]);
        assert_eq!(
            broker.produce_one("table", 0, batch(&[("keyed", 1)])).await,
            0
        );
    });
}

#[test]
fn a_log_append_time_topic_reports_the_append_time() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        broker
            .create_topic_id("stamped", 1, &[("message.timestamp.type", "LogAppendTime")])
            .await;
        let before_ms = broker.shard.clock().now_ms();
        let request = produce_request(-1, vec![("stamped", vec![(0, Some(batch(&[("a", 1)])))])]);
        let (_, p) = produce_answers(&broker.call_on(0, 9, &request).await).remove(0);
        let after_ms = broker.shard.clock().now_ms();
        assert_eq!(p.error_code, 0);
        assert!(
            (before_ms..=after_ms).contains(&p.log_append_time_ms),
            "{} not in {before_ms}..={after_ms}",
            p.log_append_time_ms
        );
    });
}

#[test]
fn an_undecodable_body_closes_the_connection() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        let request =
            broker::raw_request(ApiKey::Produce, 9, Bytes::from_static(&[0x00, 0xff, 0xff]));
        let response = broker.serve_on(0, request).await;
        assert!(
            matches!(response, Response::Close(HandlerError::Decode(_))),
            "{response:?}"
        );
    });
}

#[test]
fn every_version_answers_successes_and_failures() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, |broker| async move {
        let id = broker.create_topic_id("versions", 2, &[]).await;
        for (next_offset, version) in (0i64..).zip(3..=13) {
            let partitions_sent = vec![(1, Some(batch(&[("a", 1)]))), (0, None)];
            let request = if version >= 13 {
                produce_request_by_id(-1, vec![(id, partitions_sent)])
            } else {
                produce_request(-1, vec![("versions", partitions_sent)])
            };
            let response = broker.call_on(0, version, &request).await;
            let topic = &response.responses[0];
            let ok = &topic.partition_responses[0];
            let log_start_offset = if version >= 5 { 0 } else { -1 };
            assert_eq!(
                (ok.index, ok.error_code, ok.base_offset, ok.log_start_offset),
                (1, 0, next_offset, log_start_offset),
                "v{version}"
            );
            let failed = &topic.partition_responses[1];
            assert_eq!(
                (failed.index, failed.error_code),
                (0, INVALID_RECORD),
                "v{version}"
            );
            assert_eq!(failed.error_message.is_some(), version >= 8, "v{version}");
        }
    });
}
