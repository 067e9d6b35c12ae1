//! Wire shapes of the requests rafka serves, for the pre-decode check in
//! `shape.rs`: each field's kind and the versions it is present in, in wire
//! order, as in Kafka's `clients/src/main/resources/common/message/*Request.json`
//! (and the kafka-protocol code generated from them). Compact encodings and
//! tagged-field sections follow from the API's first flexible version, which
//! the API table derives from kafka-protocol, so they are not repeated here.
//!
//! A unit test in `api.rs` generates random valid bodies from these shapes
//! for every served version and checks kafka-protocol decodes exactly those
//! bytes and re-encodes them identically, so a transcription slip fails it.
//!
//! The transaction APIs' shapes live in `schemas/txn.rs`.

mod txn;

pub(crate) use txn::{
    ADD_OFFSETS_TO_TXN, ADD_PARTITIONS_TO_TXN, DESCRIBE_TRANSACTIONS, END_TXN, LIST_TRANSACTIONS,
    TXN_OFFSET_COMMIT, WRITE_TXN_MARKERS,
};

use super::shape::build::{
    all, between, from, shape, until, BOOL, F64, I16, I32, I32S, I64, I8, STRS, UUID,
};
use super::shape::Kind::{Bytes, NullableStruct, Str, Struct, StructArray};
use super::shape::{Shape, Tagged};

pub(crate) static PRODUCE: Shape = shape(
    "ProduceRequest",
    &[
        all(Str),                         // transactional_id
        all(I16),                         // acks
        all(I32),                         // timeout_ms
        all(StructArray(&PRODUCE_TOPIC)), // topic_data
    ],
);
static PRODUCE_TOPIC: Shape = shape(
    "TopicProduceData",
    &[
        until(12, Str),                       // name
        from(13, UUID),                       // topic_id
        all(StructArray(&PRODUCE_PARTITION)), // partition_data
    ],
);
static PRODUCE_PARTITION: Shape = shape(
    "PartitionProduceData",
    &[
        all(I32),   // index
        all(Bytes), // records
    ],
);

pub(crate) static FETCH: Shape = Shape {
    name: "FetchRequest",
    fields: &[
        until(14, I32),                         // replica_id
        all(I32),                               // max_wait_ms
        all(I32),                               // min_bytes
        all(I32),                               // max_bytes
        all(I8),                                // isolation_level
        from(7, I32),                           // session_id
        from(7, I32),                           // session_epoch
        all(StructArray(&FETCH_TOPIC)),         // topics
        from(7, StructArray(&FETCH_FORGOTTEN)), // forgotten_topics_data
        from(11, Str),                          // rack_id
    ],
    tagged: &[
        Tagged {
            tag: 0, // cluster_id
            min: 0,
            kind: Str,
        },
        Tagged {
            tag: 1, // replica_state
            min: 15,
            kind: Struct(&FETCH_REPLICA_STATE),
        },
    ],
};
static FETCH_TOPIC: Shape = shape(
    "FetchTopic",
    &[
        until(12, Str),                     // topic
        from(13, UUID),                     // topic_id
        all(StructArray(&FETCH_PARTITION)), // partitions
    ],
);
static FETCH_PARTITION: Shape = Shape {
    name: "FetchPartition",
    fields: &[
        all(I32),      // partition
        from(9, I32),  // current_leader_epoch
        all(I64),      // fetch_offset
        from(12, I32), // last_fetched_epoch
        from(5, I64),  // log_start_offset
        all(I32),      // partition_max_bytes
    ],
    tagged: &[
        Tagged {
            tag: 0, // replica_directory_id
            min: 17,
            kind: UUID,
        },
        Tagged {
            tag: 1, // high_watermark
            min: 18,
            kind: I64,
        },
    ],
};
static FETCH_FORGOTTEN: Shape = shape(
    "ForgottenTopic",
    &[
        between(7, 12, Str), // topic
        from(13, UUID),      // topic_id
        from(7, I32S),       // partitions
    ],
);
static FETCH_REPLICA_STATE: Shape = shape(
    "ReplicaState",
    &[
        from(15, I32), // replica_id
        from(15, I64), // replica_epoch
    ],
);

