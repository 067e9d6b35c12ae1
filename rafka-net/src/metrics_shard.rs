//! What one shard records for `/metrics` while it serves: requests, errors
//! and latency per Kafka API, bytes and records in and out per topic, and
//! the requests running now.
//!
//! One [`ShardMetrics`] per executor thread, in a thread local: handlers
//! record with a one-line call wherever they are (on the shard that read
//! the request, or on a partition's owner), and since only that thread's
//! tasks ever touch it, recording is plain `Cell`/`RefCell` work with no
//! atomics or locks. A scrape copies it with [`traffic_snapshot`] on every
//! shard and merges the copies (see `metrics_snapshot`).
//!
//! Lives on: every shard (executor thread), one each.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rafka_shard::histogram::LatencyHistogram;

use crate::metrics::API_KEY_SLOTS;
use crate::metrics_snapshot::{ApiTraffic, TopicTraffic};

thread_local! {
    static SHARD: ShardMetrics = ShardMetrics::default();
}

/// One API's counters on one shard.
#[derive(Debug, Default)]
struct ApiMetrics {
    requests: Cell<u64>,
    errors: Cell<u64>,
    latency: LatencyHistogram,
}

/// The recordings of one shard.
#[derive(Debug)]
struct ShardMetrics {
    apis: [ApiMetrics; API_KEY_SLOTS],
    /// Keyed by topic name; grows by one entry per topic this shard has
    /// moved records of, which the topic count bounds.
    topics: RefCell<HashMap<String, TopicTraffic>>,
    requests_running: Cell<u64>,
    /// glommio hands out executor stats as deltas since the last call, so
    /// the totals accumulate here.
    busy: Cell<Duration>,
    tasks_executed: Cell<u64>,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            apis: std::array::from_fn(|_| ApiMetrics::default()),
            topics: RefCell::new(HashMap::new()),
            requests_running: Cell::new(0),
            busy: Cell::new(Duration::ZERO),
            tasks_executed: Cell::new(0),
        }
    }
}

fn bump(counter: &Cell<u64>, by: u64) {
    counter.set(counter.get().wrapping_add(by));
}

fn with_api(api_key: i16, record: impl FnOnce(&ApiMetrics)) {
    SHARD.with(|shard| {
        if let Some(api) = usize::try_from(api_key)
            .ok()
            .and_then(|index| shard.apis.get(index))
        {
            record(api);
        }
    });
}

fn with_topic(topic: &str, record: impl FnOnce(&mut TopicTraffic)) {
    SHARD.with(|shard| {
        let mut topics = shard.topics.borrow_mut();
        match topics.get_mut(topic) {
            Some(traffic) => record(traffic),
            None => record(topics.entry(topic.to_string()).or_default()),
        }
    });
}

/// A request being served: counted when it starts, timed until
/// [`RequestTimer::finish`]. Dropped unfinished (its connection went away
/// mid-request), it only stops counting as running.
#[derive(Debug)]
pub(crate) struct RequestTimer {
    api_key: i16,
    started: Instant,
}

impl RequestTimer {
    pub(crate) fn start(api_key: i16) -> Self {
        with_api(api_key, |api| bump(&api.requests, 1));
        SHARD.with(|shard| bump(&shard.requests_running, 1));
        RequestTimer {
            api_key,
            started: Instant::now(),
        }
    }

    /// Records the latency, and an error when `failed`.
    pub(crate) fn finish(self, failed: bool) {
        let elapsed = self.started.elapsed();
        with_api(self.api_key, |api| {
            api.latency.record(elapsed);
            if failed {
                bump(&api.errors, 1);
            }
        });
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        SHARD.with(|shard| {
            let running = &shard.requests_running;
            running.set(running.get().saturating_sub(1));
        });
    }
}

/// Counts a request answered with an error code (Kafka's top-level or
/// partition error), which the wrapper in `handlers` cannot see.
pub(crate) fn request_error(api_key: i16) {
    with_api(api_key, |api| bump(&api.errors, 1));
}

