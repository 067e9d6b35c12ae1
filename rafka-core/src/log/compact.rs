//! Log compaction (`cleanup.policy=compact`): keep only the latest record
//! of every key in the closed segments, so a log of updates (consumer
//! offsets, a changelog) stays as large as its key set.
//!
//! # Rules (Kafka's, with the choices written down)
//! - Cleanable: the closed segments from the first one on, up to the first
//!   that is not yet durable (its end is past the recovery point) or whose
//!   newest timestamp is younger than `min.compaction.lag.ms`. The active
//!   segment is never touched.
//! - Trigger: the dirty bytes (cleanable segments at or past the clean
//!   point) are at least `min.cleanable.dirty.ratio` of the cleanable
//!   bytes. The clean point lives in memory and starts at the log start on
//!   open, so the first pass after a restart cleans everything once more
//!   (idempotent) instead of trusting a checkpoint file.
//! - The key map covers the whole cleanable range (clean and dirty), whole
//!   segments at a time, until its estimate passes
//!   [`compact_filter::KEY_MAP_BYTES_MAX`]; the range cleaned ends there.
//! - Null keys are dropped. A tombstone (null value) that is the latest of
//!   its key is dropped once its segment's newest timestamp is more than
//!   `delete.retention.ms` old (Kafka's pre-KIP-534 rule, with the
//!   segment's largest timestamp standing in for the file mtime the
//!   storage trait does not expose, as in retention).
//! - Transactions (`compact_aborted`): nothing at or past the last stable
//!   offset the partition passes is cleanable; records of aborted
//!   transactions are removed (and never enter the key map); markers stay
//!   while any batch of their transaction does, then go after
//!   `delete.retention.ms` like tombstones. An idempotent producer's last
//!   batch in the range stays, empty if need be.
//! - Adjacent segments are merged while their sizes before cleaning add up
//!   to at most `segment.bytes`, so repeated passes keep file counts low.
//!
//! # Phases
//! [`Log::compaction_plan`] (no IO) snapshots the cleanable segments;
//! [`CompactionPlan::build`] reads them through their `Rc` files and writes
//! the swap files without borrowing the log, so the owner may keep
//! appending and serving reads; [`Log::install_compacted`] swaps them in if
//! their originals are unchanged. Readers that planned on the old files
//! keep reading them (unlinked, still open). File steps and crash safety:
//! `compact_swap`.

use std::path::PathBuf;
use std::rc::Rc;

use rafka_proto::record::BatchHeader;

use super::compact_aborted::{MarkerFate, TxnWalk};
use super::compact_filter::{drop_whole, filter_batch, Filtered, KeyMap, SegmentReader};
use super::compact_swap::{cleaned_path, remove_if_present, remove_segment_files, swap_path};
use super::config::LogConfig;
use super::error::LogError;
use super::segment::{segment_file_name, BatchSummary, Segment, SegmentFileKind, NO_TIMESTAMP};
use super::txn_index::{write_entries, AbortedTxn};
use super::Log;
use crate::io::{Storage, StorageFile};

/// Bytes of cleaned batches gathered before one write.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// What one compaction pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactOutcome {
    /// Segments rewritten, and the segments they became.
    pub segments_cleaned: u32,
    pub segments_written: u32,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    pub batches_removed: u64,
    /// Distinct keys in the map.
    pub key_count: u64,
    /// Groups whose originals changed (retention, truncation) while they
    /// were being cleaned; their result was thrown away.
    pub groups_discarded: u32,
    /// The log's clean point after the pass.
    pub clean_offset: i64,
}

/// A closed segment as compaction sees it.
struct Source<F> {
    base_offset: i64,
    next_offset: i64,
    size_bytes: u64,
    max_timestamp: i64,
    log_path: PathBuf,
    log_file: Rc<F>,
    /// The scrubber's damaged ranges (start, end): not copied.
    damaged: Vec<(u64, u64)>,
}

/// The cleanable segments of a log at one moment (see the module doc).
pub struct CompactionPlan<S: Storage> {
    storage: S,
    dir: PathBuf,
    config: LogConfig,
    now_ms: i64,
    sources: Vec<Source<S::File>>,
    /// The aborted transactions overlapping the sources.
    aborted: Vec<AbortedTxn>,
    truncations: u64,
}

/// Swap files written by [`CompactionPlan::build`], waiting for
/// [`Log::install_compacted`].
pub struct Cleaned<S: Storage> {
    groups: Vec<CleanedGroup<S::File>>,
    truncations: u64,
    clean_offset: i64,
    outcome: CompactOutcome,
}

/// One cleaned segment and the originals it replaces.
struct CleanedGroup<F> {
    originals: Vec<Source<F>>,
    segment: Segment<F>,
    swap_path: PathBuf,
}

