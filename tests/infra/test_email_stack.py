"""The email stack: SES domain identity in the SES region, Easy DKIM, MAIL FROM and DMARC records."""

from __future__ import annotations

import json

import pytest

from tests.infra.platform_templates import OPTIONS_VARIANT, only, properties, resources
from tests.infra.synth import SHAPES, synth

# The first test to ask for a deployment variant pays its synthesis (several seconds).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dev():
    return synth("scalable", "dev")


def records(template, record_type):
    return [p for p in properties(template, "AWS::Route53::RecordSet") if p["Type"] == record_type]


def stack_region(result, part):
    manifest = json.loads((result.outdir / "manifest.json").read_text())
    return manifest["artifacts"][f"{result.config.prefix}-{part}"]["environment"].rsplit("/", 1)[1]


def test_both_shapes_have_an_email_stack():
    for shape in SHAPES:
        result = synth(shape, "prod")
        assert f"{result.config.prefix}-email" in result.stack_names()


def test_identity_is_the_domain_with_2048_bit_easy_dkim_and_a_mail_from_domain(dev):
    _, identity = only(dev.template("email"), "AWS::SES::EmailIdentity")
    props = identity["Properties"]
    domain = dev.config.domain.name
    assert props["EmailIdentity"] == domain
    assert props["DkimSigningAttributes"] == {"NextSigningKeyLength": "RSA_2048_BIT"}
    assert props["MailFromAttributes"] == {"MailFromDomain": f"mail.{domain}",
                                           "BehaviorOnMxFailure": "USE_DEFAULT_VALUE"}


def test_three_dkim_cnames_from_the_identity_go_into_the_zone(dev):
    template = dev.template("email")
    identity_id, _ = only(template, "AWS::SES::EmailIdentity")
    cnames = records(template, "CNAME")
    assert len(cnames) == 3
    # The full name SES gives plus the final dot, never the zone name appended a second time.
    assert {json.dumps(c["Name"]) for c in cnames} == {
        json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [identity_id, f"DkimDNSTokenName{i}"]}, "."]]})
        for i in (1, 2, 3)}
    assert {json.dumps(c["ResourceRecords"]) for c in cnames} == {
        json.dumps([{"Fn::GetAtt": [identity_id, f"DkimDNSTokenValue{i}"]}]) for i in (1, 2, 3)}
    assert {c["HostedZoneId"] for c in cnames} == {dev.config.domain.hosted_zone_id}


def test_mail_from_has_the_ses_feedback_mx_and_an_spf_record(dev):
    template = dev.template("email")
    domain, region = dev.config.domain.name, dev.config.environment.region
    (mx,) = records(template, "MX")
    assert mx["Name"] == f"mail.{domain}." and mx["ResourceRecords"] == [f"10 feedback-smtp.{region}.amazonses.com"]
    (spf,) = [r for r in records(template, "TXT") if r["Name"] == f"mail.{domain}."]
    assert spf["ResourceRecords"] == ['"v=spf1 include:amazonses.com ~all"']


def test_a_subdomain_deployment_publishes_a_reporting_only_dmarc_record(dev):
    (dmarc,) = [r for r in records(dev.template("email"), "TXT") if r["Name"].startswith("_dmarc.")]
    assert dmarc["Name"] == f"_dmarc.{dev.config.domain.name}."
    assert dmarc["ResourceRecords"] == ['"v=DMARC1; p=none;"']


def test_email_stack_lives_in_the_deployment_region_by_default(dev):
    assert stack_region(dev, "email") == dev.config.environment.region


def test_ses_region_option_moves_the_stack_and_the_mx_and_apex_skips_dmarc():
    result = synth("scalable", "dev", **OPTIONS_VARIANT)
    template = result.template("email")
    assert stack_region(result, "email") == "us-east-1"
    assert stack_region(result, "shared") == result.config.environment.region
    (mx,) = records(template, "MX")
    assert mx["ResourceRecords"] == ["10 feedback-smtp.us-east-1.amazonses.com"]
    assert not [r for r in records(template, "TXT") if r["Name"].startswith("_dmarc.")]
    assert resources(template, "AWS::SES::EmailIdentity")
