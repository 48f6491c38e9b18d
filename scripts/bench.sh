#!/usr/bin/env bash
# Installs everything (coturn included) and runs the relay-vs-coturn benchmark; arguments go to
# bench/relay_vs_coturn.py (--quick, --smoke, --json FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/install.sh --test-tools
exec .venv/bin/python bench/relay_vs_coturn.py "$@"
