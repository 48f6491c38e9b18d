"""relay/README.md works as written: the wheel is built and installed with its commands, the relay is configured
from its sample files, checked with --check-config, started from its unit's ExecStart and answers its STUN,
TURN, TLS and admin checks on loopback; its claims about channel numbers, its coturn key lists, its unit, its
certbot hook and BBB's XML are each checked against the real thing.

Only what cannot run here is substituted: /etc and /opt paths by temporary ones, the example address and
name by 127.0.0.1, privileged ports by free ones (as command-line flags, which win over the file), the
`bbb-turn-relay` account by the current one. Loopback peers are allowed for the TURN checks (the relay refuses
them by default, as the README says), with the README's own uclient flags otherwise.
"""

from __future__ import annotations

import grp
import importlib
import json
import os
import pkgutil
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.docs.doc_blocks import RELAY_README, marked_blocks
from tests.servers import echo_peer as echo_peer_process
from tests.servers import free_port

pytestmark = pytest.mark.slow

TEXT = RELAY_README.read_text()
BLOCKS = marked_blocks(RELAY_README)
USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name
EXAMPLE_IP, EXAMPLE_NAME = "203.0.113.10", "turn.example.org"


def adapt(block: str, replacements: dict[str, str]) -> str:
    """The block without package installation and account creation (root-only, done by the test itself),
    `sudo` dropped, and the example paths and names replaced."""
    lines = [line for line in block.splitlines() if not re.match(r"sudo (apt-get|useradd)", line)]
    text = "".join(f"{line}\n" for line in lines).replace("sudo -u bbb-turn-relay ", "").replace("sudo ", "")
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def bash(script: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Host:
    """A relay host laid out as the README says, under one temporary directory."""

    root: Path
    venv: Path
    etc: Path

    @property
    def paths(self) -> dict[str, str]:
        return {
            "/etc/bbb-turn-relay": str(self.etc),
            "/opt/bbb-turn-relay": str(self.venv),
            "-o root -g bbb-turn-relay": f"-o {USER} -g {GROUP}",
            "-o bbb-turn-relay -g bbb-turn-relay": f"-o {USER} -g {GROUP}",
        }


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    root = tmp_path_factory.mktemp("relay-host")
    # Build: the README's build command, on a copy of relay/ (the repository's relay/dist stays untouched).
    source = root / "checkout"
    shutil.copytree(
        ROOT / "relay",
        source / "relay",
        ignore=shutil.ignore_patterns("__pycache__", "build", "dist", "*.egg-info", "*.so", "_fastpath.missing"),
    )
    build = re.search(r"^\S*python -m build --wheel --no-isolation relay$", BLOCKS["build-wheel"], re.M)
    assert build, BLOCKS["build-wheel"]
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "relay"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (source / "relay" / "dist").glob("*.whl")
    assert f"# {wheel.name}" in BLOCKS["build-wheel"]  # the file name the README promises
    # Install: the README's commands, into a temporary /opt.
    host = Host(root=root, venv=root / "opt", etc=root / "etc")
    install = adapt(BLOCKS["install"], {**host.paths, f"./{wheel.name}": str(wheel)})
    result = bash(install, root, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "bbb-turn-relay 0.1.0"  # the README's --version check
    # Secrets, then a certificate where certbot's hook would put it.
    result = bash(adapt(BLOCKS["secrets"], host.paths), root)
    assert result.returncode == 0, result.stderr
    for name in ("secret", "nonce-secret"):
        assert (host.etc / name).stat().st_mode & 0o777 == 0o600
    tls = host.etc / "tls"
    tls.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(tls / "privkey.pem"),
            "-out",
            str(tls / "fullchain.pem"),
            "-days",
            "2",
            "-subj",
            f"/CN={EXAMPLE_NAME}",
        ],
        check=True,
        capture_output=True,
    )
    (tls / "privkey.pem").chmod(0o640)
    conf = adapt(BLOCKS["relay.conf"], {**host.paths, EXAMPLE_IP: "127.0.0.1"})
    (host.etc / "relay.conf").write_text(conf)
    return host


