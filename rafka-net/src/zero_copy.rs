//! Responses made of chunks — bytes in memory and regions of segment files —
//! and the syscalls that move a file region from the page cache to a
//! socket without copying it through user space.
//!
//! Only Fetch answers with chunks ([`crate::service::Response::Chunks`]);
//! the connection writes the size prefix (the total of the chunks), then
//! the chunks in order: bytes with a normal write, regions with
//! `sendfile(2)`.
//!
//! Why `sendfile` on a non-blocking socket. glommio drives its sockets with
//! `MSG_DONTWAIT` sends and receives plus io_uring poll requests, so the
//! socket's own blocking mode is never relied on; but `sendfile` has no
//! per-call flag, and on a blocking socket a slow consumer would stall the
//! whole core. The connection therefore sets `O_NONBLOCK` on its socket
//! ([`set_nonblocking`]; the flag is per open file description and the
//! descriptor is the connection's alone). When `sendfile` answers `EAGAIN`,
//! the writer reads the next few KiB of the region and hands them to
//! glommio's `poll_write`, which waits for writability on the shard's ring
//! without blocking other tasks and sends them; then `sendfile` resumes.
//! That costs a small copy per full socket buffer and needs nothing from
//! glommio but its public stream API. A second io_uring for splice was the
//! alternative; it needs its completions fed back into glommio's reactor,
//! which glommio 0.9 has no public hook for.
//!
//! Filesystems without `sendfile` support (`EINVAL`, `ENOSYS`,
//! `EOPNOTSUPP`) fall back to reading the region into memory, as do
//! connections with zero copy turned off (TLS, which must encrypt in user
//! space): [`ChunkedReply::materialize`].
//!
//! Lives on: the shard of the connection; regions are `Send` and come from
//! whichever shard owns the partition.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use bytes::{Bytes, BytesMut};
use rafka_shard::storage::FileRegion;

/// Largest `sendfile` issued at once, so the writer yields to other tasks
/// between calls when the socket keeps accepting.
pub const SENDFILE_BYTES_MAX: u64 = 1 << 20;

/// One piece of a response.
#[derive(Debug, Clone)]
pub enum Chunk {
    Bytes(Bytes),
    File(FileRegion),
}

impl Chunk {
    pub fn len_bytes(&self) -> u64 {
        match self {
            Chunk::Bytes(bytes) => bytes.len() as u64,
            Chunk::File(region) => region.len,
        }
    }

    /// The chunk's bytes in memory (a region is read with `pread`).
    pub fn to_bytes(&self) -> io::Result<Bytes> {
        match self {
            Chunk::Bytes(bytes) => Ok(bytes.clone()),
            Chunk::File(region) => region.read_all(),
        }
    }
}

/// A response (header + body, no size prefix) as chunks, with its total
/// size for the prefix.
#[derive(Debug, Clone, Default)]
pub struct ChunkedReply {
    chunks: Vec<Chunk>,
    size_bytes: u64,
}

impl ChunkedReply {
    pub fn new() -> Self {
        ChunkedReply::default()
    }

    /// Appends a chunk; empty ones are dropped.
    pub fn push(&mut self, chunk: Chunk) {
        let len = chunk.len_bytes();
        if len > 0 {
            self.size_bytes += len;
            self.chunks.push(chunk);
        }
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The whole response in memory: the path without zero copy, and what
    /// tests compare.
    pub fn materialize(&self) -> io::Result<Bytes> {
        let capacity = usize::try_from(self.size_bytes).map_err(|_| io::ErrorKind::InvalidInput)?;
        let mut out = BytesMut::with_capacity(capacity);
        for chunk in &self.chunks {
            out.extend_from_slice(&chunk.to_bytes()?);
        }
        Ok(out.freeze())
    }
}

/// What one `sendfile` call did.
#[derive(Debug)]
pub(crate) enum SendStep {
    /// Bytes sent; 0 means the file ended before the region did.
    Sent(u64),
    /// The socket buffer is full.
    WouldBlock,
    /// This file or socket cannot be sent from: read it instead.
    Unsupported,
    Failed(io::Error),
}

/// Sends up to [`SENDFILE_BYTES_MAX`] of `region` from `skip_bytes` on to
/// the non-blocking `socket`.
pub(crate) fn sendfile_once(socket: RawFd, region: &FileRegion, skip_bytes: u64) -> SendStep {
    let count = region
        .len
        .saturating_sub(skip_bytes)
        .min(SENDFILE_BYTES_MAX);
    let Ok(mut offset) = libc::off_t::try_from(region.position + skip_bytes) else {
        return SendStep::Unsupported;
    };
    // A region held in memory (a storage without descriptors) is written.
    let Some(file) = region.fd() else {
        return SendStep::Unsupported;
    };
    loop {
        // SAFETY: both descriptors are open for the call (the region holds
        // its file, the caller its socket) and `offset` is a valid off_t
        // the kernel may update.
        let sent = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut offset, count as usize) };
        if let Ok(sent) = u64::try_from(sent) {
            return SendStep::Sent(sent);
        }
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => SendStep::WouldBlock,
            Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => SendStep::Unsupported,
            _ => SendStep::Failed(error),
        };
    }
}

/// Sets `O_NONBLOCK` on `fd` (see the module doc for why that is safe
/// under glommio).
pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor the caller keeps open; no pointers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK != 0 {
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
