//! The controller's committed metadata (shard 0): the durable log plus the
//! image it describes. A commit checks the records against a copy of the
//! image, makes them durable, then publishes the new image, so the image
//! other shards see never runs ahead of the disk.

use rafka_proto::error::ErrorCode;
use std::path::PathBuf;
use std::sync::Arc;

use super::image::{ApplyError, MetadataDelta, MetadataImage};
use super::log::{MetadataLog, MetadataLogError, Replayed};
use super::record::MetadataRecord;
use crate::io::Storage;

/// What a commit produced, for the reply and the broadcast to shards.
#[derive(Debug, Clone)]
pub struct Committed {
    /// Log offset of the first record.
    pub first_offset: i64,
    pub deltas: Vec<MetadataDelta>,
    pub image: Arc<MetadataImage>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// Record `index` does not apply; nothing was written.
    #[error("record {index} rejected: {source}")]
    Rejected {
        index: usize,
        #[source]
        source: ApplyError,
    },
    #[error(transparent)]
    Log(#[from] MetadataLogError),
}

impl CommitError {
    /// Kafka's code for the client: a lost race maps to what the
    /// controller would have said; a log failure is a storage error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            CommitError::Rejected { source, .. } => source.error_code(),
            CommitError::Log(_) => ErrorCode::KAFKA_STORAGE_ERROR,
        }
    }
}

pub struct MetadataStore<S: Storage> {
    log: MetadataLog<S>,
    image: Arc<MetadataImage>,
}

impl<S: Storage> MetadataStore<S> {
    pub async fn open(
        storage: S,
        dir: PathBuf,
        snapshot_interval_records: u64,
    ) -> Result<(MetadataStore<S>, Replayed), MetadataLogError> {
        let (log, image, replayed) =
            MetadataLog::open(storage, dir, snapshot_interval_records).await?;
        let store = MetadataStore {
            log,
            image: Arc::new(image),
        };
        Ok((store, replayed))
    }

    /// The image as of every committed record.
    pub fn image(&self) -> &Arc<MetadataImage> {
        &self.image
    }

    pub fn next_offset(&self) -> i64 {
        self.log.next_offset()
    }

    /// Applies `records` as one unit: all or none.
    pub async fn commit(&mut self, records: &[MetadataRecord]) -> Result<Committed, CommitError> {
        let mut next = MetadataImage::clone(&self.image);
        let mut deltas = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            let delta = next
                .apply(record)
                .map_err(|source| CommitError::Rejected { index, source })?;
            deltas.push(delta);
        }
        let first_offset = self.log.append(records).await?;
        self.image = Arc::new(next);
        Ok(Committed {
            first_offset,
            deltas,
            image: Arc::clone(&self.image),
        })
    }

    /// Snapshots if enough records accumulated; returns whether it did.
    /// Separate from `commit` so a snapshot failure is never mistaken for a
    /// failed (already durable) commit.
    pub async fn snapshot_if_due(&mut self) -> Result<bool, MetadataLogError> {
        if !self.log.snapshot_due() {
            return Ok(false);
        }
        self.log.snapshot(&self.image).await?;
        Ok(true)
    }

    /// Snapshots now (shutdown, tests).
    pub async fn snapshot(&mut self) -> Result<(), MetadataLogError> {
        self.log.snapshot(&self.image).await
    }
}
