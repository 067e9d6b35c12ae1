//! Fetch sessions (KIP-227): a consumer's partition list cached on the
//! broker, so that later fetches name only what changed and responses carry
//! only partitions with something new.
//!
//! Lives on: every shard, one [`FetchSessionCache`] each, reached through
//! [`with_shard_sessions`]. A session lives on the shard of the connection
//! that created it (a connection never changes shard). Ids carry the shard
//! id in their low bits, so an id that a reconnected client brings to
//! another shard never names someone else's session there: it is not found
//! (FETCH_SESSION_ID_NOT_FOUND) and the client starts a new one.
//!
//! The protocol, as Kafka's `FetchManager` applies it:
//! - id 0, epoch -1: sessionless full fetch; id 0 in the response.
//! - epoch 0: full fetch that creates a session (closing the one named, if
//!   any); the response carries the new id, the next request epoch 1.
//! - epoch -1 with an id: closes that session; answered sessionless.
//! - epoch n > 0: incremental. The request lists new or changed partitions
//!   and `forgotten_topics_data`; the response lists only the session's
//!   partitions with records, a moved high watermark or log start, or an
//!   error. Wrong epoch: INVALID_FETCH_SESSION_EPOCH; unknown id:
//!   FETCH_SESSION_ID_NOT_FOUND; switching between topic names (v < 13)
//!   and ids (v13+): FETCH_SESSION_TOPIC_ID_ERROR.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use rafka_proto::error::ErrorCode;
use uuid::Uuid;

/// Sessions one shard keeps before evicting the least recently used
/// (Kafka's `max.incremental.fetch.session.cache.slots` default).
pub const SESSION_SLOTS_MAX: usize = 1000;

/// The session id of a sessionless fetch.
pub const INVALID_SESSION_ID: i32 = 0;
/// The epoch of a request that creates a session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a sessionless request, or of one that closes its session.
pub const FINAL_EPOCH: i32 = -1;

/// How a request names a topic: by name before Fetch v13, by id from v13.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Name(String),
    Id(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic: TopicKey,
    pub partition: i32,
}

/// What the client asks of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchParams {
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    /// The client's view of the leader epoch (v9+; -1: unchecked).
    pub current_leader_epoch: i32,
    /// The epoch of the last batch the fetcher holds (v12+, followers;
    /// -1: none): the leader answers a diverging epoch when its log
    /// differs there (KIP-595's truncation through Fetch).
    pub last_fetched_epoch: i32,
}

/// What a response says about one partition: what the session compares
/// with what it sent last time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub records_bytes: usize,
    pub error_code: ErrorCode,
    /// The answer carries a diverging epoch (the follower must truncate).
    pub diverging: bool,
}

/// The session fields of one request.
#[derive(Debug, Clone, Copy)]
pub struct SessionRequest<'a> {
    pub session_id: i32,
    pub epoch: i32,
    /// The request names topics by id (Fetch v13+).
    pub uses_topic_ids: bool,
    /// The request's partitions, in request order.
    pub partitions: &'a [(PartitionKey, FetchParams)],
    pub forgotten: &'a [PartitionKey],
}

/// How to answer a request, decided before reading any partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionContext {
    /// Answer every requested partition; session id 0.
    Sessionless,
    /// Answer every requested partition, then cache them as a new session
    /// ([`FetchSessionCache::create`]).
    Full,
    /// Answer the partitions of `session_id` that changed
    /// ([`FetchSessionCache::must_respond`]); `partitions` is the whole
    /// session, in session order.
    Incremental {
        session_id: i32,
        partitions: Vec<(PartitionKey, FetchParams)>,
    },
    /// Answer only this top-level error code.
    Error(ErrorCode),
}

/// A session's view of one partition.
#[derive(Debug, Clone)]
struct CachedPartition {
    params: FetchParams,
    /// Position in the session's order; see [`FetchSession::rotate`].
    position: u64,
    /// -1 until a response without error carried this partition.
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

#[derive(Debug)]
struct FetchSession {
    /// The epoch the next incremental request must carry.
    next_epoch: i32,
    uses_topic_ids: bool,
    /// Key into the cache's LRU order.
    last_used: u64,
    partitions: HashMap<PartitionKey, CachedPartition>,
    order: BTreeMap<u64, PartitionKey>,
    next_position: u64,
}

impl FetchSession {
    fn new(uses_topic_ids: bool, last_used: u64) -> Self {
        FetchSession {
            next_epoch: next_epoch(INITIAL_EPOCH),
            uses_topic_ids,
            last_used,
            partitions: HashMap::new(),
            order: BTreeMap::new(),
            next_position: 0,
        }
    }

