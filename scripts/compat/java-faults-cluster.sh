#!/usr/bin/env bash
# The Java client (kafka-clients 3.9.1) through broker faults on a 3-node
# rafka cluster of its own (scripts/cluster.sh via cluster/common.sh): a
# 3-partition topic with replication factor 3 and min.insync.replicas=2,
# an idempotent acks=all KafkaProducer sending all along
# (cluster/JavaFaults.java notes every acknowledgement and failure), and
# in turn: partition 0's leader killed (SIGKILL) and restarted on its disk,
# partition 1's leader paused (SIGSTOP) past the broker session and
# resumed, a follower of partition 2 killed and restarted; after each step
# the producer must have more records acknowledged. Then the checker reads
# the topic back: no acknowledged record lost, nothing read that was not
# sent, no offset reused, no duplicate; and a consumer group resumes
# exactly at its committed offsets without a gap. Ends with
# "cluster java-faults: PASS|FAIL ...".
#
# usage: scripts/compat/java-faults-cluster.sh
#   env: RAFKA_BIN (default: build the release binary)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=cluster/common.sh
source "$here/cluster/common.sh"
started=$SECONDS
# Acknowledgements each step must add.
step_acks=300
step_timeout_s=60
producer_pid=""

"$here/setup-java.sh" >&2
classpath="$(cat "$here/.cache/java/classpath")"
classes="$here/.cache/java/faults-classes"
mkdir -p "$classes"
javac --release 17 -d "$classes" -cp "$classpath" "$here/cluster/JavaFaults.java"

fail() {
    if [[ -n "$producer_pid" ]]; then
        kill -KILL "$producer_pid" 2>/dev/null || true
    fi
    cluster_logs
    grep -v '^SLF4J' "$cluster_work/java.err" 2>/dev/null | tail -n 20 || true
    echo "cluster java-faults: FAIL ($*)"
    exit 1
}

java_faults() {
    timeout 120 java -cp "$classes:$classpath" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
        JavaFaults "$@" 2>>"$cluster_work/java.err"
}

cluster_start || fail "the cluster did not start"
echo "cluster: $cluster_bootstrap (started in $((SECONDS - started)) s)"
topic="faults-java-$(date +%s)-$$-$RANDOM"
"$RAFKA_BIN" topic --bootstrap "$(cluster_listener 1)" create "$topic" --partitions 3 \
    --replication-factor 3 --config min.insync.replicas=2 >/dev/null || fail "creating $topic"

notes="$cluster_work/notes"
stop="$cluster_work/stop"
: >"$notes"
java -cp "$classes:$classpath" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    JavaFaults produce "$cluster_bootstrap" "$topic" 3 "$notes" "$stop" \
    >"$cluster_work/produce.out" 2>>"$cluster_work/java.err" &
producer_pid=$!

acks() {
    grep -c '^ack ' "$notes" || true
}

# await_acks STEP: until step_acks more records are acknowledged than now.
await_acks() {
    local want=$(($(acks) + step_acks)) deadline=$((SECONDS + step_timeout_s))
    until (($(acks) >= want)); do
        kill -0 "$producer_pid" 2>/dev/null || fail "$1: the producer exited"
        ((SECONDS < deadline)) || fail "$1: $(acks) acknowledged, not $want within ${step_timeout_s} s"
        sleep 0.2
    done
    echo "$1: $(acks) acknowledged"
}

# leader_of P: partition P's leader once it has one (bounded).
leader_of() {
    local leader deadline=$((SECONDS + step_timeout_s))
    while true; do
        leader="$(java_faults leader "$cluster_bootstrap" "$topic" "$1" || true)"
        if [[ "$leader" =~ ^[123]$ ]]; then
            echo "$leader"
            return
        fi
        ((SECONDS < deadline)) || fail "partition $1 has no leader ($leader)"
        sleep 0.2
    done
}

node_pid() {
    cat "$cluster_work/cluster/node-$1.pid"
}

await_acks "steady"

killed="$(leader_of 0)"
cluster_sh kill "$killed" || fail "cluster.sh kill $killed"
await_acks "leader $killed of partition 0 killed"
cluster_sh start "$killed" || fail "cluster.sh start $killed"
await_acks "node $killed restarted"

paused="$(leader_of 1)"
kill -STOP "$(node_pid "$paused")"
# Acknowledged again only once the paused leader is fenced (3 s session)
# and partition 1 led elsewhere.
await_acks "leader $paused of partition 1 paused"
kill -CONT "$(node_pid "$paused")"
await_acks "node $paused resumed"

leader2="$(leader_of 2)"
follower=$((leader2 % 3 + 1))
cluster_sh kill "$follower" || fail "cluster.sh kill $follower"
await_acks "follower $follower of partition 2 killed"
cluster_sh start "$follower" || fail "cluster.sh start $follower"
await_acks "node $follower restarted"

touch "$stop"
wait "$producer_pid" || fail "the producer failed: $(tail -n 3 "$cluster_work/produce.out")"
producer_pid=""
produced="$(cat "$cluster_work/produce.out")"
echo "producer: $produced"
verdict="$(java_faults verify "$cluster_bootstrap" "$topic" 3 "$notes" "faults-$topic")" || {
    echo "$verdict"
    fail "$(grep '^problem: ' <<<"$verdict" | tail -n 1 || echo "verify failed")"
}
echo "$verdict"
counts="$(head -n 1 <<<"$verdict")"
echo "cluster java-faults: PASS ($counts; $produced; leader $killed killed and restarted, leader $paused" \
    "paused and resumed, follower $follower killed and restarted; $((SECONDS - started)) s)"
