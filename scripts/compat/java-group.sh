#!/usr/bin/env bash
# Consumer group with the Java client (kafka-clients 3.9.1) against a
# running broker: two members share a 4-partition topic and commit (every
# record exactly once, committed offsets = end offsets), then a new member
# of the group resumes from the committed offsets and sees only new records.
# See group/JavaGroup.java. Installs the client (setup-java.sh) and compiles
# the program itself.
#
# usage: scripts/compat/java-group.sh [BOOTSTRAP]   (env: BOOTSTRAP, GROUP_COUNT)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=group/common.sh
source "$here/group/common.sh"
roundtrip_bootstrap "$@"
"$here/setup-java.sh" >&2
classpath="$(cat "$here/.cache/java/classpath")"
classes="$here/.cache/java/group-classes"
mkdir -p "$classes"
javac --release 17 -d "$classes" -cp "$classpath" "$here/group/JavaGroup.java"
group_run java java -cp "$classes:$classpath" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn JavaGroup
