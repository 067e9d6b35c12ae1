#!/usr/bin/env bash
# Transactions with the Java client (kafka-clients 3.9.1): commit, abort,
# an open transaction under read_committed/read_uncommitted,
# sendOffsetsToTransaction (commit and abort, checked with Admin
# listConsumerGroupOffsets), zombie fencing and a consume-transform-produce
# loop with seeded random aborts, exactly once (txn/JavaTxn.java). Starts a
# broker of its own unless one is named (txn/common.sh); installs the client
# (setup-java.sh) and compiles the program itself. Ends with
# "txn java: PASS|FAIL ...".
#
# usage: scripts/compat/java-txn.sh [BOOTSTRAP]
#   env: RAFKA_BIN (default: build the release binary), TXN_CORES (the
#        shard counts to run on, one broker each: "1 2 4"), TXN_COUNT (consume-transform-produce records, 100000),
#        TXN_SEED (its abort choices; printed with the result, OK or FAIL),
#        TXN_ABORT_RATIO (ctp's aborted share, 0.2), TXN_BATCH_BYTES (the
#        transactional producers' batch.size, 16384), TXN_SCENARIOS (a
#        space-separated subset, e.g. "ctp"), TXN_LOG_DIR (keeps a failed
#        run's broker log; RUST_LOG sets its levels)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=txn/common.sh
source "$here/txn/common.sh"
"$here/setup-java.sh" >&2
classpath="$(cat "$here/.cache/java/classpath")"
classes="$here/.cache/java/txn-classes"
mkdir -p "$classes"
javac --release 17 -d "$classes" -cp "$classpath" "$here/txn/JavaTxn.java"
# Against a broker of its own, once per shard count in TXN_CORES (1, 2
# and 4 by default), each on a fresh broker; the verdict line comes last.
if [[ -n "${1:-}" ]]; then
    txn_run java "${1:-}" -- \
        java -cp "$classes:$classpath" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn JavaTxn
fi
failed_on=()
for cores in ${TXN_CORES:-1 2 4}; do
    echo "txn java: broker with $cores shard(s)" >&2
    ( CORES="$cores" txn_run java "${1:-}" -- \
        java -cp "$classes:$classpath" -Dorg.slf4j.simpleLogger.defaultLogLevel=warn JavaTxn ) || failed_on+=("$cores")
done
if [[ ${#failed_on[@]} -eq 0 ]]; then
    echo "txn java: PASS (brokers of ${TXN_CORES:-1 2 4} shards)"
else
    echo "txn java: FAIL (with ${failed_on[*]} shard(s))"
    exit 1
fi
