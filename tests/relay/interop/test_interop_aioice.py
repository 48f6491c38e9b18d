"""Interop with aioice (a third-party TURN client and ICE agent) over real loopback sockets."""

from __future__ import annotations

import asyncio

import pytest
from aioice import Connection, TransportPolicy  # pinned in requirements-dev.txt: missing is a failure, not a skip
from aioice.turn import create_turn_endpoint
from relay_testkit import Peer, RunningRelay, loopback_config, rest_credentials

from tests.servers import until


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple]] = asyncio.Queue()
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.queue.put_nowait((data, addr))


@pytest.fixture
def relay():
    with RunningRelay(loopback_config()) as running:
        yield running


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_aioice_turn_endpoint_allocate_permission_send_receive(relay: RunningRelay, transport: str) -> None:
    server = relay.address(transport)
    username, password = rest_credentials("aioice")

    async def scenario() -> None:
        turn, protocol = await create_turn_endpoint(Collector, server, username, password, transport=transport)
        try:
            relayed = turn.get_extra_info("sockname")
            assert relayed[0] == "127.0.0.1" and relay.allocations == 1
            with Peer() as peer:
                # aioice binds a channel for the peer (which installs the permission), then sends ChannelData.
                turn.sendto(b"from aioice", peer.address)
                data, source = await asyncio.get_running_loop().run_in_executor(None, peer.recv)
                assert (data, source) == (b"from aioice", relayed)
                peer.send(b"to aioice", relayed)
                data, source = await asyncio.wait_for(protocol.queue.get(), 3)
                assert (data, tuple(source)) == (b"to aioice", peer.address)
        finally:
            turn.close()
            await until(lambda: relay.allocations == 0, "aioice's Refresh with lifetime 0", 5)

    asyncio.run(asyncio.wait_for(scenario(), 20))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_two_aioice_agents_connect_relay_to_relay(relay: RunningRelay, transport: str) -> None:
    """Two ICE agents restricted to relay candidates, both allocating on our relay: the only candidate
    pair is relay/relay, so connectivity checks and data both travel through two allocations."""
    server = relay.address(transport)

    def agent(controlling: bool, user: str) -> Connection:
        username, password = rest_credentials(user)
        return Connection(
            ice_controlling=controlling,
            components=1,
            turn_server=server,
            turn_username=username,
            turn_password=password,
            turn_transport=transport,
            transport_policy=TransportPolicy.RELAY,
            use_ipv6=False,
        )

    async def scenario() -> None:
        left, right = agent(True, "left"), agent(False, "right")
        try:
            await asyncio.gather(left.gather_candidates(), right.gather_candidates())
            assert {c.type for c in left.local_candidates} == {"relay"}
            assert {c.type for c in right.local_candidates} == {"relay"}
            for a, b in ((left, right), (right, left)):
                for candidate in b.local_candidates:
                    await a.add_remote_candidate(candidate)
                await a.add_remote_candidate(None)
                a.remote_username, a.remote_password = b.local_username, b.local_password
            await asyncio.wait_for(asyncio.gather(left.connect(), right.connect()), 15)
            pair = left._nominated[1]
            assert (pair.local_candidate.type, pair.remote_candidate.type) == ("relay", "relay")
            await left.sendto(b"ping over two allocations", 1)
            assert await asyncio.wait_for(right.recvfrom(), 5) == (b"ping over two allocations", 1)
            await right.sendto(b"pong", 1)
            assert await asyncio.wait_for(left.recvfrom(), 5) == (b"pong", 1)
        finally:
            await left.close()
            await right.close()

    asyncio.run(asyncio.wait_for(scenario(), 40))
    assert relay.call(lambda: relay.stats.packets_client_to_peer) > 0
