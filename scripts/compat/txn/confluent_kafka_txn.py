"""Transactions with confluent-kafka (bundled librdkafka) against one broker:
six scenarios, each on topics, a transactional.id and a group of its own.

  commit     init, begin, 10 records to 2 partitions, commit: a
             read_committed consumer reads exactly those 10 values.
  abort      begin, 10 records, abort: read_committed sees none of them,
             read_uncommitted sees all 10.
  open       begin, 5 records, flush, no commit: read_committed gets
             nothing for 3 s while read_uncommitted sees the 5; after the
             commit the same read_committed consumer sees the 5.
  offsets    a group member reads input; send_offsets_to_transaction in a
             committed transaction moves the group's committed offsets to
             the position; in an aborted one it leaves them unchanged.
  fencing    producer B's init_transactions with A's transactional.id
             fences A: A's next produce/commit fails with a fatal fencing
             error and A's open transaction is aborted.
  ctp        consume-transform-produce of COUNT records in transactions,
             ~20% aborted at random (seeded), re-seeking to the committed
             offsets after each abort: the read_committed output holds each
             input's transformation exactly once.

"Read exactly" means: after the transactions are over, a plain producer
appends an end mark to every partition and the consumer reads until it has
seen the mark on each, so no fixed wait decides what "all" is. Every wait
has a deadline. One line per scenario, then the verdict
"txn confluent-kafka: PASS|FAIL ..."; exits 1 on any failure. A failing
init_transactions (a broker without transactions) ends the run at once.

usage: confluent_kafka_txn.py BOOTSTRAP RUN_ID [SCENARIO...]
  env: TXN_COUNT (ctp input records, 5000), TXN_SEED (ctp's abort choices)
"""

import os
import random
import sys
import time
import traceback

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

CLIENT = "confluent-kafka"
TIMEOUT_S = 30
DEADLINE_S = 60
OPEN_TXN_WINDOW_S = 3.0
CTP_ABORT_RATIO = 0.2
CTP_BATCH_MAX = 200
COMMITTED_WAIT_S = 10
FENCING_CODES = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


class Fail(Exception):
    """A scenario's expectation did not hold."""


class NoTransactions(Fail):
    """init_transactions failed: the broker does not serve transactions."""


def check(condition, message):
    if not condition:
        raise Fail(message)


class Run:
    """One program run: the broker address and the names it hands out."""

    def __init__(self, bootstrap, run_id):
        self.bootstrap = bootstrap
        self.run_id = run_id
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def name(self, scenario, what):
        return f"txn-{self.run_id}-{scenario}-{what}"

    def create_topics(self, partitions, *topics):
        futures = self.admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1) for topic in topics],
            operation_timeout=TIMEOUT_S, request_timeout=TIMEOUT_S)
        for future in futures.values():
            future.result(timeout=TIMEOUT_S)

    def txn_producer(self, transactional_id):
        """A transactional producer after init_transactions."""
        producer = Producer({
            "bootstrap.servers": self.bootstrap,
            "client.id": f"rafka-txn-{transactional_id}",
            "transactional.id": transactional_id,
            "linger.ms": 5,
        })
        try:
            producer.init_transactions(TIMEOUT_S)
        except KafkaException as error:
            raise NoTransactions(
                f"init_transactions({transactional_id}) failed: {error.args[0]} "
                "(does the broker serve FindCoordinator for transactions and "
                "InitProducerId with a transactional.id?)") from error
        return producer

    def produce_plain(self, topic, records):
        """records: [(partition, value)], produced with acks=all (no transaction)."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "acks": "all"})
        failures = []

        def on_delivery(error, message):
            if error is not None:
                failures.append(f"partition {message.partition()}: {error}")

        for partition, value in records:
            producer.produce(topic, value=value.encode(), partition=partition, on_delivery=on_delivery)
            producer.poll(0)
        remaining = producer.flush(DEADLINE_S)
        check(remaining == 0, f"{remaining} plain records to {topic} not acknowledged in {DEADLINE_S} s")
        check(not failures, f"plain produce to {topic} failed: {failures[:3]}")

    def seal(self, topic, partitions, mark):
        """Appends the end mark to every partition (see the module doc)."""
        self.produce_plain(topic, [(p, mark) for p in range(partitions)])

    def reader(self, topic, partitions, isolation):
        return Reader(self.bootstrap, topic, partitions, isolation)

    def group_consumer(self, group, topic):
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": group,
            "client.id": f"rafka-txn-{group}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
        })
        consumer.subscribe([topic])
        return consumer


class Reader:
    """A consumer assigned every partition of a topic from the beginning,
    without a group, at one isolation level. Keeps what it received."""

    def __init__(self, bootstrap, topic, partitions, isolation):
        self.topic = topic
        self.partitions = partitions
        self.isolation = isolation
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"rafka-txn-reader-unused-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "isolation.level": isolation,
        })
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self.values = [[] for _ in range(partitions)]
        self.marks = [[] for _ in range(partitions)]

    def _poll(self, timeout_s):
        message = self.consumer.poll(timeout_s)
        if message is None:
            return False
        if message.error():
            raise Fail(f"{self.isolation} consumer of {self.topic}: {message.error()}")
        value = message.value().decode()
        if value.startswith("end-"):
            self.marks[message.partition()].append(value)
        else:
            self.values[message.partition()].append(value)
        return True

    def poll_for(self, seconds):
        """Polls for a fixed window (for what must *not* arrive)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._poll(min(left, 0.5))

    def until_mark(self, mark):
        """Polls until every partition delivered `mark`; returns the values
        (not marks) received so far, per partition."""
        deadline = time.monotonic() + DEADLINE_S
        while not all(mark in marks for marks in self.marks):
            if time.monotonic() > deadline:
                missing = [p for p, marks in enumerate(self.marks) if mark not in marks]
                raise Fail(f"{self.isolation} consumer of {self.topic}: no {mark} on partitions "
                           f"{missing} within {DEADLINE_S} s (received {self.received()} values)")
            self._poll(0.5)
        return self.values

    def received(self):
        return sum(len(values) for values in self.values)

    def close(self):
        self.consumer.close()


