"""Memory soak (issue 15, not in CI): a relay process with a steady number of live allocations that churn
for a while, then everything deleted; the relay's RSS (process tree, from /proc) printed every interval.

    .venv/bin/python bench/relay_soak.py                                   # 2,000 allocations, 20 min
    .venv/bin/python bench/relay_soak.py --allocations 1500 --minutes 5 --clients 4

Each client process owns allocations/clients UDP allocations on its own sockets and loops: pick one of
its allocations, delete it (Refresh 0), then allocate again, create a permission, bind a channel, send
one ChannelData to a loopback peer and refresh it (allocate, bind, send, refresh, delete). Idle
allocations are refreshed before they expire. The parent prints

    t=  10 s  live 2000  churned   4 812  rss  61.2 MiB

and at the end: RSS at start (no allocation), after the warm-up (`--warmup` seconds of churn, 60 by
default: the relay's 8,192-entry credential cache fills in the first ~30 s), its minimum and maximum
over the rest of the run, and after everything is deleted; PASS when the run stays within 10 % of the
warm value and the final value is within 10 % of it. (The idle start is printed too: CPython keeps
the pools the first allocations grew, so "after delete" is compared with the warm value: the soak
asks for flat memory, not for the interpreter to hand its first page faults back.)
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "relay"), str(ROOT / "bench")]

from relay_servers import OurRelay  # noqa: E402
from relay_testkit import TurnClient, free_port, rest_credentials  # noqa: E402

from relay.stun import MessageClass  # noqa: E402

RELAY_RANGE = (20000, 59999)
REFRESH_EVERY = 240.0  # seconds: well inside the 600 s default lifetime


def metric(admin_port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


class Slot:
    """One allocation of a client process and when it was last refreshed."""

    def __init__(self, server: tuple[str, int], user: str, peer: tuple[str, int]) -> None:
        self.server, self.user, self.peer = server, user, peer
        self.client: TurnClient | None = None
        self.refreshed = 0.0

    def open(self) -> None:
        username, password = rest_credentials(self.user)  # the test kit's secret, which main gives the relay
        self.client = TurnClient(self.server, username, password, timeout=5.0)
        assert self.client.allocate().message_class == MessageClass.SUCCESS
        assert self.client.create_permission(self.peer).message_class == MessageClass.SUCCESS
        assert self.client.channel_bind(0x4000, self.peer).message_class == MessageClass.SUCCESS
        self.client.channel_data(0x4000, b"soak" * 40)
        assert self.client.refresh().message_class == MessageClass.SUCCESS
        self.refreshed = time.monotonic()

    def close(self) -> None:
        if self.client is not None:
            self.client.refresh(0)
            self.client.close()
            self.client = None


def client_process(index: int, server: tuple[str, int], count: int, stop_at: float, counter, ready) -> None:  # type: ignore[no-untyped-def]
    peer_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_sock.bind(("127.0.0.1", 0))
    peer_sock.setblocking(False)
    peer = peer_sock.getsockname()
    slots = [Slot(server, f"soak{index}-{i}", peer) for i in range(count)]
    for slot in slots:
        slot.open()
    ready.release()
    rng = random.Random(index)
    while time.time() < stop_at:
        slot = rng.choice(slots)
        slot.close()
        slot.open()
        with counter.get_lock():
            counter.value += 1
        now = time.monotonic()
        for other in slots:
            if other.client is not None and now - other.refreshed > REFRESH_EVERY:
                other.client.refresh()
                other.refreshed = now
        try:
            while True:
                peer_sock.recv(2048)  # drain what reached the peer
        except BlockingIOError:
            pass
        time.sleep(0.01)
    for slot in slots:
        slot.close()
    peer_sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--allocations", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS lines")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds of churn before the reference RSS")
    args = parser.parse_args()

    from relay_testkit import SECRET as KIT_SECRET

    with tempfile.TemporaryDirectory() as workdir:
        relay = OurRelay(
            [0], free_port(), workers=args.workers, admin_port=free_port(),
            relay_range=RELAY_RANGE, secret=KIT_SECRET, realm="relay.test", workdir=Path(workdir),
        )  # fmt: skip
        relay.start()
        try:
            run(relay, args)
        finally:
            relay.stop()


def run(relay: OurRelay, args: argparse.Namespace) -> None:
    mib = lambda: relay.rss_kib() / 1024  # noqa: E731
    idle = mib()
    print(f"relay started: rss {idle:.1f} MiB (no allocation)", flush=True)
    counter = multiprocessing.Value("l", 0)
    ready = multiprocessing.Semaphore(0)
    stop_at = time.time() + args.minutes * 60
    per_client = args.allocations // args.clients
    server = ("127.0.0.1", relay.port)
    processes = [
        multiprocessing.Process(target=client_process, args=(i, server, per_client, stop_at, counter, ready))
        for i in range(args.clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.acquire()
    begin = time.monotonic()
    samples: list[float] = []
    warm = None
    while any(p.is_alive() for p in processes) and time.time() < stop_at:
        time.sleep(args.interval)
        rss = mib()
        live = metric(relay.admin_port, "turn_allocations")
        if warm is None and time.monotonic() - begin >= args.warmup:
            warm = rss
        elif warm is not None:
            samples.append(rss)
        print(f"t={time.monotonic() - begin:5.0f} s  live {live:5.0f}  churned {counter.value:7d}  rss {rss:6.1f} MiB",
              flush=True)  # fmt: skip
    for process in processes:
        process.join(120)
    deadline = time.monotonic() + 30
    while metric(relay.admin_port, "turn_allocations") > 0 and time.monotonic() < deadline:
        time.sleep(1)
    time.sleep(2)
    final = mib()
    if warm is None:
        raise SystemExit(f"the run ended before the {args.warmup:.0f} s warm-up; use a longer --minutes")
    low, high = (min(samples), max(samples)) if samples else (warm, warm)
    flat = high <= warm * 1.10 and low >= warm * 0.90
    back = abs(final - warm) <= warm * 0.10
    print(f"idle {idle:.1f} MiB; warm {warm:.1f} MiB; during min {low:.1f} max {high:.1f} MiB; "
          f"after delete {final:.1f} MiB (live {metric(relay.admin_port, 'turn_allocations'):.0f}); "
          f"{counter.value} churn cycles", flush=True)  # fmt: skip
    print(f"{'PASS' if flat and back else 'FAIL'}: flat within 10 % of warm-up: {flat}; back within 10 %: {back}")


if __name__ == "__main__":
    main()
