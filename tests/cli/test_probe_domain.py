"""`probe <domain>`: DNS of every public name and the HTTPS front doors (a local HTTPS server with test
certificates plays Greenlight/Scalelite/BBB); the TURN part is the same code as `probe --turn`
(test_probe_turn.py)."""

from __future__ import annotations

import asyncio
import http.server
import json
import ssl
import threading
from collections.abc import Iterator

import pytest
from cli_testkit import Pki

from bbb_on_aws import domain_probe
from bbb_on_aws.checks import Failure
from bbb_on_aws.cli import main

NAME = "bbb.probe.test"


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    body = b"<response><returncode>SUCCESS</returncode><version>2.0</version></response>"

    def do_GET(self) -> None:
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.end_headers()
        self.wfile.write(self.server.body)  # type: ignore[attr-defined]

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https(tmp_path) -> Iterator[tuple[http.server.HTTPServer, Pki]]:
    pki = Pki(tmp_path)
    cert, key = pki.leaf("web", [NAME])
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    server.status, server.body = 200, _Handler.body  # type: ignore[attr-defined]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, pki
    server.shutdown()


def url(server: http.server.HTTPServer, host: str = "127.0.0.1") -> str:
    return f"https://{host}:{server.server_address[1]}/bigbluebutton/api"


def test_https_passes_on_the_bbb_api_answer(https):
    server, pki = https
    # The certificate is for NAME; connecting by address with NAME checked needs a resolver, so check the
    # name-mismatch path here and the success path with the address in the certificate below.
    with pytest.raises(Failure) as failure:
        domain_probe.check_https(url(server), "SUCCESS", str(pki.ca_file), 2)
    assert "does not cover 127.0.0.1" in failure.value.detail and "another name" in failure.value.cause
    cert, key = pki.leaf("by-address", ["localhost"])
    server.socket.context.load_cert_chain(cert, key)  # type: ignore[attr-defined]
    assert domain_probe.check_https(url(server, "localhost"), "SUCCESS", str(pki.ca_file), 2) == "HTTP 200"


def test_https_failures_name_their_cause(https):
    server, pki = https
    cert, key = pki.leaf("by-address", ["localhost"])
    server.socket.context.load_cert_chain(cert, key)  # type: ignore[attr-defined]
    server.status = 503  # type: ignore[attr-defined]
    with pytest.raises(Failure) as failure:
        domain_probe.check_https(url(server, "localhost"), "SUCCESS", str(pki.ca_file), 2)
    assert failure.value.detail.endswith("HTTP 503") and "no healthy target" in failure.value.cause
    server.status, server.body = 200, b"<html>nginx default page</html>"  # type: ignore[attr-defined]
    with pytest.raises(Failure) as failure:
        domain_probe.check_https(url(server, "localhost"), "SUCCESS", str(pki.ca_file), 2)
    assert "not as BBB's API does" in failure.value.cause
    with pytest.raises(Failure) as failure:  # a public client does not trust the private test CA
        domain_probe.check_https(url(server, "localhost"), "SUCCESS", None, 2)
    assert "chain not trusted" in failure.value.detail


def test_dns_refuses_private_addresses():
    with pytest.raises(Failure) as failure:
        asyncio.run(domain_probe.check_dns("localhost", "Greenlight"))
    assert "non-public address(es) 127.0.0.1" in failure.value.cause


def test_unresolvable_domain_fails_every_name_and_stops_turn(capsys):
    code = main(["probe", "bbb.example.invalid", "--json", "--timeout", "1"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1
    checks = {c["name"]: c for c in result["checks"]}
    for name in (
        "bbb.example.invalid",
        "scalelite.bbb.example.invalid",
        "turn.bbb.example.invalid",
        "turns.bbb.example.invalid",
    ):
        assert checks[f"dns {name}"]["status"] == "fail"
    assert "no TURN server finished its launch" in checks["dns turn.bbb.example.invalid"]["fix"]
    assert checks["udp turn.bbb.example.invalid:3478 resolve"]["status"] == "fail"
    assert checks["tls turns.bbb.example.invalid:443 resolve"]["status"] == "fail"
    assert not any("allocate" in name for name in checks)  # nothing attempted past a missing name
    assert checks["TURN permission to a BBB server"]["status"] == "skip"
