//! Connection limits at accept, as Kafka's `ConnectionQuotas` (KIP-308,
//! KIP-402, KIP-612): `max.connections` broker-wide and per listener,
//! `max.connections.per.ip` (+ overrides), `max.connection.creation.rate`
//! broker-wide and per listener, and the `connection_creation_rate`
//! client quota of `ip` entities.
//!
//! # What happens to a new connection (Kafka's order)
//!
//! 1. Creation rate: with a broker or listener
//!    `max.connection.creation.rate`, the connection is recorded in that
//!    rate; over it, the accept loop waits the throttle time (Kafka's
//!    blocked acceptor: new connections wait in the backlog meanwhile).
//! 2. Slot: the listener's and the broker's `max.connections`. At the
//!    limit the accept loop **stops accepting until a connection closes**,
//!    as Kafka's acceptor blocks: the accepted socket waits, the next ones
//!    stay in the kernel's backlog. glommio's accept loop is a plain task,
//!    so blocking it is one await; nothing else on the shard waits.
//! 3. IP: the IP's `connection_creation_rate` quota (from the metadata
//!    image, read at this accept, so a change applies to the next
//!    connection) — over it the connection is closed after the throttle
//!    time (Kafka's delayed close) and counted nowhere; then the IP's
//!    count against `max.connections.per.ip` (or its override) — over it
//!    the connection is closed at once and logged at info with the IP.
//!
//! Connections already open are never closed by a limit: a limit only
//! decides about new ones. (Kafka closes the least recently used
//! connection when a dynamic `max.connections` drops below the count;
//! rafka's limits are static and the brief of this feature rules that
//! out.) Kafka's inter-broker listener exemption does not apply: rafka
//! has no inter-broker listener yet.
//!
//! # Counting across shards (no locks)
//!
//! A client's connections land on any shard (SO_REUSEPORT), so counts
//! must be broker-wide:
//!
//! - The broker's and each listener's open connections are atomic
//!   counters in one [`BrokerConnections`] that every shard holds through
//!   an `Arc` (given in [`crate::NetConfig`]). A slot is taken with a
//!   compare-and-swap below the limit, so the limit is exact. A shard
//!   that finds no slot raises its flag in `waiting` and re-checks; a
//!   shard that frees a slot clears the raised flags and wakes those
//!   shards' accept loops through the mesh. The re-check after raising
//!   the flag makes a lost wake-up impossible.
//! - Per-IP counts and per-IP rate sensors live on the IP's owner shard
//!   (a hash of the IP over the shard count), reached through the mesh
//!   ([`LimitsMesh`], the router in the broker): one message at accept,
//!   one at close. A connection's close always sends its release (it is
//!   the tail of the connection's task, which shutdown waits for). With
//!   no per-IP limit and no IP quota in the image, no message is sent.
//! - The broker's and listeners' creation rate sensors live on shard 0,
//!   asked only when such a rate is configured.
//!
//! Lives on: [`BrokerConnections`] is shared by every shard; the owner
//! state ([`OwnerState`]) is one per shard (thread local).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use rafka_core::config::connections::ConnectionLimitsConfig;
use rafka_core::config::BrokerConfig;
use rafka_core::io::{Clock, SystemClock};
use rafka_core::quota::{ConnectionRateSensor, IpConnections, IpVerdict, QuotaWindow};
use rafka_shard::shard::Shard;

use crate::latch::Latch;

/// Why the limits could not be built.
#[derive(Debug, thiserror::Error)]
#[error("max.connections.per.ip.overrides: cannot resolve host {host}: {reason}")]
pub struct UnknownOverrideHost {
    pub host: String,
    pub reason: String,
}

/// One listener's open connections and limits.
#[derive(Debug)]
struct ListenerSlots {
    name: String,
    open: AtomicI64,
    max: i64,
}

