//! Kafka framing: every request and response is a 4-byte big-endian signed
//! size followed by exactly that many bytes.
//!
//! Reading: [`FrameDecoder`] splits whole frames off a connection's read
//! buffer and refuses a size prefix before the body arrives when it is
//! negative, zero or above the limit (Kafka's `socket.request.max.bytes`),
//! so a hostile prefix never makes the reader buffer up to it.
//!
//! Writing: [`encode_frame`] copies a finished body after its prefix;
//! [`begin_frame`] / [`finish_frame`] reserve the prefix and patch it once the
//! body has been encoded in place, so a response is serialized exactly once;
//! [`frame_prefix`] gives the prefix alone for vectored (zero-copy) writes.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Bytes taken by the size prefix.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Kafka's default `socket.request.max.bytes` (100 MiB).
pub const FRAME_BYTES_MAX_DEFAULT: usize = 104_857_600;

/// The largest body a prefix can announce.
const FRAME_BYTES_MAX_ENCODABLE: usize = i32::MAX as usize;

/// Why an incoming size prefix was refused. Each is fatal for the connection:
/// the stream can no longer be re-synchronised.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame size prefix is negative ({size_bytes})")]
    NegativeSize { size_bytes: i32 },
    #[error("frame size prefix is zero")]
    ZeroSize,
    #[error("frame of {size_bytes} bytes exceeds the limit of {frame_bytes_max} bytes")]
    TooLarge {
        size_bytes: usize,
        frame_bytes_max: usize,
    },
}

/// Why an outgoing frame could not be written.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameEncodeError {
    #[error("frame body of {size_bytes} bytes does not fit a 4-byte signed size prefix")]
    TooLarge { size_bytes: usize },
}

/// Splits size-prefixed frames off a read buffer, enforcing a size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    frame_bytes_max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(FRAME_BYTES_MAX_DEFAULT)
    }
}

impl FrameDecoder {
    /// A decoder accepting frame bodies of at most `frame_bytes_max` bytes
    /// (the prefix not counted, as in Kafka).
    pub fn new(frame_bytes_max: usize) -> Self {
        FrameDecoder { frame_bytes_max }
    }

    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Splits one whole frame body (without its prefix) off the front of
    /// `buf`. `Ok(None)` means more bytes are needed; `buf` is then left
    /// untouched. The prefix is checked as soon as its 4 bytes are present.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(size_bytes) = self.peek_size(buf)? else {
            return Ok(None);
        };
        if buf.len() - FRAME_PREFIX_BYTES < size_bytes {
            return Ok(None);
        }
        buf.advance(FRAME_PREFIX_BYTES);
        Ok(Some(buf.split_to(size_bytes).freeze()))
    }

    /// How many more bytes `buf` needs before [`FrameDecoder::decode`] can
    /// return a frame (0 when one is ready), so a reader can reserve exactly
    /// that much. An invalid prefix is reported the same way `decode` does.
    pub fn bytes_needed(&self, buf: &[u8]) -> Result<usize, FrameError> {
        match self.peek_size(buf)? {
            None => Ok(FRAME_PREFIX_BYTES - buf.len()),
            Some(size_bytes) => Ok((FRAME_PREFIX_BYTES + size_bytes).saturating_sub(buf.len())),
        }
    }

    /// The validated body size announced at the front of `buf`, if the
    /// prefix has arrived.
    fn peek_size(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = buf.first_chunk::<FRAME_PREFIX_BYTES>() else {
            return Ok(None);
        };
        let size = i32::from_be_bytes(*prefix);
        let size_bytes = match usize::try_from(size) {
            Err(_) => return Err(FrameError::NegativeSize { size_bytes: size }),
            Ok(0) => return Err(FrameError::ZeroSize),
            Ok(size_bytes) => size_bytes,
        };
        if size_bytes > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                size_bytes,
                frame_bytes_max: self.frame_bytes_max,
            });
        }
        Ok(Some(size_bytes))
    }
}

/// The 4-byte prefix announcing a body of `body_bytes` bytes.
pub fn frame_prefix(body_bytes: usize) -> Result<[u8; FRAME_PREFIX_BYTES], FrameEncodeError> {
    let size = i32::try_from(body_bytes).map_err(|_| FrameEncodeError::TooLarge {
        size_bytes: body_bytes,
    })?;
    Ok(size.to_be_bytes())
}

/// Appends `body` to `out` behind its size prefix.
pub fn encode_frame(body: &[u8], out: &mut BytesMut) -> Result<(), FrameEncodeError> {
    let prefix = frame_prefix(body.len())?;
    out.reserve(FRAME_PREFIX_BYTES + body.len());
    out.put_slice(&prefix);
    out.put_slice(body);
    Ok(())
}

