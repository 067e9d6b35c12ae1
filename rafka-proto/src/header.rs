//! Request headers (v0-v2) parsed by hand from a frame, and response headers
//! (v0-v1) encoded.
//!
//! Parsing happens in two steps because the header's own version depends on
//! the API and its version: first the fixed 8-byte [`RequestPrefix`]
//! (api_key, api_version, correlation_id), then a lookup in the broker's
//! [`ApiTable`], then the rest. Every failure past the prefix still carries
//! the prefix, so the broker can answer the correlation id where Kafka does
//! (an unsupported ApiVersions version gets UNSUPPORTED_VERSION).
//!
//! The client id is kept as raw bytes sliced out of the frame, not validated
//! as UTF-8: Kafka decodes it lossily and never rejects a request for it, and
//! it is only used for logs and quotas. [`RequestHeader::client_id_lossy`]
//! gives the string form. Header tagged fields (v2) are skipped: none are
//! defined, and skipping never allocates.

use std::borrow::Cow;
use std::fmt;

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::ApiKey;
use thiserror::Error;

use crate::api::{ApiLookupError, ApiTable};

/// Bytes of the fields every request header version starts with.
pub const REQUEST_PREFIX_BYTES: usize = 8;

/// The request header layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestHeaderVersion {
    /// api_key, api_version, correlation_id.
    V0,
    /// v0 + client_id (nullable STRING, i16 length).
    V1,
    /// v1 + tagged fields; the client id stays a non-compact STRING.
    V2,
}

/// The response header layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseHeaderVersion {
    /// correlation_id.
    V0,
    /// correlation_id + tagged fields.
    V1,
}

impl RequestHeaderVersion {
    pub fn from_i16(version: i16) -> Option<RequestHeaderVersion> {
        match version {
            0 => Some(RequestHeaderVersion::V0),
            1 => Some(RequestHeaderVersion::V1),
            2 => Some(RequestHeaderVersion::V2),
            _ => None,
        }
    }
}

impl ResponseHeaderVersion {
    pub fn from_i16(version: i16) -> Option<ResponseHeaderVersion> {
        match version {
            0 => Some(ResponseHeaderVersion::V0),
            1 => Some(ResponseHeaderVersion::V1),
            _ => None,
        }
    }
}

/// A field of the request header, to say where parsing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderField {
    ApiKey,
    ApiVersion,
    CorrelationId,
    ClientIdLength,
    ClientId,
    TaggedFieldCount,
    TaggedFieldTag,
    TaggedFieldSize,
    TaggedFieldData,
}

impl fmt::Display for HeaderField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The fixed start of every request header: enough to route an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestPrefix {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

impl fmt::Display for RequestPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "api key {} v{} correlation id {}",
            self.api_key, self.api_version, self.correlation_id
        )
    }
}

/// Why a request header could not be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HeaderError {
    #[error("frame of {frame_bytes} bytes ends inside the header's {field}")]
    ShortPrefix {
        field: HeaderField,
        frame_bytes: usize,
    },
    #[error("request {prefix}: {source}")]
    Unsupported {
        prefix: RequestPrefix,
        #[source]
        source: ApiLookupError,
    },
    #[error("request {prefix}: {source}")]
    Malformed {
        prefix: RequestPrefix,
        #[source]
        source: HeaderFieldError,
    },
}

impl HeaderError {
    /// The prefix, when the frame was long enough to hold one; the broker
    /// needs its correlation id to answer.
    pub fn prefix(&self) -> Option<&RequestPrefix> {
        match self {
            HeaderError::ShortPrefix { .. } => None,
            HeaderError::Unsupported { prefix, .. } | HeaderError::Malformed { prefix, .. } => {
                Some(prefix)
            }
        }
    }
}

/// What is wrong past the fixed prefix.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HeaderFieldError {
    #[error("header ends inside {field} at byte {offset}: {needed_bytes} more bytes needed")]
    Truncated {
        field: HeaderField,
        offset: usize,
        needed_bytes: usize,
    },
    #[error("client id length {length} is negative and not -1 (null)")]
    NegativeClientIdLength { length: i16 },
    #[error("unsigned varint in {field} at byte {offset} is longer than 5 bytes or overflows u32")]
    BadVarint { field: HeaderField, offset: usize },
    #[error("{count} tagged fields cannot fit in the {remaining_bytes} bytes left")]
    TaggedFieldCountBeyondFrame { count: u32, remaining_bytes: usize },
}

/// A parsed request header. The api key and version are known to be served
/// by the table it was parsed against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    pub header_version: RequestHeaderVersion,
    /// Raw bytes of the client id (see the module doc); `None` for a null
    /// client id and for header v0.
    pub client_id: Option<Bytes>,
}

