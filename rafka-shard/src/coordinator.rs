//! [`CoordinatorHost`]: what any coordinator living in an internal topic
//! needs, written once. The group coordinator (`__consumer_offsets`) is its
//! first user; the transaction coordinator (`__transaction_state`) is
//! the second.
//!
//! - Ownership: a key (group id, transactional id) maps to a partition of
//!   the internal topic by Kafka's hash ([`InternalTopic::partition_for`]).
//!   Its coordinator is the broker leading that partition (on a single
//!   node, this one), on the shard owning it there. Every request for the
//!   key, wherever it arrives, is routed there
//!   ([`crate::shard::Shard::coordinator_shard`]); the host answers
//!   NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS / COORDINATOR_NOT_AVAILABLE
//!   as Kafka does when it is not (yet) the one.
//! - Load follows leadership (Kafka's `onElection` / `onResignation`):
//!   only partitions this broker leads are loaded. At startup, and when a
//!   partition of the topic is created here, every record of the led
//!   partitions is replayed into the coordinator's state before the
//!   partition counts as loaded. When this broker becomes a partition's
//!   leader (a new leader epoch), whatever was loaded for it is dropped
//!   and it is loaded afresh in a task of its own: the load waits until
//!   the high watermark reaches the log end the new leader holds (every
//!   record a former leader acknowledged is below it; followers fetching
//!   move it), then replays up to it. When leadership moves away the
//!   partition is unloaded: its keys answer NOT_COORDINATOR, their timers
//!   stop, waiting members are answered NOT_COORDINATOR and a
//!   transaction's marker task gives up (the new coordinator's replay
//!   finds the transaction and finishes it).
//! - Generations: every load and unload of a partition takes a new
//!   generation. A load, or a task working for a loaded partition (a
//!   marker task: [`Claim`]), that finds another generation after an await
//!   stops: it belongs to a leadership that is over.
//! - Persist then reply: records are appended to their partitions and
//!   awaited durable (as acks=all) before the caller answers; only while
//!   this broker leads the partition, in the same leader epoch from the
//!   append to the answer (a follower's log takes nothing but its
//!   leader's batches).
//! - Timers: one task per coordinator sleeps until the coordinator's next
//!   deadline, or until a call may have moved it, then fires what is due.
//! - Forget: a deleted partition (DeleteTopics of the internal topic)
//!   unloads its keys, so a re-created topic starts empty.
//!
//! Lives on: every shard, one host per coordinator kind, inside that
//! coordinator. It owns nothing but the state of each partition's load;
//! the partitions themselves are the shard's registry's.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use event_listener::Event;
use futures_util::future::{select, Either};
use rafka_core::coordinator::{partition_for_key, InternalRecord};
use rafka_core::io::Clock;
use rafka_proto::acks::Acks;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{
    BatchBuilder, Batches, BuildError, Compression, ControlType, RecordBatch, RecordLimits,
};

use crate::image::ImageView;
use crate::partition::{IsolationLevel, Partition, PartitionError};
use crate::registry::PartitionRegistry;
use crate::runtime::within;
use crate::storage::{BrokerStorage, ShardStorage};

/// How long a coordinator write may wait for its flush.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads while replaying an internal partition are this large.
const LOAD_READ_BYTES: u32 = 1 << 20;
/// The timer task re-checks at least this often.
const TIMER_IDLE_MS: i64 = 60_000;
/// A new leader's load waiting for its high watermark looks again at
/// least this often (it is woken by the watermark and by leadership
/// changes; this only bounds a missed wake-up).
const CATCH_UP_WAIT: Duration = Duration::from_secs(1);

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
    /// Leadership changed again (or the partition went, or the broker is
    /// stopping) before the load ended: another load or an unload owns
    /// the partition now.
    #[error("{topic}-{partition} changed hands while loading")]
    Superseded { topic: &'static str, partition: i32 },
}

