//! Quota sensors: per quota key, a sensor per [`QuotaId`] that records
//! what a client did and answers the throttle time (Kafka's
//! `ClientQuotaManager`, `ClientRequestQuotaManager` and
//! `ControllerMutationQuotaManager` without their threads and locks).
//!
//! Lives on the owner shard of each id (see the module doc of
//! [`crate::quota`]); nothing here is shared between shards.

use std::collections::HashMap;

use super::entity::QuotaKey;
use super::rate::{
    bounded_throttle_time_ms, throttle_time_ms, QuotaWindow, SampledRate, TokenBucket,
};
use super::table::{QuotaId, QuotaTable};

/// Kafka's `InactiveSensorExpirationTimeSeconds`: a sensor idle this long
/// is dropped.
pub const SENSOR_INACTIVE_MS: i64 = 3_600_000;

/// Sensors one [`QuotaSensors`] keeps at most. Client ids are chosen by
/// clients, so without a bound a client cycling through ids would grow
/// the map for an hour; when full, the idlest sensor goes first (its
/// client loses its history, not its quota).
pub const SENSORS_MAX: usize = 100_000;

#[derive(Debug, Clone)]
enum Stat {
    Rate(SampledRate),
    Bucket(TokenBucket),
}

#[derive(Debug, Clone)]
struct Sensor {
    stat: Stat,
    last_record_ms: i64,
}

/// The sensors of one quota key.
#[derive(Debug, Clone)]
pub struct QuotaSensors {
    key: QuotaKey,
    window: QuotaWindow,
    sensors: HashMap<QuotaId, Sensor>,
}

impl QuotaSensors {
    pub fn new(key: QuotaKey, window: QuotaWindow) -> QuotaSensors {
        QuotaSensors {
            key,
            window,
            sensors: HashMap::new(),
        }
    }

    pub fn key(&self) -> QuotaKey {
        self.key
    }

    pub fn len(&self) -> usize {
        self.sensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }

    /// Whether `id` has a sensor now (it expires after an idle hour).
    pub fn contains(&self, id: &QuotaId) -> bool {
        self.sensors.contains_key(id)
    }

    /// Records `value` for `id` and answers the throttle time in ms (0
    /// when within `bound`, or without one): Kafka's
    /// `recordAndGetThrottleTimeMs`. Byte rates throttle by
    /// `(rate - bound) / bound * window`; the request quota caps that at
    /// one window (`ClientRequestQuotaManager`); the controller mutation
    /// quota is a token bucket, throttled until it is back at zero.
    ///
    /// The result saturates at `i32::MAX` where Kafka's `toInt` would wrap
    /// (a tiny quota against a large request).
    pub fn record(&mut self, id: &QuotaId, bound: Option<f64>, value: f64, now_ms: i64) -> i32 {
        self.record_no_throttle(id, bound, value, now_ms);
        self.throttle_ms(id, bound, now_ms)
    }

    /// Records without checking (Kafka's `recordNoThrottle`; the fetch
    /// path's "unrecord" is a negative value).
    pub fn record_no_throttle(
        &mut self,
        id: &QuotaId,
        bound: Option<f64>,
        value: f64,
        now_ms: i64,
    ) {
        let window = self.window;
        let sensor = self.sensor(id, now_ms);
        sensor.last_record_ms = now_ms;
        match &mut sensor.stat {
            Stat::Rate(rate) => rate.record(window, value, now_ms),
            // Kafka's bucket records nothing without a quota.
            Stat::Bucket(bucket) => {
                if let Some(bound) = bound {
                    bucket.record(window, bound, value, now_ms);
                }
            }
        }
    }

