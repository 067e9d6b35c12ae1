//! What a quorum entry carries: one controller commit (its records, all or
//! none) and who proposed it, so the proposer can answer its caller when
//! the entry is applied.
//!
//! ```text
//! version      u8    1
//! node_id      i32   the proposing node
//! incarnation  u64   random per process start: a restarted node never
//!                    mistakes an old proposal for a new one
//! sequence     u64   per incarnation
//! count        u32   records, at least 1
//! records            each: u32 length + MetadataRecord encoding
//! ```

use rafka_core::metadata::record::RecordError;
use rafka_core::metadata::MetadataRecord;

const VERSION: u8 = 1;
const HEADER_BYTES: usize = 1 + 4 + 8 + 8 + 4;

/// Who proposed an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProposalId {
    pub node_id: i32,
    pub incarnation: u64,
    pub sequence: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub id: ProposalId,
    pub records: Vec<MetadataRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("entry payload truncated")]
    Truncated,
    #[error("entry payload version {0} unknown")]
    UnknownVersion(u8),
    #[error("entry payload holds no records")]
    Empty,
    #[error("entry record {index}: {source}")]
    Record {
        index: u32,
        #[source]
        source: RecordError,
    },
    #[error("entry payload has {0} bytes after its records")]
    TrailingBytes(usize),
}

pub fn encode(id: ProposalId, records: &[MetadataRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + records.len() * 64);
    out.push(VERSION);
    out.extend_from_slice(&id.node_id.to_be_bytes());
    out.extend_from_slice(&id.incarnation.to_be_bytes());
    out.extend_from_slice(&id.sequence.to_be_bytes());
    let count = u32::try_from(records.len()).expect("a commit holds fewer than 2^32 records");
    out.extend_from_slice(&count.to_be_bytes());
    for record in records {
        let bytes = record.to_bytes();
        let len = u32::try_from(bytes.len()).expect("a record is under 4 GiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadError> {
        if self.bytes.len() < n {
            return Err(PayloadError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PayloadError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

pub fn decode(bytes: &[u8]) -> Result<Payload, PayloadError> {
    let mut r = Reader { bytes };
    let [version] = r.array::<1>()?;
    if version != VERSION {
        return Err(PayloadError::UnknownVersion(version));
    }
    let node_id = i32::from_be_bytes(r.array()?);
    let incarnation = u64::from_be_bytes(r.array()?);
    let sequence = u64::from_be_bytes(r.array()?);
    let count = u32::from_be_bytes(r.array()?);
    if count == 0 {
        return Err(PayloadError::Empty);
    }
    // Each record takes at least its 4-byte length: bounds the allocation.
    let mut records = Vec::with_capacity((count as usize).min(r.bytes.len() / 4));
    for index in 0..count {
        let len = u32::from_be_bytes(r.array()?) as usize;
        let record = MetadataRecord::decode(r.take(len)?)
            .map_err(|source| PayloadError::Record { index, source })?;
        records.push(record);
    }
    if !r.bytes.is_empty() {
        return Err(PayloadError::TrailingBytes(r.bytes.len()));
    }
    Ok(Payload {
        id: ProposalId {
            node_id,
            incarnation,
            sequence,
        },
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_core::metadata::{ConfigRecord, ConfigResource};

    fn id() -> ProposalId {
        ProposalId {
            node_id: 2,
            incarnation: 0x0102_0304_0506_0708,
            sequence: 9,
        }
    }

    fn config(name: &str) -> MetadataRecord {
        MetadataRecord::Config(ConfigRecord {
            resource: ConfigResource::Broker(String::new()),
            name: name.to_string(),
            value: Some("1".to_string()),
        })
    }

    #[test]
    fn round_trips_records_and_the_proposer() {
        let records = vec![config("a"), config("b")];
        let bytes = encode(id(), &records);
        assert_eq!(&bytes[..5], &[1, 0, 0, 0, 2]);
        let payload = decode(&bytes).expect("decodes");
        assert_eq!(payload.id, id());
        assert_eq!(payload.records, records);
    }

    #[test]
    fn refuses_every_truncation_and_trailing_bytes() {
        let bytes = encode(id(), &[config("a")]);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(PayloadError::TrailingBytes(1)));
        let mut version = bytes;
        version[0] = 2;
        assert_eq!(decode(&version), Err(PayloadError::UnknownVersion(2)));
    }
}
