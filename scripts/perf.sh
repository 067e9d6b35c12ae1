#!/usr/bin/env bash
# The perf run: builds release, measures this machine's ceilings and the
# loopback round-trip floor, runs the produce matrix against
# `rafka-bench ceiling-sink` (the produce ceiling: append + fdatasync, the
# same client), starts a broker on a temp dir, runs the produce / consume /
# e2e matrix with rafka-bench, prints every figure next to its ceiling and
# writes CSV + SVG.
#
# Usage: scripts/perf.sh            (short points, ~1-2 minutes)
#        PERF_DURATION_SECS=30 scripts/perf.sh   (longer points)
# Env:   PERF_OUT (default $CARGO_TARGET_DIR/perf, target/perf without it), PERF_RATES (records/s, comma list),
#        PERF_DURATION_SECS (per point, default 3), PERF_PARTITIONS (6),
#        PERF_RECORD_BYTES (1024), PERF_BATCH_RECORDS (256: the most records
#        per produce request; a 256 KiB batch is still below librdkafka's
#        1 MB batch.size, and at low rates batches hold only what is due),
#        PERF_ACKS1_RATES (the acks=1 points, default 1000,10000),
#        PERF_PRELOAD_RECORDS (consume, default 300000), PERF_CORES (broker
#        shards, default all CPUs), PERF_NO_BUILD=1 (use the binaries in
#        $CARGO_TARGET_DIR/release, or target/release, as they are),
#        PERF_CLIENTS=1 (then scripts/perf-clients.sh: librdkafka's own
#        rdkafka_performance against the sink and the broker, same $OUT),
#        PERF_CLUSTER=1 (then `rafka-bench cluster`: a 3-node cluster of
#        this build through scripts/cluster.sh, controller failover,
#        metadata propagation and topic creations/s; cluster.csv and
#        cluster.txt in $OUT; PERF_CLUSTER_ARGS adds arguments, e.g.
#        "--kills 5 --duration-secs 5").
set -euo pipefail

cd "$(dirname "$0")/.."
PERF_SCRIPT=perf.sh
# shellcheck source=scripts/perf-lib.sh
source scripts/perf-lib.sh
# cargo's own rule: CARGO_TARGET_DIR if set (relative to here), else target.
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${PERF_OUT:-$TARGET_DIR/perf}
RATES=${PERF_RATES:-1000,10000,100000,1000000}
DURATION=${PERF_DURATION_SECS:-3}
PARTITIONS=${PERF_PARTITIONS:-6}
RECORD_BYTES=${PERF_RECORD_BYTES:-1024}
BATCH_RECORDS=${PERF_BATCH_RECORDS:-256}
PRELOAD=${PERF_PRELOAD_RECORDS:-300000}
STARTUP_DEADLINE_SECS=60

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
perf_build