    /// Adds a partition, or takes a known one's new fetch position. A new
    /// partition has no high watermark sent yet, so the next response
    /// carries it whatever its data.
    fn upsert(&mut self, key: &PartitionKey, params: FetchParams) {
        if let Some(cached) = self.partitions.get_mut(key) {
            cached.params = params;
            return;
        }
        let position = self.take_position();
        self.order.insert(position, key.clone());
        let cached = CachedPartition {
            params,
            position,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
        };
        self.partitions.insert(key.clone(), cached);
    }

    fn remove(&mut self, key: &PartitionKey) {
        if let Some(cached) = self.partitions.remove(key) {
            self.order.remove(&cached.position);
        }
    }

    fn take_position(&mut self) -> u64 {
        let position = self.next_position;
        self.next_position += 1;
        position
    }

    /// Moves a partition that was just answered to the end of the order:
    /// the order is the read order of the next fetch, and the partitions
    /// first in it get the response's byte budget first (Kafka does the
    /// same, so that no partition starves).
    fn rotate(&mut self, key: &PartitionKey) {
        let position = self.take_position();
        if let Some(cached) = self.partitions.get_mut(key) {
            self.order.remove(&cached.position);
            cached.position = position;
            self.order.insert(position, key.clone());
        }
    }

    fn listing(&self) -> Vec<(PartitionKey, FetchParams)> {
        self.order
            .values()
            .filter_map(|key| {
                let cached = self.partitions.get(key)?;
                Some((key.clone(), cached.params))
            })
            .collect()
    }

    /// Kafka's rule: a partition goes in an incremental response when it
    /// has records, a high watermark, last stable offset or log start
    /// offset the client has not seen, or an error. Remembers what the
    /// response tells. (The LSO only moves with the high watermark today;
    /// compared anyway, so a read_committed consumer never misses it.)
    fn must_respond(&mut self, key: &PartitionKey, observed: &Observed) -> bool {
        let Some(cached) = self.partitions.get_mut(key) else {
            return false;
        };
        let mut respond = observed.records_bytes > 0 || observed.diverging;
        if cached.high_watermark != observed.high_watermark {
            cached.high_watermark = observed.high_watermark;
            respond = true;
        }
        if cached.last_stable_offset != observed.last_stable_offset {
            cached.last_stable_offset = observed.last_stable_offset;
            respond = true;
        }
        if cached.log_start_offset != observed.log_start_offset {
            cached.log_start_offset = observed.log_start_offset;
            respond = true;
        }
        if observed.error_code.is_err() {
            // Once the error clears, the changed watermark brings the
            // partition back into the response.
            cached.high_watermark = -1;
            respond = true;
        }
        if respond {
            self.rotate(key);
        }
        respond
    }
}

/// The epoch after `epoch`; wraps to 1, never to 0 or -1 (which mean
/// "create" and "close").
pub fn next_epoch(epoch: i32) -> i32 {
    if epoch < i32::MAX {
        epoch + 1
    } else {
        1
    }
}

/// One shard's fetch sessions, bounded by `slots_max` (least recently used
/// evicted first).
#[derive(Debug)]
pub struct FetchSessionCache {
    shard_id: u32,
    /// Low bits of every id that hold `shard_id`.
    shard_bits: u32,
    slots_max: usize,
    sessions: HashMap<i32, FetchSession>,
    /// last_used tick -> session id, oldest first.
    lru: BTreeMap<u64, i32>,
    ticks: u64,
    /// Next id candidate (before the shard bits are added).
    next_id: u32,
}

impl FetchSessionCache {
    /// `id_seed` starts the id sequence; a random seed keeps a restarted
    /// broker from handing out the ids of its previous life.
    pub fn new(shard_id: usize, shard_count: usize, slots_max: usize, id_seed: u32) -> Self {
        let shard_bits = usize::BITS - shard_count.saturating_sub(1).leading_zeros();
        FetchSessionCache {
            shard_id: u32::try_from(shard_id).unwrap_or(0),
            shard_bits: shard_bits.min(16),
            slots_max,
            sessions: HashMap::new(),
            lru: BTreeMap::new(),
            ticks: 0,
            next_id: id_seed,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The session's epoch the next incremental request must carry.
    pub fn next_epoch_of(&self, session_id: i32) -> Option<i32> {
        self.sessions.get(&session_id).map(|s| s.next_epoch)
    }

    /// Decides how to answer `request`; for an incremental request, applies
    /// its changes to the session and advances the epoch.
    pub fn begin(&mut self, request: &SessionRequest<'_>) -> SessionContext {
        if request.epoch == INITIAL_EPOCH || request.epoch == FINAL_EPOCH {
            if request.session_id != INVALID_SESSION_ID {
                self.remove(request.session_id);
            }
            return if request.epoch == INITIAL_EPOCH {
                SessionContext::Full
            } else {
                SessionContext::Sessionless
            };
        }
        let tick = self.tick();
        let Some(session) = self.sessions.get_mut(&request.session_id) else {
            return SessionContext::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND);
        };
        if session.next_epoch != request.epoch {
            return SessionContext::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH);
        }
        if session.uses_topic_ids != request.uses_topic_ids {
            return SessionContext::Error(ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR);
        }
        for (key, params) in request.partitions {
            session.upsert(key, *params);
        }
        for key in request.forgotten {
            session.remove(key);
        }
        if session.partitions.is_empty() {
            self.remove(request.session_id);
            return SessionContext::Sessionless;
        }
        session.next_epoch = next_epoch(session.next_epoch);
        let previous_use = std::mem::replace(&mut session.last_used, tick);
        let partitions = session.listing();
        self.lru.remove(&previous_use);
        self.lru.insert(tick, request.session_id);
        SessionContext::Incremental {
            session_id: request.session_id,
            partitions,
        }
    }

