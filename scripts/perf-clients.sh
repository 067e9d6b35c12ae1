#!/usr/bin/env bash
# Produce figures from a real client: librdkafka's own load tool,
# rdkafka_performance, against `rafka-bench ceiling-sink` (the produce
# ceiling, as in perf.sh) and against the broker, over acks x linger.ms x
# rate, 1 KiB records over 6 partitions, each point against the sink and
# then the broker (both up for the whole run). The tool is built from the
# librdkafka source the rdkafka-sys crate vendors (the version in
# Cargo.lock, the same library the Rust tests link), once, into
# scripts/compat/.cache/.
#
# Latency is the tool's own per-message figure (`-l -A FILE`): from just
# before rd_kafka_produce() to that message's delivery report in the
# application thread, in µs. p50/p99/p99.9/max are computed here from
# every message's value (nearest rank), not from the tool's averages.
# Each point runs PERF_CLIENT_WARMUP_SECS that are not counted (the client
# connects, learns the leaders, fills its pipeline), then
# PERF_DURATION_SECS; the window is cut at the tool's once-a-second
# running totals, and throughput is what was delivered in it over its
# length. A rate point produces rate x (warm-up + duration) messages with
# `-r RATE` (the tool sleeps 1/RATE after each produce call, so it falls
# short of RATE; at 10000 it busy-polls a core between messages) and its
# window ends with its last delivery. The max point produces unthrottled
# until SIGINT 2 s past warm-up + duration; its latency is mostly the
# client's own queue (queue.buffering.max.messages, 100,000 by default).
# The client shares the 2 cores with the servers. Every point ends with a
# syncfs of the data disk, so the next one does not pay for its
# writeback.
#
# Usage: scripts/perf-clients.sh                (~4 minutes at 5 s a point)
#        PERF_CLIENTS=1 scripts/perf.sh         (after perf.sh's own matrix)
# Env:   PERF_OUT (default $CARGO_TARGET_DIR/perf, target/perf without it),
#        PERF_DURATION_SECS (per point, default 5), PERF_CLIENT_WARMUP_SECS
#        (1), PERF_PARTITIONS (6), PERF_RECORD_BYTES (1024),
#        PERF_CLIENT_ACKS (all,1), PERF_CLIENT_LINGERS (0,5: ms; 5 is
#        librdkafka's default, rdkafka_performance's own is 1000),
#        PERF_CLIENT_RATES (1000,10000,max), PERF_CORES (broker shards,
#        default all CPUs), PERF_NO_BUILD=1 (use the release binaries as
#        they are).
# Writes $OUT/clients.csv (one row per point), $OUT/clients-ping-floor.csv
# and appends the summary to $OUT/clients-summary.txt.
set -euo pipefail

cd "$(dirname "$0")/.."
PERF_SCRIPT=perf-clients.sh
# shellcheck source=scripts/perf-lib.sh
source scripts/perf-lib.sh
TARGET_DIR=${CARGO_TARGET_DIR:-target}
OUT=${PERF_OUT:-$TARGET_DIR/perf}
DURATION=${PERF_DURATION_SECS:-5}
WARMUP=${PERF_CLIENT_WARMUP_SECS:-1}
PARTITIONS=${PERF_PARTITIONS:-6}
RECORD_BYTES=${PERF_RECORD_BYTES:-1024}
IFS=, read -r -a ACKS <<<"${PERF_CLIENT_ACKS:-all,1}"
IFS=, read -r -a LINGERS <<<"${PERF_CLIENT_LINGERS:-0,5}"
IFS=, read -r -a RATES <<<"${PERF_CLIENT_RATES:-1000,10000,max}"
STARTUP_DEADLINE_SECS=60
CACHE=scripts/compat/.cache
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$OUT" "$CACHE"
OUT=$(cd "$OUT" && pwd)
perf_build

WORK=$(mktemp -d "$OUT/clients.XXXXXX")
BROKER_PID=
SINK_PID=
BUILD_DIR=
cleanup() {
    stop "$BROKER_PID"
    stop "$SINK_PID"
    rm -rf "$WORK"
    if [[ -n $BUILD_DIR ]]; then rm -rf "$BUILD_DIR"; fi
}
trap cleanup EXIT

# --- rdkafka_performance, built once per librdkafka version ---------------

