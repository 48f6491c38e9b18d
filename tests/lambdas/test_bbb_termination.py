"""The BBB fleet's custom termination policy on the payload AWS documents ("Create a custom termination policy
with Lambda"), reading the servers' Load and Meetings from CloudWatch (moto); CloudWatch failing (Stubber)."""

from __future__ import annotations

import importlib
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from common import aws
from lc_world import FakeContext

NAMESPACE = "BBBOnAWS/lctest"
GROUP = "bbb-BbbGroup-1A2B3C"


@pytest.fixture
def policy(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("METRICS_NAMESPACE", NAMESPACE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "bbb-termination")
    return importlib.import_module("bbb_termination.index")


def event(
    instances: list[tuple[str, str]], capacity: list[tuple[str, int]], cause: str = "SCALE_IN", **extra: Any
) -> dict[str, Any]:
    """The payload exactly as AWS documents it (fields, names, nesting)."""
    return {
        "AutoScalingGroupARN": f"arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:"
        f"d4738357-2d40-4038-ae7e-b00ae0227003:autoScalingGroupName/{GROUP}",
        "AutoScalingGroupName": GROUP,
        "CapacityToTerminate": [
            {"AvailabilityZone": zone, "Capacity": count, "InstanceMarketOption": "on-demand"}
            for zone, count in capacity
        ],
        "Instances": [
            {
                "AvailabilityZone": zone,
                "InstanceId": instance_id,
                "InstanceType": "c5a.2xlarge",
                "InstanceMarketOption": "on-demand",
            }
            for instance_id, zone in instances
        ],
        "Cause": cause,
        **extra,
    }


def publish(instance_id: str, *, load: float, meetings: float, age: timedelta = timedelta(minutes=1)) -> None:
    """What the server's publisher (userdata/bbb/load_figure.py) sends, per InstanceId."""
    dimensions = [{"Name": "AutoScalingGroupName", "Value": GROUP}, {"Name": "InstanceId", "Value": instance_id}]
    when = datetime.now(timezone.utc) - age
    boto3.client("cloudwatch").put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {"MetricName": "Load", "Dimensions": dimensions, "Value": load, "Unit": "Count", "Timestamp": when},
            {"MetricName": "Meetings", "Dimensions": dimensions, "Value": meetings, "Unit": "Count", "Timestamp": when},
        ],
    )


def invoke(policy: Any, payload: dict[str, Any]) -> dict[str, Any]:
    return policy.handler(payload, FakeContext("BbbTermination"))


def test_the_idle_server_goes_before_a_busy_one_even_at_equal_load(policy: Any) -> None:
    """A meeting just created (nobody joined yet) has load 0 but must not be ended by a scale-in."""
    publish("i-0aaa0000000000001", load=250, meetings=3)
    publish("i-0aab0000000000002", load=0, meetings=1)
    publish("i-0zzz0000000000003", load=0, meetings=0)
    answer = invoke(
        policy,
        event(
            [
                ("i-0aaa0000000000001", "eu-west-1a"),
                ("i-0aab0000000000002", "eu-west-1a"),
                ("i-0zzz0000000000003", "eu-west-1a"),
            ],
            [("eu-west-1a", 1)],
        ),
    )
    assert answer == {"InstanceIDs": ["i-0zzz0000000000003"]}


def test_among_busy_servers_the_lowest_load_goes_first_and_exactly_the_capacity_is_returned(policy: Any) -> None:
    publish("i-0a00000000000000a", load=300, meetings=4)
    publish("i-0b00000000000000b", load=40, meetings=1)
    publish("i-0c00000000000000c", load=90, meetings=2)
    answer = invoke(
        policy,
        event(
            [
                ("i-0a00000000000000a", "eu-west-1b"),
                ("i-0b00000000000000b", "eu-west-1b"),
                ("i-0c00000000000000c", "eu-west-1b"),
            ],
            [("eu-west-1b", 2)],
        ),
    )
    assert answer == {"InstanceIDs": ["i-0b00000000000000b", "i-0c00000000000000c"]}


def test_zone_balance_yields_to_meetings_but_not_to_load(policy: Any) -> None:
    """Auto Scaling asks for one in 1b; 1b has only a busy server, 1c an idle one: the idle one goes. Among idle
    servers the asked-for zone wins even over a lower load elsewhere."""
    publish("i-0busyb000000000001", load=5, meetings=1)
    publish("i-0idlec000000000002", load=0, meetings=0)
    answer = invoke(
        policy,
        event(
            [("i-0busyb000000000001", "eu-west-1b"), ("i-0idlec000000000002", "eu-west-1c")],
            [("eu-west-1b", 1)],
        ),
    )
    assert answer == {"InstanceIDs": ["i-0idlec000000000002"]}

    publish("i-0idleb000000000003", load=3, meetings=0)
    answer = invoke(
        policy,
        event(
            [("i-0idlec000000000002", "eu-west-1c"), ("i-0idleb000000000003", "eu-west-1b")],
            [("eu-west-1b", 1)],
        ),
    )
    assert answer == {"InstanceIDs": ["i-0idleb000000000003"]}


