"""The functions' settings, read from the environment the FleetLifecycle construct sets.

Read on every invocation (it is cheap) so that nothing stale survives between invocations; a missing or
malformed variable raises ConfigurationError naming the variable and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from common import names


class ConfigurationError(RuntimeError):
    """The function was deployed without a setting it needs."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, default)
    if value is not None:
        value = value.strip()
    return value or None


def _required(name: str) -> str:
    value = _env(name)
    if value is None:
        raise ConfigurationError(
            f"environment variable {name} is not set; it is set by the FleetLifecycle construct, "
            "so redeploy the stack instead of editing the function by hand"
        )
    return value


def _seconds(name: str, default: int | None, minimum: int = 1) -> int:
    """A whole number from the environment; `default` None: required (set by the construct from contract.py)."""
    raw = _env(name, None if default is None else str(default))
    if raw is None:
        _required(name)
    try:
        value = int(str(raw))
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number of seconds") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={value} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    environment: str
    role: str
    group: str
    domain: str
    hosted_zone_id: str
    namespace: str
    launch_hook: str
    terminate_hook: str
    scalelite_api_url: str | None
    scalelite_secret_arn: str | None
    bbb_secret_arn: str | None
    operator_topic_arn: str | None
    launch_state_machine_arn: str | None
    drain_state_machine_arn: str | None
    launch_max_seconds: int
    drain_max_seconds: int
    heartbeat_interval_seconds: int
    unreachable_after_checks: int
    turn_port: int
    probe_timeout_seconds: float
    bbb_api_url_template: str

    def need(self, field: str) -> str:
        """A setting that only some roles or functions use; raises if this function lacks it."""
        value = getattr(self, field)
        if not value:
            raise ConfigurationError(
                f"{field.upper()} is required by this function (role {self.role}) but is not set; "
                "pass it to the FleetLifecycle construct and redeploy"
            )
        return str(value)

    def bbb_api_base(self, host: str) -> str:
        """Where this function reaches a BBB host's API (the URL Scalelite uses, unless overridden)."""
        return self.bbb_api_url_template.format(host=host)


def load() -> Settings:
    environment = _required("ENVIRONMENT_NAME")
    role = _required("FLEET_ROLE")
    if role not in names.ROLES:
        raise ConfigurationError(f"FLEET_ROLE={role!r} is not one of {', '.join(names.ROLES)}")
    try:
        domain = names.normalize_domain(_required("DOMAIN_NAME"))
    except names.ContractNameError as exc:
        raise ConfigurationError(f"DOMAIN_NAME: {exc}") from None
    probe_timeout = _env("PROBE_TIMEOUT_SECONDS", "1.0")
    try:
        probe_timeout_value = float(str(probe_timeout))
    except ValueError:
        raise ConfigurationError(f"PROBE_TIMEOUT_SECONDS={probe_timeout!r} is not a number") from None
    template = _env("BBB_API_URL_TEMPLATE", "https://{host}/bigbluebutton/api")
    if "{host}" not in str(template):
        raise ConfigurationError(f"BBB_API_URL_TEMPLATE={template!r} must contain {{host}}")
    return Settings(
        environment=environment,
        role=role,
        group=_required("AUTO_SCALING_GROUP_NAME"),
        domain=domain,
        hosted_zone_id=_required("HOSTED_ZONE_ID").split("/")[-1],
        namespace=_env("METRICS_NAMESPACE") or names.metric_namespace(environment),
        launch_hook=_required("LAUNCH_HOOK_NAME"),
        terminate_hook=_required("TERMINATE_HOOK_NAME"),
        scalelite_api_url=_env("SCALELITE_API_URL"),
        scalelite_secret_arn=_env("SCALELITE_SECRET_ARN"),
        bbb_secret_arn=_env("BBB_SECRET_ARN"),
        operator_topic_arn=_env("OPERATOR_TOPIC_ARN"),
        launch_state_machine_arn=_env("LAUNCH_STATE_MACHINE_ARN"),
        drain_state_machine_arn=_env("DRAIN_STATE_MACHINE_ARN"),
        launch_max_seconds=_seconds("LAUNCH_MAX_SECONDS", 45 * 60),
        drain_max_seconds=_seconds("DRAIN_MAX_SECONDS", 4 * 3600),
        heartbeat_interval_seconds=_seconds("HEARTBEAT_INTERVAL_SECONDS", 600),
        unreachable_after_checks=_seconds("UNREACHABLE_AFTER_CHECKS", 3),
        turn_port=_seconds("TURN_PORT", None),  # contract.TURN_PORT, passed by FleetLifecycle
        probe_timeout_seconds=probe_timeout_value,
        bbb_api_url_template=str(template),
    )
