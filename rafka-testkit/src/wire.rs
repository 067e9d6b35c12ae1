//! The one raw Kafka client of the tests: a blocking TCP connection that
//! sends any kafka-protocol request struct at a chosen version and decodes
//! the answer, plus the frame and header encoders that raw-byte tests build
//! their (good or deliberately bad) requests from.
//!
//! It hides nothing: every response comes back as the decoded struct, so a
//! test asserts error codes itself. Requests go out one at a time unless a
//! test splits [`WireClient::send`] and [`WireClient::receive`]; every
//! socket operation has a timeout, so a hung broker fails the test instead
//! of hanging it.
//!
//! Framing and the request header come from `rafka_proto`, the header
//! versions from kafka-protocol's `ApiKey` tables, so the client and the
//! broker never share a hand-written layout. The consumer-group flows on
//! top of it are in `wire_group.rs`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request};
use rafka_proto::frame::{self, FrameError, FRAME_BYTES_MAX_DEFAULT, FRAME_PREFIX_BYTES};
use rafka_proto::header::{ClientIdTooLong, RequestHeader, RequestHeaderVersion};

use crate::wire_group::GroupVersions;

/// How long one socket operation may take: a JoinGroup waits for the whole
/// group and a large Fetch for a slow reader, so this is generous; a hung
/// broker still fails the test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Response bodies are read in pieces this large.
const READ_CHUNK_BYTES: usize = 16 << 10;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("api key {0} is unknown to kafka-protocol")]
    UnknownApiKey(i16),
    #[error("{api:?} v{version}: header version {header_version} has no layout")]
    HeaderVersion {
        api: ApiKey,
        version: i16,
        header_version: i16,
    },
    #[error(transparent)]
    ClientId(#[from] ClientIdTooLong),
    #[error("encode {api:?} v{version}: {source}")]
    Encode {
        api: ApiKey,
        version: i16,
        source: BoxError,
    },
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
    #[error("frame too large to send: {0}")]
    FrameEncode(#[from] frame::FrameEncodeError),
    #[error("connection closed before a full response frame")]
    Closed,
    #[error("decode {api:?} v{version} response: {source}")]
    Decode {
        api: ApiKey,
        version: i16,
        source: BoxError,
    },
    #[error("response carries correlation id {received}, request had {sent}")]
    CorrelationId { sent: i32, received: i32 },
    #[error("{bytes} bytes left after the {api:?} v{version} response")]
    TrailingBytes {
        api: ApiKey,
        version: i16,
        bytes: usize,
    },
    #[error("{api:?} answered error code {code}")]
    ErrorCode { api: ApiKey, code: i16 },
    #[error("{api:?} response holds no entry for the request")]
    MissingEntry { api: ApiKey },
    #[error("embedded consumer protocol bytes: {source}")]
    ConsumerProtocol { source: BoxError },
}

/// A connection's bytes: a TCP stream, or TLS over one.
pub trait Transport: Read + Write + Send {}
impl<T: Read + Write + Send> Transport for T {}

/// One connection to a broker.
pub struct WireClient {
    stream: Box<dyn Transport>,
    /// The TCP socket under `stream` (socket options).
    socket: TcpStream,
    client_id: Bytes,
    next_correlation_id: i32,
    frame_bytes_max: usize,
    /// The versions the consumer-group helpers speak.
    pub versions: GroupVersions,
}

impl WireClient {
    /// Connects with [`IO_TIMEOUT`] on the connect, every read and every
    /// write.
    pub fn connect(addr: SocketAddr, client_id: &str) -> Result<WireClient, WireError> {
        let socket = connect_socket(addr)?;
        let stream = Box::new(socket.try_clone()?);
        Ok(WireClient::over(socket, stream, client_id))
    }

    /// Connects and completes a TLS handshake as `config` says (its
    /// trusted CAs, its client certificate if any), naming the server
    /// `server_name` (`localhost`, or an IP address).
    pub fn connect_tls(
        addr: SocketAddr,
        client_id: &str,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<WireClient, WireError> {
        let mut socket = connect_socket(addr)?;
        let name = rustls_pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
        let mut tls = rustls::ClientConnection::new(config, name)
            .map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e))?;
        while tls.is_handshaking() {
            tls.complete_io(&mut socket)?;
        }
        let stream = Box::new(rustls::StreamOwned::new(tls, socket.try_clone()?));
        Ok(WireClient::over(socket, stream, client_id))
    }

    fn over(socket: TcpStream, stream: Box<dyn Transport>, client_id: &str) -> WireClient {
        WireClient {
            stream,
            socket,
            client_id: Bytes::copy_from_slice(client_id.as_bytes()),
            next_correlation_id: 1,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            versions: GroupVersions::default(),
        }
    }

    /// Shrinks the socket's receive buffer (`SO_RCVBUF`), so the broker's
    /// send buffer fills up long before a large response is read: the
    /// client becomes the slow side of the connection.
    pub fn set_receive_buffer_bytes(&self, bytes: usize) -> Result<(), WireError> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: a valid socket and a c_int option value of the given size.
        let set = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&self.socket),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }

    /// Sends `request` at `version` and returns the decoded response.
    pub fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, WireError> {
        let correlation_id = self.send(version, request)?;
        self.receive::<R>(version, correlation_id)
    }

    /// Sends `request` without waiting; returns its correlation id for
    /// [`WireClient::receive`].
    pub fn send<R: Request>(&mut self, version: i16, request: &R) -> Result<i32, WireError> {
        let api = ApiKey::try_from(R::KEY).map_err(|_| WireError::UnknownApiKey(R::KEY))?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = request_header(api, version, correlation_id, Some(&self.client_id))?;
        let out = request_frame(&header, request, version)?;
        self.stream.write_all(&out)?;
        Ok(correlation_id)
    }

    /// Reads the next response frame as the answer to the `R` sent at
    /// `version` with `correlation_id`.
    pub fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<R::Response, WireError> {
        let body = self.read_frame()?;
        decode_response::<R>(version, correlation_id, body)
    }

    /// Writes `bytes` as they are (a frame built by the test, good or bad).
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// One whole frame body (without its prefix).
    pub fn read_frame(&mut self) -> Result<Bytes, WireError> {
        let size = self.read_frame_size()?;
        self.read_frame_body(size)
    }

    /// The next frame's size prefix, checked against the frame limit; the
    /// body stays unread on the socket.
    pub fn read_frame_size(&mut self) -> Result<usize, WireError> {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        self.read_exact(&mut prefix)?;
        let size = i32::from_be_bytes(prefix);
        let size_bytes = match usize::try_from(size) {
            Err(_) => return Err(FrameError::NegativeSize { size_bytes: size }.into()),
            Ok(0) => return Err(FrameError::ZeroSize.into()),
            Ok(size_bytes) => size_bytes,
        };
        if size_bytes > self.frame_bytes_max {
            let frame_bytes_max = self.frame_bytes_max;
            return Err(FrameError::TooLarge {
                size_bytes,
                frame_bytes_max,
            }
            .into());
        }
        Ok(size_bytes)
    }

    /// A frame body of `size` bytes whose prefix was read already, in
    /// pieces of 16 KiB (a slow reader stays slow).
    pub fn read_frame_body(&mut self, size: usize) -> Result<Bytes, WireError> {
        let mut body = vec![0u8; size];
        for piece in body.chunks_mut(READ_CHUNK_BYTES) {
            self.read_exact(piece)?;
        }
        Ok(Bytes::from(body))
    }

    /// Whether the broker has sent anything not read yet, without waiting
    /// (bytes on the socket: over TLS, records not yet decrypted count).
    pub fn has_unread(&self) -> Result<bool, WireError> {
        self.socket.set_nonblocking(true)?;
        let mut byte = [0u8; 1];
        let peeked = self.socket.peek(&mut byte);
        self.socket.set_nonblocking(false)?;
        match peeked {
            Ok(n) => Ok(n > 0),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Exactly `len` bytes, whatever they are (a raw SASL token's prefix
    /// and body, which may be empty).
    pub fn read_raw(&mut self, len: usize) -> Result<Vec<u8>, WireError> {
        let mut out = vec![0u8; len];
        self.read_exact(&mut out)?;
        Ok(out)
    }

    /// Reads until the broker closes the connection (a reset counts as a
    /// close); returns whatever arrived first.
    pub fn read_until_closed(&mut self) -> Result<Vec<u8>, WireError> {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(received),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                // A TLS peer that closes without close_notify reads as an
                // unexpected end.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof
                    ) =>
                {
                    return Ok(received)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), WireError> {
        self.stream.read_exact(out).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => WireError::Closed,
            _ => e.into(),
        })
    }
}

