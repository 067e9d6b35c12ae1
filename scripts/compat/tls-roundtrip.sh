#!/usr/bin/env bash
# Roundtrips over TLS with real clients: makes a CA, a server certificate
# (localhost, 127.0.0.1) and a client certificate with openssl in a temp
# dir, starts the release broker with three listeners on ephemeral ports
# (PLAINTEXT, SSL verified by the client, MTLS: SSL with
# ssl.client.auth=required), learns their ports from the ready line's
# listeners=, then runs each client's <client>-roundtrip.sh over SSL and
# over MTLS with its certificate (TLS_CA, TLS_CERT, TLS_KEY, TLS_KEYSTORE,
# see roundtrip/*); then per client the refusals on the SSL listener (a
# client trusting another CA, a plaintext client on the TLS port: each must
# end in that client's own error, tls/tls_refusal.*), checks that the SSL
# listener still serves and that MTLS refuses a client without a
# certificate, and stops the broker (exit 0 on SIGTERM).
#
# usage: scripts/compat/tls-roundtrip.sh [CLIENT...]
#   CLIENT: confluent-kafka kcat kafka-python kafkajs java (default: all)
#   env: RAFKA_BIN (default: build the release binary), COUNT (records
#        per codec, 200), CODECS (default "none gzip", which every client has), CORES (2)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
clients=("$@")
if [[ ${#clients[@]} -eq 0 ]]; then
    clients=(confluent-kafka kcat kafka-python kafkajs java)
fi
export COUNT="${COUNT:-200}" CODECS="${CODECS:-none gzip}"

work="$(mktemp -d)"
broker_pid=""
cleanup() {
    if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -KILL "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/data" "$work/pki" "$work/logs"

if [[ -z "${RAFKA_BIN:-}" ]]; then
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin rafka
    target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    RAFKA_BIN="$target_dir/release/rafka"
fi

# The PKI: EC P-256 keys (PKCS#8, as Java's PEM key store wants them).
pki="$work/pki"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key "$pki/ca.key"
openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=rafka compat CA" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/ca.pem"
issue() { # issue NAME SUBJECT EXTENSIONS
    key "$pki/$1.key"
    openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
    printf '%s\n' "$3" >"$pki/$1.ext"
    openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
    cat "$pki/$1.key" "$pki/$1.crt" >"$pki/$1.pem"
}
issue server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1"
# A second CA that signed nothing the broker has: clients trusting only it
# must refuse the server.
key "$pki/other-ca.key"
openssl req -x509 -new -key "$pki/other-ca.key" -subj "/CN=some other CA" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$pki/other-ca.pem"
issue client "/O=acme/OU=eng/CN=compat-client" "extendedKeyUsage=clientAuth"

cat >"$work/server.properties" <<EOF
listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,MTLS://127.0.0.1:0
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL
ssl.keystore.type=PEM
ssl.keystore.location=$pki/server.pem
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.location=$pki/ca.pem
EOF

mkfifo "$work/broker.out"
RUST_LOG="${RUST_LOG:-info}" "$RAFKA_BIN" --config "$work/server.properties" --data-dir "$work/data" \
    --cores "${CORES:-2}" --metrics-listen none >"$work/broker.out" 2>"$work/logs/broker.log" &
broker_pid=$!
exec {broker_out}<"$work/broker.out"
line=""
while [[ "$line" != "rafka listening on "* ]]; do
    if ! read -r -t 60 line <&"$broker_out"; then
        echo "tls: no listening line within 60 s; log:" >&2
        tail -n 30 "$work/logs/broker.log" >&2
        echo "roundtrip tls: FAIL (broker did not start)"
        exit 1
    fi
done
cat <&"$broker_out" >/dev/null &
exec {broker_out}<&-
echo "tls: $line"
listener() { # the bound address of listener $1 from "listeners=NAME://ADDR,..."
    tr ' ,' '\n\n' <<<"${line#*listeners=}" | sed -n "s|^$1://||p"
}
ssl="$(listener SSL)"
mtls="$(listener MTLS)"

passed=()
failed=()
for client in "${clients[@]}"; do
    for mode in ssl mtls; do
        log="$work/logs/$client-$mode.log"
        status=0
        if [[ $mode == ssl ]]; then
            BOOTSTRAP="$ssl" TLS_CA="$pki/ca.pem" "$here/$client-roundtrip.sh" >"$log" 2>&1 || status=$?
        else
            BOOTSTRAP="$mtls" TLS_CA="$pki/ca.pem" TLS_CERT="$pki/client.crt" TLS_KEY="$pki/client.key" \
                TLS_KEYSTORE="$pki/client.pem" "$here/$client-roundtrip.sh" >"$log" 2>&1 || status=$?
        fi
        verdict="$(grep -F "roundtrip " "$log" | tail -n 1 || true)"
        echo "tls: $client over $mode: ${verdict:-exit $status}"
        if [[ $status -eq 0 ]]; then
            passed+=("$client/$mode")
        else
            failed+=("$client/$mode")
            tail -n 30 "$log" | sed 's/^/    /'
        fi
    done
done

# Refusals on the SSL listener, per client: trusting another CA fails the
# certificate check; a plaintext client on the TLS port gets its connection
# closed, never an answer (tls/tls_refusal.*, kcat inline).
kcat_refusal() {
    local mode="$1" out expect
    if [[ $mode == wrong-ca ]]; then
        out="$(timeout 30 kcat -L -b "$ssl" -m 10 -X security.protocol=SSL -X "ssl.ca.location=$pki/other-ca.pem" 2>&1)" &&
            { echo "kcat $mode: FAIL: metadata answered"; return 1; }
        expect="certificate verify failed"
    else
        out="$(timeout 30 kcat -L -b "$ssl" -m 10 -X broker.address.family=v4 2>&1)" &&
            { echo "kcat $mode: FAIL: metadata answered"; return 1; }
        expect="connecting to a SSL listener?"
    fi
    if grep -qF "$expect" <<<"$out"; then
        echo "kcat $mode: OK: $(grep -m1 -F "$expect" <<<"$out")"
        return 0
    fi
    echo "kcat $mode: FAIL: $out"
    return 1
}
refusal() { # refusal CLIENT MODE
    case "$1" in
        confluent-kafka | kafka-python)
            "$here/.cache/venv/bin/python" "$here/tls/tls_refusal.py" "$1" "$ssl" "$2" "$pki/other-ca.pem" ;;
        kafkajs)
            NODE_PATH="$here/.cache/node/node_modules" node "$here/tls/tls_refusal.js" "$ssl" "$2" "$pki/other-ca.pem" ;;
        java)
            mkdir -p "$work/java-classes"
            javac --release 17 -d "$work/java-classes" -cp "$(cat "$here/.cache/java/classpath")" \
                "$here/tls/TlsRefusal.java" &&
                java -cp "$work/java-classes:$(cat "$here/.cache/java/classpath")" \
                    -Dorg.slf4j.simpleLogger.defaultLogLevel=off TlsRefusal "$ssl" "$2" "$pki/other-ca.pem" ;;
        kcat) kcat_refusal "$2" ;;
    esac
}
for client in "${clients[@]}"; do
    for mode in wrong-ca plaintext; do
        log="$work/logs/$client-$mode.log"
        status=0
        timeout 120 bash -c "$(declare -f refusal kcat_refusal); here='$here' ssl='$ssl' pki='$pki' \
            work='$work'; refusal '$client' '$mode'" >"$log" 2>&1 || status=$?
        echo "tls: $client $mode: $(tail -n 1 "$log")"
        if [[ $status -eq 0 ]]; then passed+=("$client/$mode"); else failed+=("$client/$mode"); fi
    done
