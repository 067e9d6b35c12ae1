"""confluent-kafka (bundled librdkafka) against a 3-node rafka cluster:
list_topics shows the three brokers and a controller among them; a
6-partition topic created through one broker alone gets leaders on all
three; an idempotent acks=all producer given every broker sends COUNT keyed
records spread over every partition, each acknowledged; a consumer group
(subscribe, earliest, synchronous commits) reads exactly those back and
leaves committed offsets equal to the end offsets. Prints "ok: ..." per
check, or "problem: ..." and exits 1.

usage: confluent_kafka_cluster.py ONE ALL TOPIC GROUP COUNT
"""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6
BROKERS = {1, 2, 3}
DEADLINE_S = 60.0
CALL_TIMEOUT_S = 30.0


class Failure(Exception):
    pass


def check(condition, problem):
    if not condition:
        raise Failure(problem)


def ok(what):
    print(f"ok: {what}", flush=True)


def await_value(what, probe):
    """Calls probe() every 200 ms until it returns (True, value); fails at the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            done, seen = probe()
        except KafkaException as error:
            done, seen = False, error
        if done:
            return seen
        check(time.monotonic() < deadline, f"no {what} within {DEADLINE_S:.0f} s; last seen: {seen}")
        time.sleep(0.2)


def leaders(admin, topic):
    metadata = admin.list_topics(topic, timeout=CALL_TIMEOUT_S)
    partitions = metadata.topics[topic].partitions
    return {p: partitions[p].leader for p in sorted(partitions)}


def produce(bootstrap, topic, records):
    """Sends each (partition, key, value); partition -> records acknowledged."""
    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "rafka-cluster-producer",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    })
    acked = {}
    errors = []

    def delivered(error, message):
        if error is not None:
            errors.append(f"{message.key()!r}: {error}")
        else:
            acked[message.partition()] = acked.get(message.partition(), 0) + 1

    for partition, key, value in records:
        producer.produce(topic, value=value, key=key, partition=partition, on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(DEADLINE_S)
    check(left == 0, f"{left} records unacknowledged after {DEADLINE_S:.0f} s")
    check(not errors, f"delivery errors: {errors[:5]}")
    return acked


def consume(bootstrap, topic, group, expected):
    """A group member reads until it holds every expected record and sits at every end offset."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "rafka-cluster-consumer",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    seen = {}
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + DEADLINE_S
        while True:
            for message in consumer.consume(num_messages=500, timeout=0.2):
                check(message.error() is None, f"consume error: {message.error()}")
                check(message.key() not in seen, f"key {message.key()!r} read twice")
                check(expected.get(message.key()) == message.value(),
                      f"unexpected record {message.key()!r}={message.value()!r} "
                      f"at {message.partition()}/{message.offset()}")
                seen[message.key()] = message.value()
            assignment = consumer.assignment()
            if seen:
                consumer.commit(asynchronous=False)
            if len(seen) == len(expected) and len(assignment) == PARTITIONS:
                positions = consumer.position(assignment)
                ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=CALL_TIMEOUT_S)[1]
                        for tp in assignment}
                if all(tp.offset == ends[tp.partition] for tp in positions):
                    break
            check(time.monotonic() < deadline,
                  f"read {len(seen)} of {len(expected)} records within {DEADLINE_S:.0f} s")
        committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)],
                                       timeout=CALL_TIMEOUT_S)
        return seen, {tp.partition: tp.offset for tp in committed}, ends
    finally:
        consumer.close()


def run(one, everyone, topic, group, count):
    admin = AdminClient({"bootstrap.servers": everyone})
    metadata = admin.list_topics(timeout=CALL_TIMEOUT_S)
    brokers = set(metadata.brokers)
    check(brokers == BROKERS, f"list_topics brokers {sorted(brokers)}")
    check(metadata.controller_id in BROKERS, f"list_topics controller {metadata.controller_id}")
    ok(f"list_topics: brokers {sorted(brokers)}, controller {metadata.controller_id}")

    creator = AdminClient({"bootstrap.servers": one})
    creator.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(CALL_TIMEOUT_S)
    ok(f"create_topics {topic} ({PARTITIONS} partitions) through {one} alone")

    def led():
        seen = leaders(admin, topic)
        return len(seen) == PARTITIONS and set(seen.values()) == BROKERS, seen

    ok(f"leaders {await_value('every partition led by the three brokers', led)}")

    records = [(i % PARTITIONS, f"key-{i}".encode(), f"value-{i}-{'x' * (i % 17)}".encode())
               for i in range(count)]
    acked = produce(everyone, topic, records)
    want = {p: sum(1 for r in records if r[0] == p) for p in range(PARTITIONS)}
    check(acked == want, f"acknowledged per partition {acked}, sent {want}")
    ok(f"produced {count} keyed records to every partition, all acknowledged: {dict(sorted(acked.items()))}")

    expected = {key: value for _, key, value in records}
    seen, committed, ends = consume(everyone, topic, group, expected)
    check(seen == expected, f"read {len(seen)} records, not the {count} produced")
    check(committed == ends, f"committed {committed}, end offsets {ends}")
    coordinator = admin.describe_consumer_groups([group])[group].result(CALL_TIMEOUT_S).coordinator.id
    check(coordinator in BROKERS, f"group coordinator {coordinator}")
    ok(f"group {group} (coordinator broker {coordinator}) read exactly the {count} records, "
       f"committed {committed}")


def main():
    one, everyone, topic, group, count = sys.argv[1:6]
    try:
        run(one, everyone, topic, group, int(count))
    except (Failure, KafkaException) as error:
        print(f"problem: {error}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
