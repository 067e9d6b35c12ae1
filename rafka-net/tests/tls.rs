//! TLS listeners end to end: an in-process broker serving an SSL listener
//! (certificates made by the test with rcgen), a rustls client speaking
//! Kafka over it (ApiVersions, CreateTopics, Produce, Fetch with the
//! records compared to the segment file byte for byte), client
//! certificates (required, refused, mapped to the principal the
//! authorizer sees), hostile handshakes (plaintext bytes, a ClientHello
//! byte by byte, one that never ends, a client that trusts another CA),
//! and the startup errors of bad key stores.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, CreateAclsRequest, CreateAclsResponse, FetchRequest,
    ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rafka_core::config::{BrokerConfig, SecurityProtocol};
use rafka_net::listener::Endpoint;
use rafka_net::session::ListenerInfo;
use rafka_net::tls::TlsServer;
use rafka_testkit::broker::blocking;
use rafka_testkit::proto::{produce_answers, produce_request};
use rafka_testkit::records::{concat, segment_files, value_batch};
use rafka_testkit::tls::{client_config, Identity, TestPki};
use rafka_testkit::{Broker, TestBroker, WireClient};
use rcgen::DnType;

const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const ALICE_DN: &str = "CN=alice,OU=eng,O=acme";

/// The broker config of an SSL listener with these `ssl.*` entries.
fn ssl_config(entries: &[(&str, String)]) -> BrokerConfig {
    let mut text = String::from("listeners=SSL://127.0.0.1:0\n");
    for (key, value) in entries {
        // Properties text: a value's newlines continue with `\`.
        text.push_str(&format!("{key}={}\n", value.replace('\n', "\\n\\\n")));
    }
    let (config, warnings) = BrokerConfig::from_properties_text(&text).expect("config");
    assert!(warnings.is_empty(), "{warnings:?}");
    config
}

fn load(config: &BrokerConfig) -> Result<TlsServer, String> {
    let tls = config.listener_tls.get("SSL").expect("SSL listener");
    TlsServer::load(tls).map_err(|e| e.to_string())
}

fn endpoint(server: TlsServer) -> Endpoint {
    Endpoint {
        info: ListenerInfo {
            name: "SSL".to_string(),
            security_protocol: SecurityProtocol::Ssl,
            sasl: None,
        },
        tls: Some(server),
    }
}

fn path(p: std::path::PathBuf) -> String {
    p.display().to_string()
}

/// A broker whose only listener is SSL with these extra entries; the
/// scenario gets the broker and the certificates.
fn with_tls_broker<F, Fut>(
    extra: &[(&str, String)],
    tweak: impl FnOnce(&mut BrokerConfig) + Send + 'static,
    scenario: F,
) where
    F: FnOnce(Broker, Arc<TestPki>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Arc::new(TestPki::new(dir.path(), "rafka test CA"));
    let mut entries = vec![("ssl.keystore.location", path(pki.server_path()))];
    entries.extend(extra.iter().cloned());
    let config = ssl_config(&entries);
    let server = load(&config).expect("TLS server");
    TestBroker::builder()
        .endpoint(endpoint(server))
        .config(tweak)
        .timeout(Duration::from_secs(120))
        .run(move |broker| scenario(broker, pki));
}

fn tls_client(addr: SocketAddr, pki: &TestPki, identity: Option<&Identity>) -> WireClient {
    WireClient::connect_tls(addr, "tls-test", pki.client_config(identity), "localhost")
        .expect("TLS connect")
}

fn versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("rafka-tls-test"))
        .with_client_software_version(StrBytes::from_static_str("1"))
}

fn api_versions(client: &mut WireClient) -> ApiVersionsResponse {
    client.call(3, &versions_request()).expect("ApiVersions")
}

