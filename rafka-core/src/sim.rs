//! A fault-injecting in-memory [`Storage`] for tests (TigerBeetle's
//! `testing/storage.zig` in spirit), plus a [`ManualClock`].
//!
//! # Model
//! - Every file has *durable* contents (as of its last successful
//!   `sync_data`) and *current* contents; the writes and truncations in
//!   between are kept in order as pending operations.
//! - File names (creation, removal, rename) become durable when their
//!   directory is `sync_dir`ed. Directories themselves are durable at once
//!   (simpler; the log syncs a partition dir's parent after creating it).
//! - [`SimStorage::crash`] drops everything not durable: names revert to the
//!   durable ones and files to their durable contents. The variants keep a
//!   byte prefix of a file's pending operations, the last kept write cut at
//!   that byte ("the power failed in the middle of this write"), or a
//!   random prefix per file with a seed. Handles opened before a crash fail
//!   afterwards, as the process holding them is gone.
//! - Faults: fail the next N `sync_data` calls (the data stays pending),
//!   tear the next write (only its first k bytes land, then it errors),
//!   halt after N operations (every later call fails, as if the process
//!   died there: crash points without knowing the code's steps), and
//!   a short-read mode where `read_at` returns fewer bytes than asked
//!   although more are there. That last one breaks the trait's "short only
//!   at EOF" promise on purpose: the log reads through a loop that never
//!   relies on it, and this mode proves it.
//!
//! Single-threaded (`Rc<RefCell>`): clones share one file system.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::ErrorKind;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use crate::io::{Clock, IoError, Storage, StorageFile};

/// A clock tests move by hand.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_ms: Rc<Cell<i64>>,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        ManualClock {
            now_ms: Rc::new(Cell::new(now_ms)),
        }
    }

    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.set(now_ms);
    }

    pub fn advance_ms(&self, delta_ms: i64) {
        self.now_ms.set(self.now_ms.get() + delta_ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.get()
    }
}

/// Counts of the operations that reached the simulated disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub writes: u64,
    pub reads: u64,
    pub sync_data_calls: u64,
    pub sync_dir_calls: u64,
}

#[derive(Debug, Clone)]
enum PendingOp {
    Write { position: u64, data: Vec<u8> },
    Truncate { len: u64 },
}

impl PendingOp {
    fn apply(&self, contents: &mut Vec<u8>, kept_bytes: usize) {
        match self {
            PendingOp::Write { position, data } => {
                write_into(contents, *position, &data[..kept_bytes])
            }
            PendingOp::Truncate { len } => contents.resize(*len as usize, 0),
        }
    }

    fn cost_bytes(&self) -> usize {
        match self {
            PendingOp::Write { data, .. } => data.len(),
            PendingOp::Truncate { .. } => 0,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<PendingOp>,
}

impl Inode {
    /// The contents after a crash that kept `kept_bytes` of the pending
    /// operations' bytes, in order.
    fn crash(&mut self, mut kept_bytes: usize) {
        let mut contents = std::mem::take(&mut self.durable);
        for op in &self.pending {
            let cost = op.cost_bytes();
            if cost == 0 && kept_bytes == 0 {
                break;
            }
            let take = cost.min(kept_bytes);
            op.apply(&mut contents, take);
            kept_bytes -= take;
            if take < cost {
                break;
            }
        }
        self.pending.clear();
        self.current = contents.clone();
        self.durable = contents;
    }

    fn unsynced_bytes(&self) -> usize {
        self.pending.iter().map(PendingOp::cost_bytes).sum()
    }
}

type InodeRef = Rc<RefCell<Inode>>;

#[derive(Debug, Default)]
struct Faults {
    failing_syncs: u32,
    torn_write_kept_bytes: Option<usize>,
    short_reads: bool,
    /// Operations left before every call fails; None: no halt armed.
    ops_before_halt: Option<u64>,
}

#[derive(Debug, Default)]
struct SimState {
    generation: u64,
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, InodeRef>,
    durable_names: BTreeMap<PathBuf, InodeRef>,
    faults: Faults,
    rng: XorShift,
    stats: SimStats,
}

/// The simulated file system; clones share it.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Rc<RefCell<SimState>>,
}

impl SimStorage {
    pub fn new() -> Self {
        SimStorage::with_seed(0x5EED)
    }