pub(crate) static LIST_OFFSETS: Shape = shape(
    "ListOffsetsRequest",
    &[
        all(I32),                              // replica_id
        from(2, I8),                           // isolation_level
        all(StructArray(&LIST_OFFSETS_TOPIC)), // topics
        from(10, I32),                         // timeout_ms
    ],
);
static LIST_OFFSETS_TOPIC: Shape = shape(
    "ListOffsetsTopic",
    &[
        all(Str),                                  // name
        all(StructArray(&LIST_OFFSETS_PARTITION)), // partitions
    ],
);
static LIST_OFFSETS_PARTITION: Shape = shape(
    "ListOffsetsPartition",
    &[
        all(I32),     // partition_index
        from(4, I32), // current_leader_epoch
        all(I64),     // timestamp
    ],
);

pub(crate) static METADATA: Shape = shape(
    "MetadataRequest",
    &[
        all(StructArray(&METADATA_TOPIC)), // topics
        from(4, BOOL),                     // allow_auto_topic_creation
        between(8, 10, BOOL),              // include_cluster_authorized_operations
        from(8, BOOL),                     // include_topic_authorized_operations
    ],
);
static METADATA_TOPIC: Shape = shape(
    "MetadataRequestTopic",
    &[
        from(10, UUID), // topic_id
        all(Str),       // name
    ],
);

pub(crate) static OFFSET_COMMIT: Shape = shape(
    "OffsetCommitRequest",
    &[
        all(Str),                               // group_id
        all(I32),                               // generation_id_or_member_epoch
        all(Str),                               // member_id
        from(7, Str),                           // group_instance_id
        until(4, I64),                          // retention_time_ms
        all(StructArray(&OFFSET_COMMIT_TOPIC)), // topics
    ],
);
static OFFSET_COMMIT_TOPIC: Shape = shape(
    "OffsetCommitRequestTopic",
    &[
        all(Str),                                   // name
        all(StructArray(&OFFSET_COMMIT_PARTITION)), // partitions
    ],
);
static OFFSET_COMMIT_PARTITION: Shape = shape(
    "OffsetCommitRequestPartition",
    &[
        all(I32),     // partition_index
        all(I64),     // committed_offset
        from(6, I32), // committed_leader_epoch
        all(Str),     // committed_metadata
    ],
);

pub(crate) static OFFSET_FETCH: Shape = shape(
    "OffsetFetchRequest",
    &[
        until(7, Str),                              // group_id
        until(7, StructArray(&OFFSET_FETCH_TOPIC)), // topics
        from(8, StructArray(&OFFSET_FETCH_GROUP)),  // groups
        from(7, BOOL),                              // require_stable
    ],
);
static OFFSET_FETCH_TOPIC: Shape = shape(
    "OffsetFetchRequestTopic",
    &[
        until(7, Str),  // name
        until(7, I32S), // partition_indexes
    ],
);
static OFFSET_FETCH_GROUP: Shape = shape(
    "OffsetFetchRequestGroup",
    &[
        from(8, Str),                               // group_id
        from(9, Str),                               // member_id
        from(9, I32),                               // member_epoch
        from(8, StructArray(&OFFSET_FETCH_TOPICS)), // topics
    ],
);
static OFFSET_FETCH_TOPICS: Shape = shape(
    "OffsetFetchRequestTopics",
    &[
        from(8, Str),  // name
        from(8, I32S), // partition_indexes
    ],
);

pub(crate) static FIND_COORDINATOR: Shape = shape(
    "FindCoordinatorRequest",
    &[
        until(3, Str), // key
        from(1, I8),   // key_type
        from(4, STRS), // coordinator_keys
    ],
);

pub(crate) static JOIN_GROUP: Shape = shape(
    "JoinGroupRequest",
    &[
        all(Str),                               // group_id
        all(I32),                               // session_timeout_ms
        from(1, I32),                           // rebalance_timeout_ms
        all(Str),                               // member_id
        from(5, Str),                           // group_instance_id
        all(Str),                               // protocol_type
        all(StructArray(&JOIN_GROUP_PROTOCOL)), // protocols
        from(8, Str),                           // reason
    ],
);
static JOIN_GROUP_PROTOCOL: Shape = shape(
    "JoinGroupRequestProtocol",
    &[
        all(Str),   // name
        all(Bytes), // metadata
    ],
);

pub(crate) static HEARTBEAT: Shape = shape(
    "HeartbeatRequest",
    &[
        all(Str),     // group_id
        all(I32),     // generation_id
        all(Str),     // member_id
        from(3, Str), // group_instance_id
    ],
);

