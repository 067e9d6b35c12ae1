# shellcheck shell=bash
# Shared by the <client>-txn.sh scripts (sourced, not run): runs the
# client's transaction program once, against the broker named by the first
# argument or else against a broker of its own (started here from
# $RAFKA_BIN or a fresh release build, on a temp data dir and an ephemeral
# port learned from its "rafka listening on" line, with
# group.initial.rebalance.delay.ms=0, and stopped with SIGTERM: it must exit
# 0). Makes sure the last line is the verdict "txn CLIENT: PASS|FAIL ...".
#
# The broker address is taken from the argument only, not from $BOOTSTRAP:
# run-all.sh exports BOOTSTRAP for its shared broker, and a transaction run
# keeps a broker of its own so that the broker's shutdown after
# transactions is checked too.
#
# Environment: RAFKA_BIN, CORES (broker shards, 2), RUST_LOG (info),
# TXN_COUNT and TXN_SEED (passed on to the program; the Java one also
# reads TXN_ABORT_RATIO, TXN_BATCH_BYTES and TXN_SCENARIOS), TXN_LOG_DIR (where a failed run's broker and program
# logs are kept; by default they go with the run's temp dir).

txn_startup_timeout_s=60
txn_shutdown_timeout_s=30
# The program's whole run; its own waits are bounded well below this.
txn_verdict_timeout_s=600

# Starts the broker in $txn_work; sets txn_broker_pid and bootstrap.
txn_start_broker() {
    local repo line="" addr broker_out target_dir
    repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
    if [[ -z "${RAFKA_BIN:-}" ]]; then
        cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin rafka
        target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
        RAFKA_BIN="$target_dir/release/rafka"
    fi
    cat >"$txn_work/server.properties" <<PROPS
listeners=PLAINTEXT://127.0.0.1:0
group.initial.rebalance.delay.ms=0
PROPS
    # stdout goes through a FIFO so that this shell can read it with a
    # deadline and a background cat can keep draining it afterwards.
    mkfifo "$txn_work/broker.out"
    RUST_LOG="${RUST_LOG:-info}" "$RAFKA_BIN" --config "$txn_work/server.properties" \
        --data-dir "$txn_work/data" --cores "${CORES:-2}" --metrics-listen none \
        >"$txn_work/broker.out" 2>"$txn_work/broker.log" &
    txn_broker_pid=$!
    exec {broker_out}<"$txn_work/broker.out"
    while [[ "$line" != "rafka listening on "* ]]; do
        if ! read -r -t "$txn_startup_timeout_s" line <&"$broker_out"; then
            echo "txn: the broker printed no listening line within ${txn_startup_timeout_s} s; log:" >&2
            tail -n 30 "$txn_work/broker.log" >&2
            return 1
        fi
    done
    cat <&"$broker_out" >/dev/null &
    exec {broker_out}<&-
    addr="${line#rafka listening on }"
    bootstrap="${addr%% *}"
    echo "txn: $line" >&2
}

# SIGTERM, then waits (bounded) for the broker's exit status, which it returns.
txn_stop_broker() {
    local status=0
    kill -TERM "$txn_broker_pid"
    timeout "$txn_shutdown_timeout_s" tail --pid="$txn_broker_pid" -f /dev/null || {
        echo "txn: broker still running ${txn_shutdown_timeout_s} s after SIGTERM; killing it" >&2
        kill -KILL "$txn_broker_pid" 2>/dev/null || true
    }
    wait "$txn_broker_pid" || status=$?
    txn_broker_pid=""
    return "$status"
}

# shellcheck disable=SC2317 # run by the EXIT trap
txn_cleanup() {
    if [[ -n "${txn_broker_pid:-}" ]] && kill -0 "$txn_broker_pid" 2>/dev/null; then
        kill -KILL "$txn_broker_pid" 2>/dev/null || true
        wait "$txn_broker_pid" 2>/dev/null || true
    fi
    rm -rf "$txn_work"
}

# txn_run CLIENT BOOTSTRAP -- PROGRAM...: runs PROGRAM BOOTSTRAP RUN_ID
# (BOOTSTRAP empty: against a broker of its own) and exits with the
# verdict, which it prints last: the program's own, or why there is none,
# or the broker's failure to stop.
txn_run() {
    local client="$1" status=0 broker_status=0 run_id verdict printed_after=0
    bootstrap="$2"
    shift 3
    set -o pipefail
    txn_broker_pid=""
    txn_work="$(mktemp -d)"
    trap txn_cleanup EXIT
    if [[ -z "$bootstrap" ]]; then
        txn_start_broker || {
            echo "txn $client: FAIL (the broker did not start)"
            exit 1
        }
    fi
    run_id="$(date +%s)-$$"
    timeout "$txn_verdict_timeout_s" "$@" "$bootstrap" "$run_id" | tee "$txn_work/program.log" || status=$?
    verdict="$(grep "^txn $client: " "$txn_work/program.log" | tail -n 1 || true)"
    if [[ $status -eq 124 ]]; then
        verdict="txn $client: FAIL (no verdict within ${txn_verdict_timeout_s} s)"
    elif [[ -z "$verdict" ]]; then
        verdict="txn $client: FAIL (exit $status without a verdict)"
        status=1
    fi
    if [[ -n "$txn_broker_pid" ]]; then
        txn_stop_broker || broker_status=$?
        if [[ $broker_status -ne 0 ]]; then
            verdict="txn $client: FAIL (broker exit $broker_status on SIGTERM; the program's verdict: ${verdict#"txn $client: "})"
            status=1
        fi
        if [[ $status -ne 0 ]]; then
            echo "txn: broker log (tail):"
            tail -n 40 "$txn_work/broker.log" | sed 's/^/    /'
            printed_after=1
            if [[ -n "${TXN_LOG_DIR:-}" ]]; then
                mkdir -p "$TXN_LOG_DIR"
                cp "$txn_work/broker.log" "$TXN_LOG_DIR/broker-$run_id.log"
                cp "$txn_work/program.log" "$TXN_LOG_DIR/program-$run_id.log"
                echo "txn: broker and program logs kept in $TXN_LOG_DIR (run $run_id)"
            fi
        fi
    fi
    if [[ $printed_after -eq 1 || "$verdict" != "$(tail -n 1 "$txn_work/program.log")" ]]; then
        echo "$verdict"
    fi
    exit "$status"
}
