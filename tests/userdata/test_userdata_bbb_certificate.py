"""bbb/certificate.sh for real under bash, with real openssl and python3: the fleet certificate from its
Secrets Manager secret (the `aws` CLI is a shim printing the secret) to /local/certs, and a renewal picked up
by an nginx reload. Certificates are real ones made here with `cryptography`."""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LIBS = ("common/lib.sh", "bbb/certificate.sh")
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bbb-fleet-certificate-AbCdEf"
FQDN = "bbb-0abc123def4567890.fleet.meet.example.org"
WILDCARD = "*.fleet.meet.example.org"


def make_secret(
    names: tuple[str, ...] = (WILDCARD,),
    *,
    days: int = 90,
    expired: bool = False,
    other_key: bool = False,
    serial: int | None = None,
) -> dict[str, str]:
    """A certificate secret as the issuer writes it (lambdas/cert_issuer/store.py)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    start, end = (
        (now - dt.timedelta(days=100), now - dt.timedelta(days=10)) if expired else (now, now + dt.timedelta(days=days))
    )
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    stored_key = ec.generate_private_key(ec.SECP256R1()) if other_key else key
    return {
        "names": list(names),
        "fullchain": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "privateKey": stored_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "serial": format(certificate.serial_number, "x"),
        "notAfter": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


@pytest.fixture
def host(shell):
    """Shims: `aws` prints the secret file; `systemctl`/`nginx` obey state files the test sets."""
    root = shell.root
    secret, nginx_active, nginx_ok = root / "secret.json", root / "nginx-active", root / "nginx-ok"
    shell.shim(
        "aws",
        f"""
        [[ "$*" == "secretsmanager get-secret-value --secret-id {ARN} --query SecretString --output text" ]] || exit 254
        cat {secret}""",
    )
    shell.shim("systemctl", f"if [[ $1 == is-active ]]; then [[ -e {nginx_active} ]]; fi")
    shell.shim("nginx", f"[[ -e {nginx_ok} ]]")
    shell.env.update({"CERT_LINK": str(root / "local" / "certs"), "CERT_STORE": str(root / "store")})

    class Host:
        link = root / "local" / "certs"
        store = root / "store"

        def put(self, value: dict[str, str] | str) -> None:
            secret.write_text(value if isinstance(value, str) else json.dumps(value))

        def nginx(self, *, active: bool, accepts: bool = True) -> None:
            for path, on in ((nginx_active, active), (nginx_ok, accepts)):
                path.unlink(missing_ok=True)
                if on:
                    path.touch()

        def install(self, *args: str):
            return shell.run(f"install_fleet_certificate {ARN} {FQDN} {' '.join(map(shlex.quote, args))}", libs=LIBS)

        def served(self) -> str:
            return (self.link / "fullchain.pem").read_text()

    return Host()


def test_boot_install_puts_the_pair_where_bbb_install_d_expects_it(host, shell) -> None:
    secret = make_secret()
    host.put(secret)
    host.nginx(active=False)  # first boot: bbb-install has not installed nginx yet

    result = host.install()

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "installed"
    assert os.readlink(host.link) == str(host.store / secret["serial"])
    assert host.served() == secret["fullchain"].strip() + "\n"
    key = host.link / "privkey.pem"
    assert key.read_text() == secret["privateKey"].strip() + "\n"
    assert (key.stat().st_mode & 0o777, key.stat().st_uid) == (0o600, 0)
    assert host.store.stat().st_mode & 0o777 == 0o700
    assert ["systemctl", "reload", "nginx"] not in shell.calls("systemctl")
    assert list((shell.root / "tmp").iterdir()) == []  # no scratch copy of the key left behind


def test_same_certificate_again_changes_nothing(host, shell) -> None:
    host.put(make_secret())
    host.nginx(active=True)
    assert host.install("reload").stdout.strip() == "installed"
    before = host.store.stat().st_mtime_ns

    result = host.install("reload")

    assert result.returncode == 0 and result.stdout.strip() == "unchanged"
    assert shell.calls("systemctl").count(["systemctl", "reload", "nginx"]) == 1
    assert host.store.stat().st_mtime_ns == before


def test_renewal_is_picked_up_by_nginx_reload_through_bbb_installs_links(host, shell) -> None:
    """bbb-install -d links /etc/letsencrypt/live/<fqdn>/*.pem to /local/certs/*.pem; nginx reads those."""
    first, renewed = make_secret(), make_secret()
    live = shell.root / "letsencrypt" / "live" / FQDN
    live.mkdir(parents=True)
    host.put(first)
    host.nginx(active=False)
    host.install()
    for name in ("fullchain.pem", "privkey.pem"):
        (live / name).symlink_to(host.link / name)  # what bbb-install -d does
    host.nginx(active=True)
    host.put(renewed)

    result = host.install("reload")

    assert result.returncode == 0, result.stderr
    assert (live / "fullchain.pem").read_text() == renewed["fullchain"].strip() + "\n"
    assert (live / "privkey.pem").read_text() == renewed["privateKey"].strip() + "\n"
    calls = shell.calls()
    assert calls.index(["nginx", "-t", "-q"]) < calls.index(["systemctl", "reload", "nginx"])
    assert ["systemctl", "restart", "nginx"] not in calls and not shell.calls("bbb-conf")
    assert (host.store / first["serial"]).is_dir()  # the previous one is kept for a manual roll-back


def test_nginx_refusing_the_new_certificate_keeps_the_previous_one(host, shell) -> None:
    first = make_secret()
    host.put(first)
    host.nginx(active=True)
    host.install("reload")
    host.put(make_secret())
    host.nginx(active=True, accepts=False)

    result = host.install("reload")

    assert result.returncode == 1
    assert (
        "nginx refused fleet certificate" in result.stderr and "the previous certificate stays in use" in result.stderr
    )
    assert os.readlink(host.link) == str(host.store / first["serial"])


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (make_secret(expired=True), "the certificate in the secret has expired"),
        (make_secret(other_key=True), "the certificate and the private key in the secret do not match"),
        (make_secret(("*.meet.example.org",)), f"does not name {FQDN}"),
        (
            {"placeholder": "generated"},
            "the certificate secret has no fullchain, privateKey, serial: has the issuer run yet?",
        ),
        ("not json", "the certificate secret is not JSON"),
    ],
    ids=["expired", "key-mismatch", "other-name", "placeholder", "not-json"],
)
def test_unusable_secret_is_refused_and_the_served_certificate_stays(host, shell, secret, message) -> None:
    good = make_secret()
    host.put(good)
    host.nginx(active=True)
    host.install("reload")
    host.put(secret)

    result = host.install("reload")

    assert result.returncode == 1
    assert message in result.stderr
    assert host.served() == good["fullchain"].strip() + "\n"
    assert list((shell.root / "tmp").iterdir()) == []


def test_old_certificates_are_pruned_to_the_newest_three(host, shell) -> None:
    host.nginx(active=True)
    serials = []
    for _ in range(5):
        secret = make_secret()
        serials.append(secret["serial"])
        host.put(secret)
        assert host.install("reload").returncode == 0
    kept = sorted(path.name for path in host.store.iterdir())
    assert kept == sorted(serials[-3:])


def test_a_directory_that_is_not_our_link_is_never_replaced(host, shell) -> None:
    host.link.mkdir(parents=True)
    (host.link / "fullchain.pem").write_text("an operator's certificate\n")
    host.put(make_secret())

    result = host.install()

    assert result.returncode == 1 and "is not the link this step manages" in result.stderr
    assert (host.link / "fullchain.pem").read_text() == "an operator's certificate\n"


def test_refresh_script_reads_the_host_parameters(host, shell) -> None:
    secret = make_secret()
    host.put(secret)
    host.nginx(active=True)
    conf = shell.root / "conf"
    (conf / "params.env").write_text(f"CERTIFICATE_SECRET_ARN={ARN}\n")
    (conf / "runtime.env").write_text(f"FQDN={FQDN}\n")

    result = shell.run(f"bash {shlex.quote(str(Path(__file__).parents[2] / 'userdata/bbb/refresh_certificate.sh'))}")

    assert result.returncode == 0, result.stderr
    assert host.served() == secret["fullchain"].strip() + "\n"
    assert ["systemctl", "reload", "nginx"] in shell.calls("systemctl")


def test_bbb_install_takes_the_provided_certificate_instead_of_lets_encrypt(host, shell) -> None:
    """run_bbb_install with a provided certificate: -d (bbb-install skips certbot), no -e."""
    record, fake = shell.root / "bbb-install-args", shell.root / "fake-bbb-install.sh"
    fake.write_text(f'printf "%s\\n" "$@" >{record}\n')
    shell.shim("curl", f'while [[ $# -gt 0 ]]; do [[ $1 == -o ]] && cp {fake} "$2"; shift; done')
    env = {"BBB_INSTALL_URL": "https://example.test/bbb-install.sh", "BBB_VERSION": "jammy-300",
           "PUBLIC_IPV4": "203.0.113.10", "PRIVATE_IPV4": "10.1.0.23"}
    libs = ("common/lib.sh", "bbb/lib.sh", "bbb/certificate.sh")
    command = f"run_bbb_install {FQDN} ops@example.com turn.meet.example.org 0 1"

    missing = shell.run(command, libs=libs, env=env)
    assert missing.returncode == 1 and "install_fleet_certificate runs first" in missing.stderr
    assert not record.exists()

    host.put(make_secret())
    host.nginx(active=False)
    assert host.install().returncode == 0
    result = shell.run(command, libs=libs, env=env)

    assert result.returncode == 0, result.stderr
    assert record.read_text().splitlines() == [
        "-v", "jammy-300", "-s", FQDN, "-d", "-c", "turn.meet.example.org:turn-secret-set-by-bbb-on-aws"]


def test_refresh_runs_at_boot_before_nginx_and_the_ready_tag_then_every_6_hours() -> None:
    """A warm-pool server woken after weeks serves the current certificate from its first request."""
    units = Path(__file__).parents[2] / "userdata/bbb/units"
    service = (units / "bbb-on-aws-certificate.service").read_text()
    assert "Before=nginx.service bbb-on-aws-ready.service" in service and "WantedBy=multi-user.target" in service
    assert "After=network-online.target" in service
    timer = (units / "bbb-on-aws-certificate.timer").read_text()
    assert "OnUnitActiveSec=6h" in timer and "OnBootSec=6h" in timer
    bootstrap = (Path(__file__).parents[2] / "userdata/bbb/bootstrap.sh").read_text()
    assert "systemctl enable bbb-on-aws-certificate.service" in bootstrap
    assert "systemctl enable --now bbb-on-aws-certificate.timer" in bootstrap
