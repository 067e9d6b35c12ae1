//! `rafka-bench log-append`: the log's append + flush throughput against the
//! raw ceiling of the same bytes on the same disk, in the same process. The
//! ceiling is `std-raw`: plain buffered writes + fdatasync every
//! `flush_bytes`, the figure the log is held to (≥ 0.9 of it).
//!
//! Every mode writes the same batch buffer `batch_count` times sequentially
//! and makes the data durable every `flush_bytes` and at the end, so that
//! the ratios isolate what the log and the storage layer add. Modes run
//! interleaved round after round (the first mode rotates) and each reports
//! its median, because the 2-core VM this runs on is noisy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::io::{BufferedFile, OpenOptions};
use rafka_core::io::{IoError, Storage, StorageFile, SystemClock};
use rafka_core::log::{Log, LogConfig, LogError, RecoveryHints};
use rafka_shard::storage::{GlommioStorage, WriteMode};

use crate::batch::{build_batch, BatchBuildError};
use crate::cpu::{process_cpu_time, CpuTimeError};
use crate::std_storage::StdStorage;

/// What one benchmark invocation does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dir: PathBuf,
    pub batch_bytes: usize,
    pub batch_count: u64,
    pub flush_bytes: u64,
    pub rounds: u32,
}

impl Plan {
    pub fn total_bytes(&self) -> u64 {
        self.batch_count * self.batch_bytes as u64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("building the batch: {0}")]
    Batch(#[from] BatchBuildError),
    #[error("log: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    CpuTime(#[from] CpuTimeError),
    #[error("log closed with recovery point {got}, expected {expected}")]
    LostRecords { expected: i64, got: i64 },
}

/// The ways of getting the same bytes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// glommio `BufferedFile::write_at` (io_uring) + `fdatasync`.
    GlommioRaw,
    /// The same through [`GlommioStorage`]'s `StorageFile`.
    GlommioStorage,
    /// rafka's `Log` over [`GlommioStorage`] (pwrite + io_uring
    /// fdatasync, the broker's configuration): append + flush.
    Log,
    /// The same `Log` with writes submitted to io_uring
    /// ([`WriteMode::Uring`]).
    LogUring,
    /// The same `Log` over blocking std IO: the log's own cost, without
    /// io_uring's.
    LogStd,
    /// `std::fs::File::write_all` + `sync_data`: the ceiling.
    StdRaw,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::GlommioRaw => "glommio-raw",
            Mode::GlommioStorage => "glommio-storage",
            Mode::Log => "log",
            Mode::LogUring => "log-uring",
            Mode::LogStd => "log-std",
            Mode::StdRaw => "std-raw",
        }
    }
}

/// The median of one mode's runs.
#[derive(Debug, Clone)]
pub struct Row {
    pub mode: Mode,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    /// CPU time of the whole process (all threads) during the run.
    pub cpu_seconds: f64,
    pub ratio_to_ceiling: f64,
}

/// One timed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub wall: Duration,
    pub cpu: Duration,
}

/// Wall and process CPU time from `start` to `stop`.
struct Stopwatch {
    wall_start: Instant,
    cpu_start: Duration,
}

impl Stopwatch {
    fn start() -> Result<Self, CpuTimeError> {
        Ok(Stopwatch {
            cpu_start: process_cpu_time()?,
            wall_start: Instant::now(),
        })
    }

    fn stop(self) -> Result<Sample, CpuTimeError> {
        let wall = self.wall_start.elapsed();
        let cpu = process_cpu_time()?.saturating_sub(self.cpu_start);
        Ok(Sample { wall, cpu })
    }
}

/// Tells when a flush is due: every `flush_bytes` written since the last.
#[derive(Debug)]
pub struct FlushEvery {
    flush_bytes: u64,
    unflushed_bytes: u64,
}

impl FlushEvery {
    pub fn new(flush_bytes: u64) -> Self {
        FlushEvery {
            flush_bytes,
            unflushed_bytes: 0,
        }
    }

    pub fn wrote(&mut self, bytes: u64) -> bool {
        self.unflushed_bytes += bytes;
        if self.unflushed_bytes >= self.flush_bytes {
            self.unflushed_bytes = 0;
            return true;
        }
        false
    }

    pub fn pending(&self) -> bool {
        self.unflushed_bytes > 0
    }
}

