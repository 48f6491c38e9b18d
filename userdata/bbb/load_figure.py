"""This BBB server's load figure from its `getMeetings` answer, as CloudWatch MetricData JSON (docs/scaling.md).

Reads the getMeetings XML on stdin, prints the JSON for `aws cloudwatch put-metric-data --metric-data`:
Load per group (the fleet's target-tracking signal, Average = load per server), and Load per InstanceId
(what the least-loaded termination policy reads, with the Meetings per InstanceId that metric_data.py
publishes). Ubuntu's python3, standard library only.

    load = sum over every meeting (breakout rooms too: they carry their own audio and webcams) of
             participant x participantCount + voice x voiceParticipantCount + listener x listenerCount
           + webcam x videoCount + webcamViewer x videoCount x (participantCount - 1)
           + screenShareViewer x (participantCount - 1), if an attendee isPresenter

getMeetings does not report screen sharing (BBB 3.0: no such field per meeting or attendee), so the presenter
stands in for it: a meeting with a presenter may be sharing, and a share goes to every other participant.
videoCount is the meeting's webcams; where it is absent, the attendees with hasVideo=true are counted.
The weights arrive as a JSON object (params.env LOAD_WEIGHTS, rendered from cdk.json's bbb.loadWeights).
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "common"))
from contract import LOAD_METRIC  # userdata/common, shipped in the bundle

WEIGHTS = ("participant", "voice", "listener", "webcam", "webcamViewer", "screenShareViewer")


class SourceError(ValueError):
    """The input (weights or getMeetings answer) is not what the publisher expects; says what was wrong."""


def parse_weights(text: str) -> dict[str, float]:
    try:
        raw = json.loads(text)
    except ValueError as error:
        raise SourceError(f"LOAD_WEIGHTS is not JSON: {error}") from error
    if not isinstance(raw, dict) or sorted(raw) != sorted(WEIGHTS):
        raise SourceError(f"LOAD_WEIGHTS must be an object with exactly {', '.join(WEIGHTS)}")
    weights = {}
    for name in WEIGHTS:
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SourceError(f"LOAD_WEIGHTS.{name} {value!r} must be a number of at least 0")
        weights[name] = float(value)
    return weights


def _count(meeting: ET.Element, tag: str) -> int:
    text = (meeting.findtext(tag) or "0").strip()
    if not text.isdigit():
        raise SourceError(f"{tag} {text!r} is not a number")
    return int(text)


def _true(node: ET.Element, tag: str) -> bool:
    return (node.findtext(tag) or "false").strip().lower() == "true"


def meetings_and_load(xml_text: str, weights: dict[str, float]) -> tuple[int, float]:
    """(every meeting on this server, breakout rooms included; its load in load units)."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as error:
        raise SourceError(f"getMeetings did not return XML: {error}") from error
    if (root.findtext("returncode") or "").strip() != "SUCCESS":
        message = (root.findtext("message") or root.findtext("messageKey") or "no returncode").strip()
        raise SourceError(f"getMeetings failed: {message}")
    meetings = 0
    load = 0.0
    for meeting in root.findall("meetings/meeting"):
        meetings += 1
        participants = _count(meeting, "participantCount")
        attendees = meeting.findall("attendees/attendee")
        if meeting.find("videoCount") is not None:
            webcams = _count(meeting, "videoCount")
        else:
            webcams = sum(1 for attendee in attendees if _true(attendee, "hasVideo"))
        load += meeting_load(
            weights,
            participants=participants,
            voice=_count(meeting, "voiceParticipantCount"),
            listeners=_count(meeting, "listenerCount"),
            webcams=webcams,
            presenting=any(_true(attendee, "isPresenter") for attendee in attendees),
        )
    return meetings, round(load, 2)


def meeting_load(
    weights: dict[str, float], *, participants: float, voice: float, listeners: float, webcams: float, presenting: bool
) -> float:
    """One meeting's load units (the formula above; bench/capacity_sim.py models a day with the same one)."""
    others = max(participants - 1, 0)
    return (
        weights["participant"] * participants
        + weights["voice"] * voice
        + weights["listener"] * listeners
        + weights["webcam"] * webcams
        + weights["webcamViewer"] * webcams * others
        + (weights["screenShareViewer"] * others if presenting else 0.0)
    )


def metric_data(xml_text: str, weights: dict[str, float], asg: str, instance_id: str) -> list[dict[str, Any]]:
    _meetings, load = meetings_and_load(xml_text, weights)
    group = [{"Name": "AutoScalingGroupName", "Value": asg}]
    instance = [*group, {"Name": "InstanceId", "Value": instance_id}]
    return [
        {"MetricName": LOAD_METRIC, "Unit": "Count", "Value": load, "Dimensions": group},
        {"MetricName": LOAD_METRIC, "Unit": "Count", "Value": load, "Dimensions": instance},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--asg", required=True)
    parser.add_argument("--instance-id", required=True)
    parser.add_argument("--weights", required=True, help="JSON object of the six weights (params.env LOAD_WEIGHTS)")
    args = parser.parse_args(argv)
    try:
        data = metric_data(sys.stdin.read(), parse_weights(args.weights), args.asg, args.instance_id)
    except SourceError as error:
        print(f"load_figure: {error}", file=sys.stderr)
        return 1
    json.dump(data, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
