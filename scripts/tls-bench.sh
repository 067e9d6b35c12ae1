#!/usr/bin/env bash
# TLS and SASL cost on this machine: starts the release broker with a
# PLAINTEXT, an SSL, a SASL_PLAINTEXT and a SASL_SSL listener (a throwaway
# CA and server certificate made with openssl; SASL logs in with
# SCRAM-SHA-512 as a user seeded by --add-scram), measures produce and
# consume throughput over each with confluent-kafka (scripts/tls_bench.py,
# same run, same topic layout), and
# TLS handshakes per second with `openssl s_time` (new sessions, TLS 1.3,
# one client process: the client's own crypto counts too).
#
# usage: scripts/tls-bench.sh   env: RECORDS (300000), RECORD_BYTES (1024),
#        ROUNDS (5: medians over rounds), CORES (broker shards, 2),
#        HANDSHAKE_SECS (5), RAFKA_BIN,
#        PROTOCOLS (the listeners measured, in order; default
#        "PLAINTEXT SSL SASL_PLAINTEXT SASL_SSL")
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
listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0
ssl.keystore.location=$work/server.pem
sasl.enabled.mechanisms=SCRAM-SHA-512
PROPS
mkdir -p "$work/data"
mkfifo "$work/out"
RUST_LOG=warn "$RAFKA_BIN" --config "$work/server.properties" --data-dir "$work/data" \
    --cores "${CORES:-2}" --metrics-listen none \
    --add-scram 'SCRAM-SHA-512=[name=bench,password=bench-secret]' >"$work/out" 2>"$work/broker.log" &
broker_pid=$!
exec {out}<"$work/out"
line=""
while [[ "$line" != "rafka listening on "* ]]; do
    read -r -t 60 line <&"$out" || { tail "$work/broker.log" >&2; exit 1; }
done
cat <&"$out" >/dev/null &
listener() { tr ' ,' '\n\n' <<<"${line#*listeners=}" | sed -n "s|^$1://||p"; }
ssl="$(listener SSL)"
echo "tls-bench: $(nproc) CPUs, broker shards ${CORES:-2}, $(openssl version)"
specs=()
for protocol in ${PROTOCOLS:-PLAINTEXT SSL SASL_PLAINTEXT SASL_SSL}; do
    specs+=("$protocol=$(listener "$protocol")")
done
"$python" "$here/tls_bench.py" "$work/ca.pem" "${RECORDS:-300000}" "${RECORD_BYTES:-1024}" "${ROUNDS:-5}" "${specs[@]}"
handshakes="$(openssl s_time -connect "$ssl" -CAfile "$work/ca.pem" -new -time "${HANDSHAKE_SECS:-5}" 2>&1 |
    grep -E 'connections in [0-9.]+s' | head -n 1)"
echo "SSL       handshakes (openssl s_time -new, TLS 1.3): $handshakes"
kill -TERM "$broker_pid"
wait "$broker_pid"
broker_pid=""
