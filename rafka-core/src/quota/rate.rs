//! Kafka's quota arithmetic: the sampled rate (`SampledStat` +
//! `WindowedSum` + `Rate`), the throttle time (`QuotaUtils`), and the
//! token bucket of controller mutation quotas (`TokenBucket`). Sans IO:
//! every call takes `now_ms`.

/// `quota.window.num` samples of `quota.window.size.seconds` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindow {
    samples: u32,
    window_ms: i64,
}

/// Kafka's `quota.window.num` default.
pub const QUOTA_WINDOW_NUM_DEFAULT: u32 = 11;
/// Kafka's `quota.window.size.seconds` default.
pub const QUOTA_WINDOW_SIZE_SECONDS_DEFAULT: u32 = 1;

impl Default for QuotaWindow {
    fn default() -> QuotaWindow {
        QuotaWindow::new(QUOTA_WINDOW_NUM_DEFAULT, QUOTA_WINDOW_SIZE_SECONDS_DEFAULT)
    }
}

impl QuotaWindow {
    /// Both at least 1, as Kafka's config checks.
    pub fn new(samples: u32, window_size_seconds: u32) -> QuotaWindow {
        assert!(samples >= 1, "quota.window.num must be at least 1");
        assert!(
            window_size_seconds >= 1,
            "quota.window.size.seconds must be at least 1"
        );
        QuotaWindow {
            samples,
            window_ms: i64::from(window_size_seconds) * 1000,
        }
    }

    pub fn samples(self) -> u32 {
        self.samples
    }

    pub fn window_ms(self) -> i64 {
        self.window_ms
    }

    /// Kafka's `getMaxValueInQuotaWindow`: the most one record may add
    /// without being throttled however idle the sensor was. Fetch uses it
    /// to bound a response's bytes.
    pub fn max_value_in_window(self, bound: f64) -> f64 {
        bound * f64::from(self.samples - 1) * (self.window_ms as f64 / 1000.0)
    }
}

/// One sample of a [`SampledRate`] (Kafka's `SampledStat.Sample`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    value: f64,
    event_count: u64,
    start_ms: i64,
    last_event_ms: i64,
}

impl Sample {
    fn new(now_ms: i64) -> Sample {
        Sample {
            value: 0.0,
            event_count: 0,
            start_ms: now_ms,
            last_event_ms: now_ms,
        }
    }

    /// Kafka's `isComplete` with no event window (quota sensors have none).
    fn is_complete(&self, window: QuotaWindow, now_ms: i64) -> bool {
        now_ms - self.start_ms >= window.window_ms
    }
}

/// A rate per second over `samples` windows: Kafka's `Rate` over a
/// `WindowedSum`, step for step. It keeps one sample more than
/// `samples`, Kafka's placeholder for the sample that overlaps the start
/// of the monitored window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampledRate {
    samples: Vec<Sample>,
    current: usize,
}

impl SampledRate {
    pub fn new() -> SampledRate {
        SampledRate::default()
    }

    /// Kafka's `SampledStat.record`: a sample older than one window rolls
    /// over to the next slot (reset, or a new one while fewer than
    /// `samples + 1` exist).
    pub fn record(&mut self, window: QuotaWindow, value: f64, now_ms: i64) {
        if self.current_sample(now_ms).is_complete(window, now_ms) {
            self.advance(window, now_ms);
        }
        let sample = &mut self.samples[self.current];
        sample.value += value;
        sample.event_count += 1;
        sample.last_event_ms = now_ms;
    }

