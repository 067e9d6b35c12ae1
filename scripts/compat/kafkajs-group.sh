#!/usr/bin/env bash
# Consumer group with kafkajs against a running broker: two members share a
# 4-partition topic and commit (every record exactly once, committed offsets
# = end offsets), then a new member of the group resumes from the committed
# offsets and sees only new records. See group/kafkajs_group.js. Installs
# kafkajs itself (setup-node.sh).
#
# usage: scripts/compat/kafkajs-group.sh [BOOTSTRAP]   (env: BOOTSTRAP, GROUP_COUNT)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=group/common.sh
source "$here/group/common.sh"
roundtrip_bootstrap "$@"
"$here/setup-node.sh" >&2
group_run kafkajs env "NODE_PATH=$here/.cache/node/node_modules" node "$here/group/kafkajs_group.js"
