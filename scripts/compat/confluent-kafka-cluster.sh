#!/usr/bin/env bash
# confluent-kafka (Python, bundled librdkafka) against a 3-node rafka
# cluster of its own (scripts/cluster.sh via cluster/common.sh):
# list_topics shows three brokers and a controller among them, a
# 6-partition topic created through one broker alone has leaders on all
# three, an idempotent acks=all producer given every broker sends COUNT
# keyed records to every partition, all acknowledged, and a consumer group
# reads exactly those back, committed offsets = end offsets
# (cluster/confluent_kafka_cluster.py). Installs the client
# (setup-python.sh). Ends with "cluster confluent-kafka: PASS|FAIL ...".
#
# usage: scripts/compat/confluent-kafka-cluster.sh
#   env: RAFKA_BIN (default: build the release binary), CLUSTER_COUNT
#        (records, 600)
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=cluster/common.sh
source "$here/cluster/common.sh"
count="${CLUSTER_COUNT:-600}"
verdict_timeout_s=180
started=$SECONDS

"$here/setup-python.sh" >&2
cluster_start || {
    echo "cluster confluent-kafka: FAIL (the cluster did not start)"
    exit 1
}
echo "cluster: $cluster_bootstrap (started in $((SECONDS - started)) s)"
topic="cluster-ck-$(date +%s)-$$-$RANDOM"
status=0
# Created through node 3 alone: any broker forwards it to the controller.
timeout "$verdict_timeout_s" "$here/.cache/venv/bin/python" "$here/cluster/confluent_kafka_cluster.py" \
    "$(cluster_listener 3)" "$cluster_bootstrap" "$topic" "grp-$topic" "$count" || status=$?
if [[ $status -eq 0 ]]; then
    echo "cluster confluent-kafka: PASS (3 brokers, $count records over 6 partitions; $((SECONDS - started)) s)"
    exit 0
fi
cluster_logs
if [[ $status -eq 124 ]]; then
    echo "cluster confluent-kafka: FAIL (no verdict within ${verdict_timeout_s} s)"
else
    echo "cluster confluent-kafka: FAIL (exit $status)"
fi
exit 1
