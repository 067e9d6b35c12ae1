//! A bound on the files a shard keeps open: [`CachedStorage`] wraps a
//! [`Storage`] so that every file it opens is a [`CachedFile`], whose
//! descriptor the shard's [`FileBudget`] may close while the file is idle
//! and which reopens itself on its next use.
//!
//! Without it a broker holds one descriptor per segment for as long as the
//! segment exists, so the partitions a broker can host are bounded by
//! RLIMIT_NOFILE, and a CreateTopics beyond it leaves a broker that cannot
//! start again. With it the descriptors held are bounded by the budget
//! (plus the files in the middle of an operation), whatever the number of
//! partitions.
//!
//! # Eviction
//! CLOCK (second chance): every use of a file sets its referenced bit; when
//! opening a file would exceed the budget, a hand sweeps the open files,
//! clearing set bits and closing the first file whose bit was already
//! clear. A file in the middle of an operation (someone holds its inner
//! handle) is never closed; if every open file is busy the budget is
//! exceeded rather than an operation failed (a soft bound: in-flight
//! operations are themselves bounded by the shard's request budget).
//!
//! # Why closing a file with unsynced writes is safe
//! The log's flush calls `sync_data` on a [`CachedFile`], which reopens the
//! file if it was closed since the write. fdatasync on any descriptor of a
//! file flushes the whole inode's dirty pages, and a writeback error that
//! happened while no descriptor was open is still reported to the next
//! descriptor's fsync (Linux errseq: an error nobody has seen is reported
//! to a descriptor opened after it). So an acknowledged write is durable
//! exactly as before.
//!
//! # Names
//! A closed file reopens by path, without creating it: a segment deleted
//! by retention while a reader still holds it fails that read with
//! NotFound instead of resurrecting an empty file. Renames through
//! [`CachedStorage`] carry the new name to the cached files (compaction
//! renames `.cleaned` -> `.swap` -> `.log` while the segment holds its
//! file).
//!
//! Lives on: one shard; nothing here is `Send`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use bytes::Bytes;

use super::{IoError, Storage, StorageFile};

/// The budget never goes below this many files: a log needs a few files
/// at once (segment, two indexes, a checkpoint).
pub const FILE_BUDGET_MIN: usize = 8;

/// Counters of one budget, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileBudgetStats {
    /// Files whose descriptor is open now.
    pub open: usize,
    pub capacity: usize,
    /// Descriptors closed to make room.
    pub evictions: u64,
    /// Closed files opened again on use.
    pub reopens: u64,
    /// Opens that found every open file busy and went over the budget.
    pub overflows: u64,
}

/// How many files a shard keeps open, and which.
pub struct FileBudget<F> {
    capacity: usize,
    open: Cell<usize>,
    /// The open files, in CLOCK order.
    ring: RefCell<Vec<Weak<Slot<F>>>>,
    hand: Cell<usize>,
    /// Every live cached file by its current name, for renames.
    names: RefCell<HashMap<PathBuf, Vec<Weak<Slot<F>>>>>,
    evictions: Cell<u64>,
    reopens: Cell<u64>,
    overflows: Cell<u64>,
}

impl<F> FileBudget<F> {
    /// A budget of `capacity` open files (at least [`FILE_BUDGET_MIN`]).
    pub fn new(capacity: usize) -> Rc<Self> {
        Rc::new(FileBudget {
            capacity: capacity.max(FILE_BUDGET_MIN),
            open: Cell::new(0),
            ring: RefCell::new(Vec::new()),
            hand: Cell::new(0),
            names: RefCell::new(HashMap::new()),
            evictions: Cell::new(0),
            reopens: Cell::new(0),
            overflows: Cell::new(0),
        })
    }

    pub fn stats(&self) -> FileBudgetStats {
        FileBudgetStats {
            open: self.open.get(),
            capacity: self.capacity,
            evictions: self.evictions.get(),
            reopens: self.reopens.get(),
            overflows: self.overflows.get(),
        }
    }

    /// Closes idle files until one more fits (or, with `all`, every idle
    /// file: the process ran out of descriptors).
    fn make_room(&self, all: bool) {
        let target = if all { 0 } else { self.capacity - 1 };
        // Two sweeps: the first may only clear referenced bits.
        let mut budget = 2 * self.ring.borrow().len() + 1;
        while self.open.get() > target && budget > 0 {
            budget -= 1;
            let victim = {
                let mut ring = self.ring.borrow_mut();
                if ring.is_empty() {
                    break;
                }
                let at = self.hand.get() % ring.len();
                let Some(slot) = ring[at].upgrade() else {
                    ring.swap_remove(at);
                    continue;
                };
                if !slot.is_open() {
                    slot.in_ring.set(false);
                    ring.swap_remove(at);
                    continue;
                }
                if slot.is_busy() {
                    self.hand.set(at + 1);
                    continue;
                }
                if slot.referenced.replace(false) {
                    self.hand.set(at + 1);
                    continue;
                }
                slot.in_ring.set(false);
                ring.swap_remove(at);
                slot
            };
            // Dropped outside the ring's borrow: the file's drop closes it.
            drop(victim.file.borrow_mut().take());
            self.open.set(self.open.get() - 1);
            self.evictions.set(self.evictions.get() + 1);
        }
        if !all && self.open.get() > target {
            self.overflows.set(self.overflows.get() + 1);
        }
    }

