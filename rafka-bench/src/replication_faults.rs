//! The two fault measurements of `rafka-bench replication`, both on
//! `rf3` partition 0:
//!
//! - Failover: a producer thread sends acks=all batches one at a time,
//!   following the leader (`PartitionProducer`: Metadata again from a
//!   live node after any retriable refusal or lost connection, every
//!   [`RETRY_POLL`]). Once the current leader has acknowledged one, it is
//!   killed (SIGKILL); from the moment its process is gone, the round
//!   times (a) until the producer's Metadata names another leader and (b)
//!   until that leader acknowledges an acks=all batch. The killed node is
//!   restarted and the round ends when Metadata shows it in the ISR again
//!   (timed from the restart's launch: a node prints its ready line only
//!   once registered, and copies before that). Kills that took the active
//!   controller with the leader (combined nodes) are also counted apart:
//!   a controller election comes before the fencing.
//! - Catch-up: a follower is killed, `catch_up_bytes` of batches go to the
//!   leader (acks=1, pipelined: the fill's own speed is not the figure),
//!   the follower is restarted and its `rafka_partition_log_end_offset`
//!   polled every [`CATCH_UP_POLL`] from the launch on: the copy rate is
//!   timed from the first records it copied to its log end at the
//!   leader's.
//!
//! A leader's death is fenced by the controller only after
//! `broker.session.timeout.ms` without heartbeats, so the failover time is
//! that timeout plus the election, the new leader's first fetch round
//! and the rest; the summary prints the settings next to the figures.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use rafka_proto::error::ErrorCode;
use rafka_proto::record::Compression;

use crate::admin::topic_name;
use crate::client::Wire;
use crate::cluster::{ClusterError, Summary};
use crate::cluster_nodes::{Cluster, Kill};
use crate::produce::{now_ms, PRODUCE_TIMEOUT_MS, PRODUCE_VERSION};
use crate::replication::{
    lookup_of, Measured, ReplicationError, ACKS_ALL, DEADLINE, RF3_TOPIC, SETTLE_POLL,
};
use crate::replication_client::{
    log_end_offset, scrape_metrics, Attempt, Lookup, PartitionProducer, PartitionView, Retry,
};
use crate::report::latency_histogram;
use crate::workload::RecordFactory;

/// The partition both measurements use.
const PARTITION: i32 = 0;
/// Between a refused (or lost) produce and the next attempt, which reads
/// Metadata first: the resolution of the failover figures.
const RETRY_POLL: Duration = Duration::from_millis(2);
/// Between scrapes of the restarted follower's /metrics.
const CATCH_UP_POLL: Duration = Duration::from_millis(5);
/// Produce requests of the catch-up fill in flight at once.
const FILL_INFLIGHT_MAX: usize = 8;
const MB: f64 = 1e6;

/// What the fault measurements send.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    pub batch_records: u64,
    pub record_bytes: usize,
    /// broker.session.timeout.ms: a failover takes at least this.
    pub session_timeout: Duration,
}

/// `kills` rounds; rows `failover-leader`, `failover-produce` (and it
/// split by whether the leader was the active controller too),
/// `failover-rejoin`.
pub fn failover(
    cluster: &Cluster,
    plan: &FaultPlan,
    kills: u32,
) -> Result<Vec<Measured>, ReplicationError> {
    let mut tally = FailoverTally::new();
    let mut lookup = lookup_of(cluster);
    for round in 1..=kills {
        let before = await_in_sync(&mut lookup, None)?;
        let old = before.leader.ok_or_else(|| {
            ReplicationError::Unexpected(format!(
                "{RF3_TOPIC}-{PARTITION} in sync without a leader"
            ))
        })?;
        // Combined nodes: the leader may be the active controller too,
        // and then a controller election comes before the fencing.
        let with_controller = lookup.metadata(&[])?.controller_id.0 == i32::from(old);
        let taken = kill_under_load(cluster, plan, old)?;
        let (seen, acked) = (taken.seen - taken.dead_at, taken.acked - taken.dead_at);
        let launched = Instant::now();
        cluster.restart(old)?;
        let ready = launched.elapsed();
        let after = await_in_sync(&mut lookup, Some(old))?;
        let rejoined = launched.elapsed();
        tally.record(seen, acked, rejoined, with_controller);
        let also = if with_controller {
            " (the active controller too)"
        } else {
            ""
        };
        eprintln!(
            "kill {round}/{kills}: leader {old}{also} killed; Metadata names {} after {:.0} ms, \
             acks=all acknowledged by it after {:.0} ms (retries since the kill: {}); \
             node {old} restarted: ready line after {:.0} ms, back in the ISR {:?} after {:.0} ms",
            taken.leader,
            ms(seen),
            ms(acked),
            taken.retries,
            ms(ready),
            after.isr,
            ms(rejoined),
        );
    }
    Ok(tally.rows())
}

