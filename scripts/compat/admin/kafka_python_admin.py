"""kafka-python's KafkaAdminClient against a running broker, each call
checked by its effect: create_topics (with a config override), list_topics
and describe_topics (partition count, leader 0, topic id), create_partitions
(validate_only, grow, a refused decrease), delete_records (when the
installed kafka-python has it; then list_partition_offsets), describe_configs
(the topic with the "modified" and "all" filters; broker 0), alter_configs
(IncrementalAlterConfigs, then the legacy AlterConfigs, which REPLACES every
override of the resource: kafka-python 3 first re-sends the other modified
keys, so nothing else is lost, and the broker's own replace is checked with
a bare AlterConfigs), reset_configs, an invalid value, describe_cluster and
delete_topics. Prints one "admin kafka-python: ..." verdict line; exits
non-zero on the first mismatch.

usage: kafka_python_admin.py BOOTSTRAP
"""

import sys
import time
import traceback
import uuid

import kafka
import kafka.errors as Errors
from kafka import KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

TIMEOUT_S = 30
DEADLINE_S = 30


def fail(message):
    print(f"admin kafka-python: FAIL {message}")
    sys.exit(1)


def raises(error_type, call, what):
    try:
        call()
    except error_type:
        return
    except Exception as error:  # noqa: BLE001 - reported as the mismatch
        fail(f"{what} raised {type(error).__name__}: {error}, expected {error_type.__name__}")
    fail(f"{what} succeeded, expected {error_type.__name__}")


def describe_topic(admin, topic):
    described = admin.describe_topics([topic])
    if len(described) != 1 or described[0]["name"] != topic:
        fail(f"describe_topics([{topic}]) answered {[t.get('name') for t in described]}")
    if described[0]["error_code"] != 0:
        fail(f"describe_topics: error code {described[0]['error_code']}")
    return described[0]


def partition_count(admin, topic):
    return len(describe_topic(admin, topic)["partitions"])


def topic_configs(admin, topic, config_filter):
    resource = ConfigResource(ConfigResourceType.TOPIC, topic)
    return admin.describe_configs([resource], config_filter=config_filter)["topic"][topic]


def expect_config(configs, name, value, source, what):
    entry = configs.get(name)
    if entry is None:
        fail(f"{what}: {name} missing from describe_configs ({sorted(configs)})")
    if entry["value"] != value or entry["config_source"] != source:
        fail(f"{what}: {name}={entry['value']!r} ({entry['config_source']}), expected {value!r} ({source})")
    return entry


def expect_modified(admin, topic, expected, what):
    """The topic's overrides (describe_configs' default "modified" filter) are exactly `expected`."""
    modified = {name: entry["value"] for name, entry in topic_configs(admin, topic, "modified").items()}
    if modified != expected:
        fail(f"{what}: overrides {modified}, expected {expected}")
    for name in expected:
        entry = topic_configs(admin, topic, "all")[name]
        if entry["config_source"] != "DYNAMIC_TOPIC_CONFIG":
            fail(f"{what}: {name} source {entry['config_source']}, expected DYNAMIC_TOPIC_CONFIG")


def alter(admin, topic, configs, **options):
    """alter_configs of one topic; its per-resource result ("OK" or the error's text)."""
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs)
    return admin.alter_configs([resource], **options)["topic"][topic]


def check_configs(admin, topic):
    override = {"max.message.bytes": "2000000"}
    expect_modified(admin, topic, override, "created override")
    configs = topic_configs(admin, topic, "all")
    expect_config(configs, "max.message.bytes", "2000000", "DYNAMIC_TOPIC_CONFIG", "created override")
    expect_config(configs, "segment.bytes", "1073741824", "DEFAULT_CONFIG", "topic default")
    expect_config(configs, "retention.ms", "604800000", "DEFAULT_CONFIG", "topic default")
    if configs["max.message.bytes"]["read_only"]:
        fail("max.message.bytes reported read-only")

    resource = ConfigResource(ConfigResourceType.BROKER, "0")
    broker = admin.describe_configs([resource], config_filter="all")["broker"]["0"]
    entry = expect_config(broker, "num.partitions", "1", "DEFAULT_CONFIG", "broker 0")
    if not entry["read_only"]:
        fail("broker 0: num.partitions not read-only")
    entry = expect_config(broker, "log.retention.ms", "604800000", "DEFAULT_CONFIG", "broker 0")
    if entry["read_only"]:
        fail("broker 0: log.retention.ms (dynamic) reported read-only")

    # alter_configs: IncrementalAlterConfigs by default (the broker offers it).
    result = alter(admin, topic, {"retention.ms": "3600000"})
    if result != "OK":
        fail(f"alter_configs (incremental) SET retention.ms: {result}")
    expect_modified(admin, topic, {**override, "retention.ms": "3600000"}, "after an incremental SET")

    # The legacy AlterConfigs (incremental=False): kafka-python re-sends every
    # other modified key with it, so the earlier overrides stay.
    result = alter(admin, topic, {"segment.ms": "600000"}, incremental=False)
    if result != "OK":
        fail(f"alter_configs (legacy) SET segment.ms: {result}")
    expect_modified(admin, topic, {**override, "retention.ms": "3600000", "segment.ms": "600000"},
                    "after a legacy AlterConfigs")

    # A bare AlterConfigs request (what kafka-python 2 sent): the broker
    # replaces the resource's overrides with exactly the request's. Sent
    # through kafka-python 3's internal sender (the one alter_configs calls
    # once it has filled in the other keys): no public call sends it bare.
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "1800000"})
    results = admin._manager.run(admin._send_alter_configs_requests, [resource], False, False)
    if results["topic"][topic] != "OK":
        fail(f"bare AlterConfigs: {results['topic'][topic]}")
    expect_modified(admin, topic, {"retention.ms": "1800000"}, "after a bare AlterConfigs (replace)")

    # reset_configs (incremental DELETE), then an invalid value and
    # validate_only, neither of which changes anything.
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, ["retention.ms"])
    result = admin.reset_configs([resource])["topic"][topic]
    if result != "OK":
        fail(f"reset_configs retention.ms: {result}")
    expect_modified(admin, topic, {}, "after reset_configs")
    for incremental in (True, False):
        result = alter(admin, topic, {"retention.ms": "soon"}, incremental=incremental)
        if not result.startswith("[Error 40] InvalidConfigurationError"):
            fail(f"alter_configs retention.ms=soon (incremental={incremental}): {result!r}, "
                 "expected InvalidConfigurationError")
    result = alter(admin, topic, {"retention.ms": "60000"}, validate_only=True)
    if result != "OK":
        fail(f"alter_configs validate_only: {result}")
    expect_modified(admin, topic, {}, "after an invalid value and validate_only")


