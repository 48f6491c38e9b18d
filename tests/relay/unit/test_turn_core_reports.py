"""The TURN handler's reports and edges that the mutation run (docs/mutation-testing.md) found untested: what each
refusal tells the log and the statistics, the shape of unauthenticated answers, the exact life of an EVEN-PORT
reservation, and what a permission's expiry takes with it. test_turn_core.py has the RFC rules themselves."""

from __future__ import annotations

import logging

import pytest
from relay_testkit import CLIENT, REALM, SECRET, WALL, FakeOrigin, Session, error_of, request, rest_credentials
from relay_testkit import CoreHarness as Harness

from relay.config import RelayConfig
from relay.config.model import AMPLIFICATION_BOUND
from relay.policy.quotas import SourceLimiter
from relay.stun import Attr, MessageClass, Method, encode, verify_integrity
from relay.stun.constants import FAMILY_IPV4, FAMILY_IPV6
from relay.turn.allocation import Channel
from relay.turn.handler import RESERVATION_LIFETIME

OTHER = ("198.51.100.21", 40000)


@pytest.fixture
def h() -> Harness:
    return Harness()


def _refusal(h: Harness) -> tuple[int, str, dict]:
    last = h.refused[-1]
    return last.code, last.cause, dict(last.detail)


# --- statistics and refusal reports -----------------------------------------------------------


def test_requests_are_counted_by_method_and_result(h: Harness) -> None:
    assert h.allocate().message_class == MessageClass.SUCCESS  # after the 401 that fetched the nonce
    assert error_of(h.allocate()) == 437  # a second Allocate on the 5-tuple
    assert h.raw(encode(request(Method.BINDING))).message_class == MessageClass.SUCCESS
    permit = request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, ("52.1.2.3", 0)))
    assert h.send(permit).message_class == MessageClass.SUCCESS  # type 0x0108: its low byte's bit 0 is clear
    assert h.send(request(Method.REFRESH)).message_class == MessageClass.SUCCESS  # 0x0104 likewise
    s = h.stats
    assert (s.requests_allocate_success, s.requests_allocate_client_error) == (1, 2)
    assert (s.requests_binding_success, s.requests_binding_client_error) == (1, 0)
    assert (s.requests_create_permission_success, s.requests_refresh_success) == (1, 1)


def test_the_total_quota_refusal_names_the_total_limit() -> None:
    """The report names the quota user (the REST name without its expiry) and the limit that refused."""
    h = Harness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), total_quota=1, user_quota=5))
    assert h.allocate().message_class == MessageClass.SUCCESS
    assert error_of(h.allocate(client=OTHER)) == 508
    assert _refusal(h) == (508, "total_quota", {"user": "alice", "limit": 1})
    assert (h.stats.quota_rejections_total, h.stats.quota_rejections_user) == (1, 0)


def test_the_user_quota_refusal_names_the_user_limit() -> None:
    h = Harness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), total_quota=10, user_quota=1))
    assert h.allocate().message_class == MessageClass.SUCCESS
    assert error_of(h.allocate(client=OTHER)) == 486
    assert _refusal(h) == (486, "user_quota", {"user": "alice", "limit": 1})
    assert (h.stats.quota_rejections_total, h.stats.quota_rejections_user) == (0, 1)


def test_an_unknown_comprehension_required_attribute_in_a_binding_is_reported_as_420(h: Harness) -> None:
    wire = bytearray(encode(request(Method.BINDING)))
    wire[3] += 8
    wire += b"\x00\x31\x00\x04abcd"
    assert error_of(h.raw(bytes(wire))) == 420
    assert _refusal(h) == (420, "unknown_attribute", {"attributes": (0x0031,)})


def test_a_realm_that_sorts_after_ours_is_still_the_wrong_realm(h: Harness) -> None:
    session = Session(*rest_credentials(expiry=int(WALL) + 60))
    session.nonce = h.core.nonces.issue(CLIENT, h.wall)
    session.realm = "zz.example"
    assert error_of(h.allocate(session=session)) == 401
    assert _refusal(h) == (401, "wrong_realm", {"realm": "zz.example", "expected": REALM})
    assert h.stats.auth_failures_wrong_realm == 1 and len(h.core.table) == 0


