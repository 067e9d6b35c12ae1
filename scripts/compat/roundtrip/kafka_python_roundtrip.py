"""Roundtrip with kafka-python: creates the topic with KafkaAdminClient,
produces the shared records with acks=all and CODEC, consumes them back
with assign + seek_to_beginning (no group), checks them.

usage: kafka_python_roundtrip.py BOOTSTRAP TOPIC CODEC COUNT
"""

import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from roundtrip_records import PARTITIONS, check, expected_records, kafka_python_tls, report

CLIENT = "kafka-python"
DEADLINE_S = 60


def create_topic(bootstrap, topic):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="rafka-roundtrip-kafka-python",
                             **kafka_python_tls())
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                        timeout_ms=30000)
    admin.close()


def produce(bootstrap, topic, codec, count):
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="rafka-roundtrip-kafka-python",
        compression_type=None if codec == "none" else codec,
        acks="all",
        linger_ms=5,
        **kafka_python_tls(),
    )
    futures = [
        producer.send(topic, key=key, value=value, headers=headers, partition=partition)
        for partition, key, value, headers in expected_records(CLIENT, count)
    ]
    producer.flush(timeout=DEADLINE_S)
    failures = []
    for future in futures:
        try:
            future.get(timeout=DEADLINE_S)
        except Exception as error:  # the client raises a KafkaError subclass
            failures.append(f"delivery failed: {error!r}")
            break
    producer.close(timeout=10)
    return failures


def consume(bootstrap, topic, count):
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="rafka-roundtrip-kafka-python",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_python_tls(),
    )
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    consumed = [[] for _ in range(PARTITIONS)]
    received = 0
    deadline = time.monotonic() + DEADLINE_S
    while received < count and time.monotonic() < deadline:
        for tp, messages in consumer.poll(timeout_ms=1000).items():
            for message in messages:
                headers = [(key, value) for key, value in message.headers]
                consumed[tp.partition].append((message.offset, message.key, message.value, headers))
                received += 1
    beginnings = consumer.beginning_offsets(partitions)
    ends = consumer.end_offsets(partitions)
    consumer.close()
    return consumed, [(beginnings[tp], ends[tp]) for tp in partitions]


def main():
    bootstrap, topic, codec, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    create_topic(bootstrap, topic)
    problems = produce(bootstrap, topic, codec, count)
    if not problems:
        consumed, ends = consume(bootstrap, topic, count)
        problems = check(CLIENT, count, consumed)
        for partition, (low, high) in enumerate(ends):
            if (low, high) != (0, len(consumed[partition])):
                problems.append(f"partition {partition}: offsets ({low}, {high})")
    sys.exit(report(CLIENT, codec, count, problems))


if __name__ == "__main__":
    main()
