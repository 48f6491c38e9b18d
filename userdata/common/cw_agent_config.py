"""Print the CloudWatch agent configuration (JSON) for a BBB, TURN or cluster proxy host.

Log streams are named `<instance id>/<file>` inside the two log groups the stack creates and passes in (the
agent only creates streams, never groups, so retention and encryption stay the stack's). Host metrics are
limited to what an operator alarms on: memory and the disks BBB fills (recordings on /var/bigbluebutton),
with the Auto Scaling group as the only instance dimension, so a fleet is one series, not one per instance.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

# (file, stream name) per role; `system` files go to the system log group, the others to the application one.
SYSTEM_FILES = [
    ("/var/log/bbb-on-aws/bootstrap.log", "bootstrap"),
    ("/var/log/cloud-init-output.log", "cloud-init-output"),
    ("/var/log/syslog", "syslog"),
    ("/var/log/auth.log", "auth"),
]
ROLE_FILES = {
    "bbb": [
        # Not /var/log/bbb-on-aws/bbb-install.log: bbb-install traces (set -x) the secrets it generates.
        ("/var/log/bigbluebutton/bbb-web.log", "bbb-web"),
        ("/var/log/bbb-apps-akka/bbb-apps-akka.log", "bbb-apps-akka"),
        ("/var/log/bbb-fsesl-akka/bbb-fsesl-akka.log", "bbb-fsesl-akka"),
        ("/var/log/bbb-webrtc-sfu/bbb-webrtc-sfu.log", "bbb-webrtc-sfu"),
        ("/opt/freeswitch/var/log/freeswitch/freeswitch.log", "freeswitch"),
        ("/var/log/nginx/bigbluebutton.access.log", "nginx-access"),
        ("/var/log/nginx/error.log", "nginx-error"),
        ("/var/log/bigbluebutton/bbb-rap-worker.log", "bbb-rap-worker"),
        ("/var/log/bigbluebutton/post_publish.log", "post_publish"),
        # bbb-graphql-server/-middleware/-actions, bbb-webrtc-sfu, bbb-pads log to the journal only.
        ("/var/log/bbb-on-aws/journal.log", "journal"),
    ],
    "turn": [
        # bbb-turn-relay and its timers, from the journal.
        ("/var/log/bbb-on-aws/journal.log", "journal"),
    ],
    "proxy": [
        ("/var/log/nginx/access.log", "nginx-access"),
        ("/var/log/nginx/error.log", "nginx-error"),
        ("/var/log/bbb-on-aws/journal.log", "journal"),
    ],
}
# The units bbb-on-aws-journal-export.service copies to /var/log/bbb-on-aws/journal.log, per role.
JOURNAL_UNITS = {
    "bbb": ["bbb-graphql-*", "bbb-webrtc-sfu", "bbb-webrtc-recorder", "bbb-pads", "bbb-on-aws-*"],
    "turn": ["bbb-turn-relay", "bbb-turn-relay-peers", "bbb-turn-relay-secrets", "bbb-on-aws-*"],
    "proxy": ["nginx", "bbb-on-aws-*"],
}
DISKS = {"bbb": ["/", "/var/bigbluebutton"], "turn": ["/"], "proxy": ["/"]}


def _collect(files: list[tuple[str, str]], group: str) -> list[dict[str, Any]]:
    return [
        {
            "file_path": path,
            "log_group_name": group,
            "log_stream_name": f"{{instance_id}}/{stream}",
            "timezone": "UTC",
        }
        for path, stream in files
    ]


def agent_config(role: str, system_group: str, application_group: str, namespace: str) -> dict[str, Any]:
    if role not in ROLE_FILES:
        raise ValueError(f"role must be one of {sorted(ROLE_FILES)}, not {role!r}")
    return {
        # root: BBB's logs belong to several service users; the agent only reads them.
        "agent": {"metrics_collection_interval": 60, "run_as_user": "root", "omit_hostname": True},
        "logs": {
            "logs_collected": {
                "files": {
                    "collect_list": _collect(SYSTEM_FILES, system_group)
                    + _collect(ROLE_FILES[role], application_group)
                }
            }
        },
        "metrics": {
            "namespace": namespace,
            "append_dimensions": {"AutoScalingGroupName": "${aws:AutoScalingGroupName}"},
            "metrics_collected": {
                "mem": {"measurement": ["mem_used_percent"]},
                "disk": {
                    "measurement": ["used_percent"],
                    "resources": DISKS[role],
                    "drop_device": True,
                    "ignore_file_system_types": ["sysfs", "devtmpfs", "tmpfs", "overlay", "squashfs"],
                },
            },
        },
    }


def journal_units(role: str) -> str:
    """The `--unit=` arguments for the journal export unit's environment file."""
    return " ".join(f"--unit={unit}" for unit in JOURNAL_UNITS[role])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", required=True, choices=sorted(ROLE_FILES))
    parser.add_argument("--system-log-group")
    parser.add_argument("--application-log-group")
    parser.add_argument("--namespace")
    parser.add_argument("--journal-units", action="store_true", help="print the journal export units instead")
    args = parser.parse_args(argv)
    if args.journal_units:
        print(f"JOURNAL_UNITS={journal_units(args.role)}")
        return 0
    if not (args.system_log_group and args.application_log_group and args.namespace):
        parser.error("--system-log-group, --application-log-group and --namespace are required")
    config = agent_config(args.role, args.system_log_group, args.application_log_group, args.namespace)
    json.dump(config, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