/// The broker-wide connection counts and limits, shared by every shard.
pub struct BrokerConnections {
    open: AtomicI64,
    max: i64,
    listeners: Vec<ListenerSlots>,
    /// `max.connection.creation.rate`, `None` when unlimited.
    creation_rate: Option<f64>,
    /// Per listener name, its `max.connection.creation.rate`.
    listener_rates: BTreeMap<String, f64>,
    per_ip_max: i32,
    /// `max.connections.per.ip.overrides`, hosts resolved.
    overrides: HashMap<IpAddr, i32>,
    limits_per_ip: bool,
    /// Per shard: its accept loops wait for a slot.
    waiting: Vec<AtomicBool>,
}

impl fmt::Debug for BrokerConnections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConnections")
            .field("open", &self.open.load(Ordering::Relaxed))
            .field("max", &self.max)
            .field("listeners", &self.listeners)
            .field("per_ip_max", &self.per_ip_max)
            .finish_non_exhaustive()
    }
}

/// One broker's limits are one object: equal means the same.
impl PartialEq for BrokerConnections {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for BrokerConnections {}

fn rate_of(limit: i32) -> Option<f64> {
    (limit != i32::MAX).then_some(f64::from(limit))
}

impl BrokerConnections {
    /// No limit at all, for one shard (a network layer without a broker).
    pub fn unlimited() -> BrokerConnections {
        let config = ConnectionLimitsConfig::default();
        BrokerConnections::resolved(&config, &[], HashMap::new(), 1)
    }

    /// The limits of `config` over `shards` shards. Override hosts are
    /// resolved here (Kafka's `InetAddress.getByName`: the first address),
    /// so call it before the shards start; an unknown host stops the start
    /// as in Kafka.
    pub fn from_config(
        config: &BrokerConfig,
        shards: usize,
    ) -> Result<BrokerConnections, UnknownOverrideHost> {
        let limits = &config.connection_limits;
        let mut overrides = HashMap::new();
        for (host, count) in &limits.max_connections_per_ip_overrides {
            overrides.insert(resolve(host)?, *count);
        }
        let names: Vec<String> = config.listeners.iter().map(|l| l.name.clone()).collect();
        Ok(BrokerConnections::resolved(
            limits, &names, overrides, shards,
        ))
    }

