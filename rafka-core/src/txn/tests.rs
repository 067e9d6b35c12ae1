use rafka_proto::error::ErrorCode;

use super::*;

const NOW: i64 = 1_000_000;

fn coordinator() -> TxnCoordinator {
    TxnCoordinator::new(TxnConfig {
        log_partitions: 50,
        max_timeout_ms: 900_000,
        id_expiration_ms: 604_800_000,
    })
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    (topic.to_string(), partition)
}

/// Runs a step that must persist, and completes it.
fn persist(c: &mut TxnCoordinator, id: &str, next: TxnSnapshot) -> TxnSnapshot {
    c.complete(id, next.clone());
    next
}

fn init(c: &mut TxnCoordinator, id: &str, pid: i64) -> (i64, i16) {
    let step = match c.init_producer_id(id, 60_000, None, None, NOW).unwrap() {
        InitStep::NeedProducerId => c
            .init_producer_id(id, 60_000, None, Some(pid), NOW)
            .unwrap(),
        step => step,
    };
    let InitStep::Persist(next) = step else {
        panic!("init must persist: {step:?}");
    };
    let next = persist(c, id, next);
    (next.producer_id, next.producer_epoch)
}

fn add(c: &mut TxnCoordinator, id: &str, (pid, epoch): (i64, i16), parts: &[TopicPartition]) {
    match c.add_partitions(id, pid, epoch, parts, NOW).unwrap() {
        AddStep::Persist(next) => {
            persist(c, id, next);
        }
        AddStep::AlreadyIn => {}
    }
}

#[test]
fn a_new_id_gets_a_fresh_producer_id_with_epoch_0_then_bumps() {
    let mut c = coordinator();
    assert_eq!(
        c.init_producer_id("tx", 60_000, None, None, NOW),
        Ok(InitStep::NeedProducerId)
    );
    assert_eq!(init(&mut c, "tx", 1000), (1000, 0));
    assert_eq!(init(&mut c, "tx", 2000), (1000, 1));
    let m = c.get("tx").unwrap();
    assert_eq!(m.current.state, TxnState::Empty);
    assert_eq!(m.current.last_producer_epoch, 0);
    assert_eq!(m.log_partition, c.partition_of("tx"));
}

#[test]
fn timeouts_outside_the_broker_limit_are_refused() {
    let mut c = coordinator();
    for timeout in [0, -1, 900_001] {
        assert_eq!(
            c.init_producer_id("tx", timeout, None, Some(1), NOW),
            Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT)
        );
    }
    assert!(c.is_empty());
}

#[test]
fn commit_goes_through_prepare_and_complete() {
    let mut c = coordinator();
    let producer = init(&mut c, "tx", 7);
    add(&mut c, "tx", producer, &[tp("a", 0), tp("b", 1)]);
    let m = c.get("tx").unwrap();
    assert_eq!(m.current.state, TxnState::Ongoing);
    assert_eq!(m.current.start_ms, NOW);
    assert_eq!(m.current.partitions.len(), 2);
    // Already in: no write.
    assert_eq!(
        c.add_partitions("tx", 7, 0, &[tp("a", 0)], NOW + 5),
        Ok(AddStep::AlreadyIn)
    );
    let EndStep::Persist(prepare) = c.end_txn("tx", 7, 0, true, NOW + 10).unwrap() else {
        panic!("end must persist");
    };
    assert_eq!(prepare.state, TxnState::PrepareCommit);
    // In flight: every other request waits.
    assert_eq!(
        c.end_txn("tx", 7, 0, true, NOW + 11),
        Err(ErrorCode::CONCURRENT_TRANSACTIONS)
    );
    c.complete("tx", prepare);
    assert_eq!(c.awaiting_markers(), vec!["tx".to_string()]);
    assert_eq!(
        c.add_partitions("tx", 7, 0, &[tp("a", 0)], NOW + 12),
        Err(ErrorCode::CONCURRENT_TRANSACTIONS)
    );
    assert_eq!(
        c.end_txn("tx", 7, 0, false, NOW + 12),
        Err(ErrorCode::INVALID_TXN_STATE)
    );
    let complete = c.complete_markers("tx", NOW + 20).unwrap();
    assert_eq!(complete.state, TxnState::CompleteCommit);
    assert!(complete.partitions.is_empty());
    c.complete("tx", complete);
    // A retried commit is answered; an abort is not valid now.
    assert_eq!(
        c.end_txn("tx", 7, 0, true, NOW + 21),
        Ok(EndStep::AlreadyDone)
    );
    assert_eq!(
        c.end_txn("tx", 7, 0, false, NOW + 21),
        Err(ErrorCode::INVALID_TXN_STATE)
    );
    // The next transaction starts afresh.
    add(&mut c, "tx", (7, 0), &[tp("c", 0)]);
    let m = c.get("tx").unwrap();
    assert_eq!(m.current.partitions.len(), 1);
    assert_eq!(m.current.start_ms, NOW);
}

