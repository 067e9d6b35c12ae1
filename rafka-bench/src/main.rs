//! rafka-bench: the perf harness. Each mode prints a CSV table on stdout
//! (and optionally to a file) and its per-run samples on stderr.
//!
//! # Layout
//! - `run`: `produce`, `consume`, `e2e` against a running broker (open-loop
//!   rates, CSV rows); `workload` (due times, batches), `produce` (the
//!   pipelined producer), `fetch` (fetch round trips), `report` (histograms,
//!   CSV), `admin` (topic setup), `client` (the lean Kafka client).
//! - `ceiling`: `ceiling-write` and `ceiling-sendfile`, the machine's own
//!   limits for the ratios; `plot`: an SVG of run and ceiling CSVs.
//! - `sink`: `ceiling-sink`, a minimal Kafka produce sink (append +
//!   fdatasync, nothing else), the produce ceiling a broker is held to.
//! - `ping`: `ping-floor`, loopback request/response round trips, the
//!   latency floor of any request.
//! - `create-topic` (here, over `admin`): a topic made before another
//!   client's run (scripts/perf-clients.sh runs librdkafka's own tool).
//! - `txn_run`: `txn`, transactional produce next to plain produce in the
//!   same run (medians over rounds); `txn` (the closed-loop producer:
//!   plain, idempotent or transactional).
//! - `storm`: `storm`, well-behaved producers' latency while others flood
//!   the broker over their quota (produce) or re-read a topic (fetch).
//! - `log_append`: `log-append`, the log's append + flush throughput next
//!   to raw buffered writes of the same bytes.
//! - `cluster`: `cluster`, the metadata quorum's figures (controller
//!   failover, propagation, creations/s) on a 3-node cluster it starts
//!   itself through scripts/cluster.sh (`cluster_nodes`).
//! - `replication`: `replication`, what replicating partitions costs
//!   (rf3 next to rf1 throughput and latency), failover after a leader's
//!   kill and a follower's catch-up, on such a cluster; `replication_client`
//!   (leaders from Metadata, a leader-following producer, /metrics
//!   gauges), `replication_faults` (the kill and catch-up rounds).
//! - `batch`: builds valid v2 record batches of an exact size.
//! - `cpu`: the process's CPU time, all threads included.
//! - `size`: `512MiB`-style sizes on the command line.
//! - `std_storage`: a blocking std::fs `Storage`, a reference for the log.

mod admin;
mod batch;
mod ceiling;
mod client;
mod cluster;
mod cluster_nodes;
mod cpu;
mod fetch;
mod log_append;
mod ping;
mod plot;
mod produce;
mod replication;
mod replication_client;
mod replication_faults;
mod report;
mod run;
mod sink;
mod size;
mod std_storage;
mod storm;
mod txn;
mod txn_run;
mod workload;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use glommio::{LocalExecutorBuilder, Placement};

