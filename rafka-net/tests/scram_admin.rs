//! AlterUserScramCredentials and DescribeUserScramCredentials (KIP-554)
//! end to end on a real broker core: create, describe, update, delete,
//! every refusal with Kafka's code and message, authorization, and
//! credentials kept across a restart. A stored credential is checked the
//! way a login would check it: a full SCRAM exchange (`ScramClient`
//! against `ScramServer` over the shard's image) with the password the
//! test salted, which proves the salted-password path derives the keys
//! Kafka's would.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::config::BrokerConfig;
use rafka_core::metadata::MetadataImage;
use rafka_core::sasl::{SaslStep, ScramClient, ScramMechanism, ScramServer};
use rafka_net::handlers::HandlerError;
use rafka_net::Response;
use rafka_testkit::broker::raw_request;
use rafka_testkit::{Broker, TestBroker};

const NONE: i16 = 0;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;
const UNACCEPTABLE_CREDENTIAL: i16 = 93;

const SHA256: i8 = 1;
const SHA512: i8 = 2;

const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn mechanism(code: i8) -> ScramMechanism {
    ScramMechanism::from_type_code(code as u8).expect("a known mechanism")
}

/// An upsertion salted as Kafka's admin client salts: PBKDF2 of the
/// password with the salt and iterations.
fn upsert(name: &str, code: i8, password: &str, iterations: i32) -> ScramCredentialUpsertion {
    let salt = format!("salt-of-{name}-{iterations}").into_bytes();
    // An unknown mechanism code is salted as SHA-256: the broker refuses it
    // before looking at the keys.
    let salting = ScramMechanism::from_type_code(code as u8).unwrap_or(ScramMechanism::Sha256);
    let salted = salting.salted_password(password.as_bytes(), &salt, iterations as u32);
    ScramCredentialUpsertion::default()
        .with_name(s(name))
        .with_mechanism(code)
        .with_iterations(iterations)
        .with_salt(salt.into())
        .with_salted_password(salted.into())
}

fn delete(name: &str, code: i8) -> ScramCredentialDeletion {
    ScramCredentialDeletion::default()
        .with_name(s(name))
        .with_mechanism(code)
}

/// `(user, code, message)` per result, in the broker's order.
type Altered = Vec<(String, i16, Option<String>)>;

