//! Wire shapes of the responses a client of rafka-proto decodes (the
//! operator CLI in the `rafka` binary), for the same pre-decode check the
//! requests get in `shape.rs`: a broker's bytes are as untrusted as a
//! client's, and kafka-protocol's decoders pre-allocate from array lengths.
//! Fields in wire order with the versions they are present in, as in
//! Kafka's `clients/src/main/resources/common/message/*Response.json`;
//! known tagged fields listed apart.
//!
//! `response.rs`'s differential test generates random valid bodies from
//! these shapes for every version kafka-protocol knows and checks it
//! decodes exactly those bytes and re-encodes them identically.

use super::shape::build::{
    all, between, from, shape, until, BOOL, F64, I16, I32, I32S, I64, I8, STRS, UUID,
};
use super::shape::Kind::{self, Bytes, Str, Struct, StructArray};
use super::shape::{Shape, Tagged};

const fn tagged(tag: u32, min: i16, kind: Kind) -> Tagged {
    Tagged { tag, min, kind }
}

pub(crate) static API_VERSIONS: Shape = Shape {
    name: "ApiVersionsResponse",
    fields: &[
        all(I16),                       // error_code
        all(StructArray(&API_VERSION)), // api_keys
        from(1, I32),                   // throttle_time_ms
    ],
    tagged: &[
        tagged(0, 3, StructArray(&SUPPORTED_FEATURE)), // supported_features
        tagged(1, 3, I64),                             // finalized_features_epoch
        tagged(2, 3, StructArray(&FINALIZED_FEATURE)), // finalized_features
        tagged(3, 3, BOOL),                            // zk_migration_ready
    ],
};
static API_VERSION: Shape = shape("ApiVersion", &[all(I16), all(I16), all(I16)]);
static SUPPORTED_FEATURE: Shape = shape("SupportedFeatureKey", &[all(Str), all(I16), all(I16)]);
static FINALIZED_FEATURE: Shape = shape("FinalizedFeatureKey", &[all(Str), all(I16), all(I16)]);

pub(crate) static METADATA: Shape = shape(
    "MetadataResponse",
    &[
        from(3, I32),                       // throttle_time_ms
        all(StructArray(&METADATA_BROKER)), // brokers
        from(2, Str),                       // cluster_id
        from(1, I32),                       // controller_id
        all(StructArray(&METADATA_TOPIC)),  // topics
        between(8, 10, I32),                // cluster_authorized_operations
        from(13, I16),                      // error_code
    ],
);
static METADATA_BROKER: Shape = shape(
    "MetadataResponseBroker",
    &[
        all(I32),     // node_id
        all(Str),     // host
        all(I32),     // port
        from(1, Str), // rack
    ],
);
static METADATA_TOPIC: Shape = shape(
    "MetadataResponseTopic",
    &[
        all(I16),                              // error_code
        all(Str),                              // name
        from(10, UUID),                        // topic_id
        from(1, BOOL),                         // is_internal
        all(StructArray(&METADATA_PARTITION)), // partitions
        from(8, I32),                          // topic_authorized_operations
    ],
);
static METADATA_PARTITION: Shape = shape(
    "MetadataResponsePartition",
    &[
        all(I16),      // error_code
        all(I32),      // partition_index
        all(I32),      // leader_id
        from(7, I32),  // leader_epoch
        all(I32S),     // replica_nodes
        all(I32S),     // isr_nodes
        from(5, I32S), // offline_replicas
    ],
);

