"""The fleet certificate issuer end to end against a real ACME CA (Debian's pebble): DNS-01 is answered from
the TXT records the issuer wrote into (moto's) Route 53, served by support/acme_testkit.Route53Dns.

Time moves only in the issuer's decision (`now=`): pebble issues 90-day certificates like Let's Encrypt,
and "29 days left" is the real certificate's notAfter minus 29 days.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from acme_testkit import VALIDITY, Pebble, Route53Dns, run_pebble
from cert_issuer import issuer, store
from cryptography import x509
from cryptography.hazmat.primitives import serialization

REGION = "eu-west-1"
ZONE = "example.org"
SUBDOMAIN = "fleet.meet.example.org"
CHALLENGE = f"_acme-challenge.{SUBDOMAIN}"


@pytest.fixture(scope="module")
def dns_server() -> Iterator[Route53Dns]:
    server = Route53Dns(REGION).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pebble(dns_server: Route53Dns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    if shutil.which("pebble") is None:
        pytest.fail("Debian's pebble is needed by these tests: scripts/install.sh --test-tools")
    with run_pebble(tmp_path_factory.mktemp("pebble"), dns_server.port) as running:
        yield running


@pytest.fixture
def world(aws_env: None, pebble: Pebble, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """moto: the deployment's zone and the two secrets as the stack creates them (a JSON placeholder)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pebble.ca_bundle))  # trust pebble's HTTPS listener only
    r53 = boto3.client("route53", region_name=REGION)
    zone_id = r53.create_hosted_zone(Name=ZONE, CallerReference="zone")["HostedZone"]["Id"].split("/")[-1]
    sm = boto3.client("secretsmanager", region_name=REGION)
    arns = {
        name: sm.create_secret(Name=name, SecretString=json.dumps({"placeholder": "generated"}))["ARN"]
        for name in ("acme-account", "fleet-certificate")
    }
    settings = issuer.IssuerSettings(
        directory_url=pebble.directory_url,
        subdomain=SUBDOMAIN,
        hosted_zone_id=zone_id,
        email="operator@example.org",
        account_secret_arn=arns["acme-account"],
        certificate_secret_arn=arns["fleet-certificate"],
        renew_days=30,
    )
    return {"settings": settings, "zone_id": zone_id, "r53": r53, "sm": sm}


def stored(world: dict[str, Any]) -> dict[str, Any]:
    arn = world["settings"].certificate_secret_arn
    return json.loads(world["sm"].get_secret_value(SecretId=arn)["SecretString"])


def versions(world: dict[str, Any], arn: str) -> int:
    return len(world["sm"].list_secret_version_ids(SecretId=arn)["Versions"])


def txt_records(world: dict[str, Any], zone_id: str | None = None) -> list[dict[str, Any]]:
    sets = world["r53"].list_resource_record_sets(HostedZoneId=zone_id or world["zone_id"])["ResourceRecordSets"]
    return [record for record in sets if record["Type"] == "TXT"]


