"""`bbb-on-aws`: the operator command (probe, status, drain, cost). Each subcommand has --help and --json.

Exit status: 0 when everything checked is fine, 1 when a check failed or the action was refused, 2 for a
usage or configuration error (argparse's convention).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bbb_on_aws.checks import Failure
from bbb_on_aws.cost import Usage


class UsageError(Exception):
    """Bad arguments or configuration: printed without a traceback, exit status 2."""


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. turn.example.com:3478)")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bbb-on-aws", description="Operate a BigBlueButton-on-AWS deployment.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    aws = argparse.ArgumentParser(add_help=False)
    aws.add_argument("--region", help="AWS region (default: deployment.environment.region from cdk.json)")
    aws.add_argument("--environment", help="environment name (default: deployment.environment.name from cdk.json)")
    aws.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="cdk.json override as for cdk synth, e.g. -c deployment.environment.name=prod",
    )

    probe = commands.add_parser(
        "probe",
        parents=[json_flag, aws],
        help="diagnose a deployment or one TURN service from outside",
        description="Check a live deployment from outside (DNS, TURN over UDP/TCP/TLS with REST credentials, "
        "certificates, HTTPS), or one TURN service with --turn. Exit status 1 if any check fails.",
    )
    probe.add_argument("domain", nargs="?", help="the deployment's domain (deployment.domain.name)")
    probe.add_argument("--turn", type=_address, metavar="HOST:PORT", help="check only this TURN service")
    probe.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp", help="with --turn (default udp)")
    probe.add_argument("--tls-name", help="with --transport tls: the name the certificate must hold (default HOST)")
    probe.add_argument("--secret-file", type=Path, help="file holding the TURN shared secret")
    probe.add_argument("--secret-arn", help="Secrets Manager ARN or name of the TURN shared secret")
    probe.add_argument(
        "--peer",
        type=_address,
        metavar="HOST:PORT",
        help="a UDP peer that echoes (e.g. turnutils_peer): permission, channel and round trip to it",
    )
    probe.add_argument(
        "--bbb-server",
        action="append",
        default=[],
        metavar="HOST",
        help="a BBB server's name (bbb-<id>.fleet.<domain>): its HTTPS API and a TURN permission to it",
    )
    probe.add_argument(
        "--discover",
        action="store_true",
        help="with a domain: find the serving BBB servers (as --bbb-server) and TURN servers (each probed over UDP "
        "by its own name) from the AWS APIs",
    )
    probe.add_argument("--ca-file", help="trust this CA bundle too (a private CA)")
    probe.add_argument("--timeout", type=float, default=3.0, help="seconds per network step (default 3)")

    commands.add_parser(
        "status",
        parents=[json_flag, aws],
        help="fleets, instances, load, alarms and drains from the AWS APIs",
        description="The deployment as it is now: every fleet with its instances and lifecycle state (serving, "
        "draining since when, launching, warm pool), meetings/participants per BBB server, allocations per TURN "
        "server, alarms in ALARM and running launch/drain executions.",
    )

    drain = commands.add_parser(
        "drain",
        parents=[json_flag, aws],
        help="take one BBB or TURN server out of service (lifecycle drain)",
        description="Terminate one server through its Auto Scaling group, which fires the terminating lifecycle "
        "hook and so the same drain as a scale-in (BBB: no new meetings, wait for meetings and recordings; TURN: "
        "out of DNS, wait for allocations). Follow it with `status`.",
    )
    drain.add_argument("instance_id", help="the instance to drain (i-...)")
    drain.add_argument(
        "--replace",
        action="store_true",
        help="keep the group's desired capacity (a replacement launches) instead of decrementing it",
    )

    cost = commands.add_parser(
        "cost",
        parents=[json_flag],
        help="monthly estimate of the configuration in cdk.json",
        description="Monthly cost of cdk.json's configuration (with the same -c overrides as synth), per "
        "component at the fleets' min/desired/max, from the dated price table in the repo.",
    )
    cost.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override as for cdk synth, e.g. -c deployment.bbb.maxInstances=5",
    )
    defaults = Usage()
    for flag, field, text in (
        ("--participant-hours", "participant_hours", "participant-hours per month"),
        ("--down-kbps", "down_kbps", "media bitrate server -> participant, kbit/s"),
        ("--up-kbps", "up_kbps", "media bitrate participant -> server, kbit/s"),
        ("--relayed-share", "relayed_share", "share of participants relayed by TURN (0-1)"),
        ("--recordings-gb", "recordings_gb", "recordings stored on EFS, GB"),
        ("--database-gb", "database_gb", "Aurora storage, GB"),
        ("--log-gb", "log_gb", "CloudWatch Logs ingested per month, GB"),
        ("--nat-gb", "nat_gb", "data processed by the NAT gateways, GB"),
        ("--lcu", "lcu", "average load balancer capacity units"),
    ):
        cost.add_argument(
            flag,
            dest=field,
            type=float,
            default=getattr(defaults, field),
            help=f"{text} (default {getattr(defaults, field):g})",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return {"probe": _probe, "status": _status, "drain": _drain, "cost": _cost}[args.command](args)
    except UsageError as error:
        print(f"bbb-on-aws {args.command}: {error}", file=sys.stderr)
        return 2
    except ClientError as error:  # e.g. AccessDenied: name the call, so the missing permission is obvious
        info = error.response.get("Error", {})
        print(
            f"bbb-on-aws {args.command}: AWS refused {error.operation_name}: {info.get('Code')}: {info.get('Message')}",
            file=sys.stderr,
        )
        return 1
    except BotoCoreError as error:
        print(
            f"bbb-on-aws {args.command}: {error} (configure AWS credentials, e.g. AWS_PROFILE, and --region)",
            file=sys.stderr,
        )
        return 2


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def _probe(args: argparse.Namespace) -> int:
    from bbb_on_aws import domain_probe, secrets, turn_probe

    if (args.domain is None) == (args.turn is None):
        raise UsageError("give either a domain or --turn HOST:PORT")
    try:
        secret = secrets.load(args.secret_file, args.secret_arn, args.region)
    except Failure as failure:
        raise UsageError(f"{failure.detail}: {failure.fix}") from None
    if args.turn is not None:
        host, port = args.turn
        target = turn_probe.Target(host, port, args.transport, tls_name=args.tls_name, ca_file=args.ca_file)
        report = asyncio.run(turn_probe.probe_turn(target, secret=secret, peer=args.peer, timeout=args.timeout))
    else:
        servers, turn_servers = list(args.bbb_server), []
        if args.discover:
            from bbb_on_aws import status

            environment, region = _deployment(args)
            servers += status.serving_hosts(environment, region, args.domain)
            turn_servers = status.serving_hosts(environment, region, args.domain, roles=("turn",))
        report = asyncio.run(
            domain_probe.probe_domain(
                args.domain,
                secret=secret,
                bbb_servers=servers,
                turn_servers=turn_servers,
                peer=args.peer,
                ca_file=args.ca_file,
                timeout=args.timeout,
            )
        )
    _emit(args, report.as_json(), report.render())
    return 1 if report.failed else 0


def _deployment(args: argparse.Namespace) -> tuple[str, str]:
    """(environment name, region): flags first, else cdk.json with -c overrides."""
    if args.environment and args.region:
        return args.environment, args.region
    from bbb_on_aws import deployment_config

    try:
        config = deployment_config.load(args.context)
    except (deployment_config.ConfigError, deployment_config.OverrideError) as error:
        raise UsageError(str(error)) from None
    return args.environment or config.environment.name, args.region or config.environment.region


def _status(args: argparse.Namespace) -> int:
    from bbb_on_aws import status

    environment, region = _deployment(args)
    snapshot = status.collect(environment, region)
    _emit(args, snapshot.as_json(), snapshot.render())
    return 0


def _drain(args: argparse.Namespace) -> int:
    from bbb_on_aws import drain

    environment, region = _deployment(args)
    try:
        result = drain.drain(args.instance_id, environment=environment, region=region, replace=args.replace)
    except drain.DrainRefused as error:
        _emit(args, {"ok": False, "instance": args.instance_id, "error": str(error)}, f"refused: {error}")
        return 1
    _emit(args, {"ok": True, **result.as_json()}, result.render())
    return 0


def _cost(args: argparse.Namespace) -> int:
    from bbb_on_aws import cost, deployment_config

    usage = cost.Usage(**{f: getattr(args, f) for f in cost.Usage.__dataclass_fields__})
    try:
        config = deployment_config.load(args.context)
        result = cost.estimate(config, usage)
    except (deployment_config.ConfigError, deployment_config.OverrideError, cost.PriceError) as error:
        raise UsageError(str(error)) from None
    _emit(args, result, cost.render(result))
    return 0