    fn current_sample(&mut self, now_ms: i64) -> &Sample {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now_ms));
        }
        &self.samples[self.current]
    }

    fn advance(&mut self, window: QuotaWindow, now_ms: i64) {
        let slots = window.samples as usize + 1;
        self.current = (self.current + 1) % slots;
        if self.current >= self.samples.len() {
            self.samples.push(Sample::new(now_ms));
        } else {
            self.samples[self.current] = Sample::new(now_ms);
        }
    }

    /// Kafka's `purgeObsoleteSamples`: a sample with no event in the last
    /// `samples * window` is reset to start now. A sample that started
    /// before the monitored window but had events inside it is kept.
    fn purge(&mut self, window: QuotaWindow, now_ms: i64) {
        let expire_age_ms = i64::from(window.samples) * window.window_ms;
        for sample in &mut self.samples {
            if now_ms - sample.last_event_ms >= expire_age_ms {
                *sample = Sample::new(now_ms);
            }
        }
    }

    /// The sum of the samples still in the window (`WindowedSum.measure`).
    pub fn total(&mut self, window: QuotaWindow, now_ms: i64) -> f64 {
        self.purge(window, now_ms);
        self.samples.iter().map(|s| s.value).sum()
    }

    /// Kafka's `Rate.windowSize`: the time since the oldest sample
    /// started, but never less than `samples - 1` full windows, so a
    /// young sensor does not report a burst as a huge rate; at least 1 ms.
    pub fn window_size_ms(&mut self, window: QuotaWindow, now_ms: i64) -> i64 {
        self.purge(window, now_ms);
        let oldest_start_ms = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed_ms = now_ms - oldest_start_ms;
        let full_windows = elapsed_ms / window.window_ms;
        let min_full_windows = i64::from(window.samples) - 1;
        if full_windows < min_full_windows {
            elapsed_ms += (min_full_windows - full_windows) * window.window_ms;
        }
        elapsed_ms.max(1)
    }

    /// Kafka's `Rate.measure`: units per second.
    pub fn measure(&mut self, window: QuotaWindow, now_ms: i64) -> f64 {
        let total = self.total(window, now_ms);
        total / (self.window_size_ms(window, now_ms) as f64 / 1000.0)
    }
}

/// Kafka's `QuotaUtils.throttleTime`: the delay X that brings an observed
/// rate O back to the quota T over the window W if nothing more is
/// recorded, from `O * W / (W + X) = T`: `X = (O - T) / T * W`, rounded
/// as Java's `Math.round` (half up). Only meaningful when `O > T`.
pub fn throttle_time_ms(rate: f64, bound: f64, window_size_ms: i64) -> i64 {
    let throttle_ms = (rate - bound) / bound * window_size_ms as f64;
    // `as` saturates like Java's (long) cast of a double.
    (throttle_ms + 0.5).floor() as i64
}

/// Kafka's `QuotaUtils.boundedThrottleTime`: the throttle time, at most
/// `max_ms` (the request quota caps it at one window).
pub fn bounded_throttle_time_ms(rate: f64, bound: f64, window_size_ms: i64, max_ms: i64) -> i64 {
    throttle_time_ms(rate, bound, window_size_ms).min(max_ms)
}

/// Kafka's `TokenBucket`: credits refill at `bound` per second up to a
/// burst of `bound * samples * window seconds`; the quota is exhausted
/// while the credits are below zero. Controller mutation quotas use it
/// because a sampled rate holds one large burst against the client for
/// the whole window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    last_update_ms: i64,
}

impl TokenBucket {
    /// A bucket that, as Kafka's, starts empty at time 0 (so it is full by
    /// the first refill at any realistic clock).
    pub fn new() -> TokenBucket {
        TokenBucket::default()
    }

    fn burst(window: QuotaWindow, bound: f64) -> f64 {
        f64::from(window.samples) * (window.window_ms as f64 / 1000.0) * bound
    }

    fn refill(&mut self, window: QuotaWindow, bound: f64, now_ms: i64) {
        let refilled = self.tokens + bound * ((now_ms - self.last_update_ms) as f64 / 1000.0);
        self.tokens = refilled.min(TokenBucket::burst(window, bound));
        self.last_update_ms = now_ms;
    }

    /// The credits left at `now_ms` (Kafka's `measure`).
    pub fn measure(&mut self, window: QuotaWindow, bound: f64, now_ms: i64) -> f64 {
        self.refill(window, bound, now_ms);
        self.tokens
    }

    pub fn record(&mut self, window: QuotaWindow, bound: f64, value: f64, now_ms: i64) {
        self.refill(window, bound, now_ms);
        self.tokens = (self.tokens - value).min(TokenBucket::burst(window, bound));
    }

