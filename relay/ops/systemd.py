"""systemd service notifications (sd_notify protocol) without libsystemd.

The unit runs the relay as `Type=notify-reload` (systemd >= 253) or `Type=notify` with
`ExecReload=kill -HUP $MAINPID`, and optionally `WatchdogSec=`. systemd passes `$NOTIFY_SOCKET`
(a filesystem path or, starting with '@', an abstract-namespace name). Without it every call is a
no-op, so the relay runs the same under a terminal, in tests or in a container.

How the server uses it:

    notifier = SystemdNotifier.from_environment()      # reads NOTIFY_SOCKET / WATCHDOG_USEC once
    notifier.ready("serving 4 listeners")             # after every listener is bound
    notifier.reloading(); ...; notifier.ready()       # around a SIGHUP reload (RELOADING=1 + MONOTONIC_USEC)
    notifier.status("draining, 12 allocations left")  # free-text STATUS= for `systemctl status`
    notifier.stopping()                                # when shutdown starts
    interval = notifier.watchdog_interval()           # None, or seconds between watchdog() calls
    task = notifier.start_watchdog()                   # or let the running loop ping at that interval

Only the main process may notify unless the unit sets `NotifyAccess=all`; workers must not call this.
A failed send is logged at debug level and reported as `False`: a missing or full socket must never
crash or block the relay (the socket is non-blocking).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

_log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(socket_path) if socket_path else None
        self._watchdog_usec = watchdog_usec

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        env = os.environ if environ is None else environ
        watchdog: int | None = None
        raw = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if raw.isdigit() and int(raw) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(raw)
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send `KEY=value` lines (keys upper-cased), e.g. notify(ready=1, status="ok")."""
        if self._address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as exc:
            _log.debug("sd_notify failed: %s", exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify(ready=1, **({"status": status} if status else {}))

    def reloading(self) -> bool:
        # Type=notify-reload requires MONOTONIC_USEC with RELOADING=1 (CLOCK_MONOTONIC, microseconds).
        return self.notify(reloading=1, monotonic_usec=time.monotonic_ns() // 1000)

    def stopping(self, status: str | None = None) -> bool:
        return self.notify(stopping=1, **({"status": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.notify(status=text.replace("\n", " "))

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def watchdog_interval(self) -> float | None:
        """Seconds between `watchdog()` calls (half of WatchdogSec, as sd_watchdog_enabled advises)."""
        return None if self._watchdog_usec is None else self._watchdog_usec / 2_000_000

    def start_watchdog(self) -> asyncio.Task[None] | None:
        """Ping the watchdog from the running event loop (a loop that stalls stops the pings), or None
        when the unit sets no WatchdogSec. Cancel the task at shutdown."""
        interval = self.watchdog_interval()
        if interval is None:
            return None

        async def ping() -> None:
            while True:
                self.watchdog()
                await asyncio.sleep(interval)

        task = asyncio.get_running_loop().create_task(ping())
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
        return task


def _socket_address(path: str) -> str | bytes:
    if path.startswith("@"):
        return b"\0" + path[1:].encode()  # abstract namespace: leading NUL, no filesystem entry
    return path
