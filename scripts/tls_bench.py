"""Produce and consume throughput over the listeners of one broker, side by
side, with confluent-kafka (librdkafka) in a tight loop.

usage: tls_bench.py CA_FILE RECORDS RECORD_BYTES ROUNDS PROTOCOL=ADDR...
PROTOCOL is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; the SASL ones log
in with SCRAM-SHA-512 as the user bench (password bench-secret).
Each round measures every listener once (each round starts one listener
later, so none always runs first); a line per run, then per listener and
direction the median over the rounds with the lowest and highest.
"""

import statistics
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
    """Seconds per record of the data path: timed from the first batch in
    hand to the last, so librdkafka's start (its offset lookup waits on
    internal timers for 0.5 to 1.5 s, sending nothing) is not counted.
    Returns (records timed, seconds)."""
    consumer = Consumer({**config, "group.id": "tls-bench-unused", "enable.auto.commit": False,
                         "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760,
                         # A 50 MB fetch overfills librdkafka's 64 MB local
                         # queue, after which it waits this long (1000 ms by
                         # default) before fetching again: a one-second stall
                         # in some runs that measured the client, not the broker.
                         "fetch.queue.backoff.ms": 5})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    received = 0
    start = None
    timed_from = 0
    while received < records:
        # Never ask for more than is left: consume() waits out its whole
        # timeout for a batch it cannot fill.
        batch = consumer.consume(min(10_000, records - received), 1.0)
        for message in batch:
            if message.error():
                raise SystemExit(f"consume error: {message.error()}")
        received += len(batch)
        if start is None and batch:
            start = time.monotonic()
            timed_from = received
    elapsed = time.monotonic() - start
    consumer.close()
    return records - timed_from, elapsed


def client_config(protocol, addr, ca):
    config = {"bootstrap.servers": addr, "security.protocol": protocol}
    if protocol.endswith("SSL"):
        config["ssl.ca.location"] = ca
    if protocol.startswith("SASL"):
        config.update({"sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "bench",
                       "sasl.password": "bench-secret"})
    return config


def main():
    ca, records, record_bytes, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    listeners = [spec.split("=", 1) for spec in sys.argv[5:]]
    value = b"v" * record_bytes
    rates = {}
    for round_no in range(rounds):
        shift = round_no % len(listeners)
        for name, addr in listeners[shift:] + listeners[:shift]:
            config = client_config(name, addr, ca)
            topic = f"tls-bench-{name.lower()}-{round_no}-{int(time.time())}"
            admin = AdminClient(config)
            admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(30)
            produced = (records, produce(config, topic, records, value))
            consumed = consume(config, topic, records)
            for direction, (count, seconds) in (("produce", produced), ("consume", consumed)):
                megabytes = count * record_bytes / 1e6
                rates.setdefault((name, direction), []).append(megabytes / seconds)
                print(f"round {round_no + 1} {name:14} {direction}: {megabytes / seconds:8.1f} MB/s "
                      f"{count / seconds:10.0f} records/s ({count} x {record_bytes} B in {seconds:.2f} s)",
                      flush=True)
    for name, _ in listeners:
        for direction in ("produce", "consume"):
            runs = rates[(name, direction)]
            print(f"{name:14} {direction}: median {statistics.median(runs):6.1f} MB/s "
                  f"(min {min(runs):.1f}, max {max(runs):.1f}, {len(runs)} rounds)", flush=True)


if __name__ == "__main__":
    main()
