"""cdk-nag (AwsSolutions) acknowledgments, kept next to the resources they concern.

cdk-nag 3 needs the plugin-prefixed, exact finding id (`AwsSolutions::AwsSolutions-IAM5[Resource::*]`);
a bare rule id is silently ignored, so this helper always adds the prefix and insists on a reason.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one AwsSolutions finding (e.g. "IAM5[Resource::*]") on `scope` and its children."""
    if len(reason) < 20:
        raise ValueError(f"cdk-nag acknowledgment of {finding} needs a real reason, got {reason!r}")
    finding_id = finding if finding.startswith("AwsSolutions::") else f"AwsSolutions::AwsSolutions-{finding}"
    Validations.of(scope).acknowledge(Acknowledgment(id=finding_id, reason=reason))
