#!/usr/bin/env bash
# confluent-kafka's AdminClient (Python, bundled librdkafka) against a
# running broker: CreatePartitions, DeleteRecords, configs and users' SCRAM
# credentials (alter/describe_user_scram_credentials), checked by their
# effect (admin/confluent_kafka_admin.py). Installs the client itself.
#
# usage: scripts/compat/confluent-kafka-admin.sh [BOOTSTRAP]   (env: BOOTSTRAP)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bootstrap="${1:-${BOOTSTRAP:-127.0.0.1:9092}}"
"$here/setup-python.sh" >&2
"$here/.cache/venv/bin/python" "$here/admin/confluent_kafka_admin.py" "$bootstrap"
