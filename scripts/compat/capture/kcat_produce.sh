#!/usr/bin/env bash
# Sends the fixture records with kcat. kcat's -H applies to every message of
# one run, so each record (with its own idx header) is its own run: ten
# Produce requests of one single-record batch each.
#
# usage: kcat_produce.sh BOOTSTRAP TOPIC CODEC
set -euo pipefail

bootstrap="$1" topic="$2" codec="$3"
value_padding="$(printf 'x%.0s' {1..200})"
for i in $(seq 0 9); do
    printf 'key-%d\tvalue-%d-%s\n' "$i" "$i" "$value_padding" |
        kcat -P -b "$bootstrap" -t "$topic" -p 0 -z "$codec" -K $'\t' -H "idx=$i" \
            -X client.id=rafka-capture-kcat -X acks=all
done
echo "kcat: sent 10 records"
