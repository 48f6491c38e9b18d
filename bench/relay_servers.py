"""The two servers the benchmark compares, started the same way on the same cores, and what it reads
from them: CPU time and RSS from /proc (the process and its children: our workers, coturn's threads
are in the process already), relayed packets from the server's own counters where it has them.

    server = OurRelay(cores=[1], workers=1, port=3478, ...)   # or Coturn(cores=[1], threads=1, ...)
    server.start(); server.cpu_seconds(); server.rss_kib(); server.packets(); server.stop()
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
        self, cores: list[int], port: int, relay_range: tuple[int, int], secret: str, realm: str, workdir: Path
    ):
        self.cores, self.port, self.relay_range = cores, port, relay_range
        self.secret, self.realm, self.workdir = secret, realm, workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        taskset = ["taskset", "-c", ",".join(map(str, self.cores))]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                taskset + self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=self.environment()
            )
        self.wait_ready()

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log}")
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
        self, *args: object, workers: int, admin_port: int, packet_path: str = "compiled", **kwargs: object
    ) -> None:
        self.name = "ours" if packet_path == "compiled" else "ours-py"
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.workers, self.admin_port, self.packet_path = workers, admin_port, packet_path

    def command(self) -> list[str]:
        config = self.workdir / f"{self.name}.conf"
        config.write_text(
            "\n".join(
                [
                    f"listening-port={self.port}",
                    "listening-ip=127.0.0.1",
                    "relay-ip=127.0.0.1",
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
                ]
            )
            + "\n"
        )
        return [sys.executable, "-m", "relay", "-c", str(config)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(ROOT), "RELAY_PACKET_PATH": self.packet_path}

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def packets(self) -> int | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics", timeout=5) as response:
            body = response.read().decode()
        total = 0.0
        for line in body.splitlines():
            if line.startswith("turn_packets_total{"):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)


class Coturn(Server):
    name = "coturn"

    def __init__(self, *args: object, threads: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.threads = threads

    def command(self) -> list[str]:
        return [
            "turnserver",
            "-n",  # no configuration file: everything is on this command line
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={self.port}",
            f"--min-port={self.relay_range[0]}",
            f"--max-port={self.relay_range[1]}",
            f"--realm={self.realm}",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            "--allow-loopback-peers",
            "--total-quota=0",
            "--user-quota=0",
            f"--relay-threads={self.threads}",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--no-stdout-log",
            f"--log-file={self.workdir / 'coturn-internal.log'}",
            "--simple-log",
        ]

    def ready(self) -> bool:
        import socket

        probe = bytes.fromhex("000100002112a442") + os.urandom(12)  # a Binding request
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.3)
            try:
                sock.sendto(probe, ("127.0.0.1", self.port))
                return len(sock.recv(2048)) >= 20
            except OSError:
                return False


def coturn_version() -> str:
    if shutil.which("turnserver") is None:
        return "missing"
    result = subprocess.run(["turnserver", "--version"], capture_output=True, text=True, timeout=10)
    return (result.stdout.strip() or result.stderr.strip()).splitlines()[-1]
