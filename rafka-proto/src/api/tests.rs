//! Unit tests of the API table, and the differential test that holds the
//! request shapes in `schemas.rs` to what kafka-protocol decodes.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind};
use rafka_testkit::Rng;

use super::shape::{self, Elem, Kind, Shape, ShapeError};
use super::*;

#[test]
fn decodable_table_lists_every_spec() {
    let table = ApiTable::decodable();
    let keys: Vec<ApiKey> = table.entries().map(ApiEntry::api_key).collect();
    let mut expected = DECODABLE_APIS.to_vec();
    expected.sort_by_key(|key| *key as i16);
    assert_eq!(keys, expected);
    // Nothing outside the list has a spec (so nothing decodable is missed).
    for key in 0..=i16::MAX {
        if let Ok(api_key) = ApiKey::try_from(key) {
            assert_eq!(
                api_spec(api_key).is_some(),
                DECODABLE_APIS.contains(&api_key),
                "{api_key:?}"
            );
        }
    }
}

#[test]
fn header_versions_follow_flexibility() {
    let table = ApiTable::decodable();
    for entry in table.entries() {
        for version in entry.min_version()..=entry.max_version() {
            let request = entry.request_header_version(version);
            let expected = if entry.is_flexible(version) {
                RequestHeaderVersion::V2
            } else {
                RequestHeaderVersion::V1
            };
            assert_eq!(request, expected, "{:?} v{version}", entry.api_key());
        }
    }
    let api_versions = table.entry(ApiKey::ApiVersions).unwrap();
    // ApiVersions answers in header v0 even when flexible, so that clients
    // can parse the answer before they know the broker's versions.
    assert_eq!(
        api_versions.response_header_version(3),
        ResponseHeaderVersion::V0
    );
    let fetch = table.entry(ApiKey::Fetch).unwrap();
    assert_eq!(fetch.response_header_version(12), ResponseHeaderVersion::V1);
    assert_eq!(fetch.response_header_version(11), ResponseHeaderVersion::V0);
}

#[test]
fn lookup_reports_unknown_keys_and_versions() {
    let table = ApiTable::decodable();
    assert_eq!(
        table.lookup(1, 18).map(ApiEntry::api_key),
        Ok(ApiKey::Fetch)
    );
    assert_eq!(
        table.lookup(-1, 0).unwrap_err(),
        ApiLookupError::UnknownApiKey { api_key: -1 }
    );
    assert_eq!(
        table.lookup(1022, 0).unwrap_err(),
        ApiLookupError::UnknownApiKey { api_key: 1022 }
    );
    // AllocateProducerIds (67) exists in Kafka but has no shape here.
    assert_eq!(
        table.lookup(67, 0).unwrap_err(),
        ApiLookupError::UnknownApiKey { api_key: 67 }
    );
    assert_eq!(
        table.lookup(0, 2).unwrap_err(),
        ApiLookupError::UnsupportedVersion {
            api_key: ApiKey::Produce,
            version: 2,
            min: 3,
            max: 13
        }
    );
}

/// The transaction APIs decode at every version kafka-protocol 0.18 knows
/// (WriteTxnMarkers: v1 only, 0.18 dropped v0).
#[test]
fn transaction_apis_decode_at_every_known_version() {
    let expected = [
        (ApiKey::AddPartitionsToTxn, 0, 5),
        (ApiKey::AddOffsetsToTxn, 0, 4),
        (ApiKey::EndTxn, 0, 5),
        (ApiKey::WriteTxnMarkers, 1, 1),
        (ApiKey::TxnOffsetCommit, 0, 5),
        (ApiKey::DescribeTransactions, 0, 0),
        (ApiKey::ListTransactions, 0, 2),
    ];
    for (api_key, min, max) in expected {
        let range = decodable_versions(api_key).unwrap();
        assert_eq!((range.min, range.max), (min, max), "{api_key:?}");
    }
}

