//! The read path: offsets to file regions of whole batches (for sendfile or
//! a plain read), and timestamp lookups (ListOffsets).
//!
//! A region holds an `Rc` of its segment file, so a segment deleted by
//! retention after the read was planned is still readable through it.
//!
//! Timestamp lookups find the batch through the time index and batch
//! headers, then read that one batch and answer at record level (Kafka's
//! ListOffsets: the first record with a timestamp at or above the target,
//! and that record's timestamp). A batch whose records cannot be decoded
//! (the log stores what the produce validator accepted) is answered at
//! batch level: its base offset and max timestamp.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use rafka_proto::record::{BatchHeader, RecordBatch, RecordLimits, TimestampType};

use super::error::LogError;
use super::scan::read_full;
use super::segment::Segment;
use super::Log;
use crate::io::{Storage, StorageFile};

/// `len` bytes of whole batches at `position` of `file`.
#[derive(Debug)]
pub struct Region<F> {
    pub file: Rc<F>,
    pub position: u64,
    pub len: u64,
}

impl<F> Clone for Region<F> {
    fn clone(&self) -> Self {
        Region {
            file: Rc::clone(&self.file),
            position: self.position,
            len: self.len,
        }
    }
}

/// The batches a read found, as regions in log order.
#[derive(Debug)]
pub struct ReadResult<F> {
    pub regions: Vec<Region<F>>,
    /// Base offset of the first batch returned (at or below the offset
    /// asked for); equals the offset asked for when nothing is returned.
    pub first_offset: i64,
    /// Where the next read should start.
    pub next_offset: i64,
    pub size_bytes: u64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

impl<F: StorageFile> ReadResult<F> {
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Reads the regions into memory (TLS connections, tests).
    pub async fn read_bytes(&self) -> Result<Bytes, LogError> {
        read_regions(&self.regions).await
    }
}

/// Reads `regions` into one buffer; a single region is not copied again.
pub async fn read_regions<F: StorageFile>(regions: &[Region<F>]) -> Result<Bytes, LogError> {
    if let [region] = regions {
        return read_region(region).await;
    }
    let total_bytes: u64 = regions.iter().map(|region| region.len).sum();
    let mut bytes = BytesMut::with_capacity(total_bytes as usize);
    for region in regions {
        bytes.extend_from_slice(&read_region(region).await?);
    }
    Ok(bytes.freeze())
}

async fn read_region<F: StorageFile>(region: &Region<F>) -> Result<Bytes, LogError> {
    let bytes = read_full(&*region.file, region.position, region.len as usize).await?;
    if bytes.len() as u64 != region.len {
        return Err(LogError::RegionShrunk {
            position: region.position,
            expected_bytes: region.len,
            read_bytes: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// A timestamp and the offset a consumer should start from to see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

/// Where a read starts: segment index, position and base offset of the
/// first batch.
struct ReadStart {
    segment: usize,
    position: u64,
    base_offset: i64,
}

impl<S: Storage + Clone> Log<S> {
    /// Reads whole batches from `offset` (which may fall inside a batch: that
    /// batch is returned whole) up to `max_bytes`, but at least one batch
    /// even if larger (KIP-74). May span segments. Reading at the log end
    /// returns nothing; outside [log start, log end] is an error.
    pub async fn read(&self, offset: i64, max_bytes: u32) -> Result<ReadResult<S::File>, LogError> {
        self.read_bounded(offset, max_bytes, self.log_end_offset())
            .await
    }

    /// [`Log::read`] returning only batches whose last offset is below
    /// `end_offset` (a high watermark or last stable offset).
    pub async fn read_bounded(
        &self,
        offset: i64,
        max_bytes: u32,
        end_offset: i64,
    ) -> Result<ReadResult<S::File>, LogError> {
        self.health.check()?;
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        let end_offset = end_offset.min(self.readable_end_offset());
        let mut result = ReadResult {
            regions: Vec::new(),
            first_offset: offset,
            next_offset: offset,
            size_bytes: 0,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset(),
        };
        if offset >= end_offset {
            return Ok(result);
        }
        let Some(start) = self.locate(offset).await? else {
            return Ok(result);
        };
        result.first_offset = start.base_offset;
        let mut position = start.position;
        let mut budget_bytes = u64::from(max_bytes);
        for segment in &self.segments[start.segment..] {
            let (hard_end, hard_next) = bound_in_segment(segment, end_offset).await?;
            if position >= hard_end {
                break;
            }
            let limit = position + budget_bytes;
            let take_one = result.regions.is_empty();
            let (end, next_offset) = segment
                .batches_end(position, limit, hard_end, hard_next, take_one)
                .await?;
            if end > position {
                result.regions.push(Region {
                    file: Rc::clone(&segment.log_file),
                    position,
                    len: end - position,
                });
                result.size_bytes += end - position;
                result.next_offset = next_offset;
                budget_bytes = budget_bytes.saturating_sub(end - position);
            }
            if end < segment.size_bytes || budget_bytes == 0 {
                break;
            }
            position = 0;
        }
        Ok(result)
    }

    /// The first batch holding an offset at or above `offset`, skipping
    /// segments that end before it (gaps).
    async fn locate(&self, offset: i64) -> Result<Option<ReadStart>, LogError> {
        let first = self.segment_index_for(offset);
        for (index, segment) in self.segments.iter().enumerate().skip(first) {
            if let Some((position, header)) = segment.find_batch(offset).await? {
                return Ok(Some(ReadStart {
                    segment: index,
                    position,
                    base_offset: header.base_offset,
                }));
            }
        }
        Ok(None)
    }

    /// The first offset whose batch max timestamp is at or above
    /// `timestamp` (Kafka ListOffsets), at batch level (see module doc).
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, LogError> {
        self.health.check()?;
        let log_start_offset = self.log_start_offset;
        for segment in &self.segments {
            if segment.max_timestamp < timestamp || segment.next_offset <= log_start_offset {
                continue;
            }
            // Every batch up to the floor entry's offset has a max timestamp
            // at or below the entry's, and the batch at that offset is the
            // first to reach it: the answer cannot be earlier.
            let from_offset = segment
                .time_index
                .floor(timestamp)
                .map_or(segment.base_offset, |entry| {
                    segment.base_offset + i64::from(entry.relative_offset)
                })
                .max(log_start_offset);
            let position = u64::from(segment.offset_index.lookup(segment.relative(from_offset)));
            let found = segment
                .find_batch_from(position, |header| {
                    header.max_timestamp >= timestamp && header.last_offset() >= log_start_offset
                })
                .await?;
            if let Some((position, header)) = found {
                let found = first_record_at_or_after(
                    segment,
                    position,
                    &header,
                    timestamp,
                    log_start_offset,
                );
                return Ok(Some(found.await?));
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the offset of the first record
    /// carrying it (ListOffsets MAX_TIMESTAMP).
    pub async fn max_timestamp(&self) -> Result<Option<TimestampOffset>, LogError> {
        self.health.check()?;
        let best = self
            .segments
            .iter()
            .filter(|segment| segment.next_offset > self.log_start_offset)
            .fold(None::<&Segment<S::File>>, |best, segment| match best {
                Some(best) if best.max_timestamp >= segment.max_timestamp => Some(best),
                _ => Some(segment),
            });
        let Some(segment) = best.filter(|segment| segment.max_timestamp >= 0) else {
            return Ok(None);
        };
        let Some((position, header)) = segment.find_batch(segment.offset_of_max_timestamp).await?
        else {
            return Ok(None);
        };
        let found = first_record_at_or_after(
            segment,
            position,
            &header,
            segment.max_timestamp,
            self.log_start_offset,
        );
        Ok(Some(found.await?))
    }
}

/// The first record of the batch at `position` whose timestamp reaches
/// `timestamp` and whose offset is at or above `offset_min`.
async fn first_record_at_or_after<F: StorageFile>(
    segment: &Segment<F>,
    position: u64,
    header: &BatchHeader,
    timestamp: i64,
    offset_min: i64,
) -> Result<TimestampOffset, LogError> {
    let batch_level = TimestampOffset {
        timestamp: header.max_timestamp,
        offset: header.base_offset.max(offset_min),
    };
    if header.timestamp_type() == TimestampType::LogAppendTime {
        // Every record carries the batch's append time.
        return Ok(batch_level);
    }
    let size_bytes = header.size_bytes();
    let bytes = read_full(&*segment.log_file, position, size_bytes).await?;
    let batch = match RecordBatch::parse(&bytes) {
        Ok((batch, _)) => batch,
        Err(error) => {
            return Err(LogError::Corrupt {
                path: segment.log_path.clone(),
                position,
                kind: error.into(),
            })
        }
    };
    let Ok(records) = batch.records(RecordLimits::default()) else {
        return Ok(batch_level);
    };
    for record in records {
        let Ok(record) = record else {
            return Ok(batch_level);
        };
        let offset = record.offset(header.base_offset);
        let record_timestamp = record.timestamp_ms(header.base_timestamp);
        if record_timestamp >= timestamp && offset >= offset_min {
            return Ok(TimestampOffset {
                timestamp: record_timestamp,
                offset,
            });
        }
    }
    Ok(batch_level)
}

/// Where reads bounded by `end_offset` must stop in `segment`: the start of
/// the first batch reaching `end_offset` (and its base offset), else the
/// segment end.
async fn bound_in_segment<F: StorageFile>(
    segment: &Segment<F>,
    end_offset: i64,
) -> Result<(u64, i64), LogError> {
    if end_offset >= segment.next_offset {
        return Ok((segment.size_bytes, segment.next_offset));
    }
    match segment.find_batch(end_offset).await? {
        Some((position, header)) => Ok((position, header.base_offset)),
        None => Ok((segment.size_bytes, segment.next_offset)),
    }
}
