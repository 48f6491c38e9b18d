"""Configuration loading: syntax, precedence, validation messages, secrets, reload."""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from relay.config import (
    KEYS,
    RELOADABLE_FIELDS,
    Listener,
    LoadResult,
    RelayConfig,
    apply_reload,
    config_summary,
    help_text,
    load_config,
)
from relay.ops.logs import clear_registered_secrets, configure_logging, get_logger, scrub

SECRET = "d41d8cd98f00b204e9800998ecf8427e"
BASE = f"static-auth-secret={SECRET}\nrealm=turn.example.org\n"


@pytest.fixture(autouse=True)
def _forget_secrets():
    yield
    clear_registered_secrets()


def load(tmp_path: Path, text: str | None = None, argv: list[str] | None = None, env=None) -> LoadResult:
    args = list(argv or [])
    if text is not None:
        path = tmp_path / "turnserver.conf"
        path.write_text(text)
        args = ["-c", str(path), *args]
    return load_config(args, env or {})


def messages(problems) -> list[str]:
    return [str(p) for p in problems]


def keys(problems) -> list[str]:
    return [p.key for p in problems]


def make_cert(directory: Path) -> tuple[str, str]:
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=turn.example.org",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


# --- syntax -----------------------------------------------------------------------------------------


def test_defaults_with_only_a_secret(tmp_path):
    result = load(tmp_path, BASE)
    assert result.ok, result.report()
    config = result.config
    assert config is not None
    assert config.listeners == (Listener("udp", "0.0.0.0", 3478), Listener("tcp", "0.0.0.0", 3478))
    assert config.auth_secrets == (SECRET,)
    assert config.realm == "turn.example.org"
    assert (config.min_port, config.max_port, config.admin_host, config.admin_port) == (49152, 65535, "127.0.0.1", 9641)
    assert config.kernel_offload == "auto"  # offload when the host can, user space otherwise


def test_coturn_syntax_forms(tmp_path):
    text = (
        "# comment\n"
        "   \n"
        "  realm   turn.example.org  \n"  # 'key value'
        f'static-auth-secret = "{SECRET}"\n'  # spaces around '=', quoted value
        "fingerprint\n"  # bare flag
        "no-tcp=true\n"
        "min-port=40000 # a trailing comment\n"
        "max-port=50000\r\n"  # CRLF
        "stale-nonce\n"  # optional value, bare
        'new-log-timestamp-format "%FT%T%z"\n'
    )
    result = load(tmp_path, text)
    assert result.ok, result.report()
    config = result.config
    assert config is not None
    assert (config.realm, config.min_port, config.max_port, config.nonce_lifetime) == (
        "turn.example.org",
        40000,
        50000,
        600,
    )
    assert [listener.transport for listener in config.listeners] == ["udp"]
    assert keys(result.warnings) == ["new-log-timestamp-format"]


def test_every_problem_is_reported_at_once_with_file_and_line(tmp_path):
    text = (
        "realm=\n"  # 1
        "listening-port=70000\n"  # 2
        "min-port=abc\n"  # 3
        "listening-ip=10.0.0.300\n"  # 4
        "denied-peer-ip=10.0.0.9-10.0.0.1\n"  # 5
        "listen-port=3478\n"  # 6: typo
        "!!!\n"  # 7
        "no-auth\n"  # 8
        "log-level=loud\n"  # 9
    )
    result = load(tmp_path, text)
    assert not result.ok and result.config is None and result.exit_code == 2
    path = str(tmp_path / "turnserver.conf")
    found = messages(result.errors)
    expected = [
        f"{path}:1: realm: must not be empty",
        f"{path}:2: listening-port: '70000' is not a whole number from 1 to 65535",
        f"{path}:3: min-port: 'abc' is not a whole number from 1024 to 65535",
        f"{path}:4: listening-ip: '10.0.0.300' is not an IPv4 or IPv6 address",
        f"{path}:5: denied-peer-ip: '10.0.0.9-10.0.0.1' is not an address, a FIRST-LAST range",
        f"{path}:6: listen-port: unknown key; did you mean listening-port?",
        f"{path}:7: syntax: not a 'key', 'key=value' or 'key value' line",
        f"{path}:8: no-auth: not supported: an unauthenticated TURN server is an open relay",
        f"{path}:9: log-level: 'loud' is not one of debug, info, warning, error",
        "auth: no credentials configured",
    ]
    assert len(found) == len(expected), found
    for line, prefix in zip(found, expected, strict=True):
        assert line.startswith(prefix), (line, prefix)
    assert result.report().endswith("10 error(s); the relay would not start")


