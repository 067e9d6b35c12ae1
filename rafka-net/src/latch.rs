//! [`Latch`]: a one-way signal that any number of tasks of one shard can
//! await. The shard's shutdown and each connection's end are latches.
//!
//! A closed glommio semaphore wakes every waiter and stays closed, which is
//! exactly a broadcast latch; no unit is ever signalled, so `acquire` only
//! returns once it is closed. Waiting costs no timer and no task: a waiter
//! is a waker in the semaphore's list.
//!
//! Lives on: the shard that made it (`!Send`).

use glommio::sync::Semaphore;

#[derive(Debug)]
pub struct Latch {
    closed: Semaphore,
}

impl Default for Latch {
    fn default() -> Self {
        Latch::new()
    }
}

impl Latch {
    pub fn new() -> Self {
        Latch {
            closed: Semaphore::new(0),
        }
    }

    /// Wakes every waiter, now and later. Triggering twice is harmless.
    pub fn trigger(&self) {
        self.closed.close();
    }

    pub fn is_triggered(&self) -> bool {
        self.closed.try_acquire(0).is_err()
    }

    /// Completes once [`Latch::trigger`] has been called.
    pub async fn wait(&self) {
        // Err is the only way out: the latch was closed.
        let _closed = self.closed.acquire(1).await;
    }
}
