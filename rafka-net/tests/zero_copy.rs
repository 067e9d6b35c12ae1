//! Zero-copy Fetch: the chunked encoder against kafka-protocol's, and a real
//! in-process broker (1, 2 and 4 shards, a loopback listener) answering
//! raw-socket fetches whose records must equal the segment files on disk
//! byte for byte.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData, SnapshotId,
};
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FetchRequest, FetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rafka_net::fetch_encode::{encode_fetch_response, PartitionRecords};
use rafka_net::zero_copy::Chunk;
use rafka_proto::api::encode_response;
use rafka_proto::header::ResponseHeaderVersion;
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_shard::storage::FileRegion;
use rafka_testkit::broker::blocking;
use rafka_testkit::records::{batches_of, concat, segment_files};
use rafka_testkit::rng::{seeds, Rng};
use rafka_testkit::wire::decode_response;
use rafka_testkit::{Broker, TestBroker, WireClient, SHARD_MATRIX};
use uuid::Uuid;

/// Upper bound on a scenario; reached only when the code under test hangs.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn string(rng: &mut Rng, max: u64) -> StrBytes {
    let len = rng.below(max + 1) as usize;
    StrBytes::from_string(rng.lowercase(len))
}

fn random_bytes(rng: &mut Rng, len: usize) -> Bytes {
    Bytes::from(rng.bytes(len))
}

fn unknown_tags(rng: &mut Rng, first_tag: i32) -> std::collections::BTreeMap<i32, Bytes> {
    let mut tags = std::collections::BTreeMap::new();
    for _ in 0..rng.below(3) {
        let tag = first_tag + rng.below(200) as i32;
        let len = rng.below(20) as usize;
        tags.insert(tag, random_bytes(rng, len));
    }
    tags
}

fn random_partition(rng: &mut Rng, version: i16) -> PartitionData {
    let mut data = PartitionData::default()
        .with_partition_index(rng.below(1000) as i32)
        .with_error_code(rng.below(120) as i16)
        .with_high_watermark(rng.next_u64() as i64 >> 1)
        .with_last_stable_offset(rng.next_u64() as i64 >> 1)
        .with_log_start_offset(rng.below(1 << 40) as i64);
    if rng.coin() {
        let aborted = (0..rng.below(4))
            .map(|_| {
                AbortedTransaction::default()
                    .with_producer_id((rng.below(1 << 30) as i64).into())
                    .with_first_offset(rng.below(1 << 40) as i64)
            })
            .collect();
        data.aborted_transactions = Some(aborted);
    }
    if version >= 11 {
        data.preferred_read_replica = BrokerId(rng.below(5) as i32 - 1);
    }
    if rng.coin() {
        data.diverging_epoch = EpochEndOffset::default()
            .with_epoch(rng.below(100) as i32)
            .with_end_offset(rng.below(1 << 20) as i64);
    }
    if rng.coin() {
        data.current_leader = LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(rng.below(10) as i32))
            .with_leader_epoch(rng.below(100) as i32);
    }
    if rng.coin() {
        data.snapshot_id = SnapshotId::default()
            .with_end_offset(rng.below(1 << 20) as i64)
            .with_epoch(rng.below(100) as i32);
    }
    data.unknown_tagged_fields = unknown_tags(rng, 3);
    data.records = match rng.below(4) {
        0 => None,
        1 => Some(Bytes::new()),
        _ => {
            let len = rng.below(3000) as usize;
            Some(random_bytes(rng, len))
        }
    };
    data
}

fn random_response(rng: &mut Rng, version: i16) -> FetchResponse {
    let topics = (0..rng.below(4))
        .map(|_| {
            let partitions = (0..rng.below(4))
                .map(|_| random_partition(rng, version))
                .collect();
            FetchableTopicResponse::default()
                .with_topic(TopicName(string(rng, 30)))
                .with_topic_id(Uuid::from_u64_pair(rng.next_u64(), rng.next_u64()))
                .with_partitions(partitions)
                .with_unknown_tagged_fields(unknown_tags(rng, 0))
        })
        .collect();
    let mut response = FetchResponse::default()
        .with_throttle_time_ms(rng.below(1000) as i32)
        .with_responses(topics)
        .with_unknown_tagged_fields(unknown_tags(rng, 1));
    if version >= 7 {
        response.error_code = rng.below(100) as i16;
        response.session_id = rng.below(1 << 31) as i32;
    }
    if rng.coin() {
        response.node_endpoints = (0..rng.below(3) + 1)
            .map(|_| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(rng.below(10) as i32))
                    .with_host(string(rng, 20))
                    .with_port(rng.below(65536) as i32)
                    .with_rack(rng.coin().then(|| string(rng, 8)))
            })
            .collect();
    }
    response
}

