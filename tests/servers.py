"""Helpers for tests that start servers: the one way to pick a fixed port, and waiting on a condition.

A fixed port is for a server a test starts (the relay, coturn, PostgreSQL, a STUN responder).
Check-then-release on an ephemeral port races: between the check and the server's bind, any socket that binds
port 0 or connects out (another test, an xdist worker, another checkout's suite on the same machine) may be
given that very port, and a port checked for UDP only may be taken on TCP. So a port here is

- taken from a band below the kernel's ephemeral range (net.ipv4.ip_local_port_range starts at 32768), which
  bind(0) and outgoing connections never use, and apart from the relays' own relay range in tests (20000-29999);
- free on both UDP and TCP when chosen (every server here listens on both or may);
- leased with an exclusive lock file for the rest of the process, so that no other test process picking ports
  this way gets it while the server that was given it runs (the lock dies with the process, never goes stale).

Servers that can report the port they bound (an in-process relay on port 0) should bind port 0 instead.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BAND = (12000, 19999)
_LOCKS = Path(tempfile.gettempdir()) / "bbb-on-aws-test-ports"
_held: dict[int, int] = {}  # port -> the fd holding its lock, for the life of this process


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            if kind == socket.SOCK_STREAM:  # a server's TCP listener sets it too; TIME_WAIT must not block us
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A loopback port free on UDP and TCP, leased to this process until it exits."""
    _LOCKS.mkdir(mode=0o1777, exist_ok=True)
    first, last = BAND
    start = random.randrange(first, last + 1)
    for offset in range(last - first + 1):
        port = first + (start - first + offset) % (last - first + 1)
        if port in _held:
            continue
        fd = os.open(_LOCKS / f"{port}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if _bindable(port):
            _held[port] = fd
            return port
        os.close(fd)  # taken by something that does not lease: leave it
    raise RuntimeError(f"no port in {first}-{last} is free on both UDP and TCP")


def wait_until(condition: Callable[[], object], what: str, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll `condition` until it is true; fail naming `what` after `timeout` seconds (never a blind sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0, interval: float = 0.005) -> None:
    """wait_until for coroutines: lets the event loop run until `condition` holds, failing after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


def echo_peer(port: int, timeout: float = 20.0) -> subprocess.Popen[bytes]:
    """coturn's `turnutils_peer` echoing on 127.0.0.1:`port`, returned once it has echoed a probe: a test that
    sends at once may otherwise reach a port not yet bound on a loaded machine (seen: a whole uclient client's
    Send indications lost). The caller kills it."""
    process = subprocess.Popen(
        ["turnutils_peer", "-L", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)

        def echoes() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"turnutils_peer on port {port} exited with {process.returncode}")
            probe.sendto(b"ready?", ("127.0.0.1", port))
            try:
                return probe.recv(64) == b"ready?"
            except OSError:  # a timeout, or ECONNREFUSED (the ICMP of a port not bound yet)
                return False

        try:
            wait_until(echoes, f"turnutils_peer to echo on port {port}", timeout=timeout)
        except BaseException:
            process.kill()
            process.wait(5)
            raise
    return process
