//! The process's open-file budget (RLIMIT_NOFILE).
//!
//! Every partition, segment, socket and io_uring instance costs a file
//! descriptor, and distributions start processes with a soft limit of 1024
//! under a hard limit hundreds of times larger. The binary raises the soft
//! limit to the hard one at start ([`raise_open_files_limit`], as Kafka's
//! operations guide asks of its service file and as Redpanda does itself);
//! whatever sizes itself by the budget (an fd cache) reads it back with
//! [`open_files_limit`]. Process-wide, so any thread may call these.

use std::io;

/// RLIMIT_NOFILE of this process; `u64::MAX` is "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    pub soft: u64,
    pub hard: u64,
}

/// The current RLIMIT_NOFILE.
pub fn open_files_limit() -> io::Result<OpenFilesLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a pointer to a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OpenFilesLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// Raises the soft RLIMIT_NOFILE to the hard limit and returns the limit
/// now in force. An unlimited hard limit is capped at `fs.nr_open` (the
/// kernel refuses a soft limit above it). Never lowers anything.
pub fn raise_open_files_limit() -> io::Result<OpenFilesLimit> {
    let current = open_files_limit()?;
    let target = match current.hard {
        libc::RLIM_INFINITY => kernel_open_files_max().unwrap_or(current.soft),
        hard => hard,
    };
    if current.soft >= target {
        return Ok(current);
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: current.hard,
    };
    // SAFETY: setrlimit reads one rlimit through a pointer to a live local.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    open_files_limit()
}

/// `fs.nr_open`: the most descriptors the kernel lets one process have.
fn kernel_open_files_max() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let raised = raise_open_files_limit().expect("raise RLIMIT_NOFILE");
        let want = match raised.hard {
            libc::RLIM_INFINITY => kernel_open_files_max().expect("fs.nr_open"),
            hard => hard,
        };
        assert_eq!(raised.soft, want);
        assert_eq!(open_files_limit().expect("getrlimit"), raised);
    }
}
