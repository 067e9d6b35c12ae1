#!/usr/bin/env bash
# SASL with every real client, as a matrix: starts its own broker with two
# listeners, SASL_PLAINTEXT and SASL_SSL (server certificate from a
# throwaway CA made with openssl), each enabling PLAIN (user alice from the
# listener's JAAS config), SCRAM-SHA-256 and SCRAM-SHA-512 (alice created at
# start with --add-scram) and OAUTHBEARER (Kafka's unsecured JWS
# validation). Per client, one cell per listener x mechanism: a produce +
# consume round trip of concrete values on a topic of its own; then the
# refusals, each with the client's own error while the broker keeps
# serving: wrong password (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), an expired
# OAUTHBEARER token (where the client can supply its own token) and, on
# SASL_SSL, a client trusting another CA; then one more round trip. One
# process per client runs all its cells (sasl/sasl_python.py,
# sasl/sasl_kafkajs.js, sasl/SaslJava.java; kcat inline), one line per cell
# "CLIENT LISTENER MECHANISM KIND: OK|FAIL|SKIP ...". Installs the clients
# (setup-*.sh). Ends with "roundtrip sasl: PASS|FAIL ...", exit 0 only if
# every cell passed (a SKIP, a cell the client cannot do, says why) and
# the broker exited 0 on SIGTERM.
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
# One client's whole run (every cell); each call inside has its own bound.
client_timeout_s=240
run_id="$(date +%s)-$$"

# The cells, LISTENER:MECHANISM:KIND, the same for every client.
cells=()
for listener in SASL_PLAINTEXT SASL_SSL; do
    for mechanism in PLAIN SCRAM-SHA-256 SCRAM-SHA-512 OAUTHBEARER; do
        cells+=("$listener:$mechanism:roundtrip")
    done
done
cells+=(SASL_PLAINTEXT:PLAIN:wrong-password SASL_SSL:SCRAM-SHA-256:wrong-password
    SASL_PLAINTEXT:SCRAM-SHA-512:wrong-password SASL_SSL:OAUTHBEARER:expired-token
    SASL_SSL:PLAIN:wrong-ca SASL_SSL:PLAIN:roundtrip-after-refusals)

work="$(mktemp -d)"
broker_pid=""
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -KILL "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/pki" "$work/logs"

if [[ -z "${RAFKA_BIN:-}" ]]; then
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin rafka
    target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    RAFKA_BIN="$target_dir/release/rafka"
fi

# The PKI, as tls-roundtrip.sh makes it, plus a second CA that signed
# nothing the broker serves (the wrong-ca cells trust only it).
pki="$work/pki"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # ca NAME SUBJECT
    key "$pki/$1.key"
    openssl req -x509 -new -key "$pki/$1.key" -subj "$2" -days 2 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$pki/$1.pem"
}
ca ca "/CN=rafka compat CA"
ca other-ca "/CN=some other CA"
key "$pki/server.key"
openssl req -new -key "$pki/server.key" -subj "/CN=localhost" -out "$pki/server.csr"
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$pki/server.ext"
openssl x509 -req -in "$pki/server.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$pki/server.ext" -out "$pki/server.crt" 2>/dev/null
cat "$pki/server.key" "$pki/server.crt" >"$pki/server.pem"

plain_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required user_$user=\"$password\";"
oauth_jaas="org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
cat >"$work/server.properties" <<PROPS
listeners=SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
ssl.keystore.type=PEM
ssl.keystore.location=$pki/server.pem
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER
listener.name.sasl_plaintext.plain.sasl.jaas.config=$plain_jaas
listener.name.sasl_ssl.plain.sasl.jaas.config=$plain_jaas
listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config=$oauth_jaas
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=$oauth_jaas
group.initial.rebalance.delay.ms=0
PROPS
mkfifo "$work/broker.out"
RUST_LOG="${RUST_LOG:-info}" "$RAFKA_BIN" --config "$work/server.properties" \
    --add-scram "SCRAM-SHA-256=[name=$user,password=$password]" \
    --add-scram "SCRAM-SHA-512=[name=$user,password=$password]" \
    --data-dir "$work/data" --cores 1 --metrics-listen none >"$work/broker.out" 2>"$work/logs/broker.log" &
broker_pid=$!
exec {broker_out}<"$work/broker.out"
line=""
while [[ "$line" != "rafka listening on "* ]]; do
    if ! read -r -t 60 line <&"$broker_out"; then
        echo "sasl: the broker printed no listening line; log:" >&2
        tail -n 30 "$work/logs/broker.log" >&2
        echo "roundtrip sasl: FAIL (broker did not start)"
        exit 1
    fi
done
cat <&"$broker_out" >/dev/null &
exec {broker_out}<&-
listener() { # the bound address of listener $1 from "listeners=NAME://ADDR,..."
    tr ' ,' '\n' <<<"${line#*listeners=}" | sed -n "s|^$1://||p"
}
plaintext="$(listener SASL_PLAINTEXT)"
ssl="$(listener SASL_SSL)"
echo "sasl: SASL_PLAINTEXT on $plaintext, SASL_SSL on $ssl"

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

