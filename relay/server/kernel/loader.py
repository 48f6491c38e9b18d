"""Load `tc_relay.bpf.o`, attach it to an interface's TC ingress hook and edit its maps, through the
system's libbpf with ctypes.

Why ctypes and not a binding: no maintained Python binding of libbpf installs without a compiler on
the TURN hosts (Ubuntu 22.04, Python 3.10), and the relay needs a dozen calls. Every function used
here exists in libbpf 0.5 (Ubuntu 22.04's libbpf0) and in 1.x (Debian 12's libbpf1); their symbol
versions are LIBBPF_0.0.1 to LIBBPF_0.4.0. Both ABI generations are handled: 0.x returns error
pointers from bpf_object__open_mem (read with libbpf_get_error), 1.x returns NULL and sets errno.

`KernelOffloadUnavailable` carries one sentence saying why the program cannot be used (no libbpf, no
object in the wheel, the kernel refused it and the verifier's last lines, missing capabilities), so the
relay can log it and serve from user space.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
from collections import deque
from collections.abc import Iterator
from importlib import resources
from typing import Any

from relay.server.kernel import maps

OBJECT_NAME = "tc_relay.bpf.o"
MISSING_NOTE = "tc_relay.bpf.missing"  # written into the wheel instead of the object when clang was absent
PROGRAM_NAME = "tc_relay"
TC_HANDLE = 0x7475  # "tu": our filter's handle and priority on the clsact ingress hook
TC_PRIORITY = 0x7475
_BPF_PROG_TYPE_SCHED_CLS = 3
_BPF_TC_INGRESS = 1
_BPF_TC_F_REPLACE = 1
_BPF_ANY = 0
# Where libbpf is looked for: what the linker's cache calls "bpf", then both sonames (Debian 12 and
# Ubuntu 22.04). A list, so a check against another build of libbpf can put its own path first.
LIBBPF_CANDIDATES = [ctypes.util.find_library("bpf"), "libbpf.so.1", "libbpf.so.0"]


class KernelOffloadUnavailable(RuntimeError):
    """The in-kernel path cannot be used here; the message says why and what would fix it."""


class _TcHook(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("ifindex", ctypes.c_int),
        ("attach_point", ctypes.c_int),
        ("parent", ctypes.c_uint32),
    ]


class _TcOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("prog_fd", ctypes.c_int),
        ("flags", ctypes.c_uint32),
        ("prog_id", ctypes.c_uint32),
        ("handle", ctypes.c_uint32),
        ("priority", ctypes.c_uint32),
    ]


class _TestRunOpts(ctypes.Structure):
    _fields_ = [
        ("sz", ctypes.c_size_t),
        ("data_in", ctypes.c_void_p),
        ("data_out", ctypes.c_void_p),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_void_p),
        ("ctx_out", ctypes.c_void_p),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("repeat", ctypes.c_int),
        ("duration", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
    ]


_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_log_lines: deque[str] = deque(maxlen=40)  # libbpf's and the verifier's last words, for error messages
_lib: Any = None
_print_callback: Any = None


def _libbpf() -> Any:
    """The system's libbpf, with the argument types of the functions used (loaded once)."""
    global _lib, _print_callback
    if _lib is not None:
        return _lib
    lib = None
    for candidate in filter(None, LIBBPF_CANDIDATES):
        try:
            lib = ctypes.CDLL(candidate, use_errno=True)
            break
        except OSError:
            continue
    if lib is None:
        raise KernelOffloadUnavailable(
            "libbpf is not installed (install libbpf1 on Debian 12 or libbpf0 on Ubuntu 22.04)"
        )
    vp, cint, u32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32
    signatures: dict[str, tuple[Any, list[Any]]] = {
        "bpf_object__open_mem": (vp, [vp, ctypes.c_size_t, vp]),
        "bpf_object__load": (cint, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__find_program_by_name": (vp, [vp, ctypes.c_char_p]),
        "bpf_object__find_map_by_name": (vp, [vp, ctypes.c_char_p]),
        "bpf_program__set_type": (cint, [vp, cint]),
        "bpf_program__fd": (cint, [vp]),
        "bpf_map__fd": (cint, [vp]),
        "bpf_map__key_size": (u32, [vp]),
        "bpf_map__value_size": (u32, [vp]),
        "bpf_map_update_elem": (cint, [cint, vp, vp, ctypes.c_uint64]),
        "bpf_map_lookup_elem": (cint, [cint, vp, vp]),
        "bpf_map_delete_elem": (cint, [cint, vp]),
        "bpf_map_get_next_key": (cint, [cint, vp, vp]),
        "bpf_tc_hook_create": (cint, [ctypes.POINTER(_TcHook)]),
        "bpf_tc_hook_destroy": (cint, [ctypes.POINTER(_TcHook)]),
        "bpf_tc_attach": (cint, [ctypes.POINTER(_TcHook), ctypes.POINTER(_TcOpts)]),
        "bpf_tc_detach": (cint, [ctypes.POINTER(_TcHook), ctypes.POINTER(_TcOpts)]),
        "bpf_tc_query": (cint, [ctypes.POINTER(_TcHook), ctypes.POINTER(_TcOpts)]),
        "bpf_prog_test_run_opts": (cint, [cint, ctypes.POINTER(_TestRunOpts)]),
        "libbpf_get_error": (ctypes.c_long, [vp]),
        "libbpf_set_print": (vp, [_PRINT_FN]),
        "libbpf_strerror": (cint, [cint, ctypes.c_char_p, ctypes.c_size_t]),
    }
    for name, (restype, argtypes) in signatures.items():
        try:
            function = getattr(lib, name)
        except AttributeError:
            raise KernelOffloadUnavailable(
                f"the installed libbpf has no {name} (libbpf 0.5 or newer is needed)"
            ) from None
        function.restype = restype
        function.argtypes = argtypes
    libc = ctypes.CDLL(None)
    vsnprintf = libc.vsnprintf
    vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

    def record(level: int, fmt: bytes, args: int) -> int:  # va_list arrives as a pointer on x86-64 and arm64
        buffer = ctypes.create_string_buffer(1024)
        vsnprintf(buffer, len(buffer), fmt, args)
        for line in buffer.value.decode(errors="replace").splitlines():
            if line.strip():
                _log_lines.append(line.rstrip())
        return 0

    _print_callback = _PRINT_FN(record)
    lib.libbpf_set_print(_print_callback)
    _lib = lib
    return lib


def _errno(result: int) -> int:
    """The error of a failed libbpf call: 1.x returns -errno (and sets errno), 0.x's map calls return -1
    and set errno."""
    if result < -1:
        return -result
    return ctypes.get_errno() or errno.EPERM


def _strerror(code: int) -> str:
    """errno text, or libbpf's own for its codes from 4000 up (LIBBPF_ERRNO__*: bad ELF, wrong kernel...)."""
    if code >= 4000 and _lib is not None:
        buffer = ctypes.create_string_buffer(256)
        if _lib.libbpf_strerror(code, buffer, len(buffer)) == 0:
            return buffer.value.decode(errors="replace")
    return os.strerror(code)


def _last_log(lines: int = 6) -> str:
    tail = [line for line in _log_lines if line.strip()][-lines:]
    return " | ".join(tail) if tail else "libbpf printed nothing"


def packaged_object() -> bytes:
    """The compiled program shipped in the wheel, or KernelOffloadUnavailable saying why there is none."""
    folder = resources.files(__package__)
    obj = folder.joinpath(OBJECT_NAME)
    if obj.is_file():
        return obj.read_bytes()
    note = folder.joinpath(MISSING_NOTE)
    if note.is_file():
        raise KernelOffloadUnavailable(note.read_text().strip())
    raise KernelOffloadUnavailable(
        f"{OBJECT_NAME} is not in the installed package: it is compiled when the wheel is built "
        "(python -m build relay), a source checkout has none"
    )


class TcRelay:
    """The loaded program and its maps. `close()` detaches it (if attached) and frees everything."""

    def __init__(self, obj: bytes | None = None) -> None:
        lib = _libbpf()
        self._lib = lib
        data = packaged_object() if obj is None else obj
        self._buffer = ctypes.create_string_buffer(data, len(data))  # libbpf may keep pointers into it
        _log_lines.clear()
        handle = lib.bpf_object__open_mem(self._buffer, len(data), None)
        error = -lib.libbpf_get_error(handle) if handle else ctypes.get_errno() or errno.EINVAL
        if error:
            raise KernelOffloadUnavailable(f"libbpf could not open the BPF object ({_strerror(error)}): {_last_log()}")
        self._obj: int | None = handle
        self._hooks: list[_TcHook] = []
        try:
            program = lib.bpf_object__find_program_by_name(handle, PROGRAM_NAME.encode())
            if not program:
                raise KernelOffloadUnavailable(f"the BPF object has no program {PROGRAM_NAME!r}")
            lib.bpf_program__set_type(program, _BPF_PROG_TYPE_SCHED_CLS)
            self._map_handles = {
                name: lib.bpf_object__find_map_by_name(handle, name.encode()) for name in maps.MAP_LAYOUTS
            }
            for name, (key_size, value_size) in maps.MAP_LAYOUTS.items():
                found = self._map_handles[name]
                if not found:
                    raise KernelOffloadUnavailable(f"the BPF object has no map {name!r}: object and maps.py disagree")
                sizes = (lib.bpf_map__key_size(found), lib.bpf_map__value_size(found))
                if sizes != (key_size, value_size):
                    raise KernelOffloadUnavailable(
                        f"map {name!r} has key/value sizes {sizes} in the object and {(key_size, value_size)} in "
                        "maps.py: rebuild the wheel from one commit"
                    )
            result = lib.bpf_object__load(handle)
            if result:
                code = _errno(result)
                if code == errno.EPERM:  # the verifier never ran: its log would only be libbpf's relocations
                    raise KernelOffloadUnavailable(
                        "the kernel refused to load the BPF program (Operation not permitted): the relay needs "
                        "CAP_BPF and CAP_NET_ADMIN (AmbientCapabilities= in its systemd unit)"
                    )
                raise KernelOffloadUnavailable(f"the kernel refused the BPF program ({_strerror(code)}): {_last_log()}")
            self.program_fd = lib.bpf_program__fd(program)
            self.map_fds = {name: lib.bpf_map__fd(found) for name, found in self._map_handles.items()}
        except BaseException:
            self.close()
            raise
        self.cpus = os.cpu_count() or 1
        possible = _possible_cpus()
        if possible:
            self.cpus = possible

    # --- lifecycle ---------------------------------------------------------------------------------

    def attach(self, interface: str | int) -> None:
        """Attach to the TC ingress hook of `interface` (name or index), creating clsact when absent and
        replacing an earlier copy of this filter (a restarted relay)."""
        hook = _hook(interface)
        result = self._lib.bpf_tc_hook_create(ctypes.byref(hook))
        if result and _errno(result) != errno.EEXIST:
            raise KernelOffloadUnavailable(
                f"cannot add a clsact qdisc to interface {interface} ({os.strerror(_errno(result))})"
            )
        opts = _TcOpts(
            sz=ctypes.sizeof(_TcOpts),
            prog_fd=self.program_fd,
            flags=_BPF_TC_F_REPLACE,
            handle=TC_HANDLE,
            priority=TC_PRIORITY,
        )
        result = self._lib.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts))
        if result:
            raise KernelOffloadUnavailable(
                f"cannot attach the TC program to interface {interface} ({os.strerror(_errno(result))}): {_last_log()}"
            )
        self._hooks.append(hook)

    def detach(self) -> None:
        """Remove our filter from every hook it was attached to (the clsact qdisc stays: others may use it)."""
        for hook in self._hooks:
            opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), handle=TC_HANDLE, priority=TC_PRIORITY)
            self._lib.bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts))
        self._hooks.clear()

    def close(self) -> None:
        self.detach()
        if self._obj:
            self._lib.bpf_object__close(self._obj)
            self._obj = None

    def __enter__(self) -> TcRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- maps --------------------------------------------------------------------------------------

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

    # --- testing -----------------------------------------------------------------------------------

    def test_run(self, packet: bytes) -> tuple[int, bytes]:
        """Run the program once on `packet` (an Ethernet frame) with BPF_PROG_TEST_RUN: (TC action,
        the frame as the program left it). Nothing is sent anywhere."""
        data_in = ctypes.create_string_buffer(packet, len(packet))
        data_out = ctypes.create_string_buffer(len(packet) + 256)
        opts = _TestRunOpts(
            sz=ctypes.sizeof(_TestRunOpts),
            data_in=ctypes.cast(data_in, ctypes.c_void_p),
            data_out=ctypes.cast(data_out, ctypes.c_void_p),
            data_size_in=len(packet),
            data_size_out=len(data_out),
            repeat=1,
        )
        result = self._lib.bpf_prog_test_run_opts(self.program_fd, ctypes.byref(opts))
        if result:
            code = _errno(result)
            raise OSError(code, f"BPF_PROG_TEST_RUN failed: {os.strerror(code)}")
        return opts.retval, data_out.raw[: opts.data_size_out]


