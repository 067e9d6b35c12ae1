//! The producer of `rafka-bench txn`: one connection, one thread, closed
//! loop (the next request goes out as soon as the window allows). In the
//! transactional mode it runs what a Kafka producer with a
//! `transactional.id` runs: FindCoordinator (key type 1) -> InitProducerId
//! -> per transaction { AddPartitionsToTxn v3 for the partitions it will
//! write -> its records as transactional batches, pipelined, acks=all ->
//! EndTxn(commit) v3 }. The plain and idempotent modes run the same send
//! loop without the transaction calls, so rows differ by the protocol
//! alone.
//!
//! Any refusal ends the run with its API, partition and code: a producer
//! that went on past a refused batch would commit a transaction without
//! it. The one expected refusal is CONCURRENT_TRANSACTIONS on
//! AddPartitionsToTxn: EndTxn answers once PrepareCommit is durable and
//! the markers follow, so the next transaction may have to wait for the
//! previous one to complete. It is retried after a backoff, counted, and
//! its time reported.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, FindCoordinatorRequest,
    InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rafka_proto::error::ErrorCode;
use rafka_proto::record::BuildError;

use crate::admin::topic_name;
use crate::client::{ClientError, Wire, WireReader};
use crate::produce::{now_ms, PRODUCE_TIMEOUT_MS, PRODUCE_VERSION};
use crate::report::latency_histogram;
use crate::workload::{ProducerStamp, RecordFactory};

/// v3: one key per request (v4+ batch them).
const FIND_COORDINATOR_VERSION: i16 = 3;
/// v4: may answer PRODUCER_FENCED.
const INIT_PRODUCER_ID_VERSION: i16 = 4;
/// v3: the last version a client sends (v4+ are broker to broker).
const ADD_PARTITIONS_VERSION: i16 = 3;
/// v3: before v5's transaction version 2 (rafka serves KIP-890 part 1).
const END_TXN_VERSION: i16 = 3;
/// FindCoordinator's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Longer than any transaction of a run.
const TRANSACTION_TIMEOUT_MS: i32 = 60_000;
/// Setup calls retry retriable codes for at most this long: the
/// coordinator may still be loading `__transaction_state` right after the
/// first FindCoordinator created it.
const SETUP_RETRY_WAIT_MAX: Duration = Duration::from_secs(30);
const SETUP_RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// How long one transaction's AddPartitionsToTxn may keep answering
/// CONCURRENT_TRANSACTIONS: the coordinator backs off up to 2 s between
/// attempts at a failed marker.
const ADD_RETRY_WAIT_MAX: Duration = Duration::from_secs(30);
/// The most records per transaction a mode may ask for.
pub const TXN_RECORDS_MAX: u64 = 1 << 24;

/// What a producer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No producer id: plain acks=all produce.
    Plain,
    /// A producer id and sequences (InitProducerId without a
    /// transactional id).
    Idempotent,
    /// Committed transactions of this many records each.
    Txn { records: u64 },
}

impl Mode {
    /// `plain`, `idempotent`, or the records per transaction.
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text {
            "plain" => Ok(Mode::Plain),
            "idempotent" => Ok(Mode::Idempotent),
            _ => match text.parse::<u64>() {
                Ok(records) if (1..=TXN_RECORDS_MAX).contains(&records) => {
                    Ok(Mode::Txn { records })
                }
                _ => Err(format!(
                    "a mode is plain, idempotent or the records per transaction \
                     (1 to {TXN_RECORDS_MAX}), got {text:?}"
                )),
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Idempotent => "idempotent",
            Mode::Txn { .. } => "txn",
        }
    }