def test_missing_and_unreadable_config_file(tmp_path):
    result = load_config(["-c", str(tmp_path / "nope.conf")], {})
    assert messages(result.errors)[0] == f"-c: config: {tmp_path / 'nope.conf'}: no such file"
    (tmp_path / "bin.conf").write_bytes(b"realm=\xff\xfe\n")
    result = load_config(["-c", str(tmp_path / "bin.conf")], {})
    assert "not UTF-8 text" in messages(result.errors)[0]
    result = load_config(["-c", str(tmp_path)], {})
    assert "is a directory" in messages(result.errors)[0]


def test_duplicate_single_value_key_in_file_warns_and_last_wins(tmp_path):
    result = load(tmp_path, BASE + "min-port=40000\nmin-port=41000\n")
    assert result.config is not None and result.config.min_port == 41000
    assert keys(result.warnings) == ["min-port"]
    assert "set more than once" in result.warnings[0].message


def test_cli_only_keys_are_refused_in_the_file(tmp_path):
    result = load(tmp_path, BASE + "check-config\n")
    assert messages(result.errors)[0].endswith("check-config: may only be given on the command line")


# --- precedence, environment, command line -------------------------------------------------------------


def test_precedence_cli_over_env_over_file(tmp_path):
    env = {
        "BBB_TURN_RELAY_MIN_PORT": "41000",
        "BBB_TURN_RELAY_MAX_PORT": "42000",
        "BBB_TURN_RELAY_ALLOWED_PEER_IP": "198.51.100.1, 198.51.100.2",
        "BBB_TURN_RELAY_NO_TCP": "yes",
    }
    text = BASE + "min-port=40000\nmax-port=60000\nuser-quota=5\nallowed-peer-ip=192.0.2.200\n"
    result = load(tmp_path, text, ["--max-port=43000", "--user-quota", "7"], env)
    assert result.ok, result.report()
    config = result.config
    assert config is not None
    assert (config.min_port, config.max_port, config.user_quota) == (41000, 43000, 7)
    # A list key takes all its values from the highest source that sets it.
    assert config.allowed_peers == (ipaddress.ip_network("198.51.100.1/32"), ipaddress.ip_network("198.51.100.2/32"))
    assert [listener.transport for listener in config.listeners] == ["udp"]


def test_environment_only_configuration_and_config_path(tmp_path):
    env = {"BBB_TURN_RELAY_STATIC_AUTH_SECRET": SECRET, "BBB_TURN_RELAY_REALM": "env.example.org"}
    result = load_config([], env)
    assert result.ok and result.config is not None and result.config.realm == "env.example.org"
    (tmp_path / "relay.conf").write_text("realm=file.example.org\n")
    env = {"BBB_TURN_RELAY_CONFIG": str(tmp_path / "relay.conf"), "BBB_TURN_RELAY_STATIC_AUTH_SECRET": SECRET}
    result = load_config([], env)
    assert result.config is not None and result.config.realm == "file.example.org"
    assert result.config_file == str(tmp_path / "relay.conf")


