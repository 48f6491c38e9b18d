"""A tiny STUN server for the tests: answers Binding requests on one UDP and one TCP port (same number).

It builds its answers independently of the code under test (RFC 8489 §14.2 XOR-MAPPED-ADDRESS), and each
transport can be switched off to simulate a broken relay.
"""

from __future__ import annotations

import socket
import struct
import threading

MAGIC = 0x2112A442


def binding_success(request: bytes, address: tuple[str, int]) -> bytes | None:
    if len(request) < 20:
        return None
    msg_type, _length, cookie = struct.unpack_from("!HHI", request)
    if msg_type != 0x0001 or cookie != MAGIC:
        return None
    txid = request[8:20]
    ip = socket.inet_aton(address[0])
    xport = address[1] ^ (MAGIC >> 16)
    xip = bytes(a ^ b for a, b in zip(ip, struct.pack("!I", MAGIC), strict=True))
    attr = struct.pack("!HHBBH", 0x0020, 8, 0, 1, xport) + xip
    return struct.pack("!HHI", 0x0101, len(attr), MAGIC) + txid + attr


class StunResponder:
    def __init__(self) -> None:
        self.udp_enabled = True
        self.tcp_enabled = True
        self.udp_requests = 0
        self.tcp_requests = 0
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(50):  # find a port free on both transports
            self._tcp.bind(("127.0.0.1", 0))
            port = self._tcp.getsockname()[1]
            try:
                self._udp.bind(("127.0.0.1", port))
                break
            except OSError:
                self._tcp.close()
                self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.port = self._tcp.getsockname()[1]
        self._tcp.listen(16)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._serve_udp, daemon=True),
            threading.Thread(target=self._serve_tcp, daemon=True),
        ]

    def start(self) -> StunResponder:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._udp.close()
        self._tcp.close()

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self._udp.recvfrom(2048)
            except OSError:
                return
            self.udp_requests += 1
            answer = binding_success(data, addr)
            if answer and self.udp_enabled:
                try:
                    self._udp.sendto(answer, addr)
                except OSError:  # stop() closed the socket between this request and its answer
                    return

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self._tcp.accept()
            except OSError:
                return
            with conn:
                if not self.tcp_enabled:
                    continue  # accept, then close without answering
                conn.settimeout(2)
                try:
                    data = conn.recv(2048)
                except OSError:
                    continue
                self.tcp_requests += 1
                answer = binding_success(data, addr)
                if answer:
                    conn.sendall(answer)
