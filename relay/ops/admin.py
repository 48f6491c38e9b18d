"""The admin HTTP endpoint (stdlib asyncio, HTTP/1.1, one request per connection).

    GET  /metrics  Prometheus text format (whatever `render_metrics()` returns)
    GET  /healthz  200 "ok" while the process serves (liveness)
    GET  /readyz   200 "ready" when started and not draining; 503 "starting" | "draining" | "stopping"
    POST /drain    starts the drain (same as SIGUSR1) -> 202 "draining"
    POST /reload   reloads certificates, secrets and peer lists (same as SIGHUP) -> 200, or 500 + errors
    HEAD works wherever GET does. Anything else: 404, or 405 with an Allow header.

It binds 127.0.0.1:9641 by default (`admin_host`/`admin_port`). If an operator binds it elsewhere so
that Prometheus can scrape remotely, POST /drain and /reload still answer 403 unless the client is on
a loopback address: a scrape network must not be able to take a relay out of service.

Robustness: header block limited to `max_header_bytes` (431), body to `max_body_bytes` (413), whole
request to `request_timeout` seconds (408), at most `max_connections` at once (503), no chunked
bodies (501), unknown HTTP versions (505). Every handler error becomes a 500 and a log line; nothing
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
        self._active = 0
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
        self._active += 1
        try:
            if self._active > self._max_connections:
                response = Response(503, b"too many admin connections\n")
            else:
                try:
                    response = await asyncio.wait_for(self._respond(reader, peer), self._timeout)
                except asyncio.TimeoutError:
                    response = Response(408, b"request timeout\n")
            await self._write(writer, response)
            await self._linger(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except Exception:
            _log.exception("admin connection from %s failed", peer)
        finally:
            self._active -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader, peer: object) -> Response:
        try:
            method, path = await self._read_request(reader)
        except _BadRequest as exc:
            return Response(exc.status, f"{exc}\n".encode())
        allowed = _ROUTES.get(path)
        if allowed is None:
            return Response(404, b"not found\n")
        if method not in allowed:
            return Response(405, b"method not allowed\n", headers=(("Allow", ", ".join(sorted(allowed))),))
        try:
            if path == "/metrics" and self._before_metrics is not None:
                await self._before_metrics()  # e.g. fresh counts from every worker
            response = self._dispatch(path, peer)
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

    def _dispatch(self, path: str, peer: object) -> Response:
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
