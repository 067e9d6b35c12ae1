//! Port ranges for clusters started by tests (scripts/cluster.sh puts node
//! N's listeners at base+N, base+100+N and base+200+N).
//!
//! The base is picked below the kernel's ephemeral range: a port taken from
//! that range (bind to port 0) can be handed to any outgoing connection
//! between the check and the node's own bind, and the nodes started first
//! connect to their peers at once. A run lost a node to exactly that
//! (its controller port was in use). Tests that start clusters at the same
//! time also take turns through [`PortLock`], so no two pick the same range
//! before either has bound it.

use std::net::TcpListener;
use std::os::fd::AsRawFd;

/// An exclusive `flock` on a file every cluster test shares, released on
/// drop (or by the kernel if the test dies).
pub struct PortLock {
    _file: std::fs::File,
}

impl PortLock {
    pub fn take() -> PortLock {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("rafka-cluster-ports.lock"))
            .expect("lock file");
        // SAFETY: flock(2) on a descriptor this struct owns.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(locked, 0, "flock: {}", std::io::Error::last_os_error());
        PortLock { _file: file }
    }
}

/// The first port of the kernel's ephemeral range (32768 when unreadable).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A base port B, below the ephemeral range, with B+n, B+100+n and
/// B+200+n free now for n in 1..=`nodes`. Call it holding a [`PortLock`].
pub fn free_base_port(nodes: u16) -> u16 {
    const LOW: u16 = 10_000;
    let high = ephemeral_low().saturating_sub(300).max(LOW + 1_000);
    let mut state = u64::from(std::process::id())
        ^ u64::from(
            std::time::UNIX_EPOCH
                .elapsed()
                .map_or(0, |d| d.subsec_nanos()),
        );
    for _ in 0..1_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let base = LOW + (state >> 33) as u16 % (high - LOW);
        let free = (1..=nodes)
            .flat_map(|n| [base + n, base + 100 + n, base + 200 + n])
            .all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no free port range below {high}");
}
