"""BigBlueButton hosts: the scalable fleet and the single-shape host (launch template, ports, EFS, scaling, IAM)."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager

from cdk_constructs.bbb_fleet import BbbFleet, Spool
from cdk_constructs.fleet_host import HostLogs, HostRole
from tests.infra.fleets_support import (
    Inputs,
    as_list,
    config_for,
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
from tests.infra.test_fleets_turn import CUSTOM

HOSTS = [("scalable", "Bbb"), ("single", "Single")]


@pytest.fixture(scope="module")
def custom():
    return fleets("scalable", "dev", **CUSTOM)


@pytest.mark.parametrize(("shape", "host"), HOSTS)
def test_launch_template_has_imdsv2_encrypted_root_and_data_volume(shape, host):
    data = props(fleets(shape), "AWS::EC2::LaunchTemplate", host)["LaunchTemplateData"]
    assert data["MetadataOptions"] == {"HttpEndpoint": "enabled", "HttpTokens": "required",
                                       "HttpPutResponseHopLimit": 1, "InstanceMetadataTags": "enabled"}
    root = {"DeviceName": "/dev/sda1", "Ebs": {"DeleteOnTermination": True, "Encrypted": True, "VolumeSize": 40,
                                               "VolumeType": "gp3"}}
    data_volume = {"DeviceName": "/dev/sdf", "Ebs": {"DeleteOnTermination": True, "Encrypted": True,
                                                     "VolumeSize": 100, "VolumeType": "gp3"}}
    # The single host's data volume outlives its instance: the launch automation attaches it, not the template.
    assert data["BlockDeviceMappings"] == ([root] if shape == "single" else [root, data_volume])
    assert data["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is True
    assert data["InstanceType"] == "c5a.2xlarge"
    assert data["ImageId"]["Ref"].startswith("SsmParameterValueawsservicecanonicalubuntuserver2204")


def test_volume_sizes_follow_the_configuration(custom):
    devices = props(custom, "AWS::EC2::LaunchTemplate", "Bbb")["LaunchTemplateData"]["BlockDeviceMappings"]
    assert [(d["DeviceName"], d["Ebs"]["VolumeSize"]) for d in devices] == [("/dev/sda1", 60), ("/dev/sdf", 250)]


@pytest.mark.parametrize(("shape", "host"), HOSTS)
def test_security_group_opens_exactly_what_bbb_30_documents(shape, host):
    template = fleets(shape)
    (group_id,) = resources(template, "AWS::EC2::SecurityGroup", host)
    assert ingress(template, group_id) == {
        ("tcp", 80, 80, "0.0.0.0/0"),
        ("tcp", 443, 443, "0.0.0.0/0"),
        ("udp", 16384, 32768, "0.0.0.0/0"),
    }
    assert all(rule["Description"] for rule in template["Resources"][group_id]["Properties"]["SecurityGroupIngress"])


def test_fleet_group_sizes_tags_and_public_subnets(custom):
    group = one(custom, "AWS::AutoScaling::AutoScalingGroup", "Bbb")[1]
    p = group["Properties"]
    assert (p["MinSize"], p["DesiredCapacity"], p["MaxSize"]) == ("2", "2", "9")
    assert {"Key": "bbb-on-aws:role", "Value": "bbb", "PropagateAtLaunch": True} in p["Tags"]
    assert {"Key": "bbb-on-aws:environment", "Value": "uni-x", "PropagateAtLaunch": True} in p["Tags"]
    assert all(mentions_output(s, "uni-x-network", "publicSubnet") for s in p["VPCZoneIdentifier"])
    assert group["UpdatePolicy"] == {"AutoScalingScheduledAction": {"IgnoreUnmodifiedGroupSizeProperties": True}}
    assert p["DefaultInstanceWarmup"] == 1800


def test_fleet_scales_on_load_per_server_with_scale_in_behind_the_drain(custom):
    group_id, _ = one(custom, "AWS::AutoScaling::AutoScalingGroup", "Bbb")
    (policy,) = [p["Properties"] for p in resources(custom, "AWS::AutoScaling::ScalingPolicy", "Bbb").values()]
    tracking = policy["TargetTrackingConfiguration"]
    assert tracking["CustomizedMetricSpecification"] == {
        "MetricName": "Load", "Namespace": "BBBOnAWS/uni-x", "Statistic": "Average",
        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": {"Ref": group_id}}],
    }
    assert tracking["TargetValue"] == 300  # loadCapacity c5a.2xlarge 500 x loadTargetPercent 60 %
    assert policy["EstimatedInstanceWarmup"] >= 1800
    # Scale-in is on only because the drain is wired to this group's terminating hook.
    assert tracking["DisableScaleIn"] is False
    hooks = [h["Properties"] for h in resources(custom, "AWS::AutoScaling::LifecycleHook").values()
             if h["Properties"]["AutoScalingGroupName"] == {"Ref": group_id}]
    assert sorted(h["LifecycleTransition"] for h in hooks) == [  # one each: a second terminating hook would race
        "autoscaling:EC2_INSTANCE_LAUNCHING", "autoscaling:EC2_INSTANCE_TERMINATING"]  # fmt: skip


def test_default_load_target_is_70_percent_of_a_c5a_2xlarge():
    (policy,) = resources(fleets("scalable"), "AWS::AutoScaling::ScalingPolicy", "Bbb").values()
    assert policy["Properties"]["TargetTrackingConfiguration"]["TargetValue"] == 280  # 400 x 70 %


def test_timetable_entries_become_scheduled_actions_in_their_time_zone(custom):
    group_id, _ = one(custom, "AWS::AutoScaling::AutoScalingGroup", "Bbb")
    actions = sorted((a["Properties"] for a in resources(custom, "AWS::AutoScaling::ScheduledAction").values()),
                     key=lambda a: a["Recurrence"])
    assert actions == [
        {"AutoScalingGroupName": {"Ref": group_id}, "Recurrence": "0 17 * * 1-5", "TimeZone": "Europe/Berlin",
         "MinSize": 2, "DesiredCapacity": 2},
        {"AutoScalingGroupName": {"Ref": group_id}, "Recurrence": "30 7 * * MON-FRI", "TimeZone": "Europe/Berlin",
         "MinSize": 6},
    ]
    assert resources(fleets("scalable"), "AWS::AutoScaling::ScheduledAction") == {}  # default: no timetable


def test_least_loaded_termination_policy_is_the_groups_only_policy_and_auto_scaling_may_invoke_it():
    template = fleets("scalable")
    _, group = one(template, "AWS::AutoScaling::AutoScalingGroup", "Bbb")
    function_id, function = one(template, "AWS::Lambda::Function", "Termination")
    assert group["Properties"]["TerminationPolicies"] == [{"Fn::GetAtt": [function_id, "Arn"]}]
    assert function["Properties"]["Handler"] == "bbb_termination.index.handler"
    assert function["Properties"]["Timeout"] == 2  # AWS: at most two seconds
    assert function["Properties"]["Environment"]["Variables"]["METRICS_NAMESPACE"] == "BBBOnAWS/bbb"
    permission = props(template, "AWS::Lambda::Permission", "Termination")
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert permission["Principal"] == {"Fn::Join": ["", [
        "arn:aws:iam::", {"Ref": "AWS::AccountId"},
        ":role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]]}
    (statement,) = statements_with(template, "Termination", "cloudwatch:GetMetricData")
    assert statement["Action"] == "cloudwatch:GetMetricData"
    # The single host has no choice to make: AWS's default policy stays.
    _, single = one(fleets("single"), "AWS::AutoScaling::AutoScalingGroup", "Single")
    assert "TerminationPolicies" not in single["Properties"]


def test_the_hosts_get_the_load_weights_in_cdk_json_terms(custom):
    values = params_env(user_data(custom, "Bbb"))
    assert json.loads(values["LOAD_WEIGHTS"]) == {
        "participant": 1.0, "voice": 1.0, "listener": 0.5, "webcam": 2.0, "webcamViewer": 0.1,
        "screenShareViewer": 0.05,
    }


@pytest.fixture(scope="module")
def harness():
    """A BBB fleet on its own, so its scaling can be wired with and without a drain."""
    config = config_for("scalable")
    app = cdk.App()
    inputs = Inputs(app, "Inputs", config=config)
    stack = cdk.Stack(app, "Fleet", env=cdk.Environment(region=config.environment.region))

    def fleet(name: str) -> BbbFleet:
        return BbbFleet(stack, name, bbb=config.bbb, deployment=config.deployment,
                        operator_email=config.operator_email, vpc=inputs.vpc, turn_secret=inputs.turn_secret,
                        bbb_secret=inputs.bbb_secret, cluster_proxy=False,
                        spool=Spool(file_system=inputs.file_system, access_point=inputs.spool))

    return stack, fleet


def test_without_a_drain_scale_in_stays_off(harness):
    stack, fleet = harness
    undrained = fleet("Undrained")
    undrained.scale_on_load(drained_by=None)
    assert undrained.scale_in_enabled is False
    tracking = stack.resolve(undrained.load_policy.node.default_child.target_tracking_configuration)
    assert tracking["disableScaleIn"] is True


def test_scale_in_needs_the_fleets_own_terminating_hook(harness):
    _, fleet = harness
    first, second = fleet("First"), fleet("Second")
    launching = first.group.add_lifecycle_hook(
        "Launching", lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_LAUNCHING)
    with pytest.raises(ValueError, match="terminating lifecycle hook of this fleet's own group"):
        first.scale_on_load(drained_by=launching)
    foreign = second.group.add_lifecycle_hook(
        "Terminating", lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING)
    with pytest.raises(ValueError, match="terminating lifecycle hook of this fleet's own group"):
        first.scale_on_load(drained_by=foreign)
    own = first.group.add_lifecycle_hook(
        "OwnTerminating", lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING)
    first.scale_on_load(drained_by=own)
    assert first.scale_in_enabled is True
    with pytest.raises(ValueError, match="already called"):
        first.scale_on_load(drained_by=own)


def test_fleet_mounts_only_the_spool_access_point_over_tls():
    template = fleets("scalable")
    (statement,) = statements_with(template, "Bbb", "elasticfilesystem:ClientMount")
    assert sorted(as_list(statement["Action"])) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert mentions_output(statement["Resource"], "bbb-data", r"GetAttRecordings[0-9A-F]+Arn")
    condition = statement["Condition"]
    assert condition["Bool"] == {"aws:SecureTransport": "true"}
    assert mentions_output(condition["StringEquals"]["elasticfilesystem:AccessPointArn"], "bbb-data", "Spool")


def test_nfs_is_opened_on_the_file_system_for_the_bbb_servers_only():
    template = fleets("scalable")
    (group_id,) = resources(template, "AWS::EC2::SecurityGroup", "Bbb")
    rules = [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
             if r["Properties"].get("SourceSecurityGroupId") == {"Fn::GetAtt": [group_id, "GroupId"]}]
    (rule,) = rules
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 2049, 2049)
    assert mentions_output(rule["GroupId"], "bbb-data", "SecurityGroup")


def test_bbb_role_reads_the_turn_and_api_secrets_and_the_fleet_certificate_only():
    template = fleets("scalable")
    (statement,) = statements_with(template, "Bbb", "secretsmanager:GetSecretValue")
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    resources_ = as_list(statement["Resource"])
    assert len(resources_) == 3
    assert any(mentions_output(r, "bbb-shared", "TurnSecret") for r in resources_)
    assert any(mentions_output(r, "bbb-shared", "BbbApiSecret") for r in resources_)
    assert not any(mentions_output(r, "bbb-shared", "ScaleliteSecret") for r in resources_)
    # The fleet certificate (cdk_constructs/certificates), under its CMK: decrypted through Secrets Manager only.
    secret_id, _ = one(template, "AWS::SecretsManager::Secret", "FleetCertificate/Certificate")
    assert {"Ref": secret_id} in resources_
    (decrypt,) = statements_with(template, "Bbb", "kms:Decrypt")
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == "secretsmanager.eu-west-1.amazonaws.com"


@pytest.mark.parametrize(("shape", "host"), HOSTS)
def test_bbb_role_has_nothing_beyond_its_documented_actions(shape, host):
    allowed = {
        "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams", "cloudwatch:PutMetricData",
        "ec2:CreateTags", "ec2:DescribeTags", "secretsmanager:GetSecretValue", "s3:GetObject",
        "ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel", "ec2messages:AcknowledgeMessage",
        "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint",
        "ec2messages:GetMessages", "ec2messages:SendReply",
    }
    if shape == "scalable":
        # kms:Decrypt: the fleet certificate's CMK, through Secrets Manager only.
        allowed |= {"elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite", "kms:Decrypt"}
    granted = {a for s in statements(fleets(shape), f"{host}/HostRole") for a in as_list(s["Action"])}
    assert granted == allowed


def test_secrets_under_a_customer_key_are_decrypted_only_through_secrets_manager():
    config = config_for("scalable")
    app = cdk.App()
    stack = cdk.Stack(app, "Keys", env=cdk.Environment(region="eu-west-1"))
    key = kms.Key(stack, "Key")
    secret = secretsmanager.Secret(stack, "Secret", encryption_key=key)
    plain = secretsmanager.Secret(stack, "Plain")
    logs = HostLogs(stack, "Logs", deployment=config.deployment)
    host = HostRole(stack, "Host", deployment=config.deployment, host_role="bbb", host_logs=logs)
    host.allow_secret_read(secret, plain)
    document = stack.resolve(host.role.node.find_child("DefaultPolicy").document)
    (decrypt,) = [s for s in document["Statement"] if s["Action"] == "kms:Decrypt"]
    assert decrypt["Resource"] == {"Fn::GetAtt": [stack.get_logical_id(key.node.default_child), "Arn"]}
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}


# --- The single shape --------------------------------------------------------------------------------------


def test_single_shape_runs_one_self_healing_host_and_the_turn_fleet():
    template = fleets("single", "prod")
    groups = {g["Metadata"]["aws:cdk:path"].split("/")[1]: g["Properties"]
              for g in resources(template, "AWS::AutoScaling::AutoScalingGroup").values()}
    assert set(groups) == {"Single", "Turn"}
    single = groups["Single"]
    assert (single["MinSize"], single["DesiredCapacity"], single["MaxSize"]) == ("1", "1", "1")
    assert {"Key": "bbb-on-aws:role", "Value": "single", "PropagateAtLaunch": True} in single["Tags"]
    # Nothing scales the single host; nothing of Scalelite or EFS is granted.
    assert resources(template, "AWS::AutoScaling::ScalingPolicy", "Single") == {}
    assert statements_with(template, "Single", "elasticfilesystem:ClientMount") == []


def test_single_shape_has_no_ecs_database_cache_or_scalelite():
    result_types = {r["Type"] for t in _all_templates("single") for r in t["Resources"].values()}
    forbidden = {"AWS::ECS::Cluster", "AWS::ECS::Service", "AWS::RDS::DBCluster", "AWS::RDS::DBInstance",
                 "AWS::ElastiCache::ReplicationGroup", "AWS::ElastiCache::CacheCluster", "AWS::EFS::FileSystem"}
    assert result_types & forbidden == set()


def _all_templates(shape):
    from tests.infra.synth import synth

    return synth(shape, "dev").templates().values()


@pytest.mark.parametrize(("shape", "host", "role"), [("scalable", "Bbb", "bbb"), ("single", "Single", "single")])
def test_user_data_names_the_role_secrets_and_spool_never_a_secret(shape, host, role):
    env = params_env(user_data(fleets(shape), host))
    assert env["ROLE"] == role and env["DOMAIN"] == "bbb.example.com"
    assert env["OPERATOR_EMAIL"] == "ops@example.com" and env["CLUSTER_PROXY"] == "0"
    assert "PublishOutputRefTurnSecret" in env["TURN_SECRET_ARN"]
    assert "PublishOutputRefBbbApiSecret" in env["BBB_SECRET_ARN"]
    if shape == "scalable":
        assert "PublishOutputRef" in env["SPOOL_FILE_SYSTEM_ID"] and "Spool" in env["SPOOL_ACCESS_POINT_ID"]
    else:
        assert "SPOOL_FILE_SYSTEM_ID" not in env


def test_cluster_proxy_setting_reaches_the_bbb_servers(custom):
    assert params_env(user_data(custom, "Bbb"))["CLUSTER_PROXY"] == "1"
