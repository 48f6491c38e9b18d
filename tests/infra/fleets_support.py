"""Helpers for the fleets tests: find resources by construct path, resolve user data, a stand-alone harness.

The deployment's own app (tests/infra/synth.py) is what almost every fleets test reads. The harness builds a
FleetsStack-free stack around one fleet construct for what the app cannot vary (e.g. a BBB fleet whose
drain is not wired).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_secretsmanager as secretsmanager

from settings import Config, load_config
from stacks.deployment import effective_context
from tests.infra.synth import deployment, synth

Template = dict[str, Any]


def fleets(shape: str = "scalable", stage: str = "dev", **changes: Any) -> Template:
    """The fleets stack's template of this deployment variant (synthesized once per test session)."""
    return synth(shape, stage, **changes).template("fleets")


def path_of(resource: dict[str, Any]) -> str:
    return resource.get("Metadata", {}).get("aws:cdk:path", "")


def resources(template: Template, kind: str, under: str = "") -> dict[str, dict[str, Any]]:
    """Logical id -> resource, of this type, whose construct path contains `/<under>/` (or anything)."""
    return {
        logical: resource for logical, resource in template["Resources"].items()
        if resource["Type"] == kind and (not under or f"/{under}/" in path_of(resource))
    }


def one(template: Template, kind: str, under: str = "") -> tuple[str, dict[str, Any]]:
    found = resources(template, kind, under)
    assert len(found) == 1, f"expected one {kind} under {under!r}, found {sorted(found)}"
    return next(iter(found.items()))


def props(template: Template, kind: str, under: str = "") -> dict[str, Any]:
    return one(template, kind, under)[1]["Properties"]


def render_token(value: Any) -> str:
    """A CloudFormation intrinsic as text, the way it reads in a test message (never a real value)."""
    if isinstance(value, str):
        return value
    return "{" + json.dumps(value, sort_keys=True) + "}"


def user_data(template: Template, under: str, placeholder: str | None = None) -> str:
    """The launch template's user data with every intrinsic replaced by its JSON (or `placeholder`)."""
    data = props(template, "AWS::EC2::LaunchTemplate", under)["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    if isinstance(data, str):
        return data
    separator, parts = data["Fn::Join"]
    assert separator == ""
    return "".join(p if isinstance(p, str) else (placeholder or render_token(p)) for p in parts)


def params_env(text: str) -> dict[str, str]:
    """The KEY=value lines the user-data stub writes into /etc/bbb-on-aws/params.env."""
    block = text.split("<<'BBB_ON_AWS_PARAMS'\n", 1)[1].split("\nBBB_ON_AWS_PARAMS\n", 1)[0]
    values = {}
    for line in block.splitlines():
        key, _, value = line.partition("=")
        values[key] = value[1:-1] if value.startswith("'") and value.endswith("'") else value
    return values


def ingress(template: Template, group_logical_id: str) -> set[tuple[str, int, int, str]]:
    """(protocol, from, to, source) of every inbound rule of a security group, inline or separate."""
    rules = set()
    group = template["Resources"][group_logical_id]["Properties"]
    for rule in group.get("SecurityGroupIngress", []):
        rules.add((rule["IpProtocol"], rule["FromPort"], rule["ToPort"], _source(rule)))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::EC2::SecurityGroupIngress" and _refers_to(resource["Properties"]["GroupId"],
                                                                               group_logical_id):
            rule = resource["Properties"]
            rules.add((rule["IpProtocol"], rule["FromPort"], rule["ToPort"], _source(rule)))
    return rules


def egress(template: Template, group_logical_id: str) -> set[tuple[str, int | None, int | None, str]]:
    rules = set()
    group = template["Resources"][group_logical_id]["Properties"]
    for rule in group.get("SecurityGroupEgress", []):
        rules.add((rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"), _destination(rule)))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::EC2::SecurityGroupEgress" and _refers_to(resource["Properties"]["GroupId"],
                                                                              group_logical_id):
            rule = resource["Properties"]
            rules.add((rule["IpProtocol"], rule.get("FromPort"), rule.get("ToPort"), _destination(rule)))
    return rules


def _refers_to(value: Any, logical_id: str) -> bool:
    return value in ({"Fn::GetAtt": [logical_id, "GroupId"]}, {"Ref": logical_id})


def _source(rule: dict[str, Any]) -> str:
    if "CidrIp" in rule:
        return rule["CidrIp"]
    return "sg:" + _group_name(rule["SourceSecurityGroupId"])


def _destination(rule: dict[str, Any]) -> str:
    if "CidrIp" in rule:
        return rule["CidrIp"]
    return "sg:" + _group_name(rule["DestinationSecurityGroupId"])


def _group_name(value: Any) -> str:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return value["Fn::GetAtt"][0]
    return render_token(value)


def statements(template: Template, under: str) -> list[dict[str, Any]]:
    """Every IAM statement of the role of the host construct `under` (its default policy)."""
    policies = resources(template, "AWS::IAM::Policy", under)
    found = [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert found, f"no IAM policy under {under!r}"
    return found


def actions_of(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def statements_with(template: Template, under: str, action: str) -> list[dict[str, Any]]:
    return [s for s in statements(template, under) if action in actions_of(s)]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def mentions_output(value: Any, stack: str, output_pattern: str) -> bool:
    """Whether `value` reads an output of `stack` whose name matches `output_pattern` (weak cross-stack refs)."""
    for node in walk(value):
        if isinstance(node, dict) and "Fn::GetStackOutput" in node:
            ref = node["Fn::GetStackOutput"]
            if ref["StackName"] == stack and re.search(output_pattern, ref["OutputName"]):
                return True
    return False


# --- harness ---------------------------------------------------------------------------------------------


def config_for(shape: str = "scalable", **changes: Any) -> Config:
    return load_config(effective_context({"deployment": deployment(**{"environment.type": shape, **changes})}))


class Inputs(cdk.Stack):
    """What a BBB fleet needs, made locally: a VPC, two secrets and a file system with a spool access point."""

    def __init__(self, scope: cdk.App, construct_id: str, *, config: Config) -> None:
        super().__init__(scope, construct_id, env=cdk.Environment(region=config.environment.region))
        self.vpc = ec2.Vpc(self, "Vpc", availability_zones=list(config.network.availability_zones),
                           nat_gateways=0, subnet_configuration=[
                               ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                               ec2.SubnetConfiguration(name="app", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
                           ])
        self.turn_secret = secretsmanager.Secret(self, "Turn")
        self.bbb_secret = secretsmanager.Secret(self, "BbbApi")
        self.file_system = efs.FileSystem(self, "FileSystem", vpc=self.vpc, encrypted=True,
                                          vpc_subnets=ec2.SubnetSelection(subnet_group_name="app"))
        self.spool = self.file_system.add_access_point("Spool", path="/spool")
