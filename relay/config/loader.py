"""`load_config` (sources -> handlers -> checks), reload, the loggable summary and `--help`.

See the `relay.config` package docstring for the sources, their precedence and the key rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from relay.config import handlers as _handlers  # noqa: F401  (registers the key handlers)
from relay.config.builder import HANDLERS, Builder, generic
from relay.config.checks import finish
from relay.config.keys import ENV_CONFIG, KEY_INDEX, KEYS, Action
from relay.config.model import RelayConfig
from relay.config.sources import Entry, Problem, parse_arguments, parse_config_text, parse_environment, read_file
from relay.ops.logs import register_secret

# Fields that a reload may change while sessions continue; everything else needs a restart.
RELOADABLE_FIELDS = frozenset(
    {
        "auth_secrets",
        "auth_secret_file",
        "static_users",
        "nonce_lifetime",
        "unauthenticated_rate",
        "unauthenticated_burst",
        "rest_ms_timestamp_ttl",
        "allowed_peers",
        "denied_peers",
        "allowed_peers_file",
        "allow_loopback_peers",
        "total_quota",
        "user_quota",
        "max_bps",
        "max_permissions",
        "max_channels",
        "cert_file",
        "key_file",
        "drain_timeout",
        "drain_min_allocations",
        "log_level",
        "log_format",
        "ignored_keys",
    }
)


@dataclass
class LoadResult:
    config: RelayConfig | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    action: Action = "run"
    config_file: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and (self.config is not None or self.action in ("help", "version"))

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2

    def report(self) -> str:
        """What `--check-config` prints: errors, warnings, notes, then OK or the error count."""
        lines = [f"error: {p}" for p in self.errors]
        lines += [f"warning: {p}" for p in self.warnings]
        lines += [f"note: {p}" for p in self.notes]
        lines.append("OK" if self.ok else f"{len(self.errors)} error(s); the relay would not start")
        return "\n".join(lines)


def _resolve(*sources: list[Entry]) -> tuple[dict[str, list[Entry]], list[Problem]]:
    """Per key, the entries of the highest-precedence source (sources are given lowest first)."""
    resolved: dict[str, list[Entry]] = {}
    problems: list[Problem] = []
    for entries in sources:
        fresh: dict[str, list[Entry]] = {}
        for entry in entries:
            fresh.setdefault(entry.key, []).append(entry)
        for key, group in fresh.items():
            spec = KEY_INDEX[key]
            if not spec.repeatable and len(group) > 1 and group[0].source == "file":
                earlier = ", ".join(e.where for e in group[:-1])
                problems.append(
                    Problem(group[-1].name, f"set more than once (also {earlier}); the last wins", group[-1].where)
                )
            resolved[key] = group
    return resolved, problems


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> LoadResult:
    """Parse and validate everything; never raises for bad input (see the module docstring)."""
    cli_entries, cli_file, action, cli_problems = parse_arguments(argv)
    if action in ("help", "version"):
        return LoadResult(None, action=action)
    env_entries, env_file, env_problems = parse_environment(environ)
    config_file = cli_file or env_file
    file_entries: list[Entry] = []
    file_problems: list[Problem] = []
    if config_file is not None:
        text, reason = read_file(config_file)
        if text is None:
            where = "-c" if cli_file else f"env {ENV_CONFIG}"
            file_problems.append(Problem("config", f"{config_file}: {reason}", where))
        else:
            file_entries, file_problems = parse_config_text(text, config_file)
    for entry in (*file_entries, *env_entries, *cli_entries):
        if KEY_INDEX[entry.key].secret and entry.value:
            register_secret(entry.value)
    resolved, duplicate_warnings = _resolve(file_entries, env_entries, cli_entries)
    builder = Builder(resolved)
    builder.errors.extend([*file_problems, *env_problems, *cli_problems])
    builder.warnings.extend(duplicate_warnings)
    for spec in KEYS:  # table order: deterministic, and "workers" precedes "relay-threads" checks
        entries = resolved.get(spec.name)
        if entries:
            HANDLERS.get(spec.name, generic)(builder, entries)
    config = finish(builder)
    return LoadResult(
        config, _in_order(builder.errors), _in_order(builder.warnings), _in_order(builder.notes), action, config_file
    )


def _in_order(problems: list[Problem]) -> list[Problem]:
    """File problems by line, then environment, then command line, then whole-config ones."""

    def position(problem: Problem) -> tuple[int, str, int]:
        where = problem.where
        path, _, line = where.rpartition(":")
        if path and line.isdigit():
            return (0, path, int(line))
        if where.startswith("env "):
            return (1, where, 0)
        return (2, "", 0) if where else (3, "", 0)  # command line (in argv order), then global

    return sorted(problems, key=position)


def apply_reload(current: RelayConfig, new: RelayConfig) -> tuple[RelayConfig, tuple[str, ...]]:
    """(config to use now, changed fields that only a restart applies)."""
    changes = {name: getattr(new, name) for name in RELOADABLE_FIELDS}
    restart = tuple(
        f.name
        for f in dataclasses.fields(RelayConfig)
        if f.name not in RELOADABLE_FIELDS and getattr(current, f.name) != getattr(new, f.name)
    )
    return dataclasses.replace(current, **changes), restart


def config_summary(config: RelayConfig) -> dict[str, object]:
    """A loggable view of the config (log it as fields): secrets become counts, networks strings."""
    summary: dict[str, object] = {}
    for f in dataclasses.fields(RelayConfig):
        value = getattr(config, f.name)
        # Names avoid "secret"/"password": relay.ops.logs redacts such fields, which would hide these facts.
        if f.name == "auth_secrets":
            summary["rest_api_key_count"] = len(value)
        elif f.name == "auth_secret_file":
            summary["rest_api_key_file"] = value
        elif f.name == "static_users":
            summary["static_user_names"] = [name for name, _ in value]
        elif f.name == "nonce_secret":
            summary["nonce_key_configured"] = value is not None
        elif f.name == "listeners":
            summary["listeners"] = [
                f"{x.transport}{'+proxy' if x.proxy_protocol else ''}://{x.host}:{x.port}" for x in value
            ]
        elif f.name in ("allowed_peers", "denied_peers"):
            summary[f.name] = [str(n) for n in value]
        else:
            summary[f.name] = value
    return summary


def key_table() -> list[tuple[str, str, str]]:
    """(key, status, explanation) for every recognised key, in documentation order."""
    return [(spec.name, spec.status, spec.text) for spec in KEYS]


def help_text(prog: str = "bbb-turn-relay") -> str:
    lines = [
        f"usage: {prog} [-c FILE] [--check-config] [--version] [--KEY[=VALUE] ...]",
        "",
        "Reads coturn's turnserver.conf keys from FILE, BBB_TURN_RELAY_<KEY> environment variables and",
        "--KEY=VALUE flags (flags win over the environment, which wins over the file).",
        "",
        "Supported keys:",
    ]
    for spec in KEYS:
        if spec.status == "supported":
            lines.append(f"  --{spec.name:<28} {spec.text}")
    lines.append("")
    lines.append("Other coturn keys are recognised: harmless ones are ignored with a warning, ones whose")
    lines.append("absence would weaken security or change what clients see are errors. --check-config lists them.")
    return "\n".join(lines)