/// Splits `records` into up to three chunks, alternating memory and file
/// regions written to `file` at its end.
fn as_chunks(rng: &mut Rng, records: &Bytes, file: &Arc<File>, file_len: &mut u64) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut rest = records.clone();
    while !rest.is_empty() {
        let take = if chunks.len() == 2 {
            rest.len()
        } else {
            1 + rng.below(rest.len() as u64) as usize
        };
        let piece = rest.split_to(take);
        if rng.coin() {
            (&**file).write_all(&piece).expect("write");
            chunks.push(Chunk::File(FileRegion::new(
                Arc::clone(file),
                *file_len,
                piece.len() as u64,
            )));
            *file_len += piece.len() as u64;
        } else {
            chunks.push(Chunk::Bytes(piece));
        }
    }
    chunks
}

#[test]
fn chunked_encoder_matches_kafka_protocol_in_every_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = Arc::new(File::create_new(dir.path().join("regions")).expect("file"));
    let mut file_len = 0u64;
    // A reader of the same file: regions are read through their own handle.
    let reader = Arc::new(File::open(dir.path().join("regions")).expect("open"));
    for seed in seeds(1..=40) {
        let mut rng = Rng::new(seed);
        for version in 4..=18i16 {
            let response = random_response(&mut rng, version);
            let header_version = if version >= 12 {
                ResponseHeaderVersion::V1
            } else {
                ResponseHeaderVersion::V0
            };
            let expected =
                encode_response(42, header_version, &response, version).expect("kafka-protocol");
            let mut records: Vec<PartitionRecords> = Vec::new();
            for topic in &response.responses {
                for partition in &topic.partitions {
                    records.push(partition.records.as_ref().map(|bytes| {
                        let chunks = as_chunks(&mut rng, bytes, &file, &mut file_len);
                        reopen(chunks, &reader)
                    }));
                }
            }
            let reply = encode_fetch_response(42, header_version, &response, records, version)
                .expect("ours");
            let ours = reply.materialize().expect("materialize");
            assert_eq!(reply.size_bytes(), ours.len() as u64);
            assert_eq!(ours, expected, "seed {seed} v{version}");
        }
    }
}

/// The same chunks with regions read through `reader`.
fn reopen(chunks: Vec<Chunk>, reader: &Arc<File>) -> Vec<Chunk> {
    chunks
        .into_iter()
        .map(|chunk| match chunk {
            Chunk::File(region) => Chunk::File(FileRegion::new(
                Arc::clone(reader),
                region.position,
                region.len,
            )),
            bytes => bytes,
        })
        .collect()
}

/// Runs `scenario` over each of `shard_counts` on a broker serving a
/// loopback listener, `sendfile` on or off.
fn with_net_brokers<F, Fut>(shard_counts: &[usize], zero_copy: bool, scenario: F)
where
    F: FnOnce(Broker) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let broker = TestBroker::builder()
        .network(true)
        .zero_copy(zero_copy)
        .timeout(TEST_TIMEOUT);
    broker.run_matrix(shard_counts, scenario);
}

/// Produces (acks=all) batches of varied sizes and codecs until the
/// partition holds at least `total_bytes`.
async fn produce_varied(broker: &Broker, topic: &str, partition: i32, total_bytes: usize) {
    let codecs = [
        Compression::None,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
        Compression::Gzip,
    ];
    let mut rng = Rng::new(0x1234_5678_9abc_def1 ^ partition as u64);
    let mut produced_bytes = 0usize;
    let mut round = 0usize;
    while produced_bytes < total_bytes {
        let mut builder = BatchBuilder::new(codecs[round % codecs.len()]);
        // 1 to 200 records of 16 B to ~1 KiB, half of them incompressible.
        let records = 1 + (round * 37) % 200;
        for record in 0..records {
            let len = 16 + (round * 131 + record * 17) % 1000;
            let value: Vec<u8> = if round.is_multiple_of(2) {
                rng.bytes(len)
            } else {
                format!("{round}-{record}-")
                    .repeat(len / 8 + 1)
                    .into_bytes()
            };
            builder.push(Some(format!("k{record}").as_bytes()), Some(&value));
        }
        let batch = builder.build().expect("batch");
        produced_bytes += batch.len();
        broker.produce(topic, partition, batch).await;
        round += 1;
    }
}