def test_unknown_environment_variables_and_bad_booleans():
    env = {
        "BBB_TURN_RELAY_STATIC_AUTH_SECRET": SECRET,
        "BBB_TURN_RELAY_DENIED_PEER_IPS": "10.0.0.1",
        "BBB_TURN_RELAY_NO_TLS": "maybe",
        "UNRELATED": "x",
    }
    result = load_config([], env)
    assert messages(result.errors) == [
        "env BBB_TURN_RELAY_DENIED_PEER_IPS: BBB_TURN_RELAY_DENIED_PEER_IPS: unknown environment variable; "
        "did you mean BBB_TURN_RELAY_DENIED_PEER_IP?",
        "env BBB_TURN_RELAY_NO_TLS: no-tls: 'maybe' is not a boolean; use true/false, yes/no, on/off or 1/0",
    ]


def test_command_line_forms_and_mistakes():
    result = load_config(
        [
            f"--static-auth-secret={SECRET}",
            "--realm",
            "cli.example.org",
            "--no-tcp",
            "--fingerprint=off",
            "--listening-port",
        ],
        {},
    )
    assert messages(result.errors) == ["--listening-port: listening-port: needs a value: --listening-port=VALUE"]
    result = load_config(["-p", "3478", "stray", "--relm=x", f"--static-auth-secret={SECRET}"], {})
    assert messages(result.errors) == [
        "-p: -p: short options are not supported; use --listening-port",
        "stray: stray: unexpected argument; options look like --key=value",
        "--relm: relm: unknown key; did you mean realm? (see --help for the supported keys)",
    ]
    good = load_config([f"--static-auth-secret={SECRET}", "--no-tcp", "--fingerprint=off"], {})
    assert good.config is not None and good.config.fingerprint is False
    assert [listener.transport for listener in good.config.listeners] == ["udp"]


def test_actions():
    assert load_config(["--help", "--bogus"], {}).action == "help"
    assert load_config(["--version"], {}).action == "version"
    check = load_config(["--check-config", f"--static-auth-secret={SECRET}"], {})
    assert check.action == "check" and check.ok and check.report().endswith("OK")
    assert "--static-auth-secret" in help_text() and "--tcp-proxy-port" in help_text()


# --- listeners, addresses, ports ------------------------------------------------------------------------


def test_listeners_for_tls_and_proxy_ports(tmp_path):
    cert, key = make_cert(tmp_path)
    text = BASE + f"listening-ip=10.0.0.5\nlistening-ip=fd00::5\ntls-listening-port=443\ncert={cert}\npkey={key}\n"
    text += "tcp-proxy-port=3479\n"
    result = load(tmp_path, text)
    assert result.ok, result.report()
    assert result.config is not None
    assert result.config.listeners == (
        Listener("udp", "10.0.0.5", 3478),
        Listener("tcp", "10.0.0.5", 3478),
        Listener("tls", "10.0.0.5", 443),
        Listener("tcp", "10.0.0.5", 3479, proxy_protocol=True),
        Listener("udp", "fd00::5", 3478),
        Listener("tcp", "fd00::5", 3478),
        Listener("tls", "fd00::5", 443),
        Listener("tcp", "fd00::5", 3479, proxy_protocol=True),
    )


def test_proxy_listener_clients_labelled_by_what_they_used(tmp_path):
    """Issue 15 case 12: behind the TLS-terminating balancer, the PROXY listener's clients are tls users."""
    result = load(tmp_path, BASE + "tcp-proxy-port=3479\ntcp-proxy-transport=tls\n")
    assert result.config is not None
    (proxy,) = [x for x in result.config.listeners if x.proxy_protocol]
    assert (proxy.transport, proxy.label) == ("tcp", "tls")
    result = load(tmp_path, BASE + "tcp-proxy-port=3479\ntcp-proxy-transport=quic\n")
    assert keys(result.errors) == ["tcp-proxy-transport"]