def txn_records(prefix, count, partitions):
    """[(partition, value)]: value prefix-i goes to partition i % partitions."""
    return [(i % partitions, f"{prefix}-{i}") for i in range(count)]


def by_partition(records, partitions):
    out = [[] for _ in range(partitions)]
    for partition, value in records:
        out[partition].append(value)
    return out


def produce_in_txn(producer, topic, records):
    """Produces records (inside the open transaction) and waits for their
    delivery reports; raises Fail on a failed delivery."""
    failures = []

    def on_delivery(error, message):
        if error is not None:
            failures.append(error)

    for partition, value in records:
        producer.produce(topic, value=value.encode(), partition=partition, on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    check(remaining == 0, f"{remaining} transactional records to {topic} undelivered in {TIMEOUT_S} s")
    check(not failures, f"transactional produce to {topic} failed: {failures[:3]}")


def expect_values(got, expected, what):
    check(got == expected, f"{what}: got {summary(got)}, expected {summary(expected)}")


def summary(per_partition):
    return "; ".join(f"p{p}: {len(v)} {v[:4]}{'...' if len(v) > 4 else ''}"
                     for p, v in enumerate(per_partition))


def scenario_commit(run):
    topic, partitions = run.name("commit", "out"), 2
    run.create_topics(partitions, topic)
    producer = run.txn_producer(run.name("commit", "txn"))
    records = txn_records("commit", 10, partitions)
    producer.begin_transaction()
    produce_in_txn(producer, topic, records)
    producer.commit_transaction(TIMEOUT_S)
    run.seal(topic, partitions, "end-1")
    reader = run.reader(topic, partitions, "read_committed")
    try:
        expect_values(reader.until_mark("end-1"), by_partition(records, partitions), "read_committed")
    finally:
        reader.close()
    return "10 records in 2 partitions, read_committed read exactly them"


def scenario_abort(run):
    topic, partitions = run.name("abort", "out"), 2
    run.create_topics(partitions, topic)
    producer = run.txn_producer(run.name("abort", "txn"))
    records = txn_records("aborted", 10, partitions)
    producer.begin_transaction()
    produce_in_txn(producer, topic, records)
    producer.abort_transaction(TIMEOUT_S)
    run.seal(topic, partitions, "end-1")
    for isolation, expected in [("read_committed", [[] for _ in range(partitions)]),
                                ("read_uncommitted", by_partition(records, partitions))]:
        reader = run.reader(topic, partitions, isolation)
        try:
            expect_values(reader.until_mark("end-1"), expected, isolation)
        finally:
            reader.close()
    return "read_committed saw none of 10 aborted records, read_uncommitted all 10"


def scenario_open(run):
    topic, partitions = run.name("open", "out"), 2
    run.create_topics(partitions, topic)
    producer = run.txn_producer(run.name("open", "txn"))
    records = txn_records("open", 5, partitions)
    producer.begin_transaction()
    produce_in_txn(producer, topic, records)
    committed = run.reader(topic, partitions, "read_committed")
    uncommitted = run.reader(topic, partitions, "read_uncommitted")
    try:
        committed.poll_for(OPEN_TXN_WINDOW_S)
        check(committed.received() == 0 and not any(committed.marks),
              f"read_committed saw {summary(committed.values)} of an open transaction")
        # The mark lands after the open transaction's records: only
        # read_uncommitted can reach it before the commit.
        run.seal(topic, partitions, "end-1")
        expect_values(uncommitted.until_mark("end-1"), by_partition(records, partitions),
                      "read_uncommitted during the open transaction")
        committed.poll_for(0.5)
        check(committed.received() == 0,
              f"read_committed saw {summary(committed.values)} before the commit")
        producer.commit_transaction(TIMEOUT_S)
        run.seal(topic, partitions, "end-2")
        expect_values(committed.until_mark("end-2"), by_partition(records, partitions),
                      "read_committed after the commit")
    finally:
        committed.close()
        uncommitted.close()
    return f"read_committed saw nothing for {OPEN_TXN_WINDOW_S:.0f} s, then the 5 after the commit"


def consume_batch(consumer, count):
    """Exactly `count` messages from a group consumer (deadline-bound)."""
    got = []
    deadline = time.monotonic() + DEADLINE_S
    while len(got) < count:
        check(time.monotonic() < deadline, f"group consumer got {len(got)} of {count} in {DEADLINE_S} s")
        for message in consumer.consume(num_messages=count - len(got), timeout=0.5):
            if message.error():
                raise Fail(f"group consumer: {message.error()}")
            got.append(message)
    return got


def next_offsets(messages):
    """{partition: offset after the last message read}."""
    offsets = {}
    for message in messages:
        offsets[message.partition()] = max(offsets.get(message.partition(), 0), message.offset() + 1)
    return offsets


def committed_offsets(consumer, topic, partitions):
    """{partition: committed offset} (OFFSET_INVALID where none), or None
    while the broker still holds a transaction's offsets pending (a
    read_committed consumer asks for stable offsets)."""
    tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=TIMEOUT_S)
    for tp in tps:
        if tp.error and tp.error.code() == KafkaError.UNSTABLE_OFFSET_COMMIT:
            return None
        if tp.error:
            raise Fail(f"committed({topic} p{tp.partition}): {tp.error}")
    return {tp.partition: tp.offset for tp in tps}