pub(crate) static LEAVE_GROUP: Shape = shape(
    "LeaveGroupRequest",
    &[
        all(Str),                                  // group_id
        until(2, Str),                             // member_id
        from(3, StructArray(&LEAVE_GROUP_MEMBER)), // members
    ],
);
static LEAVE_GROUP_MEMBER: Shape = shape(
    "MemberIdentity",
    &[
        from(3, Str), // member_id
        from(3, Str), // group_instance_id
        from(5, Str), // reason
    ],
);

pub(crate) static SYNC_GROUP: Shape = shape(
    "SyncGroupRequest",
    &[
        all(Str),                                 // group_id
        all(I32),                                 // generation_id
        all(Str),                                 // member_id
        from(3, Str),                             // group_instance_id
        from(5, Str),                             // protocol_type
        from(5, Str),                             // protocol_name
        all(StructArray(&SYNC_GROUP_ASSIGNMENT)), // assignments
    ],
);
static SYNC_GROUP_ASSIGNMENT: Shape = shape(
    "SyncGroupRequestAssignment",
    &[
        all(Str),   // member_id
        all(Bytes), // assignment
    ],
);

pub(crate) static DESCRIBE_GROUPS: Shape = shape(
    "DescribeGroupsRequest",
    &[
        all(STRS),     // groups
        from(3, BOOL), // include_authorized_operations
    ],
);

pub(crate) static LIST_GROUPS: Shape = shape(
    "ListGroupsRequest",
    &[
        from(4, STRS), // states_filter
        from(5, STRS), // types_filter
    ],
);

pub(crate) static API_VERSIONS: Shape = shape(
    "ApiVersionsRequest",
    &[
        from(3, Str), // client_software_name
        from(3, Str), // client_software_version
    ],
);

pub(crate) static CREATE_TOPICS: Shape = shape(
    "CreateTopicsRequest",
    &[
        all(StructArray(&CREATE_TOPICS_TOPIC)), // topics
        all(I32),                               // timeout_ms
        all(BOOL),                              // validate_only
    ],
);
static CREATE_TOPICS_TOPIC: Shape = shape(
    "CreatableTopic",
    &[
        all(Str),                                    // name
        all(I32),                                    // num_partitions
        all(I16),                                    // replication_factor
        all(StructArray(&CREATE_TOPICS_ASSIGNMENT)), // assignments
        all(StructArray(&CREATE_TOPICS_CONFIG)),     // configs
    ],
);
static CREATE_TOPICS_ASSIGNMENT: Shape = shape(
    "CreatableReplicaAssignment",
    &[
        all(I32),  // partition_index
        all(I32S), // broker_ids
    ],
);
static CREATE_TOPICS_CONFIG: Shape = shape(
    "CreatableTopicConfig",
    &[
        all(Str), // name
        all(Str), // value
    ],
);

pub(crate) static DELETE_TOPICS: Shape = shape(
    "DeleteTopicsRequest",
    &[
        from(6, StructArray(&DELETE_TOPICS_STATE)), // topics
        until(5, STRS),                             // topic_names
        all(I32),                                   // timeout_ms
    ],
);
static DELETE_TOPICS_STATE: Shape = shape(
    "DeleteTopicState",
    &[
        from(6, Str),  // name
        from(6, UUID), // topic_id
    ],
);

pub(crate) static INIT_PRODUCER_ID: Shape = shape(
    "InitProducerIdRequest",
    &[
        all(Str),     // transactional_id
        all(I32),     // transaction_timeout_ms
        from(3, I64), // producer_id
        from(3, I16), // producer_epoch
    ],
);

pub(crate) static DESCRIBE_CLUSTER: Shape = shape(
    "DescribeClusterRequest",
    &[
        all(BOOL),     // include_cluster_authorized_operations
        from(1, I8),   // endpoint_type
        from(2, BOOL), // include_fenced_brokers
    ],
);

pub(crate) static CREATE_PARTITIONS: Shape = shape(
    "CreatePartitionsRequest",
    &[
        all(StructArray(&CREATE_PARTITIONS_TOPIC)), // topics
        all(I32),                                   // timeout_ms
        all(BOOL),                                  // validate_only
    ],
);
static CREATE_PARTITIONS_TOPIC: Shape = shape(
    "CreatePartitionsTopic",
    &[
        all(Str),                                        // name
        all(I32),                                        // count
        all(StructArray(&CREATE_PARTITIONS_ASSIGNMENT)), // assignments (nullable)
    ],
);
static CREATE_PARTITIONS_ASSIGNMENT: Shape = shape(
    "CreatePartitionsAssignment",
    &[
        all(I32S), // broker_ids
    ],
);

