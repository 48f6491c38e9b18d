"""Obtain and renew the fleet's wildcard certificate with ACME DNS-01 through Route 53.

The ACME protocol is certbot's `acme` library (with `josepy` and `cryptography`); this module only decides
*when* to order (nothing stored, other names or CA, expired, or within the renewal window) and wires the
order to Route 53 and Secrets Manager. The stored certificate is replaced only by a complete new one: a
failed order, a refused DNS change or an unreachable CA leaves it as it was and raises IssueError naming
the step and the CA's or Route 53's own words.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import josepy as jose
from acme import client as acme_client
from acme import crypto_util, messages
from acme import errors as acme_errors
from acme.challenges import DNS01
from aws_lambda_powertools import Logger
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cert_issuer import dns01, store

logger = Logger(child=True)

USER_AGENT = "bbb-on-aws-cert-issuer"
# Authorization polling and finalization together; Lambda's timeout (construct) leaves room above it.
ORDER_TIMEOUT = dt.timedelta(minutes=5)
# RFC 5280 CRLReason codes the CAs accept for an ACME revocation (Let's Encrypt: 0, 1, 3, 4, 5).
REVOCATION_REASONS = {
    "unspecified": 0,
    "keyCompromise": 1,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
}

Action = Literal["issued", "renewed", "kept", "revoked-and-replaced"]


class IssueError(RuntimeError):
    """No new certificate; the stored one (if any) is unchanged."""


@dataclass(frozen=True)
class IssuerSettings:
    directory_url: str  # ACME directory (Let's Encrypt production by default; staging or another CA)
    subdomain: str  # the fleet's subdomain; the certificate is for *.<subdomain>
    hosted_zone_id: str
    email: str  # ACME account contact (expiry notices, CA policy mail)
    account_secret_arn: str
    certificate_secret_arn: str
    renew_days: int  # renew when this many days (or fewer) are left

    @property
    def names(self) -> tuple[str, ...]:
        return (f"*.{self.subdomain}",)


@dataclass(frozen=True)
class Outcome:
    action: Action
    reason: str
    certificate: store.StoredCertificate


def renewal_reason(stored: store.StoredCertificate | None, settings: IssuerSettings, now: dt.datetime) -> str | None:
    """Why a new certificate is needed now, or None when the stored one is kept."""
    if stored is None:
        return "no certificate stored yet"
    if set(stored.names) != set(settings.names):
        return f"the stored certificate is for {', '.join(stored.names)}, the fleet needs {', '.join(settings.names)}"
    if stored.directory != settings.directory_url:
        origin = stored.directory or "an unknown CA"
        return f"the stored certificate comes from {origin}, configured is {settings.directory_url}"
    days = stored.days_left(now)
    if days <= 0:
        return f"the stored certificate expired on {stored.not_after:%Y-%m-%d %H:%M} UTC"
    if days <= settings.renew_days:
        return f"{days:.1f} days left, renewal starts {settings.renew_days} days before expiry"
    return None


def run(settings: IssuerSettings, *, now: dt.datetime | None = None, force: str | None = None) -> Outcome:
    """Renew when due (or when `force` gives a reason); otherwise keep the stored certificate."""
    now = now or dt.datetime.now(dt.timezone.utc)
    stored = store.load_certificate(settings.certificate_secret_arn)
    reason = force or renewal_reason(stored, settings, now)
    if reason is None:
        assert stored is not None
        return Outcome("kept", f"{stored.days_left(now):.1f} days left", stored)
    logger.info("ordering a certificate", extra={"names": settings.names, "reason": reason})
    certificate = issue(settings, account_client(settings), now)
    store.save_certificate(settings.certificate_secret_arn, certificate)
    return Outcome("issued" if stored is None else "renewed", reason, certificate)


def revoke_and_replace(settings: IssuerSettings, *, reason: str, now: dt.datetime | None = None) -> Outcome:
    """Revoke the stored certificate at its CA (e.g. its key leaked from a host), then store a new one.

    Revocation comes first: for a compromised key it is the urgent part, and a failed re-issue must not
    keep the old certificate valid. Revoking one the CA already revoked counts as done."""
    if reason not in REVOCATION_REASONS:
        raise IssueError(f"revocation reason {reason!r} is not one of {', '.join(REVOCATION_REASONS)}")
    now = now or dt.datetime.now(dt.timezone.utc)
    stored = store.load_certificate(settings.certificate_secret_arn)
    if stored is None:
        raise IssueError(f"secret {settings.certificate_secret_arn} holds no certificate to revoke")
    client = account_client(settings)
    try:
        client.revoke(stored.leaf, REVOCATION_REASONS[reason])
    except messages.Error as exc:
        if exc.code != "alreadyRevoked":
            raise IssueError(f"the CA refused to revoke certificate {stored.serial}: {exc}") from None
    except acme_errors.ClientError as exc:
        raise IssueError(f"revoking certificate {stored.serial} failed: {exc}") from None
    logger.info("certificate revoked", extra={"serial": stored.serial, "reason": reason})
    certificate = issue(settings, client, now)
    store.save_certificate(settings.certificate_secret_arn, certificate)
    return Outcome("revoked-and-replaced", f"{stored.serial} revoked ({reason})", certificate)


def account_client(settings: IssuerSettings) -> acme_client.ClientV2:
    """An ACME client signed with the stored account key; registers (and stores) an account on first use
    and whenever the configured directory differs from the one the stored account belongs to."""
    account = store.load_account(settings.account_secret_arn)
    try:
        if account is not None and account.directory == settings.directory_url:
            key = jose.JWK.from_json(account.key_json)
            regr = messages.RegistrationResource(uri=account.uri, body=messages.Registration())
            net = acme_client.ClientNetwork(key, account=regr, alg=jose.ES256, user_agent=USER_AGENT)
            return acme_client.ClientV2(acme_client.ClientV2.get_directory(settings.directory_url, net), net)
        key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        net = acme_client.ClientNetwork(key, alg=jose.ES256, user_agent=USER_AGENT)
        client = acme_client.ClientV2(acme_client.ClientV2.get_directory(settings.directory_url, net), net)
        regr = client.new_account(
            messages.NewRegistration.from_data(email=settings.email, terms_of_service_agreed=True)
        )
    except (acme_errors.Error, messages.Error, OSError) as exc:  # requests' errors are OSErrors
        raise IssueError(f"cannot reach or use the ACME directory {settings.directory_url}: {exc}") from None
    store.save_account(
        settings.account_secret_arn,
        store.StoredAccount(directory=settings.directory_url, uri=regr.uri, key_json=key.to_json()),
    )
    logger.info("ACME account registered", extra={"directory": settings.directory_url, "account": regr.uri})
    return client


def issue(settings: IssuerSettings, client: acme_client.ClientV2, now: dt.datetime) -> store.StoredCertificate:
    """One order: new key and CSR, DNS-01 for every pending authorization, finalize, check the result."""
    name = dns01.challenge_name(settings.subdomain)
    records = dns01.ChallengeRecords(settings.hosted_zone_id)
    try:
        records.check_zone_holds(name)
    except dns01.DnsError as exc:
        raise IssueError(str(exc)) from None
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        order = client.new_order(crypto_util.make_csr(key_pem, list(settings.names)))
    except (acme_errors.Error, messages.Error, OSError) as exc:
        raise IssueError(f"the CA refused the order for {', '.join(settings.names)}: {exc}") from None
    challenges = _dns_challenges(order)
    values = [challenge.chall.validation(client.net.key) for challenge in challenges]
    try:
        if challenges:
            records.publish(name, values)
        for challenge in challenges:
            client.answer_challenge(challenge, challenge.chall.response(client.net.key))
        # The library compares deadlines with naive local time.
        order = client.poll_and_finalize(order, dt.datetime.now() + ORDER_TIMEOUT)
    except dns01.DnsError as exc:
        raise IssueError(str(exc)) from None
    except acme_errors.ValidationError as exc:
        raise IssueError(
            f"the CA could not validate TXT {name} in hosted zone {settings.hosted_zone_id} "
            f"(is the subdomain delegated to another zone?): {exc}"
        ) from None
    except (acme_errors.Error, messages.Error, OSError) as exc:
        raise IssueError(f"the order for {', '.join(settings.names)} failed: {exc}") from None
    finally:
        if challenges:
            _remove_quietly(records, name, values)
    certificate = store.StoredCertificate(
        names=settings.names,
        fullchain=order.fullchain_pem,
        private_key=key_pem.decode(),
        directory=settings.directory_url,
        issued_at=now.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    _check_issued(certificate, key, settings.names)
    return certificate


def _dns_challenges(order: messages.OrderResource) -> list[messages.ChallengeBody]:
    """The dns-01 challenge of every authorization still pending (a CA may reuse valid ones)."""
    found = []
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue
        dns = [c for c in authz.body.challenges if isinstance(c.chall, DNS01)]
        if not dns:
            raise IssueError(f"the CA offers no dns-01 challenge for {authz.body.identifier.value}")
        found.append(dns[0])
    return found


def _remove_quietly(records: dns01.ChallengeRecords, name: str, values: list[str]) -> None:
    """Cleanup only: a leftover TXT record is harmless (the next order UPSERTs it)."""
    try:
        records.remove(name, values)
    except dns01.DnsError as exc:
        logger.warning("challenge record not removed", extra={"error": str(exc)})


def _check_issued(
    certificate: store.StoredCertificate, key: ec.EllipticCurvePrivateKey, names: tuple[str, ...]
) -> None:
    """The CA's answer is for our key and exactly our names (never store a mismatched pair for nginx)."""
    leaf = certificate.leaf
    if leaf.public_key().public_numbers() != key.public_key().public_numbers():
        raise IssueError("the CA returned a certificate for another key; nothing stored")
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    if set(sans) != set(names):
        raise IssueError(f"the CA returned a certificate for {sans}, ordered {list(names)}; nothing stored")
