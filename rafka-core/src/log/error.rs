//! The log's typed errors. The broker maps them to Kafka error codes in one
//! place (OffsetOutOfRange -> OFFSET_OUT_OF_RANGE, BatchTooLarge ->
//! MESSAGE_TOO_LARGE, Io/Failed/ReadOnly/Corrupt -> KAFKA_STORAGE_ERROR,
//! ...).

use std::path::PathBuf;

use rafka_proto::record::BatchError;

use super::checkpoint::CheckpointError;
use super::config::LogConfigError;
use crate::io::IoError;

/// Everything a [`super::Log`] operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// Bytes on disk that were valid when written no longer are.
    #[error("corrupt segment {} at position {position}: {kind}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        kind: CorruptKind,
    },
    /// A batch handed to `append` is not a well-formed v2 batch.
    #[error("invalid batch at byte {position} of the append: {source}")]
    InvalidBatch {
        position: usize,
        #[source]
        source: BatchError,
    },
    #[error("batch of {size_bytes} bytes exceeds max.message.bytes {limit_bytes}")]
    BatchTooLarge { size_bytes: usize, limit_bytes: u32 },
    #[error("append holds no batch")]
    EmptyAppend,
    /// A follower's append does not continue the log: the leader's batch
    /// starts at `found` where the log ends at `expected`.
    #[error("replicated batch at offset {found} where the log ends at {expected}")]
    NotContiguous { expected: i64, found: i64 },
    /// One append spans more offsets than a segment can address.
    #[error("append spans {span} offsets, more than a segment can index")]
    OffsetSpanTooLarge { span: i64 },
    /// A failure half-way through replacing segments left the in-memory
    /// log out of step with the disk, so it serves nothing more until it
    /// is reopened (recovered).
    #[error("log is offline after a failed {op}")]
    Failed { op: &'static str },
    /// An fsync failed, so the page cache may hold data the disk lost: the
    /// log takes no more writes until it is reopened (recovered); reads
    /// below the recovery point are still served.
    #[error("log refuses writes after a failed {op} (reads of durable data are served)")]
    ReadOnly { op: &'static str },
    /// A file region shrank between planning a read and reading it
    /// (a concurrent truncation).
    #[error("region at {position} of {expected_bytes} bytes returned only {read_bytes}")]
    RegionShrunk {
        position: u64,
        expected_bytes: u64,
        read_bytes: u64,
    },
    #[error(transparent)]
    Config(#[from] LogConfigError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// What exactly is wrong with bytes read back from a segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorruptKind {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("batch of {size_bytes} bytes runs past the segment end {segment_bytes}")]
    PastEnd { size_bytes: u64, segment_bytes: u64 },
    #[error("base offset {base_offset} is below the expected {expected_min}")]
    OffsetNotIncreasing { base_offset: i64, expected_min: i64 },
    /// In a log that is not compacted every batch starts right after the
    /// previous one (the first at the segment's base offset): a damaged
    /// base offset (outside the CRC) shows up as a gap or an overlap.
    #[error(
        "base offset {base_offset} is not the expected {expected}: offsets must be contiguous"
    )]
    OffsetGap { base_offset: i64, expected: i64 },
    #[error("last offset {last_offset} does not fit below {limit}")]
    OffsetBeyondSegment { last_offset: i64, limit: i64 },
    #[error("negative lastOffsetDelta {0}")]
    NegativeOffsetDelta(i32),
}
