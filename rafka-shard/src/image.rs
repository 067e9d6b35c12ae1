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
use uuid::Uuid;

use crate::runtime::within;

#[derive(Default)]
pub struct ImageView {
    image: RefCell<Arc<MetadataImage>>,
    changed: Event,
    /// The active controller's node id in a cluster (`None`: a single
    /// node, or none known).
    controller: Cell<Option<i32>>,
    /// The incarnation this process registered with, once it started to
    /// (`None`: not yet, or a single node that never registers).
    incarnation: Cell<Option<Uuid>>,
    /// Whether this process registers with a quorum before it serves (a
    /// broker of a cluster); a single node serves what its image leads.
    registers: bool,
}

impl ImageView {
    pub fn new() -> Self {
        Self::registering(false)
    }

    /// A view for a broker that serves only once it is registered (and
    /// unfenced) with this process's incarnation when `registers`.
    pub fn registering(registers: bool) -> Self {
        ImageView {
            image: RefCell::new(Arc::new(MetadataImage::new())),
            changed: Event::new(),
            controller: Cell::new(None),
            incarnation: Cell::new(None),
            registers,
        }
    }

    /// The active controller, when a quorum has one.
    pub fn controller(&self) -> Option<i32> {
        self.controller.get()
    }

    pub fn set_controller(&self, controller: Option<i32>) {
        self.controller.set(controller);
    }

    pub fn set_incarnation(&self, incarnation: Uuid) {
        self.incarnation.set(Some(incarnation));
    }

    /// Whether this broker (`node_id`) may serve as a partition leader
    /// by `image`: registered by this process (not an earlier one that ran
    /// on the same disk, which the image may still show) and unfenced. A
    /// restarted broker serves nothing before the controller has moved its
    /// old leaderships and let it in again; until then clients and
    /// followers get NOT_LEADER_OR_FOLLOWER.
    pub fn serving(&self, image: &MetadataImage, node_id: i32) -> bool {
        !self.registers
            || image.broker(node_id).is_some_and(|broker| {
                !broker.fenced && Some(broker.incarnation_id) == self.incarnation.get()
            })
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
