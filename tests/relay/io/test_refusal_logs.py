"""Issue 16 item 5 / issue 13 item 5: every refusal the relay sends is logged with its reason at the
default level (info), rate-limited, without secrets. A real relay on loopback, a real client message per
error code, and the log line it leaves (the raw message as logged, and the line the text formatter
writes, so `grep code=403` works on what journald holds)."""

from __future__ import annotations

import logging

import pytest
from relay_testkit import SECRET, RunningRelay, Session, TurnClient, loopback_config, request, rest_credentials

from relay.ops.logs import TextFormatter
from relay.server.refusals import REFUSAL_LOG_INTERVAL
from relay.stun import Attr, MessageClass, Method

LOGGER = "relay.refusals"


def refusal_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


def only_line(caplog: pytest.LogCaptureFixture, code: int, *, level: int = logging.INFO, secrets=()) -> str:
    """The one refusal line at `level` (every other level empty of refusals), checked for secrets."""
    records = refusal_lines(caplog, level)
    assert len(records) == 1, [r.getMessage() for r in caplog.records if r.name == LOGGER]
    others = [r for r in caplog.records if r.name == LOGGER and r.levelno != level]
    assert others == [], [r.getMessage() for r in others]
    message = records[0].getMessage()
    formatted = TextFormatter().format(records[0])
    assert message.startswith(f"refused {code} ") and f"code={code}" in formatted, formatted
    for secret in (SECRET, *secrets):
        assert secret not in message and secret not in formatted
    return message


def source(client: TurnClient) -> str:
    """How a refusal line names the client: its address, port and transport."""
    host, port = client.sock.getsockname()[:2]
    return f"{host}:{port}/{client.transport}"


def error(response) -> int:
    assert response.message_class == MessageClass.ERROR, response
    return response.get(Attr.ERROR_CODE)[0]


@pytest.fixture
def relay_factory(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    relays: list[RunningRelay] = []

    def start(**overrides) -> RunningRelay:
        relay = RunningRelay(loopback_config(**overrides)).__enter__()
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        relay.__exit__(None, None, None)


def test_400_channel_number_outside_rfc8656_range_names_legacy_channel_numbers(relay_factory, caplog) -> None:
    """What coturn's turnutils_uclient does by default: a random channel number above 0x4FFF."""
    relay = relay_factory()
    with relay.client() as client:
        assert client.allocate().message_class == MessageClass.SUCCESS
        assert error(client.channel_bind(0x7FFF, ("127.0.0.1", 5000))) == 400
        line = only_line(caplog, 400, secrets=(client.session.password,))
        assert line == (
            f"refused 400 ChannelBind from {source(client)} user {client.session.username}: channel number 0x7fff "
            "outside 0x4000-0x4fff (coturn's turnutils_uclient picks numbers up to 0x7FFF: set legacy-channel-numbers)"
        )


def test_401_only_after_a_credential_was_presented(relay_factory, caplog) -> None:
    relay = relay_factory()
    username, _ = rest_credentials("mallory")
    wrong = "not-the-password-1234"
    with TurnClient(relay.address("udp"), username, wrong) as client:
        bare = client.transact(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17)), sign=False)
        assert error(bare) == 401  # the normal first step of every client: not logged
        assert refusal_lines(caplog) == []
        assert error(client.allocate()) == 401
        line = only_line(caplog, 401, secrets=(wrong,))
        assert line == (
            f"refused 401 Allocate from {source(client)} user {username}: wrong credentials for user {username}: "
            "no configured secret matches (static-auth-secret / auth-secret-file must hold the secret BBB signs with)"
        )


def test_403_refused_peer_names_the_rule_and_the_keys(relay_factory, caplog) -> None:
    """A relay-only browser whose permission for a private host candidate is refused."""
    relay = relay_factory()
    with relay.client("tcp") as client:
        assert client.allocate().message_class == MessageClass.SUCCESS
        assert error(client.create_permission(("10.0.0.5", 5000))) == 403
        line = only_line(caplog, 403, secrets=(client.session.password,))
        assert source(client).endswith("/tcp")
        assert line == (
            f"refused 403 CreatePermission from {source(client)} user {client.session.username}: peer 10.0.0.5 "
            "refused: private (denied-peer-ip / allowed-peer-ip / allowed-peers-file)"
        )


def test_437_request_without_an_allocation(relay_factory, caplog) -> None:
    relay = relay_factory()
    with relay.client() as client:
        assert error(client.refresh(600)) == 437
        line = only_line(caplog, 437)
        assert line == (
            f"refused 437 Refresh from {source(client)} user {client.session.username}: no allocation on this "
            "5-tuple (it expired or was deleted: the client must Allocate again)"
        )


