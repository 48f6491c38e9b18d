"""A small TURN load client for the benchmark: many UDP client sockets on one epoll set, authenticated
with TURN REST credentials through the project's own STUN codec, identical against any server.

    rate = allocation_cycles(("127.0.0.1", 3478), secret, realm, clients=64, seconds=5)
        # cycles per second, each client back to back, each cycle from a new client address as a
        # browser's next allocation: Allocate -> 401 (realm, nonce) -> authenticated Allocate ->
        # Refresh(LIFETIME=0)
    holder = hold_allocations(("127.0.0.1", 3478), secret, realm, count=10_000)
        # keeps `count` live allocations (one per socket) until holder.close()

Each client learns realm and nonce from its first 401 (or a later 438) like a browser, and retransmits
an unanswered request after RETRANSMIT seconds (loopback drops datagrams when a receive buffer fills).
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relay.policy.auth import rest_password
from relay.stun import Attr, Message, MessageClass, Method, StunDecodeError, decode, encode, long_term_key

RETRANSMIT = 1.0
CLIENT_PORTS = (10000, 39999)  # below the relay ranges the benchmark gives both servers
_ALLOCATE, _REFRESH0, _HELD = 0, 1, 2


@dataclass
class Outcome:
    successes: int = 0  # completed cycles (or allocations held)
    errors: dict[int, int] = field(default_factory=dict)  # STUN error code -> count (401/438 excluded)
    retransmits: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.successes / self.seconds if self.seconds else 0.0


class _Client:
    __slots__ = ("key", "nonce", "realm", "sent_at", "sock", "state", "tid", "username", "wire")

    def __init__(self, server: tuple[str, int], username: str, password: str, realm: str) -> None:
        self.sock = _socket(server)
        self.username = username
        self.realm = realm
        self.key = long_term_key(username, realm, password)
        self.nonce = ""
        self.state = _ALLOCATE
        self.tid = b""
        self.wire = b""
        self.sent_at = 0.0

    def send(self, now: float) -> None:
        """Send the request for the current state (a fresh transaction)."""
        self.tid = os.urandom(12)
        if self.state == _ALLOCATE:
            attributes = [(Attr.REQUESTED_TRANSPORT, 17)]
            method = Method.ALLOCATE
        else:
            attributes = [(Attr.LIFETIME, 0)]
            method = Method.REFRESH
        if self.nonce:
            attributes += [(Attr.USERNAME, self.username), (Attr.REALM, self.realm), (Attr.NONCE, self.nonce)]
            self.wire = encode(Message(method, MessageClass.REQUEST, self.tid, attributes), integrity_key=self.key)
        else:
            self.wire = encode(Message(method, MessageClass.REQUEST, self.tid, attributes))
        self.resend(now)

    def renew(self, server: tuple[str, int]) -> None:
        """A new client address (a new 5-tuple), as a browser's next allocation has: nonce again."""
        self.sock.close()
        self.sock = _socket(server)
        self.nonce = ""
        self.state = _ALLOCATE

    def resend(self, now: float) -> None:
        self.sent_at = now
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError):  # retransmitted later
            self.sock.send(self.wire)


def _ports() -> Iterator[int]:
    while True:
        yield from range(CLIENT_PORTS[0], CLIENT_PORTS[1] + 1)


_next_port = _ports()


def _socket(server: tuple[str, int]) -> socket.socket:
    """A client socket on the next port of CLIENT_PORTS: addresses are not reused before the whole
    range has been (an ephemeral port can come back at once, onto a 5-tuple a server still remembers)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    for _ in range(CLIENT_PORTS[1] - CLIENT_PORTS[0] + 1):
        try:
            sock.bind(("127.0.0.1", next(_next_port)))
            break
        except OSError:
            continue  # in use (a listener, a relay socket, another client)
    else:
        sock.close()
        raise OSError("no free client port in the load client's range")
    sock.connect(server)
    return sock


def _run(
    server: tuple[str, int],
    secret: str,
    realm: str,
    clients: int,
    *,
    cycle: bool,
    seconds: float,
    user_prefix: str,
) -> tuple[Outcome, list[_Client]]:
    expiry = int(time.time()) + 86400
    population = []
    for i in range(clients):
        username = f"{expiry}:{user_prefix}{i}"
        population.append(_Client(server, username, rest_password(secret, username), realm))
    by_fd = {c.sock.fileno(): c for c in population}
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    outcome = Outcome()
    started = time.monotonic()
    deadline = started + seconds
    for client in population:
        client.send(time.monotonic())
    pending = len(population)
    next_check = started + 0.1
    try:
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(0.05):
                client = by_fd.get(fd)
                while client is not None:
                    try:
                        data = client.sock.recv(2048)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    done = _handle(client, data, cycle, outcome)
                    if done < 0:  # a cycle completed: the next one from a new address
                        poller.unregister(fd)
                        del by_fd[fd]
                        client.renew(server)
                        by_fd[client.sock.fileno()] = client
                        poller.register(client.sock.fileno(), select.EPOLLIN)
                        client.send(time.monotonic())
                        break
                    pending -= done
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 0.1
                for client in population:
                    if client.state != _HELD and now - client.sent_at > RETRANSMIT:
                        outcome.retransmits += 1
                        client.resend(now)
    finally:
        poller.close()
    outcome.seconds = time.monotonic() - started
    return outcome, population


def _handle(client: _Client, data: bytes, cycle: bool, outcome: Outcome) -> int:
    """Advance `client` on one response: 1 when it holds its allocation (hold mode), -1 when a cycle
    ended (cycle mode: the caller moves it to a new address), else 0."""
    try:
        message = decode(data)
    except StunDecodeError:
        return 0
    if message.transaction_id != client.tid:
        return 0  # an answer to a retransmitted request we already handled
    now = time.monotonic()
    if message.message_class == MessageClass.ERROR:
        code = message.get(Attr.ERROR_CODE, (0, ""))[0]
        if code in (401, 438) and message.get(Attr.NONCE):
            client.nonce = message.get(Attr.NONCE)
            client.realm = message.get(Attr.REALM, client.realm)
        else:
            outcome.errors[code] = outcome.errors.get(code, 0) + 1
            if cycle:
                return -1  # try again from a new address
        client.send(now)
        return 0
    if client.state == _ALLOCATE:
        if not cycle:
            client.state = _HELD
            outcome.successes += 1
            return 1
        client.state = _REFRESH0
        client.send(now)
        return 0
    outcome.successes += 1
    return -1


def allocation_cycles(
    server: tuple[str, int], secret: str, realm: str, *, clients: int = 64, seconds: float = 5.0
) -> Outcome:
    """Allocate (401 challenge, authenticated Allocate) + Refresh(0) cycles per second with `clients`
    back-to-back clients, each cycle from a new address."""
    outcome, population = _run(server, secret, realm, clients, cycle=True, seconds=seconds, user_prefix="cycle")
    for client in population:
        client.sock.close()
    return outcome


@dataclass
class Holder:
    outcome: Outcome
    clients: list[_Client]

    def close(self) -> None:
        for client in self.clients:
            client.sock.close()


def hold_allocations(
    server: tuple[str, int], secret: str, realm: str, count: int, *, seconds: float = 120.0, user_prefix: str = "hold"
) -> Holder:
    """`count` live allocations, one per client socket, until `close()` (the server keeps them for their
    lifetime, 600 s, unless the sockets' owner ends them)."""
    outcome, population = _run(server, secret, realm, count, cycle=False, seconds=seconds, user_prefix=user_prefix)
    return Holder(outcome, population)
