//! [`ImageView`]: one shard's read-only copy of the metadata image.
//!
//! The controller commits a change and broadcasts the new image (an `Arc`,
//! immutable, shared by every shard) with its deltas; each shard swaps its
//! copy in [`crate::apply`] and wakes whoever waits for a change here.
//!
//! Lives on: every shard, one view each, shared as `Rc` by the shard's
//! parts.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Duration;

use event_listener::Event;
use rafka_core::metadata::MetadataImage;

use crate::runtime::within;

#[derive(Default)]
pub struct ImageView {
    image: RefCell<Arc<MetadataImage>>,
    changed: Event,
    /// The active controller's node id in a cluster (`None`: a single
    /// node, or none known).
    controller: Cell<Option<i32>>,
}

impl ImageView {
    pub fn new() -> Self {
        ImageView {
            image: RefCell::new(Arc::new(MetadataImage::new())),
            changed: Event::new(),
            controller: Cell::new(None),
        }
    }

    /// The active controller, when a quorum has one.
    pub fn controller(&self) -> Option<i32> {
        self.controller.get()
    }

    pub fn set_controller(&self, controller: Option<i32>) {
        self.controller.set(controller);
    }

    /// The current image.
    pub fn get(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.borrow())
    }

    /// Installs `image` (waiters are woken by [`ImageView::notify`] once the
    /// shard has acted on it).
    pub fn set(&self, image: Arc<MetadataImage>) {
        *self.image.borrow_mut() = image;
    }

    /// Completes at the next [`ImageView::notify`] (listen before looking
    /// at the image, so no change is missed).
    pub fn changed(&self) -> event_listener::EventListener {
        self.changed.listen()
    }

    /// Wakes every [`ImageView::wait_for_topic`].
    pub fn notify(&self) {
        self.changed.notify(usize::MAX);
    }

    /// The shard owning `topic`/`partition`, by this image.
    pub fn owner_of(&self, topic: &str, partition: i32) -> Option<usize> {
        let image = self.image.borrow();
        let shard = image.topic(topic)?.shard_of(partition)?;
        usize::try_from(shard).ok()
    }

    /// The broker leading `topic`/`partition` in a cluster (`None` on a
    /// single node, where no leadership is recorded, or for an unknown
    /// partition).
    pub fn leader_of(&self, topic: &str, partition: i32) -> Option<i32> {
        let image = self.image.borrow();
        Some(image.topic(topic)?.leadership(partition)?.leader)
    }

    fn has_topic(&self, topic: &str) -> bool {
        self.image.borrow().topic(topic).is_some()
    }

    /// Waits until the image has `topic` (after a create that the
    /// controller committed), up to `timeout`.
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> bool {
        let appeared = async {
            loop {
                if self.has_topic(topic) {
                    return;
                }
                let listener = self.changed.listen();
                if self.has_topic(topic) {
                    return;
                }
                listener.await;
            }
        };
        within(timeout, appeared).await.is_some()
    }
}
