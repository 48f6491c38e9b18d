"""Drain, reload and stop state shared by signal handlers, the admin endpoint and the server.

Signals (installed by `install_signal_handlers(control, loop)`; the admin endpoint calls the same
methods, so both paths behave identically):

    SIGUSR1          -> control.start_drain("SIGUSR1")    (also POST /drain)
    SIGHUP           -> control.request_reload("SIGHUP")  (also POST /reload)
    SIGTERM, SIGINT  -> control.request_stop("SIGTERM")   immediate graceful stop, exit 0

Drain: new Allocates must be refused with 403 (check `control.draining` in the Allocate handler)
while existing allocations, refreshes, permissions and data keep working. The process exits 0 when
`should_exit(active_allocations, now)` says so: allocations fell to `drain_min_allocations` (default 0)
or `drain_timeout` seconds passed since the drain started. systemd's stop (SIGTERM) is the backstop.

How the server wires it:

    control = RelayControl(config.drain_timeout, config.drain_min_allocations)
    control.on_drain(lambda: notifier.status("draining"))
    control.on_reload(reload_everything)          # raises on failure; old state must stay in force
    remove = install_signal_handlers(control, loop)
    ... bind listeners ...; control.mark_ready(); notifier.ready()
    reason = await control.wait_for_exit(lambda: stats.allocations)   # "drained" | "drain_timeout" | "stop"
    notifier.stopping(reason); close listeners; exit 0

Workers (one process per core): the parent forwards SIGUSR1/SIGHUP/SIGTERM to every worker; each
worker has its own RelayControl and exits by the same rule; the parent exits when all workers have.

Everything except `wait_for_exit` and `install_signal_handlers` is synchronous and needs no event
loop; `should_exit` is a pure function of the state, the allocation count and the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

_log = logging.getLogger(__name__)
ExitReason = Literal["drained", "drain_timeout", "stop"]
Callback = Callable[[], None]


@dataclass(frozen=True)
class ReloadOutcome:
    ok: bool
    errors: tuple[str, ...] = ()


@dataclass
class RelayControl:
    drain_timeout: float
    drain_min_allocations: int = 0
    clock: Callable[[], float] = time.monotonic
    started: bool = False
    draining: bool = False
    stopping: bool = False
    drain_started_at: float | None = None
    drain_source: str | None = None
    _drain_callbacks: list[Callback] = field(default_factory=list, repr=False)
    _reload_callbacks: list[Callback] = field(default_factory=list, repr=False)
    _stop_callbacks: list[Callback] = field(default_factory=list, repr=False)
    _wakeup: asyncio.Event | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.drain_timeout < 0 or self.drain_min_allocations < 0:
            raise ValueError("drain_timeout and drain_min_allocations must not be negative")

    # --- state --------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True when serving and accepting new allocations (what /readyz reports)."""
        return self.started and not self.draining and not self.stopping

    @property
    def drain_deadline(self) -> float | None:
        return None if self.drain_started_at is None else self.drain_started_at + self.drain_timeout

    def mark_ready(self) -> None:
        self.started = True

    def should_exit(self, active_allocations: int, now: float) -> bool:
        return self.exit_reason(active_allocations, now) is not None

    def exit_reason(self, active_allocations: int, now: float) -> ExitReason | None:
        if self.stopping:
            return "stop"
        if not self.draining:
            return None
        if active_allocations <= self.drain_min_allocations:
            return "drained"
        deadline = self.drain_deadline
        if deadline is not None and now >= deadline:
            return "drain_timeout"
        return None

    def drain_remaining(self, now: float) -> float | None:
        """Seconds until the drain deadline (0 when passed), or None when not draining."""
        deadline = self.drain_deadline
        return None if deadline is None else max(0.0, deadline - now)

    # --- subscriptions ------------------------------------------------------------------------
    def on_drain(self, callback: Callback) -> None:
        self._drain_callbacks.append(callback)

    def on_reload(self, callback: Callback) -> None:
        """`callback` raises to report failure; it must then leave the previous state in force."""
        self._reload_callbacks.append(callback)

    def on_stop(self, callback: Callback) -> None:
        self._stop_callbacks.append(callback)

    # --- commands -----------------------------------------------------------------------------
    def start_drain(self, source: str = "admin") -> bool:
        """Begin draining; returns False if a drain (or a stop) was already under way."""
        if self.draining or self.stopping:
            return False
        self.draining = True
        self.drain_started_at = self.clock()
        self.drain_source = source
        _log.warning("drain started by %s; timeout %ss", source, self.drain_timeout)
        self._run(self._drain_callbacks, "drain")
        self._wake()
        return True

    def request_reload(self, source: str = "admin") -> ReloadOutcome:
        errors: list[str] = []
        for callback in list(self._reload_callbacks):
            try:
                callback()
            except Exception as exc:  # a failed reload keeps the old state; it must not kill the relay
                _log.error("reload (%s) failed: %s", source, exc)
                errors.append(str(exc) or type(exc).__name__)
        if not errors:
            _log.info("reload by %s done", source)
        return ReloadOutcome(not errors, tuple(errors))

    def request_stop(self, source: str = "signal") -> None:
        if self.stopping:
            return
        self.stopping = True
        _log.warning("stop requested by %s", source)
        self._run(self._stop_callbacks, "stop")
        self._wake()

    # --- asyncio helpers ----------------------------------------------------------------------
    async def wait_for_exit(self, active_allocations: Callable[[], int], poll_interval: float = 1.0) -> ExitReason:
        """Return once `exit_reason` is set; polls the allocation count every `poll_interval` s."""
        self._wakeup = asyncio.Event()
        try:
            while True:
                reason = self.exit_reason(active_allocations(), self.clock())
                if reason is not None:
                    return reason
                self._wakeup.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), poll_interval)
        finally:
            self._wakeup = None

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    @staticmethod
    def _run(callbacks: list[Callback], what: str) -> None:
        for callback in list(callbacks):
            try:
                callback()
            except Exception:
                _log.exception("%s callback failed", what)


SIGNAL_ACTIONS: dict[str, str] = {
    "SIGUSR1": "drain",
    "SIGHUP": "reload",
    "SIGTERM": "stop",
    "SIGINT": "stop",
}


def install_signal_handlers(control: RelayControl, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Map SIGUSR1/SIGHUP/SIGTERM/SIGINT to `control`; returns a function that removes them."""
    installed: list[signal.Signals] = []
    for name, action in SIGNAL_ACTIONS.items():
        signum = getattr(signal, name)
        if action == "drain":
            loop.add_signal_handler(signum, control.start_drain, name)
        elif action == "reload":
            loop.add_signal_handler(signum, control.request_reload, name)
        else:
            loop.add_signal_handler(signum, control.request_stop, name)
        installed.append(signum)

    def remove() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return remove