/// The failover rounds' times, in µs.
struct FailoverTally {
    leader_us: Histogram<u64>,
    produce_us: Histogram<u64>,
    /// `produce_us` of the kills that took the active controller too, and
    /// of the others.
    with_controller_us: Histogram<u64>,
    leader_only_us: Histogram<u64>,
    rejoin_us: Histogram<u64>,
}

impl FailoverTally {
    fn new() -> FailoverTally {
        FailoverTally {
            leader_us: latency_histogram(),
            produce_us: latency_histogram(),
            with_controller_us: latency_histogram(),
            leader_only_us: latency_histogram(),
            rejoin_us: latency_histogram(),
        }
    }

    fn record(&mut self, seen: Duration, acked: Duration, rejoined: Duration, controller: bool) {
        self.leader_us.saturating_record(micros(seen));
        self.produce_us.saturating_record(micros(acked));
        let split = if controller {
            &mut self.with_controller_us
        } else {
            &mut self.leader_only_us
        };
        split.saturating_record(micros(acked));
        self.rejoin_us.saturating_record(micros(rejoined));
    }

    fn rows(&self) -> Vec<Measured> {
        let row = |name: &str, what: &str, us: &Histogram<u64>| {
            Measured::plain(Summary::new(name.into(), what.into(), us, None))
        };
        vec![
            row(
                "failover-leader",
                "leader of rf3-0 killed -> the producer's Metadata names a new leader",
                &self.leader_us,
            ),
            row(
                "failover-produce",
                "leader of rf3-0 killed -> first acks=all acknowledged by the new leader",
                &self.produce_us,
            ),
            row(
                "failover-produce-leader-only",
                "  of which the killed leader was not the active controller",
                &self.leader_only_us,
            ),
            row(
                "failover-produce-with-controller",
                "  of which the killed leader was the active controller too",
                &self.with_controller_us,
            ),
            row(
                "failover-rejoin",
                "killed leader's restart launched -> back in the ISR",
                &self.rejoin_us,
            ),
        ]
    }
}

/// What one kill took.
#[derive(Debug)]
struct Takeover {
    dead_at: Instant,
    /// The producer's Metadata first named `leader`.
    seen: Instant,
    /// `leader` acknowledged the first acks=all batch.
    acked: Instant,
    leader: u16,
    retries: Retries,
}

/// Why the failover producer retried, counted.
#[derive(Debug, Default)]
struct Retries(BTreeMap<String, u64>);

impl Retries {
    fn count(&mut self, why: Retry) {
        let key = match why {
            Retry::NoLeader => "no leader".to_owned(),
            Retry::Connection => "connection".to_owned(),
            Retry::Code(code) => code.to_string(),
        };
        *self.0.entry(key).or_default() += 1;
    }
}

impl fmt::Display for Retries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let counts: Vec<String> = self.0.iter().map(|(why, n)| format!("{n} {why}")).collect();
        f.write_str(&counts.join(", "))
    }
}

