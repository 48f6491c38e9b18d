"""Helpers for the relay tests: credentials, request builders, fakes for the pure core, and a small
blocking TURN client over real sockets (UDP or TCP) used by the I/O and security tests."""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from relay.config import RelayConfig
from relay.ops.metrics import RelayStats
from relay.policy.auth import Authenticator, rest_password
from relay.policy.nonce import Nonces
from relay.policy.peers import PeerPolicy
from relay.policy.quotas import AllocationQuota
from relay.stun import Attr, Message, MessageClass, Method, decode, encode, long_term_key, verify_integrity
from relay.stun.attributes import Address
from relay.stun.constants import FAMILY_IPV4, FAMILY_IPV6
from relay.turn.handler import TurnCore
from relay.turn.refusals import Refusal
from tests.servers import free_port, wait_until  # noqa: F401 (the relay tests import them from here)

REALM = "relay.test"
WALL = 1_900_000_000.0  # the core tests' unix time
CLIENT = ("198.51.100.20", 40000)
PEER = ("52.1.2.3", 6000)
SECRET = "test-shared-secret"


def rest_credentials(user: str = "alice", secret: str = SECRET, expiry: int | None = None) -> tuple[str, str]:
    expiry = int(time.time()) + 3600 if expiry is None else expiry
    username = f"{expiry}:{user}"
    return username, rest_password(secret, username)


def request(method: int, *attributes: tuple[int, Any], tid: bytes | None = None) -> Message:
    return Message(method, MessageClass.REQUEST, tid or os.urandom(12), list(attributes))


def indication(method: int, *attributes: tuple[int, Any]) -> Message:
    return Message(method, MessageClass.INDICATION, os.urandom(12), list(attributes))


@dataclass
class Session:
    """Client-side long-term credential state: realm and nonce learnt from 401/438."""

    username: str
    password: str
    realm: str = REALM
    nonce: str = ""

    @property
    def key(self) -> bytes:
        return long_term_key(self.username, self.realm, self.password)

    def sign(self, message: Message) -> bytes:
        message.attributes += [(Attr.USERNAME, self.username), (Attr.REALM, self.realm), (Attr.NONCE, self.nonce)]
        return encode(message, integrity_key=self.key, fingerprint=True)


# --- fakes for the pure core -------------------------------------------------------------------


@dataclass(eq=False)
class FakeEndpoint:
    family: int
    advertised: Address
    sent: list[tuple[bytes, Address]] = field(default_factory=list)
    allocation: Any = None
    closed: bool = False
    dont_fragment: bool = False

    def sendto(self, data: bytes, address: Address) -> int:
        self.sent.append((bytes(data), address))
        return len(data)

    def attach(self, allocation: Any) -> None:
        self.allocation = allocation

    def set_dont_fragment(self) -> bool:
        self.dont_fragment = True
        return True

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeBinder:
    dont_fragment: bool = True
    families: tuple[int, ...] = (FAMILY_IPV4, FAMILY_IPV6)
    free_ports: int = 1000
    next_port: int = 50000
    endpoints: list[FakeEndpoint] = field(default_factory=list)

    def supports(self, family: int) -> bool:
        return family in self.families

    def bind(self, family: int, *, even_port: bool = False, reserve_next: bool = False):
        need = 2 if reserve_next else 1
        if self.free_ports < need:
            return None
        self.free_ports -= need
        if even_port and self.next_port % 2:
            self.next_port += 1
        host = "203.0.113.10" if family == FAMILY_IPV4 else "2001:db8::10"
        endpoint = FakeEndpoint(family, (host, self.next_port))
        self.next_port += 1
        reserved = None
        if reserve_next:
            reserved = FakeEndpoint(family, (host, self.next_port))
            self.next_port += 1
            self.endpoints.append(reserved)
        self.endpoints.append(endpoint)
        return endpoint, reserved


