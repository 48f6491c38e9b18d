"""Structured logging: one JSON object per line (or `key=value` text), with secrets kept out.

Logs are for events (start, reload, drain, auth policy hits), never for packets: the hot path must not
call a logger per packet, so this module offers no per-packet helper. Count packets in
`relay.ops.metrics.RelayStats` instead.

How the server uses it:

    configure_logging(config.log_level, config.log_format)     # once, at start (and again on reload)
    for secret in config.auth_secrets: register_secret(secret) # done by relay.config.load_config
    log = get_logger("relay.server")
    log.info("listening", transport="udp", address="0.0.0.0:3478")
    log.warning("allocation_refused", reason="draining", client="203.0.113.7:5000")

JSON line: {"ts": "2026-11-21T13:25:33.123Z", "level": "info", "logger": "relay.server",
"event": "listening", "transport": "udp", "address": "0.0.0.0:3478"}. Plain `logging` calls from
other libraries are formatted the same way (their message becomes `event`).

Secrets never reach the output: fields whose name looks secret (`secret`, `password`, `token`, ...)
are replaced with "[REDACTED]", and every value passed to `register_secret` is replaced wherever it
appears in a finished line (message, field, traceback). Text lines escape control characters so a
client-chosen value (a username) cannot forge a log line.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import sys
from collections.abc import Hashable
from typing import IO, Any, Literal

REDACTED = "[REDACTED]"
_SECRET_FIELD = re.compile(r"secret|passw|passwd|pwd|token|credential|private_key|hmac", re.IGNORECASE)
_MIN_REGISTERED_SECRET = 6  # shorter values would blank out ordinary words in every line
_RESERVED = ("ts", "level", "logger", "event")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_secrets: set[str] = set()
_handler_marker = "_relay_structured_handler"


def register_secret(value: str | bytes | None) -> None:
    """Make sure `value` never appears in a log line (config secrets, static user passwords)."""
    if value is None:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) >= _MIN_REGISTERED_SECRET:
        _secrets.add(text)
        if isinstance(value, bytes):
            _secrets.add(value.hex())


def clear_registered_secrets() -> None:
    """Forget registered secrets (after a reload removed them, and in tests)."""
    _secrets.clear()


def scrub(text: str) -> str:
    # Longest first, so a secret that contains another one is removed whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class EventLogger:
    """A thin wrapper over `logging.Logger` taking an event name and keyword fields."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def is_enabled_for(self, level: str) -> bool:
        return self._logger.isEnabledFor(_LEVELS[level])

    def debug(self, event: str, /, **fields: Any) -> None:
        self._log(logging.DEBUG, event, fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self._log(logging.INFO, event, fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self._log(logging.WARNING, event, fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self._log(logging.ERROR, event, fields)

    def exception(self, event: str, /, **fields: Any) -> None:
        """Log at error level with the current exception's traceback."""
        self._log(logging.ERROR, event, fields, exc_info=True)

    def _log(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, event, extra={"fields": fields}, exc_info=exc_info, stacklevel=3)


class RateLimitedLog:
    """At most one line per key and `interval`: the first event of a key is written at once, later ones
    in the interval are only counted, and the count goes with the key's next line, or with the summary
    `due` returns once the interval is over. A flood of one kind therefore costs one line per interval
    whatever its rate. Keys must come from a bounded set (a fixed list of reasons, never a client's
    address): the state is one small entry per key. Time is passed in."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._state: dict[Hashable, list[Any]] = {}  # key -> [next line allowed at, suppressed, last sample]

    def admit(self, key: Hashable, now: float, sample: Any = None) -> int | None:
        """None: do not write (counted); else write now, adding how many were not written before it."""
        state = self._state.get(key)
        if state is None:
            self._state[key] = [now + self.interval, 0, None]
            return 0
        if now < state[0]:
            state[1] += 1
            state[2] = sample
            return None
        suppressed = state[1]
        state[:] = [now + self.interval, 0, None]
        return suppressed

    def due(self, now: float) -> list[tuple[Hashable, int, Any]]:
        """(key, count, last sample) for every key with events not yet written whose interval is over."""
        summaries = []
        for key, state in self._state.items():
            if state[1] and now >= state[0]:
                summaries.append((key, state[1], state[2]))
                state[:] = [now + self.interval, 0, None]
        return summaries

    def suppressed(self, key: Hashable) -> int:
        state = self._state.get(key)
        return 0 if state is None else state[1]


def get_logger(name: str) -> EventLogger:
    return EventLogger(logging.getLogger(name))


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key, value in (getattr(record, "fields", None) or {}).items():
        name = f"field_{key}" if key in _RESERVED else key
        fields[name] = REDACTED if _SECRET_FIELD.search(key) else value
    return fields


def _timestamp(record: logging.LogRecord) -> str:
    moment = _dt.datetime.fromtimestamp(record.created, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(_record_fields(record))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(line, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname, record.name, _text_value(record.getMessage())]
        parts += [f"{key}={_text_value(value)}" for key, value in _record_fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += " exc=" + json.dumps(self.formatException(record.exc_info))
        return scrub(line)


def _text_value(value: object) -> str:
    text = str(value)
    if not text or any(ch.isspace() or ch in '"=' or not ch.isprintable() for ch in text):
        return json.dumps(text)  # quotes and escapes CR/LF and other control characters
    return text


def configure_logging(
    level: str = "info", fmt: Literal["json", "text"] = "json", stream: IO[str] | None = None
) -> logging.Handler:
    """Install the relay's single handler on the root logger (idempotent; replaces a previous one)."""
    if level not in _LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(_LEVELS)}")
    if fmt not in ("json", "text"):
        raise ValueError(f"log format {fmt!r} is not 'json' or 'text'")
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, _handler_marker, False):
            root.removeHandler(existing)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    setattr(handler, _handler_marker, True)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    return handler
