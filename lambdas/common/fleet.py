"""Per-fleet wiring shared by the handlers: the zone, the Scalelite client, the BBB secret, host names."""

from __future__ import annotations

from common import config, dns, names, secrets
from common.scalelite import ScaleliteClient


def zone(settings: config.Settings) -> dns.Zone:
    return dns.Zone(settings.hosted_zone_id, settings.domain)


def host(settings: config.Settings, instance_id: str) -> str:
    return names.instance_host(settings.role, instance_id, settings.domain)


def bbb_secret(settings: config.Settings) -> str:
    return secrets.secret_string(settings.need("bbb_secret_arn"))


def scalelite(settings: config.Settings) -> ScaleliteClient:
    return ScaleliteClient(
        settings.need("scalelite_api_url"), secrets.secret_string(settings.need("scalelite_secret_arn"))
    )


def uses_scalelite(settings: config.Settings) -> bool:
    """Only the scalable BBB fleet sits behind Scalelite; the single host serves Greenlight directly."""
    return settings.role == "bbb"