fn served(api_key: ApiKey, min_version: i16, max_version: i16) -> ServedApi {
    ServedApi {
        api_key,
        min_version,
        max_version,
        advertised_min_version: min_version,
    }
}

#[test]
fn table_refuses_bad_configurations() {
    assert_eq!(
        ApiTable::new(&[served(ApiKey::AllocateProducerIds, 0, 0)]).unwrap_err(),
        ApiTableError::NoSpec {
            api_key: ApiKey::AllocateProducerIds
        }
    );
    assert_eq!(
        ApiTable::new(&[served(ApiKey::Fetch, 4, 18), served(ApiKey::Fetch, 4, 12)]).unwrap_err(),
        ApiTableError::Duplicate {
            api_key: ApiKey::Fetch
        }
    );
    assert_eq!(
        ApiTable::new(&[served(ApiKey::Produce, 2, 13)]).unwrap_err(),
        ApiTableError::VersionsOutOfRange {
            api_key: ApiKey::Produce,
            served_min: 2,
            served_max: 13,
            min: 3,
            max: 13
        }
    );
    assert_eq!(
        ApiTable::new(&[served(ApiKey::Fetch, 5, 4)]).unwrap_err(),
        ApiTableError::VersionsOutOfRange {
            api_key: ApiKey::Fetch,
            served_min: 5,
            served_max: 4,
            min: 4,
            max: 18
        }
    );
    let above = ServedApi {
        advertised_min_version: 5,
        ..served(ApiKey::Fetch, 4, 18)
    };
    assert_eq!(
        ApiTable::new(&[above]).unwrap_err(),
        ApiTableError::AdvertisedAboveServed {
            api_key: ApiKey::Fetch,
            advertised_min: 5,
            served_min: 4
        }
    );
    let capped = ApiTable::new(&[served(ApiKey::Fetch, 4, 11)]).unwrap();
    let fetch = capped.entry(ApiKey::Fetch).unwrap();
    assert_eq!(
        (fetch.max_version(), fetch.flexible_version_min()),
        (11, None)
    );
}

#[test]
fn hostile_array_lengths_are_refused_before_allocation() {
    // Metadata v0 whose topic array claims 54,265,856 elements in 5 bytes.
    let mut body = Bytes::from_static(&[0x03, 0x3c, 0x0c, 0x00, 0xb6]);
    let error = decode_request::<MetadataRequest>(&mut body, 0).unwrap_err();
    let DecodeError::Shape { source, .. } = error else {
        panic!("expected a shape error, got {error:?}");
    };
    assert_eq!(
        source,
        ShapeError::ArrayBeyondBody {
            shape: "MetadataRequest",
            offset: 0,
            count: 0x033c_0c00,
            element_bytes_min: 2,
            remaining_bytes: 1,
        }
    );
    // Produce v9 (compact): transactional_id null, acks, timeout, then a
    // topic array of u32::MAX - 1 elements.
    let produce: &[u8] = &[0, 0, 1, 0, 0, 0x75, 0x30, 0xff, 0xff, 0xff, 0xff, 0x0f];
    let error = decode_request_kind(ApiKey::Produce, &mut Bytes::from_static(produce), 9);
    assert!(matches!(
        error,
        Err(DecodeError::Shape {
            source: ShapeError::ArrayBeyondBody {
                count: 0xffff_fffe,
                ..
            },
            ..
        })
    ));
}