/// Starts the producer, kills `old` after its first acknowledgement,
/// waits for the first acknowledgement by another leader.
fn kill_under_load(
    cluster: &Cluster,
    plan: &FaultPlan,
    old: u16,
) -> Result<Takeover, ReplicationError> {
    let stop = &AtomicBool::new(false);
    let deadline_at = Instant::now() + DEADLINE + plan.session_timeout;
    let (first_ack, first_ack_seen) = channel();
    std::thread::scope(|s| {
        // The sender moves in: a producer that fails drops it, which ends
        // the wait for its first acknowledgement at once.
        let producer = s.spawn(move || {
            let mut lookup = lookup_of(cluster);
            produce_across(plan, &mut lookup, old, &first_ack, stop, deadline_at)
        });
        let killed = kill_after_first_ack(cluster, old, &first_ack_seen);
        if killed.is_err() {
            stop.store(true, Ordering::Release);
        }
        let produced = producer.join().unwrap_or(Err(ReplicationError::Thread));
        let (kill, dead_at) = match killed {
            Ok(killed) => killed,
            // The producer's own failure, if it had one, is the cause.
            Err(err) => {
                return Err(match produced {
                    Err(cause) if !matches!(cause, ReplicationError::Stopped) => cause,
                    _ => err,
                })
            }
        };
        kill.finish()?;
        let mut taken = produced?;
        taken.dead_at = dead_at;
        // An answer read between the SIGKILL and the death seen 200 µs
        // later would make a negative time: count it as zero.
        taken.seen = taken.seen.max(dead_at);
        taken.acked = taken.acked.max(dead_at);
        Ok(taken)
    })
}

fn kill_after_first_ack(
    cluster: &Cluster,
    old: u16,
    first_ack: &Receiver<()>,
) -> Result<(Kill, Instant), ReplicationError> {
    // The producer reports its failure through its result; here it only
    // ends the wait.
    first_ack
        .recv_timeout(DEADLINE)
        .map_err(|_| ReplicationError::Deadline {
            what: format!("the producer's first batch acknowledged by leader {old}"),
        })?;
    let kill = cluster.kill(old)?;
    let dead_at = kill.await_death()?;
    Ok((kill, dead_at))
}

/// acks=all batches to rf3-0 one at a time until a leader other than
/// `old` acknowledges one; tells `first_ack` when `old` has.
fn produce_across(
    plan: &FaultPlan,
    lookup: &mut Lookup,
    old: u16,
    first_ack: &Sender<()>,
    stop: &AtomicBool,
    deadline_at: Instant,
) -> Result<Takeover, ReplicationError> {
    let mut producer = PartitionProducer::new(
        RF3_TOPIC,
        PARTITION,
        ACKS_ALL,
        plan.batch_records,
        plan.record_bytes,
    );
    let (mut acked_by_old, mut retries, mut seen) = (false, Retries::default(), None);
    loop {
        if stop.load(Ordering::Acquire) {
            return Err(ReplicationError::Stopped);
        }
        let attempt = producer.send(lookup)?;
        let now = Instant::now();
        if seen.is_none() && producer.leader().is_some_and(|l| l != old) {
            seen = Some(now);
        }
        match attempt {
            Attempt::Acked { leader } if leader == old => {
                if !acked_by_old {
                    acked_by_old = true;
                    // Count what the failover made the producer retry,
                    // not its start.
                    retries = Retries::default();
                    // The receiver is gone only if the round already
                    // failed, which it reports itself.
                    let _ = first_ack.send(());
                }
            }
            Attempt::Acked { leader } if acked_by_old => {
                return Ok(Takeover {
                    dead_at: now,
                    seen: seen.unwrap_or(now),
                    acked: now,
                    leader,
                    retries,
                });
            }
            Attempt::Acked { leader } => {
                return Err(ReplicationError::Unexpected(format!(
                    "{RF3_TOPIC}-{PARTITION} moved from leader {old} to {leader} before the kill"
                )));
            }
            Attempt::Retry(why) => {
                retries.count(why);
                // A client's retry backoff: nothing to wait on but time.
                std::thread::sleep(RETRY_POLL);
            }
        }
        if now >= deadline_at {
            return Err(ReplicationError::Deadline {
                what: format!(
                    "acks=all on {RF3_TOPIC}-{PARTITION} acknowledged by a leader other than {old}"
                ),
            });
        }
    }
}

