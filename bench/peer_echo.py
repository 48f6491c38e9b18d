"""The namespace benchmark's echo peer in the kernel (`relay_netns.py --peer kernel`): peer_echo.bpf.c, a TC
ingress program on the peer's interface that sends each datagram to the echo port straight back, instead
of turnutils_peer.

Why: on a 2-core machine the load core (uclient, turnutils_peer, the router) saturates before a fast
server does, and turnutils_peer's receive buffer is where the loss then shows (bench/netns_drops.py). The
kernel echo costs no socket, no wake-up and no system call per datagram, so the same core offers more load;
it is the same for all three servers. uclient still counts every echo.

Compiled here with clang, by the relay program's own command line (relay/server/kernel/build.py), and
attached with `tc` from iproute2, which loads a map-less object without libbpf's help.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from relay.server.kernel import build as kernel_build

SOURCE = Path(__file__).with_name("peer_echo.bpf.c")


def build(directory: Path, port: int) -> Path:
    """Compile for echo port `port` into `directory` (the relay program's clang command line, this source);
    raises CalledProcessError with clang's output."""
    directory.mkdir(parents=True, exist_ok=True)
    output = directory / f"peer_echo_{port}.bpf.o"
    compile_command = kernel_build.command(output, source=SOURCE, defines=(f"ECHO_PORT={port}",))
    subprocess.run(compile_command, check=True, capture_output=True, text=True)
    return output


def attach(ns: str, device: str, program: Path) -> None:
    """Echo on `device` in namespace `ns` (its clsact qdisc is created here, and goes with the namespace)."""
    tc = ["ip", "netns", "exec", ns, "tc"]
    subprocess.run([*tc, "qdisc", "add", "dev", device, "clsact"], check=True, capture_output=True, text=True)
    subprocess.run([*tc, "filter", "add", "dev", device, "ingress", "bpf", "direct-action", "obj", str(program),
                    "sec", "tc"], check=True, capture_output=True, text=True)  # fmt: skip


def detach(ns: str, device: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", device, "clsact"],
                   check=False, capture_output=True)  # fmt: skip
