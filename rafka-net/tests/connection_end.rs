//! What a connection's end does to the requests it started, over a real
//! loopback listener of the in-process broker (1, 2 and 4 shards): a
//! long-polling Fetch ends with its connection (the socket is let go at
//! once), answers at once on a clean stop, and a Produce already read is
//! still appended when its client has gone.
//!
//! The broker's own bound on a fetch's wait (`rafka.fetch.max.wait.ms`)
//! is lifted here to i32::MAX, so only the connection's end can finish
//! these waits.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{FetchRequest, FetchResponse};
use rafka_testkit::broker::{blocking, ListenerState};
use rafka_testkit::proto::{long_poll_fetch, produce_request};
use rafka_testkit::records::{stored, value_batch};
use rafka_testkit::{Broker, TestBroker, WireClient, SHARD_MATRIX};

/// Upper bound on a scenario; reached only when the code under test hangs.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a condition is polled for before the test fails.
const CONDITION_DEADLINE: Duration = Duration::from_secs(30);
/// Between two looks at the listener's state.
const POLL_PAUSE: Duration = Duration::from_millis(2);
const FETCH_VERSION: i16 = 12;
const PRODUCE_VERSION: i16 = 9;

/// Runs `scenario` on a listening broker whose fetches may wait forever.
fn with_listening_brokers<F, Fut>(scenario: F)
where
    F: FnOnce(Broker) -> Fut + Send + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    TestBroker::builder()
        .network(true)
        .timeout(TEST_TIMEOUT)
        .config(|c| c.fetch_max_wait_ms = i32::MAX)
        .run_matrix(&SHARD_MATRIX, scenario);
}

/// Polls the listener's state until `done` holds; fails the test after
/// [`CONDITION_DEADLINE`].
async fn wait_for(
    broker: &Broker,
    what: &str,
    done: impl Fn(&ListenerState) -> bool,
) -> ListenerState {
    let deadline = Instant::now() + CONDITION_DEADLINE;
    loop {
        let state = broker.listener_state().await;
        if done(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {state:?}"
        );
        glommio::timer::sleep(POLL_PAUSE).await;
    }
}

/// A fetch of both partitions of `topic` that only data could answer
/// (there is none) and that would wait for ~24.8 days.
fn parked_fetch(topic: &str) -> FetchRequest {
    long_poll_fetch(topic, &[0, 1], i32::MAX, i32::MAX)
}

/// Connects and sends the fetch; the broker parks it.
async fn park_a_fetch(broker: &Broker, topic: &str) -> (WireClient, i32) {
    let addr = broker.addr();
    let request = parked_fetch(topic);
    let sent = blocking(move || {
        let mut client = WireClient::connect(addr, "parked").expect("connect");
        let correlation_id = client.send(FETCH_VERSION, &request).expect("send fetch");
        (client, correlation_id)
    })
    .await;
    let parked = wait_for(broker, "the fetch to be served", |s| {
        s.requests_running == 1
    })
    .await;
    assert_eq!(parked.connections_open, 1);
    sent
}

#[test]
fn a_parked_fetch_ends_with_its_connection() {
    with_listening_brokers(|broker| async move {
        broker.create_topic_id("parked", 2, &[]).await;
        let (client, _) = park_a_fetch(&broker, "parked").await;
        drop(client);
        let ended = wait_for(&broker, "the connection and its fetch to end", |s| {
            s.connections_open == 0 && s.requests_running == 0
        })
        .await;
        assert_eq!(ended.metrics.connections_accepted, 1);
        assert_eq!(ended.metrics.connections_closed, 1);
        assert_eq!(ended.metrics.read_buffer_bytes, 0);
        assert_eq!(ended.metrics.protocol_errors(), 0);
    });
}

#[test]
fn a_clean_stop_answers_a_parked_fetch_at_once() {
    with_listening_brokers(|broker| async move {
        broker.create_topic_id("stopping", 2, &[]).await;
        let (mut client, correlation_id) = park_a_fetch(&broker, "stopping").await;
        let read = blocking(move || {
            let response = client.receive::<FetchRequest>(FETCH_VERSION, correlation_id);
            let after = client.read_until_closed();
            (response, after)
        });
        // Returns only once every connection has drained: with the fetch
        // still parked it would not.
        let ((), (response, after)) =
            futures_util::future::join(broker.stop_listening(), read).await;
        let response: FetchResponse = response.expect("the parked fetch is answered");
        assert_eq!(response.error_code, 0);
        assert_eq!(response.responses.len(), 1);
        let topic = &response.responses[0];
        assert_eq!(topic.topic.0.as_str(), "stopping");
        let answered: Vec<(i32, i16, i64, usize)> = topic
            .partitions
            .iter()
            .map(|p| {
                let records_bytes = p.records.as_ref().map_or(0, |r| r.len());
                (
                    p.partition_index,
                    p.error_code,
                    p.high_watermark,
                    records_bytes,
                )
            })
            .collect();
        assert_eq!(answered, vec![(0, 0, 0, 0), (1, 0, 0, 0)]);
        assert_eq!(after.expect("then closed"), Vec::<u8>::new());
    });
}

#[test]
fn a_produce_read_before_its_client_left_is_still_appended() {
    with_listening_brokers(|broker| async move {
        broker.create_topic_id("kept", 1, &[]).await;
        let addr = broker.addr();
        let records = value_batch("written after the client left");
        let request = produce_request(-1, vec![("kept", vec![(0, Some(records.clone()))])]);
        blocking(move || {
            let mut client = WireClient::connect(addr, "gone").expect("connect");
            client
                .send(PRODUCE_VERSION, &request)
                .expect("send produce");
            // Dropped: closed without reading the answer.
        })
        .await;
        // The frame is read before the end of stream, so once the
        // connection has closed the produce has been dispatched.
        wait_for(&broker, "the connection and its produce to end", |s| {
            s.metrics.connections_closed == 1 && s.requests_running == 0
        })
        .await;
        let (high_watermark, batches) = broker.fetch_all("kept", 0).await;
        assert_eq!(high_watermark, 1);
        let stored_batches: Vec<_> = batches.into_iter().map(|(_, bytes)| bytes).collect();
        assert_eq!(stored_batches, vec![stored(&records, 0)]);
    });
}
