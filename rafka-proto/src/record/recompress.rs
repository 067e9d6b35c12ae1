//! A topic's `compression.type` applied to the batches it stores (Kafka's
//! LogValidator): a batch whose codec differs from the topic's is stored
//! with the topic's codec and level instead; one that already has it is
//! stored as sent (no copy).
//!
//! The records section is decompressed and compressed again byte for byte:
//! records are self-delimiting and their encoding does not depend on the
//! codec, so offset deltas, timestamps, keys, values and headers come out
//! exactly as the producer wrote them. Of the header only the codec bits,
//! batchLength and the CRC change; baseOffset, producer id, epoch and base
//! sequence, the transactional bit, the timestamp type and both timestamps
//! stay. Kafka rebuilds the records with a fresh builder instead, which
//! gives the same records (the validator already requires offset deltas
//! 0..n-1) but may pick another base timestamp.
//!
//! Control batches (transaction markers, written by the broker itself) are
//! kept as they are: Kafka's rebuild would drop their control bit, and a
//! marker is one tiny record with nothing to gain.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ErrorCode;
use crate::record::batch::{
    batch_size_bytes, write_crc, BatchError, BatchHeader, RecordBatch, ATTR_COMPRESSION_MASK,
    BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES,
};
use crate::record::compression::{compress_with_level, decompress, CompressionError};
use crate::record::records::RecordLimits;
use crate::record::Compression;

/// The codec a topic stores its batches with, and the level
/// (`compression.<codec>.level`; see [`compress_with_level`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetCompression {
    pub codec: Compression,
    /// `None`: the codec's default.
    pub level: Option<i32>,
}

impl TargetCompression {
    pub fn new(codec: Compression) -> Self {
        TargetCompression { codec, level: None }
    }
}

/// Why a batch could not be stored with the topic's codec.
#[derive(Debug, thiserror::Error)]
pub enum RecompressError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("decompressing the records: {0}")]
    Decompress(#[source] CompressionError),
    #[error("compressing the records: {0}")]
    Compress(#[source] CompressionError),
    #[error("the recompressed batch of {size_bytes} bytes does not fit an i32 batchLength")]
    TooLarge { size_bytes: usize },
}

impl RecompressError {
    /// The produce response's code: damaged compressed data is a corrupt
    /// message, as for any other damage found on the produce path.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            RecompressError::TooLarge { .. }
            | RecompressError::Decompress(CompressionError::TooLarge { .. }) => {
                ErrorCode::MESSAGE_TOO_LARGE
            }
            RecompressError::Batch(_) | RecompressError::Decompress(_) => {
                ErrorCode::CORRUPT_MESSAGE
            }
            // Encoding into memory does not fail on bytes that decoded.
            RecompressError::Compress(_) => ErrorCode::UNKNOWN_SERVER_ERROR,
        }
    }
}

/// `batches` (whole v2 batches, as one append carries them) with every
/// batch in `target`'s codec. When none needs it, `batches` itself comes
/// back: headers are read, nothing is copied or checksummed. A batch that
/// is rewritten has its CRC checked first, since its bytes are about to be
/// trusted and signed again.
pub fn recompress_batches(
    batches: &Bytes,
    target: TargetCompression,
    limits: RecordLimits,
) -> Result<Bytes, RecompressError> {
    let mut out: Option<BytesMut> = None;
    let mut position = 0usize;
    while position < batches.len() {
        let rest = &batches[position..];
        let size_bytes = batch_size_bytes(rest)?;
        if size_bytes > rest.len() {
            return Err(BatchError::Truncated {
                needed_bytes: size_bytes,
                available_bytes: rest.len(),
            }
            .into());
        }
        let header = BatchHeader::decode(rest)?;
        let end = position + size_bytes;
        if keeps_codec(&header, target)? {
            if let Some(out) = out.as_mut() {
                out.extend_from_slice(&batches[position..end]);
            }
        } else {
            let (batch, _) = RecordBatch::parse(&batches.slice(position..end))?;
            let rewritten = recompress_batch(&batch, target, limits)?;
            out.get_or_insert_with(|| BytesMut::from(&batches[..position]))
                .extend_from_slice(&rewritten);
        }
        position = end;
    }
    Ok(out.map_or_else(|| batches.clone(), BytesMut::freeze))
}

/// Whether a batch is stored as it is under `target`.
fn keeps_codec(header: &BatchHeader, target: TargetCompression) -> Result<bool, BatchError> {
    Ok(header.is_control() || header.compression()? == target.codec)
}