    /// The throttle time `id` would get now without recording anything:
    /// the check before a strict controller mutation
    /// (`StrictControllerMutationQuota`), or a shard's early look.
    pub fn throttle_ms(&mut self, id: &QuotaId, bound: Option<f64>, now_ms: i64) -> i32 {
        let Some(bound) = bound else {
            return 0;
        };
        let window = self.window;
        let key = self.key;
        let Some(sensor) = self.sensors.get_mut(id) else {
            return 0;
        };
        let throttle_ms = match &mut sensor.stat {
            Stat::Rate(rate) => {
                let measured = rate.measure(window, now_ms);
                if measured <= bound {
                    return 0;
                }
                let window_size_ms = rate.window_size_ms(window, now_ms);
                if key == QuotaKey::RequestPercentage {
                    bounded_throttle_time_ms(measured, bound, window_size_ms, window.window_ms())
                } else {
                    throttle_time_ms(measured, bound, window_size_ms)
                }
            }
            Stat::Bucket(bucket) => bucket.throttle_time_ms(window, bound, now_ms),
        };
        i32::try_from(throttle_ms.max(0)).unwrap_or(i32::MAX)
    }

    /// The measured rate of `id` (per second; the token bucket's credits
    /// for controller mutations), for metrics.
    pub fn measure(&mut self, id: &QuotaId, bound: Option<f64>, now_ms: i64) -> Option<f64> {
        let window = self.window;
        let sensor = self.sensors.get_mut(id)?;
        Some(match &mut sensor.stat {
            Stat::Rate(rate) => rate.measure(window, now_ms),
            Stat::Bucket(bucket) => bucket.measure(window, bound?, now_ms),
        })
    }

    /// Drops sensors idle for [`SENSOR_INACTIVE_MS`]; returns how many.
    pub fn expire_inactive(&mut self, now_ms: i64) -> usize {
        let before = self.sensors.len();
        self.sensors
            .retain(|_, sensor| now_ms - sensor.last_record_ms < SENSOR_INACTIVE_MS);
        before - self.sensors.len()
    }

    fn sensor(&mut self, id: &QuotaId, now_ms: i64) -> &mut Sensor {
        if !self.sensors.contains_key(id) {
            if self.sensors.len() >= SENSORS_MAX {
                self.evict_idlest(now_ms);
            }
            let stat = match self.key {
                QuotaKey::ControllerMutationRate => Stat::Bucket(TokenBucket::new()),
                _ => Stat::Rate(SampledRate::new()),
            };
            let sensor = Sensor {
                stat,
                last_record_ms: now_ms,
            };
            self.sensors.insert(id.clone(), sensor);
        }
        match self.sensors.get_mut(id) {
            Some(sensor) => sensor,
            None => unreachable!("sensor inserted above"),
        }
    }

    fn evict_idlest(&mut self, now_ms: i64) {
        if self.expire_inactive(now_ms) > 0 {
            return;
        }
        let idlest = self
            .sensors
            .iter()
            .min_by_key(|(_, sensor)| sensor.last_record_ms)
            .map(|(id, _)| id.clone());
        if let Some(id) = idlest {
            self.sensors.remove(&id);
        }
    }
}

/// The client quota sensors of one shard, all keys but the IP
/// connection rate (which the listener's connection limits own).
#[derive(Debug, Clone)]
pub struct ClientQuotas {
    produce: QuotaSensors,
    fetch: QuotaSensors,
    request: QuotaSensors,
    controller_mutation: QuotaSensors,
}

impl ClientQuotas {
    pub fn new(window: QuotaWindow) -> ClientQuotas {
        ClientQuotas {
            produce: QuotaSensors::new(QuotaKey::ProducerByteRate, window),
            fetch: QuotaSensors::new(QuotaKey::ConsumerByteRate, window),
            request: QuotaSensors::new(QuotaKey::RequestPercentage, window),
            controller_mutation: QuotaSensors::new(QuotaKey::ControllerMutationRate, window),
        }
    }

    /// The sensors of `key`; `None` for the IP connection rate.
    pub fn sensors(&mut self, key: QuotaKey) -> Option<&mut QuotaSensors> {
        match key {
            QuotaKey::ProducerByteRate => Some(&mut self.produce),
            QuotaKey::ConsumerByteRate => Some(&mut self.fetch),
            QuotaKey::RequestPercentage => Some(&mut self.request),
            QuotaKey::ControllerMutationRate => Some(&mut self.controller_mutation),
            QuotaKey::ConnectionCreationRate => None,
        }
    }

