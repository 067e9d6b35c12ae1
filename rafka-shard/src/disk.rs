//! Free space of the data dir: below `rafka.log.dir.min.free.bytes`
//! produce is refused before the disk is actually full, reads go on, and
//! produce resumes by itself once space is back (Redpanda's approach;
//! Kafka has no threshold and takes a log dir offline at its first
//! ENOSPC until restart).
//!
//! Lives on: every shard holds a [`DiskSpace`] in its registry, which the
//! produce path reads (a `Cell<bool>`, no syscall). Shard 0 runs the
//! monitor ([`Shard::start_disk_monitor`], called by
//! [`crate::startup::start`]): `statvfs` of the data dir every
//! [`CHECK_INTERVAL`], and at once when a write failed on any shard (each
//! shard forwards its write errors, [`Shard::forward_write_errors`]). On a
//! change of state it tells every shard; it alone logs and holds the free
//! bytes the metrics show.
//!
//! Rules ([`FreeSpacePolicy`]):
//! - Produce is refused once free bytes fall below the threshold and
//!   accepted again once they reach the threshold plus 5%: a disk hovering
//!   at the threshold would otherwise flip produce on and off (and log a
//!   WARN pair) with every segment written or deleted.
//! - The threshold is the configured value; unset, 1 GiB, or 5% of the
//!   filesystem if that is smaller (a fixed GiB would refuse everything on
//!   a small volume). A GiB leaves room for what keeps being written while
//!   produce is refused (segment indexes at a roll, producer snapshots and
//!   checkpoints at shutdown, offset commits, metadata) and minutes for an
//!   operator at typical rates. 0 disables the refusal; the free bytes are
//!   still measured and exported.
//! - A refused produce answers KAFKA_STORAGE_ERROR, which clients retry
//!   (Kafka's KafkaStorageException is retriable) until their delivery
//!   timeout, so a producer rides out a short full disk.
//! - Internal topics (`__consumer_offsets`, `__transaction_state`) are not
//!   refused: their records are small and the reserve exists for them (as
//!   in Redpanda, whose threshold gates the Kafka produce path only). If
//!   the disk does fill, a coordinator's failed write answers
//!   COORDINATOR_NOT_AVAILABLE (retriable) and the log undoes the write.
//! - A failed statvfs keeps the last state and is logged once.

use std::cell::Cell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use event_listener::Event;
use futures_util::future::select;
use rafka_core::group::GROUP_METADATA_TOPIC;

use crate::partition::PartitionError;
use crate::runtime::within;
use crate::shard::Shard;
use crate::storage::ShardStorage;

/// How often shard 0 measures the free space of the data dir.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// The threshold when `rafka.log.dir.min.free.bytes` is not set, unless 5%
/// of the filesystem is smaller.
pub const MIN_FREE_BYTES_DEFAULT: u64 = 1 << 30;
/// The default threshold is at most this share (1/20 = 5%) of the
/// filesystem; refused produce resumes at the threshold plus this share
/// of it.
const SHARE_DIVISOR: u64 = 20;
/// Topics whose writes the threshold never refuses (see module doc).
const EXEMPT_TOPICS: [&str; 2] = [GROUP_METADATA_TOPIC, "__transaction_state"];

/// The size and free space of a filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged process may still write (`f_bavail`).
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// When produce is refused, apart from any IO (see module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpacePolicy {
    /// `rafka.log.dir.min.free.bytes`; None: the default rule.
    configured_bytes: Option<u64>,
}

impl FreeSpacePolicy {
    pub fn new(configured_bytes: Option<u64>) -> Self {
        FreeSpacePolicy { configured_bytes }
    }

    /// The threshold on a filesystem of `total_bytes`; 0 refuses nothing.
    pub fn min_free_bytes(&self, total_bytes: u64) -> u64 {
        match self.configured_bytes {
            Some(bytes) => bytes,
            None => MIN_FREE_BYTES_DEFAULT.min(total_bytes / SHARE_DIVISOR),
        }
    }

