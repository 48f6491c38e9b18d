"""TURN checks of `probe`, from outside, one transport at a time (UDP, TCP, or TLS as browsers use turns:443).

Uses aioice's TURN client (a kept library: its protocols do the STUN transactions, long-term credentials with
the 401/438 nonce dance, and ChannelData framing over UDP and TCP). What it lacks for a diagnosis is added
here: every step is its own check (Binding, the open-relay refusal, Allocate, CreatePermission, ChannelBind,
the round trips) so a failure names the step, and Data indications from a peer the probe has no channel
for yet are kept (aioice drops them) so the probe can act as its own peer and prove that the relay port
range is reachable from the internet.

TURN REST credentials (coturn's scheme, as the BBB servers use): username `<expiry>:<user>`, password
base64(HMAC-SHA1(shared secret, username)).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aioice import stun
from aioice.turn import TurnClientTcpProtocol, TurnClientUdpProtocol, is_channel_data

from bbb_on_aws import tls_check
from bbb_on_aws.checks import Failure, Report, Skipped
from bbb_on_aws.turn_errors import closed, private_relayed_address, turn_failure

Address = tuple[str, int]
PROBE_USER = "bbb-on-aws-probe"
CREDENTIAL_TTL = 600
FIRST_CHANNEL = 0x4000


def rest_credentials(secret: str, user: str = PROBE_USER, ttl: int = CREDENTIAL_TTL) -> tuple[str, str]:
    username = f"{int(time.time()) + ttl}:{user}"
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, password


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    transport: str  # udp | tcp | tls
    tls_name: str | None = None  # the name the certificate must carry (defaults to host)
    ca_file: str | None = None

    @property
    def label(self) -> str:
        return f"{self.transport} {self.host}:{self.port}"


class _Capture:
    """Keeps what aioice would drop: Data indications (relayed from peers without a channel yet)."""

    indications: asyncio.Queue[tuple[bytes, Address]]

    def datagram_received(self, data: bytes | str, addr: Address) -> None:
        raw = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else data.encode()
        if not is_channel_data(raw):
            try:
                message = stun.parse_message(raw)
            except ValueError:
                return
            if message.message_method == stun.Method.DATA and message.message_class == stun.Class.INDICATION:
                self.indications.put_nowait((message.attributes["DATA"], message.attributes["XOR-PEER-ADDRESS"]))
                return
        super().datagram_received(data, addr)  # type: ignore[misc]


class _Udp(_Capture, TurnClientUdpProtocol):
    pass


class _Tcp(_Capture, TurnClientTcpProtocol):
    pass


class _Inbox(asyncio.DatagramProtocol):
    """Receiver of aioice's demultiplexed ChannelData (and of the probe's own peer socket)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.queue.put_nowait((data, addr))


