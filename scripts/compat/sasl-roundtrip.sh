#!/usr/bin/env bash
# SASL_PLAINTEXT + PLAIN with every real client: starts its own broker whose
# one listener is SASL_PLAINTEXT (PLAIN user alice from the listener's JAAS
# config), then per client a produce + consume round trip with the right
# password and a run with a wrong one that must end in the client's
# authentication error (sasl/sasl_python.py, sasl/sasl_kafkajs.js,
# sasl/SaslJava.java; kcat inline). Installs the clients (setup-*.sh).
# Ends with "roundtrip sasl: PASS|FAIL ...", exit 0 only if all passed.
#
# usage: scripts/compat/sasl-roundtrip.sh [CLIENT...]
#   CLIENT: confluent-kafka kafka-python kafkajs java kcat (default: all)
#   env: RAFKA_BIN (the broker binary; default: build the release binary)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
clients=("$@")
[[ ${#clients[@]} -gt 0 ]] || clients=(confluent-kafka kafka-python kafkajs java kcat)
user=alice
password=alice-secret
client_timeout_s=120

work="$(mktemp -d)"
broker_pid=""
cleanup() {
    if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "${RAFKA_BIN:-}" ]]; then
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin rafka
    target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    RAFKA_BIN="$target_dir/release/rafka"
fi

cat >"$work/server.properties" <<PROPS
listener.security.protocol.map=PLAINTEXT:SASL_PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$user="$password";
PROPS
mkfifo "$work/broker.out"
RUST_LOG="${RUST_LOG:-info}" "$RAFKA_BIN" --config "$work/server.properties" --listen 127.0.0.1:0 \
    --data-dir "$work/data" --cores 1 --metrics-listen none >"$work/broker.out" 2>"$work/broker.log" &
broker_pid=$!
exec {broker_out}<"$work/broker.out"
line=""
while [[ "$line" != "rafka listening on "* ]]; do
    if ! read -r -t 60 line <&"$broker_out"; then
        echo "sasl: the broker printed no listening line; log:" >&2
        tail -n 30 "$work/broker.log" >&2
        exit 1
    fi
done
cat <&"$broker_out" >/dev/null &
exec {broker_out}<&-
addr="${line#rafka listening on }"
bootstrap="${addr%% *}"
echo "sasl: SASL_PLAINTEXT broker on $bootstrap"

kcat_run() {
    local topic="$1" pass="$2" mode="$3" out
    local -a sasl=(-X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=PLAIN
        -X "sasl.username=$user" -X "sasl.password=$pass" -X broker.address.family=v4)
    if [[ "$mode" == bad ]]; then
        out="$(kcat -b "$bootstrap" "${sasl[@]}" -L -m 10 2>&1)" && {
            echo "kcat bad: FAIL: metadata answered without authentication"
            return 1
        }
        if grep -q "Authentication failed: Invalid username or password" <<<"$out"; then
            echo "authentication error: $(grep -m1 "Authentication failed" <<<"$out")"
            echo "kcat bad: OK"
            return 0
        fi
        echo "kcat bad: FAIL: $out"
        return 1
    fi
    seq 0 19 | sed 's/^/value-/' | kcat -b "$bootstrap" "${sasl[@]}" -P -t "$topic" -p 0 -X acks=all
    out="$(kcat -b "$bootstrap" "${sasl[@]}" -C -t "$topic" -p 0 -o beginning -c 20 -e -f '%s\n')"
    if [[ "$out" == "$(seq 0 19 | sed 's/^/value-/')" ]]; then
        echo "kcat good: OK"
        return 0
    fi
    echo "kcat good: FAIL: read back $out"
    return 1
}

client_run() {
    local client="$1" topic="$2" pass="$3" mode="$4"
    case "$client" in
        confluent-kafka | kafka-python)
            "$here/.cache/venv/bin/python" "$here/sasl/sasl_python.py" "$client" "$bootstrap" "$topic" "$user" "$pass" "$mode" ;;
        kafkajs)
            NODE_PATH="$here/.cache/node/node_modules" node "$here/sasl/sasl_kafkajs.js" "$bootstrap" "$topic" "$user" "$pass" "$mode" ;;
        java)
            java -cp "$here/.cache/java/sasl-classes:$(cat "$here/.cache/java/classpath")" \
                -Dorg.slf4j.simpleLogger.defaultLogLevel=off SaslJava "$bootstrap" "$topic" "$user" "$pass" "$mode" ;;
        kcat) kcat_run "$topic" "$pass" "$mode" ;;
        *) echo "sasl: unknown client $client"; return 2 ;;
    esac
}

for client in "${clients[@]}"; do
    case "$client" in
        confluent-kafka | kafka-python) "$here/setup-python.sh" >&2 ;;
        kafkajs) "$here/setup-node.sh" >&2 ;;
        java)
            "$here/setup-java.sh" >&2
            mkdir -p "$here/.cache/java/sasl-classes"
            javac --release 17 -d "$here/.cache/java/sasl-classes" \
                -cp "$(cat "$here/.cache/java/classpath")" "$here/sasl/SaslJava.java" ;;
        kcat) "$here/setup-kcat.sh" >&2 ;;
    esac
done

passed=()
failed=()
for client in "${clients[@]}"; do
    for mode in good bad; do
        pass="$password"
        [[ "$mode" == good ]] || pass="wrong-$password"
        topic="sasl-$client-$(date +%s)-$$-$RANDOM"
        status=0
        timeout "$client_timeout_s" bash -c "$(declare -f client_run kcat_run); \
            here='$here' bootstrap='$bootstrap' user='$user'; client_run '$client' '$topic' '$pass' '$mode'" || status=$?
        if [[ $status -eq 0 ]]; then passed+=("$client-$mode"); else failed+=("$client-$mode"); fi
    done
done

if [[ ${#failed[@]} -eq 0 ]]; then
    echo "roundtrip sasl: PASS (${passed[*]})"
    exit 0
fi
echo "sasl: broker log (tail):"
tail -n 20 "$work/broker.log"
echo "roundtrip sasl: FAIL (failed: ${failed[*]}; passed: ${passed[*]:-none})"
exit 1