pub(crate) static CREATE_TOPICS: Shape = shape(
    "CreateTopicsResponse",
    &[
        all(I32),                                // throttle_time_ms
        all(StructArray(&CREATE_TOPICS_RESULT)), // topics
    ],
);
static CREATE_TOPICS_RESULT: Shape = Shape {
    name: "CreatableTopicResult",
    fields: &[
        all(Str),                                     // name
        from(7, UUID),                                // topic_id
        all(I16),                                     // error_code
        all(Str),                                     // error_message
        from(5, I32),                                 // num_partitions
        from(5, I16),                                 // replication_factor
        from(5, StructArray(&CREATE_TOPICS_CONFIGS)), // configs
    ],
    tagged: &[tagged(0, 5, I16)], // topic_config_error_code
};
static CREATE_TOPICS_CONFIGS: Shape = shape(
    "CreatableTopicConfigs",
    &[
        all(Str),  // name
        all(Str),  // value
        all(BOOL), // read_only
        all(I8),   // config_source
        all(BOOL), // is_sensitive
    ],
);

pub(crate) static DELETE_TOPICS: Shape = shape(
    "DeleteTopicsResponse",
    &[
        all(I32),                                // throttle_time_ms
        all(StructArray(&DELETE_TOPICS_RESULT)), // responses
    ],
);
static DELETE_TOPICS_RESULT: Shape = shape(
    "DeletableTopicResult",
    &[
        all(Str),      // name
        from(6, UUID), // topic_id
        all(I16),      // error_code
        from(5, Str),  // error_message
    ],
);

pub(crate) static CREATE_PARTITIONS: Shape = shape(
    "CreatePartitionsResponse",
    &[
        all(I32),                                    // throttle_time_ms
        all(StructArray(&CREATE_PARTITIONS_RESULT)), // results
    ],
);
static CREATE_PARTITIONS_RESULT: Shape = shape(
    "CreatePartitionsTopicResult",
    &[all(Str), all(I16), all(Str)], // name, error_code, error_message
);

pub(crate) static DELETE_RECORDS: Shape = shape(
    "DeleteRecordsResponse",
    &[
        all(I32),                                // throttle_time_ms
        all(StructArray(&DELETE_RECORDS_TOPIC)), // topics
    ],
);
static DELETE_RECORDS_TOPIC: Shape = shape(
    "DeleteRecordsTopicResult",
    &[all(Str), all(StructArray(&DELETE_RECORDS_PARTITION))], // name, partitions
);
static DELETE_RECORDS_PARTITION: Shape = shape(
    "DeleteRecordsPartitionResult",
    &[all(I32), all(I64), all(I16)], // partition_index, low_watermark, error_code
);

pub(crate) static DESCRIBE_CONFIGS: Shape = shape(
    "DescribeConfigsResponse",
    &[
        all(I32),                                   // throttle_time_ms
        all(StructArray(&DESCRIBE_CONFIGS_RESULT)), // results
    ],
);
static DESCRIBE_CONFIGS_RESULT: Shape = shape(
    "DescribeConfigsResult",
    &[
        all(I16),                                   // error_code
        all(Str),                                   // error_message
        all(I8),                                    // resource_type
        all(Str),                                   // resource_name
        all(StructArray(&DESCRIBE_CONFIGS_CONFIG)), // configs
    ],
);
static DESCRIBE_CONFIGS_CONFIG: Shape = shape(
    "DescribeConfigsResourceResult",
    &[
        all(Str),                                    // name
        all(Str),                                    // value
        all(BOOL),                                   // read_only
        all(I8),                                     // config_source
        all(BOOL),                                   // is_sensitive
        all(StructArray(&DESCRIBE_CONFIGS_SYNONYM)), // synonyms
        from(3, I8),                                 // config_type
        from(3, Str),                                // documentation
    ],
);
static DESCRIBE_CONFIGS_SYNONYM: Shape = shape(
    "DescribeConfigsSynonym",
    &[all(Str), all(Str), all(I8)], // name, value, source
);

pub(crate) static INCREMENTAL_ALTER_CONFIGS: Shape = shape(
    "IncrementalAlterConfigsResponse",
    &[
        all(I32),                                            // throttle_time_ms
        all(StructArray(&INCREMENTAL_ALTER_CONFIGS_RESULT)), // responses
    ],
);
static INCREMENTAL_ALTER_CONFIGS_RESULT: Shape = shape(
    "AlterConfigsResourceResponse",
    &[all(I16), all(Str), all(I8), all(Str)], // error_code, error_message, resource_type, resource_name
);