    pub fn txn_records(self) -> Option<u64> {
        match self {
            Mode::Txn { records } => Some(records),
            Mode::Plain | Mode::Idempotent => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("building a batch: {0}")]
    Build(#[from] BuildError),
    #[error("{api:?} answered {code}")]
    Refused { api: ApiKey, code: ErrorCode },
    #[error("{api:?} answered {code} for partition {partition}")]
    PartitionRefused {
        api: ApiKey,
        partition: i32,
        code: ErrorCode,
    },
    #[error("{api:?} still answered {code} after {waited_ms} ms of retries")]
    RetriesExhausted {
        api: ApiKey,
        code: ErrorCode,
        waited_ms: u128,
    },
    #[error("{api:?} answered for {got} partitions, {asked} asked")]
    Unanswered {
        api: ApiKey,
        asked: usize,
        got: usize,
    },
}

/// One producer of a phase.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub bootstrap: String,
    pub topic: String,
    pub partitions: Vec<i32>,
    pub record_bytes: usize,
    pub batch_records_max: u64,
    /// Most unanswered produce requests on the connection.
    pub inflight_max: usize,
    /// No transaction (or batch, in the plain modes) starts after this.
    pub duration: Duration,
    /// Between AddPartitionsToTxn attempts answered CONCURRENT_TRANSACTIONS.
    pub retry_backoff: Duration,
    pub mode: Mode,
    /// Unique per producer (and per run); used by [`Mode::Txn`] only.
    pub transactional_id: String,
    /// Where this producer's rotation over the partitions starts.
    pub first_partition: usize,
}

#[derive(Debug)]
pub struct ProducerOutcome {
    /// Acknowledged (plain, idempotent) or committed (txn) records.
    pub records: u64,
    pub batches: u64,
    pub transactions: u64,
    /// EndTxn, sent to answered.
    pub end_txn_us: Histogram<u64>,
    /// A whole transaction: its first AddPartitionsToTxn sent to its
    /// EndTxn answered.
    pub txn_us: Histogram<u64>,
    /// AddPartitionsToTxn answers CONCURRENT_TRANSACTIONS, each resent.
    pub add_retries: u64,
    /// Per transaction, from its first AddPartitionsToTxn sent to the
    /// send of the one that succeeded; summed.
    pub add_retry_time: Duration,
    /// From the phase's start to this producer's last answer.
    pub elapsed: Duration,
}

impl ProducerOutcome {
    pub fn new() -> ProducerOutcome {
        ProducerOutcome {
            records: 0,
            batches: 0,
            transactions: 0,
            end_txn_us: latency_histogram(),
            txn_us: latency_histogram(),
            add_retries: 0,
            add_retry_time: Duration::ZERO,
            elapsed: Duration::ZERO,
        }
    }

    /// Adds `other`'s counts and latencies; the elapsed time is the longer.
    pub fn merge(&mut self, other: &ProducerOutcome) {
        self.records += other.records;
        self.batches += other.batches;
        self.transactions += other.transactions;
        let same_bounds = "histograms with the same bounds add";
        self.end_txn_us
            .add(&other.end_txn_us)
            .unwrap_or_else(|_| unreachable!("{same_bounds}"));
        self.txn_us
            .add(&other.txn_us)
            .unwrap_or_else(|_| unreachable!("{same_bounds}"));
        self.add_retries += other.add_retries;
        self.add_retry_time += other.add_retry_time;
        self.elapsed = self.elapsed.max(other.elapsed);
    }
}

/// A producer id and epoch from InitProducerId.
#[derive(Debug, Clone, Copy)]
struct Identity {
    producer_id: i64,
    epoch: i16,
}

/// What the producer is, once set up.
#[derive(Debug)]
enum Kind {
    Plain,
    Idempotent(Identity),
    Txn {
        identity: Identity,
        id: TransactionalId,
        records: u64,
    },
}

impl Kind {
    fn stamp(&self, base_sequence: i32) -> Option<ProducerStamp> {
        let (identity, transactional) = match self {
            Kind::Plain => return None,
            Kind::Idempotent(identity) => (identity, false),
            Kind::Txn { identity, .. } => (identity, true),
        };
        Some(ProducerStamp {
            producer_id: identity.producer_id,
            epoch: identity.epoch,
            base_sequence,
            transactional,
        })
    }

    fn transactional_id(&self) -> Option<TransactionalId> {
        match self {
            Kind::Txn { id, .. } => Some(id.clone()),
            Kind::Plain | Kind::Idempotent(_) => None,
        }
    }
}

/// (index into the partitions, records): one batch, or a partition's
/// share of a transaction.
type Batches = Vec<(usize, u64)>;

/// A produce request on the wire whose answer has not been read.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    correlation_id: i32,
    partition: i32,
    records: u64,
}

#[derive(Debug)]
pub struct Producer {
    config: ProducerConfig,
    wire: Wire,
    /// The transaction coordinator's own connection, when FindCoordinator
    /// names another address than the bootstrap one.
    coordinator: Option<Wire>,
    factory: RecordFactory,
    kind: Kind,
    /// The next sequence, per index into `config.partitions`.
    sequences: Vec<i32>,
    next_partition: usize,
}

