"""Rules for the BBB fleet's scaling settings (docs/scaling.md): the timetable and the load figure's capacity.
Each message names the cdk.json key (with the schedule entry's index) and the fix.
"""

from __future__ import annotations

import zoneinfo

from settings import instance_types
from settings.cron import cron_problem
from settings.model import CONTEXT_KEY, Bbb, vcpus

# The BBB group's limits (settings.model.Bbb's min/max fields).
GROUP_MAXIMUM = 200


def check_scaling(bbb: Bbb, problems: list[str], *, scalable: bool) -> None:
    check_schedule(bbb, problems)
    check_load(bbb, problems)
    if scalable:
        check_floor(bbb, problems)


def check_floor(bbb: Bbb, problems: list[str]) -> None:
    """A fleet at 0 servers cannot scale out by itself: its signal (Load, Average per server) is published by
    the servers, so with none running there is no datapoint and target tracking does nothing. minInstances 0
    is only a fleet if a timetable entry raises it again (docs/scaling.md, "Night and weekend")."""
    if bbb.min_instances > 0:
        return
    if not any((entry.min_instances or 0) > 0 or (entry.desired_instances or 0) > 0 for entry in bbb.schedule):
        problems.append(
            f"{CONTEXT_KEY}.bbb.minInstances: 0 with no {CONTEXT_KEY}.bbb.schedule entry that raises it: the fleet "
            "would never start a BBB server (the load figure comes from running servers, so an empty fleet has no "
            "signal to scale out on); set minInstances to 1, or add timetable entries that raise it before use"
        )


def check_schedule(bbb: Bbb, problems: list[str]) -> None:
    """Each entry: a valid cron, a real IANA zone, and sizes that fit together and the fleet's limits.

    Values an entry leaves out are the fleet's configured ones (an earlier entry may have changed them at run
    time; Auto Scaling then rejects the action, which shows in the group's activity history)."""
    zones = zoneinfo.available_timezones()
    for index, entry in enumerate(bbb.schedule):
        key = f"{CONTEXT_KEY}.bbb.schedule[{index}]"
        problem = cron_problem(entry.cron)
        if problem:
            problems.append(f"{key}.cron: '{entry.cron}' {problem}")
        if entry.timezone not in zones:
            problems.append(
                f"{key}.timezone: '{entry.timezone}' is not an IANA time zone; use a name such as "
                "'Europe/Berlin' or 'UTC'"
            )
        sizes = {
            "minInstances": entry.min_instances,
            "desiredInstances": entry.desired_instances,
            "maxInstances": entry.max_instances,
        }
        if all(value is None for value in sizes.values()):
            problems.append(f"{key}: sets none of minInstances, desiredInstances, maxInstances; give at least one")
            continue
        bad = False
        for name, value in sizes.items():
            if value is not None and not 0 <= value <= GROUP_MAXIMUM:
                problems.append(f"{key}.{name}: {value} must be between 0 and {GROUP_MAXIMUM}")
                bad = True
        if bad:
            continue
        low = bbb.min_instances if entry.min_instances is None else entry.min_instances
        high = bbb.max_instances if entry.max_instances is None else entry.max_instances
        if low > high:
            problems.append(
                f"{key}: minInstances {low} > maxInstances {high} (an unset value is the fleet's, "
                f"{CONTEXT_KEY}.bbb.minInstances/maxInstances); raise maxInstances in the entry or "
                "lower minInstances"
            )
        if entry.desired_instances is not None and not low <= entry.desired_instances <= high:
            problems.append(
                f"{key}.desiredInstances: {entry.desired_instances} is outside minInstances {low} .. "
                f"maxInstances {high} (an unset value is the fleet's); keep it between them"
            )


def check_load(bbb: Bbb, problems: list[str]) -> None:
    key = f"{CONTEXT_KEY}.bbb.loadCapacity"
    for instance_type, capacity in bbb.load_capacity.items():
        if not capacity > 0:
            problems.append(
                f'{key}["{instance_type}"]: {capacity} must be more than 0 load units (a server that '
                "carries nothing cannot be a scaling target)"
            )
    if bbb.instance_type not in bbb.load_capacity and not vcpus(bbb.instance_type):
        try:
            instance_types.check(bbb.instance_type)
        except instance_types.UnknownInstanceType as error:  # a typo: say so rather than ask for its capacity
            problems.append(f"{CONTEXT_KEY}.bbb.instanceType: {error}")
        else:
            problems.append(
                f"{key}: has no entry for {CONTEXT_KEY}.bbb.instanceType '{bbb.instance_type}' and its size "
                "does not name its vCPUs; add "
                f'"{bbb.instance_type}": <load units at 100 %> (docs/scaling.md explains the unit)'
            )
    weights = bbb.load_weights
    if not (weights.participant or weights.voice or weights.listener):
        problems.append(
            f"{CONTEXT_KEY}.bbb.loadWeights: participant, voice and listener are all 0, so a server "
            "full of people reads as idle; give participant a weight (default 1.0)"
        )
