//! `BatchBuilder`: writes a valid v2 batch from records, as a producer
//! would (base offset 0, partition leader epoch -1; the log assigns both).
//!
//! Records are encoded as they are pushed, into one buffer that already
//! holds room for the batch header, so an uncompressed batch is finished in
//! place: header written, CRC computed, buffer frozen, no copy.
//!
//! ```
//! use rafka_proto::record::{BatchBuilder, Compression, HeaderRef};
//! let mut builder = BatchBuilder::new(Compression::Lz4).base_timestamp_ms(1_700_000_000_000);
//! builder.push(Some(b"key"), Some(b"value"));
//! builder.push_record(1_700_000_000_005, None, Some(b"v2"), &[HeaderRef::new("trace", Some(b"x"))]);
//! let batch: bytes::Bytes = builder.build().unwrap();
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::record::batch::{
    write_crc, BatchHeader, TimestampType, ATTR_CONTROL, ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL,
    BATCH_HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2, NO_PRODUCER_ID,
};
use crate::record::compression::{self, CompressionError};
use crate::record::records::Record;
use crate::record::varint::{varint_size, varlong_size, write_varint, write_varlong};
use crate::record::Compression;

/// Why a batch could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("a batch needs at least one record")]
    Empty,
    #[error("more records than a batch can count")]
    TooManyRecords,
    #[error("a key, value or header of {size_bytes} bytes does not fit an i32 length")]
    FieldTooLarge { size_bytes: usize },
    #[error("batch of {size_bytes} bytes does not fit an i32 batchLength")]
    BatchTooLarge { size_bytes: usize },
    #[error(transparent)]
    Compression(#[from] CompressionError),
}

/// A header to write, borrowed from the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

impl<'a> HeaderRef<'a> {
    pub fn new(key: &'a str, value: Option<&'a [u8]>) -> Self {
        HeaderRef {
            key: key.as_bytes(),
            value,
        }
    }
}

/// Builds one v2 batch. Configure it first (the `self`-taking setters),
/// then push records, then [`BatchBuilder::build`].
#[derive(Debug)]
pub struct BatchBuilder {
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    timestamp_type: TimestampType,
    base_timestamp_ms: Option<i64>,
    max_timestamp_ms: i64,
    record_count: i32,
    /// [`BATCH_HEADER_BYTES`] reserved for the header, then the records.
    buf: BytesMut,
    /// The first error a push met; `build` reports it.
    error: Option<BuildError>,
}

impl BatchBuilder {
    pub fn new(compression: Compression) -> Self {
        Self::with_capacity(compression, 0)
    }

    /// A builder whose buffer already holds `records_bytes` of records.
    pub fn with_capacity(compression: Compression, records_bytes: usize) -> Self {
        let mut buf = BytesMut::with_capacity(BATCH_HEADER_BYTES + records_bytes);
        buf.put_bytes(0, BATCH_HEADER_BYTES);
        BatchBuilder {
            compression,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            timestamp_type: TimestampType::CreateTime,
            base_timestamp_ms: None,
            max_timestamp_ms: i64::MIN,
            record_count: 0,
            buf,
            error: None,
        }
    }

    /// An idempotent producer's id, epoch and the sequence of the first
    /// record.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Marks a control batch (see `control.rs`); only the coordinator
    /// writes these.
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    /// The timestamp record deltas are relative to. Without it, the first
    /// record's timestamp is used, as the Java producer does.
    pub fn base_timestamp_ms(mut self, base_timestamp_ms: i64) -> Self {
        // Deltas already written are relative to the old base.
        assert_eq!(self.record_count, 0, "base timestamp set after records");
        self.base_timestamp_ms = Some(base_timestamp_ms);
        self
    }

    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Bytes of encoded records so far, before compression.
    pub fn records_bytes(&self) -> usize {
        self.buf.len() - BATCH_HEADER_BYTES
    }

    /// Appends a record stamped with the base timestamp (0 if none is set).
    pub fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> &mut Self {
        let timestamp_ms = self.base_timestamp_ms.unwrap_or(0);
        self.push_record(timestamp_ms, key, value, &[])
    }

    /// Appends a decoded record, keeping its timestamp delta and content
    /// (its offset delta is reassigned: records take consecutive deltas).
    pub fn push_decoded(&mut self, record: &Record) -> &mut Self {
        let base = *self.base_timestamp_ms.get_or_insert(0);
        let headers: Vec<HeaderRef<'_>> = record
            .headers
            .iter()
            .map(|header| HeaderRef {
                key: &header.key,
                value: header.value.as_deref(),
            })
            .collect();
        self.push_record(
            base.wrapping_add(record.timestamp_delta),
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
        )
    }