#[test]
fn requests_with_a_stale_identity_are_refused() {
    let mut c = coordinator();
    init(&mut c, "tx", 7);
    assert_eq!(
        c.add_partitions("nope", 7, 0, &[tp("a", 0)], NOW),
        Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(
        c.add_partitions("tx", 8, 0, &[tp("a", 0)], NOW),
        Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING)
    );
    assert_eq!(
        c.add_partitions("tx", 7, 1, &[tp("a", 0)], NOW),
        Err(ErrorCode::PRODUCER_FENCED)
    );
    assert_eq!(
        c.end_txn("tx", 7, 0, true, NOW),
        Err(ErrorCode::INVALID_TXN_STATE)
    );
}

#[test]
fn a_second_incarnation_fences_and_aborts_the_open_transaction() {
    let mut c = coordinator();
    let old = init(&mut c, "tx", 7);
    add(&mut c, "tx", old, &[tp("a", 0)]);
    let InitStep::FenceAndAbort(abort) = c.init_producer_id("tx", 60_000, None, None, NOW).unwrap()
    else {
        panic!("must fence");
    };
    assert_eq!(abort.state, TxnState::PrepareAbort);
    assert_eq!(abort.producer_epoch, 1);
    assert_eq!(abort.partitions.len(), 1);
    c.complete("tx", abort);
    // The old producer is fenced.
    assert_eq!(
        c.end_txn("tx", 7, 0, true, NOW),
        Err(ErrorCode::PRODUCER_FENCED)
    );
    // The new one retries until the abort completes.
    assert_eq!(
        c.init_producer_id("tx", 60_000, None, None, NOW),
        Err(ErrorCode::CONCURRENT_TRANSACTIONS)
    );
    let done = c.complete_markers("tx", NOW).unwrap();
    assert_eq!(done.state, TxnState::CompleteAbort);
    c.complete("tx", done);
    assert_eq!(init(&mut c, "tx", 9), (7, 2));
}

#[test]
fn kip_360_recovery_bumps_the_epoch_once_and_fences_strangers() {
    let mut c = coordinator();
    init(&mut c, "tx", 7);
    let InitStep::Persist(next) = c
        .init_producer_id("tx", 60_000, Some((7, 0)), None, NOW)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(next.producer_epoch, 1);
    c.complete("tx", next);
    // A retry of that request (answer lost) gets the same epoch.
    let InitStep::Persist(retry) = c
        .init_producer_id("tx", 60_000, Some((7, 0)), None, NOW)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(retry.producer_epoch, 1);
    c.complete("tx", retry);
    assert_eq!(
        c.init_producer_id("tx", 60_000, Some((8, 1)), None, NOW),
        Err(ErrorCode::PRODUCER_FENCED)
    );
    assert_eq!(
        c.init_producer_id("tx", 60_000, Some((7, 5)), None, NOW),
        Err(ErrorCode::PRODUCER_FENCED)
    );
}

#[test]
fn an_exhausted_epoch_rotates_the_producer_id() {
    let mut c = coordinator();
    init(&mut c, "tx", 7);
    let mut m = c.get("tx").unwrap().current.clone();
    m.producer_epoch = i16::MAX - 1;
    c.complete("tx", m);
    assert_eq!(
        c.init_producer_id("tx", 60_000, None, None, NOW),
        Ok(InitStep::NeedProducerId)
    );
    let InitStep::Persist(next) = c
        .init_producer_id("tx", 60_000, None, Some(99), NOW)
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (
            next.producer_id,
            next.producer_epoch,
            next.previous_producer_id
        ),
        (99, 0, 7)
    );
}

#[test]
fn a_timed_out_transaction_is_aborted_with_a_fencing_epoch() {
    let mut c = coordinator();
    let producer = init(&mut c, "tx", 7);
    add(&mut c, "tx", producer, &[tp("a", 0)]);
    assert_eq!(c.next_deadline_ms(), Some(NOW + 60_000));
    assert!(c.timed_out(NOW + 59_999).is_empty());
    assert_eq!(c.timed_out(NOW + 60_000), vec!["tx".to_string()]);
    assert_eq!(c.abort_timed_out("tx", NOW + 59_999), None);
    let abort = c.abort_timed_out("tx", NOW + 60_000).unwrap();
    assert_eq!(
        (abort.state, abort.producer_epoch),
        (TxnState::PrepareAbort, 1)
    );
    assert_eq!(c.next_deadline_ms(), None);
    c.complete("tx", abort);
    assert_eq!(
        c.add_partitions("tx", 7, 0, &[tp("a", 0)], NOW),
        Err(ErrorCode::PRODUCER_FENCED)
    );
}