    fn opened(&self, slot: &Rc<Slot<F>>) {
        self.open.set(self.open.get() + 1);
        if !slot.in_ring.replace(true) {
            self.ring.borrow_mut().push(Rc::downgrade(slot));
        }
    }

    fn register(&self, slot: &Rc<Slot<F>>) {
        let path = slot.path.borrow().clone();
        self.names
            .borrow_mut()
            .entry(path)
            .or_default()
            .push(Rc::downgrade(slot));
    }

    fn unregister(&self, path: &Path) {
        let mut names = self.names.borrow_mut();
        if let Some(slots) = names.get_mut(path) {
            slots.retain(|slot| slot.strong_count() > 0);
            if slots.is_empty() {
                names.remove(path);
            }
        }
    }

    fn renamed(&self, from: &Path, to: &Path) {
        let mut names = self.names.borrow_mut();
        let Some(moved) = names.remove(from) else {
            return;
        };
        let moved: Vec<_> = moved.into_iter().filter(|s| s.strong_count() > 0).collect();
        for slot in moved.iter().filter_map(Weak::upgrade) {
            *slot.path.borrow_mut() = to.to_path_buf();
        }
        names.entry(to.to_path_buf()).or_default().extend(moved);
    }
}

/// A [`Storage`] whose files share one [`FileBudget`].
pub struct CachedStorage<S: Storage> {
    inner: S,
    budget: Rc<FileBudget<S::File>>,
}

impl<S: Storage + Clone> Clone for CachedStorage<S> {
    fn clone(&self) -> Self {
        CachedStorage {
            inner: self.inner.clone(),
            budget: Rc::clone(&self.budget),
        }
    }
}

impl<S: Storage + Clone> CachedStorage<S> {
    pub fn new(inner: S, budget: Rc<FileBudget<S::File>>) -> Self {
        CachedStorage { inner, budget }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn budget(&self) -> &Rc<FileBudget<S::File>> {
        &self.budget
    }

    /// Opens through the inner storage within the budget; when the process
    /// is out of descriptors, closes every idle file and tries once more.
    async fn open_inner(&self, path: &Path, create: bool) -> Result<S::File, IoError> {
        self.budget.make_room(false);
        let first = self.open_once(path, create).await;
        match first {
            Err(error) if is_out_of_descriptors(&error) => {
                self.budget.make_room(true);
                self.open_once(path, create).await
            }
            other => other,
        }
    }

    async fn open_once(&self, path: &Path, create: bool) -> Result<S::File, IoError> {
        if create {
            self.inner.open(path).await
        } else {
            self.inner.open_existing(path).await
        }
    }
}

fn is_out_of_descriptors(error: &IoError) -> bool {
    matches!(error.source.raw_os_error(), Some(EMFILE | ENFILE))
}

/// errno values for "too many open files" (process / system); Linux's.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

impl<S: Storage + Clone> Storage for CachedStorage<S> {
    type File = CachedFile<S>;

    async fn open(&self, path: &Path) -> Result<CachedFile<S>, IoError> {
        let file = self.open_inner(path, true).await?;
        Ok(self.cached(path, file))
    }

    async fn open_existing(&self, path: &Path) -> Result<CachedFile<S>, IoError> {
        let file = self.open_inner(path, false).await?;
        Ok(self.cached(path, file))
    }

    async fn create_dir_all(&self, path: &Path) -> Result<(), IoError> {
        self.inner.create_dir_all(path).await
    }

    async fn list_dir(&self, path: &Path) -> Result<Vec<String>, IoError> {
        self.inner.list_dir(path).await
    }

    async fn exists(&self, path: &Path) -> Result<bool, IoError> {
        self.inner.exists(path).await
    }

    async fn remove_file(&self, path: &Path) -> Result<(), IoError> {
        self.inner.remove_file(path).await
    }

