//! Group commit: one flush cycle per shard covers every append queued
//! before it, with one fdatasync per dirty segment.
//!
//! Lives on: every shard, one `Flusher`, run by one task.
//!
//! A partition that gets an append is queued once (its dirty flag dedupes).
//! The task takes the whole queue, flushes those partitions concurrently
//! (each: collect files, fdatasync without holding the log, publish the high
//! watermark), and goes again while anything was queued meanwhile. Appends
//! that arrive during a cycle wait for the next one, which is what makes one
//! fdatasync cover many produce requests under load.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use event_listener::Event;
use futures_util::future::join_all;

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
            cycles: Cell::new(0),
            fsync_latency: LatencyHistogram::new(),
        })
    }

    /// Queues `partition` for the next cycle (once, however many appends).
    pub fn enqueue(&self, partition: &Rc<Partition<S>>) {
        if partition.mark_dirty() {
            self.queue.borrow_mut().push(Rc::clone(partition));
            self.queued.notify(1);
        }
    }

    /// Flush cycles completed, for metrics and tests.
    pub fn cycles(&self) -> u64 {
        self.cycles.get()
    }

    /// How long each partition's flush took, for metrics.
    pub fn fsync_latency(&self) -> HistogramSnapshot {
        self.fsync_latency.snapshot()
    }

    /// Ends [`Flusher::run`] after its current cycle.
    pub fn stop(&self) {
        self.stopped.set(true);
        self.queued.notify(usize::MAX);
    }

    /// The flush task's loop.
    pub async fn run(self: Rc<Self>) {
        loop {
            while self.queue.borrow().is_empty() {
                if self.stopped.get() {
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
            let cycle = std::mem::take(&mut *self.queue.borrow_mut());
            let results = join_all(cycle.iter().map(|p| self.timed_flush(p))).await;
            for (partition, result) in cycle.iter().zip(results) {
                if let Err(error) = result {
                    tracing::error!(
                        topic = %partition.topic,
                        partition = partition.index,
                        %error,
                        "flush failed"
                    );
                }
            }
            self.cycles.set(self.cycles.get() + 1);
        }
    }

    async fn timed_flush(&self, partition: &Partition<S>) -> Result<i64, PartitionError> {
        let started = Instant::now();
        let result = partition.flush().await;
        self.fsync_latency.record(started.elapsed());
        result
    }
}
