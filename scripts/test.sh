#!/usr/bin/env bash
# Installs everything (including the Debian packages the tests run for real) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# Several tests run the CDK CLI, which parses cdk.json first and reports a bad one by character offset only.
python3 cdk_json.py
./scripts/install.sh --test-tools
exec .venv/bin/python -m pytest "$@"
