//! DescribeClientQuotas and AlterClientQuotas (KIP-546) end to end on a
//! real broker core, at v0 and v1: set, describe with every match type and
//! `strict`, remove, `validate_only`, every refusal with Kafka's code and
//! message, authorization, and quotas kept across a restart. Then the
//! `controller_mutation_rate` they set, enforced on CreateTopics,
//! CreatePartitions and DeleteTopics (KIP-599), strict and permissive,
//! on a clock the test moves. The test sessions are `User:ANONYMOUS` from
//! 127.0.0.1 with client id `rafka-testkit`.

use bytes::Bytes;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, CreateAclsRequest,
    CreateAclsResponse, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::config::BrokerConfig;
use rafka_net::handlers::HandlerError;
use rafka_net::Response;
use rafka_testkit::broker::raw_request;
use rafka_testkit::proto::{creatable, topic_name};
use rafka_testkit::{Broker, SharedClock, TestBroker};

const NONE: i16 = 0;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUEST: i16 = 42;

const EXACT: i8 = 0;
const DEFAULT: i8 = 1;
const SPECIFIED: i8 = 2;

const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// An entity as the wire lists it: `(type, name | None for the default)`.
type Entity = Vec<(String, Option<String>)>;
/// One described entry: the entity and its `(key, value)`s.
type Entry = (Entity, Vec<(String, f64)>);
/// `(error code, error message, entries)` of a DescribeClientQuotas.
type Described = (i16, Option<String>, Option<Vec<Entry>>);
/// `(entity, error code, error message)` per AlterClientQuotas entry.
type Altered = Vec<(Entity, i16, Option<String>)>;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn entity(parts: &[(&str, Option<&str>)]) -> Entity {
    parts
        .iter()
        .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
        .collect()
}