    /// Short-read lengths and [`SimStorage::crash_random`] draw from a
    /// generator seeded here, so a failing seed replays exactly.
    pub fn with_seed(seed: u64) -> Self {
        let storage = SimStorage::default();
        storage.state.borrow_mut().rng = XorShift::new(seed);
        storage
    }

    /// The next `count` `sync_data` calls fail with EIO; their data stays
    /// pending (lost at the next crash unless a later sync succeeds).
    pub fn fail_next_syncs(&self, count: u32) {
        self.state.borrow_mut().faults.failing_syncs = count;
    }

    /// The next write lands only its first `kept_bytes`, then fails.
    pub fn tear_next_write(&self, kept_bytes: usize) {
        self.state.borrow_mut().faults.torn_write_kept_bytes = Some(kept_bytes);
    }

    /// Reads return a random non-empty part of what was asked.
    pub fn set_short_reads(&self, enabled: bool) {
        self.state.borrow_mut().faults.short_reads = enabled;
    }

    /// The next `ops` operations (any call on the storage or its files)
    /// succeed and every later one fails until the next crash: the process
    /// "died" right after its `ops`-th operation. Stepping `ops` from 0
    /// visits every crash point of a sequence of calls.
    pub fn halt_after(&self, ops: u64) {
        self.state.borrow_mut().faults.ops_before_halt = Some(ops);
    }

    /// Whether an armed halt used up its operations (the next call fails).
    pub fn halted(&self) -> bool {
        self.state.borrow().faults.ops_before_halt == Some(0)
    }

    pub fn stats(&self) -> SimStats {
        self.state.borrow().stats
    }

    /// Loses everything that was not made durable.
    pub fn crash(&self) {
        self.crash_with(|_, _| 0);
    }

    /// Crashes keeping the first `kept_bytes` of `path`'s unsynced bytes.
    pub fn crash_keeping(&self, path: &Path, kept_bytes: usize) {
        self.crash_with(|file, _| if file == path { kept_bytes } else { 0 });
    }

    /// Crashes keeping a random prefix of every file's unsynced bytes.
    pub fn crash_random(&self) {
        let mut rng = std::mem::take(&mut self.state.borrow_mut().rng);
        self.crash_with(|_, unsynced| rng.below(unsynced as u64 + 1) as usize);
        self.state.borrow_mut().rng = rng;
    }

    /// Crashes; `kept(path, unsynced_bytes)` says how many unsynced bytes
    /// of each durably named file survive. A halt is lifted (the machine
    /// restarts).
    pub fn crash_with(&self, mut kept: impl FnMut(&Path, usize) -> usize) {
        let mut state = self.state.borrow_mut();
        state.generation += 1;
        state.faults.ops_before_halt = None;
        state.names = state.durable_names.clone();
        for (path, inode) in &state.durable_names {
            let mut inode = inode.borrow_mut();
            let unsynced = inode.unsynced_bytes();
            let kept_bytes = kept(path, unsynced).min(unsynced);
            inode.crash(kept_bytes);
        }
    }

