//! `cluster`: the metadata quorum's figures (issue 14, "Measure") on a
//! 3-node loopback cluster this mode starts itself (`cluster_nodes`):
//!
//! 1. Controller failover: each round kills the active controller C
//!    (SIGKILL) and times, from its death, (a) until every survivor's
//!    Metadata names the same new controller among the survivors (polled
//!    every 2 ms), (b) until a CreateTopics through a survivor is
//!    acknowledged (NOT_CONTROLLER / REQUEST_TIMED_OUT retried). C is
//!    restarted and the cluster settles before the next round.
//! 2. Metadata propagation: a topic created through node X (round robin),
//!    from its acknowledgement until Metadata on both other nodes lists it
//!    (both polled back to back, no pause).
//! 3. Topic creations/s: K closed-loop connections, connection k on node
//!    k mod 3, each creating 1-partition topics one at a time.
//!
//! One CSV row per measurement (`name,count,p50_ms,p99_ms,max_ms,rate`,
//! latencies from hdrhistogram in µs) and a human summary on stderr.
//!
//! "Names the same new controller" and not "names another node": a node
//! that knows no leader (an election under way) names itself in Metadata,
//! so a survivor alone would look elected the moment it starts campaigning.
//! Agreement of both survivors on one of them holds only once one survivor
//! heard the other lead.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::{Decodable, Request};
use rafka_proto::error::ErrorCode;

use crate::admin::topic_name;
use crate::client::{ClientError, Wire};
use crate::cluster_nodes::{Cluster, ClusterSetup, NODES};
use crate::report::latency_histogram;

pub const CSV_HEADER: &str = "name,count,p50_ms,p99_ms,max_ms,rate";

/// Every wait (a failover, a restart, a propagation) fails after this.
const DEADLINE: Duration = Duration::from_secs(60);
/// Between Metadata polls of the failover, and between retries of a
/// refused CreateTopics.
const POLL: Duration = Duration::from_millis(2);
/// Between polls while the cluster settles after a restart (not timed).
const SETTLE_POLL: Duration = Duration::from_millis(20);
/// CreateTopics' own timeout: long enough that a creation proposed to a
/// dead leader waits for the new one (proposals are re-proposed on a
/// leader change) instead of timing out.
const CREATE_TIMEOUT_MS: i32 = 30_000;
const METADATA_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 7;
const NONE: i16 = ErrorCode::NONE.code();
const NOT_CONTROLLER: i16 = ErrorCode::NOT_CONTROLLER.code();
const REQUEST_TIMED_OUT: i16 = ErrorCode::REQUEST_TIMED_OUT.code();
const TOPIC_ALREADY_EXISTS: i16 = ErrorCode::TOPIC_ALREADY_EXISTS.code();

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The broker binary every node runs.
    #[arg(long, default_value = "target/release/rafka")]
    rafka_bin: PathBuf,
    /// The script that runs the cluster (paths are relative to the
    /// current directory: run from the repository root).
    #[arg(long, default_value = "scripts/cluster.sh")]
    cluster_script: PathBuf,
    /// Controller kills (failover rounds); 0 skips them.
    #[arg(long, default_value_t = 20)]
    kills: u32,
    /// Topics whose propagation to the other nodes is timed; 0 skips it.
    #[arg(long, default_value_t = 200)]
    propagation_topics: u32,
    /// Closed-loop creating connections, comma-separated; one run and row
    /// each.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    creators: Vec<u32>,
    /// Length of each creation-rate run.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// --cores of each node (CLUSTER_CORES).
    #[arg(long, default_value_t = 1)]
    cores: u32,
    /// A server.properties every node reads (CLUSTER_CONFIG), e.g. quorum
    /// timeouts; without it, the defaults.
    #[arg(long)]
    cluster_config: Option<PathBuf>,
    /// Leave the nodes' data dirs and logs (`node-N.log`) in place.
    #[arg(long)]
    keep_dir: bool,
    /// Also write the table to this CSV file.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{} not found (run from the repository root, or pass --rafka-bin / --cluster-script)", .0.display())]
    Missing(PathBuf),
    #[error("{name} must be between {min} and {max}, got {got}")]
    OutOfRange {
        name: &'static str,
        min: u64,
        max: u64,
        got: u64,
    },
    #[error("the temp dir: {0}")]
    TempDir(#[source] std::io::Error),
    #[error("finding free ports: {0}")]
    Ports(#[source] std::io::Error),
    #[error("handling signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("running {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cluster.sh {args}: {status}\n{output}")]
    Script {
        args: String,
        status: String,
        output: String,
    },
    #[error("node {0} is not running")]
    NotRunning(u16),
    #[error("node {node}: {source}")]
    Client {
        node: u16,
        #[source]
        source: ClientError,
    },
    #[error("CreateTopics {topic} through node {node}: error code {error_code}")]
    Create {
        topic: String,
        node: u16,
        error_code: i16,
    },
    #[error("waited {secs} s for {what}")]
    Deadline { what: String, secs: u64 },
    #[error("a measuring thread panicked")]
    Thread,
}

/// What to measure; see [`ClusterArgs`].
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub setup: ClusterSetup,
    pub kills: u32,
    pub propagation_topics: u32,
    pub creators: Vec<u32>,
    pub duration: Duration,
}

