#!/usr/bin/env bash
# The perf run: builds release, measures this machine's ceilings, starts a
# broker on a temp dir, runs the produce / consume / e2e matrix with
# rafka-bench, prints every figure next to its ceiling and writes CSV + SVG.
#
# Usage: scripts/perf.sh            (short points, ~1-2 minutes)
#        PERF_DURATION_SECS=30 scripts/perf.sh   (longer points)
# Env:   PERF_OUT (default target/perf), PERF_RATES (records/s, comma list),
#        PERF_DURATION_SECS (per point, default 3), PERF_PARTITIONS (6),
#        PERF_RECORD_BYTES (1024), PERF_BATCH_RECORDS (256: the most records
#        per produce request; a 256 KiB batch is still below librdkafka's
#        1 MB batch.size, and at low rates batches hold only what is due),
#        PERF_PRELOAD_RECORDS (consume, default 300000), PERF_CORES (broker
#        shards, default all CPUs), PERF_NO_BUILD=1 (use the binaries in
#        target/release as they are).
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${PERF_OUT:-target/perf}
RATES=${PERF_RATES:-1000,10000,100000,1000000}
DURATION=${PERF_DURATION_SECS:-3}
PARTITIONS=${PERF_PARTITIONS:-6}
RECORD_BYTES=${PERF_RECORD_BYTES:-1024}
BATCH_RECORDS=${PERF_BATCH_RECORDS:-256}
PRELOAD=${PERF_PRELOAD_RECORDS:-300000}
STARTUP_DEADLINE_SECS=60

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [[ -z ${PERF_NO_BUILD:-} ]]; then
    echo "== building release" >&2
    cargo build --release --quiet -p rafka -p rafka-bench
fi
BROKER=target/release/rafka
BENCH=target/release/rafka-bench

# Broker data and the ceiling files live on the same disk, under $OUT.
WORK=$(mktemp -d "$OUT/run.XXXXXX")
BROKER_PID=
cleanup() {
    if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID"
        wait "$BROKER_PID" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== ceilings" >&2
"$BENCH" ceiling-write --dir "$WORK/ceiling" --csv "$OUT/ceiling-write.csv" >/dev/null
"$BENCH" ceiling-sendfile --dir "$WORK/ceiling" --csv "$OUT/ceiling-sendfile.csv" >/dev/null
best() { awk -F, 'NR > 1 && $1 != "sync-each" && $5 > m { m = $5 } END { printf "%.1f", m }' "$1"; }
SYNC_LATENCY=$(awk -F, '$1 == "sync-each" { print $2 }' "$OUT/ceiling-write.csv")
WRITE_CEILING=$(best "$OUT/ceiling-write.csv")
SENDFILE_CEILING=$(best "$OUT/ceiling-sendfile.csv")

echo "== starting the broker" >&2
mkdir -p "$WORK/data"
BROKER_ARGS=(--listen 127.0.0.1:0 --data-dir "$WORK/data" --pin false)
if [[ -n ${PERF_CORES:-} ]]; then BROKER_ARGS+=(--cores "$PERF_CORES"); fi
if "$BROKER" --help | grep -q -- --metrics-listen; then
    BROKER_ARGS+=(--metrics-listen 127.0.0.1:0)
fi
"$BROKER" "${BROKER_ARGS[@]}" >"$WORK/broker.out" 2>"$WORK/broker.err" &
BROKER_PID=$!
ADDR=
for _ in $(seq $((STARTUP_DEADLINE_SECS * 10))); do
    ADDR=$(sed -n 's/^rafka listening on \([^ ]*\).*/\1/p' "$WORK/broker.out")
    [[ -n $ADDR ]] && break
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $ADDR ]]; then
    echo "perf.sh: the broker did not start:" >&2
    tail -n 20 "$WORK/broker.err" >&2
    exit 1
fi
echo "broker at $ADDR ($(cat "$WORK/broker.out"))" >&2

COMMON=(--bootstrap "$ADDR" --partitions "$PARTITIONS" --record-bytes "$RECORD_BYTES"
    --batch-records "$BATCH_RECORDS" --duration-secs "$DURATION" --acks all)
echo "== produce (acks=all)" >&2
"$BENCH" produce "${COMMON[@]}" --topic perf-produce --rate "$RATES" --csv "$OUT/produce.csv" >/dev/null
echo "== consume" >&2
"$BENCH" consume "${COMMON[@]}" --topic perf-consume --preload-records "$PRELOAD" \
    --csv "$OUT/consume.csv" >/dev/null
echo "== e2e" >&2
"$BENCH" e2e "${COMMON[@]}" --topic perf-e2e --rate "$RATES" --csv "$OUT/e2e.csv" >/dev/null

kill -TERM "$BROKER_PID"
wait "$BROKER_PID" || true
BROKER_PID=

"$BENCH" plot --runs "$OUT/produce.csv,$OUT/consume.csv,$OUT/e2e.csv" \
    --ceilings "$OUT/ceiling-write.csv,$OUT/ceiling-sendfile.csv" --out "$OUT/perf.svg"

# One line per figure: throughput as a ratio of its ceiling (produce and
# e2e against fdatasync'd writes, consume against sendfile), latencies.
summary() {
    awk -F, -v ceiling="$2" -v name="$3" 'NR > 1 {
        printf "%-8s %8s msg/s: %9.0f msg/s %8.2f MB/s = %.3f x %s ceiling (%s MB/s) | attained %5.1f%% | p50 %s p99 %s p99.9 %s max %s us | errors %s\n",
            $1, $2, $3, $4, $4 / ceiling, name, ceiling, $5, $6, $8, $9, $10, $11
    }' "$1"
}
{
    echo "ceilings: write (fdatasync every 1 MiB, best size) $WRITE_CEILING MB/s, sendfile loopback $SENDFILE_CEILING MB/s"
    echo "latency floor of acks=all on this disk: ${SYNC_LATENCY:-not measured}"
    summary "$OUT/produce.csv" "$WRITE_CEILING" write
    summary "$OUT/consume.csv" "$SENDFILE_CEILING" sendfile
    summary "$OUT/e2e.csv" "$WRITE_CEILING" write
} | tee "$OUT/summary.txt"
echo "CSV, summary.txt and perf.svg in $OUT" >&2
