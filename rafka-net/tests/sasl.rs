//! SASL on a SASL_PLAINTEXT listener over real sockets (the kit's raw
//! `WireClient`): PLAIN and SCRAM-SHA-256/512 exchanges, the principal the
//! authorizer then sees, Kafka's answers to every failure (codes, messages,
//! the close), the pre-authentication gate and frame cap, SaslHandshake
//! v0's raw tokens, pipelined pre-authentication frames, and KIP-368
//! re-authentication and session expiry.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{
    ApiVersionsRequest, CreateAclsRequest, CreateAclsResponse, FetchRequest, MetadataRequest,
    ProduceRequest, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::config::BrokerConfig;
use rafka_core::metadata::METADATA_DIR_NAME;
use rafka_core::metadata::{MetadataRecord, MetadataStore, UserScramCredentialRecord};
use rafka_core::sasl::{
    unsecured_token, OAuthBearerClient, ScramClient, ScramCredential, ScramMechanism,
};
use rafka_shard::storage::GlommioStorage;
use rafka_testkit::broker::blocking;
use rafka_testkit::proto::{long_poll_fetch, produce_answers, produce_request};
use rafka_testkit::records::value_batch;
use rafka_testkit::wire::{frame, request_frame, request_header};
use rafka_testkit::{TestBroker, WireClient};

const NONE: i16 = 0;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
    username=\"admin\" password=\"admin-secret\" \
    user_alice=\"alice-secret\" user_bob=\"bob-secret\";";
const BAD_CREDENTIALS: &str = "Authentication failed: Invalid username or password";
const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A broker whose listener is SASL_PLAINTEXT, configured from properties
/// `extra` appended to the listener and PLAIN users.
fn sasl_broker(extra: &str) -> TestBroker {
    let text = format!(
        "listeners=SASL_PLAINTEXT://127.0.0.1:0\n\
         listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}\n{extra}"
    );
    let (parsed, _warnings) = BrokerConfig::from_properties_text(&text).expect("config");
    TestBroker::builder()
        .network(true)
        .timeout(TEST_TIMEOUT)
        .config(move |c| {
            c.listeners = parsed.listeners.clone();
            c.advertised_listeners = parsed.listeners;
            c.sasl = parsed.sasl;
            c.authorizer_class_name = parsed.authorizer_class_name;
            c.super_users = parsed.super_users;
        })
}

fn connect(addr: SocketAddr) -> WireClient {
    WireClient::connect(addr, "sasl-test").expect("connect")
}

fn handshake(client: &mut WireClient, version: i16, mechanism: &str) -> SaslHandshakeResponse {
    let request =
        SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into()));
    client.call(version, &request).expect("SaslHandshake")
}

fn authenticate(client: &mut WireClient, version: i16, token: &[u8]) -> SaslAuthenticateResponse {
    let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
    client.call(version, &request).expect("SaslAuthenticate")
}