@dataclass(eq=False)
class FakeOrigin:
    transport: str = "udp"
    local: Address = ("10.0.0.5", 3478)
    stream: bool = False
    to_clients: list[tuple[Address, bytes]] = field(default_factory=list)

    @property
    def key(self) -> int:
        return id(self)

    def send(self, data: bytes, client: Address) -> None:
        self.to_clients.append((client, bytes(data)))


def error_of(message: Message) -> int | None:
    error = message.get(Attr.ERROR_CODE)
    return error[0] if error else None


class CoreHarness:
    """A TurnCore with fake relay sockets, a fake origin and a controllable clock."""

    def __init__(self, config: RelayConfig | None = None, *, binder: FakeBinder | None = None, limiter=None):
        self.config = config or RelayConfig(realm=REALM, auth_secrets=(SECRET,))
        self.binder = binder or FakeBinder()
        self.stats = RelayStats()
        self.quota = AllocationQuota(self.config.total_quota, self.config.user_quota)
        self.draining = False
        self.peers = PeerPolicy(self.config.allowed_peers, self.config.denied_peers)
        self.core = TurnCore(
            self.config,
            auth=Authenticator(REALM, self.config.auth_secrets, self.config.static_users),
            nonces=Nonces(b"nonce-secret", self.config.nonce_lifetime),
            peers=self.peers,
            quota=self.quota,
            binder=self.binder,
            stats=self.stats,
            limiter=limiter,
            draining=lambda: self.draining,
            refusals=self._refused,
        )
        self.refused: list[Refusal] = []
        self.origin = FakeOrigin()
        self.now = 100.0
        self.wall = WALL
        self.session = Session(*rest_credentials(expiry=int(WALL) + 3600))
        self.nonces: dict = {}

    def _refused(self, refusal: Refusal) -> None:
        """Every refusal the core reports must format with its cause's template: a mismatch raises here,
        which the core turns into a 500, so every core test and fuzzer checks the log reasons too."""
        refusal.text()
        self.refused.append(refusal)

    def raw(self, data: bytes, client=CLIENT, origin=None) -> Message | None:
        out = self.core.handle(data, origin or self.origin, client, self.now, self.wall)
        return None if out is None else decode(out)

    def send(self, message: Message, *, sign: bool = True, session: Session | None = None, client=CLIENT, retry=True):
        """Sign with the session's nonce for this address (learnt from a 401 first); on 438, like a
        client, take the fresh nonce and retry once (unless `retry` is False)."""
        session = session or self.session
        if not sign:
            return self.raw(encode(message), client)
        slot = (id(session), client)
        if slot not in self.nonces:
            self.nonces[slot] = self.raw(encode(request(message.method)), client).get(Attr.NONCE)
        attributes = list(message.attributes)
        session.nonce = self.nonces[slot]
        response = self.raw(session.sign(message), client)
        if retry and response is not None and error_of(response) == 438:
            self.nonces[slot] = session.nonce = response.get(Attr.NONCE)
            message.attributes = attributes
            response = self.raw(session.sign(message), client)
        return response

    def allocate(self, *attrs, **kwargs) -> Message:
        return self.send(request(Method.ALLOCATE, *(attrs or ((Attr.REQUESTED_TRANSPORT, 17),))), **kwargs)

    def allocation(self, client=CLIENT):
        return self.core.table.get(self.origin.key, client)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.wall += seconds
        self.core.tick(self.now)


# --- a blocking TURN client over real sockets --------------------------------------------------