fn values(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn set(key: &str, value: f64) -> OpData {
    OpData::default()
        .with_key(s(key))
        .with_value(value)
        .with_remove(false)
}

fn remove(key: &str) -> OpData {
    OpData::default().with_key(s(key)).with_remove(true)
}

fn entry(parts: &[(&str, Option<&str>)], ops: Vec<OpData>) -> EntryData {
    let entity = parts
        .iter()
        .map(|(t, n)| {
            EntityData::default()
                .with_entity_type(s(t))
                .with_entity_name(n.map(s))
        })
        .collect();
    EntryData::default().with_entity(entity).with_ops(ops)
}

async fn alter_v(
    broker: &Broker,
    version: i16,
    entries: Vec<EntryData>,
    validate_only: bool,
) -> Altered {
    let request = AlterClientQuotasRequest::default()
        .with_entries(entries)
        .with_validate_only(validate_only);
    let response: AlterClientQuotasResponse = broker.call(version, &request).await;
    assert_eq!(response.throttle_time_ms, 0);
    response
        .entries
        .iter()
        .map(|e| {
            let entity = e
                .entity
                .iter()
                .map(|d| {
                    let name = d.entity_name.as_ref().map(|n| n.to_string());
                    (d.entity_type.to_string(), name)
                })
                .collect();
            let message = e.error_message.as_ref().map(|m| m.to_string());
            (entity, e.error_code, message)
        })
        .collect()
}

async fn alter(broker: &Broker, entries: Vec<EntryData>) -> Altered {
    alter_v(broker, 1, entries, false).await
}

fn ok(entities: &[Entity]) -> Altered {
    entities.iter().map(|e| (e.clone(), NONE, None)).collect()
}

fn component(entity_type: &str, match_type: i8, name: Option<&str>) -> ComponentData {
    ComponentData::default()
        .with_entity_type(s(entity_type))
        .with_match_type(match_type)
        .with_match(name.map(s))
}

async fn describe_on(
    broker: &Broker,
    shard: usize,
    version: i16,
    components: Vec<ComponentData>,
    strict: bool,
) -> Described {
    let request = DescribeClientQuotasRequest::default()
        .with_components(components)
        .with_strict(strict);
    let response: DescribeClientQuotasResponse = broker.call_on(shard, version, &request).await;
    assert_eq!(response.throttle_time_ms, 0);
    let entries = response.entries.as_ref().map(|entries| {
        entries
            .iter()
            .map(|e| {
                let entity = e
                    .entity
                    .iter()
                    .map(|d| {
                        let name = d.entity_name.as_ref().map(|n| n.to_string());
                        (d.entity_type.to_string(), name)
                    })
                    .collect();
                let values = e
                    .values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                (entity, values)
            })
            .collect()
    });
    let message = response.error_message.as_ref().map(|m| m.to_string());
    (response.error_code, message, entries)
}

async fn describe(broker: &Broker, components: Vec<ComponentData>, strict: bool) -> Described {
    describe_on(broker, broker.serving_shard(), 1, components, strict).await
}

/// A successful describe: Kafka's fresh response data carries the empty
/// string as its error message.
fn found(entries: Vec<Entry>) -> Described {
    (NONE, Some(String::new()), Some(entries))
}

fn refused(code: i16, message: &str) -> Described {
    (code, Some(message.to_string()), None)
}

/// The quotas `set_every_kind_of_entity` writes, in the order the broker
/// lists entities (user, client-id, user+client-id, ip; the default
/// first) with their values in key order (producer, consumer, request,
/// controller mutation, connection creation).
fn every_kind() -> Vec<Entry> {
    vec![
        (
            entity(&[("user", None)]),
            values(&[("consumer_byte_rate", 2048.0)]),
        ),
        (
            entity(&[("user", Some("alice"))]),
            values(&[("producer_byte_rate", 1000.0), ("request_percentage", 25.5)]),
        ),
        (
            entity(&[("client-id", Some("quota-client"))]),
            values(&[("producer_byte_rate", 1048576.0)]),
        ),
        (
            entity(&[("user", None), ("client-id", None)]),
            values(&[("consumer_byte_rate", 100.0)]),
        ),
        (
            entity(&[("user", Some("alice")), ("client-id", Some("app"))]),
            values(&[
                ("producer_byte_rate", 500.0),
                ("controller_mutation_rate", 2.0),
            ]),
        ),
        (
            entity(&[("ip", None)]),
            values(&[("connection_creation_rate", 10.0)]),
        ),
        (
            entity(&[("ip", Some("10.0.0.1"))]),
            values(&[("connection_creation_rate", 5.0)]),
        ),
    ]
}

async fn set_every_kind_of_entity(broker: &Broker, version: i16) {
    let altered = alter_v(
        broker,
        version,
        vec![
            entry(
                &[("client-id", Some("quota-client"))],
                vec![set("producer_byte_rate", 1048576.0)],
            ),
            entry(&[("user", None)], vec![set("consumer_byte_rate", 2048.0)]),
            entry(
                &[("user", Some("alice"))],
                vec![
                    set("request_percentage", 25.5),
                    set("producer_byte_rate", 1000.0),
                ],
            ),
            entry(
                &[("user", Some("alice")), ("client-id", Some("app"))],
                vec![
                    set("producer_byte_rate", 500.0),
                    set("controller_mutation_rate", 2.0),
                ],
            ),
            entry(
                &[("user", None), ("client-id", None)],
                vec![set("consumer_byte_rate", 100.0)],
            ),
            entry(
                &[("ip", Some("10.0.0.1"))],
                vec![set("connection_creation_rate", 5.0)],
            ),
            entry(&[("ip", None)], vec![set("connection_creation_rate", 10.0)]),
        ],
        false,
    )
    .await;
    assert_eq!(
        altered,
        ok(&[
            entity(&[("client-id", Some("quota-client"))]),
            entity(&[("user", None)]),
            entity(&[("user", Some("alice"))]),
            entity(&[("user", Some("alice")), ("client-id", Some("app"))]),
            entity(&[("user", None), ("client-id", None)]),
            entity(&[("ip", Some("10.0.0.1"))]),
            entity(&[("ip", None)]),
        ])
    );
}

/// Set on one shard (AlterClientQuotas v0 and v1), read back on every
/// shard with each match type, strict and not.
#[test]
fn set_and_describe_with_every_match_type() {
    TestBroker::builder().run_matrix(&[1, 2], |broker| async move {
        set_every_kind_of_entity(&broker, 0).await;
        // The same values again at v1: accepted, nothing changes.
        set_every_kind_of_entity(&broker, 1).await;
        for shard in 0..broker.shard_count() {
            for version in [0, 1] {
                let all = describe_on(&broker, shard, version, vec![], false).await;
                assert_eq!(all, found(every_kind()), "shard {shard} v{version}");
            }
        }
        let all = every_kind();
        let pick =
            |indexes: &[usize]| -> Vec<Entry> { indexes.iter().map(|&i| all[i].clone()).collect() };
        let exact_alice = || component("user", EXACT, Some("alice"));
        // Exact: every entity with user alice; strict: only user alice.
        assert_eq!(
            describe(&broker, vec![exact_alice()], false).await,
            found(pick(&[1, 4]))
        );
        assert_eq!(
            describe(&broker, vec![exact_alice()], true).await,
            found(pick(&[1]))
        );
        assert_eq!(
            describe(
                &broker,
                vec![exact_alice(), component("client-id", EXACT, Some("app"))],
                true
            )
            .await,
            found(pick(&[4]))
        );
        assert_eq!(
            describe(
                &broker,
                vec![component("client-id", EXACT, Some("quota-client"))],
                true
            )
            .await,
            found(pick(&[2]))
        );
        // Default: the default user, alone or with the default client id.
        let default_user = || component("user", DEFAULT, None);
        assert_eq!(
            describe(&broker, vec![default_user()], false).await,
            found(pick(&[0, 3]))
        );
        assert_eq!(
            describe(&broker, vec![default_user()], true).await,
            found(pick(&[0]))
        );
        assert_eq!(
            describe(
                &broker,
                vec![default_user(), component("client-id", DEFAULT, None)],
                false
            )
            .await,
            found(pick(&[3]))
        );
        // Specified: any name or the default.
        let any_user = || component("user", SPECIFIED, None);
        assert_eq!(
            describe(&broker, vec![any_user()], false).await,
            found(pick(&[0, 1, 3, 4]))
        );
        assert_eq!(
            describe(&broker, vec![any_user()], true).await,
            found(pick(&[0, 1]))
        );
        assert_eq!(
            describe(
                &broker,
                vec![any_user(), component("client-id", SPECIFIED, None)],
                true
            )
            .await,
            found(pick(&[3, 4]))
        );
        assert_eq!(
            describe(
                &broker,
                vec![component("client-id", SPECIFIED, None)],
                false
            )
            .await,
            found(pick(&[2, 3, 4]))
        );
        assert_eq!(
            describe(&broker, vec![component("ip", SPECIFIED, None)], false).await,
            found(pick(&[5, 6]))
        );
        assert_eq!(
            describe(
                &broker,
                vec![component("ip", EXACT, Some("10.0.0.1"))],
                true
            )
            .await,
            found(pick(&[6]))
        );
        // Strict without components: only an entity with no types, none.
        assert_eq!(describe(&broker, vec![], true).await, found(vec![]));
        // A name nobody has: no entries, no error.
        assert_eq!(
            describe(&broker, vec![component("user", EXACT, Some("bob"))], false).await,
            found(vec![])
        );
    });
}

/// Changing and removing keys; removing an unset or unknown key is a
/// no-op; an entity whose last key goes is gone.
#[test]
fn change_and_remove() {
    TestBroker::builder().run(|broker| async move {
        set_every_kind_of_entity(&broker, 1).await;
        let alice = [("user", Some("alice"))];
        let quota_client = [("client-id", Some("quota-client"))];
        let altered = alter(
            &broker,
            vec![
                entry(
                    &alice,
                    vec![
                        set("producer_byte_rate", 4096.0),
                        remove("request_percentage"),
                        remove("consumer_byte_rate"),
                        remove("no_such_key"),
                    ],
                ),
                entry(&quota_client, vec![remove("producer_byte_rate")]),
            ],
        )
        .await;
        assert_eq!(altered, ok(&[entity(&alice), entity(&quota_client)]));
        assert_eq!(
            describe(&broker, vec![component("user", EXACT, Some("alice"))], true).await,
            found(vec![(
                entity(&alice),
                values(&[("producer_byte_rate", 4096.0)])
            )])
        );
        assert_eq!(
            describe(&broker, vec![component("client-id", SPECIFIED, None)], true).await,
            found(vec![])
        );
        let (_, _, all) = describe(&broker, vec![], false).await;
        assert_eq!(all.map(|entries| entries.len()), Some(6));
    });
}

/// `validate_only` answers as the real thing would and writes nothing.
#[test]
fn validate_only_writes_nothing() {
    TestBroker::builder().run_matrix(&[1, 2], |broker| async move {
        for version in [0, 1] {
            let checked = alter_v(
                &broker,
                version,
                vec![
                    entry(
                        &[("client-id", Some("quota-client"))],
                        vec![set("producer_byte_rate", 1048576.0)],
                    ),
                    entry(
                        &[("user", Some("neg"))],
                        vec![set("consumer_byte_rate", -5.0)],
                    ),
                ],
                true,
            )
            .await;
            assert_eq!(
                checked,
                vec![
                    (entity(&[("client-id", Some("quota-client"))]), NONE, None),
                    (
                        entity(&[("user", Some("neg"))]),
                        INVALID_REQUEST,
                        Some("Quota consumer_byte_rate must be greater than 0".to_string())
                    ),
                ]
            );
            for shard in 0..broker.shard_count() {
                assert_eq!(
                    describe_on(&broker, shard, version, vec![], false).await,
                    found(vec![])
                );
            }
        }
        // A removal validated only leaves the quota in place.
        set_every_kind_of_entity(&broker, 1).await;
        let checked = alter_v(
            &broker,
            1,
            vec![entry(
                &[("ip", None)],
                vec![remove("connection_creation_rate")],
            )],
            true,
        )
        .await;
        assert_eq!(checked, ok(&[entity(&[("ip", None)])]));
        assert_eq!(describe(&broker, vec![], false).await, found(every_kind()));
    });
}

/// Each refusal with Kafka's code and message; the valid entities of the
/// same request still go ahead.
#[test]
fn bad_alterations_have_kafkas_codes_and_messages() {
    TestBroker::builder().run(|broker| async move {
        let altered = alter(
            &broker,
            vec![
                entry(&[("user", Some("good"))], vec![set("producer_byte_rate", 10.0)]),
                entry(&[("user", Some("k"))], vec![set("bogus_rate", 10.0)]),
                entry(&[("user", Some("n"))], vec![set("producer_byte_rate", -1.0)]),
                entry(&[("user", Some("z"))], vec![set("request_percentage", 0.0)]),
                entry(
                    &[("ip", Some("10.0.0.2")), ("user", Some("u"))],
                    vec![set("connection_creation_rate", 1.0)],
                ),
                entry(&[("ip", None)], vec![set("producer_byte_rate", 1.0)]),
                entry(&[("topic", Some("t"))], vec![set("producer_byte_rate", 1.0)]),
                entry(&[], vec![set("producer_byte_rate", 1.0)]),
                entry(&[("user", Some(""))], vec![set("producer_byte_rate", 1.0)]),
                entry(&[("client-id", Some("f"))], vec![set("consumer_byte_rate", 1.5)]),
                entry(
                    &[("user", Some("d"))],
                    vec![set("producer_byte_rate", 1.0), remove("producer_byte_rate")],
                ),
            ],
        )
        .await;
        let invalid = |parts: &[(&str, Option<&str>)], message: &str| {
            (entity(parts), INVALID_REQUEST, Some(message.to_string()))
        };
        assert_eq!(
            altered,
            vec![
                (entity(&[("user", Some("good"))]), NONE, None),
                invalid(&[("user", Some("k"))], "Invalid configuration key bogus_rate"),
                invalid(
                    &[("user", Some("n"))],
                    "Quota producer_byte_rate must be greater than 0"
                ),
                invalid(
                    &[("user", Some("z"))],
                    "Quota request_percentage must be greater than 0"
                ),
                invalid(
                    &[("ip", Some("10.0.0.2")), ("user", Some("u"))],
                    "Invalid quota entity combination, IP entity should not be combined with User or ClientId"
                ),
                invalid(&[("ip", None)], "Invalid configuration key producer_byte_rate"),
                invalid(
                    &[("topic", Some("t"))],
                    "Unhandled client quota entity type: topic"
                ),
                invalid(&[], "Invalid empty client quota entity"),
                invalid(&[("user", Some(""))], "Empty user not supported"),
                invalid(
                    &[("client-id", Some("f"))],
                    "consumer_byte_rate cannot be a fractional value."
                ),
                invalid(
                    &[("user", Some("d"))],
                    "Duplicate quota key producer_byte_rate not updating quota for this entity"
                ),
            ]
        );
        assert_eq!(
            describe(&broker, vec![], false).await,
            found(vec![(
                entity(&[("user", Some("good"))]),
                values(&[("producer_byte_rate", 10.0)])
            )])
        );
    });
}

/// Filters Kafka refuses: the error and message at the top, null entries.
#[test]
fn bad_filters_have_kafkas_codes_and_messages() {
    TestBroker::builder().run(|broker| async move {
        set_every_kind_of_entity(&broker, 1).await;
        let cases: Vec<(Vec<ComponentData>, Described)> = vec![
            (
                vec![component("user", EXACT, None)],
                refused(
                    INVALID_REQUEST,
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                ),
            ),
            (
                vec![component("user", DEFAULT, Some("alice"))],
                refused(
                    INVALID_REQUEST,
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                ),
            ),
            (
                vec![component("client-id", SPECIFIED, Some("x"))],
                refused(
                    INVALID_REQUEST,
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
                ),
            ),
            (
                vec![component("user", 7, None)],
                refused(INVALID_REQUEST, "Unknown match type 7"),
            ),
            (
                vec![component("", SPECIFIED, None)],
                refused(INVALID_REQUEST, "Invalid empty entity type."),
            ),
            (
                vec![
                    component("user", SPECIFIED, None),
                    component("user", EXACT, Some("alice")),
                ],
                refused(
                    INVALID_REQUEST,
                    "Entity type user cannot appear more than once in the filter.",
                ),
            ),
            (
                vec![component("topic", SPECIFIED, None)],
                refused(UNSUPPORTED_VERSION, "Unsupported entity type topic"),
            ),
            (
                vec![
                    component("ip", SPECIFIED, None),
                    component("client-id", DEFAULT, None),
                ],
                refused(
                    INVALID_REQUEST,
                    "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
                ),
            ),
        ];
        for (components, expected) in cases {
            for version in [0, 1] {
                let described = describe_on(&broker, 0, version, components.clone(), false).await;
                assert_eq!(described, expected, "v{version} {components:?}");
            }
        }
    });
}

/// Hostile bodies close the connection with a decode error; nothing is
/// allocated from their counts and the controller never sees them.
#[test]
fn undecodable_quota_requests_close_the_connection() {
    TestBroker::builder().run(|broker| async move {
        let bodies: [(ApiKey, i16, &'static [u8]); 4] = [
            // entries declaring 2^31-1 elements.
            (ApiKey::AlterClientQuotas, 0, &[0x7f, 0xff, 0xff, 0xff, 0]),
            // one entry, one entity component "user", its name cut off.
            (
                ApiKey::AlterClientQuotas,
                1,
                &[0x02, 0x02, 0x05, b'u', b's', b'e', b'r', 0x06, b'a'],
            ),
            // components declaring 2^31-1 elements.
            (
                ApiKey::DescribeClientQuotas,
                0,
                &[0x7f, 0xff, 0xff, 0xff, 0],
            ),
            // no strict flag after an empty component list.
            (ApiKey::DescribeClientQuotas, 1, &[0x01]),
        ];
        for (api_key, version, body) in bodies {
            let request = raw_request(api_key, version, Bytes::from_static(body));
            let response = broker.serve(request).await;
            assert!(
                matches!(response, Response::Close(HandlerError::Decode(_))),
                "{api_key:?} v{version} {body:?}: {response:?}"
            );
        }
        assert_eq!(describe(&broker, vec![], false).await, found(vec![]));
    });
}

fn authorizer(super_user: bool) -> impl FnOnce(&mut BrokerConfig) {
    move |c: &mut BrokerConfig| {
        c.authorizer_class_name = Some(STANDARD_AUTHORIZER.to_string());
        if super_user {
            c.super_users = vec!["User:ANONYMOUS".to_string()];
        }
    }
}

/// Allows `User:ANONYMOUS` DESCRIBE_CONFIGS (10) on the cluster (4),
/// literal (3), allow (3).
async fn allow_describe_configs(broker: &Broker) {
    let creation = AclCreation::default()
        .with_resource_type(4)
        .with_resource_name(s("kafka-cluster"))
        .with_resource_pattern_type(3)
        .with_principal(s("User:ANONYMOUS"))
        .with_host(s("*"))
        .with_operation(10)
        .with_permission_type(3);
    let request = CreateAclsRequest::default().with_creations(vec![creation]);
    let response: CreateAclsResponse = broker.call(3, &request).await;
    assert_eq!(response.results.len(), 1);
    assert_eq!(response.results[0].error_code, NONE);
}

/// With an authorizer, DESCRIBE_CONFIGS / ALTER_CONFIGS on the cluster
/// decide; refused, Kafka's `getErrorResponse` shapes the answer.
#[test]
fn authorization_is_describe_and_alter_configs_on_the_cluster() {
    let dir = tempfile::tempdir().expect("temp dir");
    let denied = "Cluster authorization failed.";
    // No ACLs, no super user: both refused.
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer(false))
        .run(move |broker| async move {
            assert_eq!(
                describe(&broker, vec![], false).await,
                refused(CLUSTER_AUTHORIZATION_FAILED, denied)
            );
            // Every entry as sent, a repeated one too, and nothing written.
            let user_u = [("user", Some("u"))];
            let refused_alter = alter(
                &broker,
                vec![
                    entry(&user_u, vec![set("producer_byte_rate", 1.0)]),
                    entry(&[("ip", None)], vec![]),
                    entry(&user_u, vec![set("consumer_byte_rate", 1.0)]),
                ],
            )
            .await;
            let failed = |parts: &[(&str, Option<&str>)]| {
                let message = Some(denied.to_string());
                (entity(parts), CLUSTER_AUTHORIZATION_FAILED, message)
            };
            assert_eq!(
                refused_alter,
                vec![failed(&user_u), failed(&[("ip", None)]), failed(&user_u)]
            );
        });
    // A super user sets a quota and lets ANONYMOUS describe configs.
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer(true))
        .run(|broker| async move {
            assert_eq!(describe(&broker, vec![], false).await, found(vec![]));
            let altered = alter(
                &broker,
                vec![entry(
                    &[("user", Some("u"))],
                    vec![set("producer_byte_rate", 7.0)],
                )],
            )
            .await;
            assert_eq!(altered, ok(&[entity(&[("user", Some("u"))])]));
            allow_describe_configs(&broker).await;
        });
    // DESCRIBE_CONFIGS does not imply ALTER_CONFIGS.
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer(false))
        .run(move |broker| async move {
            let set_u = found(vec![(
                entity(&[("user", Some("u"))]),
                values(&[("producer_byte_rate", 7.0)]),
            )]);
            assert_eq!(describe(&broker, vec![], false).await, set_u);
            let refused_alter = alter(
                &broker,
                vec![entry(
                    &[("user", Some("u"))],
                    vec![remove("producer_byte_rate")],
                )],
            )
            .await;
            assert_eq!(
                refused_alter,
                vec![(
                    entity(&[("user", Some("u"))]),
                    CLUSTER_AUTHORIZATION_FAILED,
                    Some(denied.to_string())
                )]
            );
            assert_eq!(describe(&broker, vec![], false).await, set_u);
        });
}

