"""The optional cluster proxy (seed 001): off by default; when on, an ALB and private nginx hosts."""

from __future__ import annotations

import pytest

from tests.infra.fleets_support import (
    as_list,
    egress,
    fleets,
    ingress,
    one,
    params_env,
    props,
    resources,
    statements,
    user_data,
)
from tests.infra.test_fleets_turn import CUSTOM


@pytest.fixture(scope="module")
def custom():
    return fleets("scalable", "dev", **CUSTOM)


def test_off_by_default():
    template = fleets("scalable")
    assert resources(template, "AWS::AutoScaling::AutoScalingGroup", "ClusterProxy") == {}
    assert resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer", "ClusterProxy") == {}
    names = {r["Properties"]["Name"] for r in resources(template, "AWS::Route53::RecordSet").values()}
    assert "bbb-proxy.bbb.example.com." not in names


def test_alias_points_at_the_proxys_own_https_load_balancer(custom):
    alb_id, alb = one(custom, "AWS::ElasticLoadBalancingV2::LoadBalancer", "ClusterProxy")
    assert alb["Properties"]["Type"] == "application" and alb["Properties"]["Scheme"] == "internet-facing"
    record = props(custom, "AWS::Route53::RecordSet", "ClusterProxy")
    assert (record["Name"], record["Type"]) == ("bbb-proxy.meet.example.com.", "A")
    assert record["AliasTarget"]["HostedZoneId"] == {"Fn::GetAtt": [alb_id, "CanonicalHostedZoneID"]}
    rule = props(custom, "AWS::ElasticLoadBalancingV2::ListenerRule", "ClusterProxy")
    assert rule["Conditions"] == [{"Field": "host-header", "HostHeaderConfig": {"Values": [
        "bbb-proxy.meet.example.com"]}}]
    target_group_id, target_group = one(custom, "AWS::ElasticLoadBalancingV2::TargetGroup", "ClusterProxy")
    assert rule["Actions"] == [{"Type": "forward", "TargetGroupArn": {"Ref": target_group_id}}]
    assert target_group["Properties"]["HealthCheckPath"] == "/healthz"


def test_proxy_hosts_sit_in_private_subnets_and_only_talk_to_their_alb_and_https(custom):
    data = props(custom, "AWS::EC2::LaunchTemplate", "ClusterProxy")["LaunchTemplateData"]
    assert data["NetworkInterfaces"][0]["AssociatePublicIpAddress"] is False
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    group = props(custom, "AWS::AutoScaling::AutoScalingGroup", "ClusterProxy")
    assert all("applicationSubnet" in str(s) for s in group["VPCZoneIdentifier"])
    assert {"Key": "bbb-on-aws:role", "Value": "proxy", "PropagateAtLaunch": True} in group["Tags"]
    hosts, _ = one(custom, "AWS::EC2::SecurityGroup", "ClusterProxy/SecurityGroup")
    alb, _ = one(custom, "AWS::EC2::SecurityGroup", "LoadBalancer/SecurityGroup")
    assert ingress(custom, hosts) == {("tcp", 80, 80, f"sg:{alb}")}
    assert egress(custom, hosts) == {("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 80, 80, "0.0.0.0/0")}


def test_proxy_role_lists_instances_and_reads_no_secret(custom):
    granted = {a for s in statements(custom, "ClusterProxy/HostRole") for a in as_list(s["Action"])}
    assert "ec2:DescribeInstances" in granted
    assert not any(a.startswith(("secretsmanager:", "elasticfilesystem:", "iam:")) for a in granted)


def test_proxy_user_data_names_the_deployment(custom):
    env = params_env(user_data(custom, "ClusterProxy"))
    assert (env["ROLE"], env["ENV_NAME"], env["DOMAIN"]) == ("proxy", "uni-x", "meet.example.com")
    assert "TURN_SECRET_ARN" not in env and "BBB_SECRET_ARN" not in env
