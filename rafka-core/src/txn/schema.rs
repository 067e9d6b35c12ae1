//! Kafka's `__transaction_state` record formats, byte for byte
//! (`TransactionLogKey` v0, `TransactionLogValue` v0 and v1), so Kafka's
//! tools read what rafka writes and rafka reads a Kafka data dir's log.
//!
//! ```text
//! key:   version i16 (0) | transactional_id string
//! value: version i16 (0 or 1) | producer_id i64 | producer_epoch i16
//!        | timeout_ms i32 | status i8
//!        | partitions: nullable [topic string, partition_ids [i32]]
//!        | last_update_ms i64 | start_ms i64
//!        (v1: compact lengths, tagged fields: 0 previous producer id,
//!         1 next producer id, 2 client transaction version)
//! ```
//!
//! rafka writes value version 0, what Kafka writes for clients below
//! transaction version 2 (KIP-890 part 2, which rafka does not serve);
//! it reads both. A null value is a tombstone (the id expired).

use bytes::{BufMut, Bytes, BytesMut};

use super::state::TxnState;
use crate::group::schema::{put_string, Reader, SchemaError};

const KEY_VERSION: i16 = 0;
/// The value version rafka writes.
pub const VALUE_VERSION: i16 = 0;
const VALUE_VERSION_MAX: i16 = 1;
const FLEXIBLE_FROM: i16 = 1;

/// What one `__transaction_state` record says about a transactional id:
/// the metadata as of its last durable transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnLogValue {
    pub producer_id: i64,
    /// v1 only (-1 otherwise).
    pub previous_producer_id: i64,
    /// v1 only (-1 otherwise).
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// Topic -> partitions, in the order written.
    pub partitions: Vec<(String, Vec<i32>)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

pub fn encode_key(transactional_id: &str) -> Result<Bytes, SchemaError> {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(KEY_VERSION);
    put_string(&mut buf, transactional_id)?;
    Ok(buf.freeze())
}

pub fn decode_key(bytes: &[u8]) -> Result<String, SchemaError> {
    let mut r = Reader::new(bytes, false);
    let version = r.i16("key version")?;
    if version != KEY_VERSION {
        return Err(SchemaError::UnknownVersion {
            record: "TransactionLogKey",
            version,
        });
    }
    r.string("transactional id")
}

impl TxnLogValue {
    /// Version 0. Kafka writes a null partition list in the Empty state.
    pub fn encode(&self) -> Result<Bytes, SchemaError> {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i16(VALUE_VERSION);
        buf.put_i64(self.producer_id);
        buf.put_i16(self.producer_epoch);
        buf.put_i32(self.timeout_ms);
        buf.put_i8(self.state.as_i8());
        if self.state == TxnState::Empty {
            buf.put_i32(-1);
        } else {
            buf.put_i32(len_i32(self.partitions.len())?);
            for (topic, partitions) in &self.partitions {
                put_string(&mut buf, topic)?;
                buf.put_i32(len_i32(partitions.len())?);
                for partition in partitions {
                    buf.put_i32(*partition);
                }
            }
        }
        buf.put_i64(self.last_update_ms);
        buf.put_i64(self.start_ms);
        Ok(buf.freeze())
    }

    pub fn decode(bytes: &[u8]) -> Result<TxnLogValue, SchemaError> {
        let version = Reader::new(bytes, false).i16("value version")?;
        if !(0..=VALUE_VERSION_MAX).contains(&version) {
            return Err(SchemaError::UnknownVersion {
                record: "TransactionLogValue",
                version,
            });
        }
        let flexible = version >= FLEXIBLE_FROM;
        let mut r = Reader::new(bytes, flexible);
        r.i16("value version")?;
        let producer_id = r.i64("producer id")?;
        let producer_epoch = r.i16("producer epoch")?;
        let timeout_ms = r.i32("timeout")?;
        let status = r.take(1, "status")?[0] as i8;
        let state = TxnState::from_i8(status).ok_or(SchemaError::InvalidLength {
            field: "transaction status",
            length: i64::from(status),
        })?;
        let mut partitions = Vec::new();
        if let Some(count) = r.length("partitions", true)? {
            for _ in 0..count.min(bytes.len()) {
                let topic = r.string("topic")?;
                let n = r.array_len("partition ids")?;
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    ids.push(r.i32("partition id")?);
                }
                r.skip_tags()?;
                partitions.push((topic, ids));
            }
        }
        let last_update_ms = r.i64("last update timestamp")?;
        let start_ms = r.i64("start timestamp")?;
        let mut value = TxnLogValue {
            producer_id,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms,
            start_ms,
        };
        if flexible {
            let count = r.uvarint("tagged field count")?;
            for _ in 0..count {
                let tag = r.uvarint("tag")?;
                let size = r.uvarint("tagged field size")? as usize;
                let field = r.take(size, "tagged field")?;
                let as_i64 = <[u8; 8]>::try_from(field).ok().map(i64::from_be_bytes);
                match (tag, as_i64) {
                    (0, Some(id)) => value.previous_producer_id = id,
                    (1, Some(id)) => value.next_producer_id = id,
                    _ => {}
                }
            }
        }
        Ok(value)
    }
}