/// Acknowledged quotas are in the metadata log: a restart over the same
/// data dir (with another shard count) serves them, removals included.
#[test]
fn quotas_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    TestBroker::builder()
        .data_dir(dir.path())
        .run(|broker| async move {
            set_every_kind_of_entity(&broker, 1).await;
            let gone = alter(
                &broker,
                vec![entry(
                    &[("ip", None)],
                    vec![remove("connection_creation_rate")],
                )],
            )
            .await;
            assert_eq!(gone, ok(&[entity(&[("ip", None)])]));
        });
    let mut expected = every_kind();
    expected.remove(5);
    TestBroker::builder()
        .data_dir(dir.path())
        .shards(2)
        .run(move |broker| async move {
            for shard in 0..broker.shard_count() {
                assert_eq!(
                    describe_on(&broker, shard, 1, vec![], false).await,
                    found(expected.clone())
                );
            }
        });
}

// ---- controller_mutation_rate (KIP-599) ----

const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
const THROTTLED: &str = "The throttling quota has been exceeded.";
/// The testkit's requests carry this client id.
const TESTKIT_CLIENT: &str = "rafka-testkit";
const T0_MS: i64 = 1_700_000_000_000;

/// A broker on a clock the test moves, with `quota.window.num` samples
/// of one second (the token bucket's burst is `samples * rate`).
fn clocked(samples: i32) -> (TestBroker, SharedClock) {
    let clock = SharedClock::new(T0_MS);
    let broker = TestBroker::builder()
        .clock(clock.clone())
        .config(move |c: &mut BrokerConfig| {
            c.quota_window_num = samples;
            c.quota_window_size_seconds = 1;
        });
    (broker, clock)
}

