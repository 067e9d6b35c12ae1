//! The consuming side: one Fetch round trip over a set of partition cursors.
//! Batches are validated (length, CRC32C) as a careful consumer would; a
//! partial batch at the end of a partition's bytes (the broker filled its
//! byte budget) is left for the next fetch, and records before a cursor
//! (a batch that straddles it) are skipped.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{
    batch_size_bytes, Record, RecordBatch, RecordLimits, LOG_OVERHEAD_BYTES,
};

use crate::admin::topic_name;
use crate::client::{Wire, WireReader, WireWriter};
use crate::run::RunError;

/// v12: the newest version that still names topics (v13 uses ids).
const FETCH_VERSION: i16 = 12;

/// Where a partition is read from and where its log ended when last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub partition: i32,
    pub offset: i64,
    pub high_watermark: i64,
}

/// How to ask: per-partition and whole-response byte budgets, and how long
/// the broker may wait for data.
#[derive(Debug, Clone, Copy)]
pub struct FetchLimits {
    pub partition_bytes_max: i32,
    pub response_bytes_max: i32,
    pub max_wait_ms: i32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchTally {
    pub records: u64,
    pub bytes: u64,
    /// Partitions answered with an error code.
    pub errors: u64,
}

/// Called with each new record; the lifetimes are separate so that one
/// visitor can be lent to several calls.
pub type Visit<'a, 'f> = Option<&'a mut (dyn FnMut(&Record) + 'f)>;

/// Fetches once for every cursor in `cursors`, advances them, and hands
/// each new record to `visit` (None: only count).
pub fn fetch_once(
    wire: &mut Wire,
    topic: &str,
    cursors: &mut [Cursor],
    limits: FetchLimits,
    visit: Visit<'_, '_>,
) -> Result<FetchTally, RunError> {
    let (writer, reader) = wire.halves_mut();
    let correlation_id = send_fetch(writer, topic, cursors, limits)?;
    receive_fetch(reader, correlation_id, cursors, visit)
}

/// Sends a fetch for `cursors` without waiting (pipelining).
pub fn send_fetch(
    writer: &mut WireWriter,
    topic: &str,
    cursors: &[Cursor],
    limits: FetchLimits,
) -> Result<i32, RunError> {
    let request = fetch_request(topic, cursors, limits);
    Ok(writer.send(&request, FETCH_VERSION)?)
}

/// Takes the answer to fetch `correlation_id` and advances the cursors it
/// names (others in `cursors` are left alone).
pub fn receive_fetch(
    reader: &mut WireReader,
    correlation_id: i32,
    cursors: &mut [Cursor],
    mut visit: Visit<'_, '_>,
) -> Result<FetchTally, RunError> {
    let response: FetchResponse = reader.receive(ApiKey::Fetch, correlation_id, FETCH_VERSION)?;
    let mut tally = FetchTally::default();
    let answers = response.responses.iter().flat_map(|t| &t.partitions);
    for answer in answers {
        let Some(cursor) = cursors
            .iter_mut()
            .find(|c| c.partition == answer.partition_index)
        else {
            continue;
        };
        if ErrorCode::from_code(answer.error_code).is_err() {
            tally.errors += 1;
            continue;
        }
        cursor.high_watermark = answer.high_watermark;
        if let Some(records) = &answer.records {
            let read = read_batches(records, cursor, visit.as_deref_mut())?;
            tally.records += read.records;
            tally.bytes += read.bytes;
        }
    }
    Ok(tally)
}

fn fetch_request(topic: &str, cursors: &[Cursor], limits: FetchLimits) -> FetchRequest {
    let partitions = cursors
        .iter()
        .map(|cursor| {
            FetchPartition::default()
                .with_partition(cursor.partition)
                .with_fetch_offset(cursor.offset)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(limits.partition_bytes_max)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(limits.max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(limits.response_bytes_max)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)])
}

/// Walks the whole batches in `records`, counting (and visiting) those at
/// or after the cursor, and moves the cursor past them.
pub fn read_batches(
    records: &Bytes,
    cursor: &mut Cursor,
    mut visit: Visit<'_, '_>,
) -> Result<FetchTally, RunError> {
    let mut tally = FetchTally::default();
    let mut rest = records.clone();
    while rest.len() >= LOG_OVERHEAD_BYTES {
        let size_bytes = batch_size_bytes(&rest)?;
        if rest.len() < size_bytes {
            break; // partial tail: fetched again next time
        }
        let (batch, after) = RecordBatch::parse(&rest)?;
        rest = after;
        let header = *batch.header();
        if header.last_offset() < cursor.offset {
            continue;
        }
        let first = header.base_offset.max(cursor.offset);
        tally.records += (header.last_offset() + 1 - first) as u64;
        tally.bytes += size_bytes as u64;
        if let Some(visit) = visit.as_deref_mut() {
            for record in batch.records(RecordLimits::default())? {
                let record = record?;
                if record.offset(header.base_offset) >= cursor.offset {
                    visit(&record);
                }
            }
        }
        cursor.offset = header.next_offset();
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rafka_proto::record::{set_base_offset, write_crc, BatchBuilder, Compression};

    fn batch_at(base_offset: i64, count: usize) -> Bytes {
        let mut builder = BatchBuilder::new(Compression::None).base_timestamp_ms(1);
        for i in 0..count {
            builder.push(
                None,
                Some(format!("v{}", base_offset + i as i64).as_bytes()),
            );
        }
        let mut bytes = BytesMut::from(&builder.build().unwrap()[..]);
        set_base_offset(&mut bytes, base_offset);
        write_crc(&mut bytes);
        bytes.freeze()
    }

    #[test]
    fn skips_records_before_the_cursor_and_stops_at_a_partial_tail() {
        let mut wire = BytesMut::new();
        wire.extend_from_slice(&batch_at(0, 3));
        wire.extend_from_slice(&batch_at(3, 4));
        let third = batch_at(7, 2);
        wire.extend_from_slice(&third[..third.len() - 5]);
        let mut cursor = Cursor {
            partition: 0,
            offset: 2,
            high_watermark: 9,
        };
        let mut seen = Vec::new();
        let mut visit = |r: &Record| seen.push(r.value.clone().unwrap());
        let tally = read_batches(&wire.freeze(), &mut cursor, Some(&mut visit)).unwrap();
        assert_eq!(tally.records, 5);
        assert_eq!(cursor.offset, 7);
        let values: Vec<&[u8]> = seen.iter().map(|v| &v[..]).collect();
        assert_eq!(values, [&b"v2"[..], b"v3", b"v4", b"v5", b"v6"]);
    }

    #[test]
    fn a_corrupt_batch_is_an_error() {
        let mut bytes = BytesMut::from(&batch_at(0, 2)[..]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let mut cursor = Cursor {
            partition: 0,
            offset: 0,
            high_watermark: 2,
        };
        assert!(matches!(
            read_batches(&bytes.freeze(), &mut cursor, None),
            Err(RunError::Batch(_))
        ));
        assert_eq!(cursor.offset, 0);
    }
}