def _hook(interface: str | int) -> _TcHook:
    ifindex = interface if isinstance(interface, int) else socket.if_nametoindex(interface)
    return _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex, attach_point=_BPF_TC_INGRESS)


def attached_program(interface: str | int) -> int | None:
    """The id of the program in our filter slot on `interface`'s ingress hook, or None."""
    lib = _libbpf()
    hook = _hook(interface)
    opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), handle=TC_HANDLE, priority=TC_PRIORITY)
    if lib.bpf_tc_query(ctypes.byref(hook), ctypes.byref(opts)):
        return None
    return opts.prog_id


def detach_interface(interface: str | int) -> bool:
    """Remove our filter from `interface` whoever attached it: an attached filter keeps the program and
    its maps alive after the relay exits, so a relay that died would otherwise go on forwarding for
    allocations nobody owns (the unit's ExecStopPost runs this). True if there was one."""
    lib = _libbpf()
    hook = _hook(interface)
    opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), handle=TC_HANDLE, priority=TC_PRIORITY)
    result = lib.bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts))
    if result and _errno(result) != errno.ENOENT:
        code = _errno(result)
        raise OSError(code, f"cannot detach the TC program from {interface}: {os.strerror(code)}")
    return result == 0


def _possible_cpus() -> int:
    """Per-CPU map values have one slot per *possible* CPU (not online, not usable)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        return 0
    total = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total
