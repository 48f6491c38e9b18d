"""KernelMirror driven by the real TurnCore (relay_testkit's CoreHarness: real requests, a controllable
clock) and checked on the real program with BPF_PROG_TEST_RUN: the kernel forwards exactly while the
core allows it, and not one packet after a permission or channel expires, after Refresh(0), or for a
peer the policy denies. The mirror is injected into the core (`TurnCore.mirror`): nothing here calls
`sync` or `forget`, the core's own hooks do."""

from __future__ import annotations

import ctypes
import errno
import ipaddress
from dataclasses import replace

import pytest
from kernel_kit import (
    TC_ACT_OK,
    TC_ACT_REDIRECT,
    channel_data,
    forwarded,
    forwarded6,
    frame,
    frame6,
    ipv4_udp,
    ipv6_udp,
    send_indication,
    send_indication6,
)
from relay_testkit import CLIENT, PEER, CoreHarness, FakeOrigin, request

from relay.config import RelayConfig
from relay.ops.metrics import RelayCollector, build_registry, render_metrics
from relay.server.kernel.loader import TcRelay
from relay.server.kernel.mirror import KernelMirror, _entries, _record
from relay.server.kernel.offload import Offload
from relay.stun import Attr, MessageClass, Method
from relay.stun.constants import FAMILY_IPV4, FAMILY_IPV6

SERVER = FakeOrigin().local
RELAY_PRIVATE = "10.0.0.5"
CHANNEL = 0x4123
PAYLOAD = b"media " * 20


def _relay_address(endpoint: object) -> tuple[str, int]:
    return RELAY_PRIVATE, endpoint.advertised[1]  # type: ignore[attr-defined]


@pytest.fixture()
def mirror(relay: TcRelay) -> KernelMirror:
    return KernelMirror(relay, relay_address=_relay_address)


def _harness(mirror: KernelMirror, config: RelayConfig | None = None) -> CoreHarness:
    h = CoreHarness(config)
    h.core.mirror = mirror
    return h


@pytest.fixture()
def harness(mirror: KernelMirror) -> CoreHarness:
    h = _harness(mirror)
    assert h.allocate().message_class == MessageClass.SUCCESS
    return h


def _relay(h: CoreHarness) -> tuple[str, int]:
    return _relay_address(h.allocation().relays[1])


def _client_channel_data(h: CoreHarness) -> bytes:
    return frame(ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD)))


def _peer_datagram(h: CoreHarness) -> bytes:
    return frame(ipv4_udp(PEER, _relay(h), PAYLOAD))


def _bind(h: CoreHarness, mirror: KernelMirror) -> None:
    message = request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, CHANNEL), (Attr.XOR_PEER_ADDRESS, PEER))
    assert h.send(message).message_class == MessageClass.SUCCESS


def _permit(h: CoreHarness, mirror: KernelMirror, peer: tuple[str, int] = PEER) -> MessageClass:
    return h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, peer))).message_class


def _tick(h: CoreHarness, mirror: KernelMirror, seconds: float) -> None:
    h.advance(seconds)


def test_a_bound_channel_is_forwarded_in_the_kernel_both_ways(
    harness: CoreHarness, relay: TcRelay, mirror: KernelMirror
) -> None:
    _bind(harness, mirror)
    action, out = relay.test_run(_client_channel_data(harness))
    assert (action, out) == (TC_ACT_REDIRECT, frame(forwarded(_relay(harness), PEER, PAYLOAD)))
    action, out = relay.test_run(_peer_datagram(harness))
    assert (action, out) == (TC_ACT_REDIRECT, frame(forwarded(SERVER, CLIENT, channel_data(CHANNEL, PAYLOAD))))
    assert len(list(relay.keys("channels"))) == 1 and len(list(relay.keys("peers"))) == 2  # channel + permission


