"""The admin HTTP endpoint (stdlib asyncio, HTTP/1.1, one request per connection).

    GET  /metrics  Prometheus text format (whatever `render_metrics()` returns)
    GET  /healthz  200 "ok" while the process serves (liveness)
    GET  /readyz   200 "ready" when started and not draining; 503 "starting" | "draining" | "stopping"
    POST /drain    starts the drain (same as SIGUSR1) -> 202 "draining"
    POST /reload   reloads certificates, secrets and peer lists (same as SIGHUP) -> 200, or 500 + errors
    HEAD works wherever GET does. Anything else: 404, or 405 with an Allow header.

It binds 127.0.0.1:9641 by default (`admin_host`/`admin_port`). POST /drain and /reload change state,
so they answer 403 unless the client's socket belongs to root or to the relay's own user. TCP has no
SO_PEERCRED; the owner of the client's end of a local connection is in the kernel's socket table
(/proc/net/tcp and tcp6, the `uid` column of the row whose local address is the client's and remote
address ours). A client on another host has no row there, so a scrape network can never drain a
relay, and neither can an unprivileged local user. The fleet drains with `systemctl kill
--signal=SIGUSR1` (docs/host-contract.md); `curl -X POST` as root works too.

Robustness: header block limited to `max_header_bytes` (431), body to `max_body_bytes` (413), whole
request to `request_timeout` seconds (408), no chunked bodies (501), unknown HTTP versions (505). At
most `max_connections` at once: a new connection over the limit sheds the oldest one still waiting
for its request line (idle or slow clients cannot starve /healthz), and only when every connection
is being answered is it refused (503). Every handler error becomes a 500 and a log line; nothing
here can raise into the relay's event loop.

How the relay starts it (the single process and the worker supervisor alike):

    admin = await start_admin(control, stats.snapshot, config.admin_host, config.admin_port)
    if admin is None:            # the port is taken: the reason is on stderr; clean up, exit 1
        ...
    await admin.close()

With worker processes the supervisor passes its summed snapshot, a collector of its own and
`before_metrics`, a coroutine that collects fresh counts from every worker before each scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.registry import Collector

from relay.ops.control import RelayControl
from relay.ops.metrics import RelayCollector, build_registry, render_metrics

_log = logging.getLogger(__name__)
_METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TEXT = "text/plain; charset=utf-8"
_LINGER_BYTES = 65536
_LINGER_SECONDS = 0.5
_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
_ROUTES: dict[str, frozenset[str]] = {
    "/metrics": frozenset({"GET", "HEAD"}),
    "/healthz": frozenset({"GET", "HEAD"}),
    "/readyz": frozenset({"GET", "HEAD"}),
    "/drain": frozenset({"POST"}),
    "/reload": frozenset({"POST"}),
}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = _TEXT
    headers: tuple[tuple[str, str], ...] = ()
    omit_body: bool = False  # HEAD: same headers (and Content-Length) as GET, no body


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AdminServer:
    def __init__(
        self,
        control: RelayControl,
        render_metrics: Callable[[], bytes],
        host: str = "127.0.0.1",
        port: int = 9641,
        *,
        max_connections: int = 32,
        request_timeout: float = 5.0,
        max_header_bytes: int = 8192,
        max_body_bytes: int = 1024,
        before_metrics: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._control = control
        self._render_metrics = render_metrics
        self._before_metrics = before_metrics
        self._host, self._port = host, port
        self._max_connections = max_connections
        self._timeout = request_timeout
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        # Open connections, oldest first; True while still waiting for the request head (sheddable).
        self._open: dict[asyncio.StreamWriter, bool] = {}
        self._server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when constructed with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self._host, self._port, limit=self._max_header, reuse_address=True
        )
        _log.info("admin endpoint listening on %s:%s", self._host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self._open) >= self._max_connections:
            oldest = next((w for w, waiting in self._open.items() if waiting), None)
            if oldest is not None:
                del self._open[oldest]
                _log.debug("admin connection from %s shed for a new one", oldest.get_extra_info("peername"))
                oldest.transport.abort()
        self._open[writer] = True
        try:
            if len(self._open) > self._max_connections:
                response = Response(503, b"too many admin connections\n")
            else:
                try:
                    response = await asyncio.wait_for(self._respond(reader, writer), self._timeout)
                except asyncio.TimeoutError:
                    response = Response(408, b"request timeout\n")
            await self._write(writer, response)
            await self._linger(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except Exception:
            _log.exception("admin connection from %s failed", peer)
        finally:
            self._open.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Response:
        try:
            method, path = await self._read_request(reader)
        except _BadRequest as exc:
            return Response(exc.status, f"{exc}\n".encode())
        finally:
            if writer in self._open:
                self._open[writer] = False  # past its request head: being answered, never shed
        allowed = _ROUTES.get(path)
        if allowed is None:
            return Response(404, b"not found\n")
        if method not in allowed:
            return Response(405, b"method not allowed\n", headers=(("Allow", ", ".join(sorted(allowed))),))
        try:
            if path == "/metrics" and self._before_metrics is not None:
                await self._before_metrics()  # e.g. fresh counts from every worker
            response = self._dispatch(path, writer.get_extra_info("peername"), writer.get_extra_info("sockname"))
        except Exception:
            _log.exception("admin %s %s failed", method, path)
            return Response(500, b"internal error\n")
        if method == "HEAD":
            return Response(response.status, response.body, response.content_type, response.headers, True)
        return response

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, str]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise _BadRequest(431, "request header too large") from None
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise
            raise _BadRequest(400, "incomplete request") from None
        text = head.decode("latin-1")  # decodes any byte; HTTP header bytes are latin-1 by definition
        request_line, *header_lines = text[:-4].split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[0].isalpha() or not parts[1].startswith("/"):
            raise _BadRequest(400, "malformed request line")
        method, target, version = parts
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _BadRequest(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        headers: dict[str, str] = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(400, "malformed header line")
            headers[name.lower()] = value.strip()
        if "transfer-encoding" in headers:
            raise _BadRequest(501, "chunked request bodies are not supported")
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit() or not length_text.isascii():
            raise _BadRequest(400, "invalid Content-Length")
        length = int(length_text)
        if length > self._max_body:
            raise _BadRequest(413, f"request body over {self._max_body} bytes")
        if length:
            await reader.readexactly(length)  # read and ignore: no endpoint takes a body
        return method, target.split("?", 1)[0]

    def _dispatch(self, path: str, peer: object, local: object) -> Response:
        if path == "/metrics":
            return Response(200, self._render_metrics(), _METRICS_CONTENT_TYPE)
        if path == "/healthz":
            return Response(200, b"ok\n")
        if path == "/readyz":
            control = self._control
            if control.ready:
                return Response(200, b"ready\n")
            state = "stopping" if control.stopping else "draining" if control.draining else "starting"
            return Response(503, f"{state}\n".encode())
        if not _is_loopback(peer):
            _log.warning("admin %s refused for non-loopback client %s", path, peer)
            return Response(403, b"control endpoints accept loopback clients only\n")
        owner = socket_owner(peer, local)
        if owner not in (0, os.getuid()):
            _log.warning("admin %s refused for local client %s owned by uid %s", path, peer, owner)
            return Response(403, b"control endpoints accept root and the relay's own user only\n")
        if path == "/drain":
            started = self._control.start_drain(f"admin {path}")
            return Response(202, b"draining\n" if started else b"already draining\n")
        outcome = self._control.request_reload("admin /reload")
        if outcome.ok:
            return Response(200, b"reloaded\n")
        return Response(500, ("reload failed:\n" + "\n".join(outcome.errors) + "\n").encode())

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close, then discard what the client still sends (briefly, boundedly).

        Closing a socket with unread input makes the kernel send a RST, which can destroy the
        response before the client reads it (e.g. a 413 or 503 sent before the request was read).
        """
        if writer.can_write_eof():
            writer.write_eof()
        discarded = 0
        with contextlib.suppress(asyncio.TimeoutError):
            while discarded < _LINGER_BYTES:
                chunk = await asyncio.wait_for(reader.read(_LINGER_BYTES), _LINGER_SECONDS)
                if not chunk:
                    break
                discarded += len(chunk)

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response) -> None:
        reason = _REASONS.get(response.status, "")
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(response.body)}",
            "Connection: close",
            "Cache-Control: no-store",
            *(f"{name}: {value}" for name, value in response.headers),
        ]
        body = b"" if response.omit_body else response.body
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()