/// Where a frame started in an output buffer; returned by [`begin_frame`]
/// and consumed by [`finish_frame`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a begun frame must be finished or its prefix stays zero"]
pub struct FrameStart {
    prefix_offset: usize,
}

/// Reserves the size prefix at the end of `out`; encode the body right after
/// it, then call [`finish_frame`].
pub fn begin_frame(out: &mut BytesMut) -> FrameStart {
    let prefix_offset = out.len();
    out.put_bytes(0, FRAME_PREFIX_BYTES);
    FrameStart { prefix_offset }
}

/// Writes the size of everything appended since `start` into its prefix.
/// On error the frame is removed from `out` again, so the buffer never holds
/// a frame with a wrong prefix.
pub fn finish_frame(out: &mut BytesMut, start: FrameStart) -> Result<(), FrameEncodeError> {
    let body_offset = start.prefix_offset + FRAME_PREFIX_BYTES;
    // Truncating the buffer below a begun frame is a bug in the caller.
    assert!(out.len() >= body_offset, "frame prefix was truncated away");
    let body_bytes = out.len() - body_offset;
    if body_bytes > FRAME_BYTES_MAX_ENCODABLE {
        out.truncate(start.prefix_offset);
        return Err(FrameEncodeError::TooLarge {
            size_bytes: body_bytes,
        });
    }
    let prefix = frame_prefix(body_bytes)?;
    out[start.prefix_offset..body_offset].copy_from_slice(&prefix);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        encode_frame(body, &mut out).unwrap();
        out
    }

    #[test]
    fn decodes_frames_one_at_a_time_and_keeps_the_rest() {
        let mut buf = framed(b"abc");
        buf.extend_from_slice(&framed(b"de"));
        buf.extend_from_slice(&[0, 0]);
        let mut decoder = FrameDecoder::default();
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"abc"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), &b"de"[..]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], &[0, 0]);
    }

    #[test]
    fn waits_for_the_whole_body_and_tells_how_much_is_missing() {
        let decoder = FrameDecoder::default();
        assert_eq!(decoder.bytes_needed(&[]).unwrap(), 4);
        assert_eq!(decoder.bytes_needed(&[0, 0]).unwrap(), 2);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 5, 1, 2][..]);
        assert_eq!(decoder.bytes_needed(&buf).unwrap(), 3);
        assert_eq!(FrameDecoder::default().decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 6);
        buf.extend_from_slice(&[3, 4, 5]);
        assert_eq!(decoder.bytes_needed(&buf).unwrap(), 0);
        let frame = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(&frame[..], &[1, 2, 3, 4, 5]);
        assert!(buf.is_empty());
    }

    #[test]
    fn refuses_bad_prefixes_before_the_body_arrives() {
        let mut decoder = FrameDecoder::new(1000);
        let mut negative = BytesMut::from(&[0xff_u8, 0xff, 0xff, 0xfe][..]);
        assert_eq!(
            decoder.decode(&mut negative),
            Err(FrameError::NegativeSize { size_bytes: -2 })
        );
        let mut zero = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(decoder.decode(&mut zero), Err(FrameError::ZeroSize));
        let mut large = BytesMut::from(&1001_i32.to_be_bytes()[..]);
        let too_large = FrameError::TooLarge {
            size_bytes: 1001,
            frame_bytes_max: 1000,
        };
        assert_eq!(decoder.decode(&mut large), Err(too_large.clone()));
        assert_eq!(decoder.bytes_needed(&large), Err(too_large));
        let mut at_limit = BytesMut::from(&1000_i32.to_be_bytes()[..]);
        assert_eq!(decoder.decode(&mut at_limit), Ok(None));
    }

    #[test]
    fn begin_and_finish_patch_the_prefix_in_place() {
        let mut out = BytesMut::from(&b"xy"[..]);
        let start = begin_frame(&mut out);
        out.put_slice(b"hello");
        finish_frame(&mut out, start).unwrap();
        assert_eq!(&out[..], b"xy\x00\x00\x00\x05hello");
        let mut empty = BytesMut::new();
        let start = begin_frame(&mut empty);
        finish_frame(&mut empty, start).unwrap();
        assert_eq!(&empty[..], &[0, 0, 0, 0]);
    }

    #[test]
    fn prefix_refuses_sizes_beyond_i32() {
        assert_eq!(frame_prefix(7).unwrap(), [0, 0, 0, 7]);
        assert_eq!(
            frame_prefix(1 << 31),
            Err(FrameEncodeError::TooLarge {
                size_bytes: 1 << 31
            })
        );
    }
}
