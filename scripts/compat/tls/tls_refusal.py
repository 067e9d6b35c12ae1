"""A client that must not get through a TLS listener, with a Python client.

wrong-ca: TLS trusting CA_FILE, a CA that did not sign the server's
certificate; the client must report a certificate verification failure.
plaintext: no TLS at all against the TLS port; the client must report that
the connection failed (the broker closes it on the first bytes that are not
a ClientHello), never an answer.

usage: tls_refusal.py confluent-kafka|kafka-python BOOTSTRAP wrong-ca|plaintext CA_FILE
Prints "<client> <mode>: OK" with the client's error, exit 0; else FAIL, exit 1.
"""
import logging
import sys
import time

DEADLINE_S = 30


def confluent(bootstrap, mode, ca):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors = []
    logged = []

    class Collect(logging.Handler):
        def emit(self, record):
            logged.append(record.getMessage())

    # librdkafka reports the likely cause of a closed connection only in its
    # log (level 6), not through error_cb.
    logger = logging.getLogger("rdkafka")
    logger.addHandler(Collect())
    logger.setLevel(logging.DEBUG)
    config = {"bootstrap.servers": bootstrap, "broker.address.family": "v4", "error_cb": errors.append,
              "logger": logger, "log_level": 6}
    if mode == "wrong-ca":
        config.update({"security.protocol": "SSL", "ssl.ca.location": ca})
    admin = AdminClient(config)
    deadline = time.time() + DEADLINE_S
    while time.time() < deadline:
        try:
            admin.list_topics(timeout=2)
            return None, "metadata answered"
        except KafkaException:
            pass
        admin.poll(0.2)
        if mode == "wrong-ca":
            hits = [e.str() for e in errors if e.code() == KafkaError._SSL and "certificate verify failed" in e.str()]
        else:
            # The connection is closed while librdkafka waits for its
            # ApiVersions answer (older versions add "connecting to a SSL
            # listener?").
            hits = [m for m in logged if "Disconnected" in m and "state APIVERSION_QUERY" in m]
        if hits:
            return hits[0], None
    return None, f"no expected error within {DEADLINE_S} s: {[e.str() for e in errors]}; log: {logged[-5:]}"


def kafka_python(bootstrap, mode, ca):
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    reported = []

    class Collect(logging.Handler):
        def emit(self, record):
            reported.append(record.getMessage())

    logging.getLogger("kafka").addHandler(Collect())
    logging.getLogger("kafka").setLevel(logging.DEBUG)
    config = {"bootstrap_servers": bootstrap, "request_timeout_ms": 5000}
    if mode == "wrong-ca":
        config.update({"security_protocol": "SSL", "ssl_cafile": ca})
    try:
        admin = KafkaAdminClient(**config)
        admin.describe_cluster()
        return None, "metadata answered"
    except KafkaError as error:
        if mode == "wrong-ca":
            hits = [m for m in reported if "CERTIFICATE_VERIFY_FAILED" in m or "certificate verify failed" in m]
        else:
            # The broker closes the connection on the first bytes that are not
            # a ClientHello: the ApiVersions request is never answered.
            hits = [m for m in reported if "socket disconnected" in m]
        if hits:
            return f"{type(error).__name__}; {hits[0]}", None
        return None, f"not the expected error: {error!r}; log: {reported[-5:]}"


def main():
    client, bootstrap, mode, ca = sys.argv[1:5]
    run = {"confluent-kafka": confluent, "kafka-python": kafka_python}[client]
    seen, problem = run(bootstrap, mode, ca)
    if problem:
        print(f"{client} {mode}: FAIL: {problem}")
        sys.exit(1)
    print(f"{client} {mode}: OK: {seen}")


if __name__ == "__main__":
    main()
