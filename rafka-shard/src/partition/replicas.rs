//! A partition's replicas as this broker sees them: whether it leads, the
//! ISR, and as leader what each follower holds (Kafka's `Partition`
//! remote replica state). Pure: no IO, the partition calls it under its
//! cells and acts on the answers.
//!
//! - The high watermark as leader is the minimum of this broker's flushed
//!   offset and every other ISR member's fetch offset (Kafka's
//!   `maybeIncrementLeaderHW`). A follower fetches from an offset only once
//!   everything below it is fsync'd there (`crate::replication`), so the
//!   high watermark only covers records on the disks of the whole ISR:
//!   acks=all answers once a record is durable on every ISR member, not
//!   only in their page caches as Kafka's. An ISR member that never
//!   fetched since this broker took over holds the high watermark where
//!   it is.
//! - It does not move while the ISR of a replicated partition is below
//!   `min.insync.replicas` (KIP-966's strict min ISR; see
//!   `rafka_core::metadata::partition_control` for the eligible leader
//!   replicas this makes safe to elect).
//! - As follower: the minimum of its flushed offset and the leader's high
//!   watermark from the last fetch response.
//! - Caught-up time (Kafka's `lastCaughtUpTimeMs`): a fetch at the
//!   leader's log end, or at the log end the leader had at the follower's
//!   previous fetch, proves the follower was caught up then. An ISR member
//!   not caught up for `replica.lag.time.max.ms` leaves the ISR; a replica
//!   out of it whose fetch offset reached the high watermark and the start
//!   of the current leader epoch joins it (both through the controller's
//!   AlterPartition, one change in flight at a time).

use std::collections::BTreeMap;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// Where its last fetch started: everything below is durable there.
    pub fetch_offset: i64,
    pub last_fetch_ms: i64,
    /// The leader's log end when that fetch was answered.
    pub leader_end_at_last_fetch: i64,
    pub last_caught_up_ms: i64,
}

/// The leadership record as it applies to this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl Assignment {
    /// A partition outside any cluster: this broker leads alone.
    pub fn alone(me: i32) -> Assignment {
        Assignment {
            leader: me,
            leader_epoch: 0,
            partition_epoch: 0,
            replicas: vec![me],
            isr: vec![me],
        }
    }
}

/// An ISR change the leader asks the controller for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

#[derive(Debug, Clone)]
pub struct ReplicaState {
    me: i32,
    assignment: Assignment,
    followers: BTreeMap<i32, FollowerState>,
    /// As follower: the leader's high watermark from its last answer.
    leader_high_watermark: i64,
    min_insync_replicas: i32,
    /// An AlterPartition sent and not yet answered.
    in_flight: Option<IsrProposal>,
}