def chain(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def test_first_issuance_stores_a_wildcard_chain_for_the_subdomain_only(world, pebble, dns_server) -> None:
    settings = world["settings"]
    before = dt.datetime.now(dt.timezone.utc)

    outcome = issuer.run(settings)

    assert outcome.action == "issued"
    assert outcome.reason == "no certificate stored yet"
    data = stored(world)
    leaf, *intermediates = chain(data["fullchain"])
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [f"*.{SUBDOMAIN}"]  # not meet.example.org, not turns.
    assert intermediates, "the full chain (leaf + intermediate) is what nginx serves"
    leaf.verify_directly_issued_by(intermediates[0])
    root = x509.load_pem_x509_certificate(pebble.root_pem().encode())
    intermediates[-1].verify_directly_issued_by(root)
    key = serialization.load_pem_private_key(data["privateKey"].encode(), password=None)
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    assert data["names"] == [f"*.{SUBDOMAIN}"]
    assert data["serial"] == format(leaf.serial_number, "x") == outcome.certificate.serial
    assert data["notAfter"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert abs(leaf.not_valid_after_utc - (before + VALIDITY)) < dt.timedelta(minutes=5)
    assert data["directory"] == pebble.directory_url
    assert pebble.status(data["serial"]) == "Valid"
    # The CA really asked DNS for the record the function wrote; the record is gone afterwards.
    assert (CHALLENGE, "TXT") in dns_server.queries
    assert txt_records(world) == []
    account = json.loads(world["sm"].get_secret_value(SecretId=settings.account_secret_arn)["SecretString"])
    assert account["directory"] == pebble.directory_url
    assert account["uri"].startswith(pebble.directory_url.removesuffix("/dir"))
    assert account["key"]["kty"] == "EC" and "d" in account["key"]  # the private account key, kept


def test_not_due_changes_nothing_and_due_renews_with_the_same_account(world, pebble) -> None:
    settings = world["settings"]
    first = issuer.run(settings).certificate
    cert_versions = versions(world, settings.certificate_secret_arn)
    account_versions = versions(world, settings.account_secret_arn)

    kept = issuer.run(settings, now=first.not_after - dt.timedelta(days=31))
    assert kept.action == "kept"
    assert kept.certificate.serial == first.serial
    assert versions(world, settings.certificate_secret_arn) == cert_versions

    renewed = issuer.run(settings, now=first.not_after - dt.timedelta(days=29))
    assert renewed.action == "renewed"
    assert renewed.reason.startswith("29.0 days left")
    assert renewed.certificate.serial != first.serial
    assert renewed.certificate.private_key != first.private_key  # a new key with every certificate
    assert stored(world)["serial"] == renewed.certificate.serial
    assert versions(world, settings.account_secret_arn) == account_versions  # no new ACME account
    assert pebble.status(first.serial) == "Valid"  # renewal does not revoke: hosts still serve the old one


def test_expired_certificate_is_replaced(world) -> None:
    settings = world["settings"]
    first = issuer.run(settings).certificate

    outcome = issuer.run(settings, now=first.not_after + dt.timedelta(days=1))

    assert outcome.action == "renewed"
    assert outcome.reason.startswith("the stored certificate expired on")
    assert outcome.certificate.not_after > first.not_after


def test_revoked_certificate_is_revoked_at_the_ca_and_replaced(world, pebble) -> None:
    settings = world["settings"]
    first = issuer.run(settings).certificate

    outcome = issuer.revoke_and_replace(settings, reason="keyCompromise")

    assert outcome.action == "revoked-and-replaced"
    assert pebble.status(first.serial) == "Revoked"
    assert pebble.status(outcome.certificate.serial) == "Valid"
    assert stored(world)["serial"] == outcome.certificate.serial
    # A reason the CAs do not accept is refused before anything is sent.
    with pytest.raises(issuer.IssueError, match="revocation reason 'stolen' is not one of"):
        issuer.revoke_and_replace(settings, reason="stolen")


def test_failed_order_in_the_wrong_zone_keeps_the_old_certificate(world, dns_server) -> None:
    """The subdomain is delegated to its own hosted zone, but the issuer is configured with the parent: the
    record lands where the CA does not look, the CA marks the order invalid."""
    settings = world["settings"]
    first = issuer.run(settings).certificate
    # A new ACME account for the failing order: pebble reuses an account's valid authorization one order in
    # a hundred even at PEBBLE_AUTHZREUSE=0 (it reuses unless rand.Intn(100) > 0), and a reused one needs no DNS.
    world["sm"].put_secret_value(
        SecretId=settings.account_secret_arn, SecretString=json.dumps({"placeholder": "generated"})
    )
    child = world["r53"].create_hosted_zone(Name=SUBDOMAIN, CallerReference="child")["HostedZone"]["Id"]
    cert_versions = versions(world, settings.certificate_secret_arn)
    with pytest.raises(issuer.IssueError) as failure:
        issuer.run(settings, force="test")

    message = str(failure.value)
    assert f"the CA could not validate TXT {CHALLENGE} in hosted zone {world['zone_id']}" in message
    assert "delegated to another zone" in message
    assert "dns-01" in message  # the CA's own words follow
    assert stored(world)["serial"] == first.serial
    assert versions(world, settings.certificate_secret_arn) == cert_versions
    assert txt_records(world) == [] and txt_records(world, child.split("/")[-1]) == []


def test_zone_that_cannot_hold_the_subdomain_is_refused_before_any_order(world) -> None:
    settings = world["settings"]
    first = issuer.run(settings).certificate
    other = world["r53"].create_hosted_zone(Name="example.net", CallerReference="other")["HostedZone"]["Id"]
    wrong = issuer.IssuerSettings(**{**settings.__dict__, "hosted_zone_id": other.split("/")[-1]})

    with pytest.raises(issuer.IssueError, match=f"is example.net, which cannot hold {CHALLENGE}"):
        issuer.run(wrong, force="test")

    assert stored(world)["serial"] == first.serial


def test_another_directory_gets_its_own_account_and_certificate(world, pebble) -> None:
    """Switching CA (staging -> production) by configuration: the stored account and certificate belong to
    the old directory, so both are replaced at the next run, whatever the days left."""
    settings = world["settings"]
    first = issuer.run(settings).certificate
    old_account = json.loads(world["sm"].get_secret_value(SecretId=settings.account_secret_arn)["SecretString"])
    other_url = pebble.directory_url.replace("127.0.0.1", "localhost")
    switched = issuer.IssuerSettings(**{**settings.__dict__, "directory_url": other_url})

    outcome = issuer.run(switched)

    assert outcome.action == "renewed"
    assert outcome.reason == f"the stored certificate comes from {pebble.directory_url}, configured is {other_url}"
    account = json.loads(world["sm"].get_secret_value(SecretId=settings.account_secret_arn)["SecretString"])
    assert account["directory"] == other_url and account["key"] != old_account["key"]
    assert outcome.certificate.serial != first.serial


def test_unreachable_directory_is_a_clear_error(world) -> None:
    settings = world["settings"]
    down = issuer.IssuerSettings(**{**settings.__dict__, "directory_url": "https://127.0.0.1:9/dir"})
    with pytest.raises(issuer.IssueError, match=r"cannot reach or use the ACME directory https://127\.0\.0\.1:9/dir"):
        issuer.run(down)
    assert "fullchain" not in stored(world)


def test_a_secret_the_issuer_did_not_write_is_never_overwritten(world) -> None:
    settings = world["settings"]
    world["sm"].put_secret_value(SecretId=settings.certificate_secret_arn, SecretString="-----BEGIN CERT")
    with pytest.raises(store.StoreError, match="does not hold a JSON object"):
        issuer.run(settings)
    assert world["sm"].get_secret_value(SecretId=settings.certificate_secret_arn)["SecretString"] == "-----BEGIN CERT"


def test_renewal_reason_boundaries(tmp_path: Path) -> None:
    """The decision alone, on a real certificate's dates: 30 days left renews, 30 days and a minute does not."""
    settings = issuer.IssuerSettings(
        directory_url="https://ca/dir",
        subdomain=SUBDOMAIN,
        hosted_zone_id="Z1",
        email="o@example.org",
        account_secret_arn="a",
        certificate_secret_arn="c",
        renew_days=30,
    )
    certificate = _self_signed(f"*.{SUBDOMAIN}")
    held = store.StoredCertificate(
        names=(f"*.{SUBDOMAIN}",), fullchain=certificate, private_key="", directory="https://ca/dir", issued_at=""
    )
    end = held.not_after
    assert issuer.renewal_reason(held, settings, end - dt.timedelta(days=30, minutes=1)) is None
    assert issuer.renewal_reason(held, settings, end - dt.timedelta(days=30)).startswith("30.0 days left")
    other = store.StoredCertificate(**{**held.__dict__, "names": ("*.old.example.org",)})
    reason = issuer.renewal_reason(other, settings, end - dt.timedelta(days=60))
    assert reason is not None and "the fleet needs *.fleet.meet.example.org" in reason


def _self_signed(name: str) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=90))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --- the Lambda handler: settings from the environment, the DaysToExpiry metric on every invocation ---------


