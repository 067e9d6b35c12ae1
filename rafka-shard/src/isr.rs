//! The leader's side of ISR upkeep (Kafka's `ReplicaManager
//! .maybeShrinkIsr` and `Partition.maybeExpandIsr`): every half
//! `replica.lag.time.max.ms`, each partition this shard leads checks its
//! followers (`partition::replicas`): an ISR member not caught up for
//! `replica.lag.time.max.ms` leaves, a replica that reached the high
//! watermark and the start of the current leader epoch joins. The change
//! goes to the active controller as AlterPartition with the partition
//! epoch it was computed from; the controller commits it (or refuses a
//! stale one) and the answer applies at once, as Kafka's leader applies
//! its AlterPartition response; the metadata record brings the same state
//! to every broker. One change per partition is in flight; while it is,
//! the high watermark counts the members of both ISRs.
//!
//! Expansion runs on the same tick, so a follower that caught up joins
//! within half the lag time (at most 5 s); Kafka expands on the fetch
//! itself. The difference is a bounded delay in rejoining, never in
//! safety: an ISR that is too small only lowers availability, never an
//! acknowledged write's copies (acks=all still needs min.insync.replicas).
//!
//! Lives on: every shard of a broker in a cluster.

use std::rc::{Rc, Weak};
use std::time::Duration;

use rafka_proto::error::ErrorCode;

use crate::controller_handle::{ControllerHandle, IsrChange};
use crate::partition::{IsrProposal, Partition};
use crate::registry::assignment_of;
use crate::shard::Shard;
use crate::storage::ShardStorage;

/// The checks' bounds: Kafka checks every half lag time; a very short lag
/// (tests) still leaves the controller room, a long one still notices a
/// caught-up replica within seconds.
const CHECK_MIN: Duration = Duration::from_millis(100);
const CHECK_MAX: Duration = Duration::from_secs(5);

/// Starts this shard's ISR checks (a broker in a cluster only).
pub fn spawn<S: ShardStorage>(shard: &Rc<Shard<S>>) {
    if !shard.config.quorum_configured() || !shard.config.process_roles.broker {
        return;
    }
    let lag_ms = shard.config.replica_lag_time_max_ms;
    let every =
        Duration::from_millis(u64::try_from(lag_ms / 2).unwrap_or(0)).clamp(CHECK_MIN, CHECK_MAX);
    let weak = Rc::downgrade(shard);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(every).await;
            let Some(shard) = weak.upgrade().filter(|s| !s.is_stopping()) else {
                return;
            };
            let image = shard.image_view().get();
            let may_join = |node_id: i32| image.broker(node_id).is_some_and(|b| !b.fenced);
            for partition in shard.registry().all() {
                if let Some(proposal) = partition.isr_change_due(lag_ms, may_join).await {
                    partition.begin_isr_change(proposal.clone());
                    let change = propose(Weak::clone(&weak), partition, proposal);
                    glommio::spawn_local(change).detach();
                }
            }
        }
    })
    .detach();
}

/// Sends one ISR change and applies the controller's answer.
async fn propose<S: ShardStorage>(
    shard: Weak<Shard<S>>,
    partition: Rc<Partition<S>>,
    proposal: IsrProposal,
) {
    let Some(current) = shard.upgrade() else {
        return;
    };
    let change = IsrChange {
        topic: partition.topic.to_string(),
        partition: partition.index,
        leader_epoch: proposal.leader_epoch,
        partition_epoch: proposal.partition_epoch,
        new_isr: proposal.new_isr.clone(),
    };
    let handle = ControllerHandle::new(Rc::clone(&current));
    drop(current);
    let answer = handle.alter_partition(change).await;
    let Some(current) = shard.upgrade() else {
        return;
    };
    match answer {
        Ok(leadership) => {
            tracing::info!(
                topic = %partition.topic,
                partition = partition.index,
                isr = ?leadership.isr,
                partition_epoch = leadership.partition_epoch,
                "ISR changed"
            );
            current
                .registry()
                .take_leadership(
                    &partition.topic,
                    partition.index,
                    &partition,
                    assignment_of(&leadership),
                )
                .await;
            // A committed change whose partition epoch the image already
            // had leaves nothing in flight either way.
            partition.end_isr_change();
        }
        Err(ErrorCode::NEW_LEADER_ELECTED) => {
            // Committed: the new ISR completed a reassignment that moved
            // the leadership away; the metadata brings the rest.
            tracing::info!(
                topic = %partition.topic,
                partition = partition.index,
                isr = ?proposal.new_isr,
                "ISR change completed a reassignment; leadership moved"
            );
            partition.end_isr_change();
        }
        Err(error) => {
            tracing::warn!(
                topic = %partition.topic,
                partition = partition.index,
                proposed = ?proposal.new_isr,
                ?error,
                "AlterPartition refused; the next check proposes again"
            );
            partition.end_isr_change();
        }
    }
}