    /// Appends a record with its own timestamp and headers.
    pub fn push_record(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[HeaderRef<'_>],
    ) -> &mut Self {
        if self.error.is_none() {
            if let Err(error) = self.encode_record(timestamp_ms, key, value, headers) {
                self.error = Some(error);
            }
        }
        self
    }

    fn encode_record(
        &mut self,
        timestamp_ms: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[HeaderRef<'_>],
    ) -> Result<(), BuildError> {
        let offset_delta = self.record_count;
        let record_count = offset_delta
            .checked_add(1)
            .ok_or(BuildError::TooManyRecords)?;
        let base = *self.base_timestamp_ms.get_or_insert(timestamp_ms);
        let timestamp_delta = timestamp_ms.wrapping_sub(base);
        let header_count = length_i32(headers.len())?;
        let mut body_bytes = 1 + varlong_size(timestamp_delta) + varint_size(offset_delta);
        body_bytes += nullable_size(key)? + nullable_size(value)? + varint_size(header_count);
        for header in headers {
            body_bytes += nullable_size(Some(header.key))? + nullable_size(header.value)?;
        }
        let body_length = length_i32(body_bytes)?;
        let buf = &mut self.buf;
        buf.reserve(varint_size(body_length) + body_bytes);
        write_varint(buf, body_length);
        buf.put_u8(0); // record attributes: unused in v2
        write_varlong(buf, timestamp_delta);
        write_varint(buf, offset_delta);
        write_nullable(buf, key);
        write_nullable(buf, value);
        write_varint(buf, header_count);
        for header in headers {
            write_nullable(buf, Some(header.key));
            write_nullable(buf, header.value);
        }
        self.record_count = record_count;
        self.max_timestamp_ms = self.max_timestamp_ms.max(timestamp_ms);
        Ok(())
    }

    /// Finishes the batch: compresses the records if asked, writes the
    /// header and the CRC.
    pub fn build(self) -> Result<Bytes, BuildError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if self.record_count == 0 {
            return Err(BuildError::Empty);
        }
        let header = self.header_fields();
        let mut batch = match self.compression {
            Compression::None => self.buf,
            codec => {
                let records = &self.buf[BATCH_HEADER_BYTES..];
                // Typical record data compresses to well under half.
                let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + records.len() / 2);
                out.put_bytes(0, BATCH_HEADER_BYTES);
                compression::compress(codec, records, &mut out)?;
                out
            }
        };
        let size_bytes = batch.len();
        let batch_length = i32::try_from(size_bytes - LOG_OVERHEAD_BYTES)
            .map_err(|_| BuildError::BatchTooLarge { size_bytes })?;
        let header = BatchHeader {
            batch_length,
            ..header
        };
        let header_bytes = batch
            .first_chunk_mut::<BATCH_HEADER_BYTES>()
            .expect("the buffer starts with room for the header");
        header.encode(header_bytes);
        write_crc(&mut batch);
        Ok(batch.freeze())
    }

    /// The header of the finished batch, less batchLength and CRC.
    fn header_fields(&self) -> BatchHeader {
        let base_timestamp = self.base_timestamp_ms.unwrap_or(0);
        let mut attributes = self.compression as i16;
        let mut max_timestamp = self.max_timestamp_ms;
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= ATTR_TIMESTAMP_TYPE;
            max_timestamp = base_timestamp;
        }
        if self.transactional {
            attributes |= ATTR_TRANSACTIONAL;
        }
        if self.control {
            attributes |= ATTR_CONTROL;
        }
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: MAGIC_V2,
            crc: 0,
            attributes,
            last_offset_delta: self.record_count - 1,
            base_timestamp,
            max_timestamp,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: self.base_sequence,
            record_count: self.record_count,
        }
    }
}

fn length_i32(size_bytes: usize) -> Result<i32, BuildError> {
    i32::try_from(size_bytes).map_err(|_| BuildError::FieldTooLarge { size_bytes })
}

/// Bytes a length-prefixed nullable field takes.
fn nullable_size(field: Option<&[u8]>) -> Result<usize, BuildError> {
    match field {
        None => Ok(varint_size(-1)),
        Some(bytes) => Ok(varint_size(length_i32(bytes.len())?) + bytes.len()),
    }
}

/// Writes a field whose size [`nullable_size`] already checked.
fn write_nullable(buf: &mut BytesMut, field: Option<&[u8]>) {
    match field {
        None => write_varint(buf, -1),
        Some(bytes) => {
            write_varint(buf, bytes.len() as i32);
            buf.put_slice(bytes);
        }
    }
}
