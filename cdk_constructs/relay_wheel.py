"""The TURN relay (`relay/`) built as a wheel at synth time and shipped as an S3 asset.

The build runs offline (`python -m build --wheel --no-isolation`, setuptools and wheel come from the CDK
app's own virtualenv) on a copy of the sources, so the repository never gets `build/` or `*.egg-info`
litter and concurrent synths do not race. Wheels are zip files with timestamps in them; the asset hash is
therefore computed from the relay's *sources* (plus the build's Python version), not from the wheel's
bytes, and `SOURCE_DATE_EPOCH` pins the timestamps anyway. The build also compiles the relay's TC program
with clang and its C packet path with gcc when they are there (relay/setup.py; the wheel is then tagged
cp310-abi3-linux_<machine>), so both compilers' identities are part of the hash too. Same
sources, same asset key, same user data: no launch template change, hence no instance replacement, unless
relay code changed.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import AssetHashType
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

RELAY_DIR = Path(__file__).resolve().parent.parent / "relay"

# Never part of the wheel's inputs: bytecode, build output and test files.
_EXCLUDED_DIRS = {"__pycache__", "build", "dist", "tests", ".pytest_cache", ".ruff_cache"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".egg-info", ".bpf.o", ".bpf.missing", ".so", "_fastpath.missing")
# What pip on the TURN hosts (Ubuntu 22.04 amd64, settings.model) installs: the compiled wheel or a pure one.
HOST_PLATFORM_TAGS = ("linux_x86_64", "any")
# 2020-01-01T00:00:00Z: zip entries cannot carry dates before 1980, and any fixed value keeps builds stable.
_SOURCE_DATE_EPOCH = "1577836800"


class RelayWheelError(RuntimeError):
    """The relay wheel could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class BuiltWheel:
    path: Path
    source_hash: str

    @property
    def filename(self) -> str:
        return self.path.name


def relay_source_files(source: Path = RELAY_DIR) -> list[Path]:
    """The files the wheel is built from, sorted (relative paths decide the hash)."""
    if not (source / "pyproject.toml").is_file():
        raise RelayWheelError(f"{source} has no pyproject.toml: the relay sources are missing from the checkout")
    files = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part in _EXCLUDED_DIRS or part.endswith(_EXCLUDED_SUFFIXES) for part in relative.parts):
            continue
        if path.is_file() and not path.name.endswith(_EXCLUDED_SUFFIXES):
            files.append(path)
    return files


@functools.cache
def bpf_compiler_identity(source: Path = RELAY_DIR) -> str:
    """What the relay's own build script says about the BPF compiler ("none" without clang): a wheel built
    with the program and one built without it must not share an asset key."""
    script = source / "server" / "kernel" / "build.py"
    if not script.is_file():
        return "none"
    run = subprocess.run([sys.executable, str(script), "--identity"], capture_output=True, text=True, check=False)
    return run.stdout.strip() if run.returncode == 0 else f"failed: {run.stderr.strip()[-200:]}"


@functools.cache
def c_compiler_identity() -> str:
    """The C compiler that builds the packet path (Python's configured CC), or "none": as for BPF, a wheel with
    the compiled path and one without must not share an asset key."""
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return "none"
    run = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=False)
    return run.stdout.splitlines()[0].strip() if run.returncode == 0 and run.stdout else "unusable"


def relay_source_hash(source: Path = RELAY_DIR) -> str:
    """SHA-256 over every source file's relative path and bytes, the Python version that builds it, and the
    BPF and C compilers."""
    digest = hashlib.sha256(f"bbb-turn-relay wheel v1 py{sys.version_info[0]}.{sys.version_info[1]}\n".encode())
    digest.update(f"bpf compiler: {bpf_compiler_identity(source)}\n".encode())
    digest.update(f"c compiler: {c_compiler_identity()}\n".encode())
    for path in relay_source_files(source):
        data = path.read_bytes()
        digest.update(f"{path.relative_to(source).as_posix()}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


_built: dict[str, BuiltWheel] = {}


def build_relay_wheel(source: Path = RELAY_DIR) -> BuiltWheel:
    """Build (once per process and source hash) the relay wheel; returns its path in a private staging dir."""
    source_hash = relay_source_hash(source)
    cached = _built.get(source_hash)
    if cached is not None and cached.path.is_file():
        return cached
    staging = Path(tempfile.mkdtemp(prefix="bbb-turn-relay-wheel-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)  # synth copies the wheel into cdk.out
    tree = staging / "relay"
    for path in relay_source_files(source):
        target = tree / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    out = staging / "dist"
    env = {**os.environ, "SOURCE_DATE_EPOCH": _SOURCE_DATE_EPOCH, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(tree)]
    run = subprocess.run(command, cwd=staging, env=env, capture_output=True, text=True, check=False)
    wheels = sorted(out.glob("*.whl")) if out.is_dir() else []
    if run.returncode != 0 or len(wheels) != 1:
        tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-25:])
        raise RelayWheelError(
            f"building the relay wheel failed (exit {run.returncode}, {len(wheels)} wheel(s)) with "
            f"`{' '.join(command)}`; install the build tools with `.venv/bin/pip install -r requirements.txt` "
            f"and check relay/pyproject.toml. Last output:\n{tail}"
        )
    platform_tag = wheels[0].name.removesuffix(".whl").rsplit("-", 1)[-1]
    if platform_tag not in HOST_PLATFORM_TAGS:
        raise RelayWheelError(
            f"the relay wheel {wheels[0].name} was built for {platform_tag}, but the TURN hosts are "
            f"{' or '.join(HOST_PLATFORM_TAGS)} (its compiled packet path is machine code): synthesize on an "
            "x86_64 Linux machine"
        )
    built = BuiltWheel(path=wheels[0], source_hash=source_hash)
    _built[source_hash] = built
    return built


class RelayWheel(Construct):
    """The relay wheel as an S3 asset; `grant_read` gives exactly s3:GetObject on this one object."""

    def __init__(self, scope: Construct, construct_id: str, *, source: Path = RELAY_DIR) -> None:
        super().__init__(scope, construct_id)
        self.wheel = build_relay_wheel(source)
        self.asset = s3_assets.Asset(
            self,
            "Asset",
            path=str(self.wheel.path),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=self.wheel.source_hash,
        )

    @property
    def filename(self) -> str:
        """The wheel's real file name (pip reads the version and tags from it; the S3 key loses it)."""
        return self.wheel.filename

    @property
    def bucket_name(self) -> str:
        return self.asset.s3_bucket_name

    @property
    def object_key(self) -> str:
        return self.asset.s3_object_key

    def grant_read(self, grantee: iam.IGrantable) -> None:
        # Asset.grant_read would open the whole bootstrap bucket (every asset of every app in the account).
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[self.asset.bucket.arn_for_objects(self.asset.s3_object_key)]
            )
        )