fn plain_token(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

fn mechanisms(response: &SaslHandshakeResponse) -> Vec<String> {
    response.mechanisms.iter().map(|m| m.to_string()).collect()
}

/// Handshake v1 + SaslAuthenticate v2 with PLAIN: the answer.
fn plain_login(client: &mut WireClient, user: &str, password: &str) -> SaslAuthenticateResponse {
    let shake = handshake(client, 1, "PLAIN");
    assert_eq!(shake.error_code, NONE);
    authenticate(client, 2, &plain_token(user, password))
}

fn logged_in(addr: SocketAddr, user: &str, password: &str) -> WireClient {
    let mut client = connect(addr);
    let answer = plain_login(&mut client, user, password);
    assert_eq!(answer.error_code, NONE, "{:?}", answer.error_message);
    client
}

fn metadata_ok(client: &mut WireClient) {
    let request = MetadataRequest::default().with_topics(None);
    let response = client.call(12, &request).expect("Metadata");
    assert_eq!(response.brokers.len(), 1);
}

/// The broker closed the connection without another byte.
fn assert_closed(client: &mut WireClient) {
    assert_eq!(client.read_until_closed().expect("read"), Vec::<u8>::new());
}

fn produce(client: &mut WireClient, topic: &str, value: &str) -> i16 {
    let request: ProduceRequest =
        produce_request(-1, vec![(topic, vec![(0, Some(value_batch(value)))])]);
    let response = client.call(9, &request).expect("Produce");
    produce_answers(&response)[0].1.error_code
}

/// (error code, record bytes) of partition 0 of `topic` from offset 0.
fn fetch(client: &mut WireClient, topic: &str) -> (i16, Bytes) {
    let request: FetchRequest = long_poll_fetch(topic, &[0], 0, 1);
    let response = client.call(12, &request).expect("Fetch");
    let partition = &response.responses[0].partitions[0];
    (
        partition.error_code,
        partition.records.clone().unwrap_or_default(),
    )
}

#[test]
fn plain_login_then_produce_and_fetch_as_the_principal_acls_see() {
    // The in-process scenario session is User:ANONYMOUS, a super user here,
    // so it can create the topic and the ACLs; the socket clients are not.
    let extra =
        format!("authorizer.class.name={STANDARD_AUTHORIZER}\nsuper.users=User:ANONYMOUS\n");
    sasl_broker(&extra).run(|broker| async move {
        broker.create_topic_id("orders", 1, &[]).await;
        let creations = [3, 4]
            .map(|operation| {
                AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("orders"))
                    .with_resource_pattern_type(3)
                    .with_principal(StrBytes::from_static_str("User:alice"))
                    .with_host(StrBytes::from_static_str("*"))
                    .with_operation(operation)
                    .with_permission_type(3)
            })
            .to_vec();
        let created: CreateAclsResponse = broker
            .call(3, &CreateAclsRequest::default().with_creations(creations))
            .await;
        assert!(created.results.iter().all(|r| r.error_code == NONE));
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            let shake = handshake(&mut client, 1, "PLAIN");
            assert_eq!(shake.error_code, NONE);
            assert_eq!(
                mechanisms(&shake),
                ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
            );
            let answer = authenticate(&mut client, 2, &plain_token("alice", "alice-secret"));
            assert_eq!(answer.error_code, NONE);
            // Kafka leaves the message at its default on success.
            assert_eq!(answer.error_message.as_deref(), Some(""));
            assert!(answer.auth_bytes.is_empty());
            assert_eq!(answer.session_lifetime_ms, 0);
            assert_eq!(produce(&mut client, "orders", "from-alice"), NONE);
            let (code, records) = fetch(&mut client, "orders");
            assert_eq!(code, NONE);
            assert!(records.windows(10).any(|w| w == b"from-alice"));

            // bob authenticates too, but the ACLs name alice only.
            let mut bob = logged_in(addr, "bob", "bob-secret");
            assert_eq!(
                produce(&mut bob, "orders", "from-bob"),
                TOPIC_AUTHORIZATION_FAILED
            );
        })
        .await;
    });
}

#[test]
fn wrong_password_answers_58_then_closes_while_others_go_on() {
    sasl_broker("connection.failed.authentication.delay.ms=3000\n").run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            let mut alice = logged_in(addr, "alice", "alice-secret");
            let mut eve = connect(addr);
            assert_eq!(handshake(&mut eve, 1, "PLAIN").error_code, NONE);
            let request = SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(plain_token("alice", "wrong")));
            let correlation_id = eve.send(2, &request).expect("send");
            // eve's answer comes at once (as Kafka's); the close waits out
            // the failure delay on a timer, and alice is served meanwhile
            // (a delay that blocked the shard would have closed eve first).
            let answer = eve
                .receive::<SaslAuthenticateRequest>(2, correlation_id)
                .expect("answer before the close");
            assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
            assert_eq!(answer.error_message.as_deref(), Some(BAD_CREDENTIALS));
            metadata_ok(&mut alice);
            assert!(
                !eve.has_unread().expect("peek"),
                "eve closed before the delay"
            );
            assert_closed(&mut eve);
            // Unknown users get the same words.
            let mut mallory = connect(addr);
            let answer = plain_login(&mut mallory, "mallory", "x");
            assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
            assert_eq!(answer.error_message.as_deref(), Some(BAD_CREDENTIALS));
            assert_closed(&mut mallory);
            metadata_ok(&mut alice);
        })
        .await;
        // Each refused login is counted as such (the count comes before
        // the close the client saw), not as a protocol error.
        let state = broker.listener_state().await;
        assert_eq!(state.metrics.sasl_authentication_failures, 2);
        assert_eq!(state.metrics.handler_errors, 0);
    });
}

