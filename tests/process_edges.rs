//! The broker process's edges: one broker per address and per data dir
//! (a second one exits non-zero naming what is taken, and the first goes
//! on serving), a data dir freed by the kernel when its broker is killed,
//! the open-files limit raised to the hard limit at start, and a clean
//! stop whatever the log level.

mod support;

use rafka_testkit::process::{open_files_limit, StartFailure};
use rafka_testkit::BrokerProcess;
use support::client;
use support::rafka;

const TOPIC: &str = "edges";

/// A start that must fail: its failure, or a panic naming the broker that
/// started anyway.
fn refused(start: Result<BrokerProcess, StartFailure>, what: &str) -> StartFailure {
    match start {
        Ok(broker) => panic!(
            "a second broker started on {what}: listening on {}",
            broker.addr
        ),
        Err(failure) => failure,
    }
}

/// Creates the topic, produces 20 records per partition and reads them back.
fn serves(broker: &BrokerProcess) {
    let bootstrap = broker.bootstrap();
    client::create_topic(&bootstrap, TOPIC, 2);
    let expected = client::records(2, 20, client::now_ms());
    let offsets = client::produce(&client::producer(&bootstrap, &[]), TOPIC, &expected);
    client::assert_offsets_in_send_order(TOPIC, &offsets);
    client::assert_topic(&bootstrap, TOPIC, &expected);
}

#[test]
fn a_second_broker_on_a_taken_address_exits_naming_it() {
    let first = BrokerProcess::start(rafka(2));
    let failure = refused(
        BrokerProcess::try_start(rafka(2).listen(first.addr)),
        "the same address",
    );
    assert_eq!(
        failure.status.and_then(|status| status.code()),
        Some(1),
        "exit status; log:\n{}",
        failure.log
    );
    let named = format!("the listen address {} is in use", first.addr);
    assert!(
        failure.log.contains(&named),
        "{named:?} in:\n{}",
        failure.log
    );
    // Every connection reaches the first broker and its data dir.
    serves(&first);
}

#[test]
fn a_second_broker_on_a_data_dir_in_use_exits_naming_it() {
    let first = BrokerProcess::start(rafka(2));
    let meta_before = std::fs::read(first.data_dir().join("meta.properties")).expect("meta");
    let failure = refused(
        BrokerProcess::try_start(rafka(2).data_dir(first.data_dir())),
        "the same data dir",
    );
    assert_eq!(
        failure.status.and_then(|status| status.code()),
        Some(1),
        "exit status; log:\n{}",
        failure.log
    );
    let named = format!("data dir {} is in use", first.data_dir().display());
    assert!(
        failure.log.contains(&named),
        "{named:?} in:\n{}",
        failure.log
    );
    let meta_after = std::fs::read(first.data_dir().join("meta.properties")).expect("meta");
    assert_eq!(meta_after, meta_before, "the refused broker wrote nothing");
    serves(&first);
}

#[test]
fn a_killed_brokers_data_dir_is_free_for_the_next_one() {
    let mut first = BrokerProcess::start(rafka(2));
    let bootstrap = first.bootstrap();
    client::create_topic(&bootstrap, TOPIC, 2);
    let expected = client::records(2, 20, client::now_ms());
    client::produce(&client::producer(&bootstrap, &[]), TOPIC, &expected);
    first.kill9();
    // Another process, not a restart of the same one: only the kernel can
    // have released the lock.
    let second = BrokerProcess::start(rafka(2).data_dir(first.data_dir()));
    assert_eq!(second.startup.recovered_partitions, 2);
    client::assert_topic(&second.bootstrap(), TOPIC, &expected);
}

#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_limit() {
    let (_, hard) = open_files_limit("self");
    let soft = (hard / 2).min(1024);
    let broker = BrokerProcess::start(rafka(1).open_files(soft, hard));
    let pid = broker.pid().expect("running").to_string();
    let want = match hard {
        u64::MAX => std::fs::read_to_string("/proc/sys/fs/nr_open")
            .expect("fs.nr_open")
            .trim()
            .parse()
            .expect("fs.nr_open is a number"),
        hard => hard,
    };
    assert_eq!(open_files_limit(&pid), (want, hard), "started with {soft}");
    let logged = format!("open_files_limit={want}");
    assert!(broker.log_tail().contains(&logged), "{logged:?} logged");
}

#[test]
fn a_clean_stop_with_debug_logging_exits_zero() {
    // Every file the shards held used to be dropped by a thread-local's
    // destructor after the executor ended, where glommio's debug line
    // about it aborted the process (SIGABRT instead of exit 0).
    let mut broker = BrokerProcess::start(rafka(2).log_filter("debug"));
    serves(&broker);
    broker.stop();
    broker.restart();
    // The topic's 2 partitions and __consumer_offsets' 50 (the consumer
    // looked up its group coordinator).
    assert_eq!(broker.startup.recovered_partitions, 52);
    broker.stop();
}