    fn resolved(
        limits: &ConnectionLimitsConfig,
        listener_names: &[String],
        overrides: HashMap<IpAddr, i32>,
        shards: usize,
    ) -> BrokerConnections {
        let listeners = listener_names
            .iter()
            .map(|name| ListenerSlots {
                name: name.clone(),
                open: AtomicI64::new(0),
                max: i64::from(limits.listener(name).max_connections.unwrap_or(i32::MAX)),
            })
            .collect();
        let listener_rates = listener_names
            .iter()
            .filter_map(|name| {
                let rate = limits.listener(name).max_connection_creation_rate?;
                Some((name.clone(), rate_of(rate)?))
            })
            .collect();
        BrokerConnections {
            open: AtomicI64::new(0),
            max: i64::from(limits.max_connections),
            listeners,
            creation_rate: rate_of(limits.max_connection_creation_rate),
            listener_rates,
            per_ip_max: limits.max_connections_per_ip,
            limits_per_ip: limits.limits_per_ip(),
            overrides,
            waiting: (0..shards.max(1)).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Open connections over the broker now.
    pub fn open(&self) -> i64 {
        self.open.load(Ordering::SeqCst)
    }

    /// Open connections of `listener` now (0 for an unknown one).
    pub fn open_on(&self, listener: &str) -> i64 {
        self.listener(listener)
            .map_or(0, |i| self.listeners[i].open.load(Ordering::SeqCst))
    }

    fn listener(&self, name: &str) -> Option<usize> {
        self.listeners.iter().position(|l| l.name == name)
    }

    /// `max.connections.per.ip` for `ip`, its override first.
    pub fn max_for(&self, ip: IpAddr) -> i32 {
        self.overrides.get(&ip).copied().unwrap_or(self.per_ip_max)
    }

    fn rate_limited(&self, listener: &str) -> bool {
        self.creation_rate.is_some() || self.listener_rates.contains_key(listener)
    }

    /// Takes a listener slot and a broker slot, or neither.
    fn try_reserve(&self, listener: Option<usize>) -> bool {
        let below = |count: &AtomicI64, max: i64| {
            count
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok()
        };
        let slots = listener.map(|i| &self.listeners[i]);
        if let Some(slots) = slots {
            if !below(&slots.open, slots.max) {
                return false;
            }
        }
        if !below(&self.open, self.max) {
            if let Some(slots) = slots {
                slots.open.fetch_sub(1, Ordering::SeqCst);
            }
            return false;
        }
        true
    }

    /// Frees the slots of a closed connection; returns the shards whose
    /// accept loops wait for one (their flags cleared).
    fn release(&self, listener: Option<usize>) -> Vec<usize> {
        if let Some(i) = listener {
            self.listeners[i].open.fetch_sub(1, Ordering::SeqCst);
        }
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.waiting
            .iter()
            .enumerate()
            .filter(|(_, flag)| flag.swap(false, Ordering::SeqCst))
            .map(|(shard, _)| shard)
            .collect()
    }
}

impl Default for BrokerConnections {
    fn default() -> Self {
        BrokerConnections::unlimited()
    }
}

fn resolve(host: &str) -> Result<IpAddr, UnknownOverrideHost> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    let unknown = |reason: String| UnknownOverrideHost {
        host: host.to_string(),
        reason,
    };
    let mut addrs = (host, 0)
        .to_socket_addrs()
        .map_err(|e| unknown(e.to_string()))?;
    addrs
        .next()
        .map(|addr| addr.ip())
        .ok_or_else(|| unknown("no address".to_string()))
}

/// What one shard's owner state is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnerJob {
    /// The IP step of an accept: quota, then count against `max`.
    IpAdmit { ip: IpAddr, max: i32, now_ms: i64 },
    /// An admitted connection closed.
    IpRelease { ip: IpAddr },
    /// Record a connection in the broker's and the listener's creation
    /// rates (those with a bound); answers the longer throttle.
    RateRecord {
        broker: Option<f64>,
        listener: Option<(String, f64)>,
        now_ms: i64,
    },
    /// Take a connection back out of those rates (an IP-throttled one).
    RateUnrecord {
        broker: bool,
        listener: Option<String>,
        now_ms: i64,
    },
    /// A slot was freed: this shard's accept loops try again.
    Wake,
}

/// What the owner answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerAnswer {
    Ip(IpVerdict),
    ThrottleMs(i64),
    Done,
}

/// One shard's part of the broker's connection state: the per-IP
/// counts and rates of the IPs it owns, the creation rate sensors (shard
/// 0), and its accept loops' wake-up.
#[derive(Debug, Default)]
pub struct OwnerState {
    ips: IpConnections,
    broker_rate: ConnectionRateSensor,
    listener_rates: HashMap<String, ConnectionRateSensor>,
    wake: Rc<Latch>,
}

thread_local! {
    /// This shard's [`OwnerState`]; one broker per executor thread.
    static OWNER: RefCell<OwnerState> = RefCell::new(OwnerState::default());
}

