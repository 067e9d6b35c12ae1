#!/usr/bin/env bash
# The ACL matrix with a real client: starts its own broker (SASL_PLAINTEXT
# listener, SCRAM-SHA-256, StandardAuthorizer, super user admin seeded with
# --add-scram), runs acl/acl_matrix.py setup (users and ACLs through the
# Admin API, every decision checked), kills the broker with SIGKILL,
# restarts it on the same data dir and runs acl/acl_matrix.py verify.
#
# usage: scripts/compat/acl-matrix.sh   (env: RAFKA_BIN, default: builds the release binary)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
"$here/setup-python.sh" >&2
python="$here/.cache/venv/bin/python"
if [[ -z "${RAFKA_BIN:-}" ]]; then
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin rafka
    target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    RAFKA_BIN="$target_dir/release/rafka"
fi

work="$(mktemp -d)"
broker_pid=""
cleanup() {
    if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -KILL "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/data"

# Each start on a fresh port: right after a SIGKILL the old one may still
# be held by the dead broker's connections.
start_broker() {
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    cat >"$work/server.properties" <<PROPS
listeners=SASL_PLAINTEXT://127.0.0.1:$port
sasl.enabled.mechanisms=SCRAM-SHA-256
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin
PROPS
    : >"$work/broker.out"
    "$RAFKA_BIN" --config "$work/server.properties" --data-dir "$work/data" --cores 2 --metrics-listen none \
        --add-scram 'SCRAM-SHA-256=[name=admin,password=admin-secret]' \
        >"$work/broker.out" 2>>"$work/broker.log" &
    broker_pid=$!
    for _ in $(seq 1 600); do
        grep -q "^rafka listening on " "$work/broker.out" && return 0
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "acl-matrix: the broker did not start; log:" >&2
    tail -n 30 "$work/broker.log" >&2
    exit 1
}

start_broker
"$python" "$here/acl/acl_matrix.py" "127.0.0.1:$port" setup
kill -KILL "$broker_pid"
wait "$broker_pid" 2>/dev/null || true
broker_pid=""
start_broker
"$python" "$here/acl/acl_matrix.py" "127.0.0.1:$port" verify
kill -TERM "$broker_pid"
wait "$broker_pid"
broker_pid=""