class TurnClient:
    """Minimal TURN client for tests: one UDP socket or one TCP/TLS connection to the relay."""

    def __init__(
        self,
        server: Address,
        username: str,
        password: str,
        *,
        transport: str = "udp",
        timeout: float = 2.0,
        tls_context: ssl.SSLContext | None = None,
        proxy_header: bytes = b"",
        bind: str | None = None,
        receive_buffer: int | None = None,
    ) -> None:
        self.server = server
        self.session = Session(username, password)
        self.transport = transport
        self.timeout = timeout
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        if transport == "udp":
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.bind((bind or ("::1" if family == socket.AF_INET6 else "127.0.0.1"), 0))
            self.sock.connect(server)
        else:
            raw = socket.socket(family, socket.SOCK_STREAM)
            if receive_buffer is not None:  # before connect: the window scale is agreed for this size
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            raw.settimeout(timeout)
            raw.connect(server)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as browsers do: no Nagle delays
            if proxy_header:
                raw.sendall(proxy_header)
            self.sock = tls_context.wrap_socket(raw, server_hostname="localhost") if tls_context else raw
        self.sock.settimeout(timeout)
        self._buffer = b""
        self.pending: list[bytes] = []  # non-response frames seen while waiting for a response

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> TurnClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # framing
    def send_raw(self, data: bytes) -> None:
        if self.transport == "udp":
            self.sock.send(data)
        else:
            self.sock.sendall(data)

    def recv_frame(self, timeout: float | None = None) -> bytes:
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        if self.transport == "udp":
            return self.sock.recv(65535)
        while True:
            frame = self._take_frame()
            if frame is not None:
                return frame
            chunk = self.sock.recv(65535)
            if not chunk:
                raise ConnectionError("relay closed the connection")
            self._buffer += chunk

    def _take_frame(self) -> bytes | None:
        buf = self._buffer
        if len(buf) < 4:
            return None
        if buf[0] & 0xC0 == 0x40:
            length = int.from_bytes(buf[2:4], "big")
            total = 4 + length + (-length % 4)
            if len(buf) < total:
                return None
            self._buffer = buf[total:]
            return buf[: 4 + length]
        total = 20 + int.from_bytes(buf[2:4], "big")
        if len(buf) < total:
            return None
        self._buffer = buf[total:]
        return buf[:total]

    def transact(self, message: Message, *, sign: bool = True) -> Message:
        """Send a request and wait for its response; over UDP retransmit every 0.5 s like any STUN client
        (RFC 8489 section 6.2.1) until `timeout`."""
        wire = self.session.sign(message) if sign else encode(message, fingerprint=True)
        self.send_raw(wire)
        deadline = time.monotonic() + self.timeout
        retransmit = time.monotonic() + 0.5
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(f"no response to {message.method:#x} within {self.timeout} s")
            wait = min(deadline, retransmit) - now if self.transport == "udp" else deadline - now
            try:
                frame = self.recv_frame(max(0.01, wait))
            except TimeoutError:
                if self.transport == "udp" and time.monotonic() >= retransmit:
                    self.send_raw(wire)
                    retransmit = time.monotonic() + 0.5
                continue
            if len(frame) >= 20 and frame[0] & 0xC0 == 0 and frame[8:20] == message.transaction_id:
                return decode(frame)
            self.pending.append(frame)

    def request(self, method: int, *attributes: tuple[int, Any]) -> Message:
        """Send a signed request, learning realm/nonce from 401/438 and retrying once as a browser does."""
        response = None
        for _ in range(3):
            response = self.transact(request(method, *attributes))
            error = response.get(Attr.ERROR_CODE)
            challenged = response.message_class == MessageClass.ERROR and error and error[0] in (401, 438)
            if challenged and response.get(Attr.NONCE):
                self.session.nonce = response.get(Attr.NONCE)
                self.session.realm = response.get(Attr.REALM, self.session.realm)
                continue
            break
        assert response is not None
        return response

    def verified(self, response: Message) -> bool:
        return verify_integrity(response, self.session.key)

    # TURN operations
    def allocate(self, *attributes: tuple[int, Any]) -> Message:
        attrs = attributes or ((Attr.REQUESTED_TRANSPORT, 17),)
        return self.request(Method.ALLOCATE, *attrs)

    def relayed(self, response: Message) -> Address:
        return response.get(Attr.XOR_RELAYED_ADDRESS)

    def create_permission(self, *peers: Address) -> Message:
        return self.request(Method.CREATE_PERMISSION, *((Attr.XOR_PEER_ADDRESS, p) for p in peers))

    def channel_bind(self, number: int, peer: Address) -> Message:
        return self.request(Method.CHANNEL_BIND, (Attr.CHANNEL_NUMBER, number), (Attr.XOR_PEER_ADDRESS, peer))

    def refresh(self, lifetime: int | None = None) -> Message:
        attrs = () if lifetime is None else ((Attr.LIFETIME, lifetime),)
        return self.request(Method.REFRESH, *attrs)

    def send_indication(self, peer: Address, data: bytes) -> None:
        message = indication(Method.SEND, (Attr.XOR_PEER_ADDRESS, peer), (Attr.DATA, data))
        self.send_raw(encode(message))

    def channel_data(self, number: int, data: bytes) -> None:
        frame = number.to_bytes(2, "big") + len(data).to_bytes(2, "big") + data
        if self.transport != "udp":
            frame += b"\x00" * (-len(data) % 4)
        self.send_raw(frame)

    def handled(self) -> None:
        """Return once the relay has handled every frame this client sent before (forwarded or dropped):
        the answer to a Binding request, since the relay reads one socket or stream in order. This is
        what a test waits on before checking that nothing was forwarded, instead of a guessed sleep."""
        response = self.transact(request(Method.BINDING), sign=False)
        assert response.message_class == MessageClass.SUCCESS, response

    def receive_data(self, timeout: float | None = None) -> tuple[Address | None, int | None, bytes]:
        """The next relayed payload: (peer, None, data) for a Data indication, (None, channel, data)
        for ChannelData."""
        frame = self.pending.pop(0) if self.pending else self.recv_frame(timeout)
        if frame[0] & 0xC0 == 0x40:
            length = int.from_bytes(frame[2:4], "big")
            return None, int.from_bytes(frame[:2], "big"), frame[4 : 4 + length]
        message = decode(frame)
        assert (message.method, message.message_class) == (Method.DATA, MessageClass.INDICATION), message
        return message.get(Attr.XOR_PEER_ADDRESS), None, message.get(Attr.DATA)


