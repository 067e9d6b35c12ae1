//! TEMPORARY: the partition-side transaction API the transaction
//! coordinator calls, until the partition work lands (it replaces this
//! file). Markers and coordinator appends are not written yet.

use std::time::Duration;

use bytes::Bytes;

use crate::partition::{Appended, PartitionError};
use crate::registry::PartitionRegistry;
use crate::storage::ShardStorage;

/// A transaction marker for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
}

impl<S: ShardStorage> PartitionRegistry<S> {
    pub async fn write_txn_marker(
        &self,
        topic: &str,
        index: i32,
        _marker: TxnMarker,
        _timeout: Duration,
    ) -> Result<i64, PartitionError> {
        let partition = self.get(topic, index).ok_or(PartitionError::Closed)?;
        Ok(partition.log_end_offset())
    }

    pub async fn append_as_coordinator(
        &self,
        topic: &str,
        index: i32,
        records: &Bytes,
        timeout: Duration,
    ) -> Result<Appended, PartitionError> {
        self.produce(topic, index, records, rafka_proto::acks::Acks::All, timeout)
            .await
    }
}
