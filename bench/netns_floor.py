#!/usr/bin/env python3
"""The emulated network's own share of `relay_netns.py`'s `soak` column: what the server core spends per
packet when the relay interface only reflects UDP in the kernel (bench/peer_echo.bpf.c attached there) under
the same receive steering, with the same soaker (bench/cycle_soak.py) and no server at all.

    sudo .venv/bin/python bench/relay_netns.py ... ; sudo .venv/bin/python bench/netns_floor.py

Each reflected packet crosses what every relayed packet crosses on the server core in the benchmark: it is
steered there from the load core (RPS: an inter-processor interrupt per batch), passes the relay interface's
TC hook, and is redirected out to the router, whose receive work is steered back. What a TURN server adds on
top is its own: the in-kernel path's parsing, lookups and checksums, or a socket, a process and a send. A
plain UDP sender on the load core (paced in 1 ms batches) offers the packets.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # relay (peer_echo compiles with its command)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "relay" / "kernel"))  # netns_kit

import peer_echo
from cycle_soak import Soaker, busy_share, rate
from netns_drops import proc_net, tx_packets
from netns_kit import CLIENT_IP, RELAY_INTERFACE, RELAY_IP, Topology
from relay_netns import steer
from relay_vs_coturn import split_cores

PORT = 3478
RATES = (20_000, 40_000, 70_000, 140_000)  # packets per second offered (a relayed message is two packets)


def tx(ns: str) -> int:
    return tx_packets(proc_net(ns, "dev"), RELAY_INTERFACE, ns)


def offer(sock: object, per_second: int, seconds: float) -> None:
    """`per_second` datagrams a second for `seconds`: every millisecond, the ones due by then."""
    payload, target = b"x" * 124, (RELAY_IP, PORT)
    start, sent = time.monotonic(), 0
    while (now := time.monotonic()) - start < seconds:
        due = int((now - start) * per_second)
        for _ in range(due - sent):
            sock.sendto(payload, target)  # type: ignore[attr-defined]
        sent = due
        time.sleep(0.001)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per rate (default 5)")
    parser.add_argument("--rate", type=int, action="append", help="packets/s to offer (repeatable; default: "
                        + ", ".join(map(str, RATES)) + ")")  # fmt: skip
    args = parser.parse_args(argv)
    server_cores, load_cores = split_cores()
    net, soaker = Topology(), Soaker(server_cores)
    with tempfile.TemporaryDirectory(prefix="netns-floor-") as scratch:
        try:
            net.create()
            steer(net, server_cores, load_cores)
            soaker.start()
            os.sched_setaffinity(0, set(load_cores))
            peer_echo.attach(net.relay, RELAY_INTERFACE, peer_echo.build(Path(scratch), PORT))
            sock = net.udp(net.client, (CLIENT_IP, 0))
            print(f"netns_floor: reflect on {RELAY_INTERFACE}, server cores {server_cores}, load {load_cores}")
            print(f"{'offered/s':>10} {'reflected/s':>11} {'server core busy':>16} {'us per packet':>13}")
            for offered in args.rate or RATES:
                idle_start = soaker.read()
                time.sleep(2.0)
                idle = rate(idle_start, soaker.read())
                before, start = tx(net.relay), soaker.read()
                offer(sock, offered, args.seconds)
                end, after = soaker.read(), tx(net.relay)
                share = busy_share(idle, start, end)
                reflected = after - before
                seconds = end[0] - start[0]
                us = share * seconds * len(server_cores) / reflected * 1e6 if reflected else float("nan")
                print(f"{offered:>10} {reflected / seconds:>11.0f} {100 * share:>15.1f}% {us:>13.2f}", flush=True)
        finally:
            soaker.stop()
            net.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
