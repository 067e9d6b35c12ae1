//! Connection quotas, sans IO: the connection creation rate sensors of
//! KIP-612 and the per-IP connection counts of `max.connections.per.ip`,
//! as Kafka's `ConnectionQuotas` keeps them, without its lock.
//!
//! - [`ConnectionRateSensor`]: one rate of accepted connections against
//!   a bound (`max.connection.creation.rate` broker-wide or per listener,
//!   or an IP's `connection_creation_rate` quota), with Kafka's throttle
//!   time capped at one quota window.
//! - [`IpConnections`]: per IP, the open connections and the IP's rate
//!   sensor; [`IpConnections::admit`] is Kafka's IP half of
//!   `ConnectionQuotas.inc`, [`IpConnections::release`] its `dec`.
//!
//! Lives on: the owner shard of each IP (rafka-net's
//! `connection_limits`); the broker and listener sensors on shard 0.

use std::collections::HashMap;
use std::net::IpAddr;

use super::rate::{bounded_throttle_time_ms, QuotaWindow, SampledRate};

/// A connection creation rate (connections per second) and its bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionRateSensor {
    rate: SampledRate,
    last_record_ms: i64,
}

impl ConnectionRateSensor {
    pub fn new() -> ConnectionRateSensor {
        ConnectionRateSensor::default()
    }

    /// Records one connection at `now_ms` and answers the throttle time:
    /// 0 within `bound`, else Kafka's `(rate - bound) / bound * window`
    /// capped at one quota window (`QuotaUtils.boundedThrottleTime` with
    /// `quota.window.size.seconds`, as `ConnectionQuotas` caps it).
    pub fn record(&mut self, window: QuotaWindow, bound: f64, now_ms: i64) -> i64 {
        self.rate.record(window, 1.0, now_ms);
        self.last_record_ms = now_ms;
        let measured = self.rate.measure(window, now_ms);
        if measured <= bound {
            return 0;
        }
        let window_size_ms = self.rate.window_size_ms(window, now_ms);
        bounded_throttle_time_ms(measured, bound, window_size_ms, window.window_ms()).max(0)
    }

    /// Takes one connection back (Kafka's `record(-1.0, now, false)`): a
    /// connection refused by a later step does not count against the rate.
    pub fn unrecord(&mut self, window: QuotaWindow, now_ms: i64) {
        self.rate.record(window, -1.0, now_ms);
    }

    /// The rate now, per second.
    pub fn measure(&mut self, window: QuotaWindow, now_ms: i64) -> f64 {
        self.rate.measure(window, now_ms)
    }

    /// Whether every sample has expired (nothing recorded for
    /// `samples * window`): dropping the sensor then changes nothing.
    fn is_expired(&self, window: QuotaWindow, now_ms: i64) -> bool {
        now_ms - self.last_record_ms >= i64::from(window.samples()) * window.window_ms()
    }
}

/// What the owner of an IP decides for a new connection from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpVerdict {
    /// Counted: release it with [`IpConnections::release`] when it closes.
    Accepted,
    /// Over `max.connections.per.ip` (or the IP's override): close it at
    /// once; it is not counted.
    TooMany { max: i32 },
    /// Over the IP's `connection_creation_rate` quota: close it after
    /// `throttle_ms`; it is not counted, nor recorded in the rate.
    Throttled { throttle_ms: i64 },
}

#[derive(Debug, Clone, Default)]
struct IpEntry {
    open: u32,
    rate: Option<ConnectionRateSensor>,
}

/// Admissions between two sweeps of idle entries.
const SWEEP_EVERY: u32 = 1024;

/// Per IP: open connections and the creation rate sensor.
#[derive(Debug, Clone, Default)]
pub struct IpConnections {
    ips: HashMap<IpAddr, IpEntry>,
    admissions: u32,
}

impl IpConnections {
    pub fn new() -> IpConnections {
        IpConnections::default()
    }

    /// Kafka's order in `ConnectionQuotas.inc`: the rate quota first (a
    /// throttled connection is taken back out of the rate and never
    /// counted), then the count, refused when the IP already has `max`
    /// open (that refused connection still counts in the rate, as in
    /// Kafka). `quota` is the IP's `connection_creation_rate`, read from
    /// the image at this accept; `None` records nothing.
    pub fn admit(
        &mut self,
        ip: IpAddr,
        max: i32,
        quota: Option<f64>,
        window: QuotaWindow,
        now_ms: i64,
    ) -> IpVerdict {
        self.admissions += 1;
        if self.admissions >= SWEEP_EVERY {
            self.sweep(window, now_ms);
        }
        let entry = self.ips.entry(ip).or_default();
        if let Some(bound) = quota {
            let sensor = entry.rate.get_or_insert_with(ConnectionRateSensor::new);
            let throttle_ms = sensor.record(window, bound, now_ms);
            if throttle_ms > 0 {
                sensor.unrecord(window, now_ms);
                return IpVerdict::Throttled { throttle_ms };
            }
        }
        if i64::from(entry.open) >= i64::from(max) {
            return IpVerdict::TooMany { max };
        }
        entry.open += 1;
        IpVerdict::Accepted
    }