def main():
    bootstrap = sys.argv[1]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rafka-kafka-python-admin",
                             request_timeout_ms=TIMEOUT_S * 1000)
    topic = f"admin-kp-{uuid.uuid4().hex[:8]}"
    spec = {"num_partitions": 2, "replication_factor": 1, "configs": {"max.message.bytes": "2000000"}}
    admin.create_topics({topic: spec})

    if topic not in admin.list_topics():
        fail("list_topics lacks the created topic")
    described = describe_topic(admin, topic)
    partitions = sorted(described["partitions"], key=lambda p: p["partition_index"])
    if [p["partition_index"] for p in partitions] != [0, 1]:
        fail(f"describe_topics: partitions {[p['partition_index'] for p in partitions]}, expected [0, 1]")
    if any(p["leader_id"] != 0 for p in partitions):
        fail(f"describe_topics: leaders {[p['leader_id'] for p in partitions]}, expected 0")
    topic_id = described.get("topic_id")
    if topic_id in (None, uuid.UUID(int=0)):
        fail(f"describe_topics: topic id {topic_id!r}")

    # create_partitions: validate_only, grow 2 -> 4, a decrease refused.
    admin.create_partitions({topic: 3}, validate_only=True)
    if partition_count(admin, topic) != 2:
        fail("create_partitions validate_only changed the partition count")
    admin.create_partitions({topic: 4})
    if partition_count(admin, topic) != 4:
        fail(f"{partition_count(admin, topic)} partitions after growing to 4")
    raises(Errors.InvalidPartitionsError, lambda: admin.create_partitions({topic: 1}),
           "create_partitions decrease to 1")

    # 10 records to the new partition 3; delete_records below offset 4.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(10):
        producer.send(topic, value=f"v{i}".encode(), partition=3).get(TIMEOUT_S)
    producer.close()
    deleted_note = "delete_records not in this kafka-python"
    if hasattr(admin, "delete_records"):
        p3 = TopicPartition(topic, 3)
        result = admin.delete_records({p3: 4})
        if result[p3]["low_watermark"] != 4:
            fail(f"delete_records low watermark {result[p3]['low_watermark']}, expected 4")
        if hasattr(admin, "list_partition_offsets"):
            from kafka.admin import OffsetSpec  # kafka-python 3
            earliest = admin.list_partition_offsets({p3: OffsetSpec.EARLIEST})[p3].offset
            latest = admin.list_partition_offsets({p3: OffsetSpec.LATEST})[p3].offset
            if (earliest, latest) != (4, 10):
                fail(f"offsets after delete_records ({earliest}, {latest}), expected (4, 10)")
        deleted_note = "delete_records low watermark 4 of 10"

    check_configs(admin, topic)

    cluster = admin.describe_cluster()
    if not cluster.get("cluster_id"):
        fail(f"describe_cluster: cluster id {cluster.get('cluster_id')!r}")
    brokers = [b["broker_id"] for b in cluster["brokers"]]
    if brokers != [0] or cluster.get("controller_id") != 0:
        fail(f"describe_cluster: brokers {brokers} controller {cluster.get('controller_id')}, expected [0], 0")

    admin.delete_topics([topic])
    deadline = time.monotonic() + DEADLINE_S
    while topic in admin.list_topics():
        if time.monotonic() > deadline:
            fail("delete_topics: the topic is still listed")
        time.sleep(0.1)
    admin.close()
    print(f"admin kafka-python: PASS ({kafka.__version__}) create_topics, list/describe_topics "
          f"(leader 0, topic id), create_partitions 2->4 (validate_only kept 2, decrease refused), "
          f"{deleted_note}, describe_configs (topic modified/all, broker 0), alter_configs "
          f"(incremental, legacy keeps overrides, bare AlterConfigs replaces them), reset_configs, "
          f"invalid value refused, validate_only, describe_cluster, delete_topics")


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - any client error is this run's verdict
        traceback.print_exc()
        fail(f"{type(error).__name__}: {error}")
