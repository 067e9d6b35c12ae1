//! Producer state: sequence checks, duplicates, fencing, expiry, the
//! snapshot format and restart equivalence, the producer id block file.

use proptest::prelude::*;
use rafka_core::producer::{
    first_sequence, last_sequence, parse_snapshot_file_name, snapshot_file_name, Check,
    FormatError, ProducerError, ProducerIdAllocator, ProducerStateTable, NO_SEQUENCE,
};
use rafka_proto::record::BatchHeader;

/// The same state on fault-injecting storage. A crate root's modules
/// resolve next to it, hence the path.
#[path = "producer/storage.rs"]
mod storage;

const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

fn header(producer_id: i64, epoch: i16, base_sequence: i32, record_count: i32) -> BatchHeader {
    BatchHeader {
        base_offset: 0,
        batch_length: 49,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes: 0,
        last_offset_delta: record_count - 1,
        base_timestamp: 1_000,
        max_timestamp: 1_000,
        producer_id,
        producer_epoch: epoch,
        base_sequence,
        record_count,
    }
}

/// A partition log reduced to what producer state sees: headers at offsets.
struct Log {
    table: ProducerStateTable,
    headers: Vec<BatchHeader>,
    next_offset: i64,
}

impl Log {
    fn new() -> Self {
        Log {
            table: ProducerStateTable::default(),
            headers: Vec::new(),
            next_offset: 0,
        }
    }

    /// The produce path: check, append at the log end, record.
    fn produce(&mut self, mut batch: BatchHeader) -> Result<Check, ProducerError> {
        let check = self.table.check(&batch)?;
        if check == Check::Append {
            batch.base_offset = self.next_offset;
            self.next_offset = batch.next_offset();
            self.table
                .record(&batch, batch.base_offset, batch.max_timestamp);
            self.headers.push(batch);
        }
        Ok(check)
    }

    fn produce_at(&mut self, batch: BatchHeader, timestamp: i64) -> Result<Check, ProducerError> {
        self.produce(BatchHeader {
            max_timestamp: timestamp,
            ..batch
        })
    }
}

fn error_code(result: Result<Check, ProducerError>) -> i16 {
    match result {
        Ok(check) => panic!("expected an error, got {check:?}"),
        Err(error) => error.error_code().code(),
    }
}

#[test]
fn in_order_batches_append_and_advance_the_sequence() {
    let mut log = Log::new();
    assert_eq!(log.produce(header(7, 0, 0, 2)).unwrap(), Check::Append);
    assert_eq!(log.produce(header(7, 0, 2, 3)).unwrap(), Check::Append);
    assert_eq!(log.produce(header(7, 0, 5, 1)).unwrap(), Check::Append);
    let entry = log.table.get(7).unwrap();
    assert_eq!(entry.epoch(), 0);
    assert_eq!(entry.last_sequence(), 5);
    let offsets: Vec<(i64, i64)> = entry
        .batches()
        .map(|batch| (batch.first_offset, batch.last_offset()))
        .collect();
    assert_eq!(offsets, vec![(0, 1), (2, 4), (5, 5)]);
    assert_eq!(log.next_offset, 6);
}

#[test]
fn retries_of_the_last_five_batches_return_their_original_offsets() {
    let mut log = Log::new();
    log.produce(header(1, 0, 0, 1)).unwrap(); // another producer shifts offsets
    for batch in 0..6 {
        log.produce_at(header(9, 3, batch * 2, 2), 100 + i64::from(batch))
            .unwrap();
    }
    // Batch k of producer 9 sits at offsets 1 + 2k ..= 2 + 2k.
    for batch in 1..6 {
        let retry = header(9, 3, batch * 2, 2);
        let expected = Check::Duplicate {
            first_offset: 1 + 2 * i64::from(batch),
            last_offset: 2 + 2 * i64::from(batch),
            timestamp: 100 + i64::from(batch),
        };
        assert_eq!(log.produce(retry).unwrap(), expected, "batch {batch}");
    }
    assert_eq!(log.next_offset, 13, "a duplicate appends nothing");
    // The sixth-last batch is no longer cached: out of order.
    let stale = log.produce(header(9, 3, 0, 2));
    assert!(matches!(
        stale,
        Err(ProducerError::OutOfOrderSequence {
            producer_id: 9,
            epoch: 3,
            base_sequence: 0,
            last_sequence: 11,
        })
    ));
    assert_eq!(error_code(log.produce(header(9, 3, 0, 2))), 45);
}

