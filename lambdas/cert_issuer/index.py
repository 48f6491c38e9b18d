"""Fleet certificate issuer (scheduled, twice a day; or invoked by an operator).

Events:
- the EventBridge schedule (any event without "action"), or `{"action": "renew"}`: renew when due
  (`{"action": "renew", "force": true}` renews now);
- `{"action": "revoke", "reason": "keyCompromise"}`: revoke the stored certificate at the CA and store a
  new one (reasons: issuer.REVOCATION_REASONS);
- a custom resource event (the stack's FirstIssuance, through the CDK Provider framework): Create/Update
  issue unless a valid certificate is stored; Delete does nothing.

Every invocation, failed ones included, publishes DaysToExpiry{Subdomain} of the certificate stored at the
end (EMF through Powertools Metrics), which the 20-day alarm watches; a failure also raises, for the
function's Errors alarm.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from common import observability
from common.custom_resource import CustomResource, Request, Result

from cert_issuer import issuer, store

logger, metrics = observability.tools()

METRIC = "DaysToExpiry"


class ConfigurationError(RuntimeError):
    """The function was deployed without a setting it needs."""


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(
            f"environment variable {name} is not set; the FleetCertificate construct sets it, "
            "so redeploy the stack instead of editing the function by hand"
        )
    return value


def settings() -> issuer.IssuerSettings:
    renew_days = _env("RENEW_DAYS")
    if not renew_days.isdigit() or not 1 <= int(renew_days) <= 60:
        raise ConfigurationError(f"RENEW_DAYS={renew_days!r} must be a whole number of days from 1 to 60")
    return issuer.IssuerSettings(
        directory_url=_env("ACME_DIRECTORY_URL"),
        subdomain=_env("SUBDOMAIN"),
        hosted_zone_id=_env("HOSTED_ZONE_ID"),
        email=_env("ACME_EMAIL"),
        account_secret_arn=_env("ACCOUNT_SECRET_ARN"),
        certificate_secret_arn=_env("CERTIFICATE_SECRET_ARN"),
        renew_days=int(renew_days),
    )


def _first_issuance(request: Request) -> Result:
    """Create/Update of the stack's FirstIssuance resource: issue now unless a valid certificate is stored, so
    no BBB server boots without one and a wrong setting fails the deployment with the issuer's error."""
    config = settings()
    outcome = issuer.run(config)
    return {
        "PhysicalResourceId": f"fleet-certificate:{config.subdomain}",
        "Data": {"Serial": outcome.certificate.serial, "NotAfter": outcome.certificate.not_after.isoformat()},
    }


def _keep(request: Request) -> Result:
    """Delete: nothing to undo (the secrets go with the stack, by its removal policy)."""
    return {"PhysicalResourceId": request.physical_id}


first_issuance = CustomResource(create=_first_issuance, delete=_keep, logger=logger)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    payload = event if isinstance(event, dict) else {}
    try:
        if "RequestType" in payload:  # the deploy-time custom resource (Provider framework)
            return first_issuance(payload, context)
        action = payload.get("action", "renew")
        if action == "renew":
            outcome = issuer.run(config, force="forced by the operator" if payload.get("force") is True else None)
        elif action == "revoke":
            outcome = issuer.revoke_and_replace(config, reason=str(payload.get("reason", "")))
        else:
            raise ValueError(f'unknown action {action!r}; use {{"action": "renew"}} or {{"action": "revoke"}}')
    finally:
        _publish_days_left(config)
    result = {
        "action": outcome.action,
        "reason": outcome.reason,
        "serial": outcome.certificate.serial,
        "notAfter": outcome.certificate.not_after.isoformat(),
    }
    logger.info("certificate checked", extra=result)
    return result


def _publish_days_left(config: issuer.IssuerSettings) -> None:
    """What the hosts have now: the stored certificate, whether or not this invocation renewed it."""
    try:
        stored = store.load_certificate(config.certificate_secret_arn)
    except store.StoreError as exc:
        logger.warning("no DaysToExpiry published", extra={"error": str(exc)})
        return
    if stored is None:
        return  # nothing issued yet: the alarm treats the missing value as breaching
    metrics.add_dimension(name="Subdomain", value=config.subdomain)
    days = stored.days_left(dt.datetime.now(dt.timezone.utc))
    metrics.add_metric(name=METRIC, unit=MetricUnit.Count, value=round(days, 2))
