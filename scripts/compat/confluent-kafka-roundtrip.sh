#!/usr/bin/env bash
# Roundtrip with confluent-kafka (Python, bundled librdkafka) against a running broker:
# per codec, a fresh 3-partition topic, COUNT keyed records with headers
# produced with acks=all, read back with assign from the beginning (no group)
# and compared exactly. Installs the client itself (setup-python.sh).
#
# usage: scripts/compat/confluent-kafka-roundtrip.sh [BOOTSTRAP]   (env: BOOTSTRAP, COUNT, CODECS)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=roundtrip/common.sh
source "$here/roundtrip/common.sh"
roundtrip_bootstrap "$@"
"$here/setup-python.sh" >&2
roundtrip_run confluent-kafka "none gzip snappy lz4 zstd" \
    "$here/.cache/venv/bin/python" "$here/roundtrip/confluent_kafka_roundtrip.py"
