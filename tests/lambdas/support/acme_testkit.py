"""A real ACME CA for the certificate issuer's tests: Debian's `pebble` (Let's Encrypt's test CA), whose
DNS-01 validation queries a small authoritative DNS server answering from moto's Route 53.

So the TXT record the CA sees is exactly what the issuer wrote through the Route 53 API: no shortcut
between the function and the CA. The DNS server answers like Route 53's name servers would: from the hosted
zone that is the closest enclosing zone of the query name (a delegated child zone wins over its parent),
authoritatively, NXDOMAIN for names it holds nothing for.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import dns.flags
import dns.message
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.servers import free_port

PEBBLE = shutil.which("pebble") or "/usr/bin/pebble"
# Let's Encrypt's validity; the issuer's decisions are tested with a clock moved relative to it.
VALIDITY = dt.timedelta(days=90)


class Route53Dns:
    """Authoritative UDP DNS server over the hosted zones of the (moto) Route 53 API."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="route53-dns", daemon=True)

    def start(self) -> Route53Dns:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:  # a malformed packet is dropped, like a name server would
                continue
            # A client per query: the test's moto (and its credentials) may start after this server.
            r53 = boto3.client("route53", region_name=self.region)
            self.sock.sendto(self._answer(r53, query).to_wire(), peer)

    def _answer(self, r53: object, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        kind = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, kind))
        zone = self._enclosing_zone(r53, name)
        if zone is None:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        records = [
            record
            for page in r53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone)  # type: ignore[attr-defined]
            for record in page["ResourceRecordSets"]
            if record["Name"].rstrip(".").lower() == name
        ]
        if not records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        for record in records:
            if record["Type"] == kind:
                values = [item["Value"] for item in record.get("ResourceRecords", [])]
                rrset = dns.rrset.from_text_list(question.name, record.get("TTL", 60), "IN", kind, values)
                response.answer.append(rrset)
        return response

    @staticmethod
    def _enclosing_zone(r53: object, name: str) -> str | None:
        best, best_len = None, -1
        for zone in r53.list_hosted_zones()["HostedZones"]:  # type: ignore[attr-defined]
            zone_name = zone["Name"].rstrip(".").lower()
            if (name == zone_name or name.endswith("." + zone_name)) and len(zone_name) > best_len:
                best, best_len = zone["Id"].split("/")[-1], len(zone_name)
        return best


@dataclass(frozen=True)
class Pebble:
    directory_url: str
    management_url: str
    ca_bundle: Path  # trusts pebble's HTTPS listener (not the certificates it issues)

    def root_pem(self) -> str:
        """The root of the chains pebble issues (fetched, it is generated at pebble's start)."""
        return requests.get(f"{self.management_url}/roots/0", verify=str(self.ca_bundle), timeout=10).text

    def status(self, serial_hex: str) -> str:
        """pebble's view of a certificate: Valid or Revoked."""
        answer = requests.get(
            f"{self.management_url}/cert-status-by-serial/{serial_hex}", verify=str(self.ca_bundle), timeout=10
        )
        answer.raise_for_status()
        return answer.json()["Status"]


def _tls_material(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1/localhost, for pebble's HTTPS listeners."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bbb-on-aws test CA for pebble's listener")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@contextmanager
def run_pebble(directory: Path, dns_port: int) -> Iterator[Pebble]:
    """pebble on free ports, validating DNS-01 against 127.0.0.1:<dns_port>; stopped on exit."""
    ca, cert, key = _tls_material(directory)
    port, management = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": free_port(),  # HTTP-01 / TLS-ALPN-01 are never used: only dns-01 for a wildcard
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": int(VALIDITY.total_seconds()),
        }
    }
    (directory / "pebble.json").write_text(json.dumps(config))
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",  # no random validation delay
        "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce (the library retries it; keep runs deterministic)
        # Orders validate DNS-01 again, renewals included; but pebble still reuses an account's valid
        # authorization when rand.Intn(100) == 0, so a test that needs a validation uses a new account.
        "PEBBLE_AUTHZREUSE": "0",
    }
    log = (directory / "pebble.log").open("w")
    process = subprocess.Popen(
        [PEBBLE, "-config", str(directory / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns_port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    pebble = Pebble(f"https://127.0.0.1:{port}/dir", f"https://127.0.0.1:{management}", ca)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(pebble.directory_url, verify=str(ca), timeout=2).raise_for_status()
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pebble did not start: {(directory / 'pebble.log').read_text()}") from None
                time.sleep(0.1)
        yield pebble
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
