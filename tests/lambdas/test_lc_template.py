"""Template assertions for the FleetLifecycle construct (hooks, rules, state machines, IAM, alarms) and
cdk-nag on the test stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_sns as sns

ROOT = Path(__file__).resolve().parents[2]


def resources(template: dict[str, Any], kind: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind and k.startswith(prefix)}


def group_ref(template: dict[str, Any], role: str) -> dict[str, str]:
    [lid] = [
        k
        for k, v in resources(template, "AWS::AutoScaling::AutoScalingGroup").items()
        if v["Properties"]["AutoScalingGroupName"] == f"lctest-{role}"
    ]
    return {"Ref": lid}


def statements(template: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    found = []
    for policy in resources(template, "AWS::IAM::Policy", prefix).values():
        found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_hooks_on_each_group(lifecycle_template: dict[str, Any]) -> None:
    hooks = resources(lifecycle_template, "AWS::AutoScaling::LifecycleHook")
    assert len(hooks) == 6
    for role in ("bbb", "turn", "single"):
        mine = {
            h["Properties"]["LifecycleHookName"]: h["Properties"]
            for h in hooks.values()
            if h["Properties"]["AutoScalingGroupName"] == group_ref(lifecycle_template, role)
        }
        assert mine["bbb-on-aws-launch"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
        assert mine["bbb-on-aws-launch"]["DefaultResult"] == "ABANDON"
        assert mine["bbb-on-aws-terminate"]["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING"
        assert mine["bbb-on-aws-terminate"]["DefaultResult"] == "CONTINUE"
        assert {h["HeartbeatTimeout"] for h in mine.values()} == {1800}
        assert all("NotificationTargetARN" not in h and "RoleARN" not in h for h in mine.values())


def test_rules_match_exactly_their_group_and_target_the_dispatcher(lifecycle_template: dict[str, Any]) -> None:
    for prefix, role in (("BbbLifecycle", "bbb"), ("TurnLifecycle", "turn"), ("SingleLifecycle", "single")):
        rules = [
            r["Properties"]
            for r in resources(lifecycle_template, "AWS::Events::Rule", prefix).values()
            if "EventPattern" in r["Properties"]
        ]
        [rule] = rules
        assert rule["EventPattern"] == {
            "source": ["aws.autoscaling"],
            "detail-type": ["EC2 Instance-launch Lifecycle Action", "EC2 Instance-terminate Lifecycle Action"],
            "detail": {
                "AutoScalingGroupName": [group_ref(lifecycle_template, role)],
                "LifecycleHookName": ["bbb-on-aws-launch", "bbb-on-aws-terminate"],
            },
        }
        [target] = rule["Targets"]
        function = target["Arn"]["Fn::GetAtt"][0]
        assert lifecycle_template["Resources"][function]["Properties"]["Handler"] == "lifecycle_dispatch.index.handler"
        assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 7200, "MaximumRetryAttempts": 8}
        schedules = sorted(
            r["Properties"]["ScheduleExpression"]
            for r in resources(lifecycle_template, "AWS::Events::Rule", prefix).values()
            if "ScheduleExpression" in r["Properties"]
        )
        assert schedules == (["rate(1 minute)", "rate(15 minutes)"] if role == "turn" else ["rate(15 minutes)"])


def definition(template: dict[str, Any], lid: str) -> dict[str, Any]:
    body = template["Resources"][lid]["Properties"]["DefinitionString"]
    parts = body["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "ARN" for p in parts))


def machine(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    [lid] = resources(template, "AWS::StepFunctions::StateMachine", prefix)
    props = template["Resources"][lid]["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    return definition(template, lid)


def test_state_machines(lifecycle_template: dict[str, Any]) -> None:
    bbb_drain = machine(lifecycle_template, "BbbLifecycleDrainStateMachine")
    assert bbb_drain["TimeoutSeconds"] == 4 * 3600 + 3600
    assert bbb_drain["StartAt"] == "Cordon"
    assert bbb_drain["States"]["WaitDrain"]["Seconds"] == 60
    assert {"Cordon", "CheckDrained", "DrainHeartbeat", "ForceRemove", "Finish", "Drained"} <= set(bbb_drain["States"])
    turn_drain = machine(lifecycle_template, "TurnLifecycleDrainStateMachine")
    assert turn_drain["TimeoutSeconds"] == 30 * 60 + 3600  # the test stack's drain_max
    assert turn_drain["StartAt"] == "Withdraw"
    assert turn_drain["States"]["WaitDnsTtl"]["Seconds"] == 120
    assert turn_drain["States"]["WaitDrain"]["Seconds"] == 30
    launch = machine(lifecycle_template, "BbbLifecycleLaunchStateMachine")
    assert launch["TimeoutSeconds"] == 45 * 60 + 30 * 60
    assert launch["States"]["WaitForHost"]["Seconds"] == 30
    for states in (bbb_drain["States"], turn_drain["States"], launch["States"]):
        for name, state in states.items():
            if state["Type"] != "Task":
                continue
            assert {
                "ErrorEquals": ["TransientError"],
                "IntervalSeconds": 20,
                "MaxAttempts": 5,
                "BackoffRate": 2,
            } in state["Retry"], name
            assert state["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
            assert state["Parameters"]["now.$"] == "$$.State.EnteredTime"


def test_route53_changes_are_limited_to_the_zone_and_the_fleets_names(lifecycle_template: dict[str, Any]) -> None:
    expected = {
        "BbbLifecycle": ["bbb-*.meet.example.test"],
        "SingleLifecycle": ["meet.example.test"],
        "TurnLifecycle": ["turn-*.meet.example.test", "turn.meet.example.test"],
    }
    for prefix, names in expected.items():
        changes = [
            s
            for s in statements(lifecycle_template, prefix)
            if "route53:ChangeResourceRecordSets" in as_list(s["Action"])
        ]
        assert changes, prefix
        for statement in changes:
            assert statement["Resource"] == {
                "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":route53:::hostedzone/Z0LIFECYCLETEST"]]
            }
            condition = statement["Condition"]
            assert condition["ForAllValues:StringLike"] == {
                "route53:ChangeResourceRecordSetsNormalizedRecordNames": names
            }
            assert condition["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsRecordTypes"] == ["A"]
    for statement in statements(lifecycle_template, ""):
        assert statement["Action"] != "*"
        if statement["Resource"] == "*":
            for action in as_list(statement["Action"]):
                assert action in {
                    "ec2:DescribeInstances",
                    "ec2:DescribeVolumes",
                    "ec2:DescribeSnapshots",
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeInstanceRefreshes",
                    "autoscaling:DescribeTags",
                    "ssm:GetCommandInvocation",
                    "cloudwatch:GetMetricData",
                    "cloudwatch:PutMetricData",
                    "route53:ListHealthChecks",
                    "route53:CreateHealthCheck",
                    "xray:PutTraceSegments",
                    "xray:PutTelemetryRecords",
                    "xray:GetSamplingRules",
                    "xray:GetSamplingTargets",
                    "logs:CreateLogDelivery",
                    "logs:GetLogDelivery",
                    "logs:UpdateLogDelivery",
                    "logs:DeleteLogDelivery",
                    "logs:ListLogDeliveries",
                    "logs:PutResourcePolicy",
                    "logs:DescribeResourcePolicies",
                    "logs:DescribeLogGroups",
                }, action


def test_lifecycle_actions_secrets_commands_and_metrics_are_scoped(lifecycle_template: dict[str, Any]) -> None:
    for prefix, role in (("BbbLifecycle", "bbb"), ("TurnLifecycle", "turn"), ("SingleLifecycle", "single")):
        mine = statements(lifecycle_template, prefix)
        for statement in mine:
            actions = as_list(statement["Action"])
            if "autoscaling:CompleteLifecycleAction" in actions:
                joined = statement["Resource"]["Fn::Join"][1]
                assert group_ref(lifecycle_template, role) in joined
                assert ":autoScalingGroup:*:autoScalingGroupName/" in joined
            if "ssm:SendCommand" in actions and statement["Resource"] != {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":ssm:",
                        {"Ref": "AWS::Region"},
                        "::document/AWS-RunShellScript",
                    ],
                ]
            }:
                assert statement["Condition"] == {
                    "StringEquals": {
                        "ssm:resourceTag/bbb-on-aws:environment": "lctest",
                        "ssm:resourceTag/bbb-on-aws:role": role,
                    }
                }
            if "cloudwatch:PutMetricData" in actions:
                assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": "BBBOnAWS/lctest"}}
            if any(a.startswith("secretsmanager:") for a in actions):
                assert role != "turn", "TURN functions read no secret"
                for arn in as_list(statement["Resource"]):
                    assert arn.startswith("arn:aws:secretsmanager:eu-west-1:123456789012:secret:lctest-"), arn


def test_every_function_and_state_machine_alarms_the_operator(lifecycle_template: dict[str, Any]) -> None:
    functions = resources(lifecycle_template, "AWS::Lambda::Function")
    alarms = [a["Properties"] for a in resources(lifecycle_template, "AWS::CloudWatch::Alarm").values()]
    topic = "arn:aws:sns:eu-west-1:123456789012:lctest-operator"
    assert all(a["AlarmActions"] == [topic] for a in alarms)
    errors = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms if a.get("MetricName") == "Errors"}
    ours = {lid for lid, f in functions.items() if f["Properties"].get("Runtime") == "python3.13"}
    assert ours and ours <= errors
    machines = set(resources(lifecycle_template, "AWS::StepFunctions::StateMachine"))
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"):
        watched = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms if a.get("MetricName") == metric}
        assert watched == machines, metric
    names = {a.get("MetricName") for a in alarms}
    assert {"LaunchAbandoned", "DrainMaxReached", "ScaleliteErrors", "FailedInvocations"} <= names


def test_functions_use_the_pinned_layer_and_existing_handlers(lifecycle_template: dict[str, Any]) -> None:
    for lid, function in resources(lifecycle_template, "AWS::Lambda::Function").items():
        props = function["Properties"]
        if props.get("Runtime") != "python3.13":
            continue  # the Provider framework's own function
        [layer] = props["Layers"]
        assert "017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:" in "".join(
            p if isinstance(p, str) else "" for p in layer["Fn::Join"][1]
        )
        module = props["Handler"].rsplit(".", 1)[0].replace(".", "/")
        assert (ROOT / "lambdas" / f"{module}.py").is_file(), (lid, props["Handler"])
        env = props["Environment"]["Variables"]
        assert env["ENVIRONMENT_NAME"] == "lctest" and env["POWERTOOLS_METRICS_NAMESPACE"] == "BBBOnAWS/lctest"
        assert "LoggingConfig" in props


def test_bootstrap_runs_after_hooks_and_rule(lifecycle_template: dict[str, Any]) -> None:
    [resource] = [
        r
        for r in lifecycle_template["Resources"].values()
        if r["Type"] == "Custom::BbbOnAwsFleetBootstrap"
        and r["Properties"]["Group"] == group_ref(lifecycle_template, "bbb")
    ]
    depends = set(resource["DependsOn"])
    assert any(d.startswith("BbbLifecycleLifecycleEvents") for d in depends)
    assert len([d for d in depends if "Hook" in d]) == 2


@pytest.mark.slow
def test_cdk_nag_finds_nothing_unacknowledged(tmp_path: Path) -> None:
    import lc_test_stack

    app, _stack = lc_test_stack.build(tmp_path, nag=True)
    app.synth()  # raises on any unacknowledged finding
    report = json.loads((tmp_path / "validation-report.json").read_text())
    [plugin] = report["pluginReports"]
    assert plugin["violations"] == []
    assert plugin["suppressedViolations"], "the acknowledgments were applied"
    for suppressed in plugin["suppressedViolations"]:
        for resource in suppressed.get("violatingResources", []) or [suppressed]:
            reason = resource.get("reason") or suppressed.get("reason") or ""
            assert len(reason) >= 20, suppressed


def test_construct_refuses_bad_arguments() -> None:
    from cdk_constructs.lifecycle import FleetLifecycle, LifecycleTimings

    with pytest.raises(ValueError, match=r"drain_max=.*48 h"):
        LifecycleTimings(drain_max=Duration.hours(50)).resolve("bbb")
    with pytest.raises(ValueError, match="heartbeat_timeout"):
        LifecycleTimings(heartbeat_timeout=Duration.seconds(10)).resolve("turn")
    with pytest.raises(ValueError, match="drain_poll"):
        LifecycleTimings(drain_poll=Duration.minutes(20)).resolve("bbb")
    with pytest.raises(ValueError, match="25,000-event execution history"):
        LifecycleTimings(drain_max=Duration.hours(40), drain_poll=Duration.seconds(30)).resolve("bbb")
    assert LifecycleTimings(drain_max=Duration.hours(40), drain_poll=Duration.seconds(120)).resolve("bbb")
    long_drain = LifecycleTimings(drain_max=Duration.hours(47)).resolve("bbb")
    assert long_drain.drain_poll == 93 and long_drain.drain_max // long_drain.drain_poll * 12 <= 22_000
    assert LifecycleTimings().resolve("bbb").drain_poll == 60
    app = App()
    stack = Stack(app, "Bad")
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        max_azs=1,
        nat_gateways=0,
        subnet_configuration=[ec2.SubnetConfiguration(name="p", subnet_type=ec2.SubnetType.PUBLIC)],
    )
    group = autoscaling.AutoScalingGroup(
        stack,
        "G",
        vpc=vpc,
        instance_type=ec2.InstanceType("t3.micro"),
        machine_image=ec2.MachineImage.latest_amazon_linux2023(),
    )
    common = {
        "auto_scaling_group": group,
        "domain_name": "meet.example.org",
        "environment_name": "prod",
        "hosted_zone": route53.HostedZone.from_hosted_zone_attributes(
            stack, "Z", hosted_zone_id="Z1", zone_name="example.org"
        ),
        "operator_topic": sns.Topic.from_topic_arn(stack, "T", "arn:aws:sns:eu-west-1:1:t"),
    }
    with pytest.raises(ValueError, match="role 'bbb' needs bbb_secret"):
        FleetLifecycle(stack, "A", role="bbb", **common)
    with pytest.raises(ValueError, match="role must be one of"):
        FleetLifecycle(stack, "B", role="web", **common)
    with pytest.raises(ValueError, match="does not use Scalelite"):
        FleetLifecycle(stack, "C", role="turn", scalelite_api_url="https://s.example.org/scalelite/api", **common)
