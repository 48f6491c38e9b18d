"""Quality gates over every deployment variant: cdk-nag clean, cfn-lint clean, snapshots unchanged.

Each gate fails closed (no report, no template or no stack is a failure, not a pass) and has a positive control
on the real app: a violation planted in a real stack or template must be reported by the very same gate.
"""

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

from stacks.deployment import build_app
from tests.conftest import ROOT
from tests.infra.synth import VARIANTS, Synth, deployment, normalized, synth

# The stacks each shape deploys: a synthesis that loses one (or all) fails here, not silently in the other gates.
STACKS = {
    "scalable": ["bbb-data", "bbb-email", "bbb-fleets", "bbb-frontend", "bbb-monitoring", "bbb-network", "bbb-shared"],
    "single": ["bbb-email", "bbb-fleets", "bbb-monitoring", "bbb-network", "bbb-shared"],
}


@pytest.mark.parametrize(("shape", "stage"), VARIANTS)
def test_cdk_nag_has_no_unacknowledged_finding(shape, stage):
    result = synth(shape, stage)
    violations = result.findings()  # raises if cdk-nag wrote no report
    assert result.error is None and violations == [], "\n".join(violations) or result.error


@pytest.mark.parametrize(("shape", "stage"), VARIANTS)
def test_every_acknowledgment_carries_a_specific_reason(shape, stage):
    acknowledged = synth(shape, stage).acknowledged()
    assert acknowledged, "the real app acknowledges findings (e.g. SMG4 on the TURN secret): none in the report"
    for rule, path, reason in acknowledged:
        assert len(reason) >= 20, f"acknowledgment of {rule} at {path} has no real reason: {reason!r}"


def _real_app_with_planted_queue(tmp_path: Path, *, nag: bool) -> Path:
    """The real app (single, dev) with a non-compliant queue planted in its fleets stack; returns the outdir."""
    section = deployment(**{"environment.type": "single", "environment.stage": "dev"})
    app, config = build_app(context={"deployment": section}, outdir=str(tmp_path), nag=nag)
    fleets = app.node.find_child(f"{config.prefix}-fleets")
    sqs.Queue(fleets, "PlantedQueue")  # SQS3 (no DLQ) and SQS4 (no TLS enforcement)
    try:
        app.synth()
    except RuntimeError as exc:
        assert "ValidationFailed" in str(exc), exc
    return tmp_path


def test_real_app_reports_a_violation_planted_in_its_stack(tmp_path):
    """Positive control on the real app: build_app attaches AwsSolutions and its findings reach the gate."""
    outdir = _real_app_with_planted_queue(tmp_path, nag=True)
    result = Synth(outdir=outdir, config=synth("single").config, error=None)
    assert {"AwsSolutions-SQS3 at bbb-fleets/PlantedQueue/Resource",
            "AwsSolutions-SQS4 at bbb-fleets/PlantedQueue/Resource"} <= set(result.findings())


def test_nag_gate_fails_when_cdk_nag_is_detached(tmp_path):
    """Fail closed: without AwsSolutionsChecks there is no report, and reading the findings is an error."""
    outdir = _real_app_with_planted_queue(tmp_path, nag=False)
    assert (outdir / "bbb-fleets.template.json").exists()
    result = Synth(outdir=outdir, config=synth("single").config, error=None)
    with pytest.raises(AssertionError, match="cdk-nag did not run"):
        result.findings()


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


def stack_templates(result: Synth) -> list[str]:
    """Every stack's template, checked against the manifest so that an empty list cannot pass a gate."""
    templates = sorted(str(p) for p in result.outdir.glob("*.template.json"))
    assert templates == [str(result.outdir / f"{name}.template.json") for name in result.stack_names()], templates
    assert templates, f"no template in {result.outdir}"
    return templates


@pytest.mark.parametrize(("shape", "stage"), VARIANTS)
def test_cfn_lint_finds_no_error(shape, stage):
    result = synth(shape, stage)
    run = cfn_lint(stack_templates(result), result.config.environment.region)
    # Exit code bitmask: 1 = cfn-lint itself failed, 2 = errors (4 = warnings, 8 = informational).
    assert run.returncode & 3 == 0, run.stdout + run.stderr


def test_cfn_lint_gate_catches_an_error_planted_in_a_real_template(tmp_path):
    """Positive control on the real app: the same invocation, config file included, reports a real template's error."""
    result = synth("single")
    templates = stack_templates(result)
    fleets = json.loads((result.outdir / "bbb-fleets.template.json").read_text())
    group = next(r for r in fleets["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup")
    group["Properties"]["RetentionInDays"] = 2  # CloudWatch Logs offers 1, 3, 5, ... days
    planted = tmp_path / "bbb-fleets.template.json"
    planted.write_text(json.dumps(fleets))
    others = [t for t in templates if not t.endswith("/bbb-fleets.template.json")]
    run = cfn_lint([*others, str(planted)], result.config.environment.region)
    assert run.returncode & 2, run.stdout + run.stderr
    errors = [line for line in run.stdout.splitlines() if ":E" in line]
    (error,) = errors
    assert error.startswith(f"{planted}:") and ":E3030:2 is not one of" in error, run.stdout


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
    templates = result.templates()
    assert sorted(templates) == STACKS[shape], "the snapshot set must cover exactly the shape's stacks"
    json_snapshot = snapshot.use_extension(JSONSnapshotExtension)
    for name, template in templates.items():
        assert normalized(template) == json_snapshot(name=name)


def test_snapshot_mask_hides_asset_hashes_only():
    """A pinned SHA-256 (e.g. bbb_install_sha256) must show in the snapshot; asset hashes, which change with any
    edit of the code they package, must not."""
    digest = "0123456789abcdef" * 4
    template = {
        "Code": {"S3Key": f"{digest}.zip"},
        "Metadata": {"aws:asset:path": f"asset.{digest}"},
        "UserData": f'BUNDLE_KEY={digest}.tar\\nif ! echo "{digest}  $bundle" | sha256sum --check\\n'
                    f"BBB_INSTALL_SHA256={digest}\\n",
    }  # fmt: skip
    masked = json.dumps(normalized(template))
    assert masked.count("<HASH>") == 4 and masked.count(digest) == 1
    assert f"BBB_INSTALL_SHA256={digest}" in masked
