"""The app's entry points: `npx cdk synth` and `python app.py` agree, and bad config stops synth early."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def run(cmd, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def templates(folder):
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.template.json"))}


@pytest.fixture(scope="module")
def offline_cli_synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    """`cdk synth` in a network namespace with no interface but a downed loopback: no credentials, no DNS, no
    internet. One run (about 15 s) serves both tests that need a good CLI synth."""
    out = tmp_path_factory.mktemp("cli")
    result = run(["unshare", "--net", "--", "npx", "cdk", "synth", "--quiet", "--no-notices", "-o", str(out)],
                 {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
                  "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"})
    return result, out


def test_python_app_alone_writes_the_same_templates_as_the_cli(tmp_path, offline_cli_synth):
    alone = tmp_path / "alone"
    first = run([sys.executable, "app.py"], {"CDK_OUTDIR": str(alone)})
    assert first.returncode == 0, first.stderr
    second, cli = offline_cli_synth
    assert second.returncode == 0, second.stdout + second.stderr
    assert templates(alone) and templates(alone) == templates(cli)


def test_cli_override_with_a_bad_value_fails_synth_naming_the_key(tmp_path):
    result = run(["npx", "cdk", "synth", "--quiet", "--no-notices", "-o", str(tmp_path),
                  "-c", "deployment.environment.stage=production"])
    assert result.returncode != 0
    assert "deployment.environment.stage: 'production' is not allowed; use one of 'dev', 'stage', 'prod'" in (
        result.stdout + result.stderr)
    assert not list(tmp_path.glob("*.template.json"))


def test_app_reports_every_problem_and_builds_nothing(tmp_path):
    bad = {"deployment.operatorEmail": "nobody", "deployment.network.vpcCidr": "10.0.0.0/8",
           "deployment.tunr": "typo"}
    result = run([sys.executable, "app.py"], {"CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps(bad)})
    assert result.returncode == 1
    assert "deployment.operatorEmail: 'nobody' must be an e-mail address" in result.stderr
    assert "deployment.network.vpcCidr: '10.0.0.0/8' must have a prefix length between /16 and /28" in result.stderr
    assert "deployment.tunr: unknown key; did you mean 'turn'?" in result.stderr
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_cli_synth_needs_no_network_and_no_context_lookup(offline_cli_synth):
    """Synth must succeed offline (the fixture's namespace), and the assembly must not ask for any context lookup."""
    result, out = offline_cli_synth
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert "missing" not in manifest, manifest.get("missing")
    assert not (ROOT / "cdk.context.json").exists()
    assert len(list(out.glob("*.template.json"))) >= 5


def test_instance_type_typo_and_arm64_type_fail_synth_naming_key_value_and_fix(tmp_path):
    """`python app.py` with the CLI's `-c deployment.bbb.instanceType=c5a.2xlarg` (the CLI hands `-c` values to
    the app as CDK_CONTEXT_JSON), plus an arm64 TURN type: both reported, nothing written."""
    bad = {"deployment.bbb.instanceType": "c5a.2xlarg", "deployment.turn.instanceType": "t4g.small"}
    result = run([sys.executable, "app.py"], {"CDK_OUTDIR": str(tmp_path), "CDK_CONTEXT_JSON": json.dumps(bad)})
    assert result.returncode == 1
    assert "2 problem(s)" in result.stderr
    assert ("deployment.bbb.instanceType: 'c5a.2xlarg' is not an EC2 instance type (botocore "
            in result.stderr)
    assert "EC2 model); did you mean c5a.2xlarge, c5ad.2xlarge, c5a.24xlarge?" in result.stderr
    assert ("deployment.turn.instanceType: 't4g.small' is arm64 (Graviton), but the TURN hosts run the amd64 Ubuntu "
            "22.04 image; use an x86_64 type such as t3.small, t3a.small, t2.small") in result.stderr
    assert "Traceback" not in result.stderr
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_cli_synth_with_an_instance_type_typo_fails_naming_the_key(tmp_path):
    result = run(["npx", "cdk", "synth", "--quiet", "--no-notices", "-o", str(tmp_path),
                  "-c", "deployment.bbb.instanceType=c5a.2xlarg"])
    assert result.returncode != 0
    assert "deployment.bbb.instanceType: 'c5a.2xlarg' is not an EC2 instance type" in result.stdout + result.stderr
    assert not list(tmp_path.glob("*.template.json"))
