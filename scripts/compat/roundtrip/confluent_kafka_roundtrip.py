"""Roundtrip with confluent-kafka (bundled librdkafka): creates the topic
with the admin API, produces the shared records with acks=all and CODEC,
consumes them back with assign from the beginning (no group), checks them.

usage: confluent_kafka_roundtrip.py BOOTSTRAP TOPIC CODEC COUNT
"""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

from roundtrip_records import PARTITIONS, check, expected_records, librdkafka_tls, report

CLIENT = "confluent-kafka"
DEADLINE_S = 60


def create_topic(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap, **librdkafka_tls()})
    futures = admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                                  operation_timeout=30, request_timeout=30)
    futures[topic].result(timeout=30)


def produce(bootstrap, topic, codec, count):
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "rafka-roundtrip-confluent",
        "compression.type": codec,
        "acks": "all",
        "linger.ms": 5,
        **librdkafka_tls(),
    })
    failures = []

    def on_delivery(error, message):
        if error is not None:
            failures.append(f"delivery to partition {message.partition()} failed: {error}")

    for partition, key, value, headers in expected_records(CLIENT, count):
        producer.produce(topic, key=key, value=value, headers=headers,
                         partition=partition, on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(DEADLINE_S)
    if remaining:
        failures.append(f"{remaining} records not acknowledged within {DEADLINE_S} s")
    return failures


def consume(bootstrap, topic, count):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "rafka-roundtrip-unused",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        **librdkafka_tls(),
    })
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    consumed = [[] for _ in range(PARTITIONS)]
    received = 0
    deadline = time.monotonic() + DEADLINE_S
    while received < count and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            raise SystemExit(f"{CLIENT}: consume error: {message.error()}")
        headers = [(key, value) for key, value in (message.headers() or [])]
        consumed[message.partition()].append(
            (message.offset(), message.key(), message.value(), headers))
        received += 1
    ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in range(PARTITIONS)]
    consumer.close()
    return consumed, ends


def main():
    bootstrap, topic, codec, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    create_topic(bootstrap, topic)
    problems = produce(bootstrap, topic, codec, count)
    if not problems:
        consumed, ends = consume(bootstrap, topic, count)
        problems = check(CLIENT, count, consumed)
        for partition, (low, high) in enumerate(ends):
            if (low, high) != (0, len(consumed[partition])):
                problems.append(f"partition {partition}: watermarks ({low}, {high})")
    sys.exit(report(CLIENT, codec, count, problems))


if __name__ == "__main__":
    main()
