"""The whole relay process (`python -m relay`) in one namespace of netns_kit's layout, for the tests that
need the real thing end to end: started from a copy of the source tree with the compiled program where
the wheel ships it (conftest's `package`), reached over its admin port inside its namespace, stopped
with SIGTERM and checked to have exited 0 and (offload on) to have detached its filter."""

from __future__ import annotations

import contextlib
import http.client
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from netns_kit import CLIENT_IP, RELAY_INTERFACE, RELAY_IP, Topology
from prometheus_client.parser import text_string_to_metric_families
from relay_testkit import SECRET, TurnClient, rest_credentials

REPO = Path(__file__).resolve().parents[3]
PORTS = (49160, 49259)
ADMIN = 9641  # in the relay's own namespace: no collision with anything on the host
DIRECTIONS = ("client_to_peer", "peer_to_client")


@dataclass
class Relay:
    net: Topology
    process: subprocess.Popen[str]
    conf: Path
    offload: str
    workers: int
    ns: str  # the namespace it runs in
    ip: str  # its listening and relayed address
    stderr: str = ""  # the relay's log, once it stopped

    def admin(self, path: str) -> tuple[int, str]:
        def get() -> tuple[int, str]:
            connection = http.client.HTTPConnection("127.0.0.1", ADMIN, timeout=5)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                return response.status, response.read().decode()
            finally:
                connection.close()

        return self.net.run_in(self.ns, get)

    def samples(self, *names: str) -> list[tuple[str, dict[str, str], float]]:
        """Every sample of the metrics `names` in /metrics: (name, labels, value)."""
        return [
            (sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(self.admin("/metrics")[1])
            for sample in family.samples
            if sample.name in names
        ]

    def counters(self) -> dict[str, float]:
        """turn_packets_total and turn_offloaded_packets_total by direction, and their difference: what
        user space carried."""
        values = {
            f"{name}:{labels['direction']}": value
            for name, labels, value in self.samples("turn_packets_total", "turn_offloaded_packets_total")
        }
        for direction in DIRECTIONS:
            offloaded = values[f"turn_offloaded_packets_total:{direction}"]
            values[f"kernel:{direction}"] = offloaded
            values[f"user:{direction}"] = values[f"turn_packets_total:{direction}"] - offloaded
        return values

    def requests(self) -> dict[tuple[str, str], float]:
        """turn_requests_total by (method, result)."""
        return {(labels["method"], labels["result"]): value for _, labels, value in self.samples("turn_requests_total")}

    def client(self) -> TurnClient:
        username, password = rest_credentials("alice")
        return self.net.run_in(
            self.net.client, lambda: TurnClient((self.ip, 3478), username, password, bind=CLIENT_IP, timeout=1.0)
        )

    def peer(self, address: str) -> Peer:
        return Peer(self.net.udp(self.net.peer, (address, 0)))


@dataclass
class Peer:
    sock: socket.socket

    @property
    def address(self) -> tuple[str, int]:
        return self.sock.getsockname()[:2]

    def recv(self, timeout: float = 2.0) -> tuple[bytes, tuple[str, int]]:
        self.sock.settimeout(timeout)
        data, address = self.sock.recvfrom(65535)
        return data, address[:2]

    def nothing(self, wait: float = 0.3) -> bool:
        self.sock.settimeout(wait)
        try:
            self.sock.recvfrom(65535)
        except TimeoutError:
            return True
        return False

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        self.sock.sendto(data, address)


def relay_conf(
    tmp: Path, offload: str, workers: int, extra: tuple[str, ...] = (), *, peers: tuple[str, ...], ip: str = RELAY_IP
) -> Path:
    """A relay.conf listening and relaying on `ip` (UDP only) that allows the private `peers`."""
    conf = tmp / f"relay-{ip}.conf"
    conf.write_text(
        "\n".join(
            [
                "realm=relay.test",
                f"listening-ip={ip}",
                "listening-port=3478",
                "no-tcp",
                "no-tls",
                f"relay-ip={ip}",
                f"min-port={PORTS[0]}",
                f"max-port={PORTS[1]}",
                "use-auth-secret",
                f"static-auth-secret={SECRET}",
                "nonce-secret=kernel offload process test nonce",
                *(f"allowed-peer-ip={peer}" for peer in peers),
                f"admin-listen=127.0.0.1:{ADMIN}",
                "log-format=text",
                f"kernel-offload={offload}",
                f"workers={workers}",
                *extra,
            ]
        )
        + "\n"
    )
    return conf


def start_relay(ns: str, package: Path, conf: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "relay", "-c", str(conf)],
        cwd=package,
        env={"PYTHONPATH": str(package), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextlib.contextmanager
def running(
    topology: Topology,
    package: Path,
    tmp_path: Path,
    offload: str,
    workers: int,
    *extra: str,
    peers: tuple[str, ...],
    ns: str | None = None,
    ip: str = RELAY_IP,
    interface: str = RELAY_INTERFACE,
) -> Iterator[Relay]:
    """A ready relay in namespace `ns` (the topology's relay namespace unless given) on `ip`, which is
    `interface`'s address there; on leaving, it must stop cleanly."""
    ns = ns or topology.relay
    conf = relay_conf(tmp_path, offload, workers, extra, peers=peers, ip=ip)
    process = start_relay(ns, package, conf)
    running = Relay(topology, process, conf, offload, workers, ns, ip)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"the relay exited: {process.communicate()[1][-3000:]}")
        try:
            if running.admin("/readyz")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the relay did not become ready"
        time.sleep(0.1)
    try:
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        running.stderr = stderr
        assert process.returncode == 0, stderr[-3000:]
        if offload == "on":  # a clean stop detaches the filter: nothing left forwarding on the interface
            status = subprocess.run(
                ["ip", "netns", "exec", ns, "tc", "filter", "show", "dev", interface, "ingress"],
                capture_output=True,
                text=True,
                check=False,
            )
            assert "tc_relay" not in status.stdout, status.stdout
