"""The scaling settings (docs/scaling.md): bbb.schedule, the load figure's weights and capacity, the TURN targets.
Every bad value fails before any construct exists, naming the key (and the schedule entry's index)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from settings import load_config
from settings.cron import cron_problem
from tests.unit.test_config_model import ctx, one_problem, problems

BERLIN = {"cron": "30 7 * * 1-5", "timezone": "Europe/Berlin", "minInstances": 3}


def schedule(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"bbb.schedule": list(entries), "bbb.maxInstances": 10}


def test_a_school_timetable_loads() -> None:
    config = load_config(ctx(**schedule(
        BERLIN,
        {"cron": "45 9,11 * * MON-FRI", "timezone": "Europe/Berlin", "desiredInstances": 4},
        {"cron": "*/15 6-8 * JAN-JUL,SEP-DEC 1-5", "timezone": "UTC", "minInstances": 2, "maxInstances": 12},
        {"cron": "0 17 * * 1-5", "timezone": "Europe/Berlin", "minInstances": 1, "desiredInstances": 1},
    )))
    first = config.bbb.schedule[0]
    assert (first.cron, first.timezone, first.min_instances, first.desired_instances) == (
        "30 7 * * 1-5", "Europe/Berlin", 3, None)
    assert len(config.bbb.schedule) == 4


@pytest.mark.parametrize(("cron", "message"), [
    ("30 7 * *", "has 4 field(s); use 5"),
    ("0 30 7 * * 1-5", "has 6 field(s)"),
    ("60 7 * * 1-5", "minute 60 is outside 0-59"),
    ("30 24 * * *", "hour 24 is outside 0-23"),
    ("30 7 0 * *", "day-of-month 0 is outside 1-31"),
    ("30 7 * 13 *", "month 13 is outside 1-12"),
    ("30 7 * * 8", "day-of-week 8 is outside 0-7"),
    ("30 7 * * MON-FRY", "day-of-week 'FRY' is not a number (0-7 or SUN-SAT)"),
    ("30 7 * * 5-1", "day-of-week range '5-1' runs backwards"),
    ("*/0 7 * * *", "minute step '0' must be a whole number of at least 1"),
    ("5/15 7 * * *", "minute '5/15' steps from a single value"),
    ("30 7 ? * MON", "day-of-month '?' is not a number"),
    ("30 7 * * 1,,5", "day-of-week '' is empty or malformed"),
])
def test_malformed_cron_names_the_entry_and_field(cron: str, message: str) -> None:
    found = one_problem(**schedule(BERLIN, BERLIN, {**BERLIN, "cron": cron}))
    assert found.startswith(f"deployment.bbb.schedule[2].cron: '{cron}' ")
    assert message in found


def test_the_documented_school_day_loads_as_written() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "scaling.md").read_text()
    block = doc.split("<!-- schedule-example -->\n```json\n", 1)[1].split("```", 1)[0]
    example = json.loads(block)
    config = load_config(ctx(**{f"bbb.{key}": value for key, value in example.items()}))
    assert [(e.cron, e.min_instances) for e in config.bbb.schedule] == [
        ("15 7 * * 1-5", 6), ("0 13 * * 1-5", 4), ("30 16 * * 1-5", 1)]


def test_cron_accepts_what_unix_cron_allows() -> None:
    for good in ("0 0 1 1 0", "59 23 31 12 7", "0-59/5 */2 1-15 FEB-MAR sun-sat", "0 8,10,12 * * *", "* * * * *"):
        assert cron_problem(good) is None, good


def test_unknown_time_zone() -> None:
    found = one_problem(**schedule({**BERLIN, "timezone": "Europe/Berlinn"}))
    assert found == ("deployment.bbb.schedule[0].timezone: 'Europe/Berlinn' is not an IANA time zone; use a name "
                     "such as 'Europe/Berlin' or 'UTC'")


@pytest.mark.parametrize(("entry", "expected"), [
    ({"cron": "0 7 * * *", "timezone": "UTC"},
     "deployment.bbb.schedule[0]: sets none of minInstances, desiredInstances, maxInstances; give at least one"),
    ({**BERLIN, "minInstances": 11}, "deployment.bbb.schedule[0]: minInstances 11 > maxInstances 10"),
    ({**BERLIN, "minInstances": 5, "maxInstances": 4}, "deployment.bbb.schedule[0]: minInstances 5 > maxInstances 4"),
    ({**BERLIN, "desiredInstances": 2}, "deployment.bbb.schedule[0].desiredInstances: 2 is outside minInstances 3"),
    ({**BERLIN, "minInstances": -1}, "deployment.bbb.schedule[0].minInstances: -1 must be between 0 and 200"),
    ({**BERLIN, "maxInstances": 201}, "deployment.bbb.schedule[0].maxInstances: 201 must be between 0 and 200"),
])
def test_sizes_out_of_bounds_name_the_entry(entry: dict[str, Any], expected: str) -> None:
    assert one_problem(**schedule(entry)).startswith(expected)


def test_entry_shape_mistakes_name_the_entry() -> None:
    found = problems(**schedule({**BERLIN, "minInstance": 3}, {"timezone": "UTC", "minInstances": 1}, "07:30"))
    assert "deployment.bbb.schedule[0].minInstance: unknown key; did you mean 'minInstances'?" in found
    assert any(p.startswith("deployment.bbb.schedule[1].cron: required") for p in found)
    assert "deployment.bbb.schedule[2]: expected an object, got '07:30'" in found
    assert one_problem(**{"bbb.schedule": {"cron": "0 7 * * *"}}).startswith(
        "deployment.bbb.schedule: expected a list")


def test_a_capacity_of_zero_names_the_instance_type() -> None:
    found = one_problem(**{"bbb.loadCapacity": {"c5a.2xlarge": 0}})
    assert found.startswith('deployment.bbb.loadCapacity["c5a.2xlarge"]: 0.0 must be more than 0 load units')


def test_the_fleets_instance_type_needs_a_capacity() -> None:
    # A listed type takes its entry; a standard size takes 50 load units per vCPU; a size that does not name
    # its vCPUs (metal) needs an entry, and the error says so.
    assert load_config(ctx(**{"bbb.instanceType": "m7i.2xlarge"})).bbb.capacity == 400.0
    assert load_config(ctx(**{"bbb.instanceType": "c6i.4xlarge"})).bbb.load_target == 800.0 * 70 / 100
    found = one_problem(**{"bbb.instanceType": "c6i.metal"})
    assert found.startswith("deployment.bbb.loadCapacity: has no entry for deployment.bbb.instanceType "
                            "'c6i.metal' and its size does not name its vCPUs; "
                            "add \"c6i.metal\": <load units at 100 %>")
    config = load_config(ctx(**{"bbb.instanceType": "m7i.2xlarge", "bbb.loadCapacity": {"m7i.2xlarge": 450}}))
    assert config.bbb.load_capacity == {"m7i.2xlarge": 450.0} and config.bbb.capacity == 450.0
    typo = one_problem(**{"bbb.instanceType": "c5a.2xlarg"})
    assert typo.startswith("deployment.bbb.instanceType: 'c5a.2xlarg' is not an EC2 instance type")
    assert "did you mean c5a.2xlarge" in typo


def test_capacity_values_must_be_numbers() -> None:
    assert one_problem(**{"bbb.loadCapacity": {"c5a.2xlarge": "lots"}}) == (
        'deployment.bbb.loadCapacity["c5a.2xlarge"]: expected a number, got \'lots\'')


@pytest.mark.parametrize("weight", ["participant", "voice", "listener", "webcam", "webcamViewer",
                                    "screenShareViewer"])
def test_negative_weights_name_the_key(weight: str) -> None:
    assert one_problem(**{f"bbb.loadWeights.{weight}": -0.5}) == (
        f"deployment.bbb.loadWeights.{weight}: -0.5 must be at least 0")


def test_weights_that_make_people_weigh_nothing_are_refused() -> None:
    found = one_problem(**{"bbb.loadWeights": {"participant": 0, "voice": 0, "listener": 0}})
    assert found.startswith("deployment.bbb.loadWeights: participant, voice and listener are all 0")


def test_load_target_percent_bounds() -> None:
    assert one_problem(**{"bbb.loadTargetPercent": 0}) == "deployment.bbb.loadTargetPercent: 0 must be at least 10"
    assert one_problem(**{"bbb.loadTargetPercent": 120}) == (
        "deployment.bbb.loadTargetPercent: 120 must be at most 100")


@pytest.mark.parametrize(("changes", "target"), [
    ({}, 8000),  # 16384 ports, totalQuota 10000 (lower): 80 % of 10000
    ({"turn.totalQuota": 0}, 13107),  # unlimited quota: 80 % of the 16384 relay ports
    ({"turn.relayPorts": {"min": 50000, "max": 51999}, "turn.relayPortsTargetPercent": 50}, 1000),
])
def test_turn_allocation_target_counts_against_the_relay_ports(changes: dict[str, Any], target: int) -> None:
    assert load_config(ctx(**changes)).turn.allocations_target == target


@pytest.mark.parametrize(("key", "value", "message"), [
    ("turn.relayPortsTargetPercent", 5, "must be at least 10"),
    ("turn.relayedPacketsPerSecond", 0, "must be at least 100"),
    ("turn.relayedBytesPerSecond", -1, "must be at least 10000"),
])
def test_turn_targets_bounds(key: str, value: int, message: str) -> None:
    assert one_problem(**{key: value}) == f"deployment.{key}: {value} {message}"


def test_a_fleet_at_zero_needs_a_timetable_entry_that_raises_it() -> None:
    """An empty fleet has no Load datapoint to scale out on: minInstances 0 alone would never serve."""
    empty = {"bbb.minInstances": 0, "bbb.desiredInstances": 0}
    assert one_problem(**empty).startswith(
        "deployment.bbb.minInstances: 0 with no deployment.bbb.schedule entry that raises it")
    lowering_only = {**empty, "bbb.schedule": [{**BERLIN, "minInstances": 0}]}
    assert one_problem(**lowering_only).startswith("deployment.bbb.minInstances: 0 with no")
    for raising in ({**BERLIN, "minInstances": 2}, {**BERLIN, "minInstances": None, "desiredInstances": 1}):
        assert load_config(ctx(**empty, **{"bbb.schedule": [raising]})).bbb.min_instances == 0
    # The single host is one instance, not target-tracked: the rule is the scalable fleet's.
    assert load_config(ctx(**empty, **{"environment.type": "single"})).bbb.min_instances == 0