def test_an_expired_permission_stops_everything_at_once(
    harness: CoreHarness, relay: TcRelay, mirror: KernelMirror
) -> None:
    _bind(harness, mirror)
    for _ in range(5):  # forwarded data refreshes nothing
        assert relay.test_run(_client_channel_data(harness))[0] == TC_ACT_REDIRECT
    _tick(harness, mirror, harness.config.permission_lifetime + 1)
    assert harness.allocation().permissions == {}
    for packet in (_client_channel_data(harness), _peer_datagram(harness)):
        assert relay.test_run(packet) == (TC_ACT_OK, packet)
    send = frame(ipv4_udp(CLIENT, SERVER, send_indication(PEER, PAYLOAD)))
    assert relay.test_run(send) == (TC_ACT_OK, send)
    assert [list(relay.keys(name)) for name in ("channels", "permissions", "peers")] == [[], [], []]


def test_an_expired_channel_leaves_the_permission_s_indications(
    harness: CoreHarness, relay: TcRelay, mirror: KernelMirror
) -> None:
    _bind(harness, mirror)
    assert harness.send(request(Method.REFRESH, (Attr.LIFETIME, 3600))).message_class == MessageClass.SUCCESS
    lifetime = harness.config.permission_lifetime
    waited = 0
    while waited + lifetime - 60 < harness.config.channel_lifetime:  # keep the permission alive
        _tick(harness, mirror, lifetime - 60)
        waited += lifetime - 60
        assert _permit(harness, mirror) == MessageClass.SUCCESS
    _tick(harness, mirror, harness.config.channel_lifetime - waited + 1)
    assert harness.allocation().channels == {} and PEER[0] in harness.allocation().permissions
    packet = _client_channel_data(harness)
    assert relay.test_run(packet) == (TC_ACT_OK, packet)
    action, out = relay.test_run(_peer_datagram(harness))
    assert action == TC_ACT_REDIRECT and out[14 + 28 : 14 + 30] == b"\x00\x17"  # a Data indication now


def test_refresh_zero_removes_every_entry(harness: CoreHarness, relay: TcRelay, mirror: KernelMirror) -> None:
    _bind(harness, mirror)
    allocation = harness.allocation()
    assert harness.send(request(Method.REFRESH, (Attr.LIFETIME, 0))).get(Attr.LIFETIME) == 0
    assert allocation.closed
    assert len(mirror) == 0
    assert [list(relay.keys(name)) for name in ("channels", "permissions", "peers")] == [[], [], []]


def test_a_denied_peer_is_never_installed(harness: CoreHarness, relay: TcRelay, mirror: KernelMirror) -> None:
    assert _permit(harness, mirror, ("10.0.0.1", 1)) == MessageClass.ERROR  # private: denied by default
    assert mirror.installed(harness.allocation()) == {}
    packet = frame(ipv4_udp(("10.0.0.1", 1), _relay(harness), PAYLOAD))
    assert relay.test_run(packet) == (TC_ACT_OK, packet)


def test_a_peer_at_the_relay_s_own_address_stays_in_user_space(relay: TcRelay, mirror: KernelMirror) -> None:
    """Two clients of one relay (a relay/relay pair on one host): the stack delivers their datagrams over
    lo, the program would send them out of the interface and lose them."""
    allowed = (ipaddress.ip_network(f"{RELAY_PRIVATE}/32"), ipaddress.ip_network(f"{PEER[0]}/32"))
    h = _harness(mirror, replace(CoreHarness().config, allowed_peers=allowed))
    assert h.allocate().message_class == MessageClass.SUCCESS
    itself = (RELAY_PRIVATE, 50001)  # another allocation's relayed address, also the listening address here
    assert _permit(h, mirror, itself) == MessageClass.SUCCESS
    bind = request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, CHANNEL), (Attr.XOR_PEER_ADDRESS, itself))
    assert h.send(bind).message_class == MessageClass.SUCCESS
    assert mirror.installed(h.allocation()) == {}
    for packet in (
        frame(ipv4_udp(CLIENT, SERVER, channel_data(CHANNEL, PAYLOAD))),
        frame(ipv4_udp(CLIENT, SERVER, send_indication(itself, PAYLOAD))),
        frame(ipv4_udp(itself, _relay(h), PAYLOAD)),
    ):
        assert relay.test_run(packet) == (TC_ACT_OK, packet)
    assert _permit(h, mirror) == MessageClass.SUCCESS  # a peer elsewhere still goes to the kernel
    assert {name for name, _ in mirror.installed(h.allocation())} == {"permissions", "peers"}


