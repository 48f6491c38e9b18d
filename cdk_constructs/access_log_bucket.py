"""An encrypted, private S3 bucket for load balancer access logs (the ALBs' and the TURN NLB's), kept as long
as the stage keeps logs."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct

from cdk_constructs.nag import acknowledge
from settings import Deployment


def access_log_bucket(scope: Construct, construct_id: str, *, deployment: Deployment) -> s3.Bucket:
    # SSE-S3: ELB log delivery cannot write with a customer-managed KMS key it has no grant on.
    dev = not deployment.is_production_like
    bucket = s3.Bucket(
        scope, construct_id,
        encryption=s3.BucketEncryption.S3_MANAGED,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforce_ssl=True,
        versioned=False,
        lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(deployment.log_retention_days))],
        removal_policy=RemovalPolicy.DESTROY if dev else RemovalPolicy.RETAIN,
        auto_delete_objects=dev,  # dev: data is destroyed with the stack (stage rules)
    )
    acknowledge(bucket, "S1", "This bucket receives access logs itself; logging its own accesses would add a "
                              "second log bucket for no operational gain.")
    return bucket
