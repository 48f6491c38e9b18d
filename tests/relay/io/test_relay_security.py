"""Every security rule and quota, end to end over real loopback sockets.

Peer filter: every firefart/stunner range-scan target, every EnableSecurity coturn-secure-config deny
range (both ends) and the known normalisation bypasses (CVE-2020-26262, CVE-2026-27624, IPv4-compatible,
NAT64, 6to4, Teredo) go through CreatePermission, ChannelBind and Send indication over UDP and TCP.
Each must be refused with 403 (dropped silently for indications), and nothing may ever be sent: a
sentinel socket listens on the probed port on every local address (0.0.0.0 and ::), and the relay's
own packet counters must stay at zero. A positive control proves the sentinel would have seen it.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import time

import pytest
from relay_testkit import Peer, RunningRelay, TurnClient, loopback_config, request, rest_credentials, wait_until

import relay.server.app as server_app
from relay.stun import Attr, MessageClass, Method, decode, encode

STUNNER_RANGE_SCAN = [
    "0.0.0.0", "::", "127.0.0.1", "127.0.0.8", "127.255.255.254", "::1", "10.0.0.1", "10.255.255.254",
    "172.16.0.1", "172.31.255.254", "192.168.0.1", "192.168.255.254", "169.254.0.1", "169.254.254.255",
    "224.0.0.1", "239.255.255.254", "100.64.0.0", "100.127.255.254", "192.0.0.1", "192.0.0.254",
    "192.0.2.1", "192.0.2.254", "198.18.0.1", "198.19.255.254", "198.51.100.1", "198.51.100.254",
    "203.0.113.1", "203.0.113.254", "240.0.0.1", "255.255.255.255", "169.254.169.254",
]  # fmt: skip
ENABLESECURITY_RANGE_ENDS = [
    "0.255.255.255", "10.255.255.255", "100.127.255.255", "127.255.255.255", "169.254.255.255",
    "172.31.255.255", "192.0.0.255", "192.0.2.255", "192.31.196.0", "192.31.196.255", "192.52.193.0",
    "192.52.193.255", "192.88.99.0", "192.88.99.255", "192.168.255.255", "192.175.48.0", "192.175.48.255",
    "198.19.255.255", "198.51.100.255", "203.0.113.255", "239.255.255.255", "64:ff9b::",
    "64:ff9b::ffff:ffff", "64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "100::", "100::ffff:ffff:ffff:ffff",
    "100::1:0:0:0:0", "2001::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::", "2002::",
    "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "2620:4f:8000::", "3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
    "5f00::", "fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
]  # fmt: skip
BYPASSES = [
    "::ffff:127.0.0.1",  # CVE-2026-27624
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::ffff:0.0.0.0",
    "::127.0.0.1",  # IPv4-compatible
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo
    "::ffff:0:7f00:1",  # IPv4-translated
    "ff02::1",
]
ALL_DENIED = list(dict.fromkeys(STUNNER_RANGE_SCAN + ENABLESECURITY_RANGE_ENDS + BYPASSES))


class Sentinel:
    """UDP sockets on one port of every local address: whatever reaches this host on that port lands here."""

    def __init__(self) -> None:
        for _ in range(100):  # the port the kernel gave on IPv6 may be someone's on IPv4: take another
            self.v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            self.v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            self.v6.bind(("::", 0))
            self.port = self.v6.getsockname()[1]
            self.v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.v4.bind(("0.0.0.0", self.port))
                break
            except OSError:
                self.v4.close()
                self.v6.close()
        else:
            raise RuntimeError("no UDP port free on both 0.0.0.0 and ::")
        for sock in (self.v4, self.v6):
            sock.setblocking(False)

    def received(self) -> list[bytes]:
        got = []
        for sock in (self.v4, self.v6):
            while True:
                try:
                    got.append(sock.recv(65535))
                except BlockingIOError:
                    break
        return got

    def close(self) -> None:
        self.v4.close()
        self.v6.close()


@pytest.fixture
def sentinel():
    s = Sentinel()
    yield s
    s.close()


def error_code(response) -> int | None:
    error = response.get(Attr.ERROR_CODE)
    return error[0] if error else None


def _probe_all(client: TurnClient, targets: list[str], port: int, ipv6_allocation: bool) -> dict[str, tuple]:
    results = {}
    for i, host in enumerate(targets):
        peer = (host, port)
        permission = error_code(client.create_permission(peer))
        channel = error_code(client.channel_bind(0x4000 + i, peer))
        client.send_indication(peer, b"probe " + host.encode())
        client.channel_data(0x4000 + i, b"channel probe")
        results[host] = (permission, channel)
    return results


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_every_special_purpose_and_bypass_address_is_refused(sentinel: Sentinel, transport: str) -> None:
    with RunningRelay(loopback_config(allowed_peers=())) as relay, relay.client(transport) as client:
        assert client.allocate().message_class == MessageClass.SUCCESS
        results = _probe_all(client, ALL_DENIED, sentinel.port, ipv6_allocation=False)
        refused = {host: r for host, r in results.items() if r != (403, 403)}
        assert refused == {}, f"not refused with 403: {refused}"
        client.handled()  # every indication and ChannelData above went through the relay
        assert sentinel.received() == []
        stats = relay.call(relay.stats.snapshot)
        assert stats["packets_client_to_peer"] == 0 and stats["bytes_client_to_peer"] == 0
        assert stats["denied_peers"] == 2 * len(ALL_DENIED)


def test_ipv6_allocation_refuses_the_ipv6_forms(sentinel: Sentinel) -> None:
    v6_targets = [h for h in ALL_DENIED if ":" in h]
    with RunningRelay(loopback_config(allowed_peers=())) as relay, relay.client() as client:
        response = client.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, 2))
        assert response.message_class == MessageClass.SUCCESS
        results = _probe_all(client, v6_targets, sentinel.port, ipv6_allocation=True)
        assert {h: r for h, r in results.items() if r != (403, 403)} == {}
        client.handled()
        assert sentinel.received() == []
        assert relay.call(relay.stats.snapshot)["packets_client_to_peer"] == 0


def test_allow_list_wins_only_for_the_listed_address(sentinel: Sentinel) -> None:
    """Positive control: with 127.0.0.1 allowed, data reaches the sentinel, in plain and v4-mapped form;
    other loopback addresses and every embedding of 127.0.0.1 stay refused."""
    config = loopback_config(allowed_peers=(ipaddress.ip_network("127.0.0.1/32"),))
    with RunningRelay(config) as relay, relay.client() as client:
        relayed = client.relayed(client.allocate())
        assert client.create_permission(("127.0.0.1", sentinel.port)).message_class == MessageClass.SUCCESS
        client.send_indication(("127.0.0.1", sentinel.port), b"allowed")
        client.send_indication(("::ffff:127.0.0.1", sentinel.port), b"mapped form, same destination")
        client.handled()
        assert sorted(sentinel.received()) == [b"allowed", b"mapped form, same destination"]
        for host in [
            "127.0.0.2",
            "::ffff:127.0.0.2",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "0.0.0.0",
            "::",
            "::1",
        ]:
            assert error_code(client.create_permission((host, sentinel.port))) == 403, host
            client.send_indication((host, sentinel.port), b"denied")
        client.handled()
        assert sentinel.received() == []
        assert relayed[0] == "127.0.0.1"


def test_unauthenticated_requests_create_no_state_and_stay_small() -> None:
    with RunningRelay(loopback_config()) as relay:
        pools_before = relay.call(lambda: {f: len(p) for f, p in relay.server.core.binder.pools.items()})
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(20)]
        try:
            sizes = []
            for sock in sockets:
                sock.settimeout(2)
                for message in (
                    request(Method.ALLOCATE),
                    request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17)),
                    request(Method.REFRESH),
                    request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, ("127.0.0.1", 9))),
                ):
                    wire = encode(message)
                    sock.sendto(wire, relay.address("udp"))
                    answer = sock.recv(2048)
                    assert decode(answer).get(Attr.ERROR_CODE)[0] == 401
                    sizes.append(len(answer) / len(wire))
                # A signed request with a valid nonce but the wrong password: still nothing stored.
                client_nonce = decode(answer).get(Attr.NONCE)
                username, _ = rest_credentials()
                forged = request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.USERNAME, username),
                                 (Attr.REALM, "relay.test"), (Attr.NONCE, client_nonce))  # fmt: skip
                sock.sendto(encode(forged, integrity_key=os.urandom(16)), relay.address("udp"))
                assert decode(sock.recv(2048)).get(Attr.ERROR_CODE)[0] == 401
            assert max(sizes) <= 5.0, f"amplification factor {max(sizes):.1f}"
        finally:
            for sock in sockets:
                sock.close()
        assert relay.allocations == 0
        assert relay.call(lambda: {f: len(p) for f, p in relay.server.core.binder.pools.items()}) == pools_before
        assert relay.call(lambda: len(relay.server.core.table.by_origin[relay.server.udp[0]])) == 0
        assert relay.call(lambda: relay.stats.auth_failures_bad_integrity) == 20


def test_401_rate_limit_per_source() -> None:
    config = loopback_config(unauthenticated_rate=5.0, unauthenticated_burst=5.0)
    with RunningRelay(config) as relay, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        started = time.monotonic()
        for _ in range(60):
            sock.sendto(encode(request(Method.ALLOCATE)), relay.address("udp"))
        # Then a Binding (never withheld): its answer comes after every answer the 60 Allocates got.
        barrier = request(Method.BINDING)
        sock.sendto(encode(barrier), relay.address("udp"))
        answers = 0
        while (answer := decode(sock.recv(2048))).transaction_id != barrier.transaction_id:
            assert answer.get(Attr.ERROR_CODE)[0] == 401
            answers += 1
        elapsed = time.monotonic() - started
        assert 5 <= answers <= 5 + 5 * elapsed + 1
        assert relay.call(lambda: relay.stats.rate_limited) == 60 - answers
        # Another source is not affected.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.settimeout(1)
            other.bind(("127.0.0.3", 0))
            other.sendto(encode(request(Method.ALLOCATE)), relay.address("udp"))
            assert decode(other.recv(2048)).get(Attr.ERROR_CODE)[0] == 401


def test_expired_credentials_are_refused_at_allocate() -> None:
    with RunningRelay(loopback_config()) as relay:
        username, password = rest_credentials(expiry=int(time.time()) - 5)
        with TurnClient(relay.address("udp"), username, password) as client:
            assert error_code(client.allocate()) == 401
        # The client's first Allocate carries no nonce yet (refused for that, counted as a stale nonce); its
        # two retries with the relay's nonce are each refused for the expired credential.
        assert relay.call(lambda: relay.stats.auth_failures_expired) == 2 and relay.allocations == 0


def test_stale_nonce_gets_438_then_the_client_recovers() -> None:
    with RunningRelay(loopback_config(nonce_lifetime=1)) as relay, relay.client() as client:
        assert client.allocate().message_class == MessageClass.SUCCESS
        issued = int(client.session.nonce[:8], 16)  # the nonce's first 8 hex digits: its issue time (unix s)
        # Time passing is the condition: the relay's clock past the nonce's 1 s lifetime.
        wait_until(lambda: time.time() - issued > 1, "the nonce to outlive its 1 s lifetime", timeout=5, interval=0.05)
        stale = client.transact(request(Method.REFRESH))
        assert error_code(stale) == 438 and stale.get(Attr.NONCE) != client.session.nonce
        assert client.refresh().message_class == MessageClass.SUCCESS  # retries with the fresh nonce


def test_user_and_total_quotas() -> None:
    with RunningRelay(loopback_config(user_quota=2, total_quota=3)) as relay:
        alice = [relay.client() for _ in range(3)]
        bob, carol = relay.client(user="bob"), relay.client(user="carol")
        try:
            assert [c.allocate().message_class for c in alice[:2]] == [MessageClass.SUCCESS] * 2
            assert error_code(alice[2].allocate()) == 486
            assert bob.allocate().message_class == MessageClass.SUCCESS
            assert error_code(carol.allocate()) == 508
            assert alice[0].refresh(0).get(Attr.LIFETIME) == 0
            assert carol.allocate().message_class == MessageClass.SUCCESS
            snapshot = relay.call(relay.stats.snapshot)
            assert (snapshot["quota_rejections_user"], snapshot["quota_rejections_total"]) == (1, 1)
        finally:
            for c in (*alice, bob, carol):
                c.close()


def test_bandwidth_quota_per_allocation() -> None:
    rate = 20_000
    with RunningRelay(loopback_config(max_bps=rate)) as relay, relay.client() as client, Peer() as peer:
        relayed = client.relayed(client.allocate())
        client.channel_bind(0x4000, peer.address)
        payload = b"x" * 1000
        for _ in range(100):  # 100 kB at once: five times what one second allows
            client.channel_data(0x4000, payload)
        client.handled()  # all 100 went through the relay: what it forwarded is queued at the peer
        received = 0
        while not peer.nothing_received(0):  # each call takes one datagram if there is one
            received += 1
        # The burst (one second of rate = 20 packets) plus what refills while sending; far below 100.
        assert 15 <= received <= 40
        forwarded = relay.call(lambda: (relay.stats.packets_client_to_peer, relay.stats.quota_rejections_bandwidth))
        assert forwarded == (received, 100 - received)  # every one of the 100 either forwarded or counted
        for _ in range(100):
            peer.send(payload, relayed)
        back = 0
        while True:
            try:
                client.receive_data(timeout=0.3)
                back += 1
            except TimeoutError:
                break
        assert 15 <= back <= 40
        assert relay.call(lambda: relay.stats.quota_rejections_bandwidth) >= 120


def test_malformed_input_never_stops_the_relay() -> None:
    with RunningRelay(loopback_config()) as relay:
        garbage = [b"", b"\x00", b"\xff" * 100, b"\x40\x00\xff\xff", b"\x00\x01\xff\xff!\x12\xa4B" + b"\x00" * 12,
                   b"\x00\x16\x00\x08!\x12\xa4B" + b"\x00" * 12 + b"\x00\x12\x00\x04\x00\x01",
                   random.Random(0).randbytes(1400),  # seeded noise, starting 0xcd: no ChannelData shape
                   b"\x00\x03\x00\x04!\x12\xa4B" + b"\x00" * 12 + b"\x00\x19\xff\xff"]  # fmt: skip
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for data in garbage * 10:
                sock.sendto(data, relay.address("udp"))
        for data in garbage[1:]:
            with socket.create_connection(relay.address("tcp"), timeout=2) as tcp:
                tcp.sendall(data)
        with relay.client() as client:  # answered after every datagram above (one listener, read in order)
            assert client.allocate().message_class == MessageClass.SUCCESS
        # Malformed per round: the empty datagram, the lone byte, the 0xff run, the noise, and the Binding and
        # Allocate whose lengths overrun; ChannelData and a Send indication from a client with no allocation
        # are dropped uncounted (the fast path's first lookup finds nothing to relay them for).
        assert relay.call(lambda: relay.stats.malformed_udp) == 6 * 10


def test_idle_tcp_connection_without_allocation_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_app, "UNALLOCATED_IDLE", 0.5)
    with RunningRelay(loopback_config()) as relay, socket.create_connection(relay.address("tcp"), timeout=5) as idle:
        assert idle.recv(10) == b""  # closed by the relay after the idle limit (timer runs every second)
        assert relay.call(lambda: relay.stats.connections_tcp) == 0