#[test]
fn shape_check_reports_each_kind_of_damage() {
    let check = |shape: &'static Shape, body: &[u8], version, flexible| {
        shape::check(shape, body, version, flexible).unwrap_err()
    };
    let negative = [0, 0, 0, 1, 0xff, 0xfe];
    assert_eq!(
        check(&schemas::METADATA, &negative, 0, false),
        ShapeError::NegativeLength {
            shape: "MetadataRequestTopic",
            offset: 4,
            length: -2
        }
    );
    let truncated = [0, 0, 0, 1, 0, 5, b'a'];
    assert_eq!(
        check(&schemas::METADATA, &truncated, 0, false),
        ShapeError::Truncated {
            shape: "MetadataRequestTopic",
            offset: 6,
            needed_bytes: 4
        }
    );
    // ApiVersions v3: client software name length varint of six bytes.
    let bad_varint = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
    assert_eq!(
        check(&schemas::API_VERSIONS, &bad_varint, 3, true),
        ShapeError::BadVarint {
            shape: "ApiVersionsRequest",
            offset: 0
        }
    );
    // ApiVersions v3 with empty name/version and 65 tagged fields.
    let many_tags = [1, 1, 65];
    assert_eq!(
        check(&schemas::API_VERSIONS, &many_tags, 3, true),
        ShapeError::TooManyTaggedFields {
            shape: "ApiVersionsRequest",
            offset: 2,
            count: 65
        }
    );
    let unknown_tag_beyond_body = [1, 1, 1, 7, 9, 0];
    assert_eq!(
        check(&schemas::API_VERSIONS, &unknown_tag_beyond_body, 3, true),
        ShapeError::Truncated {
            shape: "ApiVersionsRequest",
            offset: 5,
            needed_bytes: 8
        }
    );
}

#[test]
fn known_tagged_field_must_fill_its_declared_size() {
    // Fetch v12 with no topics; tag 0 (cluster_id) declares 1 byte but holds
    // a 2-byte compact string: kafka-protocol would read past the size.
    let mut body = vec![0u8; 4 * 4 + 1 + 4 + 4]; // replica..session_epoch
    body.extend_from_slice(&[1, 1, 1]); // topics, forgotten, rack_id
    body.extend_from_slice(&[1, 0, 1, 2, b'c']); // one tag: 0, size 1
    assert_eq!(
        shape::check(&schemas::FETCH, &body, 12, true).unwrap_err(),
        ShapeError::TaggedFieldSizeMismatch {
            shape: "FetchRequest",
            offset: 29,
            tag: 0,
            size_bytes: 1,
            content_bytes: 2
        }
    );
    let size_index = body.len() - 3;
    body[size_index] = 2; // declare the true size
    assert_eq!(
        shape::check(&schemas::FETCH, &body, 12, true),
        Ok(body.len())
    );
}

/// Writes random valid bodies of a shape, the way a client would encode
/// them: no nulls (fields may be non-nullable), known tagged fields with
/// non-default values first, then unknown ones in ascending tag order.
pub(super) struct BodyGen {
    pub(super) rng: Rng,
    pub(super) version: i16,
    pub(super) flexible: bool,
}

impl BodyGen {
    fn length(&mut self, out: &mut Vec<u8>, length: usize, non_compact_bytes: usize) {
        if self.flexible {
            put_uvarint(out, length as u32 + 1);
        } else {
            out.extend_from_slice(&(length as i32).to_be_bytes()[4 - non_compact_bytes..]);
        }
    }

    fn string(&mut self, out: &mut Vec<u8>) {
        let length = (self.rng.below(5) + 1) as usize;
        self.length(out, length, 2);
        out.extend((0..length).map(|_| b'a' + self.rng.below(26) as u8));
    }

    fn fixed(&mut self, out: &mut Vec<u8>, width: u8) {
        if width == 1 {
            // booleans re-encode as 0/1 only
            out.push(self.rng.below(2) as u8);
        } else {
            out.extend((0..width).map(|_| self.rng.next_u64() as u8));
        }
    }

