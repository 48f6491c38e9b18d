"""The BBB fleet's wildcard certificate (README.md)."""

from cdk_constructs.certificates.fleet_certificate import FleetCertificate

__all__ = ["FleetCertificate"]