impl ClusterPlan {
    pub fn from_args(args: &ClusterArgs) -> Result<ClusterPlan, ClusterError> {
        let range = |name, got: u64, min, max| {
            if (min..=max).contains(&got) {
                Ok(())
            } else {
                Err(ClusterError::OutOfRange {
                    name,
                    min,
                    max,
                    got,
                })
            }
        };
        range("--kills", u64::from(args.kills), 0, 10_000)?;
        range(
            "--propagation-topics",
            args.propagation_topics.into(),
            0,
            1 << 20,
        )?;
        for &creators in &args.creators {
            range("--creators", u64::from(creators), 1, 1024)?;
        }
        range("--duration-secs", args.duration_secs, 1, 86_400)?;
        range("--cores", u64::from(args.cores), 1, 1024)?;
        Ok(ClusterPlan {
            setup: ClusterSetup {
                script: args.cluster_script.clone(),
                rafka_bin: args.rafka_bin.clone(),
                cores: args.cores,
                config: args.cluster_config.clone(),
                keep_dir: args.keep_dir,
            },
            kills: args.kills,
            propagation_topics: args.propagation_topics,
            creators: args.creators.clone(),
            duration: Duration::from_secs(args.duration_secs),
        })
    }
}

/// One measurement: its latencies' percentiles and, for rates, events/s.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub name: String,
    /// What was timed, for the human summary.
    pub what: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub rate: Option<f64>,
}

impl Summary {
    /// From a histogram of µs.
    pub fn new(name: String, what: String, latency_us: &Histogram<u64>, rate: Option<f64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Summary {
            name,
            what,
            count: latency_us.len(),
            p50_ms: ms(latency_us.value_at_quantile(0.5)),
            p99_ms: ms(latency_us.value_at_quantile(0.99)),
            max_ms: ms(latency_us.max()),
            rate,
        }
    }

    pub fn csv_line(&self) -> String {
        let rate = self.rate.map_or_else(String::new, |r| format!("{r:.1}"));
        format!(
            "{},{},{:.3},{:.3},{:.3},{rate}",
            self.name, self.count, self.p50_ms, self.p99_ms, self.max_ms
        )
    }

    pub fn human_line(&self) -> String {
        let mut line = format!(
            "{}: {} x, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.what, self.count, self.p50_ms, self.p99_ms, self.max_ms
        );
        if let Some(rate) = self.rate {
            let _ = write!(line, ", {rate:.1}/s");
        }
        line
    }
}

pub fn render(rows: &[Summary]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for row in rows {
        out.push_str(&row.csv_line());
        out.push('\n');
    }
    out
}