/// Runs `job` on this thread's owner state; `ip_quota` is the IP's
/// `connection_creation_rate` as this shard's image has it.
pub fn run_owner_job(
    job: OwnerJob,
    window: QuotaWindow,
    ip_quota: impl FnOnce(IpAddr) -> Option<f64>,
) -> OwnerAnswer {
    OWNER.with(|owner| {
        let mut owner = owner.borrow_mut();
        match job {
            OwnerJob::IpAdmit { ip, max, now_ms } => {
                let quota = ip_quota(ip);
                OwnerAnswer::Ip(owner.ips.admit(ip, max, quota, window, now_ms))
            }
            OwnerJob::IpRelease { ip } => {
                owner.ips.release(ip);
                OwnerAnswer::Done
            }
            OwnerJob::RateRecord {
                broker,
                listener,
                now_ms,
            } => {
                let mut throttle_ms = 0;
                if let Some(bound) = broker {
                    throttle_ms = owner.broker_rate.record(window, bound, now_ms);
                }
                if let Some((name, bound)) = listener {
                    let sensor = owner.listener_rates.entry(name).or_default();
                    throttle_ms = throttle_ms.max(sensor.record(window, bound, now_ms));
                }
                OwnerAnswer::ThrottleMs(throttle_ms)
            }
            OwnerJob::RateUnrecord {
                broker,
                listener,
                now_ms,
            } => {
                if broker {
                    owner.broker_rate.unrecord(window, now_ms);
                }
                if let Some(name) = listener {
                    owner
                        .listener_rates
                        .entry(name)
                        .or_default()
                        .unrecord(window, now_ms);
                }
                OwnerAnswer::Done
            }
            OwnerJob::Wake => {
                let latch = std::mem::take(&mut owner.wake);
                latch.trigger();
                OwnerAnswer::Done
            }
        }
    })
}

/// The latch the next [`OwnerJob::Wake`] on this shard triggers.
fn wake_latch() -> Rc<Latch> {
    OWNER.with(|owner| Rc::clone(&owner.borrow().wake))
}

/// Open connections from `ip` as this shard's owner state counts them
/// (the IP's owner shard has the real count).
pub fn owned_ip_connections(ip: IpAddr) -> u32 {
    OWNER.with(|owner| owner.borrow().ips.open(ip))
}

/// How a shard reaches the other shards' owner state.
pub trait LimitsMesh {
    fn shard_id(&self) -> usize;
    fn shard_count(&self) -> usize;
    fn now_ms(&self) -> i64;
    /// Whether this shard's image has a connection rate quota for `ip`
    /// (so the owner must be asked even without a per-IP count limit).
    fn ip_quota_set(&self, ip: IpAddr) -> bool;
    /// Runs `job` on `shard`; `None` when that shard is gone (stopping).
    fn run(&self, shard: usize, job: OwnerJob) -> LocalBoxFuture<'static, Option<OwnerAnswer>>;
}

/// The broker's mesh: the shards' router, their images and clock.
pub struct ShardMesh {
    shard: Rc<Shard>,
}

impl ShardMesh {
    pub fn new(shard: Rc<Shard>) -> ShardMesh {
        ShardMesh { shard }
    }
}

impl LimitsMesh for ShardMesh {
    fn shard_id(&self) -> usize {
        self.shard.id()
    }

    fn shard_count(&self) -> usize {
        self.shard.count()
    }

    fn now_ms(&self) -> i64 {
        self.shard.clock().now_ms()
    }

    fn ip_quota_set(&self, ip: IpAddr) -> bool {
        self.shard
            .image()
            .client_quotas()
            .ip_connection_rate(ip)
            .is_some()
    }

    fn run(&self, shard: usize, job: OwnerJob) -> LocalBoxFuture<'static, Option<OwnerAnswer>> {
        let here = Rc::clone(&self.shard);
        Box::pin(async move {
            let work = move |owner: Rc<Shard>| async move {
                let image = owner.image();
                let window = owner.config.quota_window();
                run_owner_job(job, window, |ip| {
                    image.client_quotas().ip_connection_rate(ip)
                })
            };
            here.router.invoke_on(shard, work).await.ok()
        })
    }
}

/// A network layer alone (tests of the connection layer): one shard,
/// no image (no IP quotas), the system clock.
struct LocalMesh;

impl LimitsMesh for LocalMesh {
    fn shard_id(&self) -> usize {
        0
    }

    fn shard_count(&self) -> usize {
        1
    }

    fn now_ms(&self) -> i64 {
        SystemClock.now_ms()
    }

    fn ip_quota_set(&self, _ip: IpAddr) -> bool {
        false
    }