def test_the_allocation_owner_with_a_wrong_password_is_challenged_again(h: Harness) -> None:
    assert h.allocate().message_class == MessageClass.SUCCESS
    wrong = Session(h.session.username, "not-the-password")
    response = h.send(request(Method.REFRESH), session=wrong)
    assert error_of(response) == 401 and response.get(Attr.REALM) == REALM and len(response.get(Attr.NONCE)) == 24
    assert _refusal(h)[:2] == (401, "allocation_key")
    assert h.stats.auth_failures_bad_integrity == 1
    assert h.allocation() is not None


@pytest.mark.parametrize("name", ["bob", "aaron"])  # sorting after and before the owner's "alice"
def test_another_user_on_the_allocation_gets_441_signed_with_their_own_key(h: Harness, name: str) -> None:
    assert h.allocate().message_class == MessageClass.SUCCESS
    other = Session(*rest_credentials(name, expiry=int(WALL) + 3600))
    response = h.send(request(Method.REFRESH), session=other)
    assert error_of(response) == 441 and verify_integrity(response, other.key)
    assert _refusal(h) == (441, "other_user", {"owner": h.session.username})


def test_a_wrong_password_is_challenged_again(h: Harness) -> None:
    response = h.allocate(session=Session(h.session.username, "not-the-password"))
    assert error_of(response) == 401 and response.get(Attr.REALM) == REALM and len(response.get(Attr.NONCE)) == 24


def test_a_signed_request_without_a_username_is_400(h: Harness) -> None:
    message = request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.REALM, REALM))
    message.attributes.append((Attr.NONCE, h.core.nonces.issue(CLIENT, h.wall)))
    response = h.raw(encode(message, integrity_key=h.session.key))
    assert error_of(response) == 400 and _refusal(h)[:2] == (400, "missing_credentials")


@pytest.mark.parametrize(("transport", "code", "cause"), [(18, 442, "transport"), (0xFF, 442, "transport")])
def test_only_udp_is_a_transport(h: Harness, transport: int, code: int, cause: str) -> None:
    """Values on both sides of UDP's 17 are refused (TCP's 6 is in test_turn_core.py)."""
    assert error_of(h.allocate((Attr.REQUESTED_TRANSPORT, transport))) == code
    assert _refusal(h) == (code, cause, {"protocol": transport})


def test_only_ipv6_may_be_the_additional_family(h: Harness) -> None:
    """0x03 is neither family: refused like IPv4 (0x01, in test_turn_core.py), whichever side of IPv6 it sorts."""
    response = h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, 3))
    assert error_of(response) == 400 and _refusal(h)[:2] == (400, "additional_family")
    assert len(h.core.table) == 0 and h.quota.total == 0


# --- what unauthenticated answers carry ---------------------------------------------------------


def test_unauthenticated_answers_carry_fingerprint_only_when_the_request_did(h: Harness) -> None:
    assert h.raw(encode(request(Method.BINDING), fingerprint=True)).fingerprint_offset > 0
    assert h.raw(encode(request(Method.BINDING))).fingerprint_offset < 0
    assert h.raw(encode(request(Method.ALLOCATE))).fingerprint_offset < 0  # the 401
    quiet = Harness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), fingerprint=False))
    assert quiet.raw(encode(request(Method.BINDING), fingerprint=True)).fingerprint_offset < 0


def test_software_is_announced_to_authenticated_clients_only() -> None:
    h = Harness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), software="bbb-turn-relay"))
    assert h.raw(encode(request(Method.ALLOCATE))).get(Attr.SOFTWARE) is None  # the 401
    assert h.raw(encode(request(Method.BINDING))).get(Attr.SOFTWARE) is None
    assert h.allocate().get(Attr.SOFTWARE) == "bbb-turn-relay"


# --- EVEN-PORT reservations ---------------------------------------------------------------------


def _reserve(h: Harness) -> bytes:
    response = h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, True))
    token = response.get(Attr.RESERVATION_TOKEN)
    assert len(token) == 8
    return token


def _use(h: Harness, token: bytes):
    bob = Session(*rest_credentials("bob", expiry=int(WALL) + 3600))
    return h.send(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.RESERVATION_TOKEN, token)),
                  session=bob, client=OTHER)  # fmt: skip