def test_check_config_accepts_the_sample_without_a_warning(host: Host) -> None:
    result = bash(adapt(BLOCKS["check-config"], host.paths), host.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "OK", result.stdout


def test_check_config_reports_what_the_migration_section_says(host: Host) -> None:
    """A coturn file with keys the README lists as ignored and as refused: warnings and errors by name."""
    conf = host.etc / "relay.conf"
    coturn = host.root / "turnserver.conf"
    coturn.write_text(
        conf.read_text() + "verbose\nlog-file=/var/log/turnserver.log\npidfile=/run/turnserver.pid\n"
        "no-cli\nlt-cred-mech\nno-auth\nproc-user=turnserver\n"
    )
    result = subprocess.run(
        [str(host.venv / "bin" / "bbb-turn-relay"), "--check-config", "-c", str(coturn)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    for key in ("verbose", "log-file", "pidfile"):
        assert re.search(rf"^warning: .*: {key}: ignored", result.stdout, re.M), result.stdout
    for key in ("no-auth", "proc-user"):
        assert re.search(rf"^error: .*: {key}: not supported", result.stdout, re.M), result.stdout
    assert "no-cli" not in result.stdout and "lt-cred-mech" not in result.stdout  # silently accepted


@dataclass
class Ports:
    listen: int
    tls: int
    admin: int


@pytest.fixture
def relay(host: Host) -> Iterator[callable]:
    """Start the relay the unit's way (its ExecStart), ports as flags; returns a starter taking extra flags."""
    exec_start = re.search(r"^ExecStart=(.+)$", BLOCKS["unit"], re.M).group(1)  # type: ignore[union-attr]
    processes: list[subprocess.Popen[bytes]] = []

    def start(*flags: str) -> Ports:
        ports = Ports(free_port(), free_port(), free_port())
        command = [
            *adapt(exec_start, host.paths).split(),
            f"--listening-port={ports.listen}",
            f"--tls-listening-port={ports.tls}",
            f"--admin-listen=127.0.0.1:{ports.admin}",
            "--workers=1",
            *flags,
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        processes.append(process)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ports.admin}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return ports
            except OSError:
                time.sleep(0.2)
        pytest.fail("the relay did not become ready")

    yield start
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def echo_peer() -> Iterator[int]:
    port = free_port()
    process = echo_peer_process(port)
    yield port
    process.kill()
    process.wait(5)


def uclient_script(host: Host, ports: Ports, peer: int, *, send_indications: bool = True) -> str:
    script = adapt(
        BLOCKS["uclient"],
        {
            **host.paths,
            "PEER_IP": "127.0.0.1",
            "-r 3480": f"-r {peer}",
            f" {EXAMPLE_NAME}": f" -p {ports.listen} 127.0.0.1",
        },
    )
    return script if send_indications else script.replace(" -s ", " ")


def test_stun_tls_admin_and_turn_checks_pass(host: Host, relay, echo_peer: int) -> None:
    ports = relay("--allow-loopback-peers")
    stun = bash(adapt(BLOCKS["stunclient"], {"-p 3478": f"-p {ports.listen}", EXAMPLE_NAME: "127.0.0.1"}), host.root)
    assert stun.returncode == 0 and "UDP reflexive addr: 127.0.0.1:" in stun.stdout, stun.stdout + stun.stderr

    tls = bash(adapt(BLOCKS["tls"], {f"{EXAMPLE_NAME}:443": f"127.0.0.1:{ports.tls}"}), host.root)
    assert re.search(rf"subject=\s*CN\s*=\s*{re.escape(EXAMPLE_NAME)}", tls.stdout), tls.stdout + tls.stderr

    admin = bash(adapt(BLOCKS["admin"], {"9641": str(ports.admin)}), host.root)
    assert admin.returncode == 0 and re.search(r"^turn_allocations(\{[^}]*\})? 0", admin.stdout, re.M), admin.stdout

    turn = bash(uclient_script(host, ports, echo_peer), host.root, timeout=90)
    output = turn.stdout + turn.stderr
    assert turn.returncode == 0 and "Total lost packets 0 (0.000000%)" in output, output[-2000:]


def test_browser_credential_authenticates(host: Host, relay, echo_peer: int) -> None:
    ports = relay("--allow-loopback-peers")
    made = bash(adapt(BLOCKS["browser-credential"], host.paths), host.root)
    assert made.returncode == 0, made.stderr
    user = re.search(r"^username: (\S+)$", made.stdout, re.M).group(1)  # type: ignore[union-attr]
    password = re.search(r"^password: (\S+)$", made.stdout, re.M).group(1)  # type: ignore[union-attr]
    result = subprocess.run(
        [
            "turnutils_uclient",
            "-u",
            user,
            "-w",
            password,
            "-s",
            "-n",
            "5",
            "-e",
            "127.0.0.1",
            "-r",
            str(echo_peer),
            "-p",
            str(ports.listen),
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Total lost packets 0 (0.000000%)" in output, output[-2000:]


def test_a_relay_only_browser_session_with_the_readme_credential(host: Host, relay) -> None:
    """The browser check (step 5) done by headless Chromium: two RTCPeerConnections with
    iceTransportPolicy 'relay' and the README's credential must connect through a relay/relay pair (the
    driver of tests/relay/interop, Debian's chromium)."""
    chromium = Path("/usr/bin/chromium")
    assert chromium.exists(), "the browser check needs Debian's chromium (scripts/install.sh --test-tools)"
    ports = relay("--allow-loopback-peers")
    made = bash(adapt(BLOCKS["browser-credential"], host.paths), host.root)
    user = re.search(r"^username: (\S+)$", made.stdout, re.M).group(1)  # type: ignore[union-attr]
    password = re.search(r"^password: (\S+)$", made.stdout, re.M).group(1)  # type: ignore[union-attr]
    server = {"urls": f"turn:127.0.0.1:{ports.listen}", "username": user, "credential": password}
    options = {"iceServers": [server], "timeoutMs": 20000, "messages": 5, "executablePath": str(chromium)}
    driver = ROOT / "tests" / "relay" / "interop" / "webrtc_relay_check.mjs"
    result = subprocess.run(
        ["node", str(driver), json.dumps(options)], capture_output=True, text=True, timeout=90, cwd=ROOT, check=False
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stdout[-2000:] + result.stderr[-2000:]
    outcome = json.loads(lines[-1])
    assert outcome["ok"], outcome.get("error")
    for side in ("left", "right"):
        assert (outcome["pairs"][side]["localType"], outcome["pairs"][side]["remoteType"]) == ("relay", "relay")


def test_uclient_channels_need_legacy_channel_numbers(host: Host, relay, echo_peer: int) -> None:
    """What the README says about coturn's client: ChannelBind 400 by default, accepted with the flag.

    uclient draws each channel number from 0x4000-0x7FFF and stops a client at its first refused bind (one
    "channel bind: error 400" line per client). A run in which every draw lands in RFC 8656's quarter shows no
    refusal at all: with the README's 2 clients that happened once in about 40 full-suite runs (at 2 binds per
    client, 0.25**4 = 1/256 per run). So the strict relay gets up to five runs to show its refusal (at most
    1/256**5 of a false failure; at worst, 1 bind per client, 1/16**5 = 1e-6). Its own collision (README) is 1 in
    16 384 per session."""
    strict = relay("--allow-loopback-peers")
    outputs = []
    for _ in range(5):
        refused = bash(uclient_script(host, strict, echo_peer, send_indications=False), host.root, timeout=90)
        outputs.append(refused.stdout + refused.stderr)
        if "channel bind: error 400 (Bad Request)" in outputs[-1]:
            break
    assert "channel bind: error 400 (Bad Request)" in outputs[-1], "\n---\n".join(o[-1500:] for o in outputs)
    legacy = relay("--allow-loopback-peers", "--legacy-channel-numbers")
    accepted = bash(uclient_script(host, legacy, echo_peer, send_indications=False), host.root, timeout=90)
    output = accepted.stdout + accepted.stderr
    assert accepted.returncode == 0 and "Total lost packets 0 (0.000000%)" in output, output[-2000:]


def test_unit_is_the_deployments_unit_plus_the_bind_capability(tmp_path: Path) -> None:
    def settings(text: str) -> set[str]:
        return {line for line in text.splitlines() if line and not line.startswith("#")}

    ours = settings(BLOCKS["unit"])
    deployed = settings((ROOT / "userdata" / "turn" / "units" / "bbb-turn-relay.service").read_text())
    assert {line for line in ours - deployed if not line.startswith("Description=")} == {
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_BPF CAP_NET_ADMIN CAP_PERFMON",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_BPF CAP_NET_ADMIN CAP_PERFMON",
    }
    assert {line for line in deployed - ours if not line.startswith("Description=")} == {
        "CapabilityBoundingSet=CAP_BPF CAP_NET_ADMIN CAP_PERFMON",
        "AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_PERFMON",
    }
    stand_in = tmp_path / "bbb-turn-relay"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "bbb-turn-relay.service"
    unit.write_text(BLOCKS["unit"].replace("/opt/bbb-turn-relay/bin/bbb-turn-relay", str(stand_in)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_certbot_hook_copies_with_the_right_modes_and_reloads(tmp_path: Path) -> None:
    lint = subprocess.run(
        ["shellcheck", "-s", "sh", "-"], input=BLOCKS["deploy-hook"], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout
    lineage = tmp_path / "live"
    lineage.mkdir()
    (lineage / "fullchain.pem").write_text("chain\n")
    (lineage / "privkey.pem").write_text("key\n")
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "systemctl").write_text(f'#!/bin/sh\necho "$@" >>{tmp_path}/systemctl.log\n')
    (shims / "systemctl").chmod(0o755)
    etc = tmp_path / "etc"
    hook = tmp_path / "hook"
    hook.write_text(
        adapt(
            BLOCKS["deploy-hook"],
            {"/etc/bbb-turn-relay": str(etc), "-o root -g bbb-turn-relay": f"-o {USER} -g {GROUP}"},
        )
    )
    env = {"PATH": f"{shims}:/usr/bin:/bin", "RENEWED_LINEAGE": str(lineage)}
    other = subprocess.run(["sh", str(hook)], env={**env, "RENEWED_DOMAINS": "www.example.org"}, check=False)
    assert other.returncode == 0 and not etc.exists()
    ours = subprocess.run(
        ["sh", str(hook)],
        env={**env, "RENEWED_DOMAINS": f"www.example.org {EXAMPLE_NAME}"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert ours.returncode == 0, ours.stderr
    assert (etc / "tls" / "privkey.pem").read_text() == "key\n"
    assert (etc / "tls" / "privkey.pem").stat().st_mode & 0o777 == 0o640
    assert (etc / "tls" / "fullchain.pem").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "systemctl.log").read_text() == "reload bbb-turn-relay\n"


def test_bbb_xml_offers_udp_tcp_and_tls_with_the_secret() -> None:
    beans = "{http://www.springframework.org/schema/beans}"
    root = ET.fromstring(BLOCKS["turn-stun-servers.xml"].encode())
    servers = {
        bean.get("id"): [arg.get("value") for arg in bean.iter(f"{beans}constructor-arg")]
        for bean in root.iter(f"{beans}bean")
        if bean.get("class") == "org.bigbluebutton.web.services.turn.TurnServer"
    }
    assert sorted(uri for _, uri, _ in servers.values()) == sorted(
        [
            f"turn:{EXAMPLE_NAME}:3478",
            f"turn:{EXAMPLE_NAME}:3478?transport=tcp",
            f"turns:{EXAMPLE_NAME}:443?transport=tcp",
        ]
    )
    assert {(secret, ttl) for secret, _, ttl in servers.values()} == {("SECRET", "86400")}
    service = next(b for b in root.iter(f"{beans}bean") if b.get("id") == "stunTurnService")
    assert {ref.get("bean") for ref in service.iter(f"{beans}ref")} == set(servers)
    # The same beans as the deployment writes on its BBB hosts (userdata/bbb/lib.sh, write_turn_stun_servers).
    deployed = (ROOT / "userdata" / "bbb" / "lib.sh").read_text()
    for uri in (
        "turn:turn.$domain:3478",
        "turn:turn.$domain:3478?transport=tcp",
        "turns:turns.$domain:443?transport=tcp",
    ):
        assert f'value="{uri}"' in deployed


def _relay_key_table() -> list[tuple[str, str, str]]:
    """The relay's own key table, wherever the relay package keeps it (found by walking the package)."""
    import relay

    for info in pkgutil.walk_packages(relay.__path__, "relay."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        if callable(getattr(module, "key_table", None)):
            return module.key_table()
    raise AssertionError("the relay package has no key_table()")


def _keys(text: str) -> set[str]:
    return set(re.findall(r"`([\w-]+)`", re.sub(r"\([^)]*\)", "", text)))


def _section(start: str, end: str) -> str:
    return TEXT[TEXT.index(start) : TEXT.index(end)]


def _table_keys(section: str) -> set[str]:
    return set().union(*(_keys(row.split("|")[1]) for row in section.splitlines() if re.match(r"\| `", row)))


def test_migration_lists_match_the_relays_key_table() -> None:
    status = {name: kind for name, kind, _ in _relay_key_table()}
    accepted = _keys(_section("**Accepted with coturn's meaning:**", "Differences:"))
    silent = _keys(_section("**Accepted silently", "**Ignored with a warning**"))
    warned = _table_keys(_section("**Ignored with a warning**", "**Refused**"))
    refused = _table_keys(_section("**Refused**", "Keys that only this relay has"))
    ours = _keys(_section("Keys that only this relay has", "A key neither coturn"))
    assert silent == {k for k, s in status.items() if s == "noop"}
    assert warned == {k for k, s in status.items() if s == "warning"}
    assert refused == {k for k, s in status.items() if s == "error"}
    assert accepted | ours == {k for k, s in status.items() if s == "supported"}
    assert not accepted & ours
