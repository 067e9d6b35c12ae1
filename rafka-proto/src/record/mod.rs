//! Record batches (magic v2): the header view, records, compression codecs,
//! control records and a builder.

pub mod batch;

pub use batch::{
    batch_size_bytes, set_base_offset, set_partition_leader_epoch, validate, BatchError,
    BatchHeader, Batches, RecordBatch, TimestampType, BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES,
};

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