    async fn remove_dir_all(&self, path: &Path) -> Result<(), IoError> {
        self.inner.remove_dir_all(path).await
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), IoError> {
        self.inner.rename(from, to).await?;
        self.budget.renamed(from, to);
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> Result<(), IoError> {
        self.inner.sync_dir(path).await
    }
}

impl<S: Storage + Clone> CachedStorage<S> {
    fn cached(&self, path: &Path, file: S::File) -> CachedFile<S> {
        let slot = Rc::new(Slot {
            path: RefCell::new(path.to_path_buf()),
            file: RefCell::new(Some(Rc::new(file))),
            referenced: Cell::new(true),
            in_ring: Cell::new(false),
            budget: Rc::downgrade(&self.budget),
        });
        self.budget.opened(&slot);
        self.budget.register(&slot);
        CachedFile {
            slot,
            storage: self.clone(),
        }
    }
}

/// The state of one cached file the budget can see.
struct Slot<F> {
    path: RefCell<PathBuf>,
    /// `None` while closed. The inner `Rc` is cloned for each operation,
    /// which marks the file busy for the duration.
    file: RefCell<Option<Rc<F>>>,
    referenced: Cell<bool>,
    in_ring: Cell<bool>,
    budget: Weak<FileBudget<F>>,
}

impl<F> Slot<F> {
    fn is_open(&self) -> bool {
        self.file.borrow().is_some()
    }

    fn is_busy(&self) -> bool {
        self.file
            .borrow()
            .as_ref()
            .is_some_and(|file| Rc::strong_count(file) > 1)
    }
}

impl<F> Drop for Slot<F> {
    fn drop(&mut self) {
        let Some(budget) = self.budget.upgrade() else {
            return;
        };
        if self.file.get_mut().take().is_some() {
            budget.open.set(budget.open.get() - 1);
        }
        budget.unregister(self.path.get_mut());
    }
}

/// A file of a [`CachedStorage`]: open while in use or recently used,
/// closed by the budget when idle, reopened on demand.
pub struct CachedFile<S: Storage> {
    slot: Rc<Slot<S::File>>,
    storage: CachedStorage<S>,
}

impl<S: Storage> std::fmt::Debug for CachedFile<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedFile")
            .field("path", &*self.slot.path.borrow())
            .field("open", &self.slot.is_open())
            .finish()
    }
}

impl<S: Storage + Clone> CachedFile<S> {
    /// The file's current name.
    pub fn path(&self) -> PathBuf {
        self.slot.path.borrow().clone()
    }

    pub fn is_open(&self) -> bool {
        self.slot.is_open()
    }

    /// The open inner file, reopening it if the budget closed it. The
    /// returned handle keeps it open (busy) until dropped.
    pub async fn inner(&self) -> Result<Rc<S::File>, IoError> {
        if let Some(file) = self.slot.file.borrow().as_ref() {
            self.slot.referenced.set(true);
            return Ok(Rc::clone(file));
        }
        let path = self.path();
        let reopened = self.storage.open_inner(&path, false).await?;
        let mut file = self.slot.file.borrow_mut();
        if let Some(file) = file.as_ref() {
            // Reopened concurrently by another operation: use that one
            // (ours closes as it drops).
            return Ok(Rc::clone(file));
        }
        let reopened = Rc::new(reopened);
        *file = Some(Rc::clone(&reopened));
        drop(file);
        self.slot.referenced.set(true);
        self.storage.budget.opened(&self.slot);
        let budget = &self.storage.budget;
        budget.reopens.set(budget.reopens.get() + 1);
        Ok(reopened)
    }
}

impl<S: Storage + Clone> StorageFile for CachedFile<S> {
    async fn write_at(&self, pos: u64, data: &[u8]) -> Result<(), IoError> {
        self.inner().await?.write_at(pos, data).await
    }

    async fn read_at(&self, pos: u64, len: usize) -> Result<Bytes, IoError> {
        self.inner().await?.read_at(pos, len).await
    }

    async fn sync_data(&self) -> Result<(), IoError> {
        self.inner().await?.sync_data().await
    }

    async fn truncate(&self, len: u64) -> Result<(), IoError> {
        self.inner().await?.truncate(len).await
    }

    async fn size(&self) -> Result<u64, IoError> {
        self.inner().await?.size().await
    }

    async fn close(self) -> Result<(), IoError> {
        let taken = self.slot.file.borrow_mut().take();
        let Some(file) = taken else {
            return Ok(());
        };
        let budget = &self.storage.budget;
        budget.open.set(budget.open.get() - 1);
        match Rc::try_unwrap(file) {
            Ok(file) => file.close().await,
            // Busy elsewhere: it closes when that operation drops it.
            Err(_busy) => Ok(()),
        }
    }

    fn raw_fd(&self) -> Option<RawFd> {
        self.slot.file.borrow().as_ref().and_then(|f| f.raw_fd())
    }
}
