//! Compression codecs of v2 record batches: gzip, snappy (snappy-java
//! framing and raw), lz4 (frame format) and zstd, each decoded under a
//! decompressed-size limit.
//!
//! The limit is enforced while decoding: a zip bomb stops with
//! [`CompressionError::TooLarge`] after at most `decompressed_bytes_max + 1`
//! bytes of output, and a size the stream merely declares (a snappy
//! preamble, an lz4 content size) is checked before anything is allocated
//! for it.
//!
//! Encoders produce what the Java client produces, so every Kafka client
//! can read batches rafka writes: gzip at the default level, snappy in
//! snappy-java framing, lz4 frames with independent 64 KiB blocks and a
//! correct header checksum, zstd at level 3.

use std::io::{self, Read, Write};

use bytes::{BufMut, Bytes, BytesMut};

use crate::record::Compression;

/// snappy-java stream magic, then version 1 and compatible version 1.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
const XERIAL_VERSION: i32 = 1;
const XERIAL_COMPATIBLE_VERSION: i32 = 1;
/// snappy-java's default block size; each block is compressed on its own.
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// Kafka's default `compression.zstd.level`.
const ZSTD_LEVEL: i32 = 3;
/// zstd's own default decoder window limit (128 MiB). Producers at high
/// levels stream with windows this large; a smaller cap would reject batches
/// Kafka accepts. The window is reserved, not touched, so it costs address
/// space rather than memory; output stays bounded by the limit.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Smallest first output buffer, so tiny inputs do not grow it byte by byte.
const OUTPUT_BYTES_MIN: usize = 4096;

/// Why a compressed records section could not be decoded or encoded.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    #[error("decompressed {codec:?} data exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        codec: Compression,
        limit_bytes: usize,
    },
    #[error("corrupt {codec:?} data")]
    Corrupt {
        codec: Compression,
        #[source]
        source: io::Error,
    },
    #[error("corrupt snappy data")]
    Snappy(#[source] snap::Error),
    #[error("snappy-java block at byte {at_bytes} runs past the end of the data")]
    SnappyFraming { at_bytes: usize },
    #[error("compressing with {codec:?} failed")]
    Encode {
        codec: Compression,
        #[source]
        source: io::Error,
    },
}

/// Decompresses a records section. `Compression::None` hands back `input`
/// itself (no copy, no limit: nothing expands).
pub fn decompress(
    codec: Compression,
    input: &Bytes,
    decompressed_bytes_max: usize,
) -> Result<Bytes, CompressionError> {
    let limit = decompressed_bytes_max;
    let output = match codec {
        Compression::None => return Ok(input.clone()),
        Compression::Gzip => read_bounded(
            codec,
            flate2::bufread::MultiGzDecoder::new(&input[..]),
            input.len(),
            limit,
        )?,
        Compression::Snappy => decompress_snappy(input, limit)?,
        Compression::Lz4 => {
            check_lz4_frames(input)?;
            let decoder = lz4_flex::frame::FrameDecoder::new(&input[..]);
            read_bounded(codec, decoder, input.len(), limit)?
        }
        Compression::Zstd => decompress_zstd(input, limit)?,
    };
    Ok(Bytes::from(output))
}

/// Compresses `input` at the codec's default level and appends the
/// result to `out`.
pub fn compress(
    codec: Compression,
    input: &[u8],
    out: &mut BytesMut,
) -> Result<(), CompressionError> {
    compress_with_level(codec, None, input, out)
}

/// [`compress`] at `level` (Kafka's `compression.<codec>.level`): gzip
/// takes 1..=9 (-1 or `None`: zlib's default, 6), zstd any level libzstd
/// takes (`None`: 3). snappy has no levels, and lz4_flex compresses at one
/// (fast) level, so theirs is ignored: Kafka's lz4 levels above 2 select
/// lz4-HC, which only changes the ratio, never what a reader sees.
pub fn compress_with_level(
    codec: Compression,
    level: Option<i32>,
    input: &[u8],
    out: &mut BytesMut,
) -> Result<(), CompressionError> {
    let encode_error = |source| CompressionError::Encode { codec, source };
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            let writer = (&mut *out).writer();
            let mut encoder = flate2::write::GzEncoder::new(writer, gzip_level(level));
            encoder.write_all(input).map_err(encode_error)?;
            encoder.finish().map_err(encode_error)?;
        }
        Compression::Snappy => compress_snappy(input, out)?,
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let writer = (&mut *out).writer();
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, writer);
            encoder.write_all(input).map_err(encode_error)?;
            encoder
                .finish()
                .map_err(|error| encode_error(io::Error::other(error)))?;
        }
        Compression::Zstd => {
            let writer = (&mut *out).writer();
            let level = level.unwrap_or(ZSTD_LEVEL);
            let mut encoder = zstd::stream::Encoder::new(writer, level).map_err(encode_error)?;
            // A known size lets the decoder size its window to the content.
            encoder
                .set_pledged_src_size(Some(input.len() as u64))
                .map_err(encode_error)?;
            encoder.include_contentsize(true).map_err(encode_error)?;
            encoder.write_all(input).map_err(encode_error)?;
            encoder.finish().map_err(encode_error)?;
        }
    }
    Ok(())
}