#[test]
fn a_partial_overlap_with_a_cached_batch_is_out_of_order() {
    let mut log = Log::new();
    log.produce(header(9, 0, 0, 4)).unwrap();
    assert_eq!(error_code(log.produce(header(9, 0, 0, 2))), 45);
    assert_eq!(error_code(log.produce(header(9, 0, 2, 2))), 45);
}

#[test]
fn a_sequence_gap_is_out_of_order() {
    let mut log = Log::new();
    log.produce(header(4, 0, 0, 3)).unwrap();
    let gap = log.produce(header(4, 0, 4, 1));
    assert!(matches!(
        gap,
        Err(ProducerError::OutOfOrderSequence {
            base_sequence: 4,
            last_sequence: 2,
            ..
        })
    ));
    assert_eq!(log.table.get(4).unwrap().last_sequence(), 2);
    assert_eq!(log.produce(header(4, 0, 3, 1)).unwrap(), Check::Append);
}

#[test]
fn older_epochs_are_fenced_and_newer_ones_restart_at_zero() {
    let mut log = Log::new();
    log.produce(header(5, 1, 0, 2)).unwrap();
    log.produce(header(5, 1, 2, 2)).unwrap();

    let old = log.produce(header(5, 0, 4, 1));
    assert!(matches!(
        old,
        Err(ProducerError::InvalidProducerEpoch {
            producer_id: 5,
            epoch: 0,
            current_epoch: 1,
        })
    ));
    assert_eq!(error_code(log.produce(header(5, 0, 0, 2))), 47);

    let new_epoch_mid_sequence = log.produce(header(5, 2, 5, 1));
    assert!(matches!(
        new_epoch_mid_sequence,
        Err(ProducerError::OutOfOrderSequence {
            epoch: 2,
            base_sequence: 5,
            last_sequence: NO_SEQUENCE,
            ..
        })
    ));
    assert_eq!(log.produce(header(5, 2, 0, 1)).unwrap(), Check::Append);
    let entry = log.table.get(5).unwrap();
    assert_eq!(entry.epoch(), 2);
    assert_eq!(entry.batches().len(), 1, "the old epoch's batches are gone");
    // A retry from the fenced epoch is not a duplicate any more.
    assert_eq!(error_code(log.produce(header(5, 1, 2, 2))), 47);
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    assert_eq!(last_sequence(i32::MAX - 2, 2), i32::MAX);
    assert_eq!(last_sequence(i32::MAX - 1, 2), 0);
    assert_eq!(last_sequence(i32::MAX, 4), 3);
    assert_eq!(first_sequence(3, 4), i32::MAX);
    assert_eq!(last_sequence(NO_SEQUENCE, 4), NO_SEQUENCE);

    let mut log = Log::new();
    // Unknown producer: accepted mid-sequence (KIP-360).
    log.produce(header(3, 0, i32::MAX - 2, 3)).unwrap();
    assert_eq!(log.table.get(3).unwrap().last_sequence(), i32::MAX);
    assert_eq!(log.produce(header(3, 0, 0, 2)).unwrap(), Check::Append);
    assert_eq!(log.table.get(3).unwrap().last_sequence(), 1);

    let mut log = Log::new();
    log.produce(header(3, 0, i32::MAX - 1, 3)).unwrap(); // spans the wrap
    assert_eq!(log.table.get(3).unwrap().last_sequence(), 0);
    assert_eq!(
        log.produce(header(3, 0, i32::MAX - 1, 3)).unwrap(),
        Check::Duplicate {
            first_offset: 0,
            last_offset: 2,
            timestamp: 1_000
        }
    );
    assert_eq!(error_code(log.produce(header(3, 0, 0, 1))), 45);
    assert_eq!(log.produce(header(3, 0, 1, 1)).unwrap(), Check::Append);
}

