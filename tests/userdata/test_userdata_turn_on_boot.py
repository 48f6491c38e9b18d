"""turn/on_boot.sh for real under bash: a relay woken from the warm pool announces its new public IPv4 and tags
itself ready again. relay.conf is rendered by turn/lib.sh itself; IMDSv2 is a local metadata server, STUN is
coturn (Debian), /readyz a local HTTP server; aws and systemctl are shims."""

from __future__ import annotations

import shlex
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.userdata.test_userdata_common_steps import Imds
from tests.userdata.test_userdata_turn_steps import Readyz, readyz, stun_server  # noqa: F401 (fixtures)
from tests.userdata.turn_secret_support import Aws

USERDATA = Path(__file__).resolve().parents[2] / "userdata"
OLD, NEW = "203.0.113.10", "198.51.100.77"


@pytest.fixture
def imds() -> Iterator[Imds]:
    server = Imds({
        "meta-data/instance-id": "i-0abc123def4567890",
        "meta-data/local-ipv4": "127.0.0.1",  # the relay listens on its private address: loopback here
        "meta-data/public-ipv4": NEW,
        "meta-data/placement/region": "eu-west-1",
    })
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture
def relay(shell, imds: Imds) -> Path:
    etc = shell.root / "relay-etc"
    etc.mkdir()
    shell.env.update({"IMDS_ENDPOINT": imds.endpoint, "RELAY_ETC": str(etc)})
    (shell.root / "conf/params.env").write_text(
        "READY_WAIT_SECONDS=30\nENV_NAME=bbb\nTURN_SECRET_ARN=arn:secret\nTURN_CREDENTIAL_TTL=86400\n"
    )
    shell.env.update({"RELAY_USER": "root", "RELAY_GROUP": "root"})
    (shell.root / "conf/runtime.env").write_text(f"PUBLIC_IPV4={OLD}\nPRIVATE_IPV4=127.0.0.1\n")
    render = shell.run(
        f"LISTEN_PORT=3478 PROXY_PORT=3479 ADMIN_LISTEN=127.0.0.1:9641 "
        f"render_relay_conf turn.bbb.example.com 127.0.0.1 {OLD} 49152 65535 10000 16 0 3600",
        libs=("common/lib.sh", "turn/lib.sh"),
    )
    assert render.returncode == 0, render.stderr
    conf = etc / "relay.conf"
    conf.write_text(render.stdout)
    aws = Aws(shell)  # the TURN secret as it was when the relay went to sleep: one version, in use
    aws.secret({V1: ["AWSCURRENT"]}, {V1: SECRET_1})
    aws.servers(f"{V1}@0")
    shell.shim("systemctl", "exit 0")  # the relay is active when the ready step runs
    return conf


V1, V2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
SECRET_1, SECRET_2 = "Tq4Wm8Zr2Xc6Vb0Nn3Kk7Jj1Hh5Gg9Ff2Dd6Ss0A", "Uz7Yx3Wv9Ut1Sr5Qp2On8Ml4Kj6Ih0Gf3Ed7Cb1B"


def on_boot(shell, mode: str, **env: str):
    return shell.run(f"bash {shlex.quote(str(USERDATA / 'turn/on_boot.sh'))} {mode}", env=env)


def test_wake_rewrites_external_ip_only(shell, relay: Path) -> None:
    before = relay.read_text()
    result = on_boot(shell, "address")
    assert result.returncode == 0, result.stderr
    assert relay.read_text() == before.replace(f"external-ip={OLD}", f"external-ip={NEW}")
    assert "listening-ip=127.0.0.1" in relay.read_text() and "relay-ip=127.0.0.1" in relay.read_text()
    assert f"PUBLIC_IPV4={NEW}" in (shell.root / "conf/runtime.env").read_text()
    again = on_boot(shell, "address")
    assert again.returncode == 0 and f"already announces {NEW}" in again.stderr


def test_ready_needs_the_new_address_and_a_relay_that_answers(
    shell, relay: Path, stun_server: int, readyz: Readyz  # noqa: F811 (fixtures)
) -> None:
    env = {"ADMIN_LISTEN": f"127.0.0.1:{readyz.server_address[1]}", "LISTEN_PORT": str(stun_server)}
    readyz.status = 200
    refused = on_boot(shell, "ready", **env)  # relay.conf still announces the old address
    assert refused.returncode != 0 and f"does not announce {NEW}" in refused.stderr
    assert shell.calls("aws") == []
    assert on_boot(shell, "address").returncode == 0
    ready = on_boot(shell, "ready", **env)
    assert ready.returncode == 0, ready.stderr
    # The secret versions in use first (labels, BBB servers' tags, the value), then the ready tag.
    assert [c[1:3] for c in shell.calls("aws")] == [
        ["secretsmanager", "describe-secret"], ["ec2", "describe-instances"], ["secretsmanager", "get-secret-value"],
        ["ec2", "create-tags"]]
    assert shell.calls("aws")[-1] == ["aws", "ec2", "create-tags", "--resources", "i-0abc123def4567890", "--tags",
                                      "Key=bbb-on-aws:ready,Value=1700000000"]
    assert (relay.parent / "secret").read_text() == f"{SECRET_1}\n"


def test_a_secret_rotated_while_asleep_is_accepted_before_the_ready_tag(
    shell, relay: Path, stun_server: int, readyz: Readyz  # noqa: F811 (fixtures)
) -> None:
    (relay.parent / "secret").write_text(f"{SECRET_1}\n")  # what the relay had when it went to sleep
    aws = Aws(shell)
    aws.secret({V1: ["AWSPREVIOUS"], V2: ["AWSCURRENT"]}, {V1: SECRET_1, V2: SECRET_2})
    aws.servers(f"{V1}@0")  # a BBB server still issues with the old one
    env = {"ADMIN_LISTEN": f"127.0.0.1:{readyz.server_address[1]}", "LISTEN_PORT": str(stun_server)}
    readyz.status = 200
    assert on_boot(shell, "address").returncode == 0
    ready = on_boot(shell, "ready", **env)
    assert ready.returncode == 0, ready.stderr
    assert (relay.parent / "secret").read_text() == f"{SECRET_2}\n{SECRET_1}\n"
    calls = shell.calls()
    reload = calls.index(["systemctl", "reload", "bbb-turn-relay"])
    tag = next(i for i, c in enumerate(calls) if c[:3] == ["aws", "ec2", "create-tags"])
    assert reload < tag  # the relay accepts the new secret before turn.<domain> points at it


def test_first_boot_is_left_to_the_bootstrap(shell, relay: Path) -> None:
    relay.unlink()
    result = on_boot(shell, "address")
    assert result.returncode == 0 and "first boot" in result.stderr
