"""The wheel carries the compiled program (built by relay/setup.py, nothing compiled on the hosts), the
installed package finds it, and a wheel built where clang is missing says so when the relay tries it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from relay.server.kernel import build, loader
from relay.server.kernel.loader import TcRelay

RELAY_DIR = Path(__file__).resolve().parents[3] / "relay"
_PROBE = (
    "from relay.server.kernel.loader import TcRelay, KernelOffloadUnavailable\n"
    "try:\n"
    "    TcRelay().close()\n"
    "    print('loaded')\n"
    "except KernelOffloadUnavailable as error:\n"
    "    print('unavailable:', error)\n"
)


def _wheel(tmp_path: Path, path_env: str) -> Path:
    tree = tmp_path / "src" / "relay"
    shutil.copytree(RELAY_DIR, tree, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "*.bpf.o"))
    env = {**os.environ, "PATH": path_env, "PYTHONDONTWRITEBYTECODE": "1"}
    out = tmp_path / "dist"
    run = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(tree)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    return wheel


def _installed_probe(wheel: Path, tmp_path: Path) -> str:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_the_wheel_ships_the_object_and_the_installed_relay_loads_it(tmp_path: Path, bpf_object: bytes) -> None:
    wheel = _wheel(tmp_path, os.environ["PATH"])
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        shipped = archive.read(f"relay/server/kernel/{loader.OBJECT_NAME}")
    assert f"relay/server/kernel/{loader.MISSING_NOTE}" not in names
    assert "relay/setup.py" not in names  # the build step is not part of the package
    assert shipped == bpf_object  # the same compiler and source give the same bytes
    assert _installed_probe(wheel, tmp_path) == "loaded"


def test_a_wheel_built_without_clang_says_why_the_relay_falls_back(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    wheel = _wheel(tmp_path, str(empty))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert f"relay/server/kernel/{loader.OBJECT_NAME}" not in names
    assert f"relay/server/kernel/{loader.MISSING_NOTE}" in names
    probe = _installed_probe(wheel, tmp_path)
    assert probe.startswith(
        "unavailable: the wheel was built without the in-kernel forwarding program: clang was not found"
    )


def test_the_builder_and_the_loader_agree_on_file_names() -> None:
    assert (build.OBJECT_NAME, build.MISSING_NOTE) == (loader.OBJECT_NAME, loader.MISSING_NOTE)


def test_a_source_checkout_without_a_built_object_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    if (Path(loader.__file__).parent / loader.OBJECT_NAME).exists():
        pytest.fail("a compiled object sits in the source tree: delete it (wheels build their own)")
    with pytest.raises(loader.KernelOffloadUnavailable, match="compiled when the wheel is built"):
        TcRelay()


def test_a_broken_source_fails_the_build_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "tc_relay.bpf.c"
    broken.write_text("int this is not C;\n")
    monkeypatch.setattr(build, "SOURCE", broken)
    with pytest.raises(build.BpfBuildError, match=r"clang could not compile tc_relay\.bpf\.c"):
        build.build(tmp_path / "out")
