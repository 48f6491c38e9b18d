"""The one Auto Scaling update policy every group of this project uses: a deploy keeps the running size."""

from __future__ import annotations

from aws_cdk import Annotations, CfnAutoScalingScheduledAction, CfnUpdatePolicy
from aws_cdk import aws_autoscaling as autoscaling


def keep_running_size(group: autoscaling.AutoScalingGroup, *, why: str) -> None:
    """IgnoreUnmodifiedGroupSizeProperties: the configured sizes apply when the group is created and when the
    operator changes them; any other deploy leaves the size that scaling chose. `why` acknowledges CDK's
    desiredCapacitySet warning for this group."""
    cfn_group = group.node.default_child
    assert isinstance(cfn_group, autoscaling.CfnAutoScalingGroup)
    cfn_group.cfn_options.update_policy = CfnUpdatePolicy(
        auto_scaling_scheduled_action=CfnAutoScalingScheduledAction(ignore_unmodified_group_size_properties=True)
    )
    Annotations.of(group).acknowledge_warning("@aws-cdk/aws-autoscaling:desiredCapacitySet", why)
