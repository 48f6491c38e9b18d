#!/bin/bash
# Refresh the relay's allowed peers from this deployment's BBB servers (bbb-turn-relay-peers.timer, 20 s).
set -euo pipefail
# shellcheck source=../common/prologue.sh
source "$(dirname "${BASH_SOURCE[0]}")/../common/prologue.sh"
# shellcheck source=lib.sh
source "$BBB_ON_AWS_DIR/turn/lib.sh"
LOG_TAG=turn-peers

sync_allowed_peers "$ENV_NAME"
