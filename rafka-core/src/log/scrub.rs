//! Scrubbing: re-verifying closed segments in the background and taking
//! damaged batches out of service.
//!
//! Recovery validates only from the recovery point on, so a byte that rots
//! in a closed segment after a clean shutdown is served as is, and a
//! consumer retries that batch's CRC error forever. A scrub pass walks
//! every closed segment, checking each batch as recovery does (length,
//! magic, CRC32C, the offset rules of [`OffsetRules`]). A damaged range is
//! never rewritten: it is recorded on its segment ([`DamagedSpan`]) and the
//! read path steps over it, so a fetch at or before it is answered with the
//! next good batch (consumers tolerate offset gaps, as with compacted
//! topics).
//!
//! A pass is a sequence of steps so that the shard can pace it and never
//! hold the partition's lock across IO: [`Log::scrub_plan`] (sync, under
//! the lock) picks the next bytes to verify, [`ScrubChunk::verify`] reads
//! and checks them without the lock, [`Log::scrub_apply`] (sync, under the
//! lock) records the verdict and moves the [`ScrubCursor`]. Closed segments
//! are immutable, so only their replacement (compaction) or deletion
//! (retention) can happen between the steps; both are detected by the
//! segment's file identity and the verdict is then dropped.
//!
//! Where a damaged batch ends is found again from trusted facts: the next
//! batch must start at the damaged batch's declared end or, if that length
//! is itself damaged, at the next offset index entry (index positions are
//! batch starts written when the batches were). The candidate must pass
//! the checks, else the range grows to the next candidate.
//!
//! Damaged ranges live in memory: a restart forgets them and the first
//! pass finds them again (the active segment is revalidated by recovery
//! after a crash). Persisting them would add a file whose entries go stale
//! with every retention and compaction pass.

use std::path::PathBuf;
use std::rc::{Rc, Weak};

use bytes::Bytes;
use rafka_proto::record::{batch_size_bytes, validate, LOG_OVERHEAD_BYTES};

use super::error::{CorruptKind, LogError};
use super::scan::{check_header, read_full, OffsetRules};
use super::segment::{DamagedSpan, Segment};
use super::Log;
use crate::io::{Storage, StorageFile};

/// Where a scrub pass stands in one log. A fresh cursor starts a pass at
/// the first closed segment.
#[derive(Debug)]
pub struct ScrubCursor<F> {
    /// The segment being verified, by base offset.
    segment_base_offset: i64,
    /// Its file when the pass reached it: a segment replaced under the same
    /// base offset (compaction) is verified again from its start.
    file: Weak<F>,
    /// The next byte to verify: a batch start, or a candidate one after
    /// damage.
    position: u64,
    rules: OffsetRules,
    /// A damaged range whose end is not found yet.
    open: Option<OpenDamage>,
    /// Whether the pass went past the last closed segment.
    done: bool,
}

impl<F> Default for ScrubCursor<F> {
    fn default() -> Self {
        ScrubCursor {
            segment_base_offset: i64::MIN,
            file: Weak::new(),
            position: 0,
            rules: OffsetRules::at_segment_start(i64::MIN, i64::MAX, false),
            open: None,
            done: false,
        }
    }
}

impl<F> ScrubCursor<F> {
    /// The pass went past the last closed segment.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[derive(Debug, Clone)]
struct OpenDamage {
    position: u64,
    first_offset: i64,
    kind: CorruptKind,
}

/// One step of a pass: bytes of a closed segment to verify, planned under
/// the partition's lock and read without it.
#[derive(Debug)]
pub struct ScrubChunk<F> {
    file: Rc<F>,
    position: u64,
    /// The segment's size when planned.
    segment_bytes: u64,
    /// Where the walk stops: the segment's end, or the next range known to
    /// be damaged (no batch may run past it).
    stop_at: u64,
    /// Bytes read at once (whole batches; a larger first batch is read
    /// whole).
    max_bytes: u64,
    rules: OffsetRules,
}

/// What [`ScrubChunk::verify`] found.
#[derive(Debug)]
pub struct ScrubVerdict {
    /// The good batches from the chunk's start: where they end, and the
    /// first one's base offset.
    good_end: u64,
    first_base_offset: Option<i64>,
    rules: OffsetRules,
    /// The first bad batch, where it starts and where it says it ends
    /// (None if its length is not plausible).
    damage: Option<(u64, CorruptKind, Option<u64>)>,
}

/// A damaged range a scrub step took out of service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// The segment's `.log` file.
    pub path: PathBuf,
    pub segment_base_offset: i64,
    /// Byte position of the first damaged batch in the segment.
    pub position: u64,
    pub len_bytes: u64,
    /// The first offset no longer served.
    pub first_offset: i64,
    /// The base offset of the next good batch, where reads resume.
    pub next_offset: i64,
    /// What was wrong with the first damaged batch.
    pub kind: CorruptKind,
}

