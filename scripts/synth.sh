#!/usr/bin/env bash
# Installs everything, synthesizes every stack offline (cdk-nag runs inside synth and fails it on any
# unacknowledged finding), then lints the templates with cfn-lint.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# The CDK CLI parses cdk.json before app.py and reports a bad one by character offset only: check it first.
python3 cdk_json.py
./scripts/install.sh
# A fresh cdk.out: templates of a renamed or removed stack would otherwise stay, be linted and counted.
rm -rf cdk.out
npx cdk synth --quiet --no-notices "$@"
region=$(.venv/bin/python -c 'from stacks.deployment import effective_context as c; from settings import load_config as l; print(l(c()).environment.region)')
.venv/bin/cfn-lint --regions "$region"
templates=(cdk.out/*.template.json)
echo "synth OK: ${#templates[@]} templates in cdk.out/, cfn-lint clean for $region"
