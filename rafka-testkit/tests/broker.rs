//! The harness itself: a failing scenario still stops the broker and fails
//! the test with its own message, a hung one times out, and a networked
//! broker answers the wire client on its listener.

use std::time::Duration;

use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use rafka_testkit::broker::blocking;
use rafka_testkit::{TestBroker, WireClient, SHARD_MATRIX};

#[test]
#[should_panic(expected = "the scenario's own message")]
fn a_panicking_scenario_stops_the_broker_and_fails_with_its_message() {
    TestBroker::builder().shards(2).run(|broker| async move {
        broker.create_topic_id("created", 1, &[]).await;
        panic!("the scenario's own message");
    });
}

#[test]
#[should_panic(expected = "scenario timed out")]
fn a_hung_scenario_times_out() {
    TestBroker::builder()
        .timeout(Duration::from_millis(100))
        .run(|_broker| std::future::pending::<()>());
}

#[test]
fn a_restart_on_the_same_data_dir_keeps_the_topics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = TestBroker::builder().shards(2).data_dir(dir.path());
    broker.clone().run(|broker| async move {
        broker.create_topic_id("kept", 3, &[]).await;
    });
    broker.shards(1).run(|broker| async move {
        let image = broker.shard.image();
        assert_eq!(image.topic("kept").map(|t| t.partition_count()), Some(3));
    });
}

#[test]
fn a_networked_broker_answers_the_wire_client() {
    let broker = TestBroker::builder().network(true);
    broker.run_matrix(&SHARD_MATRIX, |broker| async move {
        let addr = broker.addr();
        let shards = broker.shard_count();
        blocking(move || {
            let mut client = WireClient::connect(addr, "testkit").expect("connect");
            let request = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("rafka-testkit"))
                .with_client_software_version(StrBytes::from_static_str("0.1"));
            let versions = client.call(3, &request).expect("ApiVersions v3");
            assert_eq!(versions.error_code, 0, "{shards} shards");
            let metadata = client
                .call(12, &MetadataRequest::default().with_topics(None))
                .expect("Metadata v12");
            let node = &metadata.brokers[0];
            assert_eq!(
                (node.host.as_str(), node.port),
                ("127.0.0.1", i32::from(addr.port()))
            );
        })
        .await;
    });
}