/// What [`Log::scrub_apply`] did with a verdict.
#[derive(Debug, Default)]
pub struct ScrubApplied {
    /// Bytes of the segment the step covered: its good batches, and the
    /// damaged bytes up to the next candidate. A pass covers every byte of
    /// the closed segments once (known damaged ranges are skipped).
    pub bytes_scrubbed: u64,
    /// A damaged range first found by this step.
    pub damaged: Option<DamagedRange>,
}

impl<S: Storage + Clone> Log<S> {
    /// The next bytes of the pass at `cursor`, at most `max_bytes` (but at
    /// least one batch); None once the pass went past the last closed
    /// segment (the cursor is then done). Sync: the caller holds the
    /// partition's lock only for this.
    pub fn scrub_plan(
        &self,
        cursor: &mut ScrubCursor<S::File>,
        max_bytes: u64,
    ) -> Option<ScrubChunk<S::File>> {
        let closed = &self.segments[..self.segments.len() - 1];
        loop {
            let at = closed.partition_point(|s| s.base_offset < cursor.segment_base_offset);
            let Some(segment) = closed.get(at) else {
                cursor.done = true;
                return None;
            };
            let same_file = cursor
                .file
                .upgrade()
                .is_some_and(|file| Rc::ptr_eq(&file, &segment.log_file));
            if segment.base_offset != cursor.segment_base_offset || !same_file {
                self.scrub_segment_start(cursor, segment);
            }
            if let Some(span) = segment.damaged_span_at(cursor.position) {
                // Known already (an earlier pass): step over it.
                cursor.position = span.end;
                cursor.rules.min_offset = span.next_offset;
                cursor.rules.expected = None;
                continue;
            }
            if cursor.position >= segment.size_bytes {
                cursor.segment_base_offset = segment.base_offset.saturating_add(1);
                continue;
            }
            return Some(ScrubChunk {
                file: Rc::clone(&segment.log_file),
                position: cursor.position,
                segment_bytes: segment.size_bytes,
                stop_at: segment
                    .damaged_span_from(cursor.position)
                    .map_or(segment.size_bytes, |span| span.position),
                max_bytes: max_bytes.max(LOG_OVERHEAD_BYTES as u64),
                rules: cursor.rules,
            });
        }
    }

    fn scrub_segment_start(&self, cursor: &mut ScrubCursor<S::File>, segment: &Segment<S::File>) {
        cursor.segment_base_offset = segment.base_offset;
        cursor.file = Rc::downgrade(&segment.log_file);
        cursor.position = 0;
        cursor.open = None;
        cursor.rules = OffsetRules::at_segment_start(
            segment.base_offset,
            segment.next_offset,
            !self.config.cleanup_compact,
        );
    }

    /// Records what `chunk` (planned from `cursor`) found and moves the
    /// cursor on. A verdict about a segment that was replaced or deleted
    /// since is dropped. Sync, like [`Log::scrub_plan`].
    pub fn scrub_apply(
        &mut self,
        cursor: &mut ScrubCursor<S::File>,
        chunk: &ScrubChunk<S::File>,
        verdict: ScrubVerdict,
    ) -> ScrubApplied {
        let mut applied = ScrubApplied::default();
        let closed_count = self.segments.len() - 1;
        let Some(segment) = self.segments[..closed_count]
            .iter_mut()
            .find(|s| Rc::ptr_eq(&s.log_file, &chunk.file))
        else {
            return applied;
        };
        if cursor.position != chunk.position || segment.size_bytes != chunk.segment_bytes {
            return applied;
        }
        if let (Some(open), Some(base_offset)) = (&cursor.open, verdict.first_base_offset) {
            // The candidate after the damage holds a good batch.
            let span = DamagedSpan {
                position: open.position,
                end: chunk.position,
                first_offset: open.first_offset,
                next_offset: base_offset,
                kind: open.kind.clone(),
            };
            applied.damaged = record(segment, span);
            cursor.open = None;
        }
        applied.bytes_scrubbed = verdict.good_end - chunk.position;
        cursor.position = verdict.good_end;
        cursor.rules = verdict.rules;
        let Some((position, kind, declared_end)) = verdict.damage else {
            return applied;
        };
        let open = cursor.open.get_or_insert(OpenDamage {
            position,
            first_offset: cursor.rules.min_offset,
            kind,
        });
        let entries = segment.offset_index.entries();
        let after = entries.partition_point(|entry| u64::from(entry.position) <= position);
        let index_next = entries
            .get(after)
            .map_or(segment.size_bytes, |entry| u64::from(entry.position));
        let candidate = declared_end.map_or(index_next, |end| end.min(index_next));
        // The range ends at the candidate (if it holds a good batch, which
        // the next step checks), at a range known already, or at the
        // segment's end.
        let known = segment
            .damaged_span_from(position)
            .map(|span| (span.position, span.first_offset));
        let (end, next_offset) = match known {
            Some((start, first_offset)) if start <= candidate => (start, Some(first_offset)),
            _ if candidate >= segment.size_bytes => (segment.size_bytes, Some(segment.next_offset)),
            _ => (candidate, None),
        };
        applied.bytes_scrubbed += end - position;
        cursor.position = end;
        let Some(next_offset) = next_offset else {
            cursor.rules.expected = None;
            return applied;
        };
        let span = DamagedSpan {
            position: open.position,
            end,
            first_offset: open.first_offset,
            next_offset,
            kind: open.kind.clone(),
        };
        applied.damaged = applied.damaged.or(record(segment, span));
        cursor.open = None;
        applied
    }

