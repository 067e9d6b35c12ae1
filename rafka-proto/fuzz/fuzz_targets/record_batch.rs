//! Bytes from the network as a produce request's records: split into
//! batches, validated for append, every record read (with a small
//! decompression limit so bombs stay cheap), control markers decoded.
#![no_main]
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rafka_proto::record::{
    validate_for_append, AppendOrigin, Batches, RecordLimits, BATCH_HEADER_BYTES,
};

const LIMITS: RecordLimits = RecordLimits {
    decompressed_bytes_max: 64 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let mut owned = data.to_vec();
    // Random bytes almost never carry a good CRC; a leading 0xff asks for
    // it to be fixed so the fuzzer reaches the record decoder.
    if owned.first() == Some(&0xff) {
        owned.remove(0);
        if let Ok(size) = rafka_proto::record::batch_size_bytes(&owned) {
            if size <= owned.len() && size >= BATCH_HEADER_BYTES {
                rafka_proto::record::write_crc(&mut owned[..size]);
            }
        }
    }
    for batch in Batches::new(Bytes::from(owned)) {
        let Ok(batch) = batch else { break };
        for origin in [AppendOrigin::Client, AppendOrigin::Coordinator] {
            let _ = validate_for_append(&batch, origin, LIMITS);
        }
        if batch.header().is_control() {
            let _ = batch.end_txn_marker();
        }
        if let Ok(records) = batch.records(LIMITS) {
            for record in records {
                if record.is_err() {
                    break;
                }
            }
        }
    }
});
