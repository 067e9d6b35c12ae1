#!/usr/bin/env bash
# TLS cost on this machine: starts the release broker with a PLAINTEXT and
# an SSL listener (a throwaway CA and server certificate made with
# openssl), measures produce and consume throughput over each with
# confluent-kafka (scripts/tls_bench.py, same run, same topic layout), and
# TLS handshakes per second with `openssl s_time` (new sessions, TLS 1.3,
# one client process: the client's own crypto counts too).
#
# usage: scripts/tls-bench.sh   env: RECORDS (300000), RECORD_BYTES (1024),
#        CORES (broker shards, 2), HANDSHAKE_SECS (5), RAFKA_BIN
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
work="$(mktemp -d)"
broker_pid=""
cleanup() {
    [[ -n "$broker_pid" ]] && kill -KILL "$broker_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
if [[ -z "${RAFKA_BIN:-}" ]]; then
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin rafka
    target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    RAFKA_BIN="$target_dir/release/rafka"
fi
"$here/compat/setup-python.sh" >&2
python="$here/compat/.cache/venv/bin/python"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key" 2>/dev/null
openssl req -x509 -new -key "$work/ca.key" -subj "/CN=bench CA" -days 1 -out "$work/ca.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/server.key" 2>/dev/null
openssl req -new -key "$work/server.key" -subj "/CN=localhost" -out "$work/server.csr"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
    -days 1 -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null
cat "$work/server.key" "$work/server.crt" >"$work/server.pem"
cat >"$work/server.properties" <<PROPS
listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0
ssl.keystore.location=$work/server.pem
PROPS
mkdir -p "$work/data"
mkfifo "$work/out"
RUST_LOG=warn "$RAFKA_BIN" --config "$work/server.properties" --data-dir "$work/data" \
    --cores "${CORES:-2}" --metrics-listen none >"$work/out" 2>"$work/broker.log" &
broker_pid=$!
exec {out}<"$work/out"
line=""
while [[ "$line" != "rafka listening on "* ]]; do
    read -r -t 60 line <&"$out" || { tail "$work/broker.log" >&2; exit 1; }
done
cat <&"$out" >/dev/null &
listener() { tr ' ,' '\n\n' <<<"${line#*listeners=}" | sed -n "s|^$1://||p"; }
plain="$(listener PLAINTEXT)"
ssl="$(listener SSL)"
echo "tls-bench: $(nproc) CPUs, broker shards ${CORES:-2}, $(openssl version)"
"$python" "$here/tls_bench.py" "$plain" "$ssl" "$work/ca.pem" "${RECORDS:-300000}" "${RECORD_BYTES:-1024}"
handshakes="$(openssl s_time -connect "$ssl" -CAfile "$work/ca.pem" -new -time "${HANDSHAKE_SECS:-5}" 2>&1 |
    grep -E 'connections in [0-9.]+s' | head -n 1)"
echo "SSL       handshakes (openssl s_time -new, TLS 1.3): $handshakes"
kill -TERM "$broker_pid"
wait "$broker_pid"
broker_pid=""
