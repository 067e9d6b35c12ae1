#!/usr/bin/env bash
# Transactional produce next to plain produce, on one broker in one run:
# starts the release broker (its own temp data dir under OUT, a free port,
# CORES shards), then `rafka-bench txn`: PRODUCERS connections (a thread
# each) produce RECORD_BYTES records with acks=all to PARTITIONS
# partitions as fast as the answers allow, once per mode and round:
#   plain       no producer id (what perf.sh's produce sends)
#   idempotent  InitProducerId, sequences (the cost of idempotence alone)
#   100, 1000   transactions of that many records: AddPartitionsToTxn v3,
#               the batches, EndTxn(commit) v3; AddPartitionsToTxn answered
#               CONCURRENT_TRANSACTIONS (the previous transaction's markers
#               are still being written) is retried after RETRY_BACKOFF_US
# Each round starts one mode later; every column is the median over ROUNDS
# rounds (MB/s also min-max). Prints a table and the CSV, and leaves
# txn.csv (medians), rounds.csv (every phase) and table.txt in OUT.
#
# usage: scripts/txn-bench.sh
# env:   ROUNDS (3), DURATION_SECS (5: per mode and round), PRODUCERS (4),
#        PARTITIONS (6), RECORD_BYTES (1024), BATCH_RECORDS (256),
#        MODES (plain,idempotent,100,1000), CORES (broker shards, 2),
#        RETRY_BACKOFF_US (1000), OUT (target/txn-bench),
#        RAFKA_BIN and BENCH_BIN (use these binaries, no build)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
OUT="${OUT:-$repo/target/txn-bench}"
STARTUP_DEADLINE_SECS=60

if [[ -z "${RAFKA_BIN:-}" || -z "${BENCH_BIN:-}" ]]; then
    echo "== building release" >&2
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" --bin rafka
    cargo build --quiet --release --manifest-path "$repo/Cargo.toml" -p rafka-bench --bin rafka-bench
    target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$repo/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    RAFKA_BIN="${RAFKA_BIN:-$target_dir/release/rafka}"
    BENCH_BIN="${BENCH_BIN:-$target_dir/release/rafka-bench}"
fi

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
# The broker's data on the disk OUT is on; removed at the end.
work="$(mktemp -d "$OUT/run.XXXXXX")"
broker_pid=""
cleanup() {
    if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill -TERM "$broker_pid"
        wait "$broker_pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# A plain phase writes gigabytes: retention keeps the data dir to a few
# GiB per round (segments of 128 MiB, at most 512 MiB kept per partition,
# checked every 5 s). Deleting a closed segment is an unlink; the
# partitions written keep their active segment.
cat >"$work/server.properties" <<PROPS
log.segment.bytes=134217728
log.retention.bytes=536870912
log.retention.check.interval.ms=5000
PROPS
mkdir -p "$work/data"
RUST_LOG=warn "$RAFKA_BIN" --config "$work/server.properties" --listen 127.0.0.1:0 \
    --data-dir "$work/data" --cores "${CORES:-2}" --pin false --metrics-listen none \
    >"$work/broker.out" 2>"$work/broker.err" &
broker_pid=$!
addr=""
for _ in $(seq $((STARTUP_DEADLINE_SECS * 10))); do
    addr="$(sed -n 's/^rafka listening on \([^ ]*\).*/\1/p' "$work/broker.out")"
    [[ -n "$addr" ]] && break
    kill -0 "$broker_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    echo "txn-bench.sh: the broker did not start:" >&2
    tail -n 20 "$work/broker.err" >&2
    exit 1
fi

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "txn-bench: $(nproc) CPUs, broker shards ${CORES:-2} at $addr, load before $(load)"
status=0
"$BENCH_BIN" txn --bootstrap "$addr" --topic txn-bench --partitions "${PARTITIONS:-6}" \
    --record-bytes "${RECORD_BYTES:-1024}" --batch-records "${BATCH_RECORDS:-256}" \
    --producers "${PRODUCERS:-4}" --modes "${MODES:-plain,idempotent,100,1000}" \
    --duration-secs "${DURATION_SECS:-5}" --rounds "${ROUNDS:-3}" \
    --retry-backoff-us "${RETRY_BACKOFF_US:-1000}" --csv "$OUT/txn.csv" \
    2>&1 >/dev/null | tee "$OUT/rounds.csv" >&2 || status=$?
echo "txn-bench: load after $(load)"
if [[ $status -ne 0 ]]; then
    echo "txn-bench.sh: rafka-bench failed ($status); the broker's last lines:" >&2
    tail -n 20 "$work/broker.err" >&2
    exit "$status"
fi
kill -TERM "$broker_pid"
wait "$broker_pid" || true
broker_pid=""

# The table, read twice: the plain row's MB/s first, then every row
# against it.
awk -F, '
    function v(name) { return $col[name] }
    function ms(name) { return sprintf("%.2f", v(name) / 1000) }
    FNR == 1 {
        for (i = 1; i <= NF; i++) col[$i] = i
        if (NR != FNR)
            printf "%-10s %5s %8s %11s %6s %6s %22s %14s %7s %6s %7s\n", "mode", "txn", "MB/s",
                "(min-max)", "xplain", "txn/s", "EndTxn p50/p99/max ms", "txn p50/p99 ms",
                "retries", "retry%", "settle"
        next
    }
    NR == FNR { if (v("mode") == "plain") plain = v("mb_per_sec"); next }
    {
        txn = v("mode") == "txn"
        printf "%-10s %5s %8.1f %11s %6s %6s %22s %14s %7s %6s %7s\n",
            v("mode"), txn ? v("txn_records") : "-", v("mb_per_sec"),
            sprintf("(%.0f-%.0f)", v("mb_per_sec_min"), v("mb_per_sec_max")),
            (plain > 0 ? sprintf("%.2f", v("mb_per_sec") / plain) : "-"),
            txn ? sprintf("%.0f", v("txns_per_sec")) : "-",
            txn ? (ms("end_txn_p50_us") "/" ms("end_txn_p99_us") "/" ms("end_txn_max_us")) : "-",
            txn ? (ms("txn_p50_us") "/" ms("txn_p99_us")) : "-",
            txn ? v("add_retries") : "-", txn ? v("add_retry_pct") : "-",
            txn ? (v("settle_ms") "ms") : "-"
    }' "$OUT/txn.csv" "$OUT/txn.csv" | tee "$OUT/table.txt"
echo "(${PRODUCERS:-4} producers, ${PARTITIONS:-6} partitions, ${RECORD_BYTES:-1024} B records," \
    "acks=all, ${DURATION_SECS:-5} s per mode, medians of ${ROUNDS:-3} rounds;" \
    "retries: AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS per round," \
    "retry%: share of the producers' time spent in them)" | tee -a "$OUT/table.txt"
echo
cat "$OUT/txn.csv"
echo "txn.csv, rounds.csv and table.txt in $OUT" >&2