#[test]
fn unknown_producers_are_accepted_at_any_sequence() {
    let mut log = Log::new();
    assert_eq!(log.produce(header(11, 4, 42, 2)).unwrap(), Check::Append);
    assert_eq!(log.table.get(11).unwrap().last_sequence(), 43);
    assert_eq!(
        log.produce(header(11, 4, 42, 2)).unwrap(),
        Check::Duplicate {
            first_offset: 0,
            last_offset: 1,
            timestamp: 1_000
        }
    );
    assert_eq!(error_code(log.produce(header(11, 4, 43, 1))), 45);
}

#[test]
fn batches_without_a_producer_id_pass_and_leave_no_state() {
    let mut log = Log::new();
    assert_eq!(log.produce(header(-1, -1, -1, 3)).unwrap(), Check::Append);
    assert_eq!(log.produce(header(-1, -1, -1, 3)).unwrap(), Check::Append);
    assert!(log.table.is_empty());
    assert_eq!(log.next_offset, 6);
}

#[test]
fn an_open_transaction_only_takes_transactional_batches() {
    let mut log = Log::new();
    let mut txn = header(8, 0, 0, 2);
    txn.attributes = ATTR_TRANSACTIONAL;
    log.produce(txn).unwrap();
    assert_eq!(
        log.table.get(8).unwrap().current_txn_first_offset(),
        Some(0)
    );

    let plain = log.produce(header(8, 0, 2, 1));
    assert!(matches!(
        plain,
        Err(ProducerError::InvalidTxnState { producer_id: 8 })
    ));
    assert_eq!(error_code(log.produce(header(8, 0, 2, 1))), 48);

    // The coordinator's commit marker closes the transaction.
    let mut marker = header(8, 0, -1, 1);
    marker.attributes = ATTR_TRANSACTIONAL | ATTR_CONTROL;
    marker.base_offset = log.next_offset;
    log.table.record(&marker, marker.base_offset, 2_000);
    log.next_offset += 1;
    let entry = log.table.get(8).unwrap();
    assert_eq!(entry.current_txn_first_offset(), None);
    assert_eq!(entry.last_sequence(), 1, "a marker is not a data batch");
    assert_eq!(log.produce(header(8, 0, 2, 1)).unwrap(), Check::Append);
}

#[test]
fn idle_producers_expire_after_the_expiration_interval() {
    let mut log = Log::new();
    log.table = ProducerStateTable::new(1_000);
    log.produce_at(header(1, 0, 0, 1), 100).unwrap();
    log.produce_at(header(2, 0, 0, 1), 600).unwrap();
    let mut txn = header(3, 0, 0, 1);
    txn.attributes = ATTR_TRANSACTIONAL;
    log.produce_at(txn, 0).unwrap();

    assert_eq!(log.table.expire(1_099), 0);
    assert_eq!(log.table.expire(1_100), 1);
    assert!(log.table.get(1).is_none());
    assert!(log.table.get(2).is_some());
    assert_eq!(log.table.expire(1_600), 1);
    assert_eq!(
        log.table.expire(i64::MAX),
        0,
        "open transactions never expire"
    );
    assert_eq!(log.table.len(), 1);
    assert!(log.table.get(3).is_some());
    // An expired producer is unknown again: accepted mid-sequence.
    assert_eq!(log.produce(header(1, 0, 7, 1)).unwrap(), Check::Append);
}

