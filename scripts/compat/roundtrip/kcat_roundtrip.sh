#!/usr/bin/env bash
# Roundtrip with kcat (Debian's librdkafka): produces COUNT keyed records
# with headers in one kcat run to partition 0 of TOPIC (kcat cannot create
# topics, so the broker auto-creates it on the first Metadata request),
# then reads the partition from the beginning to its end and compares every
# offset, key, value and header with what was sent. kcat's -H puts the same
# headers on every record of a run: client=kcat and codec=CODEC.
#
# usage: kcat_roundtrip.sh BOOTSTRAP TOPIC CODEC COUNT
set -euo pipefail

bootstrap="$1" topic="$2" codec="$3" count="$4"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Record i: key "key-i", value "value-i-" + "abcdefghij" x (i % 20), as the
# other roundtrips (roundtrip_records.py), all in partition 0.
for ((i = 0; i < count; i++)); do
    padding=""
    for ((j = 0; j < i % 20; j++)); do padding+="abcdefghij"; done
    printf 'key-%d\tvalue-%d-%s\n' "$i" "$i" "$padding"
done >"$work/input"
awk -F'\t' '{ printf "%d\t%s\t%s\tclient=kcat,codec='"$codec"'\n", NR - 1, $1, $2 }' \
    "$work/input" >"$work/expected"

# TLS from TLS_CA (and TLS_CERT + TLS_KEY); plaintext when TLS_CA is unset.
tls=()
if [[ -n "${TLS_CA:-}" ]]; then
    tls=(-X security.protocol=SSL -X "ssl.ca.location=$TLS_CA")
    if [[ -n "${TLS_CERT:-}" ]]; then
        tls+=(-X "ssl.certificate.location=$TLS_CERT" -X "ssl.key.location=$TLS_KEY")
    fi
fi

if ! kcat -P -b "$bootstrap" "${tls[@]}" -t "$topic" -p 0 -z "$codec" -K $'\t' \
    -H "client=kcat" -H "codec=$codec" \
    -X client.id=rafka-roundtrip-kcat -X acks=all -X allow.auto.create.topics=true \
    <"$work/input" 2>"$work/produce.log"; then
    echo "kcat $codec: FAIL (produce)"
    sed 's/^/  /' "$work/produce.log" | tail -n 10
    exit 1
fi

# -e: stop at the end of the partition, so extra records would show too.
if ! timeout 60 kcat -C -b "$bootstrap" "${tls[@]}" -t "$topic" -p 0 -o beginning -e -q \
    -X client.id=rafka-roundtrip-kcat -f '%o\t%k\t%s\t%h\n' \
    >"$work/consumed" 2>"$work/consume.log"; then
    echo "kcat $codec: FAIL (consume)"
    sed 's/^/  /' "$work/consume.log" | tail -n 10
    exit 1
fi

if ! diff -q "$work/expected" "$work/consumed" >/dev/null; then
    echo "kcat $codec: FAIL ($(wc -l <"$work/consumed") records read, $count expected)"
    diff "$work/expected" "$work/consumed" | head -n 10 | sed 's/^/  /'
    exit 1
fi
echo "kcat $codec: $count records consumed back exactly"
