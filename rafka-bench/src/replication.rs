//! `replication`: what replicating partitions costs and how fast it
//! recovers (issue 15, "Measure"), on a 3-node loopback cluster this mode
//! starts itself (`cluster_nodes`), with the broker session, heartbeat and
//! replica lag settings it is given (they dominate the failover figures):
//!
//! 1. Throughput and latency, same cluster, same run: K closed-loop
//!    producer connections (one request in flight each; connection k
//!    writes partition k mod P, to its leader) send batches of N records
//!    of S bytes for D seconds to `rf1` (replication factor 1) with
//!    acks=all, then to `rf3` (replication factor 3, min.insync.replicas
//!    2) with acks=all, then to `rf1` again (the drift between the two rf1
//!    runs is the noise floor of the ratio), then to `rf3` with acks=1.
//!    Both topics have P partitions whose leaders Kafka's assignment
//!    spreads over the nodes. Rows: records/s and the produce latency;
//!    a ratio row divides the rf3 acks=all run by the mean of the two rf1
//!    runs. (acks=1 answers before any fsync: its row is the leader's
//!    append alone, with followers that may fall out of the ISR.)
//! 2. Failover (`replication_faults`): each round a producer sends acks=all
//!    to `rf3` partition 0, one request at a time, retrying what a client
//!    retries after reading Metadata again from a live node; the
//!    partition's leader is killed (SIGKILL) and the time from its death
//!    to the first acks=all acknowledged by the new leader is measured.
//!    The node is restarted and must be back in the ISR before the next
//!    round.
//! 3. Follower catch-up (`replication_faults`): a follower of `rf3`
//!    partition 0 is killed, X bytes of batches are produced to the
//!    partition, the follower is restarted and its log end (its /metrics)
//!    polled until it reaches the leader's: the copy rate.
//!
//! One CSV row per measurement (`cluster`'s columns:
//! `name,count,p50_ms,p99_ms,max_ms,rate`) and a human summary on stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::BuildError;

use crate::client::ClientError;
use crate::cluster::{ClusterError, Summary};
use crate::cluster_nodes::{Cluster, ClusterSetup, NODES};
use crate::replication_client::{
    create_topic, Attempt, Lookup, PartitionProducer, PartitionView, TopicSpec,
};
use crate::replication_faults::{catch_up, failover, FaultPlan};
use crate::report::latency_histogram;

pub const RF1_TOPIC: &str = "rf1";
pub const RF3_TOPIC: &str = "rf3";
/// rf3's min.insync.replicas: acks=all survives one node down.
const RF3_MIN_INSYNC: u32 = 2;
pub const ACKS_ALL: i16 = -1;
const ACKS_LEADER: i16 = 1;
/// Fixed, so that a session timeout is several missed heartbeats.
pub const HEARTBEAT_INTERVAL_MS: u32 = 500;
/// Every wait (a topic's leaders, an ISR, a warm-up) fails after this.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// Between Metadata polls while waiting (not timed).
pub const SETTLE_POLL: Duration = Duration::from_millis(20);
/// Between a throughput run's refused (or lost) request and its retry
/// (none expected: nothing is killed during the runs).
const RETRY_BACKOFF: Duration = Duration::from_millis(2);
/// A megabyte in the MB/s figures.
const MB: f64 = 1e6;

