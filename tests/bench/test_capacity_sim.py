"""bench/capacity_sim.py: the scaling model on tiny profiles against minutes worked out by hand, and the shipped
school day through the deployment's defaults."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import capacity_sim as sim  # noqa: E402

MODEL = sim.Model()  # metric lag 1 min, scale-out on 3 datapoints, scale-in on 15 below 90 % of the target
FLEET = sim.Fleet(target=10, min_instances=1, max_instances=3, boot_min=30, wake_min=5, drain_max_min=240)
# 25 participants from minute 10 to 59: one server (capacity 20) is too small, three are needed (target 10).
STEP = [0.0] * 10 + [25.0] * 50


def test_cold_scale_out_leaves_demand_above_capacity_until_bbb_install_is_done() -> None:
    out = sim.simulate(FLEET, STEP, STEP, 20, MODEL)
    # Datapoints 10, 11, 12 are above the target; the newest is evaluable at minute 13 (lag 1): desired 3,
    # two cold launches serving at 13 + 30 = 43. Above capacity: minutes 10..42.
    assert out.over_capacity_minutes == 33
    assert out.cold_launches == 2 and out.peak_servers == 3
    assert sum(out.billed_minutes) == 60 + 2 * (60 - 13)  # booting servers are billed


def test_a_woken_server_serves_after_the_wake_time() -> None:
    out = sim.simulate(replace(FLEET, pool_enabled=True), STEP, STEP, 20, MODEL)
    # Same decision at minute 13; the two prepared (stopped) servers serve at 13 + 5 = 18: minutes 10..17.
    assert out.over_capacity_minutes == 8
    assert out.cold_launches == 0  # the pool is max - desired = 0 afterwards: nothing to refill
    assert out.billed_minutes[:13] == [1] * 13  # stopped servers cost no server-hours


@pytest.mark.parametrize(("pool", "over", "launches"), [(False, 25, 2), (True, 0, 0)])
def test_scheduled_minimum_prewarms_before_the_lesson(pool: bool, over: int, launches: int) -> None:
    fleet = replace(FLEET, pool_enabled=pool, schedule=((5, 3, None),))  # minInstances 3 at minute 5
    out = sim.simulate(fleet, STEP, STEP, 20, MODEL)
    # Cold: serving at 5 + 30 = 35, above capacity 10..34. Woken: serving at 5 + 5 = 10, never above.
    assert (out.over_capacity_minutes, out.cold_launches) == (over, launches)


def test_scale_in_after_fifteen_low_datapoints_and_reuse_on_the_next_day() -> None:
    day = STEP + [0.0] * 60
    fleet = replace(FLEET, pool_enabled=True)
    out = sim.simulate(fleet, day + day, day + day, 20, MODEL)
    # 25 participants on 3 servers is 8.3 per server, below 90 % of the target from minute 18 on: the low alarm
    # has 15 low datapoints from minute 33, but the policy asks for ceil(25 / 10) = 3 until the signal drops.
    # Minute 60's datapoint (0) is evaluable at 61: back to minInstances 1, two servers to the pool.
    assert out.billed_minutes[60] == 3 and out.billed_minutes[61] == 1
    # The next "day" wakes the same two servers again: no new instance, no new certificate.
    assert out.cold_launches == 0 and out.over_capacity_minutes == 2 * 8
    terminated = sim.simulate(replace(fleet, reuse_on_scale_in=False), day + day, day + day, 20, MODEL)
    # Without reuse each scale-in terminates the two and the pool is refilled by two cold installs (at 61 and
    # 181): four new servers, four certificates; the next day's wake is as fast (prepared by minute 91).
    assert terminated.cold_launches == 4 and terminated.over_capacity_minutes == 2 * 8


def test_profile_and_schedule_parsing(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("time,participants,webcams,relay_share\n08:00,30,4,0.1\n08:01,31,5,0.1\n")
    profile = sim.read_profile(path)
    assert profile.participants[480:482] == [30, 31] and profile.webcams[481] == 5 and sum(profile.participants) == 61
    assert sim.parse_schedule("07:30=3")[:2] == ((450, 3, None), (1440 + 450, 3, None))
    path.write_text("time,participants,webcams,relay_share\n25:00,1,0,0\n")
    with pytest.raises(SystemExit, match=r"p\.csv:2"):
        sim.read_profile(path)


def test_school_day_meets_the_target_with_the_defaults_and_the_schools_timetable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 11's bar: cdk.json's defaults plus the school's timetable (school_day.bbb.json: the bbb.schedule
    a school would write) leave no minute above capacity, cost at most 10 % more server-hours than
    the oracle, and need no per-server certificate (the warm pool's servers are reused every day)."""
    path = ROOT / "bench/profiles/school_day.csv"
    config = sim.load_settings(sim.institution_overrides(sim.institution_of(path)))
    assert config.bbb.schedule and config.bbb.max_instances == 3  # the timetable; cdk.json's sizes
    rows, oracle = sim.run(sim.read_profile(path), config, sim.cron_schedule(config.bbb.schedule), MODEL)
    by_name = {row.name: row for row in rows}
    both = by_name["schedule + pool"]
    assert both.over_capacity_minutes == 0 and both.le_per_server_per_week == 0
    assert both.bbb_hours_per_weekday <= 1.10 * oracle[sim.REFERENCE]
    # Without the timetable and the pool the same day has late servers and a certificate per new server.
    bare = by_name["no schedule, no pool"]
    assert bare.over_capacity_minutes > 0 and bare.le_per_server_per_week > 0
    # The command prints the same table, naming the timetable it read.
    assert sim.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "timetable: bbb.schedule from school_day.bbb.json" in out
    assert f"{both.bbb_hours_per_weekday:>9.1f}" in out.split("schedule + pool", 1)[1].splitlines()[0]


