//! Decoding request bodies and encoding responses with kafka-protocol, so
//! handlers do not repeat it.
//!
//! Every decode first runs the structural check of `shape.rs` on the body:
//! kafka-protocol's decoders would otherwise pre-allocate from hostile array
//! lengths (see that module). Both decode functions consume the request's
//! bytes from `body` and leave any trailing bytes there, as Kafka ignores
//! them too.

use std::error::Error as StdError;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::protocol::{Encodable, Request};
use thiserror::Error;

use super::api_spec;
use super::shape::{self, ShapeError};
use crate::header::{ResponseHeader, ResponseHeaderVersion};

/// Why a request body could not be decoded.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("api key {api_key} has no request shape; rafka does not decode it")]
    NoShape { api_key: i16 },
    #[error("{api_key:?} v{version} is outside the versions rafka decodes")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    #[error("{api_key:?} v{version} body refused before decoding: {source}")]
    Shape {
        api_key: ApiKey,
        version: i16,
        #[source]
        source: ShapeError,
    },
    #[error("{api_key:?} v{version} body failed to decode: {source}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

/// Why a response could not be encoded (a broker bug: a field set that the
/// version cannot carry, or a value too long for its length prefix).
#[derive(Debug, Error)]
#[error("response v{version} failed to encode: {source}")]
pub struct EncodeError {
    pub version: i16,
    #[source]
    pub source: Box<dyn StdError + Send + Sync>,
}

/// Decodes a `T` request of `version` from the front of `body`.
pub fn decode_request<T: Request>(body: &mut Bytes, version: i16) -> Result<T, DecodeError> {
    let api_key =
        ApiKey::try_from(T::KEY).map_err(|()| DecodeError::NoShape { api_key: T::KEY })?;
    guard(api_key, body, version)?;
    T::decode(body, version).map_err(|source| DecodeError::Malformed {
        api_key,
        version,
        source: source.into(),
    })
}

/// Decodes the request of `api_key` and `version` from the front of `body`
/// into kafka-protocol's enum of all requests.
pub fn decode_request_kind(
    api_key: ApiKey,
    body: &mut Bytes,
    version: i16,
) -> Result<RequestKind, DecodeError> {
    guard(api_key, body, version)?;
    RequestKind::decode(api_key, body, version).map_err(|source| DecodeError::Malformed {
        api_key,
        version,
        source: source.into(),
    })
}

/// Runs the shape check. Independent of the broker's table (and its caps)
/// so that decoding needs no table; flexibility is derived the same way the
/// table derives it (request header v2).
fn guard(api_key: ApiKey, body: &[u8], version: i16) -> Result<(), DecodeError> {
    let spec = api_spec(api_key).ok_or(DecodeError::NoShape {
        api_key: api_key as i16,
    })?;
    let versions = api_key.valid_versions().intersect(&spec.request_versions);
    if version < versions.min || version > versions.max {
        return Err(DecodeError::UnsupportedVersion { api_key, version });
    }
    let flexible = api_key.request_header_version(version) >= 2;
    shape::check(spec.shape, body, version, flexible)
        .map(|_| ())
        .map_err(|source| DecodeError::Shape {
            api_key,
            version,
            source,
        })
}

/// Encodes a complete response (header + body, no size prefix).
pub fn encode_response<T: Encodable>(
    correlation_id: i32,
    header_version: ResponseHeaderVersion,
    body: &T,
    version: i16,
) -> Result<Bytes, EncodeError> {
    let mut out = BytesMut::new();
    encode_response_into(&mut out, correlation_id, header_version, body, version)?;
    Ok(out.freeze())
}

/// Appends a complete response (header + body) to `out`, e.g. between
/// `frame::begin_frame` and `frame::finish_frame`. On error `out` is left
/// as it was.
pub fn encode_response_into<T: Encodable>(
    out: &mut BytesMut,
    correlation_id: i32,
    header_version: ResponseHeaderVersion,
    body: &T,
    version: i16,
) -> Result<(), EncodeError> {
    let start = out.len();
    let body_bytes = body.compute_size(version).map_err(|source| EncodeError {
        version,
        source: source.into(),
    })?;
    out.reserve(ResponseHeader::encoded_bytes(header_version) + body_bytes);
    ResponseHeader { correlation_id }.encode(header_version, out);
    body.encode(out, version).map_err(|source| {
        out.truncate(start);
        EncodeError {
            version,
            source: source.into(),
        }
    })
}