impl ReplicaState {
    /// This broker (`me`) leading alone until [`ReplicaState::assign`].
    pub fn new(me: i32) -> ReplicaState {
        ReplicaState {
            me,
            assignment: Assignment::alone(me),
            followers: BTreeMap::new(),
            leader_high_watermark: 0,
            min_insync_replicas: 1,
            in_flight: None,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.assignment.leader == self.me
    }

    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    pub fn isr(&self) -> &[i32] {
        &self.assignment.isr
    }

    pub fn min_insync_replicas(&self) -> i32 {
        self.min_insync_replicas
    }

    pub fn set_min_insync_replicas(&mut self, min: i32) {
        self.min_insync_replicas = min.max(1);
    }

    /// Whether an acks=all write may go ahead (Kafka: NOT_ENOUGH_REPLICAS
    /// before the append, NOT_ENOUGH_REPLICAS_AFTER_APPEND once the high
    /// watermark passed it with the ISR shrunk meanwhile).
    pub fn enough_in_sync(&self) -> bool {
        self.assignment.isr.len() >= self.min_insync_replicas as usize
    }

    /// KIP-966's strict min ISR: as leader of a replicated partition whose
    /// ISR is below `min.insync.replicas`, the high watermark stays where
    /// it is. The replicas that left the ISR then hold everything below
    /// it, which is what lets the controller elect them (eligible leader
    /// replicas) once the ISR is empty. A partition of one replica (a
    /// single node) has nobody else to elect and is never held.
    pub fn high_watermark_held(&self) -> bool {
        self.is_leader() && self.assignment.replicas.len() > 1 && !self.enough_in_sync()
    }

    pub fn follower(&self, replica: i32) -> Option<&FollowerState> {
        self.followers.get(&replica)
    }

    /// A new assignment from the metadata. Taking over as leader (a new
    /// leader epoch, or the first assignment) starts every follower's
    /// clock now, unknown offset (Kafka's `makeLeader`); a new ISR with
    /// the same leadership keeps what followers reported. An answer to
    /// the change in flight ends it.
    pub fn assign(&mut self, me: i32, assignment: Assignment, now_ms: i64) {
        if me != self.me {
            self.me = me;
            self.assignment.leader = -1;
        }
        let new_leadership = assignment.leader != self.assignment.leader
            || assignment.leader_epoch != self.assignment.leader_epoch;
        if new_leadership {
            self.followers.clear();
        }
        if assignment.leader == self.me {
            // Every follower is tracked from now (unknown offset) when
            // this broker takes over, and so is a replica a reassignment
            // adds, out of the ISR until it caught up.
            for &replica in assignment.replicas.iter().filter(|&&r| r != self.me) {
                self.followers.entry(replica).or_insert(FollowerState {
                    fetch_offset: -1,
                    last_fetch_ms: now_ms,
                    leader_end_at_last_fetch: -1,
                    last_caught_up_ms: now_ms,
                });
            }
        }
        if self
            .in_flight
            .as_ref()
            .is_some_and(|p| p.partition_epoch < assignment.partition_epoch || new_leadership)
        {
            self.in_flight = None;
        }
        self.followers
            .retain(|replica, _| assignment.replicas.contains(replica));
        self.assignment = assignment;
    }

    /// As follower, the leader's high watermark from its last answer to
    /// this process (0 before any); as leader, unbounded.
    pub fn heard_high_watermark(&self) -> i64 {
        if self.is_leader() {
            i64::MAX
        } else {
            self.leader_high_watermark
        }
    }

    /// As follower: the leader's high watermark from a fetch answer.
    pub fn leader_high_watermark(&mut self, high_watermark: i64) {
        self.leader_high_watermark = high_watermark;
    }

    /// As leader: a follower fetched from `fetch_offset` while the log end
    /// was `leader_end`. Returns false (nothing recorded) for a broker that
    /// is not a replica, or an offset past the log end.
    pub fn follower_fetched(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        if !self.is_leader() || fetch_offset > leader_end {
            return false;
        }
        let Some(state) = self.followers.get_mut(&replica) else {
            return false;
        };
        if fetch_offset >= leader_end {
            state.last_caught_up_ms = now_ms;
        } else if fetch_offset >= state.leader_end_at_last_fetch {
            state.last_caught_up_ms = state.last_caught_up_ms.max(state.last_fetch_ms);
        }
        state.fetch_offset = fetch_offset;
        state.last_fetch_ms = now_ms;
        state.leader_end_at_last_fetch = leader_end;
        true
    }

    /// The offset the high watermark may rise to given this broker's
    /// `flushed` offset (it never falls: the caller keeps the maximum).
    /// During an ISR change in flight the members of both ISRs count
    /// (Kafka's maximal ISR), so a shrink takes effect only once committed.
    pub fn high_watermark_bound(&self, flushed: i64) -> i64 {
        if !self.is_leader() {
            return flushed.min(self.leader_high_watermark);
        }
        if self.high_watermark_held() {
            return -1;
        }
        let pending = self.in_flight.iter().flat_map(|p| p.new_isr.iter());
        self.assignment
            .isr
            .iter()
            .chain(pending)
            .filter(|&&replica| replica != self.me)
            .map(|replica| self.followers.get(replica).map_or(-1, |f| f.fetch_offset))
            .fold(flushed, i64::min)
    }

    /// As leader with no change in flight: the ISR change due at `now_ms`,
    /// if any. ISR members other than this broker not caught up within
    /// `lag_max_ms` leave; replicas out of the ISR whose fetch offset
    /// reached `high_watermark` and `epoch_start` (the first offset of the
    /// current leader epoch) join. Members stay in replica order.
    pub fn isr_change_due(
        &self,
        now_ms: i64,
        lag_max_ms: i64,
        high_watermark: i64,
        epoch_start: i64,
    ) -> Option<IsrProposal> {
        if !self.is_leader() || self.in_flight.is_some() {
            return None;
        }
        let a = &self.assignment;
        let caught_up_with = |replica: i32| {
            self.followers
                .get(&replica)
                .is_some_and(|f| f.fetch_offset >= high_watermark && f.fetch_offset >= epoch_start)
        };
        let lagging = |replica: i32| {
            self.followers
                .get(&replica)
                .is_some_and(|f| now_ms - f.last_caught_up_ms > lag_max_ms)
        };
        let new_isr: Vec<i32> = a
            .replicas
            .iter()
            .copied()
            .filter(|&r| {
                if r == self.me {
                    return true;
                }
                match a.isr.contains(&r) {
                    true => !lagging(r),
                    false => caught_up_with(r),
                }
            })
            .collect();
        let mut current = a.isr.clone();
        current.sort_unstable();
        let mut proposed = new_isr.clone();
        proposed.sort_unstable();
        (current != proposed).then_some(IsrProposal {
            leader_epoch: a.leader_epoch,
            partition_epoch: a.partition_epoch,
            new_isr,
        })
    }

    /// Marks `proposal` as sent.
    pub fn begin_change(&mut self, proposal: IsrProposal) {
        self.in_flight = Some(proposal);
    }

    /// The change in flight failed (or was answered): the next check may
    /// propose again.
    pub fn end_change(&mut self) {
        self.in_flight = None;
    }

    pub fn change_in_flight(&self) -> bool {
        self.in_flight.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn led(isr: &[i32]) -> Assignment {
        Assignment {
            leader: 1,
            leader_epoch: 3,
            partition_epoch: 7,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn alone_the_flushed_offset_is_the_high_watermark() {
        let state = ReplicaState::new(1);
        assert!(state.is_leader());
        assert_eq!(state.high_watermark_bound(42), 42);
        assert!(state.enough_in_sync());
        assert_eq!(state.isr_change_due(1_000_000, 10, 42, 0), None);
    }

    #[test]
    fn the_high_watermark_waits_for_every_isr_member() {
        let mut state = ReplicaState::new(1);
        state.assign(1, led(&[1, 2, 3]), 1000);
        // Nobody fetched since the takeover: held.
        assert_eq!(state.high_watermark_bound(100), -1);
        assert!(state.follower_fetched(2, 60, 100, 1010));
        assert_eq!(state.high_watermark_bound(100), -1);
        assert!(state.follower_fetched(3, 80, 100, 1010));
        assert_eq!(state.high_watermark_bound(100), 60);
        assert!(state.follower_fetched(2, 100, 100, 1020));
        assert_eq!(state.high_watermark_bound(100), 80);
        // The leader's own flush bounds it too.
        assert_eq!(state.high_watermark_bound(70), 70);
        assert!(state.follower_fetched(3, 100, 100, 1020));
        assert_eq!(state.high_watermark_bound(90), 90);
        // Not a replica, or past the log end: not recorded.
        assert!(!state.follower_fetched(4, 10, 100, 1030));
        assert!(!state.follower_fetched(2, 101, 100, 1030));
        assert_eq!(state.follower(2).unwrap().fetch_offset, 100);
    }

    #[test]
    fn a_replica_out_of_the_isr_does_not_hold_the_high_watermark() {
        let mut state = ReplicaState::new(1);
        state.assign(1, led(&[1, 2]), 1000);
        state.follower_fetched(2, 50, 50, 1001);
        state.follower_fetched(3, 10, 50, 1001);
        assert_eq!(state.high_watermark_bound(50), 50);
    }

    #[test]
    fn a_follower_uses_the_leaders_high_watermark() {
        let mut state = ReplicaState::new(2);
        state.assign(2, led(&[1, 2, 3]), 1000);
        assert!(!state.is_leader());
        assert!(!state.follower_fetched(3, 10, 10, 1001));
        state.leader_high_watermark(40);
        assert_eq!(state.high_watermark_bound(30), 30);
        assert_eq!(state.high_watermark_bound(50), 40);
    }

    #[test]
    fn a_lagging_member_leaves_and_a_caught_up_replica_joins() {
        let mut state = ReplicaState::new(1);
        state.assign(1, led(&[1, 2, 3]), 1000);
        state.follower_fetched(2, 100, 100, 1000);
        state.follower_fetched(3, 100, 100, 1000);
        // Leader end moves to 150; 2 keeps up, 3 stops fetching.
        state.follower_fetched(2, 150, 150, 5000);
        assert_eq!(state.isr_change_due(5000, 10_000, 150, 0), None);
        let shrink = state.isr_change_due(11_001, 10_000, 150, 0).unwrap();
        assert_eq!(
            shrink,
            IsrProposal {
                leader_epoch: 3,
                partition_epoch: 7,
                new_isr: vec![1, 2],
            }
        );
        state.begin_change(shrink);
        // While in flight both ISRs count and no other change is due.
        assert_eq!(state.high_watermark_bound(150), 100);
        assert_eq!(state.isr_change_due(20_000, 10_000, 150, 0), None);
        let mut committed = led(&[1, 2]);
        committed.partition_epoch = 8;
        state.assign(1, committed, 11_010);
        assert!(!state.change_in_flight());
        assert_eq!(state.high_watermark_bound(150), 150);
        // 3 comes back: below the high watermark it stays out; at it,
        // and past the epoch start, it joins.
        state.follower_fetched(3, 120, 160, 12_000);
        assert_eq!(state.isr_change_due(12_000, 10_000, 150, 0), None);
        state.follower_fetched(3, 150, 160, 12_100);
        assert_eq!(state.isr_change_due(12_100, 10_000, 150, 155), None);
        let expand = state.isr_change_due(12_100, 10_000, 150, 140).unwrap();
        assert_eq!(expand.new_isr, vec![1, 2, 3]);
        assert_eq!(expand.partition_epoch, 8);
    }

    #[test]
    fn caught_up_time_follows_kafkas_rule() {
        let mut state = ReplicaState::new(1);
        state.assign(1, led(&[1, 2]), 0);
        // At the log end: caught up now.
        state.follower_fetched(2, 100, 100, 1000);
        assert_eq!(state.follower(2).unwrap().last_caught_up_ms, 1000);
        // Behind the current end but at the end of its previous fetch:
        // it was caught up when that fetch was answered.
        state.follower_fetched(2, 100, 130, 2000);
        assert_eq!(state.follower(2).unwrap().last_caught_up_ms, 1000);
        state.follower_fetched(2, 130, 170, 3000);
        assert_eq!(state.follower(2).unwrap().last_caught_up_ms, 2000);
        // Falling behind its previous end: no credit.
        state.follower_fetched(2, 140, 200, 4000);
        assert_eq!(state.follower(2).unwrap().last_caught_up_ms, 2000);
    }

    #[test]
    fn a_replica_added_under_the_same_leadership_is_tracked_and_may_join() {
        let mut state = ReplicaState::new(1);
        let mut two = led(&[1, 2]);
        two.replicas = vec![1, 2];
        state.assign(1, two, 0);
        assert_eq!(state.follower(3), None);
        let mut grown = led(&[1, 2]);
        grown.partition_epoch += 1;
        state.assign(1, grown, 10);
        assert_eq!(state.follower(3).map(|f| f.fetch_offset), Some(-1));
        assert!(state.follower_fetched(2, 5, 5, 20));
        assert!(state.follower_fetched(3, 5, 5, 20));
        let proposal = state.isr_change_due(20, 1_000, 5, 0).expect("3 joins");
        assert_eq!(proposal.new_isr, vec![1, 2, 3]);
    }

    #[test]
    fn a_new_leadership_forgets_followers_and_the_change_in_flight() {
        let mut state = ReplicaState::new(1);
        state.assign(1, led(&[1, 2, 3]), 0);
        state.follower_fetched(2, 10, 10, 1);
        state.begin_change(IsrProposal {
            leader_epoch: 3,
            partition_epoch: 7,
            new_isr: vec![1, 2],
        });
        let mut next = led(&[1, 2, 3]);
        next.leader_epoch = 4;
        next.partition_epoch = 8;
        state.assign(1, next, 500);
        assert!(!state.change_in_flight());
        assert_eq!(state.follower(2).unwrap().fetch_offset, -1);
        assert_eq!(state.follower(2).unwrap().last_caught_up_ms, 500);
        state.set_min_insync_replicas(4);
        assert!(!state.enough_in_sync());
        state.set_min_insync_replicas(0);
        assert_eq!(state.min_insync_replicas(), 1);
    }
}
