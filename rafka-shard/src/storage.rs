//! The broker's [`Storage`]: files and directories on glommio's io_uring
//! reactor, buffered through the page cache (DESIGN.md, "Storage").
//!
//! Every data-path operation except the write (read, fdatasync, truncate,
//! size, open, rename, unlink, directory sync) is an io_uring request on the
//! calling shard's reactor. Writes are a plain `pwrite` on the shard thread
//! by default ([`WriteMode::Pwrite`]): on ext4 (kernel 6.18 here) io_uring
//! cannot complete a buffered write inline and punts each one to a kernel
//! worker thread, which measured at ~2.3x the CPU and half the throughput of
//! `pwrite` into the page cache (`rafka-bench log-append`, ARCHITECTURE.md).
//! A page-cache copy is what Kafka does in its request threads too; the
//! long wait, fdatasync, stays asynchronous. [`WriteMode::Uring`] keeps
//! writes on io_uring for filesystems that complete them inline (XFS). The few metadata operations io_uring has no opcode for
//! (recursive mkdir, readdir, recursive delete, existence check) run on
//! glommio's blocking thread pool so that a slow directory never stalls the
//! shard; they happen at partition create/delete and at startup, never per
//! request.
//!
//! Zero-copy fetch needs the bytes of a segment on another shard (the one
//! holding the client's socket): [`GlommioFile::region`] hands out a
//! [`FileRegion`], a byte range over a `dup` of the file's descriptor that
//! any thread may `sendfile` or `pread` from.
//!
//! Lives on: every shard; a [`GlommioFile`] must be used only on the shard
//! that opened it (its operations go to that shard's ring). A
//! [`FileRegion`] is `Send` and may be used anywhere.

use std::cell::OnceCell;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use glommio::io::{BufferedFile, Directory, OpenOptions};
use glommio::GlommioError;
use rafka_core::io::cache::{CachedFile, CachedStorage};
use rafka_core::io::{IoError, Storage, StorageFile};

/// Reads are issued in pieces of at most this size: one buffered read holds
/// its whole destination in memory, and Linux caps a single read at
/// ~2 GiB anyway.
const READ_CHUNK_BYTES_MAX: usize = 1 << 30;

/// How [`StorageFile::write_at`] reaches the page cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// `pwrite(2)` on the shard thread: a memcpy into the page cache.
    #[default]
    Pwrite,
    /// A buffered io_uring write request.
    Uring,
}

/// The glommio-backed [`Storage`]. Holds no state but the write mode: paths
/// are absolute or relative to the process's working directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlommioStorage {
    write_mode: WriteMode,
}

impl GlommioStorage {
    pub fn new() -> Self {
        GlommioStorage::default()
    }

    pub fn with_write_mode(write_mode: WriteMode) -> Self {
        GlommioStorage { write_mode }
    }
}

/// One open file. The log shares it as `Rc<GlommioFile>` so that a reader
/// keeps a segment alive after it is deleted or rolled; the descriptor is
/// closed by [`StorageFile::close`] or, if other owners remain, when the
/// last `Rc` drops (glommio queues an asynchronous close on drop).
#[derive(Debug)]
pub struct GlommioFile {
    file: BufferedFile,
    path: PathBuf,
    write_mode: WriteMode,
    /// A `dup` of `file`'s descriptor, made on the first zero-copy read and
    /// shared by every [`FileRegion`] of this file. Regions keep it open
    /// after the segment is deleted or replaced.
    shared: OnceCell<Arc<File>>,
}

