//! Decoding responses for the client side (the operator CLI): the shape
//! check of `shape.rs` with the response shapes of `response_schemas.rs`,
//! then kafka-protocol's decoder, so a broker's bytes cannot make it
//! pre-allocate from a hostile array length (which aborts the process).

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Request};

use super::codec::DecodeError;
use super::response_schemas as schemas;
use super::shape::{self, Shape};

/// The response shape of `api_key`, for the APIs a client here decodes.
fn response_shape(api_key: ApiKey) -> Option<&'static Shape> {
    Some(match api_key {
        ApiKey::ApiVersions => &schemas::API_VERSIONS,
        ApiKey::Metadata => &schemas::METADATA,
        ApiKey::CreateTopics => &schemas::CREATE_TOPICS,
        ApiKey::DeleteTopics => &schemas::DELETE_TOPICS,
        ApiKey::CreatePartitions => &schemas::CREATE_PARTITIONS,
        ApiKey::DeleteRecords => &schemas::DELETE_RECORDS,
        ApiKey::DescribeConfigs => &schemas::DESCRIBE_CONFIGS,
        ApiKey::IncrementalAlterConfigs => &schemas::INCREMENTAL_ALTER_CONFIGS,
        ApiKey::ListGroups => &schemas::LIST_GROUPS,
        ApiKey::DescribeGroups => &schemas::DESCRIBE_GROUPS,
        ApiKey::OffsetFetch => &schemas::OFFSET_FETCH,
        ApiKey::OffsetCommit => &schemas::OFFSET_COMMIT,
        ApiKey::DeleteGroups => &schemas::DELETE_GROUPS,
        ApiKey::FindCoordinator => &schemas::FIND_COORDINATOR,
        ApiKey::ListOffsets => &schemas::LIST_OFFSETS,
        ApiKey::DescribeCluster => &schemas::DESCRIBE_CLUSTER,
        ApiKey::Produce => &schemas::PRODUCE,
        ApiKey::Fetch => &schemas::FETCH,
        ApiKey::DescribeClientQuotas => &schemas::DESCRIBE_CLIENT_QUOTAS,
        ApiKey::AlterClientQuotas => &schemas::ALTER_CLIENT_QUOTAS,
        ApiKey::DescribeUserScramCredentials => &schemas::DESCRIBE_USER_SCRAM_CREDENTIALS,
        ApiKey::AlterUserScramCredentials => &schemas::ALTER_USER_SCRAM_CREDENTIALS,
        ApiKey::SaslHandshake => &schemas::SASL_HANDSHAKE,
        ApiKey::SaslAuthenticate => &schemas::SASL_AUTHENTICATE,
        ApiKey::DescribeAcls => &schemas::DESCRIBE_ACLS,
        ApiKey::CreateAcls => &schemas::CREATE_ACLS,
        ApiKey::DeleteAcls => &schemas::DELETE_ACLS,
        _ => return None,
    })
}