def await_committed(consumer, topic, partitions, expected, what):
    """Polls committed() until it equals `expected`: a transaction's offsets
    become visible once its markers are written, which may be a little
    after commit_transaction returned. Bounded."""
    deadline = time.monotonic() + COMMITTED_WAIT_S
    while True:
        got = committed_offsets(consumer, topic, partitions)
        if got == expected:
            return
        check(time.monotonic() < deadline,
              f"{what}: committed offsets {got}, expected {expected} (waited {COMMITTED_WAIT_S} s)")
        time.sleep(0.1)


def transact_batch(producer, consumer, messages, input_topic, output_topic):
    """begin, one transformed record per message, send_offsets (the
    position after the batch). Leaves the transaction open."""
    producer.begin_transaction()
    produce_in_txn(producer, output_topic,
                   [(m.partition(), transform(m.value().decode())) for m in messages])
    offsets = next_offsets(messages)
    producer.send_offsets_to_transaction(
        [TopicPartition(input_topic, p, o) for p, o in offsets.items()],
        consumer.consumer_group_metadata(), TIMEOUT_S)
    return offsets


def transform(value):
    return "out-" + value


def scenario_offsets(run):
    input_topic, output_topic = run.name("offsets", "in"), run.name("offsets", "out")
    group, partitions = run.name("offsets", "group"), 2
    run.create_topics(partitions, input_topic, output_topic)
    inputs = txn_records("in", 20, partitions)
    run.produce_plain(input_topic, inputs)
    producer = run.txn_producer(run.name("offsets", "txn"))
    consumer = run.group_consumer(group, input_topic)
    try:
        # 15 of 2 x 10 records: the batch spans both partitions.
        first = consume_batch(consumer, 15)
        after_commit = transact_batch(producer, consumer, first, input_topic, output_topic)
        check(len(after_commit) == partitions, f"15 records from one partition: {after_commit}")
        producer.commit_transaction(TIMEOUT_S)
        await_committed(consumer, input_topic, partitions, after_commit, "after the commit")
        positions = {tp.partition: tp.offset for tp in consumer.position(
            [TopicPartition(input_topic, p) for p in range(partitions)])}
        check(positions == after_commit, f"committed {after_commit} but the position is {positions}")
        second = consume_batch(consumer, 5)
        aborted_offsets = transact_batch(producer, consumer, second, input_topic, output_topic)
        producer.abort_transaction(TIMEOUT_S)
        await_committed(consumer, input_topic, partitions, after_commit,
                        f"after the abort of {aborted_offsets}")
        run.seal(output_topic, partitions, "end-1")
        reader = run.reader(output_topic, partitions, "read_committed")
        try:
            expected = by_partition([(m.partition(), transform(m.value().decode())) for m in first],
                                    partitions)
            expect_values(reader.until_mark("end-1"), expected, "read_committed output")
        finally:
            reader.close()
        # The output was read after the abort's markers: the offsets must
        # still be the committed transaction's.
        got = committed_offsets(consumer, input_topic, partitions)
        check(got == after_commit, f"at the end: committed {got}, expected {after_commit}")
    finally:
        consumer.close()
    return f"committed {dict(sorted(after_commit.items()))} after the commit, unchanged after the abort"


