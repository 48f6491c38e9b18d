"""Secret values from Secrets Manager, cached a few minutes per container (Powertools parameters).

Values never enter logs, state machine state or error messages; only ARNs travel.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities import parameters

CACHE_SECONDS = 300


class SecretError(RuntimeError):
    pass


def secret_string(arn: str) -> str:
    try:
        value = parameters.get_secret(arn, max_age=CACHE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        raise SecretError(f"cannot read secret {arn}: {exc}") from None
    if not isinstance(value, str) or not value.strip():
        raise SecretError(f"secret {arn} is empty or binary; it must hold the plain string value")
    return value.strip()
