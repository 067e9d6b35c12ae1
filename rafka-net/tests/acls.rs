//! CreateAcls, DescribeAcls and DeleteAcls end to end on a real broker
//! core, at their lowest and highest versions, and the authorizer they
//! feed: Kafka's codes for every refusal, every filter pattern type, and
//! enforcement (produce, Metadata) from ACLs kept across a restart. The
//! test sessions are `User:ANONYMOUS` from 127.0.0.1; the test broker is
//! node 3.

use bytes::Bytes;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse, MetadataRequest, MetadataResponse, ProduceResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::config::BrokerConfig;
use rafka_net::handlers::HandlerError;
use rafka_net::Response;
use rafka_testkit::broker::raw_request;
use rafka_testkit::proto::{produce_answers, produce_request};
use rafka_testkit::records::value_batch;
use rafka_testkit::{Broker, TestBroker};

const NONE: i16 = 0;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const INVALID_REQUEST: i16 = 42;
const SECURITY_DISABLED: i16 = 54;

// Kafka's ResourceType, PatternType, AclOperation, AclPermissionType.
const ANY: i8 = 1;
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const MATCH: i8 = 2;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALL: i8 = 2;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

const ANONYMOUS: &str = "User:ANONYMOUS";
const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// `(resource type, name, pattern type, principal, host, operation,
/// permission)`, as the wire carries an ACL.
type Acl = (i8, &'static str, i8, &'static str, &'static str, i8, i8);

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn authorizer_on(super_user: bool) -> impl FnOnce(&mut BrokerConfig) {
    move |c: &mut BrokerConfig| {
        c.authorizer_class_name = Some(STANDARD_AUTHORIZER.to_string());
        if super_user {
            c.super_users = vec![ANONYMOUS.to_string()];
        }
    }
}

async fn create(broker: &Broker, version: i16, acls: &[Acl]) -> Vec<i16> {
    let creations = acls
        .iter()
        .map(|(kind, name, pattern, principal, host, op, permission)| {
            AclCreation::default()
                .with_resource_type(*kind)
                .with_resource_name(s(name))
                .with_resource_pattern_type(*pattern)
                .with_principal(s(principal))
                .with_host(s(host))
                .with_operation(*op)
                .with_permission_type(*permission)
        })
        .collect();
    let request = CreateAclsRequest::default().with_creations(creations);
    let response: CreateAclsResponse = broker.call(version, &request).await;
    response.results.iter().map(|r| r.error_code).collect()
}

/// `(type, name, pattern, principal, host, operation, permission)` with
/// `None` for a null name / principal / host filter.
type Filter = (
    i8,
    Option<&'static str>,
    i8,
    Option<&'static str>,
    Option<&'static str>,
    i8,
    i8,
);

const EVERYTHING: Filter = (ANY, None, ANY, None, None, ANY, ANY);

async fn describe(broker: &Broker, version: i16, filter: Filter) -> (i16, Vec<Acl>) {
    let (kind, name, pattern, principal, host, op, permission) = filter;
    let request = DescribeAclsRequest::default()
        .with_resource_type_filter(kind)
        .with_resource_name_filter(name.map(s))
        .with_pattern_type_filter(pattern)
        .with_principal_filter(principal.map(s))
        .with_host_filter(host.map(s))
        .with_operation(op)
        .with_permission_type(permission);
    let response: DescribeAclsResponse = broker.call(version, &request).await;
    let mut acls = Vec::new();
    for resource in &response.resources {
        for acl in &resource.acls {
            acls.push((
                resource.resource_type,
                leak(&resource.resource_name),
                resource.pattern_type,
                leak(&acl.principal),
                leak(&acl.host),
                acl.operation,
                acl.permission_type,
            ));
        }
    }
    (response.error_code, acls)
}

/// Described names as `'static` to compare with the [`Acl`] literals.
fn leak(text: &StrBytes) -> &'static str {
    Box::leak(text.to_string().into_boxed_str())
}

