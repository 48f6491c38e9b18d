"""Fine-grained assertions on the network stack: subnets from the config, NAT per stage, flow logs."""

from __future__ import annotations

import pytest

from tests.infra.synth import synth


def resources(template, kind):
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


def test_subnets_use_the_configured_cidrs_and_zones():
    result = synth("scalable", "dev")
    net = result.config.network
    found = resources(result.template("network"), "AWS::EC2::Subnet")
    subnets = {(s["CidrBlock"], s["AvailabilityZone"]) for s in found}
    expected = {
        (cidr, az)
        for tier in (net.public_subnets, net.application_subnets, net.database_subnets)
        for cidr, az in zip(tier, net.availability_zones, strict=True)
    }
    assert subnets == expected


@pytest.mark.parametrize(("stage", "nat"), [("dev", 1), ("stage", 3), ("prod", 3)])
def test_nat_gateways_follow_the_stage(stage, nat):
    assert len(resources(synth("scalable", stage).template("network"), "AWS::EC2::NatGateway")) == nat


def test_single_shape_has_only_public_subnets_and_no_nat():
    template = synth("single", "prod").template("network")
    assert resources(template, "AWS::EC2::NatGateway") == []
    assert len(resources(template, "AWS::EC2::Subnet")) == 3


def test_public_subnets_do_not_hand_out_public_ips():
    for subnet in resources(synth("scalable", "dev").template("network"), "AWS::EC2::Subnet"):
        assert subnet.get("MapPublicIpOnLaunch") is not True


@pytest.mark.parametrize(("stage", "days"), [("dev", 7), ("prod", 365)])
def test_flow_logs_capture_all_traffic_with_stage_retention(stage, days):
    template = synth("scalable", stage).template("network")
    (flow_log,) = resources(template, "AWS::EC2::FlowLog")
    assert flow_log["TrafficType"] == "ALL" and flow_log["ResourceType"] == "VPC"
    (group,) = resources(template, "AWS::Logs::LogGroup")
    assert group["RetentionInDays"] == days


def test_default_security_group_is_restricted():
    template = synth("scalable", "dev").template("network")
    assert any(r["Type"] == "Custom::VpcRestrictDefaultSG" for r in template["Resources"].values())