/// One batch rewritten with `target`'s codec (see the module doc for what
/// is kept). A batch already in that codec is returned as it is.
pub fn recompress_batch(
    batch: &RecordBatch,
    target: TargetCompression,
    limits: RecordLimits,
) -> Result<Bytes, RecompressError> {
    let header = *batch.header();
    let codec = header.compression()?;
    if keeps_codec(&header, target)? {
        return Ok(batch.as_bytes().clone());
    }
    let records = decompress(codec, &batch.records_bytes(), limits.decompressed_bytes_max)
        .map_err(RecompressError::Decompress)?;
    let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + records.len());
    out.put_bytes(0, BATCH_HEADER_BYTES);
    compress_with_level(target.codec, target.level, &records, &mut out)
        .map_err(RecompressError::Compress)?;
    let size_bytes = out.len();
    let batch_length = i32::try_from(size_bytes - LOG_OVERHEAD_BYTES)
        .map_err(|_| RecompressError::TooLarge { size_bytes })?;
    let header = BatchHeader {
        batch_length,
        attributes: (header.attributes & !ATTR_COMPRESSION_MASK) | target.codec as i16,
        crc: 0,
        ..header
    };
    let head: &mut [u8; BATCH_HEADER_BYTES] = out
        .first_chunk_mut()
        .expect("the buffer starts with room for the header");
    header.encode(head);
    write_crc(&mut out);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::batch::validate;
    use crate::record::builder::{BatchBuilder, HeaderRef};
    use crate::record::records::Record;
    use crate::record::{encode_end_txn_batch, ControlType, EndTxnMarker, TimestampType};

    const BASE_TIMESTAMP_MS: i64 = 1_700_000_000_000;

    /// An idempotent, transactional batch with every kind of record field:
    /// null key, null value, empty value, headers (one with a null value),
    /// timestamps before and after the base, a value long enough to compress.
    fn varied_batch(codec: Compression) -> Bytes {
        let long_value = b"compressible ".repeat(200);
        let mut builder = BatchBuilder::new(codec)
            .producer(4242, 7, 1_000)
            .transactional(true)
            .base_timestamp_ms(BASE_TIMESTAMP_MS);
        builder.push_record(BASE_TIMESTAMP_MS, Some(b"k0"), Some(b"v0"), &[]);
        builder.push_record(BASE_TIMESTAMP_MS + 17, None, Some(&long_value), &[]);
        builder.push_record(
            BASE_TIMESTAMP_MS - 5,
            Some(b"k2"),
            None,
            &[
                HeaderRef::new("trace", Some(b"abc")),
                HeaderRef::new("empty", None),
            ],
        );
        builder.push_record(BASE_TIMESTAMP_MS + 1_000, Some(b""), Some(b""), &[]);
        builder.build().expect("batch")
    }

    fn parsed(bytes: &Bytes) -> RecordBatch {
        RecordBatch::parse(bytes).expect("valid batch").0
    }

    fn records_of(batch: &RecordBatch) -> Vec<Record> {
        batch
            .records(RecordLimits::default())
            .expect("records")
            .map(|record| record.expect("record"))
            .collect()
    }

    fn target(codec: Compression) -> TargetCompression {
        TargetCompression::new(codec)
    }

    #[test]
    fn every_codec_pair_keeps_header_fields_and_records_exactly() {
        for from in Compression::ALL {
            let sent = varied_batch(from);
            let sent_batch = parsed(&sent);
            let sent_header = *sent_batch.header();
            for to in Compression::ALL {
                let stored = recompress_batch(&sent_batch, target(to), RecordLimits::default())
                    .expect("recompress");
                let header = validate(&stored).expect("stored batch validates (CRC)");
                assert_eq!(header.compression().unwrap(), to, "{from:?} -> {to:?}");
                if from == to {
                    assert_eq!(stored, sent, "{from:?} is stored as sent");
                    continue;
                }
                let expected = BatchHeader {
                    batch_length: header.batch_length,
                    crc: header.crc,
                    attributes: (sent_header.attributes & !ATTR_COMPRESSION_MASK) | to as i16,
                    ..sent_header
                };
                assert_eq!(header, expected, "{from:?} -> {to:?}");
                assert_eq!(header.producer_id, 4242);
                assert_eq!((header.producer_epoch, header.base_sequence), (7, 1_000));
                assert!(header.is_transactional() && !header.is_control());
                assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
                assert_eq!(header.base_timestamp, BASE_TIMESTAMP_MS);
                assert_eq!(header.max_timestamp, BASE_TIMESTAMP_MS + 1_000);
                assert_eq!((header.record_count, header.last_offset_delta), (4, 3));
                let records = records_of(&parsed(&stored));
                assert_eq!(records, records_of(&sent_batch), "{from:?} -> {to:?}");
                let fields: Vec<(i32, i64, Option<&[u8]>)> = records
                    .iter()
                    .map(|r| (r.offset_delta, r.timestamp_delta, r.key.as_deref()))
                    .collect();
                assert_eq!(
                    fields,
                    vec![
                        (0, 0, Some(&b"k0"[..])),
                        (1, 17, None),
                        (2, -5, Some(&b"k2"[..])),
                        (3, 1_000, Some(&b""[..])),
                    ]
                );
                assert_eq!(records[1].value.as_deref().map(<[u8]>::len), Some(2_600));
                assert_eq!(records[2].value, None);
                assert_eq!(records[2].headers[0].key_str(), Some("trace"));
                assert_eq!(records[2].headers[0].value.as_deref(), Some(&b"abc"[..]));
                assert_eq!(records[2].headers[1].value, None);
            }
        }
    }

    #[test]
    fn levels_reach_the_encoder() {
        let mut builder = BatchBuilder::new(Compression::None);
        for i in 0..2_000u32 {
            let value = format!("value {} of {}", i % 97, i * 7919 % 1_000);
            builder.push(Some(&i.to_be_bytes()), Some(value.as_bytes()));
        }
        let sent = builder.build().expect("batch");
        let batch = parsed(&sent);
        let at = |level| {
            let target = TargetCompression {
                codec: Compression::Zstd,
                level: Some(level),
            };
            recompress_batch(&batch, target, RecordLimits::default()).expect("zstd")
        };
        let (fast, small) = (at(1), at(19));
        assert_ne!(fast, small);
        assert_eq!(records_of(&parsed(&fast)), records_of(&parsed(&small)));
    }

    #[test]
    fn log_append_time_batches_keep_their_type() {
        let mut builder = BatchBuilder::new(Compression::Gzip)
            .timestamp_type(TimestampType::LogAppendTime)
            .base_timestamp_ms(BASE_TIMESTAMP_MS);
        builder.push(Some(b"k"), Some(b"v"));
        let sent = builder.build().expect("batch");
        let stored = recompress_batch(
            &parsed(&sent),
            target(Compression::Snappy),
            RecordLimits::default(),
        )
        .expect("recompress");
        let header = validate(&stored).expect("valid");
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(header.compression().unwrap(), Compression::Snappy);
    }

    #[test]
    fn batches_already_in_the_codec_are_not_copied() {
        let sent = varied_batch(Compression::Lz4);
        let stored = recompress_batches(&sent, target(Compression::Lz4), RecordLimits::default())
            .expect("same codec");
        assert_eq!(stored.as_ptr(), sent.as_ptr(), "the same bytes, not a copy");
        assert_eq!(stored.len(), sent.len());
    }

    #[test]
    fn control_batches_are_kept() {
        let marker = EndTxnMarker {
            control_type: ControlType::Commit,
            coordinator_epoch: 3,
        };
        let marker = encode_end_txn_batch(marker, 9, 1, BASE_TIMESTAMP_MS).expect("marker");
        let stored =
            recompress_batches(&marker, target(Compression::Zstd), RecordLimits::default())
                .expect("marker");
        assert_eq!(stored, marker);
    }

    #[test]
    fn mixed_batches_are_rewritten_in_order() {
        let first = varied_batch(Compression::Gzip);
        let second = varied_batch(Compression::None);
        let third = varied_batch(Compression::Gzip);
        let mut joined = BytesMut::new();
        for batch in [&first, &second, &third] {
            joined.extend_from_slice(batch);
        }
        let stored = recompress_batches(
            &joined.freeze(),
            target(Compression::Gzip),
            RecordLimits::default(),
        )
        .expect("mixed");
        let batches: Vec<RecordBatch> = crate::record::Batches::new(stored)
            .map(|b| b.expect("valid"))
            .collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[0].as_bytes(), &first);
        assert_eq!(batches[2].as_bytes(), &third);
        assert_eq!(
            batches[1].header().compression().unwrap(),
            Compression::Gzip
        );
        assert_eq!(records_of(&batches[1]), records_of(&parsed(&second)));
    }

    #[test]
    fn corrupt_compressed_records_are_a_corrupt_message() {
        let sent = varied_batch(Compression::Gzip);
        let mut damaged = BytesMut::from(&sent[..]);
        // Inside the gzip stream, past its header; then re-sign, so only
        // the decompression can notice.
        let at = BATCH_HEADER_BYTES + 20;
        damaged[at] ^= 0xff;
        damaged[at + 1] ^= 0xff;
        write_crc(&mut damaged);
        let damaged = damaged.freeze();
        let error =
            recompress_batches(&damaged, target(Compression::None), RecordLimits::default())
                .expect_err("damaged gzip");
        assert!(matches!(error, RecompressError::Decompress(_)), "{error:?}");
        assert_eq!(error.error_code(), ErrorCode::CORRUPT_MESSAGE);
        // A bad CRC is found before anything is decompressed.
        let mut unsigned = BytesMut::from(&sent[..]);
        unsigned[BATCH_HEADER_BYTES] ^= 1;
        let error = recompress_batches(
            &unsigned.freeze(),
            target(Compression::None),
            RecordLimits::default(),
        )
        .expect_err("bad crc");
        assert!(matches!(
            error,
            RecompressError::Batch(BatchError::CrcMismatch { .. })
        ));
        assert_eq!(error.error_code(), ErrorCode::CORRUPT_MESSAGE);
    }

    #[test]
    fn a_bomb_is_too_large() {
        let mut builder = BatchBuilder::new(Compression::Zstd);
        builder.push(None, Some(&vec![0u8; 100_000]));
        let sent = builder.build().expect("batch");
        let limits = RecordLimits {
            decompressed_bytes_max: 10_000,
        };
        let error = recompress_batches(&sent, target(Compression::None), limits)
            .expect_err("over the limit");
        assert_eq!(error.error_code(), ErrorCode::MESSAGE_TOO_LARGE);
    }
}
