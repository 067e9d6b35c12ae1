//! The controller's durable metadata log (shard 0 only), over [`Storage`].
//!
//! # Files, in `<first log dir>/__rafka_metadata/`
//! - `<base offset, 20 digits>.log`: one frame (see `frame`) per append,
//!   records numbered `base, base+1, ...`. An append is one write plus
//!   `sync_data` before the caller acknowledges anything.
//! - `<end offset, 20 digits>.snapshot`: the whole image as records, valid
//!   for every record below `end`; written as `.snapshot.tmp`, synced,
//!   renamed, directory synced. The log then restarts at `<end>.log` and
//!   older logs and snapshots are deleted.
//!
//! Not Kafka's `__cluster_metadata-0`: that directory holds KRaft record
//! batches, and giving a different format the same name would mislead
//! Kafka's tools pointed at a rafka data dir. No `-<digits>` suffix, so a
//! scan for partition dirs never mistakes it for one.
//!
//! # Recovery
//! Load the newest snapshot, then replay the logs from its offset. An
//! incomplete last frame of the last log, or one failing its CRC with
//! nothing after it, is a torn, never acknowledged append: the file is
//! truncated there. Anything else (a bad frame with frames after it, a bad
//! frame in an older log, a valid CRC over the wrong offset or unreadable
//! records, a damaged snapshot) means the disk cannot be trusted: open
//! fails rather than drop acknowledged records or build a wrong image.

use std::path::{Path, PathBuf};

use super::frame::{decode_frame, encode_frame, FrameError};
use super::image::{ApplyError, MetadataImage};
use super::record::MetadataRecord;
use super::snapshot::{read_snapshot, write_snapshot, SnapshotError};
use crate::io::{IoError, Storage, StorageFile};

/// Directory name of the metadata log under the first log dir.
pub const METADATA_DIR_NAME: &str = "__rafka_metadata";

/// Records between snapshots by default: replay stays well under a second
/// while snapshots (the whole image) stay rare.
pub const SNAPSHOT_INTERVAL_RECORDS_DEFAULT: u64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{}: corrupt frame at byte {position}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        #[source]
        source: FrameError,
    },
    #[error("{}: frame at byte {position} has offset {found}, expected {expected}", path.display())]
    OffsetMismatch {
        path: PathBuf,
        position: u64,
        expected: i64,
        found: i64,
    },
    #[error("{}: log starts at offset {found}, expected {expected}", path.display())]
    Gap {
        path: PathBuf,
        expected: i64,
        found: i64,
    },
    #[error("{}: {source}", path.display())]
    Snapshot {
        path: PathBuf,
        #[source]
        source: SnapshotError,
    },
    #[error("record at offset {offset} does not apply: {source}")]
    Apply {
        offset: i64,
        #[source]
        source: ApplyError,
    },
    #[error("metadata log unusable after an earlier write or sync failure")]
    Poisoned,
}

/// What recovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// End offset of the snapshot loaded, if any.
    pub snapshot_offset: Option<i64>,
    /// Log records applied after the snapshot.
    pub records_replayed: u64,
    /// Bytes of torn tail cut off the last log.
    pub truncated_bytes: u64,
}

fn log_name(base: i64) -> String {
    format!("{base:020}.log")
}

fn snapshot_name(end: i64) -> String {
    format!("{end:020}.snapshot")
}