    fn run(&self, _shard: usize, job: OwnerJob) -> LocalBoxFuture<'static, Option<OwnerAnswer>> {
        let answer = run_owner_job(job, QuotaWindow::default(), |_| None);
        Box::pin(std::future::ready(Some(answer)))
    }
}

/// The owner shard of `ip`'s count and rate among `shards`.
pub fn ip_owner(ip: IpAddr, shards: usize) -> usize {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: every shard computes the same owner.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    ip.hash(&mut hasher);
    (hasher.finish() % shards.max(1) as u64) as usize
}

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `max.connections.per.ip` (or the override): closed at once.
    PerIp { max: i32 },
    /// Over the IP's connection creation rate quota: closed after the
    /// throttle time.
    IpRate { throttle_ms: i64 },
    /// The shard's `connections_max` (rafka's own per-shard bound).
    MaxConnections,
}

impl Refusal {
    /// The metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::PerIp { .. } => "per_ip",
            Refusal::IpRate { .. } => "ip_rate",
            Refusal::MaxConnections => "max_connections",
        }
    }
}

/// A connection that holds slots: released once when it closes.
#[derive(Debug)]
pub struct Admission {
    listener: Option<usize>,
    ip: IpAddr,
    ip_counted: bool,
}

/// One shard's side of the limits.
pub struct ShardLimits {
    broker: Arc<BrokerConnections>,
    mesh: Rc<dyn LimitsMesh>,
}

impl ShardLimits {
    pub fn new(broker: Arc<BrokerConnections>, mesh: Option<Rc<dyn LimitsMesh>>) -> ShardLimits {
        let mesh = mesh.unwrap_or_else(|| Rc::new(LocalMesh));
        ShardLimits { broker, mesh }
    }

    pub fn broker(&self) -> &Arc<BrokerConnections> {
        &self.broker
    }

    /// Step 1: the creation rate's throttle time for a connection on
    /// `listener` (0 without a configured rate), recorded on shard 0.
    pub async fn creation_throttle_ms(&self, listener: &str) -> i64 {
        if !self.broker.rate_limited(listener) {
            return 0;
        }
        let job = OwnerJob::RateRecord {
            broker: self.broker.creation_rate,
            listener: self
                .broker
                .listener_rates
                .get(listener)
                .map(|bound| (listener.to_string(), *bound)),
            now_ms: self.mesh.now_ms(),
        };
        match self.mesh.run(0, job).await {
            Some(OwnerAnswer::ThrottleMs(ms)) => ms,
            _ => 0,
        }
    }

    /// Step 2: takes the listener's and the broker's slots, or `None`
    /// and the latch a freed slot triggers (wait on it, then try again).
    pub fn try_reserve(&self, listener: &str) -> Result<Option<usize>, Rc<Latch>> {
        let index = self.broker.listener(listener);
        if self.broker.try_reserve(index) {
            return Ok(index);
        }
        // Take the latch before raising the flag: a wake that comes after
        // the re-check triggers this one.
        let latch = wake_latch();
        let me = self.mesh.shard_id().min(self.broker.waiting.len() - 1);
        self.broker.waiting[me].store(true, Ordering::SeqCst);
        if self.broker.try_reserve(index) {
            return Ok(index);
        }
        Err(latch)
    }

