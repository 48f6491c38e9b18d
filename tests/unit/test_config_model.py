"""The configuration model: defaults, overrides, and one test per class of operator mistake.

Each bad value must fail before any construct is built, with a message that names the key, shows the bad
value and says what is allowed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import contract
from settings import ConfigError, fargate_pair_ok, load_config, parameters

ROOT = Path(__file__).resolve().parents[2]
BASE = json.loads((ROOT / "cdk.json").read_text())["context"]["deployment"]


def ctx(**changes: Any) -> dict[str, Any]:
    section = copy.deepcopy(BASE)
    for path, value in changes.items():
        node = section
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if value is _DELETE:
            node.pop(leaf)
        else:
            node[leaf] = value
    return {"deployment": section}


_DELETE = object()


def problems(**changes: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(ctx(**changes))
    return info.value.problems


def one_problem(**changes: Any) -> str:
    found = problems(**changes)
    assert len(found) == 1, found
    return found[0]


def test_cdk_json_is_valid_and_uses_documented_defaults():
    config = load_config(ctx())
    assert config.environment.type == "scalable"
    assert config.network.availability_zones == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    assert config.names.turn == "turn.bbb.example.com"


def test_minimal_section_gets_defaults_for_everything_optional():
    minimal = {"deployment": {"operatorEmail": "a@b.org", "domain": {
        "hostedZoneId": "Z1ABC", "hostedZoneName": "b.org", "name": "meet.b.org"}}}
    config = load_config(minimal)
    assert config.bbb.instance_type == "c5a.2xlarge" and config.turn.min_instances == 1


@pytest.mark.parametrize(
    ("stage", "nat", "retention", "production_like"),
    [("dev", 1, 7, False), ("stage", 3, 90, True), ("prod", 3, 365, True)],
)
def test_stage_rules(stage, nat, retention, production_like):
    config = load_config(ctx(**{"environment.stage": stage}))
    assert (config.nat_gateways, config.log_retention_days, config.is_production_like) == (
        nat, retention, production_like)


def test_malformed_cidr_names_key_and_value():
    msg = one_problem(**{"network.vpcCidr": "10.1.0.0/33"})
    assert msg.startswith("deployment.network.vpcCidr: '10.1.0.0/33'") and "10.1.0.0/16" in msg


def test_cidr_with_host_bits_is_rejected():
    msg = one_problem(**{"network.databaseSubnets": ["10.1.64.1/24", "10.1.65.0/24", "10.1.66.0/24"]})
    assert "deployment.network.databaseSubnets[0]" in msg and "10.1.64.1/24" in msg


def test_overlapping_subnets():
    msg = one_problem(**{"network.applicationSubnets": ["10.1.16.0/20", "10.1.4.0/23", "10.1.48.0/20"]})
    assert "deployment.network.applicationSubnets[1]" in msg and "overlaps" in msg
    assert "deployment.network.publicSubnets[1] '10.1.4.0/22'" in msg


A, P, D = (f"deployment.network.{tier}" for tier in ("applicationSubnets", "publicSubnets", "databaseSubnets"))


@pytest.mark.parametrize(
    ("tier", "cidrs", "message"),
    [
        pytest.param("applicationSubnets", ["10.1.16.0/20", "10.1.16.0/20", "10.1.48.0/20"],
                     f"{A}[1]: '10.1.16.0/20' overlaps {A}[0] '10.1.16.0/20'", id="identical-same-tier"),
        pytest.param("applicationSubnets", ["10.1.16.0/20", "10.1.24.0/21", "10.1.48.0/20"],
                     f"{A}[1]: '10.1.24.0/21' overlaps {A}[0] '10.1.16.0/20'", id="contained-same-tier"),
        pytest.param("databaseSubnets", ["10.1.64.0/24", "10.1.64.0/23", "10.1.66.0/24"],
                     f"{D}[1]: '10.1.64.0/23' overlaps {D}[0] '10.1.64.0/24'", id="containing-same-tier"),
        pytest.param("databaseSubnets", ["10.1.64.0/24", "10.1.65.0/24", "10.1.48.0/20"],
                     f"{D}[2]: '10.1.48.0/20' overlaps {A}[2] '10.1.48.0/20'", id="identical-cross-tier"),
        pytest.param("applicationSubnets", ["10.1.16.0/20", "10.1.4.0/23", "10.1.48.0/20"],
                     f"{A}[1]: '10.1.4.0/23' overlaps {P}[1] '10.1.4.0/22'", id="contained-cross-tier"),
    ],
)
def test_overlapping_subnets_of_every_shape_are_refused(tier, cidrs, message):
    assert one_problem(**{f"network.{tier}": cidrs}) == f"{message}; subnets must not overlap"


def test_adjacent_subnets_do_not_overlap():
    """Negative control: touching ranges (10.1.32.0/21 ends where 10.1.40.0/21 starts) are accepted."""
    config = load_config(ctx(**{"network.applicationSubnets": ["10.1.16.0/20", "10.1.32.0/21", "10.1.40.0/21"]}))
    assert config.network.application_subnets == ["10.1.16.0/20", "10.1.32.0/21", "10.1.40.0/21"]


def test_subnet_outside_vpc():
    msg = one_problem(**{"network.publicSubnets": ["10.1.0.0/22", "10.1.4.0/22", "10.9.8.0/22"]})
    assert "deployment.network.publicSubnets[2]: '10.9.8.0/22' is outside the VPC CIDR '10.1.0.0/16'" in msg


def test_subnet_list_length_differs_from_az_count():
    msg = one_problem(**{"network.databaseSubnets": ["10.1.64.0/24", "10.1.65.0/24"]})
    assert msg.startswith("deployment.network.databaseSubnets: 2 CIDR(s) for 3 availability zone(s)")


def test_availability_zone_outside_region():
    msg = one_problem(**{"network.availabilityZones": ["eu-west-1a", "eu-west-1b", "us-east-1c"]})
    assert "deployment.network.availabilityZones[2]: 'us-east-1c' is not a zone of region 'eu-west-1'" in msg


@pytest.mark.parametrize(
    ("section", "counts", "expected"),
    [
        ("bbb", {"minInstances": 3, "desiredInstances": 2, "maxInstances": 5}, "minInstances=3, desiredInstances=2"),
        ("turn", {"minInstances": 1, "desiredInstances": 5, "maxInstances": 4}, "desiredInstances=5, maxInstances=4"),
        ("frontend", {"minInstances": 2, "desiredInstances": 1, "maxInstances": 4}, "minInstances=2"),
    ],
)
def test_group_counts_out_of_order(section, counts, expected):
    msg = one_problem(**{f"{section}.{k}": v for k, v in counts.items()})
    assert msg.startswith(f"deployment.{section}:") and expected in msg


def test_negative_count_is_rejected_by_range():
    msg = one_problem(**{"bbb.minInstances": -1})
    assert msg == "deployment.bbb.minInstances: -1 must be at least 0"


@pytest.mark.parametrize(("key", "value"), [("environment.stage", "production"), ("environment.type", "cluster")])
def test_unknown_stage_or_type(key, value):
    msg = one_problem(**{key: value})
    assert msg.startswith(f"deployment.{key}: '{value}' is not allowed; use one of")


def test_malformed_email():
    assert one_problem(operatorEmail="ops@@example").startswith("deployment.operatorEmail: 'ops@@example' must be")


@pytest.mark.parametrize("bad", ["BBB.Example.com", "bbb..example.com", "-bbb.example.com", "bbb_example.com"])
def test_malformed_domain(bad):
    assert one_problem(**{"domain.name": bad}).startswith(f"deployment.domain.name: '{bad}' must be a lowercase DNS")


def test_domain_outside_hosted_zone():
    msg = one_problem(**{"domain.name": "bbb.example.org"})
    assert "'bbb.example.org' is not inside the hosted zone 'example.com'" in msg


def test_suffix_that_is_not_a_subdomain_is_outside_the_zone():
    assert "not inside the hosted zone" in one_problem(**{"domain.name": "notexample.com"})


def test_fargate_rejects_task_size():
    msg = one_problem(**{"frontend.capacity": "fargate", "frontend.greenlight": {
        "image": "bigbluebutton/greenlight:v3", "cpu": 256, "memoryMib": 4096}})
    assert "deployment.frontend.greenlight" in msg and "cpu=256, memoryMib=4096" in msg and "Fargate rejects" in msg


def test_fargate_pairs_follow_the_aws_table():
    assert fargate_pair_ok(256, 512) and fargate_pair_ok(1024, 8192) and fargate_pair_ok(8192, 20480)
    assert not fargate_pair_ok(256, 3072) and not fargate_pair_ok(1024, 1024) and not fargate_pair_ok(768, 2048)
    assert not fargate_pair_ok(8192, 18432)  # 8 vCPU goes in 4 GiB steps


def test_ec2_task_larger_than_instance():
    msg = one_problem(**{"frontend.instanceType": "t3a.medium", "frontend.greenlight": {
        "image": "bigbluebutton/greenlight:v3", "cpu": 512, "memoryMib": 4000}})
    assert "deployment.frontend.greenlight" in msg and "t3a.medium" in msg and "never place it" in msg


def test_unknown_key_suggests_the_right_one():
    section = ctx()
    section["deployment"]["turn"]["maxInstance"] = 3
    with pytest.raises(ConfigError) as info:
        load_config(section)
    assert info.value.problems == ["deployment.turn.maxInstance: unknown key; did you mean 'maxInstances'?"]


def test_unknown_key_without_near_match_lists_allowed_keys():
    section = ctx()
    section["deployment"]["cache"]["shards"] = 2
    with pytest.raises(ConfigError) as info:
        load_config(section)
    assert "deployment.cache.shards: unknown key; allowed keys: engine, engineVersion, nodeType" in info.value.problems


def test_wrong_type():
    assert one_problem(**{"bbb.dataVolumeGib": "100"}) == "deployment.bbb.dataVolumeGib: expected int, got '100'"
    assert one_problem(**{"clusterProxy.enabled": "yes"}).startswith("deployment.clusterProxy.enabled: expected bool")


def test_missing_required_value():
    assert one_problem(operatorEmail=_DELETE).startswith("deployment.operatorEmail: required")


def test_missing_section_names_the_context_key():
    with pytest.raises(ConfigError) as info:
        load_config({})
    assert "'deployment' is missing" in str(info.value)


def test_relay_port_range_checks():
    assert "holds 101 ports" in one_problem(**{"turn.relayPorts": {"min": 50000, "max": 50100}})
    assert "contains the listening ports 3478" in one_problem(**{"turn.relayPorts": {"min": 2000, "max": 9000}})
    assert "min=60000 > max=50000" in one_problem(**{"turn.relayPorts": {"min": 60000, "max": 50000}})


@pytest.mark.parametrize(("ports", "message"), [
    # Passed the old config rule and failed only in userdata/render.py, without naming the key.
    ({"min": 9000, "max": 12000}, f"contains the listening ports {contract.ADMIN_PORT} (the relay's admin endpoint)"),
    ({"min": 3000, "max": 4000}, f"{contract.TURN_PORT} (TURN/STUN (UDP and TCP)), {contract.PROXY_PORT}"),
    ({"min": 12000, "max": 60000}, "leaves fewer than 8192 ephemeral ports"),
    ({"min": 1023, "max": 60000}, "must be at least 1024"),
    ({"min": 40000, "max": 65536}, "must be at most 65535"),
])
def test_every_relay_port_problem_names_the_key_at_load(ports, message):
    """The one rule for the relay range runs when the settings load, before any construct or user data."""
    problem = one_problem(**{"turn.relayPorts": ports})
    assert problem.startswith("deployment.turn.relayPorts")
    assert message in problem


def test_a_range_that_passes_the_settings_renders():
    """What the settings accept, the user-data renderer (which checks bounds only) accepts too."""
    from userdata.render import local_port_range

    config = load_config(ctx(**{"turn.relayPorts": {"min": 20000, "max": 40000}}))
    ports = config.turn.relay_ports
    assert local_port_range(ports.min, ports.max) == (40001, 65535)


def test_serverless_capacity_steps():
    assert "steps of 0.5" in one_problem(**{"database.serverlessMaxAcu": 4.2})


def test_every_problem_is_reported_at_once():
    found = problems(**{"environment.stage": "qa", "operatorEmail": "x", "bbb.rootVolumeGib": 1})
    assert len(found) == 3
    assert {p.split(":")[0] for p in found} == {
        "deployment.environment.stage", "deployment.operatorEmail", "deployment.bbb.rootVolumeGib"}


def test_command_line_overrides_apply_to_single_values():
    context = ctx()
    context["deployment.environment.stage"] = "prod"  # cdk synth -c deployment.environment.stage=prod
    context["deployment.turn.maxInstances"] = "6"  # -c values arrive as strings
    config = load_config(context)
    assert config.environment.stage == "prod" and config.turn.max_instances == 6


def test_bad_override_is_reported_like_any_value():
    context = ctx()
    context["deployment.bbb.maxInstances"] = "many"
    with pytest.raises(ConfigError) as info:
        load_config(context)
    assert info.value.problems == ["deployment.bbb.maxInstances: expected int, got 'many'"]


def test_readme_parameter_table_matches_the_model():
    """Every parameter of the model is documented in the README with its default, and nothing else is."""
    readme = (ROOT / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        if line.startswith("| `deployment."):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1].strip("`")
    expected = {key: default for key, default, _ in parameters()}
    assert rows == expected


def test_turn_drain_longer_than_a_lifecycle_hook_can_wait():
    assert one_problem(**{"turn.drainMaxMinutes": 2880}) == "deployment.turn.drainMaxMinutes: 2880 must be at most 2820"


def test_cluster_proxy_needs_the_scalable_shape():
    msg = one_problem(**{"environment.type": "single", "clusterProxy.enabled": True})
    assert msg.startswith("deployment.clusterProxy.enabled: the cluster proxy fronts a fleet of BBB servers")
    assert "deployment.environment.type 'scalable'" in msg


def test_bbb_install_pin_must_be_a_sha256():
    assert "64 lowercase hex digits" in one_problem(**{"bbb.installSha256": "abc"})
    config = load_config(ctx(**{"bbb.installSha256": "a" * 64}))
    assert config.bbb.install_sha256 == "a" * 64


def test_fleet_user_quota_default_is_the_relays():
    """One number sized once (relay/config/model.py has BBB's arithmetic): the fleet's default
    turn.userQuota and cdk.json's value are the relay's own default (issue 15 case 11)."""
    from relay.config import RelayConfig
    from settings.model import Turn

    turn = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]["deployment"]["turn"]
    assert Turn().user_quota == RelayConfig().user_quota == turn["userQuota"] >= 90


def test_domain_too_long_for_the_turn_realm():
    """The fleet's realm is turn.<domain>; the relay refuses realms over its MAX_REALM_LENGTH (issue 15
    case 6), so synth refuses the domain first, and the two limits are the same number."""
    from relay.config.model import MAX_REALM_LENGTH
    from settings.rules import TURN_REALM_MAX

    assert TURN_REALM_MAX == MAX_REALM_LENGTH
    labels = TURN_REALM_MAX - len("turn.") - len(".b.org") + 1  # characters in front of .b.org: one too many
    name = ("m" * 35 + "." + "n" * (labels - 36)) + ".b.org"
    msg = one_problem(**{"domain.name": name, "domain.hostedZoneName": "b.org"})
    assert msg.startswith("deployment.domain.name:") and "at most 80" in msg and "use a domain of at most 75" in msg
    assert len("turn." + name) == 81
    assert load_config(ctx(**{"domain.name": name[1:], "domain.hostedZoneName": "b.org"}))
@pytest.mark.parametrize(
    ("stage", "rules"),
    [("dev", (False, 7, 0)), ("stage", (True, 14, 90)), ("prod", (True, 35, 365))],
)
def test_backup_rules_are_the_stages_own(stage, rules):
    config = load_config(ctx(**{"environment.stage": stage}))
    chosen = config.backup_rules
    assert (chosen.enabled, chosen.daily_retention_days, chosen.monthly_retention_days) == rules


def test_a_stage_left_out_of_cdk_json_keeps_its_own_defaults():
    config = load_config(ctx(**{"backup": {"prod": {"dailyRetentionDays": 60}}, "environment.stage": "dev"}))
    assert config.backup.dev.enabled is False and config.backup.stage.monthly_retention_days == 90
    assert (config.backup.prod.daily_retention_days, config.backup.prod.monthly_retention_days) == (60, 365)


def test_backup_mistakes_name_the_key():
    assert one_problem(**{"backup.stage.monthlyRetentionDays": 7}).startswith(
        "deployment.backup.stage.monthlyRetentionDays: 7 would delete a monthly backup before the next one exists")
    assert one_problem(**{"backup.prod.dailyRetentionDays": 0}).startswith("deployment.backup.prod.dailyRetentionDays")
    assert one_problem(**{"backup.dev.enabled": "no"}).startswith("deployment.backup.dev.enabled: expected bool")


def test_rollout_mistakes_name_the_key():
    msg = one_problem(**{"bbb.rollout": {"minHealthyPercent": 20, "batchPercent": 50}})
    assert msg.startswith("deployment.bbb.rollout: minHealthyPercent=20 + batchPercent=50 = 70; instance refresh")
    assert one_problem(**{"turn.rollout.batchPercent": 0}).startswith("deployment.turn.rollout.batchPercent")
    assert one_problem(**{"turn.rollout.minHealthyPercent": 101}).startswith(
        "deployment.turn.rollout.minHealthyPercent")
