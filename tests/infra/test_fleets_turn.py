"""The TURN fleet: launch template, group, ports, TLS on 443 through the NLB, turns.<domain>, scaling, IAM."""

from __future__ import annotations

import json

import pytest

from tests.infra.fleets_support import (
    as_list,
    egress,
    fleets,
    ingress,
    mentions_output,
    one,
    params_env,
    props,
    resources,
    statements,
    statements_with,
    user_data,
)

# One variant with every TURN-related value moved away from its default, so the template must follow cdk.json.
CUSTOM = {
    "environment.name": "uni-x",
    "domain.name": "meet.example.com",
    "turn.instanceType": "c6i.large",
    "turn.minInstances": 2,
    "turn.desiredInstances": 3,
    "turn.maxInstances": 7,
    "turn.rootVolumeGib": 16,
    "turn.relayPorts": {"min": 40000, "max": 45000},
    "turn.relayPortsTargetPercent": 50,
    "turn.relayedPacketsPerSecond": 20000,
    "turn.relayedBytesPerSecond": 5000000,
    "turn.drainMaxMinutes": 45,
    "turn.totalQuota": 1234,
    "turn.userQuota": 7,
    "bbb.minInstances": 2,
    "bbb.desiredInstances": 2,
    "bbb.maxInstances": 9,
    "bbb.rootVolumeGib": 60,
    "bbb.dataVolumeGib": 250,
    "bbb.loadCapacity": {"c5a.2xlarge": 500},
    "bbb.loadTargetPercent": 60,
    "bbb.schedule": [
        {"cron": "30 7 * * MON-FRI", "timezone": "Europe/Berlin", "minInstances": 6},
        {"cron": "0 17 * * 1-5", "timezone": "Europe/Berlin", "minInstances": 2, "desiredInstances": 2},
    ],
    "clusterProxy.enabled": True,
}
SHAPES = ["scalable", "single"]


@pytest.fixture(scope="module")
def custom():
    return fleets("scalable", "dev", **CUSTOM)