# The rdkafka-sys version Cargo.lock pins, e.g. 4.10.0+2.12.1.
RDKAFKA_SYS=$(awk '$0 == "name = \"rdkafka-sys\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [[ -z $RDKAFKA_SYS ]]; then
    echo "perf-clients.sh: no rdkafka-sys in Cargo.lock" >&2
    exit 1
fi
LIBRDKAFKA_VERSION=${RDKAFKA_SYS#*+}
TOOL=$(pwd)/$CACHE/rdkafka_performance-$LIBRDKAFKA_VERSION

vendored_source() {
    local dir
    for dir in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$RDKAFKA_SYS"/librdkafka; do
        if [[ -x $dir/configure ]]; then
            echo "$dir"
            return
        fi
    done
}

# A static build of the C library without SSL, SASL/GSSAPI, zstd, zlib or
# curl (the matrix sends uncompressed plaintext; lz4 and snappy are
# built in), linked statically into the example.
build_tool() {
    local src
    src=$(vendored_source)
    if [[ -z $src ]]; then
        echo "== fetching crates (rdkafka-sys $RDKAFKA_SYS source)" >&2
        cargo fetch --quiet
        src=$(vendored_source)
    fi
    if [[ -z $src ]]; then
        echo "perf-clients.sh: no rdkafka-sys-$RDKAFKA_SYS source in the cargo registry" >&2
        exit 1
    fi
    echo "== building rdkafka_performance (librdkafka $LIBRDKAFKA_VERSION) into $CACHE" >&2
    BUILD_DIR=$(mktemp -d "$CACHE/librdkafka-build.XXXXXX")
    cp -a "$src/." "$BUILD_DIR"
    if ! (cd "$BUILD_DIR" &&
        ./configure --no-download --disable-ssl --disable-gssapi --disable-zstd \
            --disable-zlib --disable-curl --disable-lz4-ext --disable-regex-ext \
            --disable-syslog >build.log 2>&1 &&
        make -j"$(nproc)" -C src librdkafka.a >>build.log 2>&1 &&
        cc -O2 -Isrc examples/rdkafka_performance.c src/librdkafka.a \
            -lm -ldl -lpthread -lrt -o rdkafka_performance >>build.log 2>&1); then
        echo "perf-clients.sh: building rdkafka_performance failed:" >&2
        tail -n 30 "$BUILD_DIR/build.log" >&2
        exit 1
    fi
    mv "$BUILD_DIR/rdkafka_performance" "$TOOL"
    rm -rf "$BUILD_DIR"
    BUILD_DIR=
}
if [[ ! -x $TOOL ]]; then build_tool; fi

# --- servers -------------------------------------------------------------


start_sink() {
    mkdir -p "$WORK/sink"
    "$BENCH" ceiling-sink --listen 127.0.0.1:0 --dir "$WORK/sink" --partitions "$PARTITIONS" \
        >"$WORK/sink.out" 2>"$WORK/sink.err" &
    SINK_PID=$!
    SINK_ADDR=$(listen_addr ceiling-sink "$SINK_PID" "$WORK/sink.out" "$WORK/sink.err")
    echo "ceiling-sink at $SINK_ADDR" >&2
}

start_broker() {
    mkdir -p "$WORK/data"
    local args=(--listen 127.0.0.1:0 --data-dir "$WORK/data" --pin false)
    if [[ -n ${PERF_CORES:-} ]]; then args+=(--cores "$PERF_CORES"); fi
    if "$BROKER" --help | grep -q -- --metrics-listen; then
        args+=(--metrics-listen 127.0.0.1:0)
    fi
    "$BROKER" "${args[@]}" >"$WORK/broker.out" 2>"$WORK/broker.err" &
    BROKER_PID=$!
    BROKER_ADDR=$(listen_addr rafka "$BROKER_PID" "$WORK/broker.out" "$WORK/broker.err")
    echo "broker at $BROKER_ADDR" >&2
}

# --- one point -----------------------------------------------------------

# Creates the topic with $PARTITIONS partitions and checks it has them.
create_topic() { # addr topic
    local said
    said=$("$BENCH" create-topic --bootstrap "$1" --topic "$2" --partitions "$PARTITIONS")
    if [[ $said != "$2: $PARTITIONS partitions" ]]; then
        echo "perf-clients.sh: create-topic $2 said: $said" >&2
        exit 1
    fi
}

# Runs rdkafka_performance; its output goes to LOG.
produce() { # log addr topic acks linger count deadline-secs [extra args]
    local log=$1 addr=$2 topic=$3 acks=$4 linger=$5 count=$6 deadline=$7
    shift 7
    [[ $acks == all ]] && acks=-1
    # SIGINT on a deadline: the tool stops producing, prints its totals
    # and counts what was not delivered; the exit code says only that.
    timeout -s INT -k 10 "$deadline" "$TOOL" -P -t "$topic" -b "$addr" -s "$RECORD_BYTES" \
        -a "$acks" -X "linger.ms=$linger" -c "$count" "$@" >"$log" 2>&1 || true
    if grep -q 'ERROR CALLBACK' "$log"; then
        echo "perf-clients.sh: rdkafka_performance reported errors ($topic):" >&2
        grep 'ERROR CALLBACK' "$log" | head -n 5 >&2
    fi
}

# The window a point is measured over, from the tool's running totals
# (one a second, and a last one as it ends), e.g. "% 5000 messages
# produced (5120000 bytes), 5000 delivered (offset 833, 0 failed) in
# 5003ms: ...": prints "produced delivered failed ms" of the first total
# at or past FROM_MS (none: zeros) and of the first at or past TO_MS
# (none: the last).
window() { # log from-ms to-ms
    sed -n 's/^% \([0-9]*\) messages produced ([0-9]* bytes), \([0-9]*\) delivered (offset [-0-9]*, \([0-9]*\) failed) in \([0-9]*\)ms: .*/\1 \2 \3 \4/p' "$1" |
        awk -v from="$2" -v to="$3" '
            a == "" && $4 >= from { a = $0 }
            b == "" && $4 >= to { b = $0 }
            { last = $0 }
            END {
                if (last == "") exit
                print (a == "" ? "0 0 0 0" : a), (b == "" ? last : b)
            }'
}

# p50,p99,p999,max of lines FIRST..LAST of a file of one latency (µs) a
# line, nearest rank.
percentiles() { # file first last
    local n=$(($3 - $2 + 1))
    if [[ $n -le 0 ]]; then
        echo "0,0,0,0"
        return
    fi
    sed -n "$2,$3p" "$1" | sort -n | awk -v n="$n" '
        function rank(q,   r) { r = q * n; return (r == int(r)) ? r : int(r) + 1 }
        BEGIN { r50 = rank(0.5); r99 = rank(0.99); r999 = rank(0.999) }
        NR == r50 { p50 = $1 } NR == r99 { p99 = $1 } NR == r999 { p999 = $1 }
        END { printf "%d,%d,%d,%d\n", p50, p99, p999, $1 }'
}

# One point: WARMUP seconds that are not counted (the client connects,
# learns the leaders and fills its pipeline), then DURATION seconds. A rate
# point counts from its first total past the warm-up to its end; the max
# point from that total to the first past warm-up + duration.
run_point() { # mode addr acks linger rate
    local mode=$1 addr=$2 acks=$3 linger=$4 rate=$5
    local topic="clients-$mode-acks$acks-linger$linger-$rate"
    local lat="$WORK/$topic.lat" log="$WORK/$topic.log" count deadline to_ms result
    local rate_args=()
    create_topic "$addr" "$topic"
    if [[ $rate == max ]]; then
        count=2000000000
        deadline=$((WARMUP + DURATION + 2))
        to_ms=$(((WARMUP + DURATION) * 1000))
    else
        count=$(awk -v r="$rate" -v s="$((WARMUP + DURATION))" 'BEGIN { printf "%d", r * s }')
        deadline=$(((WARMUP + DURATION) * 4 + 60))
        to_ms=$((1 << 62))
        rate_args=(-r "$rate")
    fi
    produce "$log" "$addr" "$topic" "$acks" "$linger" "$count" "$deadline" \
        "${rate_args[@]}" -l -A "$lat"
    result=$(window "$log" $((WARMUP * 1000)) "$to_ms")
    if [[ -z $result ]]; then
        echo "perf-clients.sh: no totals from rdkafka_performance ($topic):" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
    # shellcheck disable=SC2086 # eight numbers
    set -- $result
    # Latency lines are written as delivery reports come, failed or not.
    local reported_from=$(($2 + $3)) reported_to=$(($6 + $7)) errors
    # A rate point must deliver all it produced; the max point is cut
    # short by its SIGINT, so only failed deliveries count.
    if [[ $rate == max ]]; then errors=$7; else errors=$(($5 - $6)); fi
    awk -v OFS=, -v mode="$mode" -v acks="$acks" -v linger="$linger" -v rate="$rate" \
        -v errors="$errors" -v delivered=$(($6 - $2)) -v ms=$(($8 - $4)) \
        -v bytes="$RECORD_BYTES" \
        -v lat="$(percentiles "$lat" $((reported_from + 1)) "$reported_to")" 'BEGIN {
            secs = ms / 1000; achieved = (secs > 0) ? delivered / secs : 0
            print mode, "rdkafka_performance", acks, linger, rate, sprintf("%.0f", achieved),
                sprintf("%.2f", achieved * bytes / 1e6), lat, errors, delivered,
                sprintf("%.3f", secs)
        }' >>"$OUT/clients.csv"
    tail -n 1 "$OUT/clients.csv" >&2
    sync -f "$WORK"
}

# Each point runs against the sink, then at once against the broker, so
# a load that comes and goes on a shared machine hits both alike.
run_matrix() {
    local acks linger rate
    for acks in "${ACKS[@]}"; do
        for linger in "${LINGERS[@]}"; do
            for rate in "${RATES[@]}"; do
                run_point sink "$SINK_ADDR" "$acks" "$linger" "$rate"
                run_point broker "$BROKER_ADDR" "$acks" "$linger" "$rate"
            done
        done
    done
}

# --- the run -------------------------------------------------------------

echo "mode,client,acks,linger_ms,target_msgs_per_sec,achieved_msgs_per_sec,achieved_mb_per_sec,p50_us,p99_us,p999_us,max_us,errors,records,seconds" \
    >"$OUT/clients.csv"

echo "== loopback floor" >&2
"$BENCH" ping-floor --duration-secs "$DURATION" --csv "$OUT/clients-ping-floor.csv" >/dev/null

echo "== rdkafka_performance against ceiling-sink and the broker, point by point" >&2
start_sink
start_broker
run_matrix
stop "$SINK_PID"
SINK_PID=
stop "$BROKER_PID"
BROKER_PID=

# --- summary -------------------------------------------------------------

# Per (acks, linger, rate): the broker next to the sink, then the acks=1
# goal of issue 16 (p99 within 3x of the loopback round trip) for every
# broker acks=1 linger.ms=0 rate point (a linger adds its own wait).
summary() {
    awk -F, -v floor_csv="$OUT/clients-ping-floor.csv" '
        BEGIN {
            while ((getline line < floor_csv) > 0) if (++n == 2) { split(line, f, ","); floor = f[8] }
        }
        FNR == 1 { next }
        { key = $3 "," $4 "," $5; if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
          row[$1, key] = $0 }
        END {
            printf "%-28s %27s %27s %9s %9s\n", "point", "broker msg/s p50/p99 us", "sink msg/s p50/p99 us", "p99 ratio", "tput ratio"
            for (i = 1; i <= keys; i++) {
                key = order[i]; split(key, k, ",")
                name = sprintf("acks=%s linger=%sms rate=%s", k[1], k[2], k[3])
                if (!(("broker", key) in row) || !(("sink", key) in row)) { printf "%-28s not run against both\n", name; continue }
                split(row["broker", key], b, ","); split(row["sink", key], s, ",")
                printf "%-28s %9s %7s/%-9s %9s %7s/%-9s %8.2fx %8.2fx%s\n", name, b[6], b[8], b[9], s[6], s[8], s[9],
                    (s[9] > 0 ? b[9] / s[9] : 0), (s[6] > 0 ? b[6] / s[6] : 0),
                    (b[12] + s[12] > 0 ? sprintf("  errors %s/%s", b[12], s[12]) : "")
            }
            printf "loopback rtt p99 (1 KiB request/response, sequential): %s us\n", floor
            for (i = 1; i <= keys; i++) {
                key = order[i]; split(key, k, ",")
                if (k[1] != "1" || k[2] != "0" || k[3] == "max" || !(("broker", key) in row) || floor <= 0) continue
                split(row["broker", key], b, ",")
                printf "acks=1 goal (p99 <= 3 x loopback p99 = %d us), linger=%sms rate=%s: broker p99 %s us = %.1f x loopback: %s\n",
                    3 * floor, k[2], k[3], b[9], b[9] / floor, (b[9] <= 3 * floor ? "met" : "missed")
            }
        }' "$OUT/clients.csv"
}
{
    echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) rdkafka_performance (librdkafka $LIBRDKAFKA_VERSION)," \
        "$RECORD_BYTES-byte records, $PARTITIONS partitions, ${DURATION} s a point;" \
        "load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
    summary
} | tee -a "$OUT/clients-summary.txt"
echo "clients.csv and clients-summary.txt in $OUT" >&2
