"""bench/peer_echo.py for real (root, network namespaces, clang, tc): the benchmark's kernel echo peer sends
each datagram back from the address and port it was sent to, with checksums the receiver accepts, and
nothing else; detached, it echoes nothing."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # the benchmark and its sibling modules import one another by name
sys.path.insert(0, str(ROOT / "tests" / "relay" / "kernel"))  # netns_kit, as the benchmark does
import peer_echo  # noqa: E402
from netns_kit import CLIENT_IP, PEER_IP, Topology, nothing_waiting  # noqa: E402

PORT = 3480


@pytest.fixture
def net() -> Iterator[Topology]:
    if os.geteuid() != 0:
        pytest.fail("this test needs root (network namespaces, a TC program)")
    topology = Topology()
    topology.create()
    try:
        yield topology
    finally:
        topology.destroy()


def test_the_kernel_echo_returns_each_datagram_from_the_port_it_was_sent_to(net: Topology, tmp_path: Path) -> None:
    peer_echo.attach(net.peer, "pe0", peer_echo.build(tmp_path, PORT))
    client = net.udp(net.client, (CLIENT_IP, 0))
    for size in (1, 120, 1000, 1400):  # the client's kernel verifies the UDP checksum of each echo
        payload = os.urandom(size)
        client.sendto(payload, (PEER_IP, PORT))
        assert client.recvfrom(65536) == (payload, (PEER_IP, PORT))
    client.sendto(b"to another port", (PEER_IP, PORT + 1))
    assert nothing_waiting(client)  # not echoed (and no socket there either)
    peer_echo.detach(net.peer, "pe0")
    client.sendto(b"after detach", (PEER_IP, PORT))
    assert nothing_waiting(client)
