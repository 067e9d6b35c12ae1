//! Kafka's per-data-dir checkpoint files and clean shutdown marker.
//!
//! `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and
//! `replication-offset-checkpoint` hold one offset per partition in Kafka's text format:
//!
//! ```text
//! 0                  <- version
//! 2                  <- entry count
//! orders 0 1234      <- topic partition offset
//! orders 1 987
//! ```
//!
//! They are replaced atomically: write a temp file, fsync it, rename it over
//! the old one, fsync the directory. The shard writes them for all of its
//! partitions; [`super::Log::open`] takes its hints from them.
//!
//! `.kafka_cleanshutdown` says every log in the dir was closed cleanly
//! (indexes written, everything synced), so recovery may skip rescanning.
//! The shard removes it once its logs are open, before the first append.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::scan::read_full;
use crate::io::{IoError, Storage, StorageFile};

pub const RECOVERY_POINT_CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";
/// Every partition's high watermark, written periodically and at a clean
/// stop (Kafka's `replication-offset-checkpoint`).
pub const REPLICATION_OFFSET_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
/// In a partition's own directory: the log start offset DeleteRecords set,
/// in the same format with the partition's one entry. Written and synced
/// before DeleteRecords answers, so a raised start survives kill -9 (the
/// dir-wide checkpoint is only written by a clean stop).
pub const PARTITION_LOG_START_FILE: &str = "log-start-offset";
const CHECKPOINT_VERSION: &str = "0";
/// A checkpoint larger than this is not one of ours (millions of entries).
const CHECKPOINT_BYTES_MAX: u64 = 256 << 20;

/// A topic partition, as named in checkpoints and partition directories.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// The directory name of a partition's log: `<topic>-<partition>`.
pub fn partition_dir_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// Splits `<topic>-<partition>` at the last dash (topics may hold dashes).
pub fn parse_partition_dir_name(name: &str) -> Option<TopicPartition> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(TopicPartition {
        topic: topic.to_owned(),
        partition: partition.parse().ok()?,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("checkpoint {}: line {line}: {kind}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        kind: MalformedKind,
    },
    #[error("checkpoint {} is {size_bytes} bytes, over the limit", path.display())]
    TooLarge { path: PathBuf, size_bytes: u64 },
}

/// What is wrong with a checkpoint's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MalformedKind {
    #[error("not UTF-8")]
    NotUtf8,
    #[error("unsupported version")]
    Version,
    #[error("bad entry count")]
    Count,
    #[error("bad entry")]
    Entry,
    #[error("entry count {declared} but {found} entries")]
    CountMismatch { declared: usize, found: usize },
}

/// The log start offset in `dir`'s [`PARTITION_LOG_START_FILE`], if any.
pub async fn read_partition_log_start<S: Storage>(
    storage: &S,
    dir: &Path,
) -> Result<Option<i64>, CheckpointError> {
    let offsets = read_offset_checkpoint(storage, &dir.join(PARTITION_LOG_START_FILE)).await?;
    Ok(offsets.into_values().max())
}

/// Replaces `dir`'s [`PARTITION_LOG_START_FILE`] atomically and durably.
pub async fn write_partition_log_start<S: Storage>(
    storage: &S,
    dir: &Path,
    offset: i64,
) -> Result<(), CheckpointError> {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let partition = parse_partition_dir_name(name).unwrap_or(TopicPartition {
        topic: name.to_string(),
        partition: 0,
    });
    let offsets = BTreeMap::from([(partition, offset)]);
    write_offset_checkpoint(storage, &dir.join(PARTITION_LOG_START_FILE), &offsets).await
}

/// Reads a checkpoint; a missing file reads as empty (first start).
pub async fn read_offset_checkpoint<S: Storage>(
    storage: &S,
    path: &Path,
) -> Result<BTreeMap<TopicPartition, i64>, CheckpointError> {
    let Some(bytes) = read_checkpoint_bytes(storage, path).await? else {
        return Ok(BTreeMap::new());
    };
    parse_offset_checkpoint(&bytes).map_err(|(line, kind)| CheckpointError::Malformed {
        path: path.to_path_buf(),
        line,
        kind,
    })
}