/// Kafka's gzip level: 1..=9, anything else (its -1) zlib's default.
fn gzip_level(level: Option<i32>) -> flate2::Compression {
    match level.and_then(|level| u32::try_from(level).ok()) {
        Some(level @ 1..=9) => flate2::Compression::new(level),
        _ => flate2::Compression::default(),
    }
}

/// Reads a decoder to its end, failing as soon as it yields more than
/// `limit` bytes.
fn read_bounded(
    codec: Compression,
    decoder: impl Read,
    input_bytes: usize,
    limit: usize,
) -> Result<Vec<u8>, CompressionError> {
    let cap = limit.saturating_add(1);
    let guess = input_bytes.saturating_mul(4).max(OUTPUT_BYTES_MIN).min(cap);
    let mut output = Vec::with_capacity(guess);
    decoder
        .take(cap as u64)
        .read_to_end(&mut output)
        .map_err(|source| CompressionError::Corrupt { codec, source })?;
    if output.len() > limit {
        return Err(CompressionError::TooLarge {
            codec,
            limit_bytes: limit,
        });
    }
    Ok(output)
}

const LZ4_MAGIC: u32 = 0x184d_2204;
const LZ4_SKIPPABLE_MAGIC: u32 = 0x184d_2a50;
const LZ4_FLG_BLOCK_CHECKSUM: u8 = 0x10;
const LZ4_FLG_CONTENT_SIZE: u8 = 0x08;
const LZ4_FLG_CONTENT_CHECKSUM: u8 = 0x04;
const LZ4_FLG_DICT_ID: u8 = 0x01;
const LZ4_BLOCK_SIZE_MASK: u32 = 0x7fff_ffff;

/// Walks the lz4 frames block by block (lengths only, no decoding) and
/// checks every frame reaches its end mark. lz4_flex takes a stream cut at
/// a block boundary for a complete one; Kafka's Java reader does not, and
/// neither should a broker.
fn check_lz4_frames(input: &[u8]) -> Result<(), CompressionError> {
    let truncated = || CompressionError::Corrupt {
        codec: Compression::Lz4,
        source: io::Error::from(io::ErrorKind::UnexpectedEof),
    };
    let mut rest = input;
    while !rest.is_empty() {
        let (magic, tail) = split_u32_le(rest).ok_or_else(truncated)?;
        rest = if magic & 0xffff_fff0 == LZ4_SKIPPABLE_MAGIC {
            let (size, tail) = split_u32_le(tail).ok_or_else(truncated)?;
            tail.get(size as usize..).ok_or_else(truncated)?
        } else if magic == LZ4_MAGIC {
            skip_lz4_frame_body(tail).ok_or_else(truncated)?
        } else {
            // Not a frame: let the decoder report it as such.
            return Ok(());
        };
    }
    Ok(())
}

/// Skips a frame's descriptor, blocks and end mark; `None` if the input
/// ends first.
fn skip_lz4_frame_body(input: &[u8]) -> Option<&[u8]> {
    let flags = *input.first()?;
    let mut descriptor_bytes = 3; // FLG, BD, header checksum
    if flags & LZ4_FLG_CONTENT_SIZE != 0 {
        descriptor_bytes += 8;
    }
    if flags & LZ4_FLG_DICT_ID != 0 {
        descriptor_bytes += 4;
    }
    let block_checksum_bytes = if flags & LZ4_FLG_BLOCK_CHECKSUM != 0 {
        4
    } else {
        0
    };
    let mut rest = input.get(descriptor_bytes..)?;
    loop {
        let (block, tail) = split_u32_le(rest)?;
        if block == 0 {
            let checksum_bytes = if flags & LZ4_FLG_CONTENT_CHECKSUM != 0 {
                4
            } else {
                0
            };
            return tail.get(checksum_bytes..);
        }
        let size = (block & LZ4_BLOCK_SIZE_MASK) as usize;
        rest = tail.get(size.checked_add(block_checksum_bytes)?..)?;
    }
}

