//! The per-partition settings the log itself enforces, named after Kafka's
//! topic configs (`segment.bytes`, `retention.ms`, ...) with Kafka's
//! defaults. The broker's topic config model converts into this.

use rafka_proto::record::{TargetCompression, TimestampType};

/// Kafka's default for `segment.bytes`: 1 GiB.
pub const SEGMENT_BYTES_DEFAULT: u32 = 1 << 30;
/// Kafka's default for `segment.ms` and `retention.ms`: 7 days.
pub const WEEK_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Kafka's default for `segment.index.bytes`: 10 MiB.
pub const SEGMENT_INDEX_BYTES_DEFAULT: u32 = 10 << 20;
/// Kafka's default for `index.interval.bytes`.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;
/// Kafka's default for `max.message.bytes` (1 MiB plus batch overhead).
pub const MAX_MESSAGE_BYTES_DEFAULT: u32 = 1_048_588;
/// Kafka's lower bound for `segment.bytes` (a legacy record's overhead).
pub const SEGMENT_BYTES_MIN: u32 = 14;
/// Index positions are u32 and Kafka keeps `segment.bytes` within an i32.
pub const SEGMENT_BYTES_MAX: u32 = i32::MAX as u32;

/// Kafka's default for `delete.retention.ms`: 1 day.
pub const DELETE_RETENTION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;
/// Kafka's default for `min.cleanable.dirty.ratio`.
pub const MIN_CLEANABLE_DIRTY_RATIO_DEFAULT: f64 = 0.5;

/// Settings of one partition's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u32,
    /// `segment.ms`: roll a non-empty segment this long after its first
    /// append (wall clock from the log's [`crate::io::Clock`]).
    pub segment_ms: i64,
    /// `segment.index.bytes`: the offset index holds this many bytes of
    /// 8-byte entries (the time index, of 12-byte entries) before the
    /// segment rolls.
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`: log bytes between two sparse index entries.
    pub index_interval_bytes: u32,
    /// `retention.ms`: delete closed segments whose newest timestamp is older
    /// than this; -1 keeps them forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest closed segments while the log is
    /// larger than this; -1 means no limit.
    pub retention_bytes: i64,
    /// `max.message.bytes`: the largest batch accepted by an append.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`: with `LogAppendTime` the log stamps every
    /// batch with the append time.
    pub message_timestamp_type: TimestampType,
    /// `cleanup.policy` holds `delete`: retention.ms / retention.bytes
    /// delete old segments.
    pub cleanup_delete: bool,
    /// `cleanup.policy` holds `compact`: closed segments are compacted by
    /// key (see `compact.rs`).
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long a tombstone outlives the segment
    /// time it was written in before compaction removes it.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: compact once the never-cleaned bytes
    /// are at least this share of the cleanable bytes.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a segment is cleanable only once its newest
    /// timestamp is at least this old.
    pub min_compaction_lag_ms: i64,
    /// `compression.type` (with its codec's `compression.<codec>.level`):
    /// the codec produced batches are stored with; `None` (`producer`)
    /// keeps the producer's. Applied by the partition before an append
    /// (`rafka_proto::record::recompress`), so the log's
    /// `max.message.bytes` check sees the stored size.
    pub compression: Option<TargetCompression>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            segment_ms: WEEK_MS,
            segment_index_bytes: SEGMENT_INDEX_BYTES_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            retention_ms: WEEK_MS,
            retention_bytes: -1,
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
            message_timestamp_type: TimestampType::CreateTime,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: DELETE_RETENTION_MS_DEFAULT,
            min_cleanable_dirty_ratio: MIN_CLEANABLE_DIRTY_RATIO_DEFAULT,
            min_compaction_lag_ms: 0,
            compression: None,
        }
    }
}

/// A [`LogConfig`] value the log cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogConfigError {
    #[error("segment.bytes {0} is outside {SEGMENT_BYTES_MIN}..={SEGMENT_BYTES_MAX}")]
    SegmentBytes(u32),
    #[error("segment.ms {0} must be positive")]
    SegmentMs(i64),
    #[error("segment.index.bytes {0} must hold at least one 12-byte entry")]
    SegmentIndexBytes(u32),
    #[error("retention.ms {0} must be -1 or non-negative")]
    RetentionMs(i64),
    #[error("retention.bytes {0} must be -1 or non-negative")]
    RetentionBytes(i64),
    #[error("max.message.bytes {0} must be positive")]
    MaxMessageBytes(u32),
    #[error("delete.retention.ms {0} must be non-negative")]
    DeleteRetentionMs(i64),
    #[error("min.cleanable.dirty.ratio {0} is outside 0..=1")]
    MinCleanableDirtyRatio(String),
    #[error("min.compaction.lag.ms {0} must be non-negative")]
    MinCompactionLagMs(i64),
}

