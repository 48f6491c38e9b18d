"""The EC2 instance-type catalogue (settings/instance_types.json, generated from the pinned botocore by
scripts/gen_instance_types.py): is a type real, which architecture is it, and which real types is a typo
closest to. The configuration's validation and the operator command's cost estimate both read it here."""

from __future__ import annotations

import difflib
import json
from functools import cache
from pathlib import Path
from typing import Any

CATALOGUE = Path(__file__).resolve().parent / "instance_types.json"


class UnknownInstanceType(ValueError):
    """An instance type the catalogue does not hold; the message names the closest real types."""


@cache
def _catalogue() -> dict[str, Any]:
    return json.loads(CATALOGUE.read_text())


def source() -> str:
    """Where the list comes from (botocore version and service model), for error messages and reports."""
    return str(_catalogue()["source"])


def known(instance_type: str) -> bool:
    return instance_type in _catalogue()["types"]


def architecture(instance_type: str) -> str:
    """`x86_64`, `arm64` or `mac`; raises UnknownInstanceType for a type EC2 does not have."""
    check(instance_type)
    return str(_catalogue()["types"][instance_type])


def nearest(instance_type: str, count: int = 3) -> list[str]:
    """The real types closest to `instance_type` (difflib's ratio), best first."""
    return difflib.get_close_matches(instance_type, _catalogue()["types"], n=count, cutoff=0.6)


def check(instance_type: str) -> str:
    """`instance_type` itself if EC2 has it, else UnknownInstanceType naming the nearest real types."""
    if known(instance_type):
        return instance_type
    close = nearest(instance_type)
    hint = f"did you mean {', '.join(close)}?" if close else "see settings/instance_types.json for the list"
    raise UnknownInstanceType(f"'{instance_type}' is not an EC2 instance type ({source()}); {hint}")
