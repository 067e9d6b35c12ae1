//! File names, listing, and the bytes of log groups and snapshot files.

use std::path::Path;

use bytes::Bytes;
use protobuf::Message;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};

use super::frame::{commit_payload, decode_frame, encode_frame, Kind, FRAME_BYTES_MAX};
use super::{Damage, Invalid, QuorumLogError};
use crate::io::{IoError, Storage, StorageFile};
use crate::metadata::log::read_all;

/// Snapshot data per `SnapshotData` frame: well under the frame limit.
const SNAPSHOT_CHUNK_BYTES: usize = 16 * 1024 * 1024;

/// Room left in a frame for a payload.
const PAYLOAD_BYTES_MAX: usize = FRAME_BYTES_MAX as usize - 1;

pub(super) fn log_name(base: u64) -> String {
    format!("{base:020}.log")
}

pub(super) fn snapshot_name(index: u64) -> String {
    format!("{index:020}.snapshot")
}

pub(super) use crate::io::numbered::list;
#[cfg(test)]
use crate::io::numbered::parse_name;

fn encode<M: Message>(message: &M) -> Result<Vec<u8>, QuorumLogError> {
    message.write_to_bytes().map_err(QuorumLogError::Encode)
}

/// Appends one group: `conf_state`, `entries`, `hard_state` (each if
/// given), then the `Commit` frame that makes it count. Entries go before
/// the hard state so its commit index never points past what replay has
/// seen.
pub(super) fn encode_group(
    conf_state: Option<&ConfState>,
    entries: &[Entry],
    hard_state: Option<&HardState>,
    out: &mut Vec<u8>,
) -> Result<(), QuorumLogError> {
    let mut frames = 0u32;
    if let Some(conf_state) = conf_state {
        encode_frame(Kind::ConfState, &encode(conf_state)?, out);
        frames += 1;
    }
    for entry in entries {
        let payload = encode(entry)?;
        if payload.len() > PAYLOAD_BYTES_MAX {
            let (index, bytes) = (entry.index, payload.len());
            return Err(Invalid::EntryTooLarge { index, bytes }.into());
        }
        encode_frame(Kind::Entry, &payload, out);
        frames += 1;
    }
    if let Some(hard_state) = hard_state {
        encode_frame(Kind::HardState, &encode(hard_state)?, out);
        frames += 1;
    }
    encode_frame(Kind::Commit, &commit_payload(frames), out);
    Ok(())
}

/// A snapshot file's bytes: the `Snapshot` frame (data length + the
/// snapshot without its data), then the data in chunks.
pub(super) fn encode_snapshot(snapshot: &Snapshot) -> Result<Vec<u8>, QuorumLogError> {
    let mut head = snapshot.clone();
    head.data = Bytes::new();
    let mut payload = (snapshot.data.len() as u64).to_be_bytes().to_vec();
    payload.extend_from_slice(&encode(&head)?);
    let mut out = Vec::with_capacity(snapshot.data.len() + payload.len() + 64);
    encode_frame(Kind::Snapshot, &payload, &mut out);
    for chunk in snapshot.data.chunks(SNAPSHOT_CHUNK_BYTES) {
        encode_frame(Kind::SnapshotData, chunk, &mut out);
    }
    Ok(out)
}

