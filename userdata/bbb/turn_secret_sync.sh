#!/bin/bash
# bbb-web issues TURN credentials with the current TURN secret (bbb-on-aws-turn-secret.timer, 60 s): a rotated
# secret is applied at the first moment this server runs no meeting (docs/host-contract.md).
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
source "$BBB_ON_AWS_DIR/bbb/lib.sh"
LOG_TAG=bbb-turn-secret

refresh_turn_secret "$TURN_SECRET_ARN" "$DOMAIN" "$TURN_CREDENTIAL_TTL" "$FQDN"