def test_cert_alone_enables_tls_on_5349_and_no_tls_disables_it(tmp_path):
    cert, key = make_cert(tmp_path)
    result = load(tmp_path, BASE + f"cert={cert}\npkey={key}\n")
    assert result.config is not None
    assert Listener("tls", "0.0.0.0", 5349) in result.config.listeners
    result = load(tmp_path, BASE + f"cert={cert}\npkey={key}\ntls-listening-port=443\nno-tls\n")
    assert result.config is not None
    assert all(listener.transport != "tls" for listener in result.config.listeners)
    assert keys(result.warnings) == ["cert", "tls-listening-port"]  # in file order


def test_tls_listener_needs_a_loadable_certificate(tmp_path):
    result = load(tmp_path, BASE + "tls-listening-port=443\n")
    assert messages(result.errors)[0].endswith("tls-listening-port: a TLS listener needs cert and pkey (PEM files)")
    result = load(tmp_path, BASE + f"tls-listening-port=443\ncert={tmp_path}/missing.pem\npkey={tmp_path}/k.pem\n")
    assert messages(result.errors)[0].endswith(f"cert: cert: {tmp_path}/missing.pem: no such file")
    cert, key = make_cert(tmp_path)
    result = load(tmp_path, BASE + f"cert={cert}\npkey={key}\ncipher-list=AES128-SHA\n")
    assert "no acceptable TLS 1.2 cipher in 'AES128-SHA'" in messages(result.errors)[0]
    result = load(tmp_path, BASE + f"cert={cert}\npkey={key}\nno-tlsv1_2\n")
    assert result.config is not None and result.config.tls_min_version == "TLSv1.3"
    result = load(tmp_path, BASE + f"cert={cert}\npkey={key}\nno-tlsv1_2\ntls-min-version=TLSv1.2\n")
    assert keys(result.errors) == ["no-tlsv1_2"]


def test_port_conflicts(tmp_path):
    result = load(tmp_path, BASE + "tcp-proxy-port=3478\n")
    assert keys(result.errors) == ["tcp-proxy-port"]
    assert "port 3478 is also listening-port" in result.errors[0].message
    result = load(tmp_path, BASE + "admin-listen=127.0.0.1:3478\n")
    assert keys(result.errors) == ["admin-listen"]
    result = load(tmp_path, BASE + "min-port=60000\nmax-port=50000\n")
    assert messages(result.errors)[0].endswith("min-port: min-port 60000 is above max-port 50000")
    result = load(tmp_path, BASE + "min-port=1024\nmax-port=5000\n")
    assert keys(result.warnings) == ["listening-port"]  # 3478 inside the relay range
    result = load(tmp_path, BASE + "no-udp\nno-tcp\n")
    assert "no listener left" in messages(result.errors)[0]


def test_external_ip_mapping_and_relay_ip(tmp_path):
    result = load(tmp_path, BASE + "external-ip=203.0.113.9/10.0.0.5\n")
    assert result.config is not None
    assert (result.config.external_ip, result.config.relay_ip) == ("203.0.113.9", "10.0.0.5")
    result = load(tmp_path, BASE + "relay-ip=10.0.0.5\nrelay-ip=2001:db8::5\nexternal-ip=2001:db8::5\n")
    assert result.config is not None
    assert (result.config.relay_ip, result.config.relay_ipv6, result.config.external_ipv6) == (
        "10.0.0.5",
        "2001:db8::5",
        "2001:db8::5",
    )
    bad = load(
        tmp_path,
        BASE + "relay-ip=10.0.0.5\nrelay-ip=10.0.0.6\nexternal-ip=0.0.0.0\nexternal-ip=203.0.113.1/fd00::1\n"
        "external-ip=203.0.113.2/10.0.0.7\nexternal-ip=203.0.113.3\n",
    )
    assert [p.message.split(";")[0] for p in bad.errors] == [
        "only one relay-ip per address family is supported (already 10.0.0.5)",
        "'0.0.0.0' cannot be advertised to clients",
        "'203.0.113.1/fd00::1' mixes IPv4 and IPv6",
        "maps 10.0.0.7 but relay-ip is 10.0.0.5",
        "only one external-ip per address family is supported (one relay address each)",
    ]


# --- authentication and secrets ----------------------------------------------------------------------------


