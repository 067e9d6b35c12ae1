//! A Fetch response's byte budget (KIP-74) applied to records that are file
//! regions rather than bytes in memory.
//!
//! Each partition gets the whole batches that fit in `partition_max_bytes`
//! and what is left of `max_bytes`; the first non-empty partition gets at
//! least its first batch, whatever its size. Regions always hold whole
//! batches, so keeping everything needs no reading; cutting a run of
//! batches short walks their 12-byte length prefixes with `pread` (page
//! cache hits: the owner just located them), and only as far as the limit.
//!
//! Lives on: whichever shard applies the budget; regions are `Send`.

use rafka_proto::record::{batch_size_bytes, LOG_OVERHEAD_BYTES};
use rafka_shard::storage::FileRegion;

/// A response's byte budget as it is spent in order.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    remaining_bytes: u64,
    /// Nothing taken yet: the next non-empty partition gets a batch even
    /// beyond the limits.
    first: bool,
}

impl Budget {
    pub fn new(max_bytes: u32) -> Self {
        Budget {
            remaining_bytes: u64::from(max_bytes),
            first: true,
        }
    }

    fn limit_bytes(&self, partition_max_bytes: i32) -> u64 {
        let partition_max_bytes = u64::try_from(partition_max_bytes).unwrap_or(0);
        partition_max_bytes.min(self.remaining_bytes)
    }

    /// How much to read for a partition, or `None` when nothing it could
    /// return would be kept.
    pub fn read_bytes(&self, partition_max_bytes: i32) -> Option<u32> {
        let limit_bytes = self.limit_bytes(partition_max_bytes);
        if limit_bytes == 0 && !self.first {
            return None;
        }
        Some(u32::try_from(limit_bytes).unwrap_or(u32::MAX))
    }

    /// Keeps the leading whole batches of `regions` that fit, or the first
    /// batch alone when nothing was taken yet, and spends their size.
    pub fn take(&mut self, regions: Vec<FileRegion>, partition_max_bytes: i32) -> Vec<FileRegion> {
        let limit_bytes = self.limit_bytes(partition_max_bytes);
        let total_bytes: u64 = regions.iter().map(|region| region.len).sum();
        let mut kept_bytes = if total_bytes <= limit_bytes {
            total_bytes
        } else {
            batches_within(&regions, limit_bytes)
        };
        if kept_bytes == 0 && self.first && total_bytes > 0 {
            kept_bytes = first_batch_bytes(&regions);
        }
        if kept_bytes > 0 {
            self.first = false;
        }
        self.remaining_bytes = self.remaining_bytes.saturating_sub(kept_bytes);
        prefix(regions, kept_bytes)
    }
}

/// Size of the longest run of whole batches at the front of `regions` that
/// fits in `limit_bytes`. An unreadable header ends the run there: the
/// partition then answers with less, and the client fetches the rest.
pub fn batches_within(regions: &[FileRegion], limit_bytes: u64) -> u64 {
    let mut kept_bytes = 0u64;
    for region in regions {
        let mut position = 0u64;
        while position < region.len {
            let Some(size) = batch_at(region, position) else {
                return kept_bytes;
            };
            if position + size > region.len || kept_bytes + size > limit_bytes {
                return kept_bytes;
            }
            position += size;
            kept_bytes += size;
        }
    }
    kept_bytes
}

/// The size of the first batch; an unreadable header passes the first
/// region on whole (the client's CRC check reports a bad batch).
fn first_batch_bytes(regions: &[FileRegion]) -> u64 {
    let Some(first) = regions.iter().find(|region| region.len > 0) else {
        return 0;
    };
    batch_at(first, 0)
        .filter(|&size| size <= first.len)
        .unwrap_or(first.len)
}

/// The base offset of the batch starting `position` bytes into `regions`
/// (the first batch a cut left out), if readable.
pub fn base_offset_at(regions: &[FileRegion], position: u64) -> Option<i64> {
    let mut skip_bytes = position;
    for region in regions {
        if skip_bytes < region.len {
            let mut base_offset = [0u8; 8];
            region.read_exact_at(skip_bytes, &mut base_offset).ok()?;
            return Some(i64::from_be_bytes(base_offset));
        }
        skip_bytes -= region.len;
    }
    None
}

/// The size of the batch at `position` of `region`.
fn batch_at(region: &FileRegion, position: u64) -> Option<u64> {
    let mut header = [0u8; LOG_OVERHEAD_BYTES];
    if let Err(error) = region.read_exact_at(position, &mut header) {
        tracing::warn!(%error, position = region.position + position, "fetch: batch header read");
        return None;
    }
    batch_size_bytes(&header).ok().map(|size| size as u64)
}

/// The first `len_bytes` of `regions`.
fn prefix(regions: Vec<FileRegion>, len_bytes: u64) -> Vec<FileRegion> {
    let mut left_bytes = len_bytes;
    let mut kept = Vec::with_capacity(regions.len());
    for region in regions {
        if left_bytes == 0 {
            break;
        }
        let take_bytes = region.len.min(left_bytes);
        left_bytes -= take_bytes;
        kept.push(region.slice(0, take_bytes));
    }
    kept
}