class Context:
    function_name = "cert-issuer"
    memory_limit_in_mb = 256
    aws_request_id = "req"
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:cert-issuer"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def handler_env(world, monkeypatch) -> dict[str, Any]:
    settings = world["settings"]
    for key, value in {
        "ACME_DIRECTORY_URL": settings.directory_url,
        "SUBDOMAIN": SUBDOMAIN,
        "HOSTED_ZONE_ID": settings.hosted_zone_id,
        "ACME_EMAIL": settings.email,
        "ACCOUNT_SECRET_ARN": settings.account_secret_arn,
        "CERTIFICATE_SECRET_ARN": settings.certificate_secret_arn,
        "RENEW_DAYS": "30",
        "POWERTOOLS_SERVICE_NAME": "cert-issuer",
        "POWERTOOLS_METRICS_NAMESPACE": "BBBOnAWS/test",
    }.items():
        monkeypatch.setenv(key, value)
    return world


def emitted_days(output: str) -> list[float]:
    """DaysToExpiry values of the EMF documents Powertools printed, after checking their shape."""
    found = []
    for line in output.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "BBBOnAWS/test"
        # Exactly the dimensions the construct's alarm watches (Powertools adds `service`).
        assert directive["Dimensions"] == [["Subdomain", "service"]]
        assert (document["Subdomain"], document["service"]) == (SUBDOMAIN, "cert-issuer")
        (value,) = document["DaysToExpiry"]
        found.append(value)
    return found


