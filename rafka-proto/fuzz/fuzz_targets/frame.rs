//! Fuzz target for `frame`: arbitrary bytes through `FrameDecoder`, checking
//! that what it returns agrees with the size prefixes and `bytes_needed`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rafka_proto::frame::{encode_frame, FrameDecoder};

/// Small enough that the fuzzer reaches the too-large path.
const FRAME_BYTES_MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let mut decoder = FrameDecoder::new(FRAME_BYTES_MAX);
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        let needed = decoder.bytes_needed(&buf);
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert_eq!(needed, Ok(0));
                assert!(!frame.is_empty() && frame.len() <= FRAME_BYTES_MAX);
                let mut reframed = BytesMut::new();
                encode_frame(&frame, &mut reframed).expect("frame fits a prefix");
                assert_eq!(&before[..reframed.len()], &reframed[..]);
            }
            Ok(None) => {
                assert!(matches!(needed, Ok(n) if n > 0));
                assert_eq!(buf, before, "an incomplete frame leaves the buffer alone");
                break;
            }
            Err(error) => {
                assert_eq!(needed, Err(error));
                break;
            }
        }
    }
});
