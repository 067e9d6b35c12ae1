//! A broker's registration with the cluster (KRaft's BrokerRegistration):
//! once its listeners are bound, the broker commits a RegisterBroker record
//! with its endpoints, rack and a fresh incarnation id through the quorum,
//! with a broker epoch above its previous one. Retried until it commits:
//! the broker may start before a majority of the quorum is up.
//!
//! The active controller fences a broker it has not heard from within
//! `broker.session.timeout.ms` and unfences it when it is heard again.
//! For a voter (a combined node) the quorum's own traffic is the
//! heartbeat: it answers the leader's heartbeats several times a second.
//! A broker-only node (an observer of the quorum) registers and heartbeats
//! as Kafka's brokers do, with BrokerRegistration and BrokerHeartbeat to
//! the active controller (`quorum::broker_rpc`), and shuts down through a
//! heartbeat asking to.
//!
//! Lives on: shard 0 (where the controller and its quorum are).

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use rafka_core::metadata::{
    BrokerEndpoint, BrokerFencingRecord, MetadataRecord, RegisterBrokerRecord,
};
use uuid::Uuid;

use crate::quorum::broker_rpc::ControllerLink;
use crate::quorum::Quorum;
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
    if quorum.is_observer() {
        let registration = Registration {
            node_id,
            incarnation_id,
            endpoints,
            rack,
        };
        if register_observer(shard, &quorum, &registration).await {
            spawn_heartbeats(shard, quorum, registration);
        }
        return;
    }
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
    if quorum.is_observer() {
        let shutdown = crate::runtime::within(
            CONTROLLED_SHUTDOWN_WAIT,
            observer_shutdown(&quorum, node_id),
        );
        match shutdown.await {
            Some(()) => tracing::info!(node_id, "controlled shutdown: fenced"),
            None => tracing::warn!(
                node_id,
                "controlled shutdown: no controller answer, stopping anyway"
            ),
        }
        return;
    }
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

/// What a broker-only node registers with.
struct Registration {
    node_id: i32,
    incarnation_id: Uuid,
    endpoints: Vec<BrokerEndpoint>,
    rack: Option<String>,
}

/// The voter to ask: the known leader, else the voters in turn.
fn controller_to_ask(quorum: &Quorum, turn: &mut usize) -> (u64, String) {
    let mut voters = quorum.voters();
    if voters.is_empty() {
        // Not told yet: the bootstrap servers (unknown ids).
        voters = quorum
            .settings()
            .bootstrap
            .iter()
            .map(|address| (0, address.clone()))
            .collect();
    }
    let leader = quorum.status().leader_id;
    if let Some((id, address)) = voters.iter().find(|(id, _)| *id == leader && leader != 0) {
        return (*id, address.clone());
    }
    *turn = (*turn + 1) % voters.len().max(1);
    voters.get(*turn).cloned().unwrap_or_default()
}

/// Registers a broker-only node with the active controller
/// (BrokerRegistration), retrying until it is registered and its own
/// image shows the registration (it caught up with the log that far), or
/// the broker stops; whether it registered.
async fn register_observer<S: ShardStorage>(
    shard: &Rc<Shard<S>>,
    quorum: &Rc<Quorum>,
    registration: &Registration,
) -> bool {
    let node_id = registration.node_id;
    tracing::info!(
        node_id,
        "registering with the cluster's controller (BrokerRegistration)"
    );
    let mut turn = 0;
    let mut link: Option<ControllerLink> = None;
    while !shard.is_stopping() {
        let (voter, address) = controller_to_ask(quorum, &mut turn);
        if link.as_ref().is_none_or(|l| l.voter != voter) {
            link = ControllerLink::open(voter, &address).await;
        }
        let Some(current) = link.as_mut() else {
            glommio::timer::sleep(RETRY_BACKOFF).await;
            continue;
        };
        let previous = quorum.image().broker(node_id).map_or(-1, |b| b.epoch);
        let answer = current
            .register(
                node_id,
                &quorum.settings().cluster_id,
                registration.incarnation_id,
                &registration.endpoints,
                registration.rack.as_deref(),
                previous,
            )
            .await;
        match answer {
            Ok(Ok(epoch)) => {
                // Caught up with the log as far as the registration.
                while !shard.is_stopping()
                    && quorum
                        .image()
                        .broker(node_id)
                        .is_none_or(|b| b.epoch < epoch)
                {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                }
                quorum.set_broker_epoch(epoch);
                tracing::info!(node_id, epoch, "registered with the cluster");
                return !shard.is_stopping();
            }
            Ok(Err(error)) => {
                tracing::debug!(
                    node_id,
                    voter,
                    ?error,
                    "broker registration refused, retrying"
                );
                if error != ResponseError::NotController {
                    tracing::warn!(node_id, ?error, "broker registration refused");
                }
                link = None;
                glommio::timer::sleep(RETRY_BACKOFF).await;
            }
            Err(error) => {
                tracing::debug!(node_id, voter, %error, "broker registration, retrying");
                link = None;
                glommio::timer::sleep(RETRY_BACKOFF).await;
            }
        }
    }
    false
}

