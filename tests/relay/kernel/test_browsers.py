"""Real browsers through the relay process with kernel-offload on and off: headless Chromium (driven by
playwright-core) and headless Firefox ESR (a static page that POSTs its result back: playwright cannot
drive stock Firefox) each run one relay-only WebRTC session with a data channel, messages both ways.

The in-kernel path only acts on a real interface, and a relay never sends through its own interface to
itself (relay-to-relay traffic inside one host goes over lo), so the session uses two relays, each in
its own namespace of netns_kit's layout: relay A on relay0 (10.71.3.2) for the left RTCPeerConnection,
relay B on pe0 (10.71.2.2, the peer namespace) for the right one, the browser in the client namespace.
Every relayed packet then enters A and B from outside: left -> A (ChannelData or a Send indication,
into UDP) -> B (UDP from a permitted peer, into ChannelData or a Data indication) -> right, and back.
Both pairs are relay/relay. With offload on (one process, and two workers that own the entries), each
relay's turn_offloaded_packets_total grows both ways; with it off, it stays at 0 and user space carries
everything.

Both browsers also run the session with both ends on relay A alone (the interop test's layout on a
real interface, offload on): relay-to-relay datagrams inside one host go over lo, so the relay keeps
those peers in user space (the program could only send them out of relay0) and the session passes.

Chromium binds channels (ChannelData); Firefox never does (Send and Data indications only: not one
ChannelBind request reaches either relay), and it also sends a fake camera and microphone (prefs
media.navigator.streams.fake) whose RTP must arrive.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns_kit import PEER_IP, RELAY_IP, Topology
from relay_process_kit import DIRECTIONS, REPO, Relay, running
from relay_testkit import rest_credentials

INTEROP = REPO / "tests" / "relay" / "interop"
CHROMIUM_DRIVER = INTEROP / "webrtc_relay_check.mjs"
SESSION_MODULE = INTEROP / "webrtc_session.mjs"
FIREFOX_PAGE = INTEROP / "webrtc_relay_page.html"
CHROMIUM = "/usr/bin/chromium"
FIREFOX = "/usr/bin/firefox-esr"
MESSAGES = 20
MEDIA_PACKETS = 50  # RTP packets of each kind (audio, video) that must reach the right side
TIMEOUT_MS = 20000
# With offload on, the most packets a relay may carry in user space per direction: the browser's ICE
# checks that passed the TC hook before the entry existed, queued in the socket behind the CreatePermission
# or ChannelBind that installs it (seen: 0 or 1 in 30 runs at a load average of 15 on 2 cores; the
# messages, media and DTLS/SCTP handshakes all come after ICE succeeded, long after the install)
BEFORE_INSTALL = 10
# (kernel-offload, workers): one process, and a supervisor whose workers own the entries (as on a host)
MODES = pytest.mark.parametrize(
    ("offload", "workers"), [("on", 1), ("on", 2), ("off", 1)], ids=["on", "on-2-workers", "off"]
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    net = Topology()
    try:
        net.create()
        yield net
    finally:
        net.destroy()


@contextlib.contextmanager
def two_relays(
    topology: Topology, package: Path, tmp_path: Path, offload: str, workers: int
) -> Iterator[tuple[Relay, Relay]]:
    """Relay A in the relay namespace and relay B in the peer namespace; each allows only the other as
    a peer (both addresses are private, refused by default)."""
    with (
        running(topology, package, tmp_path, offload, workers, peers=(PEER_IP,)) as a,
        running(
            topology,
            package,
            tmp_path,
            offload,
            workers,
            peers=(RELAY_IP,),
            ns=topology.peer,
            ip=PEER_IP,
            interface="pe0",
        ) as b,
    ):
        yield a, b


def session_options(a: Relay, b: Relay, **extra: object) -> dict:
    def server(relay: Relay) -> dict:
        username, password = rest_credentials("browser")
        return {"urls": f"turn:{relay.ip}:3478?transport=udp", "username": username, "credential": password}

    return {"iceServers": [server(a)], "rightIceServers": [server(b)], "timeoutMs": TIMEOUT_MS,
            "messages": MESSAGES, **extra}  # fmt: skip


def require(*needs: tuple[str, bool]) -> None:
    """Fail (never skip) naming what to install."""
    missing = [what for what, present in needs if not present]
    if missing:
        pytest.fail("the browser test needs: " + ", ".join(missing))


def outcome_of(result: dict) -> dict:
    assert result["ok"], result.get("error")
    return result


def check_session(outcome: dict, a: Relay, b: Relay) -> None:
    """The messages arrived in order both ways over relay/relay pairs: left on A, right on B."""
    assert outcome["received"]["right"] == [f"left->right {i}" for i in range(MESSAGES)]
    assert outcome["received"]["left"] == [f"right->left {i}" for i in range(MESSAGES)]
    for side, mine, theirs in (("left", a, b), ("right", b, a)):
        pair = outcome["pairs"][side]
        assert (pair["localType"], pair["remoteType"], pair["relayProtocol"]) == ("relay", "relay", "udp"), pair
        assert pair["localAddress"].startswith(f"{mine.ip}:") and pair["remoteAddress"].startswith(f"{theirs.ip}:")


def check_paths(a: Relay, b: Relay, offload: str) -> None:
    """Each relay carried the session both ways (at least one packet per message): with offload on,
    all of it in the kernel but the few packets sent before the permission or channel was installed;
    with it off, all of it in user space."""
    for name, relay in (("A", a), ("B", b)):
        counters = relay.counters()
        for direction in DIRECTIONS:
            kernel, user = counters[f"kernel:{direction}"], counters[f"user:{direction}"]
            if offload == "on":
                assert kernel >= MESSAGES and user <= BEFORE_INSTALL, (name, direction, counters)
            else:
                assert kernel == 0 and user >= MESSAGES, (name, direction, counters)


# Chromium


@pytest.fixture(scope="module")
def chromium() -> None:
    require(
        (f"{CHROMIUM} (apt-get install chromium)", Path(CHROMIUM).exists()),
        ("node (npm ci installs Node 22; source scripts/env.sh)", shutil.which("node") is not None),
        ("node_modules/playwright-core (npm ci)", (REPO / "node_modules" / "playwright-core").is_dir()),
    )


def run_chromium(net: Topology, options: dict) -> dict:
    """The driver in the client namespace (Chromium inherits it; as root it runs with --no-sandbox)."""
    command = ["ip", "netns", "exec", net.client, "node", str(CHROMIUM_DRIVER), json.dumps(options)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, cwd=REPO)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the browser driver: {result.stdout[-2000:]} {result.stderr[-2000:]}"
    return json.loads(lines[-1])


@MODES
def test_chromium_relay_only_session(
    chromium: None, topology: Topology, package: Path, tmp_path: Path, offload: str, workers: int
) -> None:
    with two_relays(topology, package, tmp_path, offload, workers) as (a, b):
        outcome = outcome_of(run_chromium(topology, session_options(a, b, executablePath=CHROMIUM)))
        check_session(outcome, a, b)
        check_paths(a, b, offload)
        for relay in (a, b):  # Chromium binds a channel for its peer: the ChannelData path
            assert relay.requests()[("channel_bind", "success")] >= 1


def check_hairpin(a: Relay) -> None:
    """Both ends on one relay with offload on: everything in user space, nothing lost in the kernel."""
    counters = a.counters()
    for direction in DIRECTIONS:
        assert counters[f"kernel:{direction}"] == 0 and counters[f"user:{direction}"] >= MESSAGES, counters


def test_chromium_with_both_ends_on_one_relay(
    chromium: None, topology: Topology, package: Path, tmp_path: Path
) -> None:
    with running(topology, package, tmp_path, "on", 1, peers=(RELAY_IP,)) as a:
        check_session(outcome_of(run_chromium(topology, session_options(a, a, executablePath=CHROMIUM))), a, a)
        check_hairpin(a)


# Firefox ESR

FIREFOX_PREFS = {
    "media.navigator.streams.fake": True,  # a generated camera and microphone
    "media.navigator.permission.disabled": True,  # getUserMedia without a prompt
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
}


@pytest.fixture(scope="module")
def firefox() -> None:
    require((f"{FIREFOX} (apt-get install firefox-esr)", Path(FIREFOX).exists()))


class PageServer(http.server.ThreadingHTTPServer):
    """Serves the page, the session module and the options; receives the one result."""

    def __init__(self, options: dict) -> None:
        super().__init__(("127.0.0.1", 0), PageHandler)
        self.options = options
        self.result: dict | None = None
        self.posted = threading.Event()


class PageHandler(http.server.BaseHTTPRequestHandler):
    server: PageServer
    FILES = {"/": (FIREFOX_PAGE, "text/html"), "/webrtc_session.mjs": (SESSION_MODULE, "text/javascript")}

    def do_GET(self) -> None:
        if self.path == "/config":
            self.reply(json.dumps(self.server.options).encode(), "application/json")
        elif self.path in self.FILES:
            path, kind = self.FILES[self.path]
            self.reply(path.read_bytes(), kind)
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        if self.path != "/result":
            self.send_error(404)
            return
        self.server.result = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.reply(b"{}", "application/json")
        self.server.posted.set()

    def reply(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def run_firefox(net: Topology, options: dict, tmp_path: Path) -> dict:
    """Firefox ESR, headless, with a throw-away profile, on the page served in the client namespace."""
    profile = tmp_path / "firefox-profile"
    profile.mkdir()
    (profile / "user.js").write_text(
        "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in FIREFOX_PREFS.items())
    )
    server = net.run_in(net.client, lambda: PageServer(options))
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    log = tmp_path / "firefox.log"
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["ip", "netns", "exec", net.client, FIREFOX, "--headless", "--no-remote", "--profile", str(profile), url],
            env={"HOME": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MOZ_CRASHREPORTER_DISABLE": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Firefox and its content processes end together
        )
    try:
        posted = server.posted.wait(TIMEOUT_MS / 1000 * 2 + 10)
        assert posted, f"Firefox posted no result; its output: {log.read_text()[-3000:]}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        server.shutdown()
        server.server_close()
    assert server.result is not None
    return server.result


@MODES
def test_firefox_relay_only_session_uses_indications(
    firefox: None, topology: Topology, package: Path, tmp_path: Path, offload: str, workers: int
) -> None:
    with two_relays(topology, package, tmp_path, offload, workers) as (a, b):
        options = session_options(a, b, media=True, mediaPackets=MEDIA_PACKETS)
        outcome = outcome_of(run_firefox(topology, options, tmp_path))
        check_session(outcome, a, b)
        assert outcome["media"]["audio"] >= MEDIA_PACKETS and outcome["media"]["video"] >= MEDIA_PACKETS
        check_paths(a, b, offload)
        for relay in (a, b):
            requests = relay.requests()
            # no channel, ever: every packet was a Send or a Data indication (with offload on, the kernel
            # counters above can then only have counted indications)
            assert sum(v for (method, _), v in requests.items() if method == "channel_bind") == 0, requests
            assert requests[("create_permission", "success")] >= 1, requests


def test_firefox_with_both_ends_on_one_relay(firefox: None, topology: Topology, package: Path, tmp_path: Path) -> None:
    with running(topology, package, tmp_path, "on", 1, peers=(RELAY_IP,)) as a:
        check_session(outcome_of(run_firefox(topology, session_options(a, a), tmp_path)), a, a)
        check_hairpin(a)