def test_a_reservation_is_held_thirty_seconds_and_survives_ticks_before_that(h: Harness) -> None:
    assert RESERVATION_LIFETIME == 30.0  # RFC 8656 section 7.2 ("approximately 30 seconds")
    token = _reserve(h)
    h.advance(10)  # a tick with the reservation still live keeps it
    assert token in h.core.reservations
    h.now += 19.5  # 29.5 s after the Allocate, no tick in between
    assert _use(h, token).message_class == MessageClass.SUCCESS


def test_a_reservation_is_refused_at_its_expiry_even_before_the_tick_removes_it(h: Harness) -> None:
    token = _reserve(h)
    h.now += 30.0  # exactly its expiry; the tick has not run
    assert token in h.core.reservations
    assert error_of(_use(h, token)) == 508 and _refusal(h)[:2] == (508, "reservation")


# --- what a permission's expiry takes with it --------------------------------------------------


def test_a_permission_that_expires_takes_its_data_indication_headers_and_only_those(h: Harness) -> None:
    early, late = "52.1.2.5", "52.1.2.9"  # the expiring host sorts first
    h.allocate()
    permit = lambda host: h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, (host, 0))))  # noqa: E731
    assert permit(early).message_class == MessageClass.SUCCESS
    h.advance(200)
    assert permit(late).message_class == MessageClass.SUCCESS
    allocation = h.allocation()
    # The packet path caches a Data indication's header per peer, keyed by the address it read (a new string).
    heads = {(".".join(host.split(".")), port): b"head" for host in (early, late) for port in (6000, 6001)}
    allocation.data_heads.update(heads)
    h.advance(101)  # the early permission (300 s) is over, the late one has 199 s left
    assert list(allocation.permissions) == [late]
    assert sorted(allocation.data_heads) == [(late, 6000), (late, 6001)]


# --- the allocation's next deadline -------------------------------------------------------------


@pytest.mark.parametrize("order", [(500.0, 400.0), (400.0, 500.0)])
def test_the_earliest_of_several_channels_or_cooldowns_is_the_next_deadline(h: Harness, order) -> None:
    """Two channels (or two cooling numbers) ending at different times, in either order: the earlier decides."""
    h.allocate()
    allocation = h.allocation()
    allocation.permissions.clear()
    allocation.expires = 1000.0
    allocation.channels.update(
        {0x4000 + i: Channel(0x4000 + i, ("52.1.2.3", 6000 + i), t) for i, t in enumerate(order)}
    )
    assert allocation.next_deadline() == 400.0
    allocation.channels.clear()
    allocation.cooldown_numbers.update({0x4000 + i: (("52.1.2.3", 6000 + i), t) for i, t in enumerate(order)})
    assert allocation.next_deadline() == 400.0


# --- more edges: mapped addresses, families, quotas on the way out, logs ------------------------


def test_an_ipv4_client_seen_on_a_dual_stack_socket_is_reported_as_ipv4(h: Harness) -> None:
    response = h.raw(encode(request(Method.BINDING)), client=("::ffff:198.51.100.20", 40000))
    assert response.get(Attr.XOR_MAPPED_ADDRESS) == ("198.51.100.20", 40000)
    response = h.raw(encode(request(Method.BINDING)), client=("2001:db8::20", 40000))
    assert response.get(Attr.XOR_MAPPED_ADDRESS) == ("2001:db8::20", 40000)


def test_a_signed_request_without_a_nonce_is_400_and_says_nothing_more(h: Harness) -> None:
    message = request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17), (Attr.USERNAME, h.session.username))
    message.attributes.append((Attr.REALM, REALM))
    response = h.raw(encode(message, integrity_key=h.session.key))
    assert error_of(response) == 400 and response.get(Attr.NONCE) is None and response.get(Attr.REALM) is None
    assert _refusal(h)[:2] == (400, "missing_credentials") and h.stats.auth_failures_malformed == 1


def test_the_wrong_realm_answer_carries_our_realm_and_a_nonce(h: Harness) -> None:
    session = Session(*rest_credentials(expiry=int(WALL) + 60), realm="other.example")
    session.nonce = h.core.nonces.issue(CLIENT, h.wall)
    response = h.allocate(session=session)
    assert error_of(response) == 401 and response.get(Attr.REALM) == REALM and len(response.get(Attr.NONCE)) == 24


