"""The suite fails on a skip that does not document a platform reason (tests/conftest.py), with or without xdist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PLATFORM_SKIP, ROOT

SAMPLE = f'''
import pytest

def test_runs():
    pass

def test_platform_limit():
    pytest.skip("{PLATFORM_SKIP}this platform can never run it")
'''


def run_pytest(tmp_path: Path, extra: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE + extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), "-c", os.devnull, *args, str(tmp_path / "test_sample.py")],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_an_undocumented_skip_fails_the_run(tmp_path, workers):
    extra = "\ndef test_missing_tool():\n    pytest.skip('tool X is not installed')\n"
    run = run_pytest(tmp_path, extra, *workers)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "test_sample.py::test_missing_tool: Skipped: tool X is not installed" in run.stdout, run.stdout


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_documented_platform_skip_passes(tmp_path, workers):
    run = run_pytest(tmp_path, "", *workers)
    assert run.returncode == 0 and "1 passed, 1 skipped" in run.stdout, run.stdout + run.stderr
