//! rafka-proto: the Kafka wire protocol as rafka speaks it.
//!
//! # Layout
//! - `record`: RecordBatch v2 — zero-copy header view and validation
//!   (`record/batch.rs`), records, compression codecs, control records,
//!   batch builder.
//!
//! Message structs (ProduceRequest, FetchResponse, ...) come from the
//! `kafka-protocol` crate; this crate adds what it does not do the way a
//! broker needs: framing with limits, headers without panics, the API table,
//! and record batches over shared bytes.

pub mod record;
