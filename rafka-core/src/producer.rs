//! Idempotent producer state: one partition's table of producer ids with
//! their epoch and the last five batches they appended, the checks a produce
//! request goes through before its batch is appended, snapshots of the table
//! in the partition directory, and the allocator behind InitProducerId.
//!
//! Lives on the shard that owns the partition (one table per partition) or,
//! for the allocator, on the shard that answers InitProducerId. Nothing here
//! is shared between cores.
//!
//! # Behaviour, following Kafka 3.x (`ProducerAppendInfo`, `ProducerStateManager`)
//!
//! - A batch whose (epoch, first sequence, last sequence) equals one of the
//!   last [`BATCHES_RETAINED_MAX`] batches of its producer is a retry:
//!   [`Check::Duplicate`] carries the original offsets and nothing is
//!   appended. Five because the Java producer caps
//!   `max.in.flight.requests.per.connection` at 5 with idempotence on.
//! - An epoch older than the producer's is `INVALID_PRODUCER_EPOCH` (47).
//!   Kafka 2.7+ answers produce requests with 47 rather than
//!   `PRODUCER_FENCED` (90), which only the transaction coordinator returns,
//!   so that a transactional client aborts and retries instead of dying.
//! - A newer epoch must restart at sequence 0 (an InitProducerId bump,
//!   including the KIP-360 bump of a plain idempotent producer), otherwise
//!   `OUT_OF_ORDER_SEQUENCE_NUMBER` (45).
//! - The same epoch must continue at last sequence + 1, wrapping from
//!   `i32::MAX` to 0, otherwise 45.
//! - A producer id the table does not know is accepted at any sequence.
//!   Since KIP-360 (Kafka 2.5) the broker no longer answers
//!   `UNKNOWN_PRODUCER_ID` (59): state lost to retention or expiry must not
//!   kill a live producer, so there is no such error here.
//! - A producer with an open transaction may only append transactional
//!   batches (`INVALID_TXN_STATE`, 48). The table keeps the first offset
//!   of each open transaction and, once a marker ended it, the
//!   transaction until its marker is below the high watermark: together
//!   they give the last stable offset (`stable`).
//! - A transaction marker with an epoch older than the producer's is
//!   `INVALID_PRODUCER_EPOCH`; one from a coordinator epoch older than
//!   the last marker's is `TRANSACTION_COORDINATOR_FENCED` (52). Batches
//!   a coordinator writes for a producer (sequence -1) are checked for
//!   their epoch only.
//! - Producers idle for `producer.id.expiration.ms` (measured, as in Kafka,
//!   against the timestamp of their last batch) and without an open
//!   transaction are forgotten by [`ProducerStateTable::expire`].
//!
//! # Layout
//! - `state`: the table, [`ProducerStateTable::check`] and
//!   [`ProducerStateTable::record`], markers, expiry, sequence arithmetic.
//! - `stable`: open and not yet durable transactions, the last stable
//!   offset.
//! - `snapshot`: Kafka's producer snapshot file format and the
//!   write / load-latest / rebuild cycle of recovery.
//! - `id_allocator`: [`ProducerIdAllocator`], producer ids reserved in
//!   durable blocks so they never repeat across restarts.
//! - `error`: [`ProducerError`] with Kafka's error codes, [`FormatError`].
//! - `file`: atomic whole-file writes and reads over [`crate::io::Storage`].

mod error;
mod file;
mod id_allocator;
mod snapshot;
mod stable;
mod state;

pub use error::{FormatError, ProducerError};
pub use id_allocator::{
    ProducerIdAllocator, PRODUCER_ID_BLOCK_FILE, PRODUCER_ID_BLOCK_IDS_DEFAULT,
};
pub use snapshot::{
    parse_snapshot_file_name, remove_snapshots_below, snapshot_file_name, LoadedSnapshot,
    SNAPSHOT_SUFFIX,
};
pub use stable::CompletedTxn;
pub use state::{
    first_sequence, in_sequence, last_sequence, BatchMetadata, Check, ProducerEntry,
    ProducerStateTable, BATCHES_RETAINED_MAX, NO_PRODUCER_EPOCH, NO_SEQUENCE,
    PRODUCER_ID_EXPIRATION_MS_DEFAULT,
};
