#!/usr/bin/env bash
# kafka-python's KafkaAdminClient against a running broker: create_topics,
# list/describe_topics, create_partitions, delete_records, describe_configs,
# alter_configs (incremental and legacy AlterConfigs), reset_configs,
# describe_cluster and delete_topics, each checked by its effect
# (admin/kafka_python_admin.py). Installs the client itself.
#
# usage: scripts/compat/kafka-python-admin.sh [BOOTSTRAP]   (env: BOOTSTRAP)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bootstrap="${1:-${BOOTSTRAP:-127.0.0.1:9092}}"
"$here/setup-python.sh" >&2
"$here/.cache/venv/bin/python" "$here/admin/kafka_python_admin.py" "$bootstrap"
