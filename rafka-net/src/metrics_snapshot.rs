//! One scrape: a `Send` copy of every shard's metrics, merged into the
//! broker's view and encoded in the Prometheus/OpenMetrics text format with
//! prometheus-client.
//!
//! Each shard fills a [`ShardSnapshot`] on its own thread; the shard that
//! serves the scrape gathers them, [`BrokerSnapshot::merge`]s them (per-API
//! and per-topic counters summed over shards, per-shard values kept apart
//! under a `shard` label) and encodes the result through a
//! prometheus-client collector. Nothing here is touched on the request
//! path.
//!
//! Lives on: the shard that serves `/metrics`, for one scrape.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use rafka_core::io::cache::FileBudgetStats;
use rafka_shard::disk::DiskSnapshot;
use rafka_shard::histogram::{HistogramSnapshot, LATENCY_BOUNDS_US};
use rafka_shard::log_health::LogHealthSnapshot;
use rafka_shard::quota::{QuotaStats, QuotaStatsEntry};
use rafka_shard::runtime::MeshStatsSnapshot;
use rafka_shard::txn::TxnStats;

use crate::metrics::NetMetricsSnapshot;

/// Every metric name starts with this and an underscore.
pub const METRIC_PREFIX: &str = "rafka";

/// One Kafka API's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiTraffic {
    pub api_key: i16,
    pub requests: u64,
    pub errors: u64,
    pub latency: HistogramSnapshot,
}

/// Record batches moved for one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicTraffic {
    /// Batch bytes appended by produce requests (as stored on disk).
    pub bytes_in: u64,
    pub records_in: u64,
    /// Batch bytes put in fetch responses.
    pub bytes_out: u64,
    /// Records (offsets) delivered by fetch responses.
    pub records_out: u64,
}

impl TopicTraffic {
    fn merge(&mut self, other: &TopicTraffic) {
        self.bytes_in = self.bytes_in.wrapping_add(other.bytes_in);
        self.records_in = self.records_in.wrapping_add(other.records_in);
        self.bytes_out = self.bytes_out.wrapping_add(other.bytes_out);
        self.records_out = self.records_out.wrapping_add(other.records_out);
    }
}

/// One partition's offsets at scrape time, read on its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    /// Kafka's partition gauges, as it reports them: on the leader, the
    /// replica count, the ISR size, and whether the ISR misses replicas or
    /// is below `min.insync.replicas` (0 on a follower).
    pub replicas: i64,
    pub in_sync_replicas: i64,
    pub under_replicated: i64,
    pub under_min_isr: i64,
}

/// One committed offset of a consumer group, read on the shard that
/// coordinates the group (owner of its `__consumer_offsets` partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
}

/// Everything one shard reports to a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardSnapshot {
    pub shard: u32,
    /// APIs with at least one request, in key order.
    pub apis: Vec<ApiTraffic>,
    pub topics: BTreeMap<String, TopicTraffic>,
    pub net: NetMetricsSnapshot,
    pub connections_open: u64,
    /// Requests between dispatch and response on this shard now.
    pub requests_running: u64,
    /// Jobs from other shards running on this one now (the mesh backlog).
    pub mesh_jobs_running: u64,
    /// Time the executor spent running tasks since start.
    pub busy: Duration,
    pub tasks_executed: u64,
    pub flush_cycles: u64,
    pub fsync_latency: HistogramSnapshot,
    /// Calls this shard made (local and to other shards) and the transit
    /// times of the mesh messages it received.
    pub mesh: MeshStatsSnapshot,
    /// The shard's open-file budget (segment and index files).
    pub open_files: FileBudgetStats,
    /// What recovery and the scrubber found in this shard's logs.
    pub log_health: LogHealthSnapshot,
    /// The partitions this shard owns.
    pub partitions: Vec<PartitionOffsets>,
    /// The committed offsets of the groups this shard coordinates.
    pub group_offsets: Vec<GroupOffset>,
    /// The data dir's free space and produce refusals on this shard.
    pub disk: DiskSnapshot,
    /// The transaction coordinator's counts on this shard.
    pub txn: TxnStats,
    /// The client quota sensors this shard owns, with their counters.
    pub quotas: Vec<QuotaStatsEntry>,
    /// The metadata quorum, on the shard that runs it (shard 0 of a voter).
    pub quorum: Option<QuorumSnapshot>,
}

/// The metadata quorum as this node sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuorumSnapshot {
    /// -1: none known.
    pub leader_id: i32,
    pub is_leader: bool,
    pub term: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_index: u64,
    pub proposals: rafka_shard::quorum::ProposalCounts,
    pub brokers_live: u64,
    pub brokers_fenced: u64,
}

/// Every shard's snapshot, with the broker-wide sums a scrape shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BrokerSnapshot {
    /// Per API key, summed over shards.
    pub apis: BTreeMap<i16, ApiTraffic>,
    /// Per topic, summed over shards.
    pub topics: BTreeMap<String, TopicTraffic>,
    /// Per client quota sensor (key name, user, client id), summed over
    /// shards (each sensor has one owner, so at most one adds).
    pub quotas: BTreeMap<(&'static str, String, String), QuotaStats>,
    /// In shard order, for the per-shard metrics.
    pub shards: Vec<ShardSnapshot>,
}

