"""Keep the TC program's maps equal to what each allocation allows: the bridge between `TurnCore` (the
only authority) and the kernel (which only forwards).

`sync(allocation)` derives the entries an allocation should have from the same dictionaries the
userspace packet path reads (`permissions`, the live channels), compares them with what this mirror
installed for it, and applies the difference (the record of what was installed is kept pickled: one bytes
object per allocation, a third of the dictionary of tuples it holds, read back only by `sync`/`forget`);
`forget(allocation)` removes everything. The control plane calls `sync` after anything that changes
those dictionaries (CreatePermission, ChannelBind, the expiry tick, a dropped family, revalidated peers)
and `forget` when the allocation ends; data packets never call it, so nothing the kernel forwards
refreshes anything (RFC 8656). Because the entries follow the live channels (a channel is live only while
its peer is permitted) and `permissions` (expired ones are deleted by `tick`), the kernel can never
forward what the userspace path would not.

An allocation stays entirely in user space when the kernel cannot do the same job: TCP/TLS clients
(ChannelData padding and stream framing), a listener bound to a wildcard address (the program needs the
exact 5-tuple), no relayed address of the client's family, and allocations under a bandwidth limit
(`max-bps` is policed by the userspace token buckets, never in the kernel). `reason(allocation)` says
which. Peers of the other family than the client's stay in user space too (no translation in the kernel),
and so do peers at the relay's own listening or relayed address (two clients of this relay talking to
each other: the stack delivers those datagrams over lo, while the program could only send them out of
the interface, where they would be lost).
"""

from __future__ import annotations

import ipaddress
import pickle
from collections.abc import Callable
from typing import Any, Protocol

from relay.server.kernel import maps

_FAMILY = {4: 1, 6: 2}  # IP version -> the allocation's relay family key (FAMILY_IPV4, FAMILY_IPV6)

Entries = dict[maps.Slot, bytes]  # (map name, key) -> value as installed


class Program(Protocol):
    def put(self, slot: maps.Slot, value: bytes) -> None: ...
    def remove(self, slot: maps.Slot) -> bool: ...


def socket_address(endpoint: Any) -> maps.Endpoint:
    """The address a relay socket is bound to (the private one: the program sees packets before NAT)."""
    return endpoint.sock.getsockname()[:2]


def _version(host: str) -> int:
    try:
        return ipaddress.ip_address(host).version
    except ValueError:
        return 0


class KernelMirror:
    def __init__(self, program: Program, *, relay_address: Callable[[Any], maps.Endpoint] = socket_address) -> None:
        self.program = program
        self.relay_address = relay_address
        self._installed: dict[int, bytes] = {}  # allocation.seq -> pickled Entries

    def __len__(self) -> int:
        """Allocations with at least one entry in the kernel."""
        return len(self._installed)

    def reason(self, allocation: Any) -> str | None:
        """Why `allocation` is served in user space only, or None when the kernel can forward for it
        (for its peers of the client's address family; others stay in user space)."""
        if allocation.closed:
            return "the allocation has ended"
        if allocation.origin.transport != "udp":
            return f"the client uses {allocation.origin.transport.upper()}"
        version = _version(allocation.client[0])
        server = allocation.origin.local[0]
        if _version(server) != version or ipaddress.ip_address(server).is_unspecified:
            return f"the listener is not bound to one IPv{version} address"
        if allocation.bucket_from_client is not None or allocation.bucket_to_client is not None:
            return "a bandwidth limit applies (max-bps is policed in user space)"
        if _FAMILY[version] not in allocation.relays:
            return f"the allocation has no IPv{version} relayed address (the kernel does not translate families)"
        return None

    def desired(self, allocation: Any) -> Entries:
        """The entries the kernel should hold for `allocation` right now."""
        if self.reason(allocation) is not None:
            return {}
        client, server = allocation.client[:2], allocation.origin.local[:2]
        version = _version(client[0])
        relay = self.relay_address(allocation.relays[_FAMILY[version]])
        own = {server[0], relay[0]}  # this host: reached over lo, never out of the interface
        entries: Entries = {}
        for host in allocation.permissions:
            if _version(host) == version and host not in own:
                entries[maps.permission_key(client, server, host)] = maps.out_value(relay)
                entries[maps.peer_key(relay, host)] = maps.peer_value(client, server)
        for channel in allocation.live_channels():
            peer, number = channel.peer, channel.number
            if _version(peer[0]) == version and peer[0] in allocation.permissions and peer[0] not in own:
                entries[maps.channel_key(client, server, number)] = maps.out_value(relay, peer)
                entries[maps.peer_key(relay, peer[0], peer[1])] = maps.peer_value(client, server, number)
        return entries

    def sync(self, allocation: Any) -> None:
        """Make the kernel's entries for `allocation` match `desired`: stale ones go first, so a
        withdrawn permission stops forwarding before anything else changes. An unchanged entry is left
        alone (rewriting it would zero its counters). If the kernel refuses an entry the error propagates
        and that entry is simply not there: its packets go to user space."""
        installed = _entries(self._installed.pop(allocation.seq, None))
        wanted = self.desired(allocation)
        try:
            for slot in installed.keys() - wanted.keys():
                self.program.remove(slot)
                del installed[slot]
            for slot, value in wanted.items():
                if installed.get(slot) != value:
                    self.program.put(slot, value)
                    installed[slot] = value
        finally:  # a failed update (a full map) leaves the record equal to what the kernel holds
            if installed:
                self._installed[allocation.seq] = _record(installed)

    def forget(self, allocation: Any) -> None:
        """Remove every entry of `allocation`; one refusal does not leave the others forwarding."""
        failure: OSError | None = None
        for slot in _entries(self._installed.pop(allocation.seq, None)):
            try:
                self.program.remove(slot)
            except OSError as error:
                failure = error
        if failure is not None:
            raise failure

    def installed(self, allocation: Any) -> Entries:
        return _entries(self._installed.get(allocation.seq))


def _record(entries: Entries) -> bytes:
    """`entries` pickled, in a bytes object of its own size. pickle writes into a 4 KiB buffer and shrinks it,
    which leaves the record in the C heap where that buffer was: hundreds of them kept each pin a hole of
    ~3.7 KiB behind it (measured: +850 KiB of heap at 400 uclient clients with offload on). A copy of a few
    hundred bytes comes from Python's small-object allocator, and the buffer is freed whole."""
    return memoryview(pickle.dumps(entries, pickle.HIGHEST_PROTOCOL)).tobytes()


def _entries(record: bytes | None) -> Entries:
    """A record of installed entries back as a dictionary (our own pickle, never data from outside)."""
    return pickle.loads(record) if record else {}
