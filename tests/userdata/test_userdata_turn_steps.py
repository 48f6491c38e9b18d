"""turn/lib.sh and the TURN timers for real under bash; readiness against a real STUN server (coturn)."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.ops.metrics import RelayCollector, RelayStats, build_registry, render_metrics
from tests.servers import free_port
from userdata.render import relay_listeners

USERDATA = Path(__file__).resolve().parents[2] / "userdata"
TURN = ("common/lib.sh", "turn/lib.sh")
SECRET = "Tq4Wm8Zr2Xc6Vb0Nn3Kk7Jj1Hh5Gg9Ff2Dd6Ss0A"


# --- allowed peers ----------------------------------------------------------------------------------------


@pytest.fixture
def peers(shell) -> Path:
    """aws answers with the file `ec2-answer` (or fails when it holds FAIL); systemctl: relay active."""
    etc = shell.root / "relay-etc"
    etc.mkdir()
    answer = shell.root / "ec2-answer"
    shell.shim("aws", f'[[ $(cat {answer}) == FAIL ]] && {{ echo "RequestLimitExceeded" >&2; exit 255; }}\n'
                      f"cat {answer}")
    shell.shim("systemctl", f'[[ $1 == is-active ]] && exit $(cat {shell.root}/relay-active 2>/dev/null || echo 0)\n'
                            "exit 0")
    shell.env["RELAY_ETC"] = str(etc)
    return etc / "allowed-peers.conf"


def sync(shell, answer: str) -> subprocess.CompletedProcess[str]:
    (shell.root / "ec2-answer").write_text(answer)
    return shell.run("sync_allowed_peers bbb", libs=TURN)


def reloads(shell) -> int:
    return sum(1 for c in shell.calls("systemctl") if c[1:] == ["reload", "bbb-turn-relay"])


def test_peers_are_the_bbb_servers_public_and_private_addresses(shell, peers: Path) -> None:
    result = sync(shell, "203.0.113.5\t10.1.0.5\nNone\t10.1.16.6\n198.51.100.9\t10.1.0.17\n")
    assert result.returncode == 0, result.stderr
    assert peers.read_text() == "10.1.0.5\n10.1.0.17\n10.1.16.6\n198.51.100.9\n203.0.113.5\n"
    assert oct(peers.stat().st_mode & 0o777) == "0o644"
    assert reloads(shell) == 1
    (call,) = shell.calls("aws")
    assert call[1:3] == ["ec2", "describe-instances"]
    assert "Name=tag:bbb-on-aws:environment,Values=bbb" in call
    assert "Name=tag:bbb-on-aws:role,Values=bbb,single" in call
    assert "Name=instance-state-name,Values=pending,running" in call


def test_unchanged_fleet_rewrites_nothing_and_does_not_reload(shell, peers: Path) -> None:
    sync(shell, "203.0.113.5\t10.1.0.5\n198.51.100.9\t10.1.0.17\n")
    before = peers.stat()
    result = sync(shell, "198.51.100.9\t10.1.0.17\n203.0.113.5\t10.1.0.5\n")  # same fleet, other order
    assert result.returncode == 0
    after = peers.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert reloads(shell) == 1


def test_a_terminated_server_stops_being_a_peer(shell, peers: Path) -> None:
    sync(shell, "203.0.113.5\t10.1.0.5\n198.51.100.9\t10.1.0.17\n")
    sync(shell, "203.0.113.5\t10.1.0.5\n")
    assert peers.read_text() == "10.1.0.5\n203.0.113.5\n"
    assert reloads(shell) == 2


def test_api_error_never_empties_the_list(shell, peers: Path) -> None:
    sync(shell, "203.0.113.5\t10.1.0.5\n")
    before = peers.read_text()
    result = sync(shell, "FAIL")
    assert result.returncode == 1
    assert "keeping the current allowed peers" in result.stderr
    assert peers.read_text() == before
    assert reloads(shell) == 1


def test_no_bbb_server_at_all_is_an_empty_list(shell, peers: Path) -> None:
    sync(shell, "203.0.113.5\t10.1.0.5\n")
    result = sync(shell, "")
    assert result.returncode == 0
    assert peers.read_text() == ""
    assert reloads(shell) == 2


def test_no_reload_while_the_relay_is_not_running(shell, peers: Path) -> None:
    (shell.root / "relay-active").write_text("3")
    sync(shell, "203.0.113.5\t10.1.0.5\n")
    assert peers.exists()
    assert reloads(shell) == 0


def test_peer_sync_script_uses_params(shell, peers: Path) -> None:
    (shell.root / "conf" / "params.env").write_text("ENV_NAME=prod-bbb\n")
    (shell.root / "ec2-answer").write_text("203.0.113.5\t10.1.0.5\n")
    result = shell.run(f"bash {USERDATA}/turn/peer_sync.sh")
    assert result.returncode == 0, result.stderr
    assert "Name=tag:bbb-on-aws:environment,Values=prod-bbb" in shell.calls("aws")[0]
    assert peers.read_text() == "10.1.0.5\n203.0.113.5\n"


# --- configuration, secrets, kernel -----------------------------------------------------------------------


def test_relay_conf_in_coturn_syntax(shell) -> None:
    result = shell.run("render_relay_conf turn.bbb.example.com 10.1.0.23 203.0.113.10 49152 65535 10000 16 0 3600",
                       libs=TURN, env={"RELAY_ETC": "/etc/bbb-turn-relay", **relay_listeners()})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "realm=turn.bbb.example.com", "listening-ip=10.1.0.23", "listening-port=3478", "tcp-proxy-port=3479",
        "tcp-proxy-transport=tls", "relay-ip=10.1.0.23", "external-ip=203.0.113.10", "min-port=49152",
        "max-port=65535", "use-auth-secret",
        "auth-secret-file=/etc/bbb-turn-relay/secret", "nonce-secret-file=/etc/bbb-turn-relay/nonce-secret",
        "denied-peer-ip=0.0.0.0-255.255.255.255", "denied-peer-ip=::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "allowed-peers-file=/etc/bbb-turn-relay/allowed-peers.conf", "total-quota=10000", "user-quota=16",
        "max-bps=0", "admin-listen=127.0.0.1:9641", "drain-timeout=3600", "kernel-offload=auto",
    ]


def test_secrets_and_the_shared_nonce_key(shell) -> None:
    etc = shell.root / "relay-etc"
    etc.mkdir()
    result = shell.run(f"write_relay_secrets {SECRET}", libs=TURN,
                       env={"RELAY_ETC": str(etc), "RELAY_USER": "root", "RELAY_GROUP": "root"})
    assert result.returncode == 0, result.stderr
    assert (etc / "secret").read_text() == f"{SECRET}\n"
    expected = hmac.new(SECRET.encode(), b"bbb-on-aws relay nonce key v1", hashlib.sha256).hexdigest()
    assert (etc / "nonce-secret").read_text() == f"{expected}\n"
    for name in ("secret", "nonce-secret"):
        assert oct((etc / name).stat().st_mode & 0o777) == "0o600"
    assert SECRET not in result.stderr + " ".join(" ".join(c) for c in shell.calls())


def test_kernel_tuning_keeps_ephemeral_ports_out_of_the_relay_range(shell) -> None:
    shell.shim("sysctl")
    sysctl = shell.root / "sysctl.d"
    sysctl.mkdir()
    result = shell.run("tune_kernel '32768 49151' 49152 65535", libs=TURN, env={"SYSCTL_DIR": str(sysctl)})
    assert result.returncode == 0, result.stderr
    conf = (sysctl / "60-bbb-turn-relay.conf").read_text()
    assert "net.ipv4.ip_local_port_range = 32768 49151\n" in conf
    assert "net.ipv4.ip_local_reserved_ports = 49152-65535\n" in conf
    assert "net.core.rmem_max = 33554432\n" in conf
    assert shell.calls("sysctl") == [["sysctl", "-q", "--system"]]


def relay_exposition(stats: RelayStats, draining: bool = False) -> str:
    """What the relay's /metrics serves for these counters (its own collector and renderer)."""
    return render_metrics(build_registry(RelayCollector(stats.snapshot, draining=lambda: draining))).decode()


