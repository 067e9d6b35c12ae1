#!/usr/bin/env bash
# Consumer group with kafka-python against a running broker: two members
# share a 4-partition topic and commit (every record exactly once, committed
# offsets = end offsets), then a new member of the group resumes from the
# committed offsets and sees only new records. See group/kafka_python_group.py.
# Installs the client itself (setup-python.sh).
#
# usage: scripts/compat/kafka-python-group.sh [BOOTSTRAP]   (env: BOOTSTRAP, GROUP_COUNT)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=group/common.sh
source "$here/group/common.sh"
roundtrip_bootstrap "$@"
"$here/setup-python.sh" >&2
group_run kafka-python "$here/.cache/venv/bin/python" "$here/group/kafka_python_group.py"
