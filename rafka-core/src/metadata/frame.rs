//! How records sit in a metadata log or snapshot file: one frame per
//! commit, so a commit of several records is all-or-nothing on disk.
//!
//! ```text
//! length        u32   bytes after the crc field
//! crc           u32   CRC32C of those bytes
//! base_offset   i64   log offset of the first record
//! record_count  u32   at least 1
//! records             each: u32 length + MetadataRecord encoding
//! ```
//!
//! The CRC covers the offset too, so a frame read from the wrong place (a
//! misdirected write, a stale file) fails as surely as a torn one.

use super::record::{MetadataRecord, RecordError};

pub const FRAME_HEADER_BYTES: usize = 8;
/// `base_offset` + `record_count`.
const PREFIX_BYTES: usize = 12;

/// Largest `length` accepted: far above any real commit (a rebalance of a
/// million partitions is ~40 MiB), and a bound on what replay trusts.
pub const FRAME_LENGTH_MAX: u32 = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame incomplete: {have} of {need} bytes")]
    Incomplete { have: usize, need: usize },
    #[error("frame length {0} out of range")]
    BadLength(u32),
    #[error("frame crc {stored:#010x} does not match contents ({computed:#010x})")]
    CrcMismatch {
        stored: u32,
        computed: u32,
        /// Bytes the frame claims to span.
        frame_bytes: usize,
    },
    #[error("frame record {index} is malformed: {source}")]
    Record {
        index: u32,
        #[source]
        source: RecordError,
    },
    #[error("frame says {expected} records but holds {found}")]
    CountMismatch { expected: u32, found: u32 },
}

impl FrameError {
    /// Whether the error can come from the last append cut short by a
    /// crash, given `remaining` bytes from the frame's start to the end of
    /// the file. Each append is exactly one frame, so a frame with bytes
    /// after it was followed by another append and had been acknowledged:
    /// a bad CRC there is damage, not a tear.
    pub fn is_torn_tail(&self, remaining: usize) -> bool {
        match self {
            FrameError::Incomplete { .. } | FrameError::BadLength(_) => true,
            FrameError::CrcMismatch { frame_bytes, .. } => *frame_bytes == remaining,
            FrameError::Record { .. } | FrameError::CountMismatch { .. } => false,
        }
    }
}

/// One decoded frame and how many bytes it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub base_offset: i64,
    pub records: Vec<MetadataRecord>,
    pub frame_bytes: usize,
}

fn put_u32(out: &mut [u8], at: usize, v: u32) {
    out[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Appends one frame holding `records` (at least one) from `base_offset`.
pub fn encode_frame(base_offset: i64, records: &[MetadataRecord], out: &mut Vec<u8>) {
    assert!(!records.is_empty(), "a frame holds at least one record");
    let start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER_BYTES]);
    out.extend_from_slice(&base_offset.to_be_bytes());
    let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for record in records {
        let at = out.len();
        out.extend_from_slice(&[0u8; 4]);
        record.encode(out);
        let length = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
        put_u32(out, at, length);
    }
    let body = &out[start + FRAME_HEADER_BYTES..];
    let length = u32::try_from(body.len()).unwrap_or(u32::MAX);
    assert!(length <= FRAME_LENGTH_MAX, "metadata frame too long");
    let crc = crc32c::crc32c(body);
    put_u32(out, start, length);
    put_u32(out, start + 4, crc);
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(a)
}

/// Decodes the frame at the start of `buf` (which may hold more).
pub fn decode_frame(buf: &[u8]) -> Result<Frame, FrameError> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::Incomplete {
            have: buf.len(),
            need: FRAME_HEADER_BYTES,
        });
    }
    let length = be_u32(buf);
    if !(PREFIX_BYTES as u32..=FRAME_LENGTH_MAX).contains(&length) {
        return Err(FrameError::BadLength(length));
    }
    let need = FRAME_HEADER_BYTES + length as usize;
    if buf.len() < need {
        return Err(FrameError::Incomplete {
            have: buf.len(),
            need,
        });
    }
    let stored = be_u32(&buf[4..]);
    let body = &buf[FRAME_HEADER_BYTES..need];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(FrameError::CrcMismatch {
            stored,
            computed,
            frame_bytes: need,
        });
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&body[..8]);
    let expected = be_u32(&body[8..]);
    let records = decode_records(&body[PREFIX_BYTES..], expected)?;
    Ok(Frame {
        base_offset: i64::from_be_bytes(offset),
        records,
        frame_bytes: need,
    })
}

fn decode_records(mut rest: &[u8], expected: u32) -> Result<Vec<MetadataRecord>, FrameError> {
    let mut records = Vec::new();
    let mut index = 0u32;
    while !rest.is_empty() {
        let truncated = |needed| FrameError::Record {
            index,
            source: RecordError::Truncated { at: 0, needed },
        };
        if rest.len() < 4 {
            return Err(truncated(4 - rest.len()));
        }
        let length = be_u32(rest) as usize;
        rest = &rest[4..];
        if rest.len() < length {
            return Err(truncated(length - rest.len()));
        }
        let record = MetadataRecord::decode(&rest[..length])
            .map_err(|source| FrameError::Record { index, source })?;
        records.push(record);
        rest = &rest[length..];
        index = index.saturating_add(1);
    }
    if index != expected || index == 0 {
        return Err(FrameError::CountMismatch {
            expected,
            found: index,
        });
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::record::RemoveTopicRecord;
    use uuid::Uuid;

    fn record(n: u128) -> MetadataRecord {
        MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: Uuid::from_u128(n),
        })
    }

    #[test]
    fn round_trip_and_layout() {
        let mut buf = Vec::new();
        encode_frame(42, &[record(1), record(2)], &mut buf);
        // header 8, offset 8, count 4, two records of 4 + 18.
        assert_eq!(buf.len(), 8 + 12 + 2 * 22);
        assert_eq!(&buf[..4], &56u32.to_be_bytes());
        assert_eq!(&buf[8..16], &42i64.to_be_bytes());
        assert_eq!(&buf[16..20], &2u32.to_be_bytes());
        assert_eq!(&buf[20..24], &18u32.to_be_bytes());
        assert_eq!(be_u32(&buf[4..]), crc32c::crc32c(&buf[8..]));
        buf.extend_from_slice(b"next");
        let frame = decode_frame(&buf);
        assert_eq!(
            frame,
            Ok(Frame {
                base_offset: 42,
                records: vec![record(1), record(2)],
                frame_bytes: 64
            })
        );
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let mut buf = Vec::new();
        encode_frame(1, &[record(3), record(4)], &mut buf);
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(decode_frame(&bad).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn every_prefix_is_torn() {
        let mut buf = Vec::new();
        encode_frame(1, &[record(5)], &mut buf);
        for len in 0..buf.len() {
            let err = decode_frame(&buf[..len]).err();
            let torn = err.as_ref().is_some_and(|e| e.is_torn_tail(len));
            assert!(torn, "{len}: {err:?}");
        }
        assert_eq!(decode_frame(&[0u8; 16]), Err(FrameError::BadLength(0)));
        // A bad CRC is a tear only when nothing follows the frame.
        let mut bad = buf.clone();
        bad[20] ^= 1;
        let err = decode_frame(&bad).err();
        assert_eq!(err.as_ref().map(|e| e.is_torn_tail(bad.len())), Some(true));
        bad.extend_from_slice(&buf);
        let err = decode_frame(&bad).err();
        assert_eq!(err.as_ref().map(|e| e.is_torn_tail(bad.len())), Some(false));
    }
}
