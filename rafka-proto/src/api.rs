//! The API table: which Kafka APIs are served, at which versions, with which
//! header versions. Header parsing looks each request up here, and the
//! ApiVersions response lists it, so the two cannot drift.
//!
//! This crate knows which APIs rafka can *decode* (`api_spec`: the request
//! type and its wire shape in `api/schemas.rs`) and at which versions: the
//! intersection of `ApiKey::valid_versions()` with the request's and the
//! response's `Message::VERSIONS` (0.18 advertises OffsetCommit and
//! OffsetFetch v10 in `valid_versions()` while their request types decode
//! only up to v9). The broker decides what it *serves*: rafka-net's handler
//! table hands [`ApiTable::new`] one [`ServedApi`] per handler, and the
//! table refuses any version outside what rafka decodes. First flexible
//! versions and header versions are derived from kafka-protocol, never
//! retyped.
//!
//! Adding an API: one line in `api_spec` (its request type and wire shape)
//! here, then one line in rafka-net's handler table and its handler.
//!
//! # Layout
//! - `api.rs`: the table, the ApiVersions response.
//! - `api/codec.rs`: `decode_request` / `encode_response` for handlers.
//! - `api/shape.rs` + `api/schemas.rs`: the structural pre-check that keeps
//!   hostile array lengths away from kafka-protocol's decoders.
//! - `api/response.rs` + `api/response_schemas.rs`: the same for the
//!   responses a client decodes (`decode_response`, the operator CLI's).

mod codec;
mod response;
mod response_schemas;
mod schemas;
mod shape;

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Message, Request, VersionRange};
use thiserror::Error;

use crate::error::ErrorCode;
use crate::header::{RequestHeaderVersion, ResponseHeaderVersion};
use shape::Shape;

pub use codec::{
    decode_request, decode_request_kind, encode_response, encode_response_into, DecodeError,
    EncodeError,
};
pub use response::decode_response;
pub use shape::{ShapeError, TAGGED_FIELDS_PER_STRUCT_MAX};

/// One API as a broker serves it: the versions its handler implements,
/// and the oldest version ApiVersions advertises (below `min_version` only
/// for a documented client quirk, see rafka-net's handler table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedApi {
    pub api_key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
    pub advertised_min_version: i16,
}

/// Every API `api_spec` knows, in api key order.
pub const DECODABLE_APIS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::WriteTxnMarkers,
    ApiKey::TxnOffsetCommit,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::DescribeCluster,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::DescribeAcls,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeLogDirs,
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::DescribeClientQuotas,
    ApiKey::AlterClientQuotas,
    ApiKey::DescribeUserScramCredentials,
    ApiKey::AlterUserScramCredentials,
    ApiKey::DescribeProducers,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
    ApiKey::DescribeTopicPartitions,
    ApiKey::DescribeQuorum,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
];

/// What rafka knows about an API independently of the broker's choices.
#[derive(Debug, Clone, Copy)]
struct ApiSpec {
    request_key: i16,
    request_versions: VersionRange,
    response_versions: VersionRange,
    shape: &'static Shape,
}

fn spec<R: Request>(shape: &'static Shape) -> ApiSpec {
    ApiSpec {
        request_key: R::KEY,
        request_versions: R::VERSIONS,
        response_versions: <R::Response as Message>::VERSIONS,
        shape,
    }
}