    /// An independent copy of the whole file system (to crash one state
    /// many ways). Handles into `self` do not work on the copy.
    pub fn fork(&self) -> SimStorage {
        let state = self.state.borrow();
        let mut copies: HashMap<*const RefCell<Inode>, InodeRef> = HashMap::new();
        let mut copy_names = |names: &BTreeMap<PathBuf, InodeRef>| {
            names
                .iter()
                .map(|(path, inode)| {
                    let copy = copies
                        .entry(Rc::as_ptr(inode))
                        .or_insert_with(|| Rc::new(RefCell::new(inode.borrow().clone())));
                    (path.clone(), Rc::clone(copy))
                })
                .collect::<BTreeMap<_, _>>()
        };
        let names = copy_names(&state.names);
        let durable_names = copy_names(&state.durable_names);
        let forked = SimState {
            generation: state.generation + 1,
            dirs: state.dirs.clone(),
            names,
            durable_names,
            faults: Faults::default(),
            rng: state.rng.clone(),
            stats: SimStats::default(),
        };
        SimStorage {
            state: Rc::new(RefCell::new(forked)),
        }
    }

    /// Bytes written to `path` since its last successful sync.
    pub fn unsynced_bytes(&self, path: &Path) -> usize {
        let state = self.state.borrow();
        state
            .names
            .get(path)
            .map_or(0, |inode| inode.borrow().unsynced_bytes())
    }

    /// The current contents of `path`.
    pub fn file_contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.borrow();
        state
            .names
            .get(path)
            .map(|inode| inode.borrow().current.clone())
    }

    /// Replaces `path`'s contents, durably (a test tampering with the disk).
    pub fn set_file_contents(&self, path: &Path, contents: &[u8]) {
        let mut state = self.state.borrow_mut();
        let inode = Rc::new(RefCell::new(Inode {
            current: contents.to_vec(),
            durable: contents.to_vec(),
            pending: Vec::new(),
        }));
        state.names.insert(path.to_path_buf(), Rc::clone(&inode));
        state.durable_names.insert(path.to_path_buf(), inode);
    }

    /// Removes `path` durably (a test tampering with the disk).
    pub fn remove_file_durably(&self, path: &Path) {
        let mut state = self.state.borrow_mut();
        state.names.remove(path);
        state.durable_names.remove(path);
    }
}

fn write_into(contents: &mut Vec<u8>, position: u64, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let start = position as usize;
    let end = start + data.len();
    if contents.len() < end {
        contents.resize(end, 0);
    }
    contents[start..end].copy_from_slice(data);
}

fn io_error(op: &'static str, path: &Path, kind: ErrorKind, message: &'static str) -> IoError {
    IoError::new(op, path, std::io::Error::new(kind, message))
}

