"""cdk-nag finding ids for resources that contain tokens.

cdk-nag 3 only honours exact finding ids, and an IAM5 id spells the offending resource the way cdk-nag
prints CloudFormation intrinsics (`<LogicalId.Arn>`, `<AWS::Region>`, `Fn::Join` flattened). This renders
a token-bearing string the same way, so an acknowledgment can name exactly one resource.
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Stack
from constructs import IConstruct


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