/// Polls Metadata until rf3-0 has a leader and every replica in its ISR
/// (and, when given, `member` among them).
fn await_in_sync(
    lookup: &mut Lookup,
    member: Option<u16>,
) -> Result<PartitionView, ReplicationError> {
    let started = Instant::now();
    loop {
        if let Ok(Some(view)) = lookup.partition(RF3_TOPIC, PARTITION) {
            let has_member = member.is_none_or(|m| view.isr.contains(&i32::from(m)));
            if view.fully_in_sync() && has_member {
                return Ok(view);
            }
        }
        if started.elapsed() >= DEADLINE {
            return Err(ReplicationError::Deadline {
                what: format!("{RF3_TOPIC}-{PARTITION} with every replica in its ISR"),
            });
        }
        std::thread::sleep(SETTLE_POLL);
    }
}

/// Rows `catchup` (from the first record the restarted follower copied
/// to its last) and `catchup-from-launch` (from the restart's launch),
/// rates in MB/s of batch bytes. The follower fetches as soon as its
/// metadata image has the partition, before its ready line (which waits
/// for its registration), so its /metrics is polled from the launch on.
pub fn catch_up(
    cluster: &Cluster,
    plan: &FaultPlan,
    bytes: u64,
) -> Result<Vec<Measured>, ReplicationError> {
    let mut lookup = lookup_of(cluster);
    let view = await_in_sync(&mut lookup, None)?;
    let leader = view.leader.ok_or_else(|| {
        ReplicationError::Unexpected(format!("{RF3_TOPIC}-{PARTITION} in sync without a leader"))
    })?;
    let follower = view
        .replicas
        .iter()
        .filter_map(|r| u16::try_from(*r).ok())
        .find(|r| *r != leader)
        .ok_or_else(|| {
            ReplicationError::Unexpected(format!("{RF3_TOPIC}-{PARTITION}: no follower"))
        })?;
    let (follower_end, _) = await_log_end(cluster, follower, |_| true)?;
    let kill = cluster.kill(follower)?;
    kill.await_death()?;
    kill.finish()?;
    let filled = fill(&cluster.addr(leader), leader, plan, bytes)?;
    let (leader_end, _) = await_log_end(cluster, leader, |_| true)?;
    let launched = Instant::now();
    let (copy, ready) = std::thread::scope(|s| {
        let restart = s.spawn(|| cluster.restart(follower).map(|()| Instant::now()));
        let copy = watch_copy(cluster, follower, follower_end, leader_end);
        let ready = restart.join().unwrap_or(Err(ClusterError::Thread))?;
        Ok::<_, ReplicationError>((copy?, ready))
    })?;
    let behind = Behind {
        bytes: filled.bytes,
        records: leader_end - follower_end,
    };
    eprintln!(
        "catch-up: follower {follower} of {RF3_TOPIC}-{PARTITION} (leader {leader}) killed at \
         offset {follower_end}; {:.1} MB in {} batches to the leader (acks=1) in {:.1} s; \
         restarted: first copied records seen (log end {}) after {:.0} ms, ready line after \
         {:.0} ms, log end {leader_end} reached after {:.0} ms",
        filled.bytes as f64 / MB,
        filled.batches,
        filled.seconds,
        copy.first_end,
        ms(copy.first_at - launched),
        ms(ready - launched),
        ms(copy.done_at - launched),
    );
    Ok(vec![
        copy_row(&copy, &behind, leader_end),
        took_row(
            "catchup-from-launch",
            "follower restart launched -> its log end at the leader's",
            copy.done_at - launched,
            &behind,
        ),
    ])
}

/// What the follower had to copy.
#[derive(Debug)]
struct Behind {
    bytes: u64,
    records: i64,
}

/// The restarted follower's progress as its /metrics showed it.
#[derive(Debug)]
struct Copy {
    /// The first log end above the one it was killed at, and when seen.
    first_end: i64,
    first_at: Instant,
    /// When its log end was first seen at the leader's.
    done_at: Instant,
}

fn watch_copy(
    cluster: &Cluster,
    follower: u16,
    killed_at: i64,
    leader_end: i64,
) -> Result<Copy, ReplicationError> {
    let (first_end, first_at) = await_log_end(cluster, follower, |end| end > killed_at)?;
    let done_at = if first_end >= leader_end {
        first_at
    } else {
        await_log_end(cluster, follower, |end| end >= leader_end)?.1
    };
    Ok(Copy {
        first_end,
        first_at,
        done_at,
    })
}