/// A TCP connection with [`IO_TIMEOUT`] on the connect, every read and
/// every write.
fn connect_socket(addr: SocketAddr) -> Result<TcpStream, WireError> {
    let socket = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    socket.set_write_timeout(Some(IO_TIMEOUT))?;
    socket.set_nodelay(true)?;
    Ok(socket)
}

/// The request header of `api` at `version`, in the layout kafka-protocol's
/// table gives that version.
pub fn request_header(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: Option<&[u8]>,
) -> Result<RequestHeader, WireError> {
    let header_version = api.request_header_version(version);
    Ok(RequestHeader {
        api_key: api,
        api_version: version,
        correlation_id,
        header_version: RequestHeaderVersion::from_i16(header_version).ok_or(
            WireError::HeaderVersion {
                api,
                version,
                header_version,
            },
        )?,
        client_id: client_id.map(Bytes::copy_from_slice),
    })
}

/// A whole request frame: size prefix, `header`, then `body` encoded at
/// `body_version` (which a test may set apart from the header's version).
pub fn request_frame<B: Encodable>(
    header: &RequestHeader,
    body: &B,
    body_version: i16,
) -> Result<BytesMut, WireError> {
    let mut out = BytesMut::new();
    let start = frame::begin_frame(&mut out);
    header.encode(&mut out)?;
    body.encode(&mut out, body_version)
        .map_err(|e| WireError::Encode {
            api: header.api_key,
            version: body_version,
            source: e.into(),
        })?;
    frame::finish_frame(&mut out, start)?;
    Ok(out)
}

