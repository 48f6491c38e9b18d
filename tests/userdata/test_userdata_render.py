"""The renderer: every shape renders, validates its parameters, keeps CDK tokens and stays far under 16 KB."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

import pytest

import contract
from userdata import render
from userdata.render import (
    BbbParams,
    EfsSpool,
    ProxyParams,
    S3Object,
    TurnParams,
    UserDataError,
    bundle_bytes,
    bundle_sha256,
    local_port_range,
    relay_constraints,
    render_bbb_user_data,
    render_proxy_user_data,
    render_turn_user_data,
    write_bundle,
)

REPO = Path(__file__).resolve().parents[2]
TURN_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bbb-turn-secret-AbCdEf"
BBB_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bbb-api-secret-GhIjKl"


def common(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "environment": "bbb",
        "domain": "bbb.example.com",
        "region": "eu-west-1",
        "bootstrap_bundle": S3Object("cdk-hnb659fds-assets-123456789012-eu-west-1", "0a1b2c3d.tar"),
        "system_log_group": "/bbb/system",
        "application_log_group": "/bbb/application",
    }
    values.update(overrides)
    return values


def bbb_params(**overrides: object) -> BbbParams:
    values = common(turn_secret_arn=TURN_ARN, operator_email="ops@example.com", bbb_secret_arn=BBB_ARN,
                    spool=EfsSpool("fs-0123456789abcdef0", "fsap-0123456789abcdef0"))
    values.update(overrides)
    return BbbParams(**values)  # type: ignore[arg-type]


def single_params(**overrides: object) -> BbbParams:
    return bbb_params(**{"single": True, "spool": None, **overrides})


def turn_params(**overrides: object) -> TurnParams:
    values = common(turn_secret_arn=TURN_ARN,
                    relay_wheel=S3Object("cdk-hnb659fds-assets-123456789012-eu-west-1", "9f8e7d.whl"),
                    relay_wheel_filename="bbb_turn_relay-0.1.0-py3-none-any.whl",
                    total_quota=10000, user_quota=16, drain_timeout_seconds=3600)
    values.update(overrides)
    return TurnParams(**values)  # type: ignore[arg-type]


def proxy_params(**overrides: object) -> ProxyParams:
    return ProxyParams(**common(**overrides))  # type: ignore[arg-type]


def tokens(prefix: int) -> dict[str, object]:
    """Every ARN, name and location as a CDK string token, as the stacks pass them."""
    t = iter(range(prefix, prefix + 100))
    return {
        "region": f"${{Token[AWS.Region.{next(t)}]}}",
        "bootstrap_bundle": S3Object(f"${{Token[TOKEN.{next(t)}]}}", f"${{Token[TOKEN.{next(t)}]}}"),
        "system_log_group": f"${{Token[TOKEN.{next(t)}]}}",
        "application_log_group": f"${{Token[TOKEN.{next(t)}]}}",
    }


SHAPES = {
    "scalable": lambda **kw: render_bbb_user_data(bbb_params(**kw)),
    "scalable+proxy": lambda **kw: render_bbb_user_data(bbb_params(cluster_proxy=True, **kw)),
    "single": lambda **kw: render_bbb_user_data(single_params(**kw)),
    "turn": lambda **kw: render_turn_user_data(turn_params(**kw)),
    "proxy": lambda **kw: render_proxy_user_data(proxy_params(**kw)),
}


def params_env(user_data: str) -> dict[str, str]:
    """The params.env the stub writes, parsed the way bash will source it."""
    block = user_data.split("<<'BBB_ON_AWS_PARAMS'\n", 1)[1].split("\nBBB_ON_AWS_PARAMS\n", 1)[0]
    values = {}
    for line in block.splitlines():
        name, _, quoted = line.partition("=")
        (values[name],) = shlex.split(quoted) or [""]
    return values


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("with_tokens", [False, True])
def test_every_shape_renders_shellcheck_clean_bash(shape: str, with_tokens: bool, tmp_path: Path) -> None:
    user_data = SHAPES[shape](**(tokens(40) if with_tokens else {}))
    script = tmp_path / "user-data.sh"
    script.write_text(user_data)
    assert user_data.startswith("#!/bin/bash\n")
    subprocess.run(["bash", "-n", str(script)], check=True)
    result = subprocess.run(["shellcheck", "--severity=style", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_tokens_survive_inside_single_quotes(shape: str) -> None:
    user_data = SHAPES[shape](**tokens(7))
    for token in re.findall(r"\$\{Token\[[^\]]+\]\}", "".join(str(v) for v in tokens(7).values())):
        assert f"'{token}'" in user_data
    env = params_env(user_data)
    assert env["AWS_REGION"] == "${Token[AWS.Region.7]}"
    assert env["BUNDLE_BUCKET"] == "${Token[TOKEN.8]}"
    assert env["APPLICATION_LOG_GROUP"] == "${Token[TOKEN.11]}"


@pytest.mark.parametrize("render_with_token", [
    lambda arn: render_bbb_user_data(bbb_params(turn_secret_arn=arn, bbb_secret_arn=arn)),
    lambda arn: render_turn_user_data(turn_params(turn_secret_arn=arn)),
])
def test_secret_arn_tokens_survive(render_with_token) -> None:
    env = params_env(render_with_token("${Token[TOKEN.321]}"))
    assert env["TURN_SECRET_ARN"] == "${Token[TOKEN.321]}"


def test_scalable_parameters() -> None:
    env = params_env(render_bbb_user_data(bbb_params()))
    assert env["ROLE"] == "bbb"
    assert env["DOMAIN"] == "bbb.example.com"
    assert env["TURN_SECRET_ARN"] == TURN_ARN
    assert env["BBB_SECRET_ARN"] == BBB_ARN
    assert env["SPOOL_FILE_SYSTEM_ID"] == "fs-0123456789abcdef0"
    assert env["SPOOL_ACCESS_POINT_ID"] == "fsap-0123456789abcdef0"
    assert env["METRICS_NAMESPACE"] == "BBBOnAWS/bbb"
    assert env["CLUSTER_PROXY"] == "0"
    assert env["BBB_VERSION"] == "jammy-300"
    assert env["BBB_INSTALL_URL"] == "https://raw.githubusercontent.com/bigbluebutton/bbb-install/v3.0.x-release/bbb-install.sh"
    assert env["SCALELITE_REF"] == "v1.6.5"  # the pin, written here: a changed pin must be seen in review


def test_cluster_proxy_host_parameters() -> None:
    env = params_env(render_proxy_user_data(proxy_params()))
    assert env["ROLE"] == "proxy"
    assert "TURN_SECRET_ARN" not in env and "BBB_SECRET_ARN" not in env  # the proxy needs no secret
    with pytest.raises(UserDataError, match="takes ProxyParams"):
        render_proxy_user_data(turn_params())  # type: ignore[arg-type]


def test_single_and_proxy_parameters() -> None:
    single = params_env(render_bbb_user_data(single_params()))
    assert single["ROLE"] == "single"
    assert "SPOOL_FILE_SYSTEM_ID" not in single
    proxied = params_env(render_bbb_user_data(bbb_params(cluster_proxy=True)))
    assert proxied["CLUSTER_PROXY"] == "1"


def test_turn_parameters() -> None:
    env = params_env(render_turn_user_data(turn_params(min_port=40000, max_port=60000, max_bps=125000)))
    assert env["ROLE"] == "turn"
    assert (env["MIN_PORT"], env["MAX_PORT"]) == ("40000", "60000")
    assert env["LOCAL_PORT_RANGE"] == "10000 39999"
    assert env["RELAY_WHEEL_FILENAME"] == "bbb_turn_relay-0.1.0-py3-none-any.whl"
    assert env["RELAY_WHEEL_KEY"] == "9f8e7d.whl"
    assert (env["TOTAL_QUOTA"], env["USER_QUOTA"], env["MAX_BPS"]) == ("10000", "16", "125000")
    assert env["ALLOCATIONS_METRIC"] == "turn_allocations"
    # The relay's listeners come from the contract through params.env; turn/lib.sh has no defaults.
    assert (env["LISTEN_PORT"], env["PROXY_PORT"]) == (str(contract.TURN_PORT), str(contract.PROXY_PORT))
    assert env["ADMIN_LISTEN"] == f"127.0.0.1:{contract.ADMIN_PORT}"


def test_no_parameter_carries_a_secret_value() -> None:
    """Only ARNs cross the renderer: no field is a secret, and the rendered text holds none."""
    for cls in (BbbParams, TurnParams):
        secretish = [f.name for f in dataclasses.fields(cls) if "secret" in f.name and not f.name.endswith("_arn")]
        assert secretish == []
    user_data = render_bbb_user_data(bbb_params())
    assert TURN_ARN in user_data and BBB_ARN in user_data
    assert "get-secret-value" not in user_data  # secrets are read by the bundle on the host, never here


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_size_stays_far_under_the_limit(shape: str) -> None:
    for user_data in (SHAPES[shape](), SHAPES[shape](**tokens(1))):
        resolved = render.resolved_size_bound(user_data)
        assert len(base64.b64encode(b"x" * resolved)) < render.USER_DATA_LIMIT // 2, (shape, resolved)


def test_size_check_counts_tokens_at_their_resolved_size() -> None:
    many_tokens = "#!/bin/bash\n" + " ".join(f"${{Token[TOKEN.{i}]}}" for i in range(60))
    assert len(many_tokens) < 2000
    with pytest.raises(UserDataError, match="above EC2's 16384"):
        render.check_size(many_tokens)
    render.check_size("#!/bin/bash\n" + "x" * 12000)
    with pytest.raises(UserDataError):
        render.check_size("#!/bin/bash\n" + "x" * 12300)


def test_every_invalid_parameter_is_reported_at_once() -> None:
    bad = bbb_params(environment="BBB!", domain="not a domain", turn_secret_arn="secret-value-in-clear",
                     operator_email="nobody", bbb_install_sha256="abc", bbb_version="focal-270",
                     spool=EfsSpool("fs-xyz", "ap-1"), dns_wait_seconds=5)
    with pytest.raises(UserDataError) as caught:
        render_bbb_user_data(bad)
    problems = "\n".join(caught.value.problems)
    for name in ("environment", "domain", "turn_secret_arn", "operator_email", "bbb_install_sha256",
                 "bbb_version", "spool.file_system_id", "spool.access_point_id", "dns_wait_seconds"):
        assert name in problems
    assert len(caught.value.problems) == 9


@pytest.mark.parametrize(("params", "message"), [
    (lambda: bbb_params(spool=None), "spool (EfsSpool) is required"),
    (lambda: single_params(spool=EfsSpool("fs-0123456789abcdef0", "fsap-0123456789abcdef0")), "single shape"),
    (lambda: single_params(cluster_proxy=True), "cluster_proxy needs the scalable shape"),
    (lambda: bbb_params(region="eu-west-1\nrm -rf /"), "single line"),
    (lambda: bbb_params(load_weights="[1, 2]"), "load_weights='[1, 2]' must be a JSON object on one line"),
    (lambda: bbb_params(load_weights='{"voice":\n1}'), "must be a JSON object on one line"),
])
def test_shape_rules(params, message: str) -> None:
    with pytest.raises(UserDataError, match=re.escape(message)):
        render_bbb_user_data(params())


@pytest.mark.parametrize(("overrides", "message"), [
    # Bounds only here: the listener, size and ephemeral rules are the settings' (tests/unit/test_config_model.py).
    ({"min_port": 1023, "max_port": 4000}, "min_port"),
    ({"min_port": 50000, "max_port": 65536}, "max_port"),
    ({"min_port": 60000, "max_port": 50000}, "is above max_port"),
    ({"min_port": 12000, "max_port": 60000}, "fewer than 8192 ephemeral ports"),
    ({"relay_wheel_filename": "relay.whl"}, "relay_wheel_filename"),
    ({"user_quota": -1}, "user_quota"),
    ({"allocations_metric": "turn-allocations"}, "allocations_metric"),
])
def test_turn_rules(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(UserDataError, match=re.escape(message)):
        render_turn_user_data(turn_params(**overrides))


def test_local_port_range_avoids_the_relay_range() -> None:
    assert local_port_range(49152, 65535) == (32768, 49151)
    assert local_port_range(20000, 40000) == (40001, 65535)
    assert local_port_range(40000, 60000) == (10000, 39999)


def test_wrong_parameter_type_is_a_clear_error() -> None:
    with pytest.raises(UserDataError, match="takes TurnParams"):
        render_turn_user_data(bbb_params())  # type: ignore[arg-type]


def test_bundle_is_deterministic_and_matches_the_stub(tmp_path: Path) -> None:
    for role in ("bbb", "turn", "proxy"):
        first, second = bundle_bytes(role), bundle_bytes(role)
        assert first == second
        path = write_bundle(role, tmp_path)
        assert path.read_bytes() == first
        assert write_bundle(role, tmp_path) == path
        assert hashlib.sha256(first).hexdigest() == bundle_sha256(role)
    assert bundle_sha256("bbb") in render_bbb_user_data(bbb_params())
    assert bundle_sha256("turn") in render_turn_user_data(turn_params())
    assert bundle_sha256("proxy") in render_proxy_user_data(proxy_params())


def test_bundle_contents() -> None:
    with tarfile.open(fileobj=io.BytesIO(bundle_bytes("turn"))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        constraints = tar.extractfile("turn/relay-constraints.txt").read().decode()  # type: ignore[union-attr]
    assert members["turn/bootstrap.sh"].mode == 0o755
    assert members["turn/lib.sh"].mode == 0o644
    assert members["turn/units/bbb-turn-relay.service"].isfile()
    assert members["common/stun_ping.py"].isfile()
    assert members["common/prologue.sh"].mode == 0o644  # sourced by every script, never run
    assert not any(name.startswith("bbb/") for name in members)
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "root" for m in members.values())
    assert constraints == relay_constraints()
    with tarfile.open(fileobj=io.BytesIO(bundle_bytes("bbb"))) as tar:
        names = set(tar.getnames())
    assert {"bbb/bootstrap.sh", "bbb/cluster_proxy.py", "common/lib.sh", "common/prologue.sh"} <= names
    assert not any(name.startswith("turn/") for name in names)
    with tarfile.open(fileobj=io.BytesIO(bundle_bytes("proxy"))) as tar:
        names = set(tar.getnames())
    assert {"proxy/bootstrap.sh", "proxy/sync.sh", "proxy/units/bbb-on-aws-proxy-sync.timer"} <= names
    assert "common/prologue.sh" in names
    with pytest.raises(UserDataError):
        bundle_bytes("gateway")  # type: ignore[arg-type]


def test_relay_constraints_pin_the_relay_dependencies(tmp_path: Path) -> None:
    pins = dict(line.split("==") for line in relay_constraints().splitlines() if "==" in line)
    dev = (REPO / "requirements-dev.txt").read_text()
    assert set(pins) == {"prometheus-client", "uvloop"}
    for name, version in pins.items():
        assert f"{name}=={version}" in dev
    (tmp_path / "relay").mkdir()
    (tmp_path / "relay" / "pyproject.toml").write_text('[project]\ndependencies = ["cryptography>=41"]\n')
    (tmp_path / "requirements-dev.txt").write_text("pytest==9.2.0\n")
    with pytest.raises(UserDataError, match="'cryptography' has no pin"):
        relay_constraints(tmp_path)


CERT_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bbb-fleet-certificate-MnOpQr"


def test_fleet_certificate_parameter() -> None:
    env = params_env(render_bbb_user_data(bbb_params(certificate_secret_arn=CERT_ARN)))
    assert env["CERTIFICATE_SECRET_ARN"] == CERT_ARN
    assert "CERTIFICATE_SECRET_ARN" not in params_env(render_bbb_user_data(bbb_params()))
    with pytest.raises(UserDataError, match="the single host keeps its own Let's Encrypt certificate"):
        render_bbb_user_data(single_params(certificate_secret_arn=CERT_ARN))
    with pytest.raises(UserDataError, match="certificate_secret_arn='fleet-cert' is not a Secrets Manager"):
        render_bbb_user_data(bbb_params(certificate_secret_arn="fleet-cert"))
    with tarfile.open(fileobj=io.BytesIO(bundle_bytes("bbb"))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bbb/certificate.sh"].mode == 0o644 and members["bbb/refresh_certificate.sh"].mode == 0o755
    assert {"bbb/units/bbb-on-aws-certificate.service", "bbb/units/bbb-on-aws-certificate.timer"} <= set(members)


def test_fleet_servers_and_the_proxy_name_them_under_the_fleet_subdomain() -> None:
    """bbb-<id>.fleet.<domain>: the name the fleet's wildcard certificate covers (contract.BBB_FLEET_PREFIX)."""
    assert params_env(render_bbb_user_data(bbb_params()))["BBB_HOST_DOMAIN"] == "fleet.bbb.example.com"
    assert params_env(render_proxy_user_data(proxy_params()))["BBB_HOST_DOMAIN"] == "fleet.bbb.example.com"
    assert "BBB_HOST_DOMAIN" not in params_env(render_bbb_user_data(single_params()))  # the single host is <domain>
