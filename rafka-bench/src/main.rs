//! rafka-bench: the perf harness. Each mode prints a CSV table on stdout
//! (and optionally to a file) and its per-run samples on stderr.
//!
//! # Layout
//! - `log_append`: `log-append`, the log's append + flush throughput next
//!   to raw buffered writes of the same bytes.
//! - `batch`: builds valid v2 record batches of an exact size.
//! - `cpu`: the process's CPU time, all threads included.
//! - `size`: `512MiB`-style sizes on the command line.
//! - `std_storage`: a blocking std::fs `Storage`, a reference for the log.

mod batch;
mod cpu;
mod log_append;
mod size;
mod std_storage;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use glommio::{LocalExecutorBuilder, Placement};

use crate::log_append::{BenchError, Mode, Plan, Row};

#[derive(Debug, Parser)]
#[command(name = "rafka-bench", about = "rafka performance harness (CSV output)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Log append + fdatasync every --flush-bytes, against raw writes of the
    /// same batches on the same disk.
    LogAppend(LogAppendArgs),
}

#[derive(Debug, Args)]
struct LogAppendArgs {
    /// Directory on the disk under test; files are created and removed in it.
    #[arg(long, default_value = "rafka-bench-data")]
    dir: PathBuf,
    /// Bytes written per run and mode (rounded down to whole batches).
    #[arg(long, default_value = "512MiB", value_parser = size::parse_bytes)]
    total_bytes: u64,
    /// Size of each record batch.
    #[arg(long, default_value = "16KiB", value_parser = size::parse_bytes)]
    batch_bytes: u64,
    /// fdatasync after this many bytes (and once at the end).
    #[arg(long, default_value = "1MiB", value_parser = size::parse_bytes)]
    flush_bytes: u64,
    /// Runs per mode; the table reports each mode's median.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Modes to run, comma-separated; the ratio column needs std-raw.
    /// glommio-storage (GlommioStorage without the log) is left out by
    /// default to keep a run under a minute.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "std-raw,log,glommio-raw,log-uring"
    )]
    modes: Vec<Mode>,
    /// Also write the table to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// glommio's registered IO memory; must fit under RLIMIT_MEMLOCK.
    #[arg(long, default_value = "512KiB", value_parser = size::parse_bytes)]
    io_memory_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error("starting the executor: {0}")]
    Executor(#[source] std::io::Error),
    #[error("{what} must be between {min} and {max} bytes, got {got}")]
    OutOfRange {
        what: &'static str,
        min: u64,
        max: u64,
        got: u64,
    },
    #[error("creating {}: {source}", path.display())]
    Setup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Bench(#[from] BenchError),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::LogAppend(args) => log_append_main(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rafka-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn check_range(what: &'static str, got: u64, min: u64, max: u64) -> Result<u64, MainError> {
    if (min..=max).contains(&got) {
        Ok(got)
    } else {
        Err(MainError::OutOfRange {
            what,
            min,
            max,
            got,
        })
    }
}

fn log_append_main(args: &LogAppendArgs) -> Result<(), MainError> {
    // A v2 batch length is an i32; 64 MiB is far above any producer's.
    let batch_bytes = check_range("--batch-bytes", args.batch_bytes, 128, 64 << 20)?;
    check_range("--flush-bytes", args.flush_bytes, 1, u64::MAX)?;
    check_range("--total-bytes", args.total_bytes, batch_bytes, u64::MAX)?;
    let io_memory_bytes =
        check_range("--io-memory-bytes", args.io_memory_bytes, 64 << 10, 1 << 30)?;
    std::fs::create_dir_all(&args.dir).map_err(|source| MainError::Setup {
        path: args.dir.clone(),
        source,
    })?;
    let plan = Plan {
        dir: args.dir.clone(),
        batch_bytes: batch_bytes as usize,
        batch_count: args.total_bytes / batch_bytes,
        flush_bytes: args.flush_bytes,
        rounds: args.rounds.max(1),
    };
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .name("rafka-bench")
        .io_memory(io_memory_bytes as usize)
        .make()
        .map_err(|e| MainError::Executor(e.into()))?;
    let rows = executor.run(log_append::run(&plan, &args.modes))?;
    let table = render(&rows);
    print!("{table}");
    if let Some(path) = &args.csv {
        write_csv(path, &table)?;
    }
    Ok(())
}

fn render(rows: &[Row]) -> String {
    let mut out = String::from("mode,bytes,seconds,mb_per_s,cpu_seconds,ratio_to_std_raw\n");
    for row in rows {
        out.push_str(&format!(
            "{},{},{:.3},{:.1},{:.2},{:.3}\n",
            row.mode.name(),
            row.bytes,
            row.seconds,
            row.mb_per_s,
            row.cpu_seconds,
            row.ratio_to_ceiling
        ));
    }
    out
}

fn write_csv(path: &Path, table: &str) -> Result<(), MainError> {
    let setup = |source| MainError::Setup {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::create(path).map_err(setup)?;
    file.write_all(table.as_bytes()).map_err(setup)
}
