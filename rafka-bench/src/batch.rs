//! Builds a valid, uncompressed RecordBatch v2 of an exact total size, so
//! that every benchmark mode writes byte-identical buffers and flush points
//! fall on batch boundaries.

use bytes::{BufMut, Bytes, BytesMut};
use rafka_proto::record::batch::{compute_crc, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES};

/// A typical producer record value; the last record absorbs the remainder.
const RECORD_VALUE_BYTES: usize = 1000;
/// Smallest record we emit: the varint framing of an empty record is ~7 bytes.
const RECORD_BYTES_MIN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchBuildError {
    #[error("batch of {0} bytes is too small for a header and one record")]
    TooSmall(usize),
    #[error("batch of {0} bytes exceeds a v2 batch's i32 length field")]
    TooLarge(usize),
    #[error("no record layout fills exactly {0} bytes")]
    NoExactFit(usize),
}

/// A batch of exactly `size_bytes` (base offset 0, producer fields unset,
/// CreateTime `timestamp_ms`), with ~1 KB records like a real producer's.
pub fn build_batch(size_bytes: usize, timestamp_ms: i64) -> Result<Bytes, BatchBuildError> {
    if size_bytes < BATCH_HEADER_BYTES + RECORD_BYTES_MIN {
        return Err(BatchBuildError::TooSmall(size_bytes));
    }
    if i32::try_from(size_bytes).is_err() {
        return Err(BatchBuildError::TooLarge(size_bytes));
    }
    let (records, count) = fill_records(size_bytes - BATCH_HEADER_BYTES)
        .ok_or(BatchBuildError::NoExactFit(size_bytes))?;
    let mut batch = BytesMut::with_capacity(size_bytes);
    put_header(&mut batch, size_bytes, count, timestamp_ms);
    batch.put_slice(&records);
    let crc = compute_crc(&batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(batch.freeze())
}

/// Records totalling exactly `records_bytes`, and how many there are.
fn fill_records(records_bytes: usize) -> Option<(BytesMut, i32)> {
    let mut records = BytesMut::with_capacity(records_bytes);
    let mut count: i32 = 0;
    let full = |offset_delta| Shape {
        offset_delta,
        value_len: RECORD_VALUE_BYTES,
    };
    // Leave at least one full-size record's worth for the exact-fit tail.
    while records_bytes - records.len() >= 2 * record_size(full(count)) {
        put_record(&mut records, full(count));
        count += 1;
    }
    loop {
        let tail_bytes = records_bytes - records.len();
        if put_exact_record(&mut records, count, tail_bytes).is_some() {
            return Some((records, count + 1));
        }
        // Where a length varint widens, one size is unreachable by a single
        // record (63-byte bodies make 64-byte records, 64-byte bodies 66):
        // peel off an empty record and fit the rest.
        let empty = Shape {
            offset_delta: count,
            value_len: 0,
        };
        if tail_bytes < record_size(empty) + RECORD_BYTES_MIN {
            return None;
        }
        put_record(&mut records, empty);
        count += 1;
    }
}

fn put_header(out: &mut BytesMut, size_bytes: usize, count: i32, timestamp_ms: i64) {
    out.put_i64(0); // base offset: the log assigns it
    out.put_i32((size_bytes - LOG_OVERHEAD_BYTES) as i32);
    out.put_i32(-1); // partition leader epoch, as producers send it
    out.put_i8(2); // magic
    out.put_u32(0); // crc, filled in once the bytes after it exist
    out.put_i16(0); // attributes: no compression, CreateTime
    out.put_i32(count - 1); // last offset delta
    out.put_i64(timestamp_ms);
    out.put_i64(timestamp_ms);
    out.put_i64(-1); // producer id
    out.put_i16(-1); // producer epoch
    out.put_i32(-1); // base sequence
    out.put_i32(count);
}

/// One record's layout: a null key, no headers, a value.
#[derive(Debug, Clone, Copy)]
struct Shape {
    offset_delta: i32,
    value_len: usize,
}

/// Appends a record of exactly `record_bytes` (length prefix included), or
/// returns None when varint widths make that size unreachable.
fn put_exact_record(out: &mut BytesMut, offset_delta: i32, record_bytes: usize) -> Option<()> {
    // The framing around the value is at most ~20 bytes of varints.
    let lens = (record_bytes.saturating_sub(24)..=record_bytes).rev();
    lens.map(|value_len| Shape {
        offset_delta,
        value_len,
    })
    .find(|&shape| record_size(shape) == record_bytes)
    .map(|shape| put_record(out, shape))
}

fn record_size(shape: Shape) -> usize {
    let body = record_body_size(shape);
    varint_size(body as i64) + body
}

fn record_body_size(shape: Shape) -> usize {
    1 // attributes
        + varint_size(0) // timestamp delta
        + varint_size(i64::from(shape.offset_delta))
        + varint_size(-1) // null key
        + varint_size(shape.value_len as i64)
        + shape.value_len
        + varint_size(0) // header count
}

fn put_record(out: &mut BytesMut, shape: Shape) {
    put_varint(out, record_body_size(shape) as i64);
    out.put_i8(0);
    put_varint(out, 0);
    put_varint(out, i64::from(shape.offset_delta));
    put_varint(out, -1);
    put_varint(out, shape.value_len as i64);
    // Not all zeros, so that no layer can cheat on sparse/zero pages.
    let seed = shape.offset_delta as u8;
    out.extend((0..shape.value_len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
    put_varint(out, 0);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn varint_size(value: i64) -> usize {
    let bits = 64 - zigzag(value).leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

fn put_varint(out: &mut BytesMut, value: i64) {
    let mut rest = zigzag(value);
    while rest >= 0x80 {
        out.put_u8((rest as u8) | 0x80);
        rest >>= 7;
    }
    out.put_u8(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_proto::record::validate;

    #[test]
    fn exact_sizes_validate() {
        for size in [80, 100, 1_000, 1_061, 1_200, 4_096, 16_384, 65_536, 1 << 20] {
            let batch = build_batch(size, 1_700_000_000_000).unwrap();
            assert_eq!(batch.len(), size);
            let header = validate(&batch).unwrap();
            assert_eq!(header.size_bytes(), size);
            assert_eq!(header.last_offset_delta + 1, header.record_count);
        }
    }

    #[test]
    fn every_size_fits_exactly() {
        // Every size while the tail record crosses the 1-to-2-byte varint
        // widths, then a stride (the tail stays under ~2 KB from there on).
        let small = BATCH_HEADER_BYTES + RECORD_BYTES_MIN..3_000;
        for size in small.chain((3_000..20_000).step_by(13)) {
            let batch = build_batch(size, 0).unwrap();
            assert_eq!(validate(&batch).map(|h| h.size_bytes()), Ok(size));
        }
    }

    #[test]
    fn sixteen_kib_holds_sixteen_records() {
        let header = validate(&build_batch(16_384, 0).unwrap()).unwrap();
        assert_eq!(header.record_count, 16);
        assert_eq!(header.producer_id, -1);
    }

    #[test]
    fn too_small_is_an_error() {
        assert_eq!(build_batch(70, 0), Err(BatchBuildError::TooSmall(70)));
    }

    #[test]
    fn varints_match_kafka_zigzag() {
        let mut out = BytesMut::new();
        for v in [0, -1, 1, 63, -64, 64, 300] {
            put_varint(&mut out, v);
        }
        assert_eq!(
            &out[..],
            &[0x00, 0x01, 0x02, 0x7e, 0x7f, 0x80, 0x01, 0xd8, 0x04]
        );
        assert_eq!([0, -1, 64, 300].map(varint_size), [1, 1, 2, 2]);
    }
}