async fn delete(broker: &Broker, version: i16, filters: &[Filter]) -> Vec<(i16, Vec<Acl>)> {
    let filters = filters
        .iter()
        .map(|(kind, name, pattern, principal, host, op, permission)| {
            DeleteAclsFilter::default()
                .with_resource_type_filter(*kind)
                .with_resource_name_filter(name.map(s))
                .with_pattern_type_filter(*pattern)
                .with_principal_filter(principal.map(s))
                .with_host_filter(host.map(s))
                .with_operation(*op)
                .with_permission_type(*permission)
        })
        .collect();
    let request = DeleteAclsRequest::default().with_filters(filters);
    let response: DeleteAclsResponse = broker.call(version, &request).await;
    response
        .filter_results
        .iter()
        .map(|result| {
            let acls = result
                .matching_acls
                .iter()
                .map(|m| {
                    assert_eq!(m.error_code, NONE);
                    (
                        m.resource_type,
                        leak(&m.resource_name),
                        m.pattern_type,
                        leak(&m.principal),
                        leak(&m.host),
                        m.operation,
                        m.permission_type,
                    )
                })
                .collect();
            (result.error_code, acls)
        })
        .collect()
}

async fn produce(broker: &Broker, topic: &str) -> i16 {
    let request = produce_request(-1, vec![(topic, vec![(0, Some(value_batch("v")))])]);
    let response: ProduceResponse = broker.call(9, &request).await;
    produce_answers(&response)[0].1.error_code
}

/// Every topic a Metadata v12 for all topics lists.
async fn listed_topics(broker: &Broker) -> Vec<String> {
    let request = MetadataRequest::default().with_topics(None);
    let response: MetadataResponse = broker.call(12, &request).await;
    let mut names: Vec<String> = response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect();
    names.sort();
    names
}

#[test]
fn acl_apis_answer_security_disabled_without_an_authorizer() {
    TestBroker::builder().run(|broker| async move {
        for version in [1, 3] {
            let acl = (TOPIC, "t", LITERAL, "User:a", "*", READ, ALLOW);
            assert_eq!(
                create(&broker, version, &[acl, acl]).await,
                [SECURITY_DISABLED; 2]
            );
            assert_eq!(
                describe(&broker, version, EVERYTHING).await,
                (SECURITY_DISABLED, vec![])
            );
            let deleted = delete(&broker, version, &[EVERYTHING]).await;
            assert_eq!(deleted, [(SECURITY_DISABLED, vec![])]);
        }
        // Without an authorizer everything is allowed, as today.
        broker.create_topic_id("free", 1, &[]).await;
        assert_eq!(produce(&broker, "free").await, NONE);
    });
}