def test_credentials_are_required(tmp_path):
    result = load(tmp_path, "realm=example.org\nuse-auth-secret\nlt-cred-mech\n")
    assert keys(result.errors) == ["use-auth-secret", "auth"]
    assert "open relay" in result.errors[1].message


def test_static_users_and_their_errors(tmp_path):
    result = load(tmp_path, "user=alice:wonderland-pass\nuser=bob:builder-pass-1\n")
    assert result.config is not None
    assert result.config.static_users == (("alice", "wonderland-pass"), ("bob", "builder-pass-1"))
    bad = load(tmp_path, "user=alice\nuser=bob:0xabcdef0123456789\nuser=carol:one-pass\nuser=carol:two-pass\n")
    assert [p.message for p in bad.errors] == [
        "must be NAME:PASSWORD with both parts non-empty",
        "user 'bob': the 0x<hex key> form is not supported; give the plain password",
        "user 'carol' is defined twice (also at " + str(tmp_path / "turnserver.conf") + ":3)",
    ]
    assert "abcdef0123456789" not in bad.report() and "two-pass" not in bad.report()


def test_secret_files_rotation_and_permissions(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.write_text("# current first\nnew-secret-0123456789abcdef\n\nold-secret-0123456789abcdef\n")
    secrets.chmod(0o600)
    nonce = tmp_path / "nonce"
    nonce.write_text("n" * 64 + "\n")
    nonce.chmod(0o640)
    result = load(tmp_path, f"auth-secret-file={secrets}\nnonce-secret-file={nonce}\nstatic-auth-secret={SECRET}\n")
    assert result.ok, result.report()
    assert result.config is not None
    assert result.config.auth_secrets == (SECRET, "new-secret-0123456789abcdef", "old-secret-0123456789abcdef")
    assert result.config.nonce_secret == b"n" * 64
    assert result.config.auth_secret_file == str(secrets)
    assert messages(result.warnings) == [
        f"{tmp_path / 'turnserver.conf'}:2: nonce-secret-file: {nonce} is accessible to its group (mode 640); "
        "chmod 600 it"
    ]
    secrets.chmod(0o644)
    result = load(tmp_path, f"auth-secret-file={secrets}\n")
    assert result.ok
    assert messages(result.warnings)[0].endswith(f"{secrets} is readable by every user (mode 644); chmod 600 it")
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    result = load(tmp_path, f"auth-secret-file={empty}\nnonce-secret=short\n")
    assert [p.key for p in result.errors] == ["auth-secret-file", "nonce-secret", "auth"]
    assert "at least 16 bytes" in result.errors[1].message
    result = load(tmp_path, BASE + f"nonce-secret={'x' * 20}\nnonce-secret-file={nonce}\n")
    assert messages(result.errors)[0].endswith("set only one of nonce-secret, nonce-secret-file")


def test_weak_secrets_warn_and_secrets_never_appear_in_reports(tmp_path):
    text = "static-auth-secret=short1\nstatic-auth-secret=has a comment # here\ncli-password=cl1-pa55w0rd\n"
    text += "psql-userdb=host=db password=db-pa55w0rd\nnonce-secret=n0nce-but-short\nmin-port=abc\n"
    result = load(tmp_path, text)
    report = result.report()
    for secret in ("short1", "has a comment", "cl1-pa55w0rd", "db-pa55w0rd", "n0nce-but-short"):
        assert secret not in report
    assert keys(result.warnings) == ["static-auth-secret", "static-auth-secret", "cli-password"]
    assert "only 6 characters" in result.warnings[0].message
    assert "whitespace" in result.warnings[1].message
    # Loading registered every secret with the log scrubber.
    assert scrub("leak cl1-pa55w0rd and host=db password=db-pa55w0rd") == "leak [REDACTED] and [REDACTED]"


# --- peers ----------------------------------------------------------------------------------------------------


def test_peer_ranges_become_networks(tmp_path):
    text = BASE + "denied-peer-ip=10.0.0.0-10.255.255.255\ndenied-peer-ip=192.0.2.1-192.0.2.6\n"
    text += "denied-peer-ip=fc00::/7\nallowed-peer-ip=10.1.2.3\n"
    result = load(tmp_path, text)
    assert result.config is not None
    assert [str(n) for n in result.config.denied_peers] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "192.0.2.2/31",
        "192.0.2.4/31",
        "192.0.2.6/32",
        "fc00::/7",
    ]
    assert [str(n) for n in result.config.allowed_peers] == ["10.1.2.3/32"]


