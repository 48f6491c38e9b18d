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
    # Assumption (BBB sizing guidance for the recommended 8 cores/16 GB): ~200 audio participants per server;
    # a webcam stream costs about as much as 4 participants. Replace with the load signal's measured weights.
    bbb_capacity: float = 200.0
    webcam_weight: float = 4.0
    # Participants per server the fleet tracked before the load signal (the old bbb.participantsPerServer
    # default); with --load-signal the target is bbb.loadTargetPercent of bbb_capacity, in the same units.
    participants_target: float = 100.0
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
    schedule: tuple[tuple[int, int], ...] = ()  # (minute of the week, minInstances), sorted


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
    schedule = dict(fleet.schedule)
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
        if t % 10080 in schedule:  # scheduled action: minInstances (desired raised to it, never lowered)
            minimum = schedule[t % 10080]
            desired = max(desired, minimum)
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


# --- configuration from the deployment's settings --------------------------------------------------------


def parse_schedule(text: str) -> tuple[tuple[int, int], ...]:
    """`HH:MM=min,...` on weekdays -> ((minute of the week, minInstances), ...)."""
    entries = []
    for item in filter(None, text.split(",")):
        when, _, value = item.partition("=")
        hours, minutes = when.split(":")
        entries += [(d * 1440 + int(hours) * 60 + int(minutes), int(value)) for d in range(5)]
    return tuple(sorted(entries))


def cron_schedule(entries: Sequence[Any]) -> tuple[tuple[int, int], ...]:
    """`bbb.schedule` entries (cron `M H * * DOW`, local time) -> the same form; only what the model needs."""

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
                    out.append((monday_based * 1440 + h * 60 + m, int(entry.min_instances)))
    return tuple(sorted(out))


def load_settings(overrides: Sequence[str]) -> Any:
    from settings import load_config

    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    for item in overrides:
        key, _, value = item.partition("=")
        try:
            context[f"deployment.{key}"] = json.loads(value)
        except ValueError:
            context[f"deployment.{key}"] = value
    return load_config(context)


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


def bbb_target(config: Any, model: Model, load_signal: bool) -> float:
    """The BBB fleet's per-server target in the simulated signal's units: participants (the old signal), or
    bbb.loadTargetPercent of the model's capacity (the load signal, tracked as a share of capacity)."""
    return model.bbb_capacity * config.bbb.load_target_percent / 100 if load_signal else model.participants_target


def run(
    profile: Profile, config: Any, schedule: tuple[tuple[int, int], ...], model: Model, *, load_signal: bool = False
) -> tuple[list[Row], dict[str, float]]:
    """The four configurations and the oracles' BBB server-hours per weekday. `load_signal`: scale on
    participants + webcams x weight (issue 11's meeting-aware signal) instead of participants alone, the target
    then bbb.loadTargetPercent of the model's capacity in those load units."""
    participants = week(profile.participants)
    demand = [p + model.webcam_weight * w for p, w in zip(participants, week(profile.webcams), strict=True)]
    allocations = [
        p * r * model.allocations_per_relaying_user
        for p, r in zip(participants, week(profile.relay_share), strict=True)
    ]
    bbb, pool = config.bbb, config.bbb.warm_pool
    base = Fleet(
        target=bbb_target(config, model, load_signal),
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
        out = simulate(fleet, demand if load_signal else participants, demand, model.bbb_capacity, model)
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
    return rows, oracles(demand[:weekday_minutes], bbb.min_instances, model)


def oracles(demand: Sequence[float], floor: int, model: Model) -> dict[str, float]:
    """Server-hours per weekday of a fleet that knows the future: each minute exactly the servers the demand
    needs at full capacity, without and with the deployment's minInstances floor (target tracking needs one
    server to report a metric at all, so the floor is structural)."""
    return {
        "perfect oracle": sum(math.ceil(d / model.bbb_capacity) for d in demand) / 60 / 5,
        f"oracle, floor {floor}": sum(max(floor, math.ceil(d / model.bbb_capacity)) for d in demand) / 60 / 5,
    }


def table(rows: list[Row], oracle: dict[str, float]) -> str:
    reference = oracle["perfect oracle"]
    head = (
        f"{'configuration':<22} {'min>cap':>7} {'peak BBB':>8} {'peak TURN':>9} {'BBB h/day':>9} "
        f"{'vs oracle':>9} {'TURN h/day':>10} {'LE/wk per-server':>16} {'LE/wk central':>13}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{100 * (r.bbb_hours_per_weekday / reference - 1):+.0f} %" if reference else "-"
        lines.append(
            f"{r.name:<22} {r.over_capacity_minutes:>7} {r.peak_bbb:>8} {r.peak_turn:>9} "
            f"{r.bbb_hours_per_weekday:>9.1f} {ratio:>9} {r.turn_hours_per_weekday:>10.1f} "
            f"{r.le_per_server_per_week:>16} {r.le_central_per_week:>13.2f}"
        )
    for name, hours in oracle.items():
        ratio = f"{100 * (hours / reference - 1):+.0f} %" if reference else "-"
        lines.append(f"{name:<22} {0:>7} {'':>8} {'':>9} {hours:>9.1f} {ratio:>9}")
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
    parser.add_argument("--schedule", help="HH:MM=minInstances,... on weekdays (when bbb.schedule is not set)")
    parser.add_argument(
        "--load-signal",
        action="store_true",
        help="scale on participants + weighted webcams (target in those units), not participants",
    )
    args = parser.parse_args(argv)
    config = load_settings(args.overrides)
    model = Model()
    for path in args.profiles:
        profile = read_profile(path)
        configured = getattr(config.bbb, "schedule", None)
        if configured:
            schedule, source = cron_schedule(configured), "bbb.schedule"
        elif args.schedule:
            schedule, source = parse_schedule(args.schedule), "--schedule"
        else:  # the operator's timetable: the day's peak need from 30 min before the first lesson to the last
            load = [p + model.webcam_weight * w for p, w in zip(profile.participants, profile.webcams, strict=True)]
            need = math.ceil(
                max(load if args.load_signal else profile.participants) / bbb_target(config, model, args.load_signal)
            )
            busy = [m for m, p in enumerate(profile.participants) if p > 0]
            first, last = (busy[0], busy[-1]) if busy else (0, 0)
            text = f"{(first - 30) // 60:02d}:{(first - 30) % 60:02d}={min(need, config.bbb.max_instances)}"
            text += f",{(last + 1) // 60:02d}:{(last + 1) % 60:02d}={config.bbb.min_instances}"
            schedule, source = parse_schedule(text), f"derived from the profile: {text}"
        rows, oracle = run(profile, config, schedule, model, load_signal=args.load_signal)
        print(
            f"\n{path.name} (schedule: {source}; bbb min/max {config.bbb.min_instances}/{config.bbb.max_instances},"
            f" target {bbb_target(config, model, args.load_signal):g}"
            f" {'load units' if args.load_signal else 'participants'};"
            f" warm pool min {config.bbb.warm_pool.min_size})"
        )
        print(table(rows, oracle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