fn produce_one(client: &mut WireClient, topic: &str, value: &str) -> (i16, i64) {
    let request: ProduceRequest =
        produce_request(-1, vec![(topic, vec![(0, Some(value_batch(value)))])]);
    let response = client.call(9, &request).expect("Produce");
    let answers = produce_answers(&response);
    (answers[0].1.error_code, answers[0].1.base_offset)
}

#[test]
fn create_produce_and_fetch_over_tls_byte_for_byte() {
    with_tls_broker(
        &[],
        |_| {},
        |broker, pki| async move {
            let addr = broker.addr();
            let dir = broker.partition_dir("secure", 0);
            let in_process: ApiVersionsResponse = broker.call(3, &versions_request()).await;
            // CreateTopics over the wire waits on the controller, which the
            // in-process harness only serves to in-process calls; the binary
            // test (tests/tls_listeners.rs) sends CreateTopics over SSL.
            broker.create_topic_id("secure", 1, &[]).await;
            blocking(move || {
                let mut client = tls_client(addr, &pki, None);
                let versions = api_versions(&mut client);
                assert_eq!(versions.error_code, 0);
                assert_eq!(versions, in_process);
                // Large enough that a response spans many TLS records.
                let big = "x".repeat(300_000);
                assert_eq!(produce_one(&mut client, "secure", "first"), (0, 0));
                assert_eq!(produce_one(&mut client, "secure", &big), (0, 1));
                assert_eq!(produce_one(&mut client, "secure", "third"), (0, 2));
                let partition = FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(8 << 20);
                let fetch = FetchRequest::default()
                    .with_replica_id((-1).into())
                    .with_max_wait_ms(0)
                    .with_min_bytes(0)
                    .with_max_bytes(8 << 20)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_static_str("secure")))
                        .with_partitions(vec![partition])]);
                let response = client.call(12, &fetch).expect("Fetch");
                let data = &response.responses[0].partitions[0];
                assert_eq!(data.error_code, 0);
                assert_eq!(data.high_watermark, 3);
                let log = concat(&segment_files(&dir));
                assert_eq!(data.records.as_ref(), Some(&log));
            })
            .await;
            let state = broker.listener_state().await;
            assert_eq!(state.metrics.tls_handshakes, 1);
            assert_eq!(state.metrics.tls_handshake_failures, 0);
        },
    );
}

/// Every connection here must end in a refused or failed exchange.
fn refused(result: Result<WireClient, rafka_testkit::wire::WireError>) {
    // TLS 1.3: the client finishes before the server has checked its
    // certificate; the refusal arrives on the first read.
    if let Ok(mut client) = result {
        let answer = client.call(3, &ApiVersionsRequest::default());
        assert!(answer.is_err(), "{answer:?}");
    }
}

fn pki_entries(pki_dir: &std::path::Path, auth: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ssl.client.auth", auth.to_string()),
        ("ssl.truststore.location", path(pki_dir.join("ca.pem"))),
    ]
}