    /// Free bytes at which refused produce is accepted again.
    pub fn resume_free_bytes(min_free_bytes: u64) -> u64 {
        min_free_bytes.saturating_add(min_free_bytes / SHARE_DIVISOR)
    }

    /// Whether produce is refused with `space` free, given whether it was.
    pub fn refuses(&self, space: Space, refusing: bool) -> bool {
        let min_free_bytes = self.min_free_bytes(space.total_bytes);
        if min_free_bytes == 0 {
            return false;
        }
        match refusing {
            true => space.free_bytes < Self::resume_free_bytes(min_free_bytes),
            false => space.free_bytes < min_free_bytes,
        }
    }
}

/// The last measurement of shard 0's monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    free_bytes: u64,
    min_free_bytes: u64,
}

/// A one-shot wake-up that is not lost when nobody waits yet.
#[derive(Debug, Default)]
struct Signal {
    pending: Cell<bool>,
    event: Event,
}

impl Signal {
    fn raise(&self) {
        self.pending.set(true);
        self.event.notify(usize::MAX);
    }

    async fn wait(&self) {
        loop {
            if self.pending.replace(false) {
                return;
            }
            let listener = self.event.listen();
            if self.pending.replace(false) {
                return;
            }
            listener.await;
        }
    }
}

/// What one shard knows of the data dir's free space, and its counters.
/// Lives on: every shard, in its [`crate::registry::PartitionRegistry`].
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    /// Set by shard 0's monitor on every shard: produce is refused.
    refusing: Cell<bool>,
    /// The threshold that refused produce, for its error.
    refusing_min_free_bytes: Cell<u64>,
    /// Shard 0 only: the monitor's last measurement.
    probe: Cell<Option<Probe>>,
    produce_refused: Cell<u64>,
    /// A write failed on this shard (forwarded to shard 0).
    write_failed: Signal,
    /// Shard 0: measure now (a write failed somewhere).
    recheck: Signal,
}

/// A `Send` copy of a shard's [`DiskSpace`], for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskSnapshot {
    pub dir: String,
    /// Shard 0 only (the shard that measures): the last free bytes seen.
    pub free_bytes: Option<u64>,
    /// Shard 0 only: the threshold in force.
    pub min_free_bytes: Option<u64>,
    /// Produce to user topics is refused now.
    pub refusing_produce: bool,
    /// Partition appends refused by the threshold on this shard.
    pub produce_refused: u64,
}