def test_allowed_peers_file(tmp_path):
    peers = tmp_path / "allowed-peers.conf"
    peers.write_text("# BBB servers\n203.0.113.10\n10.0.1.0/24  # private subnet\n\n198.51.100.1-198.51.100.2\n")
    result = load(tmp_path, BASE + f"allowed-peers-file={peers}\nallowed-peer-ip=192.0.2.50\n")
    assert result.ok, result.report()
    assert result.config is not None
    assert [str(n) for n in result.config.allowed_peers] == [
        "192.0.2.50/32",
        "203.0.113.10/32",
        "10.0.1.0/24",
        "198.51.100.1/32",
        "198.51.100.2/32",
    ]
    assert result.config.allowed_peers_file == str(peers)
    peers.write_text("203.0.113.10\nbbb.example.org\n")
    result = load(tmp_path, BASE + f"allowed-peers-file={peers}\n")
    assert messages(result.errors)[0].startswith(f"{peers}:2: allowed-peers-file: 'bbb.example.org' is not an address")
    result = load(tmp_path, BASE + f"allowed-peers-file={tmp_path / 'absent'}\n")
    assert messages(result.errors)[0].endswith("no such file")


def test_allow_list_cannot_open_metadata_or_loopback(tmp_path):
    result = load(tmp_path, BASE + "allowed-peer-ip=0.0.0.0-255.255.255.255\nallowed-peer-ip=fd00:ec2::/64\n")
    assert [p.message.split(";")[0] for p in result.errors] == [
        "'0.0.0.0-255.255.255.255' includes the cloud metadata address 169.254.169.254/32",
        "'0.0.0.0-255.255.255.255' includes loopback addresses",
        "'fd00:ec2::/64' includes the cloud metadata address fd00:ec2::254/128",
    ]
    result = load(tmp_path, BASE + "allowed-peer-ip=127.0.0.1\nallow-loopback-peers\n")
    assert result.ok and keys(result.warnings) == ["allow-loopback-peers"]
    assert result.config is not None and result.config.allow_loopback_peers


# --- values of the remaining supported keys --------------------------------------------------------------------


def test_supported_scalar_keys(tmp_path):
    text = BASE + (
        "total-quota=1000\nuser-quota=12\nmax-bps=3000000\nmax-permissions=20\nmax-allocate-lifetime=1800\n"
        "channel-lifetime=300\npermission-lifetime=120\nstale-nonce=300\nunauthenticated-rate=5.5\n"
        "unauthenticated-burst=50\nrest-ms-timestamp-ttl=3600\ndrain-timeout=900\ndrain-min-allocations=2\n"
        "workers=4\nlog-level=debug\nlog-format=text\nadmin-listen=[::1]:9650\nsoftware-attribute\n"
        "fingerprint=false\nrest-api-separator=:\nbps-capacity=0\nlegacy-channel-numbers\nkernel-offload=ON\n"
    )
    result = load(tmp_path, text)
    assert result.ok, result.report()
    c = result.config
    assert c is not None
    assert (c.total_quota, c.user_quota, c.max_bps, c.max_permissions) == (1000, 12, 3_000_000, 20)
    assert (c.max_lifetime, c.channel_lifetime, c.permission_lifetime, c.nonce_lifetime) == (1800, 300, 120, 300)
    assert (c.unauthenticated_rate, c.unauthenticated_burst, c.rest_ms_timestamp_ttl) == (5.5, 50.0, 3600)
    assert (c.drain_timeout, c.drain_min_allocations, c.workers) == (900, 2, 4)
    assert (c.log_level, c.log_format, c.admin_host, c.admin_port) == ("debug", "text", "::1", 9650)
    assert (c.software, c.fingerprint, c.legacy_channel_numbers, c.kernel_offload) == (
        "bbb-turn-relay",
        False,
        True,
        "on",
    )


