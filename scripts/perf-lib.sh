# shellcheck shell=bash
# What perf.sh and perf-clients.sh share, sourced by both from the repo
# root: the release build, stopping a server by pid, and learning a
# server's address from its "<name> listening on ADDR" line.
# Needs TARGET_DIR, STARTUP_DEADLINE_SECS and PERF_SCRIPT (the caller's
# name, for messages).

# Builds the broker and the bench (unless PERF_NO_BUILD is set) and sets
# BROKER and BENCH to their paths.
perf_build() {
    if [[ -z ${PERF_NO_BUILD:-} ]]; then
        echo "== building release" >&2
        cargo build --release --quiet -p rafka -p rafka-bench
    fi
    # shellcheck disable=SC2034 # used by the sourcing script
    BROKER=$TARGET_DIR/release/rafka
    # shellcheck disable=SC2034 # used by the sourcing script
    BENCH=$TARGET_DIR/release/rafka-bench
}

# SIGTERM to a server started by the caller, and waits for it; an empty
# or finished pid is a no-op.
stop() { # pid
    if [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1"
        wait "$1" || true
    fi
}

# Waits for a server's "<name> listening on ADDR" line and prints ADDR;
# exits with the server's stderr tail if it never comes.
listen_addr() { # name pid stdout-file stderr-file
    local addr=
    for _ in $(seq $((STARTUP_DEADLINE_SECS * 10))); do
        addr=$(sed -n "s/^$1 listening on \([^ ]*\).*/\1/p" "$3")
        [[ -n $addr ]] && break
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $addr ]]; then
        echo "$PERF_SCRIPT: $1 did not start:" >&2
        tail -n 20 "$4" >&2
        exit 1
    fi
    echo "$addr"
}
