//! The Fetch response (v4-v18) written as chunks, so that each partition's
//! records can go out as file regions (`sendfile`) instead of bytes copied
//! into the response.
//!
//! Everything but the records is written into in-memory chunks with the
//! exact layout kafka-protocol's `FetchResponse` encoder produces (the
//! `zero_copy` tests compare the two byte for byte for every version): the
//! classic layout before v12; from v12 compact arrays, compact strings and
//! bytes and tagged fields (partition: diverging epoch 0, current leader 1,
//! snapshot id 2; response: node endpoints 0 from v16); topic names up to
//! v12, topic ids from v13; the preferred read replica from v11. The leaf
//! structs (aborted transaction, epoch end offset, leader, snapshot id,
//! node endpoint) are encoded by kafka-protocol itself. A partition's
//! `records` is its length prefix in memory followed by its chunks.

use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::FetchResponse;
use kafka_protocol::protocol::Encodable;
use rafka_proto::api::EncodeError;
use rafka_proto::header::{ResponseHeader, ResponseHeaderVersion};

use crate::zero_copy::{Chunk, ChunkedReply};

/// Versions this encoder writes (the broker's Fetch range).
pub const FETCH_VERSION_MIN: i16 = 4;
pub const FETCH_VERSION_MAX: i16 = 18;
/// First version with compact arrays and tagged fields.
const FLEXIBLE_VERSION_MIN: i16 = 12;