async fn set_mutation_rate(broker: &Broker, entity_parts: &[(&str, Option<&str>)], rate: f64) {
    let altered = alter(
        broker,
        vec![entry(
            entity_parts,
            vec![set("controller_mutation_rate", rate)],
        )],
    )
    .await;
    assert_eq!(altered, ok(&[entity(entity_parts)]));
}

/// `(throttle_time_ms, [(topic, error code, error message)])`.
type Mutated = (i32, Vec<(String, i16, Option<String>)>);

async fn create_topics(broker: &Broker, version: i16, topics: &[(&str, i32)]) -> Mutated {
    let request = CreateTopicsRequest::default()
        .with_topics(topics.iter().map(|(n, p)| creatable(n, *p, &[])).collect())
        .with_timeout_ms(30_000);
    let response: CreateTopicsResponse = broker.call(version, &request).await;
    let results = response
        .topics
        .iter()
        .map(|t| {
            let message = t.error_message.as_ref().map(|m| m.to_string());
            (t.name.to_string(), t.error_code, message)
        })
        .collect();
    (response.throttle_time_ms, results)
}

async fn delete_topics(broker: &Broker, version: i16, names: &[&str]) -> Mutated {
    // v6 names topics in `topics`, older versions in `topic_names`.
    let request = if version >= 6 {
        let topics = names
            .iter()
            .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
            .collect();
        DeleteTopicsRequest::default().with_topics(topics)
    } else {
        DeleteTopicsRequest::default()
            .with_topic_names(names.iter().map(|n| topic_name(n)).collect())
    }
    .with_timeout_ms(30_000);
    let response: DeleteTopicsResponse = broker.call(version, &request).await;
    let results = response
        .responses
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            let message = t.error_message.as_ref().map(|m| m.to_string());
            (name, t.error_code, message)
        })
        .collect();
    (response.throttle_time_ms, results)
}