@pytest.mark.parametrize("shape", SHAPES)
def test_launch_template_is_imdsv2_only_with_hop_limit_one_and_encrypted_gp3(shape):
    template = fleets(shape)
    data = props(template, "AWS::EC2::LaunchTemplate", "Turn")["LaunchTemplateData"]
    assert data["MetadataOptions"] == {"HttpEndpoint": "enabled", "HttpTokens": "required",
                                       "HttpPutResponseHopLimit": 1, "InstanceMetadataTags": "enabled"}
    assert data["BlockDeviceMappings"] == [
        {"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": True, "Encrypted": True, "VolumeSize": 10,
                                            "VolumeType": "gp3"}}
    ]
    assert data["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True
    assert data["InstanceType"] == "t3.small"


def test_launch_template_follows_the_configuration(custom):
    template = custom
    data = props(template, "AWS::EC2::LaunchTemplate", "Turn")["LaunchTemplateData"]
    assert data["InstanceType"] == "c6i.large"
    assert data["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 16


@pytest.mark.parametrize("shape", SHAPES)
def test_image_is_canonicals_ubuntu_2204_resolved_at_deploy_time(shape):
    template = fleets(shape)
    ref = props(template, "AWS::EC2::LaunchTemplate", "Turn")["LaunchTemplateData"]["ImageId"]["Ref"]
    assert template["Parameters"][ref] == {
        "Type": "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
        "Default": "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id",
    }


def test_group_sizes_subnets_tags_and_update_policy_follow_the_contract(custom):
    template = custom
    _, group = one(template, "AWS::AutoScaling::AutoScalingGroup", "Turn")
    p = group["Properties"]
    assert (p["MinSize"], p["DesiredCapacity"], p["MaxSize"]) == ("2", "3", "7")
    assert {"Key": "bbb-on-aws:environment", "Value": "uni-x", "PropagateAtLaunch": True} in p["Tags"]
    assert {"Key": "bbb-on-aws:role", "Value": "turn", "PropagateAtLaunch": True} in p["Tags"]
    # A deploy must not reset a fleet that scaled out: the sizes apply only when they change in cdk.json.
    assert group["UpdatePolicy"] == {"AutoScalingScheduledAction": {"IgnoreUnmodifiedGroupSizeProperties": True}}
    # The public subnets of the network stack, and only those.
    assert len(p["VPCZoneIdentifier"]) == 3
    assert all(mentions_output(s, "uni-x-network", "publicSubnet") for s in p["VPCZoneIdentifier"])
    assert p["HealthCheckType"] == "ELB" and p["TargetGroupARNs"] == [
        {"Ref": one(template, "AWS::ElasticLoadBalancingV2::TargetGroup", "Turn")[0]}]


def test_security_group_opens_exactly_turn_relay_ports_and_the_proxy_port_from_the_nlb(custom):
    template = custom
    turn_sg, nlb_sg = _turn_groups(template)
    assert ingress(template, turn_sg) == {
        ("udp", 3478, 3478, "0.0.0.0/0"),
        ("tcp", 3478, 3478, "0.0.0.0/0"),
        ("udp", 40000, 45000, "0.0.0.0/0"),
        ("tcp", 3479, 3479, f"sg:{nlb_sg}"),
    }
    # Every rule says why it exists.
    group = template["Resources"][turn_sg]["Properties"]
    assert all(rule.get("Description") for rule in group["SecurityGroupIngress"])


def test_nlb_security_group_admits_443_and_forwards_only_to_the_proxy_port(custom):
    template = custom
    turn_sg, nlb_sg = _turn_groups(template)
    assert ingress(template, nlb_sg) == {("tcp", 443, 443, "0.0.0.0/0")}
    assert egress(template, nlb_sg) == {("tcp", 3479, 3479, f"sg:{turn_sg}")}


def _turn_groups(template):
    groups = resources(template, "AWS::EC2::SecurityGroup", "Turn")
    by_path = {g["Metadata"]["aws:cdk:path"].rsplit("/", 2)[-2]: logical for logical, g in groups.items()}
    return by_path["SecurityGroup"], by_path["LoadBalancerSecurityGroup"]


@pytest.mark.parametrize("shape", SHAPES)
def test_nlb_terminates_tls_443_with_the_shared_certificate(shape):
    template = fleets(shape)
    nlb_id, nlb = one(template, "AWS::ElasticLoadBalancingV2::LoadBalancer", "Turn")
    attributes = {a["Key"]: a["Value"] for a in nlb["Properties"]["LoadBalancerAttributes"]}
    assert nlb["Properties"]["Type"] == "network" and nlb["Properties"]["Scheme"] == "internet-facing"
    assert attributes["load_balancing.cross_zone.enabled"] == "true"
    assert attributes["access_logs.s3.enabled"] == "true"
    listener = props(template, "AWS::ElasticLoadBalancingV2::Listener", "Turn")
    assert (listener["Port"], listener["Protocol"]) == (443, "TLS")
    assert listener["SslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
    (certificate,) = listener["Certificates"]
    assert mentions_output(certificate, "bbb-shared", "Certificate")
    assert listener["LoadBalancerArn"] == {"Ref": nlb_id}


def test_target_group_speaks_proxy_protocol_v2_to_the_relay(custom):
    template = custom
    group = props(template, "AWS::ElasticLoadBalancingV2::TargetGroup", "Turn")
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    assert (group["Port"], group["Protocol"], group["TargetType"]) == (3479, "TCP", "instance")
    assert attributes["proxy_protocol_v2.enabled"] == "true"
    # Deregistration only delays the lifecycle drain; live TLS sessions survive it and are drained by the relay.
    assert attributes["deregistration_delay.timeout_seconds"] == "120"
    assert attributes["deregistration_delay.connection_termination.enabled"] == "false"
    assert (group["HealthCheckProtocol"], group["HealthCheckPort"]) == ("TCP", "3479")


def test_access_log_bucket_is_private_encrypted_and_tls_only():
    template = fleets("scalable")
    _, bucket = one(template, "AWS::S3::Bucket", "Turn")
    p = bucket["Properties"]
    assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    assert p["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                   "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    policy = props(template, "AWS::S3::BucketPolicy", "Turn")["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for s in policy)


@pytest.mark.parametrize(("shape", "domain"), [("scalable", "bbb.example.com"), ("single", "bbb.example.com")])
def test_turns_name_is_an_alias_to_the_nlb(shape, domain):
    template = fleets(shape)
    nlb_id, _ = one(template, "AWS::ElasticLoadBalancingV2::LoadBalancer", "Turn")
    record = props(template, "AWS::Route53::RecordSet", "Turn")
    assert (record["Name"], record["Type"]) == (f"turns.{domain}.", "A")
    assert record["HostedZoneId"] == "Z0123456789ABCDEFGHIJ"
    assert record["AliasTarget"]["HostedZoneId"] == {"Fn::GetAtt": [nlb_id, "CanonicalHostedZoneID"]}


def test_no_stack_writes_turn_records_itself():
    """turn.<domain> belongs to the launch handler (weighted, health-checked, one per instance)."""
    for shape in SHAPES:
        template = fleets(shape)
        names = {r["Properties"]["Name"] for r in resources(template, "AWS::Route53::RecordSet").values()}
        assert "turn.bbb.example.com." not in names


def test_scaling_tracks_what_a_relay_uses_up_ports_packets_bytes_and_cpu(custom):
    """Allocations against the relay ports (one each; here totalQuota 1234 < 5001 ports, at 50 %), packets and
    bytes sent per instance from EC2's own metrics, as counts per their reporting period (5 min, 1 min), and CPU."""
    template = custom
    group_id, _ = one(template, "AWS::AutoScaling::AutoScalingGroup", "Turn")
    policies = {p["Properties"]["TargetTrackingConfiguration"].get("TargetValue"): p["Properties"]
                for p in resources(template, "AWS::AutoScaling::ScalingPolicy", "Turn").values()}
    group = [{"Name": "AutoScalingGroupName", "Value": {"Ref": group_id}}]
    assert policies[617]["TargetTrackingConfiguration"]["CustomizedMetricSpecification"] == {
        "MetricName": "Allocations", "Namespace": "BBBOnAWS/uni-x", "Statistic": "Average", "Dimensions": group,
    }
    assert policies[20000 * 300]["TargetTrackingConfiguration"]["CustomizedMetricSpecification"] == {
        "MetricName": "NetworkPacketsOut", "Namespace": "AWS/EC2", "Statistic": "Average", "Dimensions": group,
    }
    assert policies[5000000 * 60]["TargetTrackingConfiguration"]["CustomizedMetricSpecification"] == {
        "MetricName": "NetworkOut", "Namespace": "AWS/EC2", "Statistic": "Average", "Dimensions": group,
    }
    assert policies[60]["TargetTrackingConfiguration"]["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "ASGAverageCPUUtilization"}
    # Scale-in stays on: the terminating hook drains the relay first.
    assert all(not p["TargetTrackingConfiguration"].get("DisableScaleIn", False) for p in policies.values())
    assert set(policies) == {617, 20000 * 300, 5000000 * 60, 60}


def test_default_allocation_target_is_80_percent_of_the_quota_below_the_ports():
    """Defaults: 16384 relay ports, totalQuota 10000 (lower) -> 8000; ~24 allocations per relaying BBB viewer."""
    template = fleets("scalable")
    targets = {p["Properties"]["TargetTrackingConfiguration"].get("TargetValue")
               for p in resources(template, "AWS::AutoScaling::ScalingPolicy", "Turn").values()}
    assert targets == {8000, 30000 * 300, 9600000 * 60, 60}


def test_terminating_and_launching_hooks_are_wired_to_the_turn_group():
    template = fleets("scalable")
    group_id, _ = one(template, "AWS::AutoScaling::AutoScalingGroup", "Turn")
    hooks = [h["Properties"] for h in resources(template, "AWS::AutoScaling::LifecycleHook").values()
             if h["Properties"]["AutoScalingGroupName"] == {"Ref": group_id}]
    assert sorted(h["LifecycleTransition"] for h in hooks) == [
        "autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"]


def test_alarm_pages_the_operator_when_no_turn_instance_passes_its_probe():
    template = fleets("scalable")
    alarm = props(template, "AWS::CloudWatch::Alarm", "NoHealthyInstance")
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "breaching"
    assert all(mentions_output(a, "bbb-shared", "OperatorTopic") for a in alarm["AlarmActions"])
    metrics = {m["Id"]: m for m in alarm["Metrics"]}
    assert metrics["unhealthy"]["MetricStat"]["Metric"]["MetricName"] == "UnhealthyTurnInstances"
    assert metrics["inService"]["MetricStat"]["Metric"]["MetricName"] == "GroupInServiceInstances"


# --- IAM ---------------------------------------------------------------------------------------------------


def test_turn_role_reads_only_the_turn_secret(custom):
    template = custom
    (statement,) = statements_with(template, "Turn", "secretsmanager:GetSecretValue")
    # DescribeSecret: the secret sync reads the staging labels of the rotation (docs/host-contract.md)
    assert actions_of_one(statement) == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"]
    (resource,) = as_list(statement["Resource"])
    assert mentions_output(resource, "uni-x-shared", "TurnSecret")


def test_turn_role_downloads_exactly_the_wheel_and_its_bootstrap_bundle(custom):
    template = custom
    (statement,) = statements_with(template, "Turn", "s3:GetObject")
    assert statement["Action"] == "s3:GetObject"
    keys = sorted(r["Fn::Join"][1][-1].lstrip("/") for r in as_list(statement["Resource"]))
    env = params_env(user_data(template, "Turn"))
    assert keys == sorted([env["RELAY_WHEEL_KEY"], env["BUNDLE_KEY"]])
    assert keys[0].endswith((".tar", ".whl")) and keys[1].endswith((".tar", ".whl"))


def test_turn_role_writes_metrics_only_into_its_namespace_and_tags_only_itself(custom):
    template = custom
    (metrics,) = statements_with(template, "Turn", "cloudwatch:PutMetricData")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "BBBOnAWS/uni-x"}}
    (tags,) = statements_with(template, "Turn", "ec2:CreateTags")
    assert tags["Action"] == "ec2:CreateTags"
    assert tags["Condition"] == {
        "StringEquals": {"aws:ARN": "${ec2:SourceInstanceARN}", "ec2:ResourceTag/bbb-on-aws:environment": "uni-x"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["bbb-on-aws:ready"]},
    }
    assert json.dumps(tags["Resource"]).endswith(':instance/*"]]}')


def test_turn_role_has_nothing_beyond_its_documented_actions(custom):
    template = custom
    allowed = {
        "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "cloudwatch:PutMetricData",
        "ec2:CreateTags", "ec2:DescribeTags", "ec2:DescribeInstances", "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",  # the secret sync reads the rotation's staging labels
        "s3:GetObject", "ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
        "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
        "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
    }
    granted = {a for s in statements(template, "Turn/HostRole") for a in actions_of_one(s)}
    assert granted == allowed
    assert all(s["Effect"] == "Allow" and "*" not in "".join(actions_of_one(s))
               for s in statements(template, "Turn/HostRole"))
    role = props(template, "AWS::IAM::Role", "Turn/HostRole")
    assert "ManagedPolicyArns" not in role


def actions_of_one(statement):
    return as_list(statement["Action"])


# --- User data ---------------------------------------------------------------------------------------------


def test_user_data_carries_the_configuration_and_secret_arns_never_a_secret(custom):
    template = custom
    text = user_data(template, "Turn")
    env = params_env(text)
    assert env["ROLE"] == "turn" and env["ENV_NAME"] == "uni-x" and env["DOMAIN"] == "meet.example.com"
    assert (env["MIN_PORT"], env["MAX_PORT"], env["TOTAL_QUOTA"], env["USER_QUOTA"]) == ("40000", "45000",
                                                                                           "1234", "7")
    assert env["DRAIN_TIMEOUT_SECONDS"] == str(45 * 60)
    assert env["METRICS_NAMESPACE"] == "BBBOnAWS/uni-x"
    assert env["RELAY_WHEEL_FILENAME"].startswith("bbb_turn_relay-") and env["RELAY_WHEEL_FILENAME"].endswith(
        "-cp310-abi3-linux_x86_64.whl")  # the compiled packet path, for the hosts' Python 3.10 and up
    assert "PublishOutputRefTurnSecret" in env["TURN_SECRET_ARN"]
    # No value of a secret, no dynamic reference that CloudFormation would resolve into the template.
    assert "resolve:secretsmanager" not in json.dumps(template)
    assert "SecretString" not in text
