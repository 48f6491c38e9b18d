#!/bin/bash
# Publish the relay's live allocations to CloudWatch (bbb-on-aws-allocations-metric.timer, 60 s).
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh" with-runtime
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/turn/lib.sh"
LOG_TAG=turn-metrics

metrics=$(curl -fsS --max-time 5 "http://$ADMIN_LISTEN/metrics") || die "the relay's /metrics did not answer"
data=$(python3 "$BBB_ON_AWS_DIR/common/metric_data.py" relay-allocations --asg "$ASG_NAME" \
  --instance-id "$INSTANCE_ID" --metric "$ALLOCATIONS_METRIC" <<<"$metrics") || exit 1
aws cloudwatch put-metric-data --namespace "$METRICS_NAMESPACE" --metric-data "$data"
