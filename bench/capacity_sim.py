#!/usr/bin/env python3
"""Capacity simulator: a week of a day's load profile through a model of this deployment's scaling.

Replays a profile (CSV: `time,participants,webcams,relay_share`, one row per minute, HH:MM local time) on the
five weekdays of a week (weekends empty) through the BBB and TURN fleets as this deployment builds them:
the per-server metric every minute, target tracking's alarms (3 one-minute datapoints to scale out, 15 to
scale in, at 90 % of the target), scale-in cooldown, scheduled minimums, the warm pool (prepared servers
woken in minutes, refilled by cold installs, reuse on scale-in), cold bbb-install time and the drain. It
prints, per configuration (no schedule/no pool, schedule only, pool only, both): minutes with demand above
serving capacity, peak BBB and TURN servers, BBB server-hours per weekday, Let's Encrypt certificates per
week (one per new server today, vs one central wildcard per renewal period), and a perfect oracle's
server-hours.

Defaults come from the deployment's settings (settings.load_config on cdk.json, `--set key=value` overrides
as `-c deployment.key=value` would): bbb.loadTargetPercent, min/max instances, the warm pool, the TURN target
and limits, and `bbb.schedule` when the settings have it; otherwise `--schedule HH:MM=min,...`.

    .venv/bin/python bench/capacity_sim.py bench/profiles/school_day.csv [--set bbb.minInstances=0]
        [--schedule 07:15=3,16:30=1]

Hand-written: no kept library simulates EC2 Auto Scaling's target tracking and warm pools.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "userdata" / "bbb"))


@dataclass(frozen=True)
class Model:
    """Every constant of the model, with where it comes from."""

    # bbb-on-aws-meetings-metric.timer publishes Participants every 60 s (OnUnitActiveSec=60s).
    metric_period_min: int = 1
    # Assumption: a one-minute datapoint is complete and evaluated about a minute after its period ends.
    metric_lag_min: int = 1
    # AWS target tracking (EC2 Auto Scaling user guide, "Target tracking scaling policies"): the alarms it
    # creates for a one-minute metric: AlarmHigh 3 of 3 datapoints, AlarmLow 15 of 15 at 90 % of the target.
    scale_out_datapoints: int = 3
    scale_in_datapoints: int = 15
    scale_in_ratio: float = 0.9
    # AWS: default scale-in cooldown of a target tracking policy, 300 s (scale-out is limited by warm-up only).
    scale_in_cooldown_min: int = 5
    # The load figure is the hosts' own formula (userdata/bbb/load_figure.py) with cdk.json's bbb.loadWeights,
    # against bbb.loadCapacity x bbb.loadTargetPercent. A profile gives participants and webcams per minute; how
    # they sit in meetings is assumed as docs/scaling.md's reference class: 25 pupils, 5 of them with a
    # microphone (voice) and 20 listen-only, a presenter in every meeting, the webcams spread evenly.
    class_size: float = 25.0
    voice_share: float = 0.2
    listener_share: float = 0.8
    # cdk_constructs/bbb_fleet.py: bbb-install takes 20-40 min on a bare Ubuntu image (BBB_WARMUP = 30 min).
    cold_install_min: int = 30
    # Assumption: stopped -> running ~1 min (EC2), BBB services ~2 min, the launch state machine's 30 s poll,
    # Scalelite's 60 s poller: a woken server takes meetings after ~5 min.
    wake_min: int = 5
    # The drain ends when the cordoned server's meetings have (plus the drain's 60 s poll: the next minute):
    # modelled as when the fleet's participants have fallen by that server's share at scale-in (its lesson
    # ended; nobody left: at once); at most bbb.drainMaxHours (settings). Billed meanwhile.
    # TURN: the relay boots in about a minute (turn settings), plus the launch's STUN check and a 60 s DNS TTL.
    turn_boot_min: int = 3
    # Issue 11: Chromium relay-only holds one allocation per peer connection per TURN URL, ~24 per BBB viewer.
    allocations_per_relaying_user: int = 24
    # Let's Encrypt certificates last 90 days; certbot renews 30 days before expiry: one per 60 days.
    le_renewal_days: int = 60


@dataclass(frozen=True)
class Fleet:
    """One Auto Scaling group as configured: sizes, target and warm pool."""

    target: float
    min_instances: int
    max_instances: int
    boot_min: int
    pool_enabled: bool = False
    pool_min: int = 0
    pool_max_prepared: int | None = None
    pool_running: bool = False
    reuse_on_scale_in: bool = True
    wake_min: int = 5
    drain_max_min: int = 0  # 0: no drain (the server goes at once)
    # (minute of the week, minInstances or None, desiredInstances or None), sorted: scheduled actions
    schedule: tuple[tuple[int, int | None, int | None], ...] = ()


@dataclass
class Server:
    state: str  # booting | serving | draining | prewarming | pool
    until: int = 0  # minute the current state ends (booting, prewarming; draining at the latest)
    drained_below: float = 0.0  # draining: done once the fleet's signal is at or below this


@dataclass
class Outcome:
    over_capacity_minutes: int = 0
    peak_servers: int = 0
    billed_minutes: list[int] = field(default_factory=list)  # per minute
    cold_launches: int = 0


def simulate(fleet: Fleet, signal: Sequence[float], demand: Sequence[float], capacity: float, model: Model) -> Outcome:
    """Minute by minute. `signal`: the fleet's scaling metric summed over servers (participants, allocations);
    `demand`: what must fit into serving servers x `capacity`."""
    servers = [Server("serving") for _ in range(fleet.min_instances)]
    max_prepared = fleet.max_instances if fleet.pool_max_prepared is None else fleet.pool_max_prepared
    if fleet.pool_enabled:
        servers += [Server("pool") for _ in range(max(fleet.pool_min, max_prepared - fleet.min_instances))]
    desired, minimum = fleet.min_instances, fleet.min_instances
    schedule = {minute: (low, want) for minute, low, want in fleet.schedule}
    metric: list[float | None] = []  # None: no server reported (the metric is per server): no datapoint
    last_scale_in = -(10**9)
    out = Outcome()
    for t in range(len(signal)):
        for s in servers:  # state changes due now
            if s.state == "booting" and s.until <= t:
                s.state = "serving"
            elif s.state == "prewarming" and s.until <= t:
                s.state = "pool"
            elif s.state == "draining" and (s.until <= t or signal[t] <= s.drained_below):
                s.state = "pool" if fleet.pool_enabled and fleet.reuse_on_scale_in else "gone"
        servers = [s for s in servers if s.state != "gone"]
        if t % 10080 in schedule:  # a scheduled action sets what it names; desired is then kept within [min, max]
            low, want = schedule[t % 10080]
            minimum = minimum if low is None else low
            desired = max(desired if want is None else want, minimum)
        serving = sum(1 for s in servers if s.state == "serving")
        metric.append(signal[t] / serving if serving else None)
        seen = t - model.metric_lag_min  # the newest datapoint the alarms can evaluate
        if seen + 1 >= model.scale_out_datapoints and all(
            (metric[i] or 0.0) > fleet.target for i in range(seen - model.scale_out_datapoints + 1, seen + 1)
        ):
            desired = max(desired, min(fleet.max_instances, math.ceil(signal[seen] / fleet.target)))
        elif (
            seen + 1 >= model.scale_in_datapoints
            and t - last_scale_in >= model.scale_in_cooldown_min
            and all(
                metric[i] is not None and metric[i] < fleet.target * model.scale_in_ratio
                for i in range(seen - model.scale_in_datapoints + 1, seen + 1)
            )
        ):
            wanted = max(minimum, math.ceil(signal[seen] / fleet.target))
            if wanted < desired:
                desired, last_scale_in = wanted, t
        desired = min(max(desired, minimum), fleet.max_instances)
        active = [s for s in servers if s.state in ("booting", "serving")]
        if len(active) < desired:
            for _ in range(desired - len(active)):
                prepared = next((s for s in servers if s.state == "pool"), None)
                if prepared is not None:
                    prepared.state, prepared.until = "booting", t + fleet.wake_min
                else:
                    servers.append(Server("booting", t + fleet.boot_min))
                    out.cold_launches += 1
        elif len(active) > desired:
            # Auto Scaling picks; booting ones first (they hold no meeting), then serving ones, which drain.
            share = signal[t] / max(1, sum(1 for s in active if s.state == "serving"))
            for s in sorted(active, key=lambda s: s.state != "booting")[: len(active) - desired]:
                if s.state == "booting" or fleet.drain_max_min == 0 or share == 0:
                    s.state = "pool" if fleet.pool_enabled and fleet.reuse_on_scale_in else "gone"
                else:
                    s.state, s.until = "draining", t + fleet.drain_max_min
                    s.drained_below = max(0.0, signal[t] - share)
        servers = [s for s in servers if s.state != "gone"]
        if fleet.pool_enabled:  # the pool refills (cold installs) up to its size, as AWS sizes it
            outside = sum(1 for s in servers if s.state in ("booting", "serving", "draining"))
            size = max(fleet.pool_min, max_prepared - outside)
            pooled = [s for s in servers if s.state in ("pool", "prewarming")]
            for _ in range(size - len(pooled)):
                servers.append(Server("prewarming", t + fleet.boot_min))
                out.cold_launches += 1
            for s in pooled[size:] if len(pooled) > size else []:
                s.state = "gone"
            servers = [s for s in servers if s.state != "gone"]
        serving = sum(1 for s in servers if s.state == "serving")
        out.peak_servers = max(out.peak_servers, serving + sum(1 for s in servers if s.state == "draining"))
        if demand[t] > serving * capacity:
            out.over_capacity_minutes += 1
        billed = ("booting", "serving", "draining", "prewarming") + (("pool",) if fleet.pool_running else ())
        out.billed_minutes.append(sum(1 for s in servers if s.state in billed))
    return out


# --- profiles ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    participants: list[float]  # 1440 values, one per minute of the day
    webcams: list[float]
    relay_share: list[float]


def read_profile(path: Path) -> Profile:
    """Rows `time,participants,webcams,relay_share`; minutes not listed have no load."""
    day = {name: [0.0] * 1440 for name in ("participants", "webcams", "relay_share")}
    with path.open(newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=2):
            try:
                hours, minutes = row["time"].split(":")
                minute = int(hours) * 60 + int(minutes)
                values = {name: float(row[name]) for name in day}
            except (KeyError, ValueError, AttributeError) as exc:
                raise SystemExit(
                    f"{path}:{number}: expected time (HH:MM),participants,webcams,relay_share ({exc})"
                ) from None
            if not 0 <= minute < 1440 or min(values.values()) < 0 or values["relay_share"] > 1:
                raise SystemExit(f"{path}:{number}: time outside the day, a negative value or relay_share > 1")
            for name, value in values.items():
                day[name][minute] = value
    return Profile(**day)


def week(values: list[float]) -> list[float]:
    """Monday to Friday the profile, Saturday and Sunday nothing."""
    return values * 5 + [0.0] * 2880


def bbb_load(profile: Profile, weights: dict[str, float], model: Model) -> list[float]:
    """The fleet's load units per minute of the day: the hosts' formula over the model's reference classes."""
    from load_figure import meeting_load  # userdata/bbb: the function each BBB server publishes with

    out = []
    for participants, webcams in zip(profile.participants, profile.webcams, strict=True):
        meetings = participants / model.class_size
        if meetings == 0:
            out.append(0.0)
            continue
        size, cams = participants / meetings, webcams / meetings
        one = meeting_load(
            weights,
            participants=size,
            voice=size * model.voice_share,
            listeners=size * model.listener_share,
            webcams=cams,
            presenting=True,
        )
        out.append(meetings * one)
    return out