/// Decodes a snapshot file named for `index`. The file was complete when
/// its name appeared, so any flaw is damage.
fn decode_snapshot(bytes: &[u8], index: u64) -> Result<Snapshot, (u64, Damage)> {
    let head = decode_frame(bytes).map_err(|e| (0, e.into()))?;
    if head.kind != Kind::Snapshot || head.payload.len() < 8 {
        return Err((0, Damage::UnexpectedKind(head.kind)));
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&head.payload[..8]);
    let expected = u64::from_be_bytes(length);
    let mut snapshot = Snapshot::parse_from_bytes(&head.payload[8..]).map_err(|source| {
        let kind = Kind::Snapshot;
        (0, Damage::Record { kind, source })
    })?;
    let found = snapshot.get_metadata().index;
    if found != index {
        return Err((
            0,
            Damage::SnapshotIndex {
                named: index,
                found,
            },
        ));
    }
    let mut data = Vec::with_capacity(bytes.len() - head.frame_bytes);
    let mut position = head.frame_bytes;
    while position < bytes.len() {
        let frame = decode_frame(&bytes[position..]).map_err(|e| (position as u64, e.into()))?;
        if frame.kind != Kind::SnapshotData {
            return Err((position as u64, Damage::UnexpectedKind(frame.kind)));
        }
        data.extend_from_slice(frame.payload);
        position += frame.frame_bytes;
    }
    if data.len() as u64 != expected {
        let found = data.len() as u64;
        return Err((0, Damage::SnapshotSize { expected, found }));
    }
    snapshot.data = Bytes::from(data);
    Ok(snapshot)
}

pub(super) async fn read_snapshot<S: Storage>(
    storage: &S,
    dir: &Path,
    index: u64,
) -> Result<Snapshot, QuorumLogError> {
    let path = dir.join(snapshot_name(index));
    let damaged = |position, damage| QuorumLogError::Damaged {
        path: path.clone(),
        position,
        damage,
    };
    let file = match storage.open_existing(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(damaged(0, Damage::MissingSnapshot))
        }
        Err(e) => return Err(e.into()),
    };
    let bytes = read_all(&file).await?;
    file.close().await?;
    decode_snapshot(&bytes, index).map_err(|(position, damage)| damaged(position, damage))
}

/// Writes `bytes` as `dir/name` so that the name exists only with all of
/// them durable: `.tmp`, sync, rename, directory sync.
pub(super) async fn write_atomically<S: Storage>(
    storage: &S,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<(), IoError> {
    let path = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    let file = storage.open(&temp).await?;
    file.truncate(0).await?;
    file.write_at(0, bytes).await?;
    file.sync_data().await?;
    file.close().await?;
    storage.rename(&temp, &path).await?;
    storage.sync_dir(dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(index: u64, data: &[u8]) -> Snapshot {
        let mut s = Snapshot::default();
        s.mut_metadata().index = index;
        s.mut_metadata().term = 4;
        s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        s.data = Bytes::copy_from_slice(data);
        s
    }

    #[test]
    fn snapshot_round_trip_and_damage() {
        let original = snapshot(9, b"image bytes");
        let bytes = encode_snapshot(&original).unwrap_or_default();
        assert_eq!(decode_snapshot(&bytes, 9).ok(), Some(original.clone()));
        let wrong_name = decode_snapshot(&bytes, 8).err().map(|(_, d)| d.to_string());
        assert_eq!(
            wrong_name.as_deref(),
            Some("snapshot holds index 9, its name says 8")
        );
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x04;
            assert!(decode_snapshot(&bad, 9).is_err(), "byte {at}");
        }
        // A lost last chunk is caught by the length in the head.
        let lying = &bytes[..bytes.len() - (12 + 1 + 11)];
        assert!(matches!(
            decode_snapshot(lying, 9),
            Err((
                0,
                Damage::SnapshotSize {
                    expected: 11,
                    found: 0
                }
            ))
        ));
        let empty = encode_snapshot(&snapshot(9, b"")).unwrap_or_default();
        assert_eq!(decode_snapshot(&empty, 9).ok(), Some(snapshot(9, b"")));
    }

    #[test]
    fn names_parse_back() {
        assert_eq!(log_name(7), "00000000000000000007.log");
        assert_eq!(parse_name(&log_name(7), ".log"), Some(7));
        assert_eq!(
            parse_name(&snapshot_name(u64::MAX), ".snapshot"),
            Some(u64::MAX)
        );
        assert_eq!(parse_name("7.log", ".log"), None);
        assert_eq!(parse_name("0000000000000000000x.log", ".log"), None);
    }
}