impl<S: Storage + Clone> Log<S> {
    /// Offsets below this were cleaned by a pass since the log opened.
    pub fn clean_offset(&self) -> i64 {
        self.clean_offset
    }

    /// Plans a pass at `now_ms` if the log is compacted and dirty enough.
    pub fn compaction_plan(&self, now_ms: i64) -> Option<CompactionPlan<S>> {
        self.compaction_plan_below(now_ms, i64::MAX)
    }

    /// [`Log::compaction_plan`] of the segments wholly below
    /// `upper_offset` only: a partition passes its last stable offset, so
    /// that every transaction in the range is decided.
    pub fn compaction_plan_below(
        &self,
        now_ms: i64,
        upper_offset: i64,
    ) -> Option<CompactionPlan<S>> {
        if !self.config.cleanup_compact || self.health.check_write().is_err() {
            return None;
        }
        let closed = &self.segments[..self.segments.len() - 1];
        let lag_ms = self.config.min_compaction_lag_ms;
        let upper_offset = upper_offset.min(self.recovery_point);
        let cleanable = closed
            .iter()
            .take_while(|s| s.next_offset <= upper_offset)
            .take_while(|s| {
                lag_ms == 0
                    || (s.max_timestamp != NO_TIMESTAMP
                        && now_ms.saturating_sub(s.max_timestamp) >= lag_ms)
            })
            .count();
        let sources = &closed[..cleanable];
        let total_bytes: u64 = sources.iter().map(|s| s.size_bytes).sum();
        let dirty_bytes: u64 = sources
            .iter()
            .filter(|s| s.next_offset > self.clean_offset)
            .map(|s| s.size_bytes)
            .sum();
        let ratio = self.config.min_cleanable_dirty_ratio;
        if dirty_bytes == 0 || (dirty_bytes as f64) < ratio * total_bytes as f64 {
            return None;
        }
        let (start, end) = (sources[0].base_offset, sources[cleanable - 1].next_offset);
        // An abort's entry sits with its marker, which may be past the range.
        let aborted = self
            .segments
            .iter()
            .flat_map(|s| s.aborted.iter().copied())
            .filter(|e| e.first_offset < end && e.last_offset >= start)
            .collect();
        Some(CompactionPlan {
            storage: self.storage.clone(),
            dir: self.dir.clone(),
            config: self.config.clone(),
            now_ms,
            sources: sources.iter().map(Source::of).collect(),
            aborted,
            truncations: self.truncations,
        })
    }

    /// Plans, builds and installs one pass; None if nothing was due.
    pub async fn compact(&mut self, now_ms: i64) -> Result<Option<CompactOutcome>, LogError> {
        let Some(plan) = self.compaction_plan(now_ms) else {
            return Ok(None);
        };
        let cleaned = plan.build().await?;
        Ok(Some(self.install_compacted(cleaned).await?))
    }

    /// Replaces the originals of every cleaned group that is still as it
    /// was planned; discards the others. A failure half-way leaves the
    /// disk in a state `open` completes, but the in-memory log no longer
    /// matches it: the log goes offline until reopened.
    pub async fn install_compacted(
        &mut self,
        cleaned: Cleaned<S>,
    ) -> Result<CompactOutcome, LogError> {
        self.health.check_write()?;
        let mut outcome = cleaned.outcome;
        let mut index_files = Vec::new();
        for group in cleaned.groups {
            let Some(at) = self.position_of(&group.originals, cleaned.truncations) else {
                remove_if_present(&self.storage, &group.swap_path).await?;
                outcome.groups_discarded += 1;
                continue;
            };
            match self.swap_in(at, group).await {
                Ok(files) => index_files.extend(files),
                Err(error) => {
                    self.health.fail_everything("compaction swap");
                    return Err(error);
                }
            }
        }
        if let Err(error) = self.sync_installed(&index_files).await {
            self.health.fail_everything("compaction sync");
            return Err(error);
        }
        if outcome.groups_discarded == 0 {
            self.clean_offset = self.clean_offset.max(cleaned.clean_offset);
        }
        outcome.clean_offset = self.clean_offset;
        Ok(outcome)
    }

    /// Where `originals` still sit, consecutive and closed, in the log.
    fn position_of(&self, originals: &[Source<S::File>], truncations: u64) -> Option<usize> {
        if truncations != self.truncations {
            return None;
        }
        let first = originals.first()?.base_offset;
        let at = self.segments.iter().position(|s| s.base_offset == first)?;
        let end = at + originals.len();
        // The last segment is active: originals must all lie before it.
        if end >= self.segments.len() {
            return None;
        }
        let unchanged = self.segments[at..end]
            .iter()
            .zip(originals)
            .all(|(s, o)| Rc::ptr_eq(&s.log_file, &o.log_file) && s.size_bytes == o.size_bytes);
        unchanged.then_some(at)
    }

