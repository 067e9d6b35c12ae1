#!/usr/bin/env bash
# Every client roundtrip, consumer-group and admin run against one real
# broker: builds the release binary, starts it on a temp data dir and an
# ephemeral port (learned from its "rafka listening on" line), runs each
# <client>-roundtrip.sh, <client>-group.sh and <client>-admin.sh (each
# installs its client), stops the broker with SIGTERM (it must exit 0), and
# prints one line per run and a final "N passed, N failed" line. The
# SASL, TLS, ACL, transaction and cluster runs bring brokers of their own.
#
# usage: scripts/compat/run-all.sh [RUN...]
#   RUN: confluent-kafka kafka-python kafkajs java kcat (roundtrips),
#        kafka-python-group kafkajs-group java-group, and the admin runs
#        confluent-kafka-admin java-admin kafka-python-admin, java-quota (a
#        producer quota seen by the Java client, java-quota.sh), and on brokers
#        of their own: sasl (every client over SASL_PLAINTEXT and SASL_SSL
#        with PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER, and their refusals,
#        sasl-roundtrip.sh), tls (every roundtrip over SSL and mTLS, and
#        refusals: another CA, plaintext on the TLS port;
#        tls-roundtrip.sh), acl-matrix (users and ACLs over SCRAM across a
#        kill -9, acl-matrix.sh), confluent-kafka-txn java-txn
#        (transactions, confluent-kafka-txn.sh, java-txn.sh), java-cluster
#        confluent-kafka-cluster (a 3-node cluster of their own from
#        scripts/cluster.sh: brokers, topics led across them, groups; Java
#        also across a broker's kill and restart, java-cluster.sh,
#        confluent-kafka-cluster.sh), java-faults-cluster (the Java
#        producer through leader and follower kills and a paused leader,
#        every acknowledged record checked, java-faults-cluster.sh)
#        (default: all)
#   env: COUNT, CODECS (passed to the roundtrips), GROUP_COUNT (to the group
#        runs), CORES (broker shards, 2)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
clients=("$@")
if [[ ${#clients[@]} -eq 0 ]]; then
    clients=(confluent-kafka kafka-python kafkajs java kcat kafka-python-group kafkajs-group java-group
        confluent-kafka-admin java-admin kafka-python-admin java-quota sasl tls acl-matrix
        confluent-kafka-txn java-txn java-cluster confluent-kafka-cluster java-faults-cluster)
fi
startup_timeout_s=60
shutdown_timeout_s=30

work="$(mktemp -d)"
broker_pid=""
cleanup() {
    if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -KILL "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/data" "$work/logs"

echo "run-all: building the release binary"
cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin rafka
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
rafka_bin="$target_dir/release/rafka"
# sasl-roundtrip.sh, tls-roundtrip.sh, acl-matrix.sh and the *-txn.sh and
# *-cluster.sh runs start brokers of their own from the same binary.
export RAFKA_BIN="$rafka_bin"

# Starts the broker and sets broker_pid and bootstrap from its listening line:
# "rafka listening on 127.0.0.1:PORT shards=N data_dir=DIR recovered_partitions=K".
start_broker() {
    local line="" addr broker_out
    # stdout goes through a FIFO so that this shell can read it with a
    # deadline and a background cat can keep draining it afterwards.
    mkfifo "$work/broker.out"
    RUST_LOG="${RUST_LOG:-info}" "$rafka_bin" --listen 127.0.0.1:0 --data-dir "$work/data" \
        --cores "${CORES:-2}" --metrics-listen none >"$work/broker.out" 2>"$work/logs/broker.log" &
    broker_pid=$!
    exec {broker_out}<"$work/broker.out"
    while [[ "$line" != "rafka listening on "* ]]; do
        if ! read -r -t "$startup_timeout_s" line <&"$broker_out"; then
            echo "run-all: the broker printed no listening line within ${startup_timeout_s} s; log:" >&2
            tail -n 30 "$work/logs/broker.log" >&2
            exit 1
        fi
    done
    # Keep draining stdout so that the broker never blocks on a full pipe.
    cat <&"$broker_out" >/dev/null &
    exec {broker_out}<&-
    addr="${line#rafka listening on }"
    bootstrap="${addr%% *}"
    echo "run-all: $line"
}

# SIGTERM, then waits (bounded) for exit status 0.
stop_broker() {
    local status=0
    kill -TERM "$broker_pid"
    timeout "$shutdown_timeout_s" tail --pid="$broker_pid" -f /dev/null || {
        echo "run-all: broker still running ${shutdown_timeout_s} s after SIGTERM; killing it" >&2
        kill -KILL "$broker_pid" 2>/dev/null || true
    }
    wait "$broker_pid" || status=$?
    broker_pid=""
    return "$status"
}

start_broker
passed=0
failed=0
summary=()
for client in "${clients[@]}"; do
    # A group run is its own script and verdict line: "group CLIENT: ...".
    case "$client" in
        *-group) script="$here/$client.sh" verdict_prefix="group ${client%-group}: " ;;
        *-admin) script="$here/$client.sh" verdict_prefix="admin ${client%-admin}: " ;;
        *-txn) script="$here/$client.sh" verdict_prefix="txn ${client%-txn}: " ;;
        *-quota) script="$here/$client.sh" verdict_prefix="quota ${client%-quota}: " ;;
        *-cluster) script="$here/$client.sh" verdict_prefix="cluster ${client%-cluster}: " ;;
        tls) script="$here/tls-roundtrip.sh" verdict_prefix="roundtrip tls: " ;;
        acl-matrix) script="$here/acl-matrix.sh" verdict_prefix="acl-matrix confluent-kafka: " ;;
        *) script="$here/$client-roundtrip.sh" verdict_prefix="roundtrip $client: " ;;
    esac
    log="$work/logs/$client.log"
    if [[ ! -x "$script" ]]; then
        summary+=("$client: FAIL (no $(basename "$script"))")
        failed=$((failed + 1))
        continue
    fi
    echo "run-all: $client"
    status=0
    BOOTSTRAP="$bootstrap" RAFKA_BIN="$rafka_bin" "$script" >"$log" 2>&1 || status=$?
    verdict="$(grep -F "$verdict_prefix" "$log" | tail -n 1 || true)"
    verdict="${verdict#"$verdict_prefix"}"
    if [[ $status -eq 0 ]]; then
        passed=$((passed + 1))
        summary+=("$client: ${verdict:-PASS}")
    else
        failed=$((failed + 1))
        summary+=("$client: ${verdict:-FAIL (exit $status)}")
        echo "run-all: $client failed (exit $status); its log:"
        tail -n 40 "$log" | sed 's/^/    /'
    fi
done

broker_status=0
stop_broker || broker_status=$?
if [[ $broker_status -eq 0 ]]; then
    passed=$((passed + 1))
    summary+=("broker: exit 0 on SIGTERM")
else
    failed=$((failed + 1))
    summary+=("broker: FAIL (exit $broker_status on SIGTERM)")
fi
if [[ $failed -gt 0 ]]; then
    echo "run-all: broker log (tail):"
    tail -n 40 "$work/logs/broker.log" | sed 's/^/    /'
fi

echo "---- compat summary ----"
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
