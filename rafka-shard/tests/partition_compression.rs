//! A partition stores batches with its topic's `compression.type` as its
//! config has it at the append: a config change takes effect on the next
//! produce, the stored size is what `max.message.bytes` limits, and a
//! batch whose compressed records cannot be read appends nothing. Real
//! files (glommio), one shard.

use std::path::Path;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use glommio::{LocalExecutorBuilder, Placement};
use rafka_core::io::{Clock, SystemClock};
use rafka_core::log::{LogConfig, RecoveryHints};
use rafka_proto::error::ErrorCode;
use rafka_proto::record::{
    write_crc, BatchBuilder, Batches, Compression, Record, RecordBatch, RecordLimits,
    TargetCompression, BATCH_HEADER_BYTES,
};
use rafka_shard::partition::{Partition, PartitionSpec};
use rafka_shard::storage::GlommioStorage;

/// Small enough for an unprivileged RLIMIT_MEMLOCK.
const IO_MEMORY_BYTES: usize = 512 << 10;
const TIMESTAMP_MS: i64 = 1_700_000_000_000;

/// Three records of producer 77, the second long and compressible, one
/// with a header.
fn batch(codec: Compression, tag: &str, base_sequence: i32) -> Bytes {
    let mut builder = BatchBuilder::new(codec)
        .producer(77, 2, base_sequence)
        .base_timestamp_ms(TIMESTAMP_MS);
    let long = format!("{tag} ").repeat(500);
    builder.push_record(TIMESTAMP_MS, Some(tag.as_bytes()), Some(b"first"), &[]);
    builder.push_record(TIMESTAMP_MS + 3, None, Some(long.as_bytes()), &[]);
    builder.push_record(
        TIMESTAMP_MS + 9,
        Some(b"h"),
        None,
        &[rafka_proto::record::HeaderRef::new("trace", Some(b"t1"))],
    );
    builder.build().expect("batch")
}

fn spec(dir: &Path, config: LogConfig) -> PartitionSpec {
    PartitionSpec {
        topic: Rc::from("squeezed"),
        index: 0,
        dir: dir.to_path_buf(),
        config,
        hints: RecoveryHints::default(),
        write_caching: false,
        high_watermark: None,
    }
}

fn records_of(batch: &RecordBatch) -> Vec<Record> {
    batch
        .records(RecordLimits::default())
        .expect("records")
        .map(|record| record.expect("record"))
        .collect()
}

fn parsed(bytes: &Bytes) -> RecordBatch {
    RecordBatch::parse(bytes).expect("batch").0
}

fn with_config(compression: Option<TargetCompression>, max_message_bytes: u32) -> LogConfig {
    LogConfig {
        compression,
        max_message_bytes,
        ..LogConfig::default()
    }
}

#[test]
fn the_codec_follows_the_config_of_the_moment() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("squeezed-0");
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("executor");
    executor.run(async move {
        let clock: Rc<dyn Clock> = Rc::new(SystemClock);
        let storage = GlommioStorage::new();
        let partition = Partition::open(storage, clock, spec(&dir, LogConfig::default()))
            .await
            .expect("open");
        let sent = [
            batch(Compression::Lz4, "a", 10),
            batch(Compression::None, "b", 13),
            batch(Compression::Gzip, "c", 16),
            batch(Compression::Zstd, "d", 19),
        ];
        // producer: as sent.
        assert_eq!(
            partition.append(&sent[0], None).await.unwrap().base_offset,
            0
        );
        // zstd from now on, at level 5.
        let zstd = TargetCompression {
            codec: Compression::Zstd,
            level: Some(5),
        };
        partition
            .set_config(with_config(Some(zstd), 1_048_588))
            .await
            .expect("config");
        assert_eq!(
            partition.append(&sent[1], None).await.unwrap().base_offset,
            3
        );
        // uncompressed from now on.
        let none = TargetCompression::new(Compression::None);
        partition
            .set_config(with_config(Some(none), 1_048_588))
            .await
            .expect("config");
        assert_eq!(
            partition.append(&sent[2], None).await.unwrap().base_offset,
            6
        );
        // A zstd batch that is small only compressed: stored uncompressed
        // it passes 1,000 bytes, so max.message.bytes refuses it.
        assert!(sent[3].len() < 1_000, "{} bytes compressed", sent[3].len());
        partition
            .set_config(with_config(Some(none), 1_000))
            .await
            .expect("config");
        let refused = partition
            .append(&sent[3], None)
            .await
            .expect_err("too large");
        assert_eq!(refused.error_code(), ErrorCode::MESSAGE_TOO_LARGE);
        // Damaged gzip under a good CRC: refused, nothing appended.
        partition
            .set_config(with_config(Some(zstd), 1_048_588))
            .await
            .expect("config");
        let mut damaged = BytesMut::from(&batch(Compression::Gzip, "e", 19)[..]);
        damaged[BATCH_HEADER_BYTES + 30] ^= 0xff;
        damaged[BATCH_HEADER_BYTES + 31] ^= 0xff;
        write_crc(&mut damaged);
        let refused = partition
            .append(&damaged.freeze(), None)
            .await
            .expect_err("corrupt");
        assert_eq!(refused.error_code(), ErrorCode::CORRUPT_MESSAGE);
        assert_eq!(partition.log_end_offset(), 9);

        partition.flush().await.expect("flush");
        let read = partition.fetch(0, 1 << 20).await.expect("fetch");
        let stored: Vec<RecordBatch> = Batches::new(read.records)
            .map(|b| b.expect("stored batch is valid"))
            .collect();
        let codecs: Vec<(i64, Compression)> = stored
            .iter()
            .map(|b| (b.header().base_offset, b.header().compression().unwrap()))
            .collect();
        assert_eq!(
            codecs,
            vec![
                (0, Compression::Lz4),
                (3, Compression::Zstd),
                (6, Compression::None)
            ]
        );
        // Under lz4 (the producer's) only baseOffset and the leader epoch
        // changed.
        assert_eq!(stored[0].as_bytes()[16..], sent[0][16..]);
        for ((stored, sent), base_sequence) in stored.iter().zip(&sent).zip([10, 13, 16]) {
            let sent = parsed(sent);
            assert_eq!(records_of(stored), records_of(&sent));
            let (s, h) = (stored.header(), sent.header());
            assert_eq!(
                (s.producer_id, s.producer_epoch, s.base_sequence),
                (77, 2, base_sequence)
            );
            assert_eq!(
                (s.base_timestamp, s.max_timestamp, s.record_count),
                (h.base_timestamp, h.max_timestamp, 3)
            );
        }
    });
}
