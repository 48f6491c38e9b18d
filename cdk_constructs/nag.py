"""cdk-nag (AwsSolutions) acknowledgments, kept next to the resources they concern.

cdk-nag 3 needs the plugin-prefixed, exact finding id (`AwsSolutions::AwsSolutions-IAM5[Resource::*]`);
a bare rule id is silently ignored, so `acknowledge` always adds the prefix and insists on a reason. An
IAM5 id spells the offending resource the way cdk-nag prints CloudFormation intrinsics (`<LogicalId.Arn>`,
`<AWS::Region>`, `Fn::Join` flattened); `resource_finding` renders a token-bearing string the same way, so
an acknowledgment names exactly one resource.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one AwsSolutions finding (e.g. "IAM5[Resource::*]") on `scope` and its children."""
    if len(reason) < 20:
        raise ValueError(f"cdk-nag acknowledgment of {finding} needs a real reason, got {reason!r}")
    finding_id = finding if finding.startswith("AwsSolutions::") else f"AwsSolutions::AwsSolutions-{finding}"
    Validations.of(scope).acknowledge(Acknowledgment(id=finding_id, reason=reason))


def render(value: Any) -> str:
    """cdk-nag 3's flattenCfnReference (lib/utils/flatten-cfn-reference.js), rule for rule."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict):
        if value.get("Fn::Join"):
            delimiter, items = value["Fn::Join"]
            return delimiter.join(render(item) for item in items)
        if value.get("Fn::Sub"):
            return render(value["Fn::Sub"])
        if value.get("Fn::GetAtt"):
            resource, attribute = value["Fn::GetAtt"]
            return f"<{render(resource)}.{render(attribute)}>"
        if value.get("Fn::ImportValue"):
            return render(value["Fn::ImportValue"])
        if value.get("Ref"):
            return f"<{render(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def resource_finding(scope: IConstruct, rule: str, resource: str) -> str:
    """E.g. IAM5[Resource::arn:<AWS::Partition>:...] for a resource string that may hold tokens."""
    return f"{rule}[Resource::{render(Stack.of(scope).resolve(resource))}]"


def action_finding(rule: str, action: str) -> str:
    return f"{rule}[Action::{action}]"