/// The APIs rafka can decode safely: request type and wire shape.
fn api_spec(api_key: ApiKey) -> Option<ApiSpec> {
    Some(match api_key {
        ApiKey::Produce => spec::<ProduceRequest>(&schemas::PRODUCE),
        ApiKey::Fetch => spec::<FetchRequest>(&schemas::FETCH),
        ApiKey::ListOffsets => spec::<ListOffsetsRequest>(&schemas::LIST_OFFSETS),
        ApiKey::Metadata => spec::<MetadataRequest>(&schemas::METADATA),
        ApiKey::OffsetCommit => spec::<OffsetCommitRequest>(&schemas::OFFSET_COMMIT),
        ApiKey::OffsetFetch => spec::<OffsetFetchRequest>(&schemas::OFFSET_FETCH),
        ApiKey::FindCoordinator => spec::<FindCoordinatorRequest>(&schemas::FIND_COORDINATOR),
        ApiKey::JoinGroup => spec::<JoinGroupRequest>(&schemas::JOIN_GROUP),
        ApiKey::Heartbeat => spec::<HeartbeatRequest>(&schemas::HEARTBEAT),
        ApiKey::LeaveGroup => spec::<LeaveGroupRequest>(&schemas::LEAVE_GROUP),
        ApiKey::SyncGroup => spec::<SyncGroupRequest>(&schemas::SYNC_GROUP),
        ApiKey::DescribeGroups => spec::<DescribeGroupsRequest>(&schemas::DESCRIBE_GROUPS),
        ApiKey::ListGroups => spec::<ListGroupsRequest>(&schemas::LIST_GROUPS),
        ApiKey::ApiVersions => spec::<ApiVersionsRequest>(&schemas::API_VERSIONS),
        ApiKey::CreateTopics => spec::<CreateTopicsRequest>(&schemas::CREATE_TOPICS),
        ApiKey::DeleteTopics => spec::<DeleteTopicsRequest>(&schemas::DELETE_TOPICS),
        ApiKey::InitProducerId => spec::<InitProducerIdRequest>(&schemas::INIT_PRODUCER_ID),
        ApiKey::AddPartitionsToTxn => {
            spec::<AddPartitionsToTxnRequest>(&schemas::ADD_PARTITIONS_TO_TXN)
        }
        ApiKey::AddOffsetsToTxn => spec::<AddOffsetsToTxnRequest>(&schemas::ADD_OFFSETS_TO_TXN),
        ApiKey::EndTxn => spec::<EndTxnRequest>(&schemas::END_TXN),
        ApiKey::WriteTxnMarkers => spec::<WriteTxnMarkersRequest>(&schemas::WRITE_TXN_MARKERS),
        ApiKey::TxnOffsetCommit => spec::<TxnOffsetCommitRequest>(&schemas::TXN_OFFSET_COMMIT),
        ApiKey::DescribeCluster => spec::<DescribeClusterRequest>(&schemas::DESCRIBE_CLUSTER),
        ApiKey::OffsetDelete => spec::<OffsetDeleteRequest>(&schemas::OFFSET_DELETE),
        ApiKey::DeleteGroups => spec::<DeleteGroupsRequest>(&schemas::DELETE_GROUPS),
        ApiKey::CreatePartitions => spec::<CreatePartitionsRequest>(&schemas::CREATE_PARTITIONS),
        ApiKey::DeleteRecords => spec::<DeleteRecordsRequest>(&schemas::DELETE_RECORDS),
        ApiKey::DescribeAcls => spec::<DescribeAclsRequest>(&schemas::DESCRIBE_ACLS),
        ApiKey::CreateAcls => spec::<CreateAclsRequest>(&schemas::CREATE_ACLS),
        ApiKey::DeleteAcls => spec::<DeleteAclsRequest>(&schemas::DELETE_ACLS),
        ApiKey::DescribeConfigs => spec::<DescribeConfigsRequest>(&schemas::DESCRIBE_CONFIGS),
        ApiKey::AlterConfigs => spec::<AlterConfigsRequest>(&schemas::ALTER_CONFIGS),
        ApiKey::IncrementalAlterConfigs => {
            spec::<IncrementalAlterConfigsRequest>(&schemas::INCREMENTAL_ALTER_CONFIGS)
        }
        ApiKey::OffsetForLeaderEpoch => {
            spec::<OffsetForLeaderEpochRequest>(&schemas::OFFSET_FOR_LEADER_EPOCH)
        }
        ApiKey::DescribeLogDirs => spec::<DescribeLogDirsRequest>(&schemas::DESCRIBE_LOG_DIRS),
        ApiKey::ElectLeaders => spec::<ElectLeadersRequest>(&schemas::ELECT_LEADERS),
        ApiKey::AlterPartitionReassignments => {
            spec::<AlterPartitionReassignmentsRequest>(&schemas::ALTER_PARTITION_REASSIGNMENTS)
        }
        ApiKey::ListPartitionReassignments => {
            spec::<ListPartitionReassignmentsRequest>(&schemas::LIST_PARTITION_REASSIGNMENTS)
        }
        ApiKey::DescribeProducers => spec::<DescribeProducersRequest>(&schemas::DESCRIBE_PRODUCERS),
        ApiKey::DescribeTransactions => {
            spec::<DescribeTransactionsRequest>(&schemas::DESCRIBE_TRANSACTIONS)
        }
        ApiKey::ListTransactions => spec::<ListTransactionsRequest>(&schemas::LIST_TRANSACTIONS),
        ApiKey::DescribeClientQuotas => {
            spec::<DescribeClientQuotasRequest>(&schemas::DESCRIBE_CLIENT_QUOTAS)
        }
        ApiKey::AlterClientQuotas => {
            spec::<AlterClientQuotasRequest>(&schemas::ALTER_CLIENT_QUOTAS)
        }
        ApiKey::DescribeUserScramCredentials => {
            spec::<DescribeUserScramCredentialsRequest>(&schemas::DESCRIBE_USER_SCRAM_CREDENTIALS)
        }
        ApiKey::AlterUserScramCredentials => {
            spec::<AlterUserScramCredentialsRequest>(&schemas::ALTER_USER_SCRAM_CREDENTIALS)
        }
        ApiKey::DescribeTopicPartitions => {
            spec::<DescribeTopicPartitionsRequest>(&schemas::DESCRIBE_TOPIC_PARTITIONS)
        }
        ApiKey::DescribeQuorum => spec::<DescribeQuorumRequest>(&schemas::DESCRIBE_QUORUM),
        ApiKey::SaslHandshake => spec::<SaslHandshakeRequest>(&schemas::SASL_HANDSHAKE),
        ApiKey::SaslAuthenticate => spec::<SaslAuthenticateRequest>(&schemas::SASL_AUTHENTICATE),
        _ => return None,
    })
}

