//! [`CoordinatorHost`]: what any coordinator living in an internal topic
//! needs, written once. The group coordinator (`__consumer_offsets`) is its
//! first user; the transaction coordinator (`__transaction_state`) is
//! the second.
//!
//! - Ownership: a key (group id, transactional id) maps to a partition of
//!   the internal topic by Kafka's hash ([`InternalTopic::partition_for`]),
//!   and the coordinator for it is the shard owning that partition. Every
//!   request for the key, wherever it arrives, is routed there
//!   ([`crate::shard::Shard::coordinator_shard`]); the host answers
//!   NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE
//!   as Kafka does when it is not (yet) the one.
//! - Load: at startup, and when a partition of the topic is created here,
//!   every record of the shard's partitions is replayed into the
//!   coordinator's state before the partition counts as loaded.
//! - Persist then reply: records are appended to their partitions and
//!   awaited durable (as acks=all) before the caller answers.
//! - Timers: one task per coordinator sleeps until the coordinator's next
//!   deadline, or until a call may have moved it, then fires what is due.
//! - Forget: a deleted partition (DeleteTopics of the internal topic)
//!   unloads its keys, so a re-created topic starts empty.
//!
//! Lives on: every shard, one host per coordinator kind, inside that
//! coordinator. It owns nothing but the set of loaded partitions; the
//! partitions themselves are the shard's registry's.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use event_listener::Event;
use rafka_core::coordinator::{partition_for_key, InternalRecord};
use rafka_core::io::Clock;
use rafka_proto::acks::Acks;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{
    BatchBuilder, Batches, BuildError, Compression, ControlType, RecordBatch, RecordLimits,
};

use crate::image::ImageView;
use crate::partition::{Partition, PartitionError};
use crate::registry::PartitionRegistry;
use crate::runtime::within;
use crate::storage::{BrokerStorage, ShardStorage};

/// How long a coordinator write may wait for its flush.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads while replaying an internal partition are this large.
const LOAD_READ_BYTES: u32 = 1 << 20;
/// The timer task re-checks at least this often.
const TIMER_IDLE_MS: i64 = 60_000;

// Replay reads always make progress (at least one byte, at most what a
// batch of the topic may be), and the idle re-check is a real interval.
const _: () = assert!(LOAD_READ_BYTES > 0 && TIMER_IDLE_MS > 0);

/// The internal topic a coordinator lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InternalTopic {
    pub name: &'static str,
    /// `offsets.topic.num.partitions` / `transaction.state.log.num.partitions`.
    pub partitions: i32,
    /// `offsets.topic.replication.factor` /
    /// `transaction.state.log.replication.factor` (a cluster's).
    pub replication_factor: i16,
    /// `transaction.state.log.min.isr` (None: the topic default).
    pub min_insync_replicas: Option<i32>,
}

impl InternalTopic {
    /// Kafka's partition for `key`: `(String.hashCode(key) & 0x7fffffff) %
    /// partitions` (the same hash for group and transactional ids).
    pub fn partition_for(&self, key: &str) -> i32 {
        partition_for_key(key, self.partitions.max(1))
    }
}

/// Why replaying an internal partition failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {topic}-{partition}: {source}")]
    Read {
        topic: &'static str,
        partition: i32,
        #[source]
        source: PartitionError,
    },
    #[error("{topic}-{partition} holds an invalid batch: {source}")]
    Batch {
        topic: &'static str,
        partition: i32,
        #[source]
        source: rafka_proto::record::BatchError,
    },
    #[error("{topic}-{partition} holds invalid records: {source}")]
    Records {
        topic: &'static str,
        partition: i32,
        #[source]
        source: rafka_proto::record::RecordError,
    },
}

/// What the host drives in the coordinator it serves.
#[allow(async_fn_in_trait)]
pub trait Hosted {
    /// Applies one record of `partition` (startup replay). An error skips
    /// the record, as Kafka does: one bad record must not keep every other
    /// key of the partition offline.
    fn replay(
        &self,
        partition: i32,
        now_ms: i64,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), String>;
    /// Applies one record written inside `producer_id`'s transaction (a
    /// transactional batch); it takes effect with the transaction's
    /// COMMIT marker ([`Hosted::replay_marker`]). Coordinators that write
    /// no transactional records ignore them.
    fn replay_transactional(
        &self,
        _partition: i32,
        _now_ms: i64,
        _producer_id: i64,
        _key: &[u8],
        _value: Option<&[u8]>,
    ) -> Result<(), String> {
        Ok(())
    }
    /// Applies a transaction marker of `producer_id` found in `partition`.
    fn replay_marker(&self, _partition: i32, _producer_id: i64, _commit: bool) {}
    /// Forgets the keys of a deleted partition.
    fn unload(&self, partition: i32);
    /// The earliest deadline the coordinator keeps, if any.
    fn next_deadline_ms(&self) -> Option<i64>;
    /// Fires what is due at `now_ms`.
    async fn fire_due(&self, now_ms: i64);
}

