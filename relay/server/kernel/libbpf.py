"""The system's libbpf through ctypes: the few functions the relay uses, with their argument types.

Why ctypes and not a binding: no maintained Python binding of libbpf installs without a compiler on
the TURN hosts (Ubuntu 22.04, Python 3.10), and the relay needs a dozen calls. Every function used
here exists in libbpf 0.5 (Ubuntu 22.04's libbpf0) and in 1.x (Debian 12's libbpf1); their symbol
versions are LIBBPF_0.0.1 to LIBBPF_0.4.0 (checked against v0.5.0 built from its tag and Debian's
1.1.2). Both ABI generations are handled: 0.x returns error pointers from bpf_object__open_mem (read
with libbpf_get_error) and -1 with errno from map calls, 1.x returns NULL or -errno and sets errno.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections import deque
from typing import Any

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
_PRINT_BUFFER = 1 << 22  # the largest verifier log libbpf hands over (a failed load logs up to 16 MiB)
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

    buffer = ctypes.create_string_buffer(_PRINT_BUFFER)  # a verifier log arrives in one call: keep its end

    def record(level: int, fmt: bytes, args: int) -> int:  # va_list arrives as a pointer on x86-64 and arm64
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
