//! Group commit. A flush is three steps so that appends never wait for an
//! fdatasync:
//! 1. [`Log::flush_begin`] (synchronous) takes every file written since the
//!    last *completed* flush and the log end offset they cover;
//! 2. [`FlushTicket::sync`] fdatasyncs them without borrowing the log, while
//!    appends go on;
//! 3. [`Log::flush_complete`] moves the recovery point forward.
//!
//! Files stay in the dirty set until a flush that began after their last
//! write completes, so any one completed ticket vouches for everything
//! before its begin, whatever order concurrent tickets finish in.
//!
//! An fsync error makes the log read-only for good (Kafka and Redpanda
//! semantics for writes: after a failed fsync the kernel may have dropped
//! the dirty pages, so what the page cache holds is unknown). Only
//! reopening, which re-reads and re-validates the disk, takes writes
//! again. Reads stay served below the recovery point: only a completed
//! flush moves it, and a flush completes only if every one of its fsyncs
//! succeeded, so everything below it reached the disk before the failure.

use std::path::PathBuf;
use std::rc::Rc;

use super::error::LogError;
use super::{Health, Log};
use crate::io::{Storage, StorageFile};

/// The files written since the last completed flush, with the sequence
/// number of their last write.
#[derive(Debug)]
pub(super) struct DirtyFiles<F> {
    files: Vec<(Rc<F>, u64)>,
    dir_seq: u64,
    write_seq: u64,
    durable_seq: u64,
}

impl<F> Default for DirtyFiles<F> {
    fn default() -> Self {
        DirtyFiles {
            files: Vec::new(),
            dir_seq: 0,
            write_seq: 0,
            durable_seq: 0,
        }
    }
}

impl<F> DirtyFiles<F> {
    pub fn mark_file(&mut self, file: &Rc<F>) {
        self.write_seq += 1;
        let seq = self.write_seq;
        // The active segment is almost always the last entry.
        if let Some(entry) = self
            .files
            .iter_mut()
            .rev()
            .find(|(f, _)| Rc::ptr_eq(f, file))
        {
            entry.1 = seq;
        } else {
            self.files.push((Rc::clone(file), seq));
        }
    }

    /// A file was created, removed or renamed in the partition directory.
    pub fn mark_dir(&mut self) {
        self.write_seq += 1;
        self.dir_seq = self.write_seq;
    }

    fn complete(&mut self, seq: u64) {
        self.durable_seq = self.durable_seq.max(seq);
        let durable_seq = self.durable_seq;
        self.files
            .retain(|(_, last_write)| *last_write > durable_seq);
    }
}

/// A flush in flight: what to sync and what it will vouch for.
#[must_use = "a flush ticket does nothing until synced"]
pub struct FlushTicket<S: Storage> {
    files: Vec<Rc<S::File>>,
    dir: Option<(S, PathBuf)>,
    seq: u64,
    truncations: u64,
    end_offset: i64,
    health: Rc<Health>,
}

/// A synced flush, to hand back to [`Log::flush_complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushDone {
    seq: u64,
    truncations: u64,
    end_offset: i64,
}

impl<S: Storage> FlushTicket<S> {
    /// The log end offset this flush makes durable.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// How many files it will fdatasync.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    /// fdatasyncs every file of the ticket, then the directory if files
    /// were created or removed. On failure the log turns read-only.
    pub async fn sync(self) -> Result<FlushDone, LogError> {
        for file in &self.files {
            if let Err(error) = file.sync_data().await {
                self.health.fail_writes("fdatasync");
                return Err(error.into());
            }
        }
        if let Some((storage, dir)) = &self.dir {
            if let Err(error) = storage.sync_dir(dir).await {
                self.health.fail_writes("directory fsync");
                return Err(error.into());
            }
        }
        Ok(FlushDone {
            seq: self.seq,
            truncations: self.truncations,
            end_offset: self.end_offset,
        })
    }
}

impl<S: Storage + Clone> Log<S> {
    /// Starts a flush covering every append so far (see the module doc).
    pub fn flush_begin(&mut self) -> Result<FlushTicket<S>, LogError> {
        self.health.check_write()?;
        let dirty = &self.dirty;
        let dir =
            (dirty.dir_seq > dirty.durable_seq).then(|| (self.storage.clone(), self.dir.clone()));
        Ok(FlushTicket {
            files: dirty
                .files
                .iter()
                .map(|(file, _)| Rc::clone(file))
                .collect(),
            dir,
            seq: dirty.write_seq,
            truncations: self.truncations,
            end_offset: self.log_end_offset(),
            health: Rc::clone(&self.health),
        })
    }

    /// Records a synced flush; returns the new flushed offset. Refused if
    /// the log failed meanwhile (another flush's fsync error).
    pub fn flush_complete(&mut self, done: FlushDone) -> Result<i64, LogError> {
        self.health.check_write()?;
        self.dirty.complete(done.seq);
        // A truncation since the begin may have rewritten offsets below
        // `end_offset` with data this flush never saw.
        if done.truncations == self.truncations {
            let end_offset = done.end_offset.min(self.log_end_offset());
            self.recovery_point = self.recovery_point.max(end_offset);
        }
        Ok(self.recovery_point)
    }

    /// Begin, sync and complete in one call.
    pub async fn flush(&mut self) -> Result<i64, LogError> {
        let ticket = self.flush_begin()?;
        let done = ticket.sync().await?;
        self.flush_complete(done)
    }

    /// Whether anything was written since the last completed flush.
    pub fn has_unflushed(&self) -> bool {
        !self.dirty.files.is_empty() || self.dirty.dir_seq > self.dirty.durable_seq
    }
}
