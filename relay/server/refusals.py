"""Logs why the relay refused a request: the I/O side of relay.turn.refusals.

Every error response the core sends is reported here as a `Refusal`; it becomes one log line at info
(the default log level) through a RateLimitedLog keyed by (code, cause):

    refused 403 CreatePermission from 198.51.100.7:50000/udp user 1900000000:alice: peer 10.0.0.5
    refused: private (denied-peer-ip / allowed-peer-ip / allowed-peers-file)   code=403 cause=denied_peer

The first refusal of a kind is written at once; the others within REFUSAL_LOG_INTERVAL are counted
and reported by the kind's next line or by a summary from `flush` (the server's 1 s tick). So a flood
writes at most one line per kind and interval: with the len(CAUSES) kinds, a bounded number of lines
per interval and per process (each worker logs its own) whatever the request rate.

Routine causes (ROUTINE: 438 stale nonce) go to debug. The unauthenticated 401 that opens every
session never reaches this module. Lines hold the username, never a password, key or MESSAGE-INTEGRITY;
the formatter still scrubs every registered secret (relay.ops.logs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from relay.ops.logs import RateLimitedLog
from relay.turn.refusals import ROUTINE, Refusal

_log = logging.getLogger("relay.refusals")
REFUSAL_LOG_INTERVAL = 10.0  # seconds: at most one line per (code, cause) in this time


class RefusalLog:
    """The core's `refusals` sink (one per process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, interval: float = REFUSAL_LOG_INTERVAL) -> None:
        self.clock = clock
        self.limit = RateLimitedLog(interval)

    def __call__(self, refusal: Refusal) -> None:
        level = logging.DEBUG if refusal.cause in ROUTINE else logging.INFO
        if not _log.isEnabledFor(level):
            return  # not counted either: nothing would ever report the count
        suppressed = self.limit.admit((refusal.code, refusal.cause), self.clock(), refusal)
        if suppressed is not None:
            note = f" [{suppressed} more like it not logged before this line]" if suppressed else ""
            self._write(level, refusal, suppressed, note)

    def flush(self, now: float | None = None) -> None:
        """Summaries of the kinds whose interval is over with refusals not yet written: the last of them
        with the count."""
        for _, count, last in self.limit.due(self.clock() if now is None else now):
            level = logging.DEBUG if last.cause in ROUTINE else logging.INFO
            self._write(level, last, count, f" [summary: {count} like it not logged, this is the last]")

    def _write(self, level: int, refusal: Refusal, suppressed: int, note: str) -> None:
        fields = {"code": refusal.code, "cause": refusal.cause, "suppressed": suppressed}
        _log.log(level, "%s%s", refusal.describe(), note, extra={"fields": fields})
