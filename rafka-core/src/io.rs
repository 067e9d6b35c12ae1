//! The storage IO boundary. rafka-core never touches the OS itself: the log
//! works through [`Storage`] and [`StorageFile`], implemented with glommio in
//! rafka-shard (the broker) and by a fault-injecting in-memory double in
//! `sim` (tests).
//!
//! The traits use `async fn` without `Send` bounds on purpose: every file
//! belongs to one shard and its futures never leave that core.

pub mod cache;
pub(crate) mod numbered;

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// An IO failure with the operation and path it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct IoError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    pub fn new(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn kind(&self) -> std::io::ErrorKind {
        self.source.kind()
    }
}

/// A directory tree of files: one per data dir.
#[allow(async_fn_in_trait)]
pub trait Storage {
    type File: StorageFile;

    /// Opens `path` for reading and writing, creating it empty if missing.
    async fn open(&self, path: &Path) -> Result<Self::File, IoError>;
    /// Opens `path` for reading and writing; NotFound if it is missing
    /// (never creates it).
    async fn open_existing(&self, path: &Path) -> Result<Self::File, IoError> {
        if !self.exists(path).await? {
            let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
            return Err(IoError::new("open", path, missing));
        }
        self.open(path).await
    }
    async fn create_dir_all(&self, path: &Path) -> Result<(), IoError>;
    /// File and directory names (not paths) directly under `path`.
    async fn list_dir(&self, path: &Path) -> Result<Vec<String>, IoError>;
    async fn exists(&self, path: &Path) -> Result<bool, IoError>;
    async fn remove_file(&self, path: &Path) -> Result<(), IoError>;
    async fn remove_dir_all(&self, path: &Path) -> Result<(), IoError>;
    /// Atomic replace of `to` by `from` (same directory).
    async fn rename(&self, from: &Path, to: &Path) -> Result<(), IoError>;
    /// Makes creations, removals and renames in `path` durable.
    async fn sync_dir(&self, path: &Path) -> Result<(), IoError>;
}

/// One open file. Positions and lengths are in bytes.
#[allow(async_fn_in_trait)]
pub trait StorageFile {
    /// Writes all of `data` at `pos` (into the page cache: not yet durable).
    async fn write_at(&self, pos: u64, data: &[u8]) -> Result<(), IoError>;
    /// Reads up to `len` bytes at `pos`; shorter only at end of file.
    async fn read_at(&self, pos: u64, len: usize) -> Result<Bytes, IoError>;
    /// Returns once every byte written before the call is durable.
    async fn sync_data(&self) -> Result<(), IoError>;
    async fn truncate(&self, len: u64) -> Result<(), IoError>;
    async fn size(&self) -> Result<u64, IoError>;
    async fn close(self) -> Result<(), IoError>;
    /// The OS descriptor, for zero-copy sendfile/splice; None for doubles.
    fn raw_fd(&self) -> Option<RawFd>;
}

/// Wall-clock milliseconds since the epoch, passed in so that time-based
/// rolling and retention are testable without sleeping.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        since_epoch.as_millis() as i64
    }
}
