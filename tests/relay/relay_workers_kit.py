"""A multi-worker relay as a real process (`python -m relay -c FILE` with `workers=2`) for the worker
tests, and a way to reach a chosen worker: the kernel spreads clients over the workers by hashing their
address, and each worker relays from its own half of the relay port range, so the relayed port of an
allocation tells which worker holds it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from relay_testkit import Session, TurnClient, admin_get, free_port, metric_value, rest_credentials, wait_until

from relay.stun import Attr, MessageClass

ROOT = Path(__file__).resolve().parents[2]
SECRET = "workers-shared-secret-0123"
PORTS = (20000, 29999)  # worker 0 relays from 20000-24999, worker 1 from 25000-29999


class WorkersRelay:
    def __init__(self, tmp_path: Path, *extra: str, workers: int = 2, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        self.workers = workers
        self.config_file = tmp_path / "relay.conf"
        self.lines = [
            f"listening-port={self.port}",
            "listening-ip=127.0.0.1",
            "relay-ip=127.0.0.1",
            f"min-port={PORTS[0]}",
            f"max-port={PORTS[1]}",
            "realm=relay.test",
            "use-auth-secret",
            f"static-auth-secret={SECRET}",
            f"admin-listen=127.0.0.1:{self.admin_port}",
            "log-format=text",
            "drain-timeout=30",
            "no-tls",
            f"workers={workers}",
            "unauthenticated-rate=0",
            *extra,
        ]
        self.write_config()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relay", "-c", str(self.config_file)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(self._ready, "the relay to become ready")

    def write_config(self) -> None:
        self.config_file.write_text("\n".join(self.lines) + "\n")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"relay exited early: {self.process.communicate()}")
        try:
            return self.http("/readyz")[0] == 200
        except OSError:
            return False

    def http(self, path: str, method: str = "GET") -> tuple[int, str]:
        return admin_get(self.admin_port, path, method)

    def metric(self, name: str) -> float:
        return metric_value(self.admin_port, name)

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def client(self, user: str = "alice", *, transport: str = "udp", port: int = 0) -> TurnClient:
        """A client on 127.0.0.1:`port` (0: any), so a test can come back from an address it has mapped."""
        username, password = rest_credentials(user, secret=SECRET)
        server = ("127.0.0.1", self.port)
        if transport == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", port))
            sock.connect(server)
        else:
            sock = socket.create_connection(server, timeout=2.0, source_address=("127.0.0.1", port))
        return BoundClient(server, username, password, sock, transport)

    def stop(self) -> tuple[str, str]:
        if self.process.poll() is None:
            self.process.kill()  # its workers see the control socket close and exit on their own
        return self.process.communicate(timeout=10)


class BoundClient(TurnClient):
    """The test kit's TURN client over a socket the test created (bound to a chosen local port)."""

    def __init__(self, server: tuple[str, int], username: str, password: str, sock: socket.socket, transport: str):
        self.server = server
        self.session = Session(username, password)
        self.transport = transport
        self.timeout = 2.0
        self.sock = sock
        self.sock.settimeout(self.timeout)
        self._buffer = b""
        self.pending = []


def worker_of(relayed_port: int) -> int:
    return 0 if relayed_port <= (PORTS[0] + PORTS[1]) // 2 else 1


def allocate(client: TurnClient) -> int:
    """Allocate; the worker that holds the allocation."""
    response = client.allocate()
    assert response.message_class == MessageClass.SUCCESS, response
    return worker_of(response.get(Attr.XOR_RELAYED_ADDRESS)[1])


def map_ports(relay: WorkersRelay, count: int) -> dict[int, list[int]]:
    """`count` UDP client ports per worker that the kernel sends to it: bind a port, allocate once to
    learn the worker, free the allocation. The ports are leased (tests/servers.free_port), not ephemeral:
    the test binds them again later, and an ephemeral port closed in between may be given to any socket."""
    found: dict[int, list[int]] = {0: [], 1: []}
    for i in range(count * 12):
        port = free_port()
        with relay.client(f"probe{i}", port=port) as client:
            worker = allocate(client)
            assert client.refresh(0).message_class == MessageClass.SUCCESS
        found[worker].append(port)
        if min(len(found[0]), len(found[1])) >= count:
            return found
    raise AssertionError(f"the kernel sent (nearly) every probe to one worker: {found}")