/// The copy rate: the records after the first ones seen copied, over the
/// time they took. Not measured (count 0) when one scrape saw the whole
/// copy: too few bytes behind for the poll.
fn copy_row(copy: &Copy, behind: &Behind, leader_end: i64) -> Measured {
    let name = "catchup";
    let what = "restarted follower's first copied records seen -> its log end at the leader's";
    let left = leader_end - copy.first_end;
    if left <= 0 || behind.records <= 0 {
        let row = Summary::new(name.into(), what.into(), &latency_histogram(), None);
        let human = format!(
            "{what}: not measured, the whole copy fell between two scrapes \
             ({} ms apart): ask for more --catch-up-bytes",
            CATCH_UP_POLL.as_millis()
        );
        return Measured { row, human };
    }
    // Every batch of the fill holds the same records, so bytes follow
    // records.
    let bytes = behind.bytes as f64 * left as f64 / behind.records as f64;
    let part = Behind {
        bytes: bytes as u64,
        records: left,
    };
    took_row(name, what, copy.done_at - copy.first_at, &part)
}

/// One timed sample and the rate of `behind.bytes` over it.
fn took_row(name: &str, what: &str, took: Duration, behind: &Behind) -> Measured {
    let mut took_us = latency_histogram();
    took_us.saturating_record(micros(took));
    let rate = behind.bytes as f64 / MB / took.as_secs_f64().max(1e-6);
    let row = Summary::new(name.to_owned(), what.to_owned(), &took_us, Some(rate));
    let human = format!(
        "{what}: {:.0} ms for {} records, {:.1} MB of batches: {rate:.1} MB/s",
        ms(took),
        behind.records,
        behind.bytes as f64 / MB,
    );
    Measured { row, human }
}

/// Scrapes `node`'s /metrics every [`CATCH_UP_POLL`] until rf3-0's log end
/// satisfies `enough`; returns it and when it was seen. A node not
/// listening yet, or without the partition open yet, is polled again.
fn await_log_end(
    cluster: &Cluster,
    node: u16,
    enough: impl Fn(i64) -> bool,
) -> Result<(i64, Instant), ReplicationError> {
    let addr = cluster.metrics_addr(node);
    let started = Instant::now();
    loop {
        let scraped = scrape_metrics(&addr);
        let end = scraped
            .as_deref()
            .ok()
            .and_then(|text| log_end_offset(text, RF3_TOPIC, PARTITION));
        if let Some(end) = end.filter(|e| enough(*e)) {
            return Ok((end, Instant::now()));
        }
        if started.elapsed() >= DEADLINE {
            return match scraped {
                Err(source) => Err(ReplicationError::Metrics { node, addr, source }),
                Ok(_) => Err(ReplicationError::Deadline {
                    what: format!(
                        "node {node}'s log end of {RF3_TOPIC}-{PARTITION} (last seen {end:?})"
                    ),
                }),
            };
        }
        std::thread::sleep(CATCH_UP_POLL);
    }
}

/// What the fill sent.
#[derive(Debug)]
struct Filled {
    /// Batch bytes, as they are in the leader's log.
    bytes: u64,
    batches: u64,
    seconds: f64,
}

