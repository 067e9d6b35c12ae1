//! Which brokers hold a new partition: Kafka's replica assignment
//! (`AdminUtils.assignReplicasToBrokers`), rack-unaware when any broker
//! has no rack, rack-aware otherwise (each partition's replicas on as many
//! racks as possible, leaders spread over racks). The first replica is the
//! preferred leader; leaders of consecutive partitions walk the brokers, so
//! leadership is balanced.
//!
//! Kafka draws the start index and the replica shift at random; here the
//! caller passes them (the controller derives them from the random topic
//! id), so an assignment is reproducible from its inputs.

use std::collections::{BTreeMap, BTreeSet};

/// A registered broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node_id: i32,
    pub rack: Option<String>,
}

/// Replicas for partitions `first_partition..first_partition + count`,
/// `factor` each. `brokers` must hold at least `factor` brokers and
/// `factor` must be at least 1 (the controller checks both first).
pub fn assign_replicas(
    brokers: &[Candidate],
    count: usize,
    first_partition: usize,
    factor: usize,
    start: u64,
    shift: u64,
) -> Vec<Vec<i32>> {
    assert!(
        factor >= 1 && factor <= brokers.len(),
        "checked by the caller"
    );
    let mut sorted = brokers.to_vec();
    sorted.sort_by_key(|b| b.node_id);
    if sorted.iter().all(|b| b.rack.is_some()) {
        rack_aware(&sorted, count, first_partition, factor, start, shift)
    } else {
        let ids: Vec<i32> = sorted.iter().map(|b| b.node_id).collect();
        rack_unaware(&ids, count, first_partition, factor, start, shift)
    }
}

/// The `j`-th follower's index after the leader at `first`.
fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    let step = 1 + (shift + j) % (n - 1);
    (first + step) % n
}

fn rack_unaware(
    ids: &[i32],
    count: usize,
    first_partition: usize,
    factor: usize,
    start: u64,
    shift: u64,
) -> Vec<Vec<i32>> {
    let n = ids.len();
    let start = (start % n as u64) as usize;
    let mut shift = (shift % n as u64) as usize;
    let mut out = Vec::with_capacity(count);
    for partition in first_partition..first_partition + count {
        if partition > 0 && partition % n == 0 {
            shift += 1;
        }
        let first = (partition + start) % n;
        let mut replicas = vec![ids[first]];
        for j in 0..factor - 1 {
            replicas.push(ids[replica_index(first, shift, j, n)]);
        }
        out.push(replicas);
    }
    out
}

/// Brokers alternating over racks (racks in name order, brokers in id
/// order within a rack): Kafka's `getRackAlternatedBrokerList`.
fn rack_alternated(brokers: &[Candidate]) -> Vec<&Candidate> {
    let mut by_rack: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for broker in brokers {
        let rack = broker.rack.as_deref().unwrap_or_default();
        by_rack.entry(rack).or_default().push(broker);
    }
    let mut queues: Vec<std::vec::IntoIter<&Candidate>> =
        by_rack.into_values().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(brokers.len());
    let mut rack = 0;
    while out.len() < brokers.len() {
        if let Some(broker) = queues[rack].next() {
            out.push(broker);
        }
        rack = (rack + 1) % queues.len();
    }
    out
}

fn rack_aware(
    brokers: &[Candidate],
    count: usize,
    first_partition: usize,
    factor: usize,
    start: u64,
    shift: u64,
) -> Vec<Vec<i32>> {
    let arranged = rack_alternated(brokers);
    let n = arranged.len();
    let racks = brokers
        .iter()
        .map(|b| b.rack.as_deref())
        .collect::<BTreeSet<_>>()
        .len();
    let start = (start % n as u64) as usize;
    let mut shift = (shift % n as u64) as usize;
    let mut out = Vec::with_capacity(count);
    for partition in first_partition..first_partition + count {
        if partition > 0 && partition % n == 0 {
            shift += 1;
        }
        let first = (partition + start) % n;
        let leader = arranged[first];
        let mut replicas = vec![leader.node_id];
        let mut used_racks = BTreeSet::from([leader.rack.as_deref()]);
        let mut used = BTreeSet::from([leader.node_id]);
        let mut k = 0;
        for _ in 0..factor - 1 {
            loop {
                let broker = arranged[replica_index(first, shift * racks, k, n)];
                k += 1;
                let rack_ok =
                    !used_racks.contains(&broker.rack.as_deref()) || used_racks.len() == racks;
                let broker_ok = !used.contains(&broker.node_id) || used.len() == n;
                if rack_ok && broker_ok {
                    replicas.push(broker.node_id);
                    used_racks.insert(broker.rack.as_deref());
                    used.insert(broker.node_id);
                    break;
                }
            }
        }
        out.push(replicas);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[Option<&str>]) -> Vec<Candidate> {
        racks
            .iter()
            .enumerate()
            .map(|(i, rack)| Candidate {
                node_id: i as i32 + 1,
                rack: rack.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn without_racks_leaders_walk_the_brokers_and_replicas_differ() {
        let b = brokers(&[None, None, None]);
        let got = assign_replicas(&b, 6, 0, 2, 0, 0);
        assert_eq!(
            got,
            vec![
                vec![1, 2],
                vec![2, 3],
                vec![3, 1],
                vec![1, 3],
                vec![2, 1],
                vec![3, 2]
            ]
        );
        let leaders: Vec<i32> = got.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
    }

    #[test]
    fn start_and_first_partition_move_the_leaders() {
        let b = brokers(&[None, None, None]);
        assert_eq!(assign_replicas(&b, 2, 0, 1, 1, 0), vec![vec![2], vec![3]]);
        // CreatePartitions continues where the topic's partitions end.
        assert_eq!(assign_replicas(&b, 1, 2, 1, 1, 0), vec![vec![1]]);
    }

    #[test]
    fn with_racks_every_partition_spans_racks() {
        let b = brokers(&[Some("a"), Some("a"), Some("b"), Some("b")]);
        for start in 0..4 {
            for partitions in assign_replicas(&b, 8, 0, 2, start, 1) {
                let racks: BTreeSet<&str> = partitions
                    .iter()
                    .map(|id| b[*id as usize - 1].rack.as_deref().unwrap())
                    .collect();
                assert_eq!(racks.len(), 2, "{partitions:?}");
            }
        }
        // Leaders alternate racks: 1 (a), 3 (b), 2 (a), 4 (b).
        let leaders: Vec<i32> = assign_replicas(&b, 4, 0, 1, 0, 0)
            .iter()
            .map(|r| r[0])
            .collect();
        assert_eq!(leaders, vec![1, 3, 2, 4]);
    }

    #[test]
    fn a_factor_of_all_brokers_uses_each_once() {
        let b = brokers(&[None, None, None]);
        for replicas in assign_replicas(&b, 5, 0, 3, 2, 1) {
            let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
            assert_eq!(distinct.len(), 3);
        }
    }
}