/// Runs every mode `plan.rounds` times and returns the medians.
pub async fn run(plan: &Plan, modes: &[Mode]) -> Result<Vec<Row>, BenchError> {
    let batch = build_batch(plan.batch_bytes, 1_700_000_000_000)?;
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); modes.len()];
    for round in 0..plan.rounds as usize {
        for step in 0..modes.len() {
            let index = (round + step) % modes.len();
            let sample = run_once(plan, modes[index], &batch, round).await?;
            let mb_per_s = plan.total_bytes() as f64 / 1e6 / sample.wall.as_secs_f64();
            eprintln!(
                "round {round} {:<16} {:>8.3} s {:>8.1} MB/s {:>7.2} cpu s",
                modes[index].name(),
                sample.wall.as_secs_f64(),
                mb_per_s,
                sample.cpu.as_secs_f64()
            );
            samples[index].push(sample);
        }
    }
    Ok(rows(plan, modes, samples))
}

/// The median of each measure on its own: the run with the median wall time
/// need not be the one with the median CPU time.
fn median_seconds(mut runs: Vec<Duration>) -> f64 {
    runs.sort_unstable();
    runs.get(runs.len() / 2).map_or(0.0, Duration::as_secs_f64)
}

fn rows(plan: &Plan, modes: &[Mode], samples: Vec<Vec<Sample>>) -> Vec<Row> {
    let bytes = plan.total_bytes();
    let mut rows: Vec<Row> = modes
        .iter()
        .zip(samples)
        .map(|(&mode, runs)| {
            let seconds = median_seconds(runs.iter().map(|run| run.wall).collect());
            Row {
                mode,
                bytes,
                seconds,
                mb_per_s: bytes as f64 / 1e6 / seconds,
                cpu_seconds: median_seconds(runs.iter().map(|run| run.cpu).collect()),
                ratio_to_ceiling: 0.0,
            }
        })
        .collect();
    let ceiling = rows
        .iter()
        .find(|row| row.mode == Mode::StdRaw)
        .map(|row| row.mb_per_s);
    for row in &mut rows {
        row.ratio_to_ceiling = ceiling.map_or(f64::NAN, |c| row.mb_per_s / c);
    }
    rows
}

async fn run_once(
    plan: &Plan,
    mode: Mode,
    batch: &Bytes,
    round: usize,
) -> Result<Sample, BenchError> {
    let path = plan.dir.join(format!("{}-{round}", mode.name()));
    let sample = match mode {
        Mode::GlommioRaw => glommio_raw(plan, &path, batch).await?,
        Mode::GlommioStorage => glommio_storage(plan, &path, batch).await?,
        Mode::Log => log(GlommioStorage::new(), plan, &path, batch).await?,
        Mode::LogUring => {
            let storage = GlommioStorage::with_write_mode(WriteMode::Uring);
            log(storage, plan, &path, batch).await?
        }
        Mode::LogStd => log(StdStorage, plan, &path, batch).await?,
        Mode::StdRaw => std_raw(plan, &path, batch)?,
    };
    // Removal is outside the timed region; it also drops the file's pages
    // from the cache so the next run starts from the same state.
    let storage = GlommioStorage::new();
    if matches!(mode, Mode::Log | Mode::LogUring | Mode::LogStd) {
        storage.remove_dir_all(&path).await?;
    } else {
        storage.remove_file(&path).await?;
    }
    Ok(sample)
}

fn glommio_err(op: &'static str, path: &Path, err: glommio::GlommioError<()>) -> IoError {
    IoError::new(op, path, std::io::Error::from(err))
}

async fn glommio_raw(plan: &Plan, path: &Path, batch: &Bytes) -> Result<Sample, BenchError> {
    let watch = Stopwatch::start()?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(path)
        .await
        .map_err(|e| glommio_err("open", path, e))?;
    let mut flush = FlushEvery::new(plan.flush_bytes);
    let mut pos = 0u64;
    for _ in 0..plan.batch_count {
        write_all_buffered(&file, path, batch, pos).await?;
        pos += batch.len() as u64;
        if flush.wrote(batch.len() as u64) {
            file.fdatasync()
                .await
                .map_err(|e| glommio_err("fdatasync", path, e))?;
        }
    }
    if flush.pending() {
        file.fdatasync()
            .await
            .map_err(|e| glommio_err("fdatasync", path, e))?;
    }
    let sample = watch.stop()?;
    file.close()
        .await
        .map_err(|e| glommio_err("close", path, e))?;
    Ok(sample)
}

async fn write_all_buffered(
    file: &BufferedFile,
    path: &Path,
    data: &[u8],
    pos: u64,
) -> Result<(), IoError> {
    let mut written = 0usize;
    while written < data.len() {
        let n = file
            .write_at(data[written..].to_vec(), pos + written as u64)
            .await
            .map_err(|e| glommio_err("write", path, e))?;
        if n == 0 {
            let zero = std::io::Error::from(std::io::ErrorKind::WriteZero);
            return Err(IoError::new("write", path, zero));
        }
        written += n;
    }
    Ok(())
}

