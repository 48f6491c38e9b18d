"""Turn a BBB `getMeetings` answer or the relay's Prometheus `/metrics` into CloudWatch MetricData JSON.

Reads the source document on stdin and prints the JSON for `aws cloudwatch put-metric-data --metric-data
file://...`. Runs on the hosts with Ubuntu's python3 (3.10), standard library only. Metric names and
dimensions are the ones in docs/host-contract.md.

    bbb-meetings      Meetings and Participants (dimension AutoScalingGroupName)
    relay-allocations Allocations (AutoScalingGroupName; and AutoScalingGroupName + InstanceId)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from typing import Any

from contract import ALLOCATIONS_METRIC, MEETINGS_METRIC, PARTICIPANTS_METRIC  # shipped beside this file

# A Prometheus text-format sample line: name, optional {labels}, value (timestamps are not emitted by the relay).
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\d+)?$")


class SourceError(ValueError):
    """The input is not what the publisher expects; the message says what was wrong."""


def count_meetings(xml_text: str) -> tuple[int, int]:
    """(meetings, participants) on this server, breakout rooms excluded as Scalelite's poller does."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as error:
        raise SourceError(f"getMeetings did not return XML: {error}") from error
    if (root.findtext("returncode") or "").strip() != "SUCCESS":
        message = (root.findtext("message") or root.findtext("messageKey") or "no returncode").strip()
        raise SourceError(f"getMeetings failed: {message}")
    meetings = participants = 0
    for meeting in root.findall("meetings/meeting"):
        if (meeting.findtext("isBreakout") or "false").strip().lower() == "true":
            continue
        meetings += 1
        count = (meeting.findtext("participantCount") or "0").strip()
        if not count.isdigit():
            raise SourceError(f"participantCount {count!r} is not a number")
        participants += int(count)
    return meetings, participants


def sum_samples(metrics_text: str, name: str) -> float:
    """Sum of every sample of gauge `name` (all label sets) in a Prometheus text exposition."""
    total = 0.0
    found = False
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line.strip())
        if match and match.group(1) == name:
            try:
                total += float(match.group(3))
            except ValueError as error:
                raise SourceError(f"sample {line!r} has no numeric value") from error
            found = True
    if not found:
        raise SourceError(f"metric {name!r} not found in the relay's /metrics")
    return total


def _datum(name: str, value: float, dimensions: dict[str, str]) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Unit": "Count",
        "Value": value,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
    }


def bbb_metric_data(xml_text: str, asg: str) -> list[dict[str, Any]]:
    meetings, participants = count_meetings(xml_text)
    dims = {"AutoScalingGroupName": asg}
    return [_datum(MEETINGS_METRIC, meetings, dims), _datum(PARTICIPANTS_METRIC, participants, dims)]


def relay_metric_data(metrics_text: str, asg: str, instance_id: str, metric: str) -> list[dict[str, Any]]:
    allocations = sum_samples(metrics_text, metric)
    return [
        _datum(ALLOCATIONS_METRIC, allocations, {"AutoScalingGroupName": asg}),
        _datum(ALLOCATIONS_METRIC, allocations, {"AutoScalingGroupName": asg, "InstanceId": instance_id}),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    bbb = sub.add_parser("bbb-meetings")
    bbb.add_argument("--asg", required=True)
    relay = sub.add_parser("relay-allocations")
    relay.add_argument("--asg", required=True)
    relay.add_argument("--instance-id", required=True)
    relay.add_argument("--metric", required=True, help="the relay's allocations gauge name")
    args = parser.parse_args(argv)
    source = sys.stdin.read()
    try:
        if args.command == "bbb-meetings":
            data = bbb_metric_data(source, args.asg)
        else:
            data = relay_metric_data(source, args.asg, args.instance_id, args.metric)
    except SourceError as error:
        print(f"metric_data: {error}", file=sys.stderr)
        return 1
    json.dump(data, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