impl BrokerSnapshot {
    pub fn merge(mut shards: Vec<ShardSnapshot>) -> Self {
        shards.sort_by_key(|shard| shard.shard);
        let mut apis: BTreeMap<i16, ApiTraffic> = BTreeMap::new();
        let mut topics: BTreeMap<String, TopicTraffic> = BTreeMap::new();
        let mut quotas: BTreeMap<(&'static str, String, String), QuotaStats> = BTreeMap::new();
        for shard in &shards {
            for api in &shard.apis {
                let merged = apis.entry(api.api_key).or_insert(ApiTraffic {
                    api_key: api.api_key,
                    requests: 0,
                    errors: 0,
                    latency: HistogramSnapshot::default(),
                });
                merged.requests = merged.requests.wrapping_add(api.requests);
                merged.errors = merged.errors.wrapping_add(api.errors);
                merged.latency.merge(&api.latency);
            }
            for (topic, traffic) in &shard.topics {
                topics.entry(topic.clone()).or_default().merge(traffic);
            }
            for entry in &shard.quotas {
                let sensor = (
                    entry.key.name(),
                    entry.id.user.clone(),
                    entry.id.client_id.clone(),
                );
                let merged = quotas.entry(sensor).or_default();
                merged.throttle_time_ms += entry.stats.throttle_time_ms;
                merged.throttled += entry.stats.throttled;
                merged.value += entry.stats.value;
            }
        }
        BrokerSnapshot {
            apis,
            topics,
            quotas,
            shards,
        }
    }

    /// The text exposition (OpenMetrics 1.0, which Prometheus reads), ending
    /// with `# EOF`.
    pub fn encode(self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_prefix(METRIC_PREFIX);
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

/// The Kafka name of an API key (`Produce`, `Fetch`, ...), or the number.
pub fn api_name(api_key: i16) -> String {
    match ApiKey::try_from(api_key) {
        Ok(api) => format!("{api:?}"),
        Err(()) => api_key.to_string(),
    }
}

type Labels = Vec<(&'static str, String)>;

/// A metric's name, help and how to read its value from `T`.
type Described<T, V> = (&'static str, &'static str, fn(&T) -> V);

/// One metric family: a descriptor, then one sample per label set.
struct Family<'e> {
    encoder: MetricEncoder<'e>,
}

impl Family<'_> {
    fn counter(&mut self, labels: &Labels, value: u64) -> Result<(), std::fmt::Error> {
        ConstCounter::new(value).encode(self.encoder.encode_family(labels)?)
    }

    fn counter_f64(&mut self, labels: &Labels, value: f64) -> Result<(), std::fmt::Error> {
        ConstCounter::new(value).encode(self.encoder.encode_family(labels)?)
    }

    fn gauge(&mut self, labels: &Labels, value: i64) -> Result<(), std::fmt::Error> {
        ConstGauge::new(value).encode(self.encoder.encode_family(labels)?)
    }

    fn histogram(
        &mut self,
        labels: &Labels,
        histogram: &HistogramSnapshot,
    ) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS_US
            .iter()
            .map(|&bound_us| bound_us as f64 / 1e6)
            .chain([f64::INFINITY])
            .zip(histogram.buckets)
            .collect();
        let sum_seconds = histogram.sum_us as f64 / 1e6;
        self.encoder
            .encode_family(labels)?
            .encode_histogram::<Labels>(sum_seconds, histogram.count(), &buckets, None)
    }
}

fn family<'e>(
    encoder: &'e mut DescriptorEncoder,
    name: &'e str,
    help: &str,
    unit: Option<&'e Unit>,
    metric_type: MetricType,
) -> Result<Family<'e>, std::fmt::Error> {
    Ok(Family {
        encoder: encoder.encode_descriptor(name, help, unit, metric_type)?,
    })
}

fn shard_label(shard: &ShardSnapshot) -> Labels {
    vec![("shard", shard.shard.to_string())]
}

impl Collector for BrokerSnapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_apis(&mut encoder)?;
        self.encode_topics(&mut encoder)?;
        self.encode_connections(&mut encoder)?;
        self.encode_shards(&mut encoder)?;
        self.encode_log_health(&mut encoder)?;
        self.encode_transactions(&mut encoder)?;
        self.encode_partitions(&mut encoder)?;
        self.encode_group_lag(&mut encoder)?;
        self.encode_disk(&mut encoder)?;
        self.encode_quorum(&mut encoder)?;
        self.encode_quotas(&mut encoder)
    }
}

impl BrokerSnapshot {
    fn encode_apis(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let labels = |api: &ApiTraffic| vec![("api", api_name(api.api_key))];
        let mut requests = family(
            encoder,
            "requests",
            "Requests served, by Kafka API.",
            None,
            MetricType::Counter,
        )?;
        for api in self.apis.values() {
            requests.counter(&labels(api), api.requests)?;
        }
        let mut errors = family(
            encoder,
            "request_errors",
            "Requests that closed their connection or were answered with an error code, by Kafka API.",
            None,
            MetricType::Counter,
        )?;
        for api in self.apis.values() {
            errors.counter(&labels(api), api.errors)?;
        }
        let mut latency = family(
            encoder,
            "request_duration",
            "Time from a request's dispatch to its response, by Kafka API.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for api in self.apis.values() {
            latency.histogram(&labels(api), &api.latency)?;
        }
        Ok(())
    }

