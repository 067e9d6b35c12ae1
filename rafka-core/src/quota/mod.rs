//! Client quotas, sans IO: Kafka's entities and keys, the quota table the
//! metadata image holds, the rate and throttle arithmetic, and the
//! sensors that turn "this client sent n bytes at now_ms" into a throttle
//! time.
//!
//! - `entity`: [`QuotaEntity`] (user, client-id, both, or IP, each with
//!   a `<default>`), [`QuotaKey`], [`QuotaValue`], Kafka's checks.
//! - `table`: [`QuotaTable`]: set / remove / resolve with Kafka's
//!   precedence ([`QuotaId`] names the sensor), DescribeClientQuotas'
//!   [`QuotaFilter`].
//! - `rate`: [`SampledRate`] (Kafka's `Rate` over a `WindowedSum`),
//!   [`throttle_time_ms`], [`TokenBucket`], [`QuotaWindow`].
//! - `sensor`: [`QuotaSensors`] per key, [`ClientQuotas`] for all keys of
//!   one shard: record and check.
//! - `connection`: connection creation rate sensors and per-IP
//!   connection counts (KIP-612, `max.connections.per.ip`).
//! - `owner`: which shard owns a sensor, and the report a serving shard
//!   sends it.
//! - `mutation`: [`MutationQuota`] / [`MutationCharge`], one request's
//!   controller mutation quota (KIP-599), strict or permissive. Its
//!   sensors live with the controller on shard 0, which every topic
//!   mutation reaches, so they need no owner shard.
//!
//! # One quota across shards
//!
//! A client's connections land on shards by SO_REUSEPORT's hash, so a
//! sensor per shard would let a client with connections on N shards use
//! N times its quota. rafka gives every sensor ([`QuotaId`]) one owner,
//! [`owner::owner_shard`]: a hash of the id over the shard count, which
//! every shard computes alone.
//!
//! 1. The shard serving a request resolves the pair's sensor and quota
//!    from its own image ([`QuotaReport::plan`]). No quota: throttle 0,
//!    no message (Kafka records nothing while quotas are off).
//! 2. Otherwise it sends the [`QuotaReport`] (key, id, value, now_ms) to
//!    the owner over the mesh. For produce the value (request bytes) is
//!    known on arrival, so the report travels while the partitions'
//!    owners append, and the answer is gathered with theirs: the
//!    throttle time is only needed for the response, which KIP-219 sends
//!    at once before muting the connection. Fetch knows its value (the
//!    response bytes) only after reading, so it waits for one round trip
//!    at its tail, and, throttled, un-records and answers empty (Kafka's
//!    `unrecordQuotaSensor`).
//! 3. The owner records into its one sensor ([`QuotaReport::apply`]) and
//!    answers the throttle time: exactly Kafka's arithmetic over exactly
//!    the bytes one Kafka broker would have seen, so the enforced rate is
//!    Kafka's whatever the shard count. `tests/quota.rs` runs a seeded
//!    schedule of a client with connections on 1, 2 and 4 shards: held
//!    within 10% of its quota, where sensors per shard let it through at
//!    close to N times.
//!
//! Why not shares of the quota per shard, rebalanced periodically: they
//! are right only while a client's load splits across shards as it did
//! in the last period. A client whose busy connection moves, or whose
//! connections differ in load, is over- or under-throttled until the
//! next rebalance, and a share held for an idle connection is wasted.
//! Tight enough periods to stay within 10% cost as many messages as the
//! owner design, with an approximation left on top. The owner's cost is
//! one small mesh message per request of a client that has a quota (the
//! owner's work is a hash lookup and a few float operations), and a hot
//! client's reports all land on one shard, which does little for each.
//!
//! Reports carry the sender's `now_ms`; shards read one clock, and a
//! report delayed by the mesh lands in the owner's current sample, as a
//! Kafka request that waited in a queue does.

pub mod connection;
pub mod entity;
pub mod mutation;
pub mod owner;
pub mod rate;
pub mod sensor;
pub mod table;

pub use connection::{ConnectionRateSensor, IpConnections, IpVerdict};
pub use entity::{
    check_value, EntityError, EntityName, EntityType, QuotaEntity, QuotaKey, QuotaValue,
    QuotaValueType, ValueError,
};
pub use mutation::{MutationCharge, MutationQuota};
pub use owner::{owner_shard, QuotaReport};
pub use rate::{
    bounded_throttle_time_ms, throttle_time_ms, QuotaWindow, SampledRate, TokenBucket,
    QUOTA_WINDOW_NUM_DEFAULT, QUOTA_WINDOW_SIZE_SECONDS_DEFAULT,
};
pub use sensor::{ClientQuotas, QuotaSensors, SENSORS_MAX, SENSOR_INACTIVE_MS};
pub use table::{
    FilterComponent, FilterError, QuotaFilter, QuotaId, QuotaTable, MATCH_TYPE_DEFAULT,
    MATCH_TYPE_EXACT, MATCH_TYPE_SPECIFIED,
};
