//! [`SharedClock`]: a clock a test moves by hand, shared by every shard of
//! an in-process broker ([`crate::TestBroker::clock`]). rafka-core's
//! `ManualClock` is one thread's (`Rc<Cell>`); shards are threads, and a
//! broker whose shards disagree on the time would not be one broker.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rafka_core::io::Clock;

/// Milliseconds since the epoch, moved only by the test. Clones share the
/// time.
#[derive(Debug, Clone)]
pub struct SharedClock {
    now_ms: Arc<AtomicI64>,
}

impl SharedClock {
    pub fn new(now_ms: i64) -> SharedClock {
        SharedClock {
            now_ms: Arc::new(AtomicI64::new(now_ms)),
        }
    }

    pub fn set_ms(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance_ms(&self, delta_ms: i64) {
        self.now_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for SharedClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}
