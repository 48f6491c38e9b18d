"""The three sources of configuration entries: turnserver.conf text, the environment and the command line.

Each parser returns raw `Entry` values (canonical key, name as written, value, location) and the syntax
problems it found; interpreting values is the builder's job (`relay.config.builder`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from relay.config.keys import (
    ALIASES,
    CLI_ONLY,
    ENV_CONFIG,
    ENV_PREFIX,
    KEY_INDEX,
    KEYS,
    MAX_FILE_BYTES,
    Action,
    Source,
)

# coturn's short options, to point at the long form instead of failing with "unknown option".
_SHORT_OPTIONS = {
    "p": "listening-port",
    "L": "listening-ip",
    "E": "relay-ip",
    "X": "external-ip",
    "r": "realm",
    "u": "user",
    "a": "lt-cred-mech",
    "f": "fingerprint",
    "v": "verbose",
    "V": "Verbose",
    "z": "no-auth",
    "q": "user-quota",
    "Q": "total-quota",
    "s": "max-bps",
    "B": "bps-capacity",
    "m": "relay-threads",
    "o": "daemon",
    "l": "log-file",
    "S": "stun-only",
    "C": "rest-api-separator",
    "K": "keep-address-family",
    "A": "allocation-default-address-family",
    "d": "listening-device",
    "i": "relay-device",
    "b": "userdb",
    "e": "psql-userdb",
    "M": "mysql-userdb",
    "N": "redis-userdb",
    "O": "redis-statsdb",
    "J": "mongo-userdb",
}
_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_INLINE_COMMENT = re.compile(r"\s+#.*$")


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    where: str = ""  # "file:line", "env NAME", "--flag", or "" for the configuration as a whole

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.message}" if self.where else f"{self.key}: {self.message}"


@dataclass(frozen=True)
class Entry:
    key: str  # canonical key
    name: str  # as written (alias or canonical)
    value: str | None  # None: a bare flag
    where: str
    source: Source


def _canonical(name: str) -> str:
    return ALIASES.get(name, name)


def _unknown_key_message(name: str) -> str:
    names = [*KEY_INDEX, *ALIASES]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown key{hint} (see --help for the supported keys)"


def parse_config_text(text: str, filename: str) -> tuple[list[Entry], list[Problem]]:
    """Parse turnserver.conf syntax; returns entries and syntax problems (unknown keys included)."""
    entries: list[Entry] = []
    problems: list[Problem] = []
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{filename}:{number}"
        match = _KEY_CHARS.match(line)
        rest = line[match.end() :] if match else line
        if not match or (rest and not (rest[0].isspace() or rest[0] == "=")):
            # The line is not echoed: it might be a pasted secret.
            problems.append(Problem("syntax", "not a 'key', 'key=value' or 'key value' line", where))
            continue
        name = match.group(0)
        rest = rest.strip()
        value: str | None = None
        if rest:
            value = rest[1:].strip() if rest.startswith("=") else rest
        key = _canonical(name)
        spec = KEY_INDEX.get(key)
        if spec is None:
            message = "may only be given on the command line" if name in CLI_ONLY else _unknown_key_message(name)
            problems.append(Problem(name, message, where))
            continue
        if value is not None:
            if not spec.secret:
                value = _INLINE_COMMENT.sub("", value)
            value = _unquote(value)
        entries.append(Entry(key, name, value, where, "file"))
    return entries, problems


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.upper().replace("-", "_")


_ENV_KEYS: dict[str, str] = {}
for _spec in reversed(KEYS):  # reversed: "verbose" wins over "Verbose" for BBB_TURN_RELAY_VERBOSE
    _ENV_KEYS[_env_name(_spec.name)] = _spec.name


def parse_environment(environ: Mapping[str, str]) -> tuple[list[Entry], str | None, list[Problem]]:
    entries: list[Entry] = []
    problems: list[Problem] = []
    config_file = environ.get(ENV_CONFIG) or None
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        where = f"env {name}"
        key = _ENV_KEYS.get(name)
        if key is None:
            guess = difflib.get_close_matches(name, list(_ENV_KEYS), n=1, cutoff=0.8)
            hint = f"; did you mean {guess[0]}?" if guess else ""
            problems.append(Problem(name, f"unknown environment variable{hint}", where))
            continue
        spec = KEY_INDEX[key]
        value = environ[name]
        if spec.list_env:
            parts = [part.strip() for part in value.split(",") if part.strip()]
            entries.extend(Entry(key, key, part, where, "env") for part in parts)
            if not parts:
                problems.append(Problem(key, "empty list; unset the variable instead", where))
        else:
            entries.append(Entry(key, key, value, where, "env"))
    return entries, config_file, problems


def parse_arguments(argv: Sequence[str]) -> tuple[list[Entry], str | None, Action, list[Problem]]:
    entries: list[Entry] = []
    problems: list[Problem] = []
    config_file: str | None = None
    action: Action = "run"
    tokens = list(argv)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token in ("-h", "--help"):
            action = "help"
            continue
        if token == "--version":
            action = "version" if action != "help" else action
            continue
        if token == "--check-config":
            action = "check" if action == "run" else action
            continue
        if token in ("-c", "--config") or token.startswith("--config="):
            if "=" in token:
                path = token.split("=", 1)[1]
            elif index < len(tokens):
                path = tokens[index]
                index += 1
            else:
                problems.append(Problem("config", "needs a file name: -c FILE", token))
                continue
            if config_file is not None:
                problems.append(Problem("config", "given more than once", token))
            config_file = path
            continue
        if not token.startswith("--"):
            if token.startswith("-") and len(token) >= 2 and token[1] in _SHORT_OPTIONS:
                long_name = _SHORT_OPTIONS[token[1]]
                problems.append(Problem(token, f"short options are not supported; use --{long_name}", token))
                if len(token) == 2 and KEY_INDEX[long_name].kind == "value" and index < len(tokens):
                    index += 1  # skip its value too, so it is not reported a second time
            else:
                problems.append(Problem(token, "unexpected argument; options look like --key=value", token))
            continue
        name, has_value, value = token[2:].partition("=")
        key = _canonical(name)
        spec = KEY_INDEX.get(key)
        where = f"--{name}"
        if spec is None:
            problems.append(Problem(name, _unknown_key_message(name), where))
            continue
        if has_value:
            entries.append(Entry(key, name, value, where, "cli"))
        elif spec.kind == "value":
            if index < len(tokens) and not tokens[index].startswith("--"):
                entries.append(Entry(key, name, tokens[index], where, "cli"))
                index += 1
            else:
                problems.append(Problem(name, f"needs a value: --{name}=VALUE", where))
        else:
            entries.append(Entry(key, name, None, where, "cli"))
    return entries, config_file, action, problems


def read_file(path: str) -> tuple[str | None, str | None]:
    """(text, None) or (None, reason)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        return None, "no such file"
    except PermissionError:
        return None, "permission denied for the relay's user"
    except IsADirectoryError:
        return None, "is a directory"
    except OSError as exc:
        return None, exc.strerror or str(exc)
    if len(data) > MAX_FILE_BYTES:
        return None, f"larger than {MAX_FILE_BYTES} bytes"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 text (byte {exc.start})"