impl SimState {
    /// Counts one operation against an armed halt; fails once it is reached.
    fn gate(&mut self, op: &'static str, path: &Path) -> Result<(), IoError> {
        match &mut self.faults.ops_before_halt {
            Some(0) => Err(io_error(op, path, ErrorKind::Other, "halted (injected)")),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn is_child_of(path: &Path, dir: &Path) -> bool {
    path.parent() == Some(dir)
}

impl Storage for SimStorage {
    type File = SimFile;

    async fn open(&self, path: &Path) -> Result<SimFile, IoError> {
        let mut state = self.state.borrow_mut();
        state.gate("open", path)?;
        if state.dirs.contains(path) {
            return Err(io_error(
                "open",
                path,
                ErrorKind::IsADirectory,
                "is a directory",
            ));
        }
        let parent_exists = path
            .parent()
            .is_some_and(|parent| state.dirs.contains(parent));
        if !parent_exists {
            return Err(io_error(
                "open",
                path,
                ErrorKind::NotFound,
                "no such directory",
            ));
        }
        let inode = Rc::clone(state.names.entry(path.to_path_buf()).or_default());
        Ok(SimFile {
            state: Rc::clone(&self.state),
            inode,
            path: path.to_path_buf(),
            generation: state.generation,
        })
    }

    async fn create_dir_all(&self, path: &Path) -> Result<(), IoError> {
        let mut state = self.state.borrow_mut();
        state.gate("mkdir", path)?;
        if state.names.contains_key(path) {
            return Err(io_error(
                "mkdir",
                path,
                ErrorKind::AlreadyExists,
                "is a file",
            ));
        }
        for ancestor in path.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    async fn list_dir(&self, path: &Path) -> Result<Vec<String>, IoError> {
        let mut state = self.state.borrow_mut();
        state.gate("readdir", path)?;
        if !state.dirs.contains(path) {
            return Err(io_error(
                "readdir",
                path,
                ErrorKind::NotFound,
                "no such directory",
            ));
        }
        let files = state.names.keys().filter(|name| is_child_of(name, path));
        let dirs = state.dirs.iter().filter(|dir| is_child_of(dir, path));
        Ok(files
            .chain(dirs)
            .filter_map(|child| child.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect())
    }

    async fn exists(&self, path: &Path) -> Result<bool, IoError> {
        let mut state = self.state.borrow_mut();
        state.gate("stat", path)?;
        Ok(state.names.contains_key(path) || state.dirs.contains(path))
    }

    async fn remove_file(&self, path: &Path) -> Result<(), IoError> {
        let mut state = self.state.borrow_mut();
        state.gate("unlink", path)?;
        match state.names.remove(path) {
            Some(_) => Ok(()),
            None => Err(io_error(
                "unlink",
                path,
                ErrorKind::NotFound,
                "no such file",
            )),
        }
    }

    async fn remove_dir_all(&self, path: &Path) -> Result<(), IoError> {
        let mut state = self.state.borrow_mut();
        state.gate("rmdir", path)?;
        if !state.dirs.contains(path) {
            return Err(io_error(
                "rmdir",
                path,
                ErrorKind::NotFound,
                "no such directory",
            ));
        }
        state.dirs.retain(|dir| !dir.starts_with(path));
        state.names.retain(|name, _| !name.starts_with(path));
        state
            .durable_names
            .retain(|name, _| !name.starts_with(path));
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> Result<(), IoError> {
        let mut state = self.state.borrow_mut();
        state.gate("rename", from)?;
        let Some(inode) = state.names.remove(from) else {
            return Err(io_error(
                "rename",
                from,
                ErrorKind::NotFound,
                "no such file",
            ));
        };
        state.names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    async fn sync_dir(&self, path: &Path) -> Result<(), IoError> {
        let mut state = self.state.borrow_mut();
        state.gate("fsync dir", path)?;
        if !state.dirs.contains(path) {
            return Err(io_error(
                "fsync dir",
                path,
                ErrorKind::NotFound,
                "no such directory",
            ));
        }
        state.stats.sync_dir_calls += 1;
        state
            .durable_names
            .retain(|name, _| !is_child_of(name, path));
        let entries: Vec<_> = state
            .names
            .iter()
            .filter(|(name, _)| is_child_of(name, path))
            .map(|(name, inode)| (name.clone(), Rc::clone(inode)))
            .collect();
        state.durable_names.extend(entries);
        Ok(())
    }
}

/// An open simulated file.
#[derive(Debug)]
pub struct SimFile {
    state: Rc<RefCell<SimState>>,
    inode: InodeRef,
    path: PathBuf,
    generation: u64,
}

impl SimFile {
    fn check_live(&self, op: &'static str) -> Result<(), IoError> {
        let mut state = self.state.borrow_mut();
        state.gate(op, &self.path)?;
        if state.generation != self.generation {
            return Err(io_error(
                op,
                &self.path,
                ErrorKind::Other,
                "handle from before a simulated crash",
            ));
        }
        Ok(())
    }
}

impl StorageFile for SimFile {
    async fn write_at(&self, pos: u64, data: &[u8]) -> Result<(), IoError> {
        self.check_live("write")?;
        let mut state = self.state.borrow_mut();
        state.stats.writes += 1;
        let torn = state.faults.torn_write_kept_bytes.take();
        let kept = torn.map_or(data.len(), |kept| kept.min(data.len()));
        let mut inode = self.inode.borrow_mut();
        write_into(&mut inode.current, pos, &data[..kept]);
        inode.pending.push(PendingOp::Write {
            position: pos,
            data: data[..kept].to_vec(),
        });
        match torn {
            Some(_) => Err(io_error(
                "write",
                &self.path,
                ErrorKind::Other,
                "torn write (injected)",
            )),
            None => Ok(()),
        }
    }

    async fn read_at(&self, pos: u64, len: usize) -> Result<Bytes, IoError> {
        self.check_live("read")?;
        let mut state = self.state.borrow_mut();
        state.stats.reads += 1;
        let inode = self.inode.borrow();
        let start = (pos as usize).min(inode.current.len());
        let mut end = start.saturating_add(len).min(inode.current.len());
        if state.faults.short_reads && end - start > 1 {
            end = start + 1 + state.rng.below((end - start - 1) as u64) as usize;
        }
        Ok(Bytes::copy_from_slice(&inode.current[start..end]))
    }

    async fn sync_data(&self) -> Result<(), IoError> {
        self.check_live("fdatasync")?;
        let mut state = self.state.borrow_mut();
        state.stats.sync_data_calls += 1;
        if state.faults.failing_syncs > 0 {
            state.faults.failing_syncs -= 1;
            return Err(io_error(
                "fdatasync",
                &self.path,
                ErrorKind::Other,
                "EIO (injected)",
            ));
        }
        let mut inode = self.inode.borrow_mut();
        let pending = std::mem::take(&mut inode.pending);
        for op in &pending {
            op.apply(&mut inode.durable, op.cost_bytes());
        }
        Ok(())
    }

    async fn truncate(&self, len: u64) -> Result<(), IoError> {
        self.check_live("truncate")?;
        let mut inode = self.inode.borrow_mut();
        inode.current.resize(len as usize, 0);
        inode.pending.push(PendingOp::Truncate { len });
        Ok(())
    }

    async fn size(&self) -> Result<u64, IoError> {
        self.check_live("stat")?;
        Ok(self.inode.borrow().current.len() as u64)
    }

    async fn close(self) -> Result<(), IoError> {
        self.check_live("close")
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }
}

/// xorshift64*: tiny, seedable, good enough for fault schedules.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl Default for XorShift {
    fn default() -> Self {
        XorShift::new(0x5EED)
    }
}

impl XorShift {
    fn new(seed: u64) -> Self {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..bound` (0 when bound is 0).
    fn below(&mut self, bound: u64) -> u64 {
        match bound {
            0 => 0,
            _ => self.next() % bound,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_lite::future::block_on;

    use super::*;

    fn setup() -> (SimStorage, PathBuf) {
        let storage = SimStorage::new();
        block_on(storage.create_dir_all(Path::new("/d"))).unwrap();
        (storage, PathBuf::from("/d/f"))
    }

    #[test]
    fn unsynced_data_and_names_vanish_on_crash() {
        let (storage, path) = setup();
        block_on(async {
            let file = storage.open(&path).await.unwrap();
            file.write_at(0, b"hello").await.unwrap();
            file.sync_data().await.unwrap();
            file.write_at(5, b" world").await.unwrap();
            storage.crash();
            // The name was never synced: the file is gone.
            assert!(!storage.exists(&path).await.unwrap());
            assert!(file.write_at(0, b"x").await.is_err());

            let file = storage.open(&path).await.unwrap();
            file.write_at(0, b"hello").await.unwrap();
            file.sync_data().await.unwrap();
            storage.sync_dir(Path::new("/d")).await.unwrap();
            file.write_at(5, b" world").await.unwrap();
            storage.crash();
            assert_eq!(storage.file_contents(&path).unwrap(), b"hello");
        });
    }

    #[test]
    fn crash_keeping_cuts_the_pending_stream_at_a_byte() {
        let (storage, path) = setup();
        block_on(async {
            let file = storage.open(&path).await.unwrap();
            storage.sync_dir(Path::new("/d")).await.unwrap();
            file.write_at(0, b"abc").await.unwrap();
            file.sync_data().await.unwrap();
            file.write_at(3, b"defg").await.unwrap();
            file.write_at(0, b"XY").await.unwrap();
            assert_eq!(storage.unsynced_bytes(&path), 6);
            for (kept, expected) in [
                (0, &b"abc"[..]),
                (2, b"abcde"),
                (4, b"abcdefg"),
                (5, b"Xbcdefg"),
                (6, b"XYcdefg"),
                (100, b"XYcdefg"),
            ] {
                let fork = storage.fork();
                fork.crash_keeping(&path, kept);
                assert_eq!(fork.file_contents(&path).unwrap(), expected, "kept {kept}");
            }
            // The fork leaves the original untouched.
            assert_eq!(storage.file_contents(&path).unwrap(), b"XYcdefg");
        });
    }

    #[test]
    fn injected_faults() {
        let (storage, path) = setup();
        block_on(async {
            let file = storage.open(&path).await.unwrap();
            storage.fail_next_syncs(1);
            file.write_at(0, b"0123456789").await.unwrap();
            assert_eq!(file.sync_data().await.unwrap_err().kind(), ErrorKind::Other);
            file.sync_data().await.unwrap();
            storage.tear_next_write(3);
            assert!(file.write_at(10, b"abcdef").await.is_err());
            assert_eq!(storage.file_contents(&path).unwrap(), b"0123456789abc");
            storage.set_short_reads(true);
            let mut seen_short = false;
            for _ in 0..20 {
                let read = file.read_at(0, 13).await.unwrap();
                assert!(!read.is_empty() && read.len() <= 13);
                assert_eq!(&read[..], &b"0123456789abc"[..read.len()]);
                seen_short |= read.len() < 13;
            }
            assert!(seen_short);
            assert_eq!(storage.stats().sync_data_calls, 2);
        });
    }

    #[test]
    fn rename_is_durable_after_dir_sync() {
        let (storage, path) = setup();
        block_on(async {
            let old = storage.open(&path).await.unwrap();
            old.write_at(0, b"old").await.unwrap();
            old.sync_data().await.unwrap();
            storage.sync_dir(Path::new("/d")).await.unwrap();
            let temp = PathBuf::from("/d/f.tmp");
            let new = storage.open(&temp).await.unwrap();
            new.write_at(0, b"new").await.unwrap();
            new.sync_data().await.unwrap();
            storage.rename(&temp, &path).await.unwrap();
            let fork = storage.fork();
            fork.crash();
            assert_eq!(fork.file_contents(&path).unwrap(), b"old");
            storage.sync_dir(Path::new("/d")).await.unwrap();
            storage.crash();
            assert_eq!(storage.file_contents(&path).unwrap(), b"new");
            assert_eq!(
                storage.list_dir(Path::new("/d")).await.unwrap(),
                vec!["f".to_owned()]
            );
        });
    }

    #[test]
    fn halt_fails_every_call_after_n_until_the_crash() {
        let (storage, path) = setup();
        block_on(async {
            let file = storage.open(&path).await.unwrap();
            storage.sync_dir(Path::new("/d")).await.unwrap();
            storage.halt_after(2);
            file.write_at(0, b"ab").await.unwrap();
            assert!(!storage.halted());
            file.sync_data().await.unwrap();
            assert!(storage.halted());
            assert!(file.write_at(2, b"cd").await.is_err());
            assert!(storage.list_dir(Path::new("/d")).await.is_err());
            storage.crash();
            assert!(!storage.halted());
            assert_eq!(storage.file_contents(&path).unwrap(), b"ab");
            assert!(storage.open(&path).await.is_ok());
        });
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(1_000);
        let shared = clock.clone();
        shared.advance_ms(500);
        assert_eq!(clock.now_ms(), 1_500);
        clock.set_ms(42);
        assert_eq!(shared.now_ms(), 42);
    }
}
