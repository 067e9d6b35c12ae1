//! Fuzz target for `header` and `api`: a frame body parsed as a request
//! header against the broker's table, then, when the API is served, its body
//! decoded with the kafka-protocol type for that API (behind the shape
//! check). libFuzzer's malloc limit turns any oversized pre-allocation into
//! a finding.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rafka_proto::api::{decode_request_kind, ApiLookupError, ApiTable};
use rafka_proto::header::{HeaderError, RequestHeader, RequestPrefix};

/// ApiVersions' api key, whose unsupported versions still get an answer.
const API_VERSIONS_KEY: i16 = 18;

fn table() -> &'static ApiTable {
    static TABLE: OnceLock<ApiTable> = OnceLock::new();
    TABLE.get_or_init(ApiTable::decodable)
}

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    let prefix = RequestPrefix::parse(&frame).ok();
    match RequestHeader::parse(&frame, table()) {
        Ok((header, mut body)) => {
            assert_eq!(
                prefix.map(|p| p.correlation_id),
                Some(header.correlation_id)
            );
            assert!(body.len() <= frame.len());
            let _ = decode_request_kind(header.api_key, &mut body, header.api_version);
        }
        Err(error) => {
            assert_eq!(error.prefix().copied(), prefix);
            if let HeaderError::Unsupported {
                prefix,
                source: ApiLookupError::UnsupportedVersion { .. },
            } = error
            {
                if prefix.api_key == API_VERSIONS_KEY {
                    table()
                        .encode_api_versions_response(prefix.correlation_id, prefix.api_version)
                        .expect("the UNSUPPORTED_VERSION answer always encodes");
                }
            }
        }
    }
});