def test_the_load_is_the_hosts_formula_over_reference_classes() -> None:
    """docs/scaling.md's class (25 pupils, 5 microphones, 20 listen-only, 2 webcams, a presenter) is 50 units
    under the default weights; two such classes in one minute are 100."""
    config = sim.load_settings([])
    minute = sim.Profile(participants=[25.0, 50.0, 0.0], webcams=[2.0, 4.0, 0.0], relay_share=[0.0] * 3)
    assert [round(x, 6) for x in sim.bbb_load(minute, sim.weights_of(config), MODEL)] == [50.0, 100.0, 0.0]
    heavier = sim.load_settings(['bbb.loadWeights={"webcam": 4.0}'])
    assert sim.bbb_load(minute, sim.weights_of(heavier), MODEL)[0] == pytest.approx(54.0)


def test_a_bad_timetable_fails_naming_its_key() -> None:
    from settings import ConfigError

    with pytest.raises(ConfigError, match=r"deployment\.bbb\.schedule\[0\]\.timezone"):
        sim.load_settings(['bbb.schedule=[{"cron": "0 7 * * 1-5", "timezone": "Mars/Olympus", "minInstances": 2}]'])


def test_a_server_cordoned_during_a_lesson_drains_until_its_meetings_end() -> None:
    signal = [0.0] * 10 + [25.0] * 50 + [12.0] * 30 + [0.0] * 30
    out = sim.simulate(FLEET, signal, signal, 20, MODEL)
    # At 61 (datapoint 60: 12 participants) the policy asks for 2: one server drains, holding a third of the 12.
    # It is done once the fleet is down to 8 or fewer, i.e. at 90 when the lesson ends; at 91 (datapoint 90: 0)
    # the next one goes at once (nobody left on it).
    assert out.billed_minutes[60:62] == [3, 3] and out.billed_minutes[89:92] == [3, 2, 1]
    assert out.peak_servers == 3


def test_an_empty_fleet_reports_no_metric_and_never_scales_out() -> None:
    """The metric is published by each server: with none running there is no datapoint for the alarms."""
    out = sim.simulate(replace(FLEET, min_instances=0), STEP, STEP, 20, MODEL)
    assert out.over_capacity_minutes == 50 and out.peak_servers == 0 and sum(out.billed_minutes) == 0
    fleet = replace(FLEET, min_instances=0, pool_enabled=True, schedule=((5, 1, None),))
    woken = sim.simulate(fleet, STEP, STEP, 20, MODEL)
    # A scheduled minimum of 1 (woken at 5, serving at 10) gives the alarms their first datapoints (10, 11, 12):
    # at 13 two more are woken, serving at 18, as in the pool case above.
    assert woken.peak_servers == 3 and woken.over_capacity_minutes == 8
