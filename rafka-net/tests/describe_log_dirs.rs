//! DescribeLogDirs end to end on a real broker core (1, 2 and 4 shards),
//! at its lowest (v1) and highest (v4, flexible) versions: partition sizes
//! in bytes as the segment files hold them, the filesystem's size, and
//! further log dirs (empty, or unreadable).

use std::path::{Path, PathBuf};

use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use rafka_shard::disk::measure;
use rafka_testkit::proto::topic_name;
use rafka_testkit::records::value_batch;
use rafka_testkit::{Broker, TestBroker, SHARD_MATRIX};

const NONE: i16 = 0;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// (topic, [(partition, size, offset lag, is future)]) of one dir.
type Listed = Vec<(String, Vec<(i32, i64, i64, bool)>)>;

fn request(topics: Option<&[(&str, &[i32])]>) -> DescribeLogDirsRequest {
    let topics = topics.map(|topics| {
        topics
            .iter()
            .map(|&(name, partitions)| {
                DescribableLogDirTopic::default()
                    .with_topic(topic_name(name))
                    .with_partitions(partitions.to_vec())
            })
            .collect()
    });
    DescribeLogDirsRequest::default().with_topics(topics)
}

fn listed(response: &DescribeLogDirsResponse, dir: usize) -> Listed {
    response.results[dir]
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    (
                        p.partition_index,
                        p.partition_size,
                        p.offset_lag,
                        p.is_future_key,
                    )
                })
                .collect();
            (t.name.to_string(), partitions)
        })
        .collect()
}

/// Bytes of the `.log` files in a partition's directory.
fn segment_bytes(dir: &Path) -> i64 {
    let entries = std::fs::read_dir(dir).expect("partition dir");
    entries
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .map(|path| std::fs::metadata(path).expect("segment").len() as i64)
        .sum()
}

async fn sizes_scenario(broker: Broker) {
    broker.create_topic_id("sized", 2, &[]).await;
    broker.create_topic_id("other", 1, &[]).await;
    let batches = [value_batch("a"), value_batch("bb"), value_batch("ccc")];
    let batches_bytes: usize = batches.iter().map(|b| b.len()).sum();
    for batch in batches {
        broker.produce("sized", 0, batch).await;
    }
    let other = value_batch("other");
    broker.produce("other", 0, other.clone()).await;
    let data_dir = broker
        .partition_dir("sized", 0)
        .parent()
        .unwrap()
        .to_path_buf();
    let sized_bytes = segment_bytes(&broker.partition_dir("sized", 0));
    assert_eq!(sized_bytes, batches_bytes as i64);

    for version in [1, 4] {
        let response: DescribeLogDirsResponse = broker.call(version, &request(None)).await;
        assert_eq!(response.error_code, NONE);
        assert_eq!(response.results.len(), 1);
        let dir = &response.results[0];
        assert_eq!(dir.error_code, NONE);
        assert_eq!(dir.log_dir.as_str(), data_dir.display().to_string());
        assert_eq!(
            listed(&response, 0),
            vec![
                ("other".to_string(), vec![(0, other.len() as i64, 0, false)]),
                (
                    "sized".to_string(),
                    vec![(0, sized_bytes, 0, false), (1, 0, 0, false)]
                ),
            ],
            "v{version}"
        );
        if version == 4 {
            let space = measure(&data_dir).expect("statvfs");
            assert_eq!(dir.total_bytes, space.total_bytes as i64);
            assert!(dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
        } else {
            // Not on the wire before v4.
            assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1));
        }
    }

    // Named partitions: unknown ones (and topics) are just absent, each
    // partition once.
    let asked: &[(&str, &[i32])] = &[("sized", &[1, 7, 1]), ("absent", &[0]), ("other", &[])];
    let response: DescribeLogDirsResponse = broker.call(4, &request(Some(asked))).await;
    assert_eq!(
        listed(&response, 0),
        vec![("sized".to_string(), vec![(1, 0, 0, false)])]
    );
    let response: DescribeLogDirsResponse = broker.call(2, &request(Some(&[]))).await;
    assert_eq!(listed(&response, 0), vec![]);
}

#[test]
fn describe_log_dirs_lists_partition_sizes() {
    TestBroker::builder().run_matrix(&SHARD_MATRIX, sizes_scenario);
}

#[test]
fn further_log_dirs_are_listed_empty_or_offline() {
    let spare = tempfile::tempdir().expect("tempdir");
    let missing = spare.path().join("missing");
    let dirs: Vec<PathBuf> = vec![
        PathBuf::from("replaced-by-the-data-dir"),
        spare.path().to_path_buf(),
        missing.clone(),
    ];
    let broker = TestBroker::builder().config(move |c| c.log_dirs = dirs);
    let spare_dir = spare.path().display().to_string();
    broker.run(|broker| async move {
        broker.create_topic_id("kept", 1, &[]).await;
        let response: DescribeLogDirsResponse = broker.call(4, &request(None)).await;
        let dirs: Vec<(String, i16, usize)> = response
            .results
            .iter()
            .map(|r| (r.log_dir.to_string(), r.error_code, r.topics.len()))
            .collect();
        let data_dir = broker
            .partition_dir("kept", 0)
            .parent()
            .unwrap()
            .display()
            .to_string();
        assert_eq!(
            dirs,
            vec![
                (data_dir, NONE, 1),
                (spare_dir, NONE, 0),
                (missing.display().to_string(), KAFKA_STORAGE_ERROR, 0),
            ]
        );
        assert!(response.results[1].total_bytes > 0);
        assert_eq!(response.results[2].total_bytes, -1);
    });
}
