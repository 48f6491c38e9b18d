"""The DNS-01 TXT record `_acme-challenge.<subdomain>` in Route 53: published, waited for, removed.

Route 53 reports a change INSYNC once every authoritative name server of the zone serves it, which is
what the CA queries; so no fixed "propagation" sleep is needed. The record is UPSERTed (a record left by a
crashed run is replaced, not an error) and deleted with exactly the values written.
"""

from __future__ import annotations

from botocore.exceptions import ClientError, WaiterError
from common import aws

CHALLENGE_LABEL = "_acme-challenge"
TTL = 60
# Route 53 changes are usually INSYNC within 60 s; 5 min leaves room for a slow propagation.
WAIT_DELAY_SECONDS = 10
WAIT_ATTEMPTS = 30


class DnsError(RuntimeError):
    """The challenge record cannot be written where the CA looks for it."""


def challenge_name(domain: str) -> str:
    """`_acme-challenge.<domain>`; for `*.<domain>` the CA validates `<domain>` (RFC 8555 section 8.4)."""
    return f"{CHALLENGE_LABEL}.{domain.removeprefix('*.')}".lower()


class ChallengeRecords:
    def __init__(self, hosted_zone_id: str) -> None:
        self.zone_id = hosted_zone_id
        self._r53 = aws.client("route53")

    def check_zone_holds(self, name: str) -> None:
        """Refuse before any order when the configured zone cannot hold `name` (it is not below the zone)."""
        try:
            zone = self._r53.get_hosted_zone(Id=self.zone_id)["HostedZone"]["Name"].rstrip(".").lower()
        except ClientError as exc:
            raise DnsError(
                f"cannot read hosted zone {self.zone_id}: {aws.error_code(exc)} {aws.error_message(exc)}"
            ) from None
        if name != zone and not name.endswith("." + zone):
            raise DnsError(
                f"hosted zone {self.zone_id} is {zone}, which cannot hold {name}; the certificate's subdomain "
                "must be inside the deployment's hosted zone (domain.hostedZoneId / domain.name)"
            )

    def publish(self, name: str, values: list[str]) -> None:
        self._change("UPSERT", name, values)

    def remove(self, name: str, values: list[str]) -> None:
        """Delete the record exactly as written (Route 53 refuses a DELETE whose values differ)."""
        self._change("DELETE", name, values, wait=False)

    def _change(self, action: str, name: str, values: list[str], *, wait: bool = True) -> None:
        record = {
            "Name": name,
            "Type": "TXT",
            "TTL": TTL,
            "ResourceRecords": [{"Value": f'"{value}"'} for value in sorted(set(values))],
        }
        try:
            change = self._r53.change_resource_record_sets(
                HostedZoneId=self.zone_id,
                ChangeBatch={
                    "Comment": "bbb-on-aws certificate issuer: ACME DNS-01",
                    "Changes": [{"Action": action, "ResourceRecordSet": record}],
                },
            )
        except ClientError as exc:
            raise DnsError(
                f"Route 53 refused to {action} TXT {name} in zone {self.zone_id}: "
                f"{aws.error_code(exc)} {aws.error_message(exc)}"
            ) from None
        if not wait:
            return
        try:
            self._r53.get_waiter("resource_record_sets_changed").wait(
                Id=change["ChangeInfo"]["Id"],
                WaiterConfig={"Delay": WAIT_DELAY_SECONDS, "MaxAttempts": WAIT_ATTEMPTS},
            )
        except WaiterError as exc:
            raise DnsError(
                f"TXT {name} in zone {self.zone_id} was not INSYNC within {WAIT_DELAY_SECONDS * WAIT_ATTEMPTS} s: {exc}"
            ) from None
