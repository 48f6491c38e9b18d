"""The TURN request handler without sockets: every RFC 8656 rule and error code, with time passed in."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from relay_testkit import (
    CLIENT,
    PEER,
    REALM,
    SECRET,
    WALL,
    FakeBinder,
    FakeOrigin,
    Session,
    error_of,
    request,
    rest_credentials,
)
from relay_testkit import CoreHarness as Harness

from relay.config import RelayConfig
from relay.policy.quotas import SourceLimiter
from relay.stun import Attr, Message, MessageClass, Method, decode, encode, verify_integrity
from relay.stun.constants import FAMILY_IPV4, FAMILY_IPV6
from relay.turn.handler import CHANNEL_COOLDOWN
from relay.turn.table import AllocationTable


@pytest.fixture
def h() -> Harness:
    return Harness()


# --- Binding and unauthenticated requests ------------------------------------------------------


def test_binding_returns_xor_mapped_address(h: Harness) -> None:
    response = h.send(request(Method.BINDING), sign=False)
    assert response.message_class == MessageClass.SUCCESS
    assert response.get(Attr.XOR_MAPPED_ADDRESS) == CLIENT
    assert response.get(Attr.MAPPED_ADDRESS) is None  # no RFC 3489 amplification
    assert h.stats.requests_binding_success == 1


def test_binding_with_unknown_required_attribute_gets_420(h: Harness) -> None:
    message = request(Method.BINDING)
    wire = bytearray(encode(message))
    wire[3] += 8
    wire += b"\x00\x31\x00\x04abcd"
    response = h.raw(bytes(wire))
    assert error_of(response) == 420 and response.get(Attr.UNKNOWN_ATTRIBUTES) == (0x0031,)


def test_unauthenticated_allocate_gets_small_401_and_creates_nothing(h: Harness) -> None:
    wire = encode(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17)))
    out = h.core.handle(wire, h.origin, CLIENT, h.now, h.wall)
    response = decode(out)
    assert error_of(response) == 401
    assert response.get(Attr.REALM) == REALM and len(response.get(Attr.NONCE)) == 24
    assert response.get(Attr.SOFTWARE) is None and response.integrity_offset < 0
    assert len(out) <= 4 * len(wire)
    assert len(h.core.table) == 0 and h.binder.endpoints == [] and h.quota.total == 0


def test_amplification_bound_for_bare_header(h: Harness) -> None:
    bare = encode(request(Method.ALLOCATE))
    out = h.core.handle(bare, h.origin, CLIENT, h.now, h.wall)
    assert len(bare) == 20 and len(out) <= 5 * len(bare)


def test_401_rate_limit_per_source_on_udp_only() -> None:
    h = Harness(limiter=SourceLimiter(rate=1, burst=3, salt=b"s"))
    wire = encode(request(Method.ALLOCATE))
    answers = [h.core.handle(wire, h.origin, CLIENT, h.now, h.wall) for _ in range(10)]
    assert sum(a is not None for a in answers) == 3 and h.stats.rate_limited == 7
    other = h.core.handle(wire, h.origin, ("198.51.100.99", 1), h.now, h.wall)  # its own budget
    assert other is not None and error_of(decode(other)) == 401
    tcp = FakeOrigin(transport="tcp", stream=True)  # not limited: a handshake proved the address
    assert [error_of(decode(h.core.handle(wire, tcp, CLIENT, h.now, h.wall))) for _ in range(10)] == [401] * 10


def test_a_valid_nonce_gives_its_source_ip_one_answer_back() -> None:
    """The 401 challenge costs the source one answer of its budget (2); the signed Allocate with a valid nonce
    from the same IP refunds it, so two unauthenticated answers are left, not one."""
    h = Harness(limiter=SourceLimiter(rate=0.001, burst=2, salt=b"s"))
    assert h.allocate().message_class == MessageClass.SUCCESS
    wire = encode(request(Method.ALLOCATE))
    answers = [h.core.handle(wire, h.origin, CLIENT, h.now, h.wall) for _ in range(3)]
    assert [a is not None for a in answers] == [True, True, False]


def test_missing_username_realm_or_nonce_with_integrity_is_400(h: Harness) -> None:
    message = request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.USERNAME, h.session.username))
    response = h.raw(encode(message, integrity_key=h.session.key))
    assert error_of(response) == 400 and h.stats.auth_failures_malformed == 1


def test_stale_and_foreign_nonces_get_438_with_a_fresh_nonce(h: Harness) -> None:
    assert h.allocate().message_class == MessageClass.SUCCESS
    other = Session(*rest_credentials("bob", expiry=int(WALL) + 3600))
    other.nonce = h.session.nonce  # issued to CLIENT, replayed from another address
    response = h.raw(other.sign(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17))), ("198.51.100.21", 1))
    assert error_of(response) == 438 and response.get(Attr.NONCE) != other.nonce
    h.wall += 601
    response = h.send(request(Method.REFRESH), retry=False)
    assert error_of(response) == 438 and h.stats.auth_failures_stale_nonce == 2


def test_wrong_password_wrong_realm_expired_and_unknown_user_get_401(h: Harness) -> None:
    cases = [
        Session(h.session.username, "not-the-password"),
        Session(*rest_credentials(expiry=int(WALL) - 1)),
        Session("plain-user", "x"),
    ]
    for session in cases:
        assert error_of(h.allocate(session=session)) == 401
    wrong_realm = Session(*rest_credentials(expiry=int(WALL) + 60))
    wrong_realm.nonce = h.core.nonces.issue(CLIENT, h.wall)
    wrong_realm.realm = "evil.example"
    assert error_of(h.allocate(session=wrong_realm)) == 401
    s = h.stats
    assert (s.auth_failures_bad_integrity, s.auth_failures_expired, s.auth_failures_unknown_user) == (1, 1, 1)
    assert s.auth_failures_wrong_realm == 1 and len(h.core.table) == 0


def test_static_users_authenticate() -> None:
    h = Harness(RelayConfig(realm=REALM, static_users=(("tester", "pw"),)))
    h.session = Session("tester", "pw")
    assert h.allocate().message_class == MessageClass.SUCCESS


# --- Allocate ----------------------------------------------------------------------------------


def test_allocate_success_carries_relayed_mapped_lifetime_and_integrity(h: Harness) -> None:
    response = h.allocate()
    assert response.message_class == MessageClass.SUCCESS
    assert verify_integrity(response, h.session.key)
    assert response.get(Attr.XOR_RELAYED_ADDRESS) == ("203.0.113.10", 50000)
    assert response.get(Attr.XOR_MAPPED_ADDRESS) == CLIENT
    assert response.get(Attr.LIFETIME) == 600
    allocation = h.allocation()
    assert allocation.relays[FAMILY_IPV4].allocation is allocation  # the socket is attached
    assert (h.stats.allocations, h.stats.allocations_created, h.quota.user_count("alice")) == (1, 1, 1)


@pytest.mark.parametrize(("requested", "granted"), [(10, 600), (1200, 1200), (99999, 3600)])
def test_allocate_lifetime_is_clamped(h: Harness, requested: int, granted: int) -> None:
    response = h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, requested))
    assert response.get(Attr.LIFETIME) == granted


def test_allocate_on_a_taken_5_tuple_by_another_user_is_437(h: Harness) -> None:
    h.allocate()
    bob = Session(*rest_credentials("bob", expiry=int(WALL) + 3600))
    response = h.allocate(session=bob)
    assert error_of(response) == 437 and verify_integrity(response, bob.key)


def test_allocate_retransmission_gets_same_answer_and_new_transaction_gets_437(h: Harness) -> None:
    message = request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17))
    h.session.nonce = h.core.nonces.issue(CLIENT, h.wall)
    wire = h.session.sign(message)
    first = h.core.handle(wire, h.origin, CLIENT, h.now, h.wall)
    assert h.core.handle(wire, h.origin, CLIENT, h.now, h.wall) == first
    response = h.allocate()
    assert error_of(response) == 437 and verify_integrity(response, h.session.key)
    assert len(h.binder.endpoints) == 1


def test_an_allocate_over_tcp_keeps_no_answer_for_retransmissions(h: Harness) -> None:
    """A stream is reliable: a client never retransmits over it (RFC 8489 section 6.2.2), so the allocation keeps
    no copy of its Allocate's answer, and the same transaction again is a second Allocate (437)."""
    h.origin = FakeOrigin(transport="tcp", stream=True)
    h.session.nonce = h.core.nonces.issue(CLIENT, h.wall)
    wire = h.session.sign(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17)))
    assert h.core.handle(wire, h.origin, CLIENT, h.now, h.wall) is not None
    allocation = h.allocation()
    assert allocation is not None and (allocation.allocate_tid, allocation.allocate_response) == (b"", b"")
    assert error_of(decode(h.core.handle(wire, h.origin, CLIENT, h.now, h.wall))) == 437
    assert len(h.binder.endpoints) == 1


