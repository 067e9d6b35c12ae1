//! `rafka produce TOPIC`: one record per line of stdin (the line without
//! its `\n`, byte for byte), acks=all, to each partition's leader.
//!
//! Lines are gathered into one batch per partition and sent when the
//! batch is full or stdin has nothing more buffered: a pipe is sent in
//! large requests, a terminal line by line. Without `--partition` a keyed
//! record goes where Kafka's default partitioner puts it (murmur2 of the
//! key), an unkeyed one round-robin.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest};
use rafka_proto::record::{BatchBuilder, Compression};
use serde_json::json;

use crate::cli::brokers::{topic_name, Brokers, TopicInfo};
use crate::cli::error::CliError;
use crate::cli::output::{print_json, print_text, Format, Table};
use crate::cli::ClientArgs;

/// A partition's batch is sent once its records take this many bytes.
const BATCH_BYTES_MAX: usize = 1 << 20;
/// How much of stdin is read ahead.
const STDIN_BUFFER_BYTES: usize = 1 << 20;
/// How long the leader may wait for its replicas.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// acks=all.
const ACKS_ALL: i16 = -1;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The topic to produce to.
    topic: String,
    /// Every record to this partition [default: by key, or round-robin].
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
    /// Split each line at the first SEP into key and value (a line without
    /// it has no key).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
}

/// One line made a record.
struct PendingRecord {
    timestamp_ms: i64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

/// What was produced to one partition.
#[derive(Default)]
struct Produced {
    records: u64,
    first_offset: Option<i64>,
    last_offset: i64,
}

pub fn run(args: ProduceArgs) -> Result<(), CliError> {
    let separator = match &args.key_separator {
        Some(sep) if sep.is_empty() => return Err(CliError::EmptySeparator),
        Some(sep) => Some(sep.as_bytes().to_vec()),
        None => None,
    };
    let mut brokers = Brokers::connect(&args.client)?;
    let topic = brokers.topic(&args.topic)?;
    if let Some(partition) = args.partition {
        topic.partition(partition)?;
    }
    let partition_count = topic.partitions.len().max(1);
    let mut producer = Producer {
        brokers: &mut brokers,
        topic: &topic,
        pending: BTreeMap::new(),
        pending_bytes: 0,
        produced: BTreeMap::new(),
    };
    let mut reader = BufReader::with_capacity(STDIN_BUFFER_BYTES, std::io::stdin().lock());
    let mut line = Vec::new();
    let mut round_robin = 0usize;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(CliError::Stdin)?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let (key, value) = split(&line, separator.as_deref());
        let partition = match (args.partition, &key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => (to_positive(murmur2(key)) as usize % partition_count) as i32,
            (None, None) => {
                let partition = (round_robin % partition_count) as i32;
                round_robin = round_robin.wrapping_add(1);
                partition
            }
        };
        producer.add(partition, key, value);
        if producer.pending_bytes >= BATCH_BYTES_MAX || reader.buffer().is_empty() {
            producer.flush()?;
        }
    }
    producer.flush()?;
    let produced = producer.produced;
    print_produced(args.client.format, &args.topic, &produced)
}

/// `line` as (key, value): split at the first `separator` if given.
fn split(line: &[u8], separator: Option<&[u8]>) -> (Option<Vec<u8>>, Vec<u8>) {
    if let Some(sep) = separator {
        if let Some(at) = line.windows(sep.len()).position(|w| w == sep) {
            return (Some(line[..at].to_vec()), line[at + sep.len()..].to_vec());
        }
    }
    (None, line.to_vec())
}

struct Producer<'a> {
    brokers: &'a mut Brokers,
    topic: &'a TopicInfo,
    pending: BTreeMap<i32, Vec<PendingRecord>>,
    pending_bytes: usize,
    produced: BTreeMap<i32, Produced>,
}

