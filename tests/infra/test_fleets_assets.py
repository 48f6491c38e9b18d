"""What the hosts download: user data (shellcheck'ed, per shape), the bootstrap bundles and the relay wheel."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import aws_cdk as cdk
import pytest

from cdk_constructs import relay_wheel
from cdk_constructs.relay_wheel import RELAY_DIR, RelayWheel, RelayWheelError, relay_source_hash
from tests.infra.fleets_support import params_env, user_data
from tests.infra.synth import synth
from tests.infra.test_fleets_turn import CUSTOM

HOSTS = [
    ("scalable", {}, "Turn"),
    ("scalable", {}, "Bbb"),
    ("scalable", CUSTOM, "ClusterProxy"),
    ("single", {}, "Turn"),
    ("single", {}, "Single"),
]
# What CloudFormation substitutes is an ARN, a bucket or a log group name: well under this length.
RESOLVED = "x" * 200


def _variant(shape, changes):
    result = synth(shape, "dev", **changes)
    return result, result.template("fleets")


def _asset_file(result, object_key: str) -> Path:
    manifest = json.loads((result.outdir / f"{result.config.prefix}-fleets.assets.json").read_text())
    (source,) = [f["source"]["path"] for f in manifest["files"].values()
                 if any(d["objectKey"] == object_key for d in f["destinations"].values())]
    return result.outdir / source


@pytest.mark.parametrize(("shape", "changes", "host"), HOSTS)
def test_user_data_is_shellcheck_clean_and_fits_ec2s_limit(shape, changes, host):
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is missing: run ./scripts/install.sh --test-tools (Debian package shellcheck)")
    _, template = _variant(shape, changes)
    text = user_data(template, host, placeholder=RESOLVED)
    run = subprocess.run(["shellcheck", "--shell=bash", "--severity=style", "-"], input=text, text=True,
                         capture_output=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(base64.b64encode(text.encode())) <= 16 * 1024


@pytest.mark.parametrize(("shape", "changes", "host"), HOSTS)
def test_the_bundle_asset_is_the_one_the_user_data_checks(shape, changes, host):
    result, template = _variant(shape, changes)
    text = user_data(template, host)
    env = params_env(text)
    bundle = _asset_file(result, env["BUNDLE_KEY"])
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert f'echo "{digest}  $bundle" | sha256sum --check' in text
    folder = {"Turn": "turn", "Bbb": "bbb", "Single": "bbb", "ClusterProxy": "proxy"}[host]
    assert text.rstrip().endswith(f"exec /opt/bbb-on-aws/{folder}/bootstrap.sh")


def test_the_wheel_asset_is_the_relay_under_the_name_the_user_data_installs():
    result, template = _variant("scalable", {})
    env = params_env(user_data(template, "Turn"))
    wheel = _asset_file(result, env["RELAY_WHEEL_KEY"])
    name, version = env["RELAY_WHEEL_FILENAME"].split("-")[:2]
    assert name == "bbb_turn_relay"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(f"{name}-{version}.dist-info/METADATA").decode()
        names = archive.namelist()
    assert "Name: bbb-turn-relay" in metadata and f"Version: {version}" in metadata
    assert "relay/__init__.py" in names and not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def _wheel_key() -> str:
    app = cdk.App(outdir=tempfile.mkdtemp(prefix="wheel-synth-"))
    stack = cdk.Stack(app, "Wheel")
    cdk.CfnWaitConditionHandle(stack, "Anchor")  # a template needs one resource; the asset alone has none
    key = stack.resolve(RelayWheel(stack, "Relay").object_key)
    app.synth()
    return key


@pytest.mark.slow
def test_wheel_asset_hash_is_stable_across_rebuilds():
    """Zip timestamps must not leak into the asset: same sources, same S3 key, same user data."""
    for _ in range(3):  # sources edited while the test runs (a developer's save) make a round inconclusive
        sources = relay_source_hash()
        relay_wheel._built.clear()
        first = _wheel_key()
        relay_wheel._built.clear()  # force a second real build
        second = _wheel_key()
        if relay_source_hash() == sources:
            break
    assert first == second and first.endswith(".whl")


@pytest.fixture
def relay_copy(tmp_path):
    copy = tmp_path / "relay"
    shutil.copytree(RELAY_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info"))
    return copy


def test_source_hash_ignores_bytecode_and_build_output(relay_copy):
    before = relay_source_hash(relay_copy)
    (relay_copy / "__pycache__").mkdir()
    (relay_copy / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0bytecode")
    (relay_copy / "build" / "lib").mkdir(parents=True)
    (relay_copy / "build" / "lib" / "junk.py").write_text("x = 1\n")
    (relay_copy / "bbb_turn_relay.egg-info").mkdir()
    (relay_copy / "bbb_turn_relay.egg-info" / "PKG-INFO").write_text("Name: x\n")
    assert relay_source_hash(relay_copy) == before


def test_source_hash_changes_with_any_source_byte(relay_copy):
    before = relay_source_hash(relay_copy)
    target = relay_copy / "__init__.py"
    target.write_bytes(target.read_bytes() + b"\n")
    assert relay_source_hash(relay_copy) != before


def test_a_missing_relay_checkout_is_a_clear_error(tmp_path):
    with pytest.raises(RelayWheelError, match=r"no pyproject\.toml"):
        relay_source_hash(tmp_path)


def test_a_broken_relay_package_fails_the_build_with_its_output(relay_copy):
    (relay_copy / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = 'not a version'\n")
    with pytest.raises(RelayWheelError, match="building the relay wheel failed") as error:
        relay_wheel.build_relay_wheel(relay_copy)
    assert "Last output" in str(error.value)
