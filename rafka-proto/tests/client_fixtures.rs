//! Record batches captured from real Kafka clients (librdkafka, kcat, the
//! Java client, kafka-python, kafkajs) in every codec they send: each must
//! parse, validate and decode to exactly the records the client was given.
//! How the files were captured: tests/fixtures/README.md.

use std::path::PathBuf;

use bytes::Bytes;
use rafka_proto::record::{
    compute_crc, validate, validate_for_append, AppendOrigin, Batches, Compression, Header, Record,
    RecordBatch, RecordLimits, TimestampType, MAGIC_V2,
};

/// Every client sent these ten records (scripts/compat/capture/).
const RECORD_COUNT: usize = 10;
/// The producer id the capture tool hands out from InitProducerId.
const CAPTURE_PRODUCER_ID: i64 = 4242;

const CLIENTS: [&str; 5] = ["librdkafka", "kcat", "java", "kafka-python", "kafkajs"];

/// The codecs captured for a client (kafkajs has no zstd codec installed).
fn codecs_of(client: &str) -> &'static [&'static str] {
    match client {
        "kafkajs" => &["none", "gzip", "snappy", "lz4"],
        _ => &["none", "gzip", "snappy", "lz4", "zstd"],
    }
}

fn codec_named(name: &str) -> Compression {
    match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => panic!("unknown codec {other:?} in a fixture name"),
    }
}