#[test]
fn required_client_certificates_name_the_principal_the_authorizer_sees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Arc::new(TestPki::new(dir.path(), "rafka test CA"));
    let mut entries = vec![("ssl.keystore.location", path(pki.server_path()))];
    entries.extend(pki_entries(dir.path(), "required"));
    let server = load(&ssl_config(&entries)).expect("TLS server");
    TestBroker::builder()
        .endpoint(endpoint(server))
        .config(|c| {
            c.authorizer_class_name = Some(STANDARD_AUTHORIZER.to_string());
            c.super_users = vec!["User:ANONYMOUS".to_string()];
        })
        .run(move |broker| async move {
            broker.create_topic("t", 1, &[]).await;
            allow_write(&broker, &format!("User:{ALICE_DN}"), "t").await;
            let addr = broker.addr();
            blocking(move || {
                refused(WireClient::connect_tls(
                    addr,
                    "anonymous",
                    pki.client_config(None),
                    "localhost",
                ));
                let alice = pki.client(&[
                    (DnType::OrganizationName, "acme"),
                    (DnType::OrganizationalUnitName, "eng"),
                    (DnType::CommonName, "alice"),
                ]);
                let bob = pki.client(&[
                    (DnType::OrganizationName, "acme"),
                    (DnType::CommonName, "bob"),
                ]);
                let mut client = tls_client(addr, &pki, Some(&alice));
                assert_eq!(produce_one(&mut client, "t", "from alice"), (0, 0));
                let mut client = tls_client(addr, &pki, Some(&bob));
                let (code, _) = produce_one(&mut client, "t", "from bob");
                assert_eq!(code, TOPIC_AUTHORIZATION_FAILED);
                // A certificate from another CA is refused.
                let other_dir = tempfile::tempdir().expect("tempdir");
                let other = TestPki::new(other_dir.path(), "another CA");
                let stranger = other.client(&[(DnType::CommonName, "alice")]);
                refused(WireClient::connect_tls(
                    addr,
                    "stranger",
                    client_config(&pki.ca_pem, Some(&stranger)),
                    "localhost",
                ));
            })
            .await;
            let state = broker.listener_state().await;
            assert_eq!(state.metrics.tls_handshakes, 2);
            assert_eq!(state.metrics.tls_handshake_failures, 2);
        });
}

async fn allow_write(broker: &Broker, principal: &str, topic: &str) {
    let creation = AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(topic.to_string()))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_string(principal.to_string()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(4)
        .with_permission_type(3);
    let request = CreateAclsRequest::default().with_creations(vec![creation]);
    let response: CreateAclsResponse = broker.call(3, &request).await;
    assert_eq!(response.results[0].error_code, 0);
}

#[test]
fn mapping_rules_shorten_the_principal_and_requested_auth_allows_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Arc::new(TestPki::new(dir.path(), "rafka test CA"));
    let mut entries = vec![("ssl.keystore.location", path(pki.server_path()))];
    entries.extend(pki_entries(dir.path(), "requested"));
    entries.push((
        "ssl.principal.mapping.rules",
        "RULE:^CN=([^,]*),OU=eng,.*$/$1/L,DEFAULT".to_string(),
    ));
    let server = load(&ssl_config(&entries)).expect("TLS server");
    TestBroker::builder()
        .endpoint(endpoint(server))
        .config(|c| {
            c.authorizer_class_name = Some(STANDARD_AUTHORIZER.to_string());
            c.super_users = vec!["User:ANONYMOUS".to_string()];
        })
        .run(move |broker| async move {
            broker.create_topic("t", 1, &[]).await;
            allow_write(&broker, "User:alice", "t").await;
            allow_write(&broker, "User:CN=carol,OU=ops,O=acme", "t").await;
            let addr = broker.addr();
            blocking(move || {
                let alice = pki.client(&[
                    (DnType::OrganizationName, "acme"),
                    (DnType::OrganizationalUnitName, "eng"),
                    (DnType::CommonName, "Alice"),
                ]);
                let carol = pki.client(&[
                    (DnType::OrganizationName, "acme"),
                    (DnType::OrganizationalUnitName, "ops"),
                    (DnType::CommonName, "carol"),
                ]);
                let dave = pki.client(&[
                    (DnType::OrganizationName, "acme"),
                    (DnType::OrganizationalUnitName, "ops"),
                    (DnType::CommonName, "dave"),
                ]);
                let mut client = tls_client(addr, &pki, Some(&alice));
                assert_eq!(produce_one(&mut client, "t", "a"), (0, 0));
                let mut client = tls_client(addr, &pki, Some(&carol));
                assert_eq!(produce_one(&mut client, "t", "c"), (0, 1));
                let mut client = tls_client(addr, &pki, Some(&dave));
                assert_eq!(
                    produce_one(&mut client, "t", "d").0,
                    TOPIC_AUTHORIZATION_FAILED
                );
                // Requested, not required: no certificate is the
                // anonymous principal (a super user here).
                let mut client = tls_client(addr, &pki, None);
                assert_eq!(produce_one(&mut client, "t", "anon"), (0, 2));
            })
            .await;
        });
}

