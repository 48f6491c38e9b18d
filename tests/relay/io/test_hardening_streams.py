"""Issue 15, cases 9 and 12: stream connections the relay refuses or loses are closed quietly, counted
by reason and logged (rate-limited) where an operator needs to know; gauges are right at once."""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from relay_testkit import RunningRelay, loopback_config, proxy_v2_header, wait_until

from relay.config import Listener
from relay.server import stream
from relay.stun import MessageClass


def _accept_queue(port: int) -> tuple[int, int]:
    """(connections in the accept queue of the IPv4 listener on `port`, accepted-side connections on that port
    still open in the kernel), from /proc/net/tcp: a listening socket's rx_queue is its accept backlog, and a
    queued connection reset by its client leaves the table while it stays queued."""
    queued, open_children = 0, 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) != port:
            continue
        if fields[3] == "0A":  # TCP_LISTEN
            queued = int(fields[4].split(":")[1], 16)
        else:
            open_children += 1
    return queued, open_children


def _reset_connection(address: tuple[str, int]) -> None:
    """Connect, then close with SO_LINGER 0: an RST right after the handshake (HAProxy's TCP check)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.connect(address)
    sock.close()


@pytest.mark.parametrize("proxy_protocol", [False, True])
def test_9_connection_reset_before_accept_is_closed_quietly(
    caplog: pytest.LogCaptureFixture, proxy_protocol: bool
) -> None:
    """The relay's loop is held busy while clients connect and reset, so every accept finds a connection
    that is already gone. Under uvloop (what the relay runs on) such a connection has no peer address
    (asyncio's own loop passes the address accept() returned, so only uvloop shows it). The old handler
    raised TypeError for each (an ERROR with a traceback) and left the connection gauge too high until
    the idle timer."""
    count = 20
    config = loopback_config(listeners=(Listener("tcp", "127.0.0.1", 0, proxy_protocol=proxy_protocol),))
    caplog.set_level(logging.DEBUG)
    with RunningRelay(config, use_uvloop=True) as relay:
        address = relay.address("tcp")
        entered, release = threading.Event(), threading.Event()

        def hold() -> None:  # the relay's loop cannot accept until released
            entered.set()
            release.wait(10)

        relay.loop.call_soon_threadsafe(hold)
        assert entered.wait(5)
        for _ in range(count):
            _reset_connection(address)
        wait_until(lambda: _accept_queue(address[1]) == (count, 0), f"{count} reset connections in the accept queue")
        release.set()
        wait_until(lambda: relay.call(lambda: relay.stats.stream_closes_reset) >= count, "the accepts to have run")
        gauge = relay.call(lambda: relay.stats.connections_tcp)
        resets = relay.call(lambda: relay.stats.stream_closes_reset)
        open_connections = relay.call(lambda: len(relay.server.connections))
        indexes = relay.call(lambda: len(relay.server.core.table.by_origin))  # per-connection indexes dropped
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
    assert (gauge, open_connections, indexes) == (0, 0, 0)
    assert resets == count
    assert sum("reset before it was accepted" in r.getMessage() for r in caplog.records) == count


def test_12_proxy_refusals_are_logged_and_tls_balancer_clients_counted_as_tls(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection refused for its PROXY header left no log line before, only the shared malformed
    counter, and clients of the TLS balancer's listener were counted as tcp. Now: one line per
    interval with the reason and how many were not logged, a reason-labelled counter, and the
    listener configured with client_transport="tls" counts its clients as tls."""
    monkeypatch.setattr(stream, "PROXY_REFUSALS", stream._ProxyRefusals())
    listener = Listener("tcp", "127.0.0.1", 0, proxy_protocol=True, client_transport="tls")
    caplog.set_level(logging.INFO)
    with RunningRelay(loopback_config(listeners=(listener,))) as relay:
        address = relay.address("tcp")
        for attempt in range(5):
            with socket.create_connection(address, timeout=2) as raw:
                raw.sendall(b"GET / HTTP/1.1\r\n\r\n" if attempt else b"\r\n\r\n\x00\r\nQUIT\n\x99\x11\x00\x00")
                assert raw.recv(100) == b""
        header = proxy_v2_header(("203.0.113.7", 40000), ("10.0.0.5", 3479))
        with relay.client("tcp", proxy_header=header) as client:
            assert client.allocate().message_class == MessageClass.SUCCESS
            gauges = relay.call(lambda: (relay.stats.connections_tls, relay.stats.connections_tcp))
        counted = relay.call(lambda: (relay.stats.stream_closes_proxy_header, relay.stats.malformed_tcp))
        lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert len(lines) == 1 and "PROXY" in lines[0] and "127.0.0.1" in lines[0], lines
        assert stream.PROXY_REFUSALS.suppressed == 4
        # After the interval the server's tick writes one summary: the last refusal and the 3 before it.
        relay.call(lambda: stream.PROXY_REFUSALS.flush(time.monotonic() + stream.PROXY_LOG_INTERVAL))
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 2 and lines[1].endswith("(3 more refusals not logged since the last line)"), lines
    assert gauges == (1, 0)
    assert counted == (5, 0)
    assert stream.PROXY_REFUSALS.suppressed == 0