async fn alter(
    broker: &Broker,
    deletions: Vec<ScramCredentialDeletion>,
    upsertions: Vec<ScramCredentialUpsertion>,
) -> Altered {
    let request = AlterUserScramCredentialsRequest::default()
        .with_deletions(deletions)
        .with_upsertions(upsertions);
    let response: AlterUserScramCredentialsResponse = broker.call(0, &request).await;
    response
        .results
        .iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

fn ok(users: &[&str]) -> Altered {
    users.iter().map(|u| (u.to_string(), NONE, None)).collect()
}

/// `(user, code, message, [(mechanism, iterations)])` per result.
type Described = Vec<(String, i16, Option<String>, Vec<(i8, i32)>)>;

async fn describe_on(broker: &Broker, shard: usize, users: Option<&[&str]>) -> (i16, Described) {
    let users = users.map(|users| {
        users
            .iter()
            .map(|u| UserName::default().with_name(s(u)))
            .collect()
    });
    let request = DescribeUserScramCredentialsRequest::default().with_users(users);
    let response: DescribeUserScramCredentialsResponse = broker.call_on(shard, 0, &request).await;
    let results = response
        .results
        .iter()
        .map(|r| {
            let infos = r
                .credential_infos
                .iter()
                .map(|i| (i.mechanism, i.iterations))
                .collect();
            (
                r.user.to_string(),
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
                infos,
            )
        })
        .collect();
    (response.error_code, results)
}

async fn describe(broker: &Broker, users: Option<&[&str]>) -> (i16, Described) {
    describe_on(broker, broker.serving_shard(), users).await
}

/// A described user. Kafka leaves a success's error message at its schema
/// default, the empty string (not null), and so does rafka.
fn found(user: &str, credentials: &[(i8, i32)]) -> (String, i16, Option<String>, Vec<(i8, i32)>) {
    (
        user.to_string(),
        NONE,
        Some(String::new()),
        credentials.to_vec(),
    )
}

/// A whole SCRAM login of `user` with `password` against `image`.
fn logs_in(image: &MetadataImage, code: i8, user: &str, password: &str) -> bool {
    let mechanism = mechanism(code);
    let mut client = ScramClient::new(mechanism, user, password.as_bytes()).expect("client");
    let mut server = ScramServer::new(mechanism).expect("server");
    let first = client.client_first().expect("client-first");
    let Ok(SaslStep::Challenge(server_first)) = server.evaluate(&first, image) else {
        return false;
    };
    let Ok(last) = client.client_final(&server_first) else {
        return false;
    };
    match server.evaluate(&last, image) {
        Ok(SaslStep::Complete {
            user: logged_in,
            response,
        }) => logged_in == user && client.verify(&response).is_ok(),
        _ => false,
    }
}

/// Create on one shard, read on every shard, update, delete.
#[test]
fn create_describe_update_delete() {
    TestBroker::builder().run_matrix(&[1, 2], |broker| async move {
        let created = alter(
            &broker,
            vec![],
            vec![
                upsert("alice", SHA256, "alice-secret", 4096),
                upsert("bob", SHA512, "bob-secret", 8192),
            ],
        )
        .await;
        assert_eq!(created, ok(&["alice", "bob"]));
        // Every shard serves the change once the answer came back.
        for shard in 0..broker.shard_count() {
            let (code, all) = describe_on(&broker, shard, None).await;
            assert_eq!(code, NONE);
            assert_eq!(
                all,
                vec![
                    found("alice", &[(SHA256, 4096)]),
                    found("bob", &[(SHA512, 8192)])
                ]
            );
        }
        let image = broker.shard.image();
        assert!(logs_in(&image, SHA256, "alice", "alice-secret"));
        assert!(logs_in(&image, SHA512, "bob", "bob-secret"));
        assert!(!logs_in(&image, SHA256, "alice", "wrong"));
        assert!(!logs_in(&image, SHA512, "alice", "alice-secret"));

        // A second mechanism for alice, and a new password and iteration
        // count for bob: the old password stops working.
        let updated = alter(
            &broker,
            vec![],
            vec![
                upsert("alice", SHA512, "alice-512", 16384),
                upsert("bob", SHA512, "bob-new", 10000),
            ],
        )
        .await;
        assert_eq!(updated, ok(&["alice", "bob"]));
        let (_, named) = describe(&broker, Some(&["bob", "alice"])).await;
        assert_eq!(
            named,
            vec![
                found("bob", &[(SHA512, 10000)]),
                found("alice", &[(SHA256, 4096), (SHA512, 16384)])
            ]
        );
        let image = broker.shard.image();
        assert!(logs_in(&image, SHA512, "bob", "bob-new"));
        assert!(!logs_in(&image, SHA512, "bob", "bob-secret"));
        assert!(logs_in(&image, SHA512, "alice", "alice-512"));

        let deleted = alter(
            &broker,
            vec![delete("bob", SHA512), delete("alice", SHA256)],
            vec![],
        )
        .await;
        assert_eq!(deleted, ok(&["bob", "alice"]));
        let (_, all) = describe(&broker, None).await;
        assert_eq!(all, vec![found("alice", &[(SHA512, 16384)])]);
        let image = broker.shard.image();
        assert!(!logs_in(&image, SHA512, "bob", "bob-new"));
        assert!(!logs_in(&image, SHA256, "alice", "alice-secret"));
    });
}

/// Each refusal with Kafka's code and message; the valid entries of the
/// same request still go ahead.
#[test]
fn every_refusal_has_kafkas_code_and_message() {
    TestBroker::builder().run(|broker| async move {
        let mut empty_salt = upsert("nosalt", SHA256, "p", 4096);
        empty_salt.salt = Default::default();
        let mut empty_salted = upsert("nosalted", SHA256, "p", 4096);
        empty_salted.salted_password = Default::default();
        let results = alter(
            &broker,
            vec![delete("ghost", SHA256), delete("mech", 3)],
            vec![
                upsert("", SHA256, "p", 4096),
                upsert("unknown", 0, "p", 4096),
                upsert("few", SHA256, "p", 4095),
                upsert("many", SHA512, "p", 16384).with_iterations(16385),
                upsert("ok", SHA256, "p", 4096),
                empty_salt,
                empty_salted,
            ],
        )
        .await;
        let expected: Altered = vec![
            ("ok", NONE, None),
            (
                "ghost",
                RESOURCE_NOT_FOUND,
                Some("Attempt to delete a user credential that does not exist"),
            ),
            (
                "mech",
                UNSUPPORTED_SASL_MECHANISM,
                Some("Unknown SCRAM mechanism"),
            ),
            (
                "",
                UNACCEPTABLE_CREDENTIAL,
                Some("Username must not be empty"),
            ),
            (
                "unknown",
                UNSUPPORTED_SASL_MECHANISM,
                Some("Unknown SCRAM mechanism"),
            ),
            ("few", UNACCEPTABLE_CREDENTIAL, Some("Too few iterations")),
            ("many", UNACCEPTABLE_CREDENTIAL, Some("Too many iterations")),
            (
                "nosalt",
                UNACCEPTABLE_CREDENTIAL,
                Some("Salt must not be empty"),
            ),
            (
                "nosalted",
                UNACCEPTABLE_CREDENTIAL,
                Some("Salted password must not be empty"),
            ),
        ]
        .into_iter()
        .map(|(u, c, m)| (u.to_string(), c, m.map(str::to_string)))
        .collect();
        assert_eq!(results, expected);
        let (_, all) = describe(&broker, None).await;
        assert_eq!(all, vec![found("ok", &[(SHA256, 4096)])]);

        // A user altered twice in one request, whichever the lists.
        let twice = "A user credential cannot be altered twice in the same request";
        let results = alter(
            &broker,
            vec![delete("ok", SHA256)],
            vec![
                upsert("ok", SHA512, "p", 4096),
                upsert("x", SHA256, "p", 4096),
                upsert("x", SHA512, "p", 4096),
                upsert("fresh", SHA256, "p", 4096),
            ],
        )
        .await;
        assert_eq!(
            results,
            vec![
                ("fresh".to_string(), NONE, None),
                (
                    "ok".to_string(),
                    DUPLICATE_RESOURCE,
                    Some(twice.to_string())
                ),
                ("x".to_string(), DUPLICATE_RESOURCE, Some(twice.to_string())),
            ]
        );
        // Neither of the duplicated entries was applied.
        let (_, all) = describe(&broker, None).await;
        assert_eq!(
            all,
            vec![
                found("fresh", &[(SHA256, 4096)]),
                found("ok", &[(SHA256, 4096)])
            ]
        );
    });
}

#[test]
fn describe_named_missing_and_duplicate_users() {
    TestBroker::builder().run(|broker| async move {
        let created = alter(&broker, vec![], vec![upsert("a", SHA256, "p", 5000)]).await;
        assert_eq!(created, ok(&["a"]));
        let (code, results) = describe(&broker, Some(&["nobody", "a", "dup", "dup"])).await;
        assert_eq!(code, NONE);
        assert_eq!(
            results,
            vec![
                (
                    "nobody".to_string(),
                    RESOURCE_NOT_FOUND,
                    Some("Attempt to describe a user credential that does not exist: nobody".into()),
                    vec![]
                ),
                found("a", &[(SHA256, 5000)]),
                (
                    "dup".to_string(),
                    DUPLICATE_RESOURCE,
                    Some(
                        "Cannot describe SCRAM credentials for the same user twice in a single request: dup"
                            .into()
                    ),
                    vec![]
                ),
            ]
        );
        // An empty list means every user, as null does.
        assert_eq!(describe(&broker, Some(&[])).await.1, vec![found("a", &[(SHA256, 5000)])]);
        // No users at all: an empty answer, not an error.
        let deleted = alter(&broker, vec![delete("a", SHA256)], vec![]).await;
        assert_eq!(deleted, ok(&["a"]));
        assert_eq!(describe(&broker, None).await, (NONE, vec![]));
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

/// With an authorizer, ALTER / DESCRIBE on the cluster decide; refused,
/// Kafka's `getErrorResponse` shapes the answer.
#[test]
fn authorization_is_alter_and_describe_on_the_cluster() {
    let dir = tempfile::tempdir().expect("temp dir");
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer(true))
        .run(|broker| async move {
            let created = alter(&broker, vec![], vec![upsert("admin", SHA256, "p", 4096)]).await;
            assert_eq!(created, ok(&["admin"]));
            assert_eq!(
                describe(&broker, None).await,
                (NONE, vec![found("admin", &[(SHA256, 4096)])])
            );
        });
    TestBroker::builder()
        .data_dir(dir.path())
        .config(authorizer(false))
        .run(|broker| async move {
            // Every user once, in name order, and nothing changes.
            let refused = alter(
                &broker,
                vec![delete("admin", SHA256)],
                vec![
                    upsert("zed", SHA256, "p", 4096),
                    upsert("admin", SHA512, "p", 4096),
                ],
            )
            .await;
            assert_eq!(
                refused,
                vec![
                    ("admin".to_string(), CLUSTER_AUTHORIZATION_FAILED, None),
                    ("zed".to_string(), CLUSTER_AUTHORIZATION_FAILED, None),
                ]
            );
            // One nameless result per user asked for, and the top-level code.
            let (code, results) = describe(&broker, Some(&["admin", "x"])).await;
            assert_eq!(code, CLUSTER_AUTHORIZATION_FAILED);
            let refused = (String::new(), CLUSTER_AUTHORIZATION_FAILED, None, vec![]);
            assert_eq!(results, vec![refused.clone(), refused]);
            assert_eq!(
                describe(&broker, None).await,
                (CLUSTER_AUTHORIZATION_FAILED, vec![])
            );
            let image = broker.shard.image();
            assert!(logs_in(&image, SHA256, "admin", "p"));
            assert!(!logs_in(&image, SHA256, "zed", "p"));
        });
}

/// Acknowledged credentials are in the metadata log: a restart over the
/// same data dir serves them, and they still verify.
#[test]
fn credentials_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    TestBroker::builder()
        .data_dir(dir.path())
        .run(|broker| async move {
            let created = alter(
                &broker,
                vec![],
                vec![
                    upsert("kept", SHA512, "kept-secret", 6000),
                    upsert("dropped", SHA256, "p", 4096),
                ],
            )
            .await;
            assert_eq!(created, ok(&["kept", "dropped"]));
            let deleted = alter(&broker, vec![delete("dropped", SHA256)], vec![]).await;
            assert_eq!(deleted, ok(&["dropped"]));
        });
    TestBroker::builder()
        .data_dir(dir.path())
        .shards(2)
        .run(|broker| async move {
            assert_eq!(
                describe(&broker, None).await,
                (NONE, vec![found("kept", &[(SHA512, 6000)])])
            );
            let image = broker.shard.image();
            assert!(logs_in(&image, SHA512, "kept", "kept-secret"));
            assert!(!logs_in(&image, SHA256, "dropped", "p"));
        });
}

/// Hostile bodies (a huge array count, a cut-off name, a salt longer than
/// the body) close the connection with a decode error; nothing is
/// allocated from their counts and the controller never sees them.
#[test]
fn undecodable_scram_requests_close_the_connection() {
    TestBroker::builder().run(|broker| async move {
        let bodies: [(ApiKey, &'static [u8]); 5] = [
            (
                ApiKey::AlterUserScramCredentials,
                &[0xff, 0xff, 0xff, 0xff, 0x07],
            ),
            (ApiKey::AlterUserScramCredentials, &[0x02, 0x7f, b'a']),
            (
                ApiKey::AlterUserScramCredentials,
                // no deletions; one upsertion "a", SHA-256, 4096
                // iterations, then a salt of 2^31 bytes.
                &[
                    0x01, 0x02, 0x02, b'a', 0x01, 0, 0, 0x10, 0, 0xff, 0xff, 0xff, 0xff, 0x07,
                ],
            ),
            (
                ApiKey::DescribeUserScramCredentials,
                &[0xff, 0xff, 0xff, 0xff, 0x07],
            ),
            (ApiKey::DescribeUserScramCredentials, &[0x02]),
        ];
        for (api_key, body) in bodies {
            let request = raw_request(api_key, 0, Bytes::from_static(body));
            let response = broker.serve(request).await;
            assert!(
                matches!(response, Response::Close(HandlerError::Decode(_))),
                "{api_key:?} {body:?}: {response:?}"
            );
        }
        assert_eq!(describe(&broker, None).await, (NONE, vec![]));
    });
}
