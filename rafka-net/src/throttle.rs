//! How a throttled client is made to wait (KIP-219), and the request
//! quota's measure.
//!
//! A response whose throttle time is above zero goes out at once, and its
//! connection then reads nothing more for that long ([`Mute`], held by the
//! [`crate::session::Session`], honoured by the connection's reader):
//! Kafka's `SocketServer` mutes the channel the same way
//! (`ChannelMuteEvent.THROTTLE_STARTED` / `THROTTLE_ENDED`). A client
//! that understands the field ([`client_throttles`]: Kafka's
//! `AbstractResponse.shouldClientThrottle` per response type) waits by
//! itself; for request versions older than KIP-219 the response itself is
//! held back for the throttle time too, as brokers did before it, so a
//! client that ignores the field still cannot go faster. Either wait ends
//! at once when the connection ends (shutdown, peer gone).
//!
//! Waits run on the shard's clock (`rafka_core::io::Clock`), the clock
//! the quota arithmetic read, so a test that moves a manual clock moves
//! them too: the wait re-reads the clock at least every
//! [`CLOCK_RECHECK`].
//!
//! Lives on: the shard serving the connection.

use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use rafka_core::io::Clock;

/// Longest sleep before the clock is read again (only a manual clock moves
/// faster than the timer).
pub const CLOCK_RECHECK: Duration = Duration::from_millis(50);

/// Kafka's `AbstractResponse.nanosToPercentage` factor: request time in
/// nanoseconds to the percent-seconds `request_percentage` counts.
pub const NANOS_TO_PERCENT: f64 = 100.0 / 1e9;

/// Whether a client of `api_key` at `version` throttles itself on the
/// response's throttle time (Kafka's `shouldClientThrottle` of each
/// response type; APIs without an override answer false).
pub fn client_throttles(api_key: ApiKey, version: i16) -> bool {
    use ApiKey::*;
    let since: i16 = match api_key {
        Produce => 6,
        Fetch => 8,
        ListOffsets => 3,
        Metadata => 6,
        OffsetCommit => 4,
        OffsetFetch => 4,
        FindCoordinator => 2,
        JoinGroup => 3,
        Heartbeat => 2,
        LeaveGroup => 2,
        SyncGroup => 2,
        DescribeGroups => 2,
        ListGroups => 2,
        ApiVersions => 2,
        CreateTopics => 3,
        DeleteTopics => 2,
        DeleteRecords => 1,
        InitProducerId => 1,
        AddPartitionsToTxn => 1,
        AddOffsetsToTxn => 1,
        EndTxn => 1,
        TxnOffsetCommit => 1,
        DescribeAcls => 1,
        CreateAcls => 1,
        DeleteAcls => 1,
        DescribeConfigs => 2,
        AlterConfigs => 1,
        DescribeLogDirs => 1,
        CreatePartitions => 1,
        DeleteGroups => 1,
        IncrementalAlterConfigs
        | OffsetDelete
        | ElectLeaders
        | AlterPartitionReassignments
        | ListPartitionReassignments
        | DescribeUserScramCredentials
        | AlterUserScramCredentials
        | DescribeTopicPartitions => 0,
        _ => return false,
    };
    version >= since
}

/// Whether Kafka exempts `api_key` from the request quota whatever the
/// request says: the broker-to-broker APIs it answers with
/// `sendResponseExemptThrottle` (of those, kafka-protocol still knows
/// these), and the SASL exchange, which Kafka's
/// authenticator serves outside `KafkaApis`. (A follower's fetch and an
/// acks=0 produce are exempted by their handlers.)
pub fn request_quota_exempt(api_key: ApiKey) -> bool {
    matches!(
        api_key,
        ApiKey::WriteTxnMarkers
            | ApiKey::SaslHandshake
            | ApiKey::SaslAuthenticate
            | ApiKey::AlterPartition
    )
}

/// A connection muted until `until_ms` on `clock`.
#[derive(Clone)]
pub struct Mute {
    pub until_ms: i64,
    pub clock: Rc<dyn Clock>,
}

impl std::fmt::Debug for Mute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mute")
            .field("until_ms", &self.until_ms)
            .finish_non_exhaustive()
    }
}

impl Mute {
    /// Whether the mute is over now.
    pub fn is_over(&self) -> bool {
        self.clock.now_ms() >= self.until_ms
    }

    /// Completes once `clock` reads `until_ms` or later.
    pub async fn wait(&self) {
        sleep_until(self.clock.as_ref(), self.until_ms).await;
    }
}

/// Completes once `clock` reads `until_ms` or later, on the shard's timer.
pub async fn sleep_until(clock: &dyn Clock, until_ms: i64) {
    loop {
        let left_ms = until_ms - clock.now_ms();
        if left_ms <= 0 {
            return;
        }
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        glommio::timer::sleep(left.min(CLOCK_RECHECK)).await;
    }
}

/// Runs `work` and measures the time the shard spent polling it: the
/// request's handling time as Kafka's `requestThreadTimeNanos` counts
/// it (time on the handler thread, not time parked waiting for other
/// shards, the disk or new data).
pub async fn busy_nanos<F: Future>(work: F) -> (F::Output, u64) {
    let mut work = pin!(work);
    let mut busy_nanos = 0u64;
    let output = std::future::poll_fn(|cx| {
        let start = Instant::now();
        let poll = work.as_mut().poll(cx);
        let spent = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        busy_nanos = busy_nanos.saturating_add(spent);
        match poll {
            Poll::Ready(output) => Poll::Ready(output),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    (output, busy_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kip_219_versions_follow_kafkas_responses() {
        assert!(!client_throttles(ApiKey::Produce, 5));
        assert!(client_throttles(ApiKey::Produce, 6));
        assert!(!client_throttles(ApiKey::Fetch, 7));
        assert!(client_throttles(ApiKey::Fetch, 8));
        assert!(client_throttles(ApiKey::IncrementalAlterConfigs, 0));
        assert!(!client_throttles(ApiKey::DescribeCluster, 1));
        assert!(!client_throttles(ApiKey::SaslAuthenticate, 2));
    }
}