#[test]
fn only_api_versions_and_sasl_before_authentication() {
    sasl_broker("").run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            let versions = client
                .call(2, &ApiVersionsRequest::default())
                .expect("ApiVersions");
            assert_eq!(versions.error_code, NONE);
            assert!(versions.api_keys.iter().any(|k| k.api_key == 17));
            assert!(versions.api_keys.iter().any(|k| k.api_key == 36));
            let request = MetadataRequest::default().with_topics(None);
            client.send(12, &request).expect("send");
            assert_closed(&mut client);
        })
        .await;
        let state = broker.listener_state().await;
        assert_eq!(state.metrics.handler_errors, 1);
    });
}

#[test]
fn unknown_mechanism_answers_33_with_the_enabled_list_then_closes() {
    sasl_broker("sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN\n").run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            let shake = handshake(&mut client, 1, "GSSAPI");
            assert_eq!(shake.error_code, UNSUPPORTED_SASL_MECHANISM);
            assert_eq!(mechanisms(&shake), ["SCRAM-SHA-512", "PLAIN"]);
            assert_closed(&mut client);
            // A disabled mechanism rafka has is refused the same way.
            let mut client = connect(addr);
            let shake = handshake(&mut client, 0, "SCRAM-SHA-256");
            assert_eq!(shake.error_code, UNSUPPORTED_SASL_MECHANISM);
            assert_closed(&mut client);
        })
        .await;
    });
}

#[test]
fn out_of_order_sasl_requests_answer_34_then_close() {
    sasl_broker("").run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            let mut early = connect(addr);
            let answer = authenticate(&mut early, 2, &plain_token("alice", "alice-secret"));
            assert_eq!(answer.error_code, ILLEGAL_SASL_STATE);
            assert_closed(&mut early);
            let mut twice = connect(addr);
            assert_eq!(handshake(&mut twice, 1, "PLAIN").error_code, NONE);
            assert_eq!(
                handshake(&mut twice, 1, "PLAIN").error_code,
                ILLEGAL_SASL_STATE
            );
            assert_closed(&mut twice);
        })
        .await;
    });
}

#[test]
fn a_huge_pre_authentication_frame_closes_without_being_read() {
    sasl_broker("").run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            // 100 MiB announced (the general frame limit allows it), a few
            // bytes sent.
            let mut bytes = (100i32 << 20).to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0, 17, 0, 1]);
            client.write_raw(&bytes).expect("write");
            assert_closed(&mut client);
        })
        .await;
        let state = broker.listener_state().await;
        assert_eq!(state.metrics.frame_errors, 1);
        assert!(state.metrics.bytes_in <= 8, "{}", state.metrics.bytes_in);
        assert_eq!(state.metrics.read_buffer_bytes, 0);
    });
}