impl GlommioFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `len` bytes at `position` of this file, readable from any shard.
    pub fn region(&self, position: u64, len: u64) -> Result<FileRegion, IoError> {
        let file = match self.shared.get() {
            Some(file) => Arc::clone(file),
            None => {
                // SAFETY: the descriptor belongs to `self.file`, open for as
                // long as `self`; it is only borrowed to be duplicated.
                let borrowed = unsafe { BorrowedFd::borrow_raw(self.file.as_raw_fd()) };
                let owned = borrowed
                    .try_clone_to_owned()
                    .map_err(|e| IoError::new("dup", self.path.clone(), e))?;
                Arc::clone(self.shared.get_or_init(|| Arc::new(File::from(owned))))
            }
        };
        Ok(FileRegion::new(file, position, len))
    }

    /// Writes all of `data` at `pos` with `pwrite(2)`, retrying short writes.
    fn pwrite_all(&self, pos: u64, data: &[u8]) -> Result<(), IoError> {
        use std::os::unix::fs::FileExt;
        // SAFETY: the descriptor belongs to `self.file`, which outlives this
        // call; ManuallyDrop keeps the borrowed `File` from closing it.
        let file = std::mem::ManuallyDrop::new(unsafe {
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(self.file.as_raw_fd())
        });
        file.write_all_at(data, pos)
            .map_err(|e| IoError::new("write", self.path.clone(), e))
    }

    fn err(&self, op: &'static str, source: GlommioError<()>) -> IoError {
        IoError::new(op, self.path.clone(), to_io_error(source))
    }
}

/// `len` bytes of whole batches at `position` of a segment file, sendable
/// from any shard: through a descriptor of their own (see the module doc),
/// the bytes a fetch sends with `sendfile(2)`; or, from a storage with no
/// descriptors (the `sim` storage of tests), the bytes themselves.
///
/// The log hands out regions of whole batches below the high watermark,
/// which are never rewritten in place, so the bytes do not change while a
/// region is alive; a file truncated under it (recovery never runs while
/// serving) shows up as a short read.
#[derive(Debug, Clone)]
pub struct FileRegion {
    source: RegionSource,
    pub position: u64,
    pub len: u64,
}

#[derive(Debug, Clone)]
enum RegionSource {
    File(Arc<File>),
    /// Exactly the region's bytes (`len` of them).
    Memory(Bytes),
}

impl FileRegion {
    /// `len` bytes at `position` of `file` (tests, tools; the broker gets
    /// its regions from [`GlommioFile::region`]).
    pub fn new(file: Arc<File>, position: u64, len: u64) -> Self {
        FileRegion {
            source: RegionSource::File(file),
            position,
            len,
        }
    }

    /// A region already in memory, read from `position` of its file.
    pub fn in_memory(position: u64, bytes: Bytes) -> Self {
        FileRegion {
            len: bytes.len() as u64,
            source: RegionSource::Memory(bytes),
            position,
        }
    }

    /// The descriptor to `sendfile` from; `None` when the bytes are in
    /// memory (the sender writes them instead).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.source {
            RegionSource::File(file) => Some(file.as_fd()),
            RegionSource::Memory(_) => None,
        }
    }

    /// The part of this region from `skip_bytes` on, at most `len` bytes.
    pub fn slice(&self, skip_bytes: u64, len: u64) -> FileRegion {
        let skip_bytes = skip_bytes.min(self.len);
        let len = len.min(self.len - skip_bytes);
        let source = match &self.source {
            RegionSource::File(file) => RegionSource::File(Arc::clone(file)),
            // In range: skip_bytes + len <= self.len == bytes.len().
            RegionSource::Memory(bytes) => {
                RegionSource::Memory(bytes.slice(skip_bytes as usize..(skip_bytes + len) as usize))
            }
        };
        FileRegion {
            source,
            position: self.position + skip_bytes,
            len,
        }
    }

    /// Reads `into.len()` bytes from `offset` within the region with
    /// `pread(2)` on the calling thread (page-cache hits in practice: the
    /// bytes were just written or just read). Fails on a short file.
    pub fn read_exact_at(&self, offset: u64, into: &mut [u8]) -> std::io::Result<()> {
        let end = offset.saturating_add(into.len() as u64);
        if end > self.len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        match &self.source {
            RegionSource::File(file) => file.read_exact_at(into, self.position + offset),
            RegionSource::Memory(bytes) => {
                into.copy_from_slice(&bytes[offset as usize..end as usize]);
                Ok(())
            }
        }
    }

    /// The whole region in memory (TLS connections, fallbacks, tests).
    pub fn read_all(&self) -> std::io::Result<Bytes> {
        if let RegionSource::Memory(bytes) = &self.source {
            return Ok(bytes.clone());
        }
        let len = usize::try_from(self.len).map_err(|_| std::io::ErrorKind::InvalidInput)?;
        let mut bytes = vec![0u8; len];
        self.read_exact_at(0, &mut bytes)?;
        Ok(Bytes::from(bytes))
    }
}

