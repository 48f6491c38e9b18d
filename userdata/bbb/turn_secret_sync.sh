#!/bin/bash
# bbb-web issues TURN credentials with the current TURN secret (bbb-on-aws-turn-secret.timer, 60 s): a rotated
# secret is applied at the first moment this server runs no meeting (docs/host-contract.md).
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh" with-runtime
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/bbb/lib.sh"
LOG_TAG=bbb-turn-secret

# shellcheck disable=SC2153 # FQDN: from runtime.env (test_userdata_static checks the role's parameters define it)
refresh_turn_secret "$TURN_SECRET_ARN" "$DOMAIN" "$TURN_CREDENTIAL_TTL" "$FQDN"
