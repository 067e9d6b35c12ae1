//! Kafka's zigzag varints (i32, at most 5 bytes) and varlongs (i64, at most
//! 10 bytes), the encoding of every length and delta inside a v2 record.
//!
//! Decoding is strict: a value that needs more bytes than the type allows,
//! or whose last byte carries bits beyond the type's width, is rejected
//! rather than silently truncated, so one byte sequence has one meaning.

use bytes::BufMut;

/// Longest encoding of a 32-bit varint.
pub const VARINT_BYTES_MAX: usize = 5;
/// Longest encoding of a 64-bit varlong.
pub const VARLONG_BYTES_MAX: usize = 10;

/// Why a varint could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    #[error("varint truncated")]
    Truncated,
    #[error("varint longer than {max_bytes} bytes or wider than its type")]
    Overlong { max_bytes: usize },
}

/// Decodes an unsigned LEB128 value of at most `max_bytes` bytes whose
/// width is `bits`; returns it and the bytes consumed.
#[inline]
fn read_unsigned(buf: &[u8], max_bytes: usize, bits: u32) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (index, &byte) in buf.iter().take(max_bytes).enumerate() {
        let shift = 7 * index as u32;
        let payload = u64::from(byte & 0x7f);
        // The last allowed byte may only fill the bits the type has left.
        if index + 1 == max_bytes && payload >> (bits - shift) != 0 {
            return Err(VarintError::Overlong { max_bytes });
        }
        value |= payload << shift;
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    if buf.len() >= max_bytes {
        Err(VarintError::Overlong { max_bytes })
    } else {
        Err(VarintError::Truncated)
    }
}

/// Decodes a zigzag varint (i32); returns the value and the bytes consumed.
#[inline]
pub fn read_varint(buf: &[u8]) -> Result<(i32, usize), VarintError> {
    if let Some(&byte) = buf.first() {
        // One-byte values are by far the most common (small deltas, lengths).
        if byte & 0x80 == 0 {
            return Ok((zigzag_decode_32(u32::from(byte)), 1));
        }
    }
    let (raw, used) = read_unsigned(buf, VARINT_BYTES_MAX, 32)?;
    Ok((zigzag_decode_32(raw as u32), used))
}

/// Decodes a zigzag varlong (i64); returns the value and the bytes consumed.
#[inline]
pub fn read_varlong(buf: &[u8]) -> Result<(i64, usize), VarintError> {
    let (raw, used) = read_unsigned(buf, VARLONG_BYTES_MAX, 64)?;
    Ok((zigzag_decode_64(raw), used))
}

#[inline]
fn zigzag_decode_32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

#[inline]
fn zigzag_decode_64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

#[inline]
fn zigzag_encode_32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

#[inline]
fn zigzag_encode_64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

#[inline]
fn write_unsigned(out: &mut impl BufMut, mut raw: u64) {
    while raw >= 0x80 {
        out.put_u8((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

/// Appends `value` as a zigzag varint.
#[inline]
pub fn write_varint(out: &mut impl BufMut, value: i32) {
    write_unsigned(out, u64::from(zigzag_encode_32(value)));
}

/// Appends `value` as a zigzag varlong.
#[inline]
pub fn write_varlong(out: &mut impl BufMut, value: i64) {
    write_unsigned(out, zigzag_encode_64(value));
}

#[inline]
fn unsigned_size(raw: u64) -> usize {
    // Each byte carries 7 bits; zero still takes one byte.
    let bits = 64 - (raw | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Bytes [`write_varint`] uses for `value`.
#[inline]
pub fn varint_size(value: i32) -> usize {
    unsigned_size(u64::from(zigzag_encode_32(value)))
}

/// Bytes [`write_varlong`] uses for `value`.
#[inline]
pub fn varlong_size(value: i64) -> usize {
    unsigned_size(zigzag_encode_64(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_varint(value: i32) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint(&mut out, value);
        out
    }

    fn encode_varlong(value: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_varlong(&mut out, value);
        out
    }

    #[test]
    fn known_encodings_match_kafka() {
        assert_eq!(encode_varint(0), [0x00]);
        assert_eq!(encode_varint(-1), [0x01]);
        assert_eq!(encode_varint(1), [0x02]);
        assert_eq!(encode_varint(63), [0x7e]);
        assert_eq!(encode_varint(-64), [0x7f]);
        assert_eq!(encode_varint(64), [0x80, 0x01]);
        assert_eq!(encode_varint(300), [0xd8, 0x04]);
        assert_eq!(encode_varint(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(encode_varint(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(encode_varlong(i64::MIN).len(), 10);
        assert_eq!(encode_varlong(i64::MIN)[9], 0x01);
    }

    #[test]
    fn roundtrip_edges() {
        for value in [0, 1, -1, 63, 64, -64, -65, 8191, 8192, i32::MAX, i32::MIN] {
            let bytes = encode_varint(value);
            assert_eq!(bytes.len(), varint_size(value));
            assert_eq!(read_varint(&bytes), Ok((value, bytes.len())));
        }
        for value in [0, -1, 1, i64::from(i32::MAX) + 1, i64::MAX, i64::MIN] {
            let bytes = encode_varlong(value);
            assert_eq!(bytes.len(), varlong_size(value));
            assert_eq!(read_varlong(&bytes), Ok((value, bytes.len())));
        }
    }

    #[test]
    fn reads_only_its_own_bytes() {
        assert_eq!(read_varint(&[0xd8, 0x04, 0xff]), Ok((300, 2)));
    }

    #[test]
    fn truncated_is_an_error() {
        assert_eq!(read_varint(&[]), Err(VarintError::Truncated));
        assert_eq!(read_varint(&[0x80, 0x80]), Err(VarintError::Truncated));
        assert_eq!(read_varlong(&[0xff; 9]), Err(VarintError::Truncated));
    }

    #[test]
    fn overlong_is_an_error() {
        let six = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(
            read_varint(&six),
            Err(VarintError::Overlong { max_bytes: 5 })
        );
        // Fifth byte with bits past 32.
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]),
            Err(VarintError::Overlong { max_bytes: 5 })
        );
        assert_eq!(
            read_varlong(&[0xff; 11]),
            Err(VarintError::Overlong { max_bytes: 10 })
        );
        let mut wide = [0xff; 10];
        wide[9] = 0x02;
        assert_eq!(
            read_varlong(&wide),
            Err(VarintError::Overlong { max_bytes: 10 })
        );
    }
}
