//! Raw-byte tests of the wire layer: frames, request headers, response
//! headers and the ApiVersions exchange, checked against exact bytes.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use proptest::prelude::*;
use rafka_proto::api::{
    decode_request, decode_request_kind, ApiLookupError, ApiTable, DecodeError, ShapeError,
};
use rafka_proto::frame::{encode_frame, FrameDecoder, FrameError};
use rafka_proto::header::{
    HeaderError, HeaderField, HeaderFieldError, RequestHeader, RequestHeaderVersion, RequestPrefix,
    ResponseHeader, ResponseHeaderVersion,
};

/// ApiVersions v0 as the Java console tools send it: header v1 with client
/// id "console", empty body.
const API_VERSIONS_V0: &[u8] = b"\x00\x12\x00\x00\x00\x00\x00\x07\x00\x07console";

/// ApiVersions v3 as librdkafka 2.3.0 sends it: header v2 (client id still a
/// non-compact STRING, then an empty tagged field section), body with compact
/// client software name/version and its own empty tagged fields.
const API_VERSIONS_V3: &[u8] =
    b"\x00\x12\x00\x03\x00\x00\x00\x01\x00\x07rdkafka\x00\x0blibrdkafka\x062.3.0\x00";

#[test]
fn api_versions_v0_request_parses_to_its_fields() {
    let table = ApiTable::decodable();
    let frame = Bytes::from_static(API_VERSIONS_V0);
    let (header, body) = RequestHeader::parse(&frame, &table).unwrap();
    assert_eq!(header.api_key, ApiKey::ApiVersions);
    assert_eq!(header.api_version, 0);
    assert_eq!(header.correlation_id, 7);
    assert_eq!(header.header_version, RequestHeaderVersion::V1);
    assert_eq!(header.client_id.as_deref(), Some(&b"console"[..]));
    assert!(body.is_empty());
}

#[test]
fn api_versions_v3_request_parses_header_and_body() {
    let table = ApiTable::decodable();
    let frame = Bytes::from_static(API_VERSIONS_V3);
    let (header, mut body) = RequestHeader::parse(&frame, &table).unwrap();
    assert_eq!(
        (header.api_key, header.api_version, header.correlation_id),
        (ApiKey::ApiVersions, 3, 1)
    );
    assert_eq!(header.header_version, RequestHeaderVersion::V2);
    assert_eq!(header.client_id_lossy().as_deref(), Some("rdkafka"));
    assert_eq!(&body[..], b"\x0blibrdkafka\x062.3.0\x00");
    let request: ApiVersionsRequest = decode_request(&mut body, 3).unwrap();
    assert_eq!(&*request.client_software_name, "librdkafka");
    assert_eq!(&*request.client_software_version, "2.3.0");
    assert!(body.is_empty());
}

#[test]
fn request_header_encode_reproduces_the_raw_bytes() {
    let table = ApiTable::decodable();
    let frame = Bytes::from_static(API_VERSIONS_V3);
    let (header, body) = RequestHeader::parse(&frame, &table).unwrap();
    let mut encoded = Vec::new();
    header.encode(&mut encoded).unwrap();
    encoded.extend_from_slice(&body);
    assert_eq!(encoded, API_VERSIONS_V3);
}

#[test]
fn null_client_id_and_header_v0_have_no_client_id() {
    let table = ApiTable::decodable();
    // Metadata v1 with a null client id and a null topic list (all topics).
    let frame = Bytes::from_static(b"\x00\x03\x00\x01\x00\x00\x00\x09\xff\xff\xff\xff\xff\xff");
    let (header, body) = RequestHeader::parse(&frame, &table).unwrap();
    assert_eq!(header.client_id, None);
    assert_eq!(&body[..], &[0xff; 4]);
}

#[test]
fn response_headers_are_exact() {
    let header = ResponseHeader { correlation_id: -2 };
    let mut v0 = BytesMut::new();
    header.encode(ResponseHeaderVersion::V0, &mut v0);
    assert_eq!(&v0[..], &[0xff, 0xff, 0xff, 0xfe]);
    let mut v1 = BytesMut::new();
    header.encode(ResponseHeaderVersion::V1, &mut v1);
    assert_eq!(&v1[..], &[0xff, 0xff, 0xff, 0xfe, 0x00]);
}