def test_coturn_mapped_keys(tmp_path):
    result = load(tmp_path, BASE + "relay-threads=0\nprometheus\nprometheus-port=9700\nprometheus-address=0.0.0.0\n")
    assert result.config is not None
    assert (result.config.workers, result.config.admin_port, result.config.admin_host) == (1, 9700, "0.0.0.0")
    assert keys(result.notes)[:1] == ["prometheus"]
    result = load(tmp_path, BASE + "relay-threads=8\nworkers=2\nadmin-listen=127.0.0.1:9641\nprometheus-port=1\n")
    assert result.config is not None and result.config.workers == 2 and result.config.admin_port == 9641
    assert keys(result.warnings) == ["relay-threads", "prometheus-port"]


def test_lifetime_consistency(tmp_path):
    result = load(tmp_path, BASE + "max-allocate-lifetime=300\n")
    assert result.config is not None and result.config.default_lifetime == 300
    result = load(tmp_path, BASE + "max-allocate-lifetime=300\ndefault-lifetime=600\n")
    assert keys(result.errors) == ["default-lifetime"]


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("bps-capacity=1000000", "a server-wide bandwidth cap is not supported"),
        ("rest-api-separator=;", "only ':' (the default) is supported"),
        ("allocation-default-address-family=ipv6", "allocations default to IPv4"),
        ("allocation-default-address-family=both", "is not one of ipv4, ipv6, keep"),
        ("software-attribute\nno-software-attribute", "contradicts the other SOFTWARE setting"),
        ("realm=has space", "without spaces or quotes"),
        ("admin-listen=9641", "is not HOST:PORT"),
        ("unauthenticated-rate=nan", "is not a number from 0 to 1e+06"),
        ("stale-nonce=5", "from 30 to 86400 seconds"),
        ("cipher-list=bogus", "OpenSSL accepts no cipher from 'bogus'"),
        ("tls-min-version=SSLv3", "is not TLSv1.2 or TLSv1.3"),
        ("verbose=perhaps", "is not a boolean"),
        ("kernel-offload=yes", "'yes' is not one of off, auto, on"),
    ],
)
def test_value_errors(tmp_path, line, fragment):
    result = load(tmp_path, BASE + line + "\n")
    assert any(fragment in p.message for p in result.errors), result.report()


def test_every_key_status_behaves_as_documented(tmp_path):
    """Set each warning/error/noop key once: errors and warnings name the key, noops stay silent."""
    for spec in KEYS:
        if spec.status == "supported":
            continue
        line = spec.name if spec.kind == "flag" else f"{spec.name}=x"
        if spec.name == "allocation-default-address-family":
            line = f"{spec.name}=keep"
        result = load(tmp_path, BASE + line + "\n")
        named = {"error": keys(result.errors), "warning": keys(result.warnings), "noop": []}[spec.status]
        if spec.status == "noop":
            assert not result.errors and spec.name not in keys(result.warnings), spec.name
        else:
            assert named == [spec.name], (spec.name, result.report())
        if spec.status == "warning":
            assert result.config is not None and spec.name in result.config.ignored_keys
        # A flag switched off enables nothing: never an error.
        if spec.kind == "flag":
            off = load(tmp_path, BASE + f"{spec.name}=false\n")
            assert off.ok, (spec.name, off.report())


# --- reload and summary -----------------------------------------------------------------------------------------


