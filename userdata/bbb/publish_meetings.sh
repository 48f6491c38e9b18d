#!/bin/bash
# Publish this server's meetings, participants, video streams, recordings and certificate expiry (and, on a
# fleet server, the age of the Scalelite spool) to CloudWatch (bbb-on-aws-meetings-metric.timer, 60 s; docs/host-contract.md, Metrics).
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh" with-runtime
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/bbb/lib.sh"
LOG_TAG=bbb-metrics

# shellcheck disable=SC2153 # FQDN: from runtime.env (test_userdata_static checks the role's parameters define it)
xml=$(bbb_meetings_xml "$FQDN") || die "getMeetings did not answer"
args=(--asg "$ASG_NAME" --instance-id "$INSTANCE_ID" --recordings "$DATA_MOUNT/recording")
# Fleet servers hand recordings to Scalelite through the spool (EFS), which every fleet server mounts.
# shellcheck disable=SC2153 # ROLE: from params.env (test_userdata_static checks the role's parameters define it)
[[ $ROLE == bbb ]] && args+=(--transfer --spool "$SPOOL_MOUNT")
# bbb-install's Let's Encrypt certificate, renewed by certbot: CertificateDaysLeft shows a renewal that fails.
certificate=${LETSENCRYPT_LIVE:-/etc/letsencrypt/live}/$FQDN/fullchain.pem
if not_after=$(openssl x509 -enddate -noout -in "$certificate" 2>/dev/null); then
  args+=(--certificate-not-after "${not_after#notAfter=}")
else
  log "cannot read $certificate: CertificateDaysLeft not published"
fi
data=$(python3 "$BBB_ON_AWS_DIR/common/metric_data.py" bbb-meetings "${args[@]}" <<<"$xml") || exit 1
aws cloudwatch put-metric-data --namespace "$METRICS_NAMESPACE" --metric-data "$data"
# The load figure (scaling signal, per server for the termination policy): userdata/bbb/load_figure.py.
load=$(python3 "$BBB_ON_AWS_DIR/bbb/load_figure.py" --asg "$ASG_NAME" --instance-id "$INSTANCE_ID" \
  --weights "${LOAD_WEIGHTS:?LOAD_WEIGHTS missing from params.env}" <<<"$xml") || exit 1
aws cloudwatch put-metric-data --namespace "$METRICS_NAMESPACE" --metric-data "$load"
