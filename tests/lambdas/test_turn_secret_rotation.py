"""The TURN secret rotation Lambda against moto Secrets Manager and EC2: each step, reruns, the version-stage
rules of the four-step protocol, and the guard that keeps a secret BBB may still issue from losing its label."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Test")  # read when the handler module is imported

from common.contract import TAG_TURN_SECRET as TAG
from turn_secret_rotation import index as rotation
from turn_secret_rotation.handoff import handoff

ENV = "prod"
TTL = 86400
POLL = 60
FIRST = "Fq4Wm8Zr2Xc6Vb0Nn3Kk7Jj1Hh5Gg9Ff2Dd6Ss0A"


@dataclass
class Clock:
    now: float
    slept: list[float] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Context:
    remaining_ms: int = 300_000
    function_name: str = "turn-secret-rotation"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "req"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:turn-secret-rotation"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class World:
    arn: str
    clock: Clock
    sm: Any
    ec2: Any

    def stages(self) -> dict[str, list[str]]:
        return {k: sorted(v) for k, v in self.sm.describe_secret(SecretId=self.arn)["VersionIdsToStages"].items() if v}

    def version(self, stage: str) -> str:
        return next(v for v, labels in self.stages().items() if stage in labels)

    def value(self, stage: str) -> str:
        return self.sm.get_secret_value(SecretId=self.arn, VersionStage=stage)["SecretString"]

    def bbb_server(self, tag: str | None, role: str = "bbb") -> str:
        tags = [{"Key": "bbb-on-aws:environment", "Value": ENV}, {"Key": "bbb-on-aws:role", "Value": role}]
        if tag is not None:
            tags.append({"Key": TAG, "Value": tag})
        image = self.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        return self.ec2.run_instances(
            ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=[{"ResourceType": "instance", "Tags": tags}]
        )["Instances"][0]["InstanceId"]

    def step(self, step: str, token: str, context: Context | None = None) -> None:
        event = {"SecretId": self.arn, "ClientRequestToken": token, "Step": step}
        rotation.handler(event, context or Context())

    def rotate(self, token: str) -> None:
        for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
            self.step(step, token)


@pytest.fixture
def world(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    sm, ec2 = boto3.client("secretsmanager"), boto3.client("ec2")
    arn = sm.create_secret(Name="turn", SecretString=FIRST[::-1])["ARN"]
    # moto enables rotation only through RotateSecret, which (without a function) rotates by itself once,
    # to a version without a value: give the secret a current value again.
    sm.rotate_secret(SecretId=arn, RotationRules={"AutomaticallyAfterDays": 30})
    sm.put_secret_value(SecretId=arn, SecretString=FIRST, VersionStages=["AWSCURRENT"])
    clock = Clock(now=2_000_000_000.0)
    monkeypatch.setattr(rotation, "clock", clock.time)
    monkeypatch.setattr(rotation, "sleep", clock.sleep)
    for name, value in {
        "SECRET_ARN": arn,
        "ENVIRONMENT_NAME": ENV,
        "CREDENTIAL_TTL_SECONDS": str(TTL),
        "HOST_POLL_SECONDS": str(POLL),
    }.items():
        monkeypatch.setenv(name, value)
    yield World(arn, clock, sm, ec2)


def test_a_rotation_makes_a_new_current_and_keeps_the_old_as_previous(world: World) -> None:
    old_version, old_value = world.version("AWSCURRENT"), world.value("AWSCURRENT")
    world.bbb_server(f"{old_version}@0")
    token = str(uuid.uuid4())

    world.step("createSecret", token)
    pending = world.value("AWSPENDING")
    assert re.fullmatch(r"[A-Za-z0-9]{40}", pending) and pending != old_value
    assert world.value("AWSCURRENT") == old_value  # nothing switches before finishSecret

    world.step("setSecret", token)
    world.step("testSecret", token)
    world.step("finishSecret", token)
    stages = world.stages()
    assert stages[token] == ["AWSCURRENT", "AWSPENDING"]
    assert stages[old_version] == ["AWSPREVIOUS"]
    assert world.value("AWSCURRENT") == pending
    assert world.value("AWSPREVIOUS") == old_value


def test_every_step_run_again_changes_nothing(world: World) -> None:
    world.bbb_server(f"{world.version('AWSCURRENT')}@0")
    token = str(uuid.uuid4())
    world.step("createSecret", token)
    pending = world.value("AWSPENDING")
    world.step("createSecret", token)  # Secrets Manager retries a failed rotation with the same token
    assert world.value("AWSPENDING") == pending
    world.rotate(token)
    after = world.stages()
    world.rotate(token)  # every step after the end: "already current", no stage moves
    assert world.stages() == after
    assert world.value("AWSCURRENT") == pending


def test_test_secret_waits_two_poll_periods_every_time(world: World) -> None:
    world.bbb_server(f"{world.version('AWSCURRENT')}@0")
    token = str(uuid.uuid4())
    world.step("createSecret", token)
    world.step("testSecret", token)
    world.step("testSecret", token)  # a retried rotation waits again: the value may only just be readable
    assert world.clock.slept == [2 * POLL + 30, 2 * POLL + 30]


def test_test_secret_fails_rather_than_outlive_its_invocation(world: World) -> None:
    world.bbb_server(f"{world.version('AWSCURRENT')}@0")
    token = str(uuid.uuid4())
    world.step("createSecret", token)
    with pytest.raises(rotation.RotationError, match="would outlive this invocation"):
        world.step("testSecret", token, Context(remaining_ms=60_000))
    assert world.clock.slept == []
    assert "AWSCURRENT" not in world.stages()[token]


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        (None, "do not issue with version"),  # a server that never reported its version
        ("OLD@0", "do not issue with version"),  # still issues with an older secret
        ("CURRENT@SWITCHED", "stay valid until"),  # switched, but its last old credential has not expired
    ],
)
def test_create_refuses_while_an_older_secret_may_still_be_in_use(world: World, tag: str | None, message: str) -> None:
    current, previous = world.version("AWSCURRENT"), world.version("AWSPREVIOUS")
    world.bbb_server(f"{current}@0")
    if tag is not None:
        switched = str(int(world.clock.now) - 60)
        tag = tag.replace("OLD", previous).replace("CURRENT", current).replace("SWITCHED", switched)
    lagging = world.bbb_server(tag, role="single")
    before = world.stages()
    with pytest.raises(rotation.RotationError, match=message) as caught:
        world.step("createSecret", str(uuid.uuid4()))
    if "issue" in message:
        assert lagging in str(caught.value)
    assert world.stages() == before  # no pending version was written


def test_create_goes_ahead_once_the_last_switch_is_a_ttl_old(world: World) -> None:
    current = world.version("AWSCURRENT")
    world.bbb_server(f"{current}@{int(world.clock.now) - TTL}")
    token = str(uuid.uuid4())
    world.step("createSecret", token)
    assert "AWSPENDING" in world.stages()[token]


def test_steps_refuse_versions_that_break_the_protocol(world: World) -> None:
    world.bbb_server(f"{world.version('AWSCURRENT')}@0")
    with pytest.raises(rotation.RotationError, match="does not exist"):
        world.step("setSecret", str(uuid.uuid4()))
    previous = world.version("AWSPREVIOUS")
    with pytest.raises(rotation.RotationError, match="is not AWSPENDING"):
        world.step("finishSecret", previous)  # AWSCURRENT never moves to a version that was not pending
    assert world.version("AWSPREVIOUS") == previous
    with pytest.raises(rotation.RotationError, match=r"rotates .* only"):
        rotation.handler({"SecretId": "arn:other", "ClientRequestToken": "t", "Step": "createSecret"}, Context())
    with pytest.raises(rotation.RotationError, match="must carry"):
        rotation.handler({"SecretId": world.arn}, Context())


def test_unknown_step_is_an_error(world: World) -> None:
    world.bbb_server(f"{world.version('AWSCURRENT')}@0")
    token = str(uuid.uuid4())
    world.step("createSecret", token)
    with pytest.raises(rotation.RotationError, match="unknown step"):
        world.step("undoSecret", token)


HANDOFF_CASES = [
    # (servers as (id, tag), now, done)
    ([], 1000, True),
    ([("i-1", "v2@0")], 1000, True),
    ([("i-1", "v2@500")], 1000, False),  # switched at 500, ttl 1000: credentials live until 1500
    ([("i-1", "v2@500")], 1500, True),
    ([("i-1", "v2@0"), ("i-2", "v1@0")], 5000, False),
    ([("i-1", "v2@0"), ("i-2", None)], 5000, False),
    ([("i-1", "v2@0"), ("i-2", "garbage")], 5000, False),
    ([("i-1", "v2@0"), ("i-2", "v2@4500")], 5000, False),
]


@pytest.mark.parametrize(("servers", "now", "done"), HANDOFF_CASES)
def test_handoff_rule(servers: list[tuple[str, str | None]], now: int, done: bool) -> None:
    assert handoff("v2", servers, 1000, now).done is done
