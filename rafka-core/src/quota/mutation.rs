//! The controller mutation quota of one request (KIP-599, Kafka's
//! `ControllerMutationQuotaManager` and its `Strict` / `Permissive` /
//! `Unbounded` `ControllerMutationQuota`): every partition a CreateTopics
//! or CreatePartitions creates and every partition a DeleteTopics deletes
//! counts against the `controller_mutation_rate` of the request's
//! (user, client-id), measured with a [`super::TokenBucket`].
//!
//! - Strict (CreateTopics v6+, CreatePartitions v3+, DeleteTopics v5+):
//!   a topic is refused (THROTTLING_QUOTA_EXCEEDED) while the bucket is
//!   below zero; otherwise its partitions are taken, which may push the
//!   bucket below zero, so the topic that empties it still goes through.
//!   The throttle time is that of the last refusal.
//! - Permissive (older versions): every topic goes through; the throttle
//!   time is how long the bucket takes to refill to zero after the last
//!   mutation that left it negative.
//! - No quota for the client: nothing recorded, no throttle (Kafka's
//!   `UnboundedControllerMutationQuota`).
//!
//! Sans IO: the caller owns the [`QuotaSensors`] (the controller, on
//! shard 0) and passes them to each [`MutationCharge::charge`].

use super::entity::QuotaKey;
use super::sensor::QuotaSensors;
use super::table::{QuotaId, QuotaTable};

/// Who a request's mutations count against, and how: what a handler
/// sends the controller with a CreateTopics, CreatePartitions or
/// DeleteTopics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutationQuota {
    /// The principal's name (`ANONYMOUS` without authentication).
    pub user: String,
    pub client_id: String,
    /// Refuse mutations over the quota (the request's version is new
    /// enough to carry THROTTLING_QUOTA_EXCEEDED).
    pub strict: bool,
    /// The request's time, for the token bucket.
    pub now_ms: i64,
}

/// One request's charge: the sensor and quota it resolved to, and the
/// throttle time so far.
#[derive(Debug, Clone, PartialEq)]
pub struct MutationCharge {
    id: QuotaId,
    bound: Option<f64>,
    strict: bool,
    now_ms: i64,
    throttle_time_ms: i32,
}

impl MutationCharge {
    /// Resolves `quota`'s sensor and bound from `table` (the image's).
    pub fn new(table: &QuotaTable, quota: &MutationQuota) -> MutationCharge {
        let (id, bound) = table.resolve(
            QuotaKey::ControllerMutationRate,
            &quota.user,
            &quota.client_id,
        );
        MutationCharge {
            id,
            bound,
            strict: quota.strict,
            now_ms: quota.now_ms,
            throttle_time_ms: 0,
        }
    }

    /// A charge that never throttles (internal topics, auto-creation).
    pub fn unbounded() -> MutationCharge {
        MutationCharge {
            id: QuotaId {
                user: String::new(),
                client_id: String::new(),
            },
            bound: None,
            strict: false,
            now_ms: 0,
            throttle_time_ms: 0,
        }
    }

    /// Takes `partitions` from the bucket: `Ok` to go ahead, or (strict
    /// only) `Err(throttle_time_ms)`: the mutation must not happen.
    pub fn charge(&mut self, sensors: &mut QuotaSensors, partitions: u32) -> Result<(), i32> {
        debug_assert_eq!(sensors.key(), QuotaKey::ControllerMutationRate);
        if self.bound.is_none() {
            return Ok(());
        }
        let value = f64::from(partitions);
        if self.strict {
            let throttle_ms = sensors.throttle_ms(&self.id, self.bound, self.now_ms);
            if throttle_ms > 0 {
                self.throttle_time_ms = throttle_ms;
                return Err(throttle_ms);
            }
            sensors.record_no_throttle(&self.id, self.bound, value, self.now_ms);
            return Ok(());
        }
        let throttle_ms = sensors.record(&self.id, self.bound, value, self.now_ms);
        if throttle_ms > 0 {
            self.throttle_time_ms = throttle_ms;
        }
        Ok(())
    }

    /// The throttle time the response carries.
    pub fn throttle_time_ms(&self) -> i32 {
        self.throttle_time_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::{EntityName, QuotaEntity, QuotaValue, QuotaWindow};

    /// 2 samples of 1 s: a burst of 4 tokens at 2 per second.
    const NOW_MS: i64 = 1_700_000_000_000;

    fn table(rate: f64) -> QuotaTable {
        let mut table = QuotaTable::new();
        let entity = QuotaEntity::ClientId(EntityName::Named("c".into()));
        let value = QuotaValue::new(rate).expect("a valid rate");
        table.set(entity, QuotaKey::ControllerMutationRate, value);
        table
    }

    fn quota(strict: bool, now_ms: i64) -> MutationQuota {
        MutationQuota {
            user: "ANONYMOUS".into(),
            client_id: "c".into(),
            strict,
            now_ms,
        }
    }

    fn sensors() -> QuotaSensors {
        QuotaSensors::new(QuotaKey::ControllerMutationRate, QuotaWindow::new(2, 1))
    }

    #[test]
    fn strict_lets_the_emptying_topic_through_then_refuses() {
        let table = table(2.0);
        let mut sensors = sensors();
        let mut charge = MutationCharge::new(&table, &quota(true, NOW_MS));
        // 4 tokens: the first 10 go through (-6 left), the rest wait for
        // 6 tokens at 2 per second.
        assert_eq!(charge.charge(&mut sensors, 10), Ok(()));
        assert_eq!(charge.charge(&mut sensors, 10), Err(3000));
        assert_eq!(charge.charge(&mut sensors, 1), Err(3000));
        assert_eq!(charge.throttle_time_ms(), 3000);
        // 1 s later, a new request: 4 tokens short, 2 s to wait.
        let mut later = MutationCharge::new(&table, &quota(true, NOW_MS + 1000));
        assert_eq!(later.charge(&mut sensors, 1), Err(2000));
        // Back at zero, a mutation goes through again.
        let mut refilled = MutationCharge::new(&table, &quota(true, NOW_MS + 3000));
        assert_eq!(refilled.charge(&mut sensors, 1), Ok(()));
        assert_eq!(refilled.throttle_time_ms(), 0);
    }

    #[test]
    fn permissive_goes_ahead_and_reports_the_refill_time() {
        let table = table(2.0);
        let mut sensors = sensors();
        let mut charge = MutationCharge::new(&table, &quota(false, NOW_MS));
        assert_eq!(charge.charge(&mut sensors, 3), Ok(()));
        assert_eq!(charge.throttle_time_ms(), 0);
        assert_eq!(charge.charge(&mut sensors, 10), Ok(()));
        assert_eq!(charge.charge(&mut sensors, 10), Ok(()));
        // 4 - 23 = -19 tokens: 9.5 s at 2 per second.
        assert_eq!(charge.throttle_time_ms(), 9500);
    }

    #[test]
    fn no_quota_records_nothing() {
        let table = table(2.0);
        let mut sensors = sensors();
        let mut other = quota(true, NOW_MS);
        other.client_id = "unlimited".into();
        let mut charge = MutationCharge::new(&table, &other);
        for _ in 0..5 {
            assert_eq!(charge.charge(&mut sensors, 1000), Ok(()));
        }
        assert_eq!(charge.throttle_time_ms(), 0);
        assert!(sensors.is_empty());
        let mut unbounded = MutationCharge::unbounded();
        assert_eq!(unbounded.charge(&mut sensors, 1000), Ok(()));
        assert!(sensors.is_empty());
    }
}
