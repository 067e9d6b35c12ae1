//! A full data dir, for real: the broker's data dir on a small tmpfs
//! (root only: mounting needs it; skipped with a message otherwise), filled
//! with a filler file. Below `rafka.log.dir.min.free.bytes` produce is
//! refused with KAFKA_STORAGE_ERROR while fetch serves every acknowledged
//! record; once the filler is deleted produce resumes by itself at the
//! next offset. With the threshold off the disk fills for real: the
//! ENOSPC fails that produce only, fetch goes on, and produce works again
//! as soon as space is freed, without a restart. Produce and Fetch go
//! through the broker's handlers (the Kafka codes a client sees).

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProduceResponse};
use rafka_proto::error::ErrorCode;
use rafka_shard::disk::{measure, DiskSnapshot};
use rafka_shard::shard::Shard;
use rafka_testkit::proto::{produce_answers, produce_request, topic_name};
use rafka_testkit::records::{concat, stored, value_batch};
use rafka_testkit::{Broker, TestBroker};

const TOPIC: &str = "filling";
const TMPFS_BYTES: u64 = 16 << 20;
/// The threshold of the threshold tests: half the tmpfs.
const MIN_FREE_BYTES: u64 = 8 << 20;
/// How long the broker may take to notice a change of free space (its
/// monitor measures every second); reached only if it never does.
const NOTICE_DEADLINE: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// A tmpfs mounted on a fresh temp dir, unmounted when dropped (also when
/// the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// None, with a message, where the test cannot mount (not root, or a
    /// container without the capability).
    fn mount(size_bytes: u64) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a tmpfs for the full-disk test needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let target = c_path(dir.path());
        let fstype = CString::new("tmpfs").expect("no NUL");
        let options = CString::new(format!("size={size_bytes}")).expect("no NUL");
        // SAFETY: every pointer is a NUL-terminated string that outlives
        // the call.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.raw_os_error(),
                Some(libc::EPERM),
                "mount tmpfs: {error}"
            );
            eprintln!("skipped: root may not mount a tmpfs here ({error})");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let target = c_path(self.dir.path());
        // SAFETY: a NUL-terminated path that outlives the call. Detached,
        // so a descriptor still open cannot keep the mount alive.
        let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            eprintln!(
                "unmounting {}: {}",
                self.dir.path().display(),
                std::io::Error::last_os_error()
            );
        }
    }
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in a temp path")
}

/// Writes a filler file into `dir` until only about `leave_bytes` are free;
/// returns its path.
fn fill(dir: &Path, leave_bytes: u64) -> PathBuf {
    let path = dir.join("filler");
    let free_bytes = measure(dir).expect("statvfs").free_bytes;
    let mut left = free_bytes.saturating_sub(leave_bytes);
    let mut file = File::create(&path).expect("create filler");
    let chunk = vec![0xF1_u8; 1 << 20];
    while left > 0 {
        let len = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..len]).expect("write filler");
        left -= len as u64;
    }
    file.sync_all().expect("sync filler");
    let free_bytes = measure(dir).expect("statvfs").free_bytes;
    assert!(
        free_bytes <= leave_bytes + (64 << 10),
        "{free_bytes} bytes still free after filling"
    );
    path
}

/// Produces `batch` (acks=all) through the Produce handler: (error code,
/// base offset).
async fn produce(broker: &Broker, partition: i32, batch: &Bytes) -> (ErrorCode, i64) {
    let request = produce_request(-1, vec![(TOPIC, vec![(partition, Some(batch.clone()))])]);
    let response: ProduceResponse = broker.call_on(0, 9, &request).await;
    let (_, answer) = produce_answers(&response).remove(0);
    (ErrorCode::from_code(answer.error_code), answer.base_offset)
}

/// Fetches `partition` from offset 0 through the Fetch handler: (error
/// code, high watermark, records).
async fn fetch(broker: &Broker, partition: i32) -> (ErrorCode, i64, Bytes) {
    let request = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(64 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(TOPIC))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_partition_max_bytes(64 << 20)])]);
    let response: FetchResponse = broker.call_on(0, 12, &request).await;
    let answer = &response.responses[0].partitions[0];
    (
        ErrorCode::from_code(answer.error_code),
        answer.high_watermark,
        answer.records.clone().unwrap_or_default(),
    )
}

/// Acknowledged batches of one partition, as the log stores them.
#[derive(Default)]
struct Acked {
    stored: Vec<Bytes>,
}

impl Acked {
    fn next_offset(&self) -> i64 {
        self.stored.len() as i64
    }