/// Reads until the broker closes the socket (EOF or reset); fails on the
/// client's read timeout if it never does.
fn wait_closed(socket: &mut TcpStream) -> Vec<u8> {
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return received,
            Err(e) => panic!("the broker did not close the connection: {e}"),
        }
    }
}

#[test]
fn plaintext_bytes_and_stalled_handshakes_close_only_their_connection() {
    let extra = [("rafka.ssl.handshake.timeout.ms", "300".to_string())];
    with_tls_broker(
        &extra,
        |_| {},
        |broker, pki| async move {
            let addr = broker.addr();
            blocking(move || {
                let mut good = tls_client(addr, &pki, None);
                assert_eq!(api_versions(&mut good).error_code, 0);
                // An ApiVersions frame in the clear.
                let mut plain = TcpStream::connect(addr).expect("connect");
                let frame = [
                    0, 0, 0, 14, 0, 18, 0, 3, 0, 0, 0, 1, 0, 4, b't', b'e', b's', b't',
                ];
                plain.write_all(&frame).expect("write");
                let answer = wait_closed(&mut plain);
                // At most a TLS alert record (content type 21), never a
                // Kafka answer.
                assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
                // A client that connects and never speaks: closed at the
                // deadline while the established one goes on working.
                let mut silent = TcpStream::connect(addr).expect("connect");
                assert_eq!(api_versions(&mut good).error_code, 0);
                assert_eq!(wait_closed(&mut silent), Vec::<u8>::new());
                assert_eq!(api_versions(&mut good).error_code, 0);
                let mut another = tls_client(addr, &pki, None);
                assert_eq!(api_versions(&mut another).error_code, 0);
            })
            .await;
            let state = broker.listener_state().await;
            assert_eq!(state.metrics.tls_handshakes, 2);
            assert_eq!(state.metrics.tls_handshake_failures, 2);
        },
    );
}

#[test]
fn a_client_hello_sent_byte_by_byte_still_completes() {
    with_tls_broker(
        &[],
        |_| {},
        |broker, pki| async move {
            let addr = broker.addr();
            blocking(move || {
                let mut socket = TcpStream::connect(addr).expect("connect");
                socket.set_nodelay(true).expect("nodelay");
                socket
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .expect("timeout");
                let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
                let mut tls =
                    rustls::ClientConnection::new(pki.client_config(None), name).expect("client");
                let mut hello = Vec::new();
                while tls.wants_write() {
                    tls.write_tls(&mut hello).expect("hello");
                }
                assert!(hello.len() > 100, "{} bytes", hello.len());
                for byte in &hello {
                    socket.write_all(&[*byte]).expect("one byte");
                    socket.flush().expect("flush");
                }
                while tls.is_handshaking() {
                    tls.complete_io(&mut socket).expect("handshake");
                }
                let mut stream = rustls::StreamOwned::new(tls, socket);
                // ApiVersions v0, correlation id 7, no client id.
                let frame = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff];
                stream.write_all(&frame).expect("request");
                let mut prefix = [0u8; 8];
                stream.read_exact(&mut prefix).expect("response");
                assert_eq!(&prefix[4..], &[0, 0, 0, 7], "correlation id");
            })
            .await;
        },
    );
}

