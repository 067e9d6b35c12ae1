//! OffsetForLeaderEpoch's partition accessor over a log holding batches of
//! several leader epochs, on real files (glommio), one shard: the log is
//! written with the rafka-core API (the broker stamps one epoch), then
//! opened as a partition, with and without its `leader-epoch-checkpoint`.

use std::path::Path;
use std::rc::Rc;

use glommio::{LocalExecutorBuilder, Placement};
use rafka_core::io::{Clock, SystemClock};
use rafka_core::log::{EpochEntry, Log, LogConfig, RecoveryHints};
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_shard::partition::{Partition, PartitionSpec};
use rafka_shard::storage::GlommioStorage;

/// Small enough for an unprivileged RLIMIT_MEMLOCK.
const IO_MEMORY_BYTES: usize = 512 << 10;
const TIMESTAMP_MS: i64 = 1_700_000_000_000;

fn spec(dir: &Path) -> PartitionSpec {
    PartitionSpec {
        topic: Rc::from("epochs"),
        index: 0,
        dir: dir.to_path_buf(),
        config: LogConfig::default(),
        hints: RecoveryHints::default(),
        write_caching: false,
        high_watermark: None,
    }
}

/// Writes 2-record batches stamped with `epochs` and closes the log.
async fn write_log(dir: &Path, clock: &Rc<dyn Clock>, epochs: &[i32]) {
    let mut log = Log::open(
        GlommioStorage::new(),
        dir.to_path_buf(),
        LogConfig::default(),
        Rc::clone(clock),
        RecoveryHints::default(),
    )
    .await
    .expect("open log");
    for &epoch in epochs {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push_record(TIMESTAMP_MS, None, Some(b"a"), &[]);
        builder.push_record(TIMESTAMP_MS, None, Some(b"b"), &[]);
        let batch = builder.build().expect("batch");
        log.append(&batch, epoch).await.expect("append");
    }
    log.close().await.expect("close");
}

async fn answers(partition: &Partition<GlommioStorage>) -> Vec<(i32, i64)> {
    let mut found = Vec::new();
    for requested in -2..=6 {
        found.push(partition.end_offset_for_epoch(requested).await.unwrap());
    }
    found
}

#[test]
fn a_partition_answers_each_epoch_of_its_log() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("epochs-0");
    let legacy = tmp.path().join("epochs-1");
    let fresh = tmp.path().join("epochs-2");
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("executor");
    executor.run(async move {
        let clock: Rc<dyn Clock> = Rc::new(SystemClock);
        write_log(&dir, &clock, &[0, 0, 3, 3, 5]).await;
        let partition = Partition::open(GlommioStorage::new(), Rc::clone(&clock), spec(&dir))
            .await
            .expect("open");
        let entries = [(0, 0), (3, 4), (5, 8)].map(|(e, o)| EpochEntry::new(e, o));
        assert_eq!(partition.epoch_entries().await.unwrap(), entries);
        assert_eq!(
            answers(&partition).await,
            [
                (-2, 0),
                (-1, -1),
                (0, 4),
                (0, 4),
                (0, 4),
                (3, 8),
                (3, 8),
                (5, 10),
                (-1, -1)
            ]
        );
        // Taking over with epoch 6: it starts at the log end.
        assert!(partition.assign_leader_epoch(6).await.unwrap());
        assert!(!partition.assign_leader_epoch(6).await.unwrap());
        assert_eq!(partition.end_offset_for_epoch(5).await.unwrap(), (5, 10));
        assert_eq!(partition.end_offset_for_epoch(6).await.unwrap(), (6, 10));
        let text = std::fs::read_to_string(dir.join("leader-epoch-checkpoint")).unwrap();
        assert_eq!(text, "0\n4\n0 0\n3 4\n5 8\n6 10\n");

        // Older rafka's data dir: epoch 0 everywhere, no checkpoint.
        write_log(&legacy, &clock, &[0, 0, 0]).await;
        std::fs::remove_file(legacy.join("leader-epoch-checkpoint")).unwrap();
        let partition = Partition::open(GlommioStorage::new(), Rc::clone(&clock), spec(&legacy))
            .await
            .expect("open legacy");
        let report = partition.recovery_report().await.unwrap();
        assert_eq!(
            report.leader_epochs_rebuilt,
            Some(rafka_core::log::EpochRebuild::Missing)
        );
        assert_eq!(partition.end_offset_for_epoch(0).await.unwrap(), (0, 6));
        assert_eq!(partition.end_offset_for_epoch(1).await.unwrap(), (-1, -1));
        let text = std::fs::read_to_string(legacy.join("leader-epoch-checkpoint")).unwrap();
        assert_eq!(text, "0\n1\n0 0\n");

        // A new partition leads epoch 0 from its (empty) log end.
        let partition = Partition::open(GlommioStorage::new(), clock, spec(&fresh))
            .await
            .expect("open fresh");
        assert_eq!(partition.end_offset_for_epoch(0).await.unwrap(), (0, 0));
    });
}
