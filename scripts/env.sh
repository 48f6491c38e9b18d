# shellcheck shell=bash
# Sourced by the scripts: keep the CDK toolchain offline and quiet (no telemetry, notices or version checks).
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
export CDK_DISABLE_CLI_TELEMETRY=true
export CDK_DISABLE_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1