impl DiskSpace {
    pub fn new(dir: PathBuf) -> Self {
        DiskSpace {
            dir,
            refusing: Cell::new(false),
            refusing_min_free_bytes: Cell::new(0),
            probe: Cell::new(None),
            produce_refused: Cell::new(0),
            write_failed: Signal::default(),
            recheck: Signal::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether produce to user topics is refused now.
    pub fn is_refusing(&self) -> bool {
        self.refusing.get()
    }

    /// The produce path's check: the refusal to answer, counted, if
    /// `topic` may not be written now.
    pub fn check_produce(&self, topic: &str) -> Result<(), PartitionError> {
        if !self.refusing.get() || EXEMPT_TOPICS.contains(&topic) {
            return Ok(());
        }
        self.produce_refused
            .set(self.produce_refused.get().wrapping_add(1));
        Err(PartitionError::DiskFull {
            dir: self.dir.clone(),
            min_free_bytes: self.refusing_min_free_bytes.get(),
        })
    }

    /// A write failed on this shard: the monitor measures at once.
    pub fn note_write_error(&self) {
        self.write_failed.raise();
    }

    /// Shard 0: measure now rather than at the next tick.
    pub fn request_recheck(&self) {
        self.recheck.raise();
    }

    /// Set on every shard by the monitor.
    pub fn set_refusing(&self, refusing: bool, min_free_bytes: u64) {
        self.refusing.set(refusing);
        self.refusing_min_free_bytes.set(min_free_bytes);
    }

    pub fn snapshot(&self) -> DiskSnapshot {
        let probe = self.probe.get();
        DiskSnapshot {
            dir: self.dir.display().to_string(),
            free_bytes: probe.map(|p| p.free_bytes),
            min_free_bytes: probe.map(|p| p.min_free_bytes),
            refusing_produce: self.refusing.get(),
            produce_refused: self.produce_refused.get(),
        }
    }
}

/// `statvfs(2)` of `dir`.
pub fn measure(dir: &Path) -> std::io::Result<Space> {
    let path = CString::new(dir.as_os_str().as_bytes())?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated and outlives the call; `stat` is
    // memory for one `statvfs`, which the call fills on success.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so it initialised `stat`.
    let stat = unsafe { stat.assume_init() };
    // The field types differ between targets (u32 on 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    let (available, blocks, fragment) = (
        stat.f_bavail as u64,
        stat.f_blocks as u64,
        stat.f_frsize as u64,
    );
    Ok(Space {
        free_bytes: available.saturating_mul(fragment),
        total_bytes: blocks.saturating_mul(fragment),
    })
}

/// [`measure`] on glommio's blocking pool: a slow filesystem (NFS) must
/// not stall the shard.
pub async fn measure_offloaded(dir: &Path) -> std::io::Result<Space> {
    let dir = dir.to_path_buf();
    glommio::executor()
        .spawn_blocking(move || measure(&dir))
        .await
}

impl<S: ShardStorage> Shard<S> {
    /// Starts watching the data dir's free space: every shard forwards its
    /// write errors to shard 0; shard 0 measures once before returning
    /// (so a broker started on a full disk refuses its first produce),
    /// then every [`CHECK_INTERVAL`] and when asked. The tasks end when
    /// the shard stops.
    pub async fn start_disk_monitor(self: &Rc<Self>) {
        glommio::spawn_local(Rc::clone(self).forward_write_errors()).detach();
        if self.id() != 0 {
            return;
        }
        let policy = FreeSpacePolicy::new(self.config.log_dir_min_free_bytes);
        let measure_failed = self.check_disk_space(policy, false).await;
        glommio::spawn_local(Rc::clone(self).run_disk_monitor(policy, measure_failed)).detach();
    }

    async fn run_disk_monitor(self: Rc<Self>, policy: FreeSpacePolicy, mut measure_failed: bool) {
        let disk = self.registry().disk();
        loop {
            let woken = select(Box::pin(disk.recheck.wait()), Box::pin(self.wait_stop()));
            within(CHECK_INTERVAL, woken).await;
            if self.is_stopping() {
                return;
            }
            measure_failed = self.check_disk_space(policy, measure_failed).await;
        }
    }

    /// Measures the data dir and acts on it; returns whether the
    /// measurement failed (logged once per run of failures).
    async fn check_disk_space(&self, policy: FreeSpacePolicy, measure_failed: bool) -> bool {
        let disk = self.registry().disk();
        match measure_offloaded(disk.dir()).await {
            Ok(space) => {
                self.observe(policy, space).await;
                false
            }
            Err(error) => {
                if !measure_failed {
                    tracing::warn!(
                        dir = %disk.dir().display(),
                        %error,
                        "cannot measure the log dir's free space; \
                         keeping the last state until it works again"
                    );
                }
                true
            }
        }
    }

    /// One measurement: records it and, if the state changes, logs it and
    /// tells every shard.
    async fn observe(&self, policy: FreeSpacePolicy, space: Space) {
        let disk = self.registry().disk();
        let min_free_bytes = policy.min_free_bytes(space.total_bytes);
        disk.probe.set(Some(Probe {
            free_bytes: space.free_bytes,
            min_free_bytes,
        }));
        let was_refusing = disk.is_refusing();
        let refusing = policy.refuses(space, was_refusing);
        if refusing == was_refusing {
            return;
        }
        let dir = disk.dir().display();
        let resume_free_bytes = FreeSpacePolicy::resume_free_bytes(min_free_bytes);
        if refusing {
            tracing::warn!(
                %dir,
                free_bytes = space.free_bytes,
                min_free_bytes,
                resume_free_bytes,
                "log dir free space below rafka.log.dir.min.free.bytes: \
                 refusing produce (reads go on) until it is back above resume_free_bytes"
            );
        } else {
            tracing::warn!(
                %dir,
                free_bytes = space.free_bytes,
                min_free_bytes,
                resume_free_bytes,
                "log dir free space is back: accepting produce again"
            );
        }
        let told = self
            .router
            .invoke_on_all(move |shard: Rc<Shard<S>>| async move {
                shard
                    .registry()
                    .disk()
                    .set_refusing(refusing, min_free_bytes);
            })
            .await;
        for result in told {
            if let Err(error) = result {
                // A stopping shard takes no produce any more.
                tracing::debug!(%error, "telling a shard about the log dir's free space");
            }
        }
    }