@pytest.mark.parametrize(
    ("attrs", "code"),
    [
        ((), 400),
        (((Attr.REQUESTED_TRANSPORT, 6),), 442),
        (((Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, 3)), 440),
        (((Attr.REQUESTED_TRANSPORT, 17), (Attr.RESERVATION_TOKEN, b"12345678"), (Attr.EVEN_PORT, False)), 400),
        (
            ((Attr.REQUESTED_TRANSPORT, 17), (Attr.RESERVATION_TOKEN, b"12345678"), (Attr.REQUESTED_ADDRESS_FAMILY, 1)),
            400,
        ),
        (((Attr.REQUESTED_TRANSPORT, 17), (Attr.RESERVATION_TOKEN, b"12345678")), 508),
        (
            ((Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, 2), (Attr.ADDITIONAL_ADDRESS_FAMILY, 2)),
            400,
        ),
        (((Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, 1)), 400),
        (((Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, 2), (Attr.EVEN_PORT, True)), 400),
    ],
)
def test_allocate_refusals(h: Harness, attrs, code: int) -> None:
    response = h.send(request(Method.ALLOCATE, *attrs))
    assert error_of(response) == code
    assert verify_integrity(response, h.session.key)
    assert len(h.core.table) == 0 and h.quota.total == 0


def test_malformed_known_attribute_in_authenticated_request_is_400(h: Harness) -> None:
    h.session.nonce = h.core.nonces.issue(CLIENT, h.wall)
    message = request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 0))
    message.attributes[1] = (Attr.LIFETIME, None)  # replaced below with a 2-byte value
    from relay.stun import attributes as attribute_table

    original = attribute_table.ATTRIBUTES[Attr.LIFETIME]
    try:
        attribute_table.ATTRIBUTES[Attr.LIFETIME] = replace(original, encode=lambda v, t: b"\x00\x01")
        wire = h.session.sign(message)
    finally:
        attribute_table.ATTRIBUTES[Attr.LIFETIME] = original
    assert error_of(h.raw(wire)) == 400