pub fn human(rows: &[Summary]) -> String {
    rows.iter().map(|r| r.human_line() + "\n").collect()
}

/// Starts the cluster, measures, stops it (also on error).
pub fn cluster_rows(plan: &ClusterPlan) -> Result<Vec<Summary>, ClusterError> {
    let cluster = Cluster::start(&plan.setup)?;
    eprintln!(
        "cluster up: {} (data and logs in {})",
        NODES.map(|n| cluster.addr(n)).join(","),
        cluster.cluster_dir().display()
    );
    let mut rows = Vec::new();
    if plan.kills > 0 {
        rows.extend(failover(&cluster, plan.kills)?);
    }
    if plan.propagation_topics > 0 {
        rows.extend(propagation(&cluster, plan.propagation_topics)?);
    }
    for (run, &creators) in plan.creators.iter().enumerate() {
        rows.push(creation_rate(&cluster, run, creators, plan.duration)?);
    }
    Ok(rows)
}

/// `kills` rounds of: kill the controller, time the new one and the first
/// creation, restart it, settle.
fn failover(cluster: &Cluster, kills: u32) -> Result<[Summary; 2], ClusterError> {
    let (mut elected_us, mut created_us) = (latency_histogram(), latency_histogram());
    for round in 0..kills {
        let controller = settle(cluster)?;
        let survivors: Vec<u16> = NODES.into_iter().filter(|n| *n != controller).collect();
        let via = survivors[round as usize % survivors.len()];
        let mut creator = Node::connect(cluster, via)?;
        let mut pollers = survivors
            .iter()
            .map(|n| Node::connect(cluster, *n))
            .collect::<Result<Vec<_>, _>>()?;
        let topic = format!("cb-failover-{round}");
        let kill = cluster.kill(controller)?;
        let dead_at = kill.await_death()?;
        let (elected, created) = std::thread::scope(|s| {
            let create = s.spawn(|| {
                create(&mut creator, &topic, dead_at + DEADLINE).map(|_| dead_at.elapsed())
            });
            let elected = await_new_controller(&mut pollers, dead_at);
            let created = create.join().map_err(|_| ClusterError::Thread)?;
            Ok::<_, ClusterError>((elected?, created?))
        })?;
        kill.finish()?;
        let (new, elected) = elected;
        eprintln!(
            "kill {}/{kills}: controller {controller} killed; nodes {survivors:?} name {new} \
             after {:.1} ms; CreateTopics through {via} acknowledged after {:.1} ms",
            round + 1,
            elected.as_secs_f64() * 1e3,
            created.as_secs_f64() * 1e3,
        );
        elected_us.saturating_record(elected.as_micros() as u64);
        created_us.saturating_record(created.as_micros() as u64);
        cluster.restart(controller)?;
    }
    settle(cluster)?;
    Ok([
        Summary::new(
            "failover-elected".into(),
            "controller killed -> both survivors name the same new controller".into(),
            &elected_us,
            None,
        ),
        Summary::new(
            "failover-create".into(),
            "controller killed -> CreateTopics through a survivor acknowledged".into(),
            &created_us,
            None,
        ),
    ])
}

/// Polls the survivors every [`POLL`] until they agree on one of them as
/// controller; returns it and the time since `dead_at`.
fn await_new_controller(
    survivors: &mut [Node],
    dead_at: Instant,
) -> Result<(u16, Duration), ClusterError> {
    loop {
        let mut views = Vec::with_capacity(survivors.len());
        for node in survivors.iter_mut() {
            // A survivor busy electing may drop a connection: ask again.
            if let Ok(view) = node.view() {
                views.push((node.id, view.controller));
            }
        }
        if views.len() == survivors.len() {
            if let Some(controller) = agreed_controller(&views) {
                return Ok((controller, dead_at.elapsed()));
            }
        }
        if dead_at.elapsed() >= DEADLINE {
            return Err(deadline(format!("a new controller (views {views:?})")));
        }
        std::thread::sleep(POLL);
    }
}

