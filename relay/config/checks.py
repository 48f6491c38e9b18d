"""Whole-configuration checks run after every key is read, and the final `RelayConfig`.

Rules that span keys: credentials present, external/relay address pairs, listeners and their ports,
TLS files loadable, allow-lists that would open metadata or loopback addresses, lifetimes.
"""

from __future__ import annotations

import dataclasses
import ipaddress

from relay.config.builder import Builder
from relay.config.keys import DEFAULT_TLS_PORT, MIN_SECRET_LENGTH
from relay.config.model import Listener, RelayConfig
from relay.config.sources import Problem
from relay.ops.logs import register_secret
from relay.policy.tls import TlsConfigError, build_server_context

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


def finish(b: Builder) -> RelayConfig | None:
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


def _check_auth(b: Builder) -> None:
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


def _check_addresses(b: Builder) -> None:
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


def _build_listeners(b: Builder) -> list[Listener]:
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
            listeners.append(
                Listener("tcp", host, b.proxy_port, proxy_protocol=True, client_transport=b.proxy_transport)
            )
    if not listeners:
        b.error("listening-port", "no listener left (no-udp, no-tcp and no TLS); enable at least one transport")
    return listeners


def _check_ports(b: Builder, listeners: list[Listener]) -> None:
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


def _check_tls(b: Builder, listeners: list[Listener]) -> None:
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


def _check_peers(b: Builder) -> None:
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


def _check_lifetimes(b: Builder) -> None:
    maximum = int(b.fields.get("max_lifetime", RelayConfig.max_lifetime))  # type: ignore[call-overload]
    default = b.fields.get("default_lifetime")
    if default is None:
        if maximum < RelayConfig.default_lifetime:
            b.fields["default_lifetime"] = maximum
    elif int(default) > maximum:  # type: ignore[call-overload]
        b.error("default-lifetime", f"{default} is above max-allocate-lifetime {maximum}")
