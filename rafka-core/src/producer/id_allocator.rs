//! Producer ids for InitProducerId, reserved in blocks so that no id is ever
//! handed out twice, across restarts and crashes included.
//!
//! Kafka has the controller hand brokers blocks of 1000 ids through
//! ZooKeeper or the KRaft log; a single rafka broker keeps the end of its
//! reserved range in one small file instead:
//!
//! ```text
//! version i16 = 1 | crc u32 (CRC32C of what follows) | reserved_end_id i64
//! ```
//!
//! Every id below `reserved_end_id` may have been handed out. A new block is
//! made durable (temp file, fsync, rename, fsync of the directory) before
//! the first id from it is returned; after a restart allocation resumes at
//! `reserved_end_id`, so the rest of the block in use at the crash is
//! skipped, never repeated. Lives on the shard that answers InitProducerId.

use std::path::Path;

use crate::io::Storage;

use super::file::{read_all, write_atomic};
use super::{FormatError, ProducerError};

pub const PRODUCER_ID_BLOCK_FILE: &str = "producer-id-block";
/// Kafka's block size (`ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
pub const PRODUCER_ID_BLOCK_IDS_DEFAULT: i64 = 1000;

const BLOCK_FILE_VERSION: i16 = 1;
const CRC_AT: usize = 2;
const CRC_COVERS_FROM: usize = CRC_AT + 4;
const BLOCK_FILE_BYTES: usize = CRC_COVERS_FROM + 8;

/// Hands out producer ids from the durably reserved range
/// `[next_id, reserved_end_id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerIdAllocator {
    next_id: i64,
    reserved_end_id: i64,
    block_ids: i64,
}

impl ProducerIdAllocator {
    /// The allocator after a (re)start whose file says `reserved_end_id`:
    /// nothing is reserved until the next block is.
    pub fn resume(reserved_end_id: i64, block_ids: i64) -> Self {
        assert!(block_ids > 0, "producer id block of {block_ids} ids");
        assert!(reserved_end_id >= 0, "negative reserved producer id end");
        ProducerIdAllocator {
            next_id: reserved_end_id,
            reserved_end_id,
            block_ids,
        }
    }

    /// The next id of the reserved block, None once it is used up.
    pub fn try_allocate(&mut self) -> Option<i64> {
        if self.next_id >= self.reserved_end_id {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        Some(id)
    }

    /// The `reserved_end_id` to make durable for the next block.
    pub fn next_reservation(&self) -> Result<i64, ProducerError> {
        self.reserved_end_id.checked_add(self.block_ids).ok_or(
            ProducerError::ProducerIdsExhausted {
                reserved_end_id: self.reserved_end_id,
            },
        )
    }

    /// Takes the block ending at `reserved_end_id` into use, once that end
    /// is durable. Ids left in the current block stay usable.
    pub fn extend_reservation(&mut self, reserved_end_id: i64) {
        assert!(
            reserved_end_id >= self.reserved_end_id,
            "producer id reservation moved back from {} to {reserved_end_id}",
            self.reserved_end_id
        );
        self.reserved_end_id = reserved_end_id;
    }

    pub fn next_id(&self) -> i64 {
        self.next_id
    }

    pub fn reserved_end_id(&self) -> i64 {
        self.reserved_end_id
    }

    pub fn encode_block_file(reserved_end_id: i64) -> [u8; BLOCK_FILE_BYTES] {
        let mut out = [0u8; BLOCK_FILE_BYTES];
        out[..CRC_AT].copy_from_slice(&BLOCK_FILE_VERSION.to_be_bytes());
        out[CRC_COVERS_FROM..].copy_from_slice(&reserved_end_id.to_be_bytes());
        let crc = crc32c::crc32c(&out[CRC_COVERS_FROM..]);
        out[CRC_AT..CRC_COVERS_FROM].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// The `reserved_end_id` stored in a block file.
    pub fn decode_block_file(bytes: &[u8]) -> Result<i64, FormatError> {
        if bytes.len() < BLOCK_FILE_BYTES {
            return Err(FormatError::Truncated {
                needed_bytes: BLOCK_FILE_BYTES,
                available_bytes: bytes.len(),
            });
        }
        if bytes.len() > BLOCK_FILE_BYTES {
            return Err(FormatError::TrailingBytes(bytes.len() - BLOCK_FILE_BYTES));
        }
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        if version != BLOCK_FILE_VERSION {
            return Err(FormatError::UnknownVersion(version));
        }
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[CRC_AT..CRC_COVERS_FROM]);
        let stored = u32::from_be_bytes(crc);
        let computed = crc32c::crc32c(&bytes[CRC_COVERS_FROM..]);
        if stored != computed {
            return Err(FormatError::CrcMismatch { stored, computed });
        }
        let mut end = [0u8; 8];
        end.copy_from_slice(&bytes[CRC_COVERS_FROM..]);
        let reserved_end_id = i64::from_be_bytes(end);
        if reserved_end_id < 0 {
            return Err(FormatError::NegativeProducerId(reserved_end_id));
        }
        Ok(reserved_end_id)
    }

    /// Reads [`PRODUCER_ID_BLOCK_FILE`] in `dir`; a missing file is a fresh
    /// broker starting at id 0. A corrupt file is an error, not a reset:
    /// guessing could hand out ids again.
    pub async fn load<S: Storage>(
        storage: &S,
        dir: &Path,
        block_ids: i64,
    ) -> Result<Self, ProducerError> {
        let path = dir.join(PRODUCER_ID_BLOCK_FILE);
        if !storage.exists(&path).await? {
            return Ok(ProducerIdAllocator::resume(0, block_ids));
        }
        let data = read_all(storage, &path).await?;
        let reserved_end_id =
            Self::decode_block_file(&data).map_err(|source| ProducerError::Corrupt {
                path: path.clone(),
                source,
            })?;
        Ok(ProducerIdAllocator::resume(reserved_end_id, block_ids))
    }

    /// The next producer id, reserving (durably) a new block first when the
    /// current one is used up.
    pub async fn allocate<S: Storage>(
        &mut self,
        storage: &S,
        dir: &Path,
    ) -> Result<i64, ProducerError> {
        if let Some(id) = self.try_allocate() {
            return Ok(id);
        }
        let reserved_end_id = self.next_reservation()?;
        let bytes = Self::encode_block_file(reserved_end_id);
        // A broker-only node of a cluster keeps no metadata log of its own:
        // its first block makes the directory.
        storage.create_dir_all(dir).await?;
        write_atomic(storage, dir, PRODUCER_ID_BLOCK_FILE, &bytes).await?;
        self.extend_reservation(reserved_end_id);
        self.try_allocate()
            .ok_or(ProducerError::ProducerIdsExhausted { reserved_end_id })
    }
}