    /// Records an acknowledged produce, which must have landed right after
    /// the previous one (one record per batch: no gap, no duplicate).
    fn push(&mut self, batch: &Bytes, base_offset: i64) {
        assert_eq!(base_offset, self.next_offset(), "the next offset");
        self.stored.push(stored(batch, base_offset));
    }

    /// Fetch must serve exactly these: every acknowledged record, byte for
    /// byte, and nothing else.
    async fn assert_served(&self, broker: &Broker, partition: i32) {
        let (error_code, high_watermark, records) = fetch(broker, partition).await;
        assert_eq!(
            error_code,
            ErrorCode::NONE,
            "fetch of partition {partition}"
        );
        assert_eq!(high_watermark, self.next_offset());
        assert_eq!(records, concat(&self.stored), "partition {partition}");
    }
}

/// Every shard's view of the data dir's free space, in shard order.
async fn disk_snapshots(broker: &Broker) -> Vec<DiskSnapshot> {
    let snapshots = broker
        .shard
        .router
        .invoke_on_all(|shard: Rc<Shard>| async move { shard.registry().disk().snapshot() })
        .await;
    snapshots
        .into_iter()
        .map(|snapshot| snapshot.expect("route"))
        .collect()
}

async fn refusals(broker: &Broker) -> u64 {
    disk_snapshots(broker)
        .await
        .iter()
        .map(|disk| disk.produce_refused)
        .sum()
}

fn value(tag: &str, bytes: usize) -> Bytes {
    let mut value = tag.to_string();
    value.extend(std::iter::repeat_n('.', bytes.saturating_sub(tag.len())));
    value_batch(&value)
}

#[test]
fn below_the_free_space_threshold_produce_is_refused_until_space_is_freed() {
    let Some(tmpfs) = Tmpfs::mount(TMPFS_BYTES) else {
        return;
    };
    let dir = tmpfs.path().to_path_buf();
    let data_dir = dir.clone();
    TestBroker::builder()
        .shards(2)
        .data_dir(&data_dir)
        .timeout(TEST_TIMEOUT)
        .config(|c| c.log_dir_min_free_bytes = Some(MIN_FREE_BYTES))
        .run(move |broker| async move {
            broker.create_topic_id(TOPIC, 2, &[]).await;
            let mut acked = [Acked::default(), Acked::default()];
            for round in 0..3 {
                for (partition, acked) in (0..).zip(&mut acked) {
                    let batch = value(&format!("before-{partition}-{round}"), 1000);
                    let (error_code, offset) = produce(&broker, partition, &batch).await;
                    assert_eq!(error_code, ErrorCode::NONE);
                    acked.push(&batch, offset);
                }
            }
            // Half the threshold left: writes would still fit, the
            // threshold alone refuses them.
            let filler = fill(&dir, MIN_FREE_BYTES / 2);
            let mut refused = 0;
            let deadline = Instant::now() + NOTICE_DEADLINE;
            loop {
                let mut accepted = false;
                for (partition, acked) in (0..).zip(&mut acked) {
                    let batch = value(&format!("racing-{partition}"), 1000);
                    match produce(&broker, partition, &batch).await {
                        (ErrorCode::NONE, offset) => {
                            acked.push(&batch, offset);
                            accepted = true;
                        }
                        (ErrorCode::KAFKA_STORAGE_ERROR, _) => refused += 1,
                        other => panic!("produce answered {other:?}"),
                    }
                }
                if !accepted {
                    break;
                }
                assert!(Instant::now() < deadline, "produce never refused");
                glommio::timer::sleep(POLL_INTERVAL).await;
            }
            for (partition, acked) in (0..).zip(&acked) {
                acked.assert_served(&broker, partition).await;
            }
            let disks = disk_snapshots(&broker).await;
            assert!(disks.iter().all(|disk| disk.refusing_produce), "{disks:?}");
            assert_eq!(disks[0].min_free_bytes, Some(MIN_FREE_BYTES));
            let free_bytes = disks[0].free_bytes.expect("shard 0 measures");
            assert!(free_bytes < MIN_FREE_BYTES, "{free_bytes}");
            assert_eq!(disks[1].free_bytes, None, "only shard 0 measures");
            assert_eq!(refusals(&broker).await, refused);

            std::fs::remove_file(&filler).expect("remove filler");
            let deadline = Instant::now() + NOTICE_DEADLINE;
            for (partition, acked) in (0..).zip(&mut acked) {
                let batch = value(&format!("after-{partition}"), 1000);
                loop {
                    match produce(&broker, partition, &batch).await {
                        (ErrorCode::NONE, offset) => {
                            acked.push(&batch, offset);
                            break;
                        }
                        (ErrorCode::KAFKA_STORAGE_ERROR, _) => refused += 1,
                        other => panic!("produce answered {other:?}"),
                    }
                    assert!(Instant::now() < deadline, "produce never resumed");
                    glommio::timer::sleep(POLL_INTERVAL).await;
                }
            }
            for (partition, acked) in (0..).zip(&acked) {
                acked.assert_served(&broker, partition).await;
            }
            let disks = disk_snapshots(&broker).await;
            assert!(disks.iter().all(|disk| !disk.refusing_produce), "{disks:?}");
            assert!(disks[0].free_bytes.expect("measured") >= MIN_FREE_BYTES);
            assert_eq!(refusals(&broker).await, refused);
        });
    drop(tmpfs);
}

