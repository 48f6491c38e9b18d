"""The TURN host's relay install, end to end on this machine.

The wheel is built by the test, installed into a fresh virtualenv by the same shell function user data runs
(turn/lib.sh install_relay, pinned by the renderer's constraints), configured by the same render_relay_conf
(loopback and free ports instead of the instance's addresses), then started from the ExecStart line of the
systemd unit with a real NOTIFY_SOCKET. It must report READY=1, answer a STUN Binding with our own address
in XOR-MAPPED-ADDRESS, expose the gauge the Allocations publisher reads, survive the unit's reload and stop
cleanly.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port
from userdata.render import ALLOCATIONS_METRIC, relay_constraints, relay_listeners

REPO = Path(__file__).resolve().parents[2]
USERDATA = REPO / "userdata"
UNIT = USERDATA / "turn" / "units" / "bbb-turn-relay.service"
SECRET = "Tq4Wm8Zr2Xc6Vb0Nn3Kk7Jj1Hh5Gg9Ff2Dd6Ss0A"

pytestmark = pytest.mark.slow


def lib_shell(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    libs = " ".join(f"source {shlex.quote(str(USERDATA / lib))};" for lib in ("common/lib.sh", "turn/lib.sh"))
    return subprocess.run(["bash", "-c", f"set -euo pipefail; {libs} {script}"], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)


def wait_for_notify(sock: socket.socket, process: subprocess.Popen[bytes], wanted: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    messages = []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        messages.append(message)
        if wanted in message.split("\n"):
            return message
    output = process.stderr.read().decode() if process.poll() is not None and process.stderr else ""
    pytest.fail(f"no {wanted} from the relay (got {messages}); exit {process.poll()}; stderr:\n{output[-3000:]}")


@pytest.fixture(scope="module")
def installed_relay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the wheel from a copy of relay/ and install it the way turn/bootstrap.sh does."""
    work = tmp_path_factory.mktemp("relay-install")
    source = work / "relay"
    shutil.copytree(REPO / "relay", source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", str(source), "-o", str(work / "dist")],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (work / "dist").glob("bbb_turn_relay-*.whl")
    constraints = work / "relay-constraints.txt"
    constraints.write_text(relay_constraints())
    venv = work / "venv"
    result = lib_shell(f"install_relay {shlex.quote(str(wheel))} {shlex.quote(str(constraints))}",
                       {"RELAY_VENV": str(venv), "RELAY_PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    return venv


def test_the_installed_relay_runs_from_its_unit_and_answers_stun(installed_relay: Path, tmp_path: Path) -> None:
    venv = installed_relay
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                               capture_output=True, text=True, check=True).stdout
    installed_pins = {line.lower().replace("_", "-") for line in installed.splitlines()}
    for pin in relay_constraints().splitlines()[1:]:
        assert pin in installed_pins  # uvloop and prometheus-client at the pinned versions

    etc = tmp_path / "etc"
    etc.mkdir()
    listen, proxy, admin = free_port(), free_port(), free_port()
    env = {"RELAY_ETC": str(etc), "RELAY_USER": "root", "RELAY_GROUP": "root", "LISTEN_PORT": str(listen),
           "PROXY_PORT": str(proxy), "ADMIN_LISTEN": f"127.0.0.1:{admin}"}
    result = lib_shell(f"write_relay_secrets {SECRET}; : >{shlex.quote(str(etc))}/allowed-peers.conf; "
                       "render_relay_conf turn.test.example 127.0.0.1 203.0.113.10 41000 41999 100 10 0 5 "
                       f">{shlex.quote(str(etc))}/relay.conf", env)
    assert result.returncode == 0, result.stderr

    exec_start = re.search(r"^ExecStart=(.+)$", UNIT.read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]
    command = exec_start.replace("/opt/bbb-turn-relay", str(venv)).replace("/etc/bbb-turn-relay", str(etc))
    assert command == f"{venv}/bin/bbb-turn-relay -c {etc}/relay.conf"

    notify_path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    process = subprocess.Popen(shlex.split(command), env={"PATH": "/usr/bin:/bin", "NOTIFY_SOCKET": str(notify_path)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_notify(notify, process, "READY=1", timeout=30)

        stun = subprocess.run([sys.executable, str(USERDATA / "common" / "stun_ping.py"), "127.0.0.1", str(listen)],
                              capture_output=True, text=True, timeout=10)
        assert stun.returncode == 0, stun.stderr
        local, mapped = stun.stdout.split()
        assert mapped == local  # XOR-MAPPED-ADDRESS is our own socket's address

        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert re.search(rf"^{ALLOCATIONS_METRIC}(\{{[^}}]*\}})? 0(\.0)?$", metrics, re.MULTILINE), metrics[:2000]

        # ExecReload=/bin/kill -HUP $MAINPID, as the peer-sync timer triggers it.
        (etc / "allowed-peers.conf").write_text("203.0.113.5\n10.1.0.5\n")
        process.send_signal(signal.SIGHUP)
        wait_for_notify(notify, process, "READY=1", timeout=15)
        assert process.poll() is None
        assert subprocess.run([sys.executable, str(USERDATA / "common" / "stun_ping.py"), "127.0.0.1", str(listen)],
                              capture_output=True, timeout=10).returncode == 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        notify.close()
    assert code == 0
    # On loopback, kernel-offload=auto logs its one line and serves from user space (never attached to lo).
    log = process.stderr.read().decode() if process.stderr else ""
    assert log.count("kernel offload unavailable") == 1 and "is a loopback address" in log, log[-3000:]

    # ExecStopPost: the installed package's detach over every interface, which finds nothing of ours here.
    stop_post = re.search(r"^ExecStopPost=-(.+)$", UNIT.read_text(), re.MULTILINE).group(1)  # type: ignore[union-attr]
    detach = subprocess.run(shlex.split(stop_post.replace("/opt/bbb-turn-relay", str(venv))), capture_output=True,
                            text=True, timeout=30)
    assert detach.returncode == 0 and "nothing attached to lo" in detach.stdout, detach.stdout + detach.stderr


def test_the_rendered_production_config_passes_the_relays_own_check(installed_relay: Path, tmp_path: Path) -> None:
    """relay.conf exactly as a TURN host renders it (instance addresses, default ports) is valid for the relay."""
    etc = tmp_path / "etc"
    etc.mkdir()
    env = {"RELAY_ETC": str(etc), "RELAY_USER": "root", "RELAY_GROUP": "root", **relay_listeners()}
    result = lib_shell(f"write_relay_secrets {SECRET}; printf '203.0.113.5\\n10.1.0.5\\n' >{etc}/allowed-peers.conf; "
                       "render_relay_conf turn.bbb.example.com 10.1.0.23 203.0.113.10 49152 65535 10000 16 0 3600 "
                       f">{etc}/relay.conf", env)
    assert result.returncode == 0, result.stderr
    check = subprocess.run([str(installed_relay / "bin" / "bbb-turn-relay"), "-c", str(etc / "relay.conf"),
                            "--check-config"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "warning" not in (check.stdout + check.stderr).lower()
    assert SECRET not in check.stdout + check.stderr
