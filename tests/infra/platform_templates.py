"""Small helpers to read synthesized templates in the shared/email/data stack tests."""

from __future__ import annotations

import json
from typing import Any

# One extra variant, synthesized once, with every option the defaults leave untouched: SES in another region,
# the deployment at the zone apex, provisioned Aurora and the Redis engine.
OPTIONS_VARIANT = {
    "sesRegion": "us-east-1",
    "domain.name": "example.com",
    "database.capacity": "provisioned",
    "database.instanceClass": "db.r6g.large",
    "cache.engine": "redis",
    "cache.engineVersion": "7.1",
}


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource (with Type, Properties, DeletionPolicy...) of every resource of that type."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def properties(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r.get("Properties", {}) for r in resources(template, kind).values()]


def only(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    found = resources(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.items()))


def statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy_document["Statement"])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def text(template: dict[str, Any]) -> str:
    return json.dumps(template)