async def start_admin(
    control: RelayControl,
    snapshot: Callable[[], Mapping[str, int]],
    host: str,
    port: int,
    *,
    collectors: Sequence[Collector] = (),
    before_metrics: Callable[[], Awaitable[None]] | None = None,
) -> AdminServer | None:
    """Start the endpoint over a private registry of the relay's metrics (read from `snapshot` at each
    scrape, plus `collectors`); None when it cannot bind, after telling the operator why on stderr
    (the caller then closes what it started and exits 1)."""
    registry = build_registry(RelayCollector(snapshot, draining=lambda: control.draining))
    for collector in collectors:
        registry.register(collector)
    admin = AdminServer(control, lambda: render_metrics(registry), host, port, before_metrics=before_metrics)
    try:
        await admin.start()
    except OSError as error:
        print(f"bbb-turn-relay: cannot start the admin endpoint: {error}", file=sys.stderr)
        return None
    return admin


def _is_loopback(peer: object) -> bool:
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _proc_address(host: str, port: int) -> tuple[str, str]:
    """(file, "ADDR:PORT") as /proc/net/tcp{,6} print an address: 32-bit words in host byte order."""
    packed = socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    words = "".join(f"{word:08X}" for word in struct.unpack(f"={len(packed) // 4}I", packed))
    return ("tcp6" if len(packed) == 16 else "tcp"), f"{words}:{port:04X}"


def socket_owner(peer: object, local: object, proc: str = "/proc/net") -> int | None:
    """The uid owning the client's end of a local TCP connection (the row of /proc/net/tcp{,6} whose
    local address is `peer` and remote address `local`), or None when there is no such row."""
    if not (isinstance(peer, tuple) and isinstance(local, tuple) and len(peer) >= 2 and len(local) >= 2):
        return None
    candidates = [(peer[0], local[0])]
    for a, b in list(candidates):  # a dual-stack listener sees an IPv4 client as ::ffff:a.b.c.d
        if a.startswith("::ffff:") and b.startswith("::ffff:"):
            candidates.append((a[7:], b[7:]))
    for client_host, server_host in candidates:
        try:
            table, client = _proc_address(client_host.split("%", 1)[0], int(peer[1]))
            _, server = _proc_address(server_host.split("%", 1)[0], int(local[1]))
            with open(f"{proc}/{table}") as rows:
                for row in rows:
                    fields = row.split()
                    if len(fields) > 7 and fields[1] == client and fields[2] == server:
                        return int(fields[7])
        except (OSError, ValueError):
            continue
    return None
