"""The one BigBlueButton API call the automation needs: `getMeetings`, with the server's checksum.

checksum = hexdigest(callName + queryString + secret) (docs/docs/development/api.md); BBB 2.5+ accepts
SHA-256 by default, which is also what Scalelite uses towards BBB.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from common import http

_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


class BbbUnreachable(RuntimeError):
    """The server did not answer, or not with a BBB API response."""


class BbbApiError(RuntimeError):
    """The server answered FAILED (e.g. checksumError: the BBB secret does not match)."""


@dataclass(frozen=True)
class Meeting:
    meeting_id: str
    participants: int
    is_breakout: bool


def checksum(call: str, query: str, secret: str, algorithm: str = "sha256") -> str:
    return _ALGORITHMS[algorithm](f"{call}{query}{secret}".encode()).hexdigest()


def get_meetings(
    api_base: str, secret: str, *, timeout: float = 10.0, algorithm: str = "sha256", attempts: int = 2
) -> list[Meeting]:
    """All meetings on the server (empty list when none). Raises BbbUnreachable or BbbApiError."""
    if not secret:
        raise BbbApiError("the BBB API secret is empty; check the secret in Secrets Manager")
    url = f"{api_base.rstrip('/')}/getMeetings?checksum={checksum('getMeetings', '', secret, algorithm)}"
    try:
        response = http.request("GET", url, timeout=timeout, attempts=attempts, backoff=0.5)
    except http.HttpUnreachable as exc:
        raise BbbUnreachable(str(exc)) from None
    if response.status != 200:
        raise BbbUnreachable(f"getMeetings answered HTTP {response.status}")
    try:
        root = ET.fromstring(response.body)
    except ET.ParseError:
        raise BbbUnreachable("getMeetings answered something that is not BBB's XML") from None
    returncode = root.findtext("returncode")
    if returncode != "SUCCESS":
        key = root.findtext("messageKey") or "unknown"
        hint = " (the BBB secret does not match the host's securitySalt)" if key == "checksumError" else ""
        raise BbbApiError(f"getMeetings FAILED: {key}: {root.findtext('message') or ''}{hint}")
    meetings = []
    for node in root.iterfind("meetings/meeting"):
        meetings.append(
            Meeting(
                meeting_id=node.findtext("meetingID") or "",
                participants=_int(node.findtext("participantCount")),
                is_breakout=(node.findtext("isBreakout") or "false").lower() == "true",
            )
        )
    return meetings


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