def test_dont_fragment_supported_or_420() -> None:
    h = Harness()
    assert h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.DONT_FRAGMENT, True)).message_class == MessageClass.SUCCESS
    assert h.binder.endpoints[0].dont_fragment
    h2 = Harness(binder=FakeBinder(dont_fragment=False))
    response = h2.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.DONT_FRAGMENT, True))
    assert error_of(response) == 420 and response.get(Attr.UNKNOWN_ATTRIBUTES) == (0x001A,)


def test_even_port_reservation_token_flow(h: Harness) -> None:
    response = h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, True))
    port = response.get(Attr.XOR_RELAYED_ADDRESS)[1]
    token = response.get(Attr.RESERVATION_TOKEN)
    assert port % 2 == 0 and len(token) == 8
    second = ("198.51.100.20", 40001)
    other = Session(*rest_credentials("bob", expiry=int(WALL) + 3600))
    response = h.send(
        request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.RESERVATION_TOKEN, token)),
        session=other,
        client=second,
    )
    assert response.get(Attr.XOR_RELAYED_ADDRESS)[1] == port + 1
    # A token is single-use and expires after 30 s.
    response = h.send(
        request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, False)),
        session=other,
        client=("198.51.100.20", 40002),
    )
    assert response.get(Attr.RESERVATION_TOKEN) is None and response.get(Attr.XOR_RELAYED_ADDRESS)[1] % 2 == 0
    response = h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, True), client=("198.51.100.20", 40003))
    token = response.get(Attr.RESERVATION_TOKEN)
    reserved = h.binder.endpoints[-2]
    h.advance(31)
    assert reserved.closed and token not in h.core.reservations
    response = h.send(
        request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.RESERVATION_TOKEN, token)),
        client=("198.51.100.20", 40004),
    )
    assert error_of(response) == 508


