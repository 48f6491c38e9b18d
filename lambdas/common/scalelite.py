"""Client of Scalelite's server-management API (v1.5.1 and later, `/scalelite/api/...`).

Behaviour follows blindsidenetworks/scalelite `app/controllers/api/servers_controller.rb` and
`concerns/api_helper.rb`:
- checksum = hexdigest(action + query string without `checksum=` + LOADBALANCER_SECRET); the algorithm is
  told by the digest length (40 SHA-1, 64 SHA-256, 128 SHA-512); the JSON body is not hashed;
- a wrong checksum or missing parameter is answered 200 with a BBB-style XML `<returncode>FAILED</...>`;
- getServers answers 404 `{"error": "No servers are configured"}` when the list is empty;
- addServer answers 201 with the server, added *disabled*; updateServer/deleteServer/panicServer answer
  404 `{"error": "Couldn't find server with id=..."}` for an unknown id;
- panicServer sends `end` for each meeting and answers 400 as soon as one end call fails, after having
  destroyed that meeting's record: repeating it removes an unreachable server's meetings one by one
  without any end call succeeding, which is the API's only way to get `panic[skip_end_calls]` semantics.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from common import http

_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
STATES = ("enable", "cordon", "disable")


class ScaleliteError(RuntimeError):
    """Scalelite answered, but not with what the call needs (status and Scalelite's message included)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ScaleliteUnavailable(ScaleliteError):
    """No answer, or a 5xx: worth trying again later."""


@dataclass(frozen=True)
class Server:
    id: str
    url: str
    state: str  # enabled | cordoned | disabled
    load: float | None  # None when Scalelite reports "unavailable"
    online: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Server:
        load = data.get("load")
        try:
            load_value = None if load in (None, "", "unavailable") else float(load)
        except (TypeError, ValueError):
            load_value = None
        return cls(
            id=str(data["id"]),
            url=str(data.get("url", "")),
            state=str(data.get("state", "")),
            load=load_value,
            online=str(data.get("online", "")) == "online",
        )

    def describe(self) -> dict[str, Any]:
        """For logs: everything but the secret (which the JSON carries and this class never keeps)."""
        return {"id": self.id, "url": self.url, "state": self.state, "load": self.load, "online": self.online}


def same_url(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


class ScaleliteClient:
    def __init__(
        self,
        api_url: str,
        secret: str,
        *,
        algorithm: str = "sha256",
        timeout: float = 15.0,
        panic_timeout: float = 60.0,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if not api_url.startswith(("https://", "http://")):
            raise ValueError(
                f"Scalelite API URL {api_url!r} must start with https:// (e.g. https://scalelite.example.org/scalelite/api)"
            )
        if not secret:
            raise ValueError("the Scalelite LOADBALANCER_SECRET is empty; check the secret in Secrets Manager")
        if algorithm not in _ALGORITHMS:
            raise ValueError(f"checksum algorithm {algorithm!r} is not one of {', '.join(_ALGORITHMS)}")
        self._base = api_url.rstrip("/")
        self._secret = secret
        self._hash = _ALGORITHMS[algorithm]
        self._timeout = timeout
        self._panic_timeout = panic_timeout
        self._attempts = attempts
        self._backoff = backoff

    def checksum(self, action: str, query: str) -> str:
        return self._hash(f"{action}{query}{self._secret}".encode()).hexdigest()

    def _url(self, action: str, params: dict[str, str] | None = None) -> str:
        query = urlencode(params or {})
        checksum = self.checksum(action, query)
        return f"{self._base}/{action}?{query + '&' if query else ''}checksum={checksum}"

    def _call(
        self,
        action: str,
        *,
        params: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
        attempts: int | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Any]:
        url = self._url(action, params)
        tries = self._attempts if attempts is None else attempts
        try:
            if body is None:
                response = http.request(
                    "GET", url, timeout=timeout or self._timeout, attempts=tries, backoff=self._backoff
                )
            else:
                response = http.request(
                    "POST",
                    url,
                    body=json.dumps(body).encode(),
                    timeout=timeout or self._timeout,
                    attempts=tries,
                    backoff=self._backoff,
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                )
        except http.HttpUnreachable as exc:
            raise ScaleliteUnavailable(f"Scalelite {action}: {exc}") from None
        text = response.text().strip()
        if response.status >= 500:
            raise ScaleliteUnavailable(f"Scalelite {action} answered HTTP {response.status}", response.status)
        if text.startswith("<"):
            raise ScaleliteError(f"Scalelite {action} refused the request: {_xml_failure(text)}", response.status)
        try:
            data = json.loads(text) if text else None
        except json.JSONDecodeError:
            raise ScaleliteError(
                f"Scalelite {action} answered HTTP {response.status} with a body that is not JSON", response.status
            ) from None
        return response.status, data

    @staticmethod
    def _error(action: str, status: int, data: Any) -> ScaleliteError:
        message = data.get("error") if isinstance(data, dict) else None
        return ScaleliteError(f"Scalelite {action} answered HTTP {status}: {message or data!r}", status)

    def get_servers(self) -> list[Server]:
        status, data = self._call("getServers")
        if status == 404 and isinstance(data, dict) and data.get("error") == "No servers are configured":
            return []
        if status != 200 or not isinstance(data, list):
            raise self._error("getServers", status, data)
        return [Server.from_json(item) for item in data]

    def get_server(self, server_id: str) -> Server | None:
        status, data = self._call("getServerInfo", params={"id": server_id})
        if status == 404:
            return None
        if status != 200 or not isinstance(data, dict):
            raise self._error("getServerInfo", status, data)
        return Server.from_json(data)

    def find_by_url(self, url: str) -> Server | None:
        matches = [server for server in self.get_servers() if same_url(server.url, url)]
        return matches[0] if matches else None

    def add_server(self, url: str, secret: str) -> Server:
        """Not retried here (a repeated add would duplicate the server): callers look up the URL first."""
        status, data = self._call("addServer", body={"server": {"url": url, "secret": secret}}, attempts=1)
        if status != 201 or not isinstance(data, dict):
            raise self._error("addServer", status, data)
        return Server.from_json(data)

    def set_state(self, server_id: str, state: str) -> Server | None:
        """enable | cordon | disable; None if the server does not exist (any more)."""
        if state not in STATES:
            raise ValueError(f"Scalelite server state {state!r} is not one of {', '.join(STATES)}")
        status, data = self._call("updateServer", body={"id": server_id, "server": {"state": state}})
        if status == 404:
            return None
        if status != 200 or not isinstance(data, dict):
            raise self._error("updateServer", status, data)
        return Server.from_json(data)

    def delete_server(self, server_id: str) -> bool:
        """True if deleted now, False if it was already gone."""
        status, data = self._call("deleteServer", body={"id": server_id})
        if status == 404:
            return False
        if status != 200:
            raise self._error("deleteServer", status, data)
        return True

    def panic_server(self, server_id: str, *, keep_state: bool) -> str:
        """One panicServer call: "done" (every meeting cleared), "partial" (an end call failed; one more
        meeting record is gone) or "missing"."""
        status, data = self._call(
            "panicServer",
            body={"id": server_id, "keep_state": keep_state, "server": {"keep_state": keep_state}},
            attempts=1,
            timeout=self._panic_timeout,
        )
        if status == 404:
            return "missing"
        if status == 400:
            return "partial"
        if status != 200:
            raise self._error("panicServer", status, data)
        return "done"


def _xml_failure(text: str) -> str:
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return "unparseable XML answer"
    key = root.findtext("messageKey") or "unknown"
    message = root.findtext("message") or ""
    hint = " (check that LOADBALANCER_SECRET matches the secret in Secrets Manager)" if key == "checksumError" else ""
    return f"{key}: {message}{hint}"