def test_an_unchanged_entry_keeps_its_counters(harness: CoreHarness, relay: TcRelay, mirror: KernelMirror) -> None:
    _bind(harness, mirror)
    relay.test_run(_client_channel_data(harness))
    _permit(harness, mirror)  # a refresh rewrites nothing
    assert relay.channel_counters(CLIENT, SERVER, CHANNEL).packets == 1


def test_allocations_the_kernel_cannot_serve_stay_in_user_space(relay: TcRelay, mirror: KernelMirror) -> None:
    limited = _harness(mirror, replace(CoreHarness().config, max_bps=100_000))
    assert limited.allocate().message_class == MessageClass.SUCCESS
    assert mirror.reason(limited.allocation()) == "a bandwidth limit applies (max-bps is policed in user space)"
    _permit(limited, mirror)
    assert mirror.installed(limited.allocation()) == {} and list(relay.keys("permissions")) == []
    tcp = CoreHarness()
    tcp.origin = FakeOrigin(transport="tcp", stream=True)
    assert tcp.allocate().message_class == MessageClass.SUCCESS
    assert mirror.reason(tcp.allocation()) == "the client uses TCP"
    wildcard = CoreHarness()
    wildcard.origin = FakeOrigin(local=("0.0.0.0", 3478))
    assert wildcard.allocate().message_class == MessageClass.SUCCESS
    assert mirror.reason(wildcard.allocation()) == "the listener is not bound to one IPv4 address"


def test_an_ipv6_allocation_gets_ipv6_entries_and_its_ipv4_peers_stay_in_user_space(relay: TcRelay) -> None:
    client6, server6, peer6 = ("2001:db8:c::20", 40000), ("2001:db8:5::5", 3478), ("2a00:1450:4001::1", 6000)
    mirror = KernelMirror(
        relay, relay_address=lambda e: ("2001:db8:5::5" if e.family == 2 else RELAY_PRIVATE, e.advertised[1])
    )
    h = _harness(mirror)
    h.origin = FakeOrigin(local=server6)
    dual = request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, FAMILY_IPV6))
    assert h.send(dual, client=client6).message_class == MessageClass.SUCCESS
    allocation = h.allocation(client6)
    assert set(allocation.relays) == {FAMILY_IPV4, FAMILY_IPV6}
    for peer in (peer6, PEER):
        message = request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, peer))
        assert h.send(message, client=client6).message_class == MessageClass.SUCCESS
    assert {name for name, _ in mirror.installed(allocation)} == {"permissions6", "peers6"}
    relay6 = ("2001:db8:5::5", allocation.relays[FAMILY_IPV6].advertised[1])
    send = frame6(ipv6_udp(client6, server6, send_indication6(peer6, PAYLOAD)))
    assert relay.test_run(send) == (TC_ACT_REDIRECT, frame6(forwarded6(relay6, peer6, PAYLOAD)))

    # Refresh(0) for the IPv6 family alone (RFC 8656 section 7.3) ends the IPv6 relay: its entries go too.
    drop = request(Method.REFRESH, (Attr.LIFETIME, 0), (Attr.REQUESTED_ADDRESS_FAMILY, FAMILY_IPV6))
    assert h.send(drop, client=client6).message_class == MessageClass.SUCCESS
    assert set(allocation.relays) == {FAMILY_IPV4} and mirror.installed(allocation) == {}
    assert relay.test_run(send) == (TC_ACT_OK, send)


def test_a_peer_denied_by_a_reload_is_withdrawn_from_the_kernel(
    harness: CoreHarness, relay: TcRelay, mirror: KernelMirror
) -> None:
    _bind(harness, mirror)
    assert relay.test_run(_peer_datagram(harness))[0] == TC_ACT_REDIRECT
    harness.peers.update((), (ipaddress.ip_network(f"{PEER[0]}/32"),))
    assert harness.core.revalidate_peers() == 1
    assert mirror.installed(harness.allocation()) == {}
    for packet in (_client_channel_data(harness), _peer_datagram(harness)):
        assert relay.test_run(packet) == (TC_ACT_OK, packet)


