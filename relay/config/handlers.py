"""One handler per key (or group of keys) that needs more than the generic noop/warning/error rule.

Each handler reads the winning entries of its keys, reports problems on the builder and sets fields;
the cross-key rules run afterwards (`relay.config.checks`). Importing this module registers them.
"""

from __future__ import annotations

import dataclasses

from relay.config.builder import Builder, handles, parse_peer, read_secret_file
from relay.config.keys import KEY_INDEX, MIN_SECRET_LENGTH, SOFTWARE_NAME
from relay.config.model import AMPLIFICATION_BOUND, KERNEL_OFFLOAD_MODES, MAX_REALM_LENGTH
from relay.config.sources import Entry, Problem, read_file
from relay.ops.logs import register_secret
from relay.policy.tls import TlsConfigError, select_tls12_ciphers


@handles("listening-port", "tls-listening-port", "tcp-proxy-port")
def _ports(b: Builder, entries: list[Entry]) -> None:
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


@handles("tcp-proxy-transport")
def _proxy_transport(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    value = (entry.value or "").lower()
    if value not in ("tcp", "tls"):
        b.error(entry, f"{b.shown(entry)} is not one of tcp, tls (tls when the balancer terminates TLS)")
    else:
        b.proxy_transport = None if value == "tcp" else value


@handles("listening-ip")
def _listening_ip(b: Builder, entries: list[Entry]) -> None:
    for entry in entries:
        address = b.address(entry)
        if address is not None and str(address) not in b.listen_ips:
            b.listen_ips.append(str(address))


@handles("no-udp", "no-tcp", "no-tls")
def _no_transport(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    value = b.flag(entry)
    if value is not None:
        setattr(b, entry.key.replace("-", "_"), value)


@handles("relay-ip")
def _relay_ip(b: Builder, entries: list[Entry]) -> None:
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


@handles("external-ip")
def _external_ip(b: Builder, entries: list[Entry]) -> None:
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


@handles("min-port", "max-port")
def _relay_ports(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    port = b.integer(entry, 1024, 65535)
    if port is not None:
        b.fields[entry.key.replace("-", "_")] = port


@handles("realm")
def _realm(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    realm = entry.value or ""
    if not realm:
        b.error(entry, "must not be empty; use the TURN server's domain, e.g. turn.example.org")
    elif any(ch.isspace() or not ch.isprintable() or ch == '"' for ch in realm):
        b.error(entry, f"{realm!r} must be printable characters without spaces or quotes")
    elif len(realm) > MAX_REALM_LENGTH:
        b.error(
            entry,
            f"a realm of {len(realm)} characters is over {MAX_REALM_LENGTH}: the 401 to a browser's first "
            f"Allocate would exceed the {AMPLIFICATION_BOUND}x reflection bound and be dropped; use a "
            "shorter realm (BBB accepts any realm)",
        )
    else:
        b.fields["realm"] = realm


@handles("use-auth-secret")
def _use_auth_secret(b: Builder, entries: list[Entry]) -> None:
    value = b.flag(entries[-1])
    b.use_auth_secret = bool(value)


@handles("static-auth-secret")
def _static_secret(b: Builder, entries: list[Entry]) -> None:
    for entry in entries:
        secret = b.text(entry)
        if secret is not None:
            b.secrets.append((secret, entry.where, entry.name))


@handles("auth-secret-file")
def _secret_file(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    path = b.text(entry)
    if path is None:
        return
    content = read_secret_file(b, entry, path)
    if content is None:
        return
    secrets = [(line.strip(), f"{path}:{n}", entry.name) for n, line in enumerate(content.splitlines(), 1)]
    secrets = [item for item in secrets if item[0] and not item[0].startswith("#")]
    if not secrets:
        b.error(entry, f"{path} holds no secret (one per line; # starts a comment)")
    b.secrets.extend(secrets)
    b.fields["auth_secret_file"] = path


@handles("user")
def _users(b: Builder, entries: list[Entry]) -> None:
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


@handles("rest-api-separator")
def _separator(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    if entry.value != ":":
        b.error(entry, f"{b.shown(entry)} is not supported: {KEY_INDEX[entry.key].text}")


@handles("fingerprint", "legacy-channel-numbers")
def _boolean_field(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    value = b.flag(entry)
    if value is not None:
        b.fields[entry.key.replace("-", "_")] = value


@handles("stale-nonce")
def _stale_nonce(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    if entry.value is None or entry.value == "":
        b.fields["nonce_lifetime"] = 600
        return
    lifetime = b.integer(entry, 30, 86400, "seconds")
    if lifetime is not None:
        b.fields["nonce_lifetime"] = lifetime


@handles("nonce-secret", "stateless-nonce-secret", "nonce-secret-file")
def _nonce_secret(b: Builder, entries: list[Entry]) -> None:
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
        content = read_secret_file(b, entry, text)
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


@handles("unauthenticated-rate", "unauthenticated-burst")
def _rates(b: Builder, entries: list[Entry]) -> None:
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
    "max-channels": ("max_channels", 1, 16_384, "channels"),
    "max-allocate-lifetime": ("max_lifetime", 60, 86_400, "seconds"),
    "default-lifetime": ("default_lifetime", 60, 86_400, "seconds"),
    "channel-lifetime": ("channel_lifetime", 60, 3_600, "seconds"),
    "permission-lifetime": ("permission_lifetime", 60, 3_600, "seconds"),
    "rest-ms-timestamp-ttl": ("rest_ms_timestamp_ttl", 0, 31_536_000, "seconds"),
    "drain-timeout": ("drain_timeout", 0, 604_800, "seconds"),
    "drain-min-allocations": ("drain_min_allocations", 0, 10_000_000, "allocations"),
    "workers": ("workers", 0, 1024, "processes"),
}


@handles(*_INT_FIELDS)
def _int_field(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    name, low, high, unit = _INT_FIELDS[entry.key]
    value = b.integer(entry, low, high, unit)
    if value is not None:
        b.fields[name] = value


@handles("bps-capacity")
def _bps_capacity(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    if entry.value not in ("0", None, ""):
        b.error(entry, f"not supported: {KEY_INDEX[entry.key].text}; use max-bps per allocation")


@handles("relay-threads")
def _relay_threads(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    threads = b.integer(entry, 0, 1024, "threads")
    if threads is None:
        return
    if b.has("workers"):
        b.warn(entry, "ignored because workers is set")
    else:
        b.fields["workers"] = max(threads, 1)  # coturn's 0 means single-threaded


@handles("denied-peer-ip", "allowed-peer-ip")
def _peer_ips(b: Builder, entries: list[Entry]) -> None:
    for entry in entries:
        text = b.text(entry)
        if text is None:
            continue
        networks = parse_peer(text)
        if networks is None:
            b.error(entry, _PEER_FORMS.format(text=text))
        elif entry.key == "denied-peer-ip":
            b.denied.extend(networks)
        else:
            b.allowed.extend((network, text, entry.where, entry.name) for network in networks)


_PEER_FORMS = "{text!r} is not an address, a FIRST-LAST range of one family, or a CIDR network"


@handles("allowed-peers-file")
def _peers_file(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    path = b.text(entry)
    if path is None:
        return
    content, reason = read_file(path)
    if content is None:
        b.error(entry, f"{path}: {reason}")
        return
    b.fields["allowed_peers_file"] = path
    for number, line in enumerate(content.splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        networks = parse_peer(text)
        if networks is None:
            b.errors.append(Problem("allowed-peers-file", _PEER_FORMS.format(text=text), f"{path}:{number}"))
        else:
            b.allowed.extend((network, text, f"{path}:{number}", entry.name) for network in networks)


@handles("allow-loopback-peers")
def _allow_loopback(b: Builder, entries: list[Entry]) -> None:
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


@handles("no-loopback-peers", "no-multicast-peers")
def _peer_noops(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    value = b.flag(entry)
    text = KEY_INDEX[entry.key].text
    if value:
        b.note(entry, f"nothing to do: {text}")
    elif value is not None:
        b.warn(entry, f"ignored: {text}")
        b.ignored.append(entry.name)


@handles("cert", "pkey")
def _cert_paths(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    path = b.text(entry)
    if path is not None:
        b.fields["cert_file" if entry.key == "cert" else "key_file"] = path


@handles("cipher-list")
def _ciphers(b: Builder, entries: list[Entry]) -> None:
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


@handles("no-tlsv1_2", "tls-min-version")
def _tls_version(b: Builder, entries: list[Entry]) -> None:
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


@handles("no-software-attribute", "software-attribute")
def _software(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    value = b.flag(entry)
    if value is None:
        return
    announce = value if entry.key == "software-attribute" else not value
    if "software" in b.fields and b.fields["software"] != (SOFTWARE_NAME if announce else None):
        b.error(entry, "contradicts the other SOFTWARE setting (software-attribute / no-software-attribute)")
        return
    b.fields["software"] = SOFTWARE_NAME if announce else None


@handles("allocation-default-address-family")
def _address_family(b: Builder, entries: list[Entry]) -> None:
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


@handles("admin-listen")
def _admin_listen(b: Builder, entries: list[Entry]) -> None:
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


@handles("prometheus-port", "prometheus-address")
def _prometheus_admin(b: Builder, entries: list[Entry]) -> None:
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


@handles("prometheus")
def _prometheus(b: Builder, entries: list[Entry]) -> None:
    if b.flag(entries[-1]):
        b.note(entries[-1], KEY_INDEX["prometheus"].text)


@handles("log-level", "log-format")
def _logging(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    allowed = ("debug", "info", "warning", "error") if entry.key == "log-level" else ("json", "text")
    value = (entry.value or "").lower()
    if value not in allowed:
        b.error(entry, f"{b.shown(entry)} is not one of {', '.join(allowed)}")
    else:
        b.fields[entry.key.replace("-", "_")] = value


@handles("kernel-offload")
def _kernel_offload(b: Builder, entries: list[Entry]) -> None:
    entry = entries[-1]
    value = (entry.value or "").lower()
    if value not in KERNEL_OFFLOAD_MODES:
        b.error(entry, f"{b.shown(entry)} is not one of {', '.join(KERNEL_OFFLOAD_MODES)}")
    else:
        b.fields["kernel_offload"] = value
