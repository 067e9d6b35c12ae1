//! A broker's registration with the cluster (KRaft's BrokerRegistration):
//! once its listeners are bound, the broker commits a RegisterBroker record
//! with its endpoints, rack and a fresh incarnation id through the quorum,
//! with a broker epoch above its previous one. Retried until it commits:
//! the broker may start before a majority of the quorum is up.
//!
//! Lives on: shard 0 (where the controller and its quorum are).

use std::rc::Rc;
use std::time::Duration;

use rafka_core::metadata::{BrokerEndpoint, MetadataRecord, RegisterBrokerRecord};
use uuid::Uuid;

use crate::shard::Shard;
use crate::storage::ShardStorage;

const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Registers this broker in the background; does nothing without a quorum.
pub fn spawn_registration<S: ShardStorage>(
    shard: &Rc<Shard<S>>,
    endpoints: Vec<BrokerEndpoint>,
    rack: Option<String>,
) {
    let Some(quorum) = shard.controller().and_then(|c| c.quorum()) else {
        return;
    };
    let node_id = shard.config.node_id;
    let incarnation_id = Uuid::new_v4();
    let weak = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        loop {
            if weak.upgrade().is_none_or(|s| s.is_stopping()) {
                return;
            }
            let epoch = quorum.image().broker(node_id).map_or(1, |b| b.epoch + 1);
            let record = MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                node_id,
                epoch,
                incarnation_id,
                rack: rack.clone(),
                endpoints: endpoints.clone(),
            });
            match quorum.commit(&[record]).await {
                Ok((index, _published)) => {
                    tracing::info!(node_id, epoch, index, "registered with the cluster");
                    return;
                }
                Err(error) => {
                    tracing::debug!(node_id, epoch, %error, "broker registration, retrying");
                    glommio::timer::sleep(RETRY_BACKOFF).await;
                }
            }
        }
    })
    .detach();
}