/// Why a request's API key or version is not served.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ApiLookupError {
    #[error("api key {api_key} is not served")]
    UnknownApiKey { api_key: i16 },
    #[error("{api_key:?} v{version} is not served (versions {min}..={max})")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
}

/// Why an API table could not be built (a broker configuration bug).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ApiTableError {
    #[error("{api_key:?} has no request shape, so it cannot be decoded safely")]
    NoSpec { api_key: ApiKey },
    #[error("{api_key:?} is listed twice")]
    Duplicate { api_key: ApiKey },
    #[error("{api_key:?} v{served_min}..=v{served_max} is not within the decodable versions {min}..={max}")]
    VersionsOutOfRange {
        api_key: ApiKey,
        served_min: i16,
        served_max: i16,
        min: i16,
        max: i16,
    },
    #[error(
        "{api_key:?} advertises v{advertised_min} above its first served version v{served_min}"
    )]
    AdvertisedAboveServed {
        api_key: ApiKey,
        advertised_min: i16,
        served_min: i16,
    },
    #[error("{api_key:?} has no version that both the request and the response support")]
    NoCommonVersion { api_key: ApiKey },
    #[error("{api_key:?} v{version} uses an unknown header version")]
    UnknownHeaderVersion { api_key: ApiKey, version: i16 },
}

/// One served API.
#[derive(Debug, Clone)]
pub struct ApiEntry {
    api_key: ApiKey,
    min_version: i16,
    max_version: i16,
    advertised_min_version: i16,
    flexible_version_min: Option<i16>,
    /// Header versions of `min_version..=max_version`, in order.
    header_versions: Vec<(RequestHeaderVersion, ResponseHeaderVersion)>,
}