async fn create_partitions(broker: &Broker, version: i16, topics: &[(&str, i32)]) -> Mutated {
    let request = CreatePartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|(n, count)| {
                    CreatePartitionsTopic::default()
                        .with_name(topic_name(n))
                        .with_count(*count)
                        .with_assignments(None)
                })
                .collect(),
        )
        .with_timeout_ms(30_000);
    let response: CreatePartitionsResponse = broker.call(version, &request).await;
    let results = response
        .results
        .iter()
        .map(|t| {
            let message = t.error_message.as_ref().map(|m| m.to_string());
            (t.name.to_string(), t.error_code, message)
        })
        .collect();
    (response.throttle_time_ms, results)
}

fn done(names: &[&str]) -> Vec<(String, i16, Option<String>)> {
    names.iter().map(|n| (n.to_string(), NONE, None)).collect()
}

fn throttled(name: &str) -> (String, i16, Option<String>) {
    (
        name.to_string(),
        THROTTLING_QUOTA_EXCEEDED,
        Some(THROTTLED.to_string()),
    )
}

/// Partition counts of `names` (0: no such topic).
async fn partition_counts(broker: &Broker, names: &[&str]) -> Vec<i32> {
    let metadata = broker.metadata_of(names).await;
    names
        .iter()
        .map(|name| {
            metadata
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == *name))
                .filter(|t| t.error_code == NONE)
                .map_or(0, |t| t.partitions.len() as i32)
        })
        .collect()
}

