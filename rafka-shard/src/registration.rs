//! A broker's registration with the cluster (KRaft's BrokerRegistration):
//! once its listeners are bound, the broker commits a RegisterBroker record
//! with its endpoints, rack and a fresh incarnation id through the quorum,
//! with a broker epoch above its previous one. Retried until it commits:
//! the broker may start before a majority of the quorum is up.
//!
//! The active controller fences a broker it has not heard from within
//! `broker.session.timeout.ms` and unfences it when it is heard again,
//! each time with the leader elections that calls for.
//! For a voter (a combined node) the quorum's own traffic is the
//! heartbeat: it answers the leader's heartbeats several times a second.
//! A broker-only node (an observer of the quorum) registers and heartbeats
//! as Kafka's brokers do, with BrokerRegistration and BrokerHeartbeat to
//! the active controller (`quorum::broker_rpc`). Every broker shuts down
//! through the active controller (a heartbeat asking to, or in place on
//! it), which moves its leaderships first.
//!
//! Lives on: shard 0 (where the controller and its quorum are).

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use rafka_core::metadata::{BrokerEndpoint, MetadataImage, MetadataRecord, RegisterBrokerRecord};
use uuid::Uuid;

use crate::quorum::broker_rpc::{self, ControllerLink};
use crate::quorum::{partitions, Quorum};
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
    shard
        .router
        .invoke_on_all(move |s: Rc<Shard<S>>| async move {
            s.image_view().set_incarnation(incarnation_id)
        })
        .await;
    if quorum.is_observer() {
        let registration = Registration {
            node_id,
            incarnation_id,
            endpoints,
            rack,
        };
        if register_observer(shard, &quorum, &registration).await {
            spawn_heartbeats(shard, quorum, registration);
            wait_let_in(shard).await;
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
            // Registered before: this start's new data dir is a lost disk.
            fresh_data_dir: shard.config.data_dir_new && quorum.image().broker(node_id).is_some(),
        });
        match quorum.commit(&[record]).await {
            Ok((index, _published)) => {
                tracing::info!(node_id, epoch, index, "registered with the cluster");
                wait_let_in(shard).await;
                return;
            }
            Err(error) => {
                tracing::debug!(node_id, epoch, %error, "broker registration, retrying");
                glommio::timer::sleep(RETRY_BACKOFF).await;
            }
        }
    }
}

/// Waits until this broker is unfenced at the registration it just made
/// (or the broker stops): a broker that registered again starts fenced
/// and the active controller lets it in once it has moved the old
/// process's leaderships (`spawn_fencing`). Every shard has applied that
/// image when this returns, so the broker is ready to serve.
async fn wait_let_in<S: ShardStorage>(shard: &Rc<Shard<S>>) {
    let node_id = shard.config.node_id;
    let view = shard.image_view();
    let mut logged = false;
    while !shard.is_stopping() {
        let changed = view.changed();
        if view.serving(&view.get(), node_id) {
            if logged {
                tracing::info!(node_id, "unfenced: serving");
            }
            return;
        }
        if !logged {
            tracing::info!(
                node_id,
                "registered again: fenced until the controller moves what this node led"
            );
            logged = true;
        }
        // The image changes on every commit; the timer bounds a missed one.
        crate::runtime::within(RETRY_BACKOFF, changed).await;
    }
}

/// How often the active controller looks at the brokers' liveness.
const FENCING_CHECK: Duration = Duration::from_millis(250);

