//! Appends to a partition take effect in the order they were called, even
//! when a later call reaches a free lock before an earlier, already woken,
//! one runs: pipelined produce requests of one connection keep their order.
//! Real files (glommio) so that a fetch holds the partition's lock across
//! a real io_uring read.

use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use glommio::{LocalExecutorBuilder, Placement};
use rafka_core::io::{Clock, SystemClock};
use rafka_core::log::{LogConfig, RecoveryHints};
use rafka_proto::record::{BatchBuilder, Compression};
use rafka_shard::partition::{Partition, PartitionSpec};
use rafka_shard::storage::GlommioStorage;

/// Small enough for an unprivileged RLIMIT_MEMLOCK.
const IO_MEMORY_BYTES: usize = 512 << 10;

fn batch(value: &str) -> Bytes {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Some(b"k".as_slice()), Some(value.as_bytes()));
    builder.build().expect("batch")
}

fn spec(dir: &Path) -> PartitionSpec {
    PartitionSpec {
        topic: Rc::from("ordered"),
        index: 0,
        dir: dir.to_path_buf(),
        config: LogConfig::default(),
        hints: RecoveryHints::default(),
        write_caching: false,
        high_watermark: None,
    }
}

#[test]
fn an_append_called_later_never_overtakes_a_waiting_one() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("ordered-0");
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("executor");
    executor.run(async move {
        let clock: Rc<dyn Clock> = Rc::new(SystemClock);
        let partition = Partition::open(GlommioStorage::new(), clock, spec(&dir))
            .await
            .expect("open");
        partition
            .append(&batch("first"), None)
            .await
            .expect("append");
        partition.flush().await.expect("flush");
        // A reader holds the lock across its file read; the earlier append
        // queues behind it; the reader's own task then calls the later
        // append right after letting the lock go, before the woken earlier
        // one has run.
        let reader = {
            let partition = Rc::clone(&partition);
            glommio::spawn_local(async move {
                let read = partition.fetch(0, 1 << 20).await.expect("fetch");
                assert!(!read.records.is_empty(), "the read went to the file");
                partition
                    .append(&batch("later"), None)
                    .await
                    .expect("append")
            })
        };
        let earlier = {
            let partition = Rc::clone(&partition);
            glommio::spawn_local(async move {
                partition
                    .append(&batch("earlier"), None)
                    .await
                    .expect("append")
            })
        };
        let (later, earlier) = futures_util::future::join(reader, earlier).await;
        assert_eq!(
            (earlier.base_offset, later.base_offset),
            (1, 2),
            "offsets of the earlier and the later append"
        );
    });
}