    fn kind(&mut self, out: &mut Vec<u8>, kind: Kind) {
        match kind {
            Kind::Fixed(width) => self.fixed(out, width),
            Kind::Str => self.string(out),
            Kind::Bytes => {
                let length = self.rng.below(6) as usize;
                self.length(out, length, 4);
                out.extend((0..length).map(|_| self.rng.next_u64() as u8));
            }
            Kind::Array(elem) => {
                let count = self.rng.below(4) as usize;
                self.length(out, count, 4);
                for _ in 0..count {
                    match elem {
                        Elem::Fixed(width) => self.fixed(out, width),
                        Elem::Str => self.string(out),
                    }
                }
            }
            Kind::StructArray(element) => {
                let count = self.rng.below(3) as usize;
                self.length(out, count, 4);
                (0..count).for_each(|_| self.structure(out, element));
            }
            Kind::Struct(inner) => self.structure(out, inner),
            Kind::NullableStruct(inner) => match self.rng.below(2) {
                0 => out.push(0xff), // null re-encodes as -1
                _ => {
                    out.push(1);
                    self.structure(out, inner);
                }
            },
        }
    }

    pub(super) fn structure(&mut self, out: &mut Vec<u8>, shape: &'static Shape) {
        for field in shape.fields {
            if field.min <= self.version && self.version <= field.max {
                self.kind(out, field.kind);
            }
        }
        if self.flexible {
            self.tagged_fields(out, shape);
        }
    }

    fn tagged_fields(&mut self, out: &mut Vec<u8>, shape: &'static Shape) {
        let known: Vec<_> = shape
            .tagged
            .iter()
            .filter(|t| t.min <= self.version && self.rng.below(2) == 0)
            .collect();
        let unknown_count = self.rng.below(3) as u32;
        put_uvarint(out, known.len() as u32 + unknown_count);
        for tagged in known {
            let mut content = Vec::new();
            self.kind(&mut content, tagged.kind);
            put_uvarint(out, tagged.tag);
            put_uvarint(out, content.len() as u32);
            out.extend_from_slice(&content);
        }
        for index in 0..unknown_count {
            let length = self.rng.below(4) as u32;
            put_uvarint(out, 100 + index * 50);
            put_uvarint(out, length);
            out.extend((0..length).map(|_| self.rng.next_u64() as u8));
        }
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Every served API and version: bodies generated from our shapes pass the
/// shape check whole, and kafka-protocol decodes exactly those bytes and
/// re-encodes them identically. A wrong field, version bound or encoding in
/// `schemas.rs` fails here.
#[test]
fn shapes_match_kafka_protocol_for_every_served_version() {
    let table = ApiTable::decodable();
    let mut rng = Rng::from_env(0x5eed_0001);
    let seed = rng.seed();
    for entry in table.entries() {
        let spec = api_spec(entry.api_key()).unwrap();
        for version in entry.min_version()..=entry.max_version() {
            for round in 0..64 {
                let mut gen = BodyGen {
                    rng: rng.fork(),
                    version,
                    flexible: entry.is_flexible(version),
                };
                let mut body = Vec::new();
                gen.structure(&mut body, spec.shape);
                let what = format!(
                    "seed {seed}: {:?} v{version} round {round}",
                    entry.api_key()
                );
                assert_roundtrip(entry, version, &body, &what);
            }
        }
    }
}

fn assert_roundtrip(entry: &ApiEntry, version: i16, body: &[u8], what: &str) {
    let flexible = entry.is_flexible(version);
    let spec = api_spec(entry.api_key()).unwrap();
    assert_eq!(
        shape::check(spec.shape, body, version, flexible),
        Ok(body.len()),
        "{what}: {body:?}"
    );
    let mut input = Bytes::copy_from_slice(body);
    let decoded = decode_request_kind(entry.api_key(), &mut input, version)
        .unwrap_or_else(|e| panic!("{what}: {e} {body:?}"));
    assert!(input.is_empty(), "{what}: {} bytes left", input.len());
    let mut encoded = BytesMut::new();
    RequestKind::encode(&decoded, &mut encoded, version).unwrap();
    assert_eq!(&encoded[..], body, "{what}");
}