/// A checkpoint file's bytes; None if it is missing.
pub(super) async fn read_checkpoint_bytes<S: Storage>(
    storage: &S,
    path: &Path,
) -> Result<Option<Bytes>, CheckpointError> {
    if !storage.exists(path).await? {
        return Ok(None);
    }
    let file = storage.open(path).await?;
    let size_bytes = file.size().await?;
    if size_bytes > CHECKPOINT_BYTES_MAX {
        return Err(CheckpointError::TooLarge {
            path: path.to_path_buf(),
            size_bytes,
        });
    }
    let bytes = read_full(&file, 0, size_bytes as usize).await?;
    file.close().await?;
    Ok(Some(bytes))
}

/// Parses checkpoint text; errors carry the 1-based line number.
pub fn parse_offset_checkpoint(
    bytes: &[u8],
) -> Result<BTreeMap<TopicPartition, i64>, (usize, MalformedKind)> {
    let entries = parse_checkpoint(bytes, parse_entry)?;
    let declared = entries.len();
    let offsets: BTreeMap<_, _> = entries.into_iter().collect();
    if offsets.len() != declared {
        let found = offsets.len();
        return Err((2, MalformedKind::CountMismatch { declared, found }));
    }
    Ok(offsets)
}

/// Parses Kafka's checkpoint text (version, count, one entry a line) with
/// `parse_entry` for each entry line; errors carry the 1-based line
/// number. Blank lines are skipped.
pub(super) fn parse_checkpoint<T>(
    bytes: &[u8],
    parse_entry: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, (usize, MalformedKind)> {
    let text = std::str::from_utf8(bytes).map_err(|_| (1, MalformedKind::NotUtf8))?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(CHECKPOINT_VERSION) {
        return Err((1, MalformedKind::Version));
    }
    let declared: usize = lines
        .next()
        .and_then(|line| line.trim().parse().ok())
        .ok_or((2, MalformedKind::Count))?;
    let mut entries = Vec::new();
    for (index, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry = parse_entry(line).ok_or((index + 3, MalformedKind::Entry))?;
        entries.push(entry);
    }
    if entries.len() != declared {
        let found = entries.len();
        return Err((2, MalformedKind::CountMismatch { declared, found }));
    }
    Ok(entries)
}

/// Kafka's checkpoint text: version, count, then `lines`.
pub(super) fn format_checkpoint(count: usize, lines: impl Iterator<Item = String>) -> String {
    let mut text = format!("{CHECKPOINT_VERSION}\n{count}\n");
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn parse_entry(line: &str) -> Option<(TopicPartition, i64)> {
    let mut fields = line.split_whitespace();
    let topic = fields.next()?;
    let partition = fields.next()?.parse().ok()?;
    let offset = fields.next()?.parse().ok()?;
    if fields.next().is_some() {
        return None;
    }
    let partition = TopicPartition {
        topic: topic.to_owned(),
        partition,
    };
    Some((partition, offset))
}

pub fn format_offset_checkpoint(offsets: &BTreeMap<TopicPartition, i64>) -> String {
    let lines = offsets
        .iter()
        .map(|(partition, offset)| format!("{} {} {offset}", partition.topic, partition.partition));
    format_checkpoint(offsets.len(), lines)
}

/// Replaces the checkpoint at `path` atomically and durably.
pub async fn write_offset_checkpoint<S: Storage>(
    storage: &S,
    path: &Path,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<(), CheckpointError> {
    write_checkpoint_text(storage, path, &format_offset_checkpoint(offsets)).await
}

/// Replaces the file at `path` by `text` atomically and durably: a temp
/// file written and synced, renamed over it, the directory synced.
pub(super) async fn write_checkpoint_text<S: Storage>(
    storage: &S,
    path: &Path,
    text: &str,
) -> Result<(), CheckpointError> {
    let temp_path = temp_path_for(path);
    let file = storage.open(&temp_path).await?;
    file.truncate(0).await?;
    file.write_at(0, text.as_bytes()).await?;
    file.sync_data().await?;
    file.close().await?;
    storage.rename(&temp_path, path).await?;
    storage.sync_dir(parent_of(path)).await?;
    Ok(())
}

/// Marks `data_dir` as cleanly shut down (after every log in it closed).
pub async fn write_clean_shutdown_marker<S: Storage>(
    storage: &S,
    data_dir: &Path,
) -> Result<(), IoError> {
    let file = storage.open(&data_dir.join(CLEAN_SHUTDOWN_FILE)).await?;
    file.sync_data().await?;
    file.close().await?;
    storage.sync_dir(data_dir).await
}

pub async fn clean_shutdown_marker_exists<S: Storage>(
    storage: &S,
    data_dir: &Path,
) -> Result<bool, IoError> {
    storage.exists(&data_dir.join(CLEAN_SHUTDOWN_FILE)).await
}

/// Removes the marker durably, so that a crash from now on is recovered
/// as one.
pub async fn remove_clean_shutdown_marker<S: Storage>(
    storage: &S,
    data_dir: &Path,
) -> Result<(), IoError> {
    let path = data_dir.join(CLEAN_SHUTDOWN_FILE);
    if storage.exists(&path).await? {
        storage.remove_file(&path).await?;
        storage.sync_dir(data_dir).await?;
    }
    Ok(())
}

fn temp_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or_else(|| Path::new("."))
}

#[cfg(test)]
mod tests {
    use futures_lite::future::block_on;

    use super::*;
    use crate::sim::SimStorage;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_owned(),
            partition,
        }
    }

    #[test]
    fn format_is_kafkas() {
        let offsets = BTreeMap::from([(tp("orders", 1), 987), (tp("orders", 0), 1234)]);
        let text = format_offset_checkpoint(&offsets);
        assert_eq!(text, "0\n2\norders 0 1234\norders 1 987\n");
        assert_eq!(parse_offset_checkpoint(text.as_bytes()), Ok(offsets));
    }

    #[test]
    fn parse_rejects_malformed_text() {
        assert_eq!(
            parse_offset_checkpoint(b"1\n0\n"),
            Err((1, MalformedKind::Version))
        );
        assert_eq!(
            parse_offset_checkpoint(b"0\nx\n"),
            Err((2, MalformedKind::Count))
        );
        assert_eq!(
            parse_offset_checkpoint(b"0\n1\nt 0\n"),
            Err((3, MalformedKind::Entry))
        );
        assert_eq!(
            parse_offset_checkpoint(b"0\n1\nt 0 5 extra\n"),
            Err((3, MalformedKind::Entry))
        );
        assert_eq!(
            parse_offset_checkpoint(b"0\n3\nt 0 5\n"),
            Err((
                2,
                MalformedKind::CountMismatch {
                    declared: 3,
                    found: 1
                }
            ))
        );
        assert_eq!(
            parse_offset_checkpoint(&[0xff, 0xfe]),
            Err((1, MalformedKind::NotUtf8))
        );
    }

    #[test]
    fn partition_dir_names() {
        assert_eq!(partition_dir_name("my-topic", 12), "my-topic-12");
        assert_eq!(
            parse_partition_dir_name("my-topic-12"),
            Some(tp("my-topic", 12))
        );
        assert_eq!(parse_partition_dir_name("topic-x"), None);
        assert_eq!(parse_partition_dir_name("-3"), None);
        assert_eq!(parse_partition_dir_name("nodash"), None);
    }

    #[test]
    fn write_replaces_durably_and_marker_round_trips() {
        block_on(async {
            let storage = SimStorage::new();
            let dir = Path::new("/data");
            storage.create_dir_all(dir).await.unwrap();
            let path = dir.join(RECOVERY_POINT_CHECKPOINT_FILE);
            assert_eq!(
                read_offset_checkpoint(&storage, &path).await.unwrap(),
                BTreeMap::new()
            );
            let first = BTreeMap::from([(tp("a", 0), 10)]);
            write_offset_checkpoint(&storage, &path, &first)
                .await
                .unwrap();
            let second = BTreeMap::from([(tp("a", 0), 20), (tp("b", 3), 7)]);
            write_offset_checkpoint(&storage, &path, &second)
                .await
                .unwrap();
            assert!(!clean_shutdown_marker_exists(&storage, dir).await.unwrap());
            write_clean_shutdown_marker(&storage, dir).await.unwrap();
            storage.crash();
            assert_eq!(
                read_offset_checkpoint(&storage, &path).await.unwrap(),
                second
            );
            assert!(!storage
                .exists(&dir.join("recovery-point-offset-checkpoint.tmp"))
                .await
                .unwrap());
            assert!(clean_shutdown_marker_exists(&storage, dir).await.unwrap());
            remove_clean_shutdown_marker(&storage, dir).await.unwrap();
            storage.crash();
            assert!(!clean_shutdown_marker_exists(&storage, dir).await.unwrap());
        });
    }
}
