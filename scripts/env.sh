# shellcheck shell=bash
# Sourced by the scripts: Node 22 LTS from node_modules first on PATH (package.json pins it from the npm
# registry, so Debian's Node 18 or a preinstalled EOL Node never runs the CDK), and the CDK toolchain offline
# and quiet (no telemetry, notices or version checks).
PATH="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)/node_modules/.bin:$PATH"  # $0: sourced from zsh
export PATH
export CDK_DISABLE_CLI_TELEMETRY=true
export CDK_DISABLE_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1
