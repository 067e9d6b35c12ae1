//! Kafka's `__consumer_offsets` record formats, byte for byte, so Kafka's
//! own tooling (kafka-console-consumer's formatters, kafka-dump-log) reads
//! what rafka writes and rafka reads what Kafka wrote.
//!
//! A record key starts with an i16 *key version* that says what the record
//! is: 0 and 1 are an offset commit (group, topic, partition), 2 is group
//! metadata (group). Values carry their own i16 version. rafka writes key
//! version 1 / 2 and value version 3 (the newest non-flexible ones, what
//! Kafka 2.3+ writes) and reads value versions 0-4 (4 is flexible: compact
//! lengths and tagged fields). A null value is a tombstone.
//!
//! Also here: the topics of a consumer-protocol subscription
//! ([`subscription_topics`]), which OffsetDelete and offset expiry need.

use bytes::{BufMut, Bytes, BytesMut};

/// Key version of an offset commit as rafka writes it.
pub const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of group metadata.
pub const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value version rafka writes for offset commits.
pub const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Value version rafka writes for group metadata.
pub const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// The newest value version either record type has.
const VALUE_VERSION_MAX: i16 = 4;
/// Values from this version on are flexible (KIP-482).
const FLEXIBLE_VERSION_MIN: i16 = 4;

/// Why a `__consumer_offsets` key or value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("truncated while reading {field}")]
    Truncated { field: &'static str },
    #[error("invalid length {length} for {field}")]
    InvalidLength { field: &'static str, length: i64 },
    #[error("{field} is null but the schema does not allow it")]
    UnexpectedNull { field: &'static str },
    #[error("{field} is not valid UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("bad varint in {field}")]
    Varint { field: &'static str },
    #[error("unknown {record} version {version}")]
    UnknownVersion { record: &'static str, version: i16 },
    #[error("a string of {length_bytes} bytes does not fit an INT16 length")]
    StringTooLong { length_bytes: usize },
}

/// The key of an offset commit record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetCommitKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// What a record of `__consumer_offsets` is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    OffsetCommit(OffsetCommitKey),
    GroupMetadata {
        group: String,
    },
    /// Key versions of record types rafka does not serve (Kafka 3.7+'s
    /// consumer-group records): skipped when rebuilding.
    Other {
        version: i16,
    },
}

/// One committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown (versions before 3).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only version 1 has it; -1 otherwise.
    pub expire_timestamp_ms: i64,
}

/// One member in a group metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's generation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state; -1 before version 2.
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadata>,
}

impl OffsetCommitKey {
    pub fn encode(&self) -> Result<Bytes, SchemaError> {
        let mut buf = BytesMut::with_capacity(10 + self.group.len() + self.topic.len());
        buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
        put_string(&mut buf, &self.group)?;
        put_string(&mut buf, &self.topic)?;
        buf.put_i32(self.partition);
        Ok(buf.freeze())
    }
}

/// The key of group `group`'s metadata record.
pub fn encode_group_metadata_key(group: &str) -> Result<Bytes, SchemaError> {
    let mut buf = BytesMut::with_capacity(4 + group.len());
    buf.put_i16(GROUP_METADATA_KEY_VERSION);
    put_string(&mut buf, group)?;
    Ok(buf.freeze())
}

impl RecordKey {
    pub fn decode(bytes: &[u8]) -> Result<RecordKey, SchemaError> {
        let mut r = Reader::new(bytes, false);
        let version = r.i16("key version")?;
        match version {
            0 | 1 => Ok(RecordKey::OffsetCommit(OffsetCommitKey {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.i32("partition")?,
            })),
            2 => Ok(RecordKey::GroupMetadata {
                group: r.string("group")?,
            }),
            version if version > 2 => Ok(RecordKey::Other { version }),
            version => Err(SchemaError::UnknownVersion {
                record: "key",
                version,
            }),
        }
    }
}

impl OffsetCommitValue {
    /// Version 3: offset, leader epoch, metadata, commit timestamp.
    pub fn encode(&self) -> Result<Bytes, SchemaError> {
        let mut buf = BytesMut::with_capacity(26 + self.metadata.len());
        buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_string(&mut buf, &self.metadata)?;
        buf.put_i64(self.commit_timestamp_ms);
        Ok(buf.freeze())
    }

    pub fn decode(bytes: &[u8]) -> Result<OffsetCommitValue, SchemaError> {
        let version = value_version(bytes, "offset commit value")?;
        let mut r = Reader::new(&bytes[2..], version >= FLEXIBLE_VERSION_MIN);
        let offset = r.i64("offset")?;
        let leader_epoch = if version >= 3 {
            r.i32("leader epoch")?
        } else {
            -1
        };
        let metadata = r.string("metadata")?;
        let commit_timestamp_ms = r.i64("commit timestamp")?;
        let expire_timestamp_ms = if version == 1 {
            r.i64("expire timestamp")?
        } else {
            -1
        };
        r.skip_tags()?;
        Ok(OffsetCommitValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
            expire_timestamp_ms,
        })
    }
}

