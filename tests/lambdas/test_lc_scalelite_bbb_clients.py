"""The Scalelite and BBB clients against the local fake that checks checksums the way the servers do."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from common import bbb
from common.scalelite import ScaleliteClient, ScaleliteError, ScaleliteUnavailable
from lc_fake_bbb import FakeBbbWorld

SECRET = "lb-secret-0123456789"
HOST = "bbb-0abc1234.meet.example.test"
URL = f"https://{HOST}/bigbluebutton/api"


@pytest.fixture
def fake() -> Iterator[FakeBbbWorld]:
    world = FakeBbbWorld(SECRET).start()
    world.add_host(HOST, "bbb-secret")
    yield world
    world.stop()


def test_checksum_is_sha256_of_action_query_and_secret() -> None:
    client = ScaleliteClient("https://s.example.org/scalelite/api", SECRET)
    assert client.checksum("getServers", "") == hashlib.sha256(f"getServers{SECRET}".encode()).hexdigest()
    assert client.checksum("getServerInfo", "id=a") == hashlib.sha256(f"getServerInfoid=a{SECRET}".encode()).hexdigest()


def test_server_management_round_trip(fake: FakeBbbWorld) -> None:
    client = ScaleliteClient(fake.scalelite_url, SECRET)
    assert client.get_servers() == []  # Scalelite answers 404 "No servers are configured"
    added = client.add_server(URL, "bbb-secret")
    assert (added.url, added.state, added.load) == (URL, "disabled", None)
    assert client.find_by_url(URL + "/") == added
    assert client.get_server(added.id) == added
    assert client.set_state(added.id, "enable").state == "enabled"
    assert client.set_state(added.id, "cordon").state == "cordoned"
    assert client.delete_server(added.id) is True
    assert client.delete_server(added.id) is False
    assert client.set_state(added.id, "enable") is None
    assert client.get_server(added.id) is None
    # the JSON bodies reached Scalelite's params (Content-Type application/json was sent)
    add = next(r for r in fake.requests if r["action"] == "addServer")
    assert add["params"]["server"] == {"url": URL, "secret": "bbb-secret"}


def test_panic_clears_meetings_one_by_one_when_end_calls_fail(fake: FakeBbbWorld) -> None:
    client = ScaleliteClient(fake.scalelite_url, SECRET)
    server = client.add_server(URL, "bbb-secret")
    client.set_state(server.id, "enable")
    fake.start_meeting(HOST, "m1", 3)
    fake.start_meeting(HOST, "m2", 4)
    fake.hosts[HOST].down = True
    assert client.panic_server(server.id, keep_state=True) == "partial"
    assert client.panic_server(server.id, keep_state=True) == "partial"
    assert client.panic_server(server.id, keep_state=True) == "done"
    assert fake.meeting_server == {}
    assert fake.servers[server.id].state == "enabled"  # keep_state
    assert client.panic_server("nope", keep_state=True) == "missing"


def test_wrong_secret_is_reported_as_checksum_error(fake: FakeBbbWorld) -> None:
    client = ScaleliteClient(fake.scalelite_url, "not-the-secret")
    with pytest.raises(ScaleliteError, match=r"checksumError.*LOADBALANCER_SECRET"):
        client.get_servers()


def test_server_errors_and_silence_are_unavailable(fake: FakeBbbWorld) -> None:
    fake.fail_status = 503
    with pytest.raises(ScaleliteUnavailable, match="HTTP 503"):
        ScaleliteClient(fake.scalelite_url, SECRET, backoff=0.01).get_servers()
    assert fake.scalelite_actions() == ["getServers"] * 3  # a GET is retried
    with pytest.raises(ScaleliteUnavailable, match="no answer"):
        ScaleliteClient("http://127.0.0.1:9/scalelite/api", SECRET, timeout=1, backoff=0.01).get_servers()
    fake.fail_status = 500
    with pytest.raises(ScaleliteUnavailable):
        ScaleliteClient(fake.scalelite_url, SECRET, backoff=0.01).add_server(URL, "s")
    assert fake.scalelite_actions()[3:] == ["addServer"]  # never repeated: it would add the server twice


def test_invalid_client_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="must start with https"):
        ScaleliteClient("scalelite.example.org", SECRET)
    with pytest.raises(ValueError, match="LOADBALANCER_SECRET is empty"):
        ScaleliteClient("https://s.example.org/scalelite/api", "")


def test_get_meetings(fake: FakeBbbWorld) -> None:
    base = fake.bbb_url_template.format(host=HOST)
    assert bbb.get_meetings(base, "bbb-secret") == []
    fake.hosts[HOST].meetings.update({"a": 2, "b": 5})
    meetings = bbb.get_meetings(base, "bbb-secret", algorithm="sha1")
    assert sorted((m.meeting_id, m.participants) for m in meetings) == [("a", 2), ("b", 5)]
    with pytest.raises(bbb.BbbApiError, match="checksumError"):
        bbb.get_meetings(base, "wrong")
    fake.hosts[HOST].down = True
    with pytest.raises(bbb.BbbUnreachable):
        bbb.get_meetings(base, "bbb-secret", timeout=2, attempts=1)