impl Producer {
    /// Connects and sets the producer up (producer id, coordinator); the
    /// phase's clock starts after every producer is set up.
    pub fn connect(config: ProducerConfig) -> Result<Producer, TxnError> {
        let mut wire = Wire::connect(&config.bootstrap)?;
        let mut coordinator = None;
        let kind = match config.mode {
            Mode::Plain => Kind::Plain,
            Mode::Idempotent => Kind::Idempotent(init_producer_id(&mut wire, None)?),
            Mode::Txn { records } => {
                let id = TransactionalId(StrBytes::from_string(config.transactional_id.clone()));
                let addr = find_coordinator(&mut wire, &config.transactional_id)?;
                if addr != config.bootstrap {
                    coordinator = Some(Wire::connect(&addr)?);
                }
                let on = coordinator.as_mut().unwrap_or(&mut wire);
                let identity = init_producer_id(on, Some(id.clone()))?;
                Kind::Txn {
                    identity,
                    id,
                    records,
                }
            }
        };
        let partitions = config.partitions.len().max(1);
        Ok(Producer {
            sequences: vec![0; partitions],
            next_partition: config.first_partition % partitions,
            factory: RecordFactory::new(
                config.record_bytes,
                rafka_proto::record::Compression::None,
            ),
            config,
            wire,
            coordinator,
            kind,
        })
    }

    /// Produces until the duration has passed since `start`.
    pub fn run(mut self, start: Instant) -> Result<ProducerOutcome, TxnError> {
        let mut outcome = ProducerOutcome::new();
        if let Kind::Txn { records, .. } = self.kind {
            while start.elapsed() < self.config.duration {
                self.transaction(records, &mut outcome)?;
                outcome.elapsed = start.elapsed();
            }
            return Ok(outcome);
        }
        let (duration, batch_records) = (self.config.duration, self.config.batch_records_max);
        let partitions = self.config.partitions.len();
        let batches = (self.next_partition..)
            .map(|at| (at % partitions, batch_records))
            .take_while(|_| start.elapsed() < duration);
        outcome.records = self.pipeline(batches, &mut outcome.batches)?;
        outcome.elapsed = start.elapsed();
        Ok(outcome)
    }

    /// One committed transaction of `records` records.
    fn transaction(&mut self, records: u64, outcome: &mut ProducerOutcome) -> Result<(), TxnError> {
        let began = Instant::now();
        let partitions = self.config.partitions.len();
        let shares = deal(records, partitions, self.next_partition);
        self.next_partition = (self.next_partition + 1) % partitions;
        let (first, rest) = waves(&shares, self.config.batch_records_max);
        self.add_partitions(&shares, outcome)?;
        self.pipeline(first.into_iter(), &mut outcome.batches)?;
        self.pipeline(rest.into_iter(), &mut outcome.batches)?;
        let end_sent = Instant::now();
        self.end_txn()?;
        outcome
            .end_txn_us
            .saturating_record(micros(end_sent.elapsed()));
        outcome.txn_us.saturating_record(micros(began.elapsed()));
        outcome.records += records;
        outcome.transactions += 1;
        Ok(())
    }

    /// The connection transaction calls go to.
    fn coordinator_wire(&mut self) -> &mut Wire {
        match &mut self.coordinator {
            Some(wire) => wire,
            None => &mut self.wire,
        }
    }

