//! Record batches for the tests and the batches a partition stores: small
//! batch builders, a batch as the log rewrites it, and the segment files of
//! a partition directory read back in offset order.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use rafka_proto::record::{
    batch_size_bytes, set_base_offset, set_partition_leader_epoch, BatchBuilder, BatchHeader,
    Compression,
};

/// One uncompressed batch: record `i` is keyed `k<i>` and carries the
/// given value and timestamp.
pub fn batch(records: &[(&str, i64)]) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    for (i, (value, timestamp_ms)) in records.iter().enumerate() {
        let key = format!("k{i}");
        builder.push_record(
            *timestamp_ms,
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &[],
        );
    }
    builder.build().expect("batch")
}

/// A one-record batch keyed `key` whose value is `value`.
pub fn value_batch(value: &str) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Some(b"key".as_slice()), Some(value.as_bytes()));
    builder.build().expect("batch")
}

/// A batch of an idempotent producer (epoch 0), records keyed `key`.
pub fn idempotent_batch(producer_id: i64, base_sequence: i32, values: &[&str]) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None).producer(producer_id, 0, base_sequence);
    for value in values {
        builder.push(Some(b"key"), Some(value.as_bytes()));
    }
    builder.build().expect("batch")
}

/// `batch` as a log stores it at `offset` (leader epoch 0): only the two
/// fields before the magic byte, outside the CRC, change.
pub fn stored(batch: &Bytes, offset: i64) -> Bytes {
    let mut bytes = BytesMut::from(&batch[..]);
    set_base_offset(&mut bytes, offset);
    set_partition_leader_epoch(&mut bytes, 0);
    bytes.freeze()
}

/// The parts one after the other.
pub fn concat<B: AsRef<[u8]>>(parts: &[B]) -> Bytes {
    let mut out = BytesMut::new();
    for part in parts {
        out.extend_from_slice(part.as_ref());
    }
    out.freeze()
}

/// A partition directory's `.log` files in offset order, as on disk.
pub fn segment_files(dir: &Path) -> Vec<Bytes> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("partition dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| Bytes::from(std::fs::read(path).expect("segment")))
        .collect()
}

/// One stored batch.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub base_offset: i64,
    pub bytes: Bytes,
}

/// The batches of a log (segment bytes), in order.
pub fn batches_of(log: &Bytes) -> Vec<StoredBatch> {
    let mut batches = Vec::new();
    let mut position = 0;
    while position < log.len() {
        let size = batch_size_bytes(&log[position..]).expect("batch size");
        let bytes = log.slice(position..position + size);
        let header = BatchHeader::decode(&bytes).expect("header");
        batches.push(StoredBatch {
            base_offset: header.base_offset,
            bytes,
        });
        position += size;
    }
    batches
}