/// Why a response could not be encoded; the response is a broker bug.
#[derive(Debug, thiserror::Error)]
pub enum FetchEncodeError {
    #[error("Fetch v{version} is outside v4-v18")]
    Version { version: i16 },
    #[error("{field} is set but Fetch v{version} cannot carry it")]
    FieldNotInVersion { field: &'static str, version: i16 },
    #[error("{partitions} partitions but records for {records}")]
    RecordsCount { partitions: usize, records: usize },
    #[error("{what} of {len} does not fit its length prefix")]
    TooLong { what: &'static str, len: u64 },
    #[error("nested struct failed to encode: {0}")]
    Nested(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One partition's records: `None` is a null `records` field.
pub type PartitionRecords = Option<Vec<Chunk>>;

/// Encodes header + `response` of `version`, taking each partition's
/// records from `records` (one entry per partition, in response order;
/// the `records` fields of `response` are ignored).
pub fn encode_fetch_response(
    correlation_id: i32,
    header_version: ResponseHeaderVersion,
    response: &FetchResponse,
    records: Vec<PartitionRecords>,
    version: i16,
) -> Result<ChunkedReply, EncodeError> {
    let mut writer = Writer {
        reply: ChunkedReply::new(),
        buf: BytesMut::new(),
        version,
    };
    ResponseHeader { correlation_id }.encode(header_version, &mut writer.buf);
    writer
        .response(response, records)
        .map_err(|error| EncodeError {
            version,
            source: Box::new(error),
        })?;
    Ok(writer.finish())
}

/// Appends to the current in-memory chunk; records close it.
struct Writer {
    reply: ChunkedReply,
    buf: BytesMut,
    version: i16,
}

type Encoded = Result<(), FetchEncodeError>;

impl Writer {
    fn flexible(&self) -> bool {
        self.version >= FLEXIBLE_VERSION_MIN
    }

    fn finish(mut self) -> ChunkedReply {
        let tail = self.buf.split().freeze();
        self.reply.push(Chunk::Bytes(tail));
        self.reply
    }

    fn response(&mut self, response: &FetchResponse, records: Vec<PartitionRecords>) -> Encoded {
        let version = self.version;
        if !(FETCH_VERSION_MIN..=FETCH_VERSION_MAX).contains(&version) {
            return Err(FetchEncodeError::Version { version });
        }
        let partitions: usize = response.responses.iter().map(|t| t.partitions.len()).sum();
        if partitions != records.len() {
            return Err(FetchEncodeError::RecordsCount {
                partitions,
                records: records.len(),
            });
        }
        self.buf.put_i32(response.throttle_time_ms);
        if version >= 7 {
            self.buf.put_i16(response.error_code);
            self.buf.put_i32(response.session_id);
        } else if response.session_id != 0 {
            return Err(self.not_in_version("session_id"));
        }
        self.array_len(response.responses.len())?;
        let mut records = records.into_iter();
        for topic in &response.responses {
            self.topic(topic, &mut records)?;
        }
        if self.flexible() {
            self.response_tags(response)?;
        }
        Ok(())
    }

    fn response_tags(&mut self, response: &FetchResponse) -> Encoded {
        let endpoints = self.version >= 16 && !response.node_endpoints.is_empty();
        let unknown = &response.unknown_tagged_fields;
        self.uvarint_len(unknown.len() + usize::from(endpoints))?;
        if endpoints {
            let mut field = BytesMut::new();
            put_uvarint(
                &mut field,
                len_u32("array", response.node_endpoints.len() + 1)?,
            );
            for endpoint in &response.node_endpoints {
                nested(endpoint, &mut field, self.version)?;
            }
            self.tagged(0, &field)?;
        }
        self.unknown_tags(unknown, 1)
    }

    fn topic(
        &mut self,
        topic: &FetchableTopicResponse,
        records: &mut impl Iterator<Item = PartitionRecords>,
    ) -> Encoded {
        if self.version <= FLEXIBLE_VERSION_MIN {
            self.string(topic.topic.0.as_bytes())?;
        }
        if self.version >= 13 {
            self.buf.put_slice(topic.topic_id.as_bytes());
        }
        self.array_len(topic.partitions.len())?;
        for partition in &topic.partitions {
            // The count was checked against the partitions up front.
            let chunks = records.next().flatten();
            self.partition(partition, chunks)?;
        }
        if self.flexible() {
            self.uvarint_len(topic.unknown_tagged_fields.len())?;
            self.unknown_tags(&topic.unknown_tagged_fields, 0)?;
        }
        Ok(())
    }

    fn partition(&mut self, data: &PartitionData, records: PartitionRecords) -> Encoded {
        let version = self.version;
        self.buf.put_i32(data.partition_index);
        self.buf.put_i16(data.error_code);
        self.buf.put_i64(data.high_watermark);
        self.buf.put_i64(data.last_stable_offset);
        if version >= 5 {
            self.buf.put_i64(data.log_start_offset);
        }
        match &data.aborted_transactions {
            None => self.null_len(),
            Some(aborted) => {
                self.array_len(aborted.len())?;
                for transaction in aborted {
                    nested(transaction, &mut self.buf, version)?;
                }
            }
        }
        if version >= 11 {
            self.buf.put_i32(data.preferred_read_replica.0);
        } else if data.preferred_read_replica.0 != -1 {
            return Err(self.not_in_version("preferred_read_replica"));
        }
        self.records(records)?;
        if self.flexible() {
            self.partition_tags(data)?;
        }
        Ok(())
    }

    /// The nullable bytes field: its length in memory, then the chunks.
    fn records(&mut self, records: PartitionRecords) -> Encoded {
        let Some(chunks) = records else {
            self.null_len();
            return Ok(());
        };
        let len: u64 = chunks.iter().map(Chunk::len_bytes).sum();
        let len = usize::try_from(len).map_err(|_| FetchEncodeError::TooLong {
            what: "records",
            len,
        })?;
        if self.flexible() {
            put_uvarint(&mut self.buf, len_u32("records", len + 1)?);
        } else {
            self.buf.put_i32(len_i32("records", len)?);
        }
        let head = self.buf.split().freeze();
        self.reply.push(Chunk::Bytes(head));
        for chunk in chunks {
            self.reply.push(chunk);
        }
        Ok(())
    }

    fn partition_tags(&mut self, data: &PartitionData) -> Encoded {
        let version = self.version;
        let mut fields: Vec<(u32, BytesMut)> = Vec::new();
        if data.diverging_epoch != Default::default() {
            fields.push((0, nested_bytes(&data.diverging_epoch, version)?));
        }
        if data.current_leader != Default::default() {
            fields.push((1, nested_bytes(&data.current_leader, version)?));
        }
        if data.snapshot_id != Default::default() {
            fields.push((2, nested_bytes(&data.snapshot_id, version)?));
        }
        self.uvarint_len(fields.len() + data.unknown_tagged_fields.len())?;
        for (tag, field) in &fields {
            self.tagged(*tag, field)?;
        }
        self.unknown_tags(&data.unknown_tagged_fields, 3)
    }

    /// Unknown tagged fields with tags from `first_tag` on (Kafka's order:
    /// known tags first, then the unknown ones by tag).
    fn unknown_tags(&mut self, fields: &BTreeMap<i32, Bytes>, first_tag: i32) -> Encoded {
        for (&tag, value) in fields.range(first_tag..) {
            let tag = u32::try_from(tag).map_err(|_| FetchEncodeError::TooLong {
                what: "tag",
                len: 0,
            })?;
            self.tagged(tag, value)?;
        }
        Ok(())
    }

    fn tagged(&mut self, tag: u32, value: &[u8]) -> Encoded {
        put_uvarint(&mut self.buf, tag);
        put_uvarint(&mut self.buf, len_u32("tagged field", value.len())?);
        self.buf.put_slice(value);
        Ok(())
    }

    fn array_len(&mut self, len: usize) -> Encoded {
        if self.flexible() {
            put_uvarint(&mut self.buf, len_u32("array", len + 1)?);
        } else {
            self.buf.put_i32(len_i32("array", len)?);
        }
        Ok(())
    }

    /// A null array or null bytes field.
    fn null_len(&mut self) {
        if self.flexible() {
            put_uvarint(&mut self.buf, 0);
        } else {
            self.buf.put_i32(-1);
        }
    }

    fn uvarint_len(&mut self, len: usize) -> Encoded {
        put_uvarint(&mut self.buf, len_u32("tagged fields", len)?);
        Ok(())
    }

    fn string(&mut self, value: &[u8]) -> Encoded {
        if self.flexible() {
            put_uvarint(&mut self.buf, len_u32("string", value.len() + 1)?);
        } else {
            let len = i16::try_from(value.len()).map_err(|_| FetchEncodeError::TooLong {
                what: "string",
                len: value.len() as u64,
            })?;
            self.buf.put_i16(len);
        }
        self.buf.put_slice(value);
        Ok(())
    }

    fn not_in_version(&self, field: &'static str) -> FetchEncodeError {
        FetchEncodeError::FieldNotInVersion {
            field,
            version: self.version,
        }
    }
}

fn nested<T: Encodable>(value: &T, buf: &mut BytesMut, version: i16) -> Encoded {
    value
        .encode(buf, version)
        .map_err(|error| FetchEncodeError::Nested(error.into()))
}

fn nested_bytes<T: Encodable>(value: &T, version: i16) -> Result<BytesMut, FetchEncodeError> {
    let mut buf = BytesMut::new();
    nested(value, &mut buf, version)?;
    Ok(buf)
}

fn len_u32(what: &'static str, len: usize) -> Result<u32, FetchEncodeError> {
    u32::try_from(len).map_err(|_| FetchEncodeError::TooLong {
        what,
        len: len as u64,
    })
}

fn len_i32(what: &'static str, len: usize) -> Result<i32, FetchEncodeError> {
    i32::try_from(len).map_err(|_| FetchEncodeError::TooLong {
        what,
        len: len as u64,
    })
}

/// Kafka's unsigned varint: 7 bits per byte, low bits first.
fn put_uvarint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_matches_kafka_examples() {
        let mut buf = BytesMut::new();
        for value in [0u32, 1, 127, 128, 300, u32::MAX] {
            put_uvarint(&mut buf, value);
        }
        assert_eq!(
            &buf[..],
            &[0, 1, 0x7f, 0x80, 0x01, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0x0f]
        );
    }

    #[test]
    fn records_count_must_match_partitions() {
        let response = FetchResponse::default();
        let error = encode_fetch_response(1, ResponseHeaderVersion::V0, &response, vec![None], 4)
            .expect_err("one records entry for no partition");
        assert!(matches!(
            error.source.downcast_ref::<FetchEncodeError>(),
            Some(FetchEncodeError::RecordsCount {
                partitions: 0,
                records: 1
            })
        ));
    }
}