/// A sessionless fetch of partition 0 of `topic`, named as `version` does.
fn fetch_one(
    topic: &str,
    id: Uuid,
    version: i16,
    offset: i64,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(partition_max_bytes);
    fetch_request(topic, id, version, vec![partition], max_bytes)
}

/// Every partition of `topic` from offset 0, 64 MiB each.
fn fetch_all(topic: &str, id: Uuid, version: i16, partitions: i32) -> FetchRequest {
    let partitions = (0..partitions)
        .map(|p| {
            FetchPartition::default()
                .with_partition(p)
                .with_partition_max_bytes(64 << 20)
        })
        .collect();
    fetch_request(topic, id, version, partitions, 64 << 20)
}

fn fetch_request(
    topic: &str,
    id: Uuid,
    version: i16,
    partitions: Vec<FetchPartition>,
    max_bytes: i32,
) -> FetchRequest {
    let topic = if version >= 13 {
        FetchTopic::default().with_topic_id(id)
    } else {
        FetchTopic::default().with_topic(TopicName(StrBytes::from_string(topic.to_string())))
    };
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_topics(vec![topic.with_partitions(partitions)])
}

fn only_partition(response: &FetchResponse) -> &PartitionData {
    assert_eq!(response.error_code, 0);
    assert_eq!(response.responses.len(), 1);
    assert_eq!(response.responses[0].partitions.len(), 1);
    &response.responses[0].partitions[0]
}

fn connect(addr: SocketAddr) -> WireClient {
    WireClient::connect(addr, "zero-copy-test").expect("connect")
}

fn fetch(client: &mut WireClient, version: i16, request: &FetchRequest) -> FetchResponse {
    client.call(version, request).expect("fetch")
}

#[test]
fn records_equal_the_segment_files_in_every_version() {
    with_net_brokers(&SHARD_MATRIX, true, |broker| async move {
        let id = broker
            .create_topic_id("zc", 1, &[("segment.bytes", "1048576")])
            .await;
        produce_varied(&broker, "zc", 0, 2_600_000).await;
        let dir = broker.partition_dir("zc", 0);
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            let segments = segment_files(&dir);
            assert!(segments.len() >= 3, "{} segments", segments.len());
            let log = concat(&segments);
            for version in [4, 11, 12, 13, 16, 17, 18] {
                let request = fetch_one("zc", id, version, 0, 64 << 20, 64 << 20);
                let response = fetch(&mut client, version, &request);
                let data = only_partition(&response);
                assert_eq!(data.error_code, 0, "v{version}");
                assert_eq!(data.records.as_ref(), Some(&log), "v{version}");
            }
            check_boundaries(&mut client, id, &segments);
        })
        .await;
    });
}

/// KIP-74 at the edges: a limit ending mid-batch, one below the first
/// batch, and a read spanning two segments.
fn check_boundaries(client: &mut WireClient, id: Uuid, segments: &[Bytes]) {
    let batches = batches_of(&concat(segments));
    let (b0, b1, b2) = (&batches[0], &batches[1], &batches[2]);
    let mid_third = (b0.bytes.len() + b1.bytes.len() + b2.bytes.len() / 2) as i32;
    for version in [4, 12, 13, 18] {
        let request = fetch_one("zc", id, version, 0, mid_third, 64 << 20);
        let data = only_partition(&fetch(client, version, &request)).clone();
        let expected = concat(&[&b0.bytes, &b1.bytes]);
        assert_eq!(
            data.records,
            Some(expected),
            "v{version} mid-batch max_bytes"
        );
        let request = fetch_one("zc", id, version, 0, 1, 64 << 20);
        let data = only_partition(&fetch(client, version, &request)).clone();
        assert_eq!(
            data.records.as_ref(),
            Some(&b0.bytes),
            "v{version} first batch"
        );
    }
    // The last batch of the first segment and the first of the second.
    let last_of_first = batches_of(&segments[0]).pop().expect("batches");
    let first_of_second = batches_of(&segments[1]).remove(0);
    let both = (last_of_first.bytes.len() + first_of_second.bytes.len()) as i32;
    let request = fetch_one("zc", id, 13, last_of_first.base_offset, both, both);
    let data = only_partition(&fetch(client, 13, &request)).clone();
    let expected = concat(&[&last_of_first.bytes, &first_of_second.bytes]);
    assert_eq!(data.records, Some(expected), "spanning two segments");
}