def test_apply_reload_takes_reloadable_fields_and_reports_the_rest(tmp_path):
    peers = tmp_path / "peers"
    peers.write_text("203.0.113.10\n")
    argv = ["-c", str(tmp_path / "turnserver.conf")]
    (tmp_path / "turnserver.conf").write_text(BASE + f"allowed-peers-file={peers}\nuser-quota=5\n")
    old = load_config(argv, {}).config
    assert old is not None
    peers.write_text("203.0.113.10\n203.0.113.11\n")
    (tmp_path / "turnserver.conf").write_text(
        BASE.replace(SECRET, "rotated-" + SECRET)
        + f"allowed-peers-file={peers}\nuser-quota=9\nmin-port=50000\nkernel-offload=off\n"
    )
    new = load_config(argv, {}).config
    assert new is not None
    merged, restart = apply_reload(old, new)
    assert merged.auth_secrets == ("rotated-" + SECRET,)
    assert [str(n) for n in merged.allowed_peers] == ["203.0.113.10/32", "203.0.113.11/32"]
    assert merged.user_quota == 9
    assert merged.min_port == old.min_port == 49152
    assert restart == ("min_port", "kernel_offload")  # the program is loaded once, at start
    assert {f for f in RelayConfig.__dataclass_fields__} >= RELOADABLE_FIELDS


def test_summary_hides_secrets(tmp_path):
    result = load(tmp_path, BASE + "user=alice:wonderland-pass\nnonce-secret=" + "k" * 32 + "\n")
    assert result.config is not None
    summary = config_summary(result.config)
    text = repr(summary)
    assert SECRET not in text and "wonderland-pass" not in text and "k" * 32 not in text
    assert summary["rest_api_key_count"] == 1 and summary["static_user_names"] == ["alice"]
    assert summary["listeners"] == ["udp://0.0.0.0:3478", "tcp://0.0.0.0:3478"]
    assert summary["nonce_key_configured"] is True
    # Logged as fields, the summary keeps its facts (no field name trips the secret redaction).
    stream = io.StringIO()
    handler = configure_logging("info", "json", stream)
    try:
        get_logger("relay.test").info("started", **summary)
    finally:
        logging.getLogger().removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["rest_api_key_count"] == 1 and record["nonce_key_configured"] is True
    assert SECRET not in stream.getvalue()


def test_check_config_end_to_end_through_a_subprocess(tmp_path):
    """What `--check-config` prints for an operator, run as a separate process."""
    (tmp_path / "turnserver.conf").write_text(BASE + "verbose\nno-stun\n")
    script = (
        "import os, sys\n"
        "from relay.config import load_config\n"
        "r = load_config(sys.argv[1:], os.environ)\n"
        "print(r.report())\n"
        "sys.exit(r.exit_code)\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    done = subprocess.run(
        [sys.executable, "-c", script, "-c", str(tmp_path / "turnserver.conf"), "--check-config"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    assert lines[0].startswith("error: ") and lines[0].endswith(
        "no-stun: not supported: Binding requests are always answered; ignoring this would serve them"
    )
    assert lines[1].startswith("warning: ") and "verbose: ignored" in lines[1]
    assert lines[-1] == "1 error(s); the relay would not start"


def test_realm_length_is_capped_by_the_reflection_bound(tmp_path):
    """Issue 15 case 6: a realm over MAX_REALM_LENGTH would make the 401 to Chromium's 28-byte first
    Allocate larger than AMPLIFICATION_BOUND times it (the relay would drop it): refused by name."""
    from relay.config.model import MAX_REALM_LENGTH

    longest = "r" * MAX_REALM_LENGTH
    assert load(tmp_path, f"static-auth-secret={SECRET}\nrealm={longest}\n").config.realm == longest
    result = load(tmp_path, f"static-auth-secret={SECRET}\nrealm={longest}x\n")
    assert not result.ok
    (message,) = messages(result.errors)
    assert message.startswith(f"{tmp_path / 'turnserver.conf'}:2: realm: a realm of 81 characters is over 80")
    assert "shorter realm" in message