#[test]
fn unsupported_api_versions_version_gets_error_35_in_v0_layout() {
    let table = ApiTable::decodable();
    let frame = Bytes::from_static(b"\x00\x12\x00\x63\x00\x00\x00\x2a\x00\x00\xff\xff\x00");
    let error = RequestHeader::parse(&frame, &table).unwrap_err();
    let prefix = *error.prefix().unwrap();
    assert_eq!(
        error,
        HeaderError::Unsupported {
            prefix,
            source: ApiLookupError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                version: 99,
                min: 0,
                max: 4
            }
        }
    );
    let response = table
        .encode_api_versions_response(prefix.correlation_id, prefix.api_version)
        .unwrap();
    let expected: &[u8] = &[
        0, 0, 0, 0x2a, // correlation id 42 (response header v0)
        0, 35, // UNSUPPORTED_VERSION
        0, 0, 0, 1, // one api key
        0, 18, 0, 0, 0, 4, // ApiVersions 0..=4
    ];
    assert_eq!(&response[..], expected);
}

#[test]
fn unknown_api_key_still_yields_the_correlation_id() {
    let table = ApiTable::decodable();
    let frame = Bytes::from_static(b"\x03\xe7\x00\x00\x00\x00\x01\x00");
    let error = RequestHeader::parse(&frame, &table).unwrap_err();
    assert_eq!(error.prefix().map(|p| p.correlation_id), Some(256));
    assert!(matches!(
        error,
        HeaderError::Unsupported {
            source: ApiLookupError::UnknownApiKey { api_key: 999 },
            ..
        }
    ));
}

/// Found by the header fuzz target in under two minutes with the shape check
/// disabled: FindCoordinator v5 whose coordinator_keys count is a 5-byte
/// varint with the continuation bit still set. kafka-protocol stops after 5
/// bytes, reads u32::MAX and asks `Vec::with_capacity` for 128 GiB.
#[test]
fn fuzz_finding_find_coordinator_varint_count_is_refused() {
    let table = ApiTable::decodable();
    let frame =
        Bytes::from_static(b"\x00\x0a\x00\x05\x28\x05\x00\x00\x00\x00\x00\xf0\xff\xff\xff\xff\xff");
    let (header, mut body) = RequestHeader::parse(&frame, &table).unwrap();
    assert_eq!(
        (header.api_key, header.api_version),
        (ApiKey::FindCoordinator, 5)
    );
    let error = decode_request_kind(header.api_key, &mut body, 5).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::Shape {
                source: ShapeError::BadVarint { offset: 1, .. },
                ..
            }
        ),
        "{error:?}"
    );
}

/// Fetch v12 header v2 with client id "c1" and one 2-byte tagged field.
const FETCH_V12_HEADER: &[u8] = b"\x00\x01\x00\x0c\x00\x00\x00\x05\x00\x02c1\x01\x07\x02xy";

#[test]
fn header_v2_tagged_fields_are_skipped() {
    let table = ApiTable::decodable();
    let mut frame = FETCH_V12_HEADER.to_vec();
    frame.extend_from_slice(b"BODY");
    let (header, body) = RequestHeader::parse(&Bytes::from(frame), &table).unwrap();
    assert_eq!(header.client_id.as_deref(), Some(&b"c1"[..]));
    assert_eq!(&body[..], b"BODY");
}

#[test]
fn truncation_at_every_byte_of_a_v2_header_is_an_error() {
    let table = ApiTable::decodable();
    for length in 0..FETCH_V12_HEADER.len() {
        let frame = Bytes::copy_from_slice(&FETCH_V12_HEADER[..length]);
        let error = RequestHeader::parse(&frame, &table).unwrap_err();
        // None: the tagged field count promises more bytes than are left.
        let field = match error {
            HeaderError::ShortPrefix { field, .. } => Some(field),
            HeaderError::Malformed {
                source: HeaderFieldError::Truncated { field, .. },
                ..
            } => Some(field),
            HeaderError::Malformed {
                source: HeaderFieldError::TaggedFieldCountBeyondFrame { count: 1, .. },
                ..
            } => None,
            other => panic!("length {length}: unexpected {other:?}"),
        };
        let expected = match length {
            0..=1 => Some(HeaderField::ApiKey),
            2..=3 => Some(HeaderField::ApiVersion),
            4..=7 => Some(HeaderField::CorrelationId),
            8..=9 => Some(HeaderField::ClientIdLength),
            10..=11 => Some(HeaderField::ClientId),
            12 => Some(HeaderField::TaggedFieldCount),
            13..=14 => None,
            _ => Some(HeaderField::TaggedFieldData),
        };
        assert_eq!(field, expected, "truncated to {length} bytes");
    }
}