pub(crate) static DELETE_RECORDS: Shape = shape(
    "DeleteRecordsRequest",
    &[
        all(StructArray(&DELETE_RECORDS_TOPIC)), // topics
        all(I32),                                // timeout_ms
    ],
);
static DELETE_RECORDS_TOPIC: Shape = shape(
    "DeleteRecordsTopic",
    &[
        all(Str),                                    // name
        all(StructArray(&DELETE_RECORDS_PARTITION)), // partitions
    ],
);
static DELETE_RECORDS_PARTITION: Shape = shape(
    "DeleteRecordsPartition",
    &[
        all(I32), // partition_index
        all(I64), // offset
    ],
);

pub(crate) static OFFSET_DELETE: Shape = shape(
    "OffsetDeleteRequest",
    &[
        all(Str),                               // group_id
        all(StructArray(&OFFSET_DELETE_TOPIC)), // topics
    ],
);
static OFFSET_DELETE_TOPIC: Shape = shape(
    "OffsetDeleteRequestTopic",
    &[
        all(Str),                                   // name
        all(StructArray(&OFFSET_DELETE_PARTITION)), // partitions
    ],
);
static OFFSET_DELETE_PARTITION: Shape = shape(
    "OffsetDeleteRequestPartition",
    &[
        all(I32), // partition_index
    ],
);

pub(crate) static DELETE_GROUPS: Shape = shape(
    "DeleteGroupsRequest",
    &[
        all(STRS), // groups_names
    ],
);

/// DescribeAcls' one filter and each DeleteAcls filter: the same fields.
pub(crate) static DESCRIBE_ACLS: Shape = shape("DescribeAclsRequest", ACL_FILTER_FIELDS);
const ACL_FILTER_FIELDS: &[super::shape::Field] = &[
    all(I8),  // resource_type_filter
    all(Str), // resource_name_filter (nullable)
    all(I8),  // pattern_type_filter
    all(Str), // principal_filter (nullable)
    all(Str), // host_filter (nullable)
    all(I8),  // operation
    all(I8),  // permission_type
];

pub(crate) static CREATE_ACLS: Shape = shape(
    "CreateAclsRequest",
    &[
        all(StructArray(&CREATE_ACLS_CREATION)), // creations
    ],
);
static CREATE_ACLS_CREATION: Shape = shape(
    "AclCreation",
    &[
        all(I8),  // resource_type
        all(Str), // resource_name
        all(I8),  // resource_pattern_type
        all(Str), // principal
        all(Str), // host
        all(I8),  // operation
        all(I8),  // permission_type
    ],
);

pub(crate) static DELETE_ACLS: Shape = shape(
    "DeleteAclsRequest",
    &[
        all(StructArray(&DELETE_ACLS_FILTER)), // filters
    ],
);
static DELETE_ACLS_FILTER: Shape = shape("DeleteAclsFilter", ACL_FILTER_FIELDS);

pub(crate) static DESCRIBE_CONFIGS: Shape = shape(
    "DescribeConfigsRequest",
    &[
        all(StructArray(&DESCRIBE_CONFIGS_RESOURCE)), // resources
        from(1, BOOL),                                // include_synonyms
        from(3, BOOL),                                // include_documentation
    ],
);
static DESCRIBE_CONFIGS_RESOURCE: Shape = shape(
    "DescribeConfigsResource",
    &[
        all(I8),   // resource_type
        all(Str),  // resource_name
        all(STRS), // configuration_keys (nullable)
    ],
);

pub(crate) static ALTER_CONFIGS: Shape = shape(
    "AlterConfigsRequest",
    &[
        all(StructArray(&ALTER_CONFIGS_RESOURCE)), // resources
        all(BOOL),                                 // validate_only
    ],
);
static ALTER_CONFIGS_RESOURCE: Shape = shape(
    "AlterConfigsResource",
    &[
        all(I8),                                 // resource_type
        all(Str),                                // resource_name
        all(StructArray(&ALTER_CONFIGS_CONFIG)), // configs
    ],
);
static ALTER_CONFIGS_CONFIG: Shape = shape(
    "AlterableConfig",
    &[
        all(Str), // name
        all(Str), // value (nullable)
    ],
);

