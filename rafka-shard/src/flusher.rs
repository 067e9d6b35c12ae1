//! Group commit, pipelined per partition: each partition's flushes run
//! one after another, and every partition runs on its own.
//!
//! Lives on: every shard, one `Flusher`; its task starts flushes, each
//! partition's run is a task of its own.
//!
//! A partition that gets an append is queued once (its dirty flag dedupes)
//! and its flush starts at once (after `rafka.flush.interval.ms`, if set):
//! collect its files, fdatasync without holding the log, publish the high
//! watermark. Appends that arrive while it runs mark it dirty again, and
//! its next flush starts the moment this one ends, covering all of them:
//! one fdatasync covers many produce requests under load, and no append
//! waits for another partition's fdatasync (a shard-wide cycle would make
//! every partition's next flush wait for the slowest one of the last).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use event_listener::Event;

use crate::histogram::{HistogramSnapshot, LatencyHistogram};
use crate::partition::{Partition, PartitionError};
use crate::storage::{BrokerStorage, ShardStorage};

pub struct Flusher<S: ShardStorage = BrokerStorage> {
    queue: RefCell<Vec<Rc<Partition<S>>>>,
    queued: Event,
    /// Extra wait before a cycle, to gather more appends
    /// (`rafka.flush.interval.ms`); zero flushes as soon as work is queued.
    delay: Duration,
    stopped: Cell<bool>,
    /// Partition runs going on, and their end.
    running: Cell<usize>,
    run_ended: Event,
    cycles: Cell<u64>,
    /// Per partition flush: its fdatasyncs plus the log lock around them.
    fsync_latency: LatencyHistogram,
}

impl<S: ShardStorage> Flusher<S> {
    pub fn new(delay: Duration) -> Rc<Flusher<S>> {
        Rc::new(Flusher {
            queue: RefCell::new(Vec::new()),
            queued: Event::new(),
            delay,
            stopped: Cell::new(false),
            running: Cell::new(0),
            run_ended: Event::new(),
            cycles: Cell::new(0),
            fsync_latency: LatencyHistogram::new(),
        })
    }

    /// Queues `partition` for a flush: started now, or right after the
    /// one running ends (once, however many appends).
    pub fn enqueue(&self, partition: &Rc<Partition<S>>) {
        if partition.mark_dirty() && !partition.is_flushing() {
            self.queue.borrow_mut().push(Rc::clone(partition));
            self.queued.notify(1);
        }
    }

    /// Partition flushes completed, for metrics and tests.
    pub fn cycles(&self) -> u64 {
        self.cycles.get()
    }

    /// How long each partition's flush took, for metrics.
    pub fn fsync_latency(&self) -> HistogramSnapshot {
        self.fsync_latency.snapshot()
    }

    /// Ends [`Flusher::run`] once the flushes running have ended.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.queued.notify(usize::MAX);
    }

    /// The flush task's loop: starts each queued partition's run.
    pub async fn run(self: Rc<Self>) {
        loop {
            while self.queue.borrow().is_empty() {
                if self.stopped.get() {
                    self.wait_runs().await;
                    return;
                }
                let listener = self.queued.listen();
                if !self.queue.borrow().is_empty() || self.stopped.get() {
                    continue;
                }
                listener.await;
            }
            if !self.delay.is_zero() {
                glommio::timer::sleep(self.delay).await;
            }
            let started = std::mem::take(&mut *self.queue.borrow_mut());
            for partition in started {
                if partition.set_flushing(true) {
                    continue; // its run goes on and sees it dirty
                }
                self.running.set(self.running.get() + 1);
                let flusher = Rc::clone(&self);
                glommio::spawn_local(async move {
                    flusher.run_partition(&partition).await;
                    partition.set_flushing(false);
                    flusher.running.set(flusher.running.get() - 1);
                    flusher.run_ended.notify(usize::MAX);
                })
                .detach();
            }
        }
    }

    /// One partition's flushes, back to back while appends keep coming.
    async fn run_partition(&self, partition: &Rc<Partition<S>>) {
        loop {
            if let Err(error) = self.timed_flush(partition).await {
                tracing::error!(
                    topic = %partition.topic,
                    partition = partition.index,
                    %error,
                    "flush failed"
                );
            }
            self.cycles.set(self.cycles.get() + 1);
            if !partition.is_dirty() {
                return;
            }
            if !self.delay.is_zero() {
                glommio::timer::sleep(self.delay).await;
            }
        }
    }

    /// Until no partition's run is going on.
    async fn wait_runs(&self) {
        while self.running.get() > 0 {
            let listener = self.run_ended.listen();
            if self.running.get() == 0 {
                return;
            }
            listener.await;
        }
    }

    async fn timed_flush(&self, partition: &Partition<S>) -> Result<i64, PartitionError> {
        let started = Instant::now();
        let result = partition.flush().await;
        self.fsync_latency.record(started.elapsed());
        result
    }
}
