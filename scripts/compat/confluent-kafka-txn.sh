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
#   env: RAFKA_BIN (default: build the release binary), TXN_CORES (the
#        shard counts to run on, one broker each: "1 2 4"), TXN_COUNT (consume-transform-produce records, 5000),
#        TXN_SEED (its abort choices; printed with the result)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=txn/common.sh
source "$here/txn/common.sh"
"$here/setup-python.sh" >&2
# Against a broker of its own, once per shard count in TXN_CORES (1, 2
# and 4 by default), each on a fresh broker; the verdict line comes last.
if [[ -n "${1:-}" ]]; then
    txn_run confluent-kafka "${1:-}" -- \
        "$here/.cache/venv/bin/python" "$here/txn/confluent_kafka_txn.py"
fi
failed_on=()
for cores in ${TXN_CORES:-1 2 4}; do
    echo "txn confluent-kafka: broker with $cores shard(s)" >&2
    ( CORES="$cores" txn_run confluent-kafka "${1:-}" -- \
        "$here/.cache/venv/bin/python" "$here/txn/confluent_kafka_txn.py" ) || failed_on+=("$cores")
done
if [[ ${#failed_on[@]} -eq 0 ]]; then
    echo "txn confluent-kafka: PASS (brokers of ${TXN_CORES:-1 2 4} shards)"
else
    echo "txn confluent-kafka: FAIL (with ${failed_on[*]} shard(s))"
    exit 1
fi
