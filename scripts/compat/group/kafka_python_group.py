"""Consumer group with kafka-python: two members of one group share a
4-partition topic, consume COUNT records and commit; together they must see
every record exactly once and leave committed offsets equal to the end
offsets. Then a third member of the same group resumes from those offsets:
of RESUME_COUNT new records it gets exactly those, nothing old.

The records are produced once both members hold their final assignment
(two partitions each), so a rebalance cannot hand a partition over between
a fetch and its commit: "exactly once" then checks the broker, not the
application's commit timing.

usage: kafka_python_group.py BOOTSTRAP TOPIC GROUP COUNT
"""

import sys
import threading

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

CLIENT = "kafka-python"
PARTITIONS = 4
RESUME_COUNT = 8
DEADLINE_S = 60


# Every member notifies this after each poll, so the main thread waits for
# a state instead of sleeping between looks.
CHANGED = threading.Condition()


class Member(threading.Thread):
    """One consumer on its own thread: polls, records, commits synchronously
    after every non-empty poll, until told to stop."""

    def __init__(self, bootstrap, topic, group, name):
        super().__init__(name=name, daemon=True)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=f"rafka-group-{name}",
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self.consumer.subscribe([topic])
        self.records = []
        self.assignment = set()
        self.error = None
        self.stop = threading.Event()

    def run(self):
        try:
            while not self.stop.is_set():
                batches = self.consumer.poll(timeout_ms=200)
                got = [m for messages in batches.values() for m in messages]
                if got:
                    self.consumer.commit()
                assignment = {tp.partition for tp in self.consumer.assignment()}
                with CHANGED:
                    self.records.extend((m.partition, m.offset, m.value) for m in got)
                    self.assignment = assignment
                    CHANGED.notify_all()
        except Exception as error:  # reported by the main thread
            with CHANGED:
                self.error = error
                CHANGED.notify_all()
        finally:
            self.consumer.close()

    def snapshot(self):
        with CHANGED:
            return list(self.records), set(self.assignment)


def wait_until(what, condition, members):
    """Waits (bounded) until condition() holds or a member failed."""
    failed = lambda: [m for m in members if m.error is not None]
    with CHANGED:
        CHANGED.wait_for(lambda: failed() or condition(), timeout=DEADLINE_S)
        for member in failed():
            raise RuntimeError(f"{member.name}: {member.error!r}")
        if not condition():
            raise RuntimeError(f"no {what} within {DEADLINE_S} s")


def produce(bootstrap, topic, values):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [producer.send(topic, value=value, partition=i % PARTITIONS)
               for i, value in enumerate(values)]
    producer.flush(timeout=DEADLINE_S)
    for future in futures:
        future.get(timeout=DEADLINE_S)
    producer.close(timeout=10)


def committed_and_end(bootstrap, topic, group):
    """(committed offset, end offset) per partition, read without joining."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    ends = consumer.end_offsets(partitions)
    pairs = [(consumer.committed(tp), ends[tp]) for tp in partitions]
    consumer.close(autocommit=False)
    return pairs


def two_members(bootstrap, topic, group, count, problems):
    members = [Member(bootstrap, topic, group, f"member-{i}") for i in range(2)]
    for member in members:
        member.start()
    split = lambda: [m.snapshot()[1] for m in members]
    wait_until("2+2 assignment", lambda: sorted(map(len, split())) == [2, 2]
               and set.union(*split()) == set(range(PARTITIONS)), members)
    values = [f"first-{i}".encode() for i in range(count)]
    produce(bootstrap, topic, values)
    total = lambda: sum(len(m.snapshot()[0]) for m in members)
    wait_until(f"{count} records", lambda: total() >= count, members)
    for member in members:
        member.stop.set()
        member.join(timeout=DEADLINE_S)
    got = sorted(value for m in members for (_, _, value) in m.snapshot()[0])
    if got != sorted(values):
        problems.append(f"two members consumed {len(got)} records ({len(set(got))} distinct), "
                        f"expected each of {count} once")
    for partition, (committed, end) in enumerate(committed_and_end(bootstrap, topic, group)):
        if committed != end:
            problems.append(f"partition {partition}: committed {committed}, end offset {end}")


def resume(bootstrap, topic, group, problems):
    member = Member(bootstrap, topic, group, "member-resume")
    member.start()
    wait_until("4-partition assignment", lambda: len(member.snapshot()[1]) == PARTITIONS, [member])
    values = [f"resume-{i}".encode() for i in range(RESUME_COUNT)]
    produce(bootstrap, topic, values)
    # Old records would sit before the new ones in their partition, so once
    # every new one arrived any old one would have arrived too.
    wait_until(f"{RESUME_COUNT} new records",
               lambda: len(member.snapshot()[0]) >= RESUME_COUNT, [member])
    member.stop.set()
    member.join(timeout=DEADLINE_S)
    got = sorted(value for (_, _, value) in member.snapshot()[0])
    if got != sorted(values):
        problems.append(f"resumed member got {len(got)} records, expected the {RESUME_COUNT} "
                        f"new ones: {got[:5]!r}...")


def main():
    bootstrap, topic, group, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                        timeout_ms=30000)
    admin.close()
    problems = []
    two_members(bootstrap, topic, group, count, problems)
    if not problems:
        resume(bootstrap, topic, group, problems)
    if problems:
        print(f"group {CLIENT}: FAIL")
        for problem in problems:
            print(f"  {problem}")
        sys.exit(1)
    print(f"group {CLIENT}: PASS ({count} records by 2 members exactly once, "
          f"committed = end offsets, resumed with {RESUME_COUNT} new only)")


if __name__ == "__main__":
    main()
