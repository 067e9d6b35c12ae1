//! Record batches end to end: byte-exact encoding, roundtrips through the
//! builder for every codec, produce-path validation, control batches, and
//! hostile bytes (truncation, bit flips, huge declared sizes).

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rafka_proto::record::{
    encode_end_txn_batch, set_base_offset, set_max_timestamp, validate_for_append, write_crc,
    AppendOrigin, BatchBuilder, BatchError, Batches, Compression, ControlError, ControlType,
    EndTxnMarker, HeaderRef, InvalidBatch, Record, RecordBatch, RecordError, RecordField,
    RecordLimits, RejectKind, TimestampType, VarintError, BATCH_HEADER_BYTES,
};

const BASE_TS_MS: i64 = 1_700_000_000_000;

fn parse(bytes: &Bytes) -> RecordBatch {
    let (batch, rest) = RecordBatch::parse(bytes).unwrap();
    assert!(rest.is_empty());
    batch
}

fn records_of(batch: &RecordBatch) -> Vec<Record> {
    batch
        .records(RecordLimits::default())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

/// A batch whose fields are all known, to compare against hand-written bytes.
fn small_batch() -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None)
        .producer(7, 1, 5)
        .base_timestamp_ms(1000);
    builder.push_record(1000, Some(b"k"), Some(b"v"), &[]);
    builder.push_record(1005, None, Some(b"hi"), &[HeaderRef::new("t", None)]);
    builder.build().unwrap()
}

