//! Client quota enforcement across shards: [`ShardQuotas`], the sensors a
//! shard owns, and [`report`] / [`report_fetch`], the serving shard's
//! step (the design is in the module doc of `rafka_core::quota`).
//!
//! 1. The shard serving a request plans on its own image
//!    ([`QuotaReport::plan`]): no quota for the (user, client id) pair and
//!    key means throttle 0 and no message, as Kafka records nothing while
//!    quotas are off.
//! 2. Otherwise the report goes to the sensor's owner
//!    ([`rafka_core::quota::owner_shard`]) with `invoke_on` (in place when
//!    that is this shard), which records it into its one sensor and
//!    answers the throttle time: Kafka's `ClientQuotaManager` arithmetic
//!    over exactly the values one Kafka broker would have seen.
//! 3. A fetch that comes back throttled is taken back on the owner in the
//!    same job ([`ShardQuotas::unrecord`]), so no scrape sees it.
//!
//! The owner also keeps the per-sensor counters the metrics show
//! ([`QuotaStats`]); they go when the sensor expires (idle for Kafka's
//! hour, [`run_expiry`]) and are bounded as the sensors are
//! (`SENSORS_MAX` per key).
//!
//! Lives on: every shard, one `ShardQuotas` each, touched only by its
//! shard (`RefCell`, never borrowed across an await).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use rafka_core::quota::{
    ClientQuotas, QuotaId, QuotaKey, QuotaReport, QuotaTable, QuotaWindow, SENSORS_MAX,
};

use crate::runtime::within;
use crate::shard::Shard;
use crate::storage::ShardStorage;

/// How often idle sensors are looked for (Kafka's metrics reaper runs
/// every 30 s; a sensor goes after an idle hour).
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(30);

/// Counters kept at most, over all keys, before those of evicted sensors
/// are dropped: twice what the sensors can hold, so the sweep is rare.
const STATS_MAX: usize = 2 * 4 * SENSORS_MAX;

/// What the owner of one sensor counted, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QuotaStats {
    /// Throttle time answered, summed (ms).
    pub throttle_time_ms: u64,
    /// Reports answered with a throttle time above zero.
    pub throttled: u64,
    /// Value kept in the sensor, summed: bytes for the byte rates, request
    /// time in percent-seconds (Kafka's unit) for `request_percentage`;
    /// a throttled fetch's bytes, taken back, are not in it.
    pub value: f64,
}

/// One sensor's counters, as a scrape copies them.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaStatsEntry {
    pub key: QuotaKey,
    pub id: QuotaId,
    pub stats: QuotaStats,
}

/// The sensors this shard owns and their counters.
#[derive(Debug)]
pub struct ShardQuotas {
    sensors: RefCell<ClientQuotas>,
    stats: RefCell<HashMap<(QuotaKey, QuotaId), QuotaStats>>,
}

impl ShardQuotas {
    pub fn new(window: QuotaWindow) -> ShardQuotas {
        ShardQuotas {
            sensors: RefCell::new(ClientQuotas::new(window)),
            stats: RefCell::new(HashMap::new()),
        }
    }

    /// The owner's step: records `report` with the quota of `table` (the
    /// owner's image) and answers the throttle time in ms.
    pub fn apply(&self, report: &QuotaReport, table: &QuotaTable) -> i32 {
        let mut sensors = self.sensors.borrow_mut();
        let throttle_ms = report.apply(&mut sensors, table);
        let mut stats = self.stats.borrow_mut();
        if stats.len() >= STATS_MAX {
            // Sensors evicted for room (SENSORS_MAX) take their counters.
            stats.retain(|(key, id), _| sensors.contains(*key, id));
        }
        let entry = stats.entry((report.key, report.id.clone())).or_default();
        entry.value += report.value;
        if throttle_ms > 0 {
            entry.throttled += 1;
            entry.throttle_time_ms += u64::try_from(throttle_ms).unwrap_or(0);
        }
        throttle_ms
    }

    /// Takes `report` back (Kafka's `unrecordQuotaSensor`): a throttled
    /// fetch answers empty, so its bytes must not count.
    pub fn unrecord(&self, report: &QuotaReport, table: &QuotaTable) {
        self.sensors.borrow_mut().unrecord_id(
            table,
            report.key,
            &report.id,
            report.value,
            report.now_ms,
        );
        if let Some(entry) = self
            .stats
            .borrow_mut()
            .get_mut(&(report.key, report.id.clone()))
        {
            entry.value -= report.value;
        }
    }

    /// Drops sensors idle for an hour, and their counters; how many.
    pub fn expire_inactive(&self, now_ms: i64) -> usize {
        let mut sensors = self.sensors.borrow_mut();
        let expired = sensors.expire_inactive(now_ms);
        if expired > 0 {
            self.stats
                .borrow_mut()
                .retain(|(key, id), _| sensors.contains(*key, id));
        }
        expired
    }

    /// Every sensor's counters, for a scrape.
    pub fn snapshot(&self) -> Vec<QuotaStatsEntry> {
        let mut entries: Vec<QuotaStatsEntry> = self
            .stats
            .borrow()
            .iter()
            .map(|((key, id), stats)| QuotaStatsEntry {
                key: *key,
                id: id.clone(),
                stats: *stats,
            })
            .collect();
        entries.sort_by(|a, b| {
            (a.key, &a.id.user, &a.id.client_id).cmp(&(b.key, &b.id.user, &b.id.client_id))
        });
        entries
    }
}

/// What the owner does with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Keep,
    /// Take it back when throttled (fetch).
    UnrecordIfThrottled,
}