#[test]
fn a_disk_that_fills_fails_produce_keeps_fetch_and_recovers_without_restart() {
    let Some(tmpfs) = Tmpfs::mount(TMPFS_BYTES) else {
        return;
    };
    let dir = tmpfs.path().to_path_buf();
    let data_dir = dir.clone();
    TestBroker::builder()
        .data_dir(&data_dir)
        .timeout(TEST_TIMEOUT)
        .config(|c| c.log_dir_min_free_bytes = Some(0))
        .run(move |broker| async move {
            broker.create_topic_id(TOPIC, 1, &[]).await;
            let mut acked = Acked::default();
            for round in 0..2 {
                let batch = value(&format!("small-{round}"), 100);
                let (error_code, offset) = produce(&broker, 0, &batch).await;
                assert_eq!(error_code, ErrorCode::NONE);
                acked.push(&batch, offset);
            }
            let filler = fill(&dir, 1 << 20);
            // 256 KiB batches until one no longer fits.
            let mut full = false;
            for round in 0..64 {
                let batch = value(&format!("big-{round}"), 256 << 10);
                match produce(&broker, 0, &batch).await {
                    (ErrorCode::NONE, offset) => acked.push(&batch, offset),
                    (ErrorCode::KAFKA_STORAGE_ERROR, _) => {
                        full = true;
                        break;
                    }
                    other => panic!("produce answered {other:?}"),
                }
            }
            assert!(full, "the disk never filled");
            acked.assert_served(&broker, 0).await;
            // Still full: the same answer, and the log holds no torn bytes.
            let (error_code, _) = produce(&broker, 0, &value("big-again", 256 << 10)).await;
            assert_eq!(error_code, ErrorCode::KAFKA_STORAGE_ERROR);
            let segment = broker
                .partition_dir(TOPIC, 0)
                .join("00000000000000000000.log");
            let segment_bytes = std::fs::metadata(&segment).expect("segment").len();
            assert_eq!(segment_bytes, concat(&acked.stored).len() as u64);

            std::fs::remove_file(&filler).expect("remove filler");
            let batch = value("after", 256 << 10);
            let (error_code, offset) = produce(&broker, 0, &batch).await;
            assert_eq!(error_code, ErrorCode::NONE, "at once, no restart");
            acked.push(&batch, offset);
            acked.assert_served(&broker, 0).await;
        });
    drop(tmpfs);
}

/// Without root: a broker whose threshold is above any disk's free space
/// refuses produce from its first request (shard 0 measures before the
/// broker serves) and serves what it already holds.
#[test]
fn a_broker_started_below_its_threshold_refuses_produce_and_serves_its_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_path_buf();
    TestBroker::builder()
        .data_dir(&data_dir)
        .config(|c| c.log_dir_min_free_bytes = Some(0))
        .run(|broker| async move {
            broker.create_topic_id(TOPIC, 1, &[]).await;
            for round in 0..2 {
                let (error_code, offset) =
                    produce(&broker, 0, &value_batch(&round.to_string())).await;
                assert_eq!((error_code, offset), (ErrorCode::NONE, round));
            }
        });
    let threshold = i64::MAX.unsigned_abs();
    TestBroker::builder()
        .data_dir(&data_dir)
        .config(move |c| c.log_dir_min_free_bytes = Some(threshold))
        .run(move |broker| async move {
            let (error_code, _) = produce(&broker, 0, &value_batch("refused")).await;
            assert_eq!(error_code, ErrorCode::KAFKA_STORAGE_ERROR);
            let mut acked = Acked::default();
            for round in 0..2 {
                acked.push(&value_batch(&round.to_string()), round);
            }
            acked.assert_served(&broker, 0).await;
            let disks = disk_snapshots(&broker).await;
            assert!(disks[0].refusing_produce);
            assert_eq!(disks[0].min_free_bytes, Some(threshold));
            assert_eq!(refusals(&broker).await, 1);
        });
}