pub(crate) static LIST_GROUPS: Shape = shape(
    "ListGroupsResponse",
    &[
        from(1, I32),                    // throttle_time_ms
        all(I16),                        // error_code
        all(StructArray(&LISTED_GROUP)), // groups
    ],
);
static LISTED_GROUP: Shape = shape(
    "ListedGroup",
    &[
        all(Str),     // group_id
        all(Str),     // protocol_type
        from(4, Str), // group_state
        from(5, Str), // group_type
    ],
);

pub(crate) static DESCRIBE_GROUPS: Shape = shape(
    "DescribeGroupsResponse",
    &[
        from(1, I32),                       // throttle_time_ms
        all(StructArray(&DESCRIBED_GROUP)), // groups
    ],
);
static DESCRIBED_GROUP: Shape = shape(
    "DescribedGroup",
    &[
        all(I16),                                  // error_code
        from(6, Str),                              // error_message
        all(Str),                                  // group_id
        all(Str),                                  // group_state
        all(Str),                                  // protocol_type
        all(Str),                                  // protocol_data
        all(StructArray(&DESCRIBED_GROUP_MEMBER)), // members
        from(3, I32),                              // authorized_operations
    ],
);
static DESCRIBED_GROUP_MEMBER: Shape = shape(
    "DescribedGroupMember",
    &[
        all(Str),     // member_id
        from(4, Str), // group_instance_id
        all(Str),     // client_id
        all(Str),     // client_host
        all(Bytes),   // member_metadata
        all(Bytes),   // member_assignment
    ],
);

pub(crate) static OFFSET_FETCH: Shape = shape(
    "OffsetFetchResponse",
    &[
        from(3, I32),                                    // throttle_time_ms
        between(1, 7, StructArray(&OFFSET_FETCH_TOPIC)), // topics
        between(2, 7, I16),                              // error_code
        from(8, StructArray(&OFFSET_FETCH_GROUP)),       // groups
    ],
);
static OFFSET_FETCH_TOPIC: Shape = shape(
    "OffsetFetchResponseTopic",
    &[all(Str), all(StructArray(&OFFSET_FETCH_PARTITION))], // name, partitions
);
static OFFSET_FETCH_PARTITION: Shape = shape(
    "OffsetFetchResponsePartition",
    &[
        all(I32),     // partition_index
        all(I64),     // committed_offset
        from(5, I32), // committed_leader_epoch
        all(Str),     // metadata
        all(I16),     // error_code
    ],
);
static OFFSET_FETCH_GROUP: Shape = shape(
    "OffsetFetchResponseGroup",
    &[
        all(Str),                               // group_id
        all(StructArray(&OFFSET_FETCH_TOPICS)), // topics
        all(I16),                               // error_code
    ],
);
static OFFSET_FETCH_TOPICS: Shape = shape(
    "OffsetFetchResponseTopics",
    &[
        until(9, Str),                              // name
        from(10, UUID),                             // topic_id
        all(StructArray(&OFFSET_FETCH_PARTITIONS)), // partitions
    ],
);
static OFFSET_FETCH_PARTITIONS: Shape = shape(
    "OffsetFetchResponsePartitions",
    &[all(I32), all(I64), all(I32), all(Str), all(I16)], // index, offset, epoch, metadata, error
);

pub(crate) static OFFSET_COMMIT: Shape = shape(
    "OffsetCommitResponse",
    &[
        from(3, I32),                           // throttle_time_ms
        all(StructArray(&OFFSET_COMMIT_TOPIC)), // topics
    ],
);
static OFFSET_COMMIT_TOPIC: Shape = shape(
    "OffsetCommitResponseTopic",
    &[
        until(9, Str),                              // name
        from(10, UUID),                             // topic_id
        all(StructArray(&OFFSET_COMMIT_PARTITION)), // partitions
    ],
);
static OFFSET_COMMIT_PARTITION: Shape = shape(
    "OffsetCommitResponsePartition",
    &[all(I32), all(I16)], // partition_index, error_code
);

