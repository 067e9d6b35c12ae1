//! The bench's own lean Kafka client: blocking std sockets, kafka-protocol
//! message structs, rafka-proto framing and headers. No librdkafka, so the
//! load generator costs little CPU next to the broker on a 2-core machine.
//!
//! A [`Wire`] is one connection. Admin calls (Metadata, CreateTopics,
//! ListOffsets) go through [`Wire::call`], one request at a time. Pipelined
//! traffic splits a connection into a [`WireWriter`] and a [`WireReader`]
//! (one thread each): the writer sends requests with increasing correlation
//! ids, the reader takes the answers in order, as Kafka guarantees per
//! connection.

use std::error::Error as StdError;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Request};
use rafka_proto::frame::{begin_frame, finish_frame, FRAME_BYTES_MAX_DEFAULT, FRAME_PREFIX_BYTES};
use rafka_proto::header::{RequestHeader, RequestHeaderVersion};

/// Sent as the client id so broker logs tell bench traffic apart.
const CLIENT_ID: &str = "rafka-bench";
/// A broker that answers nothing for this long is reported, not waited on.
const READ_TIMEOUT_MS: u64 = 30_000;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding {api_key:?} v{version}: {source}")]
    Encode {
        api_key: ApiKey,
        version: i16,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("decoding the {api_key:?} v{version} response: {source}")]
    Decode {
        api_key: ApiKey,
        version: i16,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("api key {api_key} (v{version}) is unknown to kafka-protocol")]
    UnknownApiKey { api_key: i16, version: i16 },
    #[error("response frame of {size_bytes} bytes is negative or above the limit")]
    FrameSize { size_bytes: i64 },
    #[error("response header truncated or malformed")]
    ResponseHeader,
    #[error("response for correlation id {got}, expected {expected}")]
    CorrelationMismatch { expected: i32, got: i32 },
    #[error("{api_key:?} failed with error code {error_code}")]
    ErrorCode { api_key: ApiKey, error_code: i16 },
}

/// One blocking connection to the broker.
#[derive(Debug)]
pub struct Wire {
    writer: WireWriter,
    reader: WireReader,
}

impl Wire {
    pub fn connect(addr: &str) -> Result<Wire, ClientError> {
        Wire::connect_as(addr, CLIENT_ID)
    }

    /// A connection whose requests carry `client_id` (quotas are per
    /// client id).
    pub fn connect_as(addr: &str, client_id: &str) -> Result<Wire, ClientError> {
        let stream = TcpStream::connect(addr).map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        // Small requests (acks=all at low rates) must not wait for Nagle.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_millis(READ_TIMEOUT_MS)))?;
        let read_half = stream.try_clone()?;
        Ok(Wire {
            writer: WireWriter {
                stream,
                next_correlation_id: 0,
                buf: BytesMut::new(),
                client_id: Bytes::copy_from_slice(client_id.as_bytes()),
            },
            reader: WireReader {
                stream: read_half,
                buf: BytesMut::new(),
            },
        })
    }

    /// Sends one request and waits for its response.
    pub fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError>
    where
        R::Response: Decodable,
    {
        let correlation_id = self.writer.send(request, version)?;
        let api_key = api_key_of::<R>(version)?;
        self.reader
            .receive::<R::Response>(api_key, correlation_id, version)
    }

    /// Both halves, for pipelining on one thread.
    pub fn halves_mut(&mut self) -> (&mut WireWriter, &mut WireReader) {
        (&mut self.writer, &mut self.reader)
    }

    /// A handle that ends the connection from another thread: a writer
    /// blocked on a broker that stopped reading (a muted, throttled
    /// connection) returns with an error, and the reader sees the end.
    pub fn closer(&self) -> Result<Closer, ClientError> {
        Ok(Closer(self.writer.stream.try_clone()?))
    }

    pub fn split(self) -> (WireWriter, WireReader) {
        (self.writer, self.reader)
    }
}

/// Ends a [`Wire`] from outside its threads.
#[derive(Debug)]
pub struct Closer(TcpStream);

impl Closer {
    pub fn close(&self) {
        // Already closed by the peer or by an earlier call: nothing to do.
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// The sending half: frames and writes requests.
#[derive(Debug)]
pub struct WireWriter {
    stream: TcpStream,
    next_correlation_id: i32,
    buf: BytesMut,
    client_id: Bytes,
}

impl WireWriter {
    /// Writes one request and returns its correlation id.
    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        self.buf.clear();
        encode_request(
            &mut self.buf,
            correlation_id,
            &self.client_id,
            request,
            version,
        )?;
        self.stream.write_all(&self.buf)?;
        Ok(correlation_id)
    }
}

/// The receiving half: reads response frames in order.
#[derive(Debug)]
pub struct WireReader {
    stream: TcpStream,
    buf: BytesMut,
}

impl WireReader {
    /// Reads the next response and decodes it as `T`; it must answer
    /// `correlation_id`.
    pub fn receive<T: Decodable>(
        &mut self,
        api_key: ApiKey,
        correlation_id: i32,
        version: i16,
    ) -> Result<T, ClientError> {
        let mut body = self.next_frame()?;
        let got = skip_response_header(&mut body, api_key.response_header_version(version))?;
        if got != correlation_id {
            return Err(ClientError::CorrelationMismatch {
                expected: correlation_id,
                got,
            });
        }
        T::decode(&mut body, version).map_err(|source| ClientError::Decode {
            api_key,
            version,
            source: source.into(),
        })
    }