#[test]
fn pipelined_pre_authentication_frames_are_served_in_order() {
    sasl_broker("").run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            let handshake_request =
                SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
            let good = SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(plain_token("alice", "alice-secret")));
            let again = SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from(plain_token("alice", "alice-secret")));
            let metadata = MetadataRequest::default().with_topics(None);
            // Four frames in one write: each is read once the one before it
            // is answered, so Metadata finds the connection authenticated.
            let mut out = Vec::new();
            let id = Some(StrBytes::from_static_str("sasl-test"));
            let frames: [(i16, i16, i32); 4] = [(17, 1, 1), (36, 2, 2), (36, 2, 3), (3, 12, 4)];
            for (key, version, correlation_id) in frames {
                let api = kafka_protocol::messages::ApiKey::try_from(key).expect("key");
                let header = request_header(
                    api,
                    version,
                    correlation_id,
                    id.as_ref().map(|s| s.as_bytes()),
                )
                .expect("header");
                let bytes = match key {
                    17 => request_frame(&header, &handshake_request, version),
                    36 if correlation_id == 2 => request_frame(&header, &good, version),
                    36 => request_frame(&header, &again, version),
                    _ => request_frame(&header, &metadata, version),
                }
                .expect("frame");
                out.extend_from_slice(&bytes);
            }
            client.write_raw(&out).expect("write");
            let shake = client
                .receive::<SaslHandshakeRequest>(1, 1)
                .expect("handshake");
            assert_eq!(shake.error_code, NONE);
            let first = client
                .receive::<SaslAuthenticateRequest>(2, 2)
                .expect("first");
            assert_eq!(first.error_code, NONE);
            // Kafka's answer to a SaslAuthenticate outside an exchange.
            let second = client
                .receive::<SaslAuthenticateRequest>(2, 3)
                .expect("second");
            assert_eq!(second.error_code, ILLEGAL_SASL_STATE);
            assert_eq!(
                second.error_message.as_deref(),
                Some("SaslAuthenticate request received after successful authentication")
            );
            let metadata = client.receive::<MetadataRequest>(12, 4).expect("metadata");
            assert_eq!(metadata.brokers.len(), 1);
        })
        .await;
    });
}

#[test]
fn v0_handshake_then_raw_plain_token() {
    sasl_broker("").run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            assert_eq!(handshake(&mut client, 0, "PLAIN").error_code, NONE);
            // KIP-43: the token size-prefixed, no Kafka header; PLAIN's
            // answer is an empty token.
            client
                .write_raw(&frame(&plain_token("alice", "alice-secret")))
                .expect("write");
            assert_eq!(client.read_raw(4).expect("empty token"), [0, 0, 0, 0]);
            metadata_ok(&mut client);

            let mut wrong = connect(addr);
            assert_eq!(handshake(&mut wrong, 0, "PLAIN").error_code, NONE);
            wrong
                .write_raw(&frame(&plain_token("alice", "nope")))
                .expect("write");
            assert_closed(&mut wrong);
        })
        .await;
    });
}

// ---- SCRAM ---------------------------------------------------------------

/// Writes SCRAM credentials into the metadata log of `data_dir`, as
/// `kafka-storage format --add-scram` would, before the broker starts.
fn seed_scram_users(data_dir: &Path, users: &[(&str, ScramMechanism, &str)]) {
    let records: Vec<MetadataRecord> = users
        .iter()
        .map(|(user, mechanism, password)| {
            let credential = ScramCredential::from_password(
                *mechanism,
                password.as_bytes(),
                b"rafka-test-salt".to_vec(),
                4096,
            )
            .expect("credential");
            MetadataRecord::UserScramCredential(UserScramCredentialRecord::new(
                user.to_string(),
                &credential,
            ))
        })
        .collect();
    let dir = data_dir.join(METADATA_DIR_NAME);
    let executor = glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let (mut store, _) = MetadataStore::open(GlommioStorage::new(), dir, 1000)
                .await
                .expect("open metadata log");
            store.commit(&records).await.expect("commit");
        })
        .expect("executor");
    executor.join().expect("seeded");
}

fn scram_login(
    client: &mut WireClient,
    version: i16,
    mechanism: ScramMechanism,
    user: &str,
    password: &str,
) -> SaslAuthenticateResponse {
    assert_eq!(handshake(client, 1, mechanism.name()).error_code, NONE);
    let mut scram = ScramClient::new(mechanism, user, password.as_bytes()).expect("client");
    let first = authenticate(client, version, &scram.client_first().expect("first"));
    if first.error_code != NONE {
        return first;
    }
    let last = scram.client_final(&first.auth_bytes).expect("final");
    let answer = authenticate(client, version, &last);
    if answer.error_code == NONE {
        assert_eq!(scram.verify(&answer.auth_bytes), Ok(()));
    }
    answer
}

