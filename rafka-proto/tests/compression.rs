//! Codecs under hostile input: zip bombs and declared sizes stop at the
//! limit (checked with an allocator that records the largest request),
//! garbage and truncated streams fail with typed errors, and batches
//! written by each codec read back.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{Bytes, BytesMut};
use rafka_proto::record::{
    compress, decompress, BatchBuilder, Compression, CompressionError, RecordBatch, RecordError,
    RecordLimits,
};
use rafka_testkit::rng::{seeds, Rng};

/// Records the largest allocation each thread asks for, so a test can show
/// that a declared or expanded size never reached the allocator.
struct LargestAllocation;

thread_local! {
    static LARGEST_BYTES: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // try_with: the slot may be gone while the thread shuts down.
    let _ = LARGEST_BYTES.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract; passed through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` via `alloc`/`realloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Runs `f` and returns its result with the largest allocation it made.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST_BYTES.with(|largest| largest.set(0));
    let result = f();
    (result, LARGEST_BYTES.with(Cell::get))
}

const CODECS: [Compression; 4] = [
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];
const LIMIT_BYTES: usize = 1 << 20;

fn encode(codec: Compression, input: &[u8]) -> Bytes {
    let mut out = BytesMut::new();
    compress(codec, input, &mut out).unwrap();
    out.freeze()
}

fn assert_too_large(result: Result<Bytes, CompressionError>, codec: Compression) {
    match result {
        Err(CompressionError::TooLarge {
            codec: got,
            limit_bytes,
        }) => {
            assert_eq!(got, codec);
            assert_eq!(limit_bytes, LIMIT_BYTES);
        }
        other => panic!("{codec:?}: expected TooLarge, got {other:?}"),
    }
}

#[test]
fn zip_bombs_stop_at_the_limit() {
    let zeros = vec![0u8; 32 * LIMIT_BYTES];
    for codec in CODECS {
        let bomb = encode(codec, &zeros);
        assert!(bomb.len() * 20 < zeros.len(), "{codec:?} bomb too weak");
        let (result, largest) = largest_allocation(|| decompress(codec, &bomb, LIMIT_BYTES));
        assert_too_large(result, codec);
        // Growth by doubling may reserve up to twice the limit, never the
        // 32 MiB the bomb expands to.
        assert!(
            largest <= 2 * LIMIT_BYTES + 64 * 1024,
            "{codec:?}: {largest}"
        );
    }
}

#[test]
fn raw_snappy_declaring_4_gib_fails_before_allocating() {
    // Preamble varint 0xffff_ffff, then a literal that would never end.
    let bomb = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0xf0, 0x00, 0x00]);
    let (result, largest) =
        largest_allocation(|| decompress(Compression::Snappy, &bomb, LIMIT_BYTES));
    assert_too_large(result, Compression::Snappy);
    assert!(largest < 4096, "{largest}");
}

fn xerial(blocks: &[&[u8]]) -> Bytes {
    let mut out = vec![
        0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ];
    for block in blocks {
        out.extend_from_slice(&(block.len() as i32).to_be_bytes());
        out.extend_from_slice(block);
    }
    Bytes::from(out)
}

#[test]
fn xerial_blocks_declaring_too_much_fail_before_allocating() {
    let huge = xerial(&[&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]]);
    let (result, largest) =
        largest_allocation(|| decompress(Compression::Snappy, &huge, LIMIT_BYTES));
    assert_too_large(result, Compression::Snappy);
    assert!(largest < 4096, "{largest}");
    // Many blocks, each declaring 512 KiB (varint 0x80 0x80 0x20).
    let block: &[u8] = &[0x80, 0x80, 0x20, 0x00];
    let many = xerial(&[block; 64]);
    let (result, largest) =
        largest_allocation(|| decompress(Compression::Snappy, &many, LIMIT_BYTES));
    assert_too_large(result, Compression::Snappy);
    assert!(largest < 4096, "{largest}");
}

#[test]
fn zstd_frame_declaring_a_terabyte_is_refused() {
    // Magic, single-segment frame with an 8-byte content size of 2^40, then
    // one raw block of 1 byte.
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
    frame.extend_from_slice(&(1u64 << 40).to_le_bytes());
    frame.extend_from_slice(&[0x09, 0x00, 0x00, 0x41]);
    let result = decompress(Compression::Zstd, &Bytes::from(frame), LIMIT_BYTES);
    assert!(
        matches!(
            result,
            Err(CompressionError::Corrupt {
                codec: Compression::Zstd,
                ..
            })
        ),
        "{result:?}"
    );
}

/// Deterministic noise, so failures replay.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

#[test]
fn garbage_is_an_error_for_every_codec() {
    let magics: [&[u8]; 4] = [
        &[0x1f, 0x8b, 0x08, 0x00],
        &[
            0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1,
        ],
        &[0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    for (codec, magic) in CODECS.into_iter().zip(magics) {
        for seed in seeds(1..=8) {
            let bare = Bytes::from(noise(1000, seed));
            let result = decompress(codec, &bare, LIMIT_BYTES);
            assert!(result.is_err(), "{codec:?} seed {seed}: bare noise decoded");
            let mut prefixed = magic.to_vec();
            prefixed.extend_from_slice(&noise(1000, seed));
            let result = decompress(codec, &Bytes::from(prefixed), LIMIT_BYTES);
            assert!(
                result.is_err(),
                "{codec:?} seed {seed}: noise after magic decoded"
            );
        }
    }
}

#[test]
fn truncated_streams_are_errors() {
    let text: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("{{\"id\":{i},\"v\":{}}}", i * 7 % 1000).into_bytes())
        .collect();
    for codec in CODECS {
        let packed = encode(codec, &text);
        for cut in [packed.len() / 3, packed.len() / 2, packed.len() - 3] {
            let result = decompress(codec, &packed.slice(..cut), 10 * text.len());
            assert!(
                result.is_err(),
                "{codec:?} cut at {cut} of {}",
                packed.len()
            );
        }
    }
}

#[test]
fn compressed_batch_over_the_limit_fails_in_records() {
    for codec in CODECS {
        let mut builder = BatchBuilder::new(codec);
        for _ in 0..64 {
            builder.push(None, Some(&[b'x'; 32 * 1024]));
        }
        let bytes = builder.build().unwrap();
        let (batch, _) = RecordBatch::parse(&bytes).unwrap();
        let limits = RecordLimits {
            decompressed_bytes_max: LIMIT_BYTES,
        };
        let error = batch.records(limits).unwrap_err();
        assert!(
            matches!(
                error,
                RecordError::Compression(CompressionError::TooLarge { .. })
            ),
            "{codec:?}: {error:?}"
        );
        let records = batch.records(RecordLimits::default()).unwrap();
        assert_eq!(records.map(Result::unwrap).count(), 64);
    }
}

#[test]
fn none_passes_input_through_without_copy() {
    let input = Bytes::from_static(b"plain records");
    let output = decompress(Compression::None, &input, 0).unwrap();
    assert_eq!(output.as_ptr(), input.as_ptr());
}
