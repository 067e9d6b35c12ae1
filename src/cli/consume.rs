//! `rafka consume TOPIC`: Fetch from each partition's leader (no group, no
//! commits) and print each record's value followed by `\n`, byte for byte;
//! with `--format json`, one JSON object per record and line.
//!
//! It starts at the log end (or the log start with `--from-beginning`) and
//! stops after `--count` records, or once nothing arrived for
//! `--timeout-ms`, or never. Control batches (transaction markers) are not
//! printed.

use std::collections::BTreeMap;
use std::io::{BufWriter, ErrorKind, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::FetchRequest;
use rafka_proto::record::{BatchError, Batches, RecordLimits};
use serde_json::json;

use crate::cli::brokers::{topic_name, Brokers, TopicInfo, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use crate::cli::error::CliError;
use crate::cli::output::Format;
use crate::cli::ClientArgs;

/// The longest a Fetch waits at the broker for records.
const FETCH_WAIT_MS_MAX: u64 = 500;
const PARTITION_FETCH_BYTES_MAX: i32 = 1 << 20;
const FETCH_BYTES_MAX: i32 = 16 << 20;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The topic to read.
    topic: String,
    /// Only this partition [default: all].
    #[arg(long, value_name = "P")]
    partition: Option<i32>,
    /// Start at the log start offset instead of the log end.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after N records.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Stop once no record arrived for this long [default: never].
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
}

pub fn run(args: ConsumeArgs) -> Result<(), CliError> {
    let mut brokers = Brokers::connect(&args.client)?;
    let topic = brokers.topic(&args.topic)?;
    let partitions: Vec<i32> = match args.partition {
        Some(partition) => {
            topic.partition(partition)?;
            vec![partition]
        }
        None => topic.partitions.iter().map(|p| p.partition).collect(),
    };
    let start = if args.from_beginning {
        EARLIEST_TIMESTAMP
    } else {
        LATEST_TIMESTAMP
    };
    let positions = brokers.list_offsets(&topic, &partitions, start)?;
    let mut consumer = Consumer {
        brokers: &mut brokers,
        topic: &topic,
        positions,
        out: BufWriter::new(std::io::stdout().lock()),
        format: args.client.format,
        remaining: args.count,
    };
    let idle = args.timeout_ms.map(Duration::from_millis);
    let mut idle_deadline = idle.map(|idle| Instant::now() + idle);
    while consumer.remaining != Some(0) {
        let wait = match idle_deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                left.min(Duration::from_millis(FETCH_WAIT_MS_MAX))
            }
            None => Duration::from_millis(FETCH_WAIT_MS_MAX),
        };
        match consumer.fetch_once(wait) {
            Ok(0) => {}
            Ok(_) => idle_deadline = idle.map(|idle| Instant::now() + idle),
            // `rafka consume ... | head`: the reader is gone, we are done.
            Err(CliError::Stdout(error)) if error.kind() == ErrorKind::BrokenPipe => {
                return Ok(());
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

struct Consumer<'a, W: Write> {
    brokers: &'a mut Brokers,
    topic: &'a TopicInfo,
    /// partition -> next offset to print.
    positions: BTreeMap<i32, i64>,
    out: W,
    format: Format,
    /// Records still to print, with `--count`.
    remaining: Option<u64>,
}

impl<W: Write> Consumer<'_, W> {
    /// One Fetch per leader; returns how many records were printed.
    fn fetch_once(&mut self, wait: Duration) -> Result<u64, CliError> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &partition in self.positions.keys() {
            by_leader
                .entry(self.topic.leader(partition)?)
                .or_default()
                .push(partition);
        }
        let mut printed = 0;
        for (leader, partitions) in by_leader {
            let request = FetchRequest::default()
                .with_max_wait_ms(i32::try_from(wait.as_millis()).unwrap_or(i32::MAX))
                .with_min_bytes(1)
                .with_max_bytes(FETCH_BYTES_MAX)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(topic_name(&self.topic.name))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&p| {
                                FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(self.positions[&p])
                                    .with_partition_max_bytes(PARTITION_FETCH_BYTES_MAX)
                            })
                            .collect(),
                    )]);
            let response = self.brokers.node(leader)?.call(&request)?;
            CliError::check(
                response.error_code,
                None,
                &format!("Fetch from broker {leader}"),
            )?;
            for topic in &response.responses {
                for p in &topic.partitions {
                    let subject = format!("{}-{}", self.topic.name, p.partition_index);
                    CliError::check(p.error_code, None, &subject)?;
                    if let Some(records) = &p.records {
                        printed += self.print_records(p.partition_index, records.clone())?;
                    }
                }
            }
            self.out.flush().map_err(CliError::Stdout)?;
        }
        Ok(printed)
    }

    /// Prints the records at or after the partition's position and moves
    /// the position past them.
    fn print_records(&mut self, partition: i32, records: Bytes) -> Result<u64, CliError> {
        let Some(&position) = self.positions.get(&partition) else {
            return Ok(0);
        };
        let limit = self.remaining.unwrap_or(u64::MAX);
        let decoded = decode(records, position, limit).map_err(|error| match error {
            DecodeError::Batch(source) => CliError::Batch {
                topic: self.topic.name.clone(),
                partition,
                source,
            },
            DecodeError::Records(source) => CliError::Records {
                topic: self.topic.name.clone(),
                partition,
                source,
            },
        })?;
        for record in &decoded.records {
            self.print_record(partition, record)?;
        }
        let printed = decoded.records.len() as u64;
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(printed);
        }
        self.positions.insert(partition, decoded.next_offset);
        Ok(printed)
    }

    fn print_record(&mut self, partition: i32, record: &Fetched) -> Result<(), CliError> {
        let value = record.value.as_deref().unwrap_or_default();
        let written = match self.format {
            Format::Table => self
                .out
                .write_all(value)
                .and_then(|()| self.out.write_all(b"\n")),
            Format::Json => {
                let text = |bytes: &Option<Bytes>| {
                    bytes
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                };
                let line = json!({
                    "partition": partition,
                    "offset": record.offset,
                    "timestamp": record.timestamp_ms,
                    "key": text(&record.key),
                    "value": text(&record.value),
                });
                writeln!(self.out, "{line}")
            }
        };
        written.map_err(CliError::Stdout)
    }
}

