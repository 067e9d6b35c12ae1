#!/usr/bin/env bash
# A local 3-node rafka cluster on loopback, for people and for tests:
# nodes 1, 2 and 3, each a combined broker + controller with its own data
# dir, kept across restarts (and CLUSTER_BROKERS more, broker-only).
#
#   scripts/cluster.sh start [--fresh]  start nodes 1-3 (--fresh wipes
#                                       $CLUSTER_DIR first); last line:
#                                       bootstrap=127.0.0.1:P1,...,127.0.0.1:P3
#   scripts/cluster.sh start N          start node N alone, on its data dir
#   scripts/cluster.sh kill N           SIGKILL node N, wait for its exit
#   scripts/cluster.sh stop             SIGTERM every node, wait for exits
#   scripts/cluster.sh status           one line per node: id, pid or
#                                       `down`, client listener
#
# Node N: client listener 127.0.0.1:$((CLUSTER_BASE_PORT+N)), controller
# (its controller.quorum.voters entry) 127.0.0.1:$((CLUSTER_BASE_PORT+100+N)),
# /metrics on 127.0.0.1:$((CLUSTER_BASE_PORT+200+N)); data in
# $CLUSTER_DIR/node-N, log in $CLUSTER_DIR/node-N.log (appended), pid in
# $CLUSTER_DIR/node-N.pid.
#
# Environment:
#   CLUSTER_DIR         ./cluster-data
#   CLUSTER_BASE_PORT   19090 (clients 19091-19093, controllers 19191-19193,
#                       metrics 19291-19293)
#   CLUSTER_CORES       1 (--cores of each node)
#   CLUSTER_BROKERS     0: how many broker-only nodes (process.roles=broker,
#                       observers of the quorum of nodes 1-3) run beside
#                       them, as nodes 4, 5, ...
#   RAFKA_BIN           the binary; default the newer of target/release/rafka
#                       and target/debug/rafka (under
#                       $CARGO_TARGET_DIR when set). Never built here unless
#   CLUSTER_BUILD=1     which runs `cargo build --release --bin rafka` first.
#   CLUSTER_CONFIG      a server.properties every node reads (its flags
#                       above win), e.g. broker.session.timeout.ms.
#   CLUSTER_RACKS       racks of nodes 1, 2, ... in order, space-separated
#                       (--broker-rack), e.g. "a b c"; none by default.
#   CLUSTER_NO_QUORUM=1 start each node without --controller-quorum-voters:
#                       three independent single nodes (tests of this script).
#   CLUSTER_START_TIMEOUT / CLUSTER_STOP_TIMEOUT  seconds, 60 each: how long
#                       a node may take to print its ready line / to exit.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
VOTERS=(1 2 3)
BROKERS=${CLUSTER_BROKERS:-0}
[[ "$BROKERS" =~ ^[0-9]+$ ]] && ((BROKERS <= 50)) || { echo "cluster.sh: CLUSTER_BROKERS=$BROKERS (0-50)" >&2; exit 2; }
NODES=("${VOTERS[@]}")
for ((b = 1; b <= BROKERS; b++)); do NODES+=($((3 + b))); done
CLUSTER_DIR=$(realpath -m "${CLUSTER_DIR:-./cluster-data}")
BASE_PORT=${CLUSTER_BASE_PORT:-19090}
CORES=${CLUSTER_CORES:-1}
START_TIMEOUT=${CLUSTER_START_TIMEOUT:-60}
STOP_TIMEOUT=${CLUSTER_STOP_TIMEOUT:-60}

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

client_port() { echo $((BASE_PORT + $1)); }
controller_port() { echo $((BASE_PORT + 100 + $1)); }
metrics_port() { echo $((BASE_PORT + 200 + $1)); }
data_dir() { echo "$CLUSTER_DIR/node-$1"; }
pid_file() { echo "$CLUSTER_DIR/node-$1.pid"; }
log_file() { echo "$CLUSTER_DIR/node-$1.log"; }

voters() {
    local n out=""
    for n in "${VOTERS[@]}"; do
        out+="${out:+,}$n@127.0.0.1:$(controller_port "$n")"
    done
    echo "$out"
}