def fencing_error(error):
    """The KafkaError of a fencing failure, or None."""
    kafka_error = error.args[0] if isinstance(error, KafkaException) and error.args else None
    if isinstance(kafka_error, KafkaError) and (kafka_error.fatal() or kafka_error.code() in FENCING_CODES):
        return kafka_error
    return None


def scenario_fencing(run):
    topic, partitions = run.name("fencing", "out"), 2
    transactional_id = run.name("fencing", "txn")
    run.create_topics(partitions, topic)
    zombie = run.txn_producer(transactional_id)
    zombie.begin_transaction()
    produce_in_txn(zombie, topic, txn_records("zombie", 4, partitions))
    successor = run.txn_producer(transactional_id)
    fenced = None
    # The late produce may fail (the partition sees an old epoch: flush
    # raises the fatal error) or not (the commit then must). No delivery
    # callback: librdkafka reports the fatal error while it delivers.
    try:
        zombie.produce(topic, value=b"zombie-late", partition=0)
        zombie.flush(TIMEOUT_S)
        zombie.commit_transaction(TIMEOUT_S)
    except KafkaException as error:
        fenced = fencing_error(error)
        check(fenced is not None, f"the zombie failed, but not with a fencing error: {error.args[0]}")
    check(fenced is not None,
          "the zombie's commit succeeded after another producer took its transactional.id")
    records = txn_records("successor", 4, partitions)
    successor.begin_transaction()
    produce_in_txn(successor, topic, records)
    successor.commit_transaction(TIMEOUT_S)
    run.seal(topic, partitions, "end-1")
    reader = run.reader(topic, partitions, "read_committed")
    try:
        expect_values(reader.until_mark("end-1"), by_partition(records, partitions),
                      "read_committed (the zombie's transaction must be aborted)")
    finally:
        reader.close()
    return f"zombie fenced ({fenced.name()}, fatal={fenced.fatal()}), its transaction aborted"


def rewind(consumer, input_topic, partitions, expected):
    """After an abort: seeks every partition to its committed offset, which
    must be what the last commit left."""
    await_committed(consumer, input_topic, partitions, expected, "after an abort")
    for partition, offset in expected.items():
        consumer.seek(TopicPartition(input_topic, partition,
                                     offset if offset >= 0 else OFFSET_BEGINNING))