impl LogConfig {
    pub fn validate(&self) -> Result<(), LogConfigError> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(LogConfigError::SegmentBytes(self.segment_bytes));
        }
        if self.segment_ms <= 0 {
            return Err(LogConfigError::SegmentMs(self.segment_ms));
        }
        if self.segment_index_bytes < 12 {
            return Err(LogConfigError::SegmentIndexBytes(self.segment_index_bytes));
        }
        if self.retention_ms < -1 {
            return Err(LogConfigError::RetentionMs(self.retention_ms));
        }
        if self.retention_bytes < -1 {
            return Err(LogConfigError::RetentionBytes(self.retention_bytes));
        }
        if self.max_message_bytes == 0 {
            return Err(LogConfigError::MaxMessageBytes(self.max_message_bytes));
        }
        self.validate_cleaner()
    }

    fn validate_cleaner(&self) -> Result<(), LogConfigError> {
        if self.delete_retention_ms < 0 {
            return Err(LogConfigError::DeleteRetentionMs(self.delete_retention_ms));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            // The value is kept as text so that the error stays `Eq`.
            let ratio = self.min_cleanable_dirty_ratio.to_string();
            return Err(LogConfigError::MinCleanableDirtyRatio(ratio));
        }
        if self.min_compaction_lag_ms < 0 {
            return Err(LogConfigError::MinCompactionLagMs(
                self.min_compaction_lag_ms,
            ));
        }
        Ok(())
    }

    /// Offset index entries a segment holds before it must roll.
    pub(crate) fn offset_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / super::offset_index::ENTRY_BYTES as u32) as usize
    }

    /// Time index entries a segment holds before it must roll.
    pub(crate) fn time_index_entries_max(&self) -> usize {
        (self.segment_index_bytes / super::time_index::ENTRY_BYTES as u32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let config = LogConfig::default();
        assert_eq!(config.segment_bytes, 1_073_741_824);
        assert_eq!(config.segment_ms, 604_800_000);
        assert_eq!(config.segment_index_bytes, 10_485_760);
        assert_eq!(config.index_interval_bytes, 4096);
        assert_eq!(config.retention_ms, 604_800_000);
        assert_eq!(config.retention_bytes, -1);
        assert_eq!(config.max_message_bytes, 1_048_588);
        assert!(config.cleanup_delete && !config.cleanup_compact);
        assert_eq!(config.delete_retention_ms, 86_400_000);
        assert_eq!(config.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(config.min_compaction_lag_ms, 0);
        assert_eq!(config.compression, None);
        assert_eq!(config.offset_index_entries_max(), 1_310_720);
        assert_eq!(config.time_index_entries_max(), 873_813);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn rejects_out_of_range_values() {
        let bad_segment = LogConfig {
            segment_bytes: 10,
            ..LogConfig::default()
        };
        assert_eq!(
            bad_segment.validate(),
            Err(LogConfigError::SegmentBytes(10))
        );
        let bad_retention = LogConfig {
            retention_ms: -2,
            ..LogConfig::default()
        };
        assert_eq!(
            bad_retention.validate(),
            Err(LogConfigError::RetentionMs(-2))
        );
        let bad_index = LogConfig {
            segment_index_bytes: 11,
            ..LogConfig::default()
        };
        assert_eq!(
            bad_index.validate(),
            Err(LogConfigError::SegmentIndexBytes(11))
        );
        let bad_ratio = LogConfig {
            min_cleanable_dirty_ratio: 1.5,
            ..LogConfig::default()
        };
        assert_eq!(
            bad_ratio.validate(),
            Err(LogConfigError::MinCleanableDirtyRatio("1.5".to_string()))
        );
        let bad_lag = LogConfig {
            min_compaction_lag_ms: -1,
            ..LogConfig::default()
        };
        assert_eq!(
            bad_lag.validate(),
            Err(LogConfigError::MinCompactionLagMs(-1))
        );
    }
}