    /// Caches the partitions a full fetch answered (in response order) as
    /// a new session; returns its id, or 0 when no id is free.
    pub fn create<I>(&mut self, uses_topic_ids: bool, partitions: I) -> i32
    where
        I: IntoIterator<Item = (PartitionKey, FetchParams, Observed)>,
    {
        if self.slots_max == 0 {
            return INVALID_SESSION_ID;
        }
        while self.sessions.len() >= self.slots_max {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            self.sessions.remove(&oldest);
        }
        let Some(id) = self.allocate_id() else {
            return INVALID_SESSION_ID;
        };
        let tick = self.tick();
        let mut session = FetchSession::new(uses_topic_ids, tick);
        for (key, params, observed) in partitions {
            session.upsert(&key, params);
            session.must_respond(&key, &observed);
        }
        self.sessions.insert(id, session);
        self.lru.insert(tick, id);
        id
    }

    /// Whether an incremental response carries this partition, given what
    /// the fetch observed; records it as sent. A session evicted while the
    /// fetch waited answers everything (always a valid response).
    pub fn must_respond(
        &mut self,
        session_id: i32,
        key: &PartitionKey,
        observed: &Observed,
    ) -> bool {
        match self.sessions.get_mut(&session_id) {
            Some(session) => session.must_respond(key, observed),
            None => true,
        }
    }

    fn remove(&mut self, session_id: i32) {
        if let Some(session) = self.sessions.remove(&session_id) {
            self.lru.remove(&session.last_used);
        }
    }

    fn tick(&mut self) -> u64 {
        self.ticks += 1;
        self.ticks
    }