#[test]
fn create_describe_and_delete_with_every_filter_pattern() {
    TestBroker::builder()
        .config(authorizer_on(true))
        .run(|broker| async move {
            let literal = (TOPIC, "orders", LITERAL, "User:alice", "*", READ, ALLOW);
            let prefixed = (TOPIC, "ord", PREFIXED, "User:bob", "10.0.0.1", WRITE, DENY);
            let wildcard = (TOPIC, "*", LITERAL, "User:*", "*", ALL, ALLOW);
            let group = (GROUP, "g", LITERAL, "User:alice", "*", READ, ALLOW);
            let cluster = (
                CLUSTER,
                "kafka-cluster",
                LITERAL,
                "User:ops",
                "*",
                ALL,
                ALLOW,
            );
            let codes = create(&broker, 1, &[literal, prefixed, wildcard]).await;
            assert_eq!(codes, [NONE, NONE, NONE]);
            // An invalid creation fails alone; the others go ahead; a
            // repeated ACL succeeds without a second copy.
            let invalid: [Acl; 6] = [
                (TOPIC, "", LITERAL, "User:a", "*", READ, ALLOW),
                (TOPIC, "t", ANY, "User:a", "*", READ, ALLOW),
                (TOPIC, "t", MATCH, "User:a", "*", READ, ALLOW),
                (ANY, "t", LITERAL, "User:a", "*", READ, ALLOW),
                (CLUSTER, "other", LITERAL, "User:a", "*", ALL, ALLOW),
                (TOPIC, "t", LITERAL, "alice", "*", READ, ALLOW),
            ];
            let mut batch = invalid.to_vec();
            batch.extend([group, cluster, literal]);
            let codes = create(&broker, 3, &batch).await;
            assert_eq!(codes, [42, 42, 42, 42, 42, 42, NONE, NONE, NONE]);
            let (code, all) = describe(&broker, 3, EVERYTHING).await;
            assert_eq!(code, NONE);
            // Grouped by (type, name, pattern type).
            assert_eq!(all, [wildcard, prefixed, literal, group, cluster]);

            let by = |name, pattern| (TOPIC, Some(name), pattern, None, None, ANY, ANY);
            assert_eq!(
                describe(&broker, 1, by("orders", LITERAL)).await,
                (NONE, vec![literal])
            );
            assert_eq!(
                describe(&broker, 1, by("ord", PREFIXED)).await,
                (NONE, vec![prefixed])
            );
            assert_eq!(
                describe(&broker, 2, by("orders", ANY)).await,
                (NONE, vec![literal])
            );
            assert_eq!(
                describe(&broker, 2, by("orders", MATCH)).await,
                (NONE, vec![wildcard, prefixed, literal])
            );
            assert_eq!(
                describe(&broker, 3, by("other", MATCH)).await,
                (NONE, vec![wildcard])
            );
            let alice = (ANY, None, ANY, Some("User:alice"), None, ANY, ANY);
            assert_eq!(
                describe(&broker, 3, alice).await,
                (NONE, vec![literal, group])
            );
            let denies = (ANY, None, ANY, None, None, ANY, DENY);
            assert_eq!(describe(&broker, 3, denies).await, (NONE, vec![prefixed]));
            for bad in [
                (0, None, ANY, None, None, ANY, ANY),
                (ANY, None, 0, None, None, ANY, ANY),
                (ANY, None, ANY, None, None, 0, ANY),
                (ANY, None, ANY, None, None, ANY, 9),
            ] {
                assert_eq!(describe(&broker, 3, bad).await, (INVALID_REQUEST, vec![]));
            }

            // Two filters matching one ACL delete it once, listed under
            // both; a bad filter fails alone.
            let results = delete(
                &broker,
                3,
                &[
                    by("orders", MATCH),
                    (TOPIC, None, PREFIXED, None, None, ANY, ANY),
                    (ANY, None, 0, None, None, ANY, ANY),
                ],
            )
            .await;
            assert_eq!(
                results,
                [
                    (NONE, vec![wildcard, prefixed, literal]),
                    (NONE, vec![prefixed]),
                    (INVALID_REQUEST, vec![]),
                ]
            );
            assert_eq!(
                describe(&broker, 1, EVERYTHING).await,
                (NONE, vec![group, cluster])
            );
            let results = delete(&broker, 1, &[EVERYTHING, by("orders", ANY)]).await;
            assert_eq!(results, [(NONE, vec![group, cluster]), (NONE, vec![])]);
            assert_eq!(describe(&broker, 1, EVERYTHING).await, (NONE, vec![]));
        });
}

