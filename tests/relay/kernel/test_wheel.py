"""The wheel carries the compiled program and the compiled packet path (both built by relay/setup.py, nothing
compiled on the hosts), the installed package finds them, and a wheel built where clang or gcc is missing says
so when the relay tries them. The packet path's shared object is a cp310-abi3 build that needs nothing newer
than the TURN hosts' glibc (Ubuntu 22.04: 2.35)."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from relay.server.kernel import build, loader
from relay.server.kernel.loader import TcRelay

RELAY_DIR = Path(__file__).resolve().parents[3] / "relay"
HOSTS_GLIBC = (2, 35)  # Ubuntu 22.04, the TURN hosts' image (cdk_constructs.fleet_host)
_PROBE = (
    "from relay.server.kernel.loader import TcRelay, KernelOffloadUnavailable\n"
    "try:\n"
    "    TcRelay().close()\n"
    "    print('loaded')\n"
    "except KernelOffloadUnavailable as error:\n"
    "    print('unavailable:', error)\n"
)
_PATH_PROBE = (
    "import logging, sys\n"
    "logging.basicConfig(stream=sys.stdout, format='%(message)s')\n"
    "from relay.server import cpath\n"
    "module = cpath.load('auto')\n"
    "print(module.__file__.rsplit('/', 1)[-1] if module else 'python')\n"
)


def _wheel(tmp_path: Path, path_env: str) -> Path:
    tree = tmp_path / "src" / "relay"
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info", "*.bpf.o", "*.so", "_fastpath.missing")
    shutil.copytree(RELAY_DIR, tree, ignore=ignore)
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


def _installed_probe(wheel: Path, tmp_path: Path, probe: str = _PROBE) -> str:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("RELAY_PACKET_PATH", None)
    run = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def glibc_versions(shared_object: Path) -> set[tuple[int, ...]]:
    """The GLIBC_x.y versions of the symbols `shared_object` imports (objdump -T, from binutils)."""
    run = subprocess.run(["objdump", "-T", str(shared_object)], capture_output=True, text=True, check=True)
    return {tuple(map(int, v.split("."))) for v in re.findall(r"\bGLIBC_([0-9.]+)\b", run.stdout)}


def needed_libraries(shared_object: Path) -> list[str]:
    run = subprocess.run(["objdump", "-p", str(shared_object)], capture_output=True, text=True, check=True)
    return re.findall(r"^\s*NEEDED\s+(\S+)", run.stdout, re.MULTILINE)


def test_the_wheel_ships_the_object_and_the_installed_relay_loads_it(tmp_path: Path, bpf_object: bytes) -> None:
    wheel = _wheel(tmp_path, os.environ["PATH"])
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        shipped = archive.read(f"relay/server/kernel/{loader.OBJECT_NAME}")
    assert f"relay/server/kernel/{loader.MISSING_NOTE}" not in names
    assert "relay/setup.py" not in names  # the build step is not part of the package
    assert shipped == bpf_object  # the same compiler and source give the same bytes
    assert _installed_probe(wheel, tmp_path) == "loaded"
    # The compiled packet path: one abi3 object for every Python from 3.10 (the hosts' 3.10 included).
    assert wheel.name.endswith(f"-cp310-abi3-linux_{platform.machine()}.whl"), wheel.name
    assert "relay/server/_fastpath.abi3.so" in names and "relay/server/_fastpath.missing" not in names
    assert "relay/server/_fastpath.c" not in names  # the source stays out of the installed package
    assert _installed_probe(wheel, tmp_path, _PATH_PROBE) == "_fastpath.abi3.so"
    shared_object = tmp_path / "site" / "relay" / "server" / "_fastpath.abi3.so"
    versions = glibc_versions(shared_object)
    assert versions and max(versions) <= HOSTS_GLIBC, f"needs glibc {max(versions)}, the hosts have {HOSTS_GLIBC}"
    assert needed_libraries(shared_object) == ["libc.so.6"]  # no libpython: any CPython >= 3.10 loads it


def test_the_symbol_version_check_reads_real_versions(tmp_path: Path) -> None:
    """The check above must be able to fail: an object calling a function that is newer than 2.35 on this
    machine's glibc (if it has one) shows that version."""
    source = tmp_path / "probe.c"
    source.write_text("#include <stdlib.h>\nint probe(void) { return (int)arc4random(); }\n")  # glibc 2.36
    shared_object = tmp_path / "probe.so"
    run = subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(shared_object), str(source)], capture_output=True)
    if run.returncode != 0:
        pytest.skip(f"this machine's glibc has no arc4random (older than 2.36): {run.stderr[-200:]!r}")
    assert (2, 36) in glibc_versions(shared_object)


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
    # No gcc either: no compiled packet path, and the relay says why in one line and serves from Python.
    assert "relay/server/_fastpath.missing" in names
    assert not [name for name in names if name.endswith(".so")]
    assert _installed_probe(wheel, tmp_path, _PATH_PROBE).splitlines() == [
        "compiled packet path unavailable, the pure-Python path serves: the wheel was built without the compiled "
        "packet path: the C compiler gcc was not found on the build machine (install gcc and python3-dev there and "
        "rebuild the wheel)",
        "python",
    ]


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