pub(crate) static DELETE_GROUPS: Shape = shape(
    "DeleteGroupsResponse",
    &[
        all(I32),                                // throttle_time_ms
        all(StructArray(&DELETE_GROUPS_RESULT)), // results
    ],
);
static DELETE_GROUPS_RESULT: Shape = shape("DeletableGroupResult", &[all(Str), all(I16)]);

pub(crate) static FIND_COORDINATOR: Shape = shape(
    "FindCoordinatorResponse",
    &[
        from(1, I32),                       // throttle_time_ms
        until(3, I16),                      // error_code
        between(1, 3, Str),                 // error_message
        until(3, I32),                      // node_id
        until(3, Str),                      // host
        until(3, I32),                      // port
        from(4, StructArray(&COORDINATOR)), // coordinators
    ],
);
static COORDINATOR: Shape = shape(
    "Coordinator",
    &[
        all(Str), // key
        all(I32), // node_id
        all(Str), // host
        all(I32), // port
        all(I16), // error_code
        all(Str), // error_message
    ],
);

pub(crate) static LIST_OFFSETS: Shape = shape(
    "ListOffsetsResponse",
    &[
        from(2, I32),                          // throttle_time_ms
        all(StructArray(&LIST_OFFSETS_TOPIC)), // topics
    ],
);
static LIST_OFFSETS_TOPIC: Shape = shape(
    "ListOffsetsTopicResponse",
    &[all(Str), all(StructArray(&LIST_OFFSETS_PARTITION))], // name, partitions
);
static LIST_OFFSETS_PARTITION: Shape = shape(
    "ListOffsetsPartitionResponse",
    &[
        all(I32),     // partition_index
        all(I16),     // error_code
        all(I64),     // timestamp
        all(I64),     // offset
        from(4, I32), // leader_epoch
    ],
);

pub(crate) static DESCRIBE_CLUSTER: Shape = shape(
    "DescribeClusterResponse",
    &[
        all(I32),                                   // throttle_time_ms
        all(I16),                                   // error_code
        all(Str),                                   // error_message
        from(1, I8),                                // endpoint_type
        all(Str),                                   // cluster_id
        all(I32),                                   // controller_id
        all(StructArray(&DESCRIBE_CLUSTER_BROKER)), // brokers
        all(I32),                                   // cluster_authorized_operations
    ],
);
static DESCRIBE_CLUSTER_BROKER: Shape = shape(
    "DescribeClusterBroker",
    &[
        all(I32),      // broker_id
        all(Str),      // host
        all(I32),      // port
        all(Str),      // rack
        from(2, BOOL), // is_fenced
    ],
);

pub(crate) static PRODUCE: Shape = Shape {
    name: "ProduceResponse",
    fields: &[
        all(StructArray(&PRODUCE_TOPIC)), // responses
        all(I32),                         // throttle_time_ms
    ],
    tagged: &[tagged(0, 10, StructArray(&NODE_ENDPOINT))], // node_endpoints
};
static PRODUCE_TOPIC: Shape = shape(
    "TopicProduceResponse",
    &[
        until(12, Str),                       // name
        from(13, UUID),                       // topic_id
        all(StructArray(&PRODUCE_PARTITION)), // partition_responses
    ],
);
static PRODUCE_PARTITION: Shape = Shape {
    name: "PartitionProduceResponse",
    fields: &[
        all(I32),                                    // index
        all(I16),                                    // error_code
        all(I64),                                    // base_offset
        all(I64),                                    // log_append_time_ms
        from(5, I64),                                // log_start_offset
        from(8, StructArray(&PRODUCE_RECORD_ERROR)), // record_errors
        from(8, Str),                                // error_message
    ],
    tagged: &[tagged(0, 10, Struct(&LEADER_ID_AND_EPOCH))], // current_leader
};
static PRODUCE_RECORD_ERROR: Shape = shape(
    "BatchIndexAndErrorMessage",
    &[all(I32), all(Str)], // batch_index, batch_index_error_message
);
static LEADER_ID_AND_EPOCH: Shape = shape("LeaderIdAndEpoch", &[all(I32), all(I32)]);
static NODE_ENDPOINT: Shape = shape(
    "NodeEndpoint",
    &[all(I32), all(Str), all(I32), all(Str)], // node_id, host, port, rack
);