#[test]
fn idle_ids_expire_with_a_tombstone() {
    let mut c = coordinator();
    init(&mut c, "idle", 7);
    let producer = init(&mut c, "busy", 8);
    add(&mut c, "busy", producer, &[tp("a", 0)]);
    let expired = c.expire(NOW + 604_800_000);
    assert_eq!(expired.len(), 1);
    let (id, dead) = expired.into_iter().next().unwrap();
    assert_eq!(id, "idle");
    let record = c.record_for("idle", &dead);
    assert_eq!(record.value, None);
    c.complete("idle", dead);
    assert!(c.get("idle").is_none());
    assert!(c.get("busy").is_some());
}

#[test]
fn a_failed_write_changes_nothing() {
    let mut c = coordinator();
    let InitStep::Persist(_) = c
        .init_producer_id("tx", 60_000, None, Some(7), NOW)
        .unwrap()
    else {
        panic!()
    };
    c.fail("tx");
    assert!(c.get("tx").is_none(), "never written: forgotten");
    let producer = init(&mut c, "tx", 7);
    let AddStep::Persist(_) = c.add_partitions("tx", 7, 0, &[tp("a", 0)], NOW).unwrap() else {
        panic!()
    };
    c.fail("tx");
    let m = c.get("tx").unwrap();
    assert_eq!(
        (m.current.state, m.pending.is_none()),
        (TxnState::Empty, true)
    );
    assert_eq!(producer, (7, 0));
}

#[test]
fn replay_restores_what_the_records_say() {
    let mut c = coordinator();
    let producer = init(&mut c, "tx", 7);
    add(&mut c, "tx", producer, &[tp("a", 0), tp("a", 1)]);
    let EndStep::Persist(prepare) = c.end_txn("tx", 7, 0, false, NOW + 1).unwrap() else {
        panic!()
    };
    let record = c.record_for("tx", &prepare);
    let mut restarted = coordinator();
    let key = schema::decode_key(&record.key).unwrap();
    restarted
        .replay(record.partition, key, record.value.as_deref())
        .unwrap();
    let m = restarted.get("tx").unwrap();
    assert_eq!(m.current.state, TxnState::PrepareAbort);
    assert_eq!(m.current.partitions.len(), 2);
    assert_eq!(restarted.awaiting_markers(), vec!["tx".to_string()]);
    restarted
        .replay(record.partition, "tx".to_string(), None)
        .unwrap();
    assert!(restarted.is_empty());
}

#[test]
fn verify_only_reports_partitions_outside_the_transaction() {
    let mut c = coordinator();
    let producer = init(&mut c, "tx", 7);
    add(&mut c, "tx", producer, &[tp("a", 0)]);
    assert_eq!(
        c.verify_partitions("tx", 7, 0, &[tp("a", 0), tp("a", 1)]),
        vec![ErrorCode::NONE, ErrorCode::INVALID_TXN_STATE]
    );
    assert_eq!(
        c.verify_partitions("tx", 7, 1, &[tp("a", 0)]),
        vec![ErrorCode::PRODUCER_FENCED]
    );
}

#[test]
fn list_filters_by_state_producer_and_duration() {
    let mut c = coordinator();
    init(&mut c, "a", 1);
    let producer = init(&mut c, "b", 2);
    add(&mut c, "b", producer, &[tp("t", 0)]);
    let all = c.list(
        &ListFilter {
            min_duration_ms: -1,
            ..ListFilter::default()
        },
        NOW,
    );
    assert_eq!(all.unwrap().len(), 2);
    let ongoing = ListFilter {
        states: [TxnState::Ongoing].into(),
        min_duration_ms: -1,
        ..ListFilter::default()
    };
    assert_eq!(c.list(&ongoing, NOW).unwrap()[0].transactional_id, "b");
    let by_pid = ListFilter {
        producer_ids: [1].into(),
        min_duration_ms: -1,
        ..ListFilter::default()
    };
    assert_eq!(c.list(&by_pid, NOW).unwrap()[0].transactional_id, "a");
    let long = ListFilter {
        min_duration_ms: 5_000,
        ..ListFilter::default()
    };
    assert!(c.list(&long, NOW + 5_000).unwrap().is_empty());
    assert_eq!(c.list(&long, NOW + 5_001).unwrap().len(), 1);
    let pattern = ListFilter {
        min_duration_ms: -1,
        id_pattern: Some("[ab]".to_string()),
        ..ListFilter::default()
    };
    assert_eq!(c.list(&pattern, NOW).unwrap().len(), 2);
    let partial = ListFilter {
        id_pattern: Some("x|a".to_string()),
        ..pattern.clone()
    };
    assert_eq!(c.list(&partial, NOW).unwrap().len(), 1);
    let bad = ListFilter {
        id_pattern: Some("(".to_string()),
        ..pattern
    };
    assert_eq!(
        c.list(&bad, NOW),
        Err(ErrorCode::INVALID_REGULAR_EXPRESSION)
    );
    let d = c.describe("b").unwrap();
    assert_eq!(
        (d.state.name(), d.producer_id, d.start_ms),
        ("Ongoing", 2, NOW)
    );
    assert!(c.describe("zzz").is_none());
}
