"""Small HTTP client on urllib (stdlib): explicit timeouts, retries with backoff for safe calls only."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
_sleep = time.sleep  # the tests' world replaces it: backoff there costs fake time, not real time


class HttpUnreachable(RuntimeError):
    """No HTTP answer at all (refused, reset, timed out, TLS or DNS failure)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    attempts: int = 1,
    backoff: float = 0.5,
    max_body: int = 4 * 1024 * 1024,
) -> Response:
    """One request; 4xx/5xx are returned, not raised. Retries (attempts > 1) only on no answer or 5xx,
    so pass attempts > 1 only for calls that are safe to repeat."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"refusing non-HTTP URL {url!r}")
    last_error: Exception | None = None
    response: Response | None = None
    for attempt in range(max(1, attempts)):
        if attempt:
            _sleep(backoff * (2 ** (attempt - 1)))
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as raw:
                response = Response(raw.status, raw.read(max_body), raw.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as exc:
            content_type = exc.headers.get("Content-Type", "") if exc.headers else ""
            response = Response(exc.code, exc.read(max_body), content_type)
        except (TimeoutError, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            last_error = exc
            response = None
            continue
        if response.status not in RETRYABLE_STATUS:
            return response
    if response is not None:
        return response
    reason = getattr(last_error, "reason", last_error)
    raise HttpUnreachable(f"{method} {_redact(url)}: no answer ({reason})")


def _redact(url: str) -> str:
    """Query strings carry checksums: keep them out of logs and errors."""
    return url.split("?", 1)[0]