/// Strict versions: 2 partitions/s with a 2-sample window (a burst of 4).
/// The first topic empties the bucket and goes through; the others are
/// refused until it refills, and the throttle time says when.
#[test]
fn strict_versions_refuse_mutations_over_the_quota() {
    let (broker, clock) = clocked(2);
    broker.run(move |broker| async move {
        set_mutation_rate(&broker, &[("client-id", Some(TESTKIT_CLIENT))], 2.0).await;
        // 4 - 10 = -6 tokens: 3 s at 2 per second.
        let created = create_topics(&broker, 6, &[("m1", 10), ("m2", 10), ("m3", 10)]).await;
        assert_eq!(
            created,
            (
                3000,
                vec![
                    (String::from("m1"), NONE, None),
                    throttled("m2"),
                    throttled("m3")
                ]
            )
        );
        assert_eq!(
            partition_counts(&broker, &["m1", "m2", "m3"]).await,
            [10, 0, 0]
        );

        // 1 s later: 2 tokens back, 4 short.
        clock.advance_ms(1000);
        assert_eq!(
            create_topics(&broker, 7, &[("m2", 1)]).await,
            (2000, vec![throttled("m2")])
        );
        // Back at zero: one partition goes through (-1 left); a success
        // reports no throttle time.
        clock.advance_ms(2000);
        assert_eq!(
            create_topics(&broker, 7, &[("m2", 1)]).await,
            (0, done(&["m2"]))
        );

        // DeleteTopics v5 and CreatePartitions v3 are strict too.
        assert_eq!(
            delete_topics(&broker, 5, &["m1"]).await,
            (500, vec![throttled("m1")])
        );
        assert_eq!(
            create_partitions(&broker, 3, &[("m2", 4)]).await,
            (500, vec![throttled("m2")])
        );
        assert_eq!(partition_counts(&broker, &["m1", "m2"]).await, [10, 1]);
        clock.advance_ms(500);
        // Deleting m1 takes its 10 partitions: -10 tokens.
        assert_eq!(delete_topics(&broker, 6, &["m1"]).await, (0, done(&["m1"])));
        assert_eq!(
            create_partitions(&broker, 3, &[("m2", 4)]).await,
            (5000, vec![throttled("m2")])
        );
        clock.advance_ms(5000);
        // Three partitions added: -3 tokens.
        assert_eq!(
            create_partitions(&broker, 3, &[("m2", 4)]).await,
            (0, done(&["m2"]))
        );
        assert_eq!(partition_counts(&broker, &["m1", "m2"]).await, [0, 4]);
    });
}

