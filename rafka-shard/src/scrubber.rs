//! The scrubber: re-verifies the closed segments of every partition of a
//! shard at a bounded rate (`rafka.log.scrub.bytes.per.second`), one
//! partition after another, and takes damaged batches out of service (see
//! rafka-core's `log::scrub` for the steps and what reads do then).
//!
//! Lives on: every shard, one task each, started by [`crate::startup`].
//! A step reads at most [`SCRUB_STEP_BYTES`] without the partition's lock;
//! after each the task sleeps for the time the rate gives those bytes, so
//! a pass never stalls the shard. A pass starts once the shard is ready
//! and again [`SCRUB_PASS_INTERVAL`] after the previous one ended.

use std::rc::Rc;
use std::time::Duration;

use rafka_core::log::{DamagedRange, LogError, ScrubApplied, ScrubCursor};

use crate::partition::PartitionError;
use crate::runtime::within;
use crate::shard::Shard;
use crate::storage::ShardStorage;

/// Bytes one scrub step reads (whole batches; a larger batch is read
/// whole).
pub const SCRUB_STEP_BYTES: u64 = 256 * 1024;
/// The pause between two passes over a shard's partitions.
pub const SCRUB_PASS_INTERVAL: Duration = Duration::from_secs(60);

/// What one pass found.
#[derive(Debug, Default)]
pub struct ScrubSummary {
    pub bytes_scrubbed: u64,
    /// Damaged ranges first found by this pass: (topic, partition, range).
    pub damaged: Vec<(Rc<str>, i32, DamagedRange)>,
}

impl<S: ShardStorage> Shard<S> {
    /// One pass over the closed segments of every partition of this shard.
    /// `bytes_per_second` paces it (None: no pause between steps, for
    /// tests and tools). Ends early if the shard stops.
    pub async fn scrub_pass(&self, bytes_per_second: Option<u64>) -> ScrubSummary {
        let mut summary = ScrubSummary::default();
        let keys: Vec<(Rc<str>, i32)> = self
            .local_partitions()
            .iter()
            .map(|partition| (Rc::clone(&partition.topic), partition.index))
            .collect();
        for (topic, index) in keys {
            if self.is_stopping() {
                return summary;
            }
            let scrubbed = self.scrub_partition(&topic, index, bytes_per_second, &mut summary);
            if !scrubbed.await {
                return summary;
            }
        }
        self.registry().log_health().on_pass();
        summary
    }

    /// Scrubs one partition; false if the shard is stopping. The partition
    /// is looked up again for every step and not held while its bytes are
    /// read or the pass pauses, so a clean close or a delete never waits
    /// for the scrubber nor finds it holding the partition.
    async fn scrub_partition(
        &self,
        topic: &Rc<str>,
        index: i32,
        bytes_per_second: Option<u64>,
        summary: &mut ScrubSummary,
    ) -> bool {
        let health = Rc::clone(self.registry().log_health());
        let mut cursor = ScrubCursor::default();
        loop {
            let applied = match self.scrub_step(topic, index, &mut cursor).await {
                Ok(Some(applied)) => applied,
                // Done, gone, or offline after a failed write (which said so).
                Ok(None)
                | Err(PartitionError::Closed)
                | Err(PartitionError::Log(LogError::Failed { .. })) => return true,
                Err(error) => {
                    tracing::warn!(%topic, partition = index, %error, "scrub stopped for this pass");
                    return true;
                }
            };
            health.on_scrubbed(applied.bytes_scrubbed);
            summary.bytes_scrubbed += applied.bytes_scrubbed;
            if let Some(range) = applied.damaged {
                health.on_damaged(topic, index, &range);
                summary.damaged.push((Rc::clone(topic), index, range));
            }
            let pause = bytes_per_second.map(|rate| pause_for(applied.bytes_scrubbed, rate));
            match pause {
                Some(pause) if within(pause, self.wait_stop()).await.is_some() => return false,
                Some(_) => {}
                None => glommio::yield_if_needed().await,
            }
        }
    }

    /// Plan, verify, apply; None once the pass over the partition is done.
    async fn scrub_step(
        &self,
        topic: &str,
        index: i32,
        cursor: &mut ScrubCursor<S::File>,
    ) -> Result<Option<ScrubApplied>, PartitionError> {
        let partition = self.partition(topic, index).ok_or(PartitionError::Closed)?;
        let Some(chunk) = partition.scrub_plan(cursor, SCRUB_STEP_BYTES).await? else {
            return Ok(None);
        };
        drop(partition);
        let verdict = chunk.verify().await?;
        let partition = self.partition(topic, index).ok_or(PartitionError::Closed)?;
        Ok(Some(partition.scrub_apply(cursor, &chunk, verdict).await?))
    }

    /// Runs scrub passes until the shard stops; returns at once if
    /// `rafka.log.scrub.bytes.per.second` is 0.
    pub async fn run_scrubber(self: Rc<Self>) {
        let rate = self.config.log_scrub_bytes_per_second;
        if rate == 0 {
            return;
        }
        self.lifecycle().wait_ready().await;
        while !self.is_stopping() {
            self.scrub_pass(Some(rate)).await;
            if within(SCRUB_PASS_INTERVAL, self.wait_stop())
                .await
                .is_some()
            {
                break;
            }
        }
    }
}

/// How long `bytes` take at `bytes_per_second` (> 0).
fn pause_for(bytes: u64, bytes_per_second: u64) -> Duration {
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(bytes_per_second.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_gives_each_step_its_share_of_the_rate() {
        assert_eq!(
            pause_for(256 * 1024, 16 << 20),
            Duration::from_micros(15_625)
        );
        assert_eq!(pause_for(0, 1), Duration::ZERO);
        assert_eq!(pause_for(1, 1), Duration::from_secs(1));
    }
}
