#!/usr/bin/env bash
# The long suites CI leaves out (#[ignore]d tests), run in release: the
# randomized crash loops, the randomized replication faults on a 3-node
# cluster, the 10,000-member group load and 100,000 partitions. Hours on a small machine at the default sizes below; each
# size is an env var, as in README "Tests".
#
# usage: scripts/extended-tests.sh [SUITE...]
#   SUITE: crash_random transactions_crash cluster_faults group_load scale
#          (default: all)
#   env:   RAFKA_CRASH_CYCLES (20), RAFKA_TXN_CRASH_CYCLES (20),
#          RAFKA_FAULT_COUNT (100), RAFKA_FAULT_SEED (replay a fault run),
#          RAFKA_SCALE_TOPICS (10000), RAFKA_TEST_SEED (replay a seed)
set -euo pipefail
cd "$(dirname "$0")/.."

export RAFKA_CRASH_CYCLES=${RAFKA_CRASH_CYCLES:-20}
export RAFKA_TXN_CRASH_CYCLES=${RAFKA_TXN_CRASH_CYCLES:-20}
export RAFKA_SCALE_TOPICS=${RAFKA_SCALE_TOPICS:-10000}
export RAFKA_FAULT_COUNT=${RAFKA_FAULT_COUNT:-100}

suites=("$@")
if [[ ${#suites[@]} -eq 0 ]]; then
    suites=(crash_random transactions_crash cluster_faults group_load scale)
fi
failed=()
for suite in "${suites[@]}"; do
    case $suite in
    crash_random | transactions_crash | cluster_faults | group_load | scale) ;;
    *)
        echo "extended-tests.sh: unknown suite $suite" >&2
        exit 2
        ;;
    esac
    echo "== $suite" >&2
    if ! cargo test --release --test "$suite" -- --ignored --nocapture; then
        failed+=("$suite")
    fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "extended-tests.sh: failed: ${failed[*]}" >&2
    exit 1
fi
echo "extended-tests.sh: ${#suites[@]} suites passed" >&2