async fn glommio_storage(plan: &Plan, path: &Path, batch: &Bytes) -> Result<Sample, BenchError> {
    let watch = Stopwatch::start()?;
    let file = GlommioStorage::new().open(path).await?;
    let mut flush = FlushEvery::new(plan.flush_bytes);
    let mut pos = 0u64;
    for _ in 0..plan.batch_count {
        file.write_at(pos, batch).await?;
        pos += batch.len() as u64;
        if flush.wrote(batch.len() as u64) {
            file.sync_data().await?;
        }
    }
    if flush.pending() {
        file.sync_data().await?;
    }
    let sample = watch.stop()?;
    file.close().await?;
    Ok(sample)
}

/// A fresh partition log with Kafka's default topic config (1 GiB
/// segments, an index entry every 4 KiB), appended to the way a produce
/// handler does: one batch per append, a group-commit flush per interval.
async fn log<S: Storage + Clone>(
    storage: S,
    plan: &Plan,
    dir: &Path,
    batch: &Bytes,
) -> Result<Sample, BenchError> {
    let watch = Stopwatch::start()?;
    let mut log = Log::open(
        storage,
        dir,
        LogConfig::default(),
        Rc::new(SystemClock),
        RecoveryHints::default(),
    )
    .await?;
    let mut flush = FlushEvery::new(plan.flush_bytes);
    for _ in 0..plan.batch_count {
        let info = log.append(batch, 0).await?;
        if flush.wrote(info.size_bytes) {
            log.flush().await?;
        }
    }
    if flush.pending() {
        log.flush().await?;
    }
    let sample = watch.stop()?;
    let closed = log.close().await?;
    // A run that lost records must not report a throughput.
    let expected = plan.batch_count as i64 * i64::from(batch_record_count(batch));
    if closed.recovery_point != expected {
        return Err(BenchError::LostRecords {
            expected,
            got: closed.recovery_point,
        });
    }
    Ok(sample)
}

fn batch_record_count(batch: &[u8]) -> i32 {
    rafka_proto::record::BatchHeader::decode(batch).map_or(0, |header| header.record_count)
}

/// Blocking std IO on the executor thread: acceptable in a benchmark that
/// runs nothing else concurrently.
fn std_raw(plan: &Plan, path: &Path, batch: &Bytes) -> Result<Sample, BenchError> {
    let watch = Stopwatch::start()?;
    let mut file = std::fs::File::create(path).map_err(|e| IoError::new("open", path, e))?;
    let mut flush = FlushEvery::new(plan.flush_bytes);
    for _ in 0..plan.batch_count {
        file.write_all(batch)
            .map_err(|e| IoError::new("write", path, e))?;
        if flush.wrote(batch.len() as u64) {
            file.sync_data()
                .map_err(|e| IoError::new("fdatasync", path, e))?;
        }
    }
    if flush.pending() {
        file.sync_data()
            .map_err(|e| IoError::new("fdatasync", path, e))?;
    }
    Ok(watch.stop()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_every_fires_on_each_full_interval() {
        let mut flush = FlushEvery::new(1 << 20);
        let fired: Vec<u64> = (1..=130u64).filter(|_| flush.wrote(16_384)).collect();
        assert_eq!(fired, [64, 128]);
        assert!(flush.pending());
    }

    #[test]
    fn medians_and_ratios() {
        let plan = Plan {
            dir: PathBuf::new(),
            batch_bytes: 1_000_000,
            batch_count: 100,
            flush_bytes: 1 << 20,
            rounds: 3,
        };
        let s = |wall_s, cpu_ms| Sample {
            wall: Duration::from_secs(wall_s),
            cpu: Duration::from_millis(cpu_ms),
        };
        let samples = vec![
            vec![s(1, 900), s(3, 100), s(2, 500)],
            vec![s(4, 10), s(5, 30), s(4, 20)],
        ];
        let rows = rows(&plan, &[Mode::GlommioRaw, Mode::StdRaw], samples);
        assert_eq!(rows[0].seconds, 2.0);
        assert_eq!(rows[0].mb_per_s, 50.0);
        assert_eq!(rows[0].cpu_seconds, 0.5);
        assert_eq!(rows[1].seconds, 4.0);
        assert_eq!(rows[1].cpu_seconds, 0.02);
        assert_eq!(rows[0].ratio_to_ceiling, 2.0);
        assert_eq!(rows[1].ratio_to_ceiling, 1.0);
    }
}
