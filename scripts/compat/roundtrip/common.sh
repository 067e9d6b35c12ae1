# shellcheck shell=bash
# Shared by the <client>-roundtrip.sh scripts (sourced, not run): takes the
# broker address from the first argument or $BOOTSTRAP, runs one client
# program per codec against its own fresh topic, and ends with one summary
# line "roundtrip CLIENT: PASS|FAIL ...", exiting 0 only if every codec passed.
#
# Environment: BOOTSTRAP (host:port), COUNT (records per codec, default 300),
# CODECS (space-separated, default: every codec the client supports).

# Sets bootstrap from "$1" or $BOOTSTRAP, or explains the usage and exits 2.
roundtrip_bootstrap() {
    bootstrap="${1:-${BOOTSTRAP:-}}"
    if [[ -z "$bootstrap" ]]; then
        echo "usage: $(basename "$0") BOOTSTRAP   (or BOOTSTRAP=host:port in the environment)" >&2
        exit 2
    fi
}

# roundtrip_run CLIENT "DEFAULT CODECS" PROGRAM...: runs
# PROGRAM BOOTSTRAP TOPIC CODEC COUNT once per codec and exits with the verdict.
roundtrip_run() {
    local client="$1" default_codecs="$2"
    shift 2
    local count="${COUNT:-300}" verdict_timeout_s=120 codec topic status
    local -a passed=() failed=()
    for codec in ${CODECS:-$default_codecs}; do
        topic="rt-$client-$codec-$(date +%s)-$$-$RANDOM"
        status=0
        timeout "$verdict_timeout_s" "$@" "$bootstrap" "$topic" "$codec" "$count" || status=$?
        if [[ $status -eq 0 ]]; then
            passed+=("$codec")
        elif [[ $status -eq 124 ]]; then
            # A hung client usually means a hung broker: the other codecs
            # would hang the same way.
            echo "$client $codec: FAIL (no verdict within ${verdict_timeout_s} s; other codecs skipped)"
            failed+=("$codec")
            break
        else
            failed+=("$codec")
        fi
    done
    if [[ ${#failed[@]} -eq 0 && ${#passed[@]} -gt 0 ]]; then
        echo "roundtrip $client: PASS ($count records x ${passed[*]})"
        exit 0
    fi
    echo "roundtrip $client: FAIL (failed: ${failed[*]:-none}; passed: ${passed[*]:-none})"
    exit 1
}