/// Counts records appended to `topic` by a produce request.
pub(crate) fn appended(topic: &str, batch_bytes: usize, records: u64) {
    with_topic(topic, |traffic| {
        traffic.bytes_in = traffic.bytes_in.wrapping_add(batch_bytes as u64);
        traffic.records_in = traffic.records_in.wrapping_add(records);
    });
}

/// Counts the record batches of a fetch response: `(topic, batch bytes,
/// offsets delivered)` for every partition in it. Records out are counted
/// as the offsets the consumer advances by, because the batches go out as
/// file regions (zero-copy) and are never read on this path; that is
/// exact except across the gaps compaction leaves.
pub(crate) fn fetched<'a>(reads: impl Iterator<Item = (&'a str, u64, u64)>) {
    for (topic, batch_bytes, records) in reads.filter(|(_, batch_bytes, _)| *batch_bytes > 0) {
        with_topic(topic, |traffic| {
            traffic.bytes_out = traffic.bytes_out.wrapping_add(batch_bytes);
            traffic.records_out = traffic.records_out.wrapping_add(records);
        });
    }
}

/// This shard's traffic so far: per API (keys with requests only, in key
/// order), per topic, and the requests running now.
pub fn traffic_snapshot() -> (Vec<ApiTraffic>, BTreeMap<String, TopicTraffic>, u64) {
    SHARD.with(|shard| {
        let apis = (0_i16..)
            .zip(&shard.apis)
            .filter(|(_, api)| api.requests.get() > 0)
            .map(|(api_key, api)| ApiTraffic {
                api_key,
                requests: api.requests.get(),
                errors: api.errors.get(),
                latency: api.latency.snapshot(),
            })
            .collect();
        let topics = shard
            .topics
            .borrow()
            .iter()
            .map(|(name, traffic)| (name.clone(), *traffic))
            .collect();
        (apis, topics, shard.requests_running.get())
    })
}

/// This executor's busy time (running tasks) and tasks run since start.
/// Must run on a glommio executor.
pub fn executor_totals() -> (Duration, u64) {
    let stats = glommio::executor().executor_stats();
    SHARD.with(|shard| {
        shard.busy.set(shard.busy.get() + stats.executor_runtime());
        bump(&shard.tasks_executed, stats.tasks_executed());
        (shard.busy.get(), shard.tasks_executed.get())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_topics_and_running_requests_are_counted_per_thread() {
        // A fresh thread has a fresh shard's metrics.
        std::thread::spawn(|| {
            let timer = RequestTimer::start(0);
            assert_eq!(traffic_snapshot().2, 1, "one request running");
            timer.finish(false);
            RequestTimer::start(0).finish(true);
            drop(RequestTimer::start(1));
            request_error(1);
            RequestTimer::start(-3).finish(true);
            appended("t", 100, 4);
            appended("t", 50, 1);
            fetched([("t", 300, 4), ("u", 0, 0), ("t", 20, 1)].into_iter());
            let (apis, topics, running) = traffic_snapshot();
            assert_eq!(running, 0);
            assert_eq!(apis.len(), 2);
            assert_eq!(
                (apis[0].api_key, apis[0].requests, apis[0].errors),
                (0, 2, 1)
            );
            assert_eq!(apis[0].latency.count(), 2);
            assert_eq!(
                (apis[1].api_key, apis[1].requests, apis[1].errors),
                (1, 1, 1)
            );
            assert_eq!(
                apis[1].latency.count(),
                0,
                "a dropped request has no latency"
            );
            let t = topics["t"];
            assert_eq!((t.bytes_in, t.records_in), (150, 5));
            assert_eq!((t.bytes_out, t.records_out), (320, 5));
            assert!(!topics.contains_key("u"), "an empty read moves nothing");
        })
        .join()
        .expect("test thread");
    }
}
