#!/usr/bin/env bash
# The Java client (kafka-clients 3.9.1) against a 3-node rafka cluster of
# its own (scripts/cluster.sh via cluster/common.sh): AdminClient sees three
# brokers and a controller among them; a 6-partition topic created through
# one broker alone has leaders on all three; an idempotent acks=all
# producer given all three brokers sends COUNT keyed records, all
# acknowledged; two consumer groups (one coordinated by the broker leading
# partition 0, one by another broker) each read exactly those and commit.
# Then that broker is SIGKILLed: the AdminClient sees two brokers once it
# is fenced and its partitions offline; it is restarted: three brokers,
# every partition led, both groups' committed offsets intact (the first
# group's live on the restarted broker's disk), COUNT more records, and a
# new member of each group reads exactly the new ones. The checks are in
# cluster/JavaCluster.java, run once per phase. Installs the client
# (setup-java.sh) and compiles the program itself. Ends with
# "cluster java: PASS|FAIL ...".
#
# usage: scripts/compat/java-cluster.sh
#   env: RAFKA_BIN (default: build the release binary), CLUSTER_COUNT
#        (records per round, 600)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=cluster/common.sh
source "$here/cluster/common.sh"
count="${CLUSTER_COUNT:-600}"
phase_timeout_s=180
started=$SECONDS

"$here/setup-java.sh" >&2
classpath="$(cat "$here/.cache/java/classpath")"
classes="$here/.cache/java/cluster-classes"
mkdir -p "$classes"
javac --release 17 -d "$classes" -cp "$classpath" "$here/cluster/JavaCluster.java"

fail() {
    cluster_logs
    echo "cluster java: FAIL ($*)"
    exit 1
}

# phase NAME ARGS...: runs JavaCluster NAME ARGS..., its output shown and
# kept in $phase_out.
phase() {
    local status=0 started_phase=$SECONDS
    phase_out="$(timeout "$phase_timeout_s" java -cp "$classes:$classpath" \
        -Dorg.slf4j.simpleLogger.defaultLogLevel=warn JavaCluster "$@" 2>"$cluster_work/java.err")" || status=$?
    echo "$phase_out"
    echo "phase $1: $((SECONDS - started_phase)) s"
    if [[ $status -ne 0 ]]; then
        grep -v '^SLF4J' "$cluster_work/java.err" | tail -n 20 || true
        [[ $status -ne 124 ]] || fail "phase $1: no verdict within ${phase_timeout_s} s"
        fail "phase $1: $(grep '^problem: ' <<<"$phase_out" | tail -n 1 || echo "exit $status")"
    fi
}

cluster_start || fail "the cluster did not start"
echo "cluster: $cluster_bootstrap (started in $((SECONDS - started)) s)"
topic="cluster-java-$(date +%s)-$$-$RANDOM"
# Created through node 2 alone: any broker forwards it to the controller.
phase setup "$(cluster_listener 2)" "$cluster_bootstrap" "$topic" "grp-$topic" "$count"
leader0="$(sed -n 's/^leader0=//p' <<<"$phase_out")"
groups="$(sed -n 's/^groups=//p' <<<"$phase_out")"
coordinators="$(sed -n 's/^coordinators=//p' <<<"$phase_out")"
[[ "$leader0" =~ ^[123]$ && -n "$groups" && -n "$coordinators" ]] ||
    fail "setup printed no leader0=, groups= or coordinators= line"
controller="$(sed -n 's/^ok: describeCluster: .*controller //p' <<<"$phase_out")"

cluster_sh kill "$leader0" || fail "cluster.sh kill $leader0"
killed_at=$SECONDS
phase fenced "$cluster_bootstrap" "$topic" "$leader0"
fenced_s=$((SECONDS - killed_at))
echo "broker $leader0 seen fenced ${fenced_s} s after its kill"
cluster_sh start "$leader0" || fail "cluster.sh start $leader0"
phase resume "$cluster_bootstrap" "$topic" "$groups" "$count"

killed_role="leader of partition 0, coordinator of one group"
[[ "$controller" != "$leader0" ]] || killed_role+=", active controller"
echo "cluster java: PASS (3 brokers, $count+$count records, groups coordinated by brokers $coordinators;" \
    "broker $leader0 ($killed_role) killed, seen fenced in ${fenced_s} s, restarted; $((SECONDS - started)) s)"