    /// Every damaged range taken out of service, in log order.
    pub fn damaged_ranges(&self) -> Vec<DamagedRange> {
        self.segments
            .iter()
            .flat_map(|segment| {
                segment
                    .damaged
                    .iter()
                    .map(|span| damaged_range(segment, span))
            })
            .collect()
    }
}

fn record<F>(segment: &mut Segment<F>, span: DamagedSpan) -> Option<DamagedRange> {
    let range = damaged_range(segment, &span);
    segment.add_damaged(span).then_some(range)
}

fn damaged_range<F>(segment: &Segment<F>, span: &DamagedSpan) -> DamagedRange {
    DamagedRange {
        path: segment.log_path.clone(),
        segment_base_offset: segment.base_offset,
        position: span.position,
        len_bytes: span.end - span.position,
        first_offset: span.first_offset,
        next_offset: span.next_offset,
        kind: span.kind.clone(),
    }
}

impl<F: StorageFile> ScrubChunk<F> {
    /// Reads the chunk and checks its batches up to the first bad one. Runs
    /// without the partition's lock: it only reads a closed segment, held
    /// open by the chunk.
    pub async fn verify(&self) -> Result<ScrubVerdict, LogError> {
        let rest_bytes = self.stop_at - self.position;
        let len = self.max_bytes.min(rest_bytes);
        let mut bytes = read_full(&*self.file, self.position, len as usize).await?;
        let mut verdict = ScrubVerdict {
            good_end: self.position,
            first_base_offset: None,
            rules: self.rules,
            damage: None,
        };
        let mut at = 0_usize;
        while verdict.good_end < self.stop_at {
            let position = verdict.good_end;
            let rest_bytes = self.stop_at - position;
            if at > 0 && bytes.len() - at < LOG_OVERHEAD_BYTES {
                break; // the next step starts here
            }
            let size_bytes = match declared_size(&bytes[at..], rest_bytes) {
                Ok(size_bytes) => size_bytes,
                Err(kind) => {
                    verdict.damage = Some((position, kind, None));
                    break;
                }
            };
            if at as u64 + size_bytes > bytes.len() as u64 {
                if at > 0 {
                    break; // the next step starts here
                }
                // A first batch larger than the chunk is read whole.
                bytes = read_full(&*self.file, position, size_bytes as usize).await?;
                if (bytes.len() as u64) < size_bytes {
                    let kind = CorruptKind::PastEnd {
                        size_bytes,
                        segment_bytes: position + bytes.len() as u64,
                    };
                    verdict.damage = Some((position, kind, None));
                    break;
                }
            }
            let batch = bytes.slice(at..at + size_bytes as usize);
            if let Err(kind) = check_batch(&batch, &mut verdict) {
                verdict.damage = Some((position, kind, Some(position + size_bytes)));
                break;
            }
            at += size_bytes as usize;
            verdict.good_end += size_bytes;
        }
        Ok(verdict)
    }
}

/// The size of the batch whose bytes start `head`, if plausible: a valid
/// length that fits in the `rest_bytes` of the segment. Else the damage
/// (its declared end is then not trusted).
fn declared_size(head: &[u8], rest_bytes: u64) -> Result<u64, CorruptKind> {
    let size_bytes = batch_size_bytes(head)? as u64;
    if size_bytes > rest_bytes {
        return Err(CorruptKind::PastEnd {
            size_bytes,
            segment_bytes: rest_bytes,
        });
    }
    Ok(size_bytes)
}

/// Checks one whole batch as recovery does and advances the offset rules.
fn check_batch(batch: &Bytes, verdict: &mut ScrubVerdict) -> Result<(), CorruptKind> {
    let header = validate(batch)?;
    check_header(&header)?;
    verdict.rules.check(&header)?;
    verdict.rules.advance(&header);
    verdict.first_base_offset.get_or_insert(header.base_offset);
    Ok(())
}
