"""Loading the configuration: cdk.json's context (with `-c` overrides) into the typed model.

Reflection over the model's dataclasses: each field's type and metadata (settings/model.py) say how to
convert and check it. Every problem is collected and reported at once, each naming the key, the bad value and
what is allowed, before any construct is built; rules across keys follow (settings/rules.py).
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

from settings import instance_types
from settings.model import CONTEXT_KEY, Config, ConfigError, Container, Hosts
from settings.rules import check_relations


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def load_config(context: Mapping[str, Any]) -> Config:
    """Build the Config from the CDK context (cdk.json's `context` merged with `-c` overrides)."""
    raw = context.get(CONTEXT_KEY)
    if isinstance(raw, str):  # `-c deployment='{...}'` arrives as a string
        raw = _parse_override(raw)
    if raw is None:
        raise ConfigError([f"'{CONTEXT_KEY}' is missing from cdk.json's context: add the deployment section "
                           "(see README, 'Parameters')"])
    if not isinstance(raw, Mapping):
        raise ConfigError([f"'{CONTEXT_KEY}' must be an object, got {type(raw).__name__}"])
    raw = _apply_overrides(dict(raw), context)
    problems: list[str] = []
    config = _build(Config, raw, CONTEXT_KEY, problems)
    if not problems:  # rules across keys need every single value to be valid first
        check_relations(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def _parse_override(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _apply_overrides(raw: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    prefix = CONTEXT_KEY + "."
    for key in sorted(k for k in context if k.startswith(prefix)):
        path = key[len(prefix):].split(".")
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            node[part] = child = dict(child) if isinstance(child, Mapping) else {}
            node = child
        node[path[-1]] = _parse_override(context[key])
    return raw


def _build(cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: expected an object, got {_show(raw)}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {camel(f.name): f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed keys: {', '.join(sorted(fields))}"
            problems.append(f"{path}.{key}: unknown key{hint}")
    values: dict[str, Any] = {}
    for key, f in fields.items():
        here = f"{path}.{key}"
        if key not in raw:
            if f.metadata.get("required"):
                problems.append(f"{here}: required ({f.metadata['doc']})")
            continue
        value = _convert(hints[f.name], raw[key], here, problems)
        if value is not _INVALID:
            _check_value(f.metadata, value, here, problems, default=f.default)
            values[f.name] = value
    if any(p.startswith(path + ".") or p.startswith(path + ":") for p in problems):
        return _INVALID
    try:
        return cls(**values)
    except TypeError:  # a required nested value failed: already reported
        return _INVALID


_INVALID: Any = object()


def _convert(hint: Any, value: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, path, problems)
    if origin is Literal:
        if value not in args:
            problems.append(f"{path}: {_show(value)} is not allowed; use one of {', '.join(map(repr, args))}")
            return _INVALID
        return value
    if origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {_show(value)}")
            return _INVALID
        items = [_convert(args[0], v, f"{path}[{i}]", problems) for i, v in enumerate(value)]
        return _INVALID if _INVALID in items else items
    if origin is dict:  # str keys (e.g. instance types), each value converted and checked by the rules
        if not isinstance(value, Mapping):
            problems.append(f"{path}: expected an object, got {_show(value)}")
            return _INVALID
        converted = {str(k): _convert(args[1], v, f"{path}[\"{k}\"]", problems) for k, v in value.items()}
        return _INVALID if _INVALID in converted.values() else converted
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path, problems)
    expected: dict[Any, tuple[type, ...]] = {str: (str,), bool: (bool,), int: (int,), float: (int, float)}
    ok = isinstance(value, expected[hint]) and (hint is bool or not isinstance(value, bool))
    if not ok:
        problems.append(f"{path}: expected {hint.__name__ if hint is not float else 'a number'}, got {_show(value)}")
        return _INVALID
    return float(value) if hint is float else value


_DNS = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")


def _check_value(meta: Mapping[str, Any], value: Any, path: str, problems: list[str], default: Any = None) -> None:
    checks: list[tuple[str, Callable[[Any], str | None]]] = [
        ("pattern", lambda v: None if v is None or re.match(meta["pattern"][0], v)
         else f"must be {meta['pattern'][1]}"),
        ("dns", lambda v: None if _DNS.match(v) else "must be a lowercase DNS name such as bbb.example.com"),
        ("email", lambda v: None if _EMAIL.match(v) else "must be an e-mail address such as ops@example.com"),
        ("instance_type", lambda v: _instance_type_problem(v, meta["instance_type"], default)),
        ("service_class", lambda v: _class_problem(v, meta)),
        ("cidr", lambda v: _cidr_problem(v)),
        ("minimum", lambda v: None if v >= meta["minimum"] else f"must be at least {meta['minimum']}"),
        ("maximum", lambda v: None if v <= meta["maximum"] else f"must be at most {meta['maximum']}"),
    ]
    for name, check in checks:
        if name in meta:
            problem = check(value)
            if problem:
                problems.append(f"{path}: {_show(value)} {problem}")
    if meta.get("cidrs"):
        for i, item in enumerate(value):
            problem = _cidr_problem(item)
            if problem:
                problems.append(f"{path}[{i}]: {_show(item)} {problem}")


def _instance_type_problem(value: str, hosts: Hosts, default: str) -> str | None:
    """A type EC2 has (settings/instance_types.json), of the architecture the hosts' image is built for."""
    if not instance_types.known(value):
        return instance_types.unknown(value)
    if instance_types.architecture(value) == hosts.architecture:
        return None
    such = instance_types.alternatives(value, hosts.architecture) or [default]
    return (f"is {instance_types.describe(value)}, but {hosts.name} run {hosts.image}; "
            f"use an {hosts.architecture} type such as {', '.join(such)}")


def _class_problem(value: str, meta: Mapping[str, Any]) -> str | None:
    """An Aurora or ElastiCache class from the catalogue's lists (the pattern check reports a malformed one)."""
    if not re.match(meta["pattern"][0], value):
        return None
    return instance_types.unknown_class(value, meta["service_class"])


def _cidr_problem(value: str) -> str | None:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        return f"is not a valid IPv4 CIDR block ({exc}); use the form 10.1.0.0/16"
    if net.version != 4:
        return "must be an IPv4 CIDR block such as 10.1.0.0/16"
    if not 16 <= net.prefixlen <= 28:
        return "must have a prefix length between /16 and /28 (the range AWS allows for VPCs and subnets)"
    return None




def parameters() -> list[tuple[str, str, str]]:
    """(key, default, description) for every parameter; used to keep the README's table honest."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type, path: str, defaults: Any = None) -> None:
        """`defaults`: the enclosing field's default instance (a nested section may differ from its class)."""
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f"{path}.{camel(f.name)}"
            hint = hints[f.name]
            if not f.metadata.get("required"):
                value = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
                value = getattr(defaults, f.name) if defaults is not None else value
            if dataclasses.is_dataclass(hint) and not f.metadata.get("required") and hint is not Container:
                walk(hint, key, value)
                continue
            default = "(required)" if f.metadata.get("required") else json.dumps(_plain(value))
            if dataclasses.is_dataclass(hint) and f.metadata.get("required"):
                walk(hint, key)
                continue
            rows.append((key, default, f.metadata["doc"]))

    walk(Config, CONTEXT_KEY)
    return rows


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {camel(f.name): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