#[derive(Debug, clap::Args)]
pub struct ReplicationArgs {
    /// The broker binary every node runs.
    #[arg(long, default_value = "target/release/rafka")]
    rafka_bin: PathBuf,
    /// The script that runs the cluster (paths are relative to the
    /// current directory: run from the repository root).
    #[arg(long, default_value = "scripts/cluster.sh")]
    cluster_script: PathBuf,
    /// Partitions of `rf1` and of `rf3`.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Closed-loop producer connections of each throughput run
    /// (connection k writes partition k mod --partitions).
    #[arg(long, default_value_t = 8)]
    producers: u32,
    /// Records per produce request (one batch).
    #[arg(long, default_value_t = 16)]
    batch_records: u64,
    /// Value bytes per record.
    #[arg(long, default_value_t = 1024)]
    record_bytes: u64,
    /// Length of each throughput run (rf1, rf3, rf1 again, rf3 acks=1);
    /// 0 skips them.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Leader kills (failover rounds); 0 skips them.
    #[arg(long, default_value_t = 20)]
    kills: u32,
    /// Bytes of batches produced while a follower is down, for it to
    /// catch up on; 0 skips it.
    #[arg(long, default_value = "256MiB", value_parser = crate::size::parse_bytes)]
    catch_up_bytes: u64,
    /// broker.session.timeout.ms of every node: how long the controller
    /// waits before fencing a broker it no longer hears (and electing
    /// new leaders for its partitions). The heartbeat interval is 500 ms.
    #[arg(long, default_value_t = 3000)]
    broker_session_timeout_ms: u32,
    /// replica.lag.time.max.ms of every node: how long a follower may lag
    /// before its leader takes it out of the ISR.
    #[arg(long, default_value_t = 2000)]
    replica_lag_time_max_ms: u32,
    /// --cores of each node (CLUSTER_CORES).
    #[arg(long, default_value_t = 1)]
    cores: u32,
    /// Leave the nodes' data dirs and logs (`node-N.log`) in place.
    #[arg(long)]
    keep_dir: bool,
    /// Also write the table to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("{name} must be between {min} and {max}, got {got}")]
    OutOfRange {
        name: &'static str,
        min: u64,
        max: u64,
        got: u64,
    },
    #[error("writing the nodes' server.properties: {0}")]
    Config(#[source] std::io::Error),
    #[error("node {node}: {source}")]
    Client {
        node: u16,
        #[source]
        source: ClientError,
    },
    #[error("no node to ask")]
    NoNodes,
    #[error("{what} on node {node}: {code}")]
    Refused {
        what: String,
        node: u16,
        code: ErrorCode,
    },
    #[error("building a batch: {0}")]
    Build(#[from] BuildError),
    #[error("node {node}'s /metrics at {addr}: {source}")]
    Metrics {
        node: u16,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Unexpected(String),
    #[error("waited {} s for {what}", DEADLINE.as_secs())]
    Deadline { what: String },
    #[error("stopped: another part of the round failed")]
    Stopped,
    #[error("a measuring thread panicked")]
    Thread,
}

/// What to measure; see [`ReplicationArgs`].
#[derive(Debug, Clone)]
pub struct ReplicationPlan {
    pub setup: ClusterSetup,
    pub partitions: u32,
    pub producers: u32,
    pub batch_records: u64,
    pub record_bytes: usize,
    /// Zero: no throughput runs.
    pub duration: Duration,
    pub kills: u32,
    pub catch_up_bytes: u64,
    pub session_timeout_ms: u32,
    pub lag_time_max_ms: u32,
}

impl ReplicationPlan {
    pub fn from_args(args: &ReplicationArgs) -> Result<ReplicationPlan, ReplicationError> {
        let range = |name, got: u64, min, max| {
            if (min..=max).contains(&got) {
                Ok(got)
            } else {
                Err(ReplicationError::OutOfRange {
                    name,
                    min,
                    max,
                    got,
                })
            }
        };
        range("--partitions", args.partitions.into(), 1, 1024)?;
        range("--producers", args.producers.into(), 1, 1024)?;
        range("--batch-records", args.batch_records, 1, 1 << 16)?;
        let record_bytes = range("--record-bytes", args.record_bytes, 8, 1 << 20)?;
        // A batch must fit the broker's default message.max.bytes (1 MiB).
        range(
            "--batch-records x --record-bytes",
            args.batch_records * record_bytes,
            8,
            900 << 10,
        )?;
        range("--duration-secs", args.duration_secs, 0, 86_400)?;
        range("--kills", args.kills.into(), 0, 10_000)?;
        range("--catch-up-bytes", args.catch_up_bytes, 0, 1 << 40)?;
        // Above the heartbeat interval, or every broker would be fenced
        // between heartbeats (the broker refuses it).
        range(
            "--broker-session-timeout-ms",
            args.broker_session_timeout_ms.into(),
            u64::from(HEARTBEAT_INTERVAL_MS) + 1,
            600_000,
        )?;
        range(
            "--replica-lag-time-max-ms",
            args.replica_lag_time_max_ms.into(),
            100,
            600_000,
        )?;
        range("--cores", args.cores.into(), 1, 1024)?;
        Ok(ReplicationPlan {
            setup: ClusterSetup {
                script: args.cluster_script.clone(),
                rafka_bin: args.rafka_bin.clone(),
                cores: args.cores,
                config: None,
                keep_dir: args.keep_dir,
            },
            partitions: args.partitions,
            producers: args.producers,
            batch_records: args.batch_records,
            record_bytes: record_bytes as usize,
            duration: Duration::from_secs(args.duration_secs),
            kills: args.kills,
            catch_up_bytes: args.catch_up_bytes,
            session_timeout_ms: args.broker_session_timeout_ms,
            lag_time_max_ms: args.replica_lag_time_max_ms,
        })
    }

    /// The server.properties every node reads.
    pub fn node_config(&self) -> String {
        format!(
            "broker.session.timeout.ms={}\nbroker.heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}\n\
             replica.lag.time.max.ms={}\n",
            self.session_timeout_ms, self.lag_time_max_ms
        )
    }

    /// The settings the failover figures depend on, for the summary.
    pub fn settings(&self) -> String {
        format!(
            "broker.session.timeout.ms={}, broker.heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}, \
             replica.lag.time.max.ms={}",
            self.session_timeout_ms, self.lag_time_max_ms
        )
    }

    fn topics(&self) -> [TopicSpec; 2] {
        let partitions = i32::try_from(self.partitions).unwrap_or(i32::MAX);
        [
            TopicSpec {
                name: RF1_TOPIC,
                partitions,
                replication_factor: 1,
                configs: Vec::new(),
            },
            TopicSpec {
                name: RF3_TOPIC,
                partitions,
                replication_factor: 3,
                configs: vec![("min.insync.replicas", RF3_MIN_INSYNC.to_string())],
            },
        ]
    }
}

/// One row of the table and its line in the human summary.
#[derive(Debug, Clone)]
pub struct Measured {
    pub row: Summary,
    pub human: String,
}

impl Measured {
    pub fn plain(row: Summary) -> Measured {
        let human = row.human_line();
        Measured { row, human }
    }
}

pub fn render(rows: &[Measured]) -> String {
    let rows: Vec<Summary> = rows.iter().map(|m| m.row.clone()).collect();
    crate::cluster::render(&rows)
}

pub fn human(plan: &ReplicationPlan, rows: &[Measured]) -> String {
    let mut out = format!(
        "settings: {}, --cores {}\n",
        plan.settings(),
        plan.setup.cores
    );
    for measured in rows {
        out.push_str(&measured.human);
        out.push('\n');
    }
    out
}

/// Starts the cluster, measures, stops it (also on error).
pub fn replication_rows(plan: &ReplicationPlan) -> Result<Vec<Measured>, ReplicationError> {
    let mut config = tempfile::Builder::new()
        .prefix("rafka-bench-replication")
        .suffix(".properties")
        .tempfile()
        .map_err(ReplicationError::Config)?;
    config
        .write_all(plan.node_config().as_bytes())
        .map_err(ReplicationError::Config)?;
    let mut setup = plan.setup.clone();
    setup.config = Some(config.path().to_path_buf());
    let cluster = Cluster::start(&setup)?;
    eprintln!(
        "cluster up: {} ({}; data and logs in {})",
        NODES.map(|n| cluster.addr(n)).join(","),
        plan.settings(),
        cluster.cluster_dir().display()
    );
    let mut lookup = lookup_of(&cluster);
    for spec in plan.topics() {
        create_topic(&mut lookup, &spec, Instant::now() + DEADLINE)?;
        let views = await_topic(&cluster, spec.name, plan.partitions as usize)?;
        eprintln!("{}: {}", spec.name, describe(&views));
    }
    let mut rows = Vec::new();
    if !plan.duration.is_zero() {
        rows.extend(throughput(&cluster, plan)?);
    }
    let faults = FaultPlan {
        batch_records: plan.batch_records,
        record_bytes: plan.record_bytes,
        session_timeout: Duration::from_millis(plan.session_timeout_ms.into()),
    };
    if plan.kills > 0 {
        rows.extend(failover(&cluster, &faults, plan.kills)?);
    }
    if plan.catch_up_bytes > 0 {
        rows.extend(catch_up(&cluster, &faults, plan.catch_up_bytes)?);
    }
    Ok(rows)
}

/// A [`Lookup`] over the cluster's three nodes.
pub fn lookup_of(cluster: &Cluster) -> Lookup {
    Lookup::new(NODES.iter().map(|&n| (n, cluster.addr(n))).collect())
}

/// Waits until every node lists `topic` with `partitions` partitions,
/// each with a leader and every replica in its ISR; returns node 1's view.
fn await_topic(
    cluster: &Cluster,
    topic: &str,
    partitions: usize,
) -> Result<Vec<PartitionView>, ReplicationError> {
    let started = Instant::now();
    let mut per_node: Vec<Lookup> = NODES
        .iter()
        .map(|&n| Lookup::new(vec![(n, cluster.addr(n))]))
        .collect();
    loop {
        let mut views = Vec::with_capacity(per_node.len());
        for lookup in &mut per_node {
            if let Ok(Some(view)) = lookup.partitions(topic) {
                let ready = view.len() == partitions && view.iter().all(|p| p.fully_in_sync());
                if ready {
                    views.push(view);
                }
            }
        }
        if views.len() == per_node.len() {
            return Ok(views.swap_remove(0));
        }
        if started.elapsed() >= DEADLINE {
            return Err(ReplicationError::Deadline {
                what: format!("{topic}'s {partitions} partitions led and in sync on every node"),
            });
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// `p0 leader 2 isr [1, 2, 3], p1 ...`
fn describe(views: &[PartitionView]) -> String {
    let parts: Vec<String> = views
        .iter()
        .enumerate()
        .map(|(p, v)| {
            let leader = v
                .leader
                .map_or_else(|| "none".to_owned(), |l| l.to_string());
            format!("p{p} leader {leader} isr {:?}", v.isr)
        })
        .collect();
    parts.join(", ")
}

/// One throughput run.
#[derive(Debug, Clone, Copy)]
struct Run {
    name: &'static str,
    topic: &'static str,
    acks: i16,
    label: &'static str,
}

const RUNS: [Run; 4] = [
    Run {
        name: "produce-rf1",
        topic: RF1_TOPIC,
        acks: ACKS_ALL,
        label: "rf1 acks=all",
    },
    Run {
        name: "produce-rf3",
        topic: RF3_TOPIC,
        acks: ACKS_ALL,
        label: "rf3 acks=all (min.insync.replicas=2)",
    },
    Run {
        name: "produce-rf1-again",
        topic: RF1_TOPIC,
        acks: ACKS_ALL,
        label: "rf1 acks=all, again",
    },
    Run {
        name: "produce-rf3-acks1",
        topic: RF3_TOPIC,
        acks: ACKS_LEADER,
        label: "rf3 acks=1",
    },
];

/// What one run measured.
#[derive(Debug, Clone)]
struct RunResult {
    run: Run,
    /// Per request, sent to acknowledged.
    latency_us: Histogram<u64>,
    records: u64,
    /// Requests answered with a retriable code or lost (retried).
    retried: u64,
    seconds: f64,
}

impl RunResult {
    fn records_per_s(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

/// The four runs and the two ratios.
fn throughput(
    cluster: &Cluster,
    plan: &ReplicationPlan,
) -> Result<Vec<Measured>, ReplicationError> {
    eprintln!(
        "throughput: {} closed-loop producers, {} records x {} B per request, {} s per run",
        plan.producers,
        plan.batch_records,
        plan.record_bytes,
        plan.duration.as_secs()
    );
    let mut results = Vec::with_capacity(RUNS.len());
    for run in RUNS {
        if run.topic == RF3_TOPIC {
            await_topic(cluster, RF3_TOPIC, plan.partitions as usize)?;
        }
        let result = run_producers(cluster, plan, run)?;
        let after = lookup_of(cluster)
            .partitions(run.topic)?
            .unwrap_or_default();
        eprintln!(
            "{}: {:.0} records/s, {} retried; after it: {}",
            run.label,
            result.records_per_s(),
            result.retried,
            describe(&after)
        );
        results.push(result);
    }
    let mut rows: Vec<Measured> = results
        .iter()
        .map(|r| throughput_row(r, plan.record_bytes))
        .collect();
    let [rf1, rf3, rf1_again, _] = &results[..] else {
        return Err(ReplicationError::Unexpected(format!(
            "{} throughput runs, {} planned",
            results.len(),
            RUNS.len()
        )));
    };
    rows.push(ratio_row("ratio-rf3-rf1", rf3, [rf1, rf1_again]));
    Ok(rows)
}

/// `plan.producers` connections, connection k on partition k mod P,
/// each warmed up with one acknowledged batch, then closed loop for
/// `plan.duration`.
fn run_producers(
    cluster: &Cluster,
    plan: &ReplicationPlan,
    run: Run,
) -> Result<RunResult, ReplicationError> {
    let mut producers = Vec::with_capacity(plan.producers as usize);
    for k in 0..plan.producers {
        let partition = i32::try_from(k % plan.partitions).unwrap_or(0);
        let mut lookup = lookup_of(cluster);
        let mut producer = PartitionProducer::new(
            run.topic,
            partition,
            run.acks,
            plan.batch_records,
            plan.record_bytes,
        );
        warm_up(&mut producer, &mut lookup)?;
        producers.push((producer, lookup));
    }
    let started = Instant::now();
    let end = started + plan.duration;
    let outcomes: Vec<Result<Loop, ReplicationError>> = std::thread::scope(|s| {
        let handles: Vec<_> = producers
            .iter_mut()
            .map(|(producer, lookup)| {
                s.spawn(move || closed_loop(producer, lookup, plan.batch_records, end))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(ReplicationError::Thread)))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut result = RunResult {
        run,
        latency_us: latency_histogram(),
        records: 0,
        retried: 0,
        seconds,
    };
    for outcome in outcomes {
        let outcome = outcome?;
        // Same bounds on both sides: adding cannot fail.
        let _ = result.latency_us.add(&outcome.latency_us);
        result.records += outcome.records;
        result.retried += outcome.retried;
    }
    Ok(result)
}

/// Sends until one batch is acknowledged (the leader has the topic, the
/// connection is up); not timed.
fn warm_up(producer: &mut PartitionProducer, lookup: &mut Lookup) -> Result<(), ReplicationError> {
    let started = Instant::now();
    loop {
        let attempt = producer.send(lookup)?;
        if let Attempt::Acked { .. } = attempt {
            return Ok(());
        }
        if started.elapsed() >= DEADLINE {
            return Err(ReplicationError::Deadline {
                what: format!(
                    "a first batch acknowledged by partition {}'s leader (last: {attempt:?})",
                    producer.partition()
                ),
            });
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// One connection's share of a run.
struct Loop {
    latency_us: Histogram<u64>,
    records: u64,
    retried: u64,
}

fn closed_loop(
    producer: &mut PartitionProducer,
    lookup: &mut Lookup,
    batch_records: u64,
    end: Instant,
) -> Result<Loop, ReplicationError> {
    let mut outcome = Loop {
        latency_us: latency_histogram(),
        records: 0,
        retried: 0,
    };
    while Instant::now() < end {
        let sent = Instant::now();
        match producer.send(lookup)? {
            Attempt::Acked { .. } => {
                outcome
                    .latency_us
                    .saturating_record(sent.elapsed().as_micros() as u64);
                outcome.records += batch_records;
            }
            Attempt::Retry(_) => {
                outcome.retried += 1;
                // A client's retry backoff: nothing to wait on but time.
                std::thread::sleep(RETRY_BACKOFF);
            }
        }
    }
    Ok(outcome)
}

fn throughput_row(result: &RunResult, record_bytes: usize) -> Measured {
    let rate = result.records_per_s();
    let what = format!(
        "{}: produce requests, sent -> acknowledged",
        result.run.label
    );
    let row = Summary::new(result.run.name.into(), what, &result.latency_us, Some(rate));
    let human = format!(
        "{}: {rate:.0} records/s, {:.1} MB/s, produce p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms \
         ({} requests in {:.1} s, {} retried)",
        result.run.label,
        rate * record_bytes as f64 / MB,
        row.p50_ms,
        row.p99_ms,
        row.max_ms,
        row.count,
        result.seconds,
        result.retried,
    );
    Measured { row, human }
}

/// `run` over the mean of the `base` runs: records/s and each latency
/// column, as dimensionless ratios (count: `run`'s requests).
fn ratio_row(name: &str, run: &RunResult, base: [&RunResult; 2]) -> Measured {
    let summary = |r: &RunResult| Summary::new(String::new(), String::new(), &r.latency_us, None);
    let (ours, bases) = (summary(run), base.map(summary));
    let mean = |f: fn(&Summary) -> f64| (f(&bases[0]) + f(&bases[1])) / 2.0;
    let ratio = |x: f64, y: f64| if y > 0.0 { x / y } else { 0.0 };
    let base_rate = (base[0].records_per_s() + base[1].records_per_s()) / 2.0;
    let row = Summary {
        name: name.to_owned(),
        what: format!(
            "{} over rf1 acks=all (mean of both rf1 runs)",
            run.run.label
        ),
        count: ours.count,
        p50_ms: ratio(ours.p50_ms, mean(|s| s.p50_ms)),
        p99_ms: ratio(ours.p99_ms, mean(|s| s.p99_ms)),
        max_ms: ratio(ours.max_ms, mean(|s| s.max_ms)),
        rate: Some(ratio(run.records_per_s(), base_rate)),
    };
    let drift = ratio(base[1].records_per_s(), base[0].records_per_s());
    let human = format!(
        "{}: throughput x{:.2}, p50 x{:.2}, p99 x{:.2} (rf1 drift between its runs: x{drift:.2})",
        row.what,
        row.rate.unwrap_or(0.0),
        row.p50_ms,
        row.p99_ms,
    );
    Measured { row, human }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(run: Run, latencies_ms: &[u64], records: u64, seconds: f64) -> RunResult {
        let mut latency_us = latency_histogram();
        for ms in latencies_ms {
            latency_us.saturating_record(ms * 1000);
        }
        RunResult {
            run,
            latency_us,
            records,
            retried: 0,
            seconds,
        }
    }

    #[test]
    fn ratios_divide_by_the_mean_of_both_rf1_runs() {
        let rf1 = result(RUNS[0], &[1, 1, 1], 30_000, 10.0);
        let rf1_again = result(RUNS[2], &[3, 3, 3], 10_000, 10.0);
        let rf3 = result(RUNS[1], &[4, 4, 4, 4], 10_000, 10.0);
        let measured = ratio_row("ratio-rf3-rf1", &rf3, [&rf1, &rf1_again]);
        // rf1 means: 2000 records/s, p50 2 ms; rf3: 1000/s, 4 ms.
        assert_eq!(measured.row.rate, Some(0.5));
        assert_eq!(measured.row.count, 4);
        assert!((measured.row.p50_ms - 2.0).abs() < 0.01, "{measured:?}");
        assert!((measured.row.max_ms - 2.0).abs() < 0.01, "{measured:?}");
        assert!(
            measured.human.contains("throughput x0.50"),
            "{}",
            measured.human
        );
        assert!(
            measured.human.contains("drift between its runs: x0.33"),
            "{}",
            measured.human
        );
        assert!(measured.row.csv_line().starts_with("ratio-rf3-rf1,4,"));
    }

    #[test]
    fn a_throughput_row_has_records_per_second_and_megabytes() {
        let rf3 = result(RUNS[1], &[2, 2], 20_000, 2.0);
        let measured = throughput_row(&rf3, 1000);
        assert_eq!(measured.row.name, "produce-rf3");
        assert_eq!(measured.row.rate, Some(10_000.0));
        assert_eq!(measured.row.count, 2);
        assert!(
            measured
                .human
                .starts_with("rf3 acks=all (min.insync.replicas=2): 10000 records/s, 10.0 MB/s"),
            "{}",
            measured.human
        );
    }

    #[test]
    fn the_nodes_get_the_asked_timeouts() {
        let plan = ReplicationPlan {
            setup: ClusterSetup {
                script: PathBuf::new(),
                rafka_bin: PathBuf::new(),
                cores: 1,
                config: None,
                keep_dir: false,
            },
            partitions: 3,
            producers: 8,
            batch_records: 16,
            record_bytes: 1024,
            duration: Duration::from_secs(10),
            kills: 20,
            catch_up_bytes: 1 << 20,
            session_timeout_ms: 3000,
            lag_time_max_ms: 2000,
        };
        assert_eq!(
            plan.node_config(),
            "broker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=500\n\
             replica.lag.time.max.ms=2000\n"
        );
        let [rf1, rf3] = plan.topics();
        assert_eq!((rf1.partitions, rf1.replication_factor), (3, 1));
        assert_eq!((rf3.partitions, rf3.replication_factor), (3, 3));
        assert_eq!(rf3.configs, [("min.insync.replicas", "2".to_owned())]);
    }
}
