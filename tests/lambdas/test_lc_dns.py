"""Route 53 helper on moto: records are convergent, health checks found by tag before creation."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from common import dns

DOMAIN = "meet.example.test"


@pytest.fixture
def zone(aws_env: None) -> dns.Zone:
    zone_id = boto3.client("route53").create_hosted_zone(Name=DOMAIN, CallerReference="t")["HostedZone"]["Id"]
    return dns.Zone(zone_id.split("/")[-1], DOMAIN)


def test_simple_records_upsert_and_guarded_delete(zone: dns.Zone) -> None:
    name = f"bbb-0abc1234.{DOMAIN}"
    zone.upsert_a(name, "203.0.113.5", comment="t")
    zone.upsert_a(name, "203.0.113.6", comment="t")  # replay with a new address: still one record
    record = zone.simple_a(name)
    assert record is not None and record.values == ("203.0.113.6",) and record.ttl == 60
    assert zone.delete_a(name, only_if_value="203.0.113.5", comment="t") is False  # someone else's now
    assert zone.delete_a(name, comment="t") is True
    assert zone.delete_a(name, comment="t") is False
    assert zone.simple_a(name) is None


def test_weighted_records_are_per_instance(zone: dns.Zone) -> None:
    pool = f"turn.{DOMAIN}"
    zone.upsert_weighted(pool, "i-0aaa1111", "203.0.113.1", "hc-a", comment="t")
    zone.upsert_weighted(pool, "i-0bbb2222", "203.0.113.2", "hc-b", comment="t")
    zone.upsert_weighted(pool, "i-0aaa1111", "203.0.113.1", "hc-a", comment="t")
    weighted = {r.set_identifier: r for r in zone.weighted(pool)}
    assert set(weighted) == {"i-0aaa1111", "i-0bbb2222"}
    assert (weighted["i-0aaa1111"].weight, weighted["i-0aaa1111"].health_check_id) == (100, "hc-a")
    assert zone.delete_weighted(pool, "i-0aaa1111", comment="t") is True
    assert zone.delete_weighted(pool, "i-0aaa1111", comment="t") is False
    assert [r.set_identifier for r in zone.weighted(pool)] == ["i-0bbb2222"]


def test_health_checks_are_created_once_and_found_by_tag(aws_env: None) -> None:
    sent: list[dict[str, Any]] = []
    checks = dns.HealthChecks("lctest")
    checks._r53.meta.events.register(
        "before-parameter-build.route-53.CreateHealthCheck", lambda params, **_: sent.append(params)
    )
    first = checks.ensure("i-0aaa1111", "2026-01-01T00:00:00+00:00", "alarm-a", "eu-west-1")
    again = checks.ensure("i-0aaa1111", "2026-01-01T00:00:00+00:00", "alarm-a", "eu-west-1")
    other_env = dns.HealthChecks("other").ensure("i-0aaa1111", "2026-01-01T00:00:00+00:00", "alarm-x", "eu-west-1")
    assert first == again != other_env
    assert len(sent) == 2
    assert sent[0]["HealthCheckConfig"] == {
        "Type": "CLOUDWATCH_METRIC",
        "AlarmIdentifier": {"Region": "eu-west-1", "Name": "alarm-a"},
        "InsufficientDataHealthStatus": "Unhealthy",
    }
    assert checks.by_instance() == {"i-0aaa1111": [first]}
    assert checks.delete(first) is True
    checks.delete(first)  # a replay must not fail (AWS answers NoSuchHealthCheck; moto answers nothing)
    assert checks.by_instance() == {}
