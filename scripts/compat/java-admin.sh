#!/usr/bin/env bash
# The Java AdminClient (kafka-clients 3.9.1) against a running broker:
# createTopics, describeTopics, createPartitions, deleteRecords,
# describeConfigs, incrementalAlterConfigs, describeCluster, describeLogDirs,
# alterUserScramCredentials, describeUserScramCredentials,
# alterClientQuotas, describeClientQuotas and deleteTopics,
# each checked by its effect (admin/JavaAdmin.java), on a
# fresh topic.
# Installs the client (setup-java.sh) and compiles the program itself.
#
# usage: scripts/compat/java-admin.sh [BOOTSTRAP]   (env: BOOTSTRAP)
#   env: JAVA_ADMIN_LOG_DIRS=0 skips describeLogDirs (for brokers without it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bootstrap="${1:-${BOOTSTRAP:-127.0.0.1:9092}}"
verdict_timeout_s=150
"$here/setup-java.sh" >&2
classpath="$(cat "$here/.cache/java/classpath")"
classes="$here/.cache/java/admin-classes"
mkdir -p "$classes"
javac --release 17 -d "$classes" -cp "$classpath" "$here/admin/JavaAdmin.java"
status=0
JAVA_ADMIN_LOG_DIRS="${JAVA_ADMIN_LOG_DIRS:-1}" timeout "$verdict_timeout_s" \
    java -cp "$classes:$classpath" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn JavaAdmin \
    "$bootstrap" "admin-java-$(date +%s)-$$-$RANDOM" || status=$?
if [[ $status -eq 124 ]]; then
    echo "admin java: FAIL (no verdict within ${verdict_timeout_s} s)"
fi
exit "$status"
