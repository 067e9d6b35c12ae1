//! One record of a quorum log or snapshot file.
//!
//! ```text
//! length      u32   bytes of kind + payload, 1 ..= FRAME_BYTES_MAX
//! crc         u32   CRC32C of kind + payload
//! header_crc  u32   CRC32C of the 8 bytes above
//! kind        u8    see `Kind`
//! payload           protobuf bytes (raft's eraftpb); see `Kind`
//! ```
//!
//! The header has its own CRC so a flipped bit in `length` is seen as
//! damage at once, instead of a frame that seems to run past the end of the
//! file (which would pass for a torn tail and cut acknowledged frames off).
//! It also lets recovery look for a valid frame *after* a bad one: finding
//! one proves the bad frame was followed by later writes, so it had been
//! acknowledged and is damage, not a tear.

/// `length` + `crc` + `header_crc`.
pub const FRAME_HEADER_BYTES: usize = 12;

/// Largest `length` accepted: far above any raft entry of the metadata log,
/// and a bound on what recovery allocates from a length read off the disk.
pub const FRAME_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// What a frame holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A raft `Entry`.
    Entry = 1,
    /// A raft `HardState`.
    HardState = 2,
    /// A raft `ConfState` (the initial voters; later ones live in snapshots).
    ConfState = 3,
    /// Closes one `persist`: payload = u32 count of the frames before it in
    /// its group. A group without its `Commit` was never acknowledged.
    Commit = 4,
    /// Opens a snapshot file: u64 data length + a raft `Snapshot` without
    /// its data.
    Snapshot = 5,
    /// A chunk of the snapshot's data, after the `Snapshot` frame.
    SnapshotData = 6,
}

impl Kind {
    fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Entry,
            2 => Kind::HardState,
            3 => Kind::ConfState,
            4 => Kind::Commit,
            5 => Kind::Snapshot,
            6 => Kind::SnapshotData,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame incomplete: {have} of {need} bytes")]
    Incomplete { have: usize, need: usize },
    #[error("frame header crc does not match")]
    BadHeader,
    #[error("frame length {0} out of range")]
    BadLength(u32),
    #[error("frame crc {stored:#010x} does not match contents ({computed:#010x})")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("frame kind {0} unknown")]
    UnknownKind(u8),
}

/// One decoded frame, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: Kind,
    pub payload: &'a [u8],
    pub frame_bytes: usize,
}

fn be_u32(bytes: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&bytes[..4]);
    u32::from_be_bytes(a)
}

/// Appends one frame. The caller keeps `payload` under `FRAME_BYTES_MAX`
/// (checked: a longer frame would be refused by recovery).
pub fn encode_frame(kind: Kind, payload: &[u8], out: &mut Vec<u8>) {
    let length = payload.len() + 1;
    assert!(length <= FRAME_BYTES_MAX as usize, "quorum frame too long");
    let length = length as u32;
    let mut crc = crc32c::crc32c(&[kind as u8]);
    crc = crc32c::crc32c_append(crc, payload);
    let start = out.len();
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&crc.to_be_bytes());
    let header_crc = crc32c::crc32c(&out[start..start + 8]);
    out.extend_from_slice(&header_crc.to_be_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

/// Decodes the frame at the start of `buf` (which may hold more).
pub fn decode_frame(buf: &[u8]) -> Result<Frame<'_>, FrameError> {
    if buf.len() < FRAME_HEADER_BYTES {
        return Err(FrameError::Incomplete {
            have: buf.len(),
            need: FRAME_HEADER_BYTES,
        });
    }
    if be_u32(&buf[8..]) != crc32c::crc32c(&buf[..8]) {
        return Err(FrameError::BadHeader);
    }
    let length = be_u32(buf);
    if !(1..=FRAME_BYTES_MAX).contains(&length) {
        return Err(FrameError::BadLength(length));
    }
    let need = FRAME_HEADER_BYTES + length as usize;
    if buf.len() < need {
        return Err(FrameError::Incomplete {
            have: buf.len(),
            need,
        });
    }
    let body = &buf[FRAME_HEADER_BYTES..need];
    let stored = be_u32(&buf[4..]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(FrameError::CrcMismatch { stored, computed });
    }
    let kind = Kind::from_u8(body[0]).ok_or(FrameError::UnknownKind(body[0]))?;
    Ok(Frame {
        kind,
        payload: &body[1..],
        frame_bytes: need,
    })
}

/// Whether a whole valid frame starts anywhere in `buf` after its first
/// byte: proof that a bad frame at the start of `buf` was written over by
/// nothing later, i.e. was followed by more appends.
pub fn valid_frame_after(buf: &[u8]) -> bool {
    (1..buf.len()).any(|at| decode_frame(&buf[at..]).is_ok())
}

/// The payload of a `Commit` frame closing a group of `frames` frames.
pub fn commit_payload(frames: u32) -> [u8; 4] {
    frames.to_be_bytes()
}

/// The frame count of a `Commit` payload; None if malformed.
pub fn parse_commit(payload: &[u8]) -> Option<u32> {
    (payload.len() == 4).then(|| be_u32(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_layout() {
        let mut buf = Vec::new();
        encode_frame(Kind::Entry, b"abc", &mut buf);
        assert_eq!(buf.len(), 12 + 1 + 3);
        assert_eq!(&buf[..4], &4u32.to_be_bytes());
        assert_eq!(be_u32(&buf[4..]), crc32c::crc32c(&buf[12..]));
        assert_eq!(be_u32(&buf[8..]), crc32c::crc32c(&buf[..8]));
        assert_eq!(buf[12], 1);
        buf.extend_from_slice(b"more");
        assert_eq!(
            decode_frame(&buf),
            Ok(Frame {
                kind: Kind::Entry,
                payload: b"abc",
                frame_bytes: 16
            })
        );
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let mut buf = Vec::new();
        encode_frame(Kind::HardState, b"\x08\x01\x10\x02", &mut buf);
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(decode_frame(&bad).is_err(), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn prefixes_are_incomplete_and_lengths_are_bounded() {
        let mut buf = Vec::new();
        encode_frame(Kind::Commit, &commit_payload(3), &mut buf);
        for len in 0..buf.len() {
            assert!(matches!(
                decode_frame(&buf[..len]),
                Err(FrameError::Incomplete { .. })
            ));
        }
        // A length beyond the cap, with a valid header crc, is refused
        // before anything is allocated or read.
        let mut huge = Vec::new();
        huge.extend_from_slice(&(FRAME_BYTES_MAX + 1).to_be_bytes());
        huge.extend_from_slice(&0u32.to_be_bytes());
        let header_crc = crc32c::crc32c(&huge);
        huge.extend_from_slice(&header_crc.to_be_bytes());
        assert_eq!(
            decode_frame(&huge),
            Err(FrameError::BadLength(FRAME_BYTES_MAX + 1))
        );
        assert_eq!(decode_frame(&[0u8; 16]), Err(FrameError::BadHeader));
    }

    #[test]
    fn a_valid_frame_after_damage_is_found() {
        let mut buf = Vec::new();
        encode_frame(Kind::Entry, b"first", &mut buf);
        encode_frame(Kind::Entry, b"second", &mut buf);
        buf[0] ^= 0x80;
        assert!(decode_frame(&buf).is_err());
        assert!(valid_frame_after(&buf));
        let mut torn = Vec::new();
        encode_frame(Kind::Entry, b"only", &mut torn);
        torn.pop();
        assert!(!valid_frame_after(&torn));
        assert_eq!(parse_commit(&commit_payload(7)), Some(7));
        assert_eq!(parse_commit(b"12345"), None);
    }
}