impl Producer<'_> {
    fn add(&mut self, partition: i32, key: Option<Vec<u8>>, value: Vec<u8>) {
        self.pending_bytes += value.len() + key.as_ref().map_or(0, Vec::len);
        self.pending
            .entry(partition)
            .or_default()
            .push(PendingRecord {
                timestamp_ms: now_ms(),
                key,
                value,
            });
    }

    /// Sends every pending batch, one Produce per leader.
    fn flush(&mut self) -> Result<(), CliError> {
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut by_leader: BTreeMap<i32, Vec<PartitionProduceData>> = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for (partition, records) in pending {
            let mut builder = BatchBuilder::new(Compression::None);
            for record in &records {
                builder.push_record(
                    record.timestamp_ms,
                    record.key.as_deref(),
                    Some(&record.value),
                    &[],
                );
            }
            let batch = builder.build()?;
            counts.insert(partition, records.len() as u64);
            by_leader
                .entry(self.topic.leader(partition)?)
                .or_default()
                .push(
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                );
        }
        for (leader, partitions) in by_leader {
            let request = ProduceRequest::default()
                .with_acks(ACKS_ALL)
                .with_timeout_ms(PRODUCE_TIMEOUT_MS)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name(&self.topic.name))
                    .with_partition_data(partitions)]);
            let connection = self.brokers.node(leader)?;
            let response = connection.call(&request)?;
            let answers: BTreeMap<i32, _> = response
                .responses
                .iter()
                .filter(|t| t.name.as_str() == self.topic.name)
                .flat_map(|t| &t.partition_responses)
                .map(|p| (p.index, p))
                .collect();
            for partition in request.topic_data.iter().flat_map(|t| &t.partition_data) {
                let subject = format!("{}-{}", self.topic.name, partition.index);
                let answer =
                    answers
                        .get(&partition.index)
                        .ok_or_else(|| CliError::MissingEntry {
                            addr: connection.addr().to_string(),
                            api: ApiKey::Produce,
                            subject: subject.clone(),
                        })?;
                CliError::check(answer.error_code, answer.error_message.as_deref(), &subject)?;
                let count = counts.get(&partition.index).copied().unwrap_or(0);
                let produced = self.produced.entry(partition.index).or_default();
                produced.records += count;
                produced.first_offset.get_or_insert(answer.base_offset);
                produced.last_offset = answer.base_offset + count as i64 - 1;
            }
        }
        Ok(())
    }
}

fn print_produced(
    format: Format,
    topic: &str,
    produced: &BTreeMap<i32, Produced>,
) -> Result<(), CliError> {
    let total: u64 = produced.values().map(|p| p.records).sum();
    match format {
        Format::Json => print_json(&json!({
            "topic": topic,
            "records": total,
            "partitions": produced.iter().map(|(partition, p)| json!({
                "partition": partition,
                "records": p.records,
                "first_offset": p.first_offset,
                "last_offset": p.last_offset,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            print_text(&format!("produced {total} records to {topic}\n"))?;
            if produced.is_empty() {
                return Ok(());
            }
            let mut table = Table::new(&["PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"]);
            for (partition, p) in produced {
                table.row(vec![
                    partition.to_string(),
                    p.records.to_string(),
                    p.first_offset.map_or("-".to_string(), |o| o.to_string()),
                    p.last_offset.to_string(),
                ]);
            }
            table.print()
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Kafka's `Utils.murmur2`, which its default partitioner hashes keys with.
fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`.
fn to_positive(hash: i32) -> u32 {
    (hash & 0x7fff_ffff) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Kafka's UtilsTest.testMurmur2.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn a_line_splits_at_the_first_separator() {
        assert_eq!(
            split(b"k:v:w", Some(b":")),
            (Some(b"k".to_vec()), b"v:w".to_vec())
        );
        assert_eq!(split(b"kv", Some(b"::")), (None, b"kv".to_vec()));
        assert_eq!(
            split(b"k::v", Some(b"::")),
            (Some(b"k".to_vec()), b"v".to_vec())
        );
        assert_eq!(split(b"k:v", None), (None, b"k:v".to_vec()));
    }
}