/// A frame holding `header` and nothing after it.
pub fn header_frame(header: &RequestHeader) -> Vec<u8> {
    let mut payload = BytesMut::new();
    header.encode(&mut payload).expect("client id fits");
    frame(&payload)
}

/// `payload` behind its 4-byte size prefix, whatever it holds.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame::encode_frame(payload, &mut out).expect("a test frame fits i32");
    out.to_vec()
}

/// A v1 request header from raw numbers: api keys and versions no table
/// knows (9999, v99) for tests of what the broker refuses.
pub fn raw_header_v1(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    client_id: Option<&[u8]>,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_i16(api_key);
    out.put_i16(version);
    out.put_i32(correlation_id);
    match client_id {
        None => out.put_i16(-1),
        Some(id) => {
            out.put_i16(i16::try_from(id.len()).expect("client id fits i16"));
            out.put_slice(id);
        }
    }
    out
}

/// Checks the response header of a frame body (correlation id, layout of
/// `R` at `version`) and decodes the whole rest as `R`'s response.
pub fn decode_response<R: Request>(
    version: i16,
    correlation_id: i32,
    mut body: Bytes,
) -> Result<R::Response, WireError> {
    let api = ApiKey::try_from(R::KEY).map_err(|_| WireError::UnknownApiKey(R::KEY))?;
    let header =
        ResponseHeader::decode(&mut body, api.response_header_version(version)).map_err(|e| {
            WireError::Decode {
                api,
                version,
                source: e.into(),
            }
        })?;
    if header.correlation_id != correlation_id {
        return Err(WireError::CorrelationId {
            sent: correlation_id,
            received: header.correlation_id,
        });
    }
    let response = R::Response::decode(&mut body, version).map_err(|e| WireError::Decode {
        api,
        version,
        source: e.into(),
    })?;
    if body.has_remaining() {
        return Err(WireError::TrailingBytes {
            api,
            version,
            bytes: body.remaining(),
        });
    }
    Ok(response)
}
