#!/bin/bash
# Refresh the relay's allowed peers from this deployment's BBB servers (bbb-turn-relay-peers.timer, 20 s).
# shellcheck source-path=SCRIPTDIR disable=SC2153 # UPPER_CASE values come from params.env/runtime.env
set -euo pipefail
BBB_ON_AWS_DIR=${BBB_ON_AWS_DIR:-/opt/bbb-on-aws}
BBB_ON_AWS_CONF=${BBB_ON_AWS_CONF:-/etc/bbb-on-aws}
# shellcheck source=/dev/null
source "$BBB_ON_AWS_CONF/params.env"
# shellcheck source=../common/lib.sh
source "$BBB_ON_AWS_DIR/common/lib.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/turn/lib.sh"
LOG_TAG=turn-peers

sync_allowed_peers "$ENV_NAME"
