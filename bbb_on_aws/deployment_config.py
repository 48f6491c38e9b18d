"""The one place the operator command reads the deployment's configuration: cdk.json's context plus the
same `-c deployment.<path>=value` overrides `cdk synth` takes, validated by the app's own loader (so a bad
value fails here exactly as it fails synth, naming the key).

The loader module is imported on the next line only; when it moves, this line changes and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bbb_on_aws import REPOSITORY
from settings import Config, ConfigError, load_config  # the app's config loader

__all__ = ["CDK_JSON", "Config", "ConfigError", "load", "parse_overrides"]

CDK_JSON = REPOSITORY / "cdk.json"


class OverrideError(ValueError):
    """A `-c` argument that is not KEY=VALUE."""


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """`-c key=value` as the CDK CLI reads it: the value stays a string (the loader parses JSON values)."""
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OverrideError(f"-c {item!r}: expected KEY=VALUE, e.g. -c deployment.bbb.maxInstances=5")
        overrides[key] = value
    return overrides


def load(overrides: Sequence[str] = (), cdk_json: Path = CDK_JSON) -> Config:
    """The validated Config of cdk.json (at `cdk_json`) with `-c` overrides applied; raises ConfigError."""
    context: dict[str, Any] = json.loads(cdk_json.read_text())["context"]
    context.update(parse_overrides(overrides))
    return load_config(context)
