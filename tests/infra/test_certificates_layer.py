"""The certificate issuer's layer: built from the pinned wheels, for Lambda's Python 3.13 on x86_64, and
complete (no Python 3.13 here to import it, so every requirement of every distribution in it is checked
against the layer plus what the Lambda runtime ships)."""

from __future__ import annotations

import email
import re
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from cdk_constructs.certificates.layer import LAYER_PACKAGES, LayerBuildError, build_layer, layer_key, layer_pins

# What the python3.13 runtime and the Powertools layer provide (AWS's Lambda runtime documentation).
RUNTIME = {
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "python-dateutil",
    "six",
    "urllib3",
    "aws-lambda-powertools",
    "typing-extensions",
}
LAMBDA = {
    **default_environment(),
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "implementation_name": "cpython",
    "extra": "",
}


@pytest.fixture(scope="module")
def layer() -> Path:
    path, _key = build_layer()
    return path / "python"


def distributions(site: Path) -> dict[str, tuple[Version, list[str]]]:
    found = {}
    for info in site.glob("*.dist-info"):
        metadata = email.message_from_string((info / "METADATA").read_text())
        found[canonicalize_name(metadata["Name"])] = (
            Version(metadata["Version"]),
            metadata.get_all("Requires-Dist") or [],
        )
    return found


def test_layer_holds_exactly_the_pinned_versions(layer: Path) -> None:
    installed = distributions(layer)
    pins = dict(pin.split("==") for pin in layer_pins())
    assert {name: str(version) for name, (version, _) in installed.items()} == pins
    assert set(pins) == set(LAYER_PACKAGES)


def test_every_requirement_is_met_on_lambda(layer: Path) -> None:
    installed = distributions(layer)
    unmet = []
    for name, (_version, requirements) in installed.items():
        for text in requirements:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(LAMBDA):
                continue
            wanted = canonicalize_name(requirement.name)
            if wanted in installed:
                if not requirement.specifier.contains(installed[wanted][0], prereleases=True):
                    unmet.append(f"{name}: {text} (layer has {installed[wanted][0]})")
            elif wanted not in RUNTIME:
                unmet.append(f"{name}: {text} (neither in the layer nor in the runtime)")
    assert unmet == []


def test_native_code_is_built_for_cpython_313_on_x86_64(layer: Path) -> None:
    binaries = [p.name for p in layer.rglob("*.so")]
    assert "_cffi_backend.cpython-313-x86_64-linux-gnu.so" in binaries
    assert any(re.fullmatch(r"_rust\.abi3\.so", name) for name in binaries)  # cryptography (abi3, cp311+)
    assert not [name for name in binaries if "cpython-3" in name and "cpython-313-x86_64" not in name]


def test_missing_pin_is_a_clear_error(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements-dev.txt"
    requirements.write_text("acme==5.9.0\njosepy==2.2.0\n")
    with pytest.raises(LayerBuildError, match=r"pins none of \['cryptography', 'pyopenssl'"):
        layer_pins(requirements)


def test_key_changes_with_any_pin() -> None:
    pins = layer_pins()
    bumped = [pin if not pin.startswith("acme==") else "acme==5.8.0" for pin in pins]
    assert layer_key(pins) == layer_key(list(pins)) != layer_key(bumped)
