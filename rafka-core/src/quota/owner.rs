//! One quota across shards: each sensor has one owner shard, and the
//! shard serving a request reports to it (the design is in the module
//! doc of [`crate::quota`]). This file is the sans-IO half: which shard
//! owns a sensor, what a report carries, and the owner's step.

use super::entity::QuotaKey;
use super::sensor::ClientQuotas;
use super::table::{QuotaId, QuotaTable};
use crate::metadata::ShardId;

/// The shard that holds the sensors of `id` among `shard_count` (at
/// least 1): CRC32C of the id mod the count, so every shard computes the
/// same owner without asking anyone.
pub fn owner_shard(id: &QuotaId, shard_count: u32) -> ShardId {
    assert!(shard_count >= 1, "a broker has at least one shard");
    // The separator keeps ("ab", "c") and ("a", "bc") apart; 0xff never
    // occurs in UTF-8.
    let hash = crc32c::crc32c_append(crc32c::crc32c(id.user.as_bytes()), &[0xff]);
    let hash = crc32c::crc32c_append(hash, id.client_id.as_bytes());
    hash % shard_count
}

/// What the serving shard sends the owner: `value` (bytes, or request
/// time as a percentage) for sensor `id` at the sender's `now_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaReport {
    pub key: QuotaKey,
    pub id: QuotaId,
    pub value: f64,
    pub now_ms: i64,
}

impl QuotaReport {
    /// The serving shard's step: `None` when no quota applies to the pair
    /// (nothing to send, throttle 0, as Kafka records nothing while quotas
    /// are off), else the owner shard and the report for it.
    pub fn plan(
        table: &QuotaTable,
        key: QuotaKey,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: i64,
        shard_count: u32,
    ) -> Option<(ShardId, QuotaReport)> {
        let (id, bound) = table.resolve(key, user, client_id);
        bound?;
        let owner = owner_shard(&id, shard_count);
        Some((
            owner,
            QuotaReport {
                key,
                id,
                value,
                now_ms,
            },
        ))
    }

    /// The owner's step: record into its one sensor for the id and answer
    /// the throttle time in ms. The quota is read from the owner's image,
    /// which may be a newer one than the sender planned with.
    pub fn apply(&self, quotas: &mut ClientQuotas, table: &QuotaTable) -> i32 {
        quotas.record_id(table, self.key, &self.id, self.value, self.now_ms)
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
    fn owners_are_stable_and_spread() {
        assert_eq!(owner_shard(&id("u", "c"), 1), 0);
        let owner = owner_shard(&id("u", "c"), 4);
        assert_eq!(owner_shard(&id("u", "c"), 4), owner);
        assert_ne!(
            (0..4)
                .map(|s| owner_shard(&id("ab", "c"), 4 + s))
                .collect::<Vec<_>>(),
            (0..4)
                .map(|s| owner_shard(&id("a", "bc"), 4 + s))
                .collect::<Vec<_>>()
        );
        let mut per_shard = [0u32; 4];
        for i in 0..400 {
            per_shard[owner_shard(&id("", &format!("client-{i}")), 4) as usize] += 1;
        }
        assert!(
            per_shard.iter().all(|n| (70..=130).contains(n)),
            "{per_shard:?}"
        );
    }

    #[test]
    fn plan_sends_only_when_a_quota_applies() {
        let mut table = QuotaTable::new();
        let p = QuotaKey::ProducerByteRate;
        assert_eq!(QuotaReport::plan(&table, p, "u", "c", 10.0, 0, 4), None);
        table.set(
            QuotaEntity::ClientId(EntityName::Default),
            p,
            QuotaValue::new(100.0).expect("positive"),
        );
        let (owner, report) = QuotaReport::plan(&table, p, "u", "c", 2000.0, 5, 4).expect("quota");
        assert_eq!(owner, owner_shard(&id("", "c"), 4));
        assert_eq!(report.id, id("", "c"));
        let mut quotas = ClientQuotas::new(Default::default());
        // 2000 B over the assumed 10 s against 100 B/s: 10 s.
        assert_eq!(report.apply(&mut quotas, &table), 10_000);
    }
}
