"""The SASL matrix's cells for a Python client, in one process.

Each CELL is LISTENER:MECHANISM:KIND (LISTENER SASL_PLAINTEXT or SASL_SSL,
MECHANISM PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER) and prints
one line "CLIENT LISTENER MECHANISM KIND: OK ...|FAIL reason":
- roundtrip (and roundtrip-after-refusals, the last cell): produces COUNT
  records to partition 0 of a topic of its own (auto-created), reads them
  back from offset 0 (assign, no group) and compares them.
- wrong-password: PLAIN/SCRAM with a wrong password; the client must report
  an authentication failure.
- expired-token: OAUTHBEARER with an unsecured JWT whose exp is an hour
  past; the client must report an authentication failure.
- wrong-ca: SASL_SSL while trusting OTHER_CA, which did not sign the
  broker's certificate; the client must report a failed verification.

usage: sasl_python.py confluent-kafka|kafka-python SASL_PLAINTEXT_ADDR SASL_SSL_ADDR CA OTHER_CA
       USER PASSWORD RUN_ID CELL...
"""
import base64
import json
import logging
import sys
import time

COUNT = 20
DEADLINE_S = 30
# How long a refusal may take to be reported.
REFUSAL_DEADLINE_S = 15


def unsecured_token(sub, lifetime_s):
    """An unsecured JWS (alg none, empty signature) as Kafka's
    OAuthBearerUnsecuredLoginCallbackHandler makes it."""

    def part(value):
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': 'none'})}.{part({'sub': sub, 'iat': now, 'exp': now + lifetime_s})}."


class Cell:
    def __init__(self, spec, args):
        self.listener, self.mechanism, self.kind = spec.split(":")
        self.address = {"SASL_PLAINTEXT": args["plaintext"], "SASL_SSL": args["ssl"]}[self.listener]
        self.ca = args["other_ca"] if self.kind == "wrong-ca" else args["ca"]
        self.user = args["user"]
        self.password = "wrong-" + args["password"] if self.kind == "wrong-password" else args["password"]
        # The token's life: an hour either way.
        self.token_lifetime_s = -3600 if self.kind == "expired-token" else 3600
        self.topic = "-".join(["sasl", args["client"], self.listener, self.mechanism, self.kind, args["run_id"]]).lower()
        # Concrete values that name the cell, so a record from another cell
        # cannot pass for one of these.
        self.values = [f"{self.mechanism}@{self.listener}-{i}" for i in range(COUNT)]


def refused(message):
    """The verdict of a refusal cell that saw the error it expected."""
    return "OK (refused: " + message.replace("\n", " ")[:300] + ")"


def fail(problem):
    return f"FAIL {problem}"


def check(cell, values):
    if values != cell.values:
        return fail(f"read back {values}, expected {cell.values}")
    return f"OK ({COUNT} records back)"


def confluent(cell):
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    errors = []
    config = {
        "bootstrap.servers": cell.address,
        "broker.address.family": "v4",
        "security.protocol": cell.listener,
        "sasl.mechanisms": cell.mechanism,
        "error_cb": errors.append,
    }
    if cell.listener == "SASL_SSL":
        config["ssl.ca.location"] = cell.ca
    if cell.mechanism != "OAUTHBEARER":
        config.update({"sasl.username": cell.user, "sasl.password": cell.password})
    elif cell.kind == "expired-token":
        # librdkafka's builtin unsecured token cannot be expired
        # (lifeSeconds > 0), so the token comes from oauth_cb: its exp claim
        # is in the past while the lifetime told to librdkafka is not, so
        # that the client sends it and the broker judges it.
        token = unsecured_token(cell.user, cell.token_lifetime_s)
        config["oauth_cb"] = lambda _config: (token, time.time() + 3600, cell.user, {})
    else:
        config.update({"sasl.oauthbearer.config": f"principal={cell.user}",
                       "enable.sasl.oauthbearer.unsecure.jwt": True})

    if not cell.kind.startswith("roundtrip"):
        expected = {"wrong-password": "Authentication failed", "expired-token": "invalid_token",
                    "wrong-ca": "certificate verify failed"}[cell.kind]
        producer = Producer(config)
        deadline = time.time() + REFUSAL_DEADLINE_S
        while time.time() < deadline:
            try:
                producer.list_topics(timeout=1)
                return fail("metadata answered")
            except KafkaException:
                pass
            producer.poll(0.1)
            seen = [e.str() for e in errors if expected in e.str()]
            if seen:
                return refused(seen[0])
        return fail(f"no error with {expected!r} reported: {sorted({e.str() for e in errors})[:3]}")

    producer = Producer({**config, "acks": "all"})
    failures = []
    for value in cell.values:
        producer.produce(cell.topic, value=value.encode(), partition=0,
                         on_delivery=lambda err, msg: err and failures.append(err))
    if producer.flush(DEADLINE_S) != 0 or failures:
        return fail(f"produce failed: {failures} {[e.str() for e in errors]}")
    consumer = Consumer({**config, "group.id": "sasl-compat", "enable.auto.commit": False})
    consumer.assign([TopicPartition(cell.topic, 0, 0)])
    values = []
    deadline = time.time() + DEADLINE_S
    while len(values) < COUNT and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            return fail(f"consume failed: {message.error()}")
        values.append(message.value().decode())
    consumer.close()
    return check(cell, values)


