//! The broker under a descriptor limit far below its partition count: a
//! topic of 2,000 partitions on a process limited to 1,024 descriptors is
//! created whole, serves every partition, holds a bounded number of
//! descriptors while idle, and starts again after kill -9. (Before the
//! open-file budget it answered NONE with half the partitions unopened and
//! then could not start at all: "Too many open files".)
//!
//! This file holds one test on purpose: it lowers the descriptor limit of
//! its own process, which the broker child inherits.

mod support;

use std::fs;

use rafka_testkit::BrokerProcess;
use support::client;
use support::rafka;

const LIMIT: u64 = 1024;
const PARTITIONS: i32 = 2000;
const TOPIC: &str = "wide";
const OTHER: &str = "other";

fn limit_own_descriptors(limit: u64) {
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit reads the struct we own.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) };
    assert_eq!(set, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

fn open_descriptors(broker: &BrokerProcess) -> usize {
    let pid = broker.pid().expect("running");
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list the broker's descriptors")
        .count()
}

/// The records `expected` holds, consumed from every partition of `topic`.
fn assert_partitions(bootstrap: &str, topic: &str, expected: &[Vec<client::Record>]) {
    client::assert_topic(bootstrap, topic, expected);
}

#[test]
fn more_partitions_than_descriptors_are_served_and_survive_kill9() {
    limit_own_descriptors(LIMIT);
    let mut broker = BrokerProcess::start(rafka(2));
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, PARTITIONS);
    client::create_topic(&bootstrap, OTHER, 1);
    assert_eq!(client::list_topics(&bootstrap).get(TOPIC), Some(&2000));

    let base_ms = client::now_ms();
    let mut expected: Vec<Vec<client::Record>> = vec![Vec::new(); PARTITIONS as usize];
    for partition in [0, 999, 1000, 1998, 1999] {
        expected[partition as usize] = (0..3)
            .map(|index| client::record(partition, index, base_ms))
            .collect();
    }
    let other = vec![(0..5).map(|i| client::record(0, i, base_ms)).collect()];
    let producer = client::producer(&bootstrap, &[]);
    let offsets = client::produce(&producer, TOPIC, &expected);
    assert_eq!(offsets[1999], vec![0, 1, 2]);
    assert_eq!(
        client::produce(&producer, OTHER, &other)[0],
        vec![0, 1, 2, 3, 4]
    );
    drop(producer);
    assert_eq!(client::watermarks(&bootstrap, TOPIC, 1999), (0, 3));
    assert_eq!(client::watermarks(&bootstrap, TOPIC, 1), (0, 0));
    assert_partitions(&bootstrap, OTHER, &other);

    // Idle, the broker holds its budget (a quarter of the limit) and a few
    // descriptors of its own, not one per partition.
    let held = open_descriptors(&broker);
    assert!(
        held < (LIMIT / 2) as usize,
        "{held} descriptors open for {PARTITIONS} partitions"
    );

    broker.kill9();
    broker.restart();
    // Both topics and the 50 partitions of __consumer_offsets (the
    // consumers above looked up their group coordinator).
    assert_eq!(broker.startup.recovered_partitions, 2051);
    let bootstrap = broker.bootstrap();
    assert_eq!(client::watermarks(&bootstrap, TOPIC, 1999), (0, 3));
    assert_partitions(&bootstrap, TOPIC, &expected);
    assert_partitions(&bootstrap, OTHER, &other);
    // A clean stop of 2,051 partitions (the consumers' fetches end with
    // their connections, nothing is left to drain).
    broker.stop();
}
