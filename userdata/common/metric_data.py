"""Turn a BBB `getMeetings` answer or the relay's Prometheus `/metrics` into CloudWatch MetricData JSON.

Reads the source document on stdin and prints the JSON for `aws cloudwatch put-metric-data --metric-data`.
Runs on the hosts with Ubuntu's python3 (3.10), standard library only. Metric names and dimensions are the
ones in docs/host-contract.md; every name published is in BBB_METRICS or RELAY_METRICS below (the stacks'
dashboard tests check their widgets against these tables).

    bbb-meetings  Meetings, Participants, VideoStreams (AutoScalingGroupName; Meetings and Participants also
                  per InstanceId), RecordingsWaiting, RecordingsFailed, RecordingSpoolAge, CertificateDaysLeft
    relay         the relay's figures (AutoScalingGroupName; Allocations also per InstanceId). Counters are
                  published as the increase since the previous run, kept in a state file: the relay's
                  counters are totals since it started, CloudWatch wants what happened in this minute.

Why a timer and not the CloudWatch agent's Prometheus scraper: see cdk_constructs/monitoring/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from contract import ALLOCATIONS_METRIC, MEETINGS_METRIC, PARTICIPANTS_METRIC  # shipped beside this file

# A Prometheus text-format sample line: name, optional {labels}, value (timestamps are not emitted by the relay).
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

ASG = "AutoScalingGroupName"
INSTANCE = "InstanceId"

# CloudWatch name -> unit, for what a BBB host publishes.
BBB_METRICS = {
    MEETINGS_METRIC: "Count",
    PARTICIPANTS_METRIC: "Count",
    "VideoStreams": "Count",
    "RecordingsWaiting": "Count",
    "RecordingsFailed": "Count",
    "RecordingSpoolAge": "Seconds",
    "CertificateDaysLeft": "None",  # days until the server's Let's Encrypt certificate expires
}
# CloudWatch name -> (Prometheus sample name, {label: allowed values} or {}, unit, kind). The relay's names are
# in relay/ops/metrics.py; `gauge` values are published as read, `counter` values as the increase since last run.
RELAY_METRICS: dict[str, tuple[str, dict[str, tuple[str, ...]], str, str]] = {
    ALLOCATIONS_METRIC: ("turn_allocations", {}, "Count", "gauge"),
    "TcpConnections": ("turn_connections", {"transport": ("tcp",)}, "Count", "gauge"),
    "TlsConnections": ("turn_connections", {"transport": ("tls",)}, "Count", "gauge"),
    "Draining": ("turn_draining", {}, "Count", "gauge"),
    "AllocationsCreated": ("turn_allocations_created_total", {}, "Count", "counter"),
    "PacketsClientToPeer": ("turn_packets_total", {"direction": ("client_to_peer",)}, "Count", "counter"),
    "PacketsPeerToClient": ("turn_packets_total", {"direction": ("peer_to_client",)}, "Count", "counter"),
    "BytesClientToPeer": ("turn_bytes_total", {"direction": ("client_to_peer",)}, "Bytes", "counter"),
    "BytesPeerToClient": ("turn_bytes_total", {"direction": ("peer_to_client",)}, "Bytes", "counter"),
    "AuthFailures": ("turn_auth_failures_total", {}, "Count", "counter"),
    "DeniedPeers": ("turn_denied_peers_total", {}, "Count", "counter"),
    "QuotaRejections": ("turn_quota_rejections_total", {"quota": ("total", "user")}, "Count", "counter"),
    "BandwidthDrops": ("turn_quota_rejections_total", {"quota": ("bandwidth",)}, "Count", "counter"),
    "MalformedPackets": ("turn_malformed_packets_total", {}, "Count", "counter"),
    "RateLimited": ("turn_rate_limited_total", {}, "Count", "counter"),
    "ServerErrors": ("turn_requests_total", {"result": ("server_error",)}, "Count", "counter"),
}
# Set when the relay process starts (prometheus_client's process collector): a new value means the relay
# restarted and its counters began again at zero.
RELAY_START = "process_start_time_seconds"
# Per-instance series too (bounded by the group's maximum size): the dashboard's per-server lines, the drain.
PER_INSTANCE = {MEETINGS_METRIC, PARTICIPANTS_METRIC, ALLOCATIONS_METRIC}


class SourceError(ValueError):
    """The input is not what the publisher expects; the message says what was wrong."""


# --- BBB ----------------------------------------------------------------------------------------------------


def _count(meeting: ET.Element, field: str) -> int:
    count = (meeting.findtext(field) or "0").strip()
    if not count.isdigit():
        raise SourceError(f"{field} {count!r} is not a number")
    return int(count)


def meeting_counts(xml_text: str) -> dict[str, int]:
    """Meetings, Participants and VideoStreams on this server; breakout rooms are left out as Scalelite's poller
    does (their users are counted in the parent meeting)."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as error:
        raise SourceError(f"getMeetings did not return XML: {error}") from error
    if (root.findtext("returncode") or "").strip() != "SUCCESS":
        message = (root.findtext("message") or root.findtext("messageKey") or "no returncode").strip()
        raise SourceError(f"getMeetings failed: {message}")
    counts = {MEETINGS_METRIC: 0, PARTICIPANTS_METRIC: 0, "VideoStreams": 0}
    for meeting in root.findall("meetings/meeting"):
        if (meeting.findtext("isBreakout") or "false").strip().lower() == "true":
            continue
        counts[MEETINGS_METRIC] += 1
        counts[PARTICIPANTS_METRIC] += _count(meeting, "participantCount")
        counts["VideoStreams"] += _count(meeting, "videoCount")
    return counts