    /// Deletes a group's originals, renames its swap file to the log name
    /// and puts its segment in their place; returns its index files.
    async fn swap_in(
        &mut self,
        at: usize,
        mut group: CleanedGroup<S::File>,
    ) -> Result<Vec<Rc<S::File>>, LogError> {
        for original in &group.originals {
            remove_segment_files(&self.storage, &self.dir, original.base_offset).await?;
        }
        self.dirty.mark_dir();
        let base_offset = group.segment.base_offset;
        let log_path = self
            .dir
            .join(segment_file_name(base_offset, SegmentFileKind::Log));
        self.storage.rename(&group.swap_path, &log_path).await?;
        let mut files = group.segment.write_indexes(&self.storage).await?.to_vec();
        // The kept aborts' entries. A crash before this is durable loses
        // them with the originals' files: their transactions' records were
        // removed by this pass, so a read_committed consumer misses
        // nothing, and a replay of producer state rebuilds them.
        if !group.segment.aborted.is_empty() {
            let path = group.segment.file_path(SegmentFileKind::TxnIndex);
            let file = Rc::new(self.storage.open(&path).await?);
            write_entries(&*file, &group.segment.aborted).await?;
            group.segment.txn_file = Some(Rc::clone(&file));
            files.push(file);
        }
        let end = at + group.originals.len();
        self.segments.splice(at..end, [group.segment]);
        Ok(files)
    }

    /// Makes the new index files and the directory durable, so that a
    /// crash after the pass finds either the swap files or whole indexes.
    async fn sync_installed(&mut self, index_files: &[Rc<S::File>]) -> Result<(), LogError> {
        for file in index_files {
            file.sync_data().await?;
        }
        self.storage.sync_dir(&self.dir).await?;
        Ok(())
    }
}

impl<F> Source<F> {
    fn of(segment: &Segment<F>) -> Self {
        Source {
            base_offset: segment.base_offset,
            next_offset: segment.next_offset,
            size_bytes: segment.size_bytes,
            max_timestamp: segment.max_timestamp,
            log_path: segment.log_path.clone(),
            log_file: Rc::clone(&segment.log_file),
            damaged: segment
                .damaged
                .iter()
                .map(|span| (span.position, span.end))
                .collect(),
        }
    }
}

impl<S: Storage + Clone> CompactionPlan<S> {
    /// Builds the key map, writes every cleaned group as a durable swap
    /// file. Borrows nothing of the log. On failure the swap files written
    /// so far are removed (and `open` removes any a crash leaves).
    pub async fn build(self) -> Result<Cleaned<S>, LogError> {
        let map = build_key_map(&self.sources, &self.aborted).await?;
        let mut walk = TxnWalk::new(self.aborted);
        let mut outcome = CompactOutcome {
            key_count: map.0.key_count() as u64,
            ..CompactOutcome::default()
        };
        let mut sources = self.sources;
        sources.truncate(map.1);
        let clean_offset = sources.last().map_or(i64::MIN, |s| s.next_offset);
        let mut groups: Vec<CleanedGroup<S::File>> = Vec::new();
        for originals in group_by_size(sources, self.config.segment_bytes) {
            let context = GroupContext {
                storage: &self.storage,
                dir: &self.dir,
                config: &self.config,
                now_ms: self.now_ms,
                map: &map.0,
            };
            match context
                .clean_group(originals, &mut walk, &mut outcome)
                .await
            {
                Ok(group) => groups.push(group),
                Err(error) => {
                    for group in &groups {
                        // Best effort: `open` removes what this misses.
                        let _ = self.storage.remove_file(&group.swap_path).await;
                    }
                    return Err(error);
                }
            }
        }
        self.storage.sync_dir(&self.dir).await?;
        Ok(Cleaned {
            groups,
            truncations: self.truncations,
            clean_offset,
            outcome,
        })
    }
}

/// The key map over `sources` and how many whole segments it covers (at
/// least one). Aborted transactions' records are left out.
async fn build_key_map<F: StorageFile>(
    sources: &[Source<F>],
    aborted: &[AbortedTxn],
) -> Result<(KeyMap, usize), LogError> {
    let mut map = KeyMap::default();
    let mut walk = TxnWalk::new(aborted.to_vec());
    for (index, source) in sources.iter().enumerate() {
        if map.is_full() {
            return Ok((map, index));
        }
        let mut reader = SegmentReader::new(&*source.log_file, &source.log_path, source.size_bytes)
            .skipping(&source.damaged);
        while let Some(batch) = reader.next_batch().await? {
            let header = *batch.header();
            let aborted = match header.is_control() {
                true => {
                    walk.on_control(&batch);
                    false
                }
                false => walk.on_data(&header),
            };
            map.add_batch(&batch, aborted);
        }
    }
    Ok((map, sources.len()))
}