class LogCollector(logging.Handler):
    """kafka-python reports a refused connection in its log and retries
    until its bootstrap times out; the log is where the reason is."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def kafka_python(cell, collector):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError

    config = dict(bootstrap_servers=cell.address, security_protocol=cell.listener,
                  sasl_mechanism=cell.mechanism)
    if cell.listener == "SASL_SSL":
        config["ssl_cafile"] = cell.ca
    if cell.mechanism == "OAUTHBEARER":
        try:
            from kafka.net.sasl.oauth import AbstractTokenProvider
        except ImportError:
            from kafka.sasl.oauth import AbstractTokenProvider

        token = unsecured_token(cell.user, cell.token_lifetime_s)

        class UnsecuredToken(AbstractTokenProvider):
            def token(self):
                return token

        config["sasl_oauth_token_provider"] = UnsecuredToken()
    else:
        config.update(sasl_plain_username=cell.user, sasl_plain_password=cell.password)

    if not cell.kind.startswith("roundtrip"):
        expected = {"wrong-password": "Authentication failed", "expired-token": "invalid_token",
                    "wrong-ca": "CERTIFICATE_VERIFY_FAILED"}[cell.kind]
        collector.messages.clear()
        try:
            # Both bounds: the bootstrap retries a refused connection until
            # bootstrap_timeout_ms (30 s by default), whatever max_block_ms.
            producer = KafkaProducer(**config, bootstrap_timeout_ms=REFUSAL_DEADLINE_S * 1000 // 3,
                                     max_block_ms=REFUSAL_DEADLINE_S * 1000 // 3)
            producer.partitions_for(cell.topic)
            return fail("metadata answered")
        except KafkaError as error:
            seen = [m for m in collector.messages + [repr(error)] if expected in m]
            if seen:
                return refused(seen[0])
            return fail(f"no error with {expected!r} reported: {error!r}; log: {collector.messages[-5:]}")

    producer = KafkaProducer(**config, acks="all")
    for value in cell.values:
        producer.send(cell.topic, value=value.encode(), partition=0).get(timeout=DEADLINE_S)
    producer.close(timeout=DEADLINE_S)
    consumer = KafkaConsumer(**config, enable_auto_commit=False)
    partition = TopicPartition(cell.topic, 0)
    consumer.assign([partition])
    consumer.seek(partition, 0)
    values = []
    deadline = time.time() + DEADLINE_S
    while len(values) < COUNT and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            values.extend(r.value.decode() for r in records)
    consumer.close()
    return check(cell, values)


def main():
    client, plaintext, ssl, ca, other_ca, user, password, run_id, *cells = sys.argv[1:]
    args = dict(client=client, plaintext=plaintext, ssl=ssl, ca=ca, other_ca=other_ca,
                user=user, password=password, run_id=run_id)
    collector = LogCollector()
    logging.getLogger("kafka").addHandler(collector)
    logging.getLogger("kafka").setLevel(logging.INFO)
    logging.getLogger("kafka").propagate = False
    failed = False
    for spec in cells:
        cell = Cell(spec, args)
        label = f"{client} {cell.listener} {cell.mechanism} {cell.kind}"
        try:
            if client == "confluent-kafka":
                verdict = confluent(cell)
            else:
                verdict = kafka_python(cell, collector)
        except Exception as error:  # one cell's surprise must not hide the rest
            verdict = fail(f"{type(error).__name__}: {error}")
        failed = failed or verdict.startswith("FAIL")
        print(f"{label}: {verdict}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