def test_438_stale_nonce_is_routine_and_logged_at_debug_only(relay_factory, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    relay = relay_factory()
    with relay.client() as client:
        challenge = client.transact(request(Method.ALLOCATE, (Attr.REQUESTED_TRANSPORT, 17)), sign=False)
        client.session.nonce = challenge.get(Attr.NONCE)  # as a browser: unsigned first, so no 438 yet
        assert client.allocate().message_class == MessageClass.SUCCESS
        assert refusal_lines(caplog, logging.DEBUG) == []
        client.session.nonce = "0" * 24  # not a nonce this relay issued
        assert error(client.transact(request(Method.REFRESH, (Attr.LIFETIME, 600)))) == 438
        line = only_line(caplog, 438, level=logging.DEBUG)
        assert line == (
            f"refused 438 Refresh from {source(client)} user {client.session.username}: stale nonce (older than "
            "stale-nonce seconds or issued to another address); clients retry"
        )


def test_441_allocation_used_with_another_users_credentials(relay_factory, caplog) -> None:
    relay = relay_factory()
    with relay.client(user="alice") as client:
        assert client.allocate().message_class == MessageClass.SUCCESS
        alice = client.session.username
        bob = Session(*rest_credentials("bob"), nonce=client.session.nonce)
        client.session = bob
        assert error(client.refresh(600)) == 441
        line = only_line(caplog, 441, secrets=(bob.password,))
        assert line == (
            f"refused 441 Refresh from {source(client)} user {bob.username}: allocation of user {alice} used with "
            f"the credentials of user {bob.username} (RFC 8656)"
        )


def test_442_tcp_relaying_requested(relay_factory, caplog) -> None:
    relay = relay_factory()
    with relay.client() as client:
        assert error(client.allocate((Attr.REQUESTED_TRANSPORT, 6))) == 442
        line = only_line(caplog, 442)
        assert line == (
            f"refused 442 Allocate from {source(client)} user {client.session.username}: REQUESTED-TRANSPORT 6 is "
            "not UDP (17): TCP relaying (RFC 6062) is not offered"
        )


def test_486_user_quota(relay_factory, caplog) -> None:
    relay = relay_factory(user_quota=1)
    with relay.client(user="carol") as first, relay.client(user="carol") as second:
        assert first.allocate().message_class == MessageClass.SUCCESS
        assert error(second.allocate()) == 486
        line = only_line(caplog, 486)
        assert line == (
            f"refused 486 Allocate from {source(second)} user {second.session.username}: user carol is at "
            "user-quota (1 allocations; raise user-quota if that is legitimate)"
        )


def test_508_total_quota(relay_factory, caplog) -> None:
    relay = relay_factory(total_quota=1)
    with relay.client(user="dave") as first, relay.client(user="erin") as second:
        assert first.allocate().message_class == MessageClass.SUCCESS
        assert error(second.allocate()) == 508
        line = only_line(caplog, 508)
        assert line == (
            f"refused 508 Allocate from {source(second)} user {second.session.username}: the relay is at "
            "total-quota (1 allocations; raise total-quota or add instances)"
        )


def test_a_flood_is_one_line_then_one_summary_per_interval(relay_factory, caplog) -> None:
    """50 refused permissions: one line at once; the tick after the interval writes one summary with the
    count; nothing else. The bound: one line per (code, cause) per REFUSAL_LOG_INTERVAL."""
    relay = relay_factory()
    flood = 50
    with relay.client() as client:
        assert client.allocate().message_class == MessageClass.SUCCESS
        for last_octet in range(flood):
            assert error(client.create_permission((f"192.168.1.{last_octet}", 5000))) == 403
    assert refusal_lines(caplog)[0].getMessage().endswith("(denied-peer-ip / allowed-peer-ip / allowed-peers-file)")
    assert len(refusal_lines(caplog)) == 1
    relay.call(lambda: relay.server.refusals.flush())  # inside the interval: nothing yet
    assert len(refusal_lines(caplog)) == 1
    later = relay.call(lambda: relay.server.refusals.clock()) + REFUSAL_LOG_INTERVAL
    relay.call(lambda: relay.server.refusals.flush(later))
    lines = [r.getMessage() for r in refusal_lines(caplog)]
    assert len(lines) == 2, lines
    assert "peer 192.168.1.49 refused" in lines[1]  # the last one, with how many came before it
    assert lines[1].endswith(f"[summary: {flood - 1} like it not logged, this is the last]")
    relay.call(lambda: relay.server.refusals.flush(later + 2 * REFUSAL_LOG_INTERVAL))
    assert len(refusal_lines(caplog)) == 2  # nothing left to report


def test_text_and_json_lines_carry_code_and_cause(relay_factory, caplog) -> None:
    """What journald gets: the formatters keep the reason and add grep-able fields."""
    from relay.ops.logs import JsonFormatter

    relay = relay_factory()
    with relay.client() as client:
        assert client.allocate().message_class == MessageClass.SUCCESS
        assert error(client.create_permission(("169.254.169.254", 80))) == 403
    record = refusal_lines(caplog)[0]
    text, json_line = TextFormatter().format(record), JsonFormatter().format(record)
    assert "code=403 cause=denied_peer suppressed=0" in text and "link-local" in text
    assert '"code": 403, "cause": "denied_peer"' in json_line and '"level": "info"' in json_line
    assert "\n" not in text  # one line