# --- configuration from the deployment's settings --------------------------------------------------------

Schedule = tuple[tuple[int, int | None, int | None], ...]


def parse_schedule(text: str) -> Schedule:
    """`HH:MM=min,...` on weekdays -> ((minute of the week, minInstances, None), ...)."""
    entries = []
    for item in filter(None, text.split(",")):
        when, _, value = item.partition("=")
        hours, minutes = when.split(":")
        entries += [(d * 1440 + int(hours) * 60 + int(minutes), int(value), None) for d in range(5)]
    return tuple(sorted(entries))


def cron_schedule(entries: Sequence[Any]) -> Schedule:
    """`bbb.schedule` entries (cron `M H * * DOW`, read in the profile's local time) -> the same form."""

    def expand(field_text: str, low: int, high: int) -> list[int]:
        found: list[int] = []
        for part in field_text.split(","):
            if part == "*":
                found += list(range(low, high + 1))
            elif "-" in part:
                a, b = part.split("-")
                found += list(range(int(a), int(b) + 1))
            else:
                found.append(int(part))
        return found

    out = []
    for entry in entries:
        minute, hour, _dom, _month, dow = str(entry.cron).split()
        for day in expand(dow, 0, 6):
            monday_based = (day - 1) % 7  # cron: 0/7 = Sunday
            for h in expand(hour, 0, 23):
                for m in expand(minute, 0, 59):
                    out.append((monday_based * 1440 + h * 60 + m, entry.min_instances, entry.desired_instances))
    return tuple(sorted(out))


