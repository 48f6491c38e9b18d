"""Two deployments with different environment names in one account and region must not collide."""

from __future__ import annotations

import json

from tests.infra.synth import synth

# Properties that set a physical name that must be unique per account/region (or globally). Inline
# PolicyName is left out: it is scoped to its role.
NAME_PROPERTIES = frozenset({
    "BucketName", "FunctionName", "RoleName", "ManagedPolicyName", "LogGroupName", "TopicName", "QueueName", "Name",
    "ClusterName", "ServiceName", "Family", "TableName", "AlarmName", "RuleName", "StateMachineName",
    "AutoScalingGroupName", "LaunchTemplateName", "DBClusterIdentifier", "DBInstanceIdentifier",
    "ReplicationGroupId", "CacheClusterId", "LoadBalancerName", "TargetGroupName", "SecretName", "ParameterName",
})


# Properties in NAME_PROPERTIES that name no resource (a parameter group's engine family).
NOT_NAMES = {"AWS::RDS::DBClusterParameterGroup": {"Family"}, "AWS::RDS::DBParameterGroup": {"Family"}}


def physical_names(result):
    """(property, JSON value) of every physical name: a resource's top-level name property or an export.

    Only top-level properties name a resource; nested `Name`s (container names, environment variables, tags)
    live inside their resource and cannot collide across deployments.
    """
    names = {}
    for stack, template in result.templates().items():
        for resource in template.get("Resources", {}).values():
            skip = NOT_NAMES.get(resource["Type"], set())
            for key, value in resource.get("Properties", {}).items():
                if key in NAME_PROPERTIES and key not in skip:
                    names.setdefault((key, json.dumps(value)), stack)
        for output in template.get("Outputs", {}).values():
            if "Export" in output:
                names.setdefault(("Export", json.dumps(output["Export"]["Name"])), stack)
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