    /// AddPartitionsToTxn for the partitions of `shares`, resent after the
    /// backoff while it answers CONCURRENT_TRANSACTIONS.
    fn add_partitions(
        &mut self,
        shares: &[(usize, u64)],
        outcome: &mut ProducerOutcome,
    ) -> Result<(), TxnError> {
        let Kind::Txn { identity, id, .. } = &self.kind else {
            return Ok(());
        };
        let partitions: Vec<i32> = shares
            .iter()
            .map(|&(at, _)| self.config.partitions[at])
            .collect();
        let asked = partitions.len();
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(id.clone())
            .with_v3_and_below_producer_id(ProducerId(identity.producer_id))
            .with_v3_and_below_producer_epoch(identity.epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(&self.config.topic))
                .with_partitions(partitions)]);
        let backoff = self.config.retry_backoff;
        let first_sent = Instant::now();
        loop {
            let attempt = Instant::now();
            let response = self
                .coordinator_wire()
                .call(&request, ADD_PARTITIONS_VERSION)?;
            let codes: Vec<(i32, ErrorCode)> = response
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|topic| &topic.results_by_partition)
                .map(|p| {
                    (
                        p.partition_index,
                        ErrorCode::from_code(p.partition_error_code),
                    )
                })
                .collect();
            match add_answer(&codes, asked)? {
                AddAnswer::Added => {
                    outcome.add_retry_time += attempt - first_sent;
                    return Ok(());
                }
                AddAnswer::Concurrent if first_sent.elapsed() >= ADD_RETRY_WAIT_MAX => {
                    return Err(TxnError::RetriesExhausted {
                        api: ApiKey::AddPartitionsToTxn,
                        code: ErrorCode::CONCURRENT_TRANSACTIONS,
                        waited_ms: first_sent.elapsed().as_millis(),
                    });
                }
                AddAnswer::Concurrent => {
                    outcome.add_retries += 1;
                    // A client's backoff, not a wait for a condition: the
                    // protocol has no event to wait on.
                    std::thread::sleep(backoff);
                }
            }
        }
    }

    fn end_txn(&mut self) -> Result<(), TxnError> {
        let Kind::Txn { identity, id, .. } = &self.kind else {
            return Ok(());
        };
        let request = EndTxnRequest::default()
            .with_transactional_id(id.clone())
            .with_producer_id(ProducerId(identity.producer_id))
            .with_producer_epoch(identity.epoch)
            .with_committed(true);
        let response = self.coordinator_wire().call(&request, END_TXN_VERSION)?;
        match ErrorCode::from_code(response.error_code) {
            ErrorCode::NONE => Ok(()),
            code => Err(TxnError::Refused {
                api: ApiKey::EndTxn,
                code,
            }),
        }
    }

    /// Sends `batches` (partition index, records) as produce requests, at
    /// most `inflight_max` unanswered, then reads every answer; returns the
    /// records acknowledged.
    fn pipeline(
        &mut self,
        batches: impl Iterator<Item = (usize, u64)>,
        sent_batches: &mut u64,
    ) -> Result<u64, TxnError> {
        let Producer {
            config,
            wire,
            factory,
            kind,
            sequences,
            ..
        } = self;
        let (writer, reader) = wire.halves_mut();
        let transactional_id = kind.transactional_id();
        let mut in_flight = VecDeque::with_capacity(config.inflight_max);
        let mut acked = 0;
        for (at, count) in batches {
            if in_flight.len() >= config.inflight_max.max(1) {
                if let Some(oldest) = in_flight.pop_front() {
                    acked += receive_ack(reader, oldest)?;
                }
            }
            let stamp = kind.stamp(sequences[at]);
            let batch = factory.producer_batch(count, now_ms(), stamp)?;
            if stamp.is_some() {
                sequences[at] = next_sequence(sequences[at], count);
            }
            let partition = config.partitions[at];
            let request = ProduceRequest::default()
                .with_transactional_id(transactional_id.clone())
                .with_acks(-1)
                .with_timeout_ms(PRODUCE_TIMEOUT_MS)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(topic_name(&config.topic))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch))])]);
            let correlation_id = writer.send(&request, PRODUCE_VERSION)?;
            in_flight.push_back(InFlight {
                correlation_id,
                partition,
                records: count,
            });
            *sent_batches += 1;
        }
        while let Some(oldest) = in_flight.pop_front() {
            acked += receive_ack(reader, oldest)?;
        }
        Ok(acked)
    }
}

/// Reads the answer to `sent`; its records, or the partition's refusal.
fn receive_ack(reader: &mut WireReader, sent: InFlight) -> Result<u64, TxnError> {
    let response: ProduceResponse =
        reader.receive(ApiKey::Produce, sent.correlation_id, PRODUCE_VERSION)?;
    let answers: Vec<_> = response
        .responses
        .iter()
        .flat_map(|topic| &topic.partition_responses)
        .collect();
    let [answer] = answers.as_slice() else {
        return Err(TxnError::Unanswered {
            api: ApiKey::Produce,
            asked: 1,
            got: answers.len(),
        });
    };
    match ErrorCode::from_code(answer.error_code) {
        ErrorCode::NONE => Ok(sent.records),
        code => Err(TxnError::PartitionRefused {
            api: ApiKey::Produce,
            partition: sent.partition,
            code,
        }),
    }
}

fn find_coordinator(wire: &mut Wire, transactional_id: &str) -> Result<String, TxnError> {
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(transactional_id.to_owned()))
        .with_key_type(KEY_TYPE_TRANSACTION);
    retry_setup(ApiKey::FindCoordinator, || {
        let response = wire.call(&request, FIND_COORDINATOR_VERSION)?;
        Ok(match ErrorCode::from_code(response.error_code) {
            ErrorCode::NONE => Ok(format!("{}:{}", response.host.as_str(), response.port)),
            code => Err(code),
        })
    })
}

