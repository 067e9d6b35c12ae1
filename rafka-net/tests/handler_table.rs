//! The handler table: what ApiVersions advertises is exactly what dispatch
//! serves, at the ranges each handler was written for. (The table tests
//! moved here from rafka-proto with the table itself.)

use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use rafka_core::config::BrokerConfig;
use rafka_net::handlers::{broker_table, HandlerError, SERVED_APIS};
use rafka_net::Response;
use rafka_testkit::broker::raw_request;
use rafka_testkit::TestBroker;

#[test]
fn default_table_serves_the_brief_ranges() {
    let table = broker_table();
    let ranges: Vec<(ApiKey, i16, i16, Option<i16>)> = table
        .entries()
        .map(|e| {
            let flexible = e.flexible_version_min();
            (e.api_key(), e.min_version(), e.max_version(), flexible)
        })
        .collect();
    assert_eq!(
        ranges,
        vec![
            (ApiKey::Produce, 3, 13, Some(9)),
            (ApiKey::Fetch, 4, 18, Some(12)),
            (ApiKey::ListOffsets, 1, 10, Some(6)),
            (ApiKey::Metadata, 0, 13, Some(9)),
            (ApiKey::OffsetCommit, 2, 9, Some(8)),
            (ApiKey::OffsetFetch, 1, 9, Some(6)),
            (ApiKey::FindCoordinator, 0, 6, Some(3)),
            (ApiKey::JoinGroup, 0, 9, Some(6)),
            (ApiKey::Heartbeat, 0, 4, Some(4)),
            (ApiKey::LeaveGroup, 0, 5, Some(4)),
            (ApiKey::SyncGroup, 0, 5, Some(4)),
            (ApiKey::DescribeGroups, 0, 6, Some(5)),
            (ApiKey::ListGroups, 0, 5, Some(3)),
            (ApiKey::SaslHandshake, 0, 1, None),
            (ApiKey::ApiVersions, 0, 4, Some(3)),
            (ApiKey::CreateTopics, 2, 7, Some(5)),
            (ApiKey::DeleteTopics, 1, 6, Some(4)),
            (ApiKey::DeleteRecords, 0, 2, Some(2)),
            (ApiKey::InitProducerId, 0, 5, Some(2)),
            (ApiKey::OffsetForLeaderEpoch, 2, 4, Some(4)),
            (ApiKey::AddPartitionsToTxn, 0, 5, Some(3)),
            (ApiKey::AddOffsetsToTxn, 0, 4, Some(3)),
            (ApiKey::EndTxn, 0, 4, Some(3)),
            (ApiKey::WriteTxnMarkers, 1, 1, Some(1)),
            (ApiKey::TxnOffsetCommit, 0, 4, Some(3)),
            (ApiKey::DescribeAcls, 1, 3, Some(2)),
            (ApiKey::CreateAcls, 1, 3, Some(2)),
            (ApiKey::DeleteAcls, 1, 3, Some(2)),
            (ApiKey::DescribeConfigs, 1, 4, Some(4)),
            (ApiKey::AlterConfigs, 0, 2, Some(2)),
            (ApiKey::DescribeLogDirs, 1, 4, Some(2)),
            (ApiKey::SaslAuthenticate, 0, 2, Some(2)),
            (ApiKey::CreatePartitions, 0, 3, Some(2)),
            (ApiKey::DeleteGroups, 0, 2, Some(2)),
            (ApiKey::ElectLeaders, 0, 2, Some(2)),
            (ApiKey::IncrementalAlterConfigs, 0, 1, Some(1)),
            (ApiKey::AlterPartitionReassignments, 0, 1, Some(0)),
            (ApiKey::ListPartitionReassignments, 0, 0, Some(0)),
            (ApiKey::OffsetDelete, 0, 0, None),
            (ApiKey::DescribeClientQuotas, 0, 1, Some(1)),
            (ApiKey::AlterClientQuotas, 0, 1, Some(1)),
            (ApiKey::DescribeUserScramCredentials, 0, 0, Some(0)),
            (ApiKey::AlterUserScramCredentials, 0, 0, Some(0)),
            (ApiKey::DescribeQuorum, 0, 2, Some(0)),
            (ApiKey::DescribeCluster, 0, 2, Some(0)),
            (ApiKey::DescribeProducers, 0, 0, Some(0)),
            (ApiKey::DescribeTransactions, 0, 0, Some(0)),
            (ApiKey::ListTransactions, 0, 2, Some(0)),
            (ApiKey::DescribeTopicPartitions, 0, 0, Some(0)),
        ]
    );
}

