//! The files of a compaction in flight, and how `open` finishes or discards
//! what a crash left of one.
//!
//! A cleaned segment is written as `<base>.log.cleaned`, fdatasynced, then
//! renamed `<base>.log.swap`: that rename is the commit point, as the swap
//! file's bytes are whole and durable before it carries the name. Then the
//! originals it replaces are deleted with their indexes and it is renamed
//! `<base>.log`. On open, a `.cleaned` file is deleted (every original is
//! still there) and a `.swap` file is completed: every segment whose base
//! offset lies in the swap's range goes, then it becomes `<base>.log`. Its
//! index files are missing, so the loader rebuilds them.
//!
//! An original whose records were all removed may lie past the swap's last
//! batch; if it survives a crash it only brings back superseded values,
//! which the next compaction removes again. No key's latest value is ever
//! in a file that gets deleted before its replacement is durable.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::error::LogError;
use super::scan::HeaderScanner;
use super::segment::{parse_segment_file_name, segment_file_name, SegmentFileKind};
use crate::io::{Storage, StorageFile};

const CLEANED_SUFFIX: &str = ".cleaned";
const SWAP_SUFFIX: &str = ".swap";

/// What a compaction leftover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftover {
    Cleaned,
    Swap,
}

/// `<dir>/<base>.log.cleaned`: a cleaned segment being written.
pub(super) fn cleaned_path(dir: &Path, base_offset: i64) -> PathBuf {
    let log_name = segment_file_name(base_offset, SegmentFileKind::Log);
    dir.join(format!("{log_name}{CLEANED_SUFFIX}"))
}

/// `<dir>/<base>.log.swap`: a durable cleaned segment about to replace
/// its originals.
pub(super) fn swap_path(dir: &Path, base_offset: i64) -> PathBuf {
    let log_name = segment_file_name(base_offset, SegmentFileKind::Log);
    dir.join(format!("{log_name}{SWAP_SUFFIX}"))
}

fn parse_leftover(name: &str) -> Option<(i64, Leftover)> {
    let (stem, leftover) = if let Some(stem) = name.strip_suffix(CLEANED_SUFFIX) {
        (stem, Leftover::Cleaned)
    } else {
        (name.strip_suffix(SWAP_SUFFIX)?, Leftover::Swap)
    };
    match parse_segment_file_name(stem)? {
        (base_offset, SegmentFileKind::Log) => Some((base_offset, leftover)),
        _ => None,
    }
}

/// Removes a file that may already be gone.
pub(super) async fn remove_if_present<S: Storage>(
    storage: &S,
    path: &Path,
) -> Result<(), LogError> {
    match storage.remove_file(path).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Removes a segment's log and index files, whichever exist.
pub(super) async fn remove_segment_files<S: Storage>(
    storage: &S,
    dir: &Path,
    base_offset: i64,
) -> Result<(), LogError> {
    // The log goes last: an index without its log is cleaned up by `open`.
    for kind in [
        SegmentFileKind::OffsetIndex,
        SegmentFileKind::TimeIndex,
        SegmentFileKind::TxnIndex,
        SegmentFileKind::Log,
    ] {
        remove_if_present(storage, &dir.join(segment_file_name(base_offset, kind))).await?;
    }
    Ok(())
}

/// Deletes `.cleaned` files and completes `.swap` files in `dir` (see the
/// module doc). Returns whether anything changed, so the caller syncs the
/// directory.
pub(super) async fn finish_leftovers<S: Storage>(
    storage: &S,
    dir: &Path,
) -> Result<bool, LogError> {
    let names = storage.list_dir(dir).await?;
    let mut swaps = Vec::new();
    let mut changed = false;
    for name in &names {
        match parse_leftover(name) {
            Some((_, Leftover::Cleaned)) => {
                remove_if_present(storage, &dir.join(name)).await?;
                changed = true;
            }
            Some((base_offset, Leftover::Swap)) => swaps.push(base_offset),
            None => {}
        }
    }
    swaps.sort_unstable();
    for base_offset in swaps {
        complete_swap(storage, dir, base_offset, &names).await?;
        changed = true;
    }
    Ok(changed)
}

/// Replaces the segments a swap file covers by it.
async fn complete_swap<S: Storage>(
    storage: &S,
    dir: &Path,
    base_offset: i64,
    names: &[String],
) -> Result<(), LogError> {
    let path = swap_path(dir, base_offset);
    let end_offset = swap_end_offset(storage, &path, base_offset).await?;
    let mut replaced: Vec<i64> = names
        .iter()
        .filter_map(|name| parse_segment_file_name(name))
        .map(|(base, _)| base)
        .filter(|&base| base == base_offset || (base > base_offset && base < end_offset))
        .collect();
    replaced.dedup();
    for base in replaced {
        remove_segment_files(storage, dir, base).await?;
    }
    let log_path = dir.join(segment_file_name(base_offset, SegmentFileKind::Log));
    storage.rename(&path, &log_path).await?;
    Ok(())
}

/// The offset after the swap file's last batch (its base if it is empty).
/// The file was synced before it was named `.swap`, so a bad header means
/// the disk lost data: that is reported, never guessed around.
async fn swap_end_offset<S: Storage>(
    storage: &S,
    path: &Path,
    base_offset: i64,
) -> Result<i64, LogError> {
    let file = storage.open(path).await?;
    let size_bytes = file.size().await?;
    let mut scanner = HeaderScanner::new(&file, path, size_bytes);
    let mut position = 0;
    let mut end_offset = base_offset;
    while position < size_bytes {
        let header = scanner.header_at(position).await?;
        end_offset = header.next_offset();
        position += header.size_bytes() as u64;
    }
    Ok(end_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_names() {
        let dir = Path::new("/d");
        let cleaned = cleaned_path(dir, 42);
        let swap = swap_path(dir, 42);
        assert_eq!(
            cleaned.file_name().and_then(|n| n.to_str()),
            Some("00000000000000000042.log.cleaned")
        );
        assert_eq!(
            parse_leftover("00000000000000000042.log.cleaned"),
            Some((42, Leftover::Cleaned))
        );
        assert_eq!(
            swap.file_name().and_then(|n| n.to_str()),
            Some("00000000000000000042.log.swap")
        );
        assert_eq!(
            parse_leftover("00000000000000000042.log.swap"),
            Some((42, Leftover::Swap))
        );
        assert_eq!(parse_leftover("00000000000000000042.index.swap"), None);
        assert_eq!(parse_leftover("00000000000000000042.log"), None);
        assert_eq!(parse_leftover("x.log.swap"), None);
    }
}