def test_ipv6_and_dual_allocations(h: Harness) -> None:
    response = h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, FAMILY_IPV6))
    assert response.get(Attr.XOR_RELAYED_ADDRESS)[0] == "2001:db8::10"
    dual_client = ("198.51.100.20", 40001)
    response = h.allocate(
        (Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, FAMILY_IPV6), client=dual_client
    )
    relayed = response.get_all(Attr.XOR_RELAYED_ADDRESS)
    assert [r[0] for r in relayed] == ["203.0.113.10", "2001:db8::10"]
    assert set(h.allocation(dual_client).relays) == {FAMILY_IPV4, FAMILY_IPV6}
    # Refresh with REQUESTED-ADDRESS-FAMILY and lifetime 0 drops only that family.
    h.session.nonce = h.core.nonces.issue(dual_client, h.wall)
    wire = h.session.sign(request(Method.REFRESH, (Attr.LIFETIME, 0), (Attr.REQUESTED_ADDRESS_FAMILY, FAMILY_IPV6)))
    assert h.raw(wire, dual_client).get(Attr.LIFETIME) == 0
    assert set(h.allocation(dual_client).relays) == {FAMILY_IPV4}


def test_ipv6_unsupported_host() -> None:
    h = Harness(binder=FakeBinder(families=(FAMILY_IPV4,)))
    assert error_of(h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.REQUESTED_ADDRESS_FAMILY, 2))) == 440
    response = h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, 2))
    assert response.message_class == MessageClass.SUCCESS
    assert response.get(Attr.ADDRESS_ERROR_CODE)[:2] == (FAMILY_IPV6, 440)


def test_quotas_486_and_508_and_release() -> None:
    h = Harness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), user_quota=2, total_quota=3))
    clients = [("198.51.100.20", p) for p in range(1, 6)]
    assert h.allocate(client=clients[0]).message_class == MessageClass.SUCCESS
    assert h.allocate(client=clients[1]).message_class == MessageClass.SUCCESS
    assert error_of(h.allocate(client=clients[2])) == 486
    bob = Session(*rest_credentials("bob", expiry=int(WALL) + 3600))
    assert h.allocate(client=clients[3], session=bob).message_class == MessageClass.SUCCESS
    carol = Session(*rest_credentials("carol", expiry=int(WALL) + 3600))
    assert error_of(h.allocate(client=clients[4], session=carol)) == 508
    assert (h.stats.quota_rejections_user, h.stats.quota_rejections_total) == (1, 1)
    h.session.nonce = h.core.nonces.issue(clients[0], h.wall)
    assert h.raw(h.session.sign(request(Method.REFRESH, (Attr.LIFETIME, 0))), clients[0]).get(Attr.LIFETIME) == 0
    assert h.allocate(client=clients[4], session=carol).message_class == MessageClass.SUCCESS


