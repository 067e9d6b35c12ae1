//! The quorum's durable raft storage on SimStorage: reopen, torn tails,
//! compaction and installed snapshots, every crash point of both, damage,
//! and raft-rs's RawNode driven over it (one voter, three voters with a
//! lagging follower caught up by snapshot).

use std::future::Future;
use std::path::PathBuf;

use rafka_core::io::Storage;
use rafka_core::quorum::{Invalid, QuorumLog, QuorumLogError, QuorumStorage, Recovered};
use rafka_core::sim::SimStorage;
use raft::prelude::{Entry, HardState, Snapshot};
use raft::{GetEntriesContext, Storage as _};

mod quorum_support;

use quorum_support::Cluster;

fn block_on<F: Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

fn dir() -> PathBuf {
    PathBuf::from("/data/__rafka_quorum")
}

fn log_path(base: u64) -> PathBuf {
    dir().join(format!("{base:020}.log"))
}

type Opened = (QuorumLog<SimStorage>, QuorumStorage, Recovered);

fn try_open(storage: &SimStorage) -> Result<Opened, QuorumLogError> {
    block_on(QuorumLog::open(storage.clone(), dir(), &[1, 2, 3]))
}

fn open(storage: &SimStorage) -> Opened {
    match try_open(storage) {
        Ok(opened) => opened,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn open_err(storage: &SimStorage) -> String {
    match try_open(storage) {
        Ok(_) => panic!("open succeeded"),
        Err(e) => e.to_string(),
    }
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("entry {index} term {term}").into_bytes().into(),
        ..Default::default()
    }
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn hs(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

fn persist(log: &mut QuorumLog<SimStorage>, entries: &[Entry], hard_state: Option<&HardState>) {
    if let Err(e) = block_on(log.persist(entries, hard_state)) {
        panic!("persist failed: {e}");
    }
}

fn compact(log: &mut QuorumLog<SimStorage>, index: u64, data: &[u8]) {
    if let Err(e) = block_on(log.compact(index, data.to_vec())) {
        panic!("compact failed: {e}");
    }
}

fn all_entries(storage: &QuorumStorage) -> Vec<Entry> {
    let (first, last) = (storage.first_index(), storage.last_index());
    let (Ok(first), Ok(last)) = (first, last) else {
        panic!("no index");
    };
    match storage.entries(first, last + 1, None, GetEntriesContext::empty(false)) {
        Ok(entries) => entries,
        Err(e) => panic!("entries: {e}"),
    }
}

fn files(storage: &SimStorage) -> Vec<String> {
    let mut names = block_on(storage.list_dir(&dir())).unwrap_or_default();
    names.sort();
    names
}

fn leader_snapshot(index: u64, term: u64, data: &[u8]) -> Snapshot {
    let mut snapshot = Snapshot {
        data: data.to_vec().into(),
        ..Default::default()
    };
    snapshot.mut_metadata().index = index;
    snapshot.mut_metadata().term = term;
    snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    snapshot
}

/// Index range, hard state and every entry: what raft-rs can observe.
fn observed(storage: &QuorumStorage) -> (u64, u64, HardState, Vec<Entry>) {
    let state = storage.initial_state().map(|s| s.hard_state);
    (
        storage.first_index().unwrap_or(0),
        storage.last_index().unwrap_or(0),
        state.unwrap_or_default(),
        all_entries(storage),
    )
}

#[test]
fn entries_and_hard_state_survive_reopen() {
    let storage = SimStorage::new();
    let (mut log, mirror, recovered) = open(&storage);
    assert_eq!(recovered.entries, 0);
    assert_eq!(recovered.conf_state.voters, vec![1, 2, 3]);
    assert_eq!((mirror.first_index(), mirror.last_index()), (Ok(1), Ok(0)));
    persist(&mut log, &entries(1..=3, 1), Some(&hs(1, 1, 0)));
    persist(&mut log, &entries(4..=5, 2), Some(&hs(2, 2, 3)));
    persist(&mut log, &[], Some(&hs(2, 2, 5)));
    let before = observed(&mirror);
    assert_eq!(before.2, hs(2, 2, 5));
    assert_eq!(storage.stats().sync_data_calls, 1 + 3);
    drop(log);

    // Reopened with other voters: the stored ones win.
    let reopened = block_on(QuorumLog::open(storage.clone(), dir(), &[7]));
    let Ok((_log, mirror, recovered)) = reopened else {
        panic!("reopen failed");
    };
    assert_eq!(observed(&mirror), before);
    assert_eq!(recovered.entries, 5);
    assert_eq!(recovered.truncated_bytes, 0);
    assert_eq!(recovered.snapshot_index, None);
    let state = mirror.initial_state().map(|s| s.conf_state.voters);
    assert_eq!(state.ok(), Some(vec![1, 2, 3]));
    assert_eq!(mirror.term(0), Ok(0));
    assert_eq!(mirror.term(4), Ok(2));
}

#[test]
fn a_conflicting_suffix_is_replaced_and_stays_replaced() {
    let storage = SimStorage::new();
    let (mut log, mirror, _) = open(&storage);
    persist(&mut log, &entries(1..=5, 1), Some(&hs(1, 1, 2)));
    persist(&mut log, &entries(3..=4, 2), Some(&hs(2, 3, 2)));
    let terms = |m: &QuorumStorage| all_entries(m).iter().map(|e| e.term).collect::<Vec<_>>();
    assert_eq!(terms(&mirror), vec![1, 1, 2, 2]);
    drop(log);
    storage.crash();
    let (_log, mirror, _) = open(&storage);
    assert_eq!(terms(&mirror), vec![1, 1, 2, 2]);
    assert_eq!(mirror.last_index(), Ok(4));
}

#[test]
fn what_persist_returned_survives_a_crash() {
    let storage = SimStorage::new();
    let (mut log, mirror, _) = open(&storage);
    persist(&mut log, &entries(1..=4, 1), Some(&hs(1, 1, 4)));
    let before = observed(&mirror);
    storage.crash();
    assert!(block_on(log.persist(&entries(5..=5, 1), None)).is_err());
    let (_log, mirror, recovered) = open(&storage);
    assert_eq!(observed(&mirror), before);
    assert_eq!(recovered.truncated_bytes, 0);
}

#[test]
fn a_torn_append_is_cut_at_every_byte() {
    let storage = SimStorage::new();
    let (mut log, mirror, _) = open(&storage);
    persist(&mut log, &entries(1..=2, 1), Some(&hs(1, 1, 1)));
    let before = observed(&mirror);
    storage.fail_next_syncs(1);
    let failed = block_on(log.persist(&entries(3..=5, 1), Some(&hs(1, 1, 2))));
    assert!(failed.is_err());
    // A failed sync poisons: the disk's state is unknown.
    let again = block_on(log.persist(&entries(3..=3, 1), None));
    assert!(matches!(again, Err(QuorumLogError::Poisoned)));
    let unsynced = storage.unsynced_bytes(&log_path(0));
    assert!(unsynced > 100, "{unsynced}");
    for kept in 0..=unsynced {
        let fork = storage.fork();
        fork.crash_keeping(&log_path(0), kept);
        let (_log, mirror, recovered) = open(&fork);
        if kept < unsynced {
            assert_eq!(observed(&mirror), before, "kept {kept}");
            assert_eq!(recovered.truncated_bytes, kept as u64, "kept {kept}");
        } else {
            // All of it landed, the commit frame too: it counts.
            assert_eq!(mirror.last_index(), Ok(5));
            assert_eq!(recovered.truncated_bytes, 0);
        }
        // The cut is durable: a second crash changes nothing.
        fork.crash();
        let (_log, again, recovered) = open(&fork);
        assert_eq!(observed(&again), observed(&mirror), "kept {kept}");
        assert_eq!(recovered.truncated_bytes, 0);
    }
}

#[test]
fn compaction_survives_reopen() {
    let storage = SimStorage::new();
    let (mut log, mirror, _) = open(&storage);
    persist(&mut log, &entries(1..=6, 1), Some(&hs(1, 1, 0)));
    persist(&mut log, &entries(7..=10, 2), Some(&hs(2, 1, 8)));
    compact(&mut log, 7, b"state at 7");
    let snapshot = log.snapshot().cloned().unwrap_or_default();
    assert_eq!(snapshot.get_metadata().index, 7);
    assert_eq!(snapshot.get_metadata().term, 2);
    assert_eq!(
        snapshot.get_metadata().get_conf_state().voters,
        vec![1, 2, 3]
    );
    assert_eq!(&snapshot.data[..], b"state at 7");
    let before = observed(&mirror);
    assert_eq!((before.0, before.1), (8, 10));
    assert_eq!(mirror.term(7), Ok(2));
    let compacted = mirror.entries(7, 9, None, GetEntriesContext::empty(false));
    assert_eq!(
        compacted,
        Err(raft::Error::Store(raft::StorageError::Compacted))
    );
    assert_eq!(
        files(&storage),
        vec![
            "00000000000000000007.log".to_owned(),
            "00000000000000000007.snapshot".to_owned()
        ]
    );
    // At or below the snapshot: nothing to do. Past the commit: refused.
    compact(&mut log, 5, b"older");
    let past = block_on(log.compact(9, b"x".to_vec()));
    assert!(matches!(
        past,
        Err(QuorumLogError::Invalid(Invalid::CompactOutOfRange {
            index: 9,
            ..
        }))
    ));
    persist(&mut log, &entries(11..=11, 2), Some(&hs(2, 1, 11)));
    let before = observed(&mirror);
    drop(log);
    storage.crash();

    let (log, mirror, recovered) = open(&storage);
    assert_eq!(observed(&mirror), before);
    assert_eq!(recovered.snapshot_index, Some(7));
    assert_eq!(recovered.entries, 4);
    assert_eq!(log.snapshot(), Some(&snapshot));
    assert_eq!(
        mirror.snapshot(7, 2).map(|s| s.data),
        Ok(snapshot.data.clone())
    );
}

#[test]
fn a_leader_snapshot_past_the_log_replaces_it() {
    let storage = SimStorage::new();
    let (mut log, mirror, _) = open(&storage);
    persist(&mut log, &entries(1..=4, 1), Some(&hs(1, 2, 2)));
    let snapshot = leader_snapshot(20, 3, b"leader image");
    if let Err(e) = block_on(log.install_snapshot(&snapshot)) {
        panic!("install failed: {e}");
    }
    let check = |mirror: &QuorumStorage| {
        assert_eq!(
            (mirror.first_index(), mirror.last_index()),
            (Ok(21), Ok(20))
        );
        assert_eq!(mirror.term(20), Ok(3));
        let state = mirror.initial_state().unwrap_or_default();
        assert_eq!(state.hard_state, hs(3, 2, 20));
        assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
    };
    check(&mirror);
    // Older than what we hold: refused, and the log stays usable.
    let stale = block_on(log.install_snapshot(&leader_snapshot(20, 3, b"")));
    assert!(matches!(
        stale,
        Err(QuorumLogError::Invalid(Invalid::SnapshotOutOfDate { .. }))
    ));
    persist(&mut log, &entries(21..=22, 3), Some(&hs(3, 2, 21)));
    drop(log);
    storage.crash();
    let (log, mirror, recovered) = open(&storage);
    assert_eq!(recovered.snapshot_index, Some(20));
    assert_eq!(recovered.entries, 2);
    assert_eq!(log.snapshot().map(|s| s.data.clone()), Some(snapshot.data));
    assert_eq!(mirror.hard_state(), hs(3, 2, 21));
}

/// The state before a compaction to 6 (or a leader snapshot at 12).
fn history(storage: &SimStorage) -> QuorumLog<SimStorage> {
    let (mut log, _, _) = open(storage);
    persist(&mut log, &entries(1..=10, 1), Some(&hs(1, 1, 8)));
    compact(&mut log, 3, b"state at 3");
    log
}

/// Runs `step` once per crash point: the process dies after its n-th
/// storage operation, unsynced bytes are lost (or randomly kept), and the
/// log reopens. Returns how many reopened to the old and the new state.
fn every_crash_point(
    step: impl Fn(&mut QuorumLog<SimStorage>) -> Result<(), QuorumLogError>,
    old: &(u64, u64, HardState, Vec<Entry>),
    new: &(u64, u64, HardState, Vec<Entry>),
) -> (u32, u32) {
    let (mut olds, mut news) = (0, 0);
    for random in [false, true] {
        for ops in 0.. {
            let storage = SimStorage::with_seed(ops + 1);
            let mut log = history(&storage);
            storage.halt_after(ops);
            let done = step(&mut log).is_ok();
            if !done {
                // Cut short: the log refuses to go on over an unknown disk.
                let next = block_on(log.persist(&[], Some(&hs(1, 1, 8))));
                assert!(matches!(next, Err(QuorumLogError::Poisoned)), "{ops}");
            }
            match random {
                false => storage.crash(),
                true => storage.crash_random(),
            }
            let (_log, mirror, _) = open(&storage);
            let found = observed(&mirror);
            if found == *old {
                olds += 1;
            } else if found == *new {
                news += 1;
            } else {
                panic!("crash after {ops} ops: neither old nor new: {found:?}");
            }
            if done {
                assert_eq!(found, *new, "completed, then crashed");
                break;
            }
        }
    }
    (olds, news)
}

#[test]
fn a_crash_anywhere_in_compaction_opens_to_old_or_new() {
    let storage = SimStorage::new();
    let mut log = history(&storage);
    let (_, mirror, _) = open(&storage.fork());
    let old = observed(&mirror);
    compact(&mut log, 6, b"state at 6");
    drop(log);
    let (log, mirror, _) = open(&storage);
    let new = observed(&mirror);
    assert_eq!((new.0, new.1), (7, 10));
    assert_eq!(
        log.snapshot().map(|s| s.data.to_vec()),
        Some(b"state at 6".to_vec())
    );
    let (olds, news) = every_crash_point(
        |log| block_on(log.compact(6, b"state at 6".to_vec())),
        &old,
        &new,
    );
    assert!(olds > 5 && news > 1, "old {olds} new {news}");
}

#[test]
fn a_crash_anywhere_in_snapshot_install_opens_to_old_or_new() {
    let snapshot = leader_snapshot(12, 2, b"leader image");
    let storage = SimStorage::new();
    let mut log = history(&storage);
    let (_, mirror, _) = open(&storage.fork());
    let old = observed(&mirror);
    if let Err(e) = block_on(log.install_snapshot(&snapshot)) {
        panic!("install failed: {e}");
    }
    drop(log);
    let (_, mirror, _) = open(&storage);
    let new = observed(&mirror);
    assert_eq!((new.0, new.1, new.2.commit), (13, 12, 12));
    let (olds, news) =
        every_crash_point(|log| block_on(log.install_snapshot(&snapshot)), &old, &new);
    assert!(olds > 5 && news > 1, "old {olds} new {news}");
}

#[test]
fn damage_fails_open() {
    let storage = SimStorage::new();
    let (mut log, _, _) = open(&storage);
    let mut last_group = 0;
    for i in 1..=6 {
        last_group = storage.file_contents(&log_path(0)).map_or(0, |c| c.len());
        persist(&mut log, &entries(i..=i, 1), Some(&hs(1, 1, i - 1)));
    }
    drop(log);
    let good = storage.file_contents(&log_path(0)).unwrap_or_default();
    // Every byte before the last group is acknowledged: a flip there is
    // damage, never a torn tail.
    for at in 0..last_group {
        let mut bad = good.clone();
        bad[at] ^= 0x20;
        let tampered = storage.fork();
        tampered.set_file_contents(&log_path(0), &bad);
        let err = open_err(&tampered);
        assert!(err.contains("damaged"), "byte {at}: {err}");
    }
    // A length past the cap (with a valid header crc) is damage too, and
    // nothing is allocated for it.
    let mut huge = good[..last_group].to_vec();
    let mut header = u32::MAX.to_be_bytes().to_vec();
    header.extend_from_slice(&0u32.to_be_bytes());
    let header_crc = crc32c::crc32c(&header);
    header.extend_from_slice(&header_crc.to_be_bytes());
    huge.extend_from_slice(&header);
    huge.extend_from_slice(&good[last_group..]);
    storage.set_file_contents(&log_path(0), &huge);
    let err = open_err(&storage);
    assert!(err.contains("out of range"), "{err}");
}

#[test]
fn a_damaged_or_missing_snapshot_fails_open() {
    let storage = SimStorage::new();
    let mut log = history(&storage);
    drop(log.persist(&[], None));
    drop(log);
    let path = dir().join(format!("{:020}.snapshot", 3));
    let good = storage.file_contents(&path).unwrap_or_default();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x01;
    let damaged = storage.fork();
    damaged.set_file_contents(&path, &bad);
    assert!(open_err(&damaged).contains("damaged"));
    let missing = storage.fork();
    missing.remove_file_durably(&path);
    assert!(open_err(&missing).contains("snapshot file is missing"));
}

#[test]
fn contract_breaches_are_refused_without_writing() {
    let storage = SimStorage::new();
    let (mut log, mirror, _) = open(&storage);
    persist(&mut log, &entries(1..=4, 1), Some(&hs(1, 1, 3)));
    let syncs = storage.stats().sync_data_calls;
    let attempts: Vec<(Vec<Entry>, Option<HardState>)> = vec![
        (entries(6..=6, 1), None),
        (vec![entry(4, 2), entry(6, 2)], None),
        (entries(3..=4, 2), None),
        (entries(5..=5, 1), Some(hs(1, 1, 6))),
    ];
    for (entries, hard_state) in attempts {
        let result = block_on(log.persist(&entries, hard_state.as_ref()));
        assert!(
            matches!(result, Err(QuorumLogError::Invalid(_))),
            "{result:?}"
        );
    }
    let huge = Entry {
        index: 5,
        term: 1,
        data: vec![0u8; 64 * 1024 * 1024].into(),
        ..Default::default()
    };
    let result = block_on(log.persist(&[huge], None));
    assert!(matches!(
        result,
        Err(QuorumLogError::Invalid(Invalid::EntryTooLarge {
            index: 5,
            ..
        }))
    ));
    assert_eq!(storage.stats().sync_data_calls, syncs);
    persist(&mut log, &entries(5..=5, 1), Some(&hs(1, 1, 5)));
    assert_eq!(mirror.last_index(), Ok(5));
}

#[test]
fn a_fresh_start_cut_short_starts_fresh() {
    for ops in 0..12 {
        let storage = SimStorage::new();
        storage.halt_after(ops);
        let first = try_open(&storage);
        storage.crash();
        let (_log, mirror, recovered) = open(&storage);
        assert_eq!(recovered.conf_state.voters, vec![1, 2, 3], "ops {ops}");
        assert_eq!(mirror.last_index(), Ok(0));
        if first.is_ok() {
            return;
        }
    }
    panic!("open never completed");
}

#[test]
fn raw_node_single_voter_commits_proposals_in_order() {
    let storage = SimStorage::new();
    let mut cluster = Cluster::start(&storage, &[1]);
    cluster.elect(1);
    for p in ["a", "b", "c"] {
        cluster.propose(1, p);
    }
    assert_eq!(cluster.applied(1), ["a", "b", "c"]);
    storage.crash();
    let mut cluster = Cluster::start(&storage, &[1]);
    cluster.settle();
    assert_eq!(cluster.applied(1), ["a", "b", "c"]);
    cluster.elect(1);
    cluster.propose(1, "d");
    assert_eq!(cluster.applied(1), ["a", "b", "c", "d"]);
}

#[test]
fn raw_node_three_voters_catch_a_lagging_follower_up_by_snapshot() {
    let storage = SimStorage::new();
    let mut cluster = Cluster::start(&storage, &[1, 2, 3]);
    cluster.elect(1);
    for p in ["a", "b"] {
        cluster.propose(1, p);
    }
    // Node 3 is cut off while the others go on and node 1 compacts.
    cluster.cut = vec![3];
    for p in ["c", "d", "e"] {
        cluster.propose(1, p);
    }
    cluster.compact(1);
    assert_eq!(cluster.applied(3), ["a", "b"]);
    cluster.cut.clear();
    cluster.propose(1, "f");
    let all = ["a", "b", "c", "d", "e", "f"];
    for id in 1..=3 {
        assert_eq!(cluster.applied(id), all, "node {id}");
    }
    assert!(cluster.snapshot_index(3) > 2, "node 3 installed a snapshot");

    storage.crash();
    let mut cluster = Cluster::start(&storage, &[1, 2, 3]);
    cluster.settle();
    for id in 1..=3 {
        assert_eq!(cluster.applied(id), all, "node {id} after restart");
    }
    cluster.elect(2);
    cluster.propose(2, "g");
    for id in 1..=3 {
        assert_eq!(cluster.applied(id).last().map(String::as_str), Some("g"));
    }
}
