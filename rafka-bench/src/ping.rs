//! `ping-floor`: the latency floor of any request/response over loopback
//! TCP on this machine. A thread echoes fixed-size messages; the client
//! sends one, waits for it to come back, and sends the next (sequential,
//! TCP_NODELAY on both ends, blocking sockets: a thread woken by the
//! kernel on each side, as a broker's connection is). An acks=1 produce
//! of one record is such a round trip plus the broker's work, so its p99
//! is held to this one's.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::{latency_histogram, Row, RunLabel};

/// Times round trips of `message_bytes` for `duration`; the row's
/// latencies are per round trip, its records the round trips.
pub fn ping_floor(message_bytes: usize, duration: Duration) -> std::io::Result<Row> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    // Connected before the echo thread starts (the backlog holds it), so
    // its accept cannot wait for a client that failed.
    let client = TcpStream::connect(listener.local_addr()?)?;
    client.set_nodelay(true)?;
    let (timed, echoed) = std::thread::scope(|scope| {
        let echo = scope.spawn(|| echo(&listener, message_bytes));
        // Returning drops the client: the echo thread sees the end.
        let timed = round_trips(client, message_bytes, duration);
        let echoed = echo
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (timed, echoed)
    });
    let (latency_us, round_trips, seconds) = timed?;
    echoed?;
    let label = RunLabel {
        mode: "ping-floor",
        target_msgs_per_sec: None,
        record_bytes: message_bytes,
        batch_records: 1,
        acks: "-".to_owned(),
        compression: "none".to_owned(),
    };
    let mut row = Row::new(label, round_trips, seconds, &latency_us);
    row.batches = round_trips;
    Ok(row)
}

/// Sends back every message until the client closes.
fn echo(listener: &TcpListener, message_bytes: usize) -> std::io::Result<()> {
    let (mut stream, _) = listener.accept()?;
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; message_bytes];
    loop {
        match stream.read_exact(&mut buf) {
            Err(err) if err.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            read => read?,
        }
        stream.write_all(&buf)?;
    }
}

fn round_trips(
    mut client: TcpStream,
    message_bytes: usize,
    duration: Duration,
) -> std::io::Result<(Histogram<u64>, u64, f64)> {
    let message: Vec<u8> = (0..message_bytes).map(|i| (i * 31 + 7) as u8).collect();
    let mut back = vec![0u8; message_bytes];
    let mut latency_us = latency_histogram();
    let mut count = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        let sent = Instant::now();
        client.write_all(&message)?;
        client.read_exact(&mut back)?;
        latency_us.saturating_record(sent.elapsed().as_micros() as u64);
        count += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    if back != message {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            "the echo differs from the message",
        ));
    }
    Ok((latency_us, count, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_floor_counts_round_trips() {
        let row = ping_floor(1024, Duration::from_millis(50)).unwrap();
        assert!(row.records > 0);
        assert_eq!(row.batches, row.records);
        assert!(row.csv_line().starts_with("ping-floor,max,"));
        assert!(row.p50_us <= row.p99_us && row.p99_us <= row.max_us);
    }
}
