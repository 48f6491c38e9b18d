"""Network namespaces for the kernel-path tests, laid out like a TURN host on EC2: the relay has one
interface and reaches both the client and the peer through a router.

    client 10.71.1.2 --- 10.71.1.1 [router] 10.71.2.1 --- 10.71.2.2 peer
                                   10.71.3.1
                                       |
                                   10.71.3.2 relay (interface "relay0": the TC program's hook)

and the same in IPv6 (fd00:71:N::2 behind fd00:71:N::1).

Names carry the test process's id, so parallel runs do not collide. Sockets are created in a namespace
by a short-lived thread that entered it with setns(2) (a socket keeps its namespace afterwards); the
senders' veths compute UDP checksums in software (`tx off`), as a NIC's would be on the wire.

bench/relay_netns.py runs its servers in the same layout (it imports this module).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

CLIENT_IP, PEER_IP, RELAY_IP = "10.71.1.2", "10.71.2.2", "10.71.3.2"
CLIENT_IP6, PEER_IP6, RELAY_IP6 = "fd00:71:1::2", "fd00:71:2::2", "fd00:71:3::2"
RELAY_INTERFACE = "relay0"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _in(ns: str, *command: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *command], check=True, capture_output=True, text=True)


class Topology:
    def __init__(self) -> None:
        tag = f"kt{os.getpid()}"
        self.client, self.peer, self.relay, self.router = (f"{tag}{n}" for n in ("c", "p", "r", "g"))
        self.names = [self.client, self.peer, self.relay, self.router]

    def create(self) -> None:
        for name in self.names:
            _ip("netns", "add", name)
            # no duplicate address detection: link-local addresses are usable at once (neighbour discovery)
            _in(name, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
        links = [
            (self.client, "cl0", CLIENT_IP, "10.71.1.1", "gc0", CLIENT_IP6, "fd00:71:1::1"),
            (self.peer, "pe0", PEER_IP, "10.71.2.1", "gp0", PEER_IP6, "fd00:71:2::1"),
            (self.relay, RELAY_INTERFACE, RELAY_IP, "10.71.3.1", "gr0", RELAY_IP6, "fd00:71:3::1"),
        ]
        _in(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns, inner, address, gateway, outer, address6, gateway6 in links:
            _ip("link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer, "netns", self.router)
            _in(ns, "ip", "addr", "add", f"{address}/24", "dev", inner)
            _in(ns, "ip", "link", "set", inner, "up")
            _in(ns, "ip", "link", "set", "lo", "up")
            _in(ns, "ip", "route", "add", "default", "via", gateway)
            _in(ns, "ethtool", "-K", inner, "tx", "off")  # full checksums on the wire, as from a real NIC
            _in(ns, "ip", "-6", "addr", "add", f"{address6}/64", "dev", inner, "nodad")
            _in(ns, "ip", "-6", "route", "add", "default", "via", gateway6)
            _in(self.router, "ip", "addr", "add", f"{gateway}/24", "dev", outer)
            _in(self.router, "ip", "-6", "addr", "add", f"{gateway6}/64", "dev", outer, "nodad")
            _in(self.router, "ip", "link", "set", outer, "up")
            _in(self.router, "ethtool", "-K", outer, "tx", "off")
        _in(self.router, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")  # global, and each interface present

    def destroy(self) -> None:
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)

    def run_in(self, ns: str, function: Callable[[], T]) -> T:
        """Call `function` on a thread that has entered namespace `ns` (for sockets, if_nametoindex, netlink)."""
        result: list[Any] = []

        def target() -> None:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
            finally:
                os.close(fd)
            try:
                result.append(("ok", function()))
            except BaseException as error:  # re-raised on the caller's thread
                result.append(("error", error))

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        kind, value = result[0]
        if kind == "error":
            raise value
        return value

    def udp(self, ns: str, address: tuple[str, int]) -> socket.socket:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(address)
            sock.settimeout(2.0)
            return sock

        return self.run_in(ns, make)


def nothing_waiting(sock: socket.socket, wait: float = 0.1) -> bool:
    """True when no datagram arrives on `sock` within `wait` seconds."""
    previous = sock.gettimeout()
    sock.settimeout(wait)
    try:
        sock.recv(65536)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(previous)
    return False


def relay_source(repo: Path, destination: Path, kernel_files: Mapping[str, bytes]) -> Path:
    """A copy of the relay's source with `kernel_files` added beside relay.server.kernel's modules, where
    the wheel ships the compiled program (loader.OBJECT_NAME) or the note saying why it has none
    (loader.MISSING_NOTE); for `python -m relay` with PYTHONPATH=destination."""
    ignore = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    shutil.copytree(repo / "relay", destination / "relay", ignore=ignore)
    for name, content in kernel_files.items():
        (destination / "relay" / "server" / "kernel" / name).write_bytes(content)
    return destination