# Broker data and the ceiling files live on the same disk, under $OUT.
WORK=$(mktemp -d "$OUT/run.XXXXXX")
BROKER_PID=
SINK_PID=
cleanup() {
    stop "$BROKER_PID"
    stop "$SINK_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT


echo "== ceilings" >&2
"$BENCH" ceiling-write --dir "$WORK/ceiling" --csv "$OUT/ceiling-write.csv" >/dev/null
"$BENCH" ceiling-sendfile --dir "$WORK/ceiling" --csv "$OUT/ceiling-sendfile.csv" >/dev/null
best() { awk -F, 'NR > 1 && ($1 == "write" || $1 == "sendfile") && $5 > m { m = $5 } END { printf "%.1f", m }' "$1"; }
SYNC_LATENCY=$(awk -F, '$1 == "sync-each" { print $2 }' "$OUT/ceiling-write.csv")
WRITE_CEILING=$(best "$OUT/ceiling-write.csv")
SENDFILE_CEILING=$(best "$OUT/ceiling-sendfile.csv")
"$BENCH" ping-floor --duration-secs "$DURATION" --csv "$OUT/ping-floor.csv" >/dev/null

# The produce ceiling: the same produce run against the minimal sink, its
# rows' mode renamed `sink`. Its files are removed before the broker runs.
echo "== produce against ceiling-sink (acks=all)" >&2
mkdir -p "$WORK/sink"
"$BENCH" ceiling-sink --listen 127.0.0.1:0 --dir "$WORK/sink" --partitions "$PARTITIONS" \
    >"$WORK/sink.out" 2>"$WORK/sink.err" &
SINK_PID=$!
SINK_ADDR=$(listen_addr ceiling-sink "$SINK_PID" "$WORK/sink.out" "$WORK/sink.err")
echo "ceiling-sink at $SINK_ADDR" >&2

produce_args() { # bootstrap [acks, default all]
    echo --bootstrap "$1" --partitions "$PARTITIONS" --record-bytes "$RECORD_BYTES" \
        --batch-records "$BATCH_RECORDS" --duration-secs "$DURATION" --acks "${2:-all}"
}
# shellcheck disable=SC2046 # produce_args prints words without spaces
"$BENCH" produce $(produce_args "$SINK_ADDR") --topic perf-produce --rate "$RATES" \
    --csv "$WORK/sink-produce.csv" >/dev/null
awk -F, -v OFS=, 'NR > 1 { $1 = "sink" } 1' "$WORK/sink-produce.csv" >"$OUT/ceiling-sink.csv"
stop "$SINK_PID"
SINK_PID=
rm -rf "$WORK/sink"

echo "== starting the broker" >&2
mkdir -p "$WORK/data"
BROKER_ARGS=(--listen 127.0.0.1:0 --data-dir "$WORK/data" --pin false)
if [[ -n ${PERF_CORES:-} ]]; then BROKER_ARGS+=(--cores "$PERF_CORES"); fi
if "$BROKER" --help | grep -q -- --metrics-listen; then
    BROKER_ARGS+=(--metrics-listen 127.0.0.1:0)
fi
"$BROKER" "${BROKER_ARGS[@]}" >"$WORK/broker.out" 2>"$WORK/broker.err" &
BROKER_PID=$!
ADDR=$(listen_addr rafka "$BROKER_PID" "$WORK/broker.out" "$WORK/broker.err")
echo "broker at $ADDR ($(cat "$WORK/broker.out"))" >&2

# shellcheck disable=SC2207 # produce_args prints words without spaces
COMMON=($(produce_args "$ADDR"))
echo "== produce (acks=all)" >&2
"$BENCH" produce "${COMMON[@]}" --topic perf-produce --rate "$RATES" --csv "$OUT/produce.csv" >/dev/null
# acks=1: no fsync wait, so the latency is the request path's own (the
# goal: p99 within 3x of the loopback round trip).
ACKS1_RATES=${PERF_ACKS1_RATES:-1000,10000}
echo "== produce (acks=1)" >&2
# shellcheck disable=SC2046 # produce_args prints words without spaces
"$BENCH" produce $(produce_args "$ADDR" 1) --topic perf-acks1 --rate "$ACKS1_RATES" \
    --csv "$OUT/produce-acks1.csv" >/dev/null
echo "== consume" >&2
"$BENCH" consume "${COMMON[@]}" --topic perf-consume --preload-records "$PRELOAD" \
    --csv "$OUT/consume.csv" >/dev/null
echo "== e2e" >&2
"$BENCH" e2e "${COMMON[@]}" --topic perf-e2e --rate "$RATES" --csv "$OUT/e2e.csv" >/dev/null

stop "$BROKER_PID"
BROKER_PID=

"$BENCH" plot --runs "$OUT/produce.csv,$OUT/ceiling-sink.csv,$OUT/consume.csv,$OUT/e2e.csv" \
    --ceilings "$OUT/ceiling-write.csv,$OUT/ceiling-sendfile.csv" --out "$OUT/perf.svg"

# One line per figure: throughput as a ratio of its ceiling (produce and
# e2e against fdatasync'd writes, consume against sendfile), latencies.
summary() {
    awk -F, -v ceiling="$2" -v name="$3" 'NR > 1 {
        printf "%-8s %8s msg/s: %9.0f msg/s %8.2f MB/s = %.3f x %s ceiling (%s MB/s) | attained %5.1f%% | p50 %s p99 %s p99.9 %s max %s us | errors %s\n",
            $1, $2, $3, $4, $4 / ceiling, name, ceiling, $5, $6, $8, $9, $10, $11
    }' "$1"
}
# The headline: broker / sink at the highest rate both ran (throughput)
# and p99 at 10k msg/s next to the sink's.
headline() { # broker.csv sink.csv
    awk -F, 'FNR == 1 { next }
        FILENAME == ARGV[1] { broker[$2] = $0; next }
        { sink[$2] = $0 }
        END {
            top = -1
            for (rate in broker) if ((rate in sink) && rate + 0 > top + 0) top = rate
            if (top == -1) { print "produce broker / sink: no rate ran against both"; exit }
            split(broker[top], b, ","); split(sink[top], s, ",")
            printf "produce broker / sink at %s msg/s (acks=all): %.2f / %.2f MB/s = %.3f x sink ceiling\n",
                top, b[4], s[4], (s[4] > 0 ? b[4] / s[4] : 0)
            if (("10000" in broker) && ("10000" in sink)) {
                split(broker["10000"], b, ","); split(sink["10000"], s, ",")
                printf "produce p99 at 10000 msg/s (acks=all): broker %s us, sink %s us = %.2f x sink (p50 %s / %s us)\n",
                    b[8], s[8], (s[8] > 0 ? b[8] / s[8] : 0), b[6], s[6]
            } else print "produce p99 at 10000 msg/s: not in PERF_RATES"
        }' "$1" "$2"
}
{
    headline "$OUT/produce.csv" "$OUT/ceiling-sink.csv"
    awk -F, 'NR == 2 { printf "loopback rtt p99 (1 KiB request/response, sequential): %s us (p50 %s, p99.9 %s, max %s us)\n", $8, $6, $9, $10 }' \
        "$OUT/ping-floor.csv"
    # acks=1 p99 next to the loopback floor, e2e p99 next to the same
    # phase's produce p99.
    awk -F, 'FNR == 1 { next }
        FILENAME == ARGV[1] { floor = $8; next }
        { printf "acks=1 p99 at %s msg/s: %s us = %.2f x loopback rtt p99 (p50 %s us)\n", $2, $8, (floor > 0 ? $8 / floor : 0), $6 }' \
        "$OUT/ping-floor.csv" "$OUT/produce-acks1.csv"
    awk -F, 'FNR == 1 { next }
        $1 == "e2e" { e2e[$2] = $8 }
        $1 == "e2e-produce" { produce[$2] = $8 }
        END { for (rate in e2e) if (rate in produce)
            printf "e2e p99 at %s msg/s: %s us = %.2f x the same phase'"'"'s produce p99 (%s us)\n", rate, e2e[rate], (produce[rate] > 0 ? e2e[rate] / produce[rate] : 0), produce[rate] }' \
        "$OUT/e2e.csv" | sort -t' ' -k4 -n
    echo "ceilings: write (fdatasync every 1 MiB, best size) $WRITE_CEILING MB/s, sendfile loopback $SENDFILE_CEILING MB/s"
    echo "latency floor of acks=all on this disk: ${SYNC_LATENCY:-not measured}"
    # The page-cache copy's price: buffered vs O_DIRECT writes of the
    # same sizes, throughput and CPU per GB.
    awk -F, '$1 == "write" || $1 == "write-direct" { printf "%-12s %s: %s MB/s\n", $1, $2, $5 }' \
        "$OUT/ceiling-write.csv"
    summary "$OUT/produce.csv" "$WRITE_CEILING" write
    summary "$OUT/ceiling-sink.csv" "$WRITE_CEILING" write
    summary "$OUT/produce-acks1.csv" "$WRITE_CEILING" write
    summary "$OUT/consume.csv" "$SENDFILE_CEILING" sendfile
    summary "$OUT/e2e.csv" "$WRITE_CEILING" write
} | tee "$OUT/summary.txt"
echo "CSV, summary.txt and perf.svg in $OUT" >&2

if [[ ${PERF_CLUSTER:-0} == 1 ]]; then
    echo "== cluster metadata quorum (rafka-bench cluster)" >&2
    # CSV to cluster.csv, the per-round lines and the summary (stderr) to
    # cluster.txt and the terminal.
    # shellcheck disable=SC2086 # PERF_CLUSTER_ARGS is split into arguments
    "$BENCH" cluster --rafka-bin "$BROKER" --csv "$OUT/cluster.csv" ${PERF_CLUSTER_ARGS:-} \
        2>&1 >/dev/null | tee "$OUT/cluster.txt" >&2
fi

if [[ ${PERF_CLIENTS:-0} == 1 ]]; then
    echo "== real client (scripts/perf-clients.sh)" >&2
    PERF_NO_BUILD=1 PERF_OUT="$OUT" PERF_DURATION_SECS="$DURATION" bash scripts/perf-clients.sh
fi