def test_relay_metrics_publish_counter_increases_once_cloudwatch_took_them(shell) -> None:
    (shell.root / "conf" / "params.env").write_text(
        "METRICS_NAMESPACE=BBBOnAWS/bbb\nALLOCATIONS_METRIC=turn_allocations\n"
        f"ADMIN_LISTEN={relay_listeners()['ADMIN_LISTEN']}\n")
    (shell.root / "conf" / "runtime.env").write_text("ASG_NAME=bbb-TurnFleet-9Z\nINSTANCE_ID=i-0turn\n")
    stats = RelayStats()
    stats.allocations, stats.allocations_created, stats.bytes_client_to_peer = 5, 120, 10_000
    (shell.root / "metrics.txt").write_text(relay_exposition(stats))
    shell.shim("curl", f'[[ ${{@: -1}} == http://127.0.0.1:9641/metrics ]] && cat {shell.root}/metrics.txt')
    shell.shim("aws")
    script = f"bash {USERDATA}/turn/publish_allocations.sh"
    assert shell.run(script).returncode == 0
    stats.allocations, stats.allocations_created, stats.bytes_client_to_peer = 3, 125, 25_000
    (shell.root / "metrics.txt").write_text(relay_exposition(stats, draining=True))
    # CloudWatch refuses this minute: the state stays, so the next run still counts from the first one.
    shell.shim("aws", "exit 255")
    assert shell.run(script).returncode != 0
    shell.shim("aws")
    result = shell.run(script)
    assert result.returncode == 0, result.stderr
    first, _refused, last = shell.calls("aws")
    assert last[1:5] == ["cloudwatch", "put-metric-data", "--namespace", "BBBOnAWS/bbb"]
    group = [{"Name": "AutoScalingGroupName", "Value": "bbb-TurnFleet-9Z"}]
    first_data = json.loads(first[first.index("--metric-data") + 1])
    assert {d["MetricName"] for d in first_data} == {"Allocations", "TcpConnections", "TlsConnections", "Draining"}
    data = {(d["MetricName"], len(d["Dimensions"])): d for d in json.loads(last[last.index("--metric-data") + 1])}
    assert data["Allocations", 1] == {"MetricName": "Allocations", "Unit": "Count", "Value": 3.0, "Dimensions": group}
    assert data["Allocations", 2]["Dimensions"] == [*group, {"Name": "InstanceId", "Value": "i-0turn"}]
    assert data["AllocationsCreated", 1]["Value"] == 5.0
    assert data["BytesClientToPeer", 1] == {"MetricName": "BytesClientToPeer", "Unit": "Bytes", "Value": 15_000.0,
                                            "Dimensions": group}
    assert data["Draining", 1]["Value"] == 1.0
    state = json.loads((shell.root / "state" / "relay-counters.json").read_text())
    assert state["counters"]["AllocationsCreated"] == 125


