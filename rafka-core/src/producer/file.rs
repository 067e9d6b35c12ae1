//! Whole-file writes that are atomic across crashes, and whole-file reads,
//! over [`Storage`]: the shape both the snapshot and the producer-id block
//! files need.

use std::path::{Path, PathBuf};

use crate::io::{Storage, StorageFile};

use super::{FormatError, ProducerError};

/// Suffix of a file being written; it becomes the real file only by rename.
pub(super) const TMP_SUFFIX: &str = ".tmp";

/// Replaces `dir/name` with `data` so that after a crash the file holds
/// either its old or its new bytes: write a temp file, make it durable,
/// rename it over the old one and make the rename durable.
pub(super) async fn write_atomic<S: Storage>(
    storage: &S,
    dir: &Path,
    name: &str,
    data: &[u8],
) -> Result<PathBuf, ProducerError> {
    let path = dir.join(name);
    let tmp_path = dir.join(format!("{name}{TMP_SUFFIX}"));
    let tmp = storage.open(&tmp_path).await?;
    // A temp file left by a crash may be longer than the new contents.
    tmp.truncate(0).await?;
    tmp.write_at(0, data).await?;
    tmp.sync_data().await?;
    tmp.close().await?;
    storage.rename(&tmp_path, &path).await?;
    storage.sync_dir(dir).await?;
    Ok(path)
}

/// Reads all of `path`. Loops rather than trusting one `read_at` to return
/// everything: a short read taken for the whole file would make a good
/// snapshot look corrupt, and corrupt snapshots get deleted.
pub(super) async fn read_all<S: Storage>(
    storage: &S,
    path: &Path,
) -> Result<Vec<u8>, ProducerError> {
    let file = storage.open(path).await?;
    let size_bytes = file.size().await?;
    let len = usize::try_from(size_bytes).map_err(|_| ProducerError::Corrupt {
        path: path.to_path_buf(),
        source: FormatError::TooLarge(size_bytes),
    })?;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        let chunk = file.read_at(data.len() as u64, len - data.len()).await?;
        if chunk.is_empty() {
            break;
        }
        data.extend_from_slice(&chunk);
    }
    file.close().await?;
    Ok(data)
}
