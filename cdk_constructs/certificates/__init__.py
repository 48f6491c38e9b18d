"""The BBB fleet's wildcard certificate (README.md)."""

from cdk_constructs.certificates.fleet_certificate import LETS_ENCRYPT, LETS_ENCRYPT_STAGING, FleetCertificate

__all__ = ["LETS_ENCRYPT", "LETS_ENCRYPT_STAGING", "FleetCertificate"]