/// On the active controller, fences and unfences brokers by liveness, each
/// with the elections it calls for (`quorum::partitions`), and commits the
/// elections still owed whenever the image or the brokers shutting down
/// changed (a broker registered again, a controller took over mid-way);
/// with `auto.leader.rebalance.enable`, every
/// `leader.imbalance.check.interval.seconds` it also moves leadership back
/// to preferred replicas that are in sync again. Does nothing without a
/// quorum.
pub fn spawn_fencing<S: ShardStorage>(shard: &Rc<Shard<S>>) {
    let Some(quorum) = shard.controller().and_then(|c| c.quorum()) else {
        return;
    };
    let session = Duration::from_millis(shard.config.broker_session_timeout_ms.max(1) as u64);
    let rebalance = shard.config.auto_leader_rebalance_enable.then(|| {
        let seconds = shard.config.leader_imbalance_check_interval_seconds.max(1);
        Duration::from_secs(u64::try_from(seconds).unwrap_or(u64::MAX))
    });
    let weak = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        // The image and brokers shutting down elections were last made for.
        let mut settled: Option<(Arc<MetadataImage>, BTreeSet<i32>)> = None;
        let mut balanced_at = Instant::now();
        loop {
            glommio::timer::sleep(FENCING_CHECK).await;
            if weak.upgrade().is_none_or(|s| s.is_stopping()) {
                return;
            }
            let image = quorum.image();
            let changes: Vec<(i32, i64, bool)> = image
                .brokers()
                .filter_map(|broker| {
                    let alive = quorum.peer_alive(broker.node_id, session)?;
                    (alive == broker.fenced).then_some((broker.node_id, broker.epoch, !alive))
                })
                .collect();
            for (node_id, epoch, fenced) in changes {
                if !fenced {
                    // A broker registered again comes back fenced: what it
                    // led moves and it leaves the ISRs before it is let in.
                    if let Err(error) = partitions::elect(&quorum).await {
                        tracing::debug!(node_id, %error, "elections before unfencing");
                        continue;
                    }
                }
                match partitions::change_fencing(&quorum, node_id, epoch, fenced).await {
                    Ok(()) if fenced => tracing::warn!(node_id, "broker fenced: not heard from"),
                    Ok(()) => tracing::info!(node_id, "broker unfenced: heard from again"),
                    Err(error) => tracing::debug!(node_id, %error, "fencing change"),
                }
            }
            if !quorum.is_active_controller() {
                settled = None;
                continue;
            }
            if rebalance.is_some_and(|every| balanced_at.elapsed() >= every) {
                balanced_at = Instant::now();
                if let Err(code) = partitions::balance_leaders(&quorum).await {
                    tracing::debug!(?code, "preferred leader elections");
                }
            }
            let (image, shutting_down) = (quorum.image(), quorum.shutting_down());
            let unchanged = settled
                .as_ref()
                .is_some_and(|(i, s)| Arc::ptr_eq(i, &image) && *s == shutting_down);
            if unchanged {
                continue;
            }
            match partitions::elect(&quorum).await {
                Ok(_) => settled = Some((quorum.image(), quorum.shutting_down())),
                Err(error) => tracing::debug!(%error, "elections"),
            }
        }
    })
    .detach();
}

/// How long a stopping broker waits for its controlled shutdown.
const CONTROLLED_SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

/// Controlled shutdown: a stopping broker asks the active controller to
/// shut it down (Kafka's BrokerHeartbeat with `want_shut_down`, or the
/// same step in place on the active controller itself), which fences it
/// and moves its leaderships to other in-sync replicas, and goes on once
/// it leads no partition, so clients are sent elsewhere at once rather
/// than after the session timeout. Bounded: without an answer the stop
/// goes on after a few seconds.
pub async fn controlled_shutdown<S: ShardStorage>(shard: &Rc<Shard<S>>) {
    let Some(quorum) = shard.controller().and_then(|c| c.quorum()) else {
        return;
    };
    let node_id = shard.config.node_id;
    let epoch = if quorum.is_observer() {
        quorum.broker_epoch()
    } else {
        quorum.image().broker(node_id).map_or(0, |b| b.epoch)
    };
    if epoch == 0 {
        return;
    }
    let shutdown = crate::runtime::within(
        CONTROLLED_SHUTDOWN_WAIT,
        shut_down_through_controller(&quorum, node_id, epoch),
    );
    match shutdown.await {
        Some(()) => tracing::info!(node_id, "controlled shutdown: fenced, leads nothing"),
        None => tracing::warn!(
            node_id,
            "controlled shutdown: no controller answer, stopping anyway"
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
        // -1 (Kafka: an unclean shutdown) only for a data dir created at
        // this start: the controller then takes it for one that lost its
        // logs. Any other start kept everything it acknowledged.
        let previous = match shard.config.data_dir_new {
            true => -1,
            false => quorum.image().broker(node_id).map_or(0, |b| b.epoch),
        };
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

/// Asks the active controller to shut this broker down until it answers
/// that it may: in place when this node is the active controller,
/// otherwise by heartbeats asking to shut down.
async fn shut_down_through_controller(quorum: &Rc<Quorum>, node_id: i32, epoch: i64) {
    let mut turn = 0;
    loop {
        if quorum.is_active_controller() {
            if let Ok(true) = broker_rpc::controlled_shutdown(quorum, node_id, epoch).await {
                return;
            }
        } else {
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
        }
        glommio::timer::sleep(RETRY_BACKOFF).await;
    }
}