/// Producer 0x0102 epoch 3, one batch at offsets 10..=12 with sequences
/// 4..=6, timestamp 0x55, written out by hand from Kafka's schema.
#[test]
fn snapshot_bytes_follow_kafkas_layout() {
    let mut table = ProducerStateTable::default();
    let mut batch = header(0x0102, 3, 4, 3);
    batch.base_offset = 10;
    table.record(&batch, 10, 0x55);

    let mut body = Vec::new();
    body.extend_from_slice(&1i32.to_be_bytes()); // entry count
    body.extend_from_slice(&0x0102i64.to_be_bytes());
    body.extend_from_slice(&3i16.to_be_bytes());
    body.extend_from_slice(&6i32.to_be_bytes()); // last sequence
    body.extend_from_slice(&12i64.to_be_bytes()); // last offset
    body.extend_from_slice(&2i32.to_be_bytes()); // offset delta
    body.extend_from_slice(&0x55i64.to_be_bytes());
    body.extend_from_slice(&(-1i32).to_be_bytes()); // coordinator epoch
    body.extend_from_slice(&(-1i64).to_be_bytes()); // no open transaction
    let mut expected = vec![0, 1];
    expected.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    expected.extend_from_slice(&body);

    assert_eq!(table.encode_snapshot(), expected);
    assert_eq!(expected.len(), 10 + 46);
}

/// Several producers, epochs, an open transaction and more batches than
/// are retained: everything a snapshot has to carry.
fn busy_log() -> Log {
    let mut log = Log::new();
    for batch in 0..7 {
        log.produce_at(header(100, 0, batch * 3, 3), 1_000 + i64::from(batch))
            .unwrap();
        log.produce_at(header(200, 2, batch, 1), 2_000 + i64::from(batch))
            .unwrap();
    }
    log.produce(header(200, 3, 0, 2)).unwrap();
    let mut txn = header(300, 1, 0, 4);
    txn.attributes = ATTR_TRANSACTIONAL;
    log.produce_at(txn, 3_000).unwrap();
    log
}

#[test]
fn snapshot_roundtrip_is_byte_exact() {
    let log = busy_log();
    let bytes = log.table.encode_snapshot();
    // 100: five batches, 200: one batch of epoch 3, 300: one batch.
    assert_eq!(bytes.len(), 10 + 7 * 46);

    let mut loaded = ProducerStateTable::default();
    loaded.load_snapshot_bytes(&bytes).unwrap();
    assert_eq!(loaded, log.table);
    assert_eq!(loaded.encode_snapshot(), bytes);
    assert_eq!(
        loaded.get(300).unwrap().current_txn_first_offset(),
        Some(30)
    );
}

#[test]
fn corrupt_snapshots_are_detected() {
    let bytes = busy_log().table.encode_snapshot();
    let mut table = ProducerStateTable::default();

    let mut flipped = bytes.clone();
    flipped[40] ^= 0x01;
    assert!(matches!(
        table.load_snapshot_bytes(&flipped),
        Err(FormatError::CrcMismatch { .. })
    ));
    let mut bad_version = bytes.clone();
    bad_version[1] = 2;
    assert_eq!(
        table.load_snapshot_bytes(&bad_version),
        Err(FormatError::UnknownVersion(2))
    );
    assert_eq!(
        table.load_snapshot_bytes(&bytes[..7]),
        Err(FormatError::Truncated {
            needed_bytes: 10,
            available_bytes: 7
        })
    );
    assert!(table.is_empty(), "a failed load leaves the table untouched");

    // A valid CRC over a body that disagrees with its count.
    let mut short = bytes[..bytes.len() - 46].to_vec();
    let crc = crc32c::crc32c(&short[6..]);
    short[2..6].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        table.load_snapshot_bytes(&short),
        Err(FormatError::Truncated {
            needed_bytes: bytes.len(),
            available_bytes: short.len()
        })
    );
    let mut long = bytes.clone();
    long.extend_from_slice(&[0; 3]);
    let crc = crc32c::crc32c(&long[6..]);
    long[2..6].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        table.load_snapshot_bytes(&long),
        Err(FormatError::TrailingBytes(3))
    );
}

