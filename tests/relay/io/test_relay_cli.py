"""`python -m relay -c FILE` as a real process: readiness, metrics, SIGHUP reload, SIGUSR1 drain to
exit 0, SIGTERM, and --check-config."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from relay_testkit import Peer, TurnClient, admin_get, free_port, metric_value, rest_credentials, wait_until

from relay.stun import Attr, MessageClass

ROOT = Path(__file__).resolve().parents[3]


def write_secret(path: Path, text: str) -> None:
    """Secret files must not be readable by others (the loader refuses them)."""
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


class RelayProcess:
    def __init__(self, tmp_path: Path, secret: str = "first-shared-secret-0123") -> None:
        self.port = free_port()
        self.admin_port = free_port()
        self.secret_file = tmp_path / "secrets"
        write_secret(self.secret_file, secret + "\n")
        self.config_file = tmp_path / "relay.conf"
        self.config_file.write_text(
            "\n".join(
                [
                    "# written by the test",
                    f"listening-port={self.port}",
                    "listening-ip=127.0.0.1",
                    "relay-ip=127.0.0.1",
                    "min-port=20000",
                    "max-port=29999",
                    "realm=relay.test",
                    "use-auth-secret",
                    f"auth-secret-file={self.secret_file}",
                    "allow-loopback-peers",
                    f"admin-listen=127.0.0.1:{self.admin_port}",
                    "log-format=text",
                    "drain-timeout=30",
                    "no-tls",
                ]
            )
            + "\n"
        )
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relay", "-c", str(self.config_file)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(self._ready, "the relay to become ready")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"relay exited early: {self.process.communicate()}")
        try:
            return admin_get(self.admin_port, "/readyz")[0] == 200
        except OSError:
            return False

    def metric(self, name: str) -> float:
        return metric_value(self.admin_port, name)

    def client(self, secret: str, user: str = "alice") -> TurnClient:
        username, password = rest_credentials(user, secret=secret)
        return TurnClient(("127.0.0.1", self.port), username, password)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=5)


@pytest.mark.slow
def test_relay_process_lifecycle(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path)
    try:
        assert admin_get(relay.admin_port, "/healthz")[0] == 200
        with relay.client("first-shared-secret-0123") as client, Peer() as peer:
            response = client.allocate()
            assert response.message_class == MessageClass.SUCCESS
            relayed = response.get(Attr.XOR_RELAYED_ADDRESS)
            client.create_permission(peer.address)
            client.send_indication(peer.address, b"metrics")
            assert peer.recv()[0] == b"metrics"
            assert relay.metric("turn_allocations") == 1
            assert relay.metric('turn_packets_total{direction="client_to_peer"}') == 1

            # SIGHUP with a rotated secret file: new credentials work, the live session is untouched.
            write_secret(relay.secret_file, "first-shared-secret-0123\nsecond-shared-secret-456\n")
            relay.process.send_signal(signal.SIGHUP)

            def rotated_secret_works() -> bool:
                with relay.client("second-shared-secret-456", user="bob") as rotated:
                    if rotated.allocate().message_class != MessageClass.SUCCESS:
                        return False  # the reload has not happened yet
                    assert rotated.refresh(0).get(Attr.LIFETIME) == 0
                    return True

            wait_until(rotated_secret_works, "the reloaded secret to be accepted")
            client.send_indication(peer.address, b"after reload")
            assert peer.recv()[0] == b"after reload"

            # SIGUSR1: not ready, new allocations refused with 403, existing ones served.
            relay.process.send_signal(signal.SIGUSR1)
            wait_until(lambda: admin_get(relay.admin_port, "/readyz")[0] == 503, "readyz to report draining")
            assert relay.metric("turn_draining") == 1
            with relay.client("first-shared-secret-0123", user="carol") as late:
                assert late.allocate().get(Attr.ERROR_CODE)[0] == 403
            peer.send(b"still relayed", relayed)
            assert client.receive_data()[2] == b"still relayed"
            # The last allocation ends: the drained relay exits 0 on its own.
            assert client.refresh(0).get(Attr.LIFETIME) == 0
        wait_until(lambda: relay.process.poll() is not None, "the drained relay to exit", timeout=15)
        assert relay.process.returncode == 0
    finally:
        relay.stop()


@pytest.mark.slow
def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path)
    try:
        with relay.client("first-shared-secret-0123") as client:
            assert client.allocate().message_class == MessageClass.SUCCESS
        relay.process.send_signal(signal.SIGTERM)
        wait_until(lambda: relay.process.poll() is not None, "the relay to stop")
        assert relay.process.returncode == 0
    finally:
        relay.stop()


def test_check_config_reports_errors_and_ok(tmp_path: Path) -> None:
    good = tmp_path / "good.conf"
    good.write_text(
        "realm=relay.test\nuse-auth-secret\nstatic-auth-secret=a-long-enough-secret-123\nrelay-ip=127.0.0.1\n"
    )
    bad = tmp_path / "bad.conf"
    bad.write_text("realm=relay.test\nmin-port=70000\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = lambda f: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "relay", "-c", str(f), "--check-config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    ok, failed = run(good), run(bad)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("OK"), ok.stdout + ok.stderr
    assert failed.returncode == 2 and "min-port" in failed.stdout


def test_port_in_use_exits_1_with_the_reason(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = tmp_path / "relay.conf"
        config.write_text(
            f"realm=relay.test\nuse-auth-secret\nstatic-auth-secret=a-long-enough-secret-123\n"
            f"listening-ip=127.0.0.1\nrelay-ip=127.0.0.1\nlistening-port={port}\nno-tls\n"
            f"admin-listen=127.0.0.1:{free_port()}\n"
        )
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        result = subprocess.run(
            [sys.executable, "-m", "relay", "-c", str(config)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=20,
        )
    assert result.returncode == 1 and "cannot start" in result.stderr