# One kcat cell (LISTENER:MECHANISM:KIND), one verdict line, as the client
# programs print them.
kcat_cell() {
    local listener mechanism kind label out expected pass="$password" ca="$pki/ca.pem"
    IFS=: read -r listener mechanism kind <<<"$1"
    label="kcat $listener $mechanism $kind"
    [[ "$kind" != wrong-password ]] || pass="wrong-$password"
    [[ "$kind" != wrong-ca ]] || ca="$pki/other-ca.pem"
    local -a config=(-X "security.protocol=$listener" -X "sasl.mechanisms=$mechanism" -X broker.address.family=v4)
    local address="$plaintext"
    if [[ "$listener" == SASL_SSL ]]; then
        address="$ssl"
        config+=(-X "ssl.ca.location=$ca")
    fi
    if [[ "$mechanism" == OAUTHBEARER ]]; then
        if [[ "$kind" == expired-token ]]; then
            # With lifeSeconds <= 0 librdkafka 2.0.2 refuses its own builtin
            # token and never connects; kcat has no token callback.
            echo "$label: SKIP kcat cannot send an expired token (librdkafka refuses a builtin unsecured JWT with lifeSeconds <= 0 and never connects; kcat has no token callback)"
            return 0
        fi
        config+=(-X enable.sasl.oauthbearer.unsecure.jwt=true -X "sasl.oauthbearer.config=principal=$user")
    else
        config+=(-X "sasl.username=$user" -X "sasl.password=$pass")
    fi
    if [[ "$kind" != roundtrip* ]]; then
        expected="Authentication failed"
        [[ "$kind" != wrong-ca ]] || expected="certificate verify failed"
        if out="$(timeout 30 kcat -b "$address" "${config[@]}" -L -m 10 2>&1)"; then
            echo "$label: FAIL metadata answered"
        elif grep -q "$expected" <<<"$out"; then
            echo "$label: OK (refused: $(grep -m1 -o "$expected.*" <<<"$out" | cut -c1-300))"
        else
            echo "$label: FAIL no error with '$expected': $(tail -n 3 <<<"$out" | tr '\n' ' ')"
        fi
        return 0
    fi
    local topic values
    topic="$(tr 'A-Z:' 'a-z-' <<<"sasl-kcat-$1-$run_id")"
    values="$(seq 0 19 | sed "s/^/$mechanism@$listener-/")"
    if ! out="$(timeout 30 kcat -b "$address" "${config[@]}" -P -t "$topic" -p 0 -X acks=all <<<"$values" 2>&1)"; then
        echo "$label: FAIL produce: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    elif ! out="$(timeout 30 kcat -b "$address" "${config[@]}" -C -t "$topic" -p 0 -o beginning -c 20 -e \
        -f '%s\n' 2>&1)"; then
        echo "$label: FAIL consume: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
    elif [[ "$out" == "$values" ]]; then
        echo "$label: OK (20 records back)"
    else
        echo "$label: FAIL read back $(tr '\n' ' ' <<<"$out")"
    fi
}

client_run() {
    local client="$1"
    local -a args=("$plaintext" "$ssl" "$pki/ca.pem" "$pki/other-ca.pem" "$user" "$password" "$run_id" "${cells[@]}")
    case "$client" in
        confluent-kafka | kafka-python)
            timeout "$client_timeout_s" "$here/.cache/venv/bin/python" "$here/sasl/sasl_python.py" "$client" "${args[@]}" ;;
        kafkajs)
            NODE_PATH="$here/.cache/node/node_modules" timeout "$client_timeout_s" \
                node "$here/sasl/sasl_kafkajs.js" "${args[@]}" ;;
        java)
            timeout "$client_timeout_s" java -cp "$here/.cache/java/sasl-classes:$(cat "$here/.cache/java/classpath")" \
                -Dorg.slf4j.simpleLogger.defaultLogLevel=off SaslJava "${args[@]}" ;;
        kcat)
            local cell
            for cell in "${cells[@]}"; do kcat_cell "$cell"; done ;;
        *) echo "sasl: unknown client $client"; return 2 ;;
    esac
}

started_s=$SECONDS
passed=()
failed=()
skipped=()
for client in "${clients[@]}"; do
    log="$work/logs/$client.log"
    status=0
    client_run "$client" 2>"$work/logs/$client.err" | tee "$log" || status=$?
    # Every cell must have its line: a client that died or timed out
    # leaves the rest of its cells failed.
    for cell in "${cells[@]}"; do
        label="$client ${cell//:/ }"
        verdict="$(grep -F "$label: " "$log" | head -n 1 || true)"
        verdict="${verdict#"$label: "}"
        case "$verdict" in
            OK*) passed+=("$client/$cell") ;;
            SKIP*) skipped+=("$client/$cell") ;;
            FAIL*) failed+=("$client/$cell") ;;
            *)
                echo "$label: FAIL no verdict (client exit $status)"
                failed+=("$client/$cell") ;;
        esac
    done
    if [[ $status -ne 0 ]] && [[ -s "$work/logs/$client.err" ]]; then
        echo "sasl: $client exit $status; its stderr (tail):"
        tail -n 20 "$work/logs/$client.err" | sed 's/^/    /'
    fi
done
echo "sasl: cells took $((SECONDS - started_s)) s"

# The broker served every refusal and kept going; it still stops cleanly.
kill -TERM "$broker_pid"
status=0
timeout 30 tail --pid="$broker_pid" -f /dev/null || kill -KILL "$broker_pid" 2>/dev/null || true
wait "$broker_pid" || status=$?
broker_pid=""
[[ $status -eq 0 ]] || failed+=("broker-exit-$status")

summary="${#passed[@]} cells passed, ${#skipped[@]} skipped (${skipped[*]:-none})"
if [[ ${#failed[@]} -eq 0 ]]; then
    echo "roundtrip sasl: PASS ($summary)"
    exit 0
fi
echo "sasl: broker log (tail):"
tail -n 30 "$work/logs/broker.log" | sed 's/^/    /'
echo "roundtrip sasl: FAIL (failed: ${failed[*]}; $summary)"
exit 1
