"""A local HTTP server that behaves like Scalelite's server-management API and like BBB hosts' getMeetings.

Scalelite side, as in blindsidenetworks/scalelite (app/controllers/api/servers_controller.rb,
concerns/api_helper.rb, models/server.rb, services/server_update_service.rb, lib/tasks/poll.rake):
- checksum: `action_name.camelcase(:lower) + query_string` with `checksum=<value>` cut out by the same
  string substitution, + each LOADBALANCER_SECRET; algorithm from the checksum length (40/64/128);
  failure -> HTTP 200 with `<response><returncode>FAILED</returncode><messageKey>checksumError</...>`;
- JSON bodies are parsed only with `Content-Type: application/json` (else the params are missing and
  Rails' ParameterMissing answers the XML internalError);
- bodies and statuses of getServers / getServerInfo / addServer (201, disabled) / updateServer /
  deleteServer / panicServer (end per meeting, 400 on the first failing end call after destroying it);
- `poll()` does what the poller does: load = participants of non-breakout meetings x multiplier, offline
  after 2 failed polls (meetings dropped), and a cordoned server at load 0 becomes disabled.

BBB side, one fake host per name, reached at `/<host>/bigbluebutton/api/<call>`: getMeetings and end with
BBB's checksum (call + query + securitySalt, algorithm from the length); a host marked down closes the
connection without answering.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ALGORITHMS = {40: hashlib.sha1, 64: hashlib.sha256, 128: hashlib.sha512}


def xml_failure(key: str, message: str) -> str:
    return (
        '<?xml version="1.0"?>\n<response><returncode>FAILED</returncode>'
        f"<messageKey>{key}</messageKey><message>{message}</message></response>"
    )


@dataclass
class FakeHost:
    name: str
    secret: str
    meetings: dict[str, int] = field(default_factory=dict)  # meetingID -> participants
    down: bool = False
    calls: list[str] = field(default_factory=list)

    def verify(self, call: str, query: str) -> bool:
        params = parse_qs(query, keep_blank_values=True)
        checksum = (params.get("checksum") or [""])[0]
        digest = ALGORITHMS.get(len(checksum))
        if digest is None:
            return False
        rest = re.sub(rf"&checksum={checksum}|checksum={checksum}&|checksum={checksum}", "", query)
        return digest(f"{call}{rest}{self.secret}".encode()).hexdigest() == checksum

    def get_meetings_xml(self) -> str:
        if not self.meetings:
            return (
                "<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey>"
                "<message>no meetings were found on this server</message></response>"
            )
        items = "".join(
            f"<meeting><meetingName>m</meetingName><meetingID>{mid}</meetingID><running>true</running>"
            f"<participantCount>{count}</participantCount><moderatorCount>1</moderatorCount>"
            "<isBreakout>false</isBreakout></meeting>"
            for mid, count in self.meetings.items()
        )
        return f"<response><returncode>SUCCESS</returncode><meetings>{items}</meetings></response>"


@dataclass
class FakeServer:
    id: str
    url: str
    secret: str
    state: str = "disabled"
    load: float | None = None
    load_multiplier: float = 1.0
    online: bool = False
    unhealthy: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "secret": self.secret,
            "tag": "",
            "bbb_version": "",
            "state": self.state,
            "load": self.load if self.load is not None else "unavailable",
            "load_multiplier": str(self.load_multiplier),
            "online": "online" if self.online else "offline",
        }


class FakeBbbWorld:
    """Scalelite + BBB hosts behind one local HTTP server."""

    def __init__(self, loadbalancer_secret: str, *, log: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.loadbalancer_secrets = [loadbalancer_secret]
        self.hosts: dict[str, FakeHost] = {}
        self.servers: dict[str, FakeServer] = {}
        self.meeting_server: dict[str, str] = {}  # Scalelite's Meeting records: meetingID -> server id
        self.requests: list[dict[str, Any]] = []
        self.fail_status: int | None = None  # answer every Scalelite call with this status while set
        self._log = log or (lambda kind, detail: None)
        self._lock = threading.RLock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> FakeBbbWorld:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def scalelite_url(self) -> str:
        return f"{self.base}/scalelite/api"

    @property
    def bbb_url_template(self) -> str:
        return self.base + "/{host}/bigbluebutton/api"

    # --- test controls ---------------------------------------------------------------------------
    def add_host(self, name: str, secret: str) -> FakeHost:
        with self._lock:
            self.hosts[name] = FakeHost(name, secret)
            return self.hosts[name]

    def server_for_host(self, host: str) -> FakeServer | None:
        with self._lock:
            for server in self.servers.values():
                if urlsplit(server.url).hostname == host:
                    return server
        return None

    def start_meeting(self, host: str, meeting_id: str, participants: int) -> None:
        """A meeting created through Scalelite on `host` (it must be the enabled server Scalelite picks)."""
        with self._lock:
            server = self.server_for_host(host)
            assert server is not None and server.state == "enabled", "Scalelite only places meetings on enabled servers"
            self.hosts[host].meetings[meeting_id] = participants
            self.meeting_server[meeting_id] = server.id

    def poll(self) -> None:
        """One pass of Scalelite's poller over every server."""
        with self._lock:
            for server in list(self.servers.values()):
                host = self.hosts.get(urlsplit(server.url).hostname or "")
                if host is None or host.down:
                    server.unhealthy += 1
                    if server.unhealthy >= 2 and server.online:
                        server.online = False
                        for mid in [m for m, sid in self.meeting_server.items() if sid == server.id]:
                            del self.meeting_server[mid]
                    continue
                server.unhealthy = 0
                server.online = True
                for mid in [m for m, sid in self.meeting_server.items() if sid == server.id]:
                    if mid not in host.meetings:
                        del self.meeting_server[mid]
                if server.state == "disabled":
                    server.load = None
                    continue
                server.load = float(sum(host.meetings.values())) * server.load_multiplier
                if server.state == "cordoned" and server.load == 0:
                    server.state = "disabled"
                    server.load = None
            self._log("scalelite-poll", {s.id: s.state for s in self.servers.values()})

    def scalelite_actions(self) -> list[str]:
        return [r["action"] for r in self.requests if r["side"] == "scalelite"]

    # --- HTTP ------------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        world = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _send(self, status: int, body: str, content_type: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if parts.path.startswith("/scalelite/api/"):
                    status, body, ctype = world._scalelite(
                        method, parts.path.rsplit("/", 1)[-1], parts.query, raw, self.headers.get("Content-Type", "")
                    )
                    self._send(status, body, ctype)
                    return
                match = re.match(r"^/([^/]+)/bigbluebutton/api/(\w+)$", parts.path)
                if match is None:
                    self._send(404, "not found", "text/plain")
                    return
                answer = world._bbb(match.group(1), match.group(2), parts.query)
                if answer is None:  # host down: no HTTP answer at all
                    self.close_connection = True
                    self.connection.close()
                    return
                self._send(200, answer, "application/xml")

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

        return Handler

    def _bbb(self, host_name: str, call: str, query: str) -> str | None:
        with self._lock:
            host = self.hosts.get(host_name)
            if host is None or host.down:
                return None
            host.calls.append(call)
            if not host.verify(call, query):
                return xml_failure("checksumError", "Checksums do not match")
            if call == "getMeetings":
                self._log("bbb-getMeetings", {"host": host_name, "meetings": len(host.meetings)})
                return host.get_meetings_xml()
            if call == "end":
                meeting = (parse_qs(query).get("meetingID") or [""])[0]
                host.meetings.pop(meeting, None)
                return (
                    "<response><returncode>SUCCESS</returncode>"
                    "<messageKey>sentEndMeetingRequest</messageKey></response>"
                )
            return xml_failure("unsupportedRequest", "This request is not supported.")

    def _verify_lb(self, action: str, query: str) -> bool:
        checksum = (parse_qs(query, keep_blank_values=True).get("checksum") or [""])[0]
        digest = ALGORITHMS.get(len(checksum)) if checksum else None
        if digest is None:
            return False
        check = action + re.sub(rf"&checksum={checksum}|checksum={checksum}&|checksum={checksum}", "", query)
        return any(digest(f"{check}{secret}".encode()).hexdigest() == checksum for secret in self.loadbalancer_secrets)

    def _scalelite(self, method: str, action: str, query: str, raw: bytes, content_type: str) -> tuple[int, str, str]:
        with self._lock:
            params: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items() if k != "checksum"}
            if raw and content_type.split(";")[0].strip() == "application/json":
                params.update(json.loads(raw))
            self.requests.append({"side": "scalelite", "action": action, "method": method, "params": params})
            self._log(
                "scalelite-" + action,
                {k: v for k, v in params.items() if k != "server"}
                | ({"state": params["server"].get("state")} if isinstance(params.get("server"), dict) else {}),
            )
            if self.fail_status is not None:
                return self.fail_status, "<html>Internal Server Error</html>", "text/html"
            routes = {
                ("GET", "getServers"),
                ("GET", "getServerInfo"),
                ("POST", "addServer"),
                ("POST", "updateServer"),
                ("POST", "deleteServer"),
                ("POST", "panicServer"),
            }
            if (method, action) not in routes:
                return 200, xml_failure("unsupportedRequest", "This request is not supported."), "application/xml"
            if not self._verify_lb(action, query):
                return (
                    200,
                    xml_failure("checksumError", "You did not pass the checksum security check"),
                    "application/xml",
                )
            return getattr(self, "_api_" + action)(params)

    @staticmethod
    def _json(status: int, data: Any) -> tuple[int, str, str]:
        return status, json.dumps(data), "application/json; charset=utf-8"

    def _find(self, params: dict[str, Any]) -> FakeServer | tuple[int, str, str]:
        server = self.servers.get(str(params.get("id")))
        if server is None:
            return self._json(404, {"error": f"Couldn't find server with id={params.get('id') or ''}"})
        return server

    def _api_getServers(self, params: dict[str, Any]) -> tuple[int, str, str]:
        if not self.servers:
            return self._json(404, {"error": "No servers are configured"})
        return self._json(200, [s.to_json() for s in self.servers.values()])

    def _api_getServerInfo(self, params: dict[str, Any]) -> tuple[int, str, str]:
        found = self._find(params)
        return found if isinstance(found, tuple) else self._json(200, found.to_json())

    def _api_addServer(self, params: dict[str, Any]) -> tuple[int, str, str]:
        server = params.get("server")
        if not isinstance(server, dict):
            return (
                200,
                xml_failure("internalError", "param is missing or the value is empty: server"),
                "application/xml",
            )
        if not server.get("url") or not server.get("secret"):
            return self._json(400, {"error": "Server needs a URL and a secret"})
        created = FakeServer(id=str(uuid.uuid4()), url=server["url"], secret=server["secret"])
        self.servers[created.id] = created
        return self._json(201, created.to_json())

    def _api_updateServer(self, params: dict[str, Any]) -> tuple[int, str, str]:
        found = self._find(params)
        if isinstance(found, tuple):
            return found
        update = params.get("server")
        if not isinstance(update, dict):
            return (
                200,
                xml_failure("internalError", "param is missing or the value is empty: server"),
                "application/xml",
            )
        states = {"enable": "enabled", "cordon": "cordoned", "disable": "disabled"}
        if "state" in update:
            if update["state"] not in states:
                return self._json(400, {"error": f"Invalid state parameter: {update['state']}"})
            new_state = states[update["state"]]
            if new_state != found.state and new_state == "disabled":
                found.load = None
            found.state = new_state
        return self._json(200, found.to_json())

    def _api_deleteServer(self, params: dict[str, Any]) -> tuple[int, str, str]:
        found = self._find(params)
        if isinstance(found, tuple):
            return found
        del self.servers[found.id]
        return self._json(200, {"success": f"Server id={found.id} was destroyed"})

    def _api_panicServer(self, params: dict[str, Any]) -> tuple[int, str, str]:
        found = self._find(params)
        if isinstance(found, tuple):
            return found
        keep_state = bool(params.get("keep_state"))
        host = self.hosts.get(urlsplit(found.url).hostname or "")
        for mid in [m for m, sid in self.meeting_server.items() if sid == found.id]:
            del self.meeting_server[mid]  # meeting.destroy! happens before the end call
            if host is None or host.down:
                return self._json(400, {"error": f"Couldn't disable server id={found.id}"})
            host.calls.append("end")
            host.meetings.pop(mid, None)
        if not keep_state:
            found.state = "disabled"
            found.load = None
        return self._json(
            200, {"success": f"Server id={found.id} has been disabled and the meetings have been destroyed"}
        )