#[test]
fn scram_sha_256_and_512_exchanges() {
    let dir = tempfile::tempdir().expect("temp dir");
    seed_scram_users(
        dir.path(),
        &[
            ("carol", ScramMechanism::Sha256, "carol-secret"),
            ("dave", ScramMechanism::Sha512, "dave-secret"),
        ],
    );
    sasl_broker("")
        .data_dir(dir.path())
        .run(|broker| async move {
            let addr = broker.addr();
            blocking(move || {
                let mut carol = connect(addr);
                let answer = scram_login(
                    &mut carol,
                    2,
                    ScramMechanism::Sha256,
                    "carol",
                    "carol-secret",
                );
                assert_eq!(answer.error_code, NONE, "{:?}", answer.error_message);
                metadata_ok(&mut carol);
                let mut dave = connect(addr);
                let answer =
                    scram_login(&mut dave, 1, ScramMechanism::Sha512, "dave", "dave-secret");
                assert_eq!(answer.error_code, NONE, "{:?}", answer.error_message);
                metadata_ok(&mut dave);

                let mut wrong = connect(addr);
                let answer = scram_login(&mut wrong, 2, ScramMechanism::Sha256, "carol", "nope");
                assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
                assert_eq!(
                    answer.error_message.as_deref(),
                    Some(
                        "Authentication failed during authentication due to invalid \
                         credentials with SASL mechanism SCRAM-SHA-256"
                    )
                );
                assert_closed(&mut wrong);
                // carol has no SCRAM-SHA-512 credential: the same words.
                let mut other = connect(addr);
                let answer = scram_login(
                    &mut other,
                    2,
                    ScramMechanism::Sha512,
                    "carol",
                    "carol-secret",
                );
                assert_eq!(answer.error_code, SASL_AUTHENTICATION_FAILED);
                assert_closed(&mut other);
            })
            .await;
        });
}

#[test]
fn scram_over_v0_raw_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    seed_scram_users(
        dir.path(),
        &[("carol", ScramMechanism::Sha256, "carol-secret")],
    );
    sasl_broker("")
        .data_dir(dir.path())
        .run(|broker| async move {
            let addr = broker.addr();
            blocking(move || {
                let mut client = connect(addr);
                assert_eq!(handshake(&mut client, 0, "SCRAM-SHA-256").error_code, NONE);
                let mut scram = ScramClient::new(ScramMechanism::Sha256, "carol", b"carol-secret")
                    .expect("client");
                client
                    .write_raw(&frame(&scram.client_first().expect("first")))
                    .expect("write");
                let server_first = client.read_frame().expect("server-first");
                let last = scram.client_final(&server_first).expect("final");
                client.write_raw(&frame(&last)).expect("write");
                let server_final = client.read_frame().expect("server-final");
                assert_eq!(scram.verify(&server_final), Ok(()));
                metadata_ok(&mut client);
            })
            .await;
        });
}

// ---- re-authentication (KIP-368) -------------------------------------------

#[test]
fn reauthentication_keeps_the_connection_and_a_new_principal_is_refused() {
    sasl_broker("connections.max.reauth.ms=600000\n").run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            let answer = plain_login(&mut client, "alice", "alice-secret");
            assert_eq!(answer.error_code, NONE);
            assert_eq!(answer.session_lifetime_ms, 600_000);
            metadata_ok(&mut client);
            // Again on the same connection, before the end.
            let again = plain_login(&mut client, "alice", "alice-secret");
            assert_eq!(again.error_code, NONE);
            assert_eq!(again.session_lifetime_ms, 600_000);
            metadata_ok(&mut client);
            // v0 has no session_lifetime_ms field; the session still ends.
            assert_eq!(handshake(&mut client, 1, "PLAIN").error_code, NONE);
            let v0 = authenticate(&mut client, 0, &plain_token("alice", "alice-secret"));
            assert_eq!(v0.error_code, NONE);
            // Another principal on the same connection: refused, closed.
            let bob = plain_login(&mut client, "bob", "bob-secret");
            assert_eq!(bob.error_code, SASL_AUTHENTICATION_FAILED);
            assert_eq!(
                bob.error_message.as_deref(),
                Some("Cannot change principals during re-authentication from User.alice: User.bob")
            );
            assert_closed(&mut client);
        })
        .await;
    });
}

