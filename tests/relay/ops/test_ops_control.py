"""Drain/reload/stop control: the pure exit decision, callbacks, and real signals on a real loop."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from relay.ops.control import RelayControl, install_signal_handlers
from tests.servers import until


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def draining_control(timeout=60.0, min_allocations=0, started_at=1000.0) -> RelayControl:
    control = RelayControl(timeout, min_allocations, clock=FakeClock(started_at))
    control.mark_ready()
    control.start_drain("test")
    return control


@pytest.mark.parametrize(
    ("active", "now", "expected"),
    [
        (5, 1000.0, None),  # just started, allocations left
        (5, 1059.9, None),  # before the deadline
        (5, 1060.0, "drain_timeout"),  # deadline reached
        (5, 5000.0, "drain_timeout"),
        (0, 1000.0, "drained"),  # nothing left: exit at once
        (0, 5000.0, "drained"),  # drained wins over timeout when both hold
    ],
)
def test_exit_decision_while_draining(active, now, expected):
    control = draining_control()
    assert control.exit_reason(active, now) == expected
    assert control.should_exit(active, now) is (expected is not None)


def test_min_allocations_threshold():
    control = draining_control(min_allocations=2)
    assert control.exit_reason(3, 1000.0) is None
    assert control.exit_reason(2, 1000.0) == "drained"


def test_not_draining_never_exits_and_stop_always_does():
    control = RelayControl(60)
    assert control.exit_reason(0, 10**9) is None
    control.request_stop("SIGTERM")
    assert control.exit_reason(50, 0.0) == "stop"


def test_readiness_follows_start_and_drain():
    control = RelayControl(60, clock=FakeClock())
    assert not control.ready  # not started: /readyz must say 503
    control.mark_ready()
    assert control.ready
    assert control.drain_deadline is None and control.drain_remaining(0) is None
    assert control.start_drain("SIGUSR1") is True
    assert not control.ready and control.draining
    assert control.drain_source == "SIGUSR1"
    assert control.drain_deadline == 1060.0
    assert control.drain_remaining(1030.0) == 30.0 and control.drain_remaining(2000.0) == 0.0


def test_second_drain_keeps_the_first_deadline_and_callbacks_run_once():
    clock = FakeClock()
    control = RelayControl(60, clock=clock)
    calls: list[str] = []
    control.on_drain(lambda: calls.append("drain"))
    assert control.start_drain("SIGUSR1")
    clock.now = 1500.0
    assert control.start_drain("admin") is False
    assert control.drain_deadline == 1060.0
    assert calls == ["drain"]


def test_callback_failures_are_contained():
    control = RelayControl(60)
    calls: list[str] = []

    def broken() -> None:
        raise RuntimeError("callback bug")

    control.on_drain(broken)
    control.on_drain(lambda: calls.append("second"))
    control.on_stop(broken)
    assert control.start_drain()
    control.request_stop()
    assert calls == ["second"] and control.stopping


def test_reload_reports_every_failure_and_success():
    control = RelayControl(60)
    applied: list[str] = []
    control.on_reload(lambda: applied.append("certs"))
    assert control.request_reload("SIGHUP").ok
    control.on_reload(lambda: (_ for _ in ()).throw(ValueError("cert: /etc/x.pem unreadable")))
    control.on_reload(lambda: (_ for _ in ()).throw(OSError()))
    outcome = control.request_reload("admin")
    assert not outcome.ok
    assert outcome.errors == ("cert: /etc/x.pem unreadable", "OSError")
    assert applied == ["certs", "certs"]


def test_invalid_parameters():
    with pytest.raises(ValueError):
        RelayControl(-1)
    with pytest.raises(ValueError):
        RelayControl(10, drain_min_allocations=-1)


def test_wait_for_exit_returns_when_allocations_end():
    async def scenario() -> tuple[str, int]:
        control = RelayControl(60)
        control.mark_ready()
        allocations = [3]

        async def clients_leave() -> None:
            control.start_drain("test")
            for _ in range(3):
                await asyncio.sleep(0.01)  # the script of departures, one every 10 ms (not a wait on anything)
                allocations[0] -= 1

        task = asyncio.create_task(clients_leave())
        reason = await asyncio.wait_for(control.wait_for_exit(lambda: allocations[0], poll_interval=0.005), 5)
        left_at_exit = allocations[0]  # before the script finishes: an exit with one client left shows here
        await task
        return reason, left_at_exit

    assert asyncio.run(scenario()) == ("drained", 0)


def test_wait_for_exit_times_out_the_drain():
    async def scenario() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        control = RelayControl(0.05, clock=loop.time)
        control.start_drain("test")
        start = loop.time()
        reason = await asyncio.wait_for(control.wait_for_exit(lambda: 10, poll_interval=0.01), 5)
        return reason, loop.time() - start

    reason, elapsed = asyncio.run(scenario())
    assert reason == "drain_timeout" and elapsed >= 0.05


def test_stop_wakes_the_waiter_immediately():
    async def scenario() -> str:
        control = RelayControl(3600)
        asyncio.get_running_loop().call_later(0.01, control.request_stop, "test")
        # A one-hour poll interval: only the wake-up can end this within the timeout.
        return await asyncio.wait_for(control.wait_for_exit(lambda: 10, poll_interval=3600), 5)

    assert asyncio.run(scenario()) == "stop"


def test_real_signals_drive_the_control():
    async def scenario() -> tuple[RelayControl, list[str]]:
        loop = asyncio.get_running_loop()
        control = RelayControl(3600)
        control.mark_ready()
        reloads: list[str] = []
        control.on_reload(lambda: reloads.append("reloaded"))
        remove = install_signal_handlers(control, loop)
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: reloads, "the SIGHUP reload")
            os.kill(os.getpid(), signal.SIGUSR1)
            await until(lambda: control.draining, "the SIGUSR1 drain")
            assert control.draining and control.drain_source == "SIGUSR1"
            os.kill(os.getpid(), signal.SIGTERM)
            reason = await asyncio.wait_for(control.wait_for_exit(lambda: 1, poll_interval=3600), 5)
            assert reason == "stop"
        finally:
            remove()
        return control, reloads

    control, reloads = asyncio.run(scenario())
    assert reloads == ["reloaded"]
    assert control.stopping and not control.ready
    # Handlers are gone again: default SIGUSR1 disposition restored for the test process.
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