use crate::log_append::{BenchError, Mode, Plan, Row};
use crate::run::{RunError, RunPlan};
use crate::txn::Mode as TxnMode;
use crate::txn_run::{TxnPlan, TxnRunError};
use rafka_proto::record::Compression;

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
    /// Open-loop produce at each --rate; latency = due time to ack.
    Produce(RunArgs),
    /// Preload records, then fetch them all as fast as possible.
    Consume(RunArgs),
    /// Produce at each --rate while a consumer reads; latency = due time to
    /// consumed.
    E2e(RunArgs),
    /// Well-behaved producers alone, then next to floods over a quota,
    /// then next to a consumer re-reading a topic; their latency and the
    /// floods' rates against the quota.
    Storm(StormArgs),
    /// Closed-loop produce of each --modes (plain, idempotent, records per
    /// transaction) by --producers connections, --rounds times; medians.
    Txn(TxnArgs),
    /// Sequential buffered writes of each size, fdatasync every
    /// --flush-bytes.
    CeilingWrite(CeilingWriteArgs),
    /// sendfile of a page-cached file over loopback TCP.
    CeilingSendfile(CeilingSendfileArgs),
    /// A minimal Kafka produce sink on --listen: appends each partition's
    /// records to a file, fdatasync before answering acks=all. Prints
    /// `ceiling-sink listening on ADDR` first; runs until SIGTERM/SIGINT.
    CeilingSink(CeilingSinkArgs),
    /// Sequential request/response round trips over loopback TCP to an
    /// echo thread, for --duration-secs.
    PingFloor(PingFloorArgs),
    /// An SVG of throughput and latency per rate class.
    Plot(PlotArgs),
    /// Creates --topic with --partitions unless it exists (CreateTopics),
    /// then prints `TOPIC: N partitions` as the broker has it (Metadata).
    CreateTopic(CreateTopicArgs),
    /// Starts a 3-node cluster (scripts/cluster.sh) and measures the
    /// metadata quorum: controller failover over --kills, propagation of
    /// new topics to the other nodes, topic creations/s per --creators.
    /// CSV on stdout, a summary on stderr.
    Cluster(cluster::ClusterArgs),
    /// Starts a 3-node cluster (scripts/cluster.sh) and measures
    /// replication: rf3 next to rf1 produce throughput and latency, the
    /// time to produce again after a leader's kill over --kills, a
    /// follower's catch-up rate. CSV on stdout, a summary on stderr.
    Replication(replication::ReplicationArgs),
}

#[derive(Debug, Args)]
struct CreateTopicArgs {
    /// Broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long)]
    topic: String,
    /// Partitions to create the topic with (an existing topic keeps its own).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
}

#[derive(Debug, Args)]
struct CeilingSinkArgs {
    /// host:port to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Where the partition files go (`<topic>-<partition>.log`).
    #[arg(long, default_value = "rafka-sink-data")]
    dir: PathBuf,
    /// Partitions of topics created by Metadata (or by CreateTopics with
    /// -1).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// acks=1/0 traffic syncs a file after this many unsynced bytes
    /// (acks=all syncs before every answer, group commit).
    #[arg(long, default_value = "1MiB", value_parser = size::parse_bytes)]
    sync_bytes: u64,
}

