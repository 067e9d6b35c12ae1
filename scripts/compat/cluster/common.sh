# shellcheck shell=bash
# Shared by the <client>-cluster.sh scripts (sourced, not run): a 3-node
# cluster of their own from scripts/cluster.sh, in a temp dir on a free
# base port, with a short broker session (a killed broker is fenced within
# 3 s), stopped on exit: SIGTERM through `cluster.sh stop`, then SIGKILL by
# pid for any node still up; the temp dir removed.
#
# After cluster_start: $cluster_bootstrap (all three listeners),
# cluster_listener N, cluster_sh ARGS... (scripts/cluster.sh on this
# cluster), cluster_logs (each node's log tail, for a failure).
# Environment: RAFKA_BIN (default: build the release binary).

cluster_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cluster_work="$(mktemp -d)"
cluster_base_port=""
cluster_bootstrap=""

if [[ -z "${RAFKA_BIN:-}" ]]; then
    cargo build --quiet --release --manifest-path "$cluster_repo/Cargo.toml" --bin rafka
    RAFKA_BIN="$(cargo metadata --format-version 1 --no-deps --manifest-path "$cluster_repo/Cargo.toml" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/rafka"
fi
export RAFKA_BIN

cluster_sh() {
    CLUSTER_DIR="$cluster_work/cluster" CLUSTER_BASE_PORT="$cluster_base_port" \
        CLUSTER_CONFIG="$cluster_work/server.properties" CLUSTER_CORES=1 \
        CLUSTER_NO_QUORUM=0 CLUSTER_BUILD=0 bash "$cluster_repo/scripts/cluster.sh" "$@"
}

cluster_listener() {
    echo "127.0.0.1:$((cluster_base_port + $1))"
}

# shellcheck disable=SC2317 # run by the EXIT trap
cluster_cleanup() {
    local n pid
    if [[ -n "$cluster_base_port" ]]; then
        cluster_sh stop >/dev/null 2>&1 || true
        for n in 1 2 3; do
            pid="$(cat "$cluster_work/cluster/node-$n.pid" 2>/dev/null || true)"
            # Only a pid whose command line names this node's data dir is ours.
            if [[ "$pid" =~ ^[0-9]+$ ]] &&
                tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$cluster_work/cluster/node-$n"; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
    fi
    rm -rf "$cluster_work"
}
trap cluster_cleanup EXIT

cluster_logs() {
    local n
    for n in 1 2 3; do
        echo "--- node $n log (tail) ---"
        tail -n 25 "$cluster_work/cluster/node-$n.log" 2>/dev/null || true
    done
}

# A base port P with P+1..3 (clients), P+101..103 (controllers) and
# P+201..203 (metrics) all free right now.
cluster_free_base_port() {
    python3 - <<'PY'
import socket
def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
while True:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1] - 1
    if 1024 <= base <= 65535 - 210 and all(free(base + o + n) for o in (0, 100, 200) for n in (1, 2, 3)):
        print(base)
        break
PY
}

# Starts nodes 1-3 fresh and waits for each one's ready line.
cluster_start() {
    cat >"$cluster_work/server.properties" <<'EOF'
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
EOF
    cluster_base_port="$(cluster_free_base_port)"
    local lines
    lines="$(cluster_sh start --fresh)" || {
        cluster_logs
        return 1
    }
    echo "$lines" >&2
    cluster_bootstrap="$(tail -n 1 <<<"$lines")"
    cluster_bootstrap="${cluster_bootstrap#bootstrap=}"
}