def load_settings(overrides: Sequence[str]) -> Any:
    """cdk.json's deployment, with `key=value` overrides as `-c deployment.key=value` would apply them: the
    same validation, so a bad timetable fails here naming its key as synth would."""
    from settings import load_config

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    for item in overrides:
        key, _, value = item.partition("=")
        try:
            context[f"deployment.{key}"] = json.loads(value)
        except ValueError:
            context[f"deployment.{key}"] = value
    return load_config(context)


def institution_of(profile_path: Path) -> Path | None:
    """The institution's own `deployment.bbb` settings shipped beside a profile (`<profile>.bbb.json`: its
    timetable as `schedule`, and any size it needs, e.g. `maxInstances`); applied over cdk.json like `--set`."""
    path = profile_path.with_suffix(".bbb.json")
    return path if path.exists() else None


def institution_overrides(institution: Path | None) -> list[str]:
    """That file as `--set` items."""
    if institution is None:
        return []
    try:
        own = json.loads(institution.read_text())
    except ValueError as error:
        raise SystemExit(f"{institution}: not JSON ({error})") from None
    if not isinstance(own, dict):
        raise SystemExit(f"{institution}: expected an object of deployment.bbb keys")
    return [f"bbb.{key}={json.dumps(value)}" for key, value in own.items()]


