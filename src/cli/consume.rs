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
    let mut brokers = Brokers::connect(&args.client.bootstrap)?;
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
    /// the position past the last whole batch.
    fn print_records(&mut self, partition: i32, records: Bytes) -> Result<u64, CliError> {
        let Some(&position) = self.positions.get(&partition) else {
            return Ok(0);
        };
        let mut next = position;
        let mut printed = 0;
        let topic = self.topic.name.clone();
        let batch_error = |source| CliError::Batch {
            topic: topic.clone(),
            partition,
            source,
        };
        for batch in Batches::new(records) {
            let batch = match batch {
                Ok(batch) => batch,
                // The response ends inside a batch (the byte limit): the
                // rest comes with the next Fetch.
                Err(BatchError::Truncated { .. }) => break,
                Err(source) => return Err(batch_error(source)),
            };
            let header = *batch.header();
            if !header.is_control() {
                let records =
                    batch
                        .records(RecordLimits::default())
                        .map_err(|source| CliError::Records {
                            topic: topic.clone(),
                            partition,
                            source,
                        })?;
                for record in records {
                    let record = record.map_err(|source| CliError::Records {
                        topic: topic.clone(),
                        partition,
                        source,
                    })?;
                    let offset = record.offset(header.base_offset);
                    if offset < next || self.remaining == Some(0) {
                        continue;
                    }
                    self.print_record(partition, offset, &record, header.base_timestamp)?;
                    next = offset + 1;
                    printed += 1;
                    if let Some(remaining) = &mut self.remaining {
                        *remaining -= 1;
                    }
                }
            }
            if self.remaining == Some(0) {
                break;
            }
            next = next.max(header.next_offset());
        }
        self.positions.insert(partition, next);
        Ok(printed)
    }

    fn print_record(
        &mut self,
        partition: i32,
        offset: i64,
        record: &rafka_proto::record::Record,
        base_timestamp_ms: i64,
    ) -> Result<(), CliError> {
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
                    "offset": offset,
                    "timestamp": record.timestamp_ms(base_timestamp_ms),
                    "key": text(&record.key),
                    "value": text(&record.value),
                });
                writeln!(self.out, "{line}")
            }
        };
        written.map_err(CliError::Stdout)
    }
}
