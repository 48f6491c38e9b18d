"""Real coturn configurations (BBB documentation, bbb-install, Debian) passed to the loader unchanged."""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from relay.config import ALIASES, CLI_ONLY, KEY_INDEX, Listener, load_config
from relay.ops.logs import clear_registered_secrets

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _forget_secrets():
    yield
    clear_registered_secrets()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str]:
    directory = tmp_path_factory.mktemp("certs")
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
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


def by_key(problems) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in problems:
        found.setdefault(problem.key, []).append(problem.message)
    return found


def test_bbb_documentation_config(certificate):
    """The config the BBB docs recommend for an external TURN server, certificate paths overridden."""
    cert, key = certificate
    result = load_config(["-c", str(FIXTURES / "bbb-docs-turnserver.conf"), f"--cert={cert}", f"--pkey={key}"], {})
    assert result.ok, result.report()
    config = result.config
    assert config is not None
    assert config.realm == "example.org"
    assert config.listeners == (
        Listener("udp", "198.51.100.20", 3478),
        Listener("tcp", "198.51.100.20", 3478),
        Listener("tls", "198.51.100.20", 443),
    )
    assert (config.relay_ip, config.min_port, config.max_port) == ("198.51.100.20", 32769, 65535)
    assert config.auth_secrets == ("4f1c2e9a7b3d5f60a1b2c3d4e5f60718",)
    assert (config.cert_file, config.key_file) == (cert, key)
    # The DHE suites of the Mozilla list are dropped; the ECDHE+AEAD ones stay.
    assert config.tls_ciphers is not None
    assert "DHE-RSA-AES128-GCM-SHA256" not in config.tls_ciphers.split(":")
    assert "ECDHE-RSA-AES128-GCM-SHA256" in config.tls_ciphers.split(":")
    denied = {str(n) for n in config.denied_peers}
    assert {
        "10.0.0.0/8",
        "172.16.0.0/12",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "2001::/23",
        "2002::/16",
    } <= denied
    warnings = by_key(result.warnings)
    assert set(warnings) == {"verbose", "cipher-list", "dh-file", "keep-address-family"}
    assert "dropped DHE-RSA-AES128-GCM-SHA256, DHE-RSA-AES256-GCM-SHA384" in warnings["cipher-list"][0]
    assert set(config.ignored_keys) == {"verbose", "dh-file", "keep-address-family"}
    assert {"no-loopback-peers", "no-multicast-peers"} <= set(by_key(result.notes))


def test_bbb_documentation_systemd_override_flags(certificate):
    """The docs' ExecStart adds coturn CLI flags; each is reported by name and none stops the relay."""
    cert, key = certificate
    argv = [
        "--daemon",
        "-c",
        str(FIXTURES / "bbb-docs-turnserver.conf"),
        "--pidfile",
        "/run/turnserver/turnserver.pid",
        "--no-stdout-log",
        "--simple-log",
        "--log-file",
        "/var/log/turnserver/turnserver.log",
        f"--cert={cert}",
        f"--pkey={key}",
    ]
    result = load_config(argv, {})
    assert result.ok, result.report()
    assert {"daemon", "pidfile", "no-stdout-log", "simple-log", "log-file"} <= set(by_key(result.warnings))