@dataclass(frozen=True)
class Row:
    name: str
    over_capacity_minutes: int
    peak_bbb: int
    peak_turn: int
    bbb_hours_per_weekday: float
    turn_hours_per_weekday: float
    le_per_server_per_week: int
    le_central_per_week: float


def weights_of(config: Any) -> dict[str, float]:
    w = config.bbb.load_weights
    return {
        "participant": w.participant,
        "voice": w.voice,
        "listener": w.listener,
        "webcam": w.webcam,
        "webcamViewer": w.webcam_viewer,
        "screenShareViewer": w.screen_share_viewer,
    }


def run(profile: Profile, config: Any, schedule: Schedule, model: Model) -> tuple[list[Row], dict[str, float]]:
    """The four configurations and the oracles' BBB server-hours per weekday."""
    participants = week(profile.participants)
    load = week(bbb_load(profile, weights_of(config), model))
    allocations = [
        p * r * model.allocations_per_relaying_user
        for p, r in zip(participants, week(profile.relay_share), strict=True)
    ]
    bbb, pool = config.bbb, config.bbb.warm_pool
    base = Fleet(
        target=bbb.load_target,
        min_instances=bbb.min_instances,
        max_instances=bbb.max_instances,
        boot_min=model.cold_install_min,
        wake_min=model.wake_min,
        drain_max_min=int(bbb.drain_max_hours * 60),
        pool_min=pool.min_size,
        pool_max_prepared=pool.max_prepared_capacity,
        pool_running=pool.pool_state == "Running",
        reuse_on_scale_in=pool.reuse_on_scale_in,
    )
    turn = config.turn
    turn_fleet = Fleet(
        target=turn.allocations_target,
        min_instances=turn.min_instances,
        max_instances=turn.max_instances,
        boot_min=model.turn_boot_min,
    )
    turn_out = simulate(turn_fleet, allocations, allocations, math.inf, model)
    weekday_minutes = 5 * 1440
    rows = []
    for name, with_schedule, with_pool in (
        ("no schedule, no pool", False, False),
        ("schedule only", True, False),
        ("pool only", False, True),
        ("schedule + pool", True, True),
    ):
        fleet = replace(base, schedule=schedule if with_schedule else (), pool_enabled=with_pool)
        out = simulate(fleet, load, load, bbb.capacity, model)
        rows.append(
            Row(
                name=name,
                over_capacity_minutes=out.over_capacity_minutes,
                peak_bbb=out.peak_servers,
                peak_turn=turn_out.peak_servers,
                bbb_hours_per_weekday=sum(out.billed_minutes[:weekday_minutes]) / 60 / 5,
                turn_hours_per_weekday=sum(turn_out.billed_minutes[:weekday_minutes]) / 60 / 5,
                le_per_server_per_week=out.cold_launches,
                le_central_per_week=7 / model.le_renewal_days,
            )
        )
    return rows, oracles(load[:weekday_minutes], bbb.min_instances, bbb.load_target, bbb.capacity)


