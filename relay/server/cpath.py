"""The compiled UDP packet path (`relay.server._fastpath`, C) beside the pure-Python one: choosing it, the
data plane over its `Engine`, and `CMirror`, which keeps the Engine's entries equal to what each allocation
allows through the same hooks as the in-kernel path (relay.server.kernel.KernelMirror).

Which path a process uses: `RelayServer(packet_path=...)`, else the environment variable RELAY_PACKET_PATH:
    auto      (default) the compiled path when the extension imports; otherwise one log line says why and
              the pure-Python path (relay.server.dataplane, udp, relays) serves
    compiled  the compiled path or a start-up error naming why not
    python    the pure-Python path

The Engine forwards only what an installed entry allows and hands everything else back to the Python
handlers unchanged (STUN requests, unknown channels or peers, odd lengths, DONT-FRAGMENT, IPv6): the control
plane stays the only authority. Entries exist for IPv4 clients over UDP and plain TCP (relay.server.cstream)
with an IPv4 relayed address; TLS clients and allocations under `max-bps` stay on the Python path (their
token buckets are Python's, so CMirror installs nothing for them and the Engine hands their datagrams back).

Counting is as on the Python path: each `Engine.poll` returns the packets and payload bytes it relayed per
direction, which `CDataPlane` adds to the process's RelayStats (turn_packets_total, turn_bytes_total);
`Engine.counters` reads one entry's own packets and bytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from relay.server.dataplane import ROUNDS, Handler
from relay.server.forwarding import report_internal_error
from relay.server.kernel.mirror import KernelMirror
from relay.stun.constants import FAMILY_IPV4
from relay.turn.grants import family_of

ENV = "RELAY_PACKET_PATH"
MODES = ("auto", "compiled", "python")
MISSING_NOTE = Path(__file__).with_name("_fastpath.missing")  # written by relay/setup.py's build_ext
_log = logging.getLogger("relay.server")
_logged = [False]


class CompiledPathRequired(RuntimeError):
    """The compiled path was asked for and cannot be used; the message says why."""


def _why_not() -> str:
    if MISSING_NOTE.is_file():
        return MISSING_NOTE.read_text().strip()
    try:
        import relay.server._fastpath  # noqa: F401
    except ImportError as error:
        return f"relay.server._fastpath does not import ({error})"
    return ""


def load(mode: str | None = None) -> ModuleType | None:
    """The extension module per `mode` (or RELAY_PACKET_PATH), or None for the pure-Python path."""
    mode = (mode or os.environ.get(ENV) or "auto").lower()
    if mode not in MODES:
        raise ValueError(f"{ENV} (the packet path) is {mode!r}; use one of {', '.join(MODES)}")
    if mode == "python":
        return None
    why = _why_not()
    if not why:
        from relay.server import _fastpath

        return _fastpath
    if mode == "compiled":
        raise CompiledPathRequired(f"the compiled packet path was required but cannot be used: {why}")
    if not _logged[0]:
        _logged[0] = True
        _log.warning("compiled packet path unavailable, the pure-Python path serves: %s", why)
    return None


class CDataPlane:
    """`relay.server.dataplane.EpollDataPlane`'s interface over an Engine, plus `add_listener`/`add_relay`
    for the sockets whose datagrams the Engine reads itself."""

    compiled = True

    def __init__(self, loop: asyncio.AbstractEventLoop, stats: Any, module: ModuleType) -> None:
        self._loop = loop
        self._stats = stats
        self.engine = module.Engine()
        self.module = module
        loop.add_reader(self.engine.fileno(), self._on_ready)

    def add(self, fd: int, handler: Handler) -> None:
        self.engine.add(fd, handler)

    def add_listener(self, fd: int, callback: Any) -> None:
        """An IPv4 UDP listener: callback(data, address) gets what the Engine does not forward."""
        self.engine.add_listener(fd, callback)

    def add_relay(self, fd: int, callback: Any) -> None:
        """An IPv4 relay socket of a UDP client: callback(data, address) as for listeners."""
        self.engine.add_relay(fd, callback)

    def remove(self, fd: int) -> None:
        self.engine.remove(fd)

    def closing(self, fd: int) -> None:
        self.engine.closing(fd)

    def __len__(self) -> int:
        return int(self.engine.sizes()[0])

    def close(self) -> None:
        fd = self.engine.fileno()
        if fd >= 0:
            self._loop.remove_reader(fd)
            self.engine.close()

    def _on_ready(self) -> None:
        try:
            up_packets, up_bytes, down_packets, down_bytes = self.engine.poll(ROUNDS)
        except Exception:  # a bug costs this round (epoll reports the rest again), never the data plane
            report_internal_error("ready socket")
            return
        stats = self._stats
        if up_packets:
            stats.packets_client_to_peer += up_packets
            stats.bytes_client_to_peer += up_bytes
        if down_packets:
            stats.packets_peer_to_client += down_packets
            stats.bytes_peer_to_client += down_bytes


class _EngineEntries:
    """`KernelMirror`'s Program over an Engine: a slot is ("channel", listener fd, client, number, relay fd,
    peer) or ("permission", listener fd, client, relay fd, peer host); both directions go together."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def put(self, slot: tuple[Any, ...], value: bytes) -> None:
        getattr(self.engine, slot[0])(True, *slot[1:])

    def remove(self, slot: tuple[Any, ...]) -> bool:
        return bool(getattr(self.engine, slot[0])(False, *slot[1:]))