def count_meetings(xml_text: str) -> tuple[int, int]:
    """(meetings, participants) on this server."""
    counts = meeting_counts(xml_text)
    return counts[MEETINGS_METRIC], counts[PARTICIPANTS_METRIC]


def recording_counts(root: Path, *, transfer: bool) -> dict[str, int]:
    """Recordings on this server that are not finished yet, and those that failed for good.

    The same rules as the drain's RECORDINGS_SCRIPT (lambdas/common/host_commands.py, a test runs both on the
    same trees): ended but not archived, archived but not sanity-checked and published, and with Scalelite
    (`transfer`) published but not handed to the spool (`published/<id>-sender.done`), plus tarballs still
    in the work directory. A recording with any `*.fail` marker counts as failed only.
    """
    status = root / "status"
    waiting = failed = 0
    waiting += sum(1 for _ in status.glob("ended/*.done"))
    for archived in sorted(status.glob("archived/*.done")):
        rid = archived.name[: -len(".done")]
        if any(status.glob(f"*/{rid}.fail")) or any(status.glob(f"*/{rid}-*.fail")):
            failed += 1
            continue
        sender = status / "published" / f"{rid}-sender.done"
        published = any(p != sender for p in status.glob(f"published/{rid}-*.done"))
        if not (status / "sanity" / f"{rid}.done").exists() or not published or (transfer and not sender.exists()):
            waiting += 1
    if transfer:
        waiting += sum(1 for _ in (root / "scalelite").glob("*.tar"))
    return {"RecordingsWaiting": waiting, "RecordingsFailed": failed}


def spool_age(spool: Path, now: float) -> float:
    """Seconds since the oldest file in the Scalelite spool arrived (0 when empty): the importer removes each
    tarball once imported, so an old one means the importer is stuck or refuses it."""
    if not spool.is_dir():
        raise SourceError(f"the recordings spool {spool} is not mounted")
    oldest = min((entry.stat().st_mtime for entry in os.scandir(spool) if entry.is_file()), default=now)
    return max(0.0, round(now - oldest))


def certificate_days_left(not_after: str, now: float) -> float:
    """Days until `not_after` (openssl's `-enddate` form, e.g. "Mar  5 12:00:00 2027 GMT"), one decimal."""
    try:
        expires = ssl.cert_time_to_seconds(not_after.strip())
    except ValueError as error:
        raise SourceError(f"certificate end date {not_after!r} is not openssl's -enddate form") from error
    return round((expires - now) / 86400, 1)


def bbb_metric_data(
    xml_text: str,
    asg: str,
    *,
    instance_id: str | None = None,
    recordings: Path | None = None,
    transfer: bool = False,
    spool: Path | None = None,
    certificate_not_after: str | None = None,
    now: float | None = None,
) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    values: dict[str, float] = dict(meeting_counts(xml_text))
    if recordings is not None:
        values.update(recording_counts(recordings, transfer=transfer))
    if spool is not None:
        try:
            values["RecordingSpoolAge"] = spool_age(spool, now)
        except (SourceError, OSError) as error:  # the scaling signal above must still go out
            print(f"metric_data: RecordingSpoolAge not published: {error}", file=sys.stderr)
    if certificate_not_after is not None:
        try:
            values["CertificateDaysLeft"] = certificate_days_left(certificate_not_after, now)
        except SourceError as error:
            print(f"metric_data: CertificateDaysLeft not published: {error}", file=sys.stderr)
    return _data(values, BBB_METRICS, asg, instance_id)


# --- relay --------------------------------------------------------------------------------------------------


