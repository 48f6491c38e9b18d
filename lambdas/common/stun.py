"""A minimal STUN client (RFC 8489): one Binding request over UDP (with retransmissions) or TCP.

Route 53 cannot check UDP, so the prober and the TURN launch check use this against each instance's
public address; an answer proves the relay process is up and its port reachable from the internet.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
XOR_MAPPED_ADDRESS = 0x0020
MAPPED_ADDRESS = 0x0001
HEADER = struct.Struct("!HHI12s")


class StunError(RuntimeError):
    pass


@dataclass(frozen=True)
class BindingResult:
    mapped_address: tuple[str, int] | None
    rtt_ms: float


def binding_request() -> tuple[bytes, bytes]:
    transaction_id = os.urandom(12)
    return HEADER.pack(BINDING_REQUEST, 0, MAGIC_COOKIE, transaction_id), transaction_id


def parse_binding_response(data: bytes, transaction_id: bytes) -> tuple[str, int] | None:
    """The XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS) of a Binding success for our transaction."""
    if len(data) < HEADER.size:
        raise StunError("short STUN message")
    msg_type, length, cookie, txid = HEADER.unpack_from(data)
    if cookie != MAGIC_COOKIE or txid != transaction_id:
        raise StunError("not an answer to our transaction")
    if msg_type != BINDING_SUCCESS:
        raise StunError(f"STUN answered message type 0x{msg_type:04x}, not Binding success")
    if len(data) < HEADER.size + length:
        raise StunError("truncated STUN message")
    offset, end = HEADER.size, HEADER.size + length
    mapped = None
    while offset + 4 <= end:
        attr_type, attr_len = struct.unpack_from("!HH", data, offset)
        value = data[offset + 4 : offset + 4 + attr_len]
        if attr_type == XOR_MAPPED_ADDRESS:
            return _address(value, xor=True, transaction_id=transaction_id)
        if attr_type == MAPPED_ADDRESS and mapped is None:
            mapped = _address(value, xor=False, transaction_id=transaction_id)
        offset += 4 + attr_len + (-attr_len % 4)
    return mapped


def _address(value: bytes, *, xor: bool, transaction_id: bytes) -> tuple[str, int] | None:
    if len(value) < 8:
        return None
    family, port = value[1], struct.unpack_from("!H", value, 2)[0]
    raw = value[4:8] if family == 1 else value[4:20]
    if xor:
        port ^= MAGIC_COOKIE >> 16
        key = struct.pack("!I", MAGIC_COOKIE) + transaction_id
        raw = bytes(b ^ key[i] for i, b in enumerate(raw))
    return str(ipaddress.ip_address(raw)), port


def binding_udp(host: str, port: int, *, timeout: float = 1.0, attempts: int = 3) -> BindingResult:
    """Binding over UDP; retransmits with doubling timeouts (RFC 8489 §6.2.1, shortened for a probe)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    request, txid = binding_request()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        wait = timeout
        for _ in range(max(1, attempts)):
            started = time.monotonic()
            sock.sendto(request, (host, port))
            deadline = started + wait
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                try:
                    data, _addr = sock.recvfrom(2048)
                except (TimeoutError, ConnectionRefusedError):
                    break
                try:
                    mapped = parse_binding_response(data, txid)
                except StunError:
                    continue  # a stray datagram; keep waiting for ours
                return BindingResult(mapped, (time.monotonic() - started) * 1000)
            wait *= 2
    raise StunError(f"no STUN answer from {host}:{port}/udp after {attempts} attempts")


def binding_tcp(host: str, port: int, *, timeout: float = 2.0) -> BindingResult:
    """Connect, send one Binding, read the framed answer (STUN over TCP needs no extra framing)."""
    request, txid = binding_request()
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(request)
            header = _read_exactly(sock, HEADER.size)
            length = struct.unpack_from("!H", header, 2)[0]
            body = _read_exactly(sock, length) if length else b""
    except OSError as exc:
        raise StunError(f"STUN over TCP to {host}:{port} failed: {exc}") from None
    mapped = parse_binding_response(header + body, txid)
    return BindingResult(mapped, (time.monotonic() - started) * 1000)


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise StunError("connection closed before the STUN answer was complete")
        chunks += chunk
    return chunks