pub(crate) static INCREMENTAL_ALTER_CONFIGS: Shape = shape(
    "IncrementalAlterConfigsRequest",
    &[
        all(StructArray(&INCREMENTAL_ALTER_CONFIGS_RESOURCE)), // resources
        all(BOOL),                                             // validate_only
    ],
);
static INCREMENTAL_ALTER_CONFIGS_RESOURCE: Shape = shape(
    "AlterConfigsResource",
    &[
        all(I8),                                             // resource_type
        all(Str),                                            // resource_name
        all(StructArray(&INCREMENTAL_ALTER_CONFIGS_CONFIG)), // configs
    ],
);
static INCREMENTAL_ALTER_CONFIGS_CONFIG: Shape = shape(
    "AlterableConfig",
    &[
        all(Str), // name
        all(I8),  // config_operation
        all(Str), // value (nullable)
    ],
);

pub(crate) static OFFSET_FOR_LEADER_EPOCH: Shape = shape(
    "OffsetForLeaderEpochRequest",
    &[
        from(3, I32),                                     // replica_id
        all(StructArray(&OFFSET_FOR_LEADER_EPOCH_TOPIC)), // topics
    ],
);
static OFFSET_FOR_LEADER_EPOCH_TOPIC: Shape = shape(
    "OffsetForLeaderTopic",
    &[
        all(Str),                                             // topic
        all(StructArray(&OFFSET_FOR_LEADER_EPOCH_PARTITION)), // partitions
    ],
);
static OFFSET_FOR_LEADER_EPOCH_PARTITION: Shape = shape(
    "OffsetForLeaderPartition",
    &[
        all(I32), // partition
        all(I32), // current_leader_epoch (v2+, the first version decoded)
        all(I32), // leader_epoch
    ],
);

pub(crate) static DESCRIBE_LOG_DIRS: Shape = shape(
    "DescribeLogDirsRequest",
    &[
        all(StructArray(&DESCRIBE_LOG_DIRS_TOPIC)), // topics (nullable)
    ],
);
static DESCRIBE_LOG_DIRS_TOPIC: Shape = shape(
    "DescribableLogDirTopic",
    &[
        all(Str),  // topic
        all(I32S), // partitions
    ],
);

pub(crate) static ELECT_LEADERS: Shape = shape(
    "ElectLeadersRequest",
    &[
        from(1, I8),                            // election_type
        all(StructArray(&ELECT_LEADERS_TOPIC)), // topic_partitions (nullable)
        all(I32),                               // timeout_ms
    ],
);
static ELECT_LEADERS_TOPIC: Shape = shape(
    "TopicPartitions",
    &[
        all(Str),  // topic
        all(I32S), // partitions
    ],
);

pub(crate) static ALTER_PARTITION_REASSIGNMENTS: Shape = shape(
    "AlterPartitionReassignmentsRequest",
    &[
        all(I32),                                               // timeout_ms
        from(1, BOOL),                                          // allow_replication_factor_change
        all(StructArray(&ALTER_PARTITION_REASSIGNMENTS_TOPIC)), // topics
    ],
);
static ALTER_PARTITION_REASSIGNMENTS_TOPIC: Shape = shape(
    "ReassignableTopic",
    &[
        all(Str),                                                   // name
        all(StructArray(&ALTER_PARTITION_REASSIGNMENTS_PARTITION)), // partitions
    ],
);
static ALTER_PARTITION_REASSIGNMENTS_PARTITION: Shape = shape(
    "ReassignablePartition",
    &[
        all(I32),  // partition_index
        all(I32S), // replicas (nullable: null cancels)
    ],
);

pub(crate) static LIST_PARTITION_REASSIGNMENTS: Shape = shape(
    "ListPartitionReassignmentsRequest",
    &[
        all(I32),                                              // timeout_ms
        all(StructArray(&LIST_PARTITION_REASSIGNMENTS_TOPIC)), // topics (nullable)
    ],
);
static LIST_PARTITION_REASSIGNMENTS_TOPIC: Shape = shape(
    "ListPartitionReassignmentsTopics",
    &[
        all(Str),  // name
        all(I32S), // partition_indexes
    ],
);

pub(crate) static DESCRIBE_PRODUCERS: Shape = shape(
    "DescribeProducersRequest",
    &[
        all(StructArray(&DESCRIBE_PRODUCERS_TOPIC)), // topics
    ],
);
static DESCRIBE_PRODUCERS_TOPIC: Shape = shape(
    "TopicRequest",
    &[
        all(Str),  // name
        all(I32S), // partition_indexes
    ],
);

