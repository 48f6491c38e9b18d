"""The fleet certificate in the deployment: the scalable shape's fleets stack issues it, its servers read it
and boot after the first issuance, and are named under the subdomain it covers; the single shape has none."""

from __future__ import annotations

from tests.infra.fleets_support import (
    actions_of,
    fleets,
    one,
    params_env,
    props,
    resources,
    statements,
    user_data,
)

DOMAIN_KEYS = ("ACME_DIRECTORY_URL", "SUBDOMAIN", "RENEW_DAYS")


def issuer(template):
    [found] = [
        (k, f) for k, f in resources(template, "AWS::Lambda::Function", "FleetCertificate").items()
        if f["Properties"].get("Handler") == "cert_issuer.index.handler"
    ]
    return found


def test_scalable_fleet_reads_the_certificate_and_boots_after_the_first_issuance():
    template = fleets("scalable")
    _lid, function = issuer(template)
    env = function["Properties"]["Environment"]["Variables"]
    domain = params_env(user_data(template, "Bbb"))["DOMAIN"]
    assert env["SUBDOMAIN"] == f"fleet.{domain}"
    assert env["ACME_DIRECTORY_URL"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert env["RENEW_DAYS"] == "30"
    [(secret_id, _)] = [
        (k, v) for k, v in resources(template, "AWS::SecretsManager::Secret", "FleetCertificate").items()
        if v["Properties"]["Description"].startswith("bbb-on-aws: *.")
    ]
    host = params_env(user_data(template, "Bbb"))
    assert host["CERTIFICATE_SECRET_ARN"] == '{{"Ref": "' + secret_id + '"}}'
    assert host["BBB_HOST_DOMAIN"] == f"fleet.{domain}"
    reads = [s for s in statements(template, "Bbb") if "secretsmanager:GetSecretValue" in actions_of(s)]
    assert any(s["Resource"] == {"Ref": secret_id} or {"Ref": secret_id} in s["Resource"] for s in reads)
    assert not any("secretsmanager:PutSecretValue" in actions_of(s) for s in statements(template, "Bbb"))
    _group_id, group = one(template, "AWS::AutoScaling::AutoScalingGroup", "Bbb")
    trigger_id, _ = one(template, "Custom::FleetCertificate", "FleetCertificate")
    assert trigger_id in group.get("DependsOn", [])


def test_the_bbb_lifecycle_names_servers_under_the_fleet_subdomain():
    template = fleets("scalable")
    domain = params_env(user_data(template, "Bbb"))["DOMAIN"]
    launch = [
        f["Properties"]["Environment"]["Variables"]
        for f in resources(template, "AWS::Lambda::Function", "BbbLifecycle").values()
        if "DOMAIN_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert launch and {env["DOMAIN_NAME"] for env in launch} == {f"fleet.{domain}"}
    changes = [
        s for p in resources(template, "AWS::IAM::Policy", "BbbLifecycle").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if "route53:ChangeResourceRecordSets" in actions_of(s)
    ]
    names = {n for s in changes for n in s["Condition"]["ForAllValues:StringLike"][
        "route53:ChangeResourceRecordSetsNormalizedRecordNames"]}
    assert names == {f"bbb-*.fleet.{domain}"}


def test_single_shape_keeps_its_own_certificate():
    template = fleets("single")
    assert not [p for p in template["Resources"] if p.startswith("FleetCertificate")]
    env = params_env(user_data(template, "Single"))
    assert "CERTIFICATE_SECRET_ARN" not in env and "BBB_HOST_DOMAIN" not in env
    assert props(template, "AWS::AutoScaling::AutoScalingGroup", "Single")