/// Decodes the response to a `T` request of `version` from the front of
/// `body` (after the response header), once its shape has been checked.
/// Trailing bytes are left in `body` for the caller to judge.
pub fn decode_response<T: Request>(
    body: &mut Bytes,
    version: i16,
) -> Result<T::Response, DecodeError> {
    let api_key =
        ApiKey::try_from(T::KEY).map_err(|()| DecodeError::NoShape { api_key: T::KEY })?;
    let shape = response_shape(api_key).ok_or(DecodeError::NoShape { api_key: T::KEY })?;
    let versions = api_key.valid_versions();
    if version < versions.min || version > versions.max {
        return Err(DecodeError::UnsupportedVersion { api_key, version });
    }
    // Flexible versions are those with request header v2 (ApiVersions'
    // response header stays v0 even then, its body does not).
    let flexible = api_key.request_header_version(version) >= 2;
    shape::check(shape, body, version, flexible).map_err(|source| DecodeError::Shape {
        api_key,
        version,
        source,
    })?;
    T::Response::decode(body, version).map_err(|source| DecodeError::Malformed {
        api_key,
        version,
        source: source.into(),
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, Message};
    use rafka_testkit::Rng;

    use super::super::tests::BodyGen;
    use super::*;

    /// Random valid bodies of every version pass the shape check whole,
    /// kafka-protocol decodes exactly them, and what it decodes survives
    /// its own re-encoding: a wrong field, version bound or tag in
    /// `response_schemas.rs` fails.
    fn roundtrip<T: Request>(rng: &mut Rng)
    where
        T::Response: PartialEq + std::fmt::Debug,
    {
        let api_key = ApiKey::try_from(T::KEY).expect("known key");
        let shape = response_shape(api_key).expect("a response shape");
        let seed = rng.seed();
        for version in T::Response::VERSIONS.min..=T::Response::VERSIONS.max {
            for round in 0..64 {
                let flexible = api_key.request_header_version(version) >= 2;
                let mut gen = BodyGen {
                    rng: rng.fork(),
                    version,
                    flexible,
                };
                let mut body = Vec::new();
                gen.structure(&mut body, shape);
                let what = format!("seed {seed}: {api_key:?} response v{version} round {round}");
                assert_eq!(
                    shape::check(shape, &body, version, flexible),
                    Ok(body.len()),
                    "{what}: {body:?}"
                );
                let mut input = Bytes::copy_from_slice(&body);
                let decoded = decode_response::<T>(&mut input, version)
                    .unwrap_or_else(|e| panic!("{what}: {e} {body:?}"));
                assert!(input.is_empty(), "{what}: {} bytes left", input.len());
                // Re-encoded, the same message comes back (not always the
                // same bytes: a known tagged field holding its default,
                // which the generator may write, is left out).
                let mut encoded = BytesMut::new();
                decoded.encode(&mut encoded, version).expect("encode");
                let again = T::Response::decode(&mut encoded.freeze(), version).expect("decode");
                assert_eq!(again, decoded, "{what}");
            }
        }
    }

    #[test]
    fn response_shapes_match_kafka_protocol_for_every_version() {
        let mut rng = Rng::from_env(0x5eed_0002);
        roundtrip::<ApiVersionsRequest>(&mut rng);
        roundtrip::<MetadataRequest>(&mut rng);
        roundtrip::<CreateTopicsRequest>(&mut rng);
        roundtrip::<DeleteTopicsRequest>(&mut rng);
        roundtrip::<CreatePartitionsRequest>(&mut rng);
        roundtrip::<DeleteRecordsRequest>(&mut rng);
        roundtrip::<DescribeConfigsRequest>(&mut rng);
        roundtrip::<IncrementalAlterConfigsRequest>(&mut rng);
        roundtrip::<ListGroupsRequest>(&mut rng);
        roundtrip::<DescribeGroupsRequest>(&mut rng);
        roundtrip::<OffsetFetchRequest>(&mut rng);
        roundtrip::<OffsetCommitRequest>(&mut rng);
        roundtrip::<DeleteGroupsRequest>(&mut rng);
        roundtrip::<FindCoordinatorRequest>(&mut rng);
        roundtrip::<ListOffsetsRequest>(&mut rng);
        roundtrip::<DescribeClusterRequest>(&mut rng);
        roundtrip::<ProduceRequest>(&mut rng);
        roundtrip::<FetchRequest>(&mut rng);
        roundtrip::<DescribeClientQuotasRequest>(&mut rng);
        roundtrip::<AlterClientQuotasRequest>(&mut rng);
        roundtrip::<DescribeUserScramCredentialsRequest>(&mut rng);
        roundtrip::<AlterUserScramCredentialsRequest>(&mut rng);
        roundtrip::<SaslHandshakeRequest>(&mut rng);
        roundtrip::<SaslAuthenticateRequest>(&mut rng);
        roundtrip::<DescribeAclsRequest>(&mut rng);
        roundtrip::<CreateAclsRequest>(&mut rng);
        roundtrip::<DeleteAclsRequest>(&mut rng);
    }

    #[test]
    fn hostile_array_lengths_in_a_response_are_refused_before_allocation() {
        // ApiVersions v0: error_code, then api_keys declaring 2^31-1
        // elements in seven bytes.
        let mut body = Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0]);
        assert!(matches!(
            decode_response::<ApiVersionsRequest>(&mut body, 0),
            Err(DecodeError::Shape { .. })
        ));
        // Metadata v12 (flexible): brokers as a compact array of 2^32-2.
        let mut body = Bytes::from_static(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(
            decode_response::<MetadataRequest>(&mut body, 12),
            Err(DecodeError::Shape { .. })
        ));
        let mut body = Bytes::from_static(&[0xff; 7]);
        assert!(decode_response::<ApiVersionsRequest>(&mut body, 3).is_err());
    }
}
