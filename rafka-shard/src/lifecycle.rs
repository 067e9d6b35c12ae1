//! [`Lifecycle`]: a shard's ready and stopping flags, and the events its
//! tasks wait on.
//!
//! Lives on: every shard, one each, inside [`crate::shard::Shard`].

use std::cell::Cell;

use event_listener::Event;

#[derive(Default)]
pub struct Lifecycle {
    ready: Cell<bool>,
    ready_event: Event,
    stopping: Cell<bool>,
    stop_event: Event,
}

impl Lifecycle {
    pub fn new() -> Self {
        Lifecycle::default()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// Shard 0 has loaded every shard: the broker serves.
    pub fn set_ready(&self) {
        self.ready.set(true);
        self.ready_event.notify(usize::MAX);
    }

    pub fn request_stop(&self) {
        self.stopping.set(true);
        self.stop_event.notify(usize::MAX);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.get()
    }

    /// Waits until [`Lifecycle::request_stop`].
    pub async fn wait_stop(&self) {
        while !self.stopping.get() {
            let listener = self.stop_event.listen();
            if self.stopping.get() {
                break;
            }
            listener.await;
        }
    }

    /// Waits until the shard is ready, or gave up (stop).
    pub async fn wait_ready(&self) {
        while !self.ready.get() && !self.stopping.get() {
            let ready = self.ready_event.listen();
            let stop = self.stop_event.listen();
            if self.ready.get() || self.stopping.get() {
                break;
            }
            futures_util::future::select(ready, stop).await;
        }
    }
}