/// One record to print.
#[derive(Debug)]
struct Fetched {
    offset: i64,
    timestamp_ms: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
}

/// What one partition's fetched bytes hold from a position on.
#[derive(Debug)]
struct Decoded {
    records: Vec<Fetched>,
    /// Where the next Fetch starts.
    next_offset: i64,
}

#[derive(Debug)]
enum DecodeError {
    Batch(BatchError),
    Records(rafka_proto::record::RecordError),
}

/// The records of `bytes` (a Fetch's record batches) at or after
/// `position`, at most `limit` of them. Control batches are skipped; a
/// batch cut off at the end (the response's byte limit) is left for the
/// next Fetch; anything else malformed is an error.
fn decode(bytes: Bytes, position: i64, limit: u64) -> Result<Decoded, DecodeError> {
    let mut records = Vec::new();
    let mut next_offset = position;
    for batch in Batches::new(bytes) {
        let batch = match batch {
            Ok(batch) => batch,
            Err(BatchError::Truncated { .. }) => break,
            Err(error) => return Err(DecodeError::Batch(error)),
        };
        let header = *batch.header();
        if !header.is_control() {
            let iter = batch
                .records(RecordLimits::default())
                .map_err(DecodeError::Records)?;
            for record in iter {
                let record = record.map_err(DecodeError::Records)?;
                let offset = record.offset(header.base_offset);
                if offset < next_offset {
                    continue;
                }
                if records.len() as u64 >= limit {
                    return Ok(Decoded {
                        records,
                        next_offset,
                    });
                }
                records.push(Fetched {
                    offset,
                    timestamp_ms: record.timestamp_ms(header.base_timestamp),
                    key: record.key,
                    value: record.value,
                });
                next_offset = offset + 1;
            }
        }
        next_offset = next_offset.max(header.next_offset());
    }
    Ok(Decoded {
        records,
        next_offset,
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use rafka_proto::record::{
        encode_end_txn_batch, set_base_offset, BatchBuilder, Compression, ControlType, EndTxnMarker,
    };

    use super::*;

    /// A batch of `values` stored at `base_offset`.
    fn batch(base_offset: i64, values: &[&str], compression: Compression) -> BytesMut {
        let mut builder = BatchBuilder::new(compression).base_timestamp_ms(1_000);
        for value in values {
            builder.push(Some(b"k"), Some(value.as_bytes()));
        }
        let mut bytes = BytesMut::from(&builder.build().expect("batch")[..]);
        set_base_offset(&mut bytes, base_offset);
        bytes
    }

    fn values(decoded: &Decoded) -> Vec<(i64, &[u8])> {
        decoded
            .records
            .iter()
            .map(|r| (r.offset, r.value.as_deref().unwrap_or_default()))
            .collect()
    }

    #[test]
    fn reads_whole_batches_from_the_position_and_leaves_a_cut_one() {
        let mut bytes = batch(0, &["a", "b", "c"], Compression::None);
        bytes.extend_from_slice(&batch(3, &["d", "e"], Compression::Zstd));
        let third = batch(5, &["f"], Compression::None);
        bytes.extend_from_slice(&third[..third.len() - 3]);
        let decoded = decode(bytes.freeze(), 1, u64::MAX).expect("decode");
        let expected: Vec<(i64, &[u8])> = vec![(1, b"b"), (2, b"c"), (3, b"d"), (4, b"e")];
        assert_eq!(values(&decoded), expected);
        assert_eq!(decoded.next_offset, 5);
        assert_eq!(decoded.records[0].timestamp_ms, 1_000);
    }

    #[test]
    fn stops_at_the_limit_and_resumes_after_the_last_record_given() {
        let bytes = batch(10, &["a", "b", "c"], Compression::Lz4).freeze();
        let decoded = decode(bytes.clone(), 10, 2).expect("decode");
        assert_eq!(decoded.records.len(), 2);
        assert_eq!(decoded.next_offset, 12);
        let rest = decode(bytes, decoded.next_offset, 2).expect("decode");
        let expected: Vec<(i64, &[u8])> = vec![(12, b"c")];
        assert_eq!(values(&rest), expected);
        assert_eq!(rest.next_offset, 13);
    }

    #[test]
    fn control_batches_are_skipped_but_moved_past() {
        let marker = EndTxnMarker {
            control_type: ControlType::Commit,
            coordinator_epoch: 0,
        };
        let mut control =
            BytesMut::from(&encode_end_txn_batch(marker, 7, 0, 1_000).expect("marker")[..]);
        set_base_offset(&mut control, 4);
        let decoded = decode(control.freeze(), 4, u64::MAX).expect("decode");
        assert!(decoded.records.is_empty());
        assert_eq!(decoded.next_offset, 5);
    }

    #[test]
    fn a_corrupt_batch_is_an_error_not_a_panic() {
        let mut bytes = batch(0, &["a"], Compression::None);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        assert!(matches!(
            decode(bytes.freeze(), 0, u64::MAX),
            Err(DecodeError::Batch(BatchError::CrcMismatch { .. }))
        ));
        let garbage = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(decode(garbage, 0, u64::MAX).is_err());
        assert!(
            decode(Bytes::new(), 3, u64::MAX)
                .expect("empty")
                .next_offset
                == 3
        );
    }
}
