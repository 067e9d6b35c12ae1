//! Record batches (magic v2): the header view, records, compression codecs,
//! control records, produce-path validation and a builder.
//!
//! # Layout
//! - `batch`: zero-copy header view, CRC validation, in-place rewrites.
//! - `records`: the records inside a batch, sliced from shared bytes.
//! - `varint`: Kafka's zigzag varints, strictly bounded.
//! - `compression`: gzip, snappy, lz4, zstd under a decompressed-size limit.
//! - `append`: LogValidator rules before an append; Kafka error mapping.
//! - `control`: transaction markers (COMMIT / ABORT control records).
//! - `builder`: `BatchBuilder`, for producers-in-tests and the perf harness.
//! - `recompress`: a topic's `compression.type` applied to stored batches.

pub mod append;
pub mod batch;
pub mod builder;
pub mod compression;
pub mod control;
pub mod recompress;
pub mod records;
pub mod varint;

pub use append::{
    check_header, validate_for_append, AppendInfo, AppendOrigin, InvalidBatch, RejectKind,
};
pub use batch::{
    batch_size_bytes, compute_crc, set_base_offset, set_max_timestamp, set_partition_leader_epoch,
    validate, write_crc, BatchError, BatchHeader, Batches, RecordBatch, TimestampType,
    BATCH_HEADER_BYTES, BATCH_LENGTH_MIN, LOG_OVERHEAD_BYTES, MAGIC_V2, NO_PRODUCER_ID,
};
pub use builder::{BatchBuilder, BuildError, HeaderRef};
pub use compression::{compress, compress_with_level, decompress, CompressionError};
pub use control::{
    control_type, decode_end_txn_marker, encode_end_txn_batch, ControlError, ControlType,
    EndTxnMarker,
};
pub use recompress::{recompress_batch, recompress_batches, RecompressError, TargetCompression};
pub use records::{
    Header, Record, RecordError, RecordField, RecordIter, RecordLimits,
    DECOMPRESSED_BYTES_MAX_DEFAULT,
};
pub use varint::VarintError;

/// The codec in a batch's attributes (bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// Every codec, in attribute order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    pub fn from_attribute(codec: u8) -> Option<Compression> {
        match codec {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }
}
