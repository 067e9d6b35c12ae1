"""An ACL matrix with a real client (confluent-kafka over SASL_PLAINTEXT,
SCRAM-SHA-256) against a broker running the StandardAuthorizer with
`super.users=User:admin` (admin seeded with --add-scram).

phase "setup": admin creates users alice and bob (AlterUserScramCredentials),
topics and ACLs: alice WRITE on topic `orders` (literal) and READ on topics
prefixed `sales-`, READ on group `alice-group`; bob READ on `orders` but on
no group; User:* READ on `public` with a DENY READ for bob; bob READ on
group `bob-group`; a topic `secret` without ACLs. Then checks every decision through the client's own
errors, and which topics each user can see.

phase "verify" (after the broker was killed with SIGKILL and restarted):
the users and ACLs are still there and still decide the same way.

Prints one "acl-matrix confluent-kafka: ..." verdict; exits non-zero on the
first mismatch.

usage: acl_matrix.py BOOTSTRAP setup|verify
"""

import sys
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

TIMEOUT_S = 30
TOPICS = ["orders", "sales-eu", "sales-us", "public", "secret"]


def fail(message):
    print(f"acl-matrix confluent-kafka: FAIL {message}")
    sys.exit(1)


def conf(bootstrap, user, **extra):
    c = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": user,
        "sasl.password": f"{user}-secret",
    }
    c.update(extra)
    return c


def acl(kind, name, pattern, principal, operation, permission=AclPermissionType.ALLOW):
    return AclBinding(kind, name, pattern, principal, "*", operation, permission)


ACLS = [
    acl(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:alice", AclOperation.WRITE),
    acl(ResourceType.TOPIC, "sales-", ResourcePatternType.PREFIXED, "User:alice", AclOperation.READ),
    acl(ResourceType.GROUP, "alice-group", ResourcePatternType.LITERAL, "User:alice", AclOperation.READ),
    acl(ResourceType.TOPIC, "orders", ResourcePatternType.LITERAL, "User:bob", AclOperation.READ),
    acl(ResourceType.TOPIC, "public", ResourcePatternType.LITERAL, "User:*", AclOperation.READ),
    acl(ResourceType.TOPIC, "public", ResourcePatternType.LITERAL, "User:bob", AclOperation.READ,
        AclPermissionType.DENY),
    acl(ResourceType.GROUP, "bob-group", ResourcePatternType.LITERAL, "User:bob", AclOperation.READ),
]


def produce(bootstrap, user, topic, value):
    """The delivery error code of one record (NO_ERROR when stored)."""
    outcome = []
    producer = Producer(conf(bootstrap, user, **{"message.timeout.ms": 15000}))
    producer.produce(topic, value=value, on_delivery=lambda err, _msg: outcome.append(err))
    left = producer.flush(TIMEOUT_S)
    if left or not outcome:
        fail(f"{user} -> {topic}: no delivery report")
    err = outcome[0]
    return KafkaError.NO_ERROR if err is None else err.code()


def consume_first(bootstrap, user, group, topic):
    """(error code, value) of the first record or error the consumer sees."""
    consumer = Consumer(
        conf(bootstrap, user, **{"group.id": group, "auto.offset.reset": "earliest",
                                 "enable.auto.commit": False})
    )
    consumer.subscribe([topic])
    try:
        for _ in range(TIMEOUT_S * 2):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return msg.error().code(), None
            return KafkaError.NO_ERROR, msg.value()
        fail(f"{user} consuming {topic} in {group}: nothing within {TIMEOUT_S} s")
    except KafkaException as error:
        return error.args[0].code(), None
    finally:
        consumer.close()


def visible_topics(bootstrap, user):
    admin = AdminClient(conf(bootstrap, user))
    return sorted(t for t in admin.list_topics(timeout=TIMEOUT_S).topics if t in TOPICS)


def expect(label, got, want):
    if got != want:
        fail(f"{label}: got {got!r}, want {want!r}")


def check_decisions(bootstrap, marker):
    expect("alice writes orders", produce(bootstrap, "alice", "orders", marker), KafkaError.NO_ERROR)
    expect("bob writes orders", produce(bootstrap, "bob", "orders", marker),
           KafkaError.TOPIC_AUTHORIZATION_FAILED)
    expect("alice writes sales-eu (READ only)", produce(bootstrap, "alice", "sales-eu", marker),
           KafkaError.TOPIC_AUTHORIZATION_FAILED)
    expect("alice reads sales-eu (prefixed)",
           consume_first(bootstrap, "alice", "alice-group", "sales-eu"),
           (KafkaError.NO_ERROR, b"sales-record"))
    expect("alice reads public (User:*)",
           consume_first(bootstrap, "alice", "alice-group", "public"),
           (KafkaError.NO_ERROR, b"public-record"))
    expect("bob reads public (DENY beats User:* ALLOW)",
           consume_first(bootstrap, "bob", "bob-group", "public")[0],
           KafkaError.TOPIC_AUTHORIZATION_FAILED)
    expect("bob reads orders without READ on its group",
           consume_first(bootstrap, "bob", "no-acl-group", "orders")[0],
           KafkaError.GROUP_AUTHORIZATION_FAILED)
    expect("topics alice sees", visible_topics(bootstrap, "alice"),
           ["orders", "public", "sales-eu", "sales-us"])
    # DENY READ on `public` leaves bob's DESCRIBE (implied by User:*'s
    # READ) alone, as in Kafka: he sees the topic but cannot read it.
    expect("topics bob sees", visible_topics(bootstrap, "bob"), ["orders", "public"])
    expect("topics admin sees", visible_topics(bootstrap, "admin"), sorted(TOPICS))


def described_acls(admin):
    bindings = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
        AclOperation.ANY, AclPermissionType.ANY), request_timeout=TIMEOUT_S).result(TIMEOUT_S)
    return sorted(str(b) for b in bindings)


