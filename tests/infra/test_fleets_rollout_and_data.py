"""Day two in the fleets stack: every fleet rolls onto a changed launch template with the cdk.json settings,
the single host gets its data volume step and time for a move, and bad roll-out settings fail the synth."""

from __future__ import annotations

from typing import Any

import pytest

from settings import ConfigError
from tests.infra.fleets_support import fleets, one, resources

GROUPS = {"scalable": ("Turn", "Bbb"), "single": ("Turn", "Single")}


def env_of(template: dict[str, Any], under: str, handler: str) -> dict[str, str]:
    [function] = [
        f["Properties"]
        for f in resources(template, "AWS::Lambda::Function", under).values()
        if f["Properties"].get("Handler") == handler
    ]
    return function["Environment"]["Variables"]


@pytest.mark.parametrize("shape", ["scalable", "single"])
def test_every_fleet_rolls_onto_its_group_launch_template_version(shape: str) -> None:
    template = fleets(shape)
    rollouts = resources(template, "Custom::BbbOnAwsFleetRollout")
    assert len(rollouts) == 2
    for host in GROUPS[shape]:
        group_id, group = one(template, "AWS::AutoScaling::AutoScalingGroup", host)
        [rollout] = [r["Properties"] for r in rollouts.values() if r["Properties"]["Group"] == {"Ref": group_id}]
        # the very version the group launches: a template change changes this property, and only that starts one
        assert rollout["LaunchTemplateVersion"] == group["Properties"]["LaunchTemplate"]["Version"]
        settings = env_of(template, f"{host}Rollout", "fleet_rollout.index.handler")
        expected = ("0", "100") if host == "Single" else ("100", "150")
        assert (settings["ROLLOUT_MIN_HEALTHY_PERCENT"], settings["ROLLOUT_MAX_HEALTHY_PERCENT"]) == expected
        assert settings["AUTO_SCALING_GROUP_NAME"] == {"Ref": group_id}
        alarm = settings["ROLLOUT_ALARMS"]["Ref"]
        assert template["Resources"][alarm]["Properties"]["MetricName"] == "LaunchAbandoned"


def test_rollout_settings_come_from_cdk_json() -> None:
    template = fleets("scalable", **{"bbb.rollout": {"minHealthyPercent": 90, "batchPercent": 30}})
    settings = env_of(template, "BbbRollout", "fleet_rollout.index.handler")
    assert (settings["ROLLOUT_MIN_HEALTHY_PERCENT"], settings["ROLLOUT_MAX_HEALTHY_PERCENT"]) == ("90", "120")


def test_bad_rollout_setting_fails_the_synth_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"deployment\.turn\.rollout: minHealthyPercent=10 \+ batchPercent=10"):
        fleets("scalable", **{"turn.rollout": {"minHealthyPercent": 10, "batchPercent": 10}})


def test_single_host_attaches_its_data_volume_before_waiting_for_the_host() -> None:
    template = fleets("single")
    settings = env_of(template, "SingleLifecycle", "single_data.index.handler")
    assert settings["DATA_VOLUME_GIB"] == "100" and settings["DATA_WAIT_SECONDS"] == "900"
    machines = resources(template, "AWS::StepFunctions::StateMachine", "SingleLifecycle")
    [launch] = [m["Properties"] for lid, m in machines.items() if "Launch" in lid]
    definition = str(launch["DefinitionString"])
    assert '"AttachData"' in definition and '"DataAttached?"' in definition
    assert '"TimeoutSeconds":9000' in definition.replace(" ", "")  # 2 h launch maximum + 30 min
    assert "single_data" not in str(fleets("scalable"))  # the fleet's volumes die with their instances


def test_data_volume_function_may_only_touch_this_environments_data() -> None:
    template = fleets("single")
    [policy] = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(template, "AWS::IAM::Policy", "SingleLifecycle").values()
        if "DataVolumeFunction" in str(p["Properties"]["Roles"])
    ]
    mutating = [
        s
        for s in policy
        if any(a in str(s["Action"]) for a in ("ec2:Create", "ec2:Attach", "ec2:Delete", "autoscaling:"))
    ]
    assert mutating
    for statement in mutating:
        if statement["Action"] == "ec2:CreateTags" and "ec2:CreateAction" in str(statement.get("Condition")):
            continue  # tags only inside CreateVolume/CreateSnapshot, whose own statements need the tags
        assert "bbb-on-aws:" in str(statement.get("Condition")) or "autoScalingGroupName" in str(
            statement["Resource"]
        ), statement