pub(crate) static FETCH: Shape = Shape {
    name: "FetchResponse",
    fields: &[
        all(I32),                       // throttle_time_ms
        from(7, I16),                   // error_code
        from(7, I32),                   // session_id
        all(StructArray(&FETCH_TOPIC)), // responses
    ],
    tagged: &[tagged(0, 16, StructArray(&NODE_ENDPOINT))], // node_endpoints
};
static FETCH_TOPIC: Shape = shape(
    "FetchableTopicResponse",
    &[
        until(12, Str),                     // topic
        from(13, UUID),                     // topic_id
        all(StructArray(&FETCH_PARTITION)), // partitions
    ],
);
static FETCH_PARTITION: Shape = Shape {
    name: "PartitionData",
    fields: &[
        all(I32),                         // partition_index
        all(I16),                         // error_code
        all(I64),                         // high_watermark
        all(I64),                         // last_stable_offset
        from(5, I64),                     // log_start_offset
        all(StructArray(&FETCH_ABORTED)), // aborted_transactions
        from(11, I32),                    // preferred_read_replica
        all(Bytes),                       // records
    ],
    tagged: &[
        tagged(0, 12, Struct(&FETCH_EPOCH_END)), // diverging_epoch
        tagged(1, 12, Struct(&LEADER_ID_AND_EPOCH)), // current_leader
        tagged(2, 12, Struct(&FETCH_SNAPSHOT_ID)), // snapshot_id
    ],
};
static FETCH_ABORTED: Shape = shape("AbortedTransaction", &[all(I64), all(I64)]);
static FETCH_EPOCH_END: Shape = shape("EpochEndOffset", &[all(I32), all(I64)]);
static FETCH_SNAPSHOT_ID: Shape = shape("SnapshotId", &[all(I64), all(I32)]);

pub(crate) static DESCRIBE_USER_SCRAM_CREDENTIALS: Shape = shape(
    "DescribeUserScramCredentialsResponse",
    &[
        all(I32),                                // throttle_time_ms
        all(I16),                                // error_code
        all(Str),                                // error_message
        all(StructArray(&DESCRIBED_SCRAM_USER)), // results
    ],
);
static DESCRIBED_SCRAM_USER: Shape = shape(
    "DescribeUserScramCredentialsResult",
    &[
        all(Str),                                 // user
        all(I16),                                 // error_code
        all(Str),                                 // error_message
        all(StructArray(&SCRAM_CREDENTIAL_INFO)), // credential_infos
    ],
);
static SCRAM_CREDENTIAL_INFO: Shape = shape("CredentialInfo", &[all(I8), all(I32)]); // mechanism, iterations

pub(crate) static ALTER_USER_SCRAM_CREDENTIALS: Shape = shape(
    "AlterUserScramCredentialsResponse",
    &[
        all(I32),                              // throttle_time_ms
        all(StructArray(&ALTERED_SCRAM_USER)), // results
    ],
);
static ALTERED_SCRAM_USER: Shape = shape(
    "AlterUserScramCredentialsResult",
    &[all(Str), all(I16), all(Str)], // user, error_code, error_message
);

pub(crate) static SASL_HANDSHAKE: Shape = shape(
    "SaslHandshakeResponse",
    &[all(I16), all(STRS)], // error_code, mechanisms
);

