"""Send one STUN Binding request over UDP and print the XOR-MAPPED-ADDRESS of the success response.

The TURN host's readiness check (and the tests) use it: exit 0 and `<local ip:port> <mapped ip:port>` on a
Binding success whose transaction id matches, exit 1 otherwise. Standard library only (Ubuntu's python3).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import struct
import sys

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
XOR_MAPPED_ADDRESS = 0x0020


class StunError(Exception):
    """No usable Binding success was received."""


def binding_request(transaction_id: bytes) -> bytes:
    return struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE) + transaction_id


def parse_binding_success(packet: bytes, transaction_id: bytes) -> tuple[str, int]:
    """The XOR-MAPPED-ADDRESS (host, port) of a Binding success answering `transaction_id`."""
    if len(packet) < 20:
        raise StunError("response shorter than a STUN header")
    msg_type, length, cookie = struct.unpack("!HHI", packet[:8])
    if cookie != MAGIC_COOKIE or packet[8:20] != transaction_id:
        raise StunError("response does not answer this request (cookie or transaction id differ)")
    if msg_type != BINDING_SUCCESS:
        raise StunError(f"response type 0x{msg_type:04x} is not a Binding success")
    body = packet[20 : 20 + length]
    offset = 0
    while offset + 4 <= len(body):
        attr_type, attr_len = struct.unpack("!HH", body[offset : offset + 4])
        value = body[offset + 4 : offset + 4 + attr_len]
        if attr_type == XOR_MAPPED_ADDRESS and len(value) >= 8:
            family = value[1]
            port = struct.unpack("!H", value[2:4])[0] ^ (MAGIC_COOKIE >> 16)
            if family == 0x01:
                raw = struct.unpack("!I", value[4:8])[0] ^ MAGIC_COOKIE
                return str(ipaddress.IPv4Address(raw)), port
            if family == 0x02 and len(value) >= 20:
                mask = struct.pack("!I", MAGIC_COOKIE) + transaction_id
                raw6 = bytes(a ^ b for a, b in zip(value[4:20], mask, strict=True))
                return str(ipaddress.IPv6Address(raw6)), port
        offset += 4 + attr_len + (-attr_len % 4)
    raise StunError("Binding success without XOR-MAPPED-ADDRESS")


def ping(host: str, port: int, timeout: float) -> tuple[tuple[str, int], tuple[str, int]]:
    """(local address, mapped address) after one Binding transaction."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    transaction_id = os.urandom(12)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((host, port))
        sock.send(binding_request(transaction_id))
        try:
            packet = sock.recv(2048)
        except OSError as error:  # timeout, or ICMP port unreachable surfacing as ECONNREFUSED
            raise StunError(f"no answer from {host}:{port}: {error}") from error
        local = sock.getsockname()[:2]
    return (local[0], local[1]), parse_binding_success(packet, transaction_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    try:
        local, mapped = ping(args.host, args.port, args.timeout)
    except StunError as error:
        print(f"stun_ping: {error}", file=sys.stderr)
        return 1
    print(f"{local[0]}:{local[1]} {mapped[0]}:{mapped[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
