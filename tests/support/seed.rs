//! Seeds of the randomized crash tests: from `RAFKA_TEST_SEED` or the
//! clock, and printed again if the test fails so the run can be replayed.

use std::cell::Cell;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use rafka_testkit::rng::env_seed;

/// `RAFKA_TEST_SEED` when set, else one drawn from the clock.
pub fn run_seed() -> u64 {
    env_seed().unwrap_or_else(clock_seed)
}

fn clock_seed() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    u64::try_from(now.as_nanos() & u128::from(u64::MAX)).expect("masked")
}

/// Prints the seed and cycle of a failing run when dropped during a
/// panic (the panic itself is printed by the test harness).
pub struct FailureNote {
    test: &'static str,
    seed: u64,
    cycle: Cell<Option<u32>>,
}

impl FailureNote {
    pub fn new(test: &'static str, seed: u64) -> FailureNote {
        FailureNote {
            test,
            seed,
            cycle: Cell::new(None),
        }
    }

    /// The cycle now running, named if the test fails.
    pub fn set_cycle(&self, cycle: u32) {
        self.cycle.set(Some(cycle));
    }

    /// Past the cycles (the final checks).
    pub fn clear_cycle(&self) {
        self.cycle.set(None);
    }
}

impl Drop for FailureNote {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "{} failed: RAFKA_TEST_SEED={} (cycle {:?})",
                self.test,
                self.seed,
                self.cycle.get()
            );
        }
    }
}
