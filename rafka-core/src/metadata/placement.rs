//! Which shard owns a partition: new partitions go to the least-loaded
//! shard (fewest partitions, lowest index on a tie), and a changed core
//! count moves partitions so every shard ends within one partition of the
//! others, moving as few as it can. Pure and deterministic: the result
//! depends only on the image and the shard count.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::image::MetadataImage;
use super::record::{PartitionPlacementRecord, ShardId};

/// The shard with the fewest partitions; the lowest index wins a tie.
/// `loads` must not be empty.
fn least_loaded(loads: &[u64]) -> usize {
    let mut best = 0;
    for (i, load) in loads.iter().enumerate() {
        if *load < loads[best] {
            best = i;
        }
    }
    best
}

/// The shard with the most partitions; the lowest index wins a tie.
fn most_loaded(loads: &[u64]) -> usize {
    let mut best = 0;
    for (i, load) in loads.iter().enumerate() {
        if *load > loads[best] {
            best = i;
        }
    }
    best
}

fn shard_id(index: usize) -> ShardId {
    ShardId::try_from(index).unwrap_or(ShardId::MAX)
}

/// Shards for `count` new partitions, updating `loads` as it goes.
pub fn place_partitions(loads: &mut [u64], count: usize) -> Vec<ShardId> {
    assert!(!loads.is_empty(), "placement needs at least one shard");
    (0..count)
        .map(|_| {
            let shard = least_loaded(loads);
            loads[shard] += 1;
            shard_id(shard)
        })
        .collect()
}

/// A partition identified for ordering: name first so moves follow topic
/// names, which keeps the choice readable in logs.
type Slot = (String, i32, Uuid);

/// Placement records that spread every partition over `0..shard_count`:
/// partitions on shards that no longer exist move first, then single
/// partitions move from the fullest to the emptiest shard until the
/// difference is at most one.
pub fn rebalance(image: &MetadataImage, shard_count: u32) -> Vec<PartitionPlacementRecord> {
    assert!(shard_count > 0, "placement needs at least one shard");
    let count = shard_count as usize;
    let mut per_shard: Vec<BTreeSet<Slot>> = vec![BTreeSet::new(); count];
    let mut orphans = Vec::new();
    let mut original: BTreeMap<(Uuid, i32), ShardId> = BTreeMap::new();
    for topic in image.topics() {
        for (i, shard) in topic.partitions.iter().enumerate() {
            let partition = i32::try_from(i).unwrap_or(i32::MAX);
            original.insert((topic.id, partition), *shard);
            let slot = (topic.name.clone(), partition, topic.id);
            match per_shard.get_mut(*shard as usize) {
                Some(set) => {
                    set.insert(slot);
                }
                None => orphans.push(slot),
            }
        }
    }
    let mut loads: Vec<u64> = per_shard.iter().map(|s| s.len() as u64).collect();
    for slot in orphans {
        let to = least_loaded(&loads);
        loads[to] += 1;
        per_shard[to].insert(slot);
    }
    loop {
        let (from, to) = (most_loaded(&loads), least_loaded(&loads));
        if loads[from] <= loads[to] + 1 {
            break;
        }
        let Some(slot) = per_shard[from].pop_last() else {
            break;
        };
        loads[from] -= 1;
        loads[to] += 1;
        per_shard[to].insert(slot);
    }
    moves(&per_shard, &original)
}

/// Records for partitions whose final shard differs from the original, in
/// (topic name, partition) order.
fn moves(
    per_shard: &[BTreeSet<Slot>],
    original: &BTreeMap<(Uuid, i32), ShardId>,
) -> Vec<PartitionPlacementRecord> {
    let mut out: Vec<(&Slot, ShardId)> = Vec::new();
    for (shard, slots) in per_shard.iter().enumerate() {
        for slot in slots {
            let (_, partition, id) = slot;
            if original.get(&(*id, *partition)) != Some(&shard_id(shard)) {
                out.push((slot, shard_id(shard)));
            }
        }
    }
    out.sort();
    out.into_iter()
        .map(|((_, partition, id), shard)| PartitionPlacementRecord {
            topic_id: *id,
            partition: *partition,
            shard,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_loaded_with_lowest_index_tie_break() {
        let mut loads = vec![2, 1, 1, 3];
        assert_eq!(place_partitions(&mut loads, 5), vec![1, 2, 0, 1, 2]);
        assert_eq!(loads, vec![3, 3, 3, 3]);
    }
}
