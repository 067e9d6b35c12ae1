//! A compressed records section: the first byte picks the codec, the rest
//! is decompressed under a small limit and walked as records. Also checks
//! that whatever decodes re-encodes and decodes to the same bytes.
#![no_main]
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rafka_proto::record::{compress, decompress, Compression, RecordIter};

const DECOMPRESSED_BYTES_MAX: usize = 256 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let codec = Compression::ALL[usize::from(selector) % Compression::ALL.len()];
    let input = Bytes::copy_from_slice(rest);
    let Ok(plain) = decompress(codec, &input, DECOMPRESSED_BYTES_MAX) else {
        return;
    };
    assert!(plain.len() <= DECOMPRESSED_BYTES_MAX || codec == Compression::None);
    // The count is attacker-chosen too: take it from the selector byte.
    for record in RecordIter::new(plain.clone(), i32::from(selector >> 3)) {
        if record.is_err() {
            break;
        }
    }
    let mut packed = BytesMut::new();
    compress(codec, &plain, &mut packed).expect("encoding decoded bytes");
    let again = decompress(codec, &packed.freeze(), usize::MAX).expect("own output decodes");
    assert_eq!(again, plain);
});
