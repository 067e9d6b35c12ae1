//! A partition stamps every batch it appends as leader with the leader
//! epoch it knows (the cluster's leadership record), and an epoch never
//! goes back. Real files (glommio), one shard.

use std::rc::Rc;

use glommio::{LocalExecutorBuilder, Placement};
use rafka_core::io::{Clock, SystemClock};
use rafka_core::log::{LogConfig, RecoveryHints};
use rafka_proto::record::{BatchBuilder, Batches, Compression};
use rafka_shard::partition::{Partition, PartitionSpec};
use rafka_shard::storage::GlommioStorage;

/// Small enough for an unprivileged RLIMIT_MEMLOCK.
const IO_MEMORY_BYTES: usize = 512 << 10;

fn batch(value: &str) -> bytes::Bytes {
    let mut builder = BatchBuilder::new(Compression::None).base_timestamp_ms(1_700_000_000_000);
    builder.push_record(1_700_000_000_000, None, Some(value.as_bytes()), &[]);
    builder.build().expect("batch")
}

#[test]
fn appends_are_stamped_with_the_known_leader_epoch() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("epochs-0");
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("executor");
    let log_dir = dir.clone();
    executor.run(async move {
        let clock: Rc<dyn Clock> = Rc::new(SystemClock);
        let spec = PartitionSpec {
            topic: Rc::from("epochs"),
            index: 0,
            dir: log_dir,
            config: LogConfig::default(),
            hints: RecoveryHints::default(),
            write_caching: false,
            high_watermark: None,
        };
        let partition = Partition::open(GlommioStorage::new(), clock, spec)
            .await
            .expect("open");
        assert_eq!(partition.leader_epoch(), 0);
        partition.append(&batch("a"), None).await.expect("append");
        partition.set_leader_epoch(3);
        partition.append(&batch("b"), None).await.expect("append");
        // An older leadership arriving late changes nothing.
        partition.set_leader_epoch(2);
        assert_eq!(partition.leader_epoch(), 3);
        partition.append(&batch("c"), None).await.expect("append");
        partition.flush().await.expect("flush");
    });
    let segment = std::fs::read(dir.join("00000000000000000000.log")).expect("segment");
    let stamped: Vec<(i64, i32)> = Batches::new(bytes::Bytes::from(segment))
        .map(|batch| {
            let batch = batch.expect("a batch");
            let header = batch.header();
            (header.base_offset, header.partition_leader_epoch)
        })
        .collect();
    assert_eq!(stamped, vec![(0, 0), (1, 3), (2, 3)]);
}