/// With the authorizer on, ACLs decide, and they survive a restart: the
/// first run (as a super user) creates topics and ACLs, the second (no
/// super user) is held to them.
#[test]
fn acls_are_enforced_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let open = (TOPIC, "open", PREFIXED, ANONYMOUS, "*", WRITE, ALLOW);
    let closed_allow = (TOPIC, "closed", LITERAL, "User:*", "*", ALL, ALLOW);
    let closed_deny = (TOPIC, "closed", LITERAL, ANONYMOUS, "*", WRITE, DENY);
    let elsewhere = (TOPIC, "open-1", LITERAL, ANONYMOUS, "10.9.9.9", WRITE, DENY);
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer_on(true))
        .run(move |broker| async move {
            for topic in ["open-1", "closed", "bare"] {
                broker.create_topic_id(topic, 1, &[]).await;
            }
            // A super user is allowed whatever the ACLs say.
            let acls = [open, closed_allow, closed_deny, elsewhere];
            assert_eq!(create(&broker, 3, &acls).await, [NONE; 4]);
            assert_eq!(produce(&broker, "closed").await, NONE);
            assert_eq!(produce(&broker, "bare").await, NONE);
        });
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer_on(false))
        .run(move |broker| async move {
            let described = describe(&broker, 3, EVERYTHING).await;
            assert_eq!(described, (CLUSTER_AUTHORIZATION_FAILED, vec![]));
            // A prefixed ALLOW for this principal, and a DENY for another
            // host that does not apply.
            assert_eq!(produce(&broker, "open-1").await, NONE);
            // DENY beats the wildcard-principal ALLOW.
            assert_eq!(produce(&broker, "closed").await, TOPIC_AUTHORIZATION_FAILED);
            // No ACL at all on the topic: denied (allow.everyone.if.no.acl.found=false).
            assert_eq!(produce(&broker, "bare").await, TOPIC_AUTHORIZATION_FAILED);
            // Metadata lists what may be described: WRITE and ALL imply it.
            assert_eq!(listed_topics(&broker).await, ["closed", "open-1"]);
            // No ALTER on the cluster: CreateAcls and DeleteAcls refused.
            let acl = (TOPIC, "bare", LITERAL, ANONYMOUS, "*", ALL, ALLOW);
            assert_eq!(
                create(&broker, 3, &[acl]).await,
                [CLUSTER_AUTHORIZATION_FAILED]
            );
            let results = delete(&broker, 3, &[EVERYTHING]).await;
            assert_eq!(results, [(CLUSTER_AUTHORIZATION_FAILED, vec![])]);
        });
}

/// With no ACLs at all, the authorizer denies everything but a super user.
#[test]
fn no_acls_deny_produce_and_hide_topics() {
    let dir = tempfile::tempdir().expect("temp dir");
    TestBroker::builder()
        .data_dir(dir.path())
        .run(|broker| async move {
            broker.create_topic_id("orders", 1, &[]).await;
        });
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer_on(false))
        .run(|broker| async move {
            assert_eq!(produce(&broker, "orders").await, TOPIC_AUTHORIZATION_FAILED);
            assert_eq!(listed_topics(&broker).await, Vec::<String>::new());
            let named = broker.metadata_of(&["orders"]).await;
            assert_eq!(named.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
        });
}

#[test]
fn an_allow_for_anonymous_lets_it_produce() {
    let dir = tempfile::tempdir().expect("temp dir");
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer_on(true))
        .run(|broker| async move {
            broker.create_topic_id("orders", 1, &[]).await;
            broker.create_topic_id("local", 1, &[]).await;
            let acl = (TOPIC, "orders", LITERAL, ANONYMOUS, "*", WRITE, ALLOW);
            // The test sessions come from 127.0.0.1.
            let local = (
                TOPIC,
                "local",
                LITERAL,
                ANONYMOUS,
                "127.0.0.1",
                WRITE,
                ALLOW,
            );
            assert_eq!(create(&broker, 1, &[acl, local]).await, [NONE, NONE]);
        });
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer_on(false))
        .run(|broker| async move {
            assert_eq!(produce(&broker, "orders").await, NONE);
            assert_eq!(produce(&broker, "local").await, NONE);
            assert_eq!(listed_topics(&broker).await, ["local", "orders"]);
        });
}

