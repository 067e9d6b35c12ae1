//! Zero-copy Fetch: the chunked encoder against kafka-protocol's, and a real
//! in-process broker (2 shards, sockets) answering raw-socket fetches whose
//! records must equal the segment files on disk byte for byte.

mod zero_copy_support;

use std::fs::File;
use std::io::Write;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData, SnapshotId,
};
use kafka_protocol::messages::{BrokerId, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rafka_net::fetch_encode::{encode_fetch_response, PartitionRecords};
use rafka_net::zero_copy::Chunk;
use rafka_proto::api::encode_response;
use rafka_proto::header::ResponseHeaderVersion;
use rafka_shard::storage::FileRegion;
use uuid::Uuid;

use zero_copy_support::*;

/// xorshift64*: a seeded generator, so a failure names the seed to replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn bytes(&mut self, len: usize) -> Bytes {
        (0..len)
            .map(|_| self.next() as u8)
            .collect::<Vec<u8>>()
            .into()
    }
    fn string(&mut self, max: u64) -> StrBytes {
        let len = self.below(max + 1) as usize;
        let text: String = (0..len)
            .map(|_| (b'a' + self.below(26) as u8) as char)
            .collect();
        StrBytes::from_string(text)
    }
}

fn unknown_tags(rng: &mut Rng, first_tag: i32) -> std::collections::BTreeMap<i32, Bytes> {
    let mut tags = std::collections::BTreeMap::new();
    for _ in 0..rng.below(3) {
        let tag = first_tag + rng.below(200) as i32;
        let len = rng.below(20) as usize;
        tags.insert(tag, rng.bytes(len));
    }
    tags
}