def test_no_free_port_gives_508_and_keeps_quota(h: Harness) -> None:
    h.binder.free_ports = 0
    assert error_of(h.allocate()) == 508
    assert h.quota.total == 0 and len(h.core.table) == 0


def test_draining_refuses_new_allocations_with_403_but_serves_existing(h: Harness) -> None:
    assert h.allocate().message_class == MessageClass.SUCCESS
    h.draining = True
    assert error_of(h.allocate(client=("198.51.100.20", 1))) == 403
    assert h.send(request(Method.REFRESH)).message_class == MessageClass.SUCCESS
    assert (
        h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, PEER))).message_class == MessageClass.SUCCESS
    )


# --- Refresh -----------------------------------------------------------------------------------


def test_refresh_rules(h: Harness) -> None:
    assert error_of(h.send(request(Method.REFRESH))) == 437
    h.allocate()
    assert h.send(request(Method.REFRESH, (Attr.LIFETIME, 99999))).get(Attr.LIFETIME) == 3600
    assert h.send(request(Method.REFRESH, (Attr.LIFETIME, 30))).get(Attr.LIFETIME) == 30
    assert h.send(request(Method.REFRESH)).get(Attr.LIFETIME) == 600
    assert error_of(h.send(request(Method.REFRESH, (Attr.REQUESTED_ADDRESS_FAMILY, FAMILY_IPV6)))) == 443
    bob = Session(*rest_credentials("bob", expiry=int(WALL) + 3600))
    response = h.send(request(Method.REFRESH), session=bob)
    assert error_of(response) == 441 and verify_integrity(response, bob.key)
    endpoint = h.allocation().relays[FAMILY_IPV4]
    assert h.send(request(Method.REFRESH, (Attr.LIFETIME, 0))).get(Attr.LIFETIME) == 0
    assert endpoint.closed and h.allocation() is None and h.stats.allocations == 0
    assert error_of(h.send(request(Method.REFRESH, (Attr.LIFETIME, 0)))) == 437


def test_allocation_expires_on_tick(h: Harness) -> None:
    h.allocate((Attr.REQUESTED_TRANSPORT, 17))
    endpoint = h.binder.endpoints[0]
    h.advance(599)
    assert h.allocation() is not None
    h.advance(2)
    assert h.allocation() is None and endpoint.closed and h.quota.total == 0


def test_refresh_extends_past_original_expiry(h: Harness) -> None:
    h.allocate()
    h.advance(500)
    h.send(request(Method.REFRESH, (Attr.LIFETIME, 600)))
    h.advance(500)
    assert h.allocation() is not None
    h.advance(101)
    assert h.allocation() is None


def test_credentials_expiring_after_allocate_do_not_cut_the_session(h: Harness) -> None:
    h.session = Session(*rest_credentials(expiry=int(WALL) + 10))
    h.allocate()
    h.wall += 300
    h.session.nonce = h.core.nonces.issue(CLIENT, h.wall)
    assert h.send(request(Method.REFRESH)).message_class == MessageClass.SUCCESS


# --- permissions -------------------------------------------------------------------------------


def test_create_permission_rules(h: Harness) -> None:
    h.allocate()
    assert error_of(h.send(request(Method.CREATE_PERMISSION))) == 400
    assert error_of(h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, ("10.0.0.1", 1))))) == 403
    assert error_of(h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, ("2600::1", 1))))) == 443
    # All or nothing: one denied peer refuses the whole request.
    both = request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, PEER), (Attr.XOR_PEER_ADDRESS, ("127.0.0.1", 1)))
    assert error_of(h.send(both)) == 403
    assert h.allocation().permissions == {}
    assert (
        h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, PEER))).message_class == MessageClass.SUCCESS
    )
    assert PEER[0] in h.allocation().permissions
    assert h.stats.denied_peers == 2