#[test]
fn api_versions_response_lists_the_table() {
    let table = broker_table();
    let response = table.api_versions_response(3);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.throttle_time_ms, 0);
    assert_eq!(response.api_keys.len(), SERVED_APIS.len());
    let produce = &response.api_keys[0];
    // Produce v0 is advertised for old librdkafka, but only v3+ is served.
    assert_eq!(
        (produce.api_key, produce.min_version, produce.max_version),
        (0, 0, 13)
    );
    assert!(table.lookup(0, 2).is_err());
    assert!(table.lookup(0, 3).is_ok());
    assert!(response.supported_features.is_empty());
    assert!(response.finalized_features.is_empty());
}

#[test]
fn api_versions_v3_response_decodes_back_to_the_table() {
    let table = broker_table();
    let mut response = table.encode_api_versions_response(1, 3).unwrap();
    // ApiVersions answers with response header v0 at every version.
    assert_eq!(&response[..4], &[0, 0, 0, 1]);
    let mut body = response.split_off(4);
    let decoded = ApiVersionsResponse::decode(&mut body, 3).unwrap();
    assert!(body.is_empty());
    assert_eq!(decoded.error_code, 0);
    assert_eq!(decoded.throttle_time_ms, 0);
    let ranges: Vec<(i16, i16, i16)> = decoded
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    assert_eq!(ranges.len(), 49);
    assert_eq!(ranges[0], (0, 0, 13)); // Produce: v0 advertised, v3+ served
    assert_eq!(ranges[1], (1, 4, 18)); // Fetch
    assert!(ranges.contains(&(18, 0, 4))); // ApiVersions
    assert!(ranges.contains(&(8, 2, 9))); // OffsetCommit
    assert!(ranges.contains(&(60, 0, 2))); // DescribeCluster
    assert!(ranges.contains(&(21, 0, 2))); // DeleteRecords
    assert!(ranges.contains(&(37, 0, 3))); // CreatePartitions
    assert!(ranges.contains(&(23, 2, 4))); // OffsetForLeaderEpoch
    assert!(ranges.contains(&(35, 1, 4))); // DescribeLogDirs
    assert!(ranges.contains(&(43, 0, 2))); // ElectLeaders
    assert!(ranges.contains(&(45, 0, 1))); // AlterPartitionReassignments
    assert!(ranges.contains(&(46, 0, 0))); // ListPartitionReassignments
    assert!(ranges.contains(&(61, 0, 0))); // DescribeProducers
    assert!(ranges.contains(&(75, 0, 0))); // DescribeTopicPartitions
    assert!(ranges.contains(&(55, 0, 2))); // DescribeQuorum
    assert!(ranges.contains(&(29, 1, 3))); // DescribeAcls
    assert!(ranges.contains(&(30, 1, 3))); // CreateAcls
    assert!(ranges.contains(&(31, 1, 3))); // DeleteAcls
    assert!(ranges.contains(&(48, 0, 1))); // DescribeClientQuotas
    assert!(ranges.contains(&(49, 0, 1))); // AlterClientQuotas
    assert!(ranges.contains(&(50, 0, 0))); // DescribeUserScramCredentials
    assert!(ranges.contains(&(51, 0, 0))); // AlterUserScramCredentials
    assert!(ranges.contains(&(17, 0, 1))); // SaslHandshake
    assert!(ranges.contains(&(36, 0, 2))); // SaslAuthenticate
    assert!(ranges.contains(&(24, 0, 5))); // AddPartitionsToTxn
    assert!(ranges.contains(&(26, 0, 4))); // EndTxn: v5 is transaction version 2
    assert!(ranges.contains(&(66, 0, 2))); // ListTransactions
}

#[test]
fn api_versions_v0_response_has_the_v0_layout() {
    let table = broker_table();
    let response = table.encode_api_versions_response(5, 0).unwrap();
    // correlation id, error 0, 49 entries of (key, min, max), no throttle.
    assert_eq!(&response[..10], &[0, 0, 0, 5, 0, 0, 0, 0, 0, 49]);
    assert_eq!(&response[10..16], &[0, 0, 0, 0, 0, 13]);
    assert_eq!(response.len(), 4 + 2 + 4 + 49 * 6);
}