    /// An accepted connection from `ip` closed.
    pub fn release(&mut self, ip: IpAddr) {
        match self.ips.get_mut(&ip) {
            Some(entry) if entry.open > 0 => entry.open -= 1,
            _ => debug_assert!(false, "released a connection from {ip} never admitted"),
        }
    }

    /// Connections from `ip` open now.
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.ips.get(&ip).map_or(0, |entry| entry.open)
    }

    /// IPs with an entry (open connections or a live rate sensor).
    pub fn len(&self) -> usize {
        self.ips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }

    /// Drops the entries of IPs with nothing open and no live sample.
    pub fn sweep(&mut self, window: QuotaWindow, now_ms: i64) {
        self.admissions = 0;
        self.ips.retain(|_, entry| {
            entry.open > 0
                || entry
                    .rate
                    .as_ref()
                    .is_some_and(|rate| !rate.is_expired(window, now_ms))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w() -> QuotaWindow {
        QuotaWindow::default()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_rate_sensor_throttles_above_its_bound_at_most_one_window() {
        let mut sensor = ConnectionRateSensor::new();
        // Bound 1/s over 11 samples of 1 s: a young sensor counts 10 s, so
        // ten connections at t=100 s fit and the eleventh is over.
        let t = 100_000;
        for _ in 0..10 {
            assert_eq!(sensor.record(w(), 1.0, t), 0);
        }
        // 11 over 10 s = 1.1/s: (1.1 - 1) / 1 * 10 s = 1000 ms, the cap.
        assert_eq!(sensor.record(w(), 1.0, t), 1000);
        sensor.unrecord(w(), t);
        assert_eq!(sensor.measure(w(), t), 1.0);
        // Far over: still one window.
        let mut busy = ConnectionRateSensor::new();
        for _ in 0..50 {
            busy.record(w(), 1.0, t);
        }
        assert_eq!(busy.record(w(), 1.0, t), 1000);
        // (10.5 - 10) / 10 * 10 s = 500 ms under the cap.
        let mut sensor = ConnectionRateSensor::new();
        for _ in 0..100 {
            assert_eq!(sensor.record(w(), 10.0, t), 0);
        }
        for _ in 0..4 {
            sensor.record(w(), 10.0, t);
        }
        assert_eq!(sensor.record(w(), 10.0, t), 500);
    }

    #[test]
    fn per_ip_counts_refuse_beyond_the_max_and_release_frees() {
        let mut ips = IpConnections::new();
        let a = ip("127.0.0.1");
        let b = ip("127.0.0.2");
        for _ in 0..2 {
            assert_eq!(ips.admit(a, 2, None, w(), 0), IpVerdict::Accepted);
        }
        assert_eq!(ips.admit(a, 2, None, w(), 0), IpVerdict::TooMany { max: 2 });
        assert_eq!(ips.open(a), 2);
        assert_eq!(ips.admit(b, 2, None, w(), 0), IpVerdict::Accepted);
        ips.release(a);
        assert_eq!(ips.admit(a, 2, None, w(), 0), IpVerdict::Accepted);
        assert_eq!(ips.admit(a, 0, None, w(), 0), IpVerdict::TooMany { max: 0 });
        assert_eq!((ips.open(a), ips.open(b)), (2, 1));
    }

    #[test]
    fn the_ip_quota_throttles_and_the_throttled_connection_is_not_counted() {
        let mut ips = IpConnections::new();
        let a = ip("::1");
        let t = 50_000;
        for _ in 0..10 {
            assert_eq!(ips.admit(a, 100, Some(1.0), w(), t), IpVerdict::Accepted);
        }
        assert_eq!(
            ips.admit(a, 100, Some(1.0), w(), t),
            IpVerdict::Throttled { throttle_ms: 1000 }
        );
        assert_eq!(ips.open(a), 10);
        // The quota gone (read at each accept): accepted again.
        assert_eq!(ips.admit(a, 100, None, w(), t), IpVerdict::Accepted);
        // Closing a connection does not give rate back.
        ips.release(a);
        assert_eq!(
            ips.admit(a, 100, Some(1.0), w(), t),
            IpVerdict::Throttled { throttle_ms: 1000 }
        );
    }

    #[test]
    fn idle_entries_are_swept() {
        let mut ips = IpConnections::new();
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        ips.admit(a, 5, None, w(), 0);
        ips.admit(b, 5, Some(100.0), w(), 0);
        ips.release(b);
        ips.admit(c, 5, None, w(), 0);
        ips.release(c);
        ips.sweep(w(), 1000);
        // c had nothing left; b's rate still has samples; a is open.
        assert_eq!(ips.len(), 2);
        ips.sweep(w(), 11_000);
        assert_eq!(ips.len(), 1);
        assert_eq!(ips.open(a), 1);
    }
}
