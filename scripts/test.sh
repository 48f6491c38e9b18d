#!/usr/bin/env bash
# Installs everything (including the Debian packages the tests run for real) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
./scripts/install.sh --test-tools
exec .venv/bin/python -m pytest "$@"
