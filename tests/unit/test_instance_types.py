"""settings/instance_types.json: generated from the pinned botocore, architectures by family, suggestions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import botocore
import pytest

from settings import instance_types

ROOT = Path(__file__).resolve().parents[2]


def test_catalogue_is_current_for_the_pinned_botocore():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_instance_types.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"botocore {botocore.__version__}" in instance_types.source()


@pytest.mark.parametrize(
    ("name", "arch"),
    [
        ("c7g.large", "arm64"),
        ("c7gn.xlarge", "arm64"),
        ("m6gd.large", "arm64"),
        ("t4g.small", "arm64"),
        ("r8g.large", "arm64"),
        ("a1.large", "arm64"),
        ("is4gen.large", "arm64"),
        ("g5g.xlarge", "arm64"),
        ("c5a.2xlarge", "x86_64"),
        ("t3.small", "x86_64"),
        ("g4dn.xlarge", "x86_64"),
        ("g6e.xlarge", "x86_64"),
        ("mac2.metal", "mac"),
        ("mac1.metal", "mac"),
    ],
)
def test_architecture(name, arch):
    assert instance_types.architecture(name) == arch


def test_unknown_type_names_the_nearest_real_ones():
    assert not instance_types.known("t3.smal")
    assert instance_types.nearest("t3.smal")[0] == "t3.small"
    with pytest.raises(instance_types.UnknownInstanceType, match=r"did you mean t3\.small"):
        instance_types.check("t3.smal")
    with pytest.raises(instance_types.UnknownInstanceType, match=r"see settings/instance_types\.json"):
        instance_types.architecture("zzzz.nothing-like-it")