/// Older versions cannot carry THROTTLING_QUOTA_EXCEEDED: every mutation
/// happens and the throttle time says how long the bucket takes to
/// refill to zero.
#[test]
fn older_versions_are_throttled_but_go_ahead() {
    let (broker, _clock) = clocked(2);
    broker.run_matrix(&[1, 2], |broker| async move {
        set_mutation_rate(&broker, &[("client-id", Some(TESTKIT_CLIENT))], 2.0).await;
        // 4 - 30 = -26 tokens: 13 s.
        assert_eq!(
            create_topics(&broker, 5, &[("p1", 10), ("p2", 10), ("p3", 10)]).await,
            (13_000, done(&["p1", "p2", "p3"]))
        );
        assert_eq!(
            partition_counts(&broker, &["p1", "p2", "p3"]).await,
            [10, 10, 10]
        );
        // -26 - 2 = -28: 14 s.
        assert_eq!(
            create_partitions(&broker, 2, &[("p1", 12)]).await,
            (14_000, done(&["p1"]))
        );
        // -28 - 12 - 10 = -50: 25 s.
        assert_eq!(
            delete_topics(&broker, 4, &["p1", "p2"]).await,
            (25_000, done(&["p1", "p2"]))
        );
        assert_eq!(
            partition_counts(&broker, &["p1", "p2", "p3"]).await,
            [0, 0, 10]
        );
    });
}

