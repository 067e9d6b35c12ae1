"""Produce and consume throughput over PLAINTEXT and SSL listeners of one
broker, side by side, with confluent-kafka (librdkafka) in a tight loop.

usage: tls_bench.py PLAIN_ADDR SSL_ADDR CA_FILE [RECORDS] [RECORD_BYTES]
Prints one line per listener and direction: MB/s and records/s.
"""

import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6


def produce(config, topic, records, value):
    producer = Producer({**config, "acks": "all", "linger.ms": 5, "batch.size": 1_000_000,
                         "queue.buffering.max.messages": 1_000_000})
    start = time.monotonic()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, value=value, partition=i % PARTITIONS)
                break
            except BufferError:
                producer.poll(0.01)
    remaining = producer.flush(120)
    if remaining:
        raise SystemExit(f"{remaining} records not acknowledged")
    return time.monotonic() - start


def consume(config, topic, records):
    consumer = Consumer({**config, "group.id": "tls-bench-unused", "enable.auto.commit": False,
                         "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    received = 0
    start = time.monotonic()
    while received < records:
        batch = consumer.consume(10_000, 1.0)
        for message in batch:
            if message.error():
                raise SystemExit(f"consume error: {message.error()}")
        received += len(batch)
    elapsed = time.monotonic() - start
    consumer.close()
    return elapsed


def main():
    plain, ssl, ca = sys.argv[1], sys.argv[2], sys.argv[3]
    records = int(sys.argv[4]) if len(sys.argv) > 4 else 300_000
    record_bytes = int(sys.argv[5]) if len(sys.argv) > 5 else 1024
    value = b"v" * record_bytes
    listeners = [
        ("PLAINTEXT", {"bootstrap.servers": plain}),
        ("SSL", {"bootstrap.servers": ssl, "security.protocol": "SSL", "ssl.ca.location": ca}),
    ]
    megabytes = records * record_bytes / 1e6
    for name, config in listeners:
        topic = f"tls-bench-{name.lower()}-{int(time.time())}"
        admin = AdminClient(config)
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
        produced = produce(config, topic, records, value)
        consumed = consume(config, topic, records)
        for direction, seconds in (("produce", produced), ("consume", consumed)):
            print(f"{name:9} {direction}: {megabytes / seconds:8.1f} MB/s {records / seconds:10.0f} records/s "
                  f"({records} x {record_bytes} B in {seconds:.2f} s)")


if __name__ == "__main__":
    main()