def test_binding_answers_do_not_spend_the_reflection_budget() -> None:
    h = Harness(limiter=SourceLimiter(rate=0.001, burst=1, salt=b"s"))
    answers = [h.raw(encode(request(Method.BINDING))) for _ in range(5)]
    assert all(a is not None and a.message_class == MessageClass.SUCCESS for a in answers)
    assert h.raw(encode(request(Method.ALLOCATE))) is not None  # the one 401 of the budget is still there
    assert h.raw(encode(request(Method.ALLOCATE))) is None and h.stats.rate_limited == 1


def test_an_answer_over_the_amplification_bound_is_dropped_whatever_the_budget() -> None:
    """A realm long enough to make the 401 more than AMPLIFICATION_BOUND x a bare 20-byte request."""
    realm = "r" * (AMPLIFICATION_BOUND * 20)
    h = Harness(RelayConfig(realm=realm, auth_secrets=(SECRET,)))
    assert h.raw(encode(request(Method.ALLOCATE))) is None and h.stats.rate_limited == 1
    tcp = FakeOrigin(transport="tcp", stream=True)  # a handshake proved the address: answered
    assert error_of(h.raw(encode(request(Method.ALLOCATE)), origin=tcp)) == 401


def test_an_even_port_request_without_room_for_its_spare_port_gives_its_unit_back() -> None:
    h = Harness(RelayConfig(realm=REALM, auth_secrets=(SECRET,), user_quota=1))
    assert error_of(h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, True))) == 486
    assert h.quota.total == 0 and h.binder.endpoints == []
    assert h.allocate().message_class == MessageClass.SUCCESS


def test_even_port_asks_the_binder_for_an_even_port(h: Harness) -> None:
    h.binder.next_port = 50001
    response = h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.EVEN_PORT, False))
    assert response.get(Attr.XOR_RELAYED_ADDRESS)[1] == 50002 and response.get(Attr.RESERVATION_TOKEN) is None


def _refresh(h: Harness, client, *attrs):
    h.session.nonce = h.core.nonces.issue(client, h.wall)
    return h.raw(h.session.sign(request(Method.REFRESH, *attrs)), client)


def test_refresh_zero_naming_the_only_family_ends_the_allocation(h: Harness) -> None:
    assert h.allocate().message_class == MessageClass.SUCCESS
    h.send(request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, ("52.1.2.3", 1))))
    allocation = h.allocation()
    assert list(allocation.channels) == [0x4000] and allocation.channels[0x4000].sendto is not None
    assert _refresh(h, CLIENT, (Attr.LIFETIME, 0), (Attr.REQUESTED_ADDRESS_FAMILY, FAMILY_IPV4)).get(Attr.LIFETIME) == 0
    assert h.allocation() is None and allocation.closed and h.quota.total == 0 and h.binder.endpoints[0].closed
    h.core.delete(allocation)  # ended once: a second delete gives nothing back twice
    assert h.quota.total == 0 and h.stats.allocations == 0
    # Everything it held goes at once, not when the last reference to the object does.
    assert (allocation.permissions, allocation.channels, allocation.channel_in) == ({},) * 3
    assert allocation.allocate_response == b""


def test_dropping_a_family_withdraws_that_familys_permissions_only(h: Harness) -> None:
    h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, FAMILY_IPV6))
    for peer in (("52.1.2.3", 0), ("2600:1f18::1", 0)):
        assert (
            h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, peer))).message_class
            == MessageClass.SUCCESS
        )
    assert _refresh(h, CLIENT, (Attr.LIFETIME, 0), (Attr.REQUESTED_ADDRESS_FAMILY, FAMILY_IPV6)).get(Attr.LIFETIME) == 0
    assert list(h.allocation().permissions) == ["52.1.2.3"] and set(h.allocation().relays) == {FAMILY_IPV4}


def test_lifetimes_end_at_their_exact_second(h: Harness) -> None:
    """The tick at an expiry's own time ends it (600 s allocation, 300 s permission, 300 s cooldown)."""
    h.allocate()
    allocation = h.allocation()
    h.send(request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, ("52.1.2.3", 1))))
    h.advance(300)  # the permission ChannelBind installed ends now; the channel (600 s) does not
    assert allocation.permissions == {} and list(allocation.channels) == [0x4000]
    lifetime = 600 - 300
    h.advance(lifetime)  # the allocation (600 s) ends now
    assert h.allocation() is None and allocation.closed