    /// The "record and check" step of a request path, on one shard: the
    /// quota of `(user, client_id)` from `table`, `value` recorded
    /// against it at `now_ms`, and the throttle time in ms (0 under the
    /// quota or without one). With a single shard this is all there is;
    /// with several, [`super::owner`] says which shard calls it.
    pub fn record(
        &mut self,
        table: &QuotaTable,
        key: QuotaKey,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: i64,
    ) -> i32 {
        let (id, bound) = table.resolve(key, user, client_id);
        self.record_for(key, &id, bound, value, now_ms)
    }

    /// Records for an already resolved sensor id, re-reading its quota from
    /// `table` (the owner's image may be newer than the sender's).
    pub fn record_id(
        &mut self,
        table: &QuotaTable,
        key: QuotaKey,
        id: &QuotaId,
        value: f64,
        now_ms: i64,
    ) -> i32 {
        let bound = table.quota_limit(key, id);
        self.record_for(key, id, bound, value, now_ms)
    }

    /// Kafka's `unrecordQuotaSensor`: takes back `value` recorded for `id`
    /// at `now_ms` (a throttled fetch answers empty, so its bytes must not
    /// count), by recording it negated.
    pub fn unrecord_id(
        &mut self,
        table: &QuotaTable,
        key: QuotaKey,
        id: &QuotaId,
        value: f64,
        now_ms: i64,
    ) {
        let bound = table.quota_limit(key, id);
        if let Some(sensors) = self.sensors(key) {
            sensors.record_no_throttle(id, bound, -value, now_ms);
        }
    }

    /// Whether `id` has a sensor for `key` now.
    pub fn contains(&mut self, key: QuotaKey, id: &QuotaId) -> bool {
        self.sensors(key)
            .is_some_and(|sensors| sensors.contains(id))
    }

    fn record_for(
        &mut self,
        key: QuotaKey,
        id: &QuotaId,
        bound: Option<f64>,
        value: f64,
        now_ms: i64,
    ) -> i32 {
        match self.sensors(key) {
            Some(sensors) => sensors.record(id, bound, value, now_ms),
            None => 0,
        }
    }

