"""The operator's notification topic: the deployment's one (shared stack) and, when SES lives in another
region, that region's own for SES's alarms (an alarm notifies a topic of its own region only)."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


def operator_topic(scope: Construct, *, prefix: str, email: str) -> sns.Topic:
    """An SNS topic mailing `email`, which this account's CloudWatch alarms and EventBridge rules publish to.

    Encrypted with our own key: the AWS-managed SNS key's policy cannot be extended, so CloudWatch alarms
    and EventBridge rules could not publish to a topic encrypted with it. The key and the topic are made
    directly in `scope` (ids OperatorTopicKey, OperatorTopic)."""
    key = kms.Key(
        scope,
        "OperatorTopicKey",
        description=f"Encrypts the operator notification topic of {prefix}",
        enable_key_rotation=True,
        pending_window=Duration.days(7),
        removal_policy=RemovalPolicy.DESTROY,  # protects messages in flight only; nothing to keep
    )
    publishers = [iam.ServicePrincipal("cloudwatch.amazonaws.com"), iam.ServicePrincipal("events.amazonaws.com")]
    # What AWS documents for alarms/rules publishing to an SSE-KMS topic: the service needs a data key.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AlarmsAndRulesPublishToEncryptedTopic",
            principals=publishers,  # type: ignore[arg-type]
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],  # in a key policy, "*" is this key
        )
    )
    topic = sns.Topic(scope, "OperatorTopic", display_name=f"BBB {prefix}", master_key=key, enforce_ssl=True)
    # The topic policy replaces SNS's default one, so the publishers of this account are allowed explicitly.
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="AlarmsAndRulesOfThisAccountPublish",
            principals=publishers,  # type: ignore[arg-type]
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
        )
    )
    topic.add_subscription(subscriptions.EmailSubscription(email))
    return topic
