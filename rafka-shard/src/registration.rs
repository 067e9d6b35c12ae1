//! A broker's registration with the cluster (KRaft's BrokerRegistration):
//! once its listeners are bound, the broker commits a RegisterBroker record
//! with its endpoints, rack and a fresh incarnation id through the quorum,
//! with a broker epoch above its previous one. Retried until it commits:
//! the broker may start before a majority of the quorum is up.
//!
//! The active controller fences a broker it has not heard from within
//! `broker.session.timeout.ms` and unfences it when it is heard again.
//! Every node here is a voter, so the quorum's own traffic is the
//! heartbeat: a voter answers the leader's heartbeats several times a
//! second (Kafka's brokers send BrokerHeartbeat; a broker-only node will).
//!
//! Lives on: shard 0 (where the controller and its quorum are).

use std::rc::Rc;
use std::time::Duration;

use rafka_core::metadata::{
    BrokerEndpoint, BrokerFencingRecord, MetadataRecord, RegisterBrokerRecord,
};
use uuid::Uuid;

use crate::shard::Shard;
use crate::storage::ShardStorage;

const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Registers this broker, retrying until the registration commits (or the
/// broker stops); returns at once without a quorum. The broker announces
/// itself ready only after this, as Kafka's brokers wait to be
/// registered: a client that sees the ready line finds it in Metadata
/// and can place partitions on it.
pub async fn register<S: ShardStorage>(
    shard: &Rc<Shard<S>>,
    endpoints: Vec<BrokerEndpoint>,
    rack: Option<String>,
) {
    let Some(quorum) = shard.controller().and_then(|c| c.quorum()) else {
        return;
    };
    let node_id = shard.config.node_id;
    let incarnation_id = Uuid::new_v4();
    tracing::info!(
        node_id,
        "registering with the cluster (waiting for the quorum)"
    );
    while !shard.is_stopping() {
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
}

/// How often the active controller looks at the brokers' liveness.
const FENCING_CHECK: Duration = Duration::from_millis(250);

/// On the active controller, fences and unfences brokers by liveness;
/// does nothing without a quorum.
pub fn spawn_fencing<S: ShardStorage>(shard: &Rc<Shard<S>>) {
    let Some(quorum) = shard.controller().and_then(|c| c.quorum()) else {
        return;
    };
    let session = Duration::from_millis(shard.config.broker_session_timeout_ms.max(1) as u64);
    let weak = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(FENCING_CHECK).await;
            if weak.upgrade().is_none_or(|s| s.is_stopping()) {
                return;
            }
            let image = quorum.image();
            let changes: Vec<MetadataRecord> = image
                .brokers()
                .filter_map(|broker| {
                    let alive = quorum.peer_alive(broker.node_id, session)?;
                    (alive == broker.fenced).then_some(MetadataRecord::BrokerFencing(
                        BrokerFencingRecord {
                            node_id: broker.node_id,
                            epoch: broker.epoch,
                            fenced: !alive,
                        },
                    ))
                })
                .collect();
            for change in changes {
                let MetadataRecord::BrokerFencing(r) = &change else {
                    continue;
                };
                let (node_id, fenced) = (r.node_id, r.fenced);
                match quorum.commit(std::slice::from_ref(&change)).await {
                    Ok(_) if fenced => tracing::warn!(node_id, "broker fenced: not heard from"),
                    Ok(_) => tracing::info!(node_id, "broker unfenced: heard from again"),
                    Err(error) => tracing::debug!(node_id, %error, "fencing change"),
                }
            }
        }
    })
    .detach();
}

/// How long a stopping broker waits for its own fencing to commit.
const CONTROLLED_SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// Controlled shutdown: a stopping broker fences itself through the
/// quorum first, so clients stop being sent to it at once rather than
/// after the session timeout. (With replication, its leaderships will
/// move to other in-sync replicas here; with one replica there is none to
/// move to, and its partitions are offline until it returns.) Bounded:
/// without a quorum majority the stop goes on after a few seconds.
pub async fn controlled_shutdown<S: ShardStorage>(shard: &Rc<Shard<S>>) {
    let Some(quorum) = shard.controller().and_then(|c| c.quorum()) else {
        return;
    };
    let node_id = shard.config.node_id;
    let Some(broker) = quorum.image().broker(node_id).cloned() else {
        return;
    };
    if broker.fenced {
        return;
    }
    let record = MetadataRecord::BrokerFencing(BrokerFencingRecord {
        node_id,
        epoch: broker.epoch,
        fenced: true,
    });
    match crate::runtime::within(CONTROLLED_SHUTDOWN_WAIT, quorum.commit(&[record])).await {
        Some(Ok(_)) => tracing::info!(node_id, "controlled shutdown: fenced"),
        Some(Err(error)) => tracing::warn!(node_id, %error, "controlled shutdown"),
        None => tracing::warn!(
            node_id,
            "controlled shutdown: no quorum answer, stopping anyway"
        ),
    }
}
