"""The certificate a TLS endpoint presents (turns:443 on the NLB, the HTTPS names): chain, names, days left.

Verification is the standard library's (system trust store or `--ca-file`, hostname checked as a browser
does). When it fails, the certificate is fetched again without verification and read with `cryptography`,
so the failure line can say what is wrong (expired on which date, which names it holds, who issued it).
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509

from bbb_on_aws.checks import Failure

WARN_DAYS = 21  # ACM renews 60 days before expiry: under 21 days left means renewal is stuck
FAIL_DAYS = 7


@dataclass(frozen=True)
class CertInfo:
    names: list[str]
    issuer: str
    not_after: datetime.datetime

    @property
    def days_left(self) -> float:
        return (self.not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400

    def summary(self) -> str:
        return (
            f"names {', '.join(self.names) or '(none)'}; issuer {self.issuer}; expires "
            f"{self.not_after:%Y-%m-%d} ({self.days_left:.0f} days left)"
        )


def client_context(ca_file: str | None, verify: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def parse(der: bytes) -> CertInfo:
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]  # type: ignore[misc]
    return CertInfo([str(n) for n in names], cert.issuer.rfc4514_string(), cert.not_valid_after_utc)


def _handshake(host: str, port: int, name: str, context: ssl.SSLContext, timeout: float) -> bytes:
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise Failure(
            "the server presented no certificate",
            "TLS is misconfigured on the listener",
            "attach a certificate to the listener",
        )
    return der


def check_certificate(host: str, port: int, name: str, ca_file: str | None, timeout: float) -> str:
    """Blocking: pass with the certificate's summary, or raise Failure naming the problem and the fix."""
    try:
        info = parse(_handshake(host, port, name, client_context(ca_file), timeout))
    except ssl.SSLCertVerificationError as error:
        seen = ""
        with contextlib.suppress(OSError, ValueError):
            seen = "; presented: " + parse(_handshake(host, port, name, client_context(None, False), timeout)).summary()
        raise _verification_failure(error, name, seen) from None
    except ConnectionRefusedError:
        raise Failure(
            f"connection to {host}:{port} refused",
            "nothing listens on this port (listener missing)",
            "check the load balancer's listener and the DNS name's target",
        ) from None
    except ssl.SSLError as error:
        raise Failure(
            f"TLS handshake failed: {error.reason or error}",
            "the endpoint does not speak TLS, or its TLS policy shares no protocol/cipher with this client",
            "check the listener is TLS with a modern security policy",
        ) from None
    except TimeoutError:
        raise Failure(
            f"no TCP answer from {host}:{port} within {timeout:g} s",
            "a firewall or security group drops TCP to this port",
            "open the port to the internet",
        ) from None
    if info.days_left < FAIL_DAYS:
        raise Failure(
            info.summary(),
            "the certificate expires within days and was not renewed",
            "check the ACM certificate's renewal status (DNS validation records in the zone)",
        )
    note = " (renewal overdue: under 21 days left)" if info.days_left < WARN_DAYS else ""
    return info.summary() + note


def _verification_failure(error: ssl.SSLCertVerificationError, name: str, seen: str) -> Failure:
    code = error.verify_code
    message = error.verify_message
    if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        return Failure(
            f"certificate expired{seen}",
            "the certificate on the listener has expired (renewal failed or an old certificate is still attached)",
            "renew it (ACM: check the DNS validation CNAME is still in the zone) and attach it to the listener",
        )
    if code == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
        return Failure(
            f"certificate not yet valid{seen}",
            "the certificate's validity starts in the future, or this machine's clock is wrong",
            "check the clock (NTP) here, then the certificate",
        )
    if code == 62 or "hostname" in message.lower() or "ip address mismatch" in message.lower():
        return Failure(
            f"certificate does not cover {name}{seen}",
            "the listener presents a certificate for another name",
            f"attach a certificate whose names include {name} (the deployment's certificate "
            "covers <domain> and *.<domain>)",
        )
    if code in (2, 19, 20, 21):  # issuer unknown, self-signed in chain, local issuer, unable to verify leaf
        return Failure(
            f"certificate chain not trusted ({message}){seen}",
            "the chain is incomplete or issued by a private CA browsers do not trust",
            "serve the full chain from a public CA (ACM does this); for a private CA pass --ca-file",
        )
    return Failure(
        f"certificate rejected: {message}{seen}",
        "the certificate fails verification",
        "replace the listener's certificate with a valid one for this name",
    )