#[test]
fn a_client_that_trusts_another_ca_refuses_the_server() {
    with_tls_broker(
        &[],
        |_| {},
        |broker, _pki| async move {
            let addr = broker.addr();
            blocking(move || {
                let dir = tempfile::tempdir().expect("tempdir");
                let other = TestPki::new(dir.path(), "another CA");
                let connected = WireClient::connect_tls(
                    addr,
                    "wrong-ca",
                    other.client_config(None),
                    "localhost",
                );
                let error = connected.err().map(|e| e.to_string()).unwrap_or_default();
                assert!(error.contains("UnknownIssuer"), "{error}");
            })
            .await;
            let state = broker.listener_state().await;
            assert_eq!(state.metrics.tls_handshakes, 0);
            assert_eq!(state.metrics.tls_handshake_failures, 1);
        },
    );
}

#[test]
fn key_stores_inline_and_encrypted_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "rafka test CA");
    let server = &pki.server;
    let inline = ssl_config(&[
        ("ssl.keystore.type", "PEM".to_string()),
        (
            "ssl.keystore.certificate.chain",
            server.certificate_pem.clone(),
        ),
        ("ssl.keystore.key", server.key_pem.clone()),
        ("ssl.truststore.certificates", pki.ca_pem.clone()),
        ("ssl.client.auth", "required".to_string()),
    ]);
    assert!(load(&inline).is_ok(), "{:?}", load(&inline).err());
    let encrypted = server.encrypted_key_pem("s3cret");
    assert!(encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let file = dir.path().join("encrypted.pem");
    std::fs::write(&file, format!("{encrypted}{}", server.certificate_pem)).expect("write");
    let with = |password: Option<&str>| {
        let mut entries = vec![("ssl.keystore.location", path(file.clone()))];
        if let Some(password) = password {
            entries.push(("listener.name.ssl.ssl.key.password", password.to_string()));
        }
        load(&ssl_config(&entries))
    };
    assert!(
        with(Some("s3cret")).is_ok(),
        "{:?}",
        with(Some("s3cret")).err()
    );
    let location = "ssl.keystore.location: the key is encrypted but ssl.key.password is not set";
    assert_eq!(with(None).err().as_deref(), Some(location));
    let wrong = with(Some("wrong")).err().unwrap_or_default();
    assert!(
        wrong.starts_with(
            "ssl.keystore.location: cannot decrypt the key with listener.name.ssl.ssl.key.password"
        ),
        "{wrong}"
    );
}

#[test]
fn bad_key_stores_are_startup_errors_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "rafka test CA");
    let other = pki.client(&[(DnType::CommonName, "other")]);
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let mismatched = dir.path().join("mismatched.pem");
    std::fs::write(
        &mismatched,
        format!("{}{}", other.key_pem, pki.server.certificate_pem),
    )
    .expect("write");
    let key_only = dir.path().join("key-only.pem");
    std::fs::write(&key_only, &other.key_pem).expect("write");
    let store = |p: &std::path::Path| vec![("ssl.keystore.location", path(p.to_path_buf()))];
    let error =
        |entries: Vec<(&str, String)>| load(&ssl_config(&entries)).err().unwrap_or_default();
    assert!(
        error(store(&missing)).starts_with(&format!(
            "ssl.keystore.location: reading {}: No such file",
            missing.display()
        )),
        "{}",
        error(store(&missing))
    );
    assert!(
        error(store(&garbage)).starts_with("ssl.keystore.location: not valid PEM"),
        "{}",
        error(store(&garbage))
    );
    assert_eq!(
        error(store(&mismatched)),
        format!(
            "ssl.keystore.location: the private key does not fit the certificate chain: {}",
            mismatch_text()
        )
    );
    assert_eq!(
        error(store(&key_only)),
        "ssl.keystore.location: no certificate in it"
    );
    let mut trust = store(&pki.server_path());
    trust.push(("ssl.client.auth", "required".to_string()));
    trust.push(("ssl.truststore.location", path(missing.clone())));
    assert!(
        error(trust).starts_with("ssl.truststore.location: reading"),
        "truststore file"
    );
}

fn mismatch_text() -> String {
    rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch).to_string()
}

