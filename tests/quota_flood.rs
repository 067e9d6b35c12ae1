//! librdkafka held to a producer quota: an in-process broker (2 shards,
//! loopback listener) gets `producer_byte_rate` on a client id through
//! the controller handle (what AlterClientQuotas commits), and an rdkafka
//! producer floods it. Over 20 s of steady flood, measured after the
//! first quota window has filled (`quota.window.num` 3, see below), the bytes the broker read stay within
//! 10% of the quota, and librdkafka's statistics show the throttle times
//! it was sent. Removing the quota lifts the rate without a restart.
//!
//! The assertion is on what the broker let through (the listener's bytes
//! read, which the broker controls by muting the connection), not on any
//! latency.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rafka_shard::runtime::within;
use rafka_testkit::broker::{blocking, Broker};
use rafka_testkit::TestBroker;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Statistics};

const TOPIC: &str = "flood";
const CLIENT_ID: &str = "flooder";
/// Bytes per second.
const QUOTA: f64 = 400_000.0;
const VALUE_BYTES: usize = 1000;
/// `quota.window.num`: 3 samples of 1 s (Kafka's default is 11). A young
/// sensor lets a burst of `(num - 1)` windows of quota through, and that
/// burst leaves the window `num` seconds later, letting as much through
/// again: with 11 samples those swings last longer than the measured
/// stretch, with 3 they are over before it.
const QUOTA_WINDOW_NUM: i32 = 3;
/// Measured once the first window has filled and its burst has left.
const WARM_UP: Duration = Duration::from_secs(2 * QUOTA_WINDOW_NUM as u64);
const MEASURED: Duration = Duration::from_secs(20);
const LIFTED: Duration = Duration::from_secs(4);

/// Keeps the largest throttle time librdkafka's statistics reported.
struct Throttles {
    max_ms: Arc<AtomicI64>,
}

impl ClientContext for Throttles {
    fn stats(&self, statistics: Statistics) {
        for broker in statistics.brokers.values() {
            if let Some(throttle) = &broker.throttle {
                self.max_ms.fetch_max(throttle.max, Ordering::SeqCst);
            }
        }
    }
}

impl ProducerContext for Throttles {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

async fn set_quota(broker: &Broker, value: Option<f64>) {
    broker
        .set_client_quota(Some(CLIENT_ID), "producer_byte_rate", value)
        .await;
}

/// Produces as fast as librdkafka takes records until `stop`.
fn flood(bootstrap: String, stop: Arc<AtomicBool>, max_throttle_ms: Arc<AtomicI64>) {
    let context = Throttles {
        max_ms: max_throttle_ms,
    };
    let producer: BaseProducer<Throttles> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("client.id", CLIENT_ID)
        .set("linger.ms", "5")
        // Requests of 16 KiB: each throttle is short, so 20 s see many.
        .set("batch.size", "16384")
        .set("acks", "1")
        .set("statistics.interval.ms", "500")
        .set("message.timeout.ms", "120000")
        .create_with_context(context)
        .expect("producer");
    let value = vec![b'v'; VALUE_BYTES];
    while !stop.load(Ordering::SeqCst) {
        let record = BaseRecord::to(TOPIC).key("k").payload(&value);
        match producer.send(record) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => panic!("produce: {error}"),
        }
    }
    // Statistics of the last interval, then let go of what is queued.
    producer.poll(Duration::from_millis(600));
    producer.purge(rdkafka::producer::PurgeConfig::default().queue());
}

/// Bytes the listener has read so far, and when.
async fn bytes_in(broker: &Broker) -> (u64, Instant) {
    let bytes = broker.listener_state().await.metrics.bytes_in;
    (bytes, Instant::now())
}

/// A measured stretch on the shard's timer.
async fn sleep(period: Duration) {
    within(period, std::future::pending::<()>()).await;
}

fn rate(from: (u64, Instant), to: (u64, Instant)) -> f64 {
    (to.0 - from.0) as f64 / to.1.duration_since(from.1).as_secs_f64()
}

#[test]
fn librdkafka_is_held_to_its_producer_quota_until_it_is_removed() {
    TestBroker::builder()
        .shards(2)
        .network(true)
        .config(|c| c.quota_window_num = QUOTA_WINDOW_NUM)
        .timeout(Duration::from_secs(120))
        .run(|broker| async move {
            broker.create_topic(TOPIC, 1, &[]).await;
            set_quota(&broker, Some(QUOTA)).await;
            let stop = Arc::new(AtomicBool::new(false));
            let max_throttle_ms = Arc::new(AtomicI64::new(0));
            let bootstrap = broker.addr().to_string();
            let (stopper, throttles) = (Arc::clone(&stop), Arc::clone(&max_throttle_ms));
            let flooder = std::thread::spawn(move || flood(bootstrap, stopper, throttles));

            // The measured stretch: after the first quota window.
            sleep(WARM_UP).await;
            let start = bytes_in(&broker).await;
            sleep(MEASURED).await;
            let end = bytes_in(&broker).await;
            let held = rate(start, end);

            // No quota: the same producer goes faster at once.
            set_quota(&broker, None).await;
            let lifted_start = bytes_in(&broker).await;
            sleep(LIFTED).await;
            let lifted = rate(lifted_start, bytes_in(&broker).await);

            stop.store(true, Ordering::SeqCst);
            blocking(move || flooder.join().expect("flooder")).await;
            eprintln!(
                "quota {QUOTA} B/s: held {held:.0} B/s, lifted {lifted:.0} B/s, \
                 max throttle {} ms",
                max_throttle_ms.load(Ordering::SeqCst)
            );
            assert!(
                (held - QUOTA).abs() <= QUOTA * 0.1,
                "held at {held:.0} B/s against {QUOTA} B/s"
            );
            assert!(max_throttle_ms.load(Ordering::SeqCst) > 0);
            assert!(lifted > 2.0 * QUOTA, "lifted to {lifted:.0} B/s only");
        });
}