pub(crate) static SASL_AUTHENTICATE: Shape = shape(
    "SaslAuthenticateResponse",
    &[
        all(I16),     // error_code
        all(Str),     // error_message
        all(Bytes),   // auth_bytes
        from(1, I64), // session_lifetime_ms
    ],
);

pub(crate) static DESCRIBE_ACLS: Shape = shape(
    "DescribeAclsResponse",
    &[
        all(I32),                                  // throttle_time_ms
        all(I16),                                  // error_code
        all(Str),                                  // error_message
        all(StructArray(&DESCRIBE_ACLS_RESOURCE)), // resources
    ],
);
static DESCRIBE_ACLS_RESOURCE: Shape = shape(
    "DescribeAclsResource",
    &[
        all(I8),                            // resource_type
        all(Str),                           // resource_name
        from(1, I8),                        // pattern_type
        all(StructArray(&ACL_DESCRIPTION)), // acls
    ],
);
static ACL_DESCRIPTION: Shape = shape(
    "AclDescription",
    &[all(Str), all(Str), all(I8), all(I8)], // principal, host, operation, permission_type
);

pub(crate) static CREATE_ACLS: Shape = shape(
    "CreateAclsResponse",
    &[
        all(I32),                               // throttle_time_ms
        all(StructArray(&ACL_CREATION_RESULT)), // results
    ],
);
static ACL_CREATION_RESULT: Shape = shape(
    "AclCreationResult",
    &[all(I16), all(Str)], // error_code, error_message
);

pub(crate) static DELETE_ACLS: Shape = shape(
    "DeleteAclsResponse",
    &[
        all(I32),                                     // throttle_time_ms
        all(StructArray(&DELETE_ACLS_FILTER_RESULT)), // filter_results
    ],
);
static DELETE_ACLS_FILTER_RESULT: Shape = shape(
    "DeleteAclsFilterResult",
    &[
        all(I16),                                    // error_code
        all(Str),                                    // error_message
        all(StructArray(&DELETE_ACLS_MATCHING_ACL)), // matching_acls
    ],
);
static DELETE_ACLS_MATCHING_ACL: Shape = shape(
    "DeleteAclsMatchingAcl",
    &[
        all(I16),    // error_code
        all(Str),    // error_message
        all(I8),     // resource_type
        all(Str),    // resource_name
        from(1, I8), // pattern_type
        all(Str),    // principal
        all(Str),    // host
        all(I8),     // operation
        all(I8),     // permission_type
    ],
);

pub(crate) static DESCRIBE_CLIENT_QUOTAS: Shape = shape(
    "DescribeClientQuotasResponse",
    &[
        all(I32),                                 // throttle_time_ms
        all(I16),                                 // error_code
        all(Str),                                 // error_message
        all(StructArray(&DESCRIBED_QUOTA_ENTRY)), // entries (nullable)
    ],
);
static DESCRIBED_QUOTA_ENTRY: Shape = shape(
    "EntryData",
    &[
        all(StructArray(&QUOTA_ENTITY)),          // entity
        all(StructArray(&DESCRIBED_QUOTA_VALUE)), // values
    ],
);
static QUOTA_ENTITY: Shape = shape("EntityData", &[all(Str), all(Str)]); // entity_type, entity_name
static DESCRIBED_QUOTA_VALUE: Shape = shape("ValueData", &[all(Str), all(F64)]); // key, value

pub(crate) static ALTER_CLIENT_QUOTAS: Shape = shape(
    "AlterClientQuotasResponse",
    &[
        all(I32),                               // throttle_time_ms
        all(StructArray(&ALTERED_QUOTA_ENTRY)), // entries
    ],
);
static ALTERED_QUOTA_ENTRY: Shape = shape(
    "EntryData",
    &[
        all(I16),                        // error_code
        all(Str),                        // error_message
        all(StructArray(&QUOTA_ENTITY)), // entity
    ],
);
