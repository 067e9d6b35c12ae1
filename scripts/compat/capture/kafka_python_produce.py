"""Sends the fixture records with kafka-python.

usage: kafka_python_produce.py BOOTSTRAP TOPIC CODEC
"""

import sys

from kafka import KafkaProducer

from fixture_records import RECORD_COUNT, fixture_records


def main():
    bootstrap, topic, codec = sys.argv[1:4]
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="rafka-capture-kafka-python",
        compression_type=None if codec == "none" else codec,
        # One batch for all records: a long linger, flush() sends it.
        linger_ms=5000,
        batch_size=1000000,
        acks="all",
    )
    futures = [
        producer.send(topic, key=key, value=value, headers=headers, partition=0)
        for key, value, headers in fixture_records()
    ]
    producer.flush(timeout=30)
    offsets = [future.get(timeout=30).offset for future in futures]
    producer.close(timeout=10)
    if len(offsets) != RECORD_COUNT:
        raise SystemExit(f"only {len(offsets)} records acknowledged")
    print(f"kafka-python: delivered offsets {offsets}")


if __name__ == "__main__":
    main()
