#!/usr/bin/env bash
# Roundtrip with kafkajs against a running broker: per codec, a fresh
# 3-partition topic, COUNT keyed records with headers produced with acks=-1,
# read back from offset 0 with kafkajs's own Fetch requests (its consumer
# needs groups, which come later) and compared exactly. No zstd (see
# setup-node.sh); snappy/lz4 only when their plug-ins installed. Installs
# kafkajs itself (setup-node.sh).
#
# usage: scripts/compat/kafkajs-roundtrip.sh [BOOTSTRAP]   (env: BOOTSTRAP, COUNT, CODECS)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=roundtrip/common.sh
source "$here/roundtrip/common.sh"
roundtrip_bootstrap "$@"
"$here/setup-node.sh" >&2
node_modules="$here/.cache/node/node_modules"
codecs="none gzip"
[[ -d "$node_modules/kafkajs-snappy" ]] && codecs+=" snappy"
[[ -d "$node_modules/kafkajs-lz4" ]] && codecs+=" lz4"
roundtrip_run kafkajs "$codecs" env "NODE_PATH=$node_modules" node "$here/roundtrip/kafkajs_roundtrip.js"
