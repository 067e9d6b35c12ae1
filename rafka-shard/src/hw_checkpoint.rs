//! Kafka's `replication-offset-checkpoint`: every partition's high
//! watermark, written by shard 0 for the whole data dir every
//! `replica.high.watermark.checkpoint.interval.ms` and once more at a
//! clean stop.
//!
//! Why: a broker that restarts finds its logs as it left them, tail
//! included, but not which part of that tail the other replicas hold.
//! Starting the high watermark at the log end would let a consumer of the
//! restarted broker (elected leader before its followers fetch) read
//! records that another leader may never have, and let its coordinators
//! load state nobody acknowledged. Starting it at the checkpoint, at most
//! one interval behind, costs a consumer nothing that was not already
//! committed: the high watermark rises again as soon as the ISR's fetches
//! (or, with an ISR of one, the broker's own log) vouch for the rest
//! ([`crate::partition::PartitionSpec::high_watermark`]).
//!
//! Lives on: shard 0 writes; every shard answers with the high watermarks
//! of the partitions it owns.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use glommio::sync::Semaphore;
use rafka_core::log::checkpoint::{
    write_offset_checkpoint, CheckpointError, TopicPartition, REPLICATION_OFFSET_CHECKPOINT_FILE,
};

use crate::shard::Shard;
use crate::storage::ShardStorage;

/// Keeps the periodic write and the clean stop's final one apart: one
/// writer of the file at a time, and nothing written after the final one
/// (the partitions are closed by then, so a later write would forget
/// them).
pub struct CheckpointGate {
    writing: Semaphore,
    closed: Cell<bool>,
}

impl Default for CheckpointGate {
    fn default() -> Self {
        CheckpointGate {
            writing: Semaphore::new(1),
            closed: Cell::new(false),
        }
    }
}

impl CheckpointGate {
    /// Runs `final_write` (the clean stop's close and checkpoint) alone;
    /// no checkpoint is written after it.
    pub async fn close_with<T>(&self, final_write: impl AsyncFnOnce() -> T) -> T {
        let _permit = self.writing.acquire_permit(1).await;
        self.closed.set(true);
        final_write().await
    }
}

/// Shard 0: writes the checkpoint every
/// `replica.high.watermark.checkpoint.interval.ms` until the broker stops.
pub fn spawn<S: ShardStorage>(shard: &Rc<Shard<S>>) {
    let interval_ms = shard
        .config
        .replica_high_watermark_checkpoint_interval_ms
        .max(1);
    let every = Duration::from_millis(u64::try_from(interval_ms).unwrap_or(u64::MAX));
    let weak = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(every).await;
            let Some(shard) = weak.upgrade().filter(|s| !s.is_stopping()) else {
                return;
            };
            let gate = Rc::clone(shard.hw_checkpoint());
            let Ok(_permit) = gate.writing.acquire_permit(1).await else {
                return;
            };
            if gate.closed.get() {
                return;
            }
            let offsets = gather(&shard).await;
            if let Err(error) = write(&shard, &offsets).await {
                tracing::warn!(%error, "writing {REPLICATION_OFFSET_CHECKPOINT_FILE}");
            }
        }
    })
    .detach();
}

/// The high watermark of every partition of every shard.
async fn gather<S: ShardStorage>(shard: &Shard<S>) -> BTreeMap<TopicPartition, i64> {
    let answers = shard
        .router
        .invoke_on_all(|shard: Rc<Shard<S>>| async move {
            shard
                .registry()
                .all()
                .iter()
                .map(|p| {
                    let tp = TopicPartition {
                        topic: p.topic.to_string(),
                        partition: p.index,
                    };
                    (tp, p.high_watermark())
                })
                .collect::<Vec<_>>()
        })
        .await;
    let mut offsets = BTreeMap::new();
    for answer in answers {
        match answer {
            Ok(of_shard) => offsets.extend(of_shard),
            // A shard that did not answer (stopping): its partitions keep
            // no entry this time, and start from their log start if the
            // broker dies before the next write. Never too high.
            Err(error) => tracing::debug!(%error, "gathering high watermarks"),
        }
    }
    offsets
}

/// Replaces the data dir's checkpoint with `offsets`, atomically.
pub async fn write<S: ShardStorage>(
    shard: &Shard<S>,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<(), CheckpointError> {
    let path = shard
        .registry()
        .data_dir()
        .join(REPLICATION_OFFSET_CHECKPOINT_FILE);
    write_offset_checkpoint(shard.registry().storage(), &path, offsets).await
}