/// A report planned on the serving shard, for the sensor's owner.
#[derive(Debug, Clone)]
pub struct Planned {
    owner: usize,
    report: QuotaReport,
}

/// The serving shard's first step: `None` when no quota applies to
/// `(user, client_id)` for `key` (throttle 0, nothing to send).
pub fn plan<S: ShardStorage>(
    shard: &Shard<S>,
    key: QuotaKey,
    user: &str,
    client_id: &str,
    value: f64,
) -> Option<Planned> {
    let image = shard.image();
    let shard_count = u32::try_from(shard.count()).unwrap_or(u32::MAX);
    let now_ms = shard.clock().now_ms();
    let (owner, report) = QuotaReport::plan(
        image.client_quotas(),
        key,
        user,
        client_id,
        value,
        now_ms,
        shard_count,
    )?;
    let owner = usize::try_from(owner).unwrap_or(usize::MAX);
    Some(Planned { owner, report })
}

/// Whether some `key` quota applies to `(user, client_id)` now.
pub fn applies<S: ShardStorage>(
    shard: &Shard<S>,
    key: QuotaKey,
    user: &str,
    client_id: &str,
) -> bool {
    let image = shard.image();
    let (_, bound) = image.client_quotas().resolve(key, user, client_id);
    bound.is_some()
}

/// The second step: the owner records `planned` and answers the throttle
/// time in ms.
pub async fn send<S: ShardStorage>(shard: &Shard<S>, planned: Planned, then: Then) -> i32 {
    let Planned { owner, report } = planned;
    let work = move |owner: Rc<Shard<S>>| async move {
        let image = owner.image();
        let table = image.client_quotas();
        let throttle_ms = owner.quotas().apply(&report, table);
        if throttle_ms > 0 && then == Then::UnrecordIfThrottled {
            owner.quotas().unrecord(&report, table);
        }
        throttle_ms
    };
    // An owner that is stopping: nobody is throttled by a stopping broker.
    shard.router.invoke_on(owner, work).await.unwrap_or(0)
}

/// Both steps for `value` of `key` by `(user, client_id)`: 0 without a
/// quota (no message), else the owner's throttle time.
pub async fn report<S: ShardStorage>(
    shard: &Shard<S>,
    key: QuotaKey,
    user: &str,
    client_id: &str,
    value: f64,
) -> i32 {
    match plan(shard, key, user, client_id, value) {
        Some(planned) => send(shard, planned, Then::Keep).await,
        None => 0,
    }
}

/// [`report`] for a fetch's response bytes: when throttled, the owner
/// takes them back at once, as Kafka does before answering empty.
pub async fn report_fetch<S: ShardStorage>(
    shard: &Shard<S>,
    user: &str,
    client_id: &str,
    value: f64,
) -> i32 {
    let key = QuotaKey::ConsumerByteRate;
    match plan(shard, key, user, client_id, value) {
        Some(planned) => send(shard, planned, Then::UnrecordIfThrottled).await,
        None => 0,
    }
}

/// The most a fetch by `(user, client_id)` may return without being
/// throttled however idle its sensor was (Kafka's
/// `getMaxValueInQuotaWindow`); `None` without a consumer quota.
pub fn fetch_bytes_bound<S: ShardStorage>(
    shard: &Shard<S>,
    user: &str,
    client_id: &str,
) -> Option<f64> {
    let image = shard.image();
    let (_, bound) = image
        .client_quotas()
        .resolve(QuotaKey::ConsumerByteRate, user, client_id);
    bound.map(|bound| shard.config.quota_window().max_value_in_window(bound))
}

/// The expiry task: every [`EXPIRY_INTERVAL`] drops the sensors idle for
/// an hour, until the shard stops.
pub async fn run_expiry<S: ShardStorage>(shard: Rc<Shard<S>>) {
    loop {
        if within(EXPIRY_INTERVAL, shard.wait_stop()).await.is_some() {
            return;
        }
        let expired = shard.quotas().expire_inactive(shard.clock().now_ms());
        if expired > 0 {
            tracing::debug!(expired, "client quota sensors expired");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rafka_core::quota::{EntityName, QuotaEntity, QuotaValue, SENSOR_INACTIVE_MS};

    #[test]
    fn the_owner_counts_what_it_keeps_and_throttles() {
        let mut table = QuotaTable::new();
        table.set(
            QuotaEntity::ClientId(EntityName::Named("c".into())),
            QuotaKey::ConsumerByteRate,
            QuotaValue::new(100.0).expect("positive"),
        );
        let quotas = ShardQuotas::new(QuotaWindow::default());
        let (_, small) =
            QuotaReport::plan(&table, QuotaKey::ConsumerByteRate, "u", "c", 500.0, 0, 1)
                .expect("quota");
        assert_eq!(quotas.apply(&small, &table), 0);
        let (_, big) =
            QuotaReport::plan(&table, QuotaKey::ConsumerByteRate, "u", "c", 1500.0, 0, 1)
                .expect("quota");
        // 2000 B over 10 s against 100 B/s: 10 s.
        assert_eq!(quotas.apply(&big, &table), 10_000);
        quotas.unrecord(&big, &table);
        let entries = quotas.snapshot();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id.client_id, "c");
        assert_eq!(
            entries[0].stats,
            QuotaStats {
                throttle_time_ms: 10_000,
                throttled: 1,
                value: 500.0
            }
        );
        assert_eq!(quotas.expire_inactive(SENSOR_INACTIVE_MS), 1);
        assert!(quotas.snapshot().is_empty());
    }
}