impl GroupMetadataValue {
    /// Version 3 (static membership's group instance ids included).
    pub fn encode(&self) -> Result<Bytes, SchemaError> {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type)?;
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref())?;
        put_nullable_string(&mut buf, self.leader.as_deref())?;
        buf.put_i64(self.current_state_timestamp_ms);
        let count = i32::try_from(self.members.len()).map_err(|_| SchemaError::InvalidLength {
            field: "members",
            length: self.members.len() as i64,
        })?;
        buf.put_i32(count);
        for member in &self.members {
            put_string(&mut buf, &member.member_id)?;
            put_nullable_string(&mut buf, member.group_instance_id.as_deref())?;
            put_string(&mut buf, &member.client_id)?;
            put_string(&mut buf, &member.client_host)?;
            buf.put_i32(member.rebalance_timeout_ms);
            buf.put_i32(member.session_timeout_ms);
            put_bytes(&mut buf, &member.subscription)?;
            put_bytes(&mut buf, &member.assignment)?;
        }
        Ok(buf.freeze())
    }

    pub fn decode(bytes: &[u8]) -> Result<GroupMetadataValue, SchemaError> {
        let version = value_version(bytes, "group metadata value")?;
        let mut r = Reader::new(&bytes[2..], version >= FLEXIBLE_VERSION_MIN);
        let protocol_type = r.string("protocol type")?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let current_state_timestamp_ms = if version >= 2 {
            r.i64("current state timestamp")?
        } else {
            -1
        };
        let count = r.array_len("members")?;
        let mut members = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            members.push(decode_member(&mut r, version)?);
        }
        r.skip_tags()?;
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

fn decode_member(r: &mut Reader<'_>, version: i16) -> Result<MemberMetadata, SchemaError> {
    let member_id = r.string("member id")?;
    let group_instance_id = if version >= 3 {
        r.nullable_string("group instance id")?
    } else {
        None
    };
    let client_id = r.string("client id")?;
    let client_host = r.string("client host")?;
    let rebalance_timeout = if version >= 1 {
        Some(r.i32("rebalance timeout")?)
    } else {
        None
    };
    let session_timeout_ms = r.i32("session timeout")?;
    let subscription = r.bytes("subscription")?;
    let assignment = r.bytes("assignment")?;
    r.skip_tags()?;
    Ok(MemberMetadata {
        member_id,
        group_instance_id,
        client_id,
        client_host,
        // Version 0 had one timeout for both, as the JoinGroup v0 request.
        rebalance_timeout_ms: rebalance_timeout.unwrap_or(session_timeout_ms),
        session_timeout_ms,
        subscription,
        assignment,
    })
}