struct Fixture {
    /// `<client>-<codec>`, the file stem.
    name: String,
    client: String,
    codec: Compression,
    bytes: Bytes,
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every `*.records` file of the fixtures directory, sorted by name.
fn fixtures() -> Vec<Fixture> {
    let mut fixtures: Vec<Fixture> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures dir is readable")
        .map(|entry| entry.expect("fixtures dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "records"))
        .map(|path| {
            let name = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .expect("fixture names are UTF-8")
                .to_owned();
            let (client, codec) = name.rsplit_once('-').expect("name is <client>-<codec>");
            Fixture {
                client: client.to_owned(),
                codec: codec_named(codec),
                bytes: Bytes::from(std::fs::read(&path).expect("fixture is readable")),
                name,
            }
        })
        .collect();
    fixtures.sort_by(|a, b| a.name.cmp(&b.name));
    fixtures
}

fn batches_of(fixture: &Fixture) -> Vec<RecordBatch> {
    Batches::new(fixture.bytes.clone())
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|error| panic!("{}: {error}", fixture.name))
}

fn records_of(fixture: &Fixture, batch: &RecordBatch) -> Vec<Record> {
    batch
        .records(RecordLimits::default())
        .and_then(|records| records.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|error| panic!("{}: {error}", fixture.name))
}

fn expected_record(index: usize) -> (Bytes, Bytes, Vec<Header>) {
    let key = Bytes::from(format!("key-{index}"));
    let value = Bytes::from(format!("value-{index}-{}", "x".repeat(200)));
    let headers = vec![Header {
        key: Bytes::from_static(b"idx"),
        value: Some(Bytes::from(index.to_string())),
    }];
    (key, value, headers)
}

#[test]
fn fixture_dir_holds_every_client_and_codec() {
    let names: Vec<String> = fixtures().into_iter().map(|fixture| fixture.name).collect();
    let expected: Vec<String> = CLIENTS
        .iter()
        .flat_map(|client| {
            codecs_of(client)
                .iter()
                .map(move |codec| format!("{client}-{codec}"))
        })
        .collect();
    assert_eq!(expected.len(), 24);
    for name in &expected {
        assert!(names.contains(name), "missing fixture {name}.records");
    }
    assert_eq!(
        names.len(),
        expected.len(),
        "unexpected fixtures: {names:?}"
    );
}

#[test]
fn every_batch_is_v2_with_the_codec_of_its_file_and_a_valid_crc() {
    for fixture in fixtures() {
        for batch in batches_of(&fixture) {
            let bytes = batch.as_bytes();
            let header = batch.header();
            let name = &fixture.name;
            assert_eq!(bytes[16], 2, "{name}: magic byte");
            assert_eq!(header.magic, MAGIC_V2, "{name}");
            // Attributes are bytes 21-22, big-endian; the codec is bits 0-2.
            assert_eq!(bytes[22] & 0x07, fixture.codec as u8, "{name}: codec bits");
            assert_eq!(header.compression(), Ok(fixture.codec), "{name}");
            assert_eq!(compute_crc(bytes), header.crc, "{name}: CRC32C");
            assert_eq!(validate(bytes), Ok(*header), "{name}");
            assert_eq!(header.timestamp_type(), TimestampType::CreateTime, "{name}");
            assert!(!header.is_transactional() && !header.is_control(), "{name}");
            // Clients leave the offset to the broker.
            assert_eq!(header.base_offset, 0, "{name}");
        }
    }
}

#[test]
fn every_fixture_decodes_to_the_ten_records_in_order() {
    for fixture in fixtures() {
        let mut index = 0;
        for batch in batches_of(&fixture) {
            for (position, record) in records_of(&fixture, &batch).into_iter().enumerate() {
                let (key, value, headers) = expected_record(index);
                let name = &fixture.name;
                assert_eq!(
                    record.offset_delta as usize, position,
                    "{name} record {index}"
                );
                assert!(record.timestamp_delta >= 0, "{name} record {index}");
                assert_eq!(record.key, Some(key), "{name} record {index}");
                assert_eq!(record.value, Some(value), "{name} record {index}");
                assert_eq!(record.headers, headers, "{name} record {index}");
                index += 1;
            }
        }
        assert_eq!(index, RECORD_COUNT, "{}: total records", fixture.name);
    }
}

#[test]
fn every_batch_passes_produce_path_validation() {
    for fixture in fixtures() {
        for batch in batches_of(&fixture) {
            let header = *batch.header();
            let info = validate_for_append(&batch, AppendOrigin::Client, RecordLimits::default())
                .unwrap_or_else(|error| panic!("{}: {error}", fixture.name));
            assert_eq!(info.record_count, header.record_count, "{}", fixture.name);
            assert_eq!(info.compression, fixture.codec, "{}", fixture.name);
            assert_eq!(info.null_key_count, 0, "{}", fixture.name);
            assert_eq!(
                info.max_timestamp_ms, header.max_timestamp,
                "{}: header maxTimestamp is the largest record timestamp",
                fixture.name
            );
        }
    }
}

/// kcat sends one record per run (its -H header applies to a whole run);
/// every other client sent all ten records in one batch.
#[test]
fn batch_counts_follow_how_each_client_was_driven() {
    for fixture in fixtures() {
        let counts: Vec<i32> = batches_of(&fixture)
            .iter()
            .map(|batch| batch.header().record_count)
            .collect();
        let expected = match fixture.client.as_str() {
            "kcat" => vec![1; RECORD_COUNT],
            _ => vec![RECORD_COUNT as i32],
        };
        assert_eq!(counts, expected, "{}", fixture.name);
    }
}

/// (producer id, epoch, base sequence, partition leader epoch) as each
/// client writes them. The Java client and kafka-python 3 are idempotent by
/// default and carry the id the capture tool handed out; kafkajs writes
/// epoch 0 and sequence 0 even without a producer id; only the Java client
/// leaves the leader epoch at -1.
#[test]
fn producer_fields_are_what_each_client_writes() {
    for fixture in fixtures() {
        let expected = match fixture.client.as_str() {
            "java" => (CAPTURE_PRODUCER_ID, 0, 0, -1),
            "kafka-python" => (CAPTURE_PRODUCER_ID, 0, 0, 0),
            "kafkajs" => (-1, 0, 0, 0),
            "librdkafka" | "kcat" => (-1, -1, -1, 0),
            other => panic!("unexpected client {other}"),
        };
        for batch in batches_of(&fixture) {
            let header = batch.header();
            let found = (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.partition_leader_epoch,
            );
            assert_eq!(found, expected, "{}", fixture.name);
        }
    }
}

/// The values are mostly `x`, so every codec must shrink the batch.
#[test]
fn compressed_fixtures_are_smaller_than_uncompressed_ones() {
    let fixtures = fixtures();
    for fixture in fixtures.iter().filter(|f| f.codec != Compression::None) {
        let plain = fixtures
            .iter()
            .find(|f| f.client == fixture.client && f.codec == Compression::None)
            .expect("every client has a none fixture");
        assert!(
            fixture.bytes.len() < plain.bytes.len(),
            "{}: {} bytes, uncompressed {}",
            fixture.name,
            fixture.bytes.len(),
            plain.bytes.len()
        );
    }
}