/// A request of `api_key` at `version` with every field at its default
/// (or, where the default is refused before any handler work, a value the
/// version can carry).
fn default_request(api_key: ApiKey, version: i16) -> RequestKind {
    match api_key {
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default().with_acks(1)),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        // v1+ asks for a transaction coordinator: no internal topic to make.
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default().with_key_type(i8::from(version >= 1)),
        ),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::ApiVersions if version >= 3 => RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name("test".into())
                .with_client_software_version("1".into()),
        ),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()),
        ApiKey::DescribeCluster => {
            RequestKind::DescribeCluster(DescribeClusterRequest::default().with_endpoint_type(1))
        }
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default())
        }
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(DescribeAclsRequest::default()),
        ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default()),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default()),
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
        }
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default())
        }
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default()),
        ApiKey::DescribeProducers => {
            RequestKind::DescribeProducers(DescribeProducersRequest::default())
        }
        ApiKey::DescribeTopicPartitions => {
            RequestKind::DescribeTopicPartitions(DescribeTopicPartitionsRequest::default())
        }
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        ApiKey::DescribeClientQuotas => {
            RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default())
        }
        ApiKey::AlterClientQuotas => {
            RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default())
        }
        ApiKey::DescribeUserScramCredentials => {
            RequestKind::DescribeUserScramCredentials(DescribeUserScramCredentialsRequest::default())
        }
        ApiKey::AlterUserScramCredentials => {
            RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default())
        }
        ApiKey::AddPartitionsToTxn => {
            RequestKind::AddPartitionsToTxn(AddPartitionsToTxnRequest::default())
        }
        ApiKey::AddOffsetsToTxn => RequestKind::AddOffsetsToTxn(AddOffsetsToTxnRequest::default()),
        ApiKey::EndTxn => RequestKind::EndTxn(EndTxnRequest::default()),
        ApiKey::WriteTxnMarkers => RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default()),
        ApiKey::TxnOffsetCommit => RequestKind::TxnOffsetCommit(TxnOffsetCommitRequest::default()),
        ApiKey::DescribeTransactions => {
            RequestKind::DescribeTransactions(DescribeTransactionsRequest::default())
        }
        ApiKey::ListTransactions => {
            RequestKind::ListTransactions(ListTransactionsRequest::default())
        }
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism("PLAIN".into()),
        ),
        ApiKey::SaslAuthenticate => {
            RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default())
        }
        ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(DescribeQuorumRequest::default()),
        other => panic!("{other:?} is served: give it a default request here"),
    }
}

/// Every API ApiVersions lists reaches a handler at every version it lists
/// from the first served one, and every handler is listed: dispatch never
/// answers NotServed for an advertised API, and what the table advertises
/// is exactly SERVED_APIS.
#[test]
fn every_advertised_api_has_a_handler_and_every_handler_is_advertised() {
    let advertised: Vec<ApiKey> = broker_table().entries().map(|e| e.api_key()).collect();
    let mut handled: Vec<ApiKey> = SERVED_APIS.iter().map(|api| api.api_key).collect();
    handled.sort_by_key(|key| *key as i16);
    assert_eq!(advertised, handled);
    let small_offsets_topic = |c: &mut BrokerConfig| c.offsets_topic_num_partitions = 2;
    let broker = TestBroker::builder().shards(2).config(small_offsets_topic);
    broker.run(|broker| async move {
        for entry in broker_table().entries() {
            for version in entry.min_version()..=entry.max_version() {
                let body = default_request(entry.api_key(), version);
                let mut encoded = bytes::BytesMut::new();
                body.encode(&mut encoded, version).expect("encode");
                let request = raw_request(entry.api_key(), version, encoded.freeze());
                let what = format!("{:?} v{version}", entry.api_key());
                match broker.serve(request).await {
                    Response::Reply(_) | Response::Chunks(_) | Response::NoReply => {}
                    Response::ReplyThenClose(_, error) => panic!("{what}: closes: {error}"),
                    Response::Close(HandlerError::NotServed { .. }) => panic!("{what}: no handler"),
                    Response::Close(error) => panic!("{what}: {error}"),
                }
            }
        }
    });
}