class CMirror(KernelMirror):
    """The Engine's entries follow each allocation's `permissions` and live channels (what the Python path
    reads), synced by the control plane after each change and forgotten when the allocation ends; data never
    calls it. Same diffing as the kernel's mirror: unchanged entries keep their counters."""

    def __init__(self, plane: CDataPlane) -> None:
        super().__init__(_EngineEntries(plane.engine))  # type: ignore[arg-type]

    def reason(self, allocation: Any) -> str | None:
        if allocation.closed:
            return "the allocation has ended"
        if not getattr(allocation.origin, "compiled", False):
            return "the client does not use a compiled UDP listener or TCP connection (TLS, or an IPv6 listener)"
        if family_of(str(allocation.client[0])) != FAMILY_IPV4:
            return "the client's address is IPv6 (a PROXY header or an IPv6 listener)"
        if allocation.bucket_from_client is not None or allocation.bucket_to_client is not None:
            return "a bandwidth limit applies (max-bps is policed on the Python path)"
        endpoint = allocation.relays.get(FAMILY_IPV4)
        if endpoint is None or not getattr(endpoint, "compiled", False):
            return "the allocation has no IPv4 relayed address read by the compiled path"
        return None

    def desired(self, allocation: Any) -> dict[Any, bytes]:
        if self.reason(allocation) is not None:
            return {}
        origin = allocation.origin
        listener = origin.fd if origin.stream else origin.sock.fileno()  # a TCP connection, or the UDP listener
        relay = allocation.relays[FAMILY_IPV4].sock.fileno()
        client = tuple(allocation.client[:2])
        entries: dict[Any, bytes] = {}
        for host in allocation.permissions:
            if ":" not in host:
                entries[("permission", listener, client, relay, host)] = b""
        for channel in allocation.live_channels():
            peer = channel.peer
            if ":" not in peer[0] and peer[0] in allocation.permissions:
                entries[("channel", listener, client, channel.number, relay, tuple(peer[:2]))] = b""
        return entries


class Mirrors:
    """Several mirrors kept in step together (the in-kernel path and the compiled one); one failing does
    not keep the others from their update, and the first failure is raised after all ran."""

    def __init__(self, *mirrors: Any) -> None:
        self.mirrors = [mirror for mirror in mirrors if mirror is not None]

    def sync(self, allocation: Any) -> None:
        self._each("sync", allocation)

    def forget(self, allocation: Any) -> None:
        self._each("forget", allocation)

    def _each(self, method: str, allocation: Any) -> None:
        failure: Exception | None = None
        for mirror in self.mirrors:
            try:
                getattr(mirror, method)(allocation)
            except Exception as error:
                failure = failure or error
        if failure is not None:
            raise failure