def test_bbb_install_27_built_in_coturn():
    """bbb-install 2.7/3.0 on EC2: private listening/relay IP, deny-all plus the host's own addresses."""
    result = load_config(["-c", str(FIXTURES / "bbb-install-2.7-turnserver.conf")], {})
    assert result.ok, result.report()
    config = result.config
    assert config is not None
    assert config.realm == "bbb.example.org"
    assert config.listeners == (Listener("udp", "10.0.1.50", 3478), Listener("tcp", "10.0.1.50", 3478))
    assert config.relay_ip == "10.0.1.50"
    assert config.denied_peers == (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    assert config.allowed_peers == (ipaddress.ip_network("203.0.113.50/32"), ipaddress.ip_network("10.0.1.50/32"))
    assert set(by_key(result.warnings)) == {"verbose", "keep-address-family"}
    assert not result.errors


def test_bbb_install_25_standalone_on_ec2_reports_the_nat_pitfall(certificate):
    """bbb-install <= 2.5 used the public IP as relay-ip on EC2 (coturn then fails with errno 99).

    The loader refuses it at configuration time, naming external-ip and the fix; the corrected
    form (private relay-ip) loads."""
    cert, key = certificate
    path = FIXTURES / "bbb-install-2.5-standalone-turnserver.conf"
    result = load_config(["-c", str(path), f"--cert={cert}", f"--pkey={key}"], {})
    assert not result.ok
    assert [str(p) for p in result.errors] == [
        f"{path}:8: external-ip: maps 10.0.2.77 but relay-ip is 203.0.113.77; they must be the same address"
    ]
    fixed = load_config(
        ["-c", str(path), f"--cert={cert}", f"--pkey={key}", "--relay-ip=10.0.2.77", "--listening-ip=10.0.2.77"], {}
    )
    assert fixed.ok, fixed.report()
    assert fixed.config is not None
    assert (fixed.config.relay_ip, fixed.config.external_ip) == ("10.0.2.77", "203.0.113.77")
    assert Listener("tls", "10.0.2.77", 443) in fixed.config.listeners
    assert set(by_key(fixed.warnings)) == {"verbose", "cipher-list", "dh-file", "keep-address-family"}


def test_debian_default_turnserver_conf_needs_credentials(tmp_path):
    """Debian's shipped /etc/turnserver.conf (4.6.1): only logging/STUN options are active."""
    path = tmp_path / "turnserver.conf"
    path.write_text("syslog\nno-rfc5780\nno-stun-backward-compatibility\nresponse-origin-only-with-rfc5780\n")
    result = load_config(["-c", str(path)], {})
    assert [p.key for p in result.errors] == ["auth"]  # coturn would run as an open relay here
    assert [p.key for p in result.warnings] == ["syslog"]


def test_our_deployment_config(tmp_path):
    """The shape the TURN hosts render: NLB PROXY port, peers file, secrets from files, fleet nonce key."""
    (tmp_path / "secret").write_text("Zx8kT2vQ9mWc4nR7pL1sD6fH3jB5gK0yA2eU8iO4\n")
    (tmp_path / "nonce").write_text("5f0c" * 16 + "\n")
    (tmp_path / "allowed-peers.conf").write_text("203.0.113.50\n203.0.113.51\n")
    for name in ("secret", "nonce"):
        (tmp_path / name).chmod(0o600)
    (tmp_path / "relay.conf").write_text(
        "realm=turn.example.org\n"
        "listening-port=3478\n"
        "tcp-proxy-port=3479\n"
        "relay-ip=10.0.3.7\n"
        "external-ip=198.51.100.7\n"
        "min-port=49152\n"
        "max-port=65535\n"
        "use-auth-secret\n"
        f"auth-secret-file={tmp_path / 'secret'}\n"
        f"nonce-secret-file={tmp_path / 'nonce'}\n"
        f"allowed-peers-file={tmp_path / 'allowed-peers.conf'}\n"
        "user-quota=12\n"
        "total-quota=4000\n"
        "admin-listen=127.0.0.1:9641\n"
        "drain-timeout=3600\n"
        "log-format=json\n"
    )
    result = load_config(["-c", str(tmp_path / "relay.conf"), "--check-config"], {})
    assert result.ok and not result.warnings, result.report()
    config = result.config
    assert config is not None
    assert Listener("tcp", "0.0.0.0", 3479, proxy_protocol=True) in config.listeners
    assert (config.relay_ip, config.external_ip) == ("10.0.3.7", "198.51.100.7")
    assert config.nonce_secret == b"5f0c" * 16
    assert len(config.allowed_peers) == 2


def _coturn_option_names() -> list[str]:
    lines = (FIXTURES / "coturn-long-options.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_every_coturn_option_is_classified():
    """No coturn option falls through as 'unknown key': each has a decided status."""
    known = {*KEY_INDEX, *ALIASES, *CLI_ONLY}
    unclassified = [name for name in _coturn_option_names() if name not in known]
    assert unclassified == []


def test_installed_turnserver_options_are_classified():
    """Cross-check against the coturn binary installed on this machine (its -h output)."""
    if shutil.which("turnserver") is None:
        pytest.skip("coturn is not installed here; the fixture list above still covers 4.6.1")
    done = subprocess.run(["turnserver", "-h"], capture_output=True, text=True, timeout=30, check=False)
    pattern = re.compile(r"^ *(?:-[a-zA-Z], )?--([a-zA-Z0-9_-]+)")
    names = {m.group(1) for line in (done.stdout + done.stderr).splitlines() if (m := pattern.match(line))}
    assert len(names) > 60
    unclassified = sorted(n for n in names if n not in KEY_INDEX and n not in ALIASES and n not in CLI_ONLY)
    assert unclassified == []