    /// Drops idle sensors of every key; returns how many.
    pub fn expire_inactive(&mut self, now_ms: i64) -> usize {
        self.produce.expire_inactive(now_ms)
            + self.fetch.expire_inactive(now_ms)
            + self.request.expire_inactive(now_ms)
            + self.controller_mutation.expire_inactive(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::entity::{EntityName, QuotaEntity, QuotaValue};

    fn id(user: &str, client_id: &str) -> QuotaId {
        QuotaId {
            user: user.into(),
            client_id: client_id.into(),
        }
    }

    #[test]
    fn byte_rate_throttle_matches_kafkas_formula() {
        let w = QuotaWindow::default();
        let mut sensors = QuotaSensors::new(QuotaKey::ProducerByteRate, w);
        let c = id("", "c");
        // 500 B at t=0 over the assumed 10 s: 50 B/s, under 100 B/s.
        assert_eq!(sensors.record(&c, Some(100.0), 500.0, 0), 0);
        // 1500 B more at 2.5 s: 2000 B / 10.5 s = 190.476 B/s;
        // (190.476 - 100) / 100 * 10500 = 9500 ms.
        assert_eq!(sensors.record(&c, Some(100.0), 1500.0, 2500), 9500);
        // 9.5 s later (12 s) the first sample has expired but the second
        // still holds 1500 B over 10.5 s: 142.857 B/s, 4500 ms more.
        // Kafka's estimate assumes the window stretches; samples instead
        // expire whole, 11 s after their last event.
        assert_eq!(sensors.throttle_ms(&c, Some(100.0), 12_000), 4500);
        // At 13.5 s both samples have expired.
        assert_eq!(sensors.throttle_ms(&c, Some(100.0), 13_500), 0);
        // No quota: never throttled.
        assert_eq!(sensors.record(&id("", "d"), None, 1e12, 0), 0);
    }

    #[test]
    fn request_quota_throttle_is_capped_at_one_window() {
        let w = QuotaWindow::default();
        let mut sensors = QuotaSensors::new(QuotaKey::RequestPercentage, w);
        // 5000 "percent-seconds" over 10 s: 500% against 50%: uncapped
        // throttle would be 90 s.
        assert_eq!(sensors.record(&id("u", ""), Some(50.0), 5000.0, 0), 1000);
    }

    #[test]
    fn controller_mutations_use_a_token_bucket() {
        let w = QuotaWindow::default();
        let mut sensors = QuotaSensors::new(QuotaKey::ControllerMutationRate, w);
        let c = id("", "admin");
        // Quota 2/s, burst 22: 20 partitions at once fit...
        let t = 1_000_000;
        assert_eq!(sensors.throttle_ms(&c, Some(2.0), t), 0);
        assert_eq!(sensors.record(&c, Some(2.0), 20.0, t), 0);
        // ...8 more leave -6: 3 s to refill.
        assert_eq!(sensors.record(&c, Some(2.0), 8.0, t), 3000);
        // A strict check 1 s later without recording: 2 s left.
        assert_eq!(sensors.throttle_ms(&c, Some(2.0), t + 1000), 2000);
    }

    #[test]
    fn idle_sensors_expire_and_the_map_is_bounded() {
        let mut sensors = QuotaSensors::new(QuotaKey::ProducerByteRate, QuotaWindow::default());
        sensors.record(&id("", "a"), Some(1.0), 1.0, 0);
        sensors.record(&id("", "b"), Some(1.0), 1.0, 1000);
        assert_eq!(sensors.expire_inactive(SENSOR_INACTIVE_MS), 1);
        assert_eq!(sensors.len(), 1);
        for i in 0..SENSORS_MAX + 5 {
            sensors.record(&id("", &i.to_string()), None, 1.0, 2000 + i as i64);
        }
        assert_eq!(sensors.len(), SENSORS_MAX);
        // The idlest went first: "b" (1 s), then "0" to "4".
        assert!(sensors.measure(&id("", "b"), None, 0).is_none());
        assert!(sensors.measure(&id("", "4"), None, 0).is_none());
        assert!(sensors.measure(&id("", "5"), None, 0).is_some());
    }

    #[test]
    fn record_resolves_the_quota_from_the_table() {
        let mut table = QuotaTable::new();
        table.set(
            QuotaEntity::User(EntityName::Default),
            QuotaKey::ProducerByteRate,
            QuotaValue::new(100.0).expect("positive"),
        );
        let mut quotas = ClientQuotas::new(QuotaWindow::default());
        let p = QuotaKey::ProducerByteRate;
        // Two clients of user "u" share the user's sensor.
        assert_eq!(quotas.record(&table, p, "u", "c1", 900.0, 0), 0);
        assert_eq!(quotas.record(&table, p, "u", "c2", 200.0, 0), 1000);
        assert_eq!(quotas.record_id(&table, p, &id("u", ""), 0.0, 0), 1000);
        // Another user has its own sensor.
        assert_eq!(quotas.record(&table, p, "v", "c1", 900.0, 0), 0);
        // The fetch key has no quota at all.
        let f = QuotaKey::ConsumerByteRate;
        assert_eq!(quotas.record(&table, f, "u", "c1", 1e9, 0), 0);
        assert_eq!(quotas.expire_inactive(SENSOR_INACTIVE_MS), 3);
    }

    #[test]
    fn unrecord_takes_a_fetch_back() {
        let mut table = QuotaTable::new();
        let f = QuotaKey::ConsumerByteRate;
        table.set(
            QuotaEntity::ClientId(EntityName::Named("c".into())),
            f,
            QuotaValue::new(100.0).expect("positive"),
        );
        let mut quotas = ClientQuotas::new(QuotaWindow::default());
        let c = id("", "c");
        // 2000 B over the assumed 10 s against 100 B/s: throttled 10 s...
        assert_eq!(quotas.record_id(&table, f, &c, 2000.0, 0), 10_000);
        // ...taken back, the sensor is where it was: 500 B pass.
        quotas.unrecord_id(&table, f, &c, 2000.0, 0);
        assert!(quotas.contains(f, &c));
        assert_eq!(quotas.record_id(&table, f, &c, 500.0, 0), 0);
        assert!(!quotas.contains(QuotaKey::ProducerByteRate, &c));
    }
}
