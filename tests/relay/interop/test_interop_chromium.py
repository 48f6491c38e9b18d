"""A real browser through the relay: headless Chromium (Debian's `chromium`, driven by playwright-core,
no browser download) runs two RTCPeerConnections restricted to our relay (`iceTransportPolicy:
'relay'`) over UDP, TCP and TLS, exchanges data-channel messages both ways, and must select a
relay/relay candidate pair. The TLS case uses a throw-away certificate, trusted via
--ignore-certificate-errors (the only extra flag). On loopback the in-kernel path is never attached:
tests/relay/kernel/test_browsers.py runs Chromium and Firefox ESR on real interfaces with it on and off."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from relay_testkit import RunningRelay, loopback_config, rest_credentials

from relay.config import Listener

ROOT = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("webrtc_relay_check.mjs")
CHROMIUM = "/usr/bin/chromium"
MESSAGES = 20

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def browser_tooling() -> None:
    missing = [
        what
        for what, present in (
            (f"{CHROMIUM} (apt-get install chromium)", Path(CHROMIUM).exists()),
            ("node (npm ci installs Node 22)", shutil.which("node") is not None),
            ("node_modules/playwright-core (npm ci)", (ROOT / "node_modules" / "playwright-core").is_dir()),
        )
        if not present
    ]
    if missing:
        pytest.fail("the browser interop test needs: " + ", ".join(missing))


def run_browser(ice_server: dict, extra_args: tuple[str, ...] = ()) -> dict:
    options = {
        "iceServers": [ice_server],
        "timeoutMs": 20000,
        "messages": MESSAGES,
        "executablePath": CHROMIUM,
        "extraArgs": list(extra_args),
    }
    result = subprocess.run(
        ["node", str(DRIVER), json.dumps(options)], capture_output=True, text=True, timeout=90, cwd=ROOT
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the browser driver: {result.stdout[-2000:]} {result.stderr[-2000:]}"
    outcome = json.loads(lines[-1])
    assert outcome["ok"], outcome.get("error")
    return outcome


def check_session(outcome: dict, relay: RunningRelay, protocol: str) -> None:
    received = outcome["received"]
    assert received["right"] == [f"left->right {i}" for i in range(MESSAGES)]
    assert received["left"] == [f"right->left {i}" for i in range(MESSAGES)]
    for side in ("left", "right"):
        pair = outcome["pairs"][side]
        assert (pair["localType"], pair["remoteType"]) == ("relay", "relay"), pair
        assert pair["relayProtocol"] == protocol
        assert pair["localAddress"].startswith("127.0.0.1:")
    stats = relay.call(relay.stats.snapshot)
    # Every message crossed the relay twice (into one allocation, out of the other) plus ICE/DTLS/SCTP.
    assert stats["packets_client_to_peer"] >= 2 * MESSAGES and stats["packets_peer_to_client"] >= 2 * MESSAGES
    assert stats["allocations_created"] >= 2 and stats["auth_failures_bad_integrity"] == 0


@pytest.mark.parametrize(
    ("transport", "packet_path"),
    [("udp", None), ("tcp", "compiled"), ("tcp", "python")],
    ids=["udp", "tcp", "tcp-python"],
)
def test_chromium_data_channel_through_relay(transport: str, packet_path: str | None) -> None:
    """Over TCP on both packet paths: the compiled one (relay.server.cstream, the default when it builds) and
    the pure-Python fallback (relay.server.stream)."""
    if packet_path == "compiled":
        pytest.importorskip("relay.server._fastpath", reason="tests/relay/conftest.py builds it in place")
    with RunningRelay(loopback_config(), packet_path=packet_path) as relay:
        if transport == "tcp":
            servers = relay.call(lambda: [type(server).__name__ for _, server in relay.server.stream_servers])
            assert ("CompiledStreamServer" in servers) == (packet_path == "compiled"), servers
        username, password = rest_credentials("chromium")
        port = relay.address(transport)[1]
        server = {"urls": f"turn:127.0.0.1:{port}?transport={transport}", "username": username, "credential": password}
        check_session(run_browser(server), relay, transport)


def test_chromium_over_turns(tmp_path: Path) -> None:
    from relay.policy.tls import ServerTls

    cert, key = tmp_path / "relay.crt", tmp_path / "relay.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    config = loopback_config(listeners=(Listener("tls", "127.0.0.1", 0),), cert_file=str(cert), key_file=str(key))
    with RunningRelay(config, tls=ServerTls(str(cert), str(key))) as relay:
        username, password = rest_credentials("chromium")
        port = relay.address("tls")[1]
        server = {"urls": f"turns:localhost:{port}?transport=tcp", "username": username, "credential": password}
        check_session(run_browser(server, ("--ignore-certificate-errors",)), relay, "tls")
