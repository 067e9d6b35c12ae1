#!/usr/bin/env bash
# Transactions with confluent-kafka (Python, bundled librdkafka): commit,
# abort, an open transaction under read_committed/read_uncommitted,
# send_offsets_to_transaction (commit and abort), zombie fencing and a
# consume-transform-produce loop with seeded random aborts, exactly once
# (txn/confluent_kafka_txn.py). Starts a broker of its own unless one is
# named (txn/common.sh); installs the client itself (setup-python.sh).
# Ends with "txn confluent-kafka: PASS|FAIL ...".
#
# usage: scripts/compat/confluent-kafka-txn.sh [BOOTSTRAP]
#   env: RAFKA_BIN (default: build the release binary), CORES (broker
#        shards, 2), TXN_COUNT (consume-transform-produce records, 5000),
#        TXN_SEED (its abort choices; printed with the result)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=txn/common.sh
source "$here/txn/common.sh"
"$here/setup-python.sh" >&2
txn_run confluent-kafka "${1:-}" -- \
    "$here/.cache/venv/bin/python" "$here/txn/confluent_kafka_txn.py"
