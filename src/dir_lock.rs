//! One broker per data dir: an exclusive, non-blocking `flock` on
//! `<dir>/.lock` (Kafka's file name) in every directory the broker writes,
//! taken before anything in it is read or written and held for the life of
//! the process. The kernel drops a flock with the last descriptor of its
//! open file, so a broker that dies any way, kill -9 included, leaves no
//! stale lock behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Kafka's lock file name in each log dir.
pub const LOCK_FILE: &str = ".lock";

/// The held locks; dropping them (at process exit) releases the dirs.
#[derive(Debug)]
pub struct DirLocks {
    _files: Vec<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data dir {} is in use by another process (its {LOCK_FILE} is locked); \
         two brokers cannot share a data dir",
        dir.display()
    )]
    Held { dir: PathBuf },
    #[error("locking data dir {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Creates each of `dirs` if missing and locks it; fails on the first dir
/// another process holds.
pub fn lock_dirs(dirs: &[PathBuf]) -> Result<DirLocks, LockError> {
    let files = dirs
        .iter()
        .map(|dir| lock_dir(dir))
        .collect::<Result<_, _>>()?;
    Ok(DirLocks { _files: files })
}

fn lock_dir(dir: &Path) -> Result<File, LockError> {
    let io_error = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {
            tracing::debug!(dir = %dir.display(), "data dir locked");
            Ok(file)
        }
        Err(TryLockError::WouldBlock) => Err(LockError::Held {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(io_error(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // flock locks belong to an open file description, so a second open in
    // the same process conflicts exactly as another process would.
    #[test]
    fn a_locked_dir_cannot_be_locked_again_until_released() {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().join("data");
        let first = lock_dirs(std::slice::from_ref(&dir)).expect("first lock");
        assert!(dir.join(LOCK_FILE).is_file());
        let second = lock_dirs(std::slice::from_ref(&dir));
        assert!(matches!(&second, Err(LockError::Held { dir: held }) if *held == dir));
        drop(first);
        lock_dirs(&[dir]).expect("lock again after release");
    }
}