/// What the host drives in the coordinator it serves.
#[allow(async_fn_in_trait)]
pub trait Hosted {
    /// Applies one record of `partition` (replay). An error skips the
    /// record, as Kafka does: one bad record must not keep every other
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
    /// Forgets the keys of `partition` (deleted, led elsewhere now, or
    /// about to be loaded afresh).
    fn unload(&self, partition: i32);
    /// The earliest deadline the coordinator keeps, if any.
    fn next_deadline_ms(&self) -> Option<i64>;
    /// Fires what is due at `now_ms`.
    async fn fire_due(&self, now_ms: i64);
}

/// Where a partition of the topic stands in the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Being replayed: its keys answer COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    Loaded,
    /// Its replay failed (a log that cannot be read): its keys answer
    /// COORDINATOR_NOT_AVAILABLE until the next leadership.
    Failed,
}

/// A led partition's load, one per leadership.
#[derive(Debug, Clone, Copy)]
struct Slot {
    generation: u64,
    leader_epoch: i32,
    phase: Phase,
}

/// A loaded partition as a task working for it found it:
/// [`CoordinatorHost::holds`] tells whether it still is, in the same
/// leadership (a task that outlives it stops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub partition: i32,
    /// The leader epoch the partition was loaded in: the transaction
    /// coordinator's epoch, which its markers carry (Kafka's).
    pub leader_epoch: i32,
    generation: u64,
}

/// Why a coordinator write was not made durable.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error("this broker does not lead the partition (any more)")]
    NotLeader,
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

/// The shared half of a coordinator: see the module doc.
pub struct CoordinatorHost<S: ShardStorage = BrokerStorage> {
    topic: InternalTopic,
    shard_id: usize,
    node_id: i32,
    registry: Rc<PartitionRegistry<S>>,
    image: Rc<ImageView>,
    clock: Rc<dyn Clock>,
    /// The partitions this broker leads and loads or loaded.
    slots: RefCell<BTreeMap<i32, Slot>>,
    /// The last generation given to a load.
    generation: Cell<u64>,
    /// Fires when a slot goes or is taken by a new load: a load waiting
    /// for its high watermark looks whether it still owns the partition.
    slots_changed: Event,
    timers_changed: Event,
    stopping: Cell<bool>,
    stopped: Event,
}

impl<S: ShardStorage> CoordinatorHost<S> {
    /// The host of `topic` on shard `shard_id` of broker `node_id`.
    pub fn new(
        topic: InternalTopic,
        shard_id: usize,
        node_id: i32,
        registry: Rc<PartitionRegistry<S>>,
        image: Rc<ImageView>,
        clock: Rc<dyn Clock>,
    ) -> Self {
        CoordinatorHost {
            topic,
            shard_id,
            node_id,
            registry,
            image,
            clock,
            slots: RefCell::new(BTreeMap::new()),
            generation: Cell::new(0),
            slots_changed: Event::new(),
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
    /// (no such partition yet, or its load failed), NOT_COORDINATOR
    /// (another shard owns it, or another broker leads it),
    /// COORDINATOR_LOAD_IN_PROGRESS (still replaying).
    pub fn check_owner(&self, key: &str) -> Result<i32, ErrorCode> {
        let partition = self.topic.partition_for(key);
        match self.image.owner_of(self.topic.name, partition) {
            None => return Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            Some(owner) if owner != self.shard_id => return Err(ErrorCode::NOT_COORDINATOR),
            Some(_) => {}
        }
        let leader = self.image.leader_of(self.topic.name, partition);
        if leader.is_some_and(|leader| leader != self.node_id) {
            return Err(ErrorCode::NOT_COORDINATOR);
        }
        match self.slots.borrow().get(&partition).map(|slot| slot.phase) {
            Some(Phase::Loaded) => Ok(partition),
            Some(Phase::Failed) => Err(ErrorCode::COORDINATOR_NOT_AVAILABLE),
            // Led here and not loaded yet: its load is on its way.
            Some(Phase::Loading) | None => Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS),
        }
    }

    /// `partition` as loaded now, for a task that works for it across
    /// awaits; None unless it is loaded.
    pub fn claim(&self, partition: i32) -> Option<Claim> {
        let slot = *self.slots.borrow().get(&partition)?;
        (slot.phase == Phase::Loaded).then_some(Claim {
            partition,
            leader_epoch: slot.leader_epoch,
            generation: slot.generation,
        })
    }

    /// Whether `claim`'s partition is still loaded in the same leadership.
    pub fn holds(&self, claim: &Claim) -> bool {
        self.claim(claim.partition).as_ref() == Some(claim)
    }

    /// Whether `partition` is loaded here (its keys are served).
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.claim(partition).is_some()
    }

