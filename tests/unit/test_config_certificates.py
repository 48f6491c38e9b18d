"""The fleet certificate's settings (deployment.bbb.certificates): defaults and the mistakes that fail synth."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from settings import ConfigError, load_config
from settings.model import LETS_ENCRYPT, LETS_ENCRYPT_STAGING

BASE = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())["context"]["deployment"]


def load(certificates: dict[str, Any] | None = None) -> Any:
    section = copy.deepcopy(BASE)
    if certificates is not None:
        section.setdefault("bbb", {})["certificates"] = certificates
    return load_config({"deployment": section})


def problems(certificates: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(certificates)
    return info.value.problems


def test_defaults_are_lets_encrypt_production_renewing_at_30_days_alarming_at_20() -> None:
    config = load()
    certs = config.bbb.certificates
    assert (certs.acme_directory, certs.renew_days, certs.alarm_days) == (LETS_ENCRYPT, 30, 20)
    assert config.names.bbb_fleet == f"fleet.{config.domain.name}"


def test_staging_by_configuration() -> None:
    assert load({"acmeDirectory": LETS_ENCRYPT_STAGING}).bbb.certificates.acme_directory == LETS_ENCRYPT_STAGING


@pytest.mark.parametrize(
    ("certificates", "message"),
    [
        ({"acmeDirectory": "http://ca.example/dir"}, "deployment.bbb.certificates.acmeDirectory"),
        ({"renewDays": 0}, "deployment.bbb.certificates.renewDays"),
        ({"renewDays": 75}, "deployment.bbb.certificates.renewDays"),
        ({"renewDays": 20, "alarmDays": 20}, "deployment.bbb.certificates.alarmDays: 20 must be below "
                                             "deployment.bbb.certificates.renewDays (20)"),
        ({"renewDay": 20}, "renewDay"),
    ],
)
def test_mistakes_fail_naming_the_key(certificates: dict[str, Any], message: str) -> None:
    found = problems(certificates)
    assert len(found) == 1 and message in found[0], found