# --- readiness against a real STUN server -----------------------------------------------------------------


@pytest.fixture
def stun_server(tmp_path: Path) -> Iterator[int]:
    """coturn (Debian package) in STUN-only mode on a free loopback port."""
    if not shutil.which("turnserver"):
        pytest.fail("coturn's turnserver is needed by this test (Debian package coturn)")
    port = free_port()  # coturn listens on UDP and TCP
    process = subprocess.Popen(
        ["turnserver", "-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls", "--listening-ip", "127.0.0.1",
         "--listening-port", str(port), "--log-file", str(tmp_path / "coturn.log"), "--simple-log",
         "--pidfile", str(tmp_path / "coturn.pid")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stun_ping = [os.environ.get("PYTHON", "python3"), str(USERDATA / "common" / "stun_ping.py"), "--timeout", "0.2"]
    deadline = time.monotonic() + 10
    while subprocess.run([*stun_ping, "127.0.0.1", str(port)], capture_output=True).returncode != 0:
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"coturn did not answer STUN: {(tmp_path / 'coturn.log').read_text()[-2000:]}")
        time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(timeout=10)


class Readyz(http.server.ThreadingHTTPServer):
    status = 503


class ReadyzHandler(http.server.BaseHTTPRequestHandler):
    server: Readyz

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        code = self.server.status if self.path == "/readyz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def readyz() -> Iterator[Readyz]:
    server = Readyz(("127.0.0.1", 0), ReadyzHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def test_ready_tag_needs_readyz_and_a_stun_answer(shell, stun_server: int, readyz: Readyz) -> None:
    shell.shim("aws")
    env = {"ADMIN_LISTEN": f"127.0.0.1:{readyz.server_address[1]}", "LISTEN_PORT": str(stun_server),
           "INSTANCE_ID": "i-0turn"}
    readyz.status = 503  # draining or starting: never tagged
    result = shell.run("relay_become_ready 127.0.0.1 30 5 || echo not-ready", libs=TURN, env=env)
    assert result.stdout.strip() == "not-ready"
    assert "did not become ready" in result.stderr
    assert shell.calls("aws") == []
    readyz.status = 200
    result = shell.run("relay_become_ready 127.0.0.1 30 5", libs=TURN, env=env)
    assert result.returncode == 0, result.stderr
    assert shell.calls("aws")[0][1:6] == ["ec2", "create-tags", "--resources", "i-0turn", "--tags"]


def test_no_ready_tag_without_a_stun_answer(shell, readyz: Readyz) -> None:
    shell.shim("aws")
    readyz.status = 200
    env = {"ADMIN_LISTEN": f"127.0.0.1:{readyz.server_address[1]}", "LISTEN_PORT": str(free_port()),
           "INSTANCE_ID": "i-0turn"}
    result = shell.run("relay_become_ready 127.0.0.1 10 5 || echo not-ready", libs=TURN, env=env)
    assert result.stdout.strip() == "not-ready"
    assert shell.calls("aws") == []