# --- an in-process relay on loopback -----------------------------------------------------------

TEST_PORT_RANGE = (20000, 29999)  # below the kernel's ephemeral range, so tests never collide with it


def loopback_config(**overrides: Any) -> RelayConfig:
    """Listeners on ephemeral loopback ports; peers on 127.0.0.1 allowed explicitly (never by default)."""
    import ipaddress

    from relay.config import Listener

    settings: dict[str, Any] = {
        "realm": REALM,
        "listeners": (Listener("udp", "127.0.0.1", 0), Listener("tcp", "127.0.0.1", 0)),
        "relay_ip": "127.0.0.1",
        "relay_ipv6": "::1",
        "min_port": TEST_PORT_RANGE[0],
        "max_port": TEST_PORT_RANGE[1],
        "auth_secrets": (SECRET,),
        "nonce_secret": b"test nonce secret",
        "allowed_peers": (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
        "unauthenticated_rate": 1000.0,
        "unauthenticated_burst": 1000.0,
    }
    settings.update(overrides)
    return RelayConfig(**settings)


class RunningRelay:
    """A `RelayServer` on its own event loop in a background thread, so blocking test clients can talk
    to it from the test thread. `call(fn)` runs `fn()` on the relay's loop and returns its result."""

    def __init__(
        self,
        config: RelayConfig,
        *,
        tls: Any = None,
        draining: Any = None,
        use_uvloop: bool = False,
        fast: bool = True,
        packet_path: str | None = None,
    ):
        import asyncio
        import threading

        from relay.server.app import RelayServer

        self.config = config
        self.stats = RelayStats()
        self.draining = False
        self.server = RelayServer(
            config,
            stats=self.stats,
            tls=tls,
            draining=draining or (lambda: self.draining),
            fast=fast,
            packet_path=packet_path,
        )
        if use_uvloop:
            import uvloop

            self.loop = uvloop.new_event_loop()
        else:
            self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._asyncio = asyncio

    def __enter__(self) -> RunningRelay:
        self._thread.start()
        self._run(self.server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(self.server.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()

    def _run(self, coroutine: Any) -> Any:
        return self._asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(15)

    def call(self, function: Any) -> Any:
        async def wrapper() -> Any:
            return function()

        return self._run(wrapper())

    def address(self, transport: str) -> Address:
        return self.server.address(transport)

    def client(self, transport: str = "udp", user: str = "alice", **kwargs: Any) -> TurnClient:
        username, password = rest_credentials(user)
        return TurnClient(
            self.address("tcp" if transport == "tcp-proxy" else transport),
            username,
            password,
            transport="udp" if transport == "udp" else "tcp",
            **kwargs,
        )

    @property
    def allocations(self) -> int:
        return self.call(lambda: self.server.allocation_count)


class Peer:
    """A UDP peer on loopback (what a BBB media server is to the relay)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(2.0)
        self.address: Address = self.sock.getsockname()[:2]

    def recv(self, timeout: float = 2.0) -> tuple[bytes, Address]:
        self.sock.settimeout(timeout)
        data, address = self.sock.recvfrom(65535)
        return data, address[:2]

    def nothing_received(self, wait: float = 0.3) -> bool:
        """No datagram within `wait` seconds; with 0, none queued now (after a barrier such as
        TurnClient.handled(), where anything forwarded would already be here)."""
        self.sock.settimeout(wait)
        try:
            self.sock.recvfrom(65535)
        except (TimeoutError, BlockingIOError):
            return True
        return False

    def send(self, data: bytes, address: Address) -> None:
        self.sock.sendto(data, address)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sign_raw(method: int, body: bytes, session: Session, tid: bytes, *, fingerprint: bool = False) -> bytes:
    """A request whose attribute section starts with arbitrary `body` bytes, followed by valid USERNAME,
    REALM, NONCE and MESSAGE-INTEGRITY: lets fuzzers reach the authenticated code paths."""
    import hashlib
    import hmac

    from relay.stun.message import message_type

    body = body + b"\x00" * (-len(body) % 4)
    credentials = encode(
        Message(
            method,
            MessageClass.REQUEST,
            tid,
            [(Attr.USERNAME, session.username), (Attr.REALM, session.realm), (Attr.NONCE, session.nonce)],
        )
    )[20:]
    attributes = body + credentials
    type_bytes = message_type(method, MessageClass.REQUEST).to_bytes(2, "big")
    header = type_bytes + (len(attributes) + 24).to_bytes(2, "big") + b"\x21\x12\xa4\x42" + tid
    mac = hmac.new(session.key, header + attributes, hashlib.sha1).digest()
    wire = header + attributes + b"\x00\x08\x00\x14" + mac
    if fingerprint:
        import binascii

        wire = wire[:2] + (len(wire) - 20 + 8).to_bytes(2, "big") + wire[4:]
        crc = (binascii.crc32(wire) ^ 0x5354554E) & 0xFFFFFFFF
        wire += b"\x80\x28\x00\x04" + crc.to_bytes(4, "big")
    return wire


# --- a relay process (python -m relay) on loopback ----------------------------------------------


# free_port and wait_until: the whole suite's (tests/servers.py), imported above and re-exported from here.


def admin_get(port: int, path: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of one request to the relay's admin endpoint on 127.0.0.1:`port`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def metric_value(port: int, name: str) -> float:
    """The first sample of `name` in the relay's /metrics."""
    for line in admin_get(port, "/metrics")[1].splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process (Linux /proc), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def proxy_v2_header(source: Address, destination: Address) -> bytes:
    """A PROXY protocol v2 header (PROXY command, TCP over IPv4), as an AWS NLB sends it."""
    import struct

    addresses = (
        socket.inet_aton(source[0]) + socket.inet_aton(destination[0]) + struct.pack("!HH", source[1], destination[1])
    )
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def make_cert(directory: Any, name: str, key_type: str = "ec", host: str = "relay.test") -> tuple[str, str]:
    """A throw-away self-signed certificate for `host` and 127.0.0.1 (the openssl CLI): (cert, key) paths."""
    import subprocess

    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    newkey = ["-newkey", "rsa:2048"] if key_type == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(
        ["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host},IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)
