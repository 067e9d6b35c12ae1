//! librdkafka against the real broker: keyed records with headers over six
//! partitions consumed back byte-exact with 1, 2 and 4 shards, the same for
//! every compression codec, and a topic's `compression.type` overriding the
//! producer's codec.

mod support;

use rafka_testkit::BrokerProcess;
use support::client::{self, Record};
use support::rafka;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 6;

/// Produces `per_partition` records to each of six partitions with acks=all
/// on a broker with `cores` shards, then checks offsets, watermarks and the
/// bytes read back.
fn roundtrip_six_partitions(cores: u32, per_partition: u32) {
    let broker = BrokerProcess::start(rafka(cores));
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    let expected = client::records(PARTITIONS, per_partition, client::now_ms());
    let producer = client::producer(&bootstrap, &[("enable.idempotence", "false")]);
    let offsets = client::produce(&producer, TOPIC, &expected);
    client::assert_offsets_in_send_order(TOPIC, &offsets);
    for partition in 0..PARTITIONS {
        assert_eq!(
            client::watermarks(&bootstrap, TOPIC, partition),
            (0, i64::from(per_partition)),
            "{TOPIC}/{partition} watermarks"
        );
    }
    client::assert_topic(&bootstrap, TOPIC, &expected);
}

/// 100,002 records (6 x 16,667), as the issue asks: about 3 s each in a
/// debug build.
const PER_PARTITION: u32 = 16_667;

#[test]
fn hundred_thousand_records_one_shard() {
    roundtrip_six_partitions(1, PER_PARTITION);
}

#[test]
fn hundred_thousand_records_two_shards() {
    roundtrip_six_partitions(2, PER_PARTITION);
}

#[test]
fn hundred_thousand_records_four_shards() {
    roundtrip_six_partitions(4, PER_PARTITION);
}

/// librdkafka's idempotent producer (InitProducerId, sequence numbers,
/// up to 5 requests in flight per partition) keeps order and exactness.
#[test]
fn idempotent_producer_six_partitions_two_shards() {
    let broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    let expected = client::records(PARTITIONS, 1_000, client::now_ms());
    let producer = client::producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
    );
    let offsets = client::produce(&producer, TOPIC, &expected);
    client::assert_offsets_in_send_order(TOPIC, &offsets);
    client::assert_topic(&bootstrap, TOPIC, &expected);
}

/// Kafka's codec ids in the low three bits of a batch's attributes.
fn codec_id(codec: &str) -> u8 {
    match codec {
        "none" => 0,
        "gzip" => 1,
        "snappy" => 2,
        "lz4" => 3,
        "zstd" => 4,
        other => panic!("unknown codec {other}"),
    }
}

/// The attributes of the first batch of a partition's first segment: the
/// log holds batches as they came off the wire, so the producer's codec
/// shows there.
fn first_batch_codec(broker: &BrokerProcess, topic: &str, partition: i32) -> u8 {
    let segment = broker
        .partition_dir(topic, partition)
        .join(format!("{:020}.log", 0));
    let bytes = std::fs::read(&segment)
        .unwrap_or_else(|error| panic!("read {}: {error}", segment.display()));
    // base offset (8) + length (4) + leader epoch (4) + magic (1) + crc (4),
    // then attributes (2, big endian).
    assert!(
        bytes.len() > 61,
        "{} holds no full batch",
        segment.display()
    );
    assert_eq!(bytes[16], 2, "record batch magic");
    bytes[22] & 0x07
}

fn roundtrip_codec(codec: &str) {
    let broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    let topic = format!("codec-{codec}");
    client::create_topic(&bootstrap, &topic, 2);
    let expected: Vec<Vec<Record>> = client::records(2, 1_000, client::now_ms());
    let producer = client::producer(
        &bootstrap,
        &[("compression.type", codec), ("linger.ms", "20")],
    );
    let offsets = client::produce(&producer, &topic, &expected);
    client::assert_offsets_in_send_order(&topic, &offsets);
    client::assert_topic(&bootstrap, &topic, &expected);
    for partition in 0..2 {
        assert_eq!(
            first_batch_codec(&broker, &topic, partition),
            codec_id(codec),
            "{topic}/{partition}: codec of the stored batch"
        );
    }
}

#[test]
fn codec_none() {
    roundtrip_codec("none");
}

#[test]
fn codec_gzip() {
    roundtrip_codec("gzip");
}

#[test]
fn codec_snappy() {
    roundtrip_codec("snappy");
}

#[test]
fn codec_lz4() {
    roundtrip_codec("lz4");
}

#[test]
fn codec_zstd() {
    roundtrip_codec("zstd");
}

/// A gzip topic fed by an lz4 producer: the broker stores gzip (Kafka's
/// LogValidator recompresses) and consumers read exactly what was sent.
#[test]
fn topic_compression_type_overrides_the_producer_codec() {
    let broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    let topic = "recompressed";
    client::create_topic_with(&bootstrap, topic, 2, &[("compression.type", "gzip")]);
    let expected: Vec<Vec<Record>> = client::records(2, 1_000, client::now_ms());
    let producer = client::producer(
        &bootstrap,
        &[("compression.type", "lz4"), ("linger.ms", "20")],
    );
    let offsets = client::produce(&producer, topic, &expected);
    client::assert_offsets_in_send_order(topic, &offsets);
    for partition in 0..2 {
        assert_eq!(
            client::watermarks(&bootstrap, topic, partition),
            (0, 1_000),
            "{topic}/{partition} watermarks"
        );
        assert_eq!(
            first_batch_codec(&broker, topic, partition),
            codec_id("gzip"),
            "{topic}/{partition}: codec of the stored batch"
        );
    }
    client::assert_topic(&bootstrap, topic, &expected);
}