fn init_producer_id(
    wire: &mut Wire,
    transactional_id: Option<TransactionalId>,
) -> Result<Identity, TxnError> {
    let request = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id)
        .with_transaction_timeout_ms(TRANSACTION_TIMEOUT_MS);
    retry_setup(ApiKey::InitProducerId, || {
        let response = wire.call(&request, INIT_PRODUCER_ID_VERSION)?;
        Ok(match ErrorCode::from_code(response.error_code) {
            ErrorCode::NONE => Ok(Identity {
                producer_id: response.producer_id.0,
                epoch: response.producer_epoch,
            }),
            code => Err(code),
        })
    })
}

/// Runs `call` until it answers without an error code, retrying codes a
/// Kafka client retries for up to [`SETUP_RETRY_WAIT_MAX`].
fn retry_setup<T>(
    api: ApiKey,
    mut call: impl FnMut() -> Result<Result<T, ErrorCode>, TxnError>,
) -> Result<T, TxnError> {
    let began = Instant::now();
    loop {
        let code = match call()? {
            Ok(value) => return Ok(value),
            Err(code) => code,
        };
        let retriable = code.is_retriable() || code == ErrorCode::CONCURRENT_TRANSACTIONS;
        if !retriable {
            return Err(TxnError::Refused { api, code });
        }
        if began.elapsed() >= SETUP_RETRY_WAIT_MAX {
            return Err(TxnError::RetriesExhausted {
                api,
                code,
                waited_ms: began.elapsed().as_millis(),
            });
        }
        std::thread::sleep(SETUP_RETRY_BACKOFF);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddAnswer {
    Added,
    /// The previous transaction has not completed yet: try again.
    Concurrent,
}

/// Reads AddPartitionsToTxn's per-partition codes. A partition refused
/// for its own reason is an error; the others are then
/// OPERATION_NOT_ATTEMPTED, which says nothing by itself.
fn add_answer(codes: &[(i32, ErrorCode)], asked: usize) -> Result<AddAnswer, TxnError> {
    if codes.len() != asked {
        return Err(TxnError::Unanswered {
            api: ApiKey::AddPartitionsToTxn,
            asked,
            got: codes.len(),
        });
    }
    let refused = |&(partition, code): &(i32, ErrorCode)| TxnError::PartitionRefused {
        api: ApiKey::AddPartitionsToTxn,
        partition,
        code,
    };
    let not_attempted = ErrorCode::OPERATION_NOT_ATTEMPTED;
    let concurrent = ErrorCode::CONCURRENT_TRANSACTIONS;
    let cause = codes
        .iter()
        .find(|(_, code)| ![ErrorCode::NONE, not_attempted, concurrent].contains(code));
    if let Some(cause) = cause {
        return Err(refused(cause));
    }
    if codes.iter().any(|(_, code)| *code == concurrent) {
        return Ok(AddAnswer::Concurrent);
    }
    match codes.iter().find(|(_, code)| *code == not_attempted) {
        Some(uncaused) => Err(refused(uncaused)),
        None => Ok(AddAnswer::Added),
    }
}

/// Deals `records` over `partitions` partitions starting at index `first`
/// (so the remainder rotates between transactions): (partition index,
/// records), in the order written, without partitions that get none.
fn deal(records: u64, partitions: usize, first: usize) -> Vec<(usize, u64)> {
    let count = partitions.max(1) as u64;
    let (share, extra) = (records / count, records % count);
    (0..partitions)
        .map(|k| {
            let at = (first + k) % partitions;
            (at, share + u64::from((k as u64) < extra))
        })
        .filter(|&(_, records)| records > 0)
        .collect()
}

/// A transaction's batches in two waves: each partition's first batch,
/// then the rest, round robin. The broker checks a producer's first
/// transactional batch in a partition with the coordinator before
/// appending it (KIP-890); a second batch to that partition sent
/// meanwhile would need a check of its own and could overtake the
/// first, so the rest wait for the first wave's answers.
fn waves(shares: &[(usize, u64)], batch_records_max: u64) -> (Batches, Batches) {
    let max = batch_records_max.max(1);
    let first = shares.iter().map(|&(at, n)| (at, n.min(max))).collect();
    let mut left: Batches = shares
        .iter()
        .map(|&(at, n)| (at, n.saturating_sub(max)))
        .collect();
    let mut rest = Vec::new();
    while left.iter().any(|&(_, n)| n > 0) {
        for (at, n) in left.iter_mut().filter(|(_, n)| *n > 0) {
            let take = (*n).min(max);
            rest.push((*at, take));
            *n -= take;
        }
    }
    (first, rest)
}

/// Kafka's sequences wrap from i32::MAX to 0.
fn next_sequence(sequence: i32, records: u64) -> i32 {
    let modulus = i64::from(i32::MAX) + 1;
    let records = i64::try_from(records % modulus as u64).unwrap_or(0);
    ((i64::from(sequence) + records) % modulus) as i32
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("plain"), Ok(Mode::Plain));
        assert_eq!(Mode::parse("idempotent"), Ok(Mode::Idempotent));
        assert_eq!(Mode::parse("100"), Ok(Mode::Txn { records: 100 }));
        assert!(Mode::parse("0").is_err());
        assert!(Mode::parse("txn").is_err());
        assert_eq!(Mode::Txn { records: 7 }.txn_records(), Some(7));
        assert_eq!(Mode::Plain.txn_records(), None);
    }

    #[test]
    fn records_are_dealt_evenly_and_the_remainder_rotates() {
        assert_eq!(
            deal(100, 6, 0),
            [(0, 17), (1, 17), (2, 17), (3, 17), (4, 16), (5, 16)]
        );
        assert_eq!(
            deal(100, 6, 4),
            [(4, 17), (5, 17), (0, 17), (1, 17), (2, 16), (3, 16)]
        );
        // Fewer records than partitions: only the partitions written.
        assert_eq!(deal(2, 6, 5), [(5, 1), (0, 1)]);
        assert_eq!(deal(1000, 6, 0).iter().map(|s| s.1).sum::<u64>(), 1000);
    }

    #[test]
    fn first_batches_go_out_before_the_rest() {
        let (first, rest) = waves(&[(0, 600), (1, 300), (2, 100)], 256);
        assert_eq!(first, [(0, 256), (1, 256), (2, 100)]);
        assert_eq!(rest, [(0, 256), (1, 44), (0, 88)]);
        let (first, rest) = waves(&[(3, 167), (4, 166)], 256);
        assert_eq!(first, [(3, 167), (4, 166)]);
        assert!(rest.is_empty());
    }

    #[test]
    fn add_answers() {
        let none = ErrorCode::NONE;
        let concurrent = ErrorCode::CONCURRENT_TRANSACTIONS;
        let not_attempted = ErrorCode::OPERATION_NOT_ATTEMPTED;
        let unknown = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
        assert_eq!(
            add_answer(&[(0, none), (1, none)], 2).unwrap(),
            AddAnswer::Added
        );
        assert_eq!(
            add_answer(&[(0, concurrent), (1, concurrent)], 2).unwrap(),
            AddAnswer::Concurrent
        );
        assert!(matches!(
            add_answer(&[(0, not_attempted), (1, unknown)], 2),
            Err(TxnError::PartitionRefused { partition: 1, code, .. }) if code == unknown
        ));
        assert!(matches!(
            add_answer(&[(0, not_attempted)], 1),
            Err(TxnError::PartitionRefused { partition: 0, .. })
        ));
        assert!(matches!(
            add_answer(&[(0, none)], 2),
            Err(TxnError::Unanswered {
                asked: 2,
                got: 1,
                ..
            })
        ));
    }

    #[test]
    fn sequences_wrap_to_zero() {
        assert_eq!(next_sequence(0, 100), 100);
        assert_eq!(next_sequence(i32::MAX - 9, 10), 0);
        assert_eq!(next_sequence(i32::MAX, 5), 4);
    }

    #[test]
    fn outcomes_merge() {
        let mut total = ProducerOutcome::new();
        let mut one = ProducerOutcome::new();
        one.records = 100;
        one.transactions = 1;
        one.add_retries = 2;
        one.end_txn_us.saturating_record(500);
        one.elapsed = Duration::from_secs(2);
        total.merge(&one);
        one.elapsed = Duration::from_secs(1);
        total.merge(&one);
        assert_eq!(
            (total.records, total.transactions, total.add_retries),
            (200, 2, 4)
        );
        assert_eq!(total.end_txn_us.len(), 2);
        assert_eq!(total.elapsed, Duration::from_secs(2));
    }
}
