"""The builder that the key handlers fill: winning entries, decided fields, problems, value parsers.

`handles(*keys)` registers a handler (see `relay.config.handlers`); keys without one go to `generic`.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Callable

from relay.config.keys import DEFAULT_LISTENING_PORT, KEY_INDEX
from relay.config.model import IPNetwork
from relay.config.sources import Entry, Problem, read_file
from relay.ops.logs import register_secret

_TRUE = {"1", "yes", "y", "true", "t", "on"}
_FALSE = {"0", "no", "n", "false", "f", "off"}


class Builder:
    """Holds the winning entries, the fields decided so far and the problems found."""

    def __init__(self, resolved: dict[str, list[Entry]]) -> None:
        self.resolved = resolved
        self.fields: dict[str, object] = {}
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.notes: list[Problem] = []
        self.ignored: list[str] = []
        # Intermediate state for the cross-key checks.
        self.listen_port = DEFAULT_LISTENING_PORT
        self.tls_port: int | None = None
        self.proxy_port: int | None = None
        self.proxy_transport: str | None = None  # what the PROXY listener's clients used: tls | tcp
        self.listen_ips: list[str] = []
        self.no_udp = self.no_tcp = self.no_tls = False
        self.use_auth_secret = False
        self.secrets: list[tuple[str, str, str]] = []  # (secret, where, key)
        self.users: dict[str, tuple[str, str]] = {}
        self.allowed: list[tuple[IPNetwork, str, str, str]] = []  # (network, text, where, key)
        self.denied: list[IPNetwork] = []
        self.tls13_only: bool | None = None

    # reporting
    def error(self, entry: Entry | str, message: str) -> None:
        self.errors.append(self._problem(entry, message))

    def warn(self, entry: Entry | str, message: str) -> None:
        self.warnings.append(self._problem(entry, message))

    def note(self, entry: Entry | str, message: str) -> None:
        self.notes.append(self._problem(entry, message))

    def _problem(self, entry: Entry | str, message: str) -> Problem:
        if isinstance(entry, Entry):
            return Problem(entry.name, message, entry.where)
        winning = self.resolved.get(entry)
        return Problem(entry, message, winning[-1].where if winning else "")

    def has(self, key: str) -> bool:
        return key in self.resolved

    def shown(self, entry: Entry) -> str:
        if KEY_INDEX[entry.key].secret:
            return "(value hidden)"
        return repr(entry.value if entry.value is not None else "")

    # value parsing; None = invalid (already reported)
    def flag(self, entry: Entry) -> bool | None:
        if entry.value is None or entry.value == "":
            return True
        lowered = entry.value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self.error(entry, f"{self.shown(entry)} is not a boolean; use true/false, yes/no, on/off or 1/0")
        return None

    def text(self, entry: Entry) -> str | None:
        if entry.value is None or entry.value == "":
            self.error(entry, f"needs a value ({entry.name}=VALUE)")
            return None
        return entry.value

    def integer(self, entry: Entry, low: int, high: int, unit: str = "") -> int | None:
        text = self.text(entry)
        if text is None:
            return None
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            suffix = f" {unit}" if unit else ""
            self.error(entry, f"{self.shown(entry)} is not a whole number from {low} to {high}{suffix}")
            return None
        return int(text)

    def number(self, entry: Entry, low: float, high: float) -> float | None:
        text = self.text(entry)
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # also false for NaN
            self.error(entry, f"{self.shown(entry)} is not a number from {low:g} to {high:g}")
            return None
        return value

    def address(self, entry: Entry, text: str | None = None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        text = text if text is not None else self.text(entry)
        if text is None:
            return None
        try:
            return ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            self.error(entry, f"{text!r} is not an IPv4 or IPv6 address")
            return None


Handler = Callable[[Builder, list[Entry]], None]
HANDLERS: dict[str, Handler] = {}


def handles(*keys: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        for key in keys:
            HANDLERS[key] = function
        return function

    return register


def generic(builder: Builder, entries: list[Entry]) -> None:
    """noop / warning / error keys without special rules. A flag set to false enables nothing."""
    for entry in entries:
        spec = KEY_INDEX[entry.key]
        if spec.kind == "flag":
            enabled = builder.flag(entry)
            if enabled is None:
                continue
            if not enabled:
                if spec.status == "noop":
                    builder.warn(entry, f"ignored: {spec.text}")
                    builder.ignored.append(entry.name)
                continue
        if spec.status == "warning":
            builder.warn(entry, f"ignored: {spec.text}")
            builder.ignored.append(entry.name)
        elif spec.status == "error":
            builder.error(entry, f"not supported: {spec.text}")


def read_secret_file(b: Builder, entry: Entry, path: str) -> str | None:
    content, reason = read_file(path)
    if content is None:
        b.error(entry, f"{path}: {reason}")
        return None
    for line in content.splitlines():
        register_secret(line.strip())
    register_secret(content.strip())
    try:
        mode = os.stat(path).st_mode
    except OSError:  # it was readable a moment ago; a vanished file is reported at the next load
        mode = 0
    # A warning, not an error: an operator's 0644 file must not stop a relay that ran before.
    if mode & stat.S_IRWXO:
        b.warn(entry, f"{path} is readable by every user (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    elif mode & stat.S_IRWXG:
        b.warn(entry, f"{path} is accessible to its group (mode {stat.S_IMODE(mode):o}); chmod 600 it")
    return content


def parse_peer(text: str) -> list[IPNetwork] | None:
    try:
        if "/" in text:
            return [ipaddress.ip_network(text, strict=False)]
        if "-" in text:
            first_text, last_text = text.split("-", 1)
            first = ipaddress.ip_address(first_text.strip())
            last = ipaddress.ip_address(last_text.strip())
            if first.version != last.version or first > last:  # type: ignore[operator]
                return None
            return list(ipaddress.summarize_address_range(first, last))  # type: ignore[arg-type]
        address = ipaddress.ip_address(text)
        return [ipaddress.ip_network(address)]
    except ValueError:
        return None
