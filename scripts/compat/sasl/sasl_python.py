"""SASL_PLAINTEXT + PLAIN with a Python client against a running broker.

good: produces COUNT records to partition 0 of TOPIC (auto-created), reads
them back from offset 0 (assign, no group) and compares them.
bad: connects with the given (wrong) password and expects the client to
report an authentication failure; anything else fails.

usage: sasl_python.py confluent-kafka|kafka-python BOOTSTRAP TOPIC USER PASSWORD good|bad
"""
import sys
import time

COUNT = 20
DEADLINE_S = 60


def confluent(bootstrap, topic, user, password, mode):
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

    errors = []
    common = {
        "bootstrap.servers": bootstrap,
        "broker.address.family": "v4",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": user,
        "sasl.password": password,
        "error_cb": errors.append,
    }
    if mode == "bad":
        producer = Producer(common)
        deadline = time.time() + DEADLINE_S
        while time.time() < deadline:
            try:
                producer.list_topics(timeout=2)
                return "metadata answered without authentication"
            except KafkaException:
                pass
            producer.poll(0.2)
            auth = [e for e in errors if e.code() == KafkaError._AUTHENTICATION]
            if auth:
                print(f"authentication error: {auth[0].str()}")
                return None
        return f"no authentication error reported: {[e.str() for e in errors]}"
    producer = Producer({**common, "acks": "all"})
    failures = []
    for i in range(COUNT):
        producer.produce(topic, value=f"value-{i}".encode(), partition=0,
                         on_delivery=lambda err, msg: err and failures.append(err))
    if producer.flush(DEADLINE_S) != 0 or failures:
        return f"produce failed: {failures}"
    consumer = Consumer({**common, "group.id": "sasl-compat", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    deadline = time.time() + DEADLINE_S
    while len(values) < COUNT and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            return f"consume failed: {message.error()}"
        values.append(message.value().decode())
    consumer.close()
    return check(values)


def kafka_python(bootstrap, topic, user, password, mode):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError

    common = dict(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username=user,
        sasl_plain_password=password,
    )
    if mode == "bad":
        # kafka-python reports the broker's answer through its log and
        # retries until its bootstrap times out.
        import logging

        reported = []

        class Collect(logging.Handler):
            def emit(self, record):
                reported.append(record.getMessage())

        logging.getLogger("kafka").addHandler(Collect())
        logging.getLogger("kafka").setLevel(logging.INFO)
        try:
            producer = KafkaProducer(**common, max_block_ms=5000)
            producer.partitions_for(topic)
            return "metadata answered without authentication"
        except KafkaError as error:
            auth = [m for m in reported if "Authentication failed: Invalid username or password" in m]
            if auth or "Authentication" in type(error).__name__:
                print(f"authentication error: {auth[0] if auth else error!r}")
                return None
            return f"not an authentication error: {error!r}; log: {reported[-5:]}"
    producer = KafkaProducer(**common, acks="all")
    for i in range(COUNT):
        producer.send(topic, value=f"value-{i}".encode(), partition=0).get(timeout=DEADLINE_S)
    producer.close()
    consumer = KafkaConsumer(**common, enable_auto_commit=False)
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    consumer.seek(partition, 0)
    values = []
    deadline = time.time() + DEADLINE_S
    while len(values) < COUNT and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            values.extend(r.value.decode() for r in records)
    consumer.close()
    return check(values)


def check(values):
    expected = [f"value-{i}" for i in range(COUNT)]
    if values != expected:
        return f"read back {values}, expected {expected}"
    print(f"{COUNT} records produced and consumed back")
    return None


def main():
    client, bootstrap, topic, user, password, mode = sys.argv[1:7]
    run = {"confluent-kafka": confluent, "kafka-python": kafka_python}[client]
    problem = run(bootstrap, topic, user, password, mode)
    if problem:
        print(f"{client} {mode}: FAIL: {problem}")
        sys.exit(1)
    print(f"{client} {mode}: OK")


if __name__ == "__main__":
    main()
