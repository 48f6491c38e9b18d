"""The EC2 instance-type catalogue (settings/instance_types.json, generated from the pinned botocore by
scripts/gen_instance_types.py): is a type real, which architecture is it, and which real types is a typo
closest to, or which types of another architecture match it; also the Aurora PostgreSQL instance classes and
ElastiCache node types (from the pinned cfn-lint: botocore's models list none). The configuration's validation
(settings/loading.py) reads it here; the operator command's cost estimate prices only configurations that
passed that validation."""

from __future__ import annotations

import difflib
import json
import re
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


def describe(instance_type: str) -> str:
    """The architecture in an operator's words: `x86_64`, `arm64 (Graviton)`, `arm64 (NVIDIA Grace)`, or a Mac."""
    arch = architecture(instance_type)
    if arch == "mac":
        return "a Mac type (macOS on a Dedicated Host)"
    if arch == "arm64":
        return "arm64 (NVIDIA Grace)" if "-gb" in instance_type.partition(".")[0] else "arm64 (Graviton)"
    return arch


def nearest(instance_type: str, count: int = 3) -> list[str]:
    """The real types closest to `instance_type` (difflib's ratio), best first."""
    return difflib.get_close_matches(instance_type, _catalogue()["types"], n=count, cutoff=0.6)


_FAMILY = re.compile(r"^([a-z]+)(\d*)(.*)$")


def alternatives(instance_type: str, architecture: str, count: int = 3) -> list[str]:
    """Real types of `architecture` with the size of `instance_type`, in the same class (the family's leading
    letters), nearest generation first, then the closest family name: t4g.small -> t3.small, t3a.small, ...;
    c7g.2xlarge -> c7a.2xlarge, c7i.2xlarge, ... Empty when no type of that size and class exists."""
    family, _, size = instance_type.partition(".")
    letters, generation, rest = _split(family)
    # A Graviton family's `g` marks the architecture, not the kind: m6gd is compared with m6d, m6id, m6ad.
    plain = f"{letters}{generation}{rest.removeprefix('g')}"
    candidates = []
    for name, arch in _catalogue()["types"].items():
        other, _, other_size = name.partition(".")
        other_letters, other_generation, _ = _split(other)
        if arch == architecture and other_size == size and other_letters == letters:
            distance = abs(int(other_generation or 0) - int(generation or 0))
            similarity = difflib.SequenceMatcher(None, plain, other).ratio()
            candidates.append((distance, -similarity, name))
    return [name for *_, name in sorted(candidates)[:count]]


def _split(family: str) -> tuple[str, str, str]:
    match = _FAMILY.match(family)
    return match.groups() if match else (family, "", "")  # type: ignore[return-value]


def unknown(instance_type: str) -> str:
    """Why a type is refused, to follow the value in a message: the catalogue's botocore and the nearest real
    types."""
    close = nearest(instance_type)
    hint = f"did you mean {', '.join(close)}?" if close else "see settings/instance_types.json for the list"
    return f"is not an EC2 instance type (botocore {_catalogue()['botocore']}'s EC2 model); {hint}"


# Lists of classes other services offer, by the catalogue's key, as an operator names them.
SERVICE_CLASSES = {
    "auroraPostgresqlClasses": "an Aurora PostgreSQL instance class",
    "cacheNodeTypes": "an ElastiCache node type",
}


def unknown_class(name: str, kind: str) -> str | None:
    """None if `name` is in the catalogue's list `kind` (a SERVICE_CLASSES key), else why it is refused with
    the nearest listed classes. The lists come from the pinned cfn-lint (any region), not from botocore."""
    listed = _catalogue()[kind]
    if name in listed:
        return None
    close = difflib.get_close_matches(name, listed, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else f"see {kind} in settings/instance_types.json"
    return f"is not {SERVICE_CLASSES[kind]} (cfn-lint {_catalogue()['cfnLint']}'s list, any region); {hint}"


def check(instance_type: str) -> str:
    """`instance_type` itself if EC2 has it, else UnknownInstanceType naming the nearest real types."""
    if known(instance_type):
        return instance_type
    raise UnknownInstanceType(f"'{instance_type}' {unknown(instance_type)}")