@pytest.mark.parametrize(
    "peer", ["::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::", "::", "0.0.0.0", "::1"]
)
def test_bypass_forms_are_403_even_across_families(h: Harness, peer: str) -> None:
    h.allocate()
    assert error_of(h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, (peer, 80))))) == 403
    assert (
        error_of(
            h.send(request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, (peer, 80))))
        )
        == 403
    )


def test_v4_mapped_public_peer_is_normalised_to_ipv4(h: Harness) -> None:
    h.allocate()
    response = h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, ("::ffff:52.1.2.3", 1))))
    assert response.message_class == MessageClass.SUCCESS and "52.1.2.3" in h.allocation().permissions


def test_permission_capacity_508() -> None:
    h = Harness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), max_permissions=2))
    h.allocate()
    peers = [(Attr.XOR_PEER_ADDRESS, (f"52.1.2.{i}", 1)) for i in range(3)]
    assert error_of(h.send(request(Method.CREATE_PERMISSION, *peers))) == 508
    assert h.send(request(Method.CREATE_PERMISSION, *peers[:2])).message_class == MessageClass.SUCCESS
    # At the limit, a request naming a held peer and a new one is refused as a whole (3 peers, not 2).
    assert error_of(h.send(request(Method.CREATE_PERMISSION, peers[1], peers[2]))) == 508
    # A ChannelBind installs a permission too: to a third peer it is refused, to a permitted one it is not.
    bind = Method.CHANNEL_BIND
    assert error_of(h.send(request(bind, (Attr.CHANNEL_NUMBER, 0x4000), peers[2]))) == 508
    assert h.send(request(bind, (Attr.CHANNEL_NUMBER, 0x4000), peers[1])).message_class == MessageClass.SUCCESS


def test_permission_expires_after_300s_and_refresh_extends(h: Harness) -> None:
    h.allocate()
    h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, PEER)))
    h.advance(200)
    h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, PEER)))
    h.advance(200)
    assert PEER[0] in h.allocation().permissions
    h.advance(101)
    assert PEER[0] not in h.allocation().permissions


# --- channels ----------------------------------------------------------------------------------


def _bind(h: Harness, number: int, peer=PEER) -> Message:
    return h.send(request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, number), (Attr.XOR_PEER_ADDRESS, peer)))


@pytest.mark.parametrize("number", [0x3FFF, 0x5000, 0x7FFF, 0])
def test_channel_number_range(h: Harness, number: int) -> None:
    h.allocate()
    assert error_of(_bind(h, number)) == 400


def test_legacy_rfc5766_channel_numbers_only_when_enabled() -> None:
    strict, legacy = Harness(), Harness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), legacy_channel_numbers=True))
    for h in (strict, legacy):
        h.allocate()
    assert error_of(_bind(strict, 0x6374)) == 400
    assert _bind(legacy, 0x6374).message_class == MessageClass.SUCCESS
    # RFC 5766 section 11: "0x4000 through 0x7FFF"; coturn's uclient picks 0x7FFF too (1 in 16 384 binds).
    other = ("52.1.2.4", 6000)  # PEER already has channel 0x6374
    assert _bind(legacy, 0x7FFF, other).message_class == MessageClass.SUCCESS
    assert error_of(_bind(legacy, 0x8000, ("52.1.2.5", 6000))) == 400


def test_channel_bind_installs_fast_paths_and_permission(h: Harness) -> None:
    h.allocate()
    assert _bind(h, 0x4000).message_class == MessageClass.SUCCESS
    allocation = h.allocation()
    endpoint = allocation.relays[FAMILY_IPV4]
    channel = allocation.channels[0x4000]
    assert (channel.sendto, channel.peer) == (endpoint.sendto, PEER)
    assert allocation.channel_in[PEER] == b"\x40\x00"
    assert PEER[0] in allocation.permissions
    assert _bind(h, 0x4000).message_class == MessageClass.SUCCESS  # refresh of the same binding
    assert error_of(_bind(h, 0x4001)) == 400  # peer already bound to another number
    assert error_of(_bind(h, 0x4000, ("52.1.2.3", 6001))) == 400  # number bound to another peer
    assert error_of(_bind(h, 0x4002, ("52.1.2.3", 0))) == 400
    assert error_of(_bind(h, 0x4002, ("2600::1", 5))) == 443