def test_each_zone_gives_as_many_servers_as_auto_scaling_asks_of_it(policy: Any) -> None:
    """One from 1a and one from 1b: the second idlest server of 1a must not stand in for 1b's (zone balance is
    what keeps Auto Scaling from rebalancing, i.e. launching and draining again right after)."""
    publish("i-0a10000000000001", load=0, meetings=0)
    publish("i-0a20000000000002", load=1, meetings=0)
    publish("i-0b10000000000003", load=9, meetings=0)
    instances = [("i-0a10000000000001", "eu-west-1a"), ("i-0a20000000000002", "eu-west-1a")]
    answer = invoke(
        policy, event([*instances, ("i-0b10000000000003", "eu-west-1b")], [("eu-west-1a", 1), ("eu-west-1b", 1)])
    )
    assert answer == {"InstanceIDs": ["i-0a10000000000001", "i-0b10000000000003"]}

    # Two from 1a: both of 1a's servers, before an idler one elsewhere.
    publish("i-0b20000000000004", load=0, meetings=0)
    answer = invoke(policy, event([*instances, ("i-0b20000000000004", "eu-west-1b")], [("eu-west-1a", 2)]))
    assert answer == {"InstanceIDs": ["i-0a10000000000001", "i-0a20000000000002"]}


def test_a_server_without_a_recent_figure_ranks_between_idle_and_busy(policy: Any) -> None:
    publish("i-0stale00000000001", load=0, meetings=0, age=timedelta(minutes=20))  # older than 5 min: unknown
    publish("i-0busy000000000002", load=1, meetings=1)
    publish("i-0idle000000000003", load=0, meetings=0)
    instances = [
        ("i-0busy000000000002", "eu-west-1a"),
        ("i-0stale00000000001", "eu-west-1a"),
        ("i-0silent0000000004", "eu-west-1a"),
        ("i-0idle000000000003", "eu-west-1a"),
    ]
    answer = invoke(policy, event(instances, [("eu-west-1a", 3)], cause="INSTANCE_REFRESH"))
    assert answer == {"InstanceIDs": ["i-0idle000000000003", "i-0silent0000000004", "i-0stale00000000001"]}

    # The tier decides, not the load or the instance id that break ties: an unknown server whose id sorts first
    # still goes after an idle one, and a busy server at load 0 (a meeting nobody joined yet) after an unknown one.
    publish("i-0zidle00000000005", load=0, meetings=0)
    publish("i-0abusy00000000006", load=0, meetings=1)
    for pair, first in (
        (("i-0silent0000000004", "i-0zidle00000000005"), "i-0zidle00000000005"),
        (("i-0abusy00000000006", "i-0silent0000000004"), "i-0silent0000000004"),
    ):
        answer = invoke(policy, event([(iid, "eu-west-1a") for iid in pair], [("eu-west-1a", 1)]))
        assert answer == {"InstanceIDs": [first]}


def test_the_newest_figure_counts(policy: Any) -> None:
    """A server whose meeting ended a minute ago is idle now, whatever it published four minutes ago."""
    publish("i-0ended00000000001", load=40, meetings=2, age=timedelta(minutes=4))
    publish("i-0ended00000000001", load=0, meetings=0, age=timedelta(minutes=1))
    publish("i-0busy000000000002", load=5, meetings=1)
    instances = [("i-0busy000000000002", "eu-west-1a"), ("i-0ended00000000001", "eu-west-1a")]
    assert invoke(policy, event(instances, [("eu-west-1a", 1)])) == {"InstanceIDs": ["i-0ended00000000001"]}


def test_a_server_with_only_one_of_its_two_figures_is_unknown(policy: Any) -> None:
    """Meetings 0 without a Load (a lost datapoint) is not "idle": it ranks after a server that sent both."""
    dimensions = [
        {"Name": "AutoScalingGroupName", "Value": GROUP},
        {"Name": "InstanceId", "Value": "i-0aaahalf000000001"},
    ]
    boto3.client("cloudwatch").put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": "Meetings",
                "Dimensions": dimensions,
                "Value": 0,
                "Unit": "Count",
                "Timestamp": datetime.now(timezone.utc) - timedelta(minutes=1),
            }
        ],
    )
    publish("i-0idle000000000002", load=0, meetings=0)
    instances = [("i-0aaahalf000000001", "eu-west-1a"), ("i-0idle000000000002", "eu-west-1a")]
    assert invoke(policy, event(instances, [("eu-west-1a", 1)])) == {"InstanceIDs": ["i-0idle000000000002"]}


def test_a_large_group_is_read_in_calls_of_at_most_500_queries(policy: Any) -> None:
    """GetMetricData takes at most 500 queries per call: 251 candidates (two metrics each) need two calls."""
    client = aws.client("cloudwatch")
    queries: list[int] = []
    client.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **_: queries.append(len(params["MetricDataQueries"])),
    )
    instances = [(f"i-0{n:016x}", "eu-west-1a") for n in range(251)]
    assert invoke(policy, event(instances, [("eu-west-1a", 1)])) == {"InstanceIDs": ["i-00000000000000000"]}
    assert queries == [500, 2]


