//! The machine's own ceilings, measured in the same run as the broker so
//! that figures are compared as ratios on a noisy machine:
//! - `ceiling-write`: sequential buffered writes of each size with an
//!   fdatasync every `flush_bytes` (the cost acks=all produce must pay),
//!   and the same with O_DIRECT (DMA from an aligned buffer, no page-cache
//!   copy) for sizes that are whole 4 KiB blocks; each row's detail ends
//!   with the CPU time it cost per GB written, the copy's price;
//! - `ceiling-sendfile`: sendfile(2) of a page-cached file over a loopback
//!   TCP connection to a reader that discards (the zero-copy fetch path).
//!
//! Both print `ceiling,detail,bytes,seconds,mb_per_sec` rows.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::log_append::FlushEvery;

pub const CSV_HEADER: &str = "ceiling,detail,bytes,seconds,mb_per_sec";

/// The reader's buffer; large, so the reader is never the bottleneck.
const READ_CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CeilingError {
    #[error("{op} {}: {source}", path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("loopback socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("the reader received {got} bytes, {expected} were sent")]
    ShortRead { expected: u64, got: u64 },
}

fn file_err<'p>(
    op: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> CeilingError + 'p {
    move |source| CeilingError::File {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CeilingRow {
    pub ceiling: &'static str,
    pub detail: String,
    pub bytes: u64,
    pub seconds: f64,
}

impl CeilingRow {
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    pub fn csv_line(&self) -> String {
        format!(
            "{},{},{},{:.3},{:.1}",
            self.ceiling,
            self.detail,
            self.bytes,
            self.seconds,
            self.mb_per_sec()
        )
    }
}

/// How the write ceiling reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// write(2) into the page cache; writeback and fdatasync move it.
    Buffered,
    /// O_DIRECT: the device DMAs from the (block-aligned) user buffer.
    Direct,
}

/// O_DIRECT's alignment for buffers, offsets and sizes: the page size,
/// which covers every block size a data disk uses.
pub const DIRECT_ALIGN: usize = 4096;

/// Writes `total_bytes` in `write_bytes` writes to a fresh file in `dir`,
/// fdatasync every `flush_bytes` and at the end; the file is removed after.
/// `Direct` needs `write_bytes` to be a multiple of [`DIRECT_ALIGN`].
pub fn write_ceiling(
    dir: &Path,
    mode: WriteMode,
    write_bytes: usize,
    total_bytes: u64,
    flush_bytes: u64,
) -> Result<CeilingRow, CeilingError> {
    let path = dir.join(format!("ceiling-write-{write_bytes}"));
    // Not all zeros, so no layer can cheat on zero pages. One block more
    // than needed, so an aligned window of `write_bytes` fits.
    let backing: Vec<u8> = (0..write_bytes + DIRECT_ALIGN)
        .map(|i| (i * 31 + 7) as u8)
        .collect();
    let skip = backing
        .as_ptr()
        .align_offset(DIRECT_ALIGN)
        .min(DIRECT_ALIGN);
    let buf = &backing[skip..skip + write_bytes];
    let writes = (total_bytes / write_bytes as u64).max(1);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if mode == WriteMode::Direct {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_DIRECT);
    }
    let cpu_before = crate::cpu::process_cpu_time().ok();
    let start = Instant::now();
    let mut file = options.open(&path).map_err(file_err("create", &path))?;
    let mut flush = FlushEvery::new(flush_bytes);
    for _ in 0..writes {
        file.write_all(buf).map_err(file_err("write", &path))?;
        if flush.wrote(write_bytes as u64) {
            file.sync_data().map_err(file_err("fdatasync", &path))?;
        }
    }
    if flush.pending() {
        file.sync_data().map_err(file_err("fdatasync", &path))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = crate::cpu::process_cpu_time()
        .ok()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    std::fs::remove_file(&path).map_err(file_err("remove", &path))?;
    let bytes = writes * write_bytes as u64;
    let cpu_ms_per_gb = cpu.map_or(-1.0, |cpu| cpu.as_secs_f64() * 1e3 / (bytes as f64 / 1e9));
    Ok(CeilingRow {
        ceiling: match mode {
            WriteMode::Buffered => "write",
            WriteMode::Direct => "write-direct",
        },
        detail: format!(
            "{write_bytes}B-writes-fdatasync-every-{flush_bytes}B-cpu-{cpu_ms_per_gb:.0}ms-per-GB"
        ),
        bytes,
        seconds,
    })
}

/// The latency floor of a durable produce: `count` appends of
/// `write_bytes`, each followed by its own fdatasync. The row's detail
/// carries the median and p99 of one write + fdatasync in µs.
pub fn sync_latency(
    dir: &Path,
    write_bytes: usize,
    count: u32,
) -> Result<CeilingRow, CeilingError> {
    let path = dir.join("ceiling-sync-latency");
    let buf = vec![0x5au8; write_bytes];
    let mut file = File::create(&path).map_err(file_err("create", &path))?;
    let mut latencies_us = Vec::with_capacity(count as usize);
    let start = Instant::now();
    for _ in 0..count.max(1) {
        let op = Instant::now();
        file.write_all(&buf).map_err(file_err("write", &path))?;
        file.sync_data().map_err(file_err("fdatasync", &path))?;
        latencies_us.push(op.elapsed().as_micros() as u64);
    }
    let seconds = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path).map_err(file_err("remove", &path))?;
    latencies_us.sort_unstable();
    let at = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q) as usize];
    Ok(CeilingRow {
        ceiling: "sync-each",
        detail: format!(
            "{write_bytes}B-write+fdatasync-p50-{}us-p99-{}us",
            at(0.5),
            at(0.99)
        ),
        bytes: latencies_us.len() as u64 * write_bytes as u64,
        seconds,
    })
}

