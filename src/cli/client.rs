//! `Connection`: one blocking connection to one broker (TCP, or TLS over
//! it: `transport.rs`), speaking the Kafka protocol as any client does. It
//! opens with ApiVersions, logs in when the command config asks for SASL
//! (`sasl.rs`), and then sends every request at the highest version both
//! sides speak.
//!
//! A frame is an i32 size, the request header (rafka-proto's encoder, in
//! the layout kafka-protocol's tables give the version) and the body
//! (kafka-protocol's structs). Nothing here trusts the broker's bytes: a
//! bad size, a short frame, a body that does not decode (shape-checked by
//! rafka-proto before kafka-protocol allocates anything) or a wrong
//! correlation id is an error, never a panic.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, FetchRequest, OffsetFetchRequest, ProduceRequest, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Message, Request, StrBytes};
use rafka_proto::frame::{self, FRAME_BYTES_MAX_DEFAULT, FRAME_PREFIX_BYTES};
use rafka_proto::header::{RequestHeader, RequestHeaderVersion};

use crate::cli::error::CliError;
use crate::cli::sasl;
use crate::cli::security::Security;
use crate::cli::transport::Stream;

const CLIENT_ID: &str = "rafka-cli";
/// ApiVersions v3 carries the client's name; every broker since Kafka 2.4
/// speaks it. An older one answers in v0's layout, which is tried next.
const API_VERSIONS_VERSION: i16 = 3;

/// The highest version of `api` this CLI builds requests for: what
/// kafka-protocol encodes, except where a newer version names topics by id
/// only (Produce v13, Fetch v13+) or moves to the multi-group layout
/// (OffsetFetch v8+), which the commands do not build.
fn cli_max_version(api: ApiKey, encodable_max: i16) -> i16 {
    let cap = match api {
        ApiKey::Produce => 12,
        ApiKey::Fetch => 12,
        ApiKey::OffsetFetch => 7,
        _ => i16::MAX,
    };
    encodable_max.min(cap)
}

// The caps above must stay inside what kafka-protocol encodes.
const _: () = assert!(ProduceRequest::VERSIONS.max >= 12 && ProduceRequest::VERSIONS.min <= 12);
const _: () = assert!(FetchRequest::VERSIONS.max >= 12 && FetchRequest::VERSIONS.min <= 12);
const _: () =
    assert!(OffsetFetchRequest::VERSIONS.max >= 7 && OffsetFetchRequest::VERSIONS.min <= 7);

/// One connection to one broker.
pub struct Connection {
    addr: String,
    stream: Stream,
    next_correlation_id: i32,
    /// api key -> (min, max) the broker serves, from ApiVersions.
    served: BTreeMap<i16, (i16, i16)>,
    /// Past ApiVersions without a SASL login: a SASL listener closes the
    /// connection at the next request, which the error then suggests.
    without_login: bool,
}