/// A storage file whose byte ranges can leave the shard as [`FileRegion`]s
/// (zero-copy fetch sends them from the shard holding the socket).
#[allow(async_fn_in_trait)]
pub trait ShareRegion {
    async fn share_region(&self, position: u64, len: u64) -> Result<FileRegion, IoError>;
}

/// What the shard layer needs of a storage: rafka-core's [`Storage`], files
/// that can share regions, and cheap clones (every partition keeps one).
/// [`GlommioStorage`] in the broker; rafka-core's `SimStorage` in tests
/// (feature `sim`), which makes the shard layer runnable over
/// fault-injecting storage.
pub trait ShardStorage: Storage<File: ShareRegion> + Clone + 'static {}

impl<S> ShardStorage for S where S: Storage<File: ShareRegion> + Clone + 'static {}

/// The broker's storage: glommio files within the shard's [`FileBudget`](rafka_core::io::cache::FileBudget).
pub type BrokerStorage = CachedStorage<GlommioStorage>;

/// A cached file shares the region of the file it (re)opens; the region
/// holds its own descriptor, so the budget may close the file meanwhile.
impl<S> ShareRegion for CachedFile<S>
where
    S: Storage<File: ShareRegion> + Clone,
{
    async fn share_region(&self, position: u64, len: u64) -> Result<FileRegion, IoError> {
        self.inner().await?.share_region(position, len).await
    }
}

impl ShareRegion for GlommioFile {
    async fn share_region(&self, position: u64, len: u64) -> Result<FileRegion, IoError> {
        self.region(position, len)
    }
}

/// The simulated storage has no descriptors: its regions are read into
/// memory when shared.
#[cfg(feature = "sim")]
impl ShareRegion for rafka_core::sim::SimFile {
    async fn share_region(&self, position: u64, len: u64) -> Result<FileRegion, IoError> {
        use rafka_core::io::StorageFile;
        let len_bytes = usize::try_from(len).unwrap_or(usize::MAX);
        let bytes = self.read_at(position, len_bytes).await?;
        Ok(FileRegion::in_memory(position, bytes))
    }
}

/// Keeps the kernel's errno when glommio has one, so callers can match on
/// `raw_os_error()` / `kind()` exactly as with std.
fn to_io_error(err: GlommioError<()>) -> std::io::Error {
    match err {
        GlommioError::IoError(source) | GlommioError::EnhancedIoError { source, .. } => source,
        other => std::io::Error::from(other),
    }
}

fn glommio_err(op: &'static str, path: &Path, err: GlommioError<()>) -> IoError {
    IoError::new(op, path, to_io_error(err))
}