    fn encode_topics(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let families: [Described<TopicTraffic, u64>; 4] = [
            (
                "topic_bytes_in",
                "Record batch bytes appended by produce requests, by topic.",
                |t| t.bytes_in,
            ),
            (
                "topic_records_in",
                "Records appended by produce requests, by topic.",
                |t| t.records_in,
            ),
            (
                "topic_bytes_out",
                "Record batch bytes sent in fetch responses, by topic.",
                |t| t.bytes_out,
            ),
            (
                "topic_records_out",
                "Records (offsets) delivered by fetch responses, by topic.",
                |t| t.records_out,
            ),
        ];
        for (name, help, value) in families {
            let mut metric = family(encoder, name, help, None, MetricType::Counter)?;
            for (topic, traffic) in &self.topics {
                metric.counter(&vec![("topic", topic.clone())], value(traffic))?;
            }
        }
        Ok(())
    }

    fn encode_connections(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: [Described<ShardSnapshot, u64>; 9] = [
            (
                "connections_accepted",
                "Client connections accepted, by shard.",
                |s| s.net.connections_accepted,
            ),
            (
                "accept_failures",
                "Failed accepts (out of file descriptors, ...), by shard.",
                |s| s.net.accept_failures,
            ),
            (
                "tls_handshakes",
                "TLS handshakes completed, by shard.",
                |s| s.net.tls_handshakes,
            ),
            (
                "tls_handshake_failures",
                "TLS handshakes failed or timed out (each closed its connection), by shard.",
                |s| s.net.tls_handshake_failures,
            ),
            (
                "sasl_authentication_failures",
                "SASL authentications refused (each closed its connection), by shard.",
                |s| s.net.sasl_authentication_failures,
            ),
            (
                "connections_closed",
                "Client connections closed for any reason, by shard.",
                |s| s.net.connections_closed,
            ),
            (
                "connections_rejected",
                "Client connections refused at connections_max or during shutdown, by shard.",
                |s| s.net.connections_rejected,
            ),
            (
                "network_bytes_in",
                "Request frame bytes read from clients, by shard.",
                |s| s.net.bytes_in,
            ),
            (
                "network_bytes_out",
                "Response frame bytes written to clients, by shard.",
                |s| s.net.bytes_out,
            ),
        ];
        for (name, help, value) in counters {
            let mut metric = family(encoder, name, help, None, MetricType::Counter)?;
            for shard in &self.shards {
                metric.counter(&shard_label(shard), value(shard))?;
            }
        }
        let mut errors = family(
            encoder,
            "connection_errors",
            "Connections closed for a protocol error, by shard and kind (frame: bad size prefix, header: bad request header, handler: undecodable body).",
            None,
            MetricType::Counter,
        )?;
        for shard in &self.shards {
            let kinds = [
                ("frame", shard.net.frame_errors),
                ("header", shard.net.header_errors),
                ("handler", shard.net.handler_errors),
            ];
            for (kind, count) in kinds {
                let mut labels = shard_label(shard);
                labels.push(("kind", kind.to_string()));
                errors.counter(&labels, count)?;
            }
        }
        self.encode_connection_limits(encoder)?;
        let mut open = family(
            encoder,
            "connections_open",
            "Client connections open now, by shard.",
            None,
            MetricType::Gauge,
        )?;
        for shard in &self.shards {
            open.gauge(&shard_label(shard), gauge_value(shard.connections_open))?;
        }
        let mut read_buffers = family(
            encoder,
            "connection_read_buffers",
            "Memory held by the connections' read buffers now (idle connections hold none), by shard.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        for shard in &self.shards {
            let held = gauge_value(shard.net.read_buffer_bytes);
            read_buffers.gauge(&shard_label(shard), held)?;
        }
        Ok(())
    }

    /// Connection limits (`connection_limits`): refusals by listener and
    /// reason, the creation rate's accept throttle, accepts that waited
    /// for a `max.connections` slot.
    fn encode_connection_limits(
        &self,
        encoder: &mut DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        let listener_labels = |shard: &ShardSnapshot, listener: &str| {
            let mut labels = shard_label(shard);
            labels.push(("listener", listener.to_string()));
            labels
        };
        let mut limited = family(
            encoder,
            "connections_limited",
            "New connections refused by a connection limit, by shard, listener and reason (per_ip: max.connections.per.ip, closed at once; ip_rate: the IP's connection_creation_rate quota, closed after the throttle time; max_connections: the shard's connection bound).",
            None,
            MetricType::Counter,
        )?;
        for shard in &self.shards {
            for (listener, reason, count) in &shard.net.connections_limited {
                let mut labels = listener_labels(shard, listener);
                labels.push(("reason", reason.clone()));
                limited.counter(&labels, *count)?;
            }
        }
        let mut throttle = family(
            encoder,
            "connection_accept_throttle",
            "Time accepting waited for max.connection.creation.rate, by shard and listener.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for shard in &self.shards {
            for (listener, ms) in &shard.net.accept_throttle_ms {
                let seconds = *ms as f64 / 1000.0;
                throttle.counter_f64(&listener_labels(shard, listener), seconds)?;
            }
        }
        let mut blocked = family(
            encoder,
            "connection_accepts_blocked",
            "Accepts that waited for a max.connections slot (until a connection closed), by shard and listener.",
            None,
            MetricType::Counter,
        )?;
        for shard in &self.shards {
            for (listener, count) in &shard.net.accepts_blocked {
                blocked.counter(&listener_labels(shard, listener), *count)?;
            }
        }
        Ok(())
    }

