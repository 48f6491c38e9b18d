"""Build a validated `RelayConfig` from a coturn-style file, the environment and command-line flags.

Entry point for the CLI (`python -m relay -c FILE`, console script `bbb-turn-relay`):

    result = load_config(sys.argv[1:], os.environ)        # never raises for bad input
    if result.action == "help":    print(help_text()); exit 0
    if result.action == "version": print(version); exit 0
    if result.action == "check":   print(result.report()); exit result.exit_code   (0 = OK, 2 = errors)
    if not result.ok:              print(result.report(), file=sys.stderr); exit 2
    for problem in result.warnings: log.warning("config_warning", key=problem.key, detail=str(problem))
    config = result.config

Reload (SIGHUP / POST /reload): call `load_config` again with the same argv and environ. If it has
errors, keep running on the old config and log them. Otherwise `apply_reload(old, new)` returns the
config to switch to (only `RELOADABLE_FIELDS` change: secrets, users, peer lists, quotas, certificate
paths, logging, drain settings) and the names of changed fields that need a restart (log those).

Sources and precedence: command line > environment > file > defaults, decided per key (a
repeatable key such as `allowed-peer-ip` takes all its values from the highest source that sets it).

* File: coturn's turnserver.conf syntax: `key=value`, `key value`, bare flags, `#` comment lines,
  repeatable keys, values optionally in double quotes. A trailing ` # comment` after a value is
  dropped except for secret keys (taken literally, as coturn does; a warning flags whitespace in them).
* Environment: `BBB_TURN_RELAY_<KEY>` with the key upper-cased and `-` -> `_`
  (`BBB_TURN_RELAY_STATIC_AUTH_SECRET`); list keys (listening-ip, relay-ip, external-ip,
  allowed-peer-ip, denied-peer-ip) take comma-separated values; flags take true/false/1/0/yes/no/on/off.
  `BBB_TURN_RELAY_CONFIG` names the file when `-c` is not given. Unknown `BBB_TURN_RELAY_*` names are errors.
* Command line: `--key=value`, `--key value`, `--flag`, plus `-c FILE`/`--config FILE`,
  `--check-config`, `--version`, `-h`/`--help`.

Every problem names the key, shows the bad value (never a secret's) and what is allowed, with
`file:line`, `env NAME` or `--flag` as its location; all problems are collected and reported at once.
Each coturn key is *supported*, a silent *noop* (already our behaviour), a *warning* (harmless to
ignore: logging, CLI, daemon options) or an *error* (ignoring it would weaken security or change what a
client sees); see `KEYS` or `key_table()` for the full list and the reason for each. Unknown keys are
errors with a "did you mean" hint.

Differences from coturn worth knowing:
* Special-purpose peer addresses (private, loopback, link-local, metadata, multicast, ...) are denied
  by default (relay.peers); `no-loopback-peers`/`no-multicast-peers` are therefore no-ops, and
  `allowed-peer-ip` must not open loopback (unless `allow-loopback-peers`) or cloud metadata addresses.
* `allowed-peers-file` is read here and its networks are merged into `config.allowed_peers`; likewise
  `auth-secret-file` into `auth_secrets` and `nonce-secret-file` into `nonce_secret`. Reloading means
  calling `load_config` again.
* A TLS listener exists when `tls-listening-port` or `cert` is set (coturn's rule; default port 5349)
  and `no-tls` is not; its certificate and key are loaded during validation, so `--check-config`
  catches a bad certificate before a restart does.
* `cipher-list` can only narrow the built-in TLS 1.2 policy (ECDHE + AEAD); other suites are dropped
  with a warning.

Every secret value met while loading is registered with `relay.logs.register_secret`, so it cannot
appear in a log line even if some code later formats it by mistake.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from relay.config import IPNetwork, Listener, RelayConfig
from relay.logs import register_secret
from relay.tls import TlsConfigError, build_server_context, select_tls12_ciphers

ENV_PREFIX = "BBB_TURN_RELAY_"
ENV_CONFIG = ENV_PREFIX + "CONFIG"
SOFTWARE_NAME = "bbb-turn-relay"
DEFAULT_LISTENING_PORT = 3478
DEFAULT_TLS_PORT = 5349
MIN_SECRET_LENGTH = 16  # shorter shared secrets get a warning; shorter nonce secrets are an error
MAX_FILE_BYTES = 1_000_000

Status = Literal["supported", "noop", "warning", "error"]
Kind = Literal["flag", "value", "optional"]
Action = Literal["run", "check", "help", "version"]
Source = Literal["file", "env", "cli"]


@dataclass(frozen=True)
class KeySpec:
    name: str
    kind: Kind  # flag: bare or =bool; value: needs a value; optional: bare or with a value
    status: Status
    text: str  # what it does (supported) or why it is not honoured and what to do instead
    repeatable: bool = False
    secret: bool = False  # never echo the value; register it with the log scrubber
    ours: bool = False  # a bbb-turn-relay key rather than a coturn one
    list_env: bool = False  # comma-separated values in the environment


def _k(name: str, kind: Kind, status: Status, text: str, **options: bool) -> KeySpec:
    return KeySpec(name, kind, status, text, **options)


_DB = "user/secret databases are not supported; use static-auth-secret, auth-secret-file or user=NAME:PASSWORD"
_LOGGING = "logs go to stderr (journald) as structured lines; use log-level and log-format"
_CLI = "there is no telnet CLI; use the admin endpoint (admin-listen) for metrics, drain and reload"
_WEB = "there is no web admin; use the admin endpoint (admin-listen)"
_REDIRECT = "ALTERNATE-SERVER redirection is not supported; balance with DNS or a load balancer"

KEYS: tuple[KeySpec, ...] = (
    # --- listeners -------------------------------------------------------------------------------
    _k("listening-port", "value", "supported", "UDP and TCP listener port (default 3478)"),
    _k("tls-listening-port", "value", "supported", "TLS listener port (default 5349 when cert is set)"),
    _k("tcp-proxy-port", "value", "supported", "plain TCP listener expecting a PROXY protocol header (NLB)"),
    _k(
        "listening-ip",
        "value",
        "supported",
        "listener address (repeatable; default 0.0.0.0)",
        repeatable=True,
        list_env=True,
    ),
    _k("no-udp", "flag", "supported", "no UDP listener"),
    _k("no-tcp", "flag", "supported", "no plain TCP listener"),
    _k("no-tls", "flag", "supported", "no TLS listener"),
    _k("no-dtls", "flag", "noop", "DTLS is not offered"),
    _k("dtls", "flag", "error", "DTLS listeners are not supported; use TLS (turns:) instead"),
    _k("alt-listening-port", "value", "warning", "only used for RFC 5780 NAT discovery, which is not offered"),
    _k("alt-tls-listening-port", "value", "warning", "only used for RFC 5780 NAT discovery, which is not offered"),
    _k("listening-device", "value", "error", "binding to a device is not supported; use listening-ip"),
    _k("aux-server", "value", "error", _REDIRECT, repeatable=True),
    _k("udp-self-balance", "flag", "error", _REDIRECT),
    _k("alternate-server", "value", "error", _REDIRECT, repeatable=True),
    _k("tls-alternate-server", "value", "error", _REDIRECT, repeatable=True),
    # --- relay addresses --------------------------------------------------------------------------
    _k(
        "relay-ip",
        "value",
        "supported",
        "address relay sockets bind (one per address family)",
        repeatable=True,
        list_env=True,
    ),
    _k(
        "external-ip",
        "value",
        "supported",
        "advertised relay address, PUBLIC or PUBLIC/PRIVATE (1:1 NAT)",
        repeatable=True,
        list_env=True,
    ),
    _k("relay-device", "value", "error", "binding relay sockets to a device is not supported; use relay-ip"),
    _k("min-port", "value", "supported", "lowest UDP relay port (default 49152)"),
    _k("max-port", "value", "supported", "highest UDP relay port (default 65535)"),
    _k("no-udp-relay", "flag", "error", "only UDP relaying is offered, so this would refuse every allocation"),
    _k("no-tcp-relay", "flag", "noop", "RFC 6062 TCP relaying is not offered"),
    _k(
        "keep-address-family",
        "flag",
        "warning",
        "allocations default to IPv4 as RFC 6156 requires; clients ask for IPv6 with REQUESTED-ADDRESS-FAMILY",
    ),
    _k(
        "allocation-default-address-family",
        "value",
        "warning",
        "ipv4 is the behaviour; keep is ignored (see keep-address-family); ipv6 is an error",
    ),
    # --- authentication -----------------------------------------------------------------------------
    _k("realm", "value", "supported", "REALM of the long-term credentials (default turn.local)"),
    _k("lt-cred-mech", "flag", "noop", "long-term credentials are the only mechanism"),
    _k("use-auth-secret", "flag", "supported", "TURN REST API credentials (needs a secret)"),
    _k(
        "static-auth-secret",
        "value",
        "supported",
        "TURN REST API shared secret (repeatable, for rotation)",
        repeatable=True,
        secret=True,
    ),
    _k("auth-secret-file", "value", "supported", "file with one TURN REST secret per line", ours=True),
    _k("user", "value", "supported", "static user NAME:PASSWORD (repeatable)", repeatable=True, secret=True),
    _k("rest-api-separator", "value", "error", "only ':' (the default) is supported: BBB uses it"),
    _k("no-auth", "flag", "error", "an unauthenticated TURN server is an open relay; configure credentials"),
    _k("userdb", "value", "error", _DB, secret=True),
    _k("psql-userdb", "value", "error", _DB, secret=True),
    _k("mysql-userdb", "value", "error", _DB, secret=True),
    _k("mongo-userdb", "value", "error", _DB, secret=True),
    _k("redis-userdb", "value", "error", _DB, secret=True),
    _k("secret-key-file", "value", "error", _DB),
    _k("oauth", "flag", "error", "OAuth (RFC 7635) is not supported"),
    _k("server-name", "value", "warning", "only used for OAuth, which is not supported"),
    _k("check-origin-consistency", "flag", "error", "ORIGIN checks are not supported"),
    _k("no-auth-pings", "flag", "noop", "there is no database to ping"),
    _k("no-dynamic-ip-list", "flag", "noop", "peer lists come only from the configuration"),
    _k("no-dynamic-realms", "flag", "noop", "the realm comes only from the configuration"),
    _k("fingerprint", "flag", "supported", "add FINGERPRINT to responses (default on)"),
    _k("stale-nonce", "optional", "supported", "nonce lifetime in seconds (bare flag: 600)"),
    _k(
        "nonce-secret",
        "value",
        "supported",
        "stateless nonce key shared by instances (>= 16 bytes)",
        secret=True,
        ours=True,
    ),
    _k("stateless-nonce-secret", "value", "supported", "coturn 4.17 name of nonce-secret", secret=True),
    _k("nonce-secret-file", "value", "supported", "file holding nonce-secret", ours=True),
    _k("unauthenticated-rate", "value", "supported", "401 responses per source IP per second (0 = off)", ours=True),
    _k("unauthenticated-burst", "value", "supported", "burst size for unauthenticated-rate", ours=True),
    _k(
        "rest-ms-timestamp-ttl",
        "value",
        "supported",
        "validity (s) of legacy BBB usernames carrying a millisecond creation time",
        ours=True,
    ),
    _k("secure-stun", "flag", "error", "authenticated Binding requests are not supported"),
    _k("stun-only", "flag", "error", "a STUN-only mode is not offered; TURN would be served"),
    _k("no-stun", "flag", "error", "Binding requests are always answered; ignoring this would serve them"),
    _k("mobility", "flag", "error", "RFC 8016 mobility is not supported"),
    _k("server-relay", "flag", "error", "relaying without permission checks is refused (dangerous)"),
    # --- peers ------------------------------------------------------------------------------------
    _k(
        "allowed-peer-ip",
        "value",
        "supported",
        "peer address, A-B range or CIDR always allowed (repeatable)",
        repeatable=True,
        list_env=True,
    ),
    _k(
        "denied-peer-ip",
        "value",
        "supported",
        "peer address, A-B range or CIDR denied (repeatable)",
        repeatable=True,
        list_env=True,
    ),
    _k(
        "allowed-peers-file", "value", "supported", "file of allowed peers, one per line (re-read on reload)", ours=True
    ),
    _k("allow-loopback-peers", "flag", "supported", "let peers be 127.0.0.0/8 and ::1 (tests only; warns)"),
    _k("no-loopback-peers", "flag", "noop", "loopback peers are always denied unless allow-loopback-peers"),
    _k("no-multicast-peers", "flag", "noop", "multicast and broadcast peers are always denied"),
    # --- quotas and lifetimes -------------------------------------------------------------------------
    _k("total-quota", "value", "supported", "maximum concurrent allocations (0 = unlimited)"),
    _k("user-quota", "value", "supported", "maximum concurrent allocations per user (0 = unlimited)"),
    _k("max-bps", "value", "supported", "bytes per second per allocation and direction (0 = unlimited)"),
    _k("bps-capacity", "value", "error", "a server-wide bandwidth cap is not supported (0 is accepted)"),
    _k("max-permissions", "value", "supported", "peer IPs per allocation (default 100)", ours=True),
    _k(
        "legacy-channel-numbers",
        "flag",
        "supported",
        "accept RFC 5766 channel numbers up to 0x7FFF (old non-browser clients)",
        ours=True,
    ),
    _k("max-allocate-lifetime", "value", "supported", "longest allocation lifetime in seconds (default 3600)"),
    _k("default-lifetime", "value", "supported", "allocation lifetime when none is requested (600)", ours=True),
    _k("channel-lifetime", "value", "supported", "channel binding lifetime in seconds (default 600)"),
    _k("permission-lifetime", "value", "supported", "permission lifetime in seconds (default 300)"),
    _k("max-allocate-timeout", "value", "warning", "allocation set-up needs no separate timeout here"),
    # --- TLS ----------------------------------------------------------------------------------------
    _k("cert", "value", "supported", "PEM certificate chain for TLS listeners"),
    _k("pkey", "value", "supported", "PEM private key (unencrypted) for TLS listeners"),
    _k(
        "pkey-pwd",
        "value",
        "error",
        "encrypted keys are not supported; protect the key file with permissions",
        secret=True,
    ),
    _k("cipher-list", "value", "supported", "TLS 1.2 ciphers, narrowed to ECDHE+AEAD (weaker ones dropped)"),
    _k("tls-min-version", "value", "supported", "TLSv1.2 (default) or TLSv1.3", ours=True),
    _k("no-tlsv1", "flag", "noop", "TLS 1.0 is never offered"),
    _k("no-tlsv1_1", "flag", "noop", "TLS 1.1 is never offered"),
    _k("no-tlsv1_2", "flag", "supported", "TLS 1.3 only"),
    _k("CA-file", "value", "error", "client certificate verification is not supported"),
    _k("raw-public-keys", "flag", "error", "RFC 7250 raw public keys are not supported"),
    _k("dh-file", "value", "warning", "only ECDHE key exchange is used, so DH parameters are not needed"),
    _k("dh566", "flag", "warning", "only ECDHE key exchange is used"),
    _k("dh1066", "flag", "warning", "only ECDHE key exchange is used"),
    _k("ec-curve-name", "value", "warning", "OpenSSL negotiates the curve"),
    # --- STUN behaviour ------------------------------------------------------------------------------
    _k("no-software-attribute", "flag", "supported", "do not send SOFTWARE (the default)"),
    _k("software-attribute", "flag", "supported", "send SOFTWARE: bbb-turn-relay"),
    _k("no-rfc5780", "flag", "noop", "RFC 5780 NAT discovery is not offered"),
    _k("rfc5780", "flag", "error", "RFC 5780 NAT behaviour discovery is not supported"),
    _k("response-origin-only-with-rfc5780", "flag", "noop", "RESPONSE-ORIGIN is not sent"),
    _k("no-stun-backward-compatibility", "flag", "noop", "only XOR-MAPPED-ADDRESS is answered"),
    _k("stun-backward-compatibility", "flag", "error", "RFC 3489 Binding responses are not supported"),
    _k("rfc3489-compatibility", "flag", "error", "RFC 3489 Binding responses are not supported"),
    _k("drop-invalid-packets", "flag", "noop", "invalid packets are always dropped"),
    # --- operations --------------------------------------------------------------------------------
    _k(
        "admin-listen",
        "value",
        "supported",
        "HOST:PORT of /metrics /healthz /readyz /drain (127.0.0.1:9641)",
        ours=True,
    ),
    _k("prometheus", "flag", "noop", "metrics are always served at admin-listen /metrics"),
    _k("prometheus-port", "value", "supported", "admin endpoint port (as admin-listen)"),
    _k("prometheus-address", "value", "supported", "admin endpoint address (as admin-listen)"),
    _k("prometheus-username-labels", "flag", "warning", "per-user labels are never exported (unbounded)"),
    _k("drain-timeout", "value", "supported", "seconds a drain waits for allocations (default 3600)", ours=True),
    _k("drain-min-allocations", "value", "supported", "a drain ends at this many allocations (default 0)"),
    _k("workers", "value", "supported", "worker processes (0 = one per CPU core)", ours=True),
    _k("relay-threads", "value", "supported", "coturn threads: mapped to workers (0 -> 1)"),
    _k("cpus", "value", "warning", "use workers to size the relay"),
    _k("log-level", "value", "supported", "debug | info | warning | error", ours=True),
    _k("log-format", "value", "supported", "json | text", ours=True),
    _k("verbose", "flag", "warning", _LOGGING),
    _k("Verbose", "flag", "warning", _LOGGING),
    _k("log-file", "value", "warning", _LOGGING),
    _k("no-stdout-log", "flag", "warning", _LOGGING),
    _k("syslog", "flag", "warning", _LOGGING),
    _k("syslog-facility", "value", "warning", _LOGGING),
    _k("simple-log", "flag", "warning", _LOGGING),
    _k("new-log-timestamp", "flag", "warning", _LOGGING),
    _k("new-log-timestamp-format", "value", "warning", _LOGGING),
    _k("log-binding", "flag", "warning", _LOGGING),
    _k("redis-statsdb", "value", "warning", "statistics are exported as Prometheus metrics", secret=True),
    _k("daemon", "flag", "warning", "the relay runs in the foreground under systemd"),
    _k("pidfile", "value", "warning", "systemd tracks the main PID"),
    _k("proc-user", "value", "error", "set User= in the systemd unit; ignoring this would keep root privileges"),
    _k("proc-group", "value", "error", "set Group= in the systemd unit; ignoring this would keep root privileges"),
    _k("no-cli", "flag", "noop", "there is no telnet CLI"),
    _k("cli-ip", "value", "warning", _CLI),
    _k("cli-port", "value", "warning", _CLI),
    _k("cli-password", "value", "warning", _CLI, secret=True),
    _k("cli-max-output-sessions", "value", "warning", _CLI),
    _k("web-admin", "flag", "warning", _WEB),
    _k("web-admin-ip", "value", "warning", _WEB),
    _k("web-admin-port", "value", "warning", _WEB),
    _k("web-admin-listen-on-workers", "flag", "warning", _WEB),
    _k("acme-redirect", "value", "warning", "the relay serves no HTTP on its TURN ports"),
    _k("respond-http-unsupported", "flag", "warning", "the relay serves no HTTP on its TURN ports"),
    _k("ne", "value", "warning", "coturn network engine selection does not apply"),
    _k("multiplex-peer", "flag", "warning", "coturn socket tuning does not apply"),
    _k("udp-gso", "flag", "warning", "coturn socket tuning does not apply"),
)
KEY_INDEX: dict[str, KeySpec] = {spec.name: spec for spec in KEYS}
ALIASES = {"db": "userdb", "sql-userdb": "psql-userdb", "prod": "no-software-attribute"}
CLI_ONLY = ("config", "check-config", "version", "help")
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
# Addresses no allow-list may open: instance metadata, credentials and DNS of AWS (and similar clouds).
_METADATA_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.254/32",
        "169.254.169.253/32",
        "169.254.170.2/32",
        "169.254.169.123/32",
        "fd00:ec2::254/128",
        "fd00:ec2::253/128",
    )
)
_LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]+")
_INLINE_COMMENT = re.compile(r"\s+#.*$")
_TRUE = {"1", "yes", "y", "true", "t", "on"}
_FALSE = {"0", "no", "n", "false", "f", "off"}

# Fields that a reload may change while sessions continue; everything else needs a restart.
RELOADABLE_FIELDS = frozenset(
    {
        "auth_secrets",
        "auth_secret_file",
        "static_users",
        "nonce_lifetime",
        "unauthenticated_rate",
        "unauthenticated_burst",
        "rest_ms_timestamp_ttl",
        "allowed_peers",
        "denied_peers",
        "allowed_peers_file",
        "allow_loopback_peers",
        "total_quota",
        "user_quota",
        "max_bps",
        "max_permissions",
        "cert_file",
        "key_file",
        "drain_timeout",
        "drain_min_allocations",
        "log_level",
        "log_format",
        "ignored_keys",
    }
)


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    where: str = ""  # "file:line", "env NAME", "--flag", or "" for the configuration as a whole

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.message}" if self.where else f"{self.key}: {self.message}"


@dataclass
class LoadResult:
    config: RelayConfig | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    action: Action = "run"
    config_file: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and (self.config is not None or self.action in ("help", "version"))

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2

    def report(self) -> str:
        """What `--check-config` prints: errors, warnings, notes, then OK or the error count."""
        lines = [f"error: {p}" for p in self.errors]
        lines += [f"warning: {p}" for p in self.warnings]
        lines += [f"note: {p}" for p in self.notes]
        lines.append("OK" if self.ok else f"{len(self.errors)} error(s); the relay would not start")
        return "\n".join(lines)


# --- raw entries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
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


def parse_config_text(text: str, filename: str) -> tuple[list[_Entry], list[Problem]]:
    """Parse turnserver.conf syntax; returns entries and syntax problems (unknown keys included)."""
    entries: list[_Entry] = []
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
        entries.append(_Entry(key, name, value, where, "file"))
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


def parse_environment(environ: Mapping[str, str]) -> tuple[list[_Entry], str | None, list[Problem]]:
    entries: list[_Entry] = []
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
            entries.extend(_Entry(key, key, part, where, "env") for part in parts)
            if not parts:
                problems.append(Problem(key, "empty list; unset the variable instead", where))
        else:
            entries.append(_Entry(key, key, value, where, "env"))
    return entries, config_file, problems


def parse_arguments(argv: Sequence[str]) -> tuple[list[_Entry], str | None, Action, list[Problem]]:
    entries: list[_Entry] = []
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
            entries.append(_Entry(key, name, value, where, "cli"))
        elif spec.kind == "value":
            if index < len(tokens) and not tokens[index].startswith("--"):
                entries.append(_Entry(key, name, tokens[index], where, "cli"))
                index += 1
            else:
                problems.append(Problem(name, f"needs a value: --{name}=VALUE", where))
        else:
            entries.append(_Entry(key, name, None, where, "cli"))
    return entries, config_file, action, problems


def _read_file(path: str) -> tuple[str | None, str | None]:
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


# --- interpretation --------------------------------------------------------------------------------


class _Builder:
    """Holds the winning entries, the fields decided so far and the problems found."""

    def __init__(self, resolved: dict[str, list[_Entry]]) -> None:
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
        self.listen_ips: list[str] = []
        self.no_udp = self.no_tcp = self.no_tls = False
        self.use_auth_secret = False
        self.secrets: list[tuple[str, str, str]] = []  # (secret, where, key)
        self.users: dict[str, tuple[str, str]] = {}
        self.allowed: list[tuple[IPNetwork, str, str, str]] = []  # (network, text, where, key)
        self.denied: list[IPNetwork] = []
        self.tls13_only: bool | None = None

    # reporting
    def error(self, entry: _Entry | str, message: str) -> None:
        self.errors.append(self._problem(entry, message))

    def warn(self, entry: _Entry | str, message: str) -> None:
        self.warnings.append(self._problem(entry, message))

    def note(self, entry: _Entry | str, message: str) -> None:
        self.notes.append(self._problem(entry, message))

    def _problem(self, entry: _Entry | str, message: str) -> Problem:
        if isinstance(entry, _Entry):
            return Problem(entry.name, message, entry.where)
        winning = self.resolved.get(entry)
        return Problem(entry, message, winning[-1].where if winning else "")

    def has(self, key: str) -> bool:
        return key in self.resolved

    def shown(self, entry: _Entry) -> str:
        if KEY_INDEX[entry.key].secret:
            return "(value hidden)"
        return repr(entry.value if entry.value is not None else "")

    # value parsing; None = invalid (already reported)
    def flag(self, entry: _Entry) -> bool | None:
        if entry.value is None or entry.value == "":
            return True
        lowered = entry.value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self.error(entry, f"{self.shown(entry)} is not a boolean; use true/false, yes/no, on/off or 1/0")
        return None

    def text(self, entry: _Entry) -> str | None:
        if entry.value is None or entry.value == "":
            self.error(entry, f"needs a value ({entry.name}=VALUE)")
            return None
        return entry.value

    def integer(self, entry: _Entry, low: int, high: int, unit: str = "") -> int | None:
        text = self.text(entry)
        if text is None:
            return None
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            suffix = f" {unit}" if unit else ""
            self.error(entry, f"{self.shown(entry)} is not a whole number from {low} to {high}{suffix}")
            return None
        return int(text)

    def number(self, entry: _Entry, low: float, high: float) -> float | None:
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

    def address(self, entry: _Entry, text: str | None = None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        text = text if text is not None else self.text(entry)
        if text is None:
            return None
        try:
            return ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            self.error(entry, f"{text!r} is not an IPv4 or IPv6 address")
            return None


Handler = Callable[[_Builder, list[_Entry]], None]
_HANDLERS: dict[str, Handler] = {}


def _handles(*keys: str) -> Callable[[Handler], Handler]:
    def register(function: Handler) -> Handler:
        for key in keys:
            _HANDLERS[key] = function
        return function

    return register


def _generic(builder: _Builder, entries: list[_Entry]) -> None:
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


@_handles("listening-port", "tls-listening-port", "tcp-proxy-port")
def _ports(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    port = b.integer(entry, 1, 65535)
    if port is None:
        return
    if entry.key == "listening-port":
        b.listen_port = port
    elif entry.key == "tls-listening-port":
        b.tls_port = port
    else:
        b.proxy_port = port


@_handles("listening-ip")
def _listening_ip(b: _Builder, entries: list[_Entry]) -> None:
    for entry in entries:
        address = b.address(entry)
        if address is not None and str(address) not in b.listen_ips:
            b.listen_ips.append(str(address))


@_handles("no-udp", "no-tcp", "no-tls")
def _no_transport(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    value = b.flag(entry)
    if value is not None:
        setattr(b, entry.key.replace("-", "_"), value)


@_handles("relay-ip")
def _relay_ip(b: _Builder, entries: list[_Entry]) -> None:
    by_family: dict[int, str] = {}
    for entry in entries:
        address = b.address(entry)
        if address is None:
            continue
        if address.version in by_family and by_family[address.version] != str(address):
            b.error(entry, f"only one relay-ip per address family is supported (already {by_family[address.version]})")
            continue
        by_family[address.version] = str(address)
    if 4 in by_family:
        b.fields["relay_ip"] = by_family[4]
    if 6 in by_family:
        b.fields["relay_ipv6"] = by_family[6]


@_handles("external-ip")
def _external_ip(b: _Builder, entries: list[_Entry]) -> None:
    seen: dict[int, str] = {}
    for entry in entries:
        text = b.text(entry)
        if text is None:
            continue
        public_text, _, private_text = text.partition("/")
        public = b.address(entry, public_text)
        private = b.address(entry, private_text) if private_text else None
        if public is None or (private_text and private is None):
            continue
        if public.is_unspecified or public.is_loopback or public.is_multicast:
            b.error(entry, f"{public_text!r} cannot be advertised to clients; give the public address")
            continue
        if private is not None and private.version != public.version:
            b.error(entry, f"{text!r} mixes IPv4 and IPv6; use PUBLIC/PRIVATE of one family")
            continue
        if public.version in seen:
            b.error(entry, "only one external-ip per address family is supported (one relay address each)")
            continue
        seen[public.version] = text
        suffix = "" if public.version == 4 else "v6"
        b.fields[f"external_ip{suffix}"] = str(public)
        if private is not None:
            b.fields[f"_external_private{suffix}"] = (str(private), entry)


@_handles("min-port", "max-port")
def _relay_ports(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    port = b.integer(entry, 1024, 65535)
    if port is not None:
        b.fields[entry.key.replace("-", "_")] = port


@_handles("realm")
def _realm(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    realm = entry.value or ""
    if not realm:
        b.error(entry, "must not be empty; use the TURN server's domain, e.g. turn.example.org")
    elif len(realm) > 127 or any(ch.isspace() or not ch.isprintable() or ch == '"' for ch in realm):
        b.error(entry, f"{realm!r} must be 1-127 printable characters without spaces or quotes")
    else:
        b.fields["realm"] = realm


@_handles("use-auth-secret")
def _use_auth_secret(b: _Builder, entries: list[_Entry]) -> None:
    value = b.flag(entries[-1])
    b.use_auth_secret = bool(value)


@_handles("static-auth-secret")
def _static_secret(b: _Builder, entries: list[_Entry]) -> None:
    for entry in entries:
        secret = b.text(entry)
        if secret is not None:
            b.secrets.append((secret, entry.where, entry.name))


@_handles("auth-secret-file")
def _secret_file(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    path = b.text(entry)
    if path is None:
        return
    content = _read_secret_file(b, entry, path)
    if content is None:
        return
    secrets = [(line.strip(), f"{path}:{n}", entry.name) for n, line in enumerate(content.splitlines(), 1)]
    secrets = [item for item in secrets if item[0] and not item[0].startswith("#")]
    if not secrets:
        b.error(entry, f"{path} holds no secret (one per line; # starts a comment)")
    b.secrets.extend(secrets)
    b.fields["auth_secret_file"] = path


@_handles("user")
def _users(b: _Builder, entries: list[_Entry]) -> None:
    for entry in entries:
        text = b.text(entry)
        if text is None:
            continue
        name, sep, password = text.partition(":")
        if not sep or not name or not password:
            b.error(entry, "must be NAME:PASSWORD with both parts non-empty")
            continue
        register_secret(password)
        if password.startswith("0x"):
            b.error(entry, f"user {name!r}: the 0x<hex key> form is not supported; give the plain password")
        elif name in b.users:
            b.error(entry, f"user {name!r} is defined twice (also at {b.users[name][1]})")
        else:
            b.users[name] = (password, entry.where)


@_handles("rest-api-separator")
def _separator(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    if entry.value != ":":
        b.error(entry, f"{b.shown(entry)} is not supported: {KEY_INDEX[entry.key].text}")


@_handles("fingerprint", "legacy-channel-numbers")
def _boolean_field(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    value = b.flag(entry)
    if value is not None:
        b.fields[entry.key.replace("-", "_")] = value


@_handles("stale-nonce")
def _stale_nonce(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    if entry.value is None or entry.value == "":
        b.fields["nonce_lifetime"] = 600
        return
    lifetime = b.integer(entry, 30, 86400, "seconds")
    if lifetime is not None:
        b.fields["nonce_lifetime"] = lifetime


@_handles("nonce-secret", "stateless-nonce-secret", "nonce-secret-file")
def _nonce_secret(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    given = [key for key in ("nonce-secret", "stateless-nonce-secret", "nonce-secret-file") if b.has(key)]
    if len(given) > 1:
        if entry.key == given[0]:  # report the conflict once
            b.error(entry, f"set only one of {', '.join(given)}")
        return
    text = b.text(entry)
    if text is None:
        return
    if entry.key == "nonce-secret-file":
        content = _read_secret_file(b, entry, text)
        if content is None:
            return
        secret = content.strip().encode()
    else:
        secret = text.encode()
    register_secret(secret)
    if len(secret) < MIN_SECRET_LENGTH:
        b.error(entry, f"the nonce secret must be at least {MIN_SECRET_LENGTH} bytes (e.g. openssl rand -hex 32)")
        return
    b.fields["nonce_secret"] = secret


@_handles("unauthenticated-rate", "unauthenticated-burst")
def _rates(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    low = 0.0 if entry.key == "unauthenticated-rate" else 1.0
    value = b.number(entry, low, 1_000_000)
    if value is not None:
        b.fields[entry.key.replace("-", "_")] = value


_INT_FIELDS: dict[str, tuple[str, int, int, str]] = {
    "total-quota": ("total_quota", 0, 10_000_000, "allocations"),
    "user-quota": ("user_quota", 0, 1_000_000, "allocations"),
    "max-bps": ("max_bps", 0, 100_000_000_000, "bytes per second"),
    "max-permissions": ("max_permissions", 1, 10_000, "peer addresses"),
    "max-allocate-lifetime": ("max_lifetime", 60, 86_400, "seconds"),
    "default-lifetime": ("default_lifetime", 60, 86_400, "seconds"),
    "channel-lifetime": ("channel_lifetime", 60, 3_600, "seconds"),
    "permission-lifetime": ("permission_lifetime", 60, 3_600, "seconds"),
    "rest-ms-timestamp-ttl": ("rest_ms_timestamp_ttl", 0, 31_536_000, "seconds"),
    "drain-timeout": ("drain_timeout", 0, 604_800, "seconds"),
    "drain-min-allocations": ("drain_min_allocations", 0, 10_000_000, "allocations"),
    "workers": ("workers", 0, 1024, "processes"),
}


@_handles(*_INT_FIELDS)
def _int_field(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    name, low, high, unit = _INT_FIELDS[entry.key]
    value = b.integer(entry, low, high, unit)
    if value is not None:
        b.fields[name] = value


@_handles("bps-capacity")
def _bps_capacity(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    if entry.value not in ("0", None, ""):
        b.error(entry, f"not supported: {KEY_INDEX[entry.key].text}; use max-bps per allocation")


@_handles("relay-threads")
def _relay_threads(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    threads = b.integer(entry, 0, 1024, "threads")
    if threads is None:
        return
    if b.has("workers"):
        b.warn(entry, "ignored because workers is set")
    else:
        b.fields["workers"] = max(threads, 1)  # coturn's 0 means single-threaded


@_handles("denied-peer-ip", "allowed-peer-ip")
def _peer_ips(b: _Builder, entries: list[_Entry]) -> None:
    for entry in entries:
        text = b.text(entry)
        if text is None:
            continue
        networks = _parse_peer(text)
        if networks is None:
            b.error(entry, _PEER_FORMS.format(text=text))
        elif entry.key == "denied-peer-ip":
            b.denied.extend(networks)
        else:
            b.allowed.extend((network, text, entry.where, entry.name) for network in networks)


_PEER_FORMS = "{text!r} is not an address, a FIRST-LAST range of one family, or a CIDR network"


@_handles("allowed-peers-file")
def _peers_file(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    path = b.text(entry)
    if path is None:
        return
    content, reason = _read_file(path)
    if content is None:
        b.error(entry, f"{path}: {reason}")
        return
    b.fields["allowed_peers_file"] = path
    for number, line in enumerate(content.splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        networks = _parse_peer(text)
        if networks is None:
            b.errors.append(Problem("allowed-peers-file", _PEER_FORMS.format(text=text), f"{path}:{number}"))
        else:
            b.allowed.extend((network, text, f"{path}:{number}", entry.name) for network in networks)


@_handles("allow-loopback-peers")
def _allow_loopback(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    value = b.flag(entry)
    if value:
        b.warn(
            entry,
            "peers on 127.0.0.0/8 and ::1 are allowed: clients can reach services on this host "
            "(only for tests and benchmarks)",
        )
    if value is not None:
        b.fields["allow_loopback_peers"] = value


@_handles("no-loopback-peers", "no-multicast-peers")
def _peer_noops(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    value = b.flag(entry)
    text = KEY_INDEX[entry.key].text
    if value:
        b.note(entry, f"nothing to do: {text}")
    elif value is not None:
        b.warn(entry, f"ignored: {text}")
        b.ignored.append(entry.name)


@_handles("cert", "pkey")
def _cert_paths(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    path = b.text(entry)
    if path is not None:
        b.fields["cert_file" if entry.key == "cert" else "key_file"] = path


@_handles("cipher-list")
def _ciphers(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    text = b.text(entry)
    if text is None:
        return
    try:
        selected, dropped = select_tls12_ciphers(text)
    except TlsConfigError as exc:
        b.error(entry, str(exc))
        return
    if dropped:
        b.warn(entry, f"dropped {', '.join(dropped)}: TLS 1.2 uses ECDHE with AES-GCM or CHACHA20-POLY1305 only")
    b.fields["tls_ciphers"] = selected


@_handles("no-tlsv1_2", "tls-min-version")
def _tls_version(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    if entry.key == "no-tlsv1_2":
        value = b.flag(entry)
        if value is not None:
            b.tls13_only = value
        return
    text = (b.text(entry) or "").lower().replace("tlsv", "")
    versions = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}
    if text not in versions:
        if entry.value:
            b.error(entry, f"{entry.value!r} is not TLSv1.2 or TLSv1.3")
        return
    b.fields["tls_min_version"] = versions[text]


@_handles("no-software-attribute", "software-attribute")
def _software(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    value = b.flag(entry)
    if value is None:
        return
    announce = value if entry.key == "software-attribute" else not value
    if "software" in b.fields and b.fields["software"] != (SOFTWARE_NAME if announce else None):
        b.error(entry, "contradicts the other SOFTWARE setting (software-attribute / no-software-attribute)")
        return
    b.fields["software"] = SOFTWARE_NAME if announce else None


@_handles("allocation-default-address-family")
def _address_family(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    value = (entry.value or "").lower()
    if value == "ipv4":
        return
    if value == "keep":
        b.warn(entry, f"ignored: {KEY_INDEX['keep-address-family'].text}")
        b.ignored.append(entry.name)
    elif value == "ipv6":
        b.error(entry, "not supported: allocations default to IPv4 (RFC 6156); clients may request IPv6")
    else:
        b.error(entry, f"{b.shown(entry)} is not one of ipv4, ipv6, keep")


@_handles("admin-listen")
def _admin_listen(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    text = b.text(entry)
    if text is None:
        return
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        b.error(entry, f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9641 or [::1]:9641)")
        return
    address = b.address(entry, host)
    port = b.integer(dataclasses.replace(entry, value=port_text), 1, 65535)
    if address is not None and port is not None:
        b.fields["admin_host"], b.fields["admin_port"] = str(address), port


@_handles("prometheus-port", "prometheus-address")
def _prometheus_admin(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    if b.has("admin-listen"):
        b.warn(entry, "ignored because admin-listen is set")
        return
    if entry.key == "prometheus-port":
        port = b.integer(entry, 1, 65535)
        if port is not None:
            b.fields["admin_port"] = port
    else:
        address = b.address(entry)
        if address is not None:
            b.fields["admin_host"] = str(address)


@_handles("prometheus")
def _prometheus(b: _Builder, entries: list[_Entry]) -> None:
    if b.flag(entries[-1]):
        b.note(entries[-1], KEY_INDEX["prometheus"].text)


@_handles("log-level", "log-format")
def _logging(b: _Builder, entries: list[_Entry]) -> None:
    entry = entries[-1]
    allowed = ("debug", "info", "warning", "error") if entry.key == "log-level" else ("json", "text")
    value = (entry.value or "").lower()
    if value not in allowed:
        b.error(entry, f"{b.shown(entry)} is not one of {', '.join(allowed)}")
    else:
        b.fields[entry.key.replace("-", "_")] = value


def _read_secret_file(b: _Builder, entry: _Entry, path: str) -> str | None:
    content, reason = _read_file(path)
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


def _parse_peer(text: str) -> list[IPNetwork] | None:
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


# --- cross-key validation --------------------------------------------------------------------------


def _finish(b: _Builder) -> RelayConfig | None:
    fields_ = b.fields
    _check_auth(b)
    _check_addresses(b)
    listeners = _build_listeners(b)
    _check_ports(b, listeners)
    _check_tls(b, listeners)
    _check_peers(b)
    _check_lifetimes(b)
    if "realm" not in fields_ and not b.has("realm"):
        b.note("realm", f"not set; using {RelayConfig.realm!r} (BBB accepts any realm)")
    if "nonce_secret" not in fields_:
        b.note(
            "nonce-secret",
            "not set: a random key per start, so nonces do not validate on other "
            "instances or after a restart (set nonce-secret-file for a fleet)",
        )
    if b.errors:
        return None
    fields_["listeners"] = tuple(listeners)
    fields_["auth_secrets"] = tuple(dict.fromkeys(secret for secret, _, _ in b.secrets))
    fields_["static_users"] = tuple((name, password) for name, (password, _) in b.users.items())
    fields_["allowed_peers"] = tuple(dict.fromkeys(net for net, _, _, _ in b.allowed))
    fields_["denied_peers"] = tuple(dict.fromkeys(b.denied))
    fields_["ignored_keys"] = tuple(dict.fromkeys(b.ignored))
    known = {f.name for f in dataclasses.fields(RelayConfig)}
    return RelayConfig(**{name: value for name, value in fields_.items() if name in known})  # type: ignore[arg-type]


def _check_auth(b: _Builder) -> None:
    for secret, where, key in b.secrets:
        register_secret(secret)
        if len(secret) < MIN_SECRET_LENGTH:
            b.warnings.append(
                Problem(
                    key,
                    f"a secret is only {len(secret)} characters; use at least 32 random ones (openssl rand -hex 32)",
                    where,
                )
            )
        if any(ch.isspace() for ch in secret):
            b.warnings.append(
                Problem(key, "a secret contains whitespace (a comment on the same line is part of the value)", where)
            )
    if b.use_auth_secret and not b.secrets:
        b.error("use-auth-secret", "needs static-auth-secret or auth-secret-file")
    if not b.secrets and not b.users:
        b.error(
            "auth",
            "no credentials configured: set static-auth-secret (what BBB uses), auth-secret-file "
            "or user=NAME:PASSWORD; a TURN server without authentication is an open relay",
        )


def _check_addresses(b: _Builder) -> None:
    for suffix, family in (("", 4), ("v6", 6)):
        private = b.fields.pop(f"_external_private{suffix}", None)
        if private is None:
            continue
        private_ip, entry = private
        relay_key = "relay_ip" if family == 4 else "relay_ipv6"
        relay = b.fields.get(relay_key)
        if relay is not None and relay != private_ip and not ipaddress.ip_address(relay).is_unspecified:
            b.error(entry, f"maps {private_ip} but relay-ip is {relay}; they must be the same address")
        else:
            b.fields[relay_key] = private_ip


def _build_listeners(b: _Builder) -> list[Listener]:
    hosts = b.listen_ips or ["0.0.0.0"]
    tls_enabled = not b.no_tls and (b.tls_port is not None or "cert_file" in b.fields)
    if b.no_tls and b.tls_port is not None:
        b.warn("tls-listening-port", "ignored because no-tls is set")
    listeners: list[Listener] = []
    for host in hosts:
        if not b.no_udp:
            listeners.append(Listener("udp", host, b.listen_port))
        if not b.no_tcp:
            listeners.append(Listener("tcp", host, b.listen_port))
        if tls_enabled:
            listeners.append(Listener("tls", host, b.tls_port or DEFAULT_TLS_PORT))
        if b.proxy_port is not None:
            listeners.append(Listener("tcp", host, b.proxy_port, proxy_protocol=True))
    if not listeners:
        b.error("listening-port", "no listener left (no-udp, no-tcp and no TLS); enable at least one transport")
    return listeners


def _check_ports(b: _Builder, listeners: list[Listener]) -> None:
    names = {"udp": "listening-port", "tcp": "listening-port", "tls": "tls-listening-port"}
    stream_ports: dict[int, str] = {}
    for listener in listeners:
        if listener.transport == "udp" or listener.host != listeners[0].host:
            continue
        key = "tcp-proxy-port" if listener.proxy_protocol else names[listener.transport]
        other = stream_ports.get(listener.port)
        if other is not None and other != key:
            b.error(key, f"port {listener.port} is also {other}; TCP listeners need distinct ports")
        stream_ports[listener.port] = key
    admin_port = int(b.fields.get("admin_port", RelayConfig.admin_port))  # type: ignore[call-overload]
    admin_host = str(b.fields.get("admin_host", RelayConfig.admin_host))
    for listener in listeners:
        same_host = (
            listener.host == admin_host
            or ipaddress.ip_address(admin_host).is_unspecified
            or ipaddress.ip_address(listener.host).is_unspecified
        )
        if listener.transport != "udp" and listener.port == admin_port and same_host:
            b.error("admin-listen", f"port {admin_port} is also a TCP listener port ({listener.host})")
            break
    low = int(b.fields.get("min_port", RelayConfig.min_port))  # type: ignore[call-overload]
    high = int(b.fields.get("max_port", RelayConfig.max_port))  # type: ignore[call-overload]
    if low > high:
        b.error("min-port", f"min-port {low} is above max-port {high}")
    elif not b.no_udp and low <= b.listen_port <= high:
        b.warn("listening-port", f"UDP port {b.listen_port} lies inside the relay range {low}-{high}")


def _check_tls(b: _Builder, listeners: list[Listener]) -> None:
    if b.tls13_only:
        if b.fields.get("tls_min_version") == "TLSv1.2":
            b.error("no-tlsv1_2", "contradicts tls-min-version TLSv1.2; set only one of them")
        else:
            b.fields["tls_min_version"] = "TLSv1.3"
    cert, key = b.fields.get("cert_file"), b.fields.get("key_file")
    if not any(listener.transport == "tls" for listener in listeners):
        if cert or key:
            b.warn("cert" if cert else "pkey", "unused: there is no TLS listener (no-tls is set)")
        return
    if not cert or not key:
        missing = " and ".join(k for k, v in (("cert", cert), ("pkey", key)) if not v)
        b.error("tls-listening-port" if b.tls_port else "cert", f"a TLS listener needs {missing} (PEM files)")
        return
    try:
        build_server_context(
            str(cert),
            str(key),
            b.fields.get("tls_min_version", "TLSv1.2"),  # type: ignore[arg-type]
            b.fields.get("tls_ciphers"),  # type: ignore[arg-type]
        )
    except TlsConfigError as exc:
        b.error("cert", str(exc))


def _check_peers(b: _Builder) -> None:
    allow_loopback = bool(b.fields.get("allow_loopback_peers", False))
    for network, text, where, key in b.allowed:
        metadata = [str(m) for m in _METADATA_NETWORKS if m.version == network.version and network.overlaps(m)]
        if metadata:
            b.errors.append(
                Problem(
                    key,
                    f"{text!r} includes the cloud metadata address {metadata[0]}; allowing it "
                    "would let TURN clients fetch instance credentials",
                    where,
                )
            )
        loopback = [n for n in _LOOPBACK_NETWORKS if n.version == network.version and network.overlaps(n)]
        if loopback and not allow_loopback:
            b.errors.append(
                Problem(
                    key,
                    f"{text!r} includes loopback addresses; set allow-loopback-peers if "
                    "that is really wanted (tests only)",
                    where,
                )
            )


def _check_lifetimes(b: _Builder) -> None:
    maximum = int(b.fields.get("max_lifetime", RelayConfig.max_lifetime))  # type: ignore[call-overload]
    default = b.fields.get("default_lifetime")
    if default is None:
        if maximum < RelayConfig.default_lifetime:
            b.fields["default_lifetime"] = maximum
    elif int(default) > maximum:  # type: ignore[call-overload]
        b.error("default-lifetime", f"{default} is above max-allocate-lifetime {maximum}")


# --- public API ------------------------------------------------------------------------------------


def _resolve(*sources: list[_Entry]) -> tuple[dict[str, list[_Entry]], list[Problem]]:
    """Per key, the entries of the highest-precedence source (sources are given lowest first)."""
    resolved: dict[str, list[_Entry]] = {}
    problems: list[Problem] = []
    for entries in sources:
        fresh: dict[str, list[_Entry]] = {}
        for entry in entries:
            fresh.setdefault(entry.key, []).append(entry)
        for key, group in fresh.items():
            spec = KEY_INDEX[key]
            if not spec.repeatable and len(group) > 1 and group[0].source == "file":
                earlier = ", ".join(e.where for e in group[:-1])
                problems.append(
                    Problem(group[-1].name, f"set more than once (also {earlier}); the last wins", group[-1].where)
                )
            resolved[key] = group
    return resolved, problems


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> LoadResult:
    """Parse and validate everything; never raises for bad input (see the module docstring)."""
    cli_entries, cli_file, action, cli_problems = parse_arguments(argv)
    if action in ("help", "version"):
        return LoadResult(None, action=action)
    env_entries, env_file, env_problems = parse_environment(environ)
    config_file = cli_file or env_file
    file_entries: list[_Entry] = []
    file_problems: list[Problem] = []
    if config_file is not None:
        text, reason = _read_file(config_file)
        if text is None:
            where = "-c" if cli_file else f"env {ENV_CONFIG}"
            file_problems.append(Problem("config", f"{config_file}: {reason}", where))
        else:
            file_entries, file_problems = parse_config_text(text, config_file)
    for entry in (*file_entries, *env_entries, *cli_entries):
        if KEY_INDEX[entry.key].secret and entry.value:
            register_secret(entry.value)
    resolved, duplicate_warnings = _resolve(file_entries, env_entries, cli_entries)
    builder = _Builder(resolved)
    builder.errors.extend([*file_problems, *env_problems, *cli_problems])
    builder.warnings.extend(duplicate_warnings)
    for spec in KEYS:  # table order: deterministic, and "workers" precedes "relay-threads" checks
        entries = resolved.get(spec.name)
        if entries:
            _HANDLERS.get(spec.name, _generic)(builder, entries)
    config = _finish(builder)
    return LoadResult(
        config, _in_order(builder.errors), _in_order(builder.warnings), _in_order(builder.notes), action, config_file
    )


def _in_order(problems: list[Problem]) -> list[Problem]:
    """File problems by line, then environment, then command line, then whole-config ones."""

    def position(problem: Problem) -> tuple[int, str, int]:
        where = problem.where
        path, _, line = where.rpartition(":")
        if path and line.isdigit():
            return (0, path, int(line))
        if where.startswith("env "):
            return (1, where, 0)
        return (2, "", 0) if where else (3, "", 0)  # command line (in argv order), then global

    return sorted(problems, key=position)


def apply_reload(current: RelayConfig, new: RelayConfig) -> tuple[RelayConfig, tuple[str, ...]]:
    """(config to use now, changed fields that only a restart applies)."""
    changes = {name: getattr(new, name) for name in RELOADABLE_FIELDS}
    restart = tuple(
        f.name
        for f in dataclasses.fields(RelayConfig)
        if f.name not in RELOADABLE_FIELDS and getattr(current, f.name) != getattr(new, f.name)
    )
    return dataclasses.replace(current, **changes), restart


def config_summary(config: RelayConfig) -> dict[str, object]:
    """A loggable view of the config (log it as fields): secrets become counts, networks strings."""
    summary: dict[str, object] = {}
    for f in dataclasses.fields(RelayConfig):
        value = getattr(config, f.name)
        # Names avoid "secret"/"password": relay.logs redacts such fields, which would hide these facts.
        if f.name == "auth_secrets":
            summary["rest_api_key_count"] = len(value)
        elif f.name == "auth_secret_file":
            summary["rest_api_key_file"] = value
        elif f.name == "static_users":
            summary["static_user_names"] = [name for name, _ in value]
        elif f.name == "nonce_secret":
            summary["nonce_key_configured"] = value is not None
        elif f.name == "listeners":
            summary["listeners"] = [
                f"{x.transport}{'+proxy' if x.proxy_protocol else ''}://{x.host}:{x.port}" for x in value
            ]
        elif f.name in ("allowed_peers", "denied_peers"):
            summary[f.name] = [str(n) for n in value]
        else:
            summary[f.name] = value
    return summary


def key_table() -> list[tuple[str, str, str]]:
    """(key, status, explanation) for every recognised key, in documentation order."""
    return [(spec.name, spec.status, spec.text) for spec in KEYS]


def help_text(prog: str = "bbb-turn-relay") -> str:
    lines = [
        f"usage: {prog} [-c FILE] [--check-config] [--version] [--KEY[=VALUE] ...]",
        "",
        "Reads coturn's turnserver.conf keys from FILE, BBB_TURN_RELAY_<KEY> environment variables and",
        "--KEY=VALUE flags (flags win over the environment, which wins over the file).",
        "",
        "Supported keys:",
    ]
    for spec in KEYS:
        if spec.status == "supported":
            lines.append(f"  --{spec.name:<28} {spec.text}")
    lines.append("")
    lines.append("Other coturn keys are recognised: harmless ones are ignored with a warning, ones whose")
    lines.append("absence would weaken security or change what clients see are errors. --check-config lists them.")
    return "\n".join(lines)