    /// A positive id, unused on this shard, with the shard id in its low
    /// bits. Of `len + 2` consecutive candidates at most one is 0 and at
    /// most `len` are taken, so the loop always finds one.
    fn allocate_id(&mut self) -> Option<i32> {
        let per_shard = 1u32 << (31 - self.shard_bits);
        for _ in 0..self.sessions.len() + 2 {
            let counter = self.next_id % per_shard;
            self.next_id = self.next_id.wrapping_add(1);
            let id = (counter << self.shard_bits) | self.shard_id;
            let Ok(id) = i32::try_from(id) else { continue };
            if id > 0 && !self.sessions.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }
}

thread_local! {
    /// One cache per shard: a shard is one executor thread, and sessions
    /// are touched only by requests served on it.
    static SHARD_SESSIONS: RefCell<Option<FetchSessionCache>> = const { RefCell::new(None) };
}

/// Runs `f` on this shard's session cache, creating it on first use.
pub fn with_shard_sessions<R>(
    shard_id: usize,
    shard_count: usize,
    f: impl FnOnce(&mut FetchSessionCache) -> R,
) -> R {
    SHARD_SESSIONS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let cache = slot.get_or_insert_with(|| {
            let seed = Uuid::new_v4().as_u128() as u32;
            FetchSessionCache::new(shard_id, shard_count, SESSION_SLOTS_MAX, seed)
        });
        f(cache)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(topic: &str, partition: i32) -> PartitionKey {
        PartitionKey {
            topic: TopicKey::Name(topic.to_string()),
            partition,
        }
    }

    fn params(fetch_offset: i64) -> FetchParams {
        FetchParams {
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            fetch_offset,
            partition_max_bytes: 1 << 20,
        }
    }

    fn seen(high_watermark: i64, records_bytes: usize) -> Observed {
        Observed {
            high_watermark,
            last_stable_offset: high_watermark,
            log_start_offset: 0,
            records_bytes,
            error_code: ErrorCode::NONE,
            diverging: false,
        }
    }

    fn incremental<'a>(
        session_id: i32,
        epoch: i32,
        partitions: &'a [(PartitionKey, FetchParams)],
        forgotten: &'a [PartitionKey],
    ) -> SessionRequest<'a> {
        SessionRequest {
            session_id,
            epoch,
            uses_topic_ids: false,
            partitions,
            forgotten,
        }
    }

    /// A session over t-0 (hw 5) and t-1 (hw 0), as a full fetch leaves it.
    fn cache_with_session() -> (FetchSessionCache, i32) {
        let mut cache = FetchSessionCache::new(0, 1, 4, 7);
        let full = incremental(0, INITIAL_EPOCH, &[], &[]);
        assert_eq!(cache.begin(&full), SessionContext::Full);
        let id = cache.create(
            false,
            [
                (key("t", 0), params(0), seen(5, 100)),
                (key("t", 1), params(0), seen(0, 0)),
            ],
        );
        (cache, id)
    }

    fn listing_of(context: SessionContext) -> Vec<(PartitionKey, FetchParams)> {
        match context {
            SessionContext::Incremental { partitions, .. } => partitions,
            other => panic!("expected an incremental context, got {other:?}"),
        }
    }

    #[test]
    fn sessionless_and_full_requests() {
        let mut cache = FetchSessionCache::new(0, 1, 4, 0);
        let sessionless = incremental(0, FINAL_EPOCH, &[], &[]);
        assert_eq!(cache.begin(&sessionless), SessionContext::Sessionless);
        assert!(cache.is_empty());
        let (mut cache, id) = cache_with_session();
        assert_eq!(id, 7);
        assert_eq!(cache.next_epoch_of(id), Some(1));
        // Epoch 0 naming the old session closes it and opens a new one.
        assert_eq!(
            cache.begin(&incremental(id, INITIAL_EPOCH, &[], &[])),
            SessionContext::Full
        );
        assert_eq!(cache.next_epoch_of(id), None);
    }

    #[test]
    fn incremental_answers_only_changes_and_advances_the_epoch() {
        let (mut cache, id) = cache_with_session();
        let moved = [(key("t", 0), params(5))];
        let partitions = listing_of(cache.begin(&incremental(id, 1, &moved, &[])));
        assert_eq!(
            partitions,
            vec![(key("t", 0), params(5)), (key("t", 1), params(0))]
        );
        assert!(!cache.must_respond(id, &key("t", 0), &seen(5, 0)));
        assert!(!cache.must_respond(id, &key("t", 1), &seen(0, 0)));
        assert_eq!(cache.next_epoch_of(id), Some(2));
        // New data on t-0: it answers, and moves to the end of the order.
        listing_of(cache.begin(&incremental(id, 2, &[], &[])));
        assert!(cache.must_respond(id, &key("t", 0), &seen(8, 60)));
        let partitions = listing_of(cache.begin(&incremental(id, 3, &[], &[])));
        assert_eq!(partitions[0].0, key("t", 1));
        assert_eq!(partitions[1].0, key("t", 0));
    }