/// The shared half of a coordinator: see the module doc.
pub struct CoordinatorHost<S: ShardStorage = BrokerStorage> {
    topic: InternalTopic,
    shard_id: usize,
    registry: Rc<PartitionRegistry<S>>,
    image: Rc<ImageView>,
    clock: Rc<dyn Clock>,
    loaded: RefCell<BTreeSet<i32>>,
    timers_changed: Event,
    stopping: Cell<bool>,
    stopped: Event,
}

impl<S: ShardStorage> CoordinatorHost<S> {
    pub fn new(
        topic: InternalTopic,
        shard_id: usize,
        registry: Rc<PartitionRegistry<S>>,
        image: Rc<ImageView>,
        clock: Rc<dyn Clock>,
    ) -> Self {
        CoordinatorHost {
            topic,
            shard_id,
            registry,
            image,
            clock,
            loaded: RefCell::new(BTreeSet::new()),
            timers_changed: Event::new(),
            stopping: Cell::new(false),
            stopped: Event::new(),
        }
    }

    pub fn topic(&self) -> InternalTopic {
        self.topic
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The partition of `key`, if this shard is its coordinator and has
    /// loaded it; otherwise the error Kafka answers: COORDINATOR_NOT_AVAILABLE
    /// (no such partition yet), NOT_COORDINATOR (another shard owns it),
    /// COORDINATOR_LOAD_IN_PROGRESS (still replaying).
    pub fn check_owner(&self, key: &str) -> Result<i32, ErrorCode> {
        let partition = self.topic.partition_for(key);
        match self.image.owner_of(self.topic.name, partition) {
            None => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            Some(owner) if owner != self.shard_id => Err(ErrorCode::NOT_COORDINATOR),
            Some(_) if !self.loaded.borrow().contains(&partition) => {
                Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)
            }
            Some(_) => Ok(partition),
        }
    }

    /// Tells the timer task that a deadline may have moved.
    pub fn timers_changed(&self) {
        self.timers_changed.notify(usize::MAX);
    }

    /// Appends `records` to their partitions, one batch per partition,
    /// and waits until they are durable. Returns whether all were written;
    /// a caller must not announce what was not.
    pub async fn persist(&self, records: &[InternalRecord]) -> bool {
        self.write(records, Acks::All).await
    }

    /// Appends `records` without waiting for their flush. Only for a
    /// record whose loss in a crash is harmless and which nothing announces
    /// on its own: any later record of the same key lands after it in the
    /// same partition, so the flush that makes that one durable makes
    /// this one durable too.
    pub async fn append_unflushed(&self, records: &[InternalRecord]) -> bool {
        self.write(records, Acks::Leader).await
    }

