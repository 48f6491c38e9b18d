"""Rotation of the TURN REST shared secret without refusing one credential BigBlueButton handed out.

Why this design:
- Secrets Manager's own rotation protocol (createSecret -> setSecret -> testSecret -> finishSecret) keeps three
  versions apart by staging label: AWSCURRENT (what BBB issues with), AWSPENDING (the new one during a rotation)
  and AWSPREVIOUS (the one just replaced). The relay accepts several secrets and reloads them on SIGHUP without
  touching live allocations (they keep the key they were created with), so every version in use can be
  accepted at once.
- Hosts learn of changes by polling, not by SSM Run Command from the Lambda: a timer on every TURN host
  (bbb-turn-relay-secrets.timer) and BBB server (bbb-on-aws-turn-secret.timer), every TURN_SECRET_POLL_SECONDS
  (contract.py). A host that is booting, briefly unreachable or missed an event catches up on its next tick,
  the Lambda needs no list of instances and no access to them, and the same timer is needed anyway to retire
  the old secret later.
  testSecret waits two poll periods after createSecret wrote the value, so finishSecret moves AWSCURRENT
  only when every running relay accepts the new secret (AWS API errors on a host keep its secrets, and the
  next tick retries; a relay whose API calls fail for two full periods is the remaining risk).
- bbb-web reads turn-stun-servers.xml only when it starts and keeps its meetings in memory, so a BBB server
  applies a new AWSCURRENT at its first moment without meetings (getMeetings empty), restarts bbb-web, and tags
  itself `bbb-on-aws:turn-secret=<version>@<time it stopped issuing the old one>` (docs/host-contract.md).
- The old secret is retired (the relays stop accepting AWSPREVIOUS) once every running BBB server issues with
  AWSCURRENT and the credential lifetime BBB hands out (contract.TURN_CREDENTIAL_TTL_SECONDS, 24 h, the TTL in
  turn-stun-servers.xml) has passed since the last switch. Retirement is a host decision taken from labels and
  tags, so it needs no scheduled job; createSecret refuses to start the next rotation before it (a rotation
  would take the AWSPREVIOUS label away from a secret still in use), so a manual rotation too soon after the
  last one fails loudly instead of refusing calls.

Timeline: T0 createSecret (AWSPENDING) -> within one poll period every relay accepts CURRENT+PENDING ->
T0 + 2 polls + 30 s testSecret passes, finishSecret (AWSCURRENT = new, AWSPREVIOUS = old) -> each BBB server
switches at its first idle moment Ts (it issued old credentials until then) -> max(Ts) + TTL: the relays drop
the old secret; live allocations made with it go on (their key is stored), new Allocates with it get 401.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from cdk_constructs.lambda_function import python_function
from cdk_constructs.nag import acknowledge
from contract import TURN_CREDENTIAL_TTL_SECONDS, TURN_SECRET_POLL_SECONDS, TURN_SECRET_ROTATION_MIN_DAYS
from settings import Deployment
from settings.stage_rules import log_retention

# One rotation step at most: testSecret waits 2 polls + 30 s, the rest is API calls.
TIMEOUT = Duration.minutes(5)


class TurnSecretRotation(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        secret: secretsmanager.ISecret,
        rotation_days: int,
        deployment: Deployment,
    ) -> None:
        super().__init__(scope, construct_id)
        if not TURN_SECRET_ROTATION_MIN_DAYS <= rotation_days <= 365:  # settings validate turn.secretRotationDays
            raise ValueError(
                f"the TURN secret rotation interval must be {TURN_SECRET_ROTATION_MIN_DAYS}-365 days, not "
                f"{rotation_days}: a rotation waits until the last one's old secret has expired everywhere"
            )
        self.function = python_function(
            self,
            "Function",
            handler="turn_secret_rotation.index.handler",
            service="turn-secret-rotation",
            description="Rotates the TURN REST shared secret (four Secrets Manager steps; hosts poll the labels)",
            role_description="TURN secret rotation: this secret's versions, random values, BBB servers' tags",
            timeout=TIMEOUT,
            log_retention=log_retention(deployment),
            environment={
                "SECRET_ARN": secret.secret_arn,
                "ENVIRONMENT_NAME": deployment.environment_name,
                "CREDENTIAL_TTL_SECONDS": str(TURN_CREDENTIAL_TTL_SECONDS),
                "HOST_POLL_SECONDS": str(TURN_SECRET_POLL_SECONDS),
                "POWERTOOLS_METRICS_NAMESPACE": deployment.metric_namespace,
            },
        )
        # add_rotation_schedule grants DescribeSecret, GetSecretValue, PutSecretValue and UpdateSecretVersionStage
        # on this secret and GetRandomPassword; createSecret's guard also reads the BBB servers' tags.
        role = self.function.role
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(sid="BbbServersTurnSecretTags", actions=["ec2:DescribeInstances"], resources=["*"])
        )
        acknowledge(
            self.function,
            "L1",
            "Python 3.13 is pinned on purpose: the Powertools layer of lambda_function.py is the python313 build",
        )
        acknowledge(
            role,
            "IAM5[Resource::*]",
            "secretsmanager:GetRandomPassword and ec2:DescribeInstances support no resource-level permissions "
            "(Service Authorization Reference); both only read",
        )
        self.schedule = secret.add_rotation_schedule(
            "Rotation",
            rotation_lambda=self.function,
            automatically_after=Duration.days(rotation_days),
            # A deploy never rotates: rotations follow the schedule (or an operator's rotate-secret).
            rotate_immediately_on_update=False,
        )
        # Secrets Manager may invoke the function on behalf of this account only (CDK's grant names no source).
        permissions = [c for c in self.function.node.find_all() if isinstance(c, lambda_.CfnPermission)]
        if len(permissions) != 1:
            raise RuntimeError(f"expected the rotation schedule's one invoke permission, found {len(permissions)}")
        permissions[0].source_account = Aws.ACCOUNT_ID