    #[test]
    fn a_moved_last_stable_offset_is_answered() {
        let (mut cache, id) = cache_with_session();
        listing_of(cache.begin(&incremental(id, 1, &[], &[])));
        assert!(cache.must_respond(id, &key("t", 0), &seen(9, 0)));
        let held = Observed {
            last_stable_offset: 4,
            ..seen(9, 0)
        };
        assert!(cache.must_respond(id, &key("t", 0), &held));
        assert!(!cache.must_respond(id, &key("t", 0), &held));
        assert!(cache.must_respond(id, &key("t", 0), &seen(9, 0)));
    }

    #[test]
    fn new_partitions_and_errors_always_answer() {
        let (mut cache, id) = cache_with_session();
        let added = [(key("u", 0), params(0))];
        listing_of(cache.begin(&incremental(id, 1, &added, &[])));
        assert!(cache.must_respond(id, &key("u", 0), &seen(0, 0)));
        let failed = Observed {
            error_code: ErrorCode::OFFSET_OUT_OF_RANGE,
            ..seen(5, 0)
        };
        assert!(cache.must_respond(id, &key("t", 0), &failed));
        listing_of(cache.begin(&incremental(id, 2, &[], &[])));
        // The error cleared with the same watermark as before: still sent.
        assert!(cache.must_respond(id, &key("t", 0), &seen(5, 0)));
        assert!(!cache.must_respond(id, &key("t", 0), &seen(5, 0)));
    }

    #[test]
    fn session_errors() {
        let (mut cache, id) = cache_with_session();
        assert_eq!(
            cache.begin(&incremental(id + 1, 1, &[], &[])),
            SessionContext::Error(ErrorCode::FETCH_SESSION_ID_NOT_FOUND)
        );
        assert_eq!(
            cache.begin(&incremental(id, 2, &[], &[])),
            SessionContext::Error(ErrorCode::INVALID_FETCH_SESSION_EPOCH)
        );
        let by_id = SessionRequest {
            uses_topic_ids: true,
            ..incremental(id, 1, &[], &[])
        };
        assert_eq!(
            cache.begin(&by_id),
            SessionContext::Error(ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR)
        );
        // Errors leave the epoch where it was.
        assert_eq!(cache.next_epoch_of(id), Some(1));
    }

    #[test]
    fn forgetting_everything_or_final_epoch_closes_the_session() {
        let (mut cache, id) = cache_with_session();
        let forget = [key("t", 0), key("t", 1)];
        assert_eq!(
            cache.begin(&incremental(id, 1, &[], &forget)),
            SessionContext::Sessionless
        );
        assert!(cache.is_empty());
        let (mut cache, id) = cache_with_session();
        assert_eq!(
            cache.begin(&incremental(id, FINAL_EPOCH, &[], &[])),
            SessionContext::Sessionless
        );
        assert!(cache.is_empty());
    }

    #[test]
    fn least_recently_used_session_is_evicted() {
        let mut cache = FetchSessionCache::new(0, 1, 2, 1);
        let a = cache.create(false, [(key("t", 0), params(0), seen(0, 0))]);
        let b = cache.create(false, [(key("t", 0), params(0), seen(0, 0))]);
        listing_of(cache.begin(&incremental(a, 1, &[], &[])));
        let c = cache.create(false, [(key("t", 0), params(0), seen(0, 0))]);
        assert_eq!((a, b, c), (1, 2, 3));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.next_epoch_of(a), Some(2));
        assert_eq!(cache.next_epoch_of(b), None);
        assert_eq!(cache.next_epoch_of(c), Some(1));
        assert_eq!(FetchSessionCache::new(0, 1, 0, 0).create(false, []), 0);
    }

    #[test]
    fn ids_carry_the_shard_and_skip_zero() {
        let mut shard1 = FetchSessionCache::new(1, 2, 8, u32::MAX);
        let ids: Vec<i32> = (0..3).map(|_| shard1.create(false, [])).collect();
        // Counter wraps within 30 bits: 0x3fff_ffff, then 0, 1.
        assert_eq!(ids, vec![i32::MAX, 1, 3]);
        let mut shard0 = FetchSessionCache::new(0, 2, 8, 0);
        let ids: Vec<i32> = (0..2).map(|_| shard0.create(false, [])).collect();
        assert_eq!(ids, vec![2, 4]);
        assert_eq!(next_epoch(i32::MAX), 1);
    }
}