def scenario_ctp(run):
    count = int(os.environ.get("TXN_COUNT", "5000"))
    seed = int(os.environ.get("TXN_SEED", str(random.randrange(1 << 32))))
    rng = random.Random(seed)
    input_topic, output_topic = run.name("ctp", "in"), run.name("ctp", "out")
    group, partitions = run.name("ctp", "group"), 3
    run.create_topics(partitions, input_topic, output_topic)
    inputs = txn_records("in", count, partitions)
    run.produce_plain(input_topic, inputs)
    producer = run.txn_producer(run.name("ctp", "txn"))
    consumer = run.group_consumer(group, input_topic)
    committed = {p: OFFSET_INVALID for p in range(partitions)}
    commits = aborts = 0
    started = time.monotonic()
    try:
        while sum(max(offset, 0) for offset in committed.values()) < count:
            check(time.monotonic() - started < 4 * DEADLINE_S,
                  f"seed {seed}: {commits} commits, {aborts} aborts, committed {committed} "
                  f"of {count} after {4 * DEADLINE_S} s")
            # One message (waited for), then what else is already fetched,
            # up to a random batch size.
            batch = consume_batch(consumer, 1)
            extra = rng.randint(0, CTP_BATCH_MAX - 1)
            if extra:
                batch += consumer.consume(num_messages=extra, timeout=0)
            for message in batch:
                if message.error():
                    raise Fail(f"group consumer: {message.error()}")
            offsets = transact_batch(producer, consumer, batch, input_topic, output_topic)
            if rng.random() < CTP_ABORT_RATIO:
                producer.abort_transaction(TIMEOUT_S)
                aborts += 1
                rewind(consumer, input_topic, partitions, committed)
            else:
                producer.commit_transaction(TIMEOUT_S)
                commits += 1
                committed.update(offsets)
    finally:
        consumer.close()
    elapsed_s = time.monotonic() - started
    run.seal(output_topic, partitions, "end-1")
    reader = run.reader(output_topic, partitions, "read_committed")
    try:
        got = sorted(value for values in reader.until_mark("end-1") for value in values)
    finally:
        reader.close()
    expected = sorted(transform(value) for _, value in inputs)
    if got != expected:
        seen = {}
        for value in got:
            seen[value] = seen.get(value, 0) + 1
        duplicated = sorted(value for value, n in seen.items() if n > 1)
        missing = sorted(set(expected) - set(seen))
        raise Fail(f"seed {seed}: output holds {len(got)} records for {count} inputs: "
                   f"{len(duplicated)} duplicated {duplicated[:3]}, {len(missing)} missing {missing[:3]}")
    return (f"{count} records exactly once through {commits} commits and {aborts} aborts "
            f"in {elapsed_s:.1f} s (seed {seed})")


SCENARIOS = {
    "commit": scenario_commit,
    "abort": scenario_abort,
    "open": scenario_open,
    "offsets": scenario_offsets,
    "fencing": scenario_fencing,
    "ctp": scenario_ctp,
}


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    bootstrap, run_id = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenarios {unknown}; known: {list(SCENARIOS)}")
    run = Run(bootstrap, run_id)
    passed, failed = [], []
    for name in names:
        started = time.monotonic()
        try:
            detail = SCENARIOS[name](run)
            passed.append(name)
            print(f"txn {CLIENT} {name}: OK {detail} ({time.monotonic() - started:.1f} s)", flush=True)
        except NoTransactions as error:
            failed.append(name)
            print(f"txn {CLIENT} {name}: FAIL {error}", flush=True)
            skipped = names[names.index(name) + 1:]
            if skipped:
                print(f"txn {CLIENT}: skipping {' '.join(skipped)}: the broker does not serve transactions")
            break
        except (Fail, KafkaException) as error:
            failed.append(name)
            print(f"txn {CLIENT} {name}: FAIL {error}", flush=True)
        except Exception:  # a bug in this program: show where
            failed.append(name)
            print(f"txn {CLIENT} {name}: FAIL (unexpected error)\n{traceback.format_exc()}", flush=True)
    if failed or len(passed) != len(names):
        print(f"txn {CLIENT}: FAIL (failed: {' '.join(failed)}; passed: {' '.join(passed) or 'none'})")
        sys.exit(1)
    print(f"txn {CLIENT}: PASS ({' '.join(passed)})")


if __name__ == "__main__":
    main()