fn split_u32_le(input: &[u8]) -> Option<(u32, &[u8])> {
    let (head, tail) = input.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head), tail))
}

fn decompress_zstd(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let corrupt = |source| CompressionError::Corrupt {
        codec: Compression::Zstd,
        source,
    };
    let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?;
    decoder
        .window_log_max(ZSTD_WINDOW_LOG_MAX)
        .map_err(corrupt)?;
    read_bounded(Compression::Zstd, decoder, input.len(), limit)
}

/// Kafka's Java client writes snappy-java framing; librdkafka and others
/// write raw snappy. Both arrive with the same codec id, told apart by the
/// framing magic. Valid raw snappy cannot start with it: after the length
/// preamble (0x82 0x53) the first element would be a copy (`N` = 0x4e), and
/// there is nothing yet to copy from.
fn decompress_snappy(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    if input.len() >= XERIAL_HEADER_BYTES && input[..XERIAL_MAGIC.len()] == XERIAL_MAGIC {
        decompress_xerial(input, limit)
    } else {
        let mut output = alloc_snappy_output(&[input], limit)?;
        snap::raw::Decoder::new()
            .decompress(input, &mut output)
            .map_err(CompressionError::Snappy)?;
        Ok(output)
    }
}

/// snappy-java framing: the 16-byte header, then blocks of a 4-byte
/// big-endian compressed length and a raw snappy block. The version fields
/// are not checked, as neither the Java client nor librdkafka checks them.
fn decompress_xerial(input: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let blocks = xerial_blocks(&input[XERIAL_HEADER_BYTES..])?;
    let mut output = alloc_snappy_output(&blocks, limit)?;
    let mut decoder = snap::raw::Decoder::new();
    let mut written = 0;
    for block in blocks {
        written += decoder
            .decompress(block, &mut output[written..])
            .map_err(CompressionError::Snappy)?;
    }
    // Each block declared its size and decompress() fills exactly that.
    assert_eq!(written, output.len());
    Ok(output)
}

fn xerial_blocks(mut rest: &[u8]) -> Result<Vec<&[u8]>, CompressionError> {
    let mut blocks = Vec::new();
    let mut at_bytes = XERIAL_HEADER_BYTES;
    while !rest.is_empty() {
        let framing = CompressionError::SnappyFraming { at_bytes };
        let (length, tail) = rest.split_first_chunk::<4>().ok_or(framing)?;
        let length = usize::try_from(i32::from_be_bytes(*length))
            .map_err(|_| CompressionError::SnappyFraming { at_bytes })?;
        if length > tail.len() {
            return Err(CompressionError::SnappyFraming { at_bytes });
        }
        let (block, tail) = tail.split_at(length);
        blocks.push(block);
        rest = tail;
        at_bytes += 4 + length;
    }
    Ok(blocks)
}

/// Sums the sizes the blocks declare and allocates the output only if the
/// total is within the limit.
fn alloc_snappy_output(blocks: &[&[u8]], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut total: usize = 0;
    for block in blocks {
        let declared = snap::raw::decompress_len(block).map_err(CompressionError::Snappy)?;
        total = total.saturating_add(declared);
        if total > limit {
            return Err(CompressionError::TooLarge {
                codec: Compression::Snappy,
                limit_bytes: limit,
            });
        }
    }
    Ok(vec![0; total])
}