/// Partitions owned by several shards: the owners include shards 0 and 1,
/// so this runs on 2 and 4 shards.
#[test]
fn many_partitions_on_both_shards_in_one_response() {
    with_net_brokers(&[2, 4], true, |broker| async move {
        let id = broker.create_topic_id("wide", 8, &[]).await;
        for partition in 0..8 {
            produce_varied(
                &broker,
                "wide",
                partition,
                20_000 + partition as usize * 5_000,
            )
            .await;
        }
        let owners: Vec<usize> = (0..8)
            .map(|p| broker.shard.owner_of("wide", p).expect("owner"))
            .collect();
        assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
        let dirs: Vec<_> = (0..8).map(|p| broker.partition_dir("wide", p)).collect();
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            for version in [4, 12, 13, 18] {
                let response = fetch(&mut client, version, &fetch_all("wide", id, version, 8));
                let answered: Vec<&PartitionData> = response
                    .responses
                    .iter()
                    .flat_map(|topic| topic.partitions.iter())
                    .collect();
                assert_eq!(answered.len(), 8, "v{version}");
                for data in answered {
                    let dir = &dirs[data.partition_index as usize];
                    let log = concat(&segment_files(dir));
                    assert_eq!(
                        data.records.as_ref(),
                        Some(&log),
                        "v{version} p{}",
                        data.partition_index
                    );
                }
            }
        })
        .await;
    });
}

#[test]
fn a_slow_reader_does_not_stall_the_shard() {
    with_net_brokers(&SHARD_MATRIX, true, |broker| async move {
        let id = broker.create_topic_id("big", 1, &[]).await;
        produce_varied(&broker, "big", 0, 10 << 20).await;
        let dir = broker.partition_dir("big", 0);
        let addr = broker.addr();
        blocking(move || {
            let log = concat(&segment_files(&dir));
            assert!(log.len() > 8 << 20, "{} bytes", log.len());
            // Its receive buffer stays at 16 KiB, so the broker's send
            // buffer fills up long before the response is read.
            let mut slow = connect(addr);
            slow.set_receive_buffer_bytes(16 << 10).expect("SO_RCVBUF");
            let request = fetch_one("big", id, 13, 0, 64 << 20, 64 << 20);
            let correlation_id = slow.send(13, &request).expect("send");
            // The response has started: its size is known and far larger
            // than every socket buffer between the two ends.
            let size = slow.read_frame_size().expect("size");
            assert!(size > log.len(), "{size} bytes");
            let mut other = connect(addr);
            let versions = other
                .call(0, &ApiVersionsRequest::default())
                .expect("api versions");
            assert!(!versions.api_keys.is_empty());
            assert_eq!(versions.error_code, 0);
            let body = slow.read_frame_body(size).expect("body");
            let response =
                decode_response::<FetchRequest>(13, correlation_id, body).expect("fetch response");
            assert_eq!(only_partition(&response).records.as_ref(), Some(&log));
        })
        .await;
    });
}

#[test]
fn the_in_memory_path_sends_the_same_bytes() {
    with_net_brokers(&SHARD_MATRIX, false, |broker| async move {
        let id = broker
            .create_topic_id("tls", 1, &[("segment.bytes", "1048576")])
            .await;
        produce_varied(&broker, "tls", 0, 1_500_000).await;
        let dir = broker.partition_dir("tls", 0);
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            let log = concat(&segment_files(&dir));
            for version in [4, 18] {
                let request = fetch_one("tls", id, version, 0, 64 << 20, 64 << 20);
                let response = fetch(&mut client, version, &request);
                assert_eq!(only_partition(&response).records.as_ref(), Some(&log));
            }
        })
        .await;
    });
}