    fn is_current(&self, partition: i32, generation: u64) -> bool {
        self.slots
            .borrow()
            .get(&partition)
            .is_some_and(|slot| slot.generation == generation)
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
                Ok(batch) => {
                    self.append_led(partition, async || {
                        let name = self.topic.name;
                        self.registry
                            .produce(name, partition, &batch, acks, WRITE_TIMEOUT, None)
                            .await
                            .map(|_| ())
                    })
                    .await
                }
                Err(error) => Err(error.into()),
            };
            if let Err(error) = appended {
                tracing::error!(topic = self.topic.name, partition, %error, "coordinator write");
                written = false;
            }
        }
        written
    }

    /// Runs `append` on `partition` only while this broker leads it, and
    /// counts it written only if it still does, in the same leader epoch,
    /// once `append` returns: a write that outlived its leadership may be
    /// cut from the log by the new leader, whatever the high watermark
    /// said.
    async fn append_led(
        &self,
        partition: i32,
        append: impl AsyncFnOnce() -> Result<(), PartitionError>,
    ) -> Result<(), WriteError> {
        let led = self
            .registry
            .get(self.topic.name, partition)
            .filter(|p| p.is_leader());
        let Some(target) = led else {
            return Err(WriteError::NotLeader);
        };
        let epoch = target.leader_epoch();
        append().await?;
        match target.is_leader() && target.leader_epoch() == epoch {
            true => Ok(()),
            false => Err(WriteError::NotLeader),
        }
    }

    /// [`CoordinatorHost::persist`] inside a producer's transaction: the
    /// batches carry its producer id and epoch and the transactional bit
    /// (sequence -1, as Kafka's coordinators write them), so they take
    /// effect only with the transaction's COMMIT marker. A refusal of the
    /// producer (fenced epoch) comes back as its code, a leadership lost
    /// as NOT_COORDINATOR; any other failure as COORDINATOR_NOT_AVAILABLE.
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
                Ok(batch) => {
                    self.append_led(partition, async || {
                        let name = self.topic.name;
                        self.registry
                            .append_as_coordinator(name, partition, &batch, WRITE_TIMEOUT)
                            .await
                            .map(|_| ())
                    })
                    .await
                }
                Err(error) => Err(error.into()),
            };
            if let Err(error) = appended {
                tracing::warn!(topic = self.topic.name, partition, %error, "transactional coordinator write");
                written = Err(match &error {
                    WriteError::NotLeader => ErrorCode::NOT_COORDINATOR,
                    WriteError::Partition(e) => match e.error_code() {
                        code @ (ErrorCode::INVALID_PRODUCER_EPOCH | ErrorCode::PRODUCER_FENCED) => {
                            code
                        }
                        _ => ErrorCode::COORDINATOR_NOT_AVAILABLE,
                    },
                    WriteError::Build(_) => ErrorCode::COORDINATOR_NOT_AVAILABLE,
                });
            }
        }
        written
    }

    /// The partitions of the topic this shard holds and this broker leads
    /// that the host has not taken up yet and whose high watermark is
    /// below their log end, with their leader epochs: at startup, a
    /// partition whose records past the checkpointed high watermark wait
    /// for the followers (or for news that this broker no longer leads).
    /// Their loads run in tasks of their own
    /// ([`CoordinatorHost::follow_leadership`]), so that startup does not
    /// wait on other brokers.
    pub fn led_behind(&self) -> Vec<(i32, i32)> {
        self.registry
            .of_topic(self.topic.name)
            .into_iter()
            .filter(|p| p.is_leader() && !self.slots.borrow().contains_key(&p.index))
            .filter(|p| p.high_watermark() < p.log_end_offset())
            .map(|p| (p.index, p.assignment().leader_epoch))
            .collect()
    }

    /// Replays every partition of the topic this shard holds, this broker
    /// leads and the host has not taken up yet into `coordinator`, before
    /// returning (startup, new partitions: nothing to wait for; see
    /// [`CoordinatorHost::led_behind`] for those that would). Returns how
    /// many records it applied.
    pub async fn load_partitions(&self, coordinator: &impl Hosted) -> Result<usize, LoadError> {
        let mut led: Vec<Rc<Partition<S>>> = self
            .registry
            .of_topic(self.topic.name)
            .into_iter()
            .filter(|p| p.is_leader() && !self.slots.borrow().contains_key(&p.index))
            .collect();
        led.sort_by_key(|p| p.index);
        let mut applied = 0;
        for partition in led {
            let epoch = partition.assignment().leader_epoch;
            let generation = self.begin_load(partition.index, epoch, coordinator);
            match self
                .load_partition(&partition, generation, coordinator)
                .await
            {
                Ok(count) => applied += count,
                Err(LoadError::Superseded { .. }) => {}
                Err(error) => {
                    self.timers_changed();
                    return Err(error);
                }
            }
        }
        self.timers_changed();
        Ok(applied)
    }

    /// A leadership of `partition` from the metadata: this broker `leads`
    /// it or not, in `leader_epoch`. Led elsewhere now: unloaded. Led here
    /// in an epoch it was not loaded in (or whose load failed): whatever
    /// was loaded is dropped and the generation of the new load is
    /// returned, for the caller to run ([`CoordinatorHost::load_generation`])
    /// in a task of its own. Kafka's `onElection` / `onResignation`.
    pub fn follow_leadership(
        &self,
        partition: i32,
        leads: bool,
        leader_epoch: i32,
        coordinator: &impl Hosted,
    ) -> Option<u64> {
        let slot = self.slots.borrow().get(&partition).copied();
        match (leads, slot) {
            (true, Some(slot))
                if slot.leader_epoch == leader_epoch && slot.phase != Phase::Failed =>
            {
                None
            }
            (true, _) if self.registry.get(self.topic.name, partition).is_some() => {
                tracing::info!(
                    topic = self.topic.name,
                    partition,
                    leader_epoch,
                    "leading: loading the coordinator's partition"
                );
                Some(self.begin_load(partition, leader_epoch, coordinator))
            }
            (true, _) | (false, None) => None,
            (false, Some(_)) => {
                tracing::info!(
                    topic = self.topic.name,
                    partition,
                    "led elsewhere now: unloading the coordinator's partition"
                );
                self.unload_partition(partition, coordinator);
                None
            }
        }
    }

    /// Runs the load [`CoordinatorHost::follow_leadership`] began: waits
    /// until the high watermark reaches the log end this broker holds,
    /// then replays up to it. Returns how many records it applied;
    /// [`LoadError::Superseded`] if leadership changed again meanwhile.
    pub async fn load_generation(
        &self,
        partition: i32,
        generation: u64,
        coordinator: &impl Hosted,
    ) -> Result<usize, LoadError> {
        let superseded = LoadError::Superseded {
            topic: self.topic.name,
            partition,
        };
        let Some(held) = self.registry.get(self.topic.name, partition) else {
            if self.is_current(partition, generation) {
                self.mark(partition, generation, Phase::Failed);
            }
            return Err(superseded);
        };
        let loaded = self.load_partition(&held, generation, coordinator).await;
        self.timers_changed();
        loaded
    }

    /// Takes `partition` up in a new generation: what was loaded for it
    /// is dropped, and it answers COORDINATOR_LOAD_IN_PROGRESS until the
    /// load of that generation ends.
    fn begin_load(&self, partition: i32, leader_epoch: i32, coordinator: &impl Hosted) -> u64 {
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        coordinator.unload(partition);
        let slot = Slot {
            generation,
            leader_epoch,
            phase: Phase::Loading,
        };
        self.slots.borrow_mut().insert(partition, slot);
        self.slots_changed.notify(usize::MAX);
        generation
    }

    fn mark(&self, partition: i32, generation: u64, phase: Phase) {
        if let Some(slot) = self.slots.borrow_mut().get_mut(&partition) {
            assert_eq!(slot.generation, generation, "marking another load's slot");
            slot.phase = phase;
        }
    }

    /// Replays `partition` for the load of `generation`, then marks it
    /// loaded (or failed), unless a later change took the partition.
    async fn load_partition(
        &self,
        partition: &Partition<S>,
        generation: u64,
        coordinator: &impl Hosted,
    ) -> Result<usize, LoadError> {
        let index = partition.index;
        let replayed = self
            .replay_partition(partition, generation, coordinator)
            .await;
        if !self.is_current(index, generation) {
            return Err(LoadError::Superseded {
                topic: self.topic.name,
                partition: index,
            });
        }
        match &replayed {
            Ok(_) => self.mark(index, generation, Phase::Loaded),
            Err(LoadError::Superseded { .. }) => {}
            Err(_) => self.mark(index, generation, Phase::Failed),
        }
        replayed
    }

    /// Waits until `partition`'s high watermark reaches the log end it has
    /// now: everything a former leader acknowledged is then below it, and
    /// everything below it stays (the ISR holds it). Immediate at startup
    /// and for a new partition.
    async fn caught_up(&self, partition: &Partition<S>, generation: u64) -> Result<(), LoadError> {
        let superseded = || LoadError::Superseded {
            topic: self.topic.name,
            partition: partition.index,
        };
        let target = partition.log_end_offset();
        loop {
            let changed = self.slots_changed.listen();
            let stopped = self.stopped.listen();
            if !self.is_current(partition.index, generation) || self.is_stopping() {
                return Err(superseded());
            }
            if partition.high_watermark() >= target {
                return Ok(());
            }
            let moved = pin!(partition.wait_for_data(
                target - 1,
                CATCH_UP_WAIT,
                IsolationLevel::ReadUncommitted
            ));
            let either = select(moved, select(changed, stopped)).await;
            // A deleted partition answers at once: its unload follows.
            if matches!(either, Either::Left((true, _))) && partition.high_watermark() < target {
                return Err(superseded());
            }
        }
    }

    async fn replay_partition(
        &self,
        partition: &Partition<S>,
        generation: u64,
        coordinator: &impl Hosted,
    ) -> Result<usize, LoadError> {
        let (topic, index) = (self.topic.name, partition.index);
        self.caught_up(partition, generation).await?;
        let mut offset = partition.log_start_offset();
        let mut applied = 0;
        while offset < partition.high_watermark() {
            let fetched = partition.fetch(offset, LOAD_READ_BYTES).await;
            // Another load or an unload may have taken the partition
            // during the read: nothing more of this one may be applied.
            if !self.is_current(index, generation) {
                return Err(LoadError::Superseded {
                    topic,
                    partition: index,
                });
            }
            let fetched = fetched.map_err(|source| LoadError::Read {
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

    /// Forgets `partition`: its internal partition was deleted, or another
    /// broker leads it now. A load of it in progress stops.
    pub fn unload_partition(&self, partition: i32, coordinator: &impl Hosted) {
        coordinator.unload(partition);
        self.slots.borrow_mut().remove(&partition);
        self.slots_changed.notify(usize::MAX);
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
