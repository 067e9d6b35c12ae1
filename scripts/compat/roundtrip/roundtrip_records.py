"""The records every compat roundtrip sends and checks, so all clients agree.

Record i (0..count-1) of client C goes to partition i % PARTITIONS with key
"key-{i}", value "value-{i}-" + "abcdefghij" * (i % 20) (so that codecs have
something to compress), and headers idx="{i}", client="C". Mirrored by
kafkajs_roundtrip.js, JavaRoundtrip.java and kcat_roundtrip.sh.
"""

import os

PARTITIONS = 3


def librdkafka_tls():
    """librdkafka settings for TLS from TLS_CA (and TLS_CERT + TLS_KEY for
    a client certificate); none when TLS_CA is unset (plaintext)."""
    if not os.environ.get("TLS_CA"):
        return {}
    config = {"security.protocol": "SSL", "ssl.ca.location": os.environ["TLS_CA"]}
    if os.environ.get("TLS_CERT"):
        config["ssl.certificate.location"] = os.environ["TLS_CERT"]
        config["ssl.key.location"] = os.environ["TLS_KEY"]
    return config


def kafka_python_tls():
    """kafka-python's keyword arguments for the same settings."""
    if not os.environ.get("TLS_CA"):
        return {}
    config = {"security_protocol": "SSL", "ssl_cafile": os.environ["TLS_CA"]}
    if os.environ.get("TLS_CERT"):
        config["ssl_certfile"] = os.environ["TLS_CERT"]
        config["ssl_keyfile"] = os.environ["TLS_KEY"]
    return config


def expected_records(client, count):
    """Yields (partition, key, value, headers) as bytes for each record."""
    for i in range(count):
        key = f"key-{i}".encode()
        value = f"value-{i}-".encode() + b"abcdefghij" * (i % 20)
        headers = [("idx", str(i).encode()), ("client", client.encode())]
        yield i % PARTITIONS, key, value, headers


def expected_by_partition(client, count):
    """Per partition, the (key, value, headers) records in send order."""
    partitions = [[] for _ in range(PARTITIONS)]
    for partition, key, value, headers in expected_records(client, count):
        partitions[partition].append((key, value, headers))
    return partitions


def check(client, count, consumed):
    """Compares consumed[p] = [(offset, key, value, headers)] with what was
    sent; returns a list of human-readable mismatches (empty when exact)."""
    problems = []
    for partition, want in enumerate(expected_by_partition(client, count)):
        got = consumed[partition]
        if len(got) != len(want):
            problems.append(f"partition {partition}: {len(got)} records, expected {len(want)}")
        for index, (record, expected) in enumerate(zip(got, want)):
            offset, key, value, headers = record
            if offset != index:
                problems.append(f"partition {partition}: record {index} at offset {offset}")
            if (key, value, headers) != expected:
                problems.append(
                    f"partition {partition} offset {offset}: got {(key, value, headers)!r}, "
                    f"expected {expected!r}")
            if len(problems) > 10:
                return problems
    return problems


def report(client, codec, count, problems):
    """Prints the verdict line and returns the process exit code."""
    if problems:
        print(f"{client} {codec}: FAIL")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"{client} {codec}: {count} records consumed back exactly")
    return 0
