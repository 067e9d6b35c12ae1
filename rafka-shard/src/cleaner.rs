//! The log cleaner: retention, then compaction, over every partition of a
//! shard, every `log.retention.check.interval.ms`.
//!
//! Lives on: every shard, one task each, started by [`crate::startup`].
//! One partition at a time: a pass holds at most one segment group and one
//! key map in memory per shard.

use std::rc::Rc;
use std::time::Duration;

use crate::runtime::within;
use crate::shard::Shard;
use crate::storage::ShardStorage;

impl<S: ShardStorage> Shard<S> {
    /// Applies retention, then compaction, to every partition of this
    /// shard.
    pub async fn apply_retention(&self) {
        let now_ms = self.clock().now_ms();
        for partition in self.local_partitions() {
            if let Err(error) = partition.apply_retention(now_ms).await {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "retention");
            }
            match partition.compact(now_ms).await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(
                    topic = %partition.topic,
                    partition = partition.index,
                    removed,
                    "compacted"
                ),
                Err(error) => tracing::warn!(
                    topic = %partition.topic,
                    partition = partition.index,
                    %error,
                    "compaction"
                ),
            }
        }
    }

    /// Runs [`Shard::apply_retention`] every
    /// `log.retention.check.interval.ms` until the shard stops.
    pub async fn run_log_cleaner(self: Rc<Self>) {
        let interval_ms = self.config.log_retention_check_interval_ms.max(1) as u64;
        let interval = Duration::from_millis(interval_ms);
        while !self.is_stopping() {
            if within(interval, self.wait_stop()).await.is_some() {
                break;
            }
            if self.is_ready() {
                self.apply_retention().await;
            }
        }
    }
}