impl RequestPrefix {
    /// Reads the fixed 8 bytes at the front of a request frame.
    pub fn parse(frame: &[u8]) -> Result<RequestPrefix, HeaderError> {
        RequestPrefix::read(&mut WireReader::new(frame))
    }

    fn read(reader: &mut WireReader<'_>) -> Result<RequestPrefix, HeaderError> {
        let frame_bytes = reader.buf.len();
        let short = |field| HeaderError::ShortPrefix { field, frame_bytes };
        let api_key = reader.i16().map_err(|_| short(HeaderField::ApiKey))?;
        let api_version = reader.i16().map_err(|_| short(HeaderField::ApiVersion))?;
        let correlation_id = reader
            .i32()
            .map_err(|_| short(HeaderField::CorrelationId))?;
        Ok(RequestPrefix {
            api_key,
            api_version,
            correlation_id,
        })
    }
}

impl RequestHeader {
    /// Parses the header at the front of `frame` (a frame body, without its
    /// size prefix) and returns it with the request body that follows, both
    /// sharing `frame`'s memory.
    pub fn parse(frame: &Bytes, table: &ApiTable) -> Result<(RequestHeader, Bytes), HeaderError> {
        let mut reader = WireReader::new(frame);
        let prefix = RequestPrefix::read(&mut reader)?;
        let entry = table
            .lookup(prefix.api_key, prefix.api_version)
            .map_err(|source| HeaderError::Unsupported { prefix, source })?;
        let header_version = entry.request_header_version(prefix.api_version);
        let malformed = |source| HeaderError::Malformed { prefix, source };
        let client_id = match header_version {
            RequestHeaderVersion::V0 => None,
            _ => read_client_id(&mut reader, frame).map_err(malformed)?,
        };
        if header_version == RequestHeaderVersion::V2 {
            skip_tagged_fields(&mut reader).map_err(malformed)?;
        }
        let header = RequestHeader {
            api_key: entry.api_key(),
            api_version: prefix.api_version,
            correlation_id: prefix.correlation_id,
            header_version,
            client_id,
        };
        Ok((header, frame.slice(reader.position()..)))
    }

    /// The client id as text, with invalid UTF-8 replaced (as Kafka does).
    pub fn client_id_lossy(&self) -> Option<Cow<'_, str>> {
        self.client_id
            .as_ref()
            .map(|raw| String::from_utf8_lossy(raw))
    }

    /// Appends this header in its `header_version` layout (used by tools and
    /// tests that play the client side). A client id longer than i16::MAX
    /// bytes cannot be expressed and is refused.
    pub fn encode(&self, out: &mut impl BufMut) -> Result<(), ClientIdTooLong> {
        let client_id_length = match &self.client_id {
            None => -1,
            Some(id) => i16::try_from(id.len()).map_err(|_| ClientIdTooLong {
                length_bytes: id.len(),
            })?,
        };
        out.put_i16(self.api_key as i16);
        out.put_i16(self.api_version);
        out.put_i32(self.correlation_id);
        if self.header_version == RequestHeaderVersion::V0 {
            return Ok(());
        }
        out.put_i16(client_id_length);
        if let Some(id) = &self.client_id {
            out.put_slice(id);
        }
        if self.header_version == RequestHeaderVersion::V2 {
            out.put_u8(0);
        }
        Ok(())
    }
}

/// A client id too long for the header's i16 length.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("client id of {length_bytes} bytes does not fit an i16 length")]
pub struct ClientIdTooLong {
    pub length_bytes: usize,
}

fn read_client_id(
    reader: &mut WireReader<'_>,
    frame: &Bytes,
) -> Result<Option<Bytes>, HeaderFieldError> {
    let length = reader
        .i16()
        .map_err(|e| e.in_field(HeaderField::ClientIdLength))?;
    if length == -1 {
        return Ok(None);
    }
    let length_bytes =
        usize::try_from(length).map_err(|_| HeaderFieldError::NegativeClientIdLength { length })?;
    let start = reader.position();
    reader
        .skip(length_bytes)
        .map_err(|e| e.in_field(HeaderField::ClientId))?;
    Ok(Some(frame.slice(start..start + length_bytes)))
}

fn skip_tagged_fields(reader: &mut WireReader<'_>) -> Result<(), HeaderFieldError> {
    let count = reader
        .uvarint()
        .map_err(|e| e.in_field(HeaderField::TaggedFieldCount))?;
    // Each field takes at least a 1-byte tag and a 1-byte size.
    if u64::from(count) * 2 > reader.remaining() as u64 {
        return Err(HeaderFieldError::TaggedFieldCountBeyondFrame {
            count,
            remaining_bytes: reader.remaining(),
        });
    }
    for _ in 0..count {
        reader
            .uvarint()
            .map_err(|e| e.in_field(HeaderField::TaggedFieldTag))?;
        let size_bytes = reader
            .uvarint()
            .map_err(|e| e.in_field(HeaderField::TaggedFieldSize))?;
        reader
            .skip(size_bytes as usize)
            .map_err(|e| e.in_field(HeaderField::TaggedFieldData))?;
    }
    Ok(())
}

