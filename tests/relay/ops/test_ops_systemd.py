"""sd_notify over a real AF_UNIX datagram socket (filesystem path and abstract namespace)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid

import pytest

from relay.ops.systemd import SystemdNotifier


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.split("\n"))


def test_ready_with_status(notify_socket):
    path, sock = notify_socket
    notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("serving 3 listeners")
    assert receive(sock) == {"READY": "1", "STATUS": "serving 3 listeners"}


def test_reloading_carries_monotonic_usec_then_ready(notify_socket):
    path, sock = notify_socket
    notifier = SystemdNotifier(path)
    before = time.monotonic_ns() // 1000
    assert notifier.reloading()
    message = receive(sock)
    after = time.monotonic_ns() // 1000
    assert message["RELOADING"] == "1"
    assert before <= int(message["MONOTONIC_USEC"]) <= after
    notifier.ready()
    assert receive(sock) == {"READY": "1"}


def test_stopping_status_and_watchdog(notify_socket):
    path, sock = notify_socket
    notifier = SystemdNotifier(path)
    notifier.stopping("drained")
    assert receive(sock) == {"STOPPING": "1", "STATUS": "drained"}
    notifier.status("draining\n12 allocations left")
    assert receive(sock) == {"STATUS": "draining 12 allocations left"}
    notifier.watchdog()
    assert receive(sock) == {"WATCHDOG": "1"}


def test_abstract_namespace_socket():
    name = f"bbb-turn-relay-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        notifier = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert receive(sock) == {"READY": "1"}
    finally:
        sock.close()


def test_noop_without_notify_socket():
    notifier = SystemdNotifier.from_environment({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_interval() is None


def test_missing_socket_returns_false_instead_of_raising(tmp_path):
    notifier = SystemdNotifier(str(tmp_path / "gone.sock"))
    assert notifier.ready() is False


def test_watchdog_interval_is_half_of_watchdog_usec():
    env = {"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier.from_environment(env).watchdog_interval() == 15.0
    # A watchdog meant for another PID (e.g. inherited by a worker) is not ours to feed.
    env["WATCHDOG_PID"] = str(os.getpid() + 1)
    assert SystemdNotifier.from_environment(env).watchdog_interval() is None
    assert SystemdNotifier.from_environment({"WATCHDOG_USEC": "abc"}).watchdog_interval() is None


def test_start_watchdog_pings_from_the_running_loop_until_cancelled(notify_socket):
    path, sock = notify_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000", "WATCHDOG_PID": str(os.getpid())}
    notifier = SystemdNotifier.from_environment(env)  # pings every 0.02 s

    async def run() -> None:
        task = notifier.start_watchdog()
        assert isinstance(task, asyncio.Task)
        for _ in range(3):  # three pings while the loop runs (the socket read is on a thread: the loop goes on)
            assert await asyncio.to_thread(receive, sock) == {"WATCHDOG": "1"}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):  # the ping loop ends on cancel (no swallowed CancelledError)
            await asyncio.wait_for(task, 5)
        assert task.cancelled()

    asyncio.run(run())
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):  # pings sent before the task was cancelled: all well-formed
        while True:
            assert receive(sock) == {"WATCHDOG": "1"}


def test_start_watchdog_is_none_without_watchdog_sec(notify_socket):
    path, _ = notify_socket

    async def run() -> object:
        return SystemdNotifier(path).start_watchdog()

    assert asyncio.run(run()) is None