    async fn write(&self, records: &[InternalRecord], acks: Acks) -> bool {
        let mut written = true;
        for (partition, batch) in batches(records, None, self.now_ms()) {
            let appended = match batch {
                Ok(batch) => self
                    .registry
                    .produce(
                        self.topic.name,
                        partition,
                        &batch,
                        acks,
                        WRITE_TIMEOUT,
                        None,
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = appended {
                tracing::error!(topic = self.topic.name, partition, %error, "coordinator write");
                written = false;
            }
        }
        written
    }

    /// [`CoordinatorHost::persist`] inside a producer's transaction: the
    /// batches carry its producer id and epoch and the transactional bit
    /// (sequence -1, as Kafka's coordinators write them), so they take
    /// effect only with the transaction's COMMIT marker. A refusal of the
    /// producer (fenced epoch) comes back as its code; any other failure
    /// as COORDINATOR_NOT_AVAILABLE.
    pub async fn persist_transactional(
        &self,
        records: &[InternalRecord],
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(), ErrorCode> {
        let producer = Some((producer_id, producer_epoch));
        let mut written = Ok(());
        for (partition, batch) in batches(records, producer, self.now_ms()) {
            let appended = match batch {
                Ok(batch) => self
                    .registry
                    .append_as_coordinator(self.topic.name, partition, &batch, WRITE_TIMEOUT)
                    .await
                    .map(|_| ())
                    .map_err(|e| (e.error_code(), e.to_string())),
                Err(error) => Err((ErrorCode::UNKNOWN_SERVER_ERROR, error.to_string())),
            };
            if let Err((code, error)) = appended {
                tracing::warn!(topic = self.topic.name, partition, %error, "transactional coordinator write");
                written = Err(match code {
                    ErrorCode::INVALID_PRODUCER_EPOCH | ErrorCode::PRODUCER_FENCED => code,
                    _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
                });
            }
        }
        written
    }

    /// Replays every partition of the topic this shard owns and has not
    /// loaded yet into `coordinator`. Returns how many records it applied.
    pub async fn load_partitions(&self, coordinator: &impl Hosted) -> Result<usize, LoadError> {
        let mut mine: Vec<Rc<Partition<S>>> = self
            .registry
            .of_topic(self.topic.name)
            .into_iter()
            .filter(|p| !self.loaded.borrow().contains(&p.index))
            .collect();
        mine.sort_by_key(|p| p.index);
        let mut applied = 0;
        for partition in mine {
            applied += self.load_partition(&partition, coordinator).await?;
            self.loaded.borrow_mut().insert(partition.index);
        }
        self.timers_changed();
        Ok(applied)
    }

    async fn load_partition(
        &self,
        partition: &Partition<S>,
        coordinator: &impl Hosted,
    ) -> Result<usize, LoadError> {
        let (topic, index) = (self.topic.name, partition.index);
        let mut offset = partition.log_start_offset();
        let mut applied = 0;
        while offset < partition.high_watermark() {
            let fetched = partition
                .fetch(offset, LOAD_READ_BYTES)
                .await
                .map_err(|source| LoadError::Read {
                    topic,
                    partition: index,
                    source,
                })?;
            if fetched.records.is_empty() {
                break;
            }
            for batch in Batches::new(fetched.records) {
                let batch = batch.map_err(|source| LoadError::Batch {
                    topic,
                    partition: index,
                    source,
                })?;
                offset = batch.header().next_offset();
                if batch.header().is_control() {
                    match batch.end_txn_marker() {
                        Ok(Some(marker)) => coordinator.replay_marker(
                            index,
                            batch.header().producer_id,
                            marker.control_type == ControlType::Commit,
                        ),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(topic, partition = index, %error, "skipping control batch")
                        }
                    }
                    continue;
                }
                applied += self.replay_batch(index, &batch, coordinator)?;
            }
        }
        Ok(applied)
    }

    fn replay_batch(
        &self,
        index: i32,
        batch: &RecordBatch,
        coordinator: &impl Hosted,
    ) -> Result<usize, LoadError> {
        let topic = self.topic.name;
        let records =
            batch
                .records(RecordLimits::default())
                .map_err(|source| LoadError::Records {
                    topic,
                    partition: index,
                    source,
                })?;
        let now_ms = self.now_ms();
        let header = batch.header();
        let transactional = header.is_transactional().then_some(header.producer_id);
        let mut applied = 0;
        for record in records {
            let record = record.map_err(|source| LoadError::Records {
                topic,
                partition: index,
                source,
            })?;
            let Some(key) = record.key else { continue };
            let value = record.value.as_deref();
            let replayed = match transactional {
                Some(producer_id) => {
                    coordinator.replay_transactional(index, now_ms, producer_id, &key, value)
                }
                None => coordinator.replay(index, now_ms, &key, value),
            };
            match replayed {
                Ok(()) => applied += 1,
                Err(error) => tracing::warn!(topic, partition = index, %error, "skipping record"),
            }
        }
        Ok(applied)
    }

    /// Forgets `partition` (its internal partition was deleted).
    pub fn unload_partition(&self, partition: i32, coordinator: &impl Hosted) {
        coordinator.unload(partition);
        self.loaded.borrow_mut().remove(&partition);
        self.timers_changed();
    }

    /// Ends the timer task (shutdown).
    pub fn stop(&self) {
        self.stopping.set(true);
        self.timers_changed();
        self.stopped.notify(usize::MAX);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// The timer task: sleeps until the coordinator's earliest deadline, or
    /// until a call may have armed an earlier one, then fires what is due.
    pub async fn run_timers(&self, coordinator: &impl Hosted) {
        while !self.is_stopping() {
            let changed = self.timers_changed.listen();
            let now_ms = self.now_ms();
            let wait_ms = coordinator
                .next_deadline_ms()
                .map_or(TIMER_IDLE_MS, |d| (d - now_ms).clamp(0, TIMER_IDLE_MS));
            if wait_ms > 0 {
                within(Duration::from_millis(wait_ms as u64), changed).await;
            }
            if self.is_stopping() {
                break;
            }
            coordinator.fire_due(self.now_ms()).await;
        }
    }

    /// Runs `work` every `interval` until the host stops.
    pub async fn every(&self, interval: Duration, work: impl AsyncFn()) {
        while !self.is_stopping() {
            let stopped = self.stopped.listen();
            if self.is_stopping() {
                break;
            }
            if within(interval, stopped).await.is_some() {
                break;
            }
            work().await;
        }
    }
}

/// One batch per partition of `records`, in partition order; with
/// `producer`, transactional batches of that producer id and epoch.
fn batches(
    records: &[InternalRecord],
    producer: Option<(i64, i16)>,
    now_ms: i64,
) -> Vec<(i32, Result<bytes::Bytes, BuildError>)> {
    let mut by_partition: BTreeMap<i32, Vec<&InternalRecord>> = BTreeMap::new();
    for record in records {
        by_partition
            .entry(record.partition)
            .or_default()
            .push(record);
    }
    by_partition
        .into_iter()
        .map(|(partition, records)| {
            let mut builder = BatchBuilder::new(Compression::None);
            if let Some((producer_id, epoch)) = producer {
                builder = builder.producer(producer_id, epoch, -1).transactional(true);
            }
            for r in records {
                builder.push_record(now_ms, Some(&r.key), r.value.as_deref(), &[]);
            }
            (partition, builder.build())
        })
        .collect()
}
