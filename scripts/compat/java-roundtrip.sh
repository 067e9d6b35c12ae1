#!/usr/bin/env bash
# Roundtrip with the Java client (kafka-clients 3.9.1, default idempotent
# producer) against a running broker: per codec, a fresh 3-partition topic,
# COUNT keyed records with headers, read back with assign + seekToBeginning
# (no group) and compared exactly. Installs the client (setup-java.sh) and
# compiles roundtrip/JavaRoundtrip.java itself.
#
# usage: scripts/compat/java-roundtrip.sh [BOOTSTRAP]   (env: BOOTSTRAP, COUNT, CODECS)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=roundtrip/common.sh
source "$here/roundtrip/common.sh"
roundtrip_bootstrap "$@"
"$here/setup-java.sh" >&2
classpath="$(cat "$here/.cache/java/classpath")"
classes="$here/.cache/java/roundtrip-classes"
mkdir -p "$classes"
javac --release 17 -d "$classes" -cp "$classpath" "$here/roundtrip/JavaRoundtrip.java"
roundtrip_run java "none gzip snappy lz4 zstd" \
    java -cp "$classes:$classpath" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn JavaRoundtrip
