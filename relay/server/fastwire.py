"""The Send-indication parser of the UDP packet path: `relay.turn.wire.parse_send_indication` with the
per-packet allocations taken out, same answers for every input (tests/relay/unit/test_fast_path.py
checks both against each other on arbitrary bytes).

Differences in *how*, never in *what*:
  * an IPv4 XOR-PEER-ADDRESS is decoded once per distinct value and then found in `peers`, a small
    per-allocation cache (its value does not depend on the transaction id; IPv6 ones do and are
    decoded every time);
  * FINGERPRINT is computed over the received bytes in place: it must be the last attribute, so the
    header's length field already is the one the CRC covers and nothing has to be rebuilt.
"""

from __future__ import annotations

import binascii
import struct

from relay.stun.constants import FINGERPRINT_XOR, MAGIC_COOKIE
from relay.turn.wire import _KNOWN, _xor_peer

_ATTR_XOR_PEER_ADDRESS = 0x0012
_ATTR_DATA = 0x0013
_ATTR_DONT_FRAGMENT = 0x001A
_ATTR_FINGERPRINT = 0x8028
_HEADER = struct.Struct(">HHI").unpack_from  # type, length, magic cookie
_ATTRIBUTE = struct.Struct(">HH").unpack_from  # type, length
_WORD = struct.Struct(">I").unpack_from
MAX_CACHED_PEERS = 64


def parse_send(
    data: memoryview, size: int, peers: dict[bytes, tuple[str, int] | None]
) -> tuple[str, int, memoryview, bool] | None:
    """(peer host, peer port, payload, dont_fragment) of a valid Send indication `data[:size]`, else None."""
    if size < 20:
        return None
    message_type, length, cookie = _HEADER(data, 0)
    if message_type != 0x0016 or cookie != MAGIC_COOKIE or length + 20 != size or length & 3:
        return None
    peer: tuple[str, int] | None = None
    payload: memoryview | None = None
    dont_fragment = False
    offset = 20
    while offset < size:
        if size - offset < 4:
            return None
        attr_type, attr_length = _ATTRIBUTE(data, offset)
        start = offset + 4
        end = start + attr_length
        if end > size:
            return None
        if attr_type == _ATTR_DATA:
            if payload is None:
                payload = data[start:end]
        elif attr_type == _ATTR_XOR_PEER_ADDRESS:
            if peer is None:
                if attr_length == 8:
                    raw = bytes(data[start:end])
                    peer = peers.get(raw)
                    if peer is None:
                        peer = _xor_peer(raw, 0, 8)
                        if peer is None:
                            return None
                        if len(peers) >= MAX_CACHED_PEERS:
                            peers.clear()
                        peers[raw] = peer
                else:
                    peer = _xor_peer(data, start, attr_length)
                    if peer is None:
                        return None
        elif attr_type == _ATTR_DONT_FRAGMENT:
            dont_fragment = True
        elif attr_type == _ATTR_FINGERPRINT:
            if attr_length != 4 or end != size:
                return None
            if _WORD(data, start)[0] != (binascii.crc32(data[:offset]) ^ FINGERPRINT_XOR) & 0xFFFFFFFF:
                return None
        elif attr_type < 0x8000 and attr_type not in _KNOWN:
            return None
        offset = start + ((attr_length + 3) & ~3)
    if peer is None or payload is None or offset != size:
        return None
    return peer[0], peer[1], payload, dont_fragment