/// Sends a page-cached file of `file_bytes` `passes` times with sendfile
/// over loopback TCP; timed until the reader has received every byte.
pub fn sendfile_ceiling(
    dir: &Path,
    file_bytes: u64,
    passes: u32,
) -> Result<CeilingRow, CeilingError> {
    let path = dir.join("ceiling-sendfile");
    fill_file(&path, file_bytes)?;
    let file = File::open(&path).map_err(file_err("open", &path))?;
    warm_page_cache(&file, &path)?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let expected = file_bytes * u64::from(passes.max(1));
    // Connected before the reader starts (the backlog holds it), so the
    // reader's accept cannot wait for a sender that failed.
    let stream = TcpStream::connect(addr)?;
    let start = Instant::now();
    let received = std::thread::scope(|scope| {
        let reader = scope.spawn(move || discard_all(&listener));
        let sent = send_passes(stream, &file, file_bytes, passes.max(1));
        let received = reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        sent.and(received)
    });
    let seconds = start.elapsed().as_secs_f64();
    let got = received?;
    std::fs::remove_file(&path).map_err(file_err("remove", &path))?;
    if got != expected {
        return Err(CeilingError::ShortRead { expected, got });
    }
    Ok(CeilingRow {
        ceiling: "sendfile",
        detail: format!("{file_bytes}B-page-cached-file-x{passes}-loopback"),
        bytes: got,
        seconds,
    })
}

fn fill_file(path: &Path, file_bytes: u64) -> Result<(), CeilingError> {
    let chunk: Vec<u8> = (0..READ_CHUNK_BYTES).map(|i| (i * 13 + 1) as u8).collect();
    let mut file = File::create(path).map_err(file_err("create", path))?;
    let mut left = file_bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n])
            .map_err(file_err("write", path))?;
        left -= n as u64;
    }
    Ok(())
}

/// Reads the file once so every later sendfile is served from memory.
fn warm_page_cache(file: &File, path: &Path) -> Result<(), CeilingError> {
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut reader = file;
    while reader.read(&mut buf).map_err(file_err("read", path))? > 0 {}
    Ok(())
}

/// Accepts one connection and reads it to EOF; returns the byte count.
fn discard_all(listener: &TcpListener) -> Result<u64, CeilingError> {
    let (mut stream, _) = listener.accept()?;
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

fn send_passes(
    stream: TcpStream,
    file: &File,
    file_bytes: u64,
    passes: u32,
) -> Result<(), CeilingError> {
    for _ in 0..passes {
        let mut offset: libc::off_t = 0;
        while (offset as u64) < file_bytes {
            let left = (file_bytes - offset as u64) as usize;
            // SAFETY: both descriptors are open for the whole call (owned
            // by `stream` and `file`), and `offset` is a valid off_t the
            // kernel advances.
            let sent =
                unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut offset, left) };
            if sent < 0 {
                return Err(CeilingError::Socket(std::io::Error::last_os_error()));
            }
            if sent == 0 {
                break; // the file shrank under us; the byte count will tell
            }
        }
    }
    // Dropping the stream sends FIN: the reader's EOF ends the timing.
    drop(stream);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rafka-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn write_ceiling_writes_whole_buffers_and_cleans_up() {
        let dir = temp_dir("write");
        let row = write_ceiling(&dir, WriteMode::Buffered, 4096, 1 << 20, 256 << 10).unwrap();
        assert_eq!(row.bytes, 1 << 20);
        assert!(row.seconds > 0.0);
        assert!(row
            .csv_line()
            .starts_with("write,4096B-writes-fdatasync-every-262144B-cpu-"));
        assert!(row.detail.ends_with("ms-per-GB"));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn direct_write_ceiling_writes_aligned_blocks() {
        let dir = temp_dir("write-direct");
        match write_ceiling(&dir, WriteMode::Direct, 16 << 10, 1 << 20, 256 << 10) {
            Ok(row) => {
                assert_eq!(row.ceiling, "write-direct");
                assert_eq!(row.bytes, 1 << 20);
            }
            // tmpfs has no O_DIRECT; the broker's data disk is what matters.
            Err(CeilingError::File {
                op: "create",
                source,
                ..
            }) if source.raw_os_error() == Some(libc::EINVAL) => {}
            Err(error) => panic!("direct write ceiling: {error}"),
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn sync_latency_reports_percentiles() {
        let dir = temp_dir("sync");
        let row = sync_latency(&dir, 1024, 20).unwrap();
        assert_eq!(row.bytes, 20 * 1024);
        assert!(row.detail.starts_with("1024B-write+fdatasync-p50-"));
        assert!(row.detail.ends_with("us"));
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn sendfile_ceiling_delivers_every_byte() {
        let dir = temp_dir("sendfile");
        let row = sendfile_ceiling(&dir, 3 << 20, 2).unwrap();
        assert_eq!(row.bytes, 6 << 20);
        assert_eq!(row.ceiling, "sendfile");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }
}
