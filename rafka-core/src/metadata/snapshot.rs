//! Metadata snapshot files: the whole image as records, so the log before
//! it can be deleted.
//!
//! ```text
//! magic         8 bytes  "RFKMSNAP"
//! version       u16      0
//! end_offset    i64      valid for every log record below this offset
//! record_count  u32
//! header_crc    u32      CRC32C of the 22 bytes above
//! frames        frames (see `frame`) holding record_count records in
//!               all, numbered from 0
//! ```
//!
//! The file is complete by construction (written as `.tmp`, synced, then
//! renamed), so any mismatch with its header is damage and is reported.

use std::path::Path;

use super::frame::{decode_frame, encode_frame, FrameError};
use super::image::ApplyError;
use super::record::MetadataRecord;
use crate::io::{IoError, Storage, StorageFile};

const MAGIC: [u8; 8] = *b"RFKMSNAP";
const VERSION: u16 = 0;
const HEADER_BYTES: usize = 8 + 2 + 8 + 4 + 4;
const SNAPSHOT_FRAME_RECORDS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot header is damaged or not a rafka snapshot")]
    BadHeader,
    #[error("snapshot version {0} is newer than this broker")]
    UnsupportedVersion(u16),
    #[error("snapshot says it ends at offset {found}, its name says {expected}")]
    WrongOffset { expected: i64, found: i64 },
    #[error("snapshot frame at byte {position}: {source}")]
    Frame {
        position: usize,
        #[source]
        source: FrameError,
    },
    #[error("snapshot frame after {index} records starts at {found}")]
    FrameOrder { index: u32, found: i64 },
    #[error("snapshot holds {found} records, its header says {expected}")]
    CountMismatch { expected: u32, found: u32 },
    #[error("snapshot record does not apply: {0}")]
    Apply(ApplyError),
}

fn header(end_offset: i64, record_count: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&end_offset.to_be_bytes());
    out.extend_from_slice(&record_count.to_be_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Encodes a snapshot file's full contents.
pub fn encode_snapshot(end_offset: i64, records: &[MetadataRecord]) -> Vec<u8> {
    let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
    assert!(records.len() < u32::MAX as usize, "snapshot too large");
    let mut out = header(end_offset, count);
    // Chunked so no frame approaches the frame size limit.
    for (chunk, records) in (0i64..).zip(records.chunks(SNAPSHOT_FRAME_RECORDS)) {
        encode_frame(chunk * SNAPSHOT_FRAME_RECORDS as i64, records, &mut out);
    }
    out
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Checks the header and returns the record count.
fn read_header(bytes: &[u8], end_offset: i64) -> Result<u32, SnapshotError> {
    if bytes.len() < HEADER_BYTES || bytes[..8] != MAGIC {
        return Err(SnapshotError::BadHeader);
    }
    let stored_crc = u32::from_be_bytes(array(bytes, 22));
    if stored_crc != crc32c::crc32c(&bytes[..22]) {
        return Err(SnapshotError::BadHeader);
    }
    let version = u16::from_be_bytes(array(bytes, 8));
    if version != VERSION {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    let found = i64::from_be_bytes(array(bytes, 10));
    if found != end_offset {
        return Err(SnapshotError::WrongOffset {
            expected: end_offset,
            found,
        });
    }
    Ok(u32::from_be_bytes(array(bytes, 18)))
}

/// Decodes a snapshot file named for `end_offset`.
pub fn read_snapshot(bytes: &[u8], end_offset: i64) -> Result<Vec<MetadataRecord>, SnapshotError> {
    let expected = read_header(bytes, end_offset)?;
    let mut records = Vec::new();
    let mut position = HEADER_BYTES;
    let mut index = 0u32;
    while position < bytes.len() {
        let frame = decode_frame(&bytes[position..])
            .map_err(|source| SnapshotError::Frame { position, source })?;
        if frame.base_offset != i64::from(index) {
            return Err(SnapshotError::FrameOrder {
                index,
                found: frame.base_offset,
            });
        }
        let count = u32::try_from(frame.records.len()).unwrap_or(u32::MAX);
        index = index.saturating_add(count);
        records.extend(frame.records);
        position += frame.frame_bytes;
    }
    if index != expected {
        return Err(SnapshotError::CountMismatch {
            expected,
            found: index,
        });
    }
    Ok(records)
}

/// Writes the snapshot durably at `path`: temp file, sync, rename, sync of
/// the directory. A crash at any point leaves either no snapshot or a whole
/// one under `path`.
pub async fn write_snapshot<S: Storage>(
    storage: &S,
    path: &Path,
    end_offset: i64,
    records: &[MetadataRecord],
) -> Result<(), IoError> {
    let bytes = encode_snapshot(end_offset, records);
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = Path::new(&temp);
    let file = storage.open(temp).await?;
    file.truncate(0).await?;
    file.write_at(0, &bytes).await?;
    file.sync_data().await?;
    file.close().await?;
    storage.rename(temp, path).await?;
    match path.parent() {
        Some(dir) => storage.sync_dir(dir).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::record::RemoveTopicRecord;
    use uuid::Uuid;

    fn records(n: u128) -> Vec<MetadataRecord> {
        (0..n)
            .map(|i| {
                MetadataRecord::RemoveTopic(RemoveTopicRecord {
                    topic_id: Uuid::from_u128(i),
                })
            })
            .collect()
    }

    #[test]
    fn round_trip() {
        let bytes = encode_snapshot(77, &records(3));
        assert_eq!(&bytes[..8], b"RFKMSNAP");
        assert_eq!(read_snapshot(&bytes, 77), Ok(records(3)));
        assert_eq!(
            read_snapshot(&bytes, 78),
            Err(SnapshotError::WrongOffset {
                expected: 78,
                found: 77
            })
        );
    }

    #[test]
    fn damage_is_reported() {
        let bytes = encode_snapshot(5, &records(2));
        let short = &bytes[..bytes.len() - 1];
        assert!(matches!(
            read_snapshot(short, 5),
            Err(SnapshotError::Frame { .. })
        ));
        let mut lying = header(5, 2);
        encode_frame(0, &records(1), &mut lying);
        assert_eq!(
            read_snapshot(&lying, 5),
            Err(SnapshotError::CountMismatch {
                expected: 2,
                found: 1
            })
        );
        for byte in 0..HEADER_BYTES {
            let mut bad = bytes.clone();
            bad[byte] ^= 0x10;
            assert!(read_snapshot(&bad, 5).is_err(), "byte {byte}");
        }
    }
}