fn len_i32(n: usize) -> Result<i32, SchemaError> {
    i32::try_from(n).map_err(|_| SchemaError::InvalidLength {
        field: "array",
        length: n as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(state: TxnState) -> TxnLogValue {
        TxnLogValue {
            producer_id: 1000,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state,
            partitions: vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])],
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn key_bytes_are_kafkas() {
        let key = encode_key("tx").unwrap();
        assert_eq!(&key[..], &[0, 0, 0, 2, b't', b'x']);
        assert_eq!(decode_key(&key).unwrap(), "tx");
        assert!(decode_key(&[0, 1, 0, 0]).is_err());
    }

    #[test]
    fn value_v0_bytes_round_trip() {
        let ongoing = value(TxnState::Ongoing);
        let bytes = ongoing.encode().unwrap();
        let mut expected = vec![0u8, 0];
        expected.extend(1000i64.to_be_bytes());
        expected.extend(3i16.to_be_bytes());
        expected.extend(60_000i32.to_be_bytes());
        expected.push(1);
        expected.extend(2i32.to_be_bytes());
        expected.extend([0, 1, b'a']);
        expected.extend(2i32.to_be_bytes());
        expected.extend(0i32.to_be_bytes());
        expected.extend(2i32.to_be_bytes());
        expected.extend([0, 1, b'b']);
        expected.extend(1i32.to_be_bytes());
        expected.extend(1i32.to_be_bytes());
        expected.extend(1_700_000_000_123i64.to_be_bytes());
        expected.extend(1_700_000_000_000i64.to_be_bytes());
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(TxnLogValue::decode(&bytes).unwrap(), ongoing);
    }

    #[test]
    fn empty_state_writes_null_partitions() {
        let mut empty = value(TxnState::Empty);
        empty.partitions.clear();
        let bytes = empty.encode().unwrap();
        assert_eq!(&bytes[17..21], &(-1i32).to_be_bytes());
        assert_eq!(TxnLogValue::decode(&bytes).unwrap(), empty);
    }

    #[test]
    fn value_v1_with_tagged_fields_decodes() {
        let mut b = vec![0u8, 1];
        b.extend(7i64.to_be_bytes());
        b.extend(2i16.to_be_bytes());
        b.extend(1000i32.to_be_bytes());
        b.push(4); // CompleteCommit
        b.push(2); // one topic (compact: n + 1)
        b.extend([2, b't']); // compact string "t"
        b.extend([2]); // one partition id
        b.extend(5i32.to_be_bytes());
        b.push(0); // topic's tagged fields
        b.extend(11i64.to_be_bytes());
        b.extend(10i64.to_be_bytes());
        b.push(2); // two tagged fields
        b.extend([0, 8]);
        b.extend(6i64.to_be_bytes());
        b.extend([2, 2]);
        b.extend(2i16.to_be_bytes());
        let decoded = TxnLogValue::decode(&b).unwrap();
        assert_eq!(decoded.producer_id, 7);
        assert_eq!(decoded.previous_producer_id, 6);
        assert_eq!(decoded.state, TxnState::CompleteCommit);
        assert_eq!(decoded.partitions, vec![("t".to_string(), vec![5])]);
        assert_eq!((decoded.last_update_ms, decoded.start_ms), (11, 10));
    }

    #[test]
    fn truncated_values_are_errors_not_panics() {
        let bytes = value(TxnState::PrepareCommit).encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(TxnLogValue::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