impl ApiEntry {
    fn new(served: ServedApi) -> Result<ApiEntry, ApiTableError> {
        let api_key = served.api_key;
        let range = decodable_versions(api_key)?;
        let (min_version, max_version) = (served.min_version, served.max_version);
        if min_version > max_version || min_version < range.min || max_version > range.max {
            return Err(ApiTableError::VersionsOutOfRange {
                api_key,
                served_min: min_version,
                served_max: max_version,
                min: range.min,
                max: range.max,
            });
        }
        if served.advertised_min_version > min_version {
            return Err(ApiTableError::AdvertisedAboveServed {
                api_key,
                advertised_min: served.advertised_min_version,
                served_min: min_version,
            });
        }
        let header_versions = (min_version..=max_version)
            .map(|version| derive_header_versions(api_key, version))
            .collect::<Result<Vec<_>, _>>()?;
        let flexible_version_min = (min_version..=max_version)
            .zip(&header_versions)
            .find(|(_, (request, _))| *request == RequestHeaderVersion::V2)
            .map(|(version, _)| version);
        Ok(ApiEntry {
            api_key,
            min_version,
            max_version,
            advertised_min_version: served.advertised_min_version,
            flexible_version_min,
            header_versions,
        })
    }

    pub fn api_key(&self) -> ApiKey {
        self.api_key
    }

    pub fn min_version(&self) -> i16 {
        self.min_version
    }

    pub fn max_version(&self) -> i16 {
        self.max_version
    }

    /// The oldest version ApiVersions lists (at most `min_version`).
    pub fn advertised_min_version(&self) -> i16 {
        self.advertised_min_version
    }

    /// The first version using compact encodings and tagged fields (request
    /// header v2), if any served version does.
    pub fn flexible_version_min(&self) -> Option<i16> {
        self.flexible_version_min
    }

    pub fn supports(&self, version: i16) -> bool {
        self.min_version <= version && version <= self.max_version
    }

    pub fn is_flexible(&self, version: i16) -> bool {
        self.flexible_version_min.is_some_and(|min| version >= min)
    }

    /// Header layout of a request of `version`, which must be served.
    pub fn request_header_version(&self, version: i16) -> RequestHeaderVersion {
        self.header_versions_of(version).0
    }

    /// Header layout of the response to a request of `version`, which must
    /// be served.
    pub fn response_header_version(&self, version: i16) -> ResponseHeaderVersion {
        self.header_versions_of(version).1
    }

    fn header_versions_of(&self, version: i16) -> (RequestHeaderVersion, ResponseHeaderVersion) {
        assert!(
            self.supports(version),
            "{:?} v{version} is not served",
            self.api_key
        );
        self.header_versions[(version - self.min_version) as usize]
    }
}

/// The versions rafka can decode `api_key` at (see the module doc).
pub fn decodable_versions(api_key: ApiKey) -> Result<VersionRange, ApiTableError> {
    let spec = api_spec(api_key).ok_or(ApiTableError::NoSpec { api_key })?;
    assert_eq!(
        spec.request_key, api_key as i16,
        "api_spec maps {api_key:?}"
    );
    let range = api_key
        .valid_versions()
        .intersect(&spec.request_versions)
        .intersect(&spec.response_versions);
    if range.is_empty() {
        return Err(ApiTableError::NoCommonVersion { api_key });
    }
    Ok(range)
}

fn derive_header_versions(
    api_key: ApiKey,
    version: i16,
) -> Result<(RequestHeaderVersion, ResponseHeaderVersion), ApiTableError> {
    let unknown = ApiTableError::UnknownHeaderVersion { api_key, version };
    let request = RequestHeaderVersion::from_i16(api_key.request_header_version(version));
    let response = ResponseHeaderVersion::from_i16(api_key.response_header_version(version));
    request.zip(response).ok_or(unknown)
}

/// The served APIs, indexed by api key.
#[derive(Debug, Clone)]
pub struct ApiTable {
    by_key: Vec<Option<ApiEntry>>,
}