def test_permission_expiry_withdraws_channel_fast_path_until_refreshed(h: Harness) -> None:
    h.allocate()
    _bind(h, 0x4000)
    allocation = h.allocation()
    h.advance(301)  # permission (300 s) gone, channel (600 s) still bound
    assert allocation.channels[0x4000].sendto is None and PEER not in allocation.channel_in
    h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, PEER)))
    assert allocation.channels[0x4000].sendto is not None and PEER in allocation.channel_in


def test_channel_expiry_and_five_minute_cooldown(h: Harness) -> None:
    h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600))
    _bind(h, 0x4000)
    allocation = h.allocation()
    h.advance(601)
    assert allocation.channels == {} and allocation.channel_in == {}
    assert error_of(_bind(h, 0x4000, ("52.1.2.4", 1))) == 400  # number cooling down
    assert error_of(_bind(h, 0x4001)) == 400  # peer cooling down
    assert _bind(h, 0x4000).message_class == MessageClass.SUCCESS  # the same pair may come back
    h.advance(600 + CHANNEL_COOLDOWN + 1)
    assert allocation.cooldown_numbers == {} and allocation.cooldown_peers == {}
    assert _bind(h, 0x4001, ("52.1.2.4", 1)).message_class == MessageClass.SUCCESS


def test_channel_capacity_508_counts_new_channels_only() -> None:
    h = Harness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), max_channels=1))
    h.allocate()
    assert _bind(h, 0x4000).message_class == MessageClass.SUCCESS
    assert error_of(_bind(h, 0x4001, ("52.1.2.4", 1))) == 508
    assert _bind(h, 0x4000).message_class == MessageClass.SUCCESS  # refreshing the bound one is not a new one
    assert h.stats.quota_rejections_channels == 1


def test_a_bound_channel_or_peer_cannot_be_rebound_either_way(h: Harness) -> None:
    """RFC 8656 section 11.2: a number stays with its peer and a peer with its number, whichever sorts first."""
    h.allocate()
    low, high = ("52.1.2.3", 1), ("52.1.2.9", 1)
    assert _bind(h, 0x4001, low).message_class == MessageClass.SUCCESS
    assert _bind(h, 0x4002, high).message_class == MessageClass.SUCCESS
    assert error_of(_bind(h, 0x4001, high)) == 400 and error_of(_bind(h, 0x4002, low)) == 400
    assert error_of(_bind(h, 0x4002, ("52.1.2.1", 1))) == 400  # number taken, by a peer sorting after the new one
    assert error_of(_bind(h, 0x4000, low)) == 400 and error_of(_bind(h, 0x4003, high)) == 400  # peer bound


def test_a_cooling_number_refuses_a_peer_that_sorts_higher_or_lower(h: Harness) -> None:
    h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600))
    _bind(h, 0x4000, ("52.1.2.5", 1))
    h.advance(601)
    assert error_of(_bind(h, 0x4000, ("52.1.2.4", 1))) == 400 and error_of(_bind(h, 0x4000, ("52.1.2.6", 1))) == 400


