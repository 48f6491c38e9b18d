"""The program attached to a real interface (veth in network namespaces, netns_kit's layout) with entries
installed by hand: client and peer exchange data through it with real sockets, nothing reaches the
relay's own sockets while an entry exists, and everything does once it is removed."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_kit import COOKIE, channel_data, data_indication6, send_indication, send_indication6
from netns_kit import (
    CLIENT_IP,
    CLIENT_IP6,
    PEER_IP,
    PEER_IP6,
    RELAY_INTERFACE,
    RELAY_IP,
    RELAY_IP6,
    Topology,
    nothing_waiting,
)

from relay.server.kernel import maps
from relay.server.kernel.loader import TcRelay

CLIENT = (CLIENT_IP, 50123)
SERVER = (RELAY_IP, 3478)
RELAY = (RELAY_IP, 49170)
PEER = (PEER_IP, 40000)
CHANNEL = 0x4ABC
CLIENT6, SERVER6, RELAY6, PEER6 = (CLIENT_IP6, 50123), (RELAY_IP6, 3478), (RELAY_IP6, 49170), (PEER_IP6, 40000)
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def topology(loaded: TcRelay) -> Iterator[Topology]:
    net = Topology()
    try:
        net.create()
        net.run_in(net.relay, lambda: loaded.attach(RELAY_INTERFACE))
        yield net
    finally:
        if _exists(net):
            net.run_in(net.relay, loaded.detach)
        net.destroy()


def _exists(net: Topology) -> bool:
    try:
        net.run_in(net.relay, lambda: socket.if_nametoindex(RELAY_INTERFACE))
    except OSError:
        return False
    return True


@pytest.fixture()
def sockets(topology: Topology) -> Iterator[dict[str, socket.socket]]:
    made = {
        "client": topology.udp(topology.client, CLIENT),
        "peer": topology.udp(topology.peer, PEER),
        "listener": topology.udp(topology.relay, SERVER),  # what user space would read
        "relayed": topology.udp(topology.relay, RELAY),
    }
    yield made
    for sock in made.values():
        sock.close()


def test_channel_data_crosses_the_relay_in_the_kernel_both_ways(relay: TcRelay, sockets: dict) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    relay.add_channel(CLIENT, SERVER, CHANNEL, RELAY, PEER)
    for i in range(20):
        sockets["client"].sendto(channel_data(CHANNEL, b"to peer %d" % i), SERVER)
        assert sockets["peer"].recvfrom(2048) == (b"to peer %d" % i, RELAY)
        sockets["peer"].sendto(b"to client %d!" % i, RELAY)
        assert sockets["client"].recvfrom(2048) == (channel_data(CHANNEL, b"to client %d!" % i), SERVER)
    assert nothing_waiting(sockets["listener"]) and nothing_waiting(sockets["relayed"])
    assert relay.channel_counters(CLIENT, SERVER, CHANNEL).packets == 20
    assert relay.peer_counters(RELAY, PEER[0], PEER[1]).packets == 20
    totals = relay.totals()
    assert (totals["channel_to_peer"].packets, totals["channel_to_client"].packets) == (20, 20)
    assert totals["errors"] == maps.Counters(0, 0)


def test_indications_cross_the_relay_in_the_kernel_both_ways(relay: TcRelay, sockets: dict) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    sockets["client"].sendto(send_indication(PEER, b"hello peer"), SERVER)
    assert sockets["peer"].recvfrom(2048) == (b"hello peer", RELAY)
    sockets["peer"].sendto(b"hello client", RELAY)
    message, source = sockets["client"].recvfrom(2048)
    assert source == SERVER
    kind, length, cookie = struct.unpack_from("!HHI", message)
    assert (kind, length, cookie) == (0x0017, len(message) - 20, COOKIE)
    xport = PEER[1] ^ (COOKIE >> 16)
    xaddr = struct.unpack("!I", socket.inet_aton(PEER[0]))[0] ^ COOKIE
    assert message[20:32] == struct.pack("!HHBBHI", 0x0012, 8, 0, 1, xport, xaddr)
    assert message[32:36] == struct.pack("!HH", 0x0013, 12) and message[36:48] == b"hello client"
    assert nothing_waiting(sockets["listener"]) and nothing_waiting(sockets["relayed"])
    assert relay.totals()["send_to_peer"].packets == relay.totals()["data_to_client"].packets == 1


@pytest.fixture()
def sockets6(topology: Topology) -> Iterator[dict[str, socket.socket]]:
    made = {
        "client": topology.udp(topology.client, CLIENT6),
        "peer": topology.udp(topology.peer, PEER6),
        "listener": topology.udp(topology.relay, SERVER6),
        "relayed": topology.udp(topology.relay, RELAY6),
    }
    yield made
    for sock in made.values():
        sock.close()


def _from(sock: socket.socket) -> tuple[bytes, tuple[str, int]]:
    data, source = sock.recvfrom(2048)
    return data, source[:2]


def test_ipv6_channels_and_indications_cross_the_relay_in_the_kernel(relay: TcRelay, sockets6: dict) -> None:
    relay.add_permission(CLIENT6, SERVER6, RELAY6, PEER6[0])
    tid = bytes(range(12))
    sockets6["client"].sendto(send_indication6(PEER6, b"indicated", tid), SERVER6)
    assert _from(sockets6["peer"]) == (b"indicated", RELAY6)
    sockets6["peer"].sendto(b"data back", RELAY6)
    message, source = _from(sockets6["client"])
    assert source == SERVER6 and message == data_indication6(PEER6, b"data back", message[8:20])
    relay.add_channel(CLIENT6, SERVER6, CHANNEL, RELAY6, PEER6)
    for i in range(10):
        sockets6["client"].sendto(channel_data(CHANNEL, b"v6 to peer %d" % i), SERVER6)
        assert _from(sockets6["peer"]) == (b"v6 to peer %d" % i, RELAY6)
        sockets6["peer"].sendto(b"v6 to client %d" % i, RELAY6)
        assert _from(sockets6["client"]) == (channel_data(CHANNEL, b"v6 to client %d" % i), SERVER6)
    assert nothing_waiting(sockets6["listener"]) and nothing_waiting(sockets6["relayed"])
    totals = relay.totals()
    assert [totals[name].packets for name in ("send_to_peer", "data_to_client", "channel_to_peer")] == [1, 1, 10]
    assert totals["errors"].packets == 0


def test_once_the_entries_are_gone_user_space_gets_every_packet(relay: TcRelay, sockets: dict) -> None:
    relay.add_permission(CLIENT, SERVER, RELAY, PEER[0])
    relay.add_channel(CLIENT, SERVER, CHANNEL, RELAY, PEER)
    sockets["client"].sendto(channel_data(CHANNEL, b"one"), SERVER)
    assert sockets["peer"].recv(2048) == b"one"
    relay.remove_channel(CLIENT, SERVER, CHANNEL, RELAY, PEER)
    relay.remove_permission(CLIENT, SERVER, RELAY, PEER[0])
    sockets["client"].sendto(channel_data(CHANNEL, b"two"), SERVER)
    assert sockets["listener"].recvfrom(2048) == (channel_data(CHANNEL, b"two"), CLIENT)
    sockets["peer"].sendto(b"three", RELAY)
    assert sockets["relayed"].recvfrom(2048) == (b"three", PEER)
    assert nothing_waiting(sockets["peer"]) and nothing_waiting(sockets["client"])


CRASHING_RELAY = f"""
import os, sys
from relay.server.kernel.loader import TcRelay
program = TcRelay(open(sys.argv[1], "rb").read())
program.attach({RELAY_INTERFACE!r})
program.configure(enabled=True, mtu=1500)
program.add_permission({CLIENT!r}, {SERVER!r}, {RELAY!r}, {PEER[0]!r})
program.add_channel({CLIENT!r}, {SERVER!r}, {CHANNEL}, {RELAY!r}, {PEER!r})
os._exit(1)  # dies without detaching
"""


def _kernel_command(topology: Topology, *args: str) -> str:
    command = ["ip", "netns", "exec", topology.relay, sys.executable, *args]
    run = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert run.returncode in (0, 1), run.stderr
    return run.stdout.strip()


def test_a_dead_relay_s_filter_forwards_until_detach_removes_it(
    topology: Topology, loaded: TcRelay, sockets: dict, bpf_object: bytes, tmp_path: Path
) -> None:
    (tmp_path / "tc_relay.bpf.o").write_bytes(bpf_object)
    try:
        _kernel_command(topology, "-c", CRASHING_RELAY, str(tmp_path / "tc_relay.bpf.o"))
        # The process is gone, its program is not: this is why the unit must detach after the relay stops.
        sockets["client"].sendto(channel_data(CHANNEL, b"orphan"), SERVER)
        assert sockets["peer"].recvfrom(2048) == (b"orphan", RELAY)
        assert _kernel_command(topology, "-m", "relay.server.kernel", "status", RELAY_INTERFACE).startswith("program ")
        # `all`, as the unit's ExecStopPost runs it: every interface of the namespace, ours detached
        assert _kernel_command(topology, "-m", "relay.server.kernel", "detach", "all").splitlines() == [
            "nothing attached to lo",
            f"detached from {RELAY_INTERFACE}",
        ]
        assert _kernel_command(topology, "-m", "relay.server.kernel", "status", RELAY_INTERFACE) == (
            f"nothing attached to {RELAY_INTERFACE}"
        )
        sockets["client"].sendto(channel_data(CHANNEL, b"after"), SERVER)
        assert sockets["listener"].recvfrom(2048) == (channel_data(CHANNEL, b"after"), CLIENT)
        assert nothing_waiting(sockets["peer"])
    finally:
        topology.run_in(topology.relay, lambda: loaded.attach(RELAY_INTERFACE))  # back for the other tests
