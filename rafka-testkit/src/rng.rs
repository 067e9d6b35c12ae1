//! The one seeded generator of the tests: SplitMix64 (Steele, Lea and
//! Flood), small, fast and good enough for workloads and fault schedules.
//! Every seed gives its own stream, neighbouring seeds included, so tests
//! can use plain counters (`1..=40`) as seeds.
//!
//! A randomized test names its seed in every failure message (`"seed
//! {seed}"`); `RAFKA_TEST_SEED=<seed>` then replays exactly that run:
//! [`Rng::from_env`] starts from it, [`seeds`] narrows a seed loop to it.
//!
//! Not for `rafka-core/src/sim.rs`: the fault-injecting storage is library
//! code and keeps its own generator.

use std::ops::RangeInclusive;

/// The variable that overrides a test's seed, in decimal or `0x` hex.
pub const SEED_ENV: &str = "RAFKA_TEST_SEED";

/// SplitMix64's increment: the golden ratio in 64 bits.
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A seeded, deterministic generator.
#[derive(Debug, Clone)]
pub struct Rng {
    seed: u64,
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { seed, state: seed }
    }

    /// Seeded from `RAFKA_TEST_SEED` when it is set, else `default_seed`.
    pub fn from_env(default_seed: u64) -> Rng {
        Rng::new(env_seed().unwrap_or(default_seed))
    }

    /// The seed this generator started from, for failure messages.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound`; `bound` must not be 0. Lemire's multiply:
    /// no modulo, and the bias is below 2^-64 per value.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0) has no value");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// A value in `range` (inclusive at both ends).
    pub fn in_range(&mut self, range: RangeInclusive<u64>) -> u64 {
        let (low, high) = (*range.start(), *range.end());
        assert!(low <= high, "empty range {low}..={high}");
        match (high - low).checked_add(1) {
            Some(span) => low + self.below(span),
            None => self.next_u64(),
        }
    }

    /// An index into a collection of `len` items; `len` must not be 0.
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// True with probability 1/2.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// True with probability `numerator / denominator`.
    pub fn ratio(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }

    /// One item of `items`, which must not be empty.
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.fill(&mut out);
        out
    }

    /// `len` lowercase ASCII letters.
    pub fn lowercase(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'a' + self.below(26) as u8))
            .collect()
    }

    /// A new generator seeded from this one: independent streams for
    /// sub-tasks without a second seed to name.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// The seeds a seed loop runs: `RAFKA_TEST_SEED` alone when it is set, so
/// a failing seed replays without the others; `range` otherwise.
pub fn seeds(range: RangeInclusive<u64>) -> Vec<u64> {
    match env_seed() {
        Some(seed) => vec![seed],
        None => range.collect(),
    }
}

/// `RAFKA_TEST_SEED` when set; a value that does not parse fails the test
/// rather than silently running another seed.
pub fn env_seed() -> Option<u64> {
    let text = std::env::var(SEED_ENV).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => text.replace('_', "").parse(),
    };
    match parsed {
        Ok(seed) => Some(seed),
        Err(error) => panic!("{SEED_ENV}={text:?} is not a seed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // The published SplitMix64 outputs for seed 1234567.
        let mut rng = Rng::new(1_234_567);
        let expected = [
            6_457_827_717_110_365_317,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
            4_593_380_528_125_082_431,
            16_408_922_859_458_223_821,
        ];
        for value in expected {
            assert_eq!(rng.next_u64(), value);
        }
    }

    #[test]
    fn the_same_seed_replays_and_neighbours_differ() {
        let first: Vec<u64> = (0..8).map(|_| Rng::new(7).next_u64()).collect();
        assert!(first.windows(2).all(|w| w[0] == w[1]));
        let mut a = Rng::new(1);
        let mut b = Rng::new(2);
        assert_ne!(a.next_u64(), b.next_u64());
        assert_eq!(Rng::new(9).seed(), 9);
    }

    #[test]
    fn bounded_values_stay_in_bounds() {
        let mut rng = Rng::new(3);
        for bound in [1, 2, 3, 10, 1000, u64::MAX] {
            for _ in 0..100 {
                assert!(rng.below(bound) < bound);
            }
        }
        for _ in 0..100 {
            assert!((5..=9).contains(&rng.in_range(5..=9)));
        }
        let _ = rng.in_range(0..=u64::MAX);
        let mut seen = [false; 4];
        for _ in 0..200 {
            seen[*rng.choose(&[0, 1, 2, 3])] = true;
        }
        assert_eq!(seen, [true; 4]);
    }

    #[test]
    fn fill_covers_odd_lengths() {
        let mut rng = Rng::new(11);
        let bytes = rng.bytes(13);
        assert_eq!(bytes.len(), 13);
        assert!(bytes.iter().any(|b| *b != 0));
        let text = rng.lowercase(20);
        assert!(text.bytes().all(|b| b.is_ascii_lowercase()), "{text}");
    }
}
