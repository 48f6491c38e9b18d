#!/bin/bash
# Refresh the cluster proxy's locations from this deployment's BBB servers (bbb-on-aws-proxy-sync.timer, 30 s).
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/proxy/lib.sh"
LOG_TAG=proxy-sync

require_params ENV_NAME BBB_HOST_DOMAIN
sync_proxy_locations "$ENV_NAME" "$BBB_HOST_DOMAIN"
