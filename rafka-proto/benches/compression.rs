//! Encode and decode of each codec over a realistic records section: a
//! 64 KiB batch of 1 KiB JSON-ish records.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rafka_proto::record::{compress, decompress, BatchBuilder, Compression, RecordBatch};

const BATCH_RECORDS_BYTES: usize = 64 * 1024;
const WORDS: [&str; 12] = [
    "click", "view", "purchase", "signup", "mobile", "desktop", "eu-west", "us-east", "premium",
    "free", "campaign", "organic",
];

/// A JSON event of about 1 KiB whose fields vary like real telemetry.
fn json_record(index: usize) -> String {
    let mut state = (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut tags = String::new();
    while tags.len() < 760 {
        let word = WORDS[(next() % WORDS.len() as u64) as usize];
        tags.push_str(&format!("\"{word}-{}\",", next() % 1000));
    }
    tags.pop();
    format!(
        "{{\"id\":{index},\"user\":\"user-{}\",\"ts\":{},\"event\":\"{}\",\
         \"amount\":{}.{:02},\"session\":\"{:016x}\",\"tags\":[{tags}]}}",
        next() % 100_000,
        1_700_000_000_000 + index as u64 * 17,
        WORDS[index % WORDS.len()],
        next() % 500,
        next() % 100,
        next(),
    )
}

/// The uncompressed records section of a 64 KiB batch.
fn records_section() -> Bytes {
    let mut builder = BatchBuilder::with_capacity(Compression::None, BATCH_RECORDS_BYTES);
    let mut index = 0;
    while builder.records_bytes() < BATCH_RECORDS_BYTES - 1100 {
        let key = format!("user-{}", index % 97);
        builder.push(Some(key.as_bytes()), Some(json_record(index).as_bytes()));
        index += 1;
    }
    let bytes = builder.build().expect("bench batch");
    let (batch, _) = RecordBatch::parse(&bytes).expect("valid");
    batch.records_bytes()
}

fn bench_codecs(c: &mut Criterion) {
    let plain = records_section();
    let mut group = c.benchmark_group("codec_64kib_json");
    group.throughput(Throughput::Bytes(plain.len() as u64));
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut packed = BytesMut::new();
        compress(codec, &plain, &mut packed).expect("compresses");
        let packed = packed.freeze();
        eprintln!(
            "{codec:?}: {} -> {} bytes (ratio {:.2})",
            plain.len(),
            packed.len(),
            plain.len() as f64 / packed.len() as f64
        );
        group.bench_function(format!("encode_{codec:?}"), |b| {
            b.iter(|| {
                let mut out = BytesMut::with_capacity(plain.len());
                compress(codec, black_box(&plain), &mut out).map(|()| out.len())
            })
        });
        group.bench_function(format!("decode_{codec:?}"), |b| {
            b.iter(|| decompress(codec, black_box(&packed), 1 << 20).map(|out| out.len()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_codecs);
criterion_main!(benches);
