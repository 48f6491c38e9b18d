"""`bbb-on-aws status` and `drain` against moto (a deployment's groups, hooks, metrics, alarms and state
machines), with a botocore Stubber asserting exact parameters where moto cannot produce the state (Auto
Scaling's Terminating:Wait / Pending:Wait / warm pool: moto terminates at once and has no hook waits)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator

import boto3
import pytest
from aws_fixtures import ENV, REGION, Deployment, deployment, make_group
from botocore.stub import Stubber
from moto import mock_aws

from bbb_on_aws import drain, status
from bbb_on_aws.aws_clients import Clients
from bbb_on_aws.cli import main

AWS_ARGS = ["--environment", ENV, "--region", REGION]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield deployment(datetime.datetime.now(datetime.timezone.utc))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main([*args, "--json", *AWS_ARGS])
    return code, json.loads(capsys.readouterr().out)


def test_status_reports_the_deployment(aws, capsys):
    sfn = boto3.client("stepfunctions", region_name=REGION)
    turn_ids, bbb_ids = aws.instances("turn"), aws.instances("bbb")
    drain_arn = aws.machines["TurnLifecycleDrainStateMachineF14406D1-abc"]
    sfn.start_execution(stateMachineArn=drain_arn, name=f"drain-{turn_ids[1]}")
    launch = sfn.start_execution(
        stateMachineArn=aws.machines["BbbLifecycleLaunchStateMachine12616838-def"], name=f"launch-{bbb_ids[0]}"
    )
    sfn.stop_execution(executionArn=launch["executionArn"], error="Test", cause="aborted by the test")
    sfn.start_execution(
        stateMachineArn=aws.machines["TurnLifecycleDrainStateMachine-other"], name="drain-i-0123456789abcdef0"
    )

    code, result = cli(capsys, "status")
    assert code == 0
    assert [(f["role"], f["desired"], f["min"], f["max"]) for f in result["fleets"]] == [
        ("bbb", 1, 1, 3),
        ("turn", 2, 1, 4),
    ]
    bbb, turn = result["fleets"]
    assert bbb["metrics"] == {"meetings": 3.0, "participants": 41.0}
    assert turn["metrics"] == {"allocations": 25.0}
    assert [(s["id"], s["metrics"]) for s in turn["servers"]] == [
        (turn_ids[0], {"allocations": 12.0}),
        (turn_ids[1], {"allocations": 13.0}),
    ]
    assert all(s["state"] == "serving" and s["lifecycle_state"] == "InService" for s in turn["servers"])
    assert {a["name"] for a in result["alarms"]} == {
        "bbb-fleets-BbbLifecycleDrainStateMachineFailed-1A2B",
        f"bbb-on-aws-{ENV}-turn-probe-{turn_ids[0]}",
    }
    assert [e["name"] for e in result["running"]] == [f"drain-{turn_ids[1]}"]
    assert turn["servers"][1]["since"] == result["running"][0]["start"]
    assert [(e["name"], e["status"]) for e in result["failed"]] == [(f"launch-{bbb_ids[0]}", "ABORTED")]

    main(["status", *AWS_ARGS])
    text = capsys.readouterr().out
    assert f"Fleet turn: {aws.groups['turn']} desired 2 (min 1, max 4), allocations 25" in text
    assert f"  {turn_ids[1]}  serving since {result['running'][0]['start']}" in text
    assert "Alarms in ALARM: 2" in text and "other-fleets" not in text


def test_status_shows_draining_launching_and_warm_pool(aws):
    group = aws.groups["turn"]
    since = datetime.datetime(2026, 12, 6, 8, 0, tzinfo=datetime.timezone.utc)
    sfn = boto3.client("stepfunctions", region_name=REGION)
    sfn.start_execution(
        stateMachineArn=aws.machines["TurnLifecycleDrainStateMachineF14406D1-abc"], name="drain-i-0aaaaaaaaaaaaaaa1"
    )
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    member = {
        "AvailabilityZone": f"{REGION}a",
        "HealthStatus": "Healthy",
        "ProtectedFromScaleIn": False,
        "InstanceType": "t3.small",
    }
    with Stubber(autoscaling) as stub:
        stub.add_response(
            "describe_auto_scaling_groups",
            {
                "AutoScalingGroups": [
                    {
                        "AutoScalingGroupName": group,
                        "MinSize": 1,
                        "MaxSize": 4,
                        "DesiredCapacity": 2,
                        "DefaultCooldown": 300,
                        "AvailabilityZones": [f"{REGION}a"],
                        "HealthCheckType": "EC2",
                        "CreatedTime": since,
                        "Tags": [
                            {"Key": "bbb-on-aws:environment", "Value": ENV},
                            {"Key": "bbb-on-aws:role", "Value": "turn"},
                        ],
                        "Instances": [
                            {**member, "InstanceId": "i-0aaaaaaaaaaaaaaa1", "LifecycleState": "Terminating:Wait"},
                            {**member, "InstanceId": "i-0aaaaaaaaaaaaaaa2", "LifecycleState": "Pending:Wait"},
                            {**member, "InstanceId": "i-0aaaaaaaaaaaaaaa3", "LifecycleState": "InService"},
                            {**member, "InstanceId": "i-0aaaaaaaaaaaaaaa5", "LifecycleState": "Terminating:Wait"},
                        ],
                    }
                ]
            },
            {"Filters": [{"Name": "tag:bbb-on-aws:environment", "Values": [ENV]}]},
        )
        stub.add_response(
            "describe_warm_pool",
            {"Instances": [{**member, "InstanceId": "i-0aaaaaaaaaaaaaaa4", "LifecycleState": "Warmed:Stopped"}]},
            {"AutoScalingGroupName": group},
        )
        snapshot = status.collect(ENV, REGION, Clients(REGION, autoscaling=autoscaling))
        stub.assert_no_pending_responses()
    (fleet,) = snapshot.fleets
    states = {s.id: (s.state, s.since) for s in fleet.servers}
    running_since = snapshot.running[0]["start"]
    assert states == {
        "i-0aaaaaaaaaaaaaaa1": ("draining", running_since),
        "i-0aaaaaaaaaaaaaaa2": ("launching", None),
        "i-0aaaaaaaaaaaaaaa3": ("serving", None),
        "i-0aaaaaaaaaaaaaaa4": ("warm pool", None),
        "i-0aaaaaaaaaaaaaaa5": ("draining", None),
    }
    text = snapshot.render()
    assert "i-0aaaaaaaaaaaaaaa1  draining since " + running_since + " (Terminating:Wait" in text
    assert "i-0aaaaaaaaaaaaaaa5  draining (no drain execution running) (Terminating:Wait" in text


def test_drain_terminates_through_the_group_and_decrements(aws, capsys):
    victim, keep = aws.instances("turn")
    code, result = cli(capsys, "drain", victim)
    assert code == 0 and result["ok"]
    assert result["group"] == aws.groups["turn"] and result["role"] == "turn" and result["decremented"]
    assert result["execution"] == f"drain-{victim}" and result["activity"]
    assert aws.group("turn")["DesiredCapacity"] == 1
    assert aws.instances("turn") == [keep]


def test_drain_at_minimum_is_refused_unless_replace(aws, capsys):
    (only,) = aws.instances("bbb")
    code, result = cli(capsys, "drain", only)
    assert code == 1 and not result["ok"]
    assert "at its minimum size (1)" in result["error"] and "--replace" in result["error"]
    assert "deployment.bbb.minInstances" in result["error"]
    assert aws.instances("bbb") == [only] and aws.group("bbb")["DesiredCapacity"] == 1

    code, result = cli(capsys, "drain", only, "--replace")
    assert code == 0 and not result["decremented"]
    assert aws.group("bbb")["DesiredCapacity"] == 1
    replacement = aws.instances("bbb")
    assert only not in replacement and len(replacement) == 1


def test_drain_refuses_what_is_not_a_drainable_server(aws, capsys):
    other = boto3.client("autoscaling", region_name=REGION).describe_auto_scaling_groups(
        AutoScalingGroupNames=["other-fleets-TurnGroupASG-Q"]
    )["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    make_group("bbb-frontend-EcsAsg-1", "", ENV, (1, 1, 1))
    ecs = aws.__class__(groups={"ecs": "bbb-frontend-EcsAsg-1"}).instances("ecs")[0]
    make_group("bbb-fleets-NoHooks-1", "turn", ENV, (1, 2, 2), hooks=False)
    unhooked = aws.__class__(groups={"x": "bbb-fleets-NoHooks-1"}).instances("x")[0]
    loose = boto3.client("ec2", region_name=REGION).run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)[
        "Instances"
    ][0]["InstanceId"]
    cases = {
        other: "not part of environment 'bbb'",
        ecs: "no BBB or TURN fleet",
        unhooked: "no 'bbb-on-aws-terminate' terminating hook",
        loose: "in no Auto Scaling group",
        "i-nothex": "is not an EC2 instance id",
    }
    for instance, reason in cases.items():
        code, result = cli(capsys, "drain", instance)
        assert code == 1 and reason in result["error"], (instance, result)
    assert len(aws.instances("turn")) == 2


def _stubbed_group(stub: Stubber, instance: str, state: str, group: str) -> None:
    stub.add_response(
        "describe_auto_scaling_instances",
        {
            "AutoScalingInstances": [
                {
                    "InstanceId": instance,
                    "AutoScalingGroupName": group,
                    "AvailabilityZone": f"{REGION}a",
                    "LifecycleState": state,
                    "HealthStatus": "HEALTHY",
                    "ProtectedFromScaleIn": False,
                }
            ]
        },
        {"InstanceIds": [instance]},
    )
    stub.add_response(
        "describe_auto_scaling_groups",
        {
            "AutoScalingGroups": [
                {
                    "AutoScalingGroupName": group,
                    "MinSize": 1,
                    "MaxSize": 3,
                    "DesiredCapacity": 1,
                    "DefaultCooldown": 300,
                    "AvailabilityZones": [f"{REGION}a"],
                    "HealthCheckType": "EC2",
                    "CreatedTime": datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc),
                    "Tags": [
                        {"Key": "bbb-on-aws:environment", "Value": ENV},
                        {"Key": "bbb-on-aws:role", "Value": "bbb"},
                    ],
                }
            ]
        },
        {"AutoScalingGroupNames": [group]},
    )
    stub.add_response(
        "describe_lifecycle_hooks",
        {
            "LifecycleHooks": [
                {
                    "LifecycleHookName": "bbb-on-aws-terminate",
                    "AutoScalingGroupName": group,
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
                }
            ]
        },
        {"AutoScalingGroupName": group},
    )


def test_drain_sends_exactly_the_call_that_fires_the_terminating_hook():
    client = boto3.client("autoscaling", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    instance, group = "i-0bbbbbbbbbbbbbbb1", "bbb-fleets-BbbGroupASG-1"
    with Stubber(client) as stub:
        _stubbed_group(stub, instance, "InService", group)
        stub.add_response(
            "terminate_instance_in_auto_scaling_group",
            {
                "Activity": {
                    "ActivityId": "act-1",
                    "AutoScalingGroupName": group,
                    "Cause": "user request",
                    "StartTime": datetime.datetime(2026, 12, 6, tzinfo=datetime.timezone.utc),
                    "StatusCode": "InProgress",
                }
            },
            {"InstanceId": instance, "ShouldDecrementDesiredCapacity": False},
        )
        started = drain.drain(
            instance, environment=ENV, region=REGION, replace=True, clients=Clients(REGION, autoscaling=client)
        )
        stub.assert_no_pending_responses()
    assert (started.activity, started.execution, started.decremented) == ("act-1", f"drain-{instance}", False)


def test_drain_refuses_a_server_already_draining():
    client = boto3.client("autoscaling", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    instance, group = "i-0bbbbbbbbbbbbbbb2", "bbb-fleets-BbbGroupASG-1"
    with Stubber(client) as stub:
        _stubbed_group(stub, instance, "Terminating:Wait", group)
        with pytest.raises(drain.DrainRefused, match="already draining"):
            drain.drain(
                instance,
                environment=ENV,
                region=REGION,
                replace=True,
                clients=Clients(REGION, autoscaling=client),
            )
        stub.assert_no_pending_responses()  # and no terminate call was made (the Stubber would have failed)


def test_probe_discovers_the_serving_bbb_servers(aws, capsys):
    (bbb,) = aws.instances("bbb")
    ec2 = boto3.client("ec2", region_name=REGION)
    assert status.serving_hosts(ENV, REGION, "meet.example.invalid") == []  # not ready yet: not serving
    ec2.create_tags(Resources=[bbb], Tags=[{"Key": "bbb-on-aws:ready", "Value": "1765000000"}])
    for turn in aws.instances("turn"):  # TURN servers are no BBB servers, ready or not
        ec2.create_tags(Resources=[turn], Tags=[{"Key": "bbb-on-aws:ready", "Value": "1765000000"}])
    host = f"bbb-{bbb[2:]}.fleet.meet.example.invalid"  # the fleet's servers live under fleet.<domain>
    assert status.serving_hosts(ENV, REGION, "meet.example.invalid") == [host]
    turn_hosts = [f"turn-{i[2:]}.meet.example.invalid" for i in aws.instances("turn")]
    assert status.serving_hosts(ENV, REGION, "meet.example.invalid", roles=("turn",)) == sorted(turn_hosts)
    code = main(["probe", "meet.example.invalid", "--discover", "--json", "--timeout", "1", *AWS_ARGS])
    result = json.loads(capsys.readouterr().out)
    assert code == 1  # the names do not resolve here; what matters is that the discovered server is checked
    names = {c["name"] for c in result["checks"]}
    assert f"https BBB {host}" in names
    assert all(f"udp {turn}:3478 resolve" in names for turn in turn_hosts)