/// Runs a blocking std::fs call on glommio's blocking pool (see module doc).
async fn offload<T, F>(op: &'static str, path: &Path, call: F) -> Result<T, IoError>
where
    T: Send + 'static,
    F: FnOnce(&Path) -> std::io::Result<T> + Send + 'static,
{
    let owned = path.to_path_buf();
    let result = glommio::executor()
        .spawn_blocking(move || call(&owned))
        .await;
    result.map_err(|source| IoError::new(op, path, source))
}

impl StorageFile for GlommioFile {
    async fn write_at(&self, pos: u64, data: &[u8]) -> Result<(), IoError> {
        if self.write_mode == WriteMode::Pwrite {
            return self.pwrite_all(pos, data);
        }
        // io_uring owns the buffer until completion, hence the copy into a
        // Vec; a short write (disk full, signal) retries the remainder so the
        // caller sees all-or-error like std's write_all_at.
        let mut written = 0usize;
        while written < data.len() {
            let chunk = data[written..].to_vec();
            let at = pos + written as u64;
            let n = self
                .file
                .write_at(chunk, at)
                .await
                .map_err(|e| self.err("write", e))?;
            if n == 0 {
                let zero = std::io::Error::from(std::io::ErrorKind::WriteZero);
                return Err(IoError::new("write", self.path.clone(), zero));
            }
            written += n;
        }
        Ok(())
    }

    async fn read_at(&self, pos: u64, len: usize) -> Result<Bytes, IoError> {
        let mut out = Vec::with_capacity(len.min(READ_CHUNK_BYTES_MAX));
        while out.len() < len {
            let want = (len - out.len()).min(READ_CHUNK_BYTES_MAX);
            let at = pos + out.len() as u64;
            let got = self
                .file
                .read_at(at, want)
                .await
                .map_err(|e| self.err("read", e))?;
            if got.is_empty() {
                break; // end of file
            }
            out.extend_from_slice(&got);
        }
        Ok(Bytes::from(out))
    }

    async fn sync_data(&self) -> Result<(), IoError> {
        self.file
            .fdatasync()
            .await
            .map_err(|e| self.err("fdatasync", e))
    }

    async fn truncate(&self, len: u64) -> Result<(), IoError> {
        self.file
            .truncate(len)
            .await
            .map_err(|e| self.err("truncate", e))
    }

    async fn size(&self) -> Result<u64, IoError> {
        self.file.file_size().await.map_err(|e| self.err("stat", e))
    }

    async fn close(self) -> Result<(), IoError> {
        let GlommioFile { file, path, .. } = self;
        file.close()
            .await
            .map_err(|e| glommio_err("close", &path, e))
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

impl GlommioStorage {
    async fn open_with(&self, path: &Path, create: bool) -> Result<GlommioFile, IoError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .buffered_open(path)
            .await
            .map_err(|e| glommio_err("open", path, e))?;
        Ok(GlommioFile {
            file,
            path: path.to_path_buf(),
            write_mode: self.write_mode,
            shared: OnceCell::new(),
        })
    }
}

impl Storage for GlommioStorage {
    type File = GlommioFile;

    async fn open(&self, path: &Path) -> Result<GlommioFile, IoError> {
        self.open_with(path, true).await
    }

    async fn open_existing(&self, path: &Path) -> Result<GlommioFile, IoError> {
        self.open_with(path, false).await
    }

    async fn create_dir_all(&self, path: &Path) -> Result<(), IoError> {
        offload("create_dir_all", path, |p| std::fs::create_dir_all(p)).await
    }

    async fn list_dir(&self, path: &Path) -> Result<Vec<String>, IoError> {
        offload("list_dir", path, list_names).await
    }

    async fn exists(&self, path: &Path) -> Result<bool, IoError> {
        offload("exists", path, |p| p.try_exists()).await
    }

    async fn remove_file(&self, path: &Path) -> Result<(), IoError> {
        glommio::io::remove(path)
            .await
            .map_err(|e| glommio_err("remove_file", path, e))
    }

    async fn remove_dir_all(&self, path: &Path) -> Result<(), IoError> {
        offload("remove_dir_all", path, |p| std::fs::remove_dir_all(p)).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), IoError> {
        glommio::io::rename(from, to)
            .await
            .map_err(|e| glommio_err("rename", from, e))
    }

    async fn sync_dir(&self, path: &Path) -> Result<(), IoError> {
        let dir = Directory::open(path)
            .await
            .map_err(|e| glommio_err("open_dir", path, e))?;
        let synced = dir
            .sync()
            .await
            .map_err(|e| glommio_err("sync_dir", path, e));
        let closed = dir
            .close()
            .await
            .map_err(|e| glommio_err("close_dir", path, e));
        synced.and(closed)
    }
}

/// Names that are not valid UTF-8 cannot be rafka's (every name it writes is
/// ASCII), so they are reported as an error rather than silently skipped:
/// a stray file in a partition dir is something an operator must see.
fn list_names(path: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let name = entry?.file_name().into_string().map_err(|raw| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("non-UTF-8 file name {raw:?}"),
            )
        })?;
        names.push(name);
    }
    names.sort_unstable();
    Ok(names)
}