impl Connection {
    /// Connects to `addr` (`host:port`, every resolved address tried in
    /// turn) as `security` says, asks the broker which versions it serves
    /// and logs in if `security` has a SASL login (as Kafka's clients do:
    /// ApiVersions first, then SaslHandshake and SaslAuthenticate).
    pub fn open(addr: &str, security: &Security) -> Result<Connection, CliError> {
        let stream = Stream::open(addr, security.tls.as_ref())?;
        let mut connection = Connection {
            addr: addr.to_string(),
            stream,
            next_correlation_id: 1,
            served: BTreeMap::new(),
            without_login: false,
        };
        connection.served = connection.api_versions()?;
        match &security.sasl {
            Some(login) => sasl::log_in(&mut connection, login)?,
            None => connection.without_login = true,
        }
        Ok(connection)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The version to send `R` at: the highest both sides speak, or `None`
    /// when the ranges do not meet (or the broker does not list the API).
    pub fn version_of<R: Request>(&self) -> Option<i16> {
        let api = ApiKey::try_from(R::KEY).ok()?;
        let (broker_min, broker_max) = *self.served.get(&R::KEY)?;
        let ours = R::VERSIONS;
        let version = broker_max.min(cli_max_version(api, ours.max));
        (version >= broker_min.max(ours.min)).then_some(version)
    }

    /// The versions of `R` the broker serves, if it lists `R`.
    pub fn version_range<R: Request>(&self) -> Option<(i16, i16)> {
        self.served.get(&R::KEY).copied()
    }

    /// [`Connection::version_of`], or the error that says the broker does
    /// not serve `R`.
    pub fn version<R: Request>(&self) -> Result<i16, CliError> {
        self.version_of::<R>().ok_or_else(|| CliError::Unsupported {
            addr: self.addr.clone(),
            api: api_key::<R>(),
        })
    }

    /// Sends `request` at the negotiated version.
    pub fn call<R: Request>(&mut self, request: &R) -> Result<R::Response, CliError> {
        let version = self.version::<R>()?;
        self.call_at(version, request)
    }

    /// Sends `request` at `version` and reads its answer.
    pub fn call_at<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> Result<R::Response, CliError> {
        let correlation_id = self.send(version, request)?;
        let body = self.read_frame()?;
        decode_response::<R>(&self.addr, version, correlation_id, body)
    }

    fn send<R: Request>(&mut self, version: i16, request: &R) -> Result<i32, CliError> {
        let api = api_key::<R>();
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let encode_error = |source: BoxError| CliError::Encode {
            api,
            version,
            source,
        };
        let header_version = RequestHeaderVersion::from_i16(api.request_header_version(version))
            .ok_or_else(|| encode_error("no request header layout".into()))?;
        let header = RequestHeader {
            api_key: api,
            api_version: version,
            correlation_id,
            header_version,
            client_id: Some(Bytes::from_static(CLIENT_ID.as_bytes())),
        };
        let mut out = BytesMut::new();
        let start = frame::begin_frame(&mut out);
        header
            .encode(&mut out)
            .map_err(|e| encode_error(e.into()))?;
        request
            .encode(&mut out, version)
            .map_err(|e| encode_error(e.into()))?;
        frame::finish_frame(&mut out, start).map_err(|e| encode_error(e.into()))?;
        self.stream.write_all(&out).map_err(|e| self.io_error(e))?;
        Ok(correlation_id)
    }

    fn read_frame(&mut self) -> Result<Bytes, CliError> {
        let mut prefix = [0u8; FRAME_PREFIX_BYTES];
        self.read_exact(&mut prefix)?;
        // A TLS record (alert 0x15 or handshake 0x16, version 3.x) where a
        // Kafka frame was due: a TLS listener spoken to in plaintext.
        if matches!(prefix, [0x15 | 0x16, 0x03, 0x00..=0x04, _]) {
            return Err(CliError::TlsListener {
                addr: self.addr.clone(),
            });
        }
        let size = i32::from_be_bytes(prefix);
        let size_bytes = usize::try_from(size)
            .ok()
            .filter(|&bytes| bytes > 0 && bytes <= FRAME_BYTES_MAX_DEFAULT)
            .ok_or_else(|| CliError::FrameSize {
                addr: self.addr.clone(),
                size_bytes: i64::from(size),
                limit_bytes: FRAME_BYTES_MAX_DEFAULT,
            })?;
        let mut body = vec![0u8; size_bytes];
        self.read_exact(&mut body)?;
        Ok(Bytes::from(body))
    }

    fn read_exact(&mut self, out: &mut [u8]) -> Result<(), CliError> {
        self.stream.read_exact(out).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof if self.without_login => CliError::ClosedWithoutLogin {
                addr: self.addr.clone(),
            },
            ErrorKind::UnexpectedEof => CliError::Closed {
                addr: self.addr.clone(),
            },
            _ => CliError::Io {
                addr: self.addr.clone(),
                source: e,
            },
        })
    }

    fn io_error(&self, source: std::io::Error) -> CliError {
        CliError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    /// ApiVersions at v3; a broker that does not speak v3 answers
    /// UNSUPPORTED_VERSION in v0's layout (its response header is always
    /// v0), so the same bytes are read again as v0.
    fn api_versions(&mut self) -> Result<BTreeMap<i16, (i16, i16)>, CliError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let correlation_id = self.send(API_VERSIONS_VERSION, &request)?;
        let body = self.read_frame()?;
        let response = decode_response::<ApiVersionsRequest>(
            &self.addr,
            API_VERSIONS_VERSION,
            correlation_id,
            body.clone(),
        )
        .or_else(|error| {
            decode_response::<ApiVersionsRequest>(&self.addr, 0, correlation_id, body)
                .map_err(|_| error)
        })?;
        CliError::check(
            response.error_code,
            None,
            &format!("ApiVersions at {}", self.addr),
        )?;
        Ok(response
            .api_keys
            .iter()
            .map(|api| (api.api_key, (api.min_version, api.max_version)))
            .collect())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn api_key<R: Request>() -> ApiKey {
    // Every Request type of kafka-protocol has a key in its own table.
    ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
}

/// Checks the response header (layout of `R` at `version`, correlation id)
/// and decodes the rest of the frame as `R`'s response, all of it.
fn decode_response<R: Request>(
    addr: &str,
    version: i16,
    correlation_id: i32,
    mut body: Bytes,
) -> Result<R::Response, CliError> {
    let api = api_key::<R>();
    let decode_error = |source: BoxError| CliError::Decode {
        addr: addr.to_string(),
        api,
        version,
        source,
    };
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
        .map_err(|e| decode_error(e.into()))?;
    if header.correlation_id != correlation_id {
        return Err(CliError::CorrelationId {
            addr: addr.to_string(),
            sent: correlation_id,
            received: header.correlation_id,
        });
    }
    // Shape-checked first: kafka-protocol alone would pre-allocate from a
    // hostile array length and abort the process.
    let response = rafka_proto::api::decode_response::<R>(&mut body, version)
        .map_err(|e| decode_error(e.into()))?;
    if body.has_remaining() {
        let left = body.remaining();
        return Err(decode_error(
            format!("{left} bytes left after the body").into(),
        ));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use bytes::BufMut;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataRequest};
    use kafka_protocol::protocol::Encodable;

    use super::*;

    /// A one-connection broker on loopback that reads the ApiVersions
    /// request and answers `reply(correlation id)` as raw bytes.
    fn fake_broker(reply: impl FnOnce(i32) -> Vec<u8> + Send + 'static) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut size = [0u8; 4];
            stream.read_exact(&mut size).expect("size");
            let mut request = vec![0u8; i32::from_be_bytes(size) as usize];
            stream.read_exact(&mut request).expect("request");
            let correlation_id =
                i32::from_be_bytes([request[4], request[5], request[6], request[7]]);
            let _ = stream.write_all(&reply(correlation_id));
        });
        addr
    }

    /// A frame: size, correlation id (response header v0), `body`.
    fn frame(correlation_id: i32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.put_i32(4 + body.len() as i32);
        out.put_i32(correlation_id);
        out.put_slice(body);
        out
    }

    fn api_versions_body(apis: &[(ApiKey, i16, i16)]) -> Vec<u8> {
        let response = ApiVersionsResponse::default().with_api_keys(
            apis.iter()
                .map(|&(api, min, max)| {
                    ApiVersion::default()
                        .with_api_key(api as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        );
        let mut body = BytesMut::new();
        response.encode(&mut body, 3).expect("encode");
        body.to_vec()
    }

    #[test]
    fn versions_are_the_highest_both_sides_speak() {
        let addr = fake_broker(|id| {
            frame(
                id,
                &api_versions_body(&[
                    (ApiKey::Metadata, 0, 9),
                    (ApiKey::Produce, 3, 13),
                    (ApiKey::DescribeConfigs, 5, 7),
                ]),
            )
        });
        let connection = Connection::open(&addr, &Security::default()).expect("open");
        assert_eq!(connection.version_of::<MetadataRequest>(), Some(9));
        assert_eq!(
            connection.version_of::<ProduceRequest>(),
            Some(12),
            "capped"
        );
        assert_eq!(connection.version_of::<FetchRequest>(), None, "not listed");
        assert_eq!(
            connection.version_of::<kafka_protocol::messages::DescribeConfigsRequest>(),
            None,
            "ranges do not meet"
        );
        assert!(matches!(
            connection.version::<FetchRequest>(),
            Err(CliError::Unsupported {
                api: ApiKey::Fetch,
                ..
            })
        ));
    }

    #[test]
    fn bad_bytes_from_the_broker_are_errors() {
        let negative = fake_broker(|_| (-5i32).to_be_bytes().to_vec());
        assert!(matches!(
            Connection::open(&negative, &Security::default()),
            Err(CliError::FrameSize { size_bytes: -5, .. })
        ));
        let huge = fake_broker(|_| i32::MAX.to_be_bytes().to_vec());
        assert!(matches!(
            Connection::open(&huge, &Security::default()),
            Err(CliError::FrameSize { .. })
        ));
        let short = fake_broker(|id| frame(id, &[0, 0, 1])[..9].to_vec());
        assert!(matches!(
            Connection::open(&short, &Security::default()),
            Err(CliError::Closed { .. })
        ));
        let wrong_id = fake_broker(|id| frame(id + 1, &api_versions_body(&[])));
        assert!(matches!(
            Connection::open(&wrong_id, &Security::default()),
            Err(CliError::CorrelationId { .. })
        ));
        let tls_alert = fake_broker(|_| vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]);
        assert!(matches!(
            Connection::open(&tls_alert, &Security::default()),
            Err(CliError::TlsListener { .. })
        ));
        let garbage = fake_broker(|id| frame(id, &[0xff; 7]));
        assert!(matches!(
            Connection::open(&garbage, &Security::default()),
            Err(CliError::Decode { .. })
        ));
        let mut trailing = api_versions_body(&[]);
        trailing.extend_from_slice(&[0; 100]);
        let trailing = fake_broker(move |id| frame(id, &trailing));
        assert!(Connection::open(&trailing, &Security::default()).is_err());
    }

    #[test]
    fn a_refused_connection_names_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        match Connection::open(&addr, &Security::default()) {
            Err(error @ CliError::Connect { .. }) => {
                assert!(error.to_string().contains(&addr), "{error}")
            }
            other => panic!("expected a connect error, got {:?}", other.err()),
        }
    }
}
