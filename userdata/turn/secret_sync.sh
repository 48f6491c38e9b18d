#!/bin/bash
# Make the relay accept the TURN secret versions in use (bbb-turn-relay-secrets.timer, 60 s): during a rotation
# the pending one, until the handoff is over the previous one (docs/host-contract.md).
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
LOG_TAG=turn-secrets

refresh_relay_secrets "$TURN_SECRET_ARN" "$ENV_NAME" "$TURN_CREDENTIAL_TTL"
