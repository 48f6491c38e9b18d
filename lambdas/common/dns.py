"""Route 53: the per-instance A records, the weighted TURN records and their CloudWatch-alarm health checks.

Every change is convergent: records are UPSERTed or deleted exactly as they currently are (read first), and
health checks are found by tag before one is created, so replaying any step changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from common import aws, names


@dataclass(frozen=True)
class Record:
    name: str  # without trailing dot
    type: str
    ttl: int | None
    values: tuple[str, ...]
    set_identifier: str | None
    weight: int | None
    health_check_id: str | None
    is_alias: bool
    raw: dict[str, Any]

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Record:
        return cls(
            name=_plain(raw["Name"]),
            type=raw["Type"],
            ttl=raw.get("TTL"),
            values=tuple(item["Value"] for item in raw.get("ResourceRecords", [])),
            set_identifier=raw.get("SetIdentifier"),
            weight=raw.get("Weight"),
            health_check_id=raw.get("HealthCheckId"),
            is_alias="AliasTarget" in raw,
            raw=raw,
        )


def _plain(name: str) -> str:
    return name.rstrip(".").lower().replace("\\052", "*")


class Zone:
    def __init__(self, zone_id: str, domain: str) -> None:
        self.zone_id = zone_id
        self.domain = names.normalize_domain(domain)
        self._r53 = aws.client("route53")

    def records(self) -> Iterator[Record]:
        """Every record set of the zone."""
        paginator = self._r53.get_paginator("list_resource_record_sets")
        for page in paginator.paginate(HostedZoneId=self.zone_id):
            for raw in page["ResourceRecordSets"]:
                yield Record.from_api(raw)

    def records_named(self, name: str, record_type: str = "A") -> list[Record]:
        name = _plain(name)
        found: list[Record] = []
        kwargs: dict[str, Any] = {"HostedZoneId": self.zone_id, "StartRecordName": name, "StartRecordType": record_type}
        while True:
            page = self._r53.list_resource_record_sets(**kwargs)
            for raw in page["ResourceRecordSets"]:
                record = Record.from_api(raw)
                if record.name != name or record.type != record_type:
                    return found
                found.append(record)
            if not page.get("IsTruncated"):
                return found
            kwargs = {
                "HostedZoneId": self.zone_id,
                "StartRecordName": page["NextRecordName"],
                "StartRecordType": page["NextRecordType"],
            }
            if page.get("NextRecordIdentifier"):
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def simple_a(self, name: str) -> Record | None:
        for record in self.records_named(name):
            if record.set_identifier is None and not record.is_alias:
                return record
        return None

    def _change(self, changes: list[dict[str, Any]], comment: str) -> None:
        self._r53.change_resource_record_sets(
            HostedZoneId=self.zone_id, ChangeBatch={"Comment": comment[:256], "Changes": changes}
        )

    def upsert_a(self, name: str, ip: str, *, ttl: int = names.RECORD_TTL, comment: str) -> None:
        rrset = {"Name": _plain(name), "Type": "A", "TTL": ttl, "ResourceRecords": [{"Value": ip}]}
        self._change([{"Action": "UPSERT", "ResourceRecordSet": rrset}], comment)

    def delete(self, records: list[Record], *, comment: str) -> int:
        """Delete these record sets exactly as read; a set changed or removed meanwhile is re-read once."""
        if not records:
            return 0
        try:
            self._change([{"Action": "DELETE", "ResourceRecordSet": r.raw} for r in records], comment)
            return len(records)
        except ClientError as exc:
            if aws.error_code(exc) != "InvalidChangeBatch":
                raise
        deleted = 0
        for record in records:  # one by one: only what still exists, as it now is
            current = [
                r for r in self.records_named(record.name, record.type) if r.set_identifier == record.set_identifier
            ]
            if current:
                self._change([{"Action": "DELETE", "ResourceRecordSet": current[0].raw}], comment)
                deleted += 1
        return deleted

    def delete_a(self, name: str, *, only_if_value: str | None = None, comment: str) -> bool:
        """Delete the simple A record `name`; with only_if_value, only while it still points there (a newer
        instance may own the name by now)."""
        record = self.simple_a(name)
        if record is None:
            return False
        if only_if_value is not None and record.values != (only_if_value,):
            return False
        return self.delete([record], comment=comment) > 0

    def upsert_weighted(self, name: str, set_identifier: str, ip: str, health_check_id: str, *, comment: str) -> None:
        rrset = {
            "Name": _plain(name),
            "Type": "A",
            "TTL": names.RECORD_TTL,
            "SetIdentifier": set_identifier,
            "Weight": names.TURN_WEIGHT,
            "HealthCheckId": health_check_id,
            "ResourceRecords": [{"Value": ip}],
        }
        self._change([{"Action": "UPSERT", "ResourceRecordSet": rrset}], comment)

    def weighted(self, name: str) -> list[Record]:
        return [r for r in self.records_named(name) if r.set_identifier is not None]

    def delete_weighted(self, name: str, set_identifier: str, *, comment: str) -> bool:
        mine = [r for r in self.weighted(name) if r.set_identifier == set_identifier]
        return self.delete(mine, comment=comment) > 0


class HealthChecks:
    """CLOUDWATCH_METRIC health checks, one per TURN instance, tagged so the reconciler can find them."""

    def __init__(self, environment: str) -> None:
        self.environment = environment
        self._r53 = aws.client("route53")

    def by_instance(self) -> dict[str, list[str]]:
        """instance id -> health check ids, for this environment's probe health checks."""
        ids: list[str] = []
        paginator = self._r53.get_paginator("list_health_checks")
        for page in paginator.paginate():
            ids.extend(
                hc["Id"] for hc in page["HealthChecks"] if hc["HealthCheckConfig"]["Type"] == "CLOUDWATCH_METRIC"
            )
        found: dict[str, list[str]] = {}
        for start in range(0, len(ids), 10):  # the API takes at most 10 ids
            chunk = ids[start : start + 10]
            response = self._r53.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=chunk)
            for tag_set in response["ResourceTagSets"]:
                tags = {t["Key"]: t["Value"] for t in tag_set.get("Tags", [])}
                if tags.get(names.TAG_ENVIRONMENT) == self.environment and names.TAG_INSTANCE_ID in tags:
                    found.setdefault(tags[names.TAG_INSTANCE_ID], []).append(tag_set["ResourceId"])
        return found

    def ensure(self, instance_id: str, launch_time: str, alarm_name: str, region: str) -> str:
        existing = self.by_instance().get(instance_id)
        if existing:
            return sorted(existing)[0]
        try:
            created = self._r53.create_health_check(
                CallerReference=names.health_check_caller_reference(self.environment, instance_id, launch_time),
                HealthCheckConfig={
                    "Type": "CLOUDWATCH_METRIC",
                    "AlarmIdentifier": {"Region": region, "Name": alarm_name},
                    # No data yet (new instance, not probed) keeps it out of rotation.
                    "InsufficientDataHealthStatus": "Unhealthy",
                },
            )
        except ClientError as exc:
            if aws.error_code(exc) != "HealthCheckAlreadyExists":
                raise
            # A replay with the same settings gets the existing check back (Route 53 is idempotent on
            # CallerReference); this error means the reference was used with other settings or deleted.
            raise RuntimeError(
                f"Route 53 refuses the health check caller reference of {instance_id} (launched {launch_time}): "
                "it was used with other settings or its health check was deleted; this instance launch "
                "cannot get a new one, let Auto Scaling replace the instance"
            ) from exc
        health_check_id = created["HealthCheck"]["Id"]
        self._r53.change_tags_for_resource(
            ResourceType="healthcheck",
            ResourceId=health_check_id,
            AddTags=[
                {"Key": names.TAG_ENVIRONMENT, "Value": self.environment},
                {"Key": names.TAG_INSTANCE_ID, "Value": instance_id},
                {"Key": "Name", "Value": f"bbb-on-aws {self.environment} TURN {instance_id}"},
            ],
        )
        return health_check_id

    def delete(self, health_check_id: str) -> bool:
        try:
            self._r53.delete_health_check(HealthCheckId=health_check_id)
            return True
        except ClientError as exc:
            if aws.error_code(exc) == "NoSuchHealthCheck":
                return False
            raise
