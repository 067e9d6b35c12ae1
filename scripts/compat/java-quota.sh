#!/usr/bin/env bash
# A producer quota with the Java client (kafka-clients 3.9.1) against a
# running broker: the AdminClient sets producer_byte_rate for one client id,
# the producer's own produce-throttle-time-avg / -max show the throttling
# and its acknowledged rate stays near the quota; the quota is removed live
# and a new producer is not throttled (quota/JavaQuota.java), on a fresh
# topic. Installs the client (setup-java.sh) and compiles the program itself.
#
# usage: scripts/compat/java-quota.sh [BOOTSTRAP]   (env: BOOTSTRAP)
#   env: PRODUCE_SECONDS (the throttled run, 10)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bootstrap="${1:-${BOOTSTRAP:-127.0.0.1:9092}}"
verdict_timeout_s=150
"$here/setup-java.sh" >&2
classpath="$(cat "$here/.cache/java/classpath")"
classes="$here/.cache/java/quota-classes"
mkdir -p "$classes"
javac --release 17 -d "$classes" -cp "$classpath" "$here/quota/JavaQuota.java"
status=0
timeout "$verdict_timeout_s" \
    java -cp "$classes:$classpath" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn JavaQuota \
    "$bootstrap" "quota-java-$(date +%s)-$$-$RANDOM" || status=$?
if [[ $status -eq 124 ]]; then
    echo "quota java: FAIL (no verdict within ${verdict_timeout_s} s)"
fi
exit "$status"