def test_the_next_deadline_is_the_earliest_of_permission_channel_and_cooldown(h: Harness) -> None:
    """The allocation table wakes an allocation at `next_deadline()`: a channel or a cooldown ending before every
    permission must be that deadline, or it would outlive its lifetime."""
    h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600))
    _bind(h, 0x4000)
    allocation = h.allocation()
    h.advance(400)
    h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, PEER)))  # the permission now outlives it
    assert allocation.next_deadline() == allocation.channels[0x4000].expires
    h.advance(201)  # the channel ended: its number cools down
    h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, PEER)))
    [(_, until)] = allocation.cooldown_numbers.values()
    assert allocation.next_deadline() == until < min(allocation.permissions.values())
    h.advance(10)  # a second, later permission: the earliest still decides, whatever the order
    h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, ("52.1.2.200", 1))))
    h.advance(289.5)  # past the cooldown (1000), before the first permission ends (1001): now the earliest
    assert allocation.next_deadline() == min(allocation.permissions.values()) < max(allocation.permissions.values())


def test_allocation_sequence_numbers_are_unique() -> None:
    """The data plane keys its per-allocation maps by `seq` (udp.py's peers, the kernel mirror)."""
    table = AllocationTable()
    assert len({table.next_seq() for _ in range(3)}) == 3


def test_a_cooling_peer_refuses_a_lower_channel_number_too(h: Harness) -> None:
    h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600))
    _bind(h, 0x4001)
    h.advance(601)
    assert error_of(_bind(h, 0x4000)) == 400


def test_channel_bind_without_a_channel_number_is_400(h: Harness) -> None:
    h.allocate()
    assert error_of(h.send(request(Method.CHANNEL_BIND, (Attr.XOR_PEER_ADDRESS, PEER)))) == 400


def test_unknown_required_attribute_on_authenticated_request_is_420_with_integrity(h: Harness) -> None:
    h.allocate()
    h.session.nonce = h.session.nonce
    message = request(Method.REFRESH)
    wire = bytearray(encode(message))
    # Insert an unknown comprehension-required attribute, then sign by hand.
    body = bytes(wire[20:]) + b"\x00\x31\x00\x04abcd"
    message = decode(wire[:2] + len(body).to_bytes(2, "big") + wire[4:20] + body)
    message.attributes.append((0x0031, b"abcd"))
    response = h.send(message)
    assert error_of(response) == 420 and response.get(Attr.UNKNOWN_ATTRIBUTES) == (0x0031,)
    assert verify_integrity(response, h.session.key)


def test_unknown_method_and_non_requests(h: Harness) -> None:
    assert error_of(h.raw(encode(request(0x00A)))) == 400
    assert h.raw(encode(Message(Method.ALLOCATE, MessageClass.SUCCESS, b"x" * 12))) is None
    assert h.raw(b"garbage") is None and h.stats.malformed_udp == 1
    wire = bytearray(encode(request(Method.BINDING), fingerprint=True))
    wire[-1] ^= 1
    assert h.raw(bytes(wire)) is None and h.stats.malformed_udp == 2


def test_tcp_connection_close_ends_its_allocations(h: Harness) -> None:
    tcp = FakeOrigin(transport="tcp", stream=True)
    h.origin = tcp
    h.allocate()
    assert len(h.core.table) == 1
    h.core.close_origin(tcp)
    assert len(h.core.table) == 0 and h.binder.endpoints[0].closed


def test_reload_revokes_permissions_the_new_policy_denies(h: Harness) -> None:
    h.allocate()
    _bind(h, 0x4000)
    h.peers.update((), [ipaddress.ip_network("52.0.0.0/8")])
    assert h.core.revalidate_peers() == 1
    allocation = h.allocation()
    assert allocation.permissions == {} and allocation.channel_in == {}
    assert all(channel.sendto is None for channel in allocation.channels.values())


def test_internal_error_is_500_not_a_crash(h: Harness) -> None:
    def explode(*a, **k):
        raise RuntimeError("boom")

    h.binder.bind = explode
    assert error_of(h.allocate()) == 500
    assert h.stats.requests_allocate_server_error == 1


def test_shutdown_closes_everything(h: Harness) -> None:
    h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, True))
    h.core.shutdown()
    assert all(e.closed for e in h.binder.endpoints) and len(h.core.table) == 0 and h.quota.total == 0
