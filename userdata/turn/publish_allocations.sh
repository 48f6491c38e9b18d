#!/bin/bash
# Publish the relay's figures (allocations, traffic, refusals, connections, draining) to CloudWatch
# (bbb-on-aws-allocations-metric.timer, 60 s; docs/host-contract.md, Metrics). Counters go out as the increase
# since the last run: the state moves into place only once CloudWatch has accepted the data.
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh" with-runtime
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/turn/lib.sh"
LOG_TAG=turn-metrics

metrics=$(curl -fsS --max-time 5 "http://$ADMIN_LISTEN/metrics") || die "the relay's /metrics did not answer"
state=$BBB_ON_AWS_STATE_DIR/relay-counters.json
mkdir -p "$BBB_ON_AWS_STATE_DIR"
data=$(python3 "$BBB_ON_AWS_DIR/common/metric_data.py" relay --asg "$ASG_NAME" --instance-id "$INSTANCE_ID" \
  --metric "$ALLOCATIONS_METRIC" --state "$state" <<<"$metrics") || exit 1
aws cloudwatch put-metric-data --namespace "$METRICS_NAMESPACE" --metric-data "$data"
mv -f "$state.next" "$state"
