//! The operator CLI against secured brokers: a broker whose only listener
//! is SASL_SSL is administered through `--command-config` (TLS and SCRAM
//! on every connection), ACLs added and removed with `rafka acl` change
//! what a user may do, and a wrong password or an unknown CA fail with the
//! broker's or rustls' reason; a client certificate given there is the
//! principal on an mTLS listener; PLAIN over SASL_PLAINTEXT.

mod support;

use std::io::Write;
use std::process::Stdio;

use rafka_testkit::tls::TestPki;
use rafka_testkit::BrokerProcess;
use serde_json::Value;
use support::cli::*;
use support::rafka;

/// A broker whose only listener is SASL_SSL (SCRAM-SHA-512), running the
/// StandardAuthorizer with super user admin seeded by `--add-scram`; and
/// the directory its certificates and the command-config files live in.
struct SecuredBroker {
    broker: BrokerProcess,
    pki: TestPki,
    dir: tempfile::TempDir,
}

const ADMIN_PASSWORD: &str = "admin-secret";

fn secured_broker() -> SecuredBroker {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "rafka CLI test CA");
    let broker = BrokerProcess::start(
        rafka(1)
            .property("listeners", "SASL_SSL://127.0.0.1:0")
            .property(
                "ssl.keystore.location",
                &pki.server_path().display().to_string(),
            )
            .property("sasl.enabled.mechanisms", "SCRAM-SHA-512")
            .property(
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            )
            .property("super.users", "User:admin")
            .property("rafka.log.dir.min.free.bytes", "0")
            .arg("--add-scram")
            .arg(&format!(
                "SCRAM-SHA-512=[name=admin,password={ADMIN_PASSWORD}]"
            )),
    );
    SecuredBroker { broker, pki, dir }
}

impl SecuredBroker {
    /// Writes `name` (a command-config file) with `text`; returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write command config");
        path.display().to_string()
    }

    /// Kafka's form: SASL_SSL, a PEM trust store, SCRAM-SHA-512 and the
    /// login in `sasl.jaas.config` (split over two lines, as such files
    /// often are).
    fn jaas_config(&self, name: &str, user: &str, password: &str) -> String {
        let ca = self.pki.ca_path().display().to_string();
        self.file(
            name,
            &format!(
                "# rafka CLI -> SASL_SSL\n\
                 security.protocol=SASL_SSL\n\
                 ssl.truststore.type=PEM\n\
                 ssl.truststore.location={ca}\n\
                 sasl.mechanism=SCRAM-SHA-512\n\
                 sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n    \
                 username=\"{user}\" password=\"{password}\";\n"
            ),
        )
    }
}

/// `rafka ARGS --command-config CONFIG` runs against `broker`, exit 0.
fn ok_as(broker: &BrokerProcess, config: &str, args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.extend(["--command-config", config]);
    ok(broker, &args)
}

fn json_as(broker: &BrokerProcess, config: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--command-config", config]);
    json(broker, &args)
}

fn fails_as(broker: &BrokerProcess, config: &str, args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.extend(["--command-config", config]);
    fails(broker, &args)
}

/// Bad usage through `--command-config CONFIG`: exit 2, stderr back.
fn usage_as(broker: &BrokerProcess, config: &str, args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.extend(["--command-config", config]);
    let output = run(broker, &args);
    assert_eq!(output.status.code(), Some(2), "rafka {args:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_sasl_ssl_broker_is_administered_through_command_config() {
    let secured = secured_broker();
    let broker = &secured.broker;
    let admin = secured.jaas_config("admin.properties", "admin", ADMIN_PASSWORD);

    let set = ok_as(
        broker,
        &admin,
        &[
            "user",
            "set",
            "alice",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password",
            "alice-secret",
        ],
    );
    assert_eq!(set, "user alice: set SCRAM-SHA-512 (4096 iterations)\n");
    let users = json_as(broker, &admin, &["user", "list"]);
    let names: Vec<&str> = users
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["user"].as_str().expect("user"))
        .collect();
    assert_eq!(names, ["admin", "alice"], "{users}");

    let created = json_as(
        broker,
        &admin,
        &["topic", "create", "orders", "--partitions", "2"],
    );
    assert_eq!(created["name"], "orders");
    assert_eq!(created["partitions"], 2);
    let info = json_as(broker, &admin, &["cluster", "info"]);
    assert_eq!(info["brokers"][0]["port"], broker.addr.port(), "{info}");

    // Produce and consume open one more connection per leader: TLS and
    // SCRAM there too.
    let mut produce = cli(broker, &["produce", "orders", "--partition", "1"]);
    produce.args(["--command-config", &admin]);
    let mut child = produce
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rafka produce");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"first\nsecond\n")
        .expect("write stdin");
    let produced = child.wait_with_output().expect("produce exits");
    assert!(
        produced.status.success(),
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );
    let consumed = ok_as(
        broker,
        &admin,
        &[
            "consume",
            "orders",
            "--partition",
            "1",
            "--from-beginning",
            "--count",
            "2",
            "--timeout-ms",
            "20000",
        ],
    );
    assert_eq!(consumed, "first\nsecond\n");
}