/// Kafka's own snapshots have one entry per producer; a producer whose
/// batches are all gone (only markers) has last offset -1.
#[test]
fn kafka_written_snapshots_load() {
    let mut body = Vec::new();
    body.extend_from_slice(&2i32.to_be_bytes());
    for (producer_id, last_seq, last_offset) in [(1i64, 9i32, 40i64), (2, -1, -1)] {
        body.extend_from_slice(&producer_id.to_be_bytes());
        body.extend_from_slice(&5i16.to_be_bytes());
        body.extend_from_slice(&last_seq.to_be_bytes());
        body.extend_from_slice(&last_offset.to_be_bytes());
        body.extend_from_slice(&(if last_offset < 0 { 0i32 } else { 1 }).to_be_bytes());
        body.extend_from_slice(&77i64.to_be_bytes());
        body.extend_from_slice(&4i32.to_be_bytes());
        body.extend_from_slice(&(-1i64).to_be_bytes());
    }
    let mut bytes = vec![0, 1];
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    bytes.extend_from_slice(&body);

    let mut table = ProducerStateTable::default();
    table.load_snapshot_bytes(&bytes).unwrap();
    let retry = table.check(&header(1, 5, 8, 2)).unwrap();
    assert_eq!(
        retry,
        Check::Duplicate {
            first_offset: 39,
            last_offset: 40,
            timestamp: 77
        }
    );
    assert_eq!(table.check(&header(1, 5, 10, 1)).unwrap(), Check::Append);
    let only_markers = table.get(2).unwrap();
    assert_eq!(only_markers.batches().len(), 0);
    assert_eq!(only_markers.coordinator_epoch(), 4);
    assert_eq!(error_code(table.check(&header(2, 5, 3, 1))), 45);
    assert_eq!(table.check(&header(2, 5, 0, 1)).unwrap(), Check::Append);
}

/// Every retry of every batch, and the next in-order batch of every
/// producer, as the table answers them.
fn answers(table: &ProducerStateTable, log: &Log) -> Vec<Result<Check, i16>> {
    let mut probes: Vec<BatchHeader> = log.headers.clone();
    for (producer_id, entry) in table.iter() {
        let next = last_sequence(entry.last_sequence(), 1);
        probes.push(header(producer_id, entry.epoch(), next, 1));
    }
    probes
        .iter()
        .map(|probe| {
            table
                .check(probe)
                .map_err(|error| error.error_code().code())
        })
        .collect()
}

#[test]
fn a_table_rebuilt_from_snapshot_and_log_answers_as_before_the_restart() {
    let log = busy_log();
    let before = answers(&log.table, &log);
    let duplicates = before
        .iter()
        .filter(|answer| matches!(answer, Ok(Check::Duplicate { .. })))
        .count();
    assert_eq!(duplicates, 5 + 1 + 1);

    for cut in 0..=log.headers.len() {
        let mut at_snapshot = ProducerStateTable::default();
        at_snapshot.rebuild_from(log.headers[..cut].iter().copied());
        let bytes = at_snapshot.encode_snapshot();

        let mut restarted = ProducerStateTable::default();
        restarted.load_snapshot_bytes(&bytes).unwrap();
        restarted.rebuild_from(log.headers[cut..].iter().copied());
        assert_eq!(restarted, log.table, "snapshot after {cut} batches");
        assert_eq!(answers(&restarted, &log), before);
    }
}