    /// Every shard: forwards this shard's write errors to shard 0's
    /// monitor, which measures at once (the disk may have just filled).
    /// Ends when the shard stops.
    async fn forward_write_errors(self: Rc<Self>) {
        let disk = self.registry().disk();
        loop {
            let failed = select(
                Box::pin(disk.write_failed.wait()),
                Box::pin(self.wait_stop()),
            );
            failed.await;
            if self.is_stopping() {
                return;
            }
            let recheck = |shard: Rc<Shard<S>>| async move {
                shard.registry().disk().request_recheck();
            };
            if let Err(error) = self.router.invoke_on(0, recheck).await {
                tracing::debug!(%error, "asking shard 0 to measure free space");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn space(free_bytes: u64, total_bytes: u64) -> Space {
        Space {
            free_bytes,
            total_bytes,
        }
    }

    #[test]
    fn the_default_threshold_is_a_gib_or_five_percent_of_a_small_filesystem() {
        let policy = FreeSpacePolicy::new(None);
        assert_eq!(policy.min_free_bytes(500 * GIB), GIB);
        assert_eq!(policy.min_free_bytes(16 << 20), (16 << 20) / 20);
        assert_eq!(FreeSpacePolicy::new(Some(7)).min_free_bytes(500 * GIB), 7);
    }

    #[test]
    fn refusal_starts_below_the_threshold_and_ends_five_percent_above_it() {
        let policy = FreeSpacePolicy::new(Some(1000));
        let total = 1 << 20;
        assert!(!policy.refuses(space(1000, total), false));
        assert!(policy.refuses(space(999, total), false));
        assert!(policy.refuses(space(1000, total), true));
        assert!(policy.refuses(space(1049, total), true));
        assert!(!policy.refuses(space(1050, total), true));
        assert_eq!(FreeSpacePolicy::resume_free_bytes(1000), 1050);
    }

    #[test]
    fn zero_disables_the_refusal() {
        let policy = FreeSpacePolicy::new(Some(0));
        assert!(!policy.refuses(space(0, GIB), false));
        assert!(!policy.refuses(space(0, GIB), true));
    }

    #[test]
    fn only_user_topics_are_refused_and_each_refusal_is_counted() {
        let disk = DiskSpace::new(PathBuf::from("/data"));
        assert!(disk.check_produce("orders").is_ok());
        disk.set_refusing(true, 4096);
        let refused = disk.check_produce("orders").expect_err("refused");
        assert_eq!(
            refused.error_code(),
            rafka_proto::error::ErrorCode::KAFKA_STORAGE_ERROR
        );
        assert!(refused
            .to_string()
            .contains("/data has less than 4096 bytes free"));
        assert!(disk.check_produce(GROUP_METADATA_TOPIC).is_ok());
        assert!(disk.check_produce("__transaction_state").is_ok());
        assert_eq!(disk.snapshot().produce_refused, 1);
        assert!(disk.snapshot().refusing_produce);
        disk.set_refusing(false, 4096);
        assert!(disk.check_produce("orders").is_ok());
        assert_eq!(disk.snapshot().produce_refused, 1);
    }

    #[test]
    fn measures_a_real_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let space = measure(dir.path()).expect("statvfs");
        assert!(space.total_bytes > 0);
        assert!(space.free_bytes <= space.total_bytes);
        let missing = measure(&dir.path().join("missing")).expect_err("no such dir");
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