done
# The refused clients harmed nobody: the SSL listener still answers.
if command -v kcat >/dev/null; then
    if timeout 30 kcat -L -b "$ssl" -m 10 -X security.protocol=SSL -X "ssl.ca.location=$pki/ca.pem" \
        >>"$work/logs/after-refusals.log" 2>&1; then
        passed+=("ssl-serves-after-refusals")
    else
        failed+=("ssl-serves-after-refusals")
    fi
fi

# Without a certificate the MTLS listener refuses the handshake (kcat,
# asking for metadata, gets none); with one it answers.
mtls_kcat() {
    timeout 30 kcat -L -b "$mtls" -m 10 -X security.protocol=SSL -X "ssl.ca.location=$pki/ca.pem" "$@" \
        >>"$work/logs/mtls-kcat.log" 2>&1
}
if command -v kcat >/dev/null; then
    if mtls_kcat; then
        failed+=("mtls-accepted-no-certificate")
    elif mtls_kcat -X "ssl.certificate.location=$pki/client.crt" -X "ssl.key.location=$pki/client.key"; then
        passed+=("mtls-refuses-no-certificate")
    else
        failed+=("mtls-metadata-with-certificate")
    fi
fi

kill -TERM "$broker_pid"
status=0
timeout 30 tail --pid="$broker_pid" -f /dev/null || kill -KILL "$broker_pid" 2>/dev/null || true
wait "$broker_pid" || status=$?
broker_pid=""
if [[ $status -ne 0 ]]; then
    failed+=("broker-exit-$status")
fi
if [[ ${#failed[@]} -eq 0 ]]; then
    echo "roundtrip tls: PASS (${passed[*]})"
    exit 0
fi
echo "roundtrip tls: FAIL (failed: ${failed[*]}; passed: ${passed[*]:-none})"
tail -n 20 "$work/logs/broker.log" | sed 's/^/    /'
exit 1
