//! CPU time consumed by this process, all threads included (io_uring's
//! io-wq workers are threads of the process, so work the kernel punts to
//! them is counted). On a shared, noisy machine it is steadier than wall
//! time and shows what a mode costs even when the disk is the bottleneck.

use std::time::Duration;

/// Linux reports /proc times in USER_HZ, which the kernel ABI fixes at 100
/// on every architecture rafka targets.
const USER_HZ: u64 = 100;

#[derive(Debug, thiserror::Error)]
pub enum CpuTimeError {
    #[error("reading /proc/self/stat: {0}")]
    Read(#[from] std::io::Error),
    #[error("unexpected /proc/self/stat format")]
    Format,
}

/// User + system time of the whole process so far.
pub fn process_cpu_time() -> Result<Duration, CpuTimeError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    parse_stat_cpu_time(&stat)
}

/// `utime` and `stime` are fields 14 and 15; the command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat_cpu_time(stat: &str) -> Result<Duration, CpuTimeError> {
    let after_comm = stat
        .rfind(')')
        .map(|at| &stat[at + 1..])
        .ok_or(CpuTimeError::Format)?;
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let mut next_ticks = || -> Result<u64, CpuTimeError> {
        fields
            .next()
            .and_then(|field| field.parse().ok())
            .ok_or(CpuTimeError::Format)
    };
    let utime_ticks = next_ticks()?;
    let stime_ticks = next_ticks()?;
    Ok(Duration::from_millis(
        (utime_ticks + stime_ticks) * 1000 / USER_HZ,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_plus_stime() {
        let stat = "4242 (rafka (bench) x) S 1 4242 4242 0 -1 4194560 \
                    157 0 0 0 123 45 0 0 20 0 3 0 99 0 0";
        assert_eq!(
            parse_stat_cpu_time(stat).unwrap(),
            Duration::from_millis(1680)
        );
    }

    #[test]
    fn rejects_truncated_stat() {
        assert!(matches!(
            parse_stat_cpu_time("4242 (x) S 1 2 3"),
            Err(CpuTimeError::Format)
        ));
        assert!(matches!(
            parse_stat_cpu_time("no parenthesis"),
            Err(CpuTimeError::Format)
        ));
    }

    #[test]
    fn own_process_time_is_readable_and_monotonic() {
        let before = process_cpu_time().unwrap();
        let spin: u64 = (0..2_000_000u64).fold(0, |acc, i| acc.wrapping_add(i * i));
        assert_ne!(spin, 1);
        assert!(process_cpu_time().unwrap() >= before);
    }
}
