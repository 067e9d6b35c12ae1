"""confluent-kafka's AdminClient against a running broker: CreatePartitions
(grow, refused decrease, validate_only, unknown topic) and DeleteRecords
(low watermark moves, refused past the end), each checked by its effect.
Prints one "admin confluent-kafka: ..." verdict line; exits non-zero on the
first mismatch.

usage: confluent_kafka_admin.py BOOTSTRAP
"""

import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

TIMEOUT_S = 30


def fail(message):
    print(f"admin confluent-kafka: FAIL {message}")
    sys.exit(1)


def error_code(future):
    try:
        future.result(TIMEOUT_S)
        return KafkaError.NO_ERROR
    except KafkaException as error:
        return error.args[0].code()


def partition_count(admin, topic):
    metadata = admin.list_topics(topic, timeout=TIMEOUT_S)
    return len(metadata.topics[topic].partitions)


def main():
    bootstrap = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"admin-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(TIMEOUT_S)

    # CreatePartitions: validate_only changes nothing, then grow 2 -> 5.
    only = admin.create_partitions([NewPartitions(topic, 4)], validate_only=True)
    if error_code(only[topic]) != KafkaError.NO_ERROR:
        fail("validate_only growth refused")
    if partition_count(admin, topic) != 2:
        fail("validate_only changed the partition count")
    grown = admin.create_partitions([NewPartitions(topic, 5)])
    if error_code(grown[topic]) != KafkaError.NO_ERROR:
        fail("growth to 5 refused")
    if partition_count(admin, topic) != 5:
        fail(f"{partition_count(admin, topic)} partitions after growing to 5")
    shrink = admin.create_partitions([NewPartitions(topic, 3)])
    if error_code(shrink[topic]) != KafkaError.INVALID_PARTITIONS:
        fail("a decrease was not INVALID_PARTITIONS")
    missing = admin.create_partitions([NewPartitions(topic + "-absent", 3)])
    if error_code(missing[topic + "-absent"]) != KafkaError.UNKNOWN_TOPIC_OR_PART:
        fail("an unknown topic was not UNKNOWN_TOPIC_OR_PART")

    # Records in a new partition, then DeleteRecords below offset 6.
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(10):
        producer.produce(topic, value=f"v{i}".encode(), partition=4)
    if producer.flush(TIMEOUT_S) != 0:
        fail("records to the new partition not delivered")
    deleted = admin.delete_records([TopicPartition(topic, 4, 6)])
    low = list(deleted.values())[0].result(TIMEOUT_S)
    if low.low_watermark != 6:
        fail(f"DeleteRecords answered low watermark {low.low_watermark}, expected 6")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
    watermarks = consumer.get_watermark_offsets(TopicPartition(topic, 4), timeout=TIMEOUT_S)
    if watermarks != (6, 10):
        fail(f"watermarks {watermarks} after DeleteRecords, expected (6, 10)")
    past = admin.delete_records([TopicPartition(topic, 4, 11)])
    if error_code(list(past.values())[0]) != KafkaError.OFFSET_OUT_OF_RANGE:
        fail("DeleteRecords past the end was not OFFSET_OUT_OF_RANGE")
    consumer.close()
    print("admin confluent-kafka: PASS create_partitions 2->5 (validate_only kept 2, "
          "decrease and unknown topic refused), delete_records low watermark 6 of 10")


if __name__ == "__main__":
    main()
