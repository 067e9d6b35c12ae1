#!/usr/bin/env bash
# Captures the record-batch fixtures of rafka-proto/tests/fixtures/: runs the
# installers, then for every client x codec starts the capture tool
# (rafka-proto/examples/capture_produce.rs) on a free port, lets the client
# send the ten fixture records to topic <client>-<codec>, and copies the
# captured <client>-<codec>.records files into the fixtures directory.
#
# usage: scripts/compat/capture-fixtures.sh [CLIENT...]
#   CLIENT: librdkafka kcat java kafka-python kafkajs (default: all)
set -euo pipefail

# Keep the client programs' directory free of __pycache__.
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
fixtures="$repo/rafka-proto/tests/fixtures"
clients=("$@")
if [[ ${#clients[@]} -eq 0 ]]; then
    clients=(librdkafka kcat java kafka-python kafkajs)
fi

# The codecs each client can send here; kafkajs has no zstd (see setup-node.sh).
codecs_of() {
    case "$1" in
        kafkajs) echo none gzip snappy lz4 ;;
        *) echo none gzip snappy lz4 zstd ;;
    esac
}

# Runs each needed installer once.
setup() {
    local client installer
    local -A installed=()
    for client in "${clients[@]}"; do
        case "$client" in
            librdkafka | kafka-python) installer=setup-python.sh ;;
            kcat) installer=setup-kcat.sh ;;
            java) installer=setup-java.sh ;;
            kafkajs) installer=setup-node.sh ;;
            *) echo "capture: unknown client $client" >&2 && exit 2 ;;
        esac
        if [[ -z "${installed[$installer]:-}" ]]; then
            "$here/$installer"
            installed[$installer]=1
        fi
    done
}

# Sets client_cmd to the command line of one client program, which takes
# BOOTSTRAP TOPIC CODEC after it.
client_command() {
    local python="$here/.cache/venv/bin/python"
    case "$1" in
        librdkafka) client_cmd=("$python" "$here/capture/librdkafka_produce.py") ;;
        kafka-python) client_cmd=("$python" "$here/capture/kafka_python_produce.py") ;;
        kcat) client_cmd=("$here/capture/kcat_produce.sh") ;;
        java) client_cmd=(java -cp "$(cat "$here/.cache/java/classpath")" JavaProduce) ;;
        kafkajs)
            client_cmd=(env "NODE_PATH=$here/.cache/node/node_modules"
                node "$here/capture/kafkajs_produce.js")
            ;;
    esac
}

capture_one() {
    local client="$1" codec="$2" out="$3"
    local topic="$client-$codec" log="$out/logs/$client-$codec.log" line port status=0
    echo "capture: $topic"
    coproc CAPTURE { exec "$capture_bin" --port 0 --out "$out" --topic "$topic" 2>"$out/logs/$topic.capture.log"; }
    # The tool prints "listening on 127.0.0.1:<port>" once it is bound.
    read -r line <&"${CAPTURE[0]}"
    port="${line##*:}"
    client_command "$client"
    timeout 120 "${client_cmd[@]}" "127.0.0.1:$port" "$topic" "$codec" >"$log" 2>&1 || status=$?
    kill "$CAPTURE_PID" 2>/dev/null || true
    wait "$CAPTURE_PID" 2>/dev/null || true
    if [[ $status -ne 0 || ! -s "$out/$topic.records" ]]; then
        echo "capture: $topic failed (exit $status); client log:" >&2
        tail -n 20 "$log" >&2
        echo "capture: tool log:" >&2
        tail -n 20 "$out/logs/$topic.capture.log" >&2
        return 1
    fi
}

setup
echo "capture: building the capture tool"
cargo build --quiet --manifest-path "$repo/Cargo.toml" -p rafka-proto --example capture_produce
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
capture_bin="$target_dir/debug/examples/capture_produce"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/logs" "$fixtures"
for client in "${clients[@]}"; do
    for codec in $(codecs_of "$client"); do
        capture_one "$client" "$codec" "$out"
    done
done
captured=("$out"/*.records)
cp "${captured[@]}" "$fixtures/"
echo "capture: ${#captured[@]} fixtures copied to $fixtures"