def test_handler_issues_then_keeps_and_publishes_days_to_expiry(handler_env, capsys) -> None:
    from cert_issuer import index

    first = index.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, Context())
    second = index.handler({}, Context())

    assert first["action"] == "issued" and second["action"] == "kept"
    assert second["serial"] == first["serial"]
    days = emitted_days(capsys.readouterr().out)
    assert len(days) == 2 and all(89.9 < value <= 90 for value in days)


def test_failed_invocation_still_publishes_the_stored_certificate_and_raises(handler_env, monkeypatch, capsys) -> None:
    from cert_issuer import index

    index.handler({}, Context())
    capsys.readouterr()
    other = handler_env["r53"].create_hosted_zone(Name="example.net", CallerReference="o")["HostedZone"]["Id"]
    monkeypatch.setenv("HOSTED_ZONE_ID", other.split("/")[-1])

    with pytest.raises(issuer.IssueError, match="cannot hold"):
        index.handler({"action": "renew", "force": True}, Context())

    days = emitted_days(capsys.readouterr().out)
    assert len(days) == 1 and days[0] > 89.9  # the alarm sees what the hosts still serve


def test_handler_refuses_bad_input_naming_it(handler_env, monkeypatch) -> None:
    from cert_issuer import index

    with pytest.raises(ValueError, match="unknown action 'delete'"):
        index.handler({"action": "delete"}, Context())
    monkeypatch.setenv("RENEW_DAYS", "90")
    with pytest.raises(index.ConfigurationError, match="RENEW_DAYS='90' must be a whole number of days from 1 to 60"):
        index.handler({}, Context())
    monkeypatch.setenv("RENEW_DAYS", "30")
    monkeypatch.delenv("SUBDOMAIN")
    with pytest.raises(index.ConfigurationError, match="environment variable SUBDOMAIN is not set"):
        index.handler({}, Context())


def test_deploy_time_custom_resource_issues_once_and_keeps_on_update_and_delete(handler_env, capsys) -> None:
    """The stack's FirstIssuance (CDK Provider framework events): the fleet depends on it."""
    from cert_issuer import index

    base = {"StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/bbb-fleets/1",
            "LogicalResourceId": "FleetCertificateFirstIssuance", "ResourceType": "Custom::FleetCertificate",
            "ResourceProperties": {"ServiceToken": "arn:provider", "Subdomain": SUBDOMAIN}}
    created = index.handler({**base, "RequestType": "Create"}, Context())
    assert created["PhysicalResourceId"] == f"fleet-certificate:{SUBDOMAIN}"
    serial = created["Data"]["Serial"]
    assert stored(handler_env)["serial"] == serial
    updated = index.handler({**base, "RequestType": "Update", "PhysicalResourceId": created["PhysicalResourceId"],
                             "OldResourceProperties": base["ResourceProperties"]}, Context())
    assert updated == created  # a valid certificate is stored: nothing ordered
    deleted = index.handler({**base, "RequestType": "Delete", "PhysicalResourceId": created["PhysicalResourceId"]},
                            Context())
    assert deleted == {"PhysicalResourceId": created["PhysicalResourceId"]}
    assert stored(handler_env)["serial"] == serial
    assert len(emitted_days(capsys.readouterr().out)) == 3