    fn encode_shards(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges: [Described<ShardSnapshot, u64>; 2] = [
            (
                "shard_requests_running",
                "Requests between dispatch and response on the shard now.",
                |s| s.requests_running,
            ),
            (
                "shard_mesh_jobs_running",
                "Jobs sent by other shards that run on the shard now (its cross-core backlog).",
                |s| s.mesh_jobs_running,
            ),
        ];
        for (name, help, value) in gauges {
            let mut metric = family(encoder, name, help, None, MetricType::Gauge)?;
            for shard in &self.shards {
                metric.gauge(&shard_label(shard), gauge_value(value(shard)))?;
            }
        }
        let mut busy = family(
            encoder,
            "shard_busy",
            "Time the shard's executor spent running tasks.",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        for shard in &self.shards {
            busy.counter_f64(&shard_label(shard), shard.busy.as_secs_f64())?;
        }
        let counters: [Described<ShardSnapshot, u64>; 2] = [
            (
                "shard_tasks_executed",
                "Tasks the shard's executor has run.",
                |s| s.tasks_executed,
            ),
            (
                "flush_cycles",
                "Partition flushes completed (group commit: one flush covers every append before it), by shard.",
                |s| s.flush_cycles,
            ),
        ];
        for (name, help, value) in counters {
            let mut metric = family(encoder, name, help, None, MetricType::Counter)?;
            for shard in &self.shards {
                metric.counter(&shard_label(shard), value(shard))?;
            }
        }
        let file_gauges: [Described<ShardSnapshot, u64>; 2] = [
            (
                "log_open_files",
                "Segment and index files the shard holds open now (idle ones are closed to stay within its budget).",
                |s| s.open_files.open as u64,
            ),
            (
                "log_open_files_budget",
                "Files the shard keeps open at most while they are idle (rafka.log.open.files.max / shards).",
                |s| s.open_files.capacity as u64,
            ),
        ];
        for (name, help, value) in file_gauges {
            let mut metric = family(encoder, name, help, None, MetricType::Gauge)?;
            for shard in &self.shards {
                metric.gauge(&shard_label(shard), gauge_value(value(shard)))?;
            }
        }
        let file_counters: [Described<ShardSnapshot, u64>; 3] = [
            (
                "log_file_evictions",
                "Idle files the shard closed to stay within its open-file budget.",
                |s| s.open_files.evictions,
            ),
            (
                "log_file_reopens",
                "Closed files the shard opened again on use.",
                |s| s.open_files.reopens,
            ),
            (
                "log_file_budget_overflows",
                "Opens that found every open file busy and went over the budget.",
                |s| s.open_files.overflows,
            ),
        ];
        for (name, help, value) in file_counters {
            let mut metric = family(encoder, name, help, None, MetricType::Counter)?;
            for shard in &self.shards {
                metric.counter(&shard_label(shard), value(shard))?;
            }
        }
        let mut calls = family(
            encoder,
            "mesh_calls",
            "Calls from the shard to a shard's context (target: local ran on the shard itself, remote crossed to another core), by shard.",
            None,
            MetricType::Counter,
        )?;
        for shard in &self.shards {
            for (target, value) in [
                ("local", shard.mesh.local_calls),
                ("remote", shard.mesh.remote_calls),
            ] {
                let mut labels = shard_label(shard);
                labels.push(("target", target.to_owned()));
                calls.counter(&labels, value)?;
            }
        }
        let mut transit = family(
            encoder,
            "mesh_transit_duration",
            "Time a cross-core message spent from its send to its pickup on the receiving shard (queue and wake-up), by receiving shard and direction (job: a call arriving, reply: an answer coming back).",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for shard in &self.shards {
            for (direction, histogram) in [
                ("job", &shard.mesh.job_transit),
                ("reply", &shard.mesh.reply_transit),
            ] {
                let mut labels = shard_label(shard);
                labels.push(("direction", direction.to_owned()));
                transit.histogram(&labels, histogram)?;
            }
        }
        let mut fsync = family(
            encoder,
            "fsync_duration",
            "Time to flush one partition (group commit: fdatasync of its dirty segment files), by shard.",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for shard in &self.shards {
            fsync.histogram(&shard_label(shard), &shard.fsync_latency)?;
        }
        Ok(())
    }

    fn encode_log_health(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: [Described<LogHealthSnapshot, u64>; 7] = [
            (
                "log_recovery_truncations",
                "Segments recovery cut short at a torn or invalid batch, by shard.",
                |h| h.recovery_truncations,
            ),
            (
                "log_recovery_truncated_bytes",
                "Bytes recovery cut off (torn tails, invalid batches and the segments deleted after them), by shard.",
                |h| h.recovery_truncated_bytes,
            ),
            (
                "log_recovery_index_rebuilds",
                "Segment indexes recovery found missing or invalid and rebuilt, by shard.",
                |h| h.recovery_index_rebuilds,
            ),
            (
                "log_scrub_bytes",
                "Bytes of closed segments the scrubber verified, by shard.",
                |h| h.scrub_bytes,
            ),
            (
                "log_scrub_damaged_ranges",
                "Damaged batch ranges the scrubber found and took out of service, by shard.",
                |h| h.scrub_damaged_ranges,
            ),
            (
                "log_scrub_damaged_bytes",
                "Bytes of the damaged ranges the scrubber took out of service, by shard.",
                |h| h.scrub_damaged_bytes,
            ),
            (
                "log_scrub_passes",
                "Scrub passes completed over all of a shard's partitions, by shard.",
                |h| h.scrub_passes,
            ),
        ];
        for (name, help, value) in counters {
            let mut metric = family(encoder, name, help, None, MetricType::Counter)?;
            for shard in &self.shards {
                metric.counter(&shard_label(shard), value(&shard.log_health))?;
            }
        }
        Ok(())
    }

    fn encode_quotas(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let labels = |(key, user, client_id): &(&'static str, String, String)| {
            vec![
                ("quota", key.to_string()),
                ("user", user.clone()),
                ("client_id", client_id.clone()),
            ]
        };
        let counters: [Described<QuotaStats, u64>; 2] = [
            (
                "client_quota_throttle_time_ms",
                "Throttle time answered to clients over their quota (ms), by quota sensor (Kafka's quota metric tags: an empty user or client_id is not part of the sensor).",
                |q| q.throttle_time_ms,
            ),
            (
                "client_quota_throttled_requests",
                "Requests answered with a throttle time above zero, by quota sensor.",
                |q| q.throttled,
            ),
        ];
        for (name, help, value) in counters {
            let mut metric = family(encoder, name, help, None, MetricType::Counter)?;
            for (sensor, stats) in &self.quotas {
                metric.counter(&labels(sensor), value(stats))?;
            }
        }
        let mut recorded = family(
            encoder,
            "client_quota_value",
            "Value recorded against the quota, by quota sensor: bytes for producer_byte_rate and consumer_byte_rate (a throttled fetch's bytes are taken back), request time in percent-seconds for request_percentage.",
            None,
            MetricType::Counter,
        )?;
        for (sensor, stats) in &self.quotas {
            recorded.counter_f64(&labels(sensor), stats.value.max(0.0))?;
        }
        Ok(())
    }

    fn encode_transactions(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters: [Described<TxnStats, u64>; 5] = [
            (
                "transactions_committed",
                "Transactions committed (markers written, CompleteCommit durable), by coordinator shard.",
                |t| t.committed,
            ),
            (
                "transactions_aborted",
                "Transactions aborted (by the client, a timeout or a fence), by coordinator shard.",
                |t| t.aborted,
            ),
            (
                "transactions_timed_out",
                "Open transactions aborted by transaction.timeout.ms, by coordinator shard.",
                |t| t.timed_out,
            ),
            (
                "transactional_producers_fenced",
                "Producers fenced by a new InitProducerId of their transactional id, by coordinator shard.",
                |t| t.fenced,
            ),
            (
                "transaction_markers_written",
                "COMMIT/ABORT markers written durably to partitions, by coordinator shard.",
                |t| t.markers_written,
            ),
        ];
        for (name, help, value) in counters {
            let mut metric = family(encoder, name, help, None, MetricType::Counter)?;
            for shard in &self.shards {
                metric.counter(&shard_label(shard), value(&shard.txn))?;
            }
        }
        let mut open = family(
            encoder,
            "transactions_open",
            "Transactions open now (ongoing or writing markers), by coordinator shard.",
            None,
            MetricType::Gauge,
        )?;
        for shard in &self.shards {
            open.gauge(&shard_label(shard), gauge_value(shard.txn.open))?;
        }
        Ok(())
    }

    fn encode_partitions(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauges: [Described<PartitionOffsets, i64>; 7] = [
            (
                "partition_log_start_offset",
                "First offset still in the partition's log.",
                |p| p.log_start_offset,
            ),
            (
                "partition_log_end_offset",
                "Offset the partition's next appended record gets.",
                |p| p.log_end_offset,
            ),
            (
                "partition_high_watermark",
                "Offset below which the partition's records are durable on every in-sync replica and readable.",
                |p| p.high_watermark,
            ),
            (
                "partition_replicas",
                "Replicas of a partition this broker leads (0 on a follower).",
                |p| p.replicas,
            ),
            (
                "partition_in_sync_replicas",
                "In-sync replicas of a partition this broker leads (0 on a follower).",
                |p| p.in_sync_replicas,
            ),
            (
                "partition_under_replicated",
                "1 when a partition this broker leads has replicas out of its ISR.",
                |p| p.under_replicated,
            ),
            (
                "partition_under_min_isr",
                "1 when a partition this broker leads has fewer in-sync replicas than min.insync.replicas.",
                |p| p.under_min_isr,
            ),
        ];
        for (name, help, value) in gauges {
            let mut metric = family(encoder, name, help, None, MetricType::Gauge)?;
            for shard in &self.shards {
                for partition in &shard.partitions {
                    let labels = vec![
                        ("topic", partition.topic.clone()),
                        ("partition", partition.partition.to_string()),
                        ("shard", shard.shard.to_string()),
                    ];
                    metric.gauge(&labels, value(partition))?;
                }
            }
        }
        Ok(())
    }

    /// Every group's committed offsets and their lag: the partition's high
    /// watermark (on its owner shard) minus the committed offset (on the
    /// group's coordinator shard), joined here because the two usually
    /// live on different shards. A partition this broker does not host (a
    /// deleted topic) has a committed offset and no lag; a commit past the
    /// high watermark (a truncated log) reads as lag 0.
    fn encode_group_lag(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let high_watermarks: BTreeMap<(&str, i32), i64> = self
            .shards
            .iter()
            .flat_map(|shard| &shard.partitions)
            .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
            .collect();
        let offsets = || self.shards.iter().flat_map(|shard| &shard.group_offsets);
        let labels = |o: &GroupOffset| {
            vec![
                ("group", o.group.clone()),
                ("topic", o.topic.clone()),
                ("partition", o.partition.to_string()),
            ]
        };
        let mut committed = family(
            encoder,
            "consumer_group_committed_offset",
            "The offset a consumer group committed for a partition (the next record it will read).",
            None,
            MetricType::Gauge,
        )?;
        for offset in offsets() {
            committed.gauge(&labels(offset), offset.committed_offset)?;
        }
        let mut lag = family(
            encoder,
            "consumer_group_lag",
            "Records a consumer group has yet to read in a partition: its high watermark minus the group's committed offset, at scrape time.",
            None,
            MetricType::Gauge,
        )?;
        for offset in offsets() {
            let key = (offset.topic.as_str(), offset.partition);
            if let Some(&high_watermark) = high_watermarks.get(&key) {
                let behind = high_watermark.saturating_sub(offset.committed_offset);
                lag.gauge(&labels(offset), behind.max(0))?;
            }
        }
        Ok(())
    }

    /// The data dir's free space as shard 0's monitor last measured it (the
    /// only shard that measures), whether produce is refused, and the
    /// refusals summed over shards.
    fn encode_disk(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(measured) = self.shards.iter().find(|s| s.disk.free_bytes.is_some()) else {
            return Ok(());
        };
        let disk = &measured.disk;
        let labels = vec![("dir", disk.dir.clone())];
        let gauges = [
            (
                "log_dir_free",
                "Bytes free for writing in the data dir's filesystem, as last measured.",
                disk.free_bytes,
            ),
            (
                "log_dir_min_free",
                "The free-space threshold (rafka.log.dir.min.free.bytes) below which produce is refused; 0 refuses nothing.",
                disk.min_free_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            let mut metric = family(encoder, name, help, Some(&Unit::Bytes), MetricType::Gauge)?;
            metric.gauge(&labels, gauge_value(value.unwrap_or(0)))?;
        }
        let mut refusing = family(
            encoder,
            "log_dir_produce_refused",
            "1 while produce to user topics is refused because the data dir is below its free-space threshold, else 0.",
            None,
            MetricType::Gauge,
        )?;
        refusing.gauge(&labels, i64::from(disk.refusing_produce))?;
        let refused = self
            .shards
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.disk.produce_refused));
        let mut counter = family(
            encoder,
            "log_dir_produce_refusals",
            "Partition appends refused because the data dir was below its free-space threshold.",
            None,
            MetricType::Counter,
        )?;
        counter.counter(&labels, refused)
    }
}

impl BrokerSnapshot {
    /// The metadata quorum, from the shard that runs it (nothing on a
    /// single node).
    fn encode_quorum(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(quorum) = self.shards.iter().find_map(|s| s.quorum.as_ref()) else {
            return Ok(());
        };
        let none: Labels = Vec::new();
        let gauges: [(&str, &str, i64); 6] = [
            (
                "quorum_leader",
                "The metadata quorum's leader (the active controller) as this node knows it; -1 for none.",
                i64::from(quorum.leader_id),
            ),
            (
                "quorum_is_leader",
                "1 while this node leads the metadata quorum, else 0.",
                i64::from(quorum.is_leader),
            ),
            ("quorum_term", "The metadata quorum's term (Kafka's leader epoch).", gauge_value(quorum.term)),
            (
                "quorum_commit_index",
                "The last metadata log index this node knows committed (the high watermark).",
                gauge_value(quorum.commit_index),
            ),
            (
                "quorum_applied_index",
                "The last metadata log index this node applied to its image.",
                gauge_value(quorum.applied_index),
            ),
            (
                "quorum_last_index",
                "The last index in this node's metadata log.",
                gauge_value(quorum.last_index),
            ),
        ];
        for (name, help, value) in gauges {
            family(encoder, name, help, None, MetricType::Gauge)?.gauge(&none, value)?;
        }
        let mut proposals = family(
            encoder,
            "quorum_proposals",
            "This node's metadata proposals by outcome: applied, refused (a concurrent change won), no_leader, timed_out.",
            None,
            MetricType::Counter,
        )?;
        let counts = quorum.proposals;
        for (outcome, value) in [
            ("applied", counts.applied),
            ("refused", counts.refused),
            ("no_leader", counts.no_leader),
            ("timed_out", counts.timed_out),
        ] {
            proposals.counter(&vec![("outcome", outcome.to_string())], value)?;
        }
        let mut brokers = family(
            encoder,
            "cluster_brokers",
            "Registered brokers by state: live, or fenced by the active controller.",
            None,
            MetricType::Gauge,
        )?;
        brokers.gauge(
            &vec![("state", "live".to_string())],
            gauge_value(quorum.brokers_live),
        )?;
        brokers.gauge(
            &vec![("state", "fenced".to_string())],
            gauge_value(quorum.brokers_fenced),
        )
    }
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use rafka_shard::histogram::LatencyHistogram;

    use super::*;

    fn shard(id: u32, produce_requests: u64, topic_bytes_in: u64) -> ShardSnapshot {
        let latency = LatencyHistogram::new();
        latency.record_us(80);
        ShardSnapshot {
            shard: id,
            apis: vec![ApiTraffic {
                api_key: 0,
                requests: produce_requests,
                errors: 1,
                latency: latency.snapshot(),
            }],
            topics: BTreeMap::from([(
                "t".to_string(),
                TopicTraffic {
                    bytes_in: topic_bytes_in,
                    records_in: 2,
                    bytes_out: 7,
                    records_out: 3,
                },
            )]),
            connections_open: 3,
            net: NetMetricsSnapshot {
                accept_failures: 4,
                connections_limited: vec![("PLAINTEXT".into(), "per_ip".into(), 2)],
                accept_throttle_ms: vec![("PLAINTEXT".into(), 1500)],
                accepts_blocked: vec![("PLAINTEXT".into(), 1)],
                read_buffer_bytes: 16_384,
                ..NetMetricsSnapshot::default()
            },
            log_health: LogHealthSnapshot {
                recovery_truncations: 1,
                recovery_truncated_bytes: 61,
                scrub_damaged_ranges: u64::from(id),
                ..LogHealthSnapshot::default()
            },
            partitions: vec![PartitionOffsets {
                topic: "t".to_string(),
                partition: i32::try_from(id).unwrap_or(0),
                log_start_offset: 0,
                log_end_offset: 10,
                high_watermark: 9,
                replicas: 3,
                in_sync_replicas: 2,
                under_replicated: 1,
                under_min_isr: 0,
            }],
            disk: DiskSnapshot {
                dir: "/data".to_string(),
                free_bytes: (id == 0).then_some(1 << 20),
                min_free_bytes: (id == 0).then_some(4 << 20),
                refusing_produce: true,
                produce_refused: u64::from(id) + 2,
            },
            ..ShardSnapshot::default()
        }
    }

    #[test]
    fn merge_sums_apis_and_topics_and_keeps_shards_in_order() {
        let merged = BrokerSnapshot::merge(vec![shard(1, 5, 100), shard(0, 2, 30)]);
        let produce = merged.apis[&0];
        assert_eq!((produce.requests, produce.errors), (7, 2));
        assert_eq!(produce.latency.count(), 2);
        assert_eq!(
            produce.latency.buckets[3], 2,
            "80 µs is in the 100 µs bucket"
        );
        let t = merged.topics["t"];
        assert_eq!((t.bytes_in, t.records_in), (130, 4));
        assert_eq!((t.bytes_out, t.records_out), (14, 6));
        let ids: Vec<u32> = merged.shards.iter().map(|s| s.shard).collect();
        assert_eq!(ids, vec![0, 1]);
    }

    #[test]
    fn encodes_the_openmetrics_text_with_labels_and_cumulative_buckets() {
        let text = BrokerSnapshot::merge(vec![shard(0, 2, 30), shard(1, 5, 100)])
            .encode()
            .expect("encode");
        let expected_lines = [
            "# HELP rafka_requests Requests served, by Kafka API.",
            "# TYPE rafka_requests counter",
            "rafka_requests_total{api=\"Produce\"} 7",
            "rafka_request_errors_total{api=\"Produce\"} 2",
            "rafka_request_duration_seconds_count{api=\"Produce\"} 2",
            "rafka_request_duration_seconds_bucket{le=\"0.00005\",api=\"Produce\"} 0",
            "rafka_request_duration_seconds_bucket{le=\"0.0001\",api=\"Produce\"} 2",
            "rafka_request_duration_seconds_bucket{le=\"+Inf\",api=\"Produce\"} 2",
            "rafka_topic_bytes_in_total{topic=\"t\"} 130",
            "rafka_topic_records_in_total{topic=\"t\"} 4",
            "rafka_topic_bytes_out_total{topic=\"t\"} 14",
            "rafka_topic_records_out_total{topic=\"t\"} 6",
            "rafka_connections_open{shard=\"0\"} 3",
            "rafka_connections_open{shard=\"1\"} 3",
            "rafka_accept_failures_total{shard=\"0\"} 4",
            "rafka_connections_limited_total{shard=\"0\",listener=\"PLAINTEXT\",reason=\"per_ip\"} 2",
            "rafka_connection_accept_throttle_seconds_total{shard=\"0\",listener=\"PLAINTEXT\"} 1.5",
            "rafka_connection_accepts_blocked_total{shard=\"0\",listener=\"PLAINTEXT\"} 1",
            "rafka_connection_read_buffers_bytes{shard=\"1\"} 16384",
            "rafka_log_recovery_truncations_total{shard=\"0\"} 1",
            "rafka_log_recovery_truncated_bytes_total{shard=\"1\"} 61",
            "rafka_log_scrub_damaged_ranges_total{shard=\"1\"} 1",
            "rafka_log_scrub_damaged_ranges_total{shard=\"0\"} 0",
            "rafka_partition_log_end_offset{topic=\"t\",partition=\"1\",shard=\"1\"} 10",
            "rafka_partition_high_watermark{topic=\"t\",partition=\"0\",shard=\"0\"} 9",
            "rafka_partition_in_sync_replicas{topic=\"t\",partition=\"0\",shard=\"0\"} 2",
            "rafka_partition_under_replicated{topic=\"t\",partition=\"1\",shard=\"1\"} 1",
            "rafka_partition_under_min_isr{topic=\"t\",partition=\"0\",shard=\"0\"} 0",
            "rafka_log_dir_free_bytes{dir=\"/data\"} 1048576",
            "rafka_log_dir_min_free_bytes{dir=\"/data\"} 4194304",
            "rafka_log_dir_produce_refused{dir=\"/data\"} 1",
            "rafka_log_dir_produce_refusals_total{dir=\"/data\"} 5",
            "# EOF",
        ];
        let lines: Vec<&str> = text.lines().collect();
        for expected in expected_lines {
            assert!(lines.contains(&expected), "{expected} in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn quota_sensors_are_labelled_and_summed_over_shards() {
        use rafka_core::quota::{QuotaId, QuotaKey};
        let entry = |key, throttle_time_ms, value| QuotaStatsEntry {
            key,
            id: QuotaId {
                user: String::new(),
                client_id: "c".to_string(),
            },
            stats: QuotaStats {
                throttle_time_ms,
                throttled: 1,
                value,
            },
        };
        let mut zero = shard(0, 1, 1);
        zero.quotas = vec![entry(QuotaKey::ProducerByteRate, 2153, 12153.0)];
        let mut one = shard(1, 1, 1);
        one.quotas = vec![
            entry(QuotaKey::ProducerByteRate, 100, 47.0),
            entry(QuotaKey::RequestPercentage, 7, 0.5),
        ];
        let text = BrokerSnapshot::merge(vec![zero, one])
            .encode()
            .expect("encode");
        for expected in [
            "rafka_client_quota_throttle_time_ms_total{quota=\"producer_byte_rate\",user=\"\",client_id=\"c\"} 2253",
            "rafka_client_quota_throttled_requests_total{quota=\"producer_byte_rate\",user=\"\",client_id=\"c\"} 2",
            "rafka_client_quota_value_total{quota=\"producer_byte_rate\",user=\"\",client_id=\"c\"} 12200.0",
            "rafka_client_quota_value_total{quota=\"request_percentage\",user=\"\",client_id=\"c\"} 0.5",
        ] {
            assert!(text.lines().any(|l| l == expected), "{expected} in:\n{text}");
        }
    }

    #[test]
    fn group_lag_joins_committed_offsets_with_high_watermarks_across_shards() {
        let commit = |group: &str, topic: &str, partition, committed_offset| GroupOffset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
            committed_offset,
        };
        // t/0 (high watermark 9) lives on shard 0, t/1 on shard 1; the
        // group is coordinated by shard 1.
        let zero = shard(0, 1, 1);
        let mut one = shard(1, 1, 1);
        one.group_offsets = vec![
            commit("billing", "t", 0, 4),
            commit("billing", "t", 1, 9),
            commit("billing", "gone", 0, 3),
            commit("ahead", "t", 0, 12),
        ];
        let text = BrokerSnapshot::merge(vec![zero, one])
            .encode()
            .expect("encode");
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            "# TYPE rafka_consumer_group_lag gauge",
            "rafka_consumer_group_lag{group=\"billing\",topic=\"t\",partition=\"0\"} 5",
            "rafka_consumer_group_lag{group=\"billing\",topic=\"t\",partition=\"1\"} 0",
            "rafka_consumer_group_lag{group=\"ahead\",topic=\"t\",partition=\"0\"} 0",
            "rafka_consumer_group_committed_offset{group=\"billing\",topic=\"t\",partition=\"0\"} 4",
            "rafka_consumer_group_committed_offset{group=\"billing\",topic=\"gone\",partition=\"0\"} 3",
        ] {
            assert!(lines.contains(&expected), "{expected} in:\n{text}");
        }
        let lag_series = lines
            .iter()
            .filter(|l| l.starts_with("rafka_consumer_group_lag{"))
            .count();
        assert_eq!(lag_series, 3, "no lag for a partition not hosted:\n{text}");
    }

    #[test]
    fn unknown_api_keys_are_named_by_number() {
        assert_eq!(api_name(0), "Produce");
        assert_eq!(api_name(18), "ApiVersions");
        assert_eq!(api_name(-7), "-7");
    }
}
