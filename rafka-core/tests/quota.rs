//! Client quotas end to end, sans IO: AlterClientQuotas through the
//! durable metadata store and back after a crash, the throttle a client
//! then gets with Kafka's numbers, and one quota held across shards.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;

use rafka_core::metadata::quota_control::{alter_client_quotas, describe_client_quotas};
use rafka_core::metadata::{
    MetadataImage, MetadataRecord, MetadataStore, QuotaAlterationEntry, QuotaOp,
};
use rafka_core::quota::{
    owner_shard, ClientQuotas, QuotaId, QuotaKey, QuotaReport, QuotaTable, QuotaWindow,
};
use rafka_core::sim::SimStorage;
use rafka_testkit::Rng;

fn block_on<F: Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

fn open(storage: &SimStorage) -> MetadataStore<SimStorage> {
    let dir = PathBuf::from("/data/__rafka_metadata");
    match block_on(MetadataStore::open(storage.clone(), dir, 4)) {
        Ok((store, _)) => store,
        Err(e) => panic!("open failed: {e}"),
    }
}

fn entry(parts: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> QuotaAlterationEntry {
    QuotaAlterationEntry {
        entity: parts
            .iter()
            .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
            .collect(),
        ops: ops
            .iter()
            .map(|(key, value)| QuotaOp {
                key: key.to_string(),
                value: value.unwrap_or(0.0),
                remove: value.is_none(),
            })
            .collect(),
    }
}

fn alter(store: &mut MetadataStore<SimStorage>, entries: &[QuotaAlterationEntry]) {
    let alteration = alter_client_quotas(store.image(), entries, false);
    for (entity, result) in &alteration.results {
        assert_eq!(result, &Ok(()), "{entity:?}");
    }
    if let Err(e) = block_on(store.commit(&alteration.records)) {
        panic!("commit failed: {e}");
    }
}

fn id(user: &str, client_id: &str) -> QuotaId {
    QuotaId {
        user: user.into(),
        client_id: client_id.into(),
    }
}

#[test]
fn quotas_survive_a_crash_and_a_snapshot_and_apply_with_precedence() {
    let storage = SimStorage::new();
    let mut store = open(&storage);
    alter(
        &mut store,
        &[
            entry(
                &[("client-id", None)],
                &[("producer_byte_rate", Some(1000.0))],
            ),
            entry(
                &[("user", Some("alice"))],
                &[("producer_byte_rate", Some(5000.0))],
            ),
            entry(
                &[("user", Some("alice")), ("client-id", Some("etl"))],
                &[
                    ("producer_byte_rate", Some(200.0)),
                    ("consumer_byte_rate", Some(300.0)),
                ],
            ),
        ],
    );
    // Enough commits for a snapshot (interval 4 records), then more.
    assert!(matches!(block_on(store.snapshot_if_due()), Ok(true)));
    alter(
        &mut store,
        &[entry(
            &[("user", Some("alice")), ("client-id", Some("etl"))],
            &[("consumer_byte_rate", None)],
        )],
    );
    let image = store.image().as_ref().clone();
    storage.crash();
    let store = open(&storage);
    assert_eq!(store.image().as_ref(), &image);
    let table = store.image().client_quotas();
    let p = QuotaKey::ProducerByteRate;
    assert_eq!(
        table.resolve(p, "alice", "etl"),
        (id("alice", "etl"), Some(200.0))
    );
    assert_eq!(
        table.resolve(p, "alice", "web"),
        (id("alice", ""), Some(5000.0))
    );
    assert_eq!(
        table.resolve(p, "bob", "web"),
        (id("", "web"), Some(1000.0))
    );
    assert_eq!(
        table.resolve(QuotaKey::ConsumerByteRate, "alice", "etl"),
        (id("", "etl"), None)
    );
    let described = describe_client_quotas(store.image(), &[], false).expect("valid");
    assert_eq!(described.len(), 3);
}

/// Kafka's numbers, by hand: quota 1000 B/s, 11 samples of 1 s.
#[test]
fn throttle_times_follow_kafkas_formulas() {
    let mut image = MetadataImage::new();
    let alteration = alter_client_quotas(
        &image,
        &[entry(
            &[("client-id", Some("c"))],
            &[("producer_byte_rate", Some(1000.0))],
        )],
        false,
    );
    for record in &alteration.records {
        image.apply(record).expect("applies");
    }
    let table = image.client_quotas();
    let mut quotas = ClientQuotas::new(QuotaWindow::default());
    let p = QuotaKey::ProducerByteRate;
    let mut produce =
        |bytes: f64, now_ms: i64| quotas.record(table, p, "ANONYMOUS", "c", bytes, now_ms);
    // t=0: 8000 B over the assumed 10 s = 800 B/s: under.
    assert_eq!(produce(8000.0, 0), 0);
    // t=0.5 s: 12000 B over 10.5 s = 1142.857 B/s:
    // (1142.857 - 1000) / 1000 * 10500 = 1500 ms.
    assert_eq!(produce(4000.0, 500), 1500);
    // t=2 s (after the throttle): 13000 B; the oldest sample started at
    // 0, 2 full windows elapsed, 8 assumed: 10 s. 1300 B/s -> 3000 ms.
    assert_eq!(produce(1000.0, 2000), 3000);
    // t=12 s: the sample of 0 s expired at 11.5 s (11 s after its last
    // event); the one of 2 s is kept until 13 s. 1000 B + 1 B over 10 s
    // (oldest start 2 s, 10 full windows): 100.1 B/s, under.
    assert_eq!(produce(1.0, 12_000), 0);
}

/// What happens next in [`achieved_rate`]'s schedule.
enum Event {
    /// A connection is unmuted and sends its next produce.
    Ready,
    /// A produce's report reaches the owner shard.
    Report {
        owner: u32,
        report: QuotaReport,
        sent_ms: i64,
        service_ms: i64,
        back_ms: i64,
    },
}

/// A client's connections on `shards` shards, each producing as fast as
/// its throttle lets it for two minutes: the bytes per second accepted
/// after the first 20 s, as a multiple of the quota.
///
/// `owned`: each sensor lives on its owner shard; a serving shard's
/// report reaches a remote owner 1-3 ms later (far slower than a real
/// mesh, so reports from different shards arrive out of time order) and
/// the answer takes as long to come back. Otherwise each shard keeps its
/// own sensors, the design the owner avoids.
fn achieved_rate(seed: u64, shards: u32, connections: usize, owned: bool) -> f64 {
    const QUOTA: f64 = 1_000_000.0;
    let duration_ms = 120_000;
    let warmup_ms = 20_000;
    let mut image = MetadataImage::new();
    let alteration = alter_client_quotas(
        &image,
        &[entry(
            &[("client-id", None)],
            &[("producer_byte_rate", Some(QUOTA))],
        )],
        false,
    );
    for record in &alteration.records {
        image.apply(record).expect("applies");
    }
    let table: &QuotaTable = image.client_quotas();
    let p = QuotaKey::ProducerByteRate;
    let mut rng = Rng::new(seed);
    let mut per_shard: Vec<ClientQuotas> = (0..shards)
        .map(|_| ClientQuotas::new(QuotaWindow::default()))
        .collect();
    // (time, sequence) -> event; the sequence keeps ties in order.
    let mut queue: BTreeMap<(i64, u64), (usize, Event)> = BTreeMap::new();
    let mut sequence = 0u64;
    let mut push = |queue: &mut BTreeMap<_, _>, at_ms: i64, conn: usize, event: Event| {
        sequence += 1;
        queue.insert((at_ms, sequence), (conn, event));
    };
    for conn in 0..connections {
        push(&mut queue, conn as i64, conn, Event::Ready);
    }
    let mut accepted = 0.0;
    while let Some(((now_ms, _), (conn, event))) = queue.pop_first() {
        match event {
            Event::Ready if now_ms >= duration_ms => {}
            Event::Ready => {
                let bytes = rng.in_range(8 * 1024..=24 * 1024) as f64;
                if now_ms >= warmup_ms {
                    accepted += bytes;
                }
                // Connection i lands on shard i % shards (SO_REUSEPORT
                // spreads them); its produce is appended and answered
                // after 1-3 ms, then it is muted for the throttle time
                // (KIP-219).
                let serving = (conn % shards as usize) as u32;
                let service_ms = rng.in_range(1..=3) as i64;
                if !owned {
                    let local = &mut per_shard[serving as usize];
                    let throttle_ms = local.record(table, p, "ANONYMOUS", "app", bytes, now_ms);
                    let next_ms = now_ms + service_ms + i64::from(throttle_ms);
                    push(&mut queue, next_ms, conn, Event::Ready);
                    continue;
                }
                let planned =
                    QuotaReport::plan(table, p, "ANONYMOUS", "app", bytes, now_ms, shards);
                let (owner, report) = planned.expect("a quota applies");
                assert_eq!(owner, owner_shard(&report.id, shards));
                let (there_ms, back_ms) = match owner == serving {
                    true => (0, 0),
                    false => (rng.in_range(1..=3) as i64, rng.in_range(1..=3) as i64),
                };
                let event = Event::Report {
                    owner,
                    report,
                    sent_ms: now_ms,
                    service_ms,
                    back_ms,
                };
                push(&mut queue, now_ms + there_ms, conn, event);
            }
            Event::Report {
                owner,
                report,
                sent_ms,
                service_ms,
                back_ms,
            } => {
                let throttle_ms = report.apply(&mut per_shard[owner as usize], table);
                let answered_ms = (sent_ms + service_ms).max(now_ms + back_ms);
                let next_ms = answered_ms + i64::from(throttle_ms);
                push(&mut queue, next_ms, conn, Event::Ready);
            }
        }
    }
    accepted / ((duration_ms - warmup_ms) as f64 / 1000.0) / QUOTA
}

#[test]
fn one_quota_holds_within_ten_percent_on_1_2_and_4_shards() {
    let rng = Rng::from_env(13);
    let seed = rng.seed();
    for (shards, connections) in [(1, 4), (2, 4), (4, 4), (4, 8)] {
        let ratio = achieved_rate(seed, shards, connections, true);
        println!("{shards} shards, {connections} connections: {ratio:.4} x the quota");
        assert!(
            (0.9..=1.1).contains(&ratio),
            "{shards} shards, {connections} connections: {ratio:.3} x the quota (seed {seed})"
        );
    }
    // The schedule can tell: sensors per shard let the client through at
    // about N times its quota.
    let per_shard = achieved_rate(seed, 4, 4, false);
    println!("4 shards, per-shard sensors: {per_shard:.4} x the quota");
    assert!(
        per_shard > 3.0,
        "per-shard sensors: {per_shard:.3} x (seed {seed})"
    );
}

#[test]
fn removed_quota_stops_throttling_at_once() {
    let mut image = MetadataImage::new();
    let set = alter_client_quotas(
        &image,
        &[entry(
            &[("user", None)],
            &[("producer_byte_rate", Some(10.0))],
        )],
        false,
    );
    let records: Vec<MetadataRecord> = set.records;
    for record in &records {
        image.apply(record).expect("applies");
    }
    let mut quotas = ClientQuotas::new(QuotaWindow::default());
    let p = QuotaKey::ProducerByteRate;
    assert!(quotas.record(image.client_quotas(), p, "u", "c", 1000.0, 0) > 0);
    let removed = alter_client_quotas(
        &image,
        &[entry(&[("user", None)], &[("producer_byte_rate", None)])],
        false,
    );
    for record in &removed.records {
        image.apply(record).expect("applies");
    }
    assert_eq!(
        quotas.record(image.client_quotas(), p, "u", "c", 1000.0, 1),
        0
    );
}