    /// Step 3: the IP's quota and count, on its owner. Gives the slots
    /// back when the connection is refused.
    pub async fn admit_ip(
        &self,
        listener_name: &str,
        listener: Option<usize>,
        ip: IpAddr,
    ) -> Result<Admission, Refusal> {
        let mut admission = Admission {
            listener,
            ip,
            ip_counted: false,
        };
        if !self.broker.limits_per_ip && !self.mesh.ip_quota_set(ip) {
            return Ok(admission);
        }
        let owner = ip_owner(ip, self.mesh.shard_count());
        let now_ms = self.mesh.now_ms();
        let job = OwnerJob::IpAdmit {
            ip,
            max: self.broker.max_for(ip),
            now_ms,
        };
        let verdict = match self.mesh.run(owner, job).await {
            Some(OwnerAnswer::Ip(verdict)) => verdict,
            // The owner is stopping: so is the broker; admit uncounted.
            _ => return Ok(admission),
        };
        match verdict {
            IpVerdict::Accepted => {
                admission.ip_counted = true;
                Ok(admission)
            }
            IpVerdict::TooMany { max } => {
                self.release(admission).await;
                Err(Refusal::PerIp { max })
            }
            IpVerdict::Throttled { throttle_ms } => {
                if self.broker.rate_limited(listener_name) {
                    let job = OwnerJob::RateUnrecord {
                        broker: self.broker.creation_rate.is_some(),
                        listener: self
                            .broker
                            .listener_rates
                            .contains_key(listener_name)
                            .then(|| listener_name.to_string()),
                        now_ms,
                    };
                    self.mesh.run(0, job).await;
                }
                self.release(admission).await;
                Err(Refusal::IpRate { throttle_ms })
            }
        }
    }

    /// A connection holding `admission` closed (or was refused after
    /// taking its slots): frees its slots, wakes waiting accept loops,
    /// and releases its IP count on the owner.
    pub async fn release(&self, admission: Admission) {
        for shard in self.broker.release(admission.listener) {
            self.mesh.run(shard, OwnerJob::Wake).await;
        }
        if admission.ip_counted {
            let owner = ip_owner(admission.ip, self.mesh.shard_count());
            let job = OwnerJob::IpRelease { ip: admission.ip };
            self.mesh.run(owner, job).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_exact_and_a_release_names_the_waiting_shards() {
        let (config, _) = BrokerConfig::from_properties_text(
            "max.connections=3\nlistener.name.plaintext.max.connections=2\n",
        )
        .unwrap();
        let broker = BrokerConnections::from_config(&config, 2).unwrap();
        let plain = broker.listener("PLAINTEXT");
        assert_eq!(plain, Some(0));
        assert!(broker.try_reserve(plain));
        assert!(broker.try_reserve(plain));
        assert!(!broker.try_reserve(plain), "the listener's limit");
        assert!(broker.try_reserve(None));
        assert!(!broker.try_reserve(None), "the broker's limit");
        assert_eq!((broker.open(), broker.open_on("PLAINTEXT")), (3, 2));
        broker.waiting[1].store(true, Ordering::SeqCst);
        assert_eq!(broker.release(plain), vec![1]);
        assert_eq!(broker.release(None), Vec::<usize>::new());
        assert_eq!((broker.open(), broker.open_on("PLAINTEXT")), (1, 1));
    }

    #[test]
    fn overrides_resolve_and_apply_per_ip() {
        let (config, _) = BrokerConfig::from_properties_text(
            "max.connections.per.ip=2\nmax.connections.per.ip.overrides=127.0.0.1:5,localhost:7,::1:1\n",
        )
        .unwrap();
        let broker = BrokerConnections::from_config(&config, 1).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // localhost resolves to 127.0.0.1 or ::1; the entries after it
        // win either way for those two.
        assert_eq!(broker.max_for(ip("10.0.0.1")), 2);
        assert!(broker.limits_per_ip);
        let unknown = "max.connections.per.ip.overrides=no-such-host.invalid:3\n";
        let (config, _) = BrokerConfig::from_properties_text(unknown).unwrap();
        assert!(BrokerConnections::from_config(&config, 1).is_err());
    }

    #[test]
    fn ip_owners_spread_over_shards() {
        let mut per_shard = [0; 4];
        for last in 0..=255u8 {
            per_shard[ip_owner(IpAddr::from([10, 0, 0, last]), 4)] += 1;
        }
        assert!(per_shard.iter().all(|n| *n > 30), "{per_shard:?}");
        assert_eq!(ip_owner(IpAddr::from([10, 0, 0, 1]), 1), 0);
    }
}
