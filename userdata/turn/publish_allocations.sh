#!/bin/bash
# Publish the relay's live allocations to CloudWatch (bbb-on-aws-allocations-metric.timer, 60 s).
# shellcheck source-path=SCRIPTDIR disable=SC2153 # UPPER_CASE values come from params.env/runtime.env
set -euo pipefail
BBB_ON_AWS_DIR=${BBB_ON_AWS_DIR:-/opt/bbb-on-aws}
BBB_ON_AWS_CONF=${BBB_ON_AWS_CONF:-/etc/bbb-on-aws}
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/params.env"
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/runtime.env"
# shellcheck source=../common/lib.sh
source "$BBB_ON_AWS_DIR/common/lib.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/turn/lib.sh"
LOG_TAG=turn-metrics

metrics=$(curl -fsS --max-time 5 "http://$ADMIN_LISTEN/metrics") || die "the relay's /metrics did not answer"
data=$(python3 "$BBB_ON_AWS_DIR/common/metric_data.py" relay-allocations --asg "$ASG_NAME" \
  --instance-id "$INSTANCE_ID" --metric "$ALLOCATIONS_METRIC" <<<"$metrics") || exit 1
aws cloudwatch put-metric-data --namespace "$METRICS_NAMESPACE" --metric-data "$data"