class TurnSession:
    """One control connection to a TURN server and the checks run over it."""

    def __init__(self, target: Target, report: Report, timeout: float, credentials: tuple[str, str] | None) -> None:
        self.t, self.report, self.timeout, self.credentials = target, report, timeout, credentials
        self.protocol: Any = None
        self.transport: asyncio.BaseTransport | None = None
        self.inbox = _Inbox()
        self.address: Address | None = None
        self.mapped: Address | None = None
        self.relayed: Address | None = None
        self.next_channel = FIRST_CHANNEL

    def name(self, what: str) -> str:
        return f"{self.t.label} {what}"

    async def run(self, peer: Address | None, peer_echoes: bool) -> None:
        t = self.t
        try:
            self.address = await _resolve(t.host, t.port)
        except Failure as failure:
            self.report.checks.append(_failed(self.name("resolve"), failure))
            return
        verify = True
        if t.transport == "tls":
            name = t.tls_name or t.host
            ok = await self.report.run(
                self.name(f"certificate for {name}"),
                lambda: asyncio.to_thread(
                    tls_check.check_certificate, self.address[0], t.port, name, t.ca_file, self.timeout
                ),
            )  # type: ignore[index]
            verify = ok is not None  # go on without verification: the TURN lines still say whether TURN works
        if not await self.report.run(self.name("connect"), lambda: self._connect(verify), self.timeout):
            self._skip_rest("connect")
            return
        try:
            await self._checks(peer, peer_echoes)
        finally:
            await self._close()

    async def _checks(self, peer: Address | None, peer_echoes: bool) -> None:
        if not await self.report.run(self.name("STUN binding"), self._binding, self.timeout):
            self._skip_rest("STUN binding")
            return
        await self.report.run(self.name("open relay refused"), self._unauthenticated, self.timeout)
        if self.credentials is None:
            self.report.skip(self.name("TURN allocate"), "no secret: give --secret-file or --secret-arn")
            return
        if not await self.report.run(self.name("TURN allocate"), self._allocate, self.timeout * 2):
            self._skip_rest("TURN allocate")
            return
        if peer is not None:
            permitted = await self.report.run(
                self.name(f"permission {_fmt(peer)}"), lambda: self._permission(peer), self.timeout
            )
            bound = permitted and await self.report.run(
                self.name(f"channel bind {_fmt(peer)}"), lambda: self._bind(peer), self.timeout
            )
            if bound and peer_echoes:
                await self.report.run(
                    self.name(f"round trip via {_fmt(peer)}"), lambda: self._echo(peer), self.timeout * 2
                )
        await self.report.run(self.name("relay ports reachable"), self._self_round_trip, self.timeout * 3)

    def _skip_rest(self, step: str) -> None:
        self.report.skip(self.name("remaining checks"), f"skipped: {step} failed")

    async def _connect(self, verify: bool) -> str:
        loop = asyncio.get_running_loop()
        user, password = self.credentials or (None, None)
        assert self.address is not None
        if self.t.transport == "udp":
            self.transport, self.protocol = await loop.create_datagram_endpoint(
                lambda: _Udp(self.address, user, password, CREDENTIAL_TTL, 300), remote_addr=self.address
            )
            self.protocol.indications = asyncio.Queue()
            return "UDP socket ready"
        context = tls_check.client_context(self.t.ca_file, verify) if self.t.transport == "tls" else None
        try:
            self.transport, self.protocol = await loop.create_connection(
                lambda: _Tcp(self.address, user, password, CREDENTIAL_TTL, 300),
                host=self.address[0],
                port=self.address[1],
                ssl=context,
                server_hostname=(self.t.tls_name or self.t.host) if context else None,
            )
        except ConnectionRefusedError:
            raise Failure(
                f"TCP connection to {_fmt(self.address)} refused",
                "nothing listens on this port",
                "start the TURN service (systemctl status bbb-turn-relay) or fix the NLB listener",
            ) from None
        except ssl.SSLError as error:
            raise Failure(
                f"TLS handshake failed: {error}",
                "the endpoint does not terminate TLS as turns: needs",
                "check the NLB's TLS listener on 443 and its certificate",
            ) from None
        self.protocol.indications = asyncio.Queue()
        return ("TLS " + str(self.transport.get_extra_info("ssl_object").version())) if context else "TCP connected"

    async def _binding(self) -> tuple[str, Address]:
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        try:
            response, _ = await self.protocol.request(request)
        except ConnectionError as error:
            raise closed(error) from None
        self.mapped = response.attributes.get("XOR-MAPPED-ADDRESS") or response.attributes.get("MAPPED-ADDRESS")
        if self.mapped is None:
            raise Failure("Binding response without XOR-MAPPED-ADDRESS", "not a STUN server", "check the port")
        return f"reflexive address {_fmt(self.mapped)}", self.mapped

    async def _unauthenticated(self) -> str:
        request = stun.Message(message_method=stun.Method.ALLOCATE, message_class=stun.Class.REQUEST)
        request.attributes["REQUESTED-TRANSPORT"] = 17 << 24
        try:
            await self.protocol.request(request)
        except stun.TransactionFailed as error:
            attributes = error.response.attributes
            if error.response.error_code == 401 and "REALM" in attributes and "NONCE" in attributes:
                return f"401 with realm {attributes['REALM']!r}"
            raise Failure(
                f"unauthenticated Allocate answered {error.response.error_code}",
                "the server does not challenge for credentials as RFC 8656 requires",
                "check the relay's auth settings",
            ) from None
        raise Failure(
            "an unauthenticated Allocate succeeded",
            "this TURN server is an open relay: anybody can relay traffic through it",
            "enable REST authentication (use-auth-secret) at once",
        )

    async def _allocate(self) -> tuple[str, Address]:
        try:
            self.relayed = await self.protocol.connect()
        except stun.TransactionFailed as error:
            raise turn_failure(error, "Allocate") from None
        except ConnectionError as error:
            raise closed(error) from None
        self.protocol.receiver = self.inbox
        self.mapped = self.protocol.mapped_address or self.mapped
        assert self.address is not None and self.relayed is not None
        problem = private_relayed_address(self.address[0], self.relayed[0])
        if problem is not None:
            raise problem
        return f"relayed address {_fmt(self.relayed)}", self.relayed

    async def _permission(self, peer: Address) -> str:
        request = stun.Message(message_method=stun.Method.CREATE_PERMISSION, message_class=stun.Class.REQUEST)
        request.attributes["XOR-PEER-ADDRESS"] = peer
        try:
            await self.protocol.request_with_retry(request)
        except stun.TransactionFailed as error:
            raise turn_failure(error, "CreatePermission") from None
        return f"permission for {peer[0]} installed"

    async def _bind(self, peer: Address) -> str:
        number = self.next_channel
        self.next_channel += 1
        try:
            await self.protocol.channel_bind(number, peer)
        except stun.TransactionFailed as error:
            raise turn_failure(error, "ChannelBind") from None
        # Tell aioice about the channel so that it frames our sends and hands us the peer's ChannelData.
        self.protocol.peer_to_channel[peer] = number
        self.protocol.channel_to_peer[number] = peer
        self.protocol.channel_refresh_at[number] = time.time() + 240
        return f"channel {number:#06x} bound"

    async def _echo(self, peer: Address) -> str:
        payload = b"bbb-on-aws probe " + os.urandom(8).hex().encode()
        try:
            await self._resend_until(self.inbox.queue, payload, lambda: self.protocol.send_data(payload, peer))
        except TimeoutError:
            raise Failure(
                f"no echo from {_fmt(peer)} within {self.timeout:g} s",
                "the peer does not send datagrams back (it must echo, as turnutils_peer does), or a firewall on "
                "the peer's side drops UDP from the relay",
                "give an echoing peer with --peer, or check UDP from the relay to the peer",
            ) from None
        return f"{len(payload)} bytes out and back through {_fmt(self.relayed)}"  # type: ignore[arg-type]

    async def _self_round_trip(self) -> str:
        """The probe as its own peer: a second UDP socket sends to the relayed address (through the relay port
        range, as a BBB server would), the relay hands it over as a Data indication, the probe binds a
        channel to that source and answers through the relay."""
        assert self.relayed is not None and self.mapped is not None
        loop = asyncio.get_running_loop()
        try:
            await self._permission((self.mapped[0], 0))
        except Failure as failure:
            raise Failure(
                failure.detail,
                f"the relay refuses this probe's own address {self.mapped[0]} as a peer (a private or denied "
                "range), so it cannot stand in for a BBB server",
                "run the probe from a machine with a public address, or give --peer (an allowed echo peer)",
            ) from None
        family = socket.AF_INET6 if ":" in self.relayed[0] else socket.AF_INET
        transport, peer = await loop.create_datagram_endpoint(
            _Inbox, family=family, local_addr=("::" if family == socket.AF_INET6 else "0.0.0.0", 0)
        )
        try:
            ping = b"ping " + os.urandom(8).hex().encode()
            indications = self.protocol.indications
            try:
                source = await self._resend_until(indications, ping, lambda: _now(transport.sendto, ping, self.relayed))
            except TimeoutError:
                raise Failure(
                    f"nothing arrived from the relay port {self.relayed[1]}",
                    "UDP to the relay port range does not reach the relay (security group or network ACL "
                    "on deployment.turn.relayPorts), or the relay refuses this probe's own address",
                    "open UDP deployment.turn.relayPorts to the internet on the TURN security group",
                ) from None
            await self._bind(source)
            pong = b"pong " + os.urandom(8).hex().encode()
            try:
                await self._resend_until(peer.queue, pong, lambda: self.protocol.send_data(pong, source))
            except TimeoutError:
                raise Failure(
                    f"the relay took the ping from {_fmt(source)} but its answer never came back",
                    "the relay does not forward ChannelData to the peer (a relay fault) or the path back is filtered",
                    "check the relay's log and the outbound rules of the TURN security group",
                ) from None
            return f"peer -> relay port {self.relayed[1]} -> probe and back"
        finally:
            transport.close()

    async def _resend_until(
        self, queue: asyncio.Queue[tuple[bytes, Address]], payload: bytes, send: Callable[[], Awaitable[None]]
    ) -> Address:
        """Send `payload` every 0.5 s (UDP may drop any datagram) until it arrives on `queue`, up to the
        timeout; returns the address it came from, raises TimeoutError."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        while asyncio.get_running_loop().time() < deadline:
            await send()
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                while True:
                    data, source = await asyncio.wait_for(queue.get(), 0.5)
                    if data == payload:
                        return source
        raise TimeoutError

    async def _close(self) -> None:
        if self.protocol is not None and self.relayed is not None:
            # Refresh with lifetime 0 frees the allocation at once; it also closes the transport.
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError, ConnectionError, stun.TransactionError):
                await asyncio.wait_for(self.protocol.delete(), 1.0)
        if self.transport is not None:
            self.transport.close()


async def _resolve(host: str, port: int) -> Address:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as error:
        raise Failure(
            f"{host} does not resolve ({error.strerror})",
            "the DNS name is missing or mistyped",
            "check the record in the hosted zone (turn.<domain> is created per TURN instance at launch)",
        ) from None
    ipv4 = [info for info in infos if info[0] == socket.AF_INET]
    sockaddr = (ipv4 or infos)[0][4]
    return str(sockaddr[0]), int(sockaddr[1])


def _failed(name: str, failure: Failure) -> Any:
    from bbb_on_aws.checks import FAIL, Check

    return Check(name, FAIL, 0.0, failure.detail, failure.cause, failure.fix)


async def _now(function: Callable[..., object], *args: object) -> None:
    """A plain call as an awaitable (what _resend_until sends through)."""
    function(*args)


def _fmt(address: Address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def probe_turn(
    target: Target,
    *,
    secret: str | None,
    peer: Address | None = None,
    peer_echoes: bool = True,
    timeout: float = 3.0,
    report: Report | None = None,
) -> Report:
    report = report or Report()
    credentials = rest_credentials(secret) if secret is not None else None
    await TurnSession(target, report, timeout, credentials).run(peer, peer_echoes)
    return report


__all__ = ["Skipped", "Target", "probe_turn", "rest_credentials"]
