"""Quality gates over every deployment variant: cdk-nag clean, cfn-lint clean, snapshots unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks
from syrupy.extensions.json import JSONSnapshotExtension

from tests.conftest import ROOT
from tests.infra.synth import VARIANTS, normalized, synth


@pytest.mark.parametrize(("shape", "stage"), VARIANTS)
def test_cdk_nag_has_no_unacknowledged_finding(shape, stage):
    result = synth(shape, stage)
    violations = [
        f"{v['ruleName']} at {c['constructPath']}"
        for plugin in result.report()["pluginReports"]
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
    ]
    assert result.error is None and violations == [], "\n".join(violations) or result.error


@pytest.mark.parametrize(("shape", "stage"), VARIANTS)
def test_every_acknowledgment_carries_a_specific_reason(shape, stage):
    suppressed = [
        (v["ruleName"], s.get("reason", ""))
        for plugin in synth(shape, stage).report()["pluginReports"]
        if plugin["pluginName"] != "CloudFormation Validate"
        for v in plugin.get("suppressedViolations", [])
        for s in [v.get("acknowledgment") or v]
    ]
    for rule, reason in suppressed:
        assert len(reason) >= 20, f"acknowledgment of {rule} has no real reason: {reason!r}"


def test_cdk_nag_is_really_active(tmp_path):
    """Positive control: the same plugin setup rejects a non-compliant resource."""
    app = cdk.App(outdir=str(tmp_path))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    sqs.Queue(cdk.Stack(app, "Control"), "PlainQueue")  # SQS3 (no DLQ) and SQS4 (no TLS enforcement)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    rules = {v["ruleName"] for p in json.loads((tmp_path / "validation-report.json").read_text())["pluginReports"]
             for v in p["violations"]}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")


def cfn_lint(templates: list[str], region: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CFN_LINT, "--config-file", str(ROOT / ".cfnlintrc.yaml"), "--regions", region,
         "--format", "parseable", "--", *templates],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )


@pytest.mark.parametrize(("shape", "stage"), VARIANTS)
def test_cfn_lint_finds_no_error(shape, stage):
    result = synth(shape, stage)
    templates = sorted(str(p) for p in result.outdir.glob("*.template.json"))
    run = cfn_lint(templates, result.config.environment.region)
    # Exit code bitmask: 1 = cfn-lint itself failed, 2 = errors (4 = warnings, 8 = informational).
    assert run.returncode & 3 == 0, run.stdout + run.stderr


def test_cfn_lint_gate_catches_an_error(tmp_path):
    """Positive control: the same invocation fails on a template with a real error."""
    broken = tmp_path / "broken.template.json"
    broken.write_text(json.dumps({"Resources": {"Q": {"Type": "AWS::SQS::Queue",
                                                      "Properties": {"VisibilityTimeout": "soon"}}}}))
    run = cfn_lint([str(broken)], "eu-west-1")
    assert run.returncode & 2 and "E3012" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize(("shape", "stage"), VARIANTS)
def test_templates_match_snapshot(shape, stage, snapshot):
    result = synth(shape, stage)
    json_snapshot = snapshot.use_extension(JSONSnapshotExtension)
    for name, template in result.templates().items():
        assert normalized(template) == json_snapshot(name=name)
