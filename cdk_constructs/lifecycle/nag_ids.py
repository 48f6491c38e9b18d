"""cdk-nag finding ids for resources that contain tokens.

cdk-nag 3 only honours exact finding ids, and an IAM5 id spells the offending resource the way cdk-nag
prints CloudFormation intrinsics (`<LogicalId.Arn>`, `<AWS::Region>`, `Fn::Join` flattened). This renders
a token-bearing string the same way, so an acknowledgment can name exactly one resource.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from constructs import IConstruct


def render(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(render(v) for v in value)
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return f"<{arg}>"
        if key == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if key == "Fn::Join":
            return str(arg[0]).join(render(v) for v in arg[1])
    raise ValueError(f"cannot render {value!r} the way cdk-nag does")


def resource_finding(scope: IConstruct, rule: str, resource: str) -> str:
    """E.g. IAM5[Resource::arn:<AWS::Partition>:...] for a resource string that may hold tokens."""
    return f"{rule}[Resource::{render(Stack.of(scope).resolve(resource))}]"


def action_finding(rule: str, action: str) -> str:
    return f"{rule}[Action::{action}]"
