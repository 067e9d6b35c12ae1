//! The binary with several listeners: PLAINTEXT and SSL at once (both on
//! port 0), the ready line naming each bound port, and Metadata,
//! FindCoordinator and DescribeCluster answering with the advertised
//! endpoint of the listener the client came in on; CreateTopics, Produce
//! and Fetch over SSL (records byte for byte); a bad key store stops
//! the start with the key named.

mod support;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, TopicName};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use rafka_testkit::proto::{creatable, produce_answers, produce_request};
use rafka_testkit::records::{stored, value_batch};
use rafka_testkit::tls::TestPki;
use rafka_testkit::{BrokerProcess, WireClient};
use support::rafka;

/// (host, port) of the only broker each answer lists.
fn endpoints(client: &mut WireClient) -> [(String, i32); 3] {
    let metadata: MetadataResponse = client
        .call(
            12,
            &MetadataRequest::default().with_topics(Some(Vec::new())),
        )
        .expect("Metadata");
    assert_eq!(metadata.brokers.len(), 1);
    let broker = &metadata.brokers[0];
    let coordinator: FindCoordinatorResponse = client
        .call(
            3,
            &FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("g"))
                .with_key_type(1),
        )
        .expect("FindCoordinator");
    assert_eq!(coordinator.error_code, 0, "{:?}", coordinator.error_message);
    let cluster: DescribeClusterResponse = client
        .call(0, &DescribeClusterRequest::default())
        .expect("DescribeCluster");
    let described = &cluster.brokers[0];
    [
        (broker.host.to_string(), broker.port),
        (coordinator.host.to_string(), coordinator.port),
        (described.host.to_string(), described.port),
    ]
}

#[test]
fn each_listener_is_served_and_advertises_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path(), "rafka test CA");
    let options = rafka(2)
        .property("listeners", "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0")
        .property("advertised.listeners", "PLAINTEXT://plain.example:19092")
        .property(
            "ssl.keystore.location",
            &pki.server_path().display().to_string(),
        )
        // Not what this test is about: a full shared disk must not fail it.
        .property("rafka.log.dir.min.free.bytes", "0");
    let broker = BrokerProcess::start(options);
    let plain = broker
        .listener_addr("PLAINTEXT")
        .expect("PLAINTEXT listener");
    let ssl = broker.listener_addr("SSL").expect("SSL listener");
    assert_eq!(plain, broker.addr, "the first listener leads the line");
    assert_ne!(plain.port(), ssl.port());
    let mut client = WireClient::connect(plain, "plain").expect("connect");
    let want = ("plain.example".to_string(), 19092);
    assert_eq!(endpoints(&mut client), [want.clone(), want.clone(), want]);
    let mut client =
        WireClient::connect_tls(ssl, "ssl", pki.client_config(None), "localhost").expect("TLS");
    let want = ("127.0.0.1".to_string(), i32::from(ssl.port()));
    assert_eq!(endpoints(&mut client), [want.clone(), want.clone(), want]);
    // The binary's CreateTopics, Produce and Fetch over SSL.
    let create = CreateTopicsRequest::default()
        .with_topics(vec![creatable("over-ssl", 1, &[])])
        .with_timeout_ms(30_000);
    let created = client.call(7, &create).expect("CreateTopics");
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0]);
    let batch = value_batch("encrypted in flight");
    let produce = produce_request(-1, vec![("over-ssl", vec![(0, Some(batch.clone()))])]);
    let produced = client.call(9, &produce).expect("Produce");
    let answer = &produce_answers(&produced)[0].1;
    assert_eq!((answer.error_code, answer.base_offset), (0, 0));
    let fetch = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("over-ssl")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_partition_max_bytes(1 << 20)])]);
    let fetched = client.call(12, &fetch).expect("Fetch");
    let data = &fetched.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    assert_eq!(data.records.as_ref(), Some(&stored(&batch, 0)));
}

#[test]
fn a_missing_key_store_stops_the_start_naming_the_key() {
    let options = rafka(1)
        .property("listeners", "SSL://127.0.0.1:0")
        .property(
            "listener.name.ssl.ssl.keystore.location",
            "/nonexistent/k.pem",
        );
    let failure = match BrokerProcess::try_start(options) {
        Ok(_) => panic!("a broker without its key store started"),
        Err(failure) => failure,
    };
    assert_eq!(failure.status.and_then(|s| s.code()), Some(2));
    assert!(
        failure.log.contains(
            "rafka: listener SSL: listener.name.ssl.ssl.keystore.location: reading /nonexistent/k.pem"
        ),
        "{}",
        failure.log
    );
}