#[test]
fn malformed_client_ids_and_tagged_fields_are_typed_errors() {
    let table = ApiTable::decodable();
    let parse = |bytes: &'static [u8]| RequestHeader::parse(&Bytes::from_static(bytes), &table);
    let field_error = |result: Result<_, HeaderError>| match result {
        Err(HeaderError::Malformed { source, .. }) => source,
        other => panic!("expected a malformed header, got {other:?}"),
    };
    // Client id declares 16 bytes, 2 present.
    assert_eq!(
        field_error(parse(b"\x00\x03\x00\x01\x00\x00\x00\x01\x00\x10ab")),
        HeaderFieldError::Truncated {
            field: HeaderField::ClientId,
            offset: 10,
            needed_bytes: 14
        }
    );
    assert_eq!(
        field_error(parse(b"\x00\x03\x00\x01\x00\x00\x00\x01\xff\xfe")),
        HeaderFieldError::NegativeClientIdLength { length: -2 }
    );
    // Tagged field count as a six-byte varint.
    assert_eq!(
        field_error(parse(
            b"\x00\x01\x00\x0c\x00\x00\x00\x01\xff\xff\x80\x80\x80\x80\x80\x01"
        )),
        HeaderFieldError::BadVarint {
            field: HeaderField::TaggedFieldCount,
            offset: 10
        }
    );
    // 100 tagged fields announced, 2 bytes left.
    assert_eq!(
        field_error(parse(
            b"\x00\x01\x00\x0c\x00\x00\x00\x01\xff\xff\x64\x00\x00"
        )),
        HeaderFieldError::TaggedFieldCountBeyondFrame {
            count: 100,
            remaining_bytes: 2
        }
    );
    // One tagged field whose size (u32::MAX) runs past the frame.
    assert_eq!(
        field_error(parse(
            b"\x00\x01\x00\x0c\x00\x00\x00\x01\xff\xff\x01\x00\xff\xff\xff\xff\x0f"
        )),
        HeaderFieldError::Truncated {
            field: HeaderField::TaggedFieldData,
            offset: 17,
            needed_bytes: u32::MAX as usize
        }
    );
}

#[test]
fn size_prefixes_negative_zero_and_huge_are_refused() {
    let mut decoder = FrameDecoder::default();
    for (prefix, expected) in [
        (
            i32::MIN,
            FrameError::NegativeSize {
                size_bytes: i32::MIN,
            },
        ),
        (-1, FrameError::NegativeSize { size_bytes: -1 }),
        (0, FrameError::ZeroSize),
        (
            i32::MAX,
            FrameError::TooLarge {
                size_bytes: i32::MAX as usize,
                frame_bytes_max: 104_857_600,
            },
        ),
        (
            104_857_601,
            FrameError::TooLarge {
                size_bytes: 104_857_601,
                frame_bytes_max: 104_857_600,
            },
        ),
    ] {
        let mut buf = BytesMut::from(&prefix.to_be_bytes()[..]);
        assert_eq!(decoder.decode(&mut buf), Err(expected), "prefix {prefix}");
    }
}

#[test]
fn framed_request_round_trip_through_decoder_and_parser() {
    let table = ApiTable::decodable();
    let mut wire = BytesMut::new();
    encode_frame(API_VERSIONS_V0, &mut wire).unwrap();
    encode_frame(API_VERSIONS_V3, &mut wire).unwrap();
    let mut decoder = FrameDecoder::default();
    let mut correlation_ids = Vec::new();
    while let Some(frame) = decoder.decode(&mut wire).unwrap() {
        let (header, _) = RequestHeader::parse(&frame, &table).unwrap();
        correlation_ids.push(header.correlation_id);
    }
    assert_eq!(correlation_ids, [7, 1]);
    assert!(wire.is_empty());
}

/// Frame decode, header parse and body decode of arbitrary bytes: errors
/// are fine, panics and aborts are not.
fn run_pipeline(input: &[u8]) {
    let table = ApiTable::decodable();
    let mut decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(input);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let _ = RequestPrefix::parse(&frame);
        if let Ok((header, mut body)) = RequestHeader::parse(&frame, &table) {
            let _ = decode_request_kind(header.api_key, &mut body, header.api_version);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        run_pipeline(&input);
    }

    /// Valid frame and header prefix for a served API, random rest: this
    /// reaches the body decoders far more often than fully random bytes.
    #[test]
    fn arbitrary_bodies_never_panic(
        api in 0usize..20,
        version in 0i16..20,
        rest in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let api_key = rafka_proto::api::DECODABLE_APIS[api] as i16;
        let mut frame = Vec::new();
        frame.extend_from_slice(&api_key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff]);
        frame.extend_from_slice(&rest);
        let mut input = Vec::new();
        input.extend_from_slice(&(frame.len() as i32).to_be_bytes());
        input.extend_from_slice(&frame);
        run_pipeline(&input);
    }
}