    /// Kafka's `ControllerMutationQuotaManager.throttleTimeMs`: the time
    /// to refill a negative balance to zero; 0 while credits are left.
    pub fn throttle_time_ms(&mut self, window: QuotaWindow, bound: f64, now_ms: i64) -> i64 {
        let tokens = self.measure(window, bound, now_ms);
        if tokens >= 0.0 {
            return 0;
        }
        (-tokens / bound * 1000.0 + 0.5).floor() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: QuotaWindow = QuotaWindow {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn a_young_sensor_counts_ten_full_windows() {
        let mut rate = SampledRate::new();
        rate.record(W, 2000.0, 0);
        // (11 - 1) windows assumed: 2000 B over 10 s.
        assert_eq!(rate.window_size_ms(W, 0), 10_000);
        assert_eq!(rate.measure(W, 0), 200.0);
        // 500 ms later: 0 full windows elapsed, still 10 assumed, plus 500.
        assert_eq!(rate.window_size_ms(W, 500), 10_500);
        // Throttle for a 100 B/s quota at t=0: (200 - 100) / 100 * 10 s.
        assert_eq!(throttle_time_ms(200.0, 100.0, 10_000), 10_000);
    }

    #[test]
    fn samples_roll_over_and_the_window_grows_past_ten_seconds() {
        let mut rate = SampledRate::new();
        // 100 B every 500 ms from t = 0 to t = 15 s: two per sample.
        for half_second in 0..=30 {
            rate.record(W, 100.0, half_second * 500);
        }
        // 12 slots (11 + the overlap placeholder) hold the samples started
        // at 4..=15 s; the oldest, last written at 4.5 s, overlaps the
        // monitored window and still counts.
        assert_eq!(rate.samples.len(), 12);
        assert_eq!(rate.total(W, 15_000), 2300.0);
        assert_eq!(rate.window_size_ms(W, 15_000), 11_000);
        assert!((rate.measure(W, 15_000) - 2300.0 / 11.0).abs() < 1e-9);
        assert_eq!(rate.window_size_ms(W, 15_400), 11_400);
        // At 15.5 s its last event is 11 s old: purged (reset to start
        // now), and the window falls back to the sample of 5 s.
        assert_eq!(rate.total(W, 15_500), 2100.0);
        assert_eq!(rate.window_size_ms(W, 15_500), 10_500);
    }

    #[test]
    fn idle_samples_expire_after_samples_times_window() {
        let mut rate = SampledRate::new();
        rate.record(W, 5000.0, 0);
        // 10.999 s after the last event the sample still counts...
        assert_eq!(rate.total(W, 10_999), 5000.0);
        assert_eq!(rate.window_size_ms(W, 10_999), 10_999);
        // ...at 11 s it is reset to start now: nothing left, 10 windows.
        assert_eq!(rate.total(W, 11_000), 0.0);
        assert_eq!(rate.window_size_ms(W, 11_000), 10_000);
        assert_eq!(rate.measure(W, 11_000), 0.0);
    }

    #[test]
    fn a_sample_is_complete_after_one_window() {
        let mut rate = SampledRate::new();
        rate.record(W, 1.0, 0);
        rate.record(W, 1.0, 999);
        assert_eq!(rate.samples.len(), 1);
        rate.record(W, 1.0, 1000);
        assert_eq!(rate.samples.len(), 2);
        assert_eq!(rate.samples[1].start_ms, 1000);
        // A gap: the next sample starts at the record, not on a boundary.
        rate.record(W, 1.0, 3500);
        assert_eq!(rate.samples[2].start_ms, 3500);
        assert_eq!(rate.window_size_ms(W, 3500), 10_000 + 500);
    }

    #[test]
    fn throttle_rounds_half_up_and_the_bound_caps_it() {
        // (150 - 100) / 100 * 10001 = 5000.5 -> 5001 (Java's Math.round).
        assert_eq!(throttle_time_ms(150.0, 100.0, 10_001), 5001);
        assert_eq!(bounded_throttle_time_ms(150.0, 100.0, 10_001, 1000), 1000);
        assert_eq!(bounded_throttle_time_ms(101.0, 100.0, 10_000, 1000), 100);
        assert_eq!(throttle_time_ms(f64::MAX, 1.0, 10_000), i64::MAX);
    }

    #[test]
    fn token_bucket_refills_to_its_burst() {
        let w = QuotaWindow::new(11, 1);
        let mut bucket = TokenBucket::new();
        // Quota 5/s: burst 55; at 100 s the bucket is full.
        assert_eq!(bucket.measure(w, 5.0, 100_000), 55.0);
        bucket.record(w, 5.0, 60.0, 100_000);
        assert_eq!(bucket.measure(w, 5.0, 100_000), -5.0);
        // -5 at 5/s: 1 s to get back to zero.
        assert_eq!(bucket.throttle_time_ms(w, 5.0, 100_000), 1000);
        assert_eq!(bucket.throttle_time_ms(w, 5.0, 100_400), 600);
        assert_eq!(bucket.throttle_time_ms(w, 5.0, 101_000), 0);
    }

    #[test]
    fn max_value_in_window() {
        assert_eq!(QuotaWindow::default().max_value_in_window(1024.0), 10_240.0);
        assert_eq!(QuotaWindow::new(2, 30).max_value_in_window(10.0), 300.0);
    }
}
