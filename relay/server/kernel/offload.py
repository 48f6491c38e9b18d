"""Switching the in-kernel path on for a host: `start(mode, listening_ip, relay_ip)` is what the relay's
supervisor calls once, before it starts its workers (they are passed the program's map descriptors).

    off   nothing is loaded
    auto  load and attach when this host can; otherwise one log line says why and the relay serves
          everything from user space
    on    the same, but a host that cannot is a startup error naming the reason

The program goes on the interface that holds the listening address, which must also hold the relay
address (one interface, as on an EC2 instance: clients and peers arrive and leave through it). The
interface's MTU, at most INTERNET_MTU, bounds what the program sends; both are read with ioctls from the
calling thread's network namespace, so a relay in a container or a test namespace sees its own interfaces.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from relay.config.model import KERNEL_OFFLOAD_MODES, RelayConfig
from relay.server.kernel.loader import KernelOffloadUnavailable, TcRelay
from relay.server.kernel.mirror import KernelMirror

MODES = KERNEL_OFFLOAD_MODES
# the program's per-path counters (maps.STAT_NAMES) by the metrics' direction label
_DIRECTIONS = {
    "client_to_peer": ("channel_to_peer", "send_to_peer"),
    "peer_to_client": ("channel_to_client", "data_to_client"),
}
# The largest IPv4 packet the program sends, whatever the interface allows. An EC2 interface has MTU 9001,
# but traffic through an internet gateway is limited to 1500 and dropped above it with DF set (which the
# program sets, as the kernel does for UDP); a socket learns that from ICMP (path MTU discovery), the program
# bypasses that cache. Larger results go to user space, whose socket follows it.
INTERNET_MTU = 1500
_SIOCGIFADDR = 0x8915
_SIOCGIFMTU = 0x8921
_log = logging.getLogger("relay.kernel")


class KernelOffloadRequired(RuntimeError):
    """`on` was asked for and this host cannot do it; the message says why."""


@dataclass
class Offload:
    program: TcRelay
    interface: str
    mtu: int

    def mirror(self) -> KernelMirror:
        """A mirror over this process's handle (a worker builds its own over `MapSet.from_fds`)."""
        return KernelMirror(self.program)

    @property
    def map_fds(self) -> dict[str, int]:
        """The descriptors a worker inherits (pass_fds) and opens with `MapSet.from_fds`."""
        return dict(self.program.map_fds)

    def with_totals(self, snapshot: Mapping[str, int]) -> dict[str, int]:
        """`snapshot` (relay.ops.metrics field names) plus what the kernel forwarded since load: into
        `offloaded_*` and, since those packets were relayed too, into `packets_*` / `bytes_*`."""
        result = dict(snapshot)
        totals = self.program.totals()
        for direction, paths in _DIRECTIONS.items():
            packets = sum(totals[path].packets for path in paths)
            octets = sum(totals[path].bytes for path in paths)
            for prefix, value in (("packets", packets), ("bytes", octets)):
                result[f"offloaded_{prefix}_{direction}"] = result.get(f"offloaded_{prefix}_{direction}", 0) + value
                result[f"{prefix}_{direction}"] = result.get(f"{prefix}_{direction}", 0) + value
        return result

    def stop(self) -> None:
        """Detach and free the program: from here on every packet goes to user space."""
        self.program.close()


# struct ifreq: the name, then a 24-byte union (a sockaddr for SIOCGIFADDR, an int for SIOCGIFMTU)
def interface_of(address: str) -> str | None:
    """The interface whose (primary) IPv4 address is `address`, in this thread's network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            request = struct.pack("16s24x", name.encode()[:15])
            try:
                reply = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on this interface
            if socket.inet_ntoa(reply[20:24]) == address:
                return name
    return None


def interface_mtu(name: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        reply = fcntl.ioctl(probe.fileno(), _SIOCGIFMTU, struct.pack("16s24x", name.encode()[:15]))
    return struct.unpack_from("=i", reply, 16)[0]


def _prepare(listening_ip: str, relay_ip: str, obj: bytes | None) -> Offload:
    if not listening_ip:
        raise KernelOffloadUnavailable("the relay has no UDP listener on an IPv4 address")
    if ipaddress.ip_address(listening_ip).is_loopback:
        raise KernelOffloadUnavailable(
            f"the listening address {listening_ip} is a loopback address (the in-kernel path is for the "
            "interface clients reach; it is never attached to lo, which every local program shares)"
        )
    interface = interface_of(listening_ip)
    if interface is None:
        raise KernelOffloadUnavailable(
            f"no interface holds the listening address {listening_ip} as its IPv4 address "
            "(the in-kernel path needs listening-ip set to the host's own IPv4 address)"
        )
    if interface_of(relay_ip) != interface:
        raise KernelOffloadUnavailable(
            f"the relay address {relay_ip} is not on {interface}, the listening address's interface "
            "(the in-kernel path sends through the interface a packet came in on)"
        )
    mtu = min(interface_mtu(interface), INTERNET_MTU)
    program = TcRelay(obj)
    try:
        program.attach(interface)
        program.configure(enabled=True, mtu=mtu)
    except BaseException:
        program.close()
        raise
    return Offload(program, interface, mtu)


def start(mode: str, listening_ip: str, relay_ip: str, *, obj: bytes | None = None) -> Offload | None:
    """Load and attach per `mode` (see the module docstring); None means user space serves everything."""
    if mode not in MODES:
        raise ValueError(f"kernel-offload is {mode!r}; use one of {', '.join(MODES)}")
    if mode == "off":
        return None
    try:
        offload = _prepare(listening_ip, relay_ip, obj)
    except KernelOffloadUnavailable as error:
        if mode == "on":
            raise KernelOffloadRequired(f"kernel-offload is on but cannot be used: {error}") from None
        _log.warning("kernel offload unavailable, serving from user space: %s", error)
        return None
    _log.info(
        "kernel offload on %s (MTU %d): UDP channels and indications forwarded in the kernel",
        offload.interface,
        offload.mtu,
    )
    return offload


def start_for(config: RelayConfig, *, obj: bytes | None = None) -> Offload | None:
    """`start` with a RelayConfig's kernel-offload, first IPv4 UDP listener and relay-ip."""
    listening_ip = next(
        (x.host for x in config.listeners if x.transport == "udp" and "." in x.host),
        "",
    )
    return start(config.kernel_offload, listening_ip, config.relay_ip, obj=obj)
