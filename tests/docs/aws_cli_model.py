"""Checks an `aws <service> <operation> --param ...` command against botocore's service models: the service,
the operation, every parameter name (`--no-x` for booleans), every required parameter, and the keys of JSON
structure values. The AWS CLI is built on these models, so a command that passes calls a real API with
real parameters; only the CLI's own customizations are listed here by hand."""

from __future__ import annotations

import json

import botocore.session
from botocore import xform_name
from botocore.model import OperationModel, Shape, StructureShape

# Options of the CLI itself, valid on every command.
GLOBAL_OPTIONS = {
    "--region",
    "--profile",
    "--query",
    "--output",
    "--no-cli-pager",
    "--debug",
    "--max-items",
    "--starting-token",
    "--page-size",
    "--no-paginate",
    "--endpoint-url",
}
# Commands the CLI implements itself (not API operations), with the options used in the docs.
CUSTOMIZATIONS = {
    ("configure", "sso"): {"--profile"},
    ("sso", "login"): {"--profile"},
    ("logs", "tail"): {"--follow", "--since", "--log-stream-name-prefix", "--format", "--filter-pattern"},
}

_session = botocore.session.get_session()


def _operation(service: str, command: str) -> OperationModel:
    model = _session.get_service_model(service)
    names = {xform_name(name, "-"): name for name in model.operation_names}
    if command not in names:
        raise AssertionError(f"aws {service} {command}: no such operation")
    return model.operation_model(names[command])


def _check_json_keys(where: str, shape: Shape, value: object) -> None:
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for key, item in value.items():
            if key not in shape.members:
                raise AssertionError(f"{where}: {key!r} is not one of {sorted(shape.members)}")
            _check_json_keys(f"{where}.{key}", shape.members[key], item)


def check(words: list[str]) -> None:
    """Raise AssertionError naming what is wrong with this `aws ...` command."""
    assert words[0] == "aws" and len(words) >= 3, words
    service, command = words[1], words[2]
    options = [w for w in words[3:] if w.startswith("--")]
    if (service, command) in CUSTOMIZATIONS:
        unknown = set(options) - CUSTOMIZATIONS[service, command] - GLOBAL_OPTIONS
        assert not unknown, f"aws {service} {command}: unknown options {sorted(unknown)}"
        return
    if service not in _session.get_available_services():
        raise AssertionError(f"aws {service}: no such service")
    operation = _operation(service, command)
    shape = operation.input_shape
    members = {xform_name(name, "-"): name for name in (shape.members if shape else {})}
    given = set()
    for index, word in enumerate(words[3:], start=3):
        if not word.startswith("--") or word in GLOBAL_OPTIONS:
            continue
        option = word[2:]
        if option.startswith("no-") and option[3:] in members:
            option = option[3:]
            assert shape.members[members[option]].type_name == "boolean", f"{word} on a non-boolean"
        if option not in members:
            raise AssertionError(f"aws {service} {command}: unknown parameter {word} (has {sorted(members)})")
        given.add(members[option])
        member = shape.members[members[option]]
        value = words[index + 1] if index + 1 < len(words) else ""
        if isinstance(member, StructureShape) and value.startswith("{"):
            _check_json_keys(word, member, json.loads(value))
    required = set(shape.required_members) if shape else set()
    missing = required - given
    assert not missing, f"aws {service} {command}: missing required {sorted(xform_name(m, '-') for m in missing)}"