/// The controller every view names, if they all name the same one of the
/// nodes whose views they are. Views are (node, its Metadata's
/// controller_id).
pub fn agreed_controller(views: &[(u16, i32)]) -> Option<u16> {
    let &(_, first) = views.first()?;
    let named = u16::try_from(first).ok()?;
    let agreed = views.iter().all(|&(_, c)| c == first);
    let among = views.iter().any(|&(node, _)| node == named);
    (agreed && among).then_some(named)
}

/// Waits until every node lists all three brokers and they agree on the
/// controller; returns it.
fn settle(cluster: &Cluster) -> Result<u16, ClusterError> {
    let started = Instant::now();
    let mut nodes: Vec<Node> = NODES.iter().map(|&n| Node::new(cluster, n)).collect();
    loop {
        let mut views = Vec::with_capacity(nodes.len());
        for node in &mut nodes {
            match node.view() {
                Ok(view) if view.brokers == NODES.map(i32::from) => {
                    views.push((node.id, view.controller));
                }
                _ => {}
            }
        }
        if views.len() == nodes.len() {
            if let Some(controller) = agreed_controller(&views) {
                return Ok(controller);
            }
        }
        if started.elapsed() >= DEADLINE {
            return Err(deadline(format!(
                "all three brokers listed and one controller on every node (views {views:?})"
            )));
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// Topic i through node i mod 3; from its acknowledgement until each
/// other node lists it.
fn propagation(cluster: &Cluster, topics: u32) -> Result<[Summary; 2], ClusterError> {
    settle(cluster)?;
    let mut nodes = NODES
        .iter()
        .map(|&n| Node::connect(cluster, n))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut all_us, mut each_us) = (latency_histogram(), latency_histogram());
    for i in 0..topics as usize {
        let via = i % nodes.len();
        let topic = format!("cb-prop-{i}");
        create(&mut nodes[via], &topic, Instant::now() + DEADLINE)?;
        let acked = Instant::now();
        let mut pending: Vec<usize> = (0..nodes.len()).filter(|&n| n != via).collect();
        let mut last = Duration::ZERO;
        while !pending.is_empty() {
            let mut still = Vec::with_capacity(pending.len());
            for n in pending {
                if nodes[n].lists(&topic)? {
                    last = acked.elapsed();
                    each_us.saturating_record(last.as_micros() as u64);
                } else {
                    still.push(n);
                }
            }
            pending = still;
            if acked.elapsed() >= DEADLINE {
                return Err(deadline(format!("{topic} on nodes {pending:?}")));
            }
        }
        all_us.saturating_record(last.as_micros() as u64);
    }
    Ok([
        Summary::new(
            "propagation-all".into(),
            "CreateTopics acknowledged -> listed by both other nodes".into(),
            &all_us,
            None,
        ),
        Summary::new(
            "propagation-each".into(),
            "CreateTopics acknowledged -> listed by one other node".into(),
            &each_us,
            None,
        ),
    ])
}

/// `creators` closed-loop connections (connection k on node k mod 3)
/// creating 1-partition topics for `duration`; `run` keeps the names of
/// runs with the same count apart.
fn creation_rate(
    cluster: &Cluster,
    run: usize,
    creators: u32,
    duration: Duration,
) -> Result<Summary, ClusterError> {
    let controller = settle(cluster)?;
    let mut nodes = (0..creators as usize)
        .map(|k| Node::connect(cluster, NODES[k % NODES.len()]))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let end = started + duration;
    let results: Vec<Result<(Histogram<u64>, u32), ClusterError>> = std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .iter_mut()
            .enumerate()
            .map(|(k, node)| {
                s.spawn(move || create_until(node, &format!("cb-{run}-k{creators}-{k}"), end))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(ClusterError::Thread)))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let (mut latency_us, mut retries) = (latency_histogram(), 0);
    for result in results {
        let (histogram, retried) = result?;
        // Same bounds on both sides: adding cannot fail.
        let _ = latency_us.add(&histogram);
        retries += retried;
    }
    let rate = latency_us.len() as f64 / seconds;
    let what = format!(
        "CreateTopics (1 partition), {creators} closed-loop connection(s) over the nodes \
         (controller: node {controller}), {seconds:.1} s, {retries} retries"
    );
    Ok(Summary::new(
        format!("create-k{creators}"),
        what,
        &latency_us,
        Some(rate),
    ))
}

/// One connection's loop: topics `{prefix}-{i}` until `end`; their
/// latencies in µs and the retries they took.
fn create_until(
    node: &mut Node,
    prefix: &str,
    end: Instant,
) -> Result<(Histogram<u64>, u32), ClusterError> {
    let (mut latency_us, mut retries) = (latency_histogram(), 0);
    let mut i = 0u64;
    while Instant::now() < end {
        let sent = Instant::now();
        retries += create(node, &format!("{prefix}-{i}"), sent + DEADLINE)?;
        latency_us.saturating_record(sent.elapsed().as_micros() as u64);
        i += 1;
    }
    Ok((latency_us, retries))
}

/// Creates `topic` (1 partition, 1 replica) through `node`, retrying
/// NOT_CONTROLLER, REQUEST_TIMED_OUT and lost connections every [`POLL`]
/// until `deadline`; returns the retries. TOPIC_ALREADY_EXISTS after a
/// retry is the earlier attempt's creation, done.
fn create(node: &mut Node, topic: &str, deadline_at: Instant) -> Result<u32, ClusterError> {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(CREATE_TIMEOUT_MS)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let mut retries = 0;
    loop {
        let answer = node.call(&request, CREATE_TOPICS_VERSION);
        let error_code = match answer {
            Ok(response) => response.topics.first().map_or(NONE, |t| t.error_code),
            Err(_) => REQUEST_TIMED_OUT,
        };
        match error_code {
            NONE => return Ok(retries),
            TOPIC_ALREADY_EXISTS if retries > 0 => return Ok(retries),
            NOT_CONTROLLER | REQUEST_TIMED_OUT => {}
            error_code => {
                return Err(ClusterError::Create {
                    topic: topic.to_owned(),
                    node: node.id,
                    error_code,
                })
            }
        }
        if Instant::now() >= deadline_at {
            return Err(deadline(format!(
                "CreateTopics {topic} through node {} (last error code {error_code})",
                node.id
            )));
        }
        retries += 1;
        std::thread::sleep(POLL);
    }
}

fn deadline(what: String) -> ClusterError {
    ClusterError::Deadline {
        what,
        secs: DEADLINE.as_secs(),
    }
}

/// What a node's Metadata says about the cluster.
#[derive(Debug)]
struct View {
    controller: i32,
    /// Sorted.
    brokers: Vec<i32>,
}

/// A connection to one node, made again after an error.
struct Node {
    id: u16,
    addr: String,
    wire: Option<Wire>,
}

impl Node {
    fn new(cluster: &Cluster, id: u16) -> Node {
        Node {
            id,
            addr: cluster.addr(id),
            wire: None,
        }
    }

    /// Connected now, so timed calls do not pay for it.
    fn connect(cluster: &Cluster, id: u16) -> Result<Node, ClusterError> {
        let mut node = Node::new(cluster, id);
        let wire = Wire::connect(&node.addr)
            .map_err(|source| ClusterError::Client { node: id, source })?;
        node.wire = Some(wire);
        Ok(node)
    }

    fn call<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, ClientError>
    where
        R::Response: Decodable,
    {
        let wire = match &mut self.wire {
            Some(wire) => wire,
            None => self.wire.insert(Wire::connect(&self.addr)?),
        };
        let answer = wire.call(request, version);
        if answer.is_err() {
            self.wire = None;
        }
        answer
    }

    fn metadata(&mut self, topics: Vec<&str>) -> Result<MetadataResponse, ClientError> {
        let topics = topics
            .into_iter()
            .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
            .collect();
        let request = MetadataRequest::default()
            .with_topics(Some(topics))
            .with_allow_auto_topic_creation(false);
        self.call(&request, METADATA_VERSION)
    }

    /// Brokers and controller only (no topics asked).
    fn view(&mut self) -> Result<View, ClientError> {
        let metadata = self.metadata(Vec::new())?;
        let mut brokers: Vec<i32> = metadata.brokers.iter().map(|b| b.node_id.0).collect();
        brokers.sort_unstable();
        Ok(View {
            controller: metadata.controller_id.0,
            brokers,
        })
    }

    /// Whether this node's Metadata has `topic` (no error, partitions).
    fn lists(&mut self, topic: &str) -> Result<bool, ClusterError> {
        let metadata = self
            .metadata(vec![topic])
            .map_err(|source| ClusterError::Client {
                node: self.id,
                source,
            })?;
        Ok(metadata.topics.iter().any(|t| {
            t.error_code == NONE
                && !t.partitions.is_empty()
                && t.name.as_ref().is_some_and(|n| n.0.as_str() == topic)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_percentiles_and_csv() {
        let mut latency_us = latency_histogram();
        // 1..=1000 µs: p50 0.5 ms, p99 0.99 ms, max 1 ms (exact at 3
        // significant digits below 2048).
        for us in 1..=1000 {
            latency_us.saturating_record(us);
        }
        let row = Summary::new("propagation-all".into(), "x".into(), &latency_us, None);
        assert_eq!(row.count, 1000);
        assert_eq!((row.p50_ms, row.p99_ms, row.max_ms), (0.5, 0.99, 1.0));
        assert_eq!(row.csv_line(), "propagation-all,1000,0.500,0.990,1.000,");
        let rated = Summary::new("create-k8".into(), "y".into(), &latency_us, Some(123.456));
        assert_eq!(rated.csv_line(), "create-k8,1000,0.500,0.990,1.000,123.5");
        assert_eq!(
            rated.human_line(),
            "y: 1000 x, p50 0.5 ms, p99 1.0 ms, max 1.0 ms, 123.5/s"
        );
        let table = render(&[row, rated]);
        assert_eq!(table.lines().next(), Some(CSV_HEADER));
        assert_eq!(table.lines().count(), 3);
    }

    #[test]
    fn summary_of_few_samples_reports_the_slowest_as_p99() {
        // 20 kills: p99 is the slowest one, as is max.
        let mut latency_us = latency_histogram();
        for ms in [1200, 1500, 1100, 1900, 1300] {
            latency_us.saturating_record(ms * 1000);
        }
        let row = Summary::new("failover-elected".into(), String::new(), &latency_us, None);
        assert_eq!(row.count, 5);
        // hdrhistogram's buckets at 3 significant digits: within 0.1%.
        assert!((row.p50_ms - 1300.0).abs() <= 1.3, "{row:?}");
        assert!((row.p99_ms - 1900.0).abs() <= 1.9, "{row:?}");
        assert_eq!(row.p99_ms, row.max_ms);
        let empty = Summary::new("x".into(), String::new(), &latency_histogram(), None);
        assert_eq!(empty.csv_line(), "x,0,0.000,0.000,0.000,");
    }

    #[test]
    fn a_controller_counts_once_every_view_names_one_of_them() {
        // Both survivors name node 3: elected.
        assert_eq!(agreed_controller(&[(2, 3), (3, 3)]), Some(3));
        // Each names itself: an election under way, nobody known.
        assert_eq!(agreed_controller(&[(2, 2), (3, 3)]), None);
        // Both still name the killed node 1.
        assert_eq!(agreed_controller(&[(2, 1), (3, 1)]), None);
        // One has moved on, the other has not.
        assert_eq!(agreed_controller(&[(2, 3), (3, 1)]), None);
        assert_eq!(agreed_controller(&[(1, 2), (2, 2), (3, 2)]), Some(2));
        assert_eq!(agreed_controller(&[(1, -1), (2, -1)]), None);
        assert_eq!(agreed_controller(&[]), None);
    }
}