#[test]
fn a_request_after_the_session_expired_closes_the_connection() {
    sasl_broker("connections.max.reauth.ms=300\n").run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            let mut client = connect(addr);
            let answer = plain_login(&mut client, "alice", "alice-secret");
            assert_eq!(answer.session_lifetime_ms, 300);
            metadata_ok(&mut client);
            // Re-authenticated in time, the connection goes on.
            let again = plain_login(&mut client, "alice", "alice-secret");
            assert_eq!(again.error_code, NONE);
            // The session ends 300 ms after the broker's answer, which is
            // before the client read it: after this sleep it has ended.
            std::thread::sleep(Duration::from_millis(300));
            let request = MetadataRequest::default().with_topics(None);
            client.send(12, &request).expect("send");
            assert_closed(&mut client);
        })
        .await;
        let state = broker.listener_state().await;
        assert_eq!(state.metrics.handler_errors, 1);
    });
}

fn now_s() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(now.expect("clock").as_secs()).expect("seconds")
}

#[test]
fn oauthbearer_unsecured_tokens_log_in_expired_ones_are_refused_and_expiry_caps_the_session() {
    let extra = "sasl.enabled.mechanisms=OAUTHBEARER,PLAIN\n\
         connections.max.reauth.ms=3600000\n\
         listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=\
         org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
         unsecuredValidatorRequiredScope=\"kafka\";\n";
    sasl_broker(extra).run(|broker| async move {
        let addr = broker.addr();
        blocking(move || {
            // A good token: logged in as its sub; the session ends no later
            // than the token (10 minutes), well before the reauth cap.
            let mut client = connect(addr);
            let shake = handshake(&mut client, 1, "OAUTHBEARER");
            assert_eq!(shake.error_code, NONE);
            assert_eq!(mechanisms(&shake), ["OAUTHBEARER", "PLAIN"]);
            let token = unsecured_token("carol", now_s() + 600, &["kafka"]);
            let answer = authenticate(
                &mut client,
                2,
                &OAuthBearerClient::initial_response(&token, &[]),
            );
            assert_eq!(answer.error_code, NONE, "{:?}", answer.error_message);
            assert!(answer.auth_bytes.is_empty());
            assert!(
                (1..=600_000).contains(&answer.session_lifetime_ms),
                "lifetime {}",
                answer.session_lifetime_ms
            );
            metadata_ok(&mut client);

            // An expired token: the RFC 7628 JSON status as a challenge,
            // the client's \x01, then 58 and the close.
            let mut expired = connect(addr);
            assert_eq!(handshake(&mut expired, 1, "OAUTHBEARER").error_code, NONE);
            let old = unsecured_token("carol", now_s() - 3600, &["kafka"]);
            let challenge = authenticate(
                &mut expired,
                2,
                &OAuthBearerClient::initial_response(&old, &[]),
            );
            assert_eq!(challenge.error_code, NONE);
            assert_eq!(
                std::str::from_utf8(&challenge.auth_bytes).expect("utf-8"),
                r#"{"status":"invalid_token"}"#
            );
            let refused = authenticate(&mut expired, 2, b"\x01");
            assert_eq!(refused.error_code, SASL_AUTHENTICATION_FAILED);
            assert_closed(&mut expired);

            // Missing the required scope: insufficient_scope.
            let mut unscoped = connect(addr);
            assert_eq!(handshake(&mut unscoped, 1, "OAUTHBEARER").error_code, NONE);
            let token = unsecured_token("carol", now_s() + 600, &["other"]);
            let challenge = authenticate(
                &mut unscoped,
                2,
                &OAuthBearerClient::initial_response(&token, &[]),
            );
            let json = String::from_utf8(challenge.auth_bytes.to_vec()).expect("utf-8");
            assert!(
                json.starts_with(r#"{"status":"insufficient_scope""#),
                "{json}"
            );
            assert_eq!(
                authenticate(&mut unscoped, 2, b"\x01").error_code,
                SASL_AUTHENTICATION_FAILED
            );
            assert_closed(&mut unscoped);

            // The first connection was never harmed.
            metadata_ok(&mut client);
        })
        .await;
    });
}
