"""Two deployments with different environment names in one account and region must not collide."""

from __future__ import annotations

import json
import re

from tests.infra.synth import synth

# Properties that set a physical name that must be unique per account/region (or globally). Inline
# PolicyName is left out: it is scoped to its role.
NAME_PROPERTIES = re.compile(
    r'"(BucketName|FunctionName|RoleName|ManagedPolicyName|LogGroupName|TopicName|QueueName|Name|'
    r'ClusterName|ServiceName|Family|TableName|AlarmName|RuleName|StateMachineName|AutoScalingGroupName|'
    r'LaunchTemplateName|DBClusterIdentifier|DBInstanceIdentifier|ReplicationGroupId|CacheClusterId|'
    r'LoadBalancerName|TargetGroupName|SecretName|ParameterName|Export)"\s*:\s*("[^"]*"|\{[^{}]*\})'
)


# Properties that match NAME_PROPERTIES but name no resource (a parameter group's engine family).
NOT_NAMES = {"AWS::RDS::DBClusterParameterGroup": {"Family"}, "AWS::RDS::DBParameterGroup": {"Family"}}


def physical_names(result):
    names = {}
    for stack, template in result.templates().items():
        for resource in template.get("Resources", {}).values():
            skip = NOT_NAMES.get(resource["Type"], set())
            props = {k: v for k, v in resource.get("Properties", {}).items() if k not in skip}
            for key, value in NAME_PROPERTIES.findall(json.dumps(props)):
                names.setdefault((key, value), stack)
        for key, value in NAME_PROPERTIES.findall(json.dumps(template.get("Outputs", {}))):
            names.setdefault((key, value), stack)
    return names


def test_two_environments_share_no_stack_name_or_physical_name():
    first = synth("scalable", "prod", **{"environment.name": "school-a", "domain.name": "a.example.com"})
    second = synth("scalable", "prod", **{"environment.name": "school-b", "domain.name": "b.example.com"})
    assert not set(first.stack_names()) & set(second.stack_names())
    shared = set(physical_names(first)) & set(physical_names(second))
    # Identical *token* names are fine only if they resolve per stack (Ref/GetAtt/Join with the stack name).
    literal_collisions = {(k, v) for k, v in shared if v.startswith('"')}
    assert literal_collisions == set()


def test_stack_names_carry_the_environment_name():
    result = synth("scalable", "dev", **{"environment.name": "uni-x"})
    assert result.stack_names() and all(name.startswith("uni-x-") for name in result.stack_names())
