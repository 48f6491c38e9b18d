"""The two servers the benchmark compares, started the same way on the same cores, and what it reads
from them: CPU time and RSS from /proc (the process and its children: our workers, coturn's threads
are in the process already), relayed packets from the server's own counters where it has them.

    server = OurRelay(cores=[1], workers=1, port=3478, ...)   # or Coturn(cores=[1], threads=1, ...)
    server.start(); server.cpu_seconds(); server.rss_kib(); server.packets(); server.stop()

By default both listen on loopback in this network namespace (bench/relay_vs_coturn.py). With `host`,
`netns` (started under `ip netns exec`) and `inside` (runs a probe on a thread in that namespace),
they run in another one (bench/relay_netns.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (our supervisor's workers)."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop()
        pids.append(current)
        with contextlib.suppress(OSError):
            queue.extend(int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split())
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of each process (all its threads), in seconds."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


class Server:
    name = ""
    counts_packets = False  # whether packets() reads the server's own counters

    def __init__(
        self,
        cores: list[int],
        port: int,
        relay_range: tuple[int, int],
        secret: str,
        realm: str,
        workdir: Path,
        *,
        name: str = "",
        host: str = "127.0.0.1",
        netns: str = "",
        inside: Callable[[Callable[[], Any]], Any] | None = None,
    ):
        self.cores, self.port, self.relay_range = cores, port, relay_range
        self.secret, self.realm, self.workdir = secret, realm, workdir
        self.name = name or self.name
        self.host, self.netns = host, netns
        self.inside: Callable[[Callable[[], Any]], Any] = inside or (lambda probe: probe())
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        taskset = ["taskset", "-c", ",".join(map(str, self.cores))]
        netns = ["ip", "netns", "exec", self.netns] if self.netns else []  # both exec: the pid stays the server's
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                taskset + netns + self.command(),
                cwd=self.cwd(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
            )
        self.wait_ready()

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def cwd(self) -> Path:
        return ROOT

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"{self.name} exited at start; the end of {self.log}:\n{tail}")
            if self.ready():
                time.sleep(0.3)  # let every thread or worker settle
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready within {timeout:.0f} s; see {self.log}")

    def ready(self) -> bool:
        raise NotImplementedError

    def pids(self) -> list[int]:
        assert self.process is not None
        return process_tree(self.process.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids())

    def rss_kib(self) -> int:
        return rss_kib(self.pids())

    def packets(self) -> int | None:
        return None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


class OurRelay(Server):
    name = "ours"
    counts_packets = True

    def __init__(
        self,
        *args: object,
        workers: int,
        admin_port: int,
        extra: tuple[str, ...] = (),
        source: Path = ROOT,
        packet_path: str = "compiled",
        **kwargs: object,
    ) -> None:
        kwargs.setdefault("name", "ours" if packet_path == "compiled" else "ours-py")
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.workers, self.admin_port, self.packet_path = workers, admin_port, packet_path
        self.extra, self.source = extra, source  # more relay.conf lines; the tree `python -m relay` runs from

    def command(self) -> list[str]:
        config = self.workdir / f"{self.name}.conf"
        config.write_text(
            "\n".join(
                [
                    f"listening-port={self.port}",
                    f"listening-ip={self.host}",
                    f"relay-ip={self.host}",
                    f"min-port={self.relay_range[0]}",
                    f"max-port={self.relay_range[1]}",
                    f"realm={self.realm}",
                    "use-auth-secret",
                    f"static-auth-secret={self.secret}",
                    "allow-loopback-peers",  # the benchmark's peers are on loopback
                    "legacy-channel-numbers",  # coturn 4.6's uclient picks channels up to 0x7FFE
                    "unauthenticated-rate=0",  # coturn has no 401 limit unless asked; neither here
                    "total-quota=0",
                    "user-quota=0",
                    "no-tls",
                    f"admin-listen=127.0.0.1:{self.admin_port}",
                    "log-level=warning",
                    "log-format=text",
                    f"workers={self.workers}",
                    *self.extra,
                ]
            )
            + "\n"
        )
        return [sys.executable, "-m", "relay", "-c", str(config)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.source), "RELAY_PACKET_PATH": self.packet_path}

    def cwd(self) -> Path:
        return self.source  # `-m relay` puts the working directory first on sys.path

    def ready(self) -> bool:
        def probe() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1) as response:
                return response.status == 200

        try:
            return bool(self.inside(probe))
        except OSError:
            return False

    def counter(self, name: str, label: str = "") -> int:
        """The sum of a counter's samples on /metrics (e.g. turn_packets_total), those whose labels
        contain `label` (e.g. 'direction="client_to_peer"') or all."""

        def get() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as response:
                return response.read().decode()

        total = 0.0
        for line in self.inside(get).splitlines():
            labelled = line.startswith(name + "{") and label in line.partition("}")[0]
            if labelled or (not label and line.startswith(name + " ")):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def packets(self) -> int | None:
        return self.counter("turn_packets_total")


class Coturn(Server):
    name = "coturn"

    def __init__(self, *args: object, threads: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.threads = threads  # 0: leave --relay-threads to coturn's default

    def command(self) -> list[str]:
        return [
            "turnserver",
            "-n",  # no configuration file: everything is on this command line
            f"--listening-ip={self.host}",
            f"--relay-ip={self.host}",
            f"--listening-port={self.port}",
            f"--min-port={self.relay_range[0]}",
            f"--max-port={self.relay_range[1]}",
            f"--realm={self.realm}",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            "--allow-loopback-peers",
            "--total-quota=0",
            "--user-quota=0",
            *([f"--relay-threads={self.threads}"] if self.threads else []),  # 0: coturn's default
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--no-stdout-log",
            f"--log-file={self.workdir / 'coturn-internal.log'}",
            "--simple-log",
            f"--pidfile={self.workdir / f'{self.name}.pid'}",  # not /var/run: another run may hold that one
        ]

    def ready(self) -> bool:
        import socket

        probe = bytes.fromhex("000100002112a442") + os.urandom(12)  # a Binding request

        def ask() -> bool:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(0.3)
                sock.sendto(probe, (self.host, self.port))
                return len(sock.recv(2048)) >= 20

        try:
            return bool(self.inside(ask))
        except OSError:
            return False


def coturn_version() -> str:
    if shutil.which("turnserver") is None:
        return "missing"
    result = subprocess.run(["turnserver", "--version"], capture_output=True, text=True, timeout=10)
    return (result.stdout.strip() or result.stderr.strip()).splitlines()[-1]