def parse_samples(metrics_text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in a Prometheus text exposition."""
    samples = []
    for line in metrics_text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match:
            raise SourceError(f"line {line!r} is not a Prometheus sample")
        try:
            value = float(match.group(3))
        except ValueError as error:
            raise SourceError(f"sample {line!r} has no numeric value") from error
        samples.append((match.group(1), dict(_LABEL.findall(match.group(2) or "")), value))
    return samples


def sum_samples(metrics_text: str, name: str, labels: dict[str, tuple[str, ...]] | None = None) -> float:
    """Sum of the samples of `name` whose labels match `labels` (all label sets when empty)."""
    total = 0.0
    found = False
    for sample, sample_labels, value in parse_samples(metrics_text):
        if sample == name and all(sample_labels.get(k) in allowed for k, allowed in (labels or {}).items()):
            total += value
            found = True
    if not found:
        raise SourceError(f"metric {name!r} not found in the relay's /metrics")
    return total


def relay_values(metrics_text: str, allocations_metric: str = "turn_allocations") -> dict[str, float]:
    """Every RELAY_METRICS figure as the relay reports it now (counters as totals since it started)."""
    values = {}
    for name, (sample, labels, _unit, _kind) in RELAY_METRICS.items():
        values[name] = sum_samples(metrics_text, allocations_metric if name == ALLOCATIONS_METRIC else sample, labels)
    return values


def relay_metric_data(
    metrics_text: str,
    asg: str,
    instance_id: str,
    *,
    allocations_metric: str = "turn_allocations",
    previous: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(MetricData, state to keep for the next run). Counters are published as the increase since `previous`
    (the state the last run returned); without one (first run) only gauges are published."""
    values = relay_values(metrics_text, allocations_metric)
    start = next((v for n, _, v in parse_samples(metrics_text) if n == RELAY_START), None)
    state = {"start": start, "counters": {n: values[n] for n, spec in RELAY_METRICS.items() if spec[3] == "counter"}}
    published = {n: v for n, v in values.items() if RELAY_METRICS[n][3] == "gauge"}
    if previous and isinstance(previous.get("counters"), dict):
        restarted = start is not None and previous.get("start") != start
        for name, total in state["counters"].items():
            before = previous["counters"].get(name)
            if not isinstance(before, (int, float)):
                continue
            # A restart (or a total that went down) starts from zero again: the whole total is new.
            published[name] = total if restarted or total < before else total - before
    units = {name: spec[2] for name, spec in RELAY_METRICS.items()}
    return _data(published, units, asg, instance_id), state


# --- output -------------------------------------------------------------------------------------------------


def _datum(name: str, value: float, unit: str, dimensions: dict[str, str]) -> dict[str, Any]:
    return {
        "MetricName": name,
        "Unit": unit,
        "Value": value,
        "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
    }


def _data(values: dict[str, float], units: dict[str, str], asg: str, instance_id: str | None) -> list[dict[str, Any]]:
    data = [_datum(name, value, units[name], {ASG: asg}) for name, value in values.items()]
    if instance_id:
        data += [
            _datum(name, value, units[name], {ASG: asg, INSTANCE: instance_id})
            for name, value in values.items()
            if name in PER_INSTANCE
        ]
    return data


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # first run, or a damaged file: this minute publishes gauges only
    return state if isinstance(state, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    bbb = sub.add_parser("bbb-meetings")
    bbb.add_argument("--asg", required=True)
    bbb.add_argument("--instance-id", help="also publish Meetings and Participants per instance")
    bbb.add_argument("--recordings", type=Path, help="BBB's recording directory (/var/bigbluebutton/recording)")
    bbb.add_argument("--transfer", action="store_true", help="recordings go to Scalelite (fleet servers)")
    bbb.add_argument("--spool", type=Path, help="the mounted Scalelite spool: publish RecordingSpoolAge")
    bbb.add_argument("--certificate-not-after", help="the HTTPS certificate's end date (openssl x509 -enddate)")
    relay = sub.add_parser("relay")
    relay.add_argument("--asg", required=True)
    relay.add_argument("--instance-id", required=True)
    relay.add_argument("--metric", default="turn_allocations", help="the relay's allocations gauge name")
    relay.add_argument(
        "--state",
        type=Path,
        required=True,
        help="counters of the last run; the new state is written to STATE.next (the caller "
        "moves it into place once CloudWatch accepted the data)",
    )
    args = parser.parse_args(argv)
    source = sys.stdin.read()
    try:
        if args.command == "bbb-meetings":
            data = bbb_metric_data(
                source,
                args.asg,
                instance_id=args.instance_id,
                recordings=args.recordings,
                transfer=args.transfer,
                spool=args.spool,
                certificate_not_after=args.certificate_not_after,
            )
        else:
            data, state = relay_metric_data(
                source, args.asg, args.instance_id, allocations_metric=args.metric, previous=_read_state(args.state)
            )
            args.state.with_name(args.state.name + ".next").write_text(json.dumps(state))
    except SourceError as error:
        print(f"metric_data: {error}", file=sys.stderr)
        return 1
    json.dump(data, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
