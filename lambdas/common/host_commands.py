"""Commands run on an instance through SSM Run Command (AWS-RunShellScript), and their parsed answers.

Used where only the host knows: recordings still being processed or transferred (BBB), and the relay's
drain trigger (TURN, docs/host-contract.md "Drain").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from common import aws

DOCUMENT = "AWS-RunShellScript"
TERMINAL = frozenset({"Success", "Failed", "Cancelled", "TimedOut", "Cancelling", "Undeliverable", "Terminated"})

TURN_DRAIN_COMMAND = "systemctl kill --signal=SIGUSR1 bbb-turn-relay"

# One JSON line with counts. A recording (status/archived/<id>.done: the meeting had recording marks) is
# pending until sanity, processing and publishing are done and, with Scalelite, until
# scalelite_post_publish.rb has handed it to the spool (status/published/<id>-sender.done); a recording
# with a *.fail marker will never finish and only counts as failed. Meetings that ended but are not
# archived yet (status/ended/*.done) and tarballs not yet moved to the spool are pending too.
# POSIX sh (the SSM agent may run it with dash). BBB_ON_AWS_ROOT is unset on hosts; tests point it at
# a fake filesystem.
RECORDINGS_SCRIPT = r"""
set -u
root="${BBB_ON_AWS_ROOT:-}"
status="$root/var/bigbluebutton/recording/status"
work="$root/var/bigbluebutton/recording/scalelite"
transfer="__TRANSFER__"
ended=0; processing=0; pending_transfer=0; failed=0
for f in "$status"/ended/*.done; do [ -e "$f" ] && ended=$((ended + 1)); done
for f in "$status"/archived/*.done; do
  [ -e "$f" ] || continue
  id="$(basename "$f" .done)"
  fail=0
  for x in "$status"/*/"$id".fail "$status"/*/"$id"-*.fail; do [ -e "$x" ] && fail=1; done
  if [ "$fail" = 1 ]; then failed=$((failed + 1)); continue; fi
  if [ ! -e "$status/sanity/$id.done" ]; then processing=$((processing + 1)); continue; fi
  published=0
  for p in "$status"/published/"$id"-*.done; do
    [ -e "$p" ] && [ "$p" != "$status/published/$id-sender.done" ] && published=1
  done
  if [ "$published" = 0 ]; then processing=$((processing + 1)); continue; fi
  if [ "$transfer" = 1 ] && [ ! -e "$status/published/$id-sender.done" ]; then
    pending_transfer=$((pending_transfer + 1))
  fi
done
if [ "$transfer" = 1 ]; then
  for t in "$work"/*.tar; do [ -e "$t" ] && pending_transfer=$((pending_transfer + 1)); done
fi
printf '{"ended": %d, "processing": %d, "transfer": %d, "failed": %d}\n' \
  "$ended" "$processing" "$pending_transfer" "$failed"
""".strip()


def recordings_script(*, transfer: bool) -> str:
    return RECORDINGS_SCRIPT.replace("__TRANSFER__", "1" if transfer else "0")


@dataclass(frozen=True)
class CommandResult:
    status: str  # an SSM invocation status, "Pending" if still running when we stopped waiting
    stdout: str
    stderr: str

    @property
    def succeeded(self) -> bool:
        return self.status == "Success"


@dataclass(frozen=True)
class RecordingCounts:
    ended: int
    processing: int
    transfer: int
    failed: int

    @property
    def pending(self) -> int:
        return self.ended + self.processing + self.transfer

    @classmethod
    def parse(cls, stdout: str) -> RecordingCounts:
        lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
        if not lines:
            raise ValueError("the recordings check printed no JSON line")
        data = json.loads(lines[-1])
        return cls(**{key: int(data[key]) for key in ("ended", "processing", "transfer", "failed")})


def run(instance_id: str, script: str, *, comment: str, wait_seconds: float = 25.0, poll: float = 1.0) -> CommandResult:
    """Run `script` as root on the instance and wait (within the invocation) for its result."""
    ssm = aws.client("ssm")
    try:
        sent = ssm.send_command(
            InstanceIds=[instance_id],
            DocumentName=DOCUMENT,
            Comment=comment[:100],
            TimeoutSeconds=60,
            Parameters={"commands": [script], "executionTimeout": ["60"]},
        )
    except ClientError as exc:
        if aws.error_code(exc) in ("InvalidInstanceId", "InvalidInstanceIdException"):
            return CommandResult("Undeliverable", "", aws.error_message(exc))
        raise
    command_id = sent["Command"]["CommandId"]
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        except ClientError as exc:
            if aws.error_code(exc) != "InvocationDoesNotExist":
                raise
            invocation = {"Status": "Pending"}
        status = invocation.get("Status", "Pending")
        if status in TERMINAL:
            return CommandResult(
                status, invocation.get("StandardOutputContent", ""), invocation.get("StandardErrorContent", "")
            )
        if time.monotonic() >= deadline:
            return CommandResult("Pending", "", "")
        time.sleep(poll)