#[test]
fn snapshot_file_names_carry_twenty_digit_offsets() {
    assert_eq!(snapshot_file_name(1234), "00000000000000001234.snapshot");
    assert_eq!(
        parse_snapshot_file_name("00000000000000001234.snapshot"),
        Some(1234)
    );
    assert_eq!(parse_snapshot_file_name("1234.snapshot"), None);
    assert_eq!(
        parse_snapshot_file_name("00000000000000001234.snapshot.tmp"),
        None
    );
    assert_eq!(parse_snapshot_file_name("00000000000000001234.log"), None);
    assert_eq!(
        parse_snapshot_file_name("-0000000000000001234.snapshot"),
        None
    );
    assert_eq!(
        parse_snapshot_file_name("99999999999999999999.snapshot"),
        None
    );
}

#[test]
fn the_allocator_hands_out_ids_only_from_a_reserved_block() {
    let mut allocator = ProducerIdAllocator::resume(0, 3);
    assert_eq!(allocator.try_allocate(), None);
    assert_eq!(allocator.next_reservation().unwrap(), 3);
    allocator.extend_reservation(3);
    let ids: Vec<Option<i64>> = (0..4).map(|_| allocator.try_allocate()).collect();
    assert_eq!(ids, vec![Some(0), Some(1), Some(2), None]);

    // After a restart the unused rest of a block is skipped.
    let mut restarted = ProducerIdAllocator::resume(allocator.reserved_end_id(), 3);
    assert_eq!(restarted.try_allocate(), None);
    assert_eq!(restarted.next_id(), 3);

    let nearly_exhausted = ProducerIdAllocator::resume(i64::MAX - 1, 1_000);
    assert!(matches!(
        nearly_exhausted.next_reservation(),
        Err(ProducerError::ProducerIdsExhausted { .. })
    ));
}

#[test]
fn the_block_file_roundtrips_and_detects_damage() {
    let bytes = ProducerIdAllocator::encode_block_file(5_000);
    let mut expected = vec![0, 1];
    expected.extend_from_slice(&crc32c::crc32c(&5_000i64.to_be_bytes()).to_be_bytes());
    expected.extend_from_slice(&5_000i64.to_be_bytes());
    assert_eq!(bytes.to_vec(), expected);
    assert_eq!(ProducerIdAllocator::decode_block_file(&bytes), Ok(5_000));

    let mut flipped = bytes;
    flipped[13] ^= 0x80;
    assert!(matches!(
        ProducerIdAllocator::decode_block_file(&flipped),
        Err(FormatError::CrcMismatch { .. })
    ));
    assert_eq!(
        ProducerIdAllocator::decode_block_file(&bytes[..13]),
        Err(FormatError::Truncated {
            needed_bytes: 14,
            available_bytes: 13
        })
    );
    let negative = ProducerIdAllocator::encode_block_file(-5);
    assert_eq!(
        ProducerIdAllocator::decode_block_file(&negative),
        Err(FormatError::NegativeProducerId(-5))
    );
}

proptest! {
    #[test]
    fn sequence_arithmetic_inverts(base in 0..=i32::MAX, delta in 0..=i32::MAX) {
        let last = last_sequence(base, delta);
        prop_assert!(last >= 0);
        prop_assert_eq!(first_sequence(last, delta), base);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut table = ProducerStateTable::default();
        let _ = table.load_snapshot_bytes(&bytes);
        let _ = ProducerIdAllocator::decode_block_file(&bytes);
    }

    #[test]
    fn valid_crc_with_arbitrary_entries_never_panics(
        count in 0i32..4,
        entries in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut body = count.to_be_bytes().to_vec();
        body.extend_from_slice(&entries);
        let mut bytes = vec![0, 1];
        bytes.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        bytes.extend_from_slice(&body);
        let mut table = ProducerStateTable::default();
        if table.load_snapshot_bytes(&bytes).is_ok() {
            for (_, entry) in table.iter() {
                prop_assert!(entry.batches().len() <= 5);
            }
        }
    }
}