/// A response header: the correlation id of the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    pub correlation_id: i32,
}

impl ResponseHeader {
    /// Appends the header in `version`'s layout; v1 carries an empty tagged
    /// field section.
    pub fn encode(&self, version: ResponseHeaderVersion, out: &mut impl BufMut) {
        out.put_i32(self.correlation_id);
        if version == ResponseHeaderVersion::V1 {
            out.put_u8(0);
        }
    }

    pub fn encoded_bytes(version: ResponseHeaderVersion) -> usize {
        match version {
            ResponseHeaderVersion::V0 => 4,
            ResponseHeaderVersion::V1 => 5,
        }
    }
}

/// A low-level read failure, before the caller names the field it was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    Truncated { offset: usize, needed_bytes: usize },
    BadVarint { offset: usize },
}

impl WireError {
    fn in_field(self, field: HeaderField) -> HeaderFieldError {
        match self {
            WireError::Truncated {
                offset,
                needed_bytes,
            } => HeaderFieldError::Truncated {
                field,
                offset,
                needed_bytes,
            },
            WireError::BadVarint { offset } => HeaderFieldError::BadVarint { field, offset },
        }
    }
}

/// A bounds-checked cursor over wire bytes; shared with the request shape
/// check so both read varints and lengths the same way.
#[derive(Debug, Clone)]
pub(crate) struct WireReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Longest encoding of a u32 as an unsigned varint.
const UVARINT_BYTES_MAX: usize = 5;

impl<'a> WireReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        WireReader { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn skip(&mut self, length_bytes: usize) -> Result<(), WireError> {
        self.take(length_bytes).map(|_| ())
    }

    pub(crate) fn take(&mut self, length_bytes: usize) -> Result<&'a [u8], WireError> {
        if length_bytes > self.remaining() {
            return Err(WireError::Truncated {
                offset: self.pos,
                needed_bytes: length_bytes - self.remaining(),
            });
        }
        let taken = &self.buf[self.pos..self.pos + length_bytes];
        self.pos += length_bytes;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, WireError> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, WireError> {
        self.array().map(i32::from_be_bytes)
    }

    /// An unsigned varint of at most 5 bytes whose value fits a u32. Stricter
    /// than some decoders (which drop overflow bits), so anything accepted
    /// here is read identically by them.
    pub(crate) fn uvarint(&mut self) -> Result<u32, WireError> {
        let start = self.pos;
        let mut value: u32 = 0;
        for index in 0..UVARINT_BYTES_MAX {
            let byte = self.array::<1>()?[0];
            let payload = u32::from(byte & 0x7f);
            if index == UVARINT_BYTES_MAX - 1 && (byte & 0xf0) != 0 {
                return Err(WireError::BadVarint { offset: start });
            }
            value |= payload << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::BadVarint { offset: start })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint_reads_one_to_five_bytes() {
        let cases: [(&[u8], u32); 5] = [
            (&[0x00], 0),
            (&[0x7f], 127),
            (&[0x80, 0x01], 128),
            (&[0xac, 0x02], 300),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], u32::MAX),
        ];
        for (bytes, expected) in cases {
            let mut reader = WireReader::new(bytes);
            assert_eq!(reader.uvarint(), Ok(expected), "{bytes:?}");
            assert_eq!(reader.remaining(), 0);
        }
    }

    #[test]
    fn uvarint_refuses_long_or_overflowing_encodings() {
        let too_long = [0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(
            WireReader::new(&too_long).uvarint(),
            Err(WireError::BadVarint { offset: 0 })
        );
        let overflow = [0xff, 0xff, 0xff, 0xff, 0x1f];
        assert_eq!(
            WireReader::new(&overflow).uvarint(),
            Err(WireError::BadVarint { offset: 0 })
        );
        assert_eq!(
            WireReader::new(&[0x80, 0x80]).uvarint(),
            Err(WireError::Truncated {
                offset: 2,
                needed_bytes: 1
            })
        );
    }

    #[test]
    fn response_headers_have_exact_layouts() {
        let header = ResponseHeader {
            correlation_id: 0x0102_0304,
        };
        let mut v0 = Vec::new();
        header.encode(ResponseHeaderVersion::V0, &mut v0);
        assert_eq!(v0, [1, 2, 3, 4]);
        let mut v1 = Vec::new();
        header.encode(ResponseHeaderVersion::V1, &mut v1);
        assert_eq!(v1, [1, 2, 3, 4, 0]);
        assert_eq!(ResponseHeader::encoded_bytes(ResponseHeaderVersion::V1), 5);
    }
}