#[test]
fn acls_added_through_the_cli_change_what_a_user_may_do() {
    let secured = secured_broker();
    let broker = &secured.broker;
    let admin = secured.jaas_config("admin.properties", "admin", ADMIN_PASSWORD);
    ok_as(
        broker,
        &admin,
        &[
            "user",
            "set",
            "alice",
            "--mechanism",
            "SCRAM-SHA-512",
            "--password",
            "alice-secret",
        ],
    );
    // librdkafka's key names for the same login.
    let ca = secured.pki.ca_path().display().to_string();
    let alice = secured.file(
        "alice.properties",
        &format!(
            "security.protocol=SASL_SSL\nssl.ca.location={ca}\nsasl.mechanisms=SCRAM-SHA-512\n\
             sasl.username=alice\nsasl.password=alice-secret\n"
        ),
    );

    let refused = fails_as(broker, &alice, &["topic", "create", "alice-orders"]);
    assert!(refused.contains("TOPIC_AUTHORIZATION_FAILED"), "{refused}");
    let refused = fails_as(broker, &alice, &["acl", "list"]);
    assert!(
        refused.contains("CLUSTER_AUTHORIZATION_FAILED"),
        "{refused}"
    );
    assert_eq!(
        json_as(broker, &admin, &["acl", "list"]),
        serde_json::json!([])
    );

    let added = ok_as(
        broker,
        &admin,
        &[
            "acl",
            "add",
            "--resource-type",
            "topic",
            "--resource-name",
            "alice-",
            "--pattern-type",
            "prefixed",
            "--principal",
            "User:alice",
            "--operation",
            "create",
        ],
    );
    let mut lines = added.lines();
    assert_eq!(lines.next(), Some("added 1 ACL"));
    let header: Vec<&str> = lines.next().expect("header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "PRINCIPAL",
            "HOST",
            "PERMISSION",
            "OPERATION",
            "RESOURCE-TYPE",
            "RESOURCE-NAME",
            "PATTERN-TYPE"
        ]
    );
    let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
    assert_eq!(
        row,
        [
            "User:alice",
            "*",
            "allow",
            "create",
            "topic",
            "alice-",
            "prefixed"
        ]
    );
    let deny = json_as(
        broker,
        &admin,
        &[
            "acl",
            "add",
            "--resource-type",
            "group",
            "--resource-name",
            "billing",
            "--principal",
            "User:alice",
            "--operation",
            "READ",
            "--permission",
            "deny",
        ],
    );
    assert_eq!(deny["added"][0]["permission"], "deny", "{deny}");

    let binding = |kind: &str, name: &str, pattern: &str, operation: &str, permission: &str| {
        serde_json::json!({
            "resource_type": kind,
            "resource_name": name,
            "pattern_type": pattern,
            "principal": "User:alice",
            "host": "*",
            "operation": operation,
            "permission": permission,
        })
    };
    let create = binding("topic", "alice-", "prefixed", "create", "allow");
    let read = binding("group", "billing", "literal", "read", "deny");
    assert_eq!(
        json_as(broker, &admin, &["acl", "list"]),
        serde_json::json!([create.clone(), read.clone()])
    );
    // A filter: only topic ACLs that apply to alice-orders.
    assert_eq!(
        json_as(
            broker,
            &admin,
            &[
                "acl",
                "list",
                "--resource-type",
                "topic",
                "--resource-name",
                "alice-orders",
                "--pattern-type",
                "match",
            ],
        ),
        serde_json::json!([create.clone()])
    );
    let table = ok_as(
        broker,
        &admin,
        &["acl", "list", "--principal", "User:alice"],
    );
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(table.starts_with("PRINCIPAL"), "{table}");

    let created = json_as(broker, &alice, &["topic", "create", "alice-orders"]);
    assert_eq!(created["name"], "alice-orders");
    let refused = fails_as(broker, &alice, &["topic", "create", "bob-orders"]);
    assert!(refused.contains("TOPIC_AUTHORIZATION_FAILED"), "{refused}");

    // Adding twice is no error (Kafka keeps one); bad flags are.
    ok_as(
        broker,
        &admin,
        &[
            "acl",
            "add",
            "--resource-type",
            "cluster",
            "--principal",
            "User:alice",
            "--operation",
            "describe",
        ],
    );
    let cluster = binding("cluster", "kafka-cluster", "literal", "describe", "allow");
    let listed = json_as(
        broker,
        &alice,
        &["acl", "list", "--resource-type", "cluster"],
    );
    assert_eq!(listed, serde_json::json!([cluster]));
    let bad = usage_as(
        broker,
        &admin,
        &[
            "acl",
            "add",
            "--resource-type",
            "topic",
            "--resource-name",
            "x",
            "--principal",
            "alice",
            "--operation",
            "read",
        ],
    );
    assert!(bad.contains("--principal is TYPE:NAME"), "{bad}");
    let bad = usage_as(broker, &admin, &["acl", "remove"]);
    assert!(bad.contains("acl remove needs --resource-type"), "{bad}");

    let removed = json_as(
        broker,
        &admin,
        &[
            "acl",
            "remove",
            "--resource-type",
            "topic",
            "--resource-name",
            "alice-",
            "--pattern-type",
            "prefixed",
            "--principal",
            "User:alice",
        ],
    );
    assert_eq!(removed, serde_json::json!({"removed": [create]}));
    let removed = ok_as(
        broker,
        &admin,
        &[
            "acl",
            "remove",
            "--resource-type",
            "group",
            "--pattern-type",
            "any",
        ],
    );
    assert!(removed.starts_with("removed 1 ACL\nPRINCIPAL"), "{removed}");
    assert!(removed.contains("billing"), "{removed}");
    let none = ok_as(
        broker,
        &admin,
        &["acl", "remove", "--resource-type", "group"],
    );
    assert_eq!(none, "removed 0 ACLs\n");

    let refused = fails_as(broker, &alice, &["topic", "create", "alice-again"]);
    assert!(refused.contains("TOPIC_AUTHORIZATION_FAILED"), "{refused}");
}

