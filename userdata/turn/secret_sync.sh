#!/bin/bash
# Make the relay accept the TURN secret versions in use (bbb-turn-relay-secrets.timer, 60 s): during a rotation
# the pending one, until the handoff is over the previous one (docs/host-contract.md).
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/turn/lib.sh"
LOG_TAG=turn-secrets

refresh_relay_secrets "$TURN_SECRET_ARN" "$ENV_NAME" "$TURN_CREDENTIAL_TTL"