binary() {
    if [[ -n "${RAFKA_BIN:-}" ]]; then
        echo "$RAFKA_BIN"
        return
    fi
    local target=${CARGO_TARGET_DIR:-$repo/target}
    if [[ "${CLUSTER_BUILD:-0}" == 1 ]]; then
        (cd "$repo" && cargo build --release --bin rafka >&2)
    fi
    # The newer of the two builds: a stale release binary must not win
    # over the debug one just built (or the other way round).
    local release=$target/release/rafka debug=$target/debug/rafka
    if [[ -x "$release" && (! -x "$debug" || "$release" -nt "$debug") ]]; then
        echo "$release"
    else
        echo "$debug"
    fi
}

# Whether process PID has exited entirely: gone, or a zombie none of whose
# threads still runs. Not `kill -0` alone: this machine's init may never
# reap a zombie. Not an empty command line either: the main thread of a
# killed node drops its memory (and so its command line) while its other
# threads still hold the node's sockets, and an immediate restart then met
# "address in use".
exited() {
    local stat state
    kill -0 "$1" 2>/dev/null || return 0
    for stat in /proc/"$1"/task/*/stat; do
        { read -r state <"$stat"; } 2>/dev/null || continue
        state=${state##*) }
        [[ "${state:0:1}" == [ZX] ]] || return 1
    done
    return 0
}

# Whether PID's main thread is a zombie (its other threads may still run).
main_thread_exited() {
    local state
    { read -r state <"/proc/$1/stat"; } 2>/dev/null || return 1
    state=${state##*) }
    [[ "${state:0:1}" == Z ]]
}

# The pid of node N if it is running (or still exiting), else nothing. A
# pid counts only if its process has node N's data dir on its command line,
# or is a main thread already exited whose other threads have not: a stale
# pid file whose pid was reused, or a reaped or dead zombie, is down.
running_pid() {
    local file pid cmdline
    file=$(pid_file "$1")
    [[ -f "$file" ]] || return 0
    pid=$(<"$file")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    exited "$pid" && return 0
    cmdline=$({ tr '\0' '\n' <"/proc/$pid/cmdline"; } 2>/dev/null || true)
    if grep -qxF -- "$(data_dir "$1")" <<<"$cmdline" || main_thread_exited "$pid"; then
        echo "$pid"
    fi
}

# Waits until nothing listens on node N's ports any more (the kernel may
# close a dead process's io_uring-held sockets a little after it exited).
await_ports_closed() {
    local deadline=$((SECONDS + STOP_TIMEOUT)) port
    for port in $(client_port "$1") $(controller_port "$1") $(metrics_port "$1"); do
        while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
            ((SECONDS < deadline)) || return 1
            sleep 0.05
        done
    done
}

check_node() {
    if ! [[ "$1" =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > ${#NODES[@]})); then
        die "no node $1 (nodes are ${NODES[*]})"
    fi
}

# Starts node N in the background; prints the log offset its ready line
# will be after.
launch() {
    local n=$1 bin log offset
    bin=$(binary)
    [[ -x "$bin" ]] || die "no rafka binary at $bin (cargo build, or set RAFKA_BIN or CLUSTER_BUILD=1)"
    mkdir -p "$CLUSTER_DIR"
    log=$(log_file "$n")
    offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
    local roles="broker,controller"
    if ((n > ${#VOTERS[@]})); then
        roles=broker
    fi
    local args=(
        --node-id "$n"
        --process-roles "$roles"
        --listen "127.0.0.1:$(client_port "$n")"
        --data-dir "$(data_dir "$n")"
        --metrics-listen "127.0.0.1:$(metrics_port "$n")"
        --cores "$CORES"
        --pin false
    )
    if [[ "${CLUSTER_NO_QUORUM:-0}" != 1 ]]; then
        args+=(--controller-quorum-voters "$(voters)")
    fi
    if [[ -n "${CLUSTER_CONFIG:-}" ]]; then
        args+=(--config "$CLUSTER_CONFIG")
    fi
    local racks
    read -r -a racks <<<"${CLUSTER_RACKS:-}"
    if [[ -n "${racks[$((n - 1))]:-}" ]]; then
        args+=(--broker-rack "${racks[$((n - 1))]}")
    fi
    echo "=== $(date -u +%FT%TZ) node $n: $bin ${args[*]}" >>"$log"
    nohup "$bin" "${args[@]}" </dev/null >>"$log" 2>&1 &
    echo $! >"$(pid_file "$n")"
    echo "$offset"
}

# Waits until node N printed its ready line after byte OFFSET of its log,
# or fails (its log's tail shown) if it exits or the deadline passes.
await_ready() {
    local n=$1 offset=$2 log pid deadline
    log=$(log_file "$n")
    pid=$(<"$(pid_file "$n")")
    deadline=$((SECONDS + START_TIMEOUT))
    # (Not `tail | grep -q`: grep leaving early fails tail under pipefail.)
    until grep -q '^rafka listening on ' < <(tail -c "+$((offset + 1))" "$log"); do
        if [[ -z "$(running_pid "$n")" ]]; then
            tail -n 20 "$log" >&2
            echo "cluster.sh: node $n (pid $pid) exited before it was ready; log: $log" >&2
            return 1
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$log" >&2
            echo "cluster.sh: node $n (pid $pid) not ready after ${START_TIMEOUT}s; log: $log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "node $n pid $pid listening on 127.0.0.1:$(client_port "$n")"
}

# Waits until none of the given nodes runs; lists those that still do.
await_down() {
    local deadline=$((SECONDS + $1)) n left
    shift
    while :; do
        left=()
        for n in "$@"; do
            if [[ -n "$(running_pid "$n")" ]]; then
                left+=("$n")
            fi
        done
        ((${#left[@]} == 0)) && return 0
        if ((SECONDS >= deadline)); then
            echo "${left[*]}"
            return 1
        fi
        sleep 0.1
    done
}

cmd_start_all() {
    local fresh=$1 n pid offsets=() failed=0
    for n in "${NODES[@]}"; do
        pid=$(running_pid "$n")
        [[ -z "$pid" ]] || die "node $n is running (pid $pid): scripts/cluster.sh stop first"
    done
    if [[ "$fresh" == 1 ]]; then
        rm -rf "$CLUSTER_DIR"
    fi
    # Every node before any wait: a quorum needs its voters up together.
    for n in "${NODES[@]}"; do
        offsets[n]=$(launch "$n")
    done
    for n in "${NODES[@]}"; do
        await_ready "$n" "${offsets[n]}" || failed=1
    done
    if ((failed)); then
        for n in "${NODES[@]}"; do
            pid=$(running_pid "$n")
            if [[ -n "$pid" ]]; then
                kill -TERM "$pid"
            fi
        done
        await_down "$STOP_TIMEOUT" "${NODES[@]}" >/dev/null || true
        die "start failed; nodes stopped"
    fi
    local bootstrap=""
    for n in "${NODES[@]}"; do
        bootstrap+="${bootstrap:+,}127.0.0.1:$(client_port "$n")"
    done
    echo "bootstrap=$bootstrap"
}

cmd_start_one() {
    local n=$1 pid offset
    check_node "$n"
    pid=$(running_pid "$n")
    [[ -z "$pid" ]] || die "node $n is already running (pid $pid)"
    [[ -d "$(data_dir "$n")" ]] || die "node $n has no data dir $(data_dir "$n"): scripts/cluster.sh start first"
    offset=$(launch "$n")
    await_ready "$n" "$offset" || die "node $n did not start"
}

cmd_kill() {
    local n=$1 pid
    check_node "$n"
    pid=$(running_pid "$n")
    [[ -n "$pid" ]] || die "node $n is not running"
    kill -KILL "$pid"
    await_down "$STOP_TIMEOUT" "$n" >/dev/null || die "node $n (pid $pid) survived SIGKILL"
    await_ports_closed "$n" || die "node $n (pid $pid) killed, its ports still open"
    rm -f "$(pid_file "$n")"
    echo "node $n pid $pid killed"
}

cmd_stop() {
    local n pid stopped=() left
    for n in "${NODES[@]}"; do
        pid=$(running_pid "$n")
        [[ -n "$pid" ]] || continue
        kill -TERM "$pid"
        stopped+=("$n")
    done
    ((${#stopped[@]} > 0)) || { echo "no node running"; return 0; }
    if ! left=$(await_down "$STOP_TIMEOUT" "${stopped[@]}"); then
        die "node(s) $left still running ${STOP_TIMEOUT}s after SIGTERM (scripts/cluster.sh kill N)"
    fi
    for n in "${stopped[@]}"; do
        rm -f "$(pid_file "$n")"
        echo "node $n stopped"
    done
}

cmd_status() {
    local n pid
    for n in "${NODES[@]}"; do
        pid=$(running_pid "$n")
        echo "$n ${pid:-down} 127.0.0.1:$(client_port "$n")"
    done
}

case "${1:-}" in
start)
    case "${2:-}" in
    "") cmd_start_all 0 ;;
    --fresh) cmd_start_all 1 ;;
    *) cmd_start_one "$2" ;;
    esac
    ;;
kill) [[ $# == 2 ]] || usage; cmd_kill "$2" ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) usage ;;
esac
