"""AWS clients of `status`, `drain` and `probe --discover`, created on first use for the deployment's region."""

from __future__ import annotations

from typing import Any


class Clients:
    """The AWS clients status and drain use; tests pass moto-backed or Stubber-wrapped clients."""

    def __init__(self, region: str, **given: Any) -> None:
        self.region = region
        self._given = given

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._given:
            import boto3

            self._given[service] = boto3.client(service, region_name=self.region)
        return self._given[service]