#[test]
fn a_wrong_password_or_an_unknown_ca_fails_clearly() {
    let secured = secured_broker();
    let broker = &secured.broker;

    let wrong = secured.jaas_config("wrong.properties", "admin", "not-the-password");
    let refused = fails_as(broker, &wrong, &["topic", "list"]);
    assert!(refused.contains("SASL_AUTHENTICATION_FAILED"), "{refused}");
    assert!(
        refused.contains("SASL SCRAM-SHA-512 login as admin at"),
        "{refused}"
    );
    assert!(
        refused.contains("Authentication failed during authentication due to invalid credentials"),
        "{refused}"
    );

    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = TestPki::new(other_dir.path(), "some other CA");
    let untrusted = secured.file(
        "other-ca.properties",
        &format!(
            "security.protocol=SASL_SSL\nssl.truststore.location={}\n\
             sasl.mechanism=SCRAM-SHA-512\nsasl.username=admin\nsasl.password={ADMIN_PASSWORD}\n",
            other.ca_path().display()
        ),
    );
    let refused = fails_as(broker, &untrusted, &["topic", "list"]);
    assert!(refused.contains("TLS handshake with"), "{refused}");
    assert!(refused.contains("UnknownIssuer"), "{refused}");
    assert!(
        refused.contains("not signed by a CA in ssl.truststore.location"),
        "{refused}"
    );

    // Plaintext at a TLS listener: rustls' alert is recognized as one.
    let plain = fails(broker, &["topic", "list"]);
    assert!(
        plain.contains("answered in TLS: its listener is SSL or SASL_SSL"),
        "{plain}"
    );

    // An unknown key is a warning; a bad value an error naming the key.
    let mut text =
        std::fs::read_to_string(secured.jaas_config("x", "admin", ADMIN_PASSWORD)).expect("read");
    text.push_str("client.dns.lookup=use_all_dns_ips\n");
    let warned = secured.file("warned.properties", &text);
    let output = run(broker, &["topic", "list", "--command-config", &warned]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("warning: --command-config")
            && stderr.contains("client.dns.lookup is not a key the CLI uses"),
        "{stderr}"
    );
    // TLS without the login a SASL_SSL listener wants: it closes the
    // connection after ApiVersions, and the error says what may be missing.
    let no_login = secured.file(
        "no-login.properties",
        &format!(
            "security.protocol=SSL\nssl.truststore.location={}\n",
            secured.pki.ca_path().display()
        ),
    );
    let refused = fails_as(broker, &no_login, &["topic", "list"]);
    assert!(
        refused.contains(
            "if its listener is SASL_PLAINTEXT or SASL_SSL, log in with --command-config"
        ),
        "{refused}"
    );
    let bad = secured.file("bad.properties", "security.protocol=SASL_TLS\n");
    let refused = fails_as(broker, &bad, &["topic", "list"]);
    assert!(
        refused.contains("bad.properties: security.protocol: \"SASL_TLS\" is not one of"),
        "{refused}"
    );
    let jks = secured.file(
        "jks.properties",
        "security.protocol=SSL\nssl.truststore.type=JKS\nssl.truststore.location=/x.jks\n",
    );
    let refused = fails_as(broker, &jks, &["topic", "list"]);
    assert!(
        refused.contains("ssl.truststore.type: \"JKS\""),
        "{refused}"
    );
}

