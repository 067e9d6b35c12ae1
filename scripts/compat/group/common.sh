# shellcheck shell=bash
# Shared by the <client>-group.sh scripts (sourced, not run): takes the
# broker address from the first argument or $BOOTSTRAP, runs the client's
# group program once against a fresh topic and group, and makes sure the
# last line is the verdict "group CLIENT: PASS|FAIL ...".
#
# Environment: BOOTSTRAP (host:port), GROUP_COUNT (records the two members
# share, default 400).

# shellcheck source=roundtrip/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../roundtrip/common.sh"

# group_run CLIENT PROGRAM...: runs PROGRAM BOOTSTRAP TOPIC GROUP COUNT and
# exits with its verdict.
group_run() {
    local client="$1"
    shift
    local count="${GROUP_COUNT:-400}" verdict_timeout_s=150 status=0
    # Set by roundtrip_bootstrap, which the caller ran first.
    local broker="${bootstrap:?}"
    local suffix
    suffix="$(date +%s)-$$-$RANDOM"
    timeout "$verdict_timeout_s" "$@" "$broker" "grp-$client-$suffix" "grp-$client-$suffix" "$count" ||
        status=$?
    if [[ $status -eq 124 ]]; then
        echo "group $client: FAIL (no verdict within ${verdict_timeout_s} s)"
    elif [[ $status -ne 0 ]]; then
        echo "group $client: FAIL (exit $status)"
    fi
    exit "$status"
}
