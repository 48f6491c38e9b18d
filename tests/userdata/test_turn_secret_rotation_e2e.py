"""A TURN secret rotation end to end: the rotation Lambda on moto Secrets Manager and EC2, the TURN host's and
the BBB server's timer steps under bash (their `aws` answers come from moto's state, `systemctl reload` sends
the relay its SIGHUP), and the REAL relay process with the secret file those steps write. Credentials are made
the way bbb-web makes them, from the secret and TTL in the turn-stun-servers.xml the BBB step wrote.

What must hold: a client holding old-secret credentials keeps its allocation and can refresh through the whole
rotation; a new client gets the new secret's credentials and allocates; once retired, the old secret's
credentials are refused (401) for new allocations while the live one still refreshes; no Allocate made with
credentials BBB handed out is ever refused before that.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
for extra in (ROOT / "lambdas", ROOT / "tests" / "relay"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Test")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402
from relay_testkit import TurnClient, admin_get, free_port, wait_until  # noqa: E402
from turn_secret_rotation import index as rotation  # noqa: E402

from relay.stun import Attr, MessageClass  # noqa: E402
from tests.userdata.turn_secret_support import Aws  # noqa: E402

TURN = ("common/lib.sh", "turn/lib.sh")
BBB = ("common/lib.sh", "bbb/lib.sh")
ENV = "prod"
TTL = 86400
DOMAIN = "bbb.example.com"
FQDN = f"bbb-0abc.{DOMAIN}"
REALM = f"turn.{DOMAIN}"
IDLE = "<response><returncode>SUCCESS</returncode><messageKey>noMeetings</messageKey></response>"
BUSY = "<response><returncode>SUCCESS</returncode><meetings><meeting><meetingID>m</meetingID></meeting></meetings>"


@dataclass
class LambdaContext:
    function_name: str = "turn-secret-rotation"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "req"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:turn-secret-rotation"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@dataclass
class Deployment:
    shell: Any
    aws: Aws
    arn: str
    bbb_instance: str
    relay_port: int
    etc: Path
    bbb_etc: Path
    refused: list[str] = field(default_factory=list)

    @property
    def sm(self) -> Any:
        return boto3.client("secretsmanager")

    @property
    def now(self) -> int:
        return int(self.shell.clock_file.read_text())

    def advance(self, seconds: int) -> None:
        self.shell.clock_file.write_text(f"{self.now + seconds}\n")

    def publish(self) -> None:
        """moto's state as the `aws` shim's answers."""
        stages = {v: s for v, s in self.sm.describe_secret(SecretId=self.arn)["VersionIdsToStages"].items() if s}
        values = {v: self.sm.get_secret_value(SecretId=self.arn, VersionId=v)["SecretString"] for v in stages}
        self.aws.secret(stages, values)
        reservations = boto3.client("ec2").describe_instances(InstanceIds=[self.bbb_instance])["Reservations"]
        tags = {t["Key"]: t["Value"] for t in reservations[0]["Instances"][0].get("Tags", [])}
        self.aws.servers(tags.get("bbb-on-aws:turn-secret"))

    def turn_timer(self) -> None:
        self.publish()
        result = self.shell.run(f"refresh_relay_secrets {self.arn} {ENV} {TTL}", libs=TURN)
        assert result.returncode == 0, result.stderr

    def bbb_timer(self, meetings: str) -> None:
        self.publish()
        (self.shell.root / "getmeetings").write_text(meetings)
        before = len(self.shell.calls("aws"))
        result = self.shell.run(
            f"refresh_turn_secret {self.arn} {DOMAIN} {TTL} {FQDN}", libs=BBB, env={"INSTANCE_ID": self.bbb_instance}
        )
        assert result.returncode == 0, result.stderr
        for call in self.shell.calls("aws")[before:]:  # what the host asked EC2 to do, done in moto
            if call[1:3] == ["ec2", "create-tags"]:
                key, value = call[call.index("--tags") + 1].removeprefix("Key=").split(",Value=")
                boto3.client("ec2").create_tags(Resources=[self.bbb_instance], Tags=[{"Key": key, "Value": value}])

    def rotation_step(self, step: str, token: str) -> None:
        rotation.handler({"SecretId": self.arn, "ClientRequestToken": token, "Step": step}, LambdaContext())

    def credentials_from_bbb(self, user: str) -> tuple[str, str]:
        """What bbb-web hands a browser: <expiry>:<user> and base64(HMAC-SHA1(secret, username))."""
        ns = {"b": "http://www.springframework.org/schema/beans"}
        bean = ET.parse(self.bbb_etc / "turn-stun-servers.xml").getroot().find("b:bean", ns)
        args = bean.findall("b:constructor-arg", ns)  # type: ignore[union-attr]
        secret, ttl = args[0].get("value"), int(args[2].get("value"))  # type: ignore[arg-type]
        username = f"{int(time.time()) + ttl}:{user}"
        digest = hmac.digest(secret.encode(), username.encode(), hashlib.sha1)  # type: ignore[union-attr]
        return username, base64.b64encode(digest).decode()

    def client(self, credentials: tuple[str, str]) -> TurnClient:
        return TurnClient(("127.0.0.1", self.relay_port), *credentials)


def allocates(d: Deployment, credentials: tuple[str, str]) -> bool:
    with d.client(credentials) as client:
        return allocated(client)


def allocated(client: TurnClient) -> bool:
    response = client.allocate()
    return response.message_class == MessageClass.SUCCESS and client.verified(response)


def refreshed(client: TurnClient) -> bool:
    response = client.refresh(600)
    return response.message_class == MessageClass.SUCCESS and response.get(Attr.LIFETIME) == 600


@pytest.fixture
def deployment(shell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    shell.clock_file.write_text(f"{int(time.time())}\n")
    monkeypatch.setattr(rotation, "clock", lambda: float(shell.clock_file.read_text()))
    monkeypatch.setattr(
        rotation,
        "sleep",
        lambda seconds: shell.clock_file.write_text(f"{int(shell.clock_file.read_text()) + int(seconds) + 1}\n"),
    )
    with mock_aws():
        from common import aws as lambda_aws

        lambda_aws.reset()
        sm, ec2 = boto3.client("secretsmanager"), boto3.client("ec2")
        arn = sm.create_secret(Name="turn", SecretString="x" * 40)["ARN"]
        # moto enables rotation only through RotateSecret, which rotates once to a version without a value:
        # two values after it, so every labelled version has one, as in Secrets Manager.
        sm.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 30})
        for _ in range(2):
            sm.put_secret_value(
                SecretId=arn,
                SecretString=sm.get_random_password(PasswordLength=40, ExcludePunctuation=True)["RandomPassword"],
                VersionStages=["AWSCURRENT"],
            )
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        bbb = ec2.run_instances(
            ImageId=image,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "bbb-on-aws:environment", "Value": ENV},
                        {"Key": "bbb-on-aws:role", "Value": "bbb"},
                    ],
                }
            ],
        )["Instances"][0]
        for name, value in {
            "SECRET_ARN": arn,
            "ENVIRONMENT_NAME": ENV,
            "CREDENTIAL_TTL_SECONDS": str(TTL),
            "HOST_POLL_SECONDS": "60",
        }.items():
            monkeypatch.setenv(name, value)

        etc, bbb_etc = tmp_path / "relay-etc", tmp_path / "bbb-etc"
        etc.mkdir()
        bbb_etc.mkdir()
        (bbb_etc / "bbb-web.properties").write_text("securitySalt=apisecret0123456789\n")
        pid_file = tmp_path / "relay.pid"
        shell.shim(
            "systemctl",
            f"""
            [[ $1 == is-active ]] && exit 0
            [[ $1 == reload && $2 == bbb-turn-relay ]] && kill -HUP "$(cat {pid_file})"
            exit 0""",
        )
        shell.shim("curl", f"cat {shell.root}/getmeetings")
        port, admin = free_port(), free_port()
        shell.env |= {
            "RELAY_ETC": str(etc),
            "RELAY_USER": "root",
            "RELAY_GROUP": "root",
            "BBB_ETC": str(bbb_etc),
            "BBB_GROUP": "root",
            "BBB_SERVLET_PROPERTIES": str(tmp_path / "none"),
            "LISTEN_PORT": str(port),
            "PROXY_PORT": str(free_port()),
            "ADMIN_LISTEN": f"127.0.0.1:{admin}",
        }
        world = Deployment(shell, Aws(shell), arn, bbb["InstanceId"], port, etc, bbb_etc)

        # The hosts boot: the BBB server writes its XML and tags itself; the TURN host seeds and refreshes.
        world.bbb_timer(IDLE)
        world.publish()
        current = sm.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"]
        result = shell.run(
            f"write_relay_secrets {current}; refresh_relay_secrets {arn} {ENV} {TTL}; "
            f": >{etc}/allowed-peers.conf; render_relay_conf {REALM} 127.0.0.1 203.0.113.10 "
            f"41000 41999 100 10 0 5 >{etc}/relay.conf",
            libs=TURN,
        )
        assert result.returncode == 0, result.stderr
        log = (tmp_path / "relay.log").open("w")
        relay = subprocess.Popen(
            [sys.executable, "-m", "relay", "-c", str(etc / "relay.conf")],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=log,
            stderr=log,
            text=True,
        )
        pid_file.write_text(f"{relay.pid}\n")
        try:
            wait_until(lambda: _ready(relay, admin, tmp_path / "relay.log"), "the relay to become ready", timeout=30)
            yield world
        finally:
            relay.send_signal(signal.SIGTERM)
            try:
                relay.wait(timeout=15)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()
            log.close()
            lambda_aws.reset()


def _ready(relay: subprocess.Popen[str], admin: int, log: Path) -> bool:
    if relay.poll() is not None:
        raise AssertionError(f"the relay exited: {log.read_text()[-2000:]}")
    try:
        return admin_get(admin, "/readyz")[0] == 200
    except OSError:
        return False


def _reloaded(condition: Any, what: str) -> None:
    """The relay applies SIGHUP asynchronously: wait for its effect."""
    wait_until(condition, what, timeout=10)


@pytest.mark.slow
def test_rotation_refuses_no_credential_bbb_handed_out(deployment: Deployment) -> None:
    d = deployment
    old_credentials = d.credentials_from_bbb("early")
    with d.client(old_credentials) as early:
        assert allocated(early)
        token = str(uuid.uuid4())

        d.rotation_step("createSecret", token)
        d.rotation_step("setSecret", token)
        d.turn_timer()  # the relays learn AWSPENDING
        pending = d.sm.get_secret_value(SecretId=d.arn, VersionStage="AWSPENDING")["SecretString"]
        probe = (
            f"{int(time.time()) + 600}:probe",
            base64.b64encode(
                hmac.digest(pending.encode(), f"{int(time.time()) + 600}:probe".encode(), hashlib.sha1)
            ).decode(),
        )
        _reloaded(lambda: allocates(d, probe), "the relay to accept the pending secret")
        d.rotation_step("testSecret", token)
        d.rotation_step("finishSecret", token)
        # (moto answers a GetSecretValue without a stage from a default it never moves: name the stage)
        assert d.sm.get_secret_value(SecretId=d.arn, VersionStage="AWSCURRENT")["SecretString"] == pending
        d.turn_timer()  # AWSCURRENT moved: the relay accepts the new current and the previous one

        # The BBB server runs a meeting: it keeps issuing with the old secret, which the relay still accepts.
        d.bbb_timer(BUSY)
        with d.client(d.credentials_from_bbb("during-meeting")) as during:
            assert allocated(during)
        assert refreshed(early)

        # Without meetings it switches; a new client gets the new secret's credentials and allocates.
        d.advance(120)
        d.bbb_timer(IDLE)
        switched_at = d.now
        new_credentials = d.credentials_from_bbb("late")
        assert new_credentials != old_credentials
        with d.client(new_credentials) as late:
            assert allocated(late)
        d.turn_timer()  # less than a TTL since the switch: the old secret is still accepted
        with d.client(d.credentials_from_bbb("late2")) as late2, d.client(old_credentials) as straggler:
            assert allocated(late2)
            assert allocated(straggler)  # an old credential handed out before the switch, used only now

        # A TTL after the switch the relays retire it: old credentials are refused, the live allocation is not.
        d.advance(switched_at + TTL - d.now)
        d.turn_timer()
        assert (d.etc / "secret").read_text() == f"{pending}\n"

        def old_refused() -> bool:
            with d.client(old_credentials) as retired:
                error = retired.allocate().get(Attr.ERROR_CODE)
                return error is not None and error[0] == 401

        _reloaded(old_refused, "the relay to refuse the retired secret")
        assert refreshed(early)
        with d.client(d.credentials_from_bbb("after")) as after:
            assert allocated(after)

        # The next rotation is allowed now (the guard of createSecret agrees with the relays).
        d.rotation_step("createSecret", str(uuid.uuid4()))
