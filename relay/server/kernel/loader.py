"""Load `tc_relay.bpf.o`, attach it to an interface's TC ingress hook and detach it, through the
system's libbpf (libbpf.py). `TcRelay` is the loaded program and, as a `MapSet`, its maps.

`KernelOffloadUnavailable` carries one sentence saying why the program cannot be used (no libbpf, no
object in the wheel, the kernel refused it and the verifier's last lines, missing capabilities), so the
relay can log it and serve from user space.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
from importlib import resources

from relay.server.kernel import maps
from relay.server.kernel.libbpf import (
    KernelOffloadUnavailable,
    _errno,
    _last_log,
    _libbpf,
    _log_lines,
    _strerror,
    _TcHook,
    _TcOpts,
    _TestRunOpts,
)
from relay.server.kernel.mapset import MapSet

__all__ = ["KernelOffloadUnavailable", "MapSet", "TcRelay", "attached_program", "detach_interface", "packaged_object"]

OBJECT_NAME = "tc_relay.bpf.o"
MISSING_NOTE = "tc_relay.bpf.missing"  # written into the wheel instead of the object when clang was absent
PROGRAM_NAME = "tc_relay"
TC_HANDLE = 0x7475  # "tu": our filter's handle and priority on the clsact ingress hook
TC_PRIORITY = 0x7475
_BPF_PROG_TYPE_SCHED_CLS = 3
_BPF_TC_INGRESS = 1
_BPF_TC_F_REPLACE = 1


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


class TcRelay(MapSet):
    """The loaded program and its maps. `close()` detaches it (if attached) and frees everything."""

    def __init__(self, obj: bytes | None = None) -> None:
        missing = missing_capabilities()
        if missing:
            raise KernelOffloadUnavailable(
                f"loading the BPF program needs {', '.join(CAPABILITIES)} (missing: {', '.join(missing)}): "
                "AmbientCapabilities= in the relay's systemd unit"
            )
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
                        "the kernel refused to load the BPF program (Operation not permitted): a security "
                        "module or kernel.unprivileged_bpf_disabled settings may forbid it even with "
                        f"{', '.join(CAPABILITIES)}"
                    )
                raise KernelOffloadUnavailable(f"the kernel refused the BPF program ({_strerror(code)}): {_last_log()}")
            self.program_fd = lib.bpf_program__fd(program)
            map_fds = {name: lib.bpf_map__fd(found) for name, found in self._map_handles.items()}
        except BaseException:
            self.close()
            raise
        super().__init__(map_fds, lib)
        self.update("crc32", maps.INDEX.pack(0), maps.crc32_tables())  # the FINGERPRINT check's tables

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


# What loading takes: CAP_BPF and CAP_NET_ADMIN for a TC program, and CAP_PERFMON because without it the
# verifier also walks every speculative path (Spectre v1 hardening), and the FINGERPRINT check's CRC loop
# then exceeds its budget. Bit numbers from <linux/capability.h>.
CAPABILITIES = ("CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON")
_CAPABILITY_BITS = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}


def missing_capabilities(status: str = "/proc/self/status") -> list[str]:
    """Which of CAPABILITIES this process lacks in its effective set (CAP_SYS_ADMIN stands in for CAP_BPF
    and CAP_PERFMON, as the kernel lets it)."""
    try:
        with open(status) as f:
            line = next(line for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration):
        return []  # cannot tell: let the kernel decide
    effective = int(line.split()[1], 16)
    has = {name: bool(effective >> bit & 1) for name, bit in _CAPABILITY_BITS.items()}
    return [
        name
        for name in CAPABILITIES
        if not has[name] and not (name in ("CAP_BPF", "CAP_PERFMON") and has["CAP_SYS_ADMIN"])
    ]


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


_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_LOWER = 47, 3
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Give up CAPABILITIES for good (ambient, inheritable, permitted, effective) and keep every other one.
    A worker calls it: it parses untrusted packets and only touches the maps through descriptors it
    inherited, which need no capability. Hand-written over capset(2) because the standard library has no
    binding and a dependency for three bits is not worth it."""
    libc = ctypes.CDLL(None, use_errno=True)
    for name in CAPABILITIES:
        libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_LOWER, _CAPABILITY_BITS[name], 0, 0)  # EINVAL: not there
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), f"capget failed: {os.strerror(ctypes.get_errno())}")
    for name in CAPABILITIES:
        bit = _CAPABILITY_BITS[name]
        word, keep = data[bit // 32], ~(1 << bit % 32) & 0xFFFFFFFF
        word.effective &= keep
        word.permitted &= keep
        word.inheritable &= keep
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), f"capset failed: {os.strerror(ctypes.get_errno())}")
