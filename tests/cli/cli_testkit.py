"""Servers the operator command is tested against on loopback: coturn (Debian's turnserver), a UDP echo peer,
and a TLS terminator with test certificates standing in for the NLB's turns:443 listener."""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import subprocess
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TLS_NAME = "turns.probe.test"


class Pki:
    """A private CA and leaf certificates written as PEM files under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bbb-on-aws test CA")])
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=400))
            .not_valid_after(now + datetime.timedelta(days=400))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))

    def leaf(self, label: str, names: list[str], *, days_from: int = -1, days_to: int = 90) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=days_from))
            .not_valid_after(now + datetime.timedelta(days=days_to))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        cert_file, key_file = self.directory / f"{label}.crt", self.directory / f"{label}.key"
        cert_file.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM) + self.ca.public_bytes(serialization.Encoding.PEM)
        )
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return cert_file, key_file


class TlsFront:
    """TLS on a loopback port, forwarding each connection's plaintext to a TCP backend (as the NLB's TLS
    listener forwards turns:443 to the relay)."""

    def __init__(self, cert_file: Path, key_file: Path, backend: tuple[str, int]) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert_file, key_file)
        self.backend = backend
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.listener.getsockname()[:2]
        self._threads: list[threading.Thread] = []
        self._stop = False

    def __enter__(self) -> TlsFront:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # the client refused our certificate: what the tests for bad certificates expect
            return
        backend = socket.create_connection(self.backend)
        threading.Thread(target=_pump, args=(backend, tls), daemon=True).start()
        _pump(tls, backend)


def _pump(source: socket.socket, destination: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            destination.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, destination):
            with contextlib.suppress(OSError):
                sock.close()


class EchoPeer:
    """A UDP peer on loopback that sends every datagram back (what turnutils_peer does)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.received = 0

    def __enter__(self) -> EchoPeer:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def _run(self) -> None:
        while True:
            try:
                data, source = self.sock.recvfrom(65535)
            except OSError:
                return
            self.received += 1
            try:
                self.sock.sendto(data, source)
            except OSError:  # __exit__ closed the socket between this datagram and its echo
                return


def coturn(
    port: int, secret: str, realm: str, relay_range: tuple[int, int], workdir: Path, *, loopback_peers: bool = True
) -> subprocess.Popen[bytes]:
    """Debian's turnserver with REST credentials on loopback (UDP and TCP on `port`), no TLS of its own."""
    command = [
        "turnserver", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={port}",
        f"--min-port={relay_range[0]}", f"--max-port={relay_range[1]}", f"--realm={realm}", "--use-auth-secret",
        f"--static-auth-secret={secret}", "--no-tls", "--no-dtls", "--no-cli", "--no-stdout-log",
        f"--log-file={workdir / 'coturn.log'}", "--simple-log", "--pidfile=" + str(workdir / "coturn.pid"),
    ]  # fmt: skip
    if loopback_peers:
        command.append("--allow-loopback-peers")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stun_answers(port: int) -> bool:
    import os

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        try:
            sock.sendto(bytes.fromhex("000100002112a442") + os.urandom(12), ("127.0.0.1", port))
            return len(sock.recv(2048)) >= 20
        except OSError:
            return False