/// The topics a consumer-protocol subscription (ConsumerProtocolSubscription
/// v0-v3: version, topics, user data, ...) names. Only the leading fields
/// are read; later versions only append fields.
pub fn subscription_topics(bytes: &[u8]) -> Result<Vec<String>, SchemaError> {
    let mut r = Reader::new(bytes, false);
    let version = r.i16("subscription version")?;
    if version < 0 {
        return Err(SchemaError::UnknownVersion {
            record: "subscription",
            version,
        });
    }
    let count = r.array_len("subscription topics")?;
    let mut topics = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        topics.push(r.string("subscription topic")?);
    }
    Ok(topics)
}

fn value_version(bytes: &[u8], record: &'static str) -> Result<i16, SchemaError> {
    let version = Reader::new(bytes, false).i16("value version")?;
    if !(0..=VALUE_VERSION_MAX).contains(&version) {
        return Err(SchemaError::UnknownVersion { record, version });
    }
    Ok(version)
}

pub(crate) fn put_string(buf: &mut BytesMut, s: &str) -> Result<(), SchemaError> {
    let length = i16::try_from(s.len()).map_err(|_| SchemaError::StringTooLong {
        length_bytes: s.len(),
    })?;
    buf.put_i16(length);
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) -> Result<(), SchemaError> {
    match s {
        Some(s) => put_string(buf, s),
        None => {
            buf.put_i16(-1);
            Ok(())
        }
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) -> Result<(), SchemaError> {
    let length = i32::try_from(b.len()).map_err(|_| SchemaError::InvalidLength {
        field: "bytes",
        length: b.len() as i64,
    })?;
    buf.put_i32(length);
    buf.put_slice(b);
    Ok(())
}

/// A bounds-checked cursor. `flexible` switches lengths to unsigned
/// varints holding length + 1 (0 = null) and enables tagged fields.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], flexible: bool) -> Self {
        Reader {
            buf,
            pos: 0,
            flexible,
        }
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], SchemaError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(SchemaError::Truncated { field })?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SchemaError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, SchemaError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, SchemaError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, SchemaError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u32, SchemaError> {
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let byte = self.take(1, field)?[0];
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(SchemaError::Varint { field })
    }

    /// A length: None for null.
    pub(crate) fn length(
        &mut self,
        field: &'static str,
        wide: bool,
    ) -> Result<Option<usize>, SchemaError> {
        let length = if self.flexible {
            i64::from(self.uvarint(field)?) - 1
        } else if wide {
            i64::from(self.i32(field)?)
        } else {
            i64::from(self.i16(field)?)
        };
        match length {
            -1 => Ok(None),
            n if n < 0 => Err(SchemaError::InvalidLength { field, length: n }),
            n => Ok(Some(n as usize)),
        }
    }

    pub(crate) fn nullable_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, SchemaError> {
        let Some(length) = self.length(field, false)? else {
            return Ok(None);
        };
        let raw = self.take(length, field)?;
        let text = std::str::from_utf8(raw).map_err(|_| SchemaError::NotUtf8 { field })?;
        Ok(Some(text.to_string()))
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, SchemaError> {
        self.nullable_string(field)?
            .ok_or(SchemaError::UnexpectedNull { field })
    }

    fn bytes(&mut self, field: &'static str) -> Result<Bytes, SchemaError> {
        let length = self
            .length(field, true)?
            .ok_or(SchemaError::UnexpectedNull { field })?;
        Ok(Bytes::copy_from_slice(self.take(length, field)?))
    }

    pub(crate) fn array_len(&mut self, field: &'static str) -> Result<usize, SchemaError> {
        let length = self
            .length(field, true)?
            .ok_or(SchemaError::UnexpectedNull { field })?;
        // Every element takes at least one byte: a length beyond what is
        // left is corrupt, and must not size an allocation.
        if length > self.buf.len() - self.pos {
            return Err(SchemaError::InvalidLength {
                field,
                length: length as i64,
            });
        }
        Ok(length)
    }

    /// Skips a flexible struct's tagged fields (none are known to rafka).
    pub(crate) fn skip_tags(&mut self) -> Result<(), SchemaError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            self.uvarint("tag")?;
            let size = self.uvarint("tagged field size")? as usize;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