/// Hostile bodies (a huge array count, a cut-off filter, a string longer
/// than the body) close the connection with a decode error, with or
/// without an authorizer; nothing is allocated from their counts.
#[test]
fn undecodable_acl_requests_close_the_connection() {
    TestBroker::builder()
        .config(authorizer_on(true))
        .run(|broker| async move {
            let bodies: [(ApiKey, i16, &'static [u8]); 6] = [
                (ApiKey::CreateAcls, 1, &[0x7f, 0xff, 0xff, 0xff]),
                (ApiKey::CreateAcls, 3, &[0xff, 0xff, 0xff, 0xff, 0x07]),
                (ApiKey::DeleteAcls, 1, &[0x7f, 0xff, 0xff, 0xff]),
                (ApiKey::DeleteAcls, 2, &[0x02, 0x02]),
                (ApiKey::DescribeAcls, 1, &[0x02, 0x7f, 0xff]),
                (ApiKey::DescribeAcls, 3, &[0x02, 0x00]),
            ];
            for (api_key, version, body) in bodies {
                let request = raw_request(api_key, version, Bytes::from_static(body));
                let response = broker.serve(request).await;
                assert!(
                    matches!(response, Response::Close(HandlerError::Decode(_))),
                    "{api_key:?} v{version}: {response:?}"
                );
            }
        });
}

/// Transactions are authorized as in Kafka: DESCRIBE on a transactional id
/// to find its coordinator, WRITE to use it (InitProducerId, Produce with
/// it, AddPartitionsToTxn, EndTxn), WRITE on each topic it adds.
#[test]
fn transactional_ids_need_their_acls() {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, FindCoordinatorRequest,
        FindCoordinatorResponse, InitProducerIdRequest, InitProducerIdResponse, TransactionalId,
    };
    const TRANSACTIONAL_ID: i8 = 5;
    const DESCRIBE: i8 = 8;
    const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    const OPERATION_NOT_ATTEMPTED: i16 = 55;
    let dir = tempfile::tempdir().expect("temp dir");
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer_on(true))
        .run(|broker| async move {
            broker.create_topic_id("open", 1, &[]).await;
            broker.create_topic_id("secret", 1, &[]).await;
            let acls = [
                (
                    TRANSACTIONAL_ID,
                    "app-",
                    PREFIXED,
                    ANONYMOUS,
                    "*",
                    WRITE,
                    ALLOW,
                ),
                (
                    TRANSACTIONAL_ID,
                    "peek",
                    LITERAL,
                    ANONYMOUS,
                    "*",
                    DESCRIBE,
                    ALLOW,
                ),
                (TOPIC, "open", LITERAL, ANONYMOUS, "*", WRITE, ALLOW),
            ];
            assert_eq!(create(&broker, 3, &acls).await, [NONE; 3]);
        });
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer_on(false))
        .run(|broker| async move {
            let find = |id: &str| {
                FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_coordinator_keys(vec![s(id)])
            };
            // WRITE implies DESCRIBE; DESCRIBE alone finds but cannot use.
            for (id, code) in [
                ("app-1", NONE),
                ("peek", NONE),
                ("other", TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            ] {
                let r: FindCoordinatorResponse = broker.call(4, &find(id)).await;
                assert_eq!(r.coordinators[0].error_code, code, "{id}");
            }
            let init = |id: &str| {
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s(id))))
                    .with_transaction_timeout_ms(60_000)
            };
            let denied: InitProducerIdResponse = broker.call(4, &init("peek")).await;
            assert_eq!(denied.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
            let allowed: InitProducerIdResponse = broker.call(4, &init("app-1")).await;
            assert_eq!(allowed.error_code, NONE);
            let add = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("app-1")))
                .with_v3_and_below_producer_id(allowed.producer_id)
                .with_v3_and_below_producer_epoch(allowed.producer_epoch)
                .with_v3_and_below_topics(
                    ["open", "secret"]
                        .iter()
                        .map(|t| {
                            AddPartitionsToTxnTopic::default()
                                .with_name(kafka_protocol::messages::TopicName(s(t)))
                                .with_partitions(vec![0])
                        })
                        .collect(),
                );
            let r: AddPartitionsToTxnResponse = broker.call(3, &add).await;
            let codes: Vec<i16> = r
                .results_by_topic_v3_and_below
                .iter()
                .map(|t| t.results_by_partition[0].partition_error_code)
                .collect();
            assert_eq!(codes, [OPERATION_NOT_ATTEMPTED, TOPIC_AUTHORIZATION_FAILED]);
            // Produce under a transactional id the principal may not write.
            let request = produce_request(-1, vec![("open", vec![(0, Some(value_batch("v")))])])
                .with_transactional_id(Some(TransactionalId(s("peek"))));
            let response: ProduceResponse = broker.call(9, &request).await;
            let (_, answer) = produce_answers(&response).remove(0);
            assert_eq!(answer.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        });
}