/// A broker-only node's BrokerHeartbeat every
/// `broker.heartbeat.interval.ms`, to the active controller, until the
/// broker stops; registers again when the controller no longer knows its
/// epoch (it was replaced by a registration of the same id, or the
/// controller lost it).
fn spawn_heartbeats<S: ShardStorage>(
    shard: &Rc<Shard<S>>,
    quorum: Rc<Quorum>,
    registration: Registration,
) {
    let every = Duration::from_millis(shard.config.broker_heartbeat_interval_ms.max(1) as u64);
    let weak = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        let mut turn = 0;
        let mut link: Option<ControllerLink> = None;
        loop {
            glommio::timer::sleep(every).await;
            let Some(shard) = weak.upgrade().filter(|s| !s.is_stopping()) else {
                return;
            };
            let (voter, address) = controller_to_ask(&quorum, &mut turn);
            if link.as_ref().is_none_or(|l| l.voter != voter) {
                link = ControllerLink::open(voter, &address).await;
            }
            let Some(current) = link.as_mut() else {
                continue;
            };
            let applied = quorum.status().applied_index;
            let answer = current
                .heartbeat(registration.node_id, quorum.broker_epoch(), applied, false)
                .await;
            match answer.map(|r| ResponseError::try_from_code(r.error_code)) {
                Ok(None) => {}
                Ok(Some(ResponseError::StaleBrokerEpoch)) => {
                    tracing::warn!(
                        node_id = registration.node_id,
                        "the controller no longer knows this broker's epoch: registering again"
                    );
                    if !register_observer(&shard, &quorum, &registration).await {
                        return;
                    }
                }
                Ok(Some(error)) => {
                    tracing::debug!(voter, ?error, "broker heartbeat refused");
                    link = None;
                }
                Err(error) => {
                    tracing::debug!(voter, %error, "broker heartbeat");
                    link = None;
                }
            }
        }
    })
    .detach();
}

/// A broker-only node's controlled shutdown: heartbeats asking to shut
/// down until the controller answers that it may (it fenced the broker).
async fn observer_shutdown(quorum: &Quorum, node_id: i32) {
    let epoch = quorum.broker_epoch();
    if epoch == 0 {
        return;
    }
    let mut turn = 0;
    loop {
        let (voter, address) = controller_to_ask(quorum, &mut turn);
        if let Some(mut link) = ControllerLink::open(voter, &address).await {
            let applied = quorum.status().applied_index;
            match link.heartbeat(node_id, epoch, applied, true).await {
                Ok(answer) if answer.error_code == 0 && answer.should_shut_down => return,
                Ok(answer) => {
                    tracing::debug!(
                        voter,
                        error = answer.error_code,
                        "controlled shutdown heartbeat"
                    )
                }
                Err(error) => tracing::debug!(voter, %error, "controlled shutdown heartbeat"),
            }
        }
        glommio::timer::sleep(RETRY_BACKOFF).await;
    }
}