fn compress_snappy(input: &[u8], out: &mut BytesMut) -> Result<(), CompressionError> {
    let block_count = input.len().div_ceil(XERIAL_BLOCK_BYTES);
    out.reserve(
        XERIAL_HEADER_BYTES + block_count * (4 + snap::raw::max_compress_len(XERIAL_BLOCK_BYTES)),
    );
    out.put_slice(&XERIAL_MAGIC);
    out.put_i32(XERIAL_VERSION);
    out.put_i32(XERIAL_COMPATIBLE_VERSION);
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let length_at = out.len();
        let block_at = length_at + 4;
        out.resize(block_at + snap::raw::max_compress_len(chunk.len()), 0);
        let written = encoder
            .compress(chunk, &mut out[block_at..])
            .map_err(CompressionError::Snappy)?;
        out.truncate(block_at + written);
        // A block is at most max_compress_len(32 KiB) bytes, far below i32::MAX.
        let written = i32::try_from(written).map_err(|_| CompressionError::SnappyFraming {
            at_bytes: length_at,
        })?;
        out[length_at..block_at].copy_from_slice(&written.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn encode(codec: Compression, input: &[u8]) -> Bytes {
        let mut out = BytesMut::new();
        compress(codec, input, &mut out).unwrap();
        out.freeze()
    }

    #[test]
    fn roundtrip_every_codec() {
        let input: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in CODECS {
            let packed = encode(codec, &input);
            assert!(packed.len() < input.len(), "{codec:?} did not compress");
            let unpacked = decompress(codec, &packed, input.len()).unwrap();
            assert_eq!(unpacked, input, "{codec:?}");
        }
    }

    #[test]
    fn levels_change_the_bytes_not_the_content() {
        let input: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        for (codec, low, high) in [(Compression::Gzip, 1, 9), (Compression::Zstd, 1, 19)] {
            let mut fast = BytesMut::new();
            compress_with_level(codec, Some(low), &input, &mut fast).unwrap();
            let mut small = BytesMut::new();
            compress_with_level(codec, Some(high), &input, &mut small).unwrap();
            assert_ne!(fast, small, "{codec:?}");
            for packed in [fast.freeze(), small.freeze()] {
                assert_eq!(decompress(codec, &packed, input.len()).unwrap(), input);
            }
        }
        // gzip's -1 is zlib's default level, as no level at all.
        let mut default = BytesMut::new();
        compress_with_level(Compression::Gzip, Some(-1), &input, &mut default).unwrap();
        assert_eq!(default.freeze(), encode(Compression::Gzip, &input));
    }

    #[test]
    fn empty_input_roundtrips() {
        for codec in CODECS {
            let packed = encode(codec, b"");
            assert_eq!(decompress(codec, &packed, 0).unwrap().len(), 0, "{codec:?}");
        }
    }

    #[test]
    fn limit_is_exact() {
        let input = vec![7u8; 10_000];
        for codec in CODECS {
            let packed = encode(codec, &input);
            assert_eq!(decompress(codec, &packed, 10_000).unwrap().len(), 10_000);
            let error = decompress(codec, &packed, 9_999).unwrap_err();
            assert!(
                matches!(
                    error,
                    CompressionError::TooLarge {
                        limit_bytes: 9_999,
                        ..
                    }
                ),
                "{codec:?}: {error:?}"
            );
        }
    }

    #[test]
    fn snappy_writes_xerial_framing() {
        let packed = encode(Compression::Snappy, &[1u8; 70_000]);
        assert_eq!(packed[..8], XERIAL_MAGIC);
        assert_eq!(packed[8..16], [0, 0, 0, 1, 0, 0, 0, 1]);
        // 70 000 bytes make three 32 KiB blocks.
        let blocks = xerial_blocks(&packed[XERIAL_HEADER_BYTES..]).unwrap();
        assert_eq!(blocks.len(), 3);
    }

    #[test]
    fn raw_snappy_is_accepted() {
        let input = b"raw snappy as librdkafka writes it".repeat(20);
        let raw = snap::raw::Encoder::new().compress_vec(&input).unwrap();
        let unpacked = decompress(Compression::Snappy, &Bytes::from(raw), 1 << 20).unwrap();
        assert_eq!(unpacked, input);
    }

    #[test]
    fn xerial_block_past_end_is_framing_error() {
        let mut packed = encode(Compression::Snappy, b"hello hello hello").to_vec();
        packed.truncate(packed.len() - 1);
        let error = decompress(Compression::Snappy, &Bytes::from(packed), 1 << 20).unwrap_err();
        assert!(matches!(
            error,
            CompressionError::SnappyFraming { at_bytes: 16 }
        ));
    }

    #[test]
    fn lz4_frame_header_matches_kafka() {
        let packed = encode(Compression::Lz4, b"kafka");
        // Magic, then FLG: version 01, independent blocks, no checksums or
        // content size; BD: 64 KiB blocks.
        assert_eq!(packed[..4], [0x04, 0x22, 0x4d, 0x18]);
        assert_eq!(packed[4], 0x60);
        assert_eq!(packed[5], 0x40);
    }
}