def setup(bootstrap):
    admin = AdminClient(conf(bootstrap, "admin"))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192)
    upserts = [UserScramCredentialUpsertion(u, info, f"{u}-secret".encode()) for u in ("alice", "bob")]
    for user, future in admin.alter_user_scram_credentials(upserts).items():
        future.result(TIMEOUT_S)
    for topic, future in admin.create_topics(
            [NewTopic(t, num_partitions=1, replication_factor=1) for t in TOPICS]).items():
        future.result(TIMEOUT_S)
    for _, future in admin.create_acls(ACLS, request_timeout=TIMEOUT_S).items():
        future.result(TIMEOUT_S)
    expect("ACLs described", len(described_acls(admin)), len(ACLS))
    bob_only = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, "User:bob", None,
        AclOperation.ANY, AclPermissionType.ANY), request_timeout=TIMEOUT_S).result(TIMEOUT_S)
    expect("bob's ACLs", len(bob_only), 3)
    # Records for the readers, written by the super user.
    for topic, value in (("sales-eu", b"sales-record"), ("public", b"public-record")):
        expect(f"admin writes {topic}", produce(bootstrap, "admin", topic, value), KafkaError.NO_ERROR)
    check_decisions(bootstrap, b"before-restart")
    print("acl-matrix confluent-kafka: setup PASS "
          f"(2 users, {len(ACLS)} ACLs, 10 decisions)")


def verify(bootstrap):
    admin = AdminClient(conf(bootstrap, "admin"))
    futures = admin.describe_user_scram_credentials(["alice", "bob"])
    described = {u: f.result(TIMEOUT_S) for u, f in futures.items()}
    expect("users after restart", sorted(described), ["alice", "bob"])
    expect("ACLs after restart", len(described_acls(admin)), len(ACLS))
    check_decisions(bootstrap, b"after-restart")
    print("acl-matrix confluent-kafka: PASS (users and ACLs survived kill -9; 10 decisions again)")


def main():
    bootstrap, phase = sys.argv[1], sys.argv[2]
    {"setup": setup, "verify": verify}[phase](bootstrap)


if __name__ == "__main__":
    main()