REFERENCE = "oracle"


def oracles(load: Sequence[float], floor: int, target: float, capacity: float) -> dict[str, float]:
    """Server-hours per weekday of fleets that know the future and start and stop servers instantly.

    `oracle` (the reference): each minute exactly the servers the load needs at the configured target (the
    operator's headroom, bbb.loadTargetPercent), never fewer than bbb.minInstances (the operator's promise
    that a meeting can start at any hour: with no server there is nothing to measure demand on, or to send a
    meeting to). The difference to it is what the scaling machinery costs: metric lag, alarm periods,
    install and wake times, drains. `oracle at 100 %, no floor`: every server full, none at night; what no
    fleet with headroom and a night service can reach, shown for scale.
    """
    return {
        REFERENCE: sum(max(floor, math.ceil(x / target)) for x in load) / 60 / 5,
        "oracle at 100 %, no floor": sum(math.ceil(x / capacity) for x in load) / 60 / 5,
    }


def table(rows: list[Row], oracle: dict[str, float]) -> str:
    reference = oracle[REFERENCE]
    head = (
        f"{'configuration':<26} {'min>cap':>7} {'peak BBB':>8} {'peak TURN':>9} {'BBB h/day':>9} "
        f"{'vs oracle':>9} {'TURN h/day':>10} {'LE/wk per-server':>16} {'LE/wk central':>13}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{100 * (r.bbb_hours_per_weekday / reference - 1):+.0f} %" if reference else "-"
        lines.append(
            f"{r.name:<26} {r.over_capacity_minutes:>7} {r.peak_bbb:>8} {r.peak_turn:>9} "
            f"{r.bbb_hours_per_weekday:>9.1f} {ratio:>9} {r.turn_hours_per_weekday:>10.1f} "
            f"{r.le_per_server_per_week:>16} {r.le_central_per_week:>13.2f}"
        )
    for name, hours in oracle.items():
        ratio = f"{100 * (hours / reference - 1):+.0f} %" if reference else "-"
        lines.append(f"{name:<26} {0:>7} {'':>8} {'':>9} {hours:>9.1f} {ratio:>9}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a deployment setting, e.g. bbb.minInstances=0 (JSON values)",
    )
    parser.add_argument(
        "--schedule",
        help="HH:MM=minInstances,... on weekdays, instead of the profile's timetable or bbb.schedule",
    )
    args = parser.parse_args(argv)
    model = Model()
    for path in args.profiles:
        profile = read_profile(path)
        institution = institution_of(path)
        config = load_settings(institution_overrides(institution) + list(args.overrides))  # --set wins
        if args.schedule:
            schedule, source = parse_schedule(args.schedule), "--schedule"
        elif config.bbb.schedule:
            schedule = cron_schedule(config.bbb.schedule)
            given = any(item.startswith("bbb.schedule=") for item in args.overrides)
            source = "bbb.schedule" + (f" from {institution.name}" if institution and not given else "")
        else:
            schedule, source = (), "none"
        rows, oracle = run(profile, config, schedule, model)
        bbb, load = config.bbb, bbb_load(profile, weights_of(config), model)
        print(
            f"\n{path.name} (timetable: {source}; bbb min/max {bbb.min_instances}/{bbb.max_instances},"
            f" {bbb.instance_type} {bbb.capacity:g} load units, target {bbb.load_target:g};"
            f" warm pool min {bbb.warm_pool.min_size}; peak load {max(load):.0f})"
        )
        print(table(rows, oracle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
