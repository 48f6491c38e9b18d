"""Operations on the program's maps through their file descriptors: what a worker process needs, which
inherits the descriptors from the process that loaded the program (`MapSet.from_fds`) and never loads
anything itself. `TcRelay` (loader.py) is a MapSet that also owns the program."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from typing import Any

from relay.server.kernel import maps
from relay.server.kernel.libbpf import _errno, _libbpf, _possible_cpus

_BPF_ANY = 0


class MapSet:
    def __init__(self, map_fds: dict[str, int], lib: Any = None) -> None:
        self._lib = lib if lib is not None else _libbpf()
        self.map_fds = dict(map_fds)
        self.cpus = _possible_cpus() or os.cpu_count() or 1

    @classmethod
    def from_fds(cls, map_fds: dict[str, int]) -> MapSet:
        """The maps whose descriptors this process inherited (pass_fds), by name; every name is needed."""
        missing = set(maps.MAP_LAYOUTS) - set(map_fds)
        if missing:
            raise ValueError(f"map descriptors missing for {', '.join(sorted(missing))}")
        return cls(map_fds)

    def configure(self, *, enabled: bool, mtu: int, ifindex: int = 0) -> None:
        """Turn forwarding on or off; `mtu` bounds the IP packets it sends, `ifindex` (0: the one a
        packet came in on) is where they leave."""
        self.update("config", maps.INDEX.pack(0), maps.CONFIG.pack(int(enabled), ifindex, mtu, 0))

    def add_channel(
        self, client: maps.Endpoint, server: maps.Endpoint, channel: int, relay: maps.Endpoint, peer: maps.Endpoint
    ) -> None:
        """Both directions of a bound channel whose peer is permitted."""
        self.put(maps.channel_key(client, server, channel), maps.out_value(relay, peer))
        self.put(maps.peer_key(relay, peer[0], peer[1]), maps.peer_value(client, server, channel))

    def remove_channel(
        self, client: maps.Endpoint, server: maps.Endpoint, channel: int, relay: maps.Endpoint, peer: maps.Endpoint
    ) -> None:
        self.remove(maps.channel_key(client, server, channel))
        self.remove(maps.peer_key(relay, peer[0], peer[1]))

    def add_permission(
        self, client: maps.Endpoint, server: maps.Endpoint, relay: maps.Endpoint, peer_host: str
    ) -> None:
        """Send indications to, and Data indications from, any port of a permitted peer."""
        self.put(maps.permission_key(client, server, peer_host), maps.out_value(relay))
        self.put(maps.peer_key(relay, peer_host), maps.peer_value(client, server))

    def remove_permission(
        self, client: maps.Endpoint, server: maps.Endpoint, relay: maps.Endpoint, peer_host: str
    ) -> None:
        self.remove(maps.permission_key(client, server, peer_host))
        self.remove(maps.peer_key(relay, peer_host))

    def channel_counters(self, client: maps.Endpoint, server: maps.Endpoint, channel: int) -> maps.Counters | None:
        return self.counters(maps.channel_key(client, server, channel))

    def permission_counters(self, client: maps.Endpoint, server: maps.Endpoint, peer_host: str) -> maps.Counters | None:
        return self.counters(maps.permission_key(client, server, peer_host))

    def peer_counters(self, relay: maps.Endpoint, peer_host: str, peer_port: int = 0) -> maps.Counters | None:
        return self.counters(maps.peer_key(relay, peer_host, peer_port))

    def put(self, slot: maps.Slot, value: bytes) -> None:
        self.update(slot[0], slot[1], value)

    def remove(self, slot: maps.Slot) -> bool:
        return self.delete(slot[0], slot[1])

    def counters(self, slot: maps.Slot) -> maps.Counters | None:
        """An entry's packets and payload bytes so far, or None when it is not installed."""
        value = self.lookup(slot[0], slot[1], maps.MAP_LAYOUTS[slot[0]][1])
        return None if value is None else maps.counters(value)

    def totals(self) -> dict[str, maps.Counters]:
        """Packets and payload bytes forwarded per path since load, summed over CPUs."""
        slot = (maps.COUNTER.size + 7) & ~7
        result = {}
        for index, name in enumerate(maps.STAT_NAMES):
            raw = self.lookup("stats", maps.INDEX.pack(index), slot * self.cpus)
            packets = octets = 0
            if raw is not None:
                for cpu in range(self.cpus):
                    p, b = maps.COUNTER.unpack_from(raw, cpu * slot)
                    packets += p
                    octets += b
            result[name] = maps.Counters(packets, octets)
        return result

    def clear(self) -> None:
        """Empty every entry map and zero the counters (a restarted relay starts from nothing installed)."""
        for name in maps.ENTRY_MAPS:
            for key in list(self.keys(name)):
                self.delete(name, key)
        slot = (maps.COUNTER.size + 7) & ~7
        for index in range(len(maps.STAT_NAMES)):
            self.update("stats", maps.INDEX.pack(index), bytes(slot * self.cpus))

    def purge_relay_ports(self, low: int, high: int) -> int:
        """Remove every entry of an allocation whose relayed port is within low-high: a dead worker's
        (each worker has its own slice of the relay port range), whose allocations nobody owns any more
        and whose entries would otherwise go on forwarding. The number of entries removed."""
        removed = 0
        for name in maps.ENTRY_MAPS:
            value_size = maps.MAP_LAYOUTS[name][1]
            for key in list(self.keys(name)):
                if name.startswith("peers"):
                    port = maps.relay_port_of_peer_key(key)
                else:
                    value = self.lookup(name, key, value_size)
                    if value is None:
                        continue
                    port = maps.relay_port_of_out_value(value)
                if low <= port <= high and self.delete(name, key):
                    removed += 1
        return removed

    def keys(self, name: str) -> Iterator[bytes]:
        """Every key of map `name` (a snapshot walk; entries added meanwhile may be missed)."""
        size = maps.MAP_LAYOUTS[name][0]
        fd = self.map_fds[name]
        current = None
        following = ctypes.create_string_buffer(size)
        while self._lib.bpf_map_get_next_key(fd, current, following) == 0:
            key = following.raw
            yield key
            current = ctypes.create_string_buffer(key, size)

    def update(self, name: str, key: bytes, value: bytes) -> None:
        result = self._lib.bpf_map_update_elem(self.map_fds[name], key, value, _BPF_ANY)
        if result:
            code = _errno(result)
            raise OSError(code, f"bpf map {name!r} update failed: {os.strerror(code)}")

    def delete(self, name: str, key: bytes) -> bool:
        result = self._lib.bpf_map_delete_elem(self.map_fds[name], key)
        if result and _errno(result) != errno.ENOENT:
            code = _errno(result)
            raise OSError(code, f"bpf map {name!r} delete failed: {os.strerror(code)}")
        return result == 0

    def lookup(self, name: str, key: bytes, size: int) -> bytes | None:
        value = ctypes.create_string_buffer(size)
        result = self._lib.bpf_map_lookup_elem(self.map_fds[name], key, value)
        if result:
            code = _errno(result)
            if code == errno.ENOENT:
                return None
            raise OSError(code, f"bpf map {name!r} lookup failed: {os.strerror(code)}")
        return value.raw