/// Reads a whole file, looping because reads may come back short.
pub(crate) async fn read_all<F: StorageFile>(file: &F) -> Result<Vec<u8>, IoError> {
    let size = file.size().await?;
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    while (out.len() as u64) < size {
        let chunk = file
            .read_at(out.len() as u64, (size - out.len() as u64) as usize)
            .await?;
        if chunk.is_empty() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The metadata log of one node: an open active file to append to.
pub struct MetadataLog<S: Storage> {
    storage: S,
    dir: PathBuf,
    active: S::File,
    active_bytes: u64,
    next_offset: i64,
    snapshot_offset: i64,
    records_since_snapshot: u64,
    snapshot_interval_records: u64,
    poisoned: bool,
}

struct Listing {
    logs: Vec<i64>,
    snapshots: Vec<i64>,
    temps: Vec<String>,
}

/// The directory's logs and snapshots by offset (names beyond `i64` are
/// not this log's).
async fn list<S: Storage>(storage: &S, dir: &Path) -> Result<Listing, IoError> {
    let found = crate::io::numbered::list(storage, dir).await?;
    let offsets = |numbers: Vec<u64>| numbers.into_iter().filter_map(|n| i64::try_from(n).ok());
    Ok(Listing {
        logs: offsets(found.logs).collect(),
        snapshots: offsets(found.snapshots).collect(),
        temps: found.temps,
    })
}

/// Replay state while reading the logs.
struct Replay {
    image: MetadataImage,
    next_offset: i64,
    records: u64,
}

impl<S: Storage> MetadataLog<S> {
    /// Opens (creating if needed) the log in `dir` and rebuilds the image.
    pub async fn open(
        storage: S,
        dir: PathBuf,
        snapshot_interval_records: u64,
    ) -> Result<(MetadataLog<S>, MetadataImage, Replayed), MetadataLogError> {
        storage.create_dir_all(&dir).await?;
        let listing = list(&storage, &dir).await?;
        for temp in &listing.temps {
            storage.remove_file(&dir.join(temp)).await?;
        }
        let snapshot_offset = listing.snapshots.last().copied();
        let image = match snapshot_offset {
            Some(end) => load_snapshot(&storage, &dir, end).await?,
            None => MetadataImage::new(),
        };
        let start = snapshot_offset.unwrap_or(0);
        let mut replay = Replay {
            image,
            next_offset: start,
            records: 0,
        };
        let live: Vec<i64> = listing
            .logs
            .iter()
            .copied()
            .filter(|b| *b >= start)
            .collect();
        let mut tail = None;
        for (i, base) in live.iter().enumerate() {
            let last = i + 1 == live.len();
            tail = Some(replay_file(&storage, &dir, *base, last, &mut replay).await?);
        }
        let (active, active_bytes, truncated_bytes) = match tail {
            Some(t) => t,
            None => (create_log(&storage, &dir, replay.next_offset).await?, 0, 0),
        };
        let log = MetadataLog {
            storage,
            dir,
            active,
            active_bytes,
            next_offset: replay.next_offset,
            snapshot_offset: start,
            records_since_snapshot: replay.records,
            snapshot_interval_records,
            poisoned: false,
        };
        log.remove_older_than(start).await?;
        let replayed = Replayed {
            snapshot_offset,
            records_replayed: replay.records,
            truncated_bytes,
        };
        Ok((log, replay.image, replayed))
    }

    /// Offset the next appended record gets.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether enough records accumulated since the last snapshot.
    pub fn snapshot_due(&self) -> bool {
        self.records_since_snapshot >= self.snapshot_interval_records
    }

    /// Appends `records` durably; returns the offset of the first. After a
    /// failed write or sync the log refuses further appends: what reached
    /// the disk is unknown, and retrying a failed fsync can report success
    /// for data the kernel already dropped.
    pub async fn append(&mut self, records: &[MetadataRecord]) -> Result<i64, MetadataLogError> {
        if self.poisoned {
            return Err(MetadataLogError::Poisoned);
        }
        let first = self.next_offset;
        if records.is_empty() {
            return Ok(first);
        }
        let mut buf = Vec::new();
        encode_frame(first, records, &mut buf);
        // Stays set if either call fails (early return).
        self.poisoned = true;
        self.active.write_at(self.active_bytes, &buf).await?;
        self.active.sync_data().await?;
        self.poisoned = false;
        self.active_bytes += buf.len() as u64;
        self.next_offset += records.len() as i64;
        self.records_since_snapshot += records.len() as u64;
        Ok(first)
    }

    /// Writes `image` (which must reflect every record below
    /// `next_offset`) as a snapshot and restarts the log after it.
    pub async fn snapshot(&mut self, image: &MetadataImage) -> Result<(), MetadataLogError> {
        if self.poisoned {
            return Err(MetadataLogError::Poisoned);
        }
        let end = self.next_offset;
        if end == self.snapshot_offset {
            return Ok(());
        }
        let path = self.dir.join(snapshot_name(end));
        write_snapshot(&self.storage, &path, end, &image.to_records()).await?;
        let fresh = create_log(&self.storage, &self.dir, end).await?;
        let old = std::mem::replace(&mut self.active, fresh);
        old.close().await?;
        self.active_bytes = 0;
        self.snapshot_offset = end;
        self.records_since_snapshot = 0;
        self.remove_older_than(end).await
    }

    /// Deletes logs wholly below the snapshot at `snapshot_end`, and older
    /// snapshots. Crash-safe in any order: recovery ignores both.
    async fn remove_older_than(&self, snapshot_end: i64) -> Result<(), MetadataLogError> {
        let listing = list(&self.storage, &self.dir).await?;
        let mut removed = false;
        for base in listing.logs.iter().filter(|b| **b < snapshot_end) {
            self.storage
                .remove_file(&self.dir.join(log_name(*base)))
                .await?;
            removed = true;
        }
        for end in listing.snapshots.iter().filter(|e| **e < snapshot_end) {
            self.storage
                .remove_file(&self.dir.join(snapshot_name(*end)))
                .await?;
            removed = true;
        }
        if removed {
            self.storage.sync_dir(&self.dir).await?;
        }
        Ok(())
    }
}

/// Creates an empty `<base>.log` and makes its name durable before any
/// append to it is acknowledged.
async fn create_log<S: Storage>(
    storage: &S,
    dir: &Path,
    base: i64,
) -> Result<S::File, MetadataLogError> {
    let file = storage.open(&dir.join(log_name(base))).await?;
    file.truncate(0).await?;
    file.sync_data().await?;
    storage.sync_dir(dir).await?;
    Ok(file)
}

async fn load_snapshot<S: Storage>(
    storage: &S,
    dir: &Path,
    end: i64,
) -> Result<MetadataImage, MetadataLogError> {
    let path = dir.join(snapshot_name(end));
    let file = storage.open(&path).await?;
    let bytes = read_all(&file).await?;
    file.close().await?;
    let records = read_snapshot(&bytes, end).map_err(|source| MetadataLogError::Snapshot {
        path: path.clone(),
        source,
    })?;
    let mut image = MetadataImage::new();
    for record in &records {
        image
            .apply(record)
            .map_err(|source| MetadataLogError::Snapshot {
                path: path.clone(),
                source: SnapshotError::Apply(source),
            })?;
    }
    Ok(image)
}

/// Replays one log file into `replay`; returns the open file, its valid
/// length and the bytes truncated off a torn tail (last file only).
async fn replay_file<S: Storage>(
    storage: &S,
    dir: &Path,
    base: i64,
    last: bool,
    replay: &mut Replay,
) -> Result<(S::File, u64, u64), MetadataLogError> {
    let path = dir.join(log_name(base));
    if base != replay.next_offset {
        return Err(MetadataLogError::Gap {
            path,
            expected: replay.next_offset,
            found: base,
        });
    }
    let file = storage.open(&path).await?;
    let bytes = read_all(&file).await?;
    let valid = apply_frames(&path, &bytes, last, replay)?;
    let torn = bytes.len() as u64 - valid;
    if torn > 0 {
        file.truncate(valid).await?;
        file.sync_data().await?;
    }
    Ok((file, valid, torn))
}

/// Applies every frame of `bytes`; returns how many bytes were valid.
fn apply_frames(
    path: &Path,
    bytes: &[u8],
    last: bool,
    replay: &mut Replay,
) -> Result<u64, MetadataLogError> {
    let mut position = 0usize;
    while position < bytes.len() {
        let frame = match decode_frame(&bytes[position..]) {
            Ok(frame) => frame,
            // Only the last append of the last file can be torn.
            Err(err) if last && err.is_torn_tail(bytes.len() - position) => break,
            Err(source) => {
                return Err(MetadataLogError::Corrupt {
                    path: path.to_path_buf(),
                    position: position as u64,
                    source,
                })
            }
        };
        if frame.base_offset != replay.next_offset {
            return Err(MetadataLogError::OffsetMismatch {
                path: path.to_path_buf(),
                position: position as u64,
                expected: replay.next_offset,
                found: frame.base_offset,
            });
        }
        for record in &frame.records {
            replay
                .image
                .apply(record)
                .map_err(|source| MetadataLogError::Apply {
                    offset: replay.next_offset,
                    source,
                })?;
            replay.next_offset += 1;
            replay.records += 1;
        }
        position += frame.frame_bytes;
    }
    Ok(position as u64)
}