/// With Kafka's default window (11 samples of 1 s) the burst is 22
/// partitions: 30 in one request all go through (the bucket at -8), and
/// the next strict request waits 4 s. The quota here is the user's (the
/// principal's name); other clients and users are not limited.
#[test]
fn the_default_window_allows_a_burst_and_user_quotas_apply() {
    let (broker, clock) = clocked(11);
    broker.run_matrix(&[1, 2], move |broker| {
        let clock = clock.clone();
        async move {
            // No quota: nothing throttled.
            assert_eq!(
                create_topics(&broker, 7, &[("free1", 10), ("free2", 10), ("free3", 10)]).await,
                (0, done(&["free1", "free2", "free3"]))
            );
            set_mutation_rate(&broker, &[("user", Some("ANONYMOUS"))], 2.0).await;
            assert_eq!(
                create_topics(&broker, 7, &[("b1", 10), ("b2", 10), ("b3", 10)]).await,
                (0, done(&["b1", "b2", "b3"]))
            );
            assert_eq!(
                create_topics(&broker, 7, &[("b4", 1)]).await,
                (4000, vec![throttled("b4")])
            );
            clock.advance_ms(4000);
            assert_eq!(
                create_topics(&broker, 7, &[("b4", 1)]).await,
                (0, done(&["b4"]))
            );
            // Removing the quota lifts it at once.
            let removed = alter(
                &broker,
                vec![entry(
                    &[("user", Some("ANONYMOUS"))],
                    vec![remove("controller_mutation_rate")],
                )],
            )
            .await;
            assert_eq!(removed, ok(&[entity(&[("user", Some("ANONYMOUS"))])]));
            assert_eq!(
                delete_topics(&broker, 6, &["b1", "b2", "b3", "b4"]).await,
                (0, done(&["b1", "b2", "b3", "b4"]))
            );
        }
    });
}