#[derive(Debug, Args)]
struct PingFloorArgs {
    #[arg(long, default_value_t = 3)]
    duration_secs: u64,
    /// Bytes sent each way per round trip.
    #[arg(long, default_value = "1KiB", value_parser = size::parse_bytes)]
    message_bytes: u64,
    /// Also write the table to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CeilingWriteArgs {
    /// Directory on the disk under test (the broker's data disk).
    #[arg(long, default_value = "rafka-bench-data")]
    dir: PathBuf,
    #[arg(long, default_value = "256MiB", value_parser = size::parse_bytes)]
    total_bytes: u64,
    /// Write sizes, comma-separated; one row each.
    #[arg(long, value_delimiter = ',', default_value = "1KiB,16KiB,1MiB", value_parser = size::parse_bytes)]
    write_sizes: Vec<u64>,
    #[arg(long, default_value = "1MiB", value_parser = size::parse_bytes)]
    flush_bytes: u64,
    /// Runs per write size; the row is the median.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Also time this many 1 KiB writes each followed by fdatasync (the
    /// latency floor of acks=all); 0 skips it.
    #[arg(long, default_value_t = 500)]
    sync_latency_writes: u32,
    /// Also write each size that is whole 4 KiB blocks with O_DIRECT
    /// (rows `write-direct`): the write path without the page-cache copy.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    direct: bool,
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CeilingSendfileArgs {
    /// Where the temporary file goes.
    #[arg(long, default_value = "rafka-bench-data")]
    dir: PathBuf,
    #[arg(long, default_value = "256MiB", value_parser = size::parse_bytes)]
    file_bytes: u64,
    /// Times the whole file is sent.
    #[arg(long, default_value_t = 4)]
    passes: u32,
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct PlotArgs {
    /// CSVs written by produce/consume/e2e, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    runs: Vec<PathBuf>,
    /// CSVs written by the ceiling modes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    ceilings: Vec<PathBuf>,
    #[arg(long, default_value = "perf.svg")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "rafka-bench")]
    topic: String,
    /// Partitions to create the topic with (an existing topic keeps its own).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Value bytes per record.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Most records per batch (one batch per request).
    #[arg(long, default_value_t = 16)]
    batch_records: u64,
    /// Target rates in records/s, comma-separated; one row each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,10000,100000,1000000"
    )]
    rate: Vec<f64>,
    /// Length of each rate's run (consume: the time limit for reading).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: i16,
    #[arg(long, value_enum, default_value = "none")]
    compression: Codec,
    /// Most unanswered produce requests on the connection.
    #[arg(long, default_value_t = 32)]
    inflight_max: usize,
    /// consume: records produced before reading.
    #[arg(long, default_value_t = 200_000)]
    preload_records: u64,
    /// Fetch budget per partition.
    #[arg(long, default_value = "4MiB", value_parser = size::parse_bytes)]
    fetch_partition_bytes: u64,
    /// consume: fetches in flight (partitions split into this many groups).
    #[arg(long, default_value_t = 3)]
    fetch_inflight: usize,
    /// Also write the table to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct TxnArgs {
    /// Broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "rafka-bench-txn")]
    topic: String,
    /// Partitions to create the topic with (an existing topic keeps its own).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Value bytes per record.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Most records per batch (one batch per request); a transaction's
    /// records are dealt over the partitions first.
    #[arg(long, default_value_t = 256)]
    batch_records: u64,
    /// Modes, comma-separated: plain (acks=all, no producer id),
    /// idempotent, or N (transactions of N records); one row each.
    #[arg(long, value_delimiter = ',', default_value = "plain,100,1000", value_parser = TxnMode::parse)]
    modes: Vec<TxnMode>,
    /// Producers (a connection and a thread each), all writing every
    /// partition.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Length of each mode's phase; transactions started before its end
    /// are committed.
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Every mode runs once per round; each column is the median.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Most unanswered produce requests per connection.
    #[arg(long, default_value_t = 32)]
    inflight_max: usize,
    /// Wait before resending an AddPartitionsToTxn answered
    /// CONCURRENT_TRANSACTIONS (the Java client waits 20 ms).
    #[arg(long, default_value_t = 1000)]
    retry_backoff_us: u64,
    /// Also write the table to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StormArgs {
    /// Broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// What the good producers and the floods write.
    #[arg(long, default_value = "rafka-storm")]
    topic: String,
    /// What the re-reading consumer reads (preloaded).
    #[arg(long, default_value = "rafka-storm-replay")]
    replay_topic: String,
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Value bytes per record.
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Well-behaved producers (a connection each).
    #[arg(long, default_value_t = 50)]
    good_producers: usize,
    /// Records/s of each well-behaved producer.
    #[arg(long, default_value_t = 100.0)]
    good_rate: f64,
    /// Flooding producers (a connection each).
    #[arg(long, default_value_t = 5)]
    floods: usize,
    #[arg(long, default_value = "256KiB", value_parser = size::parse_bytes)]
    flood_batch_bytes: u64,
    /// Requests each flood keeps outstanding.
    #[arg(long, default_value_t = 8)]
    flood_inflight: usize,
    /// producer_byte_rate of every client id (the `<default>` entity).
    #[arg(long, default_value = "1MiB", value_parser = size::parse_bytes)]
    producer_quota: u64,
    /// consumer_byte_rate of every client id (the `<default>` entity).
    #[arg(long, default_value = "8MiB", value_parser = size::parse_bytes)]
    consumer_quota: u64,
    /// Bytes preloaded into the replay topic.
    #[arg(long, default_value = "256MiB", value_parser = size::parse_bytes)]
    replay_bytes: u64,
    /// Length of each phase.
    #[arg(long, default_value_t = 30)]
    duration_secs: u64,
    /// Floods' and reader's rates are counted after this much of a phase
    /// (the quota window filling).
    #[arg(long, default_value_t = 10)]
    warmup_secs: u64,
    /// Also write the table to this CSV file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }
}

fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        _ => Err(format!("acks must be 0, 1 or all, got {text:?}")),
    }
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
    #[error("--rate needs positive record rates")]
    Rates,
    #[error("creating {}: {source}", path.display())]
    Setup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Bench(#[from] BenchError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Txn(#[from] TxnRunError),
    #[error(transparent)]
    Ceiling(#[from] ceiling::CeilingError),
    #[error(transparent)]
    Plot(#[from] plot::PlotError),
    #[error(transparent)]
    Sink(#[from] sink::SinkError),
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Replication(#[from] replication::ReplicationError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::LogAppend(args) => log_append_main(&args),
        Command::Produce(args) => run_main(&args, run::produce_rows),
        Command::Consume(args) => run_main(&args, run::consume_rows),
        Command::E2e(args) => run_main(&args, run::e2e_rows),
        Command::Txn(args) => txn_main(&args),
        Command::Storm(args) => storm_main(&args),
        Command::CeilingWrite(args) => ceiling_write_main(&args),
        Command::CeilingSendfile(args) => ceiling_sendfile_main(&args),
        Command::CeilingSink(args) => ceiling_sink_main(&args),
        Command::PingFloor(args) => ping_floor_main(&args),
        Command::Plot(args) => plot_main(&args),
        Command::CreateTopic(args) => create_topic_main(&args),
        Command::Cluster(args) => cluster_main(&args),
        Command::Replication(args) => replication_main(&args),
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

fn run_main(
    args: &RunArgs,
    mode: fn(&RunPlan) -> Result<Vec<report::Row>, RunError>,
) -> Result<(), MainError> {
    let record_bytes = check_range("--record-bytes", args.record_bytes as u64, 8, 1 << 20)?;
    let batch_records = check_range("--batch-records", args.batch_records, 1, 1 << 20)?;
    check_range("--partitions", args.partitions.max(0) as u64, 1, 1 << 16)?;
    let fetch_bytes = check_range(
        "--fetch-partition-bytes",
        args.fetch_partition_bytes,
        1024,
        1 << 30,
    )?;
    let rates_ok = !args.rate.is_empty() && args.rate.iter().all(|r| r.is_finite() && *r > 0.0);
    if !rates_ok {
        return Err(MainError::Rates);
    }
    let plan = RunPlan {
        bootstrap: args.bootstrap.clone(),
        topic: args.topic.clone(),
        partitions: args.partitions,
        record_bytes: record_bytes as usize,
        batch_records,
        rates: args.rate.clone(),
        duration: std::time::Duration::from_secs(args.duration_secs.max(1)),
        acks: args.acks,
        compression: args.compression.compression(),
        inflight_max: args.inflight_max.max(1),
        preload_records: args.preload_records,
        fetch_partition_bytes_max: fetch_bytes as i32,
        fetch_inflight_max: args.fetch_inflight.max(1),
    };
    let table = report::render(&mode(&plan)?);
    emit(&table, args.csv.as_deref())
}

fn txn_main(args: &TxnArgs) -> Result<(), MainError> {
    let record_bytes = check_range("--record-bytes", args.record_bytes as u64, 8, 1 << 20)?;
    let batch_records = check_range("--batch-records", args.batch_records, 1, 1 << 20)?;
    check_range("--partitions", args.partitions.max(0) as u64, 1, 1 << 16)?;
    let producers = check_range("--producers", args.producers as u64, 1, 1024)?;
    let plan = TxnPlan {
        bootstrap: args.bootstrap.clone(),
        topic: args.topic.clone(),
        partitions: args.partitions,
        record_bytes: record_bytes as usize,
        batch_records,
        inflight_max: args.inflight_max.max(1),
        producers: producers as usize,
        modes: args.modes.clone(),
        duration: std::time::Duration::from_secs(args.duration_secs.max(1)),
        rounds: args.rounds.max(1),
        retry_backoff: std::time::Duration::from_micros(args.retry_backoff_us),
    };
    let table = txn_run::render(&txn_run::txn_rows(&plan)?);
    emit(&table, args.csv.as_deref())
}

fn storm_main(args: &StormArgs) -> Result<(), MainError> {
    let record_bytes = check_range("--record-bytes", args.record_bytes as u64, 8, 1 << 20)?;
    check_range("--partitions", args.partitions.max(0) as u64, 1, 1 << 16)?;
    let good_producers = check_range("--good-producers", args.good_producers as u64, 1, 1024)?;
    let flood_batch_bytes = check_range(
        "--flood-batch-bytes",
        args.flood_batch_bytes,
        record_bytes,
        64 << 20,
    )?;
    if !(args.good_rate.is_finite() && args.good_rate > 0.0) {
        return Err(MainError::Rates);
    }
    let plan = storm::StormPlan {
        bootstrap: args.bootstrap.clone(),
        topic: args.topic.clone(),
        replay_topic: args.replay_topic.clone(),
        partitions: args.partitions,
        record_bytes: record_bytes as usize,
        good_producers: good_producers as usize,
        good_rate: args.good_rate,
        floods: args.floods,
        flood_batch_bytes: flood_batch_bytes as usize,
        flood_inflight: args.flood_inflight.max(1),
        producer_quota: check_range("--producer-quota", args.producer_quota, 1, 1 << 40)? as f64,
        consumer_quota: check_range("--consumer-quota", args.consumer_quota, 1, 1 << 40)? as f64,
        replay_bytes: args.replay_bytes,
        duration: std::time::Duration::from_secs(args.duration_secs.max(2)),
        warmup: std::time::Duration::from_secs(args.warmup_secs),
    };
    let table = storm::render(&plan, &storm::storm_rows(&plan)?);
    emit(&table, args.csv.as_deref())
}

fn ceiling_write_main(args: &CeilingWriteArgs) -> Result<(), MainError> {
    check_range("--flush-bytes", args.flush_bytes, 1, u64::MAX)?;
    create_dir(&args.dir)?;
    let mut table = format!("{}\n", ceiling::CSV_HEADER);
    for &size in &args.write_sizes {
        let size = check_range("--write-sizes", size, 1, 1 << 30)?;
        // The median of a few runs: one run on a shared virtual disk can be
        // off by 2x either way.
        // O_DIRECT only for whole blocks (a broker using it would buffer
        // smaller appends into blocks).
        let mut modes = vec![ceiling::WriteMode::Buffered];
        if args.direct && (size as usize).is_multiple_of(ceiling::DIRECT_ALIGN) {
            modes.push(ceiling::WriteMode::Direct);
        }
        for mode in modes {
            let mut runs = Vec::new();
            for _ in 0..args.rounds.max(1) {
                let (dir, total) = (&args.dir, args.total_bytes);
                runs.push(ceiling::write_ceiling(
                    dir,
                    mode,
                    size as usize,
                    total,
                    args.flush_bytes,
                )?);
            }
            runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
            let row = &runs[runs.len() / 2];
            table.push_str(&row.csv_line());
            table.push('\n');
        }
    }
    if args.sync_latency_writes > 0 {
        let row = ceiling::sync_latency(&args.dir, 1024, args.sync_latency_writes)?;
        table.push_str(&row.csv_line());
        table.push('\n');
    }
    emit(&table, args.csv.as_deref())
}

fn ceiling_sendfile_main(args: &CeilingSendfileArgs) -> Result<(), MainError> {
    check_range("--file-bytes", args.file_bytes, 1, 1 << 40)?;
    create_dir(&args.dir)?;
    let row = ceiling::sendfile_ceiling(&args.dir, args.file_bytes, args.passes)?;
    let table = format!("{}\n{}\n", ceiling::CSV_HEADER, row.csv_line());
    emit(&table, args.csv.as_deref())
}

fn ceiling_sink_main(args: &CeilingSinkArgs) -> Result<(), MainError> {
    let partitions = check_range(
        "--partitions",
        args.partitions.max(0) as u64,
        1,
        sink::PARTITIONS_MAX as u64,
    )?;
    check_range("--sync-bytes", args.sync_bytes, 1, u64::MAX)?;
    create_dir(&args.dir)?;
    let io = |what| move |source| MainError::Io { what, source };
    // Registered before the address is printed, so a signal sent as soon
    // as the caller reads it ends the sink cleanly.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(io("installing signal handlers"))?;
    let listener = std::net::TcpListener::bind(&args.listen).map_err(io("binding --listen"))?;
    let addr = listener
        .local_addr()
        .map_err(io("reading the listen address"))?;
    let sink = std::sync::Arc::new(sink::Sink::new(sink::SinkConfig {
        dir: args.dir.clone(),
        partitions: partitions as i32,
        sync_bytes: args.sync_bytes,
    })?);
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ceiling-sink listening on {addr}").map_err(io("writing stdout"))?;
    stdout.flush().map_err(io("writing stdout"))?;
    std::thread::Builder::new()
        .name("sink-accept".into())
        .spawn(move || {
            if let Err(err) = sink.serve(&listener) {
                eprintln!("ceiling-sink: accepting connections: {err}");
                std::process::exit(1);
            }
        })
        .map_err(io("starting the accept thread"))?;
    // Connections are not drained: every answered acks=all request is
    // already durable, and the files are the sink's only state.
    if let Some(signal) = signals.forever().next() {
        eprintln!("ceiling-sink: signal {signal}, stopping");
    }
    Ok(())
}

fn ping_floor_main(args: &PingFloorArgs) -> Result<(), MainError> {
    let message_bytes = check_range("--message-bytes", args.message_bytes, 1, 16 << 20)?;
    let duration = std::time::Duration::from_secs(args.duration_secs.max(1));
    let row =
        ping::ping_floor(message_bytes as usize, duration).map_err(|source| MainError::Io {
            what: "loopback round trips",
            source,
        })?;
    let table = report::render(&[row]);
    emit(&table, args.csv.as_deref())
}

fn plot_main(args: &PlotArgs) -> Result<(), MainError> {
    let mut rows = Vec::new();
    for path in &args.runs {
        rows.extend(plot::read_runs(path)?);
    }
    let mut ceilings = Vec::new();
    for path in &args.ceilings {
        ceilings.extend(plot::read_ceilings(path)?);
    }
    plot::write_svg(&args.out, &rows, &ceilings)?;
    Ok(())
}

fn create_topic_main(args: &CreateTopicArgs) -> Result<(), MainError> {
    let partitions = check_range(
        "--partitions",
        args.partitions.max(0) as u64,
        1,
        i32::MAX as u64,
    )?;
    let mut wire = client::Wire::connect(&args.bootstrap).map_err(RunError::from)?;
    let ids =
        admin::ensure_topic(&mut wire, &args.topic, partitions as i32).map_err(RunError::from)?;
    println!("{}: {} partitions", args.topic, ids.len());
    Ok(())
}

fn cluster_main(args: &cluster::ClusterArgs) -> Result<(), MainError> {
    let plan = cluster::ClusterPlan::from_args(args)?;
    let rows = cluster::cluster_rows(&plan)?;
    eprint!("{}", cluster::human(&rows));
    emit(&cluster::render(&rows), args.csv.as_deref())
}

fn replication_main(args: &replication::ReplicationArgs) -> Result<(), MainError> {
    let plan = replication::ReplicationPlan::from_args(args)?;
    let rows = replication::replication_rows(&plan)?;
    eprint!("{}", replication::human(&plan, &rows));
    emit(&replication::render(&rows), args.csv.as_deref())
}

fn create_dir(dir: &Path) -> Result<(), MainError> {
    std::fs::create_dir_all(dir).map_err(|source| MainError::Setup {
        path: dir.to_path_buf(),
        source,
    })
}

/// Prints the table and writes it to `csv` if given.
fn emit(table: &str, csv: Option<&Path>) -> Result<(), MainError> {
    print!("{table}");
    match csv {
        Some(path) => write_csv(path, table),
        None => Ok(()),
    }
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
