"""Contract names (docs/host-contract.md) and the functions' settings."""

from __future__ import annotations

import pytest
from common import config, names

import contract


def test_instance_names_follow_the_contract() -> None:
    assert (
        names.instance_host("bbb", "i-0123456789abcdef0", "Meet.Example.org.")
        == "bbb-0123456789abcdef0.meet.example.org"
    )
    assert names.instance_host("turn", "i-0abc1234", "meet.example.org") == "turn-0abc1234.meet.example.org"
    assert names.instance_host("single", "i-0abc1234", "meet.example.org") == "meet.example.org"
    assert names.turn_pool_name("meet.example.org") == "turn.meet.example.org"
    assert names.bbb_api_url("bbb-0abc1234.x.org") == "https://bbb-0abc1234.x.org/bigbluebutton/api"


def test_names_parse_back_to_the_instance() -> None:
    assert names.parse_instance_host("BBB-0abc1234.meet.example.org.", "meet.example.org") == ("bbb", "i-0abc1234")
    assert names.parse_instance_host("turn-0abc1234.meet.example.org", "meet.example.org") == ("turn", "i-0abc1234")
    assert names.parse_instance_host("turn.meet.example.org", "meet.example.org") is None
    assert names.parse_instance_host("bbb-0abc1234.other.org", "meet.example.org") is None
    assert names.parse_instance_host("bbb-xyz.meet.example.org", "meet.example.org") is None
    url = "https://bbb-0abc1234.meet.example.org/bigbluebutton/api"
    assert names.parse_bbb_api_url(url, "meet.example.org") == "i-0abc1234"
    assert names.parse_bbb_api_url("https://elsewhere.org/bigbluebutton/api", "meet.example.org") is None


def test_bad_names_are_refused_with_the_reason() -> None:
    with pytest.raises(names.ContractNameError, match="not an EC2 instance id"):
        names.instance_host("bbb", "i-XYZ", "meet.example.org")
    with pytest.raises(names.ContractNameError, match="unknown fleet role"):
        names.instance_host("web", "i-0abc1234", "meet.example.org")
    with pytest.raises(names.ContractNameError, match="not a DNS domain"):
        names.normalize_domain("localhost")


def test_derived_identifiers_are_stable_and_bounded() -> None:
    ref = names.health_check_caller_reference("prod", "i-0123456789abcdef0", "2026-01-01T00:00:00+00:00")
    assert ref == names.health_check_caller_reference("prod", "i-0123456789abcdef0", "2026-01-01T00:00:00+00:00")
    assert ref != names.health_check_caller_reference("prod", "i-0123456789abcdef0", "2026-01-02T00:00:00+00:00")
    assert len(ref) <= 64
    assert names.execution_name("drain", "i-0123456789abcdef0") == "drain-i-0123456789abcdef0"
    assert names.probe_alarm_name("prod", "i-0abc1234") == "bbb-on-aws-prod-turn-probe-i-0abc1234"


BASE = {
    "ENVIRONMENT_NAME": "prod",
    "FLEET_ROLE": "bbb",
    "AUTO_SCALING_GROUP_NAME": "g",
    "DOMAIN_NAME": "Meet.Example.org",
    "HOSTED_ZONE_ID": "/hostedzone/Z123",
    "LAUNCH_HOOK_NAME": "l",
    "TERMINATE_HOOK_NAME": "t",
    "TURN_PORT": str(contract.TURN_PORT),
}


def test_settings_are_read_and_normalized(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DRAIN_MAX_SECONDS", "1800")
    settings = config.load()
    assert settings.domain == "meet.example.org"
    assert settings.hosted_zone_id == "Z123"
    assert settings.namespace == "BBBOnAWS/prod"
    assert settings.drain_max_seconds == 1800
    assert settings.bbb_api_base("h.example.org") == "https://h.example.org/bigbluebutton/api"
    with pytest.raises(config.ConfigurationError, match="SCALELITE_API_URL is required"):
        settings.need("scalelite_api_url")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("FLEET_ROLE", None, "FLEET_ROLE is not set"),
        ("FLEET_ROLE", "web", "is not one of bbb, turn, single"),
        ("DRAIN_MAX_SECONDS", "4h", "is not a whole number"),
        ("DOMAIN_NAME", "nodot", "DOMAIN_NAME"),
        ("BBB_API_URL_TEMPLATE", "https://x/api", "must contain {host}"),
        ("TURN_PORT", None, "TURN_PORT is not set"),
        ("TURN_PORT", "3478/udp", "TURN_PORT='3478/udp' is not a whole number"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str | None, message: str
) -> None:
    for name, setting in BASE.items():
        monkeypatch.setenv(name, setting)
    if value is None:
        monkeypatch.delenv(key, raising=False)
    else:
        monkeypatch.setenv(key, value)
    with pytest.raises(config.ConfigurationError, match=message):
        config.load()


def test_the_handlers_names_come_from_the_contract() -> None:
    """The lifecycle asset ships lambdas/common/contract.py: the handlers' names are the infrastructure's."""
    assert (names.TAG_ENVIRONMENT, names.TAG_ROLE, names.TAG_READY) == (
        contract.TAG_ENVIRONMENT, contract.TAG_ROLE, contract.TAG_READY)
    assert names.metric_namespace("prod") == contract.metric_namespace("prod") == "BBBOnAWS/prod"
    assert names.instance_host("turn", "i-0abc1234", "x.org") == f"{contract.TURN_HOST_PREFIX}0abc1234.x.org"
    assert names.instance_host("bbb", "i-0abc1234", "x.org") == f"{contract.BBB_HOST_PREFIX}0abc1234.x.org"
    assert names.turn_pool_name("x.org") == f"{contract.TURN_POOL_PREFIX}x.org"


def test_fleet_servers_live_under_the_fleet_subdomain() -> None:
    """The BBB lifecycle is configured with fleet.<domain> (the fleet certificate's wildcard parent)."""
    assert names.server_domain("bbb", "Meet.Example.org.") == "fleet.meet.example.org"
    assert names.server_domain("turn", "meet.example.org") == "meet.example.org"
    assert names.server_domain("single", "meet.example.org") == "meet.example.org"
    host = names.instance_host("bbb", "i-0abc123def4567890", names.server_domain("bbb", "meet.example.org"))
    assert host == "bbb-0abc123def4567890.fleet.meet.example.org"
    assert names.parse_instance_host(host, "fleet.meet.example.org") == ("bbb", "i-0abc123def4567890")