impl ApiTable {
    /// A table serving `apis`.
    pub fn new(apis: &[ServedApi]) -> Result<ApiTable, ApiTableError> {
        let mut by_key: Vec<Option<ApiEntry>> = Vec::new();
        for &served in apis {
            let api_key = served.api_key;
            let index = api_key as i16 as usize;
            if by_key.len() <= index {
                by_key.resize(index + 1, None);
            }
            if by_key[index].is_some() {
                return Err(ApiTableError::Duplicate { api_key });
            }
            by_key[index] = Some(ApiEntry::new(served)?);
        }
        Ok(ApiTable { by_key })
    }

    /// Every API rafka decodes at every version it decodes: what header
    /// parsing, fuzzing and tools use when no broker decides.
    pub fn decodable() -> ApiTable {
        let apis: Vec<ServedApi> = DECODABLE_APIS
            .iter()
            .map(|&api_key| {
                // DECODABLE_APIS lists the keys api_spec maps (tests check).
                let range = decodable_versions(api_key).expect("DECODABLE_APIS have a spec");
                ServedApi {
                    api_key,
                    min_version: range.min,
                    max_version: range.max,
                    advertised_min_version: range.min,
                }
            })
            .collect();
        ApiTable::new(&apis).expect("the decodable table is valid")
    }

    /// The entry serving `api_key` at `api_version`.
    pub fn lookup(&self, api_key: i16, api_version: i16) -> Result<&ApiEntry, ApiLookupError> {
        let entry = usize::try_from(api_key)
            .ok()
            .and_then(|index| self.by_key.get(index))
            .and_then(Option::as_ref)
            .ok_or(ApiLookupError::UnknownApiKey { api_key })?;
        if !entry.supports(api_version) {
            return Err(ApiLookupError::UnsupportedVersion {
                api_key: entry.api_key,
                version: api_version,
                min: entry.min_version,
                max: entry.max_version,
            });
        }
        Ok(entry)
    }

    /// The entry for `api_key`, whatever the version.
    pub fn entry(&self, api_key: ApiKey) -> Option<&ApiEntry> {
        self.by_key.get(api_key as i16 as usize)?.as_ref()
    }

    /// Served APIs in api key order.
    pub fn entries(&self) -> impl Iterator<Item = &ApiEntry> {
        self.by_key.iter().flatten()
    }

    /// The ApiVersions response listing every served API; no features are
    /// advertised (supported and finalized features stay empty).
    pub fn api_versions_response(&self, request_version: i16) -> ApiVersionsResponse {
        let _ = request_version; // the body is the same at every version
        ApiVersionsResponse::default()
            .with_error_code(ErrorCode::NONE.code())
            .with_api_keys(self.entries().map(api_version_of).collect())
            .with_throttle_time_ms(0)
    }

    /// The complete ApiVersions response (response header + body) to a
    /// request of `request_version`. An unsupported version gets what Kafka
    /// sends: UNSUPPORTED_VERSION in the v0 layout, listing the ApiVersions
    /// range so the client can retry with a version it shares.
    pub fn encode_api_versions_response(
        &self,
        correlation_id: i32,
        request_version: i16,
    ) -> Result<Bytes, EncodeError> {
        let entry = self.entry(ApiKey::ApiVersions);
        if let Some(entry) = entry.filter(|entry| entry.supports(request_version)) {
            let body = self.api_versions_response(request_version);
            let header_version = entry.response_header_version(request_version);
            return encode_response(correlation_id, header_version, &body, request_version);
        }
        let body = ApiVersionsResponse::default()
            .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
            .with_api_keys(entry.map(api_version_of).into_iter().collect());
        encode_response(correlation_id, ResponseHeaderVersion::V0, &body, 0)
    }
}

fn api_version_of(entry: &ApiEntry) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(entry.api_key as i16)
        .with_min_version(entry.advertised_min_version)
        .with_max_version(entry.max_version)
}

#[cfg(test)]
mod tests;
