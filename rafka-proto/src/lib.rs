//! rafka-proto: the Kafka wire protocol as rafka speaks it.
//!
//! # Layout
//! - `error`: [`error::ErrorCode`], Kafka's error codes as one typed
//!   vocabulary for every crate.
//! - `acks`: [`acks::Acks`], Produce's `acks` as a type.
//! - `frame`: 4-byte size-prefixed frames with a size limit.
//! - `header`: request headers v0-v2, response headers v0-v1.
//! - `api`: the one API table (versions, flexible versions, header
//!   versions) that drives dispatch and the ApiVersions response.
//! - `record`: RecordBatch v2 — zero-copy header view and validation
//!   (`record/batch.rs`), records, compression codecs, control records,
//!   batch builder.
//!
//! Message structs (ProduceRequest, FetchResponse, ...) come from the
//! `kafka-protocol` crate; this crate adds what it does not do the way a
//! broker needs: framing with limits, headers without panics, the API table,
//! and record batches over shared bytes.

pub mod acks;
pub mod api;
pub mod error;
pub mod frame;
pub mod header;
pub mod record;