fn random_partition(rng: &mut Rng, version: i16) -> PartitionData {
    let mut data = PartitionData::default()
        .with_partition_index(rng.below(1000) as i32)
        .with_error_code(rng.below(120) as i16)
        .with_high_watermark(rng.next() as i64 >> 1)
        .with_last_stable_offset(rng.next() as i64 >> 1)
        .with_log_start_offset(rng.below(1 << 40) as i64);
    if rng.chance() {
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
    if rng.chance() {
        data.diverging_epoch = EpochEndOffset::default()
            .with_epoch(rng.below(100) as i32)
            .with_end_offset(rng.below(1 << 20) as i64);
    }
    if rng.chance() {
        data.current_leader = LeaderIdAndEpoch::default()
            .with_leader_id(BrokerId(rng.below(10) as i32))
            .with_leader_epoch(rng.below(100) as i32);
    }
    if rng.chance() {
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
            Some(rng.bytes(len))
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
                .with_topic(TopicName(rng.string(30)))
                .with_topic_id(Uuid::from_u64_pair(rng.next(), rng.next()))
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
    if rng.chance() {
        response.node_endpoints = (0..rng.below(3) + 1)
            .map(|_| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(rng.below(10) as i32))
                    .with_host(rng.string(20))
                    .with_port(rng.below(65536) as i32)
                    .with_rack(rng.chance().then(|| rng.string(8)))
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
        if rng.chance() {
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
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
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

#[test]
fn records_equal_the_segment_files_in_every_version() {
    with_net_broker(true, |ctx, addr| async move {
        create_topic(&ctx, "zc", 1, &[("segment.bytes", "1048576")]).await;
        produce_varied(&ctx, "zc", 0, 2_600_000).await;
        let dir = ctx.shard.config.log_dirs[0].join("zc-0");
        let id = ctx.shard.image().topic("zc").expect("topic").id;
        blocking(move || {
            let segments = segment_files(&dir);
            assert!(segments.len() >= 3, "{} segments", segments.len());
            let log = concat_segments(&segments);
            let mut client = Client::connect(addr);
            for version in [4, 11, 12, 13, 16, 17, 18] {
                let request = fetch_one("zc", id, version, 0, 64 << 20, 64 << 20);
                let response = client.fetch(version, &request);
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
fn check_boundaries(client: &mut Client, id: Uuid, segments: &[Bytes]) {
    let batches = batches_of(&concat_segments(segments));
    let (b0, b1, b2) = (&batches[0], &batches[1], &batches[2]);
    let mid_third = (b0.bytes.len() + b1.bytes.len() + b2.bytes.len() / 2) as i32;
    for version in [4, 12, 13, 18] {
        let request = fetch_one("zc", id, version, 0, mid_third, 64 << 20);
        let data = only_partition(&client.fetch(version, &request)).clone();
        let expected = concat(&[&b0.bytes, &b1.bytes]);
        assert_eq!(
            data.records,
            Some(expected),
            "v{version} mid-batch max_bytes"
        );
        let request = fetch_one("zc", id, version, 0, 1, 64 << 20);
        let data = only_partition(&client.fetch(version, &request)).clone();
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
    let data = only_partition(&client.fetch(13, &request)).clone();
    let expected = concat(&[&last_of_first.bytes, &first_of_second.bytes]);
    assert_eq!(data.records, Some(expected), "spanning two segments");
}

#[test]
fn many_partitions_on_both_shards_in_one_response() {
    with_net_broker(true, |ctx, addr| async move {
        create_topic(&ctx, "wide", 8, &[]).await;
        for partition in 0..8 {
            produce_varied(&ctx, "wide", partition, 20_000 + partition as usize * 5_000).await;
        }
        let owners: Vec<usize> = (0..8)
            .map(|p| ctx.shard.owner_of("wide", p).expect("owner"))
            .collect();
        assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
        let root = ctx.shard.config.log_dirs[0].clone();
        let id = ctx.shard.image().topic("wide").expect("topic").id;
        blocking(move || {
            let mut client = Client::connect(addr);
            for version in [4, 12, 13, 18] {
                let response = client.fetch(version, &fetch_all("wide", id, version, 8));
                let answered: Vec<&PartitionData> = response
                    .responses
                    .iter()
                    .flat_map(|topic| topic.partitions.iter())
                    .collect();
                assert_eq!(answered.len(), 8, "v{version}");
                for data in answered {
                    let dir = root.join(format!("wide-{}", data.partition_index));
                    let log = concat_segments(&segment_files(&dir));
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
    with_net_broker(true, |ctx, addr| async move {
        create_topic(&ctx, "big", 1, &[]).await;
        produce_varied(&ctx, "big", 0, 10 << 20).await;
        let dir = ctx.shard.config.log_dirs[0].join("big-0");
        let id = ctx.shard.image().topic("big").expect("topic").id;
        blocking(move || {
            let log = concat_segments(&segment_files(&dir));
            assert!(log.len() > 8 << 20, "{} bytes", log.len());
            let mut slow = Client::connect_small_window(addr);
            let request = fetch_one("big", id, 13, 0, 64 << 20, 64 << 20);
            slow.send_fetch(13, &request);
            // The response has started: its size is known and far larger
            // than every socket buffer between the two ends.
            let size = slow.read_size();
            assert!(size > log.len(), "{size} bytes");
            let mut other = Client::connect(addr);
            assert_eq!(other.api_versions_error(), 0);
            let response = slow.read_fetch_body(13, size);
            assert_eq!(only_partition(&response).records.as_ref(), Some(&log));
        })
        .await;
    });
}

#[test]
fn the_in_memory_path_sends_the_same_bytes() {
    with_net_broker(false, |ctx, addr| async move {
        create_topic(&ctx, "tls", 1, &[("segment.bytes", "1048576")]).await;
        produce_varied(&ctx, "tls", 0, 1_500_000).await;
        let dir = ctx.shard.config.log_dirs[0].join("tls-0");
        let id = ctx.shard.image().topic("tls").expect("topic").id;
        blocking(move || {
            let log = concat_segments(&segment_files(&dir));
            let mut client = Client::connect(addr);
            for version in [4, 18] {
                let request = fetch_one("tls", id, version, 0, 64 << 20, 64 << 20);
                let response = client.fetch(version, &request);
                assert_eq!(only_partition(&response).records.as_ref(), Some(&log));
            }
        })
        .await;
    });
}

fn concat(parts: &[&Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    for part in parts {
        out.extend_from_slice(part);
    }
    out.freeze()
}
