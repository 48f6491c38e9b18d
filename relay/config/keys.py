"""The key table: every coturn and bbb-turn-relay key with its kind, status and the reason for it.

One row per key (`KEYS`), in documentation order; the loader walks it in this order. The constants here
(environment prefix, default ports, file and secret limits) are the loader's single source for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
        "tcp-proxy-transport",
        "value",
        "supported",
        "what the PROXY listener's clients used: tls when the balancer terminates TLS (metrics label), else tcp",
        ours=True,
    ),
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
    _k(
        "user-quota",
        "value",
        "supported",
        "maximum concurrent allocations per user (default 200, sized from BBB; 0 = unlimited)",
    ),
    _k("max-bps", "value", "supported", "bytes per second per allocation and direction (0 = unlimited)"),
    _k("bps-capacity", "value", "error", "a server-wide bandwidth cap is not supported (0 is accepted)"),
    _k("max-permissions", "value", "supported", "peer IPs per allocation (default 100)", ours=True),
    _k("max-channels", "value", "supported", "channel bindings per allocation (default 100)", ours=True),
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
    _k(
        "kernel-offload",
        "value",
        "supported",
        "UDP channels and indications forwarded in the kernel: off | auto (default: when the host can) | on",
        ours=True,
    ),
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