class _FullMap:
    """A program whose maps refuse every new entry (E2BIG, as a full hash map does)."""

    def put(self, slot: object, value: bytes) -> None:
        raise OSError(errno.E2BIG, "bpf map 'permissions' update failed: Argument list too long")

    def remove(self, slot: object) -> bool:
        return False


def test_a_kernel_refusal_costs_the_offload_never_the_request(caplog: pytest.LogCaptureFixture) -> None:
    h = _harness(KernelMirror(_FullMap(), relay_address=_relay_address))
    assert h.allocate().message_class == MessageClass.SUCCESS
    assert _permit(h, h.core.mirror) == MessageClass.SUCCESS
    assert PEER[0] in h.allocation().permissions and h.core.mirror.installed(h.allocation()) == {}
    assert "kernel mirror update failed" in caplog.text


def test_metrics_count_what_the_kernel_forwarded(harness: CoreHarness, relay: TcRelay, mirror: KernelMirror) -> None:
    _bind(harness, mirror)
    for _ in range(3):
        assert relay.test_run(_client_channel_data(harness))[0] == TC_ACT_REDIRECT
    assert relay.test_run(_peer_datagram(harness))[0] == TC_ACT_REDIRECT
    harness.stats.packets_client_to_peer = 5  # what user space carried meanwhile
    snapshot = Offload(relay, "test", 1500).with_totals(harness.stats.snapshot())
    body = render_metrics(build_registry(RelayCollector(lambda: snapshot), process_metrics=False)).decode()
    for line in (
        'turn_offloaded_packets_total{direction="client_to_peer"} 3.0',
        'turn_offloaded_packets_total{direction="peer_to_client"} 1.0',
        f'turn_offloaded_bytes_total{{direction="client_to_peer"}} {3.0 * len(PAYLOAD)}',
        'turn_packets_total{direction="client_to_peer"} 8.0',  # the kernel's share included
        'turn_packets_total{direction="peer_to_client"} 1.0',
    ):
        assert line in body.splitlines(), line


class _Stubborn:
    """Refuses to delete one entry (as a map would with EPERM); records what it removed."""

    def __init__(self, refused: str) -> None:
        self.refused, self.removed = refused, []

    def put(self, slot: object, value: bytes) -> None:
        pass

    def remove(self, slot: tuple[str, bytes]) -> bool:
        if slot[0] == self.refused:
            raise OSError(errno.EPERM, "bpf map delete failed")
        self.removed.append(slot[0])
        return True


def test_one_refused_removal_does_not_leave_the_other_entries_forwarding(caplog: pytest.LogCaptureFixture) -> None:
    program = _Stubborn("channels")
    h = _harness(KernelMirror(program, relay_address=_relay_address))
    assert h.allocate().message_class == MessageClass.SUCCESS
    _bind(h, h.core.mirror)
    assert h.send(request(Method.REFRESH, (Attr.LIFETIME, 0))).get(Attr.LIFETIME) == 0
    assert sorted(program.removed) == ["peers", "peers", "permissions"] and len(h.core.mirror) == 0
    assert "kernel mirror update failed" in caplog.text


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]  # fmt: skip


def test_installed_records_are_not_left_in_the_c_heap() -> None:
    """pickle.dumps shrinks a 4 KiB buffer into its result, which then stays in glibc's heap where the buffer
    was; kept by the hundred, each pins a hole of ~3.7 KiB (measured in the benchmark). `_record` copies it
    into Python's small-object allocator, so keeping records does not grow the C heap's bytes in use."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    entries = {(f"map{i}", bytes(range(20 + i))): bytes(32) for i in range(4)}
    kept = {}
    before = libc.mallinfo2().uordblks
    for i in range(2000):
        kept[i] = _record(entries)
    per_record = (libc.mallinfo2().uordblks - before) / len(kept)
    assert len(kept[0]) > 200 and _entries(kept[0]) == entries
    assert per_record < 100, f"{per_record:.0f} bytes of C heap per kept record"
