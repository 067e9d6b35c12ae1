"""Sends the fixture records with confluent-kafka (bundled librdkafka).

usage: librdkafka_produce.py BOOTSTRAP TOPIC CODEC
"""

import sys

from confluent_kafka import Producer

from fixture_records import RECORD_COUNT, fixture_records


def main():
    bootstrap, topic, codec = sys.argv[1:4]
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "rafka-capture-librdkafka",
        "compression.type": codec,
        # One batch for all records: a long linger, flush() sends it.
        "linger.ms": 5000,
        "batch.size": 1000000,
        "acks": "all",
    })
    delivered = []

    def on_delivery(error, message):
        if error is not None:
            raise SystemExit(f"delivery failed: {error}")
        delivered.append(message.offset())

    for key, value, headers in fixture_records():
        producer.produce(topic, key=key, value=value, headers=headers,
                         partition=0, on_delivery=on_delivery)
    remaining = producer.flush(30)
    if remaining or len(delivered) != RECORD_COUNT:
        raise SystemExit(f"not delivered: {remaining} queued, {len(delivered)} acked")
    print(f"librdkafka: delivered offsets {delivered}")


if __name__ == "__main__":
    main()