#[test]
fn uncompressed_batch_is_byte_exact() {
    #[rustfmt::skip]
    let mut expected: Vec<u8> = vec![
        0, 0, 0, 0, 0, 0, 0, 0,         // baseOffset 0
        0, 0, 0, 70,                    // batchLength: 82 - 12
        0xff, 0xff, 0xff, 0xff,         // partitionLeaderEpoch -1
        2,                              // magic
        0, 0, 0, 0,                     // crc, filled in below
        0, 0,                           // attributes: none, CreateTime
        0, 0, 0, 1,                     // lastOffsetDelta
        0, 0, 0, 0, 0, 0, 0x03, 0xe8,   // baseTimestamp 1000
        0, 0, 0, 0, 0, 0, 0x03, 0xed,   // maxTimestamp 1005
        0, 0, 0, 0, 0, 0, 0, 7,         // producerId
        0, 1,                           // producerEpoch
        0, 0, 0, 5,                     // baseSequence
        0, 0, 0, 2,                     // recordCount
        // record 0: length 8, attrs, tsDelta 0, offsetDelta 0, key "k", value "v", 0 headers
        0x10, 0, 0, 0, 0x02, b'k', 0x02, b'v', 0,
        // record 1: length 11, attrs, tsDelta 5, offsetDelta 1, null key, value "hi",
        // 1 header: key "t", null value
        0x16, 0, 0x0a, 0x02, 0x01, 0x04, b'h', b'i', 0x02, 0x02, b't', 0x01,
    ];
    let crc = crc32c::crc32c(&expected[21..]);
    expected[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(small_batch().as_ref(), expected.as_slice());
}

#[test]
fn small_batch_reads_back() {
    let batch = parse(&small_batch());
    let header = batch.header();
    assert_eq!(header.record_count, 2);
    assert_eq!((header.producer_id, header.producer_epoch), (7, 1));
    let records = records_of(&batch);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(records[1].key, None);
    assert_eq!(records[1].timestamp_ms(header.base_timestamp), 1005);
    assert_eq!(records[1].offset(100), 101);
    assert_eq!(records[1].headers[0].key_str(), Some("t"));
    assert_eq!(records[1].headers[0].value, None);
}

/// Timestamp delta, key, value.
type SimpleRecord = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Records exercising every shape a field can take, plus one large value.
fn varied_records(large_value_bytes: usize) -> Vec<SimpleRecord> {
    vec![
        (0, Some(b"key".to_vec()), Some(b"value".to_vec())),
        (3, None, Some(b"null key".to_vec())),
        (-2, Some(b"null value".to_vec()), None),
        (9, Some(Vec::new()), Some(Vec::new())),
        (1, None, None),
        (
            40,
            Some(b"large".to_vec()),
            Some((0..large_value_bytes).map(|i| (i % 253) as u8).collect()),
        ),
    ]
}

#[test]
fn every_codec_roundtrips_varied_records() {
    let headers = [
        HeaderRef::new("trace-id", Some(b"abc")),
        HeaderRef::new("null", None),
        HeaderRef::new("empty", Some(b"")),
    ];
    let input = varied_records(1 << 20);
    for codec in Compression::ALL {
        let mut builder = BatchBuilder::new(codec).base_timestamp_ms(BASE_TS_MS);
        for (delta, key, value) in &input {
            let hdrs = if key.is_none() { &headers[..] } else { &[] };
            builder.push_record(BASE_TS_MS + delta, key.as_deref(), value.as_deref(), hdrs);
        }
        let bytes = builder.build().unwrap();
        let batch = parse(&bytes);
        assert_eq!(batch.header().compression().unwrap(), codec);
        assert_eq!(batch.header().max_timestamp, BASE_TS_MS + 40);
        let records = records_of(&batch);
        assert_eq!(records.len(), input.len(), "{codec:?}");
        for (index, (record, (delta, key, value))) in records.iter().zip(&input).enumerate() {
            assert_eq!(record.offset_delta, index as i32);
            assert_eq!(record.timestamp_delta, *delta);
            assert_eq!(record.key.as_deref(), key.as_deref(), "{codec:?}");
            assert_eq!(record.value.as_deref(), value.as_deref(), "{codec:?}");
            let expected_headers = if key.is_none() { 3 } else { 0 };
            assert_eq!(record.headers.len(), expected_headers);
        }
        let header = &records[1].headers;
        assert_eq!(header[0].key.as_ref(), b"trace-id");
        assert_eq!(header[0].value.as_deref(), Some(&b"abc"[..]));
        assert_eq!(header[1].value, None);
        assert_eq!(header[2].value.as_deref(), Some(&b""[..]));
    }
}

#[test]
fn uncompressed_records_slice_the_batch() {
    let bytes = small_batch();
    let batch = parse(&bytes);
    let record = &records_of(&batch)[0];
    let key = record.key.as_ref().unwrap();
    // Zero-copy: the key points into the batch's own buffer.
    let start = bytes.as_ptr() as usize;
    let key_at = key.as_ptr() as usize;
    assert!(key_at > start && key_at < start + bytes.len());
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    for codec in [Compression::None, Compression::Zstd] {
        let mut builder = BatchBuilder::new(codec);
        builder.push(Some(b"key"), Some(b"value"));
        let bytes = builder.build().unwrap();
        for len in 0..bytes.len() {
            let cut = bytes.slice(..len);
            assert!(RecordBatch::parse(&cut).is_err(), "len {len}");
            let mut batches = Batches::new(cut);
            match batches.next() {
                None => assert_eq!(len, 0),
                Some(result) => assert!(result.is_err(), "len {len}"),
            }
            assert!(batches.next().is_none());
        }
    }
}

#[test]
fn every_bit_flip_in_crc_region_is_detected() {
    let bytes = small_batch();
    for byte in 21..bytes.len() {
        for bit in 0..8 {
            let mut damaged = bytes.to_vec();
            damaged[byte] ^= 1 << bit;
            let error = RecordBatch::parse(&Bytes::from(damaged)).unwrap_err();
            assert!(
                matches!(error, BatchError::CrcMismatch { .. }),
                "byte {byte} bit {bit}: {error:?}"
            );
        }
    }
}

#[test]
fn bad_magic_is_rejected() {
    let mut damaged = small_batch().to_vec();
    damaged[16] = 1;
    let error = RecordBatch::parse(&Bytes::from(damaged)).unwrap_err();
    assert_eq!(error, BatchError::BadMagic(1));
}

#[test]
fn batch_length_below_minimum_is_rejected() {
    let mut damaged = small_batch().to_vec();
    damaged[8..12].copy_from_slice(&48i32.to_be_bytes());
    let error = RecordBatch::parse(&Bytes::from(damaged)).unwrap_err();
    assert_eq!(error, BatchError::LengthTooSmall(48));
}

#[test]
fn huge_batch_length_is_truncation_without_allocating() {
    let mut damaged = small_batch().to_vec();
    damaged[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
    let error = RecordBatch::parse(&Bytes::from(damaged)).unwrap_err();
    assert_eq!(
        error,
        BatchError::Truncated {
            needed_bytes: 12 + i32::MAX as usize,
            available_bytes: 82,
        }
    );
}

/// Replaces the records section of `template` and fixes length and CRC, so
/// the record decoder (not the CRC) is what sees the bytes.
fn with_records(template: &Bytes, records: &[u8], record_count: i32) -> RecordBatch {
    let mut bytes = BytesMut::from(&template[..BATCH_HEADER_BYTES]);
    bytes.extend_from_slice(records);
    let batch_length = (bytes.len() - 12) as i32;
    bytes[8..12].copy_from_slice(&batch_length.to_be_bytes());
    bytes[23..27].copy_from_slice(&(record_count - 1).to_be_bytes());
    bytes[57..61].copy_from_slice(&record_count.to_be_bytes());
    write_crc(&mut bytes);
    parse(&bytes.freeze())
}

fn first_record_error(batch: &RecordBatch) -> RecordError {
    let mut records = batch.records(RecordLimits::default()).unwrap();
    let error = records.next().unwrap().unwrap_err();
    assert!(records.next().is_none(), "an error ends the iteration");
    error
}

#[test]
fn huge_record_length_is_a_typed_error() {
    // length varint = i32::MAX, then nothing.
    let batch = with_records(&small_batch(), &[0xfe, 0xff, 0xff, 0xff, 0x0f], 1);
    let error = first_record_error(&batch);
    assert!(matches!(
        error,
        RecordError::Truncated {
            field: RecordField::Length,
            at_bytes: 5
        }
    ));
}

#[test]
fn huge_key_length_is_a_typed_error() {
    // length 8: attrs, tsDelta 0, offsetDelta 0, keyLength i32::MAX.
    let records = [0x10, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0x0f];
    let error = first_record_error(&with_records(&small_batch(), &records, 1));
    assert!(matches!(
        error,
        RecordError::Truncated {
            field: RecordField::Key,
            at_bytes: 9
        }
    ));
}

#[test]
fn overlong_and_negative_lengths_are_typed_errors() {
    let overlong = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    let error = first_record_error(&with_records(&small_batch(), &overlong, 1));
    assert!(matches!(
        error,
        RecordError::Varint {
            field: RecordField::Length,
            source: VarintError::Overlong { max_bytes: 5 },
            ..
        }
    ));
    // keyLength -2
    let negative_key = [0x08, 0, 0, 0, 0x03, 0x01, 0x00, 0x00];
    let error = first_record_error(&with_records(&small_batch(), &negative_key, 1));
    assert!(matches!(
        error,
        RecordError::InvalidLength {
            field: RecordField::KeyLength,
            length: -2,
            ..
        }
    ));
    // headerCount -1
    let negative_headers = [0x0c, 0, 0, 0, 0x01, 0x01, 0x01];
    let error = first_record_error(&with_records(&small_batch(), &negative_headers, 1));
    assert!(matches!(
        error,
        RecordError::InvalidLength {
            field: RecordField::HeaderCount,
            length: -1,
            ..
        }
    ));
}

#[test]
fn record_length_must_match_its_content() {
    // Declares 7 bytes but its fields take 6 (then one slack byte).
    let records = [0x0e, 0, 0, 0, 0x01, 0x01, 0x00, 0xaa];
    let error = first_record_error(&with_records(&small_batch(), &records, 1));
    assert!(matches!(
        error,
        RecordError::LengthMismatch {
            declared_bytes: 7,
            consumed_bytes: 6,
            ..
        }
    ));
}

#[test]
fn record_count_must_match_the_records() {
    let one_record = [0x0c, 0, 0, 0, 0x01, 0x01, 0x00];
    let batch = with_records(&small_batch(), &one_record, 2);
    let results: Vec<_> = batch.records(RecordLimits::default()).unwrap().collect();
    assert_eq!(results.len(), 2);
    assert!(matches!(
        results[1],
        Err(RecordError::TooFewRecords {
            expected: 2,
            found: 1
        })
    ));
    let mut trailing = one_record.to_vec();
    trailing.extend_from_slice(&[1, 2, 3]);
    let batch = with_records(&small_batch(), &trailing, 1);
    let results: Vec<_> = batch.records(RecordLimits::default()).unwrap().collect();
    assert!(matches!(
        results[1],
        Err(RecordError::TrailingBytes {
            count: 1,
            trailing_bytes: 3
        })
    ));
}

fn client_batch(codec: Compression, count: usize) -> Bytes {
    let mut builder = BatchBuilder::new(codec)
        .producer(42, 3, 100)
        .base_timestamp_ms(BASE_TS_MS);
    for index in 0..count {
        // Timestamps rise then fall: the max sits in the middle.
        let ts = BASE_TS_MS + 10 - (index as i64 - 5).abs();
        let key = (index % 3 != 0).then_some(&b"key"[..]);
        builder.push_record(ts, key, Some(b"value"), &[]);
    }
    builder.build().unwrap()
}

#[test]
fn validate_for_append_reports_what_the_log_needs() {
    for codec in Compression::ALL {
        let batch = parse(&client_batch(codec, 9));
        let info =
            validate_for_append(&batch, AppendOrigin::Client, RecordLimits::default()).unwrap();
        assert_eq!(info.record_count, 9);
        assert_eq!(info.max_timestamp_ms, BASE_TS_MS + 10);
        assert_eq!(info.min_timestamp_ms, BASE_TS_MS + 5);
        assert_eq!(info.offset_delta_of_max_timestamp, 5);
        assert_eq!(info.null_key_count, 3);
        assert_eq!(info.compression, codec);
        // Six keyed records of 15 bytes, three null-keyed ones of 12.
        assert_eq!(info.records_bytes, 6 * 15 + 3 * 12);
    }
}

fn header_rewritten(bytes: &Bytes, at: usize, field: &[u8]) -> RecordBatch {
    let mut damaged = bytes.to_vec();
    damaged[at..at + field.len()].copy_from_slice(field);
    write_crc(&mut damaged);
    parse(&Bytes::from(damaged))
}

fn append_error(batch: &RecordBatch, origin: AppendOrigin) -> InvalidBatch {
    validate_for_append(batch, origin, RecordLimits::default()).unwrap_err()
}

#[test]
fn count_and_last_offset_delta_must_agree() {
    let batch = header_rewritten(&client_batch(Compression::None, 3), 23, &5i32.to_be_bytes());
    let error = append_error(&batch, AppendOrigin::Client);
    assert!(matches!(
        error,
        InvalidBatch::Batch(BatchError::CountMismatch {
            count: 3,
            last_offset_delta: 5
        })
    ));
    assert_eq!(error.error_code().code(), 87);
    let empty = header_rewritten(&client_batch(Compression::None, 1), 57, &0i32.to_be_bytes());
    let error = append_error(&empty, AppendOrigin::Client);
    assert!(matches!(error, InvalidBatch::NoRecords));
}

#[test]
fn offset_deltas_must_run_in_order() {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(None, Some(b"a")).push(None, Some(b"b"));
    let bytes = builder.build().unwrap();
    // Second record's offsetDelta sits after its length, attrs and tsDelta.
    let second = BATCH_HEADER_BYTES + 8;
    assert_eq!(bytes[second + 3], 0x02);
    let batch = header_rewritten(&bytes, second + 3, &[0x04]);
    let error = append_error(&batch, AppendOrigin::Client);
    assert!(matches!(
        error,
        InvalidBatch::OffsetDeltaOutOfOrder { index: 1, found: 2 }
    ));
}

#[test]
fn producer_fields_must_be_consistent() {
    let bytes = client_batch(Compression::None, 2);
    let bad_epoch = header_rewritten(&bytes, 51, &(-1i16).to_be_bytes());
    let bad_sequence = header_rewritten(&bytes, 53, &(-1i32).to_be_bytes());
    let bad_id = header_rewritten(&bytes, 43, &(-7i64).to_be_bytes());
    for batch in [bad_epoch, bad_sequence, bad_id] {
        let error = append_error(&batch, AppendOrigin::Client);
        assert!(
            matches!(
                error,
                InvalidBatch::Batch(BatchError::BadProducerFields { .. })
            ),
            "{error:?}"
        );
    }
    let mut builder = BatchBuilder::new(Compression::None).transactional(true);
    builder.push(None, Some(b"v"));
    let batch = parse(&builder.build().unwrap());
    let error = append_error(&batch, AppendOrigin::Client);
    assert!(matches!(
        error,
        InvalidBatch::Batch(BatchError::BadProducerFields {
            producer_id: -1,
            ..
        })
    ));
}

#[test]
fn control_batches_come_only_from_the_coordinator() {
    let marker = EndTxnMarker {
        control_type: ControlType::Commit,
        coordinator_epoch: 9,
    };
    let bytes = encode_end_txn_batch(marker, 42, 3, BASE_TS_MS).unwrap();
    let batch = parse(&bytes);
    assert!(batch.header().is_control() && batch.header().is_transactional());
    assert_eq!(batch.header().base_sequence, -1);
    assert_eq!(batch.end_txn_marker().unwrap(), Some(marker));
    let error = append_error(&batch, AppendOrigin::Client);
    assert!(matches!(error, InvalidBatch::ControlFromClient));
    assert_eq!(error.kind(), RejectKind::InvalidRecord);
    let info =
        validate_for_append(&batch, AppendOrigin::Coordinator, RecordLimits::default()).unwrap();
    assert_eq!(info.record_count, 1);
    // Control bit without the transactional bit (attributes 0x0020).
    let loose = header_rewritten(&bytes, 21, &0x0020i16.to_be_bytes());
    let error = append_error(&loose, AppendOrigin::Coordinator);
    assert!(matches!(
        error,
        InvalidBatch::Batch(BatchError::ControlNotTransactional)
    ));
}

#[test]
fn control_record_bytes_match_kafka() {
    let marker = EndTxnMarker {
        control_type: ControlType::Abort,
        coordinator_epoch: 0x0102_0304,
    };
    let batch = parse(&encode_end_txn_batch(marker, 1, 0, BASE_TS_MS).unwrap());
    let record = &records_of(&batch)[0];
    assert_eq!(record.key.as_deref(), Some(&[0, 0, 0, 0][..]));
    assert_eq!(record.value.as_deref(), Some(&[0, 0, 1, 2, 3, 4][..]));
    let plain = parse(&small_batch());
    assert!(matches!(
        plain.end_txn_marker(),
        Err(ControlError::NotControl)
    ));
}

#[test]
fn crc_errors_map_to_corrupt_message() {
    let mut damaged = small_batch().to_vec();
    damaged[70] ^= 1;
    let error = InvalidBatch::from(RecordBatch::parse(&Bytes::from(damaged)).unwrap_err());
    assert_eq!(error.kind(), RejectKind::CorruptMessage);
    assert_eq!(error.error_code().code(), 2);
}

#[test]
fn decompression_over_the_limit_is_message_too_large() {
    let mut builder = BatchBuilder::new(Compression::Zstd);
    builder.push(None, Some(&[0u8; 100_000]));
    let batch = parse(&builder.build().unwrap());
    let limits = RecordLimits {
        decompressed_bytes_max: 50_000,
    };
    let error = validate_for_append(&batch, AppendOrigin::Client, limits).unwrap_err();
    assert_eq!(error.kind(), RejectKind::MessageTooLarge);
    assert_eq!(error.error_code().code(), 10);
}

#[test]
fn log_rewrites_keep_the_batch_valid() {
    let mut bytes = client_batch(Compression::Lz4, 4).to_vec();
    set_base_offset(&mut bytes, 1_000);
    set_max_timestamp(&mut bytes, TimestampType::LogAppendTime, BASE_TS_MS + 99);
    let batch = parse(&Bytes::from(bytes));
    assert_eq!(batch.header().base_offset, 1_000);
    assert_eq!(batch.header().last_offset(), 1_003);
    assert_eq!(
        batch.header().timestamp_type(),
        TimestampType::LogAppendTime
    );
    assert_eq!(batch.header().max_timestamp, BASE_TS_MS + 99);
    assert_eq!(batch.header().compression().unwrap(), Compression::Lz4);
}

#[test]
fn batches_iterates_a_blob_and_stops_at_damage() {
    let mut blob = BytesMut::new();
    blob.extend_from_slice(&small_batch());
    blob.extend_from_slice(&client_batch(Compression::Gzip, 3));
    blob.extend_from_slice(&small_batch()[..30]);
    let results: Vec<_> = Batches::new(blob.freeze()).collect();
    assert_eq!(results.len(), 3);
    assert_eq!(results[1].as_ref().unwrap().header().record_count, 3);
    assert!(matches!(results[2], Err(BatchError::Truncated { .. })));
}

fn limits_small() -> RecordLimits {
    RecordLimits {
        decompressed_bytes_max: 1 << 16,
    }
}

/// Runs every reader over `bytes`; only panics matter.
fn read_everything(bytes: Bytes) {
    for batch in Batches::new(bytes).flatten() {
        let _ = validate_for_append(&batch, AppendOrigin::Client, limits_small());
        let _ = batch.end_txn_marker();
        if let Ok(records) = batch.records(limits_small()) {
            for record in records {
                let _ = record.map(|r| r.headers.len());
            }
        }
    }
}

type RecordSpec = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

fn record_spec() -> impl Strategy<Value = RecordSpec> {
    let bytes = |max: usize| proptest::collection::vec(any::<u8>(), 0..max);
    (
        any::<i64>(),
        proptest::option::of(bytes(40)),
        proptest::option::of(bytes(300)),
        proptest::collection::vec((bytes(12), proptest::option::of(bytes(20))), 0..3),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        read_everything(Bytes::from(bytes));
    }

    #[test]
    fn damaged_records_with_good_crc_never_panic(
        codec in 0usize..5,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = client_batch(Compression::ALL[codec], 6).to_vec();
        let records_bytes = bytes.len() - BATCH_HEADER_BYTES;
        for (at, value) in edits {
            bytes[BATCH_HEADER_BYTES + usize::from(at) % records_bytes] = value;
        }
        write_crc(&mut bytes);
        read_everything(Bytes::from(bytes));
    }

    #[test]
    fn arbitrary_records_roundtrip(
        codec in 0usize..5,
        specs in proptest::collection::vec(record_spec(), 1..12),
    ) {
        let codec = Compression::ALL[codec];
        let mut builder = BatchBuilder::new(codec).base_timestamp_ms(BASE_TS_MS);
        for (delta, key, value, headers) in &specs {
            let headers: Vec<HeaderRef<'_>> = headers
                .iter()
                .map(|(key, value)| HeaderRef { key, value: value.as_deref() })
                .collect();
            let ts = BASE_TS_MS.wrapping_add(*delta);
            builder.push_record(ts, key.as_deref(), value.as_deref(), &headers);
        }
        let batch = parse(&builder.build().unwrap());
        let records = records_of(&batch);
        prop_assert_eq!(records.len(), specs.len());
        for (record, (delta, key, value, headers)) in records.iter().zip(&specs) {
            prop_assert_eq!(record.timestamp_delta, *delta);
            prop_assert_eq!(record.key.as_deref(), key.as_deref());
            prop_assert_eq!(record.value.as_deref(), value.as_deref());
            prop_assert_eq!(record.headers.len(), headers.len());
            for (got, (key, value)) in record.headers.iter().zip(headers) {
                prop_assert_eq!(got.key.as_ref(), key.as_slice());
                prop_assert_eq!(got.value.as_deref(), value.as_deref());
            }
        }
        // Rebuilding from the decoded records gives the same bytes.
        let mut again = BatchBuilder::new(codec).base_timestamp_ms(BASE_TS_MS);
        for record in &records {
            again.push_decoded(record);
        }
        prop_assert_eq!(again.build().unwrap(), batch.into_bytes());
    }
}