#[test]
fn a_client_certificate_from_command_config_is_the_principal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "rafka mTLS CA");
    let ca = pki.ca_path().display().to_string();
    let broker = BrokerProcess::start(
        rafka(1)
            .property("listeners", "SSL://127.0.0.1:0")
            .property(
                "ssl.keystore.location",
                &pki.server_path().display().to_string(),
            )
            .property("ssl.truststore.location", &ca)
            .property("ssl.client.auth", "required")
            .property(
                "authorizer.class.name",
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            )
            .property("super.users", "User:CN=ops")
            .property("rafka.log.dir.min.free.bytes", "0"),
    );
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let ops = pki.client(&[(rcgen::DnType::CommonName, "ops")]);
    // The key encrypted (PKCS#8, PBES2), opened with ssl.key.password.
    let keystore = write(
        "ops.pem",
        format!(
            "{}{}",
            ops.encrypted_key_pem("ops-key-secret"),
            ops.certificate_pem
        ),
    );
    let mtls = write(
        "mtls.properties",
        format!(
            "security.protocol=SSL\nssl.truststore.location={ca}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={keystore}\n\
             ssl.key.password=ops-key-secret\n"
        ),
    );
    let wrong_key_password = write(
        "wrong-key.properties",
        format!(
            "security.protocol=SSL\nssl.truststore.location={ca}\n\
             ssl.keystore.location={keystore}\nssl.key.password=nope\n"
        ),
    );
    let no_key_password = write(
        "no-key-password.properties",
        format!(
            "security.protocol=SSL\nssl.truststore.location={ca}\n\
             ssl.keystore.location={keystore}\n"
        ),
    );
    let refused = fails_as(&broker, &no_key_password, &["acl", "list"]);
    assert!(
        refused.contains("ssl.key.password is missing (the client key is encrypted)"),
        "{refused}"
    );
    let refused = fails_as(&broker, &wrong_key_password, &["acl", "list"]);
    assert!(
        refused.contains("ssl.key.password does not open the client key"),
        "{refused}"
    );
    // Only a super user may list ACLs: the certificate's subject is it.
    assert_eq!(
        json_as(&broker, &mtls, &["acl", "list"]),
        serde_json::json!([])
    );
    let created = json_as(&broker, &mtls, &["topic", "create", "by-ops"]);
    assert_eq!(created["name"], "by-ops");

    let anonymous = write(
        "anonymous.properties",
        format!("security.protocol=SSL\nssl.truststore.location={ca}\n"),
    );
    let refused = fails_as(&broker, &anonymous, &["acl", "list"]);
    // TLS 1.3: the broker's refusal arrives with the first request.
    assert!(
        refused.contains("received fatal alert: CertificateRequired"),
        "{refused}"
    );
}

#[test]
fn sasl_plaintext_with_plain_through_command_config() {
    let broker = BrokerProcess::start(
        rafka(1)
            .property("listener.security.protocol.map", "PLAINTEXT:SASL_PLAINTEXT")
            .property("sasl.enabled.mechanisms", "PLAIN")
            .property(
                "listener.name.plaintext.plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 user_alice=\"alice-secret\";",
            ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |name: &str, password: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
                 sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \
                 required username=\"alice\" password=\"{password}\";\n"
            ),
        )
        .expect("write");
        path.display().to_string()
    };
    let alice = config("alice.properties", "alice-secret");
    let created = json_as(&broker, &alice, &["topic", "create", "plain-topic"]);
    assert_eq!(created["name"], "plain-topic");
    let table = ok_as(&broker, &alice, &["topic", "list"]);
    assert!(
        table.lines().any(|l| l.starts_with("plain-topic ")),
        "{table}"
    );
    let wrong = config("wrong.properties", "guess");
    let refused = fails_as(&broker, &wrong, &["topic", "list"]);
    assert!(
        refused.contains("SASL PLAIN login as alice")
            && refused.contains(
                "SASL_AUTHENTICATION_FAILED: Authentication failed: Invalid username or password"
            ),
        "{refused}"
    );
    // Without a login the SASL listener closes after ApiVersions.
    let refused = fails(&broker, &["topic", "list"]);
    assert!(
        refused.contains("if its listener is SASL_PLAINTEXT or SASL_SSL"),
        "{refused}"
    );
}