    fn next_frame(&mut self) -> Result<Bytes, ClientError> {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        self.stream.read_exact(&mut prefix)?;
        let size_bytes = i32::from_be_bytes(prefix);
        let size = usize::try_from(size_bytes)
            .ok()
            .filter(|&size| size <= FRAME_BYTES_MAX_DEFAULT)
            .ok_or(ClientError::FrameSize {
                size_bytes: i64::from(size_bytes),
            })?;
        self.buf.clear();
        self.buf.resize(size, 0);
        self.stream.read_exact(&mut self.buf)?;
        Ok(self.buf.split().freeze())
    }
}

/// Appends a size-prefixed request (header + body) with `client_id` to
/// `out`.
pub fn encode_request<R: Request>(
    out: &mut BytesMut,
    correlation_id: i32,
    client_id: &Bytes,
    request: &R,
    version: i16,
) -> Result<(), ClientError> {
    let api_key = api_key_of::<R>(version)?;
    let encode_err = |source: Box<dyn StdError + Send + Sync>| ClientError::Encode {
        api_key,
        version,
        source,
    };
    let header_version = RequestHeaderVersion::from_i16(api_key.request_header_version(version))
        .ok_or_else(|| encode_err("no request header version".into()))?;
    let header = RequestHeader {
        api_key,
        api_version: version,
        correlation_id,
        header_version,
        client_id: Some(client_id.clone()),
    };
    let body_bytes = request
        .compute_size(version)
        .map_err(|e| encode_err(e.into()))?;
    out.reserve(FRAME_PREFIX_BYTES + 32 + body_bytes);
    let start = begin_frame(out);
    header.encode(out).map_err(|e| encode_err(e.into()))?;
    request
        .encode(out, version)
        .map_err(|e| encode_err(e.into()))?;
    finish_frame(out, start).map_err(|e| encode_err(e.into()))
}

fn api_key_of<R: Request>(version: i16) -> Result<ApiKey, ClientError> {
    ApiKey::try_from(R::KEY).map_err(|()| ClientError::UnknownApiKey {
        api_key: R::KEY,
        version,
    })
}

/// Reads the response header off the front of `body` and returns its
/// correlation id. v1 headers carry tagged fields, skipped here.
fn skip_response_header(body: &mut Bytes, header_version: i16) -> Result<i32, ClientError> {
    if body.remaining() < 4 {
        return Err(ClientError::ResponseHeader);
    }
    let correlation_id = body.get_i32();
    if header_version >= 1 {
        let count = read_uvarint(body)?;
        for _ in 0..count {
            read_uvarint(body)?; // tag
            let size = read_uvarint(body)? as usize;
            if body.remaining() < size {
                return Err(ClientError::ResponseHeader);
            }
            body.advance(size);
        }
    }
    Ok(correlation_id)
}

fn read_uvarint(buf: &mut Bytes) -> Result<u32, ClientError> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        if !buf.has_remaining() {
            return Err(ClientError::ResponseHeader);
        }
        let byte = buf.get_u8();
        value |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(ClientError::ResponseHeader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataRequest;
    use rafka_proto::api::{decode_request, ApiTable};

    #[test]
    fn encoded_request_parses_as_the_broker_would() {
        let mut out = BytesMut::new();
        let request = MetadataRequest::default().with_topics(None);
        let client_id = Bytes::from_static(CLIENT_ID.as_bytes());
        encode_request(&mut out, 7, &client_id, &request, 12).unwrap();
        let size = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(size + 4, out.len());
        let frame = out.split_off(4).freeze();
        let (header, mut body) = RequestHeader::parse(&frame, &ApiTable::decodable()).unwrap();
        assert_eq!(header.api_key, ApiKey::Metadata);
        assert_eq!((header.api_version, header.correlation_id), (12, 7));
        assert_eq!(header.client_id.as_deref(), Some(&b"rafka-bench"[..]));
        let decoded: MetadataRequest = decode_request(&mut body, 12).unwrap();
        assert_eq!(decoded.topics, None);
    }

    #[test]
    fn response_header_v1_skips_tagged_fields() {
        // correlation id 5, one tagged field (tag 3, 2 bytes), then body.
        let mut body = Bytes::from_static(&[0, 0, 0, 5, 1, 3, 2, 0xaa, 0xbb, 0x42]);
        assert_eq!(skip_response_header(&mut body, 1).unwrap(), 5);
        assert_eq!(&body[..], &[0x42]);
        let mut short = Bytes::from_static(&[0, 0, 0, 5, 1, 3, 9, 0]);
        assert!(matches!(
            skip_response_header(&mut short, 1),
            Err(ClientError::ResponseHeader)
        ));
        let mut v0 = Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe, 1]);
        assert_eq!(skip_response_header(&mut v0, 0).unwrap(), -2);
        assert_eq!(v0.len(), 1);
    }
}