def test_the_channel_cooldown_ends_at_its_exact_second(h: Harness) -> None:
    h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600))
    h.send(request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, ("52.1.2.3", 1))))
    allocation = h.allocation()
    h.advance(600)  # the channel ends: the number and the peer cool down for 300 s
    assert list(allocation.cooldown_numbers) == [0x4000] and list(allocation.cooldown_peers) == [("52.1.2.3", 1)]
    h.advance(300)
    assert allocation.cooldown_numbers == {} and allocation.cooldown_peers == {}


def test_allocations_are_logged_at_debug_with_client_and_relayed_address(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="relay.turn"):
        h.allocate()
        _refresh(h, CLIENT, (Attr.LIFETIME, 0))
    assert [r.getMessage() for r in caplog.records if r.name == "relay.turn"] == [
        "allocation created for 198.51.100.20:40000 relayed ('203.0.113.10', 50000)",
        "allocation for 198.51.100.20:40000 ended",
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="relay.turn"):
        h.allocate(client=OTHER)
    assert [r for r in caplog.records if r.name == "relay.turn"] == []


def test_a_cooldown_lasts_the_full_five_minutes(h: Harness) -> None:
    h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.LIFETIME, 3600))
    h.send(request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, 0x4000), (Attr.XOR_PEER_ADDRESS, ("52.1.2.3", 1))))
    allocation = h.allocation()
    h.advance(600 + 299.5)  # the channel ended at 600: 299.5 s of its 300 s cooldown are over
    assert list(allocation.cooldown_numbers) == [0x4000]


def test_dropping_either_family_stops_sending_to_and_permitting_that_family_only(h: Harness) -> None:
    for family, client in ((FAMILY_IPV6, CLIENT), (FAMILY_IPV4, OTHER)):
        h.allocate((Attr.REQUESTED_TRANSPORT, 17), (Attr.ADDITIONAL_ADDRESS_FAMILY, FAMILY_IPV6), client=client)
        allocation = h.allocation(client)
        assert allocation.send_v4 is not None and allocation.send_v6 is not None
        for peer in (("52.1.2.3", 0), ("2600:1f18::1", 0)):
            permit = request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, peer))
            assert h.send(permit, client=client).message_class == MessageClass.SUCCESS
        assert _refresh(h, client, (Attr.LIFETIME, 0), (Attr.REQUESTED_ADDRESS_FAMILY, family)).get(Attr.LIFETIME) == 0
        kept = FAMILY_IPV4 if family == FAMILY_IPV6 else FAMILY_IPV6
        assert set(allocation.relays) == {kept}
        assert list(allocation.permissions) == ["52.1.2.3" if kept == FAMILY_IPV4 else "2600:1f18::1"]
        assert (allocation.send_v4 is None, allocation.send_v6 is None) == (kept == FAMILY_IPV6, kept == FAMILY_IPV4)


def test_one_tick_ends_every_allocation_due_at_once(h: Harness) -> None:
    for client in (CLIENT, OTHER, ("198.51.100.22", 40000)):
        assert h.allocate(client=client).message_class == MessageClass.SUCCESS
    h.advance(600)
    assert len(h.core.table) == 0 and h.quota.total == 0


def test_a_permission_that_expires_leaves_the_headers_of_a_host_that_sorts_before_it(h: Harness) -> None:
    h.allocate()
    permit = lambda host: h.send(request(Method.CREATE_PERMISSION, (Attr.XOR_PEER_ADDRESS, (host, 0))))  # noqa: E731
    permit("52.1.2.9")
    h.advance(200)
    permit("52.1.2.1")  # sorts before the one that expires first
    allocation = h.allocation()
    allocation.data_heads.update({(".".join(["52", "1", "2", last]), 6000): b"head" for last in ("1", "9")})
    h.advance(101)
    assert list(allocation.data_heads) == [("52.1.2.1", 6000)]


def test_a_reservation_used_after_its_expiry_is_refused_before_any_tick(h: Harness) -> None:
    token = _reserve(h)
    h.now += 31.0  # no tick since
    assert error_of(_use(h, token)) == 508