def test_a_figure_younger_than_five_minutes_counts(policy: Any) -> None:
    """The servers publish every 60 s; a figure 4.5 minutes old still ranks its server as idle."""
    publish("i-0idle000000000001", load=0, meetings=0, age=timedelta(minutes=4, seconds=30))
    answer = invoke(
        policy,
        event([("i-0aaasilent0000002", "eu-west-1a"), ("i-0idle000000000001", "eu-west-1a")], [("eu-west-1a", 1)]),
    )
    assert answer == {"InstanceIDs": ["i-0idle000000000001"]}


def test_capacity_over_several_entries_and_market_options_adds_up(policy: Any) -> None:
    for n in range(4):
        publish(f"i-0{n}000000000000000", load=10 * n, meetings=0)
    answer = invoke(
        policy,
        event(
            [(f"i-0{n}000000000000000", "eu-west-1a") for n in range(4)],
            [("eu-west-1a", 1), ("eu-west-1a", 1)],
            HasMoreInstances=False,
        ),
    )
    assert answer == {"InstanceIDs": ["i-00000000000000000", "i-01000000000000000"]}


def test_cloudwatch_failing_returns_the_suggestion_so_scale_in_and_refreshes_continue(policy: Any) -> None:
    """An empty list would make Auto Scaling retry forever (an instance refresh fails after an hour); the drain
    keeps AWS's own choice harmless."""
    client = aws.client("cloudwatch")
    with Stubber(client) as stub:
        stub.add_client_error("get_metric_data", service_error_code="AccessDenied", http_status_code=403)
        answer = invoke(
            policy,
            event(
                [("i-0a00000000000000a", "eu-west-1a"), ("i-0b00000000000000b", "eu-west-1a")],
                [("eu-west-1a", 1)],
                cause="MAX_INSTANCE_LIFETIME",
            ),
        )
        stub.assert_no_pending_responses()
    assert answer == {"InstanceIDs": ["i-0a00000000000000a", "i-0b00000000000000b"]}


def test_a_missing_namespace_returns_the_suggestion(policy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken deployment must not stall scale-in either: Auto Scaling's own choice, not an empty list."""
    monkeypatch.delenv("METRICS_NAMESPACE")
    instances = [("i-0a00000000000000a", "eu-west-1a"), ("i-0b00000000000000b", "eu-west-1b")]
    answer = invoke(policy, event(instances, [("eu-west-1a", 1)]))
    assert answer == {"InstanceIDs": ["i-0a00000000000000a", "i-0b00000000000000b"]}


def test_the_request_reads_exactly_both_metrics_per_candidate(policy: Any) -> None:
    client = aws.client("cloudwatch")
    with Stubber(client) as stub:
        stub.add_response(
            "get_metric_data",
            {
                "MetricDataResults": [
                    {"Id": "l0", "Label": "Load", "Values": [7.0], "StatusCode": "Complete"},
                    {"Id": "m0", "Label": "Meetings", "Values": [0.0], "StatusCode": "Complete"},
                ]
            },
            {
                "MetricDataQueries": [
                    {
                        "Id": f"{prefix}0",
                        "ReturnData": True,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": NAMESPACE,
                                "MetricName": metric,
                                "Dimensions": [
                                    {"Name": "AutoScalingGroupName", "Value": GROUP},
                                    {"Name": "InstanceId", "Value": "i-0only0000000000001"},
                                ],
                            },
                            "Period": 60,
                            "Stat": "Maximum",
                        },
                    }
                    for prefix, metric in (("l", "Load"), ("m", "Meetings"))
                ],
                "StartTime": _Within(),
                "EndTime": _Within(),
                "ScanBy": "TimestampDescending",
            },
        )
        answer = invoke(policy, event([("i-0only0000000000001", "eu-west-1a")], [("eu-west-1a", 1)]))
        stub.assert_no_pending_responses()
    assert answer == {"InstanceIDs": ["i-0only0000000000001"]}


class _Within:
    """A timestamp within the last few minutes (the request's window is now - 5 min .. now)."""

    def __eq__(self, other: object) -> bool:
        now = datetime.now(timezone.utc)
        return isinstance(other, datetime) and now - timedelta(minutes=6) <= other <= now

    def __hash__(self) -> int:
        return 0


def test_no_candidates_or_no_capacity_is_answered_without_reading_metrics(policy: Any) -> None:
    client = aws.client("cloudwatch")
    calls: list[str] = []  # the handler answers Auto Scaling's suggestion on a failed read too: count the calls
    client.meta.events.register("provide-client-params.cloudwatch", lambda model, **_: calls.append(model.name))
    with Stubber(client) as stub:  # any call would fail: nothing is queued
        assert invoke(policy, event([], [("eu-west-1a", 1)])) == {"InstanceIDs": []}
        assert invoke(policy, event([("i-0a00000000000000a", "eu-west-1a")], [])) == {
            "InstanceIDs": ["i-0a00000000000000a"]
        }
        stub.assert_no_pending_responses()
    assert calls == []
