"""The certificate issuer's Lambda layer: certbot's `acme` library and what it needs, built at synth time from
the pinned wheels, without Docker.

The Lambda runtime (Python 3.13 on x86_64, Amazon Linux 2023, glibc 2.34) brings boto3 but none of acme,
josepy, cryptography, pyOpenSSL or requests, and the functions' code asset is plain source. pip installs
the manylinux x86_64 cp313 wheels (`--only-binary=:all: --platform ... --python-version 3.13 --no-deps
--target`) of exactly the versions requirements-dev.txt pins for LAYER_PACKAGES, so the tests and the layer
run the same versions. The wheels come from a local wheelhouse first (no network: scripts/install.sh fills
it); only what it lacks is downloaded into it. The built layer is cached next to the wheels under a key of
the pins and the platform, which is also the asset hash: same pins, same asset, no function update.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from aws_cdk import AssetHashType
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

REPO_DIR = Path(__file__).resolve().parents[2]
# Every distribution the issuer imports at run time, transitively (acme 5.9's requirements), except what the
# runtime ships (boto3, botocore and theirs). tests/infra/test_certificates_layer.py checks the closure.
LAYER_PACKAGES = (
    "acme",
    "josepy",
    "cryptography",
    "pyopenssl",
    "pyrfc3339",
    "requests",
    "urllib3",
    "idna",
    "certifi",
    "charset-normalizer",
    "cffi",
    "pycparser",
)
PYTHON_VERSION = "3.13"  # the functions' runtime (cdk_constructs/lambda_function.py)
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")  # x86_64, glibc <= 2.34
LAYOUT = "bbb-on-aws acme layer v1"


class LayerBuildError(RuntimeError):
    """The layer cannot be built; the message says why and what to do."""


def wheelhouse() -> Path:
    """Where the wheels and built layers are kept (BBB_ON_AWS_WHEELHOUSE overrides)."""
    return Path(os.environ.get("BBB_ON_AWS_WHEELHOUSE", Path.home() / ".cache" / "bbb-on-aws" / "lambda-wheels"))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def layer_pins(requirements: Path = REPO_DIR / "requirements-dev.txt") -> list[str]:
    """`name==version` for every LAYER_PACKAGES entry, from requirements-dev.txt."""
    pins: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9._-]+)(\[[^\]]*\])?==([^\s;#]+)", line)
        if match:
            pins[_normalise(match.group(1))] = match.group(3)
    missing = [name for name in LAYER_PACKAGES if name not in pins]
    if missing:
        raise LayerBuildError(
            f"{requirements.name} pins none of {missing}; add name==<version> for each "
            "(the certificate issuer's layer is built from these pins)"
        )
    return [f"{name}=={pins[name]}" for name in LAYER_PACKAGES]


def layer_key(pins: list[str]) -> str:
    text = "\n".join([LAYOUT, PYTHON_VERSION, *PLATFORMS, *pins])
    return hashlib.sha256(text.encode()).hexdigest()


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    platform_args = [arg for platform in PLATFORMS for arg in ("--platform", platform)]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            *args,
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--no-deps",
            *platform_args,
            "--python-version",
            PYTHON_VERSION,
            "--implementation",
            "cp",
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def build_layer(pins: list[str] | None = None) -> tuple[Path, str]:
    """The layer directory (holding `python/`) and its key; built once per key and machine."""
    pins = pins or layer_pins()
    key = layer_key(pins)
    house = wheelhouse()
    built = house / f"layer-{key[:24]}"
    if (house / f"layer-{key[:24]}.complete").is_file() and (built / "python").is_dir():
        return built, key
    house.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="layer-", dir=house))
    try:
        install = (
            "install",
            "--no-index",
            "--find-links",
            str(house),
            "--no-compile",
            "--target",
            str(staging / "python"),
            *pins,
        )
        result = _pip(*install)
        if result.returncode != 0:  # a wheel is missing from the wheelhouse: fetch it, then offline again
            fetched = _pip("download", "--dest", str(house), *pins)
            if fetched.returncode != 0:
                raise LayerBuildError(
                    f"cannot get the certificate issuer's wheels ({', '.join(pins)}) for Python {PYTHON_VERSION} "
                    f"x86_64 into {house}: {fetched.stderr.strip()[-800:]}\nRun scripts/install.sh once with "
                    "network access (it fills the wheelhouse), or set BBB_ON_AWS_WHEELHOUSE to a folder holding them"
                )
            shutil.rmtree(staging / "python", ignore_errors=True)
            result = _pip(*install)
            if result.returncode != 0:
                raise LayerBuildError(f"pip could not install the layer from {house}: {result.stderr.strip()[-800:]}")
        shutil.rmtree(built, ignore_errors=True)
        staging.rename(built)
        (house / f"layer-{key[:24]}.complete").write_text("\n".join(pins) + "\n")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return built, key


class AcmeLayer(Construct):
    """`.layer`: the LayerVersion for Python 3.13 x86_64."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        pins = layer_pins()
        path, key = build_layer(pins)
        self.pins = pins
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(str(path), asset_hash=key, asset_hash_type=AssetHashType.CUSTOM),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_13],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description="bbb-on-aws certificate issuer: " + ", ".join(pins[:3]),
        )


if __name__ == "__main__":  # scripts/install.sh: fill the wheelhouse while the network is there
    built, _key = build_layer()
    print(f"certificate issuer layer ready in {built}")