pub(crate) static DESCRIBE_TOPIC_PARTITIONS: Shape = shape(
    "DescribeTopicPartitionsRequest",
    &[
        all(StructArray(&DESCRIBE_TOPIC_PARTITIONS_TOPIC)), // topics
        all(I32),                                           // response_partition_limit
        all(NullableStruct(&DESCRIBE_TOPIC_PARTITIONS_CURSOR)), // cursor
    ],
);
static DESCRIBE_TOPIC_PARTITIONS_TOPIC: Shape = shape(
    "TopicRequest",
    &[
        all(Str), // name
    ],
);
static DESCRIBE_TOPIC_PARTITIONS_CURSOR: Shape = shape(
    "Cursor",
    &[
        all(Str), // topic_name
        all(I32), // partition_index
    ],
);

pub(crate) static DESCRIBE_QUORUM: Shape = shape(
    "DescribeQuorumRequest",
    &[
        all(StructArray(&DESCRIBE_QUORUM_TOPIC)), // topics
    ],
);
static DESCRIBE_QUORUM_TOPIC: Shape = shape(
    "TopicData",
    &[
        all(Str),                                     // topic_name
        all(StructArray(&DESCRIBE_QUORUM_PARTITION)), // partitions
    ],
);
static DESCRIBE_QUORUM_PARTITION: Shape = shape(
    "PartitionData",
    &[
        all(I32), // partition_index
    ],
);

/// `users` is nullable: null (or empty) describes every user.
pub(crate) static DESCRIBE_USER_SCRAM_CREDENTIALS: Shape = shape(
    "DescribeUserScramCredentialsRequest",
    &[
        all(StructArray(&SCRAM_USER_NAME)), // users (nullable)
    ],
);
static SCRAM_USER_NAME: Shape = shape(
    "UserName",
    &[
        all(Str), // name
    ],
);

pub(crate) static ALTER_USER_SCRAM_CREDENTIALS: Shape = shape(
    "AlterUserScramCredentialsRequest",
    &[
        all(StructArray(&SCRAM_CREDENTIAL_DELETION)), // deletions
        all(StructArray(&SCRAM_CREDENTIAL_UPSERTION)), // upsertions
    ],
);
static SCRAM_CREDENTIAL_DELETION: Shape = shape(
    "ScramCredentialDeletion",
    &[
        all(Str), // name
        all(I8),  // mechanism
    ],
);
static SCRAM_CREDENTIAL_UPSERTION: Shape = shape(
    "ScramCredentialUpsertion",
    &[
        all(Str),   // name
        all(I8),    // mechanism
        all(I32),   // iterations
        all(Bytes), // salt
        all(Bytes), // salted_password
    ],
);

pub(crate) static SASL_HANDSHAKE: Shape = shape(
    "SaslHandshakeRequest",
    &[
        all(Str), // mechanism
    ],
);

pub(crate) static SASL_AUTHENTICATE: Shape = shape(
    "SaslAuthenticateRequest",
    &[
        all(Bytes), // auth_bytes
    ],
);

pub(crate) static DESCRIBE_CLIENT_QUOTAS: Shape = shape(
    "DescribeClientQuotasRequest",
    &[
        all(StructArray(&QUOTA_FILTER_COMPONENT)), // components
        all(BOOL),                                 // strict
    ],
);
/// `match` is nullable (the default entity, or no name for "specified").
static QUOTA_FILTER_COMPONENT: Shape = shape(
    "ComponentData",
    &[
        all(Str), // entity_type
        all(I8),  // match_type
        all(Str), // match
    ],
);

pub(crate) static ALTER_CLIENT_QUOTAS: Shape = shape(
    "AlterClientQuotasRequest",
    &[
        all(StructArray(&QUOTA_ALTERATION_ENTRY)), // entries
        all(BOOL),                                 // validate_only
    ],
);
static QUOTA_ALTERATION_ENTRY: Shape = shape(
    "EntryData",
    &[
        all(StructArray(&QUOTA_ENTITY)), // entity
        all(StructArray(&QUOTA_OP)),     // ops
    ],
);
/// `entity_name` is nullable: null names the default entity.
static QUOTA_ENTITY: Shape = shape(
    "EntityData",
    &[
        all(Str), // entity_type
        all(Str), // entity_name
    ],
);
static QUOTA_OP: Shape = shape(
    "OpData",
    &[
        all(Str),  // key
        all(F64),  // value
        all(BOOL), // remove
    ],
);
