#!/bin/bash
# Refresh the cluster proxy's locations from this deployment's BBB servers (bbb-on-aws-proxy-sync.timer, 30 s).
# shellcheck source-path=SCRIPTDIR disable=SC2153 # UPPER_CASE values come from params.env
set -euo pipefail
BBB_ON_AWS_DIR=${BBB_ON_AWS_DIR:-/opt/bbb-on-aws}
BBB_ON_AWS_CONF=${BBB_ON_AWS_CONF:-/etc/bbb-on-aws}
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/params.env"
# shellcheck source=../common/lib.sh
source "$BBB_ON_AWS_DIR/common/lib.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/proxy/lib.sh"
LOG_TAG=proxy-sync

sync_proxy_locations "$ENV_NAME" "$DOMAIN"