/// Consecutive runs of segments whose sizes add up to at most
/// `segment_bytes` and whose offsets one segment can index.
fn group_by_size<F>(sources: Vec<Source<F>>, segment_bytes: u32) -> Vec<Vec<Source<F>>> {
    let mut groups: Vec<Vec<Source<F>>> = Vec::new();
    let mut group_bytes = 0u64;
    for source in sources {
        let fits = groups.last().is_some_and(|group| {
            let base = group[0].base_offset;
            group_bytes + source.size_bytes <= u64::from(segment_bytes)
                && source.next_offset - 1 - base <= i64::from(i32::MAX)
        });
        if fits {
            group_bytes += source.size_bytes;
            if let Some(group) = groups.last_mut() {
                group.push(source);
            }
        } else {
            group_bytes = source.size_bytes;
            groups.push(vec![source]);
        }
    }
    groups
}

/// What cleaning one group needs.
struct GroupContext<'a, S> {
    storage: &'a S,
    dir: &'a std::path::Path,
    config: &'a LogConfig,
    now_ms: i64,
    map: &'a KeyMap,
}

impl<S: Storage> GroupContext<'_, S> {
    /// Writes the records of `originals` that stay as one `.cleaned`
    /// file, syncs it and renames it `.swap`.
    async fn clean_group(
        &self,
        originals: Vec<Source<S::File>>,
        walk: &mut TxnWalk,
        outcome: &mut CompactOutcome,
    ) -> Result<CleanedGroup<S::File>, LogError> {
        let base_offset = originals[0].base_offset;
        let cleaned = cleaned_path(self.dir, base_offset);
        let file = Rc::new(self.storage.open(&cleaned).await?);
        file.truncate(0).await?;
        let log_path = self
            .dir
            .join(segment_file_name(base_offset, SegmentFileKind::Log));
        let mut segment = Segment::new(base_offset, log_path, Rc::clone(&file));
        let mut pending = Vec::new();
        let mut written_bytes = 0u64;
        for source in &originals {
            let drop_tombstones = source.max_timestamp != NO_TIMESTAMP
                && self.now_ms.saturating_sub(source.max_timestamp)
                    > self.config.delete_retention_ms;
            let mut reader =
                SegmentReader::new(&*source.log_file, &source.log_path, source.size_bytes)
                    .skipping(&source.damaged);
            while let Some(batch) = reader.next_batch().await? {
                let header = *batch.header();
                let (filtered, removed) = match header.is_control() {
                    true => match walk.on_control(&batch) {
                        MarkerFate::Keep(entry) => {
                            segment.aborted.extend(entry);
                            (Filtered::Unchanged, 0)
                        }
                        // Markers live as long as tombstones.
                        MarkerFate::Discardable if drop_tombstones => drop_whole(&header, self.map),
                        MarkerFate::Discardable => (Filtered::Unchanged, 0),
                    },
                    false => {
                        let aborted = walk.on_data(&header);
                        filter_batch(&batch, self.map, drop_tombstones, aborted)
                    }
                };
                outcome.records_removed += removed;
                let (bytes, header) = match filtered {
                    Filtered::Unchanged => {
                        let header = *batch.header();
                        (batch.into_bytes(), header)
                    }
                    Filtered::Rewritten(bytes) => {
                        let header =
                            BatchHeader::decode(&bytes).map_err(|e| LogError::Corrupt {
                                path: cleaned.clone(),
                                position: segment.size_bytes,
                                kind: e.into(),
                            })?;
                        (bytes, header)
                    }
                    Filtered::Dropped => {
                        outcome.batches_removed += 1;
                        continue;
                    }
                };
                segment.on_batch(segment.size_bytes, BatchSummary::from(&header), self.config);
                pending.extend_from_slice(&bytes);
                if pending.len() >= WRITE_CHUNK_BYTES {
                    file.write_at(written_bytes, &pending).await?;
                    written_bytes += pending.len() as u64;
                    pending.clear();
                }
            }
            outcome.segments_cleaned += 1;
            outcome.bytes_before += source.size_bytes;
        }
        if !pending.is_empty() {
            file.write_at(written_bytes, &pending).await?;
        }
        file.sync_data().await?;
        let swap = swap_path(self.dir, base_offset);
        self.storage.rename(&cleaned, &swap).await?;
        segment.next_offset = originals.last().map_or(base_offset, |s| s.next_offset);
        segment.seal_time_index();
        outcome.segments_written += 1;
        outcome.bytes_after += segment.size_bytes;
        Ok(CleanedGroup {
            originals,
            segment,
            swap_path: swap,
        })
    }
}