#[test]
fn the_subject_reads_as_java_prints_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "rafka test CA");
    let client = pki.client(&[
        (DnType::CountryName, "US"),
        (DnType::OrganizationName, "acme, inc"),
        (DnType::OrganizationalUnitName, "eng"),
        (DnType::CommonName, "alice"),
    ]);
    let der = rustls_pki_types::CertificateDer::from_pem_slice(client.certificate_pem.as_bytes())
        .expect("PEM");
    assert_eq!(
        rafka_net::tls::subject_dn(&der).as_deref(),
        Some("CN=alice,OU=eng,O=acme\\, inc,C=US")
    );
    assert_eq!(ALICE_DN, "CN=alice,OU=eng,O=acme");
}

use rustls_pki_types::pem::PemObject;

#[test]
fn sasl_ssl_authenticates_inside_tls_and_the_sasl_principal_is_authorized() {
    use kafka_protocol::messages::{
        SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
        SaslHandshakeResponse,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Arc::new(TestPki::new(dir.path(), "rafka test CA"));
    let text = format!(
        "listeners=SASL_SSL://127.0.0.1:0\n\
         ssl.keystore.location={}\n\
         sasl.enabled.mechanisms=PLAIN\n\
         listener.name.sasl_ssl.plain.sasl.jaas.config=\
         org.apache.kafka.common.security.plain.PlainLoginModule required \
         user_alice=\"alice-secret\";\n",
        path(pki.server_path())
    );
    let (config, warnings) = BrokerConfig::from_properties_text(&text).expect("config");
    assert!(warnings.is_empty(), "{warnings:?}");
    let listener = config.listeners[0].clone();
    assert_eq!(listener.protocol, SecurityProtocol::SaslSsl);
    let tls = config.listener_tls.get("SASL_SSL").expect("TLS settings");
    let endpoint = Endpoint {
        info: ListenerInfo::of(&config, &listener),
        tls: Some(TlsServer::load(tls).expect("TLS server")),
    };
    TestBroker::builder()
        .endpoint(endpoint)
        .config(|c| {
            c.authorizer_class_name = Some(STANDARD_AUTHORIZER.to_string());
            c.super_users = vec!["User:ANONYMOUS".to_string()];
        })
        .timeout(Duration::from_secs(120))
        .run(move |broker| async move {
            broker.create_topic("t", 1, &[]).await;
            broker.create_topic("u", 1, &[]).await;
            allow_write(&broker, "User:alice", "t").await;
            let addr = broker.addr();
            blocking(move || {
                let login = |password: &str| {
                    let mut client = tls_client(addr, &pki, None);
                    let shake: SaslHandshakeResponse = client
                        .call(
                            1,
                            &SaslHandshakeRequest::default()
                                .with_mechanism(StrBytes::from_static_str("PLAIN")),
                        )
                        .expect("SaslHandshake");
                    assert_eq!(shake.error_code, 0);
                    let token = format!("\0alice\0{password}");
                    let answer: SaslAuthenticateResponse = client
                        .call(
                            2,
                            &SaslAuthenticateRequest::default()
                                .with_auth_bytes(bytes::Bytes::from(token.into_bytes())),
                        )
                        .expect("SaslAuthenticate");
                    (client, answer.error_code)
                };
                let (mut alice, code) = login("alice-secret");
                assert_eq!(code, 0);
                // alice, not the anonymous TLS principal (a super user),
                // is who the authorizer sees.
                assert_eq!(produce_one(&mut alice, "t", "over SASL_SSL"), (0, 0));
                let (code, _) = produce_one(&mut alice, "u", "no ACL");
                assert_eq!(code, TOPIC_AUTHORIZATION_FAILED);
                let (mut wrong, code) = login("nope");
                assert_eq!(code, 58);
                assert_eq!(wrong.read_until_closed().expect("read"), Vec::<u8>::new());
                assert_eq!(produce_one(&mut alice, "t", "still here"), (0, 1));
            })
            .await;
        });
}
