//! ElectLeaders end to end on a real broker core, at its lowest (v0) and
//! highest (v2, flexible) versions: a single node never needs an
//! election.

use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use rafka_proto::error::ErrorCode;
use rafka_testkit::proto::topic_name;
use rafka_testkit::{Broker, TestBroker};

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const ELECTION_NOT_NEEDED: i16 = 84;

fn request(election_type: i8, topics: Option<&[(&str, &[i32])]>) -> ElectLeadersRequest {
    let topics = topics.map(|topics| {
        topics
            .iter()
            .map(|&(name, partitions)| {
                TopicPartitions::default()
                    .with_topic(topic_name(name))
                    .with_partitions(partitions.to_vec())
            })
            .collect()
    });
    ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_topic_partitions(topics)
        .with_timeout_ms(30_000)
}

/// (topic, [(partition, error code, message)]) of every result, in order.
type Results = Vec<(String, Vec<(i32, i16, Option<String>)>)>;

fn results(response: &ElectLeadersResponse) -> Results {
    response
        .replica_election_results
        .iter()
        .map(|t| {
            let partitions = t
                .partition_result
                .iter()
                .map(|p| {
                    let message = p.error_message.as_ref().map(|m| m.to_string());
                    (p.partition_id, p.error_code, message)
                })
                .collect();
            (t.topic.to_string(), partitions)
        })
        .collect()
}

async fn elections_scenario(broker: Broker) {
    broker.create_topic_id("led", 2, &[]).await;
    broker.create_topic_id("other", 1, &[]).await;
    let not_needed = Some(ErrorCode::ELECTION_NOT_NEEDED.message());
    let named: &[(&str, &[i32])] = &[("led", &[1, 0, 5]), ("absent", &[0])];
    // v0 asks for preferred elections (no type field); v1+ may ask for
    // unclean ones too: either way the leader is already the right one.
    for (version, election_type) in [(0, 0), (1, 1), (2, 0), (2, 1)] {
        let response: ElectLeadersResponse = broker
            .call(version, &request(election_type, Some(named)))
            .await;
        assert_eq!(response.error_code, NONE);
        assert_eq!(
            results(&response),
            vec![
                (
                    "led".to_string(),
                    vec![
                        (1, ELECTION_NOT_NEEDED, not_needed.clone()),
                        (0, ELECTION_NOT_NEEDED, not_needed.clone()),
                        (
                            5,
                            UNKNOWN_TOPIC_OR_PARTITION,
                            Some("No such partition as led-5".to_string())
                        ),
                    ]
                ),
                (
                    "absent".to_string(),
                    vec![(
                        0,
                        UNKNOWN_TOPIC_OR_PARTITION,
                        Some("No such topic as absent".to_string())
                    )]
                ),
            ],
            "v{version} type {election_type}"
        );
    }
    // Every partition: only those that needed an election are listed.
    for version in [0, 2] {
        let response: ElectLeadersResponse = broker.call(version, &request(0, None)).await;
        assert_eq!(
            results(&response),
            vec![("led".to_string(), vec![]), ("other".to_string(), vec![])]
        );
    }
    // An election type Kafka does not know.
    let response: ElectLeadersResponse = broker.call(2, &request(2, Some(&[("led", &[0])]))).await;
    assert_eq!(response.error_code, INVALID_REQUEST);
    assert_eq!(
        results(&response),
        vec![(
            "led".to_string(),
            vec![(
                0,
                INVALID_REQUEST,
                Some("Unknown election type 2".to_string())
            )]
        )]
    );
}

#[test]
fn elect_leaders_is_never_needed_on_one_node() {
    TestBroker::builder().run(elections_scenario);
}
