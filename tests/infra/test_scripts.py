"""The scripts and app.py on a copy of the repository: a malformed cdk.json stops them with its line and column
before anything runs, and synth.sh (run as docs/operations.md quotes it) leaves exactly this deployment's
templates in cdk.out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.docs.doc_blocks import OPERATIONS, marked_blocks

pytestmark = pytest.mark.slow

NAME_LINE = '"name": "bbb"'


def repo_copy(tmp_path: Path) -> Path:
    """The code, cdk.json, scripts and cfn-lint settings copied (so that paths computed from `__file__` land in
    the copy), the toolchain (.venv, node_modules) and the non-package folders linked. install.sh is replaced by
    a marker: it would reinstall the shared toolchain, and is not what these tests are about."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for entry in ROOT.iterdir():
        if entry.name in {".git", "cdk.out", "tests", "bench", "docs"} or entry.name.startswith(".pytest"):
            continue
        target = copy / entry.name
        if entry.is_dir() and not entry.is_symlink() and ((entry / "__init__.py").exists() or entry.name == "scripts"):
            shutil.copytree(entry, target, ignore=shutil.ignore_patterns("__pycache__"))
        elif entry.is_file() and not entry.is_symlink():
            shutil.copy2(entry, target)
        else:
            target.symlink_to(entry.resolve())
    (copy / "scripts" / "install.sh").write_text('#!/usr/bin/env bash\ntouch "$(dirname "$0")/../installed"\n')
    return copy


def break_cdk_json(copy: Path, mistake: str) -> tuple[int, int, str]:
    """Make one operator mistake in the copy's cdk.json; returns its line, column and the expected problem."""
    path = copy / "cdk.json"
    lines = path.read_text().splitlines(keepends=True)
    number = next(i for i, line in enumerate(lines) if '"name": "bbb"' in line)
    column = lines[number].index('"bbb"') + 1
    if mistake == "trailing-comma":  # a comma after the document's last entry
        body = "".join(lines).rstrip()[:-1].rstrip()
        path.write_text(body + ",\n}\n")
        return body.count("\n") + 1, len(body.splitlines()[-1]) + 1, "trailing comma"
    if mistake == "missing-quote":  # "bbb, -> the string runs into the end of the line
        lines[number] = lines[number].replace('"bbb",', '"bbb,', 1)
        column = len(lines[number].rstrip("\n")) + 1
        problem = "string without its closing double quote"
    else:  # duplicate-key: a second "name" in the same object
        lines.insert(number + 1, lines[number])
        number, column = number + 1, lines[number].index('"name"') + 1
        problem = "duplicate key 'name'"
    path.write_text("".join(lines))
    return number + 1, column, problem


MISTAKES = ["trailing-comma", "missing-quote", "duplicate-key"]


def run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize("mistake", MISTAKES)
def test_python_app_reports_a_malformed_cdk_json_with_line_and_column(tmp_path: Path, mistake: str) -> None:
    copy = repo_copy(tmp_path)
    line, column, problem = break_cdk_json(copy, mistake)
    result = run([sys.executable, "app.py"], copy, CDK_OUTDIR=str(tmp_path / "out"))
    assert result.returncode == 1
    assert "cdk.json cannot be read — nothing was synthesized." in result.stderr
    assert f"cdk.json:{line}:{column}: {problem}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("script", "mistake"), [("synth.sh", m) for m in MISTAKES] + [("test.sh", MISTAKES[0])])
def test_scripts_refuse_a_malformed_cdk_json_before_installing_anything(
    tmp_path: Path, script: str, mistake: str
) -> None:
    copy = repo_copy(tmp_path)
    line, column, problem = break_cdk_json(copy, mistake)
    result = run([str(copy / "scripts" / script)], copy)
    assert result.returncode == 1
    assert f"cdk.json:{line}:{column}: {problem}" in result.stderr, result.stderr
    assert not (copy / "installed").exists()


def test_synth_removes_the_templates_of_a_renamed_environment(tmp_path: Path) -> None:
    copy = repo_copy(tmp_path)
    # The last synth was of environment "bbb"; the operator then renamed it to "campus".
    stale = copy / "cdk.out" / "bbb-network.template.json"
    stale.parent.mkdir()
    stale.write_text('{"Resources": {}}')
    cdk_json = copy / "cdk.json"
    cdk_json.write_text(cdk_json.read_text().replace(NAME_LINE, '"name": "campus"', 1))
    # Exactly the command docs/operations.md gives the operator.
    result = run(["bash", "-c", marked_blocks(OPERATIONS)["synth"]], copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (copy / "installed").exists()
    assert not stale.exists()
    manifest = json.loads((copy / "cdk.out" / "manifest.json").read_text())
    stacks = {
        name for name, artifact in manifest["artifacts"].items() if artifact["type"] == "aws:cloudformation:stack"
    }
    templates = {path.name.removesuffix(".template.json") for path in (copy / "cdk.out").glob("*.template.json")}
    assert templates == stacks and all(name.startswith("campus-") for name in stacks)
    assert f"synth OK: {len(stacks)} templates in cdk.out/" in result.stdout