/// acks=1 batches to rf3-0 on `leader`, [`FILL_INFLIGHT_MAX`] in flight,
/// until `bytes` of batches are acknowledged; any refusal is an error.
fn fill(addr: &str, leader: u16, plan: &FaultPlan, bytes: u64) -> Result<Filled, ReplicationError> {
    let client = |source| ReplicationError::Client {
        node: leader,
        source,
    };
    let mut wire = Wire::connect(addr).map_err(client)?;
    let (writer, reader) = wire.halves_mut();
    let mut factory = RecordFactory::new(plan.record_bytes, Compression::None);
    let started = Instant::now();
    let (mut sent_bytes, mut batches) = (0u64, 0u64);
    let mut in_flight = VecDeque::with_capacity(FILL_INFLIGHT_MAX);
    while sent_bytes < bytes || !in_flight.is_empty() {
        let room = in_flight.len() < FILL_INFLIGHT_MAX;
        if sent_bytes < bytes && room {
            let batch = factory.producer_batch(plan.batch_records, now_ms(), None)?;
            sent_bytes += batch.len() as u64;
            let request = ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(PRODUCE_TIMEOUT_MS)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name(RF3_TOPIC))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(PARTITION)
                        .with_records(Some(batch))])]);
            in_flight.push_back(writer.send(&request, PRODUCE_VERSION).map_err(client)?);
            batches += 1;
            continue;
        }
        if let Some(correlation_id) = in_flight.pop_front() {
            let response: ProduceResponse = reader
                .receive(ApiKey::Produce, correlation_id, PRODUCE_VERSION)
                .map_err(client)?;
            let code = response
                .responses
                .iter()
                .flat_map(|t| &t.partition_responses)
                .find(|p| p.index == PARTITION)
                .map_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION, |p| {
                    ErrorCode::from_code(p.error_code)
                });
            if code.is_err() {
                return Err(ReplicationError::Refused {
                    what: format!("Produce {RF3_TOPIC}-{PARTITION} (acks=1 fill)"),
                    node: leader,
                    code,
                });
            }
        }
    }
    Ok(Filled {
        bytes: sent_bytes,
        batches,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn micros(took: Duration) -> u64 {
    u64::try_from(took.as_micros()).unwrap_or(u64::MAX)
}

fn ms(took: Duration) -> f64 {
    took.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_counted_by_reason() {
        let mut retries = Retries::default();
        assert_eq!(retries.to_string(), "none");
        for why in [
            Retry::Connection,
            Retry::Code(ErrorCode::NOT_LEADER_OR_FOLLOWER),
            Retry::Connection,
            Retry::NoLeader,
            Retry::Code(ErrorCode::NOT_ENOUGH_REPLICAS),
        ] {
            retries.count(why);
        }
        assert_eq!(
            retries.to_string(),
            "1 NOT_ENOUGH_REPLICAS, 1 NOT_LEADER_OR_FOLLOWER, 2 connection, 1 no leader"
        );
    }

    #[test]
    fn kills_split_by_whether_they_took_the_controller() {
        let mut tally = FailoverTally::new();
        let ms = Duration::from_millis;
        tally.record(ms(3000), ms(3100), ms(500), false);
        tally.record(ms(4500), ms(4600), ms(700), true);
        tally.record(ms(3050), ms(3200), ms(600), false);
        let rows = tally.rows();
        let counts: Vec<(&str, u64)> = rows
            .iter()
            .map(|m| (m.row.name.as_str(), m.row.count))
            .collect();
        assert_eq!(
            counts,
            [
                ("failover-leader", 3),
                ("failover-produce", 3),
                ("failover-produce-leader-only", 2),
                ("failover-produce-with-controller", 1),
                ("failover-rejoin", 3),
            ]
        );
        // hdrhistogram's buckets at 3 significant digits: within 0.1%.
        let with_controller = &rows[3].row;
        assert!(
            (with_controller.max_ms - 4600.0).abs() <= 4.6,
            "{with_controller:?}"
        );
        assert!(
            (rows[2].row.max_ms - 3200.0).abs() <= 3.2,
            "{:?}",
            rows[2].row
        );
    }

    #[test]
    fn the_copy_rate_counts_the_records_after_the_first_seen() {
        let at = Instant::now();
        let behind = Behind {
            bytes: 100_000_000,
            records: 1000,
        };
        let copy = Copy {
            first_end: 1100,
            first_at: at,
            done_at: at + Duration::from_millis(500),
        };
        // Killed at 1000, leader at 2000: 900 of 1000 records (90 MB) in
        // 0.5 s.
        let measured = copy_row(&copy, &behind, 2000);
        assert_eq!(measured.row.count, 1);
        let rate = measured.row.rate.unwrap();
        assert!((rate - 180.0).abs() < 1e-9, "{rate}");
        // The first scrape already at the leader's end: not measured.
        let whole = Copy {
            first_end: 2000,
            first_at: at,
            done_at: at,
        };
        let measured = copy_row(&whole, &behind, 2000);
        assert_eq!((measured.row.count, measured.row.rate), (0, None));
        assert!(
            measured.human.contains("--catch-up-bytes"),
            "{}",
            measured.human
        );
    }
}
